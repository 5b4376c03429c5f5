//! `spannorm reproduce`.

use super::check::{PresetArg, Report};
use super::{err, pool, usage, Progress};
use anyhow::Context;
use clap::{Args, ValueEnum};
use spannorm::atomic::write_if_changed;
use spannorm::check;
use spannorm::plot::{self, reproduce};
use spannorm::store;
use spannorm::sweep::{self, Summary};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageArg {
    Png,
    Svg,
    Pdf,
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
    pub check_preset: PresetArg,
    /// Worker threads [default: all cores]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// `spannorm reproduce`: every figure's sweep (cached results reused), every figure, the
/// verdicts of `check`, and `figures/README.md`.
pub fn reproduce(args: &ReproduceArgs) -> anyhow::Result<()> {
    let start = Instant::now();
    let figures = reproduce::select(&args.figures).map_err(usage)?;
    store::check_out_dir(&args.results).map_err(usage)?;
    store::check_out_dir(&args.out).map_err(usage)?;
    let cfgs = reproduce::configs(&figures).map_err(usage)?;
    let mut pending = Vec::new();
    for c in &cfgs {
        if !store::is_done(&args.results, c).map_err(usage)? {
            pending.push(c.clone());
        }
    }
    let say = |s: String| {
        if !args.quiet {
            err(&s);
        }
    };
    say(format!(
        "reproduce: {} figures, {} configs, {} cached in {}, running {}",
        figures.len(),
        cfgs.len(),
        cfgs.len() - pending.len(),
        args.results.display(),
        pending.len()
    ));
    let pool = pool(args.threads)?;
    let total = spannorm::simulate::total_passes(&pending, &spannorm::simulate::all_jobs(&pending));
    let bar = Progress::new(total, "simulate", args.quiet);
    let written = pool.install(|| sweep::run(&pending, &args.results, &|n| bar.inc(n)));
    bar.finish();
    written.map_err(usage)?;
    let t_sim = start.elapsed().as_secs_f64();
    say(format!(
        "simulations done in {t_sim:.0} s; theory and figures"
    ));
    pool.install(|| -> anyhow::Result<()> {
        Summary::of_dir(&args.results)
            .map_err(usage)?
            .write(&args.results)
            .map_err(usage)?;
        Ok(())
    })?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let all = store::load(std::slice::from_ref(&args.results)).map_err(usage)?;
    let ext = match args.format {
        ImageArg::Png => "png",
        ImageArg::Svg => "svg",
        ImageArg::Pdf => "pdf",
    };
    let mut drawn = Vec::new();
    for f in &figures {
        let results = plot::select(&f.sweep().map_err(usage)?, all.clone()).map_err(usage)?;
        let image = format!("{}.{ext}", f.slug);
        let preset = f.preset().map_err(usage)?;
        let notes = pool
            .install(|| plot::draw(&preset.plot, &results, &args.out.join(&image)))
            .map_err(usage)?;
        say(format!(
            "figure {}: {}",
            f.number,
            args.out.join(&image).display()
        ));
        drawn.push(reproduce::Drawn {
            figure: f,
            preset,
            image,
            notes,
        });
    }
    let preset = args.check_preset.name();
    let verdicts = if args.no_check {
        "Not run (`--no-check`); run `spannorm check --preset ci` (or `full`).".to_string()
    } else {
        say(format!("check --preset {preset}"));
        // The full preset's simulations are kept next to the figure sweeps (resumable).
        let cache = (args.check_preset == PresetArg::Full).then(|| args.results.join("check-full"));
        let report = pool.install(|| Report::run(args.check_preset, &[], cache, true, false))?;
        say(format!(
            "verdicts: {}",
            check::summary_line(&report.verdicts)
        ));
        let text = report.text();
        if report.failed(false) == 0 {
            format!(
                "`spannorm check --preset {preset}`: no prediction fails (DEVIATION rows are \
                 claims that do not follow as stated; see analysis/checks.md).\n\n```\n{}\n```",
                text.trim_end()
            )
        } else {
            format!(
                "`spannorm check --preset {preset}` reports failures (exit code 1).\n\n```\n{}\n```",
                text.trim_end()
            )
        }
    };
    let readme = reproduce::readme(
        &drawn,
        &args.results.display().to_string(),
        &args.out.display().to_string(),
        &verdicts,
    );
    write_if_changed(&args.out.join("README.md"), readme.as_bytes()).map_err(usage)?;
    say(format!(
        "done in {:.0} s ({:.0} s simulating {} of {} configurations, the rest cached in {}, {} worker threads): {}",
        start.elapsed().as_secs_f64(),
        t_sim,
        pending.len(),
        cfgs.len(),
        args.results.display(),
        pool.current_num_threads(),
        args.out.join("README.md").display()
    ));
    Ok(())
}
