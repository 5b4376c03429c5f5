//! `spannorm check`.

use super::{err, out, usage};
use clap::{Args, ValueEnum};
use spannorm::atomic::AtomicFile;
use spannorm::check::{self, accuracy, Group, Perturbation, Preset, Runner};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// Small widths and depths (d = 128, n = 16): what CI runs.
    Ci,
    /// d up to 1024, depth up to 4096.
    Full,
}

impl PresetArg {
    pub fn preset(self) -> Preset {
        match self {
            PresetArg::Ci => Preset::Ci,
            PresetArg::Full => Preset::Full,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PresetArg::Ci => "ci",
            PresetArg::Full => "full",
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Sizes of the built-in checks.
    #[arg(long, value_enum, default_value = "ci")]
    pub preset: PresetArg,
    /// Run the claims of this file instead of the built-in checks (see analysis/claims.md).
    #[arg(long, value_name = "FILE")]
    pub claims: Option<PathBuf>,
    /// Count INCONCLUSIVE verdicts (an interval straddling a bound) as failures.
    #[arg(long)]
    pub strict: bool,
    /// Also write the verdicts as a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Also write the verdicts as a Markdown table here.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Only these groups of checks (repeatable) [default: all].
    #[arg(long = "only", value_enum)]
    pub groups: Vec<Group>,
    /// Write the verdicts as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Keep each simulation's per-seed records here, so that an interrupted run resumes
    /// without repeating finished work [default with `--preset full`: results/check-full].
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    pub cache: Option<PathBuf>,
    /// Keep nothing on disk between runs (the default with `--preset ci`).
    #[arg(long)]
    pub no_cache: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Publish the run: write STEM.json (the verdicts with the engine revision, the
    /// command, the machine, the date and the wall time) and STEM.md (the same, rendered),
    /// e.g. `--publish analysis/check-ci`.
    #[arg(long, value_name = "STEM")]
    pub publish: Option<PathBuf>,
    /// Also judge every claim under a perturbed theory (each ingredient of the maps times
    /// 0.8 … 1.2, the η rule shifted) on the same simulations, and print which verdicts
    /// FAIL (the power table, also in --markdown).
    #[arg(long)]
    pub power: bool,
}

/// The cache directory of a check run, if any.
pub fn cache_dir(preset: PresetArg, cache: Option<&PathBuf>, no_cache: bool) -> Option<PathBuf> {
    match (cache, no_cache, preset) {
        (_, true, _) => None,
        (Some(dir), _, _) => Some(dir.clone()),
        (None, _, PresetArg::Full) => Some(PathBuf::from("results/check-full")),
        (None, _, PresetArg::Ci) => None,
    }
}

/// How a published run was made.
pub struct Published {
    /// The command line.
    pub command: String,
    /// The machine.
    pub machine: spannorm::machine::Machine,
    /// When it finished.
    pub date: String,
    /// Its wall time.
    pub wall_seconds: f64,
}

/// An error for a check run with failed predictions: exit code 1, not 2.
#[derive(Debug, thiserror::Error)]
#[error("{0} of {1} predictions failed")]
pub struct ChecksFailed(pub usize, pub usize);

/// The report of a check run: the verdict table, the accuracy table, the counts.
pub struct Report {
    pub verdicts: Vec<check::Verdict>,
    pub groups: Vec<Group>,
    pub accuracy: Vec<accuracy::Accuracy>,
    /// Where the claims are explained.
    pub docs: &'static str,
    /// The power table, when asked for.
    pub power: Option<check::power::Power>,
}

impl Report {
    /// Runs the claims of a claims file with an optional cache directory.
    pub fn run_file(
        path: &std::path::Path,
        cache: Option<PathBuf>,
        quiet: bool,
        power: bool,
    ) -> anyhow::Result<Report> {
        let claims = check::data::from_file(path, Group::User).map_err(usage)?;
        let progress = move |step: &str| {
            if !quiet {
                err(&format!("check: {step}"));
            }
        };
        let mut runner = Runner::new(Perturbation::None, &progress);
        if let Some(dir) = cache {
            spannorm::store::prepare(&dir).map_err(|e| usage(format!("cache {e}")))?;
            runner = runner.with_cache(dir);
        }
        let boxed: Vec<Box<dyn check::Claim>> = claims
            .into_iter()
            .map(|c| Box::new(c) as Box<dyn check::Claim>)
            .collect();
        let (verdicts, groups) = check::run_grouped(&boxed, &runner).into_iter().unzip();
        Ok(Report {
            verdicts,
            groups,
            accuracy: Vec::new(),
            docs: "analysis/claims.md",
            power: power.then(|| power_table(&boxed, &runner, &progress)),
        })
    }

    /// Runs `preset` (the groups given, or all) with an optional cache directory.
    pub fn run(
        preset: PresetArg,
        groups: &[Group],
        cache: Option<PathBuf>,
        quiet: bool,
        power: bool,
    ) -> anyhow::Result<Report> {
        let progress = move |step: &str| {
            if !quiet {
                err(&format!("check: {step}"));
            }
        };
        let mut runner = Runner::new(Perturbation::None, &progress);
        if let Some(dir) = cache {
            spannorm::store::prepare(&dir).map_err(|e| usage(format!("cache {e}")))?;
            runner = runner.with_cache(dir);
        }
        let groups = if groups.is_empty() {
            Group::ALL
        } else {
            groups
        };
        let claims = check::claims(preset.preset(), groups)?;
        let (verdicts, kinds) = check::run_grouped(&claims, &runner).into_iter().unzip();
        let accuracy = if groups == Group::ALL {
            accuracy::report(preset.preset(), &runner, &progress)
        } else {
            Vec::new()
        };
        Ok(Report {
            verdicts,
            groups: kinds,
            accuracy,
            docs: "analysis/checks.md",
            power: power.then(|| power_table(&claims, &runner, &progress)),
        })
    }

    /// The tables, as `check` prints them.
    pub fn text(&self) -> String {
        let mut s = check::table(&self.verdicts);
        if !self.accuracy.is_empty() {
            s += "\nrelative error of the predictions over layers 1..L and placements (reported, not a verdict):\n";
            s += &format!(
                "{:<11} {:<10} {:>6} {:>6} {:>8} {:>8} {:>8}\n",
                "attention", "metric", "d", "count", "p50", "p90", "p99"
            );
            for a in &self.accuracy {
                s += &format!(
                    "{:<11} {:<10} {:>6} {:>6} {:>8.4} {:>8.4} {:>8.4}\n",
                    a.attention, a.metric, a.width, a.count, a.p50, a.p90, a.p99
                );
            }
        }
        if let Some(p) = &self.power {
            s += "\npower: the verdicts that FAIL when one ingredient of the theory changes (same simulations):\n\n";
            s += &p.markdown();
            s += "\n";
        }
        s += &format!(
            "verdicts: {} (see {})\n",
            check::summary_line(&self.verdicts),
            self.docs
        );
        for line in [
            check::family_line(&self.verdicts),
            check::allowance_line(&self.verdicts),
        ]
        .into_iter()
        .flatten()
        {
            s += &line;
            s += "\n";
        }
        s
    }

    /// The JSON document of `--out`.
    pub fn json(&self, source: &str) -> anyhow::Result<String> {
        let doc = serde_json::json!({
            "schema": 1,
            "claims": source,
            "verdicts": self.verdicts,
            "accuracy": self.accuracy,
        });
        Ok(serde_json::to_string_pretty(&doc)? + "\n")
    }

    /// The JSON of `--publish`: [`Report::json`] with the engine revision and the run.
    pub fn published_json(&self, source: &str, run: &Published) -> anyhow::Result<String> {
        let doc = serde_json::json!({
            "schema": 1,
            "engine": spannorm::result::ENGINE,
            "claims": source,
            "command": run.command,
            "machine": run.machine,
            "date": run.date,
            "wall_seconds": run.wall_seconds,
            "summary": check::summary_line(&self.verdicts),
            "verdicts": self.verdicts,
            "accuracy": self.accuracy,
        });
        Ok(serde_json::to_string_pretty(&doc)? + "\n")
    }

    /// The Markdown of `--publish`: how the run was made, the verdicts, the accuracy table.
    pub fn published_markdown(&self, source: &str, run: &Published) -> String {
        let mut s = format!(
            "# `spannorm check`: {source}\n\nGenerated by `{}` (do not edit by hand): engine \
             revision {}, {}, {:.0} s wall time, on {}. Claims and tolerances: \
             [`checks.md`](checks.md).\n\n",
            run.command,
            spannorm::result::ENGINE,
            run.date,
            run.wall_seconds,
            run.machine.line()
        );
        s += &check::markdown(&self.verdicts);
        if !self.accuracy.is_empty() {
            s += "\n**Relative error of the predictions** over layers 1..L and placements \
                  (reported, not a verdict):\n\n| attention | metric | d | count | p50 | p90 | p99 |\n\
                  | --- | --- | ---: | ---: | ---: | ---: | ---: |\n";
            for a in &self.accuracy {
                s += &format!(
                    "| {} | {} | {} | {} | {:.4} | {:.4} | {:.4} |\n",
                    a.attention, a.metric, a.width, a.count, a.p50, a.p90, a.p99
                );
            }
        }
        s
    }

    /// The number of rows that fail the run (FAIL verdicts Holm's adjustment keeps, and
    /// INCONCLUSIVE ones when `strict`).
    pub fn failed(&self, strict: bool) -> usize {
        let (_, _, _, inc) = check::counts(&self.verdicts);
        check::run_failures(&self.verdicts) + if strict { inc } else { 0 }
    }
}

/// The power table of `claims` on the simulations `runner` holds.
fn power_table(
    claims: &[Box<dyn check::Claim>],
    runner: &Runner,
    progress: &(dyn Fn(&str) + Sync),
) -> check::power::Power {
    let changes = check::power::standard();
    progress(&format!(
        "power: judging every claim under {} changes of the theory",
        changes.len()
    ));
    check::power::power(claims, runner, &changes)
}

/// `spannorm check`.
pub fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let open = |p: &Option<PathBuf>| -> anyhow::Result<Option<AtomicFile>> {
        p.as_ref()
            .map(|p| AtomicFile::create(p).map_err(usage))
            .transpose()
    };
    let (file, junit, markdown) = (open(&args.out)?, open(&args.junit)?, open(&args.markdown)?);
    let published = args
        .publish
        .as_ref()
        .map(|stem| -> anyhow::Result<(AtomicFile, AtomicFile)> {
            let with = |ext: &str| {
                let mut p = stem.clone().into_os_string();
                p.push(ext);
                AtomicFile::create(&PathBuf::from(p)).map_err(usage)
            };
            Ok((with(".json")?, with(".md")?))
        })
        .transpose()?;
    let start = std::time::Instant::now();
    let report = match &args.claims {
        Some(path) => {
            if !args.groups.is_empty() {
                return Err(usage(
                    "--only selects built-in groups; a claims file runs all its claims",
                ));
            }
            Report::run_file(
                path,
                args.cache.clone().filter(|_| !args.no_cache),
                args.quiet,
                args.power,
            )?
        }
        None => {
            let cache = cache_dir(args.preset, args.cache.as_ref(), args.no_cache);
            Report::run(args.preset, &args.groups, cache, args.quiet, args.power)?
        }
    };
    out(&report.text());
    let source = match &args.claims {
        Some(p) => p.display().to_string(),
        None => format!("preset {}", args.preset.name()),
    };
    if let Some(file) = file {
        file.commit(report.json(&source)?.as_bytes())
            .map_err(usage)?;
    }
    if let Some(file) = junit {
        let xml = check::junit(&report.verdicts, &report.groups, args.strict);
        file.commit(xml.as_bytes()).map_err(usage)?;
    }
    if let Some(file) = markdown {
        let mut md = check::markdown(&report.verdicts);
        if let Some(p) = &report.power {
            md += "\n## Power\n\n";
            md += &p.markdown();
        }
        file.commit(md.as_bytes()).map_err(usage)?;
    }
    if let Some((json, md)) = published {
        let run = Published {
            command: std::iter::once("spannorm".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" "),
            machine: spannorm::machine::Machine::this(),
            date: spannorm::machine::now_utc(),
            wall_seconds: start.elapsed().as_secs_f64(),
        };
        json.commit(report.published_json(&source, &run)?.as_bytes())
            .map_err(usage)?;
        md.commit(report.published_markdown(&source, &run).as_bytes())
            .map_err(usage)?;
    }
    let failed = report.failed(args.strict);
    if failed > 0 {
        return Err(ChecksFailed(failed, report.verdicts.len()).into());
    }
    Ok(())
}
