//! `spannorm reproduce`.

use super::{pool, progress, usage};
use crate::plot::{self, reproduce};
use crate::report::AtomicFile;
use crate::sweep::{self, store, Summary};
use anyhow::Context;
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageArg {
    Png,
    Svg,
}

#[derive(Debug, Args)]
pub struct ReproduceArgs {
    /// Where the figures and their README go.
    #[arg(long, default_value = "figures")]
    pub out: PathBuf,
    /// Results cache: one file per configuration, reused by later runs.
    #[arg(long, default_value = "target/reproduce-results")]
    pub results: PathBuf,
    /// Only these figures (repeatable) [default: all].
    #[arg(long = "figure")]
    pub figures: Vec<usize>,
    /// Image format.
    #[arg(long, value_enum, default_value = "png")]
    pub format: ImageArg,
    /// Do not run `check`.
    #[arg(long)]
    pub no_check: bool,
    /// Which `check` preset to run: `ci` takes about a minute; `full` (d up to 1024, depth up
    /// to 4096) takes hours on two cores, beyond this command's ten-minute budget.
    #[arg(long, value_enum, default_value = "ci")]
    pub check_preset: super::check::PresetArg,
    /// Worker threads [default: all cores]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `spannorm reproduce`: every figure's sweep (cached results reused), every figure, the
/// verdicts of `check --preset full`, and `figures/README.md`.
pub fn reproduce(args: &ReproduceArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let figures = reproduce::select(&args.figures).map_err(usage)?;
    sweep::check_out_dir(&args.results).map_err(usage)?;
    sweep::check_out_dir(&args.out).map_err(usage)?;
    let cfgs = reproduce::configs(&figures)?;
    let mut pending = Vec::new();
    for c in &cfgs {
        if !store::is_done(&args.results, c).map_err(usage)? {
            pending.push(c.clone());
        }
    }
    let say = |s: String| {
        if !args.quiet {
            eprintln!("{s}");
        }
    };
    say(format!(
        "reproduce: {} figures, {} configs, {} cached, running {}",
        figures.len(),
        cfgs.len(),
        cfgs.len() - pending.len(),
        pending.len()
    ));
    let pool = pool(args.threads)?;
    let seeds: usize = pending.iter().map(|c| c.seeds).sum();
    let bar = progress(seeds as u64, "simulate", args.quiet);
    let written = pool.install(|| sweep::run(&pending, &args.results, &|| bar.inc(1)));
    bar.finish_and_clear();
    written?;
    let t_sim = start.elapsed().as_secs_f64();
    say(format!(
        "simulations done in {t_sim:.0} s; theory and figures"
    ));
    pool.install(|| -> anyhow::Result<()> {
        Summary::of_dir(&args.results)?.write(&args.results)?;
        Ok(())
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let all = store::load(std::slice::from_ref(&args.results))?;
    let ext = match args.format {
        ImageArg::Png => "png",
        ImageArg::Svg => "svg",
    };
    let mut drawn = Vec::new();
    for f in &figures {
        let results = plot::select(&f.sweep(), all.clone())?;
        let image = format!("{}.{ext}", f.slug);
        let notes = pool.install(|| plot::draw(f, &results, &args.out.join(&image)))?;
        say(format!(
            "figure {}: {}",
            f.number,
            args.out.join(&image).display()
        ));
        drawn.push(reproduce::Drawn {
            figure: f,
            image,
            notes,
        });
    }
    let t_fig = start.elapsed().as_secs_f64();
    let preset = format!("{:?}", args.check_preset).to_lowercase();
    let verdicts = if args.no_check {
        "Not run (`--no-check`); run `spannorm check --preset ci` (or `full`).".to_string()
    } else {
        say(format!("check --preset {preset}"));
        check_verdicts(&preset, &args.results)?
    };
    let total = start.elapsed().as_secs_f64();
    let readme = reproduce::readme(
        &drawn,
        &args.results.display().to_string(),
        &args.out.display().to_string(),
        &format!(
            "{verdicts}\n\nThis run: {total:.0} s in all ({t_sim:.0} s simulating {} of {} \
             configurations, the rest cached; figures done at {t_fig:.0} s), {} worker threads.",
            pending.len(),
            cfgs.len(),
            pool.current_num_threads()
        ),
    );
    AtomicFile::create(&args.out.join("README.md"))
        .and_then(|f| f.commit(readme.as_bytes()))
        .map_err(usage)?;
    say(format!(
        "done in {total:.0} s: {}",
        args.out.join("README.md").display()
    ));
    Ok(())
}

/// Runs `spannorm check --preset PRESET` in a child process and returns its report as
/// Markdown; an error when the check could not run at all.
fn check_verdicts(preset: &str, results: &std::path::Path) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find the spannorm binary")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["check", "--quiet", "--preset", preset]);
    if preset == "full" {
        // Resumable: the full preset's simulations are kept next to the figure sweeps.
        cmd.arg("--cache").arg(results.join("check-full"));
    }
    let out = cmd.output().context("cannot run spannorm check")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let finished = stdout.contains("\nverdicts: ");
    Ok(match out.status.code() {
        Some(0) if finished => format!(
            "`spannorm check --preset {preset}`: no prediction fails (DEVIATION rows are \
             claims that do not follow as stated; see analysis/checks.md).\n\n```\n{}\n```",
            stdout.trim_end()
        ),
        Some(1) if finished => format!(
            "`spannorm check --preset {preset}` reports failures (exit code 1).\n\n```\n{}\n```",
            stdout.trim_end()
        ),
        // Not a verdict: the check itself could not run; its one-line error is ours.
        _ => anyhow::bail!(
            "spannorm check --preset {preset} did not finish: {}",
            stderr.trim()
        ),
    })
}
