//! `spannorm train`.

use super::{bytes, err, hms, out, pool, usage, Progress};
use clap::Args;
use spannorm::attention::Mask;
use spannorm::config::{Field, RawConfig, SimConfig};
use spannorm::loss::Loss;
use spannorm::sweep::{Shard, SweepSpec};
use spannorm::train::optim::{Optimizer, Schedule};
use spannorm::train::run::{self, Document, Sweep};
use spannorm::train::task::Task;
use spannorm::train::{self as tr, Settings};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model flags as for simulate; for train the defaults are L = 16, d = 128, n = 64,
    /// 4 seeds, --vocab 256, --mask causal and --loss cross-entropy.
    #[command(flatten)]
    pub model: RawConfig,
    /// JSON config file (fields as the flags, kebab-case), where any field may be a list
    /// (cross product) or the file an array of such objects (union), as for sweep: e.g.
    /// {"placement": ["pre", "post", "span"], "moe-experts": [null, 4]}. Flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The task: bigram (a random sparse Markov chain) or copy (the second half repeats
    /// the first).
    #[arg(long, default_value = "bigram")]
    pub task: Task,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    pub batch: usize,
    /// Optimizer steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// adamw (β = 0.9, 0.95, ε = 1e-8) or sgd.
    #[arg(long, default_value = "adamw")]
    pub optimizer: Optimizer,
    /// Peak learning rate; a comma-separated list runs a learning-rate sweep.
    #[arg(long, value_delimiter = ',', default_value = "1e-3")]
    pub lr: Vec<f64>,
    /// Linear warmup steps [default: a tenth of --steps].
    #[arg(long)]
    pub warmup: Option<usize>,
    /// cosine (to zero at the last step) or constant after warmup.
    #[arg(long, default_value = "cosine")]
    pub schedule: Schedule,
    /// Decoupled weight decay λ (each step multiplies weights by 1 − lr·λ).
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f64,
    /// Clip the global gradient norm at this value.
    #[arg(long, default_value_t = 1.0, conflicts_with = "no_clip")]
    pub clip: f64,
    /// No gradient clipping.
    #[arg(long)]
    pub no_clip: bool,
    /// Record the per-layer metrics every this many steps (and at the first and last).
    #[arg(long, default_value_t = 10)]
    pub record_every: usize,
    /// Write the training document here (written whole, when every run is finished).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep each finished run here, so an interrupted or sharded sweep resumes
    /// [default: OUT.parts beside --out].
    #[arg(long)]
    pub parts: Option<PathBuf>,
    /// Run only part i of n of the runs, 1-based; run again without --shard (with the
    /// parts directories together) to write the document.
    #[arg(long)]
    pub shard: Option<String>,
    /// Worker threads [default: all cores]. Results do not depend on it.
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the estimated memory, FLOPs and time, and run nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    fn settings(&self) -> Settings {
        Settings {
            task: self.task,
            batch: self.batch,
            steps: self.steps,
            optimizer: self.optimizer,
            lr: self.lr.first().copied().unwrap_or(f64::NAN),
            warmup: self.warmup.unwrap_or(self.steps / 10),
            schedule: self.schedule,
            weight_decay: self.weight_decay,
            clip: (!self.no_clip).then_some(self.clip),
            record_every: self.record_every,
        }
    }

    /// Train's own defaults of the model flags (the flags and a config file go over them).
    fn defaults() -> RawConfig {
        RawConfig::default()
            .depth(16)
            .width(128)
            .tokens(64)
            .seeds(4)
            .vocab(256)
            .mask(Mask::Causal)
            .loss(Loss::CrossEntropy)
    }
}

/// A model flag's help with train's default in place of simulate's, for the flags that
/// train gives its own default ([`TrainArgs::defaults`], so `train --help` and the runs
/// read one definition).
pub fn help_with_defaults(arg: clap::Arg) -> clap::Arg {
    let spelling = arg.get_id().as_str().replace('_', "-");
    let Ok(field) = spelling.parse::<Field>() else {
        return arg;
    };
    let (Some(value), Some(help)) = (
        TrainArgs::defaults().text(field),
        arg.get_help().map(|h| h.to_string()),
    ) else {
        return arg;
    };
    let head = help
        .find("[default: ")
        .map_or(help.as_str(), |i| &help[..i]);
    let help = format!("{} [default: {value}]", head.trim_end());
    arg.help(help)
}

/// The configurations of a sweep-style model file under `args`: train's defaults under
/// each combination, the model flags over it.
pub fn configs(args: &TrainArgs, spec: &SweepSpec) -> anyhow::Result<Vec<SimConfig>> {
    spec.expand_mapped(|raw| TrainArgs::defaults().overlay(&raw).overlay(&args.model))
        .map_err(usage)
}

/// `spannorm train` flags parsed as on the command line (how `reproduce` runs the
/// training figures from the flags it prints).
pub fn parse(flags: &[&str]) -> anyhow::Result<TrainArgs> {
    #[derive(clap::Parser)]
    #[command(mut_args(help_with_defaults))]
    struct Train {
        #[command(flatten)]
        args: TrainArgs,
    }
    use clap::Parser as _;
    Train::try_parse_from(std::iter::once("train").chain(flags.iter().copied()))
        .map(|t| t.args)
        .map_err(|e| usage(super::one_line(&e.to_string())))
}

/// `spannorm train`.
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let cfgs = match &args.config {
        Some(p) => configs(args, &SweepSpec::from_file(p).map_err(usage)?)?,
        None => TrainArgs::defaults()
            .overlay(&args.model)
            .resolve()
            .map_err(usage)?,
    };
    run(args, &cfgs, true).map(|_| ())
}

/// Runs (or resumes, or with `--dry-run` estimates) the sweep of `cfgs` at `args`'s
/// rates, writes the document to `--out` and, with `table`, prints its table; the
/// document is `None` while other shards' runs are missing.
pub fn run(args: &TrainArgs, cfgs: &[SimConfig], table: bool) -> anyhow::Result<Option<Document>> {
    let settings = args.settings();
    let shard = match &args.shard {
        Some(s) => Some(s.parse::<Shard>().map_err(usage)?),
        None => None,
    };
    let parts = args
        .parts
        .clone()
        .or_else(|| args.out.as_deref().map(run::default_parts));
    if shard.is_some() && parts.is_none() {
        return Err(usage("shard: needs --out or --parts to keep the runs in"));
    }
    let sweep = Sweep {
        cfgs,
        lrs: &args.lr,
        settings: &settings,
        parts: if args.dry_run { None } else { parts.as_deref() },
    };
    sweep.validate().map_err(usage)?;
    let pool = pool(args.threads)?;
    let threads = pool.current_num_threads();
    for c in cfgs {
        let b = tr::bytes(c, &settings, threads);
        if b > spannorm::cost::MAX_BYTES {
            return Err(usage(format!(
                "{}: training needs about {} (more than {}); use fewer threads, a smaller \
                 batch, model or vocabulary",
                c.model().placement_name(),
                bytes(b),
                bytes(spannorm::cost::MAX_BYTES)
            )));
        }
    }
    if args.dry_run {
        dry_run(cfgs, &args.lr, &settings, &pool);
        return Ok(None);
    }
    // The document file is opened first, so a bad path fails before any work.
    let output = match &args.out {
        Some(p) if shard.is_none() => Some(spannorm::atomic::AtomicFile::create(p).map_err(usage)?),
        _ => None,
    };
    let mut plan = sweep.plan();
    let pending: Vec<usize> = (0..plan.jobs.len())
        .filter(|&i| plan.done[i].is_none())
        .filter(|&i| shard.is_none_or(|s| i % s.count == s.index - 1))
        .collect();
    if !args.quiet {
        err(&format!(
            "train{}: {} runs ({} configurations × {} rates × seeds), {} done, running {}",
            shard.map_or(String::new(), |s| format!(" shard {s}")),
            plan.jobs.len(),
            cfgs.len(),
            args.lr.len(),
            plan.done.iter().filter(|d| d.is_some()).count(),
            pending.len()
        ));
    }
    let total = (pending.len() * settings.steps) as u64;
    let bar = Progress::with_unit(total, "train", "steps", args.quiet);
    pool.install(|| sweep.run(&mut plan, &pending, &|| bar.inc(1)))
        .map_err(usage)?;
    bar.finish();
    let Some(doc) = sweep.document(&plan) else {
        let missing = plan.done.iter().filter(|d| d.is_none()).count();
        err(&format!(
            "{missing} of {} runs are not finished (other shards); run again without --shard, \
             with every shard's runs in {}, to write the document",
            plan.jobs.len(),
            parts
                .as_deref()
                .map_or("--parts".into(), |p| p.display().to_string())
        ));
        return Ok(None);
    };
    if table {
        out(&self::table(&doc));
    }
    for r in &doc.runs {
        for t in &r.traces {
            if let Some(step) = t.diverged_at {
                err(&format!(
                    "warning: {} lr {} seed {}: diverged at step {step}",
                    r.label(),
                    r.lr,
                    t.seed
                ));
            }
        }
    }
    if let Some(file) = output {
        let bytes = serde_json::to_vec(&doc)?;
        file.commit(&bytes).map_err(usage)?;
    }
    Ok(Some(doc))
}

fn est(e: &run::Estimate, digits: usize) -> String {
    match (e.mean, e.half_width) {
        (Some(m), Some(h)) => format!("{m:.digits$} ± {h:.digits$}"),
        (Some(m), None) => format!("{m:.digits$}"),
        _ => "-".into(),
    }
}

/// The final loss per configuration and rate, and the sensitivity per configuration.
pub fn table(doc: &run::Document) -> String {
    let mut s = format!(
        "{:<18} {:>9} {:>17} {:>17} {:>9}\n",
        "configuration", "lr", "final loss", "above floor", "diverged"
    );
    for r in &doc.runs {
        s += &format!(
            "{:<18} {:>9.1e} {:>17} {:>17} {:>9}\n",
            r.label(),
            r.lr,
            est(&r.final_loss, 4),
            est(&r.above_floor, 4),
            format!("{}/{}", r.diverged, r.traces.len())
        );
    }
    if doc.lrs.len() > 1 {
        s += &format!(
            "\n{:<18} {:>17} {:>9}\n",
            "configuration", "lr sensitivity", "best lr"
        );
        for x in &doc.sensitivity {
            s += &format!(
                "{:<18} {:>17} {:>9}\n",
                x.label(),
                est(&x.value, 4),
                x.best_lr.map_or("-".into(), |l| format!("{l:.1e}"))
            );
        }
    }
    s
}

/// `--dry-run`: memory, FLOPs and time of the runs, from one timed round of passes.
fn dry_run(cfgs: &[SimConfig], lrs: &[f64], settings: &Settings, pool: &rayon::ThreadPool) {
    let threads = pool.current_num_threads();
    out(&format!(
        "dry run: {} configurations × {} rates, {} steps of {} sequences, on {threads} worker \
         threads (time from one round of passes of each shape timed on this machine)\n",
        cfgs.len(),
        lrs.len(),
        settings.steps,
        settings.batch
    ));
    out(&format!(
        "{:<18} {:>5} {:>5} {:>5} {:>6} {:>6} {:>11} {:>10} {:>11} {:>10}\n",
        "configuration", "L", "d", "n", "V", "seeds", "parameters", "memory", "GFLOP/step", "s/run"
    ));
    let (mut total, mut flops, mut peak) = (0.0, 0.0, 0.0f64);
    for c in cfgs {
        let m = c.model();
        let round = pool.install(|| tr::time_round(c, settings));
        // Each run's passes, spread over the threads; the held-out loss is 4 more steps'
        // worth of passes.
        let passes = (settings.steps * settings.batch + tr::EVAL_SEQUENCES) as f64;
        let run_secs = passes * round / threads as f64;
        let runs = (lrs.len() * c.seeds()) as f64;
        total += runs * run_secs;
        flops += runs * passes * tr::sequence_flops(c);
        let b = tr::bytes(c, settings, threads);
        peak = peak.max(b);
        out(&format!(
            "{:<18} {:>5} {:>5} {:>5} {:>6} {:>6} {:>11.3e} {:>10} {:>11.2} {:>10.1}\n",
            run::label(m.placement_name(), &c.to_raw()),
            m.depth(),
            m.width(),
            m.tokens(),
            m.vocab(),
            c.seeds(),
            tr::parameters(c),
            bytes(b),
            tr::step_flops(c, settings) / 1e9,
            run_secs
        ));
    }
    out(&format!(
        "in all: about {} wall time, peak memory about {}, {:.1} GFLOP\n",
        hms(total),
        bytes(peak),
        flops / 1e9
    ));
}
