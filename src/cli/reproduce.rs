//! `spannorm reproduce`.

use super::check::{PresetArg, Report};
use super::{err, pool, train, usage, Progress};
use anyhow::Context;
use clap::{Args, ValueEnum};
use spannorm::atomic::write_if_changed;
use spannorm::check;
use spannorm::plot::training::{TrainingFigure, TRAINING_FLAGS, TRAINING_SWEEP};
use spannorm::plot::{self, reproduce};
use spannorm::store;
use spannorm::sweep::{self, Summary, SweepSpec};
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
    let selection = reproduce::select(&args.figures).map_err(usage)?;
    let figures = &selection.figures;
    store::check_out_dir(&args.results).map_err(usage)?;
    store::check_out_dir(&args.out).map_err(usage)?;
    let cfgs = reproduce::configs(figures).map_err(usage)?;
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
        figures.len() + selection.training.len(),
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
    let (results_dir, out_dir) = (
        args.results.display().to_string(),
        args.out.display().to_string(),
    );
    for f in figures {
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
        drawn.push(reproduce::Drawn::figure(
            f,
            &preset,
            image,
            notes,
            &results_dir,
            &out_dir,
        ));
    }
    if !selection.training.is_empty() {
        drawn.extend(training(args, &selection.training, ext, &pool)?);
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
    let readme = reproduce::readme(&drawn, &verdicts);
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

/// Figures 10 and 11: the training sweep of `analysis/figures/10-training.json` with the
/// flags [`TRAINING_FLAGS`] (finished runs cached in `RESULTS/train.json.parts`), then the
/// figures from its document.
fn training(
    args: &ReproduceArgs,
    figures: &[&TrainingFigure],
    ext: &str,
    pool: &rayon::ThreadPool,
) -> anyhow::Result<Vec<reproduce::Drawn>> {
    let doc_path = args.results.join("train.json");
    let mut targs = train::parse(TRAINING_FLAGS)?;
    targs.out = Some(doc_path.clone());
    targs.threads = Some(pool.current_num_threads());
    targs.quiet = args.quiet;
    let spec = SweepSpec::from_json(TRAINING_SWEEP).map_err(usage)?;
    let cfgs = train::configs(&targs, &spec)?;
    let doc = train::run(&targs, &cfgs, false)?
        .ok_or_else(|| usage("reproduce: the training sweep did not finish"))?;
    let command = format!(
        "spannorm train --config analysis/figures/10-training.json {} --out {}",
        TRAINING_FLAGS.join(" "),
        doc_path.display()
    );
    let mut drawn = Vec::new();
    for f in figures {
        let image = format!("{}.{ext}", f.slug);
        let data = (f.draw)(&doc);
        let path = args.out.join(&image);
        pool.install(|| plot::write(&data, &path)).map_err(usage)?;
        if !args.quiet {
            err(&format!("figure {}: {}", f.number, path.display()));
        }
        drawn.push(reproduce::Drawn {
            number: f.number,
            title: f.title.into(),
            caption: f.caption.into(),
            notes: data.notes.clone(),
            commands: format!(
                "{command}\nspannorm plot {} --figure {} --out {}",
                doc_path.display(),
                f.number,
                path.display()
            ),
            extra: (f.number == 10).then(|| format!("```\n{}```", train::table(&doc))),
            image,
        });
    }
    Ok(drawn)
}
