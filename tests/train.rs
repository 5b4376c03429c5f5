//! The training probe's machinery: exact gradients of the whole model (embedding and
//! unembedding included) against central finite differences, step-0 metrics equal to
//! `simulate`'s, a small stable configuration that learns its task down to the floor, and
//! identical bytes at 1 and 2 threads.

use spannorm::config::{RawConfig, SimConfig};
use spannorm::simulate::{simulate, Options};
use spannorm::train::optim::{Optimizer, Schedule};
use spannorm::train::task::{self, Task};
use spannorm::train::{self, Model, Settings};

fn cfg(placement: &str, tweak: impl FnOnce(&mut RawConfig)) -> SimConfig {
    let mut r = RawConfig {
        placement: Some(placement.parse().unwrap()),
        depth: Some(2),
        width: Some(8),
        tokens: Some(5),
        heads: Some(2),
        seeds: Some(1),
        vocab: Some(11),
        mask: Some("causal".parse().unwrap()),
        loss: Some("cross-entropy".parse().unwrap()),
        precision: Some("f64".parse().unwrap()),
        ..RawConfig::default()
    };
    tweak(&mut r);
    r.resolve().unwrap().remove(0)
}

fn settings(task: Task, steps: usize, lr: f64) -> Settings {
    Settings {
        task,
        batch: 8,
        steps,
        optimizer: Optimizer::Adamw,
        lr,
        warmup: steps / 10,
        schedule: Schedule::Cosine,
        weight_decay: 0.0,
        clip: Some(1.0),
        record_every: 10,
    }
}

/// Central differences with `h = 1e-5` (tests/gradcheck.rs: an exact backward pass gives a
/// relative error near 1e-9; the bound is 1e-6), over every entry of every matrix.
#[test]
fn whole_model_gradients_match_finite_differences() {
    const H: f64 = 1e-5;
    // `pre-moe`: pre with a mixture of 4 experts, top 2 (the router's weights too).
    for placement in ["pre", "post", "span", "deepnorm", "pre-moe"] {
        let c = cfg(placement.trim_end_matches("-moe"), |r| {
            if placement == "span" {
                r.act = Some("gelu".parse().unwrap());
            }
            if placement == "pre-moe" {
                r.moe_experts = Some(4);
                r.moe_top_k = Some(2);
            }
        });
        let model = Model::<f64>::init(&c, 0);
        let src = task::Source::new(Task::Bigram, 11, 5, c.seed(), 0);
        let seq = src.sequence(&mut task::rng(c.seed(), 0, 1));
        let (_, grads) = train::loss_and_gradients(&c, &model, &seq).unwrap();
        let g = grads.matrices();
        let mut probe = model.clone();
        let count = probe.matrices_mut().len();
        let (mut num, mut den) = (vec![0.0; count], vec![0.0; count]);
        for k in 0..count {
            let len = probe.matrices_mut()[k].len();
            for idx in 0..len {
                let at = |p: &mut Model<f64>, v: f64| {
                    p.matrices_mut()[k].as_slice_mut().unwrap()[idx] = v;
                    train::loss_and_gradients(&c, p, &seq).unwrap().0
                };
                let orig = model.matrices()[k].as_slice().unwrap()[idx];
                let fd = (at(&mut probe, orig + H) - at(&mut probe, orig - H)) / (2.0 * H);
                at(&mut probe, orig);
                num[k] += (g[k].as_slice().unwrap()[idx] - fd).powi(2);
                den[k] += fd * fd;
            }
        }
        for k in 0..count {
            // An expert no token reached has an exactly zero gradient: it must be zero here.
            let err = if den[k] == 0.0 {
                num[k].sqrt()
            } else {
                (num[k] / den[k]).sqrt()
            };
            assert!(err < 1e-6, "{placement} matrix {k}: relative error {err}");
        }
    }
}

/// At step 0 the stack reads embedding rows of random words: the same distribution as
/// `simulate`'s inputs (Gaussian rows, `ρ0 = 0`) while the words are distinct. The seed
/// means of `q` and `token_cos` at the top must agree within 4 standard errors of their
/// difference (16 seeds each; the two means are independent).
#[test]
fn step_zero_metrics_equal_simulate() {
    let seeds = 16;
    let c = cfg("pre", |r| {
        r.depth = Some(4);
        r.width = Some(64);
        r.tokens = Some(8);
        r.vocab = Some(4096);
        r.seeds = Some(seeds);
    });
    let sim = simulate(std::slice::from_ref(&c), &Options::default())
        .unwrap()
        .remove(0);
    let s = settings(Task::Copy, 1, 1e-3);
    let traces: Vec<_> = (0..seeds as u64)
        .map(|seed| train::train_seed(&c, &s, seed, &|| {}))
        .collect();
    let top = 4;
    for (name, sim_series, pick) in [
        (
            "q",
            &sim.boundaries.q,
            (|r: &spannorm::metrics::SeedRecord| r.q[4].unwrap()) as fn(&_) -> f64,
        ),
        ("token_cos", &sim.boundaries.token_cos, |r| {
            r.token_cos[4].unwrap()
        }),
    ] {
        let v: Vec<f64> = traces.iter().map(|t| pick(&t.layers[0])).collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let se_train = (var / n).sqrt();
        let half = sim_series.hi[top].unwrap() - sim_series.mean[top].unwrap();
        let se_sim = half / spannorm::summary::t975(seeds);
        let se = (se_train.powi(2) + se_sim.powi(2)).sqrt();
        let m = sim_series.mean[top].unwrap();
        assert!(
            (mean - m).abs() <= 4.0 * se,
            "{name}: train step 0 {mean} vs simulate {m} ± {se}"
        );
    }
}

/// A stable small configuration learns the bigram chain: the mean loss over the last 20
/// steps closes at least 90% of the gap between the uniform loss `ln V` and the floor. The
/// mean of 20 batch losses of 8 × 16 targets has a standard error of about
/// `sd(−ln p)/√2560 ≤ 2/50 = 0.04` (the per-target spread is at most `ln V`-sized), well
/// inside the 10% (0.16 nats) left. Without learning (a rate of 1e-9) the loss stays at its
/// initial value and the check fails.
#[test]
fn a_small_stable_model_learns_the_bigram_chain() {
    let c = cfg("pre", |r| {
        r.depth = Some(2);
        r.width = Some(32);
        r.tokens = Some(16);
        r.vocab = Some(16);
        r.precision = Some("f32".parse().unwrap());
    });
    let gap_closed = |lr: f64| {
        let t = train::train_seed(&c, &settings(Task::Bigram, 300, lr), 0, &|| {});
        assert_eq!(t.diverged_at, None);
        let last: f64 = t.loss[t.loss.len() - 20..].iter().sum::<f64>() / 20.0;
        let uniform = 16f64.ln();
        (uniform - last) / (uniform - t.floor)
    };
    let learned = gap_closed(1e-2);
    assert!(learned > 0.9, "closed {learned} of the gap to the floor");
    let frozen = gap_closed(1e-9);
    assert!(frozen < 0.9, "a frozen model closed {frozen}");
}

#[test]
fn identical_bytes_at_one_and_two_threads() {
    let c = cfg("span", |r| {
        r.width = Some(16);
        r.tokens = Some(8);
        r.vocab = Some(32);
        r.precision = Some("f32".parse().unwrap());
    });
    let s = settings(Task::Copy, 12, 3e-3);
    let run = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let t = pool.install(|| train::train_seed(&c, &s, 3, &|| {}));
        serde_json::to_string(&t).unwrap()
    };
    assert_eq!(run(1), run(2));
}

#[test]
fn settings_out_of_range_are_one_line_errors() {
    let c = cfg("pre", |_| {});
    let ok = settings(Task::Bigram, 10, 1e-3);
    assert_eq!(ok.validate(&c), Ok(()));
    for (bad, word) in [
        (
            Settings {
                lr: 0.0,
                ..ok.clone()
            },
            "lr",
        ),
        (
            Settings {
                batch: 0,
                ..ok.clone()
            },
            "batch",
        ),
        (
            Settings {
                steps: 0,
                ..ok.clone()
            },
            "steps",
        ),
        (
            Settings {
                warmup: 11,
                ..ok.clone()
            },
            "warmup",
        ),
        (
            Settings {
                record_every: 0,
                ..ok.clone()
            },
            "record-every",
        ),
        (
            Settings {
                clip: Some(f64::NAN),
                ..ok.clone()
            },
            "clip",
        ),
        (
            Settings {
                weight_decay: -1.0,
                ..ok.clone()
            },
            "weight-decay",
        ),
    ] {
        let e = bad.validate(&c).unwrap_err().to_string();
        assert!(e.starts_with(word) && !e.contains('\n'), "{e}");
    }
    let bidirectional = cfg("pre", |r| r.mask = Some("bidirectional".parse().unwrap()));
    let e = ok.validate(&bidirectional).unwrap_err().to_string();
    assert!(e.contains("--mask causal"), "{e}");
}

#[test]
fn sensitivity_is_the_mean_excess_over_the_best_rate() {
    // ℓ₀ = 3; rates reach 1, 2, diverge (counts as 3), and 5 (capped at 3): best 1.
    let s = train::sensitivity(&[Some(1.0), Some(2.0), None, Some(5.0)], 3.0);
    assert!((s - (0.0 + 1.0 + 2.0 + 2.0) / 4.0).abs() < 1e-15);
}

fn spannorm(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_spannorm"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// [`spannorm`], which must succeed (its stderr shown when it does not).
fn spannorm_ok(args: &[&str]) -> std::process::Output {
    let o = spannorm(args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

const SMALL_TRAIN: [&str; 18] = [
    "train",
    "--placement",
    "pre",
    "--depth",
    "2",
    "--width",
    "16",
    "--tokens",
    "8",
    "--heads",
    "2",
    "--vocab",
    "16",
    "--steps",
    "12",
    "--seeds",
    "2",
    "--quiet",
];

/// A learning-rate sweep keeps each finished run: run again after losing one (an
/// interruption), or in two shards on different thread counts and then together, and the
/// document has the same bytes as the uninterrupted run.
#[test]
fn resumed_and_sharded_sweeps_write_identical_documents() {
    let dir = tempfile::tempdir().unwrap();
    let path = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    let run = |extra: &[&str]| {
        let mut a = SMALL_TRAIN.to_vec();
        a.extend_from_slice(&["--lr", "1e-3,1e-2"]);
        a.extend_from_slice(extra);
        spannorm_ok(&a)
    };
    let whole = path("whole.json");
    run(&["--out", &whole]);
    let first = std::fs::read(&whole).unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(doc["runs"].as_array().unwrap().len(), 2);
    assert_eq!(doc["sensitivity"].as_array().unwrap().len(), 1);
    // Interrupted: one finished run lost.
    let parts = std::path::PathBuf::from(format!("{whole}.parts"));
    let mut names: Vec<_> = std::fs::read_dir(&parts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 4, "one part per rate and seed");
    std::fs::remove_file(&names[0]).unwrap();
    std::fs::remove_file(&whole).unwrap();
    run(&["--out", &whole]);
    assert_eq!(std::fs::read(&whole).unwrap(), first, "resumed run differs");
    // Sharded over two processes with different thread counts, then assembled.
    let shards = path("shards");
    let o = run(&["--parts", &shards, "--shard", "1/2", "--threads", "1"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not finished"));
    run(&["--parts", &shards, "--shard", "2/2", "--threads", "2"]);
    let assembled = path("assembled.json");
    run(&["--parts", &shards, "--out", &assembled]);
    assert_eq!(
        std::fs::read(&assembled).unwrap(),
        first,
        "sharded run differs"
    );
}

/// Bad training input: one line on stderr, exit code 2, no document.
#[test]
fn bad_train_flags_are_one_line_errors() {
    for (extra, word) in [
        (&["--lr", "0"][..], "lr"),
        (&["--lr", "1e-3,-1"][..], "lr"),
        (&["--mask", "bidirectional"][..], "mask"),
        (&["--loss", "mean-token"][..], "loss"),
        (&["--shard", "1/2"][..], "shard"),
        (&["--batch", "0"][..], "batch"),
        (&["--task", "sorting"][..], "task"),
        (&["--optimizer", "lion"][..], "optimizer"),
        (&["--warmup", "13"][..], "warmup"),
        (&["--vocab", "1"][..], "vocab"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("t.json");
        let mut a = SMALL_TRAIN.to_vec();
        a.extend_from_slice(extra);
        if word != "shard" {
            a.extend_from_slice(&["--out", out.to_str().unwrap()]);
        }
        let o = spannorm(&a);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {e}");
        assert_eq!(e.trim_end().lines().count(), 1, "{extra:?}: {e}");
        assert!(e.contains(word), "{extra:?}: '{word}' not in {e}");
        assert!(!out.exists(), "{extra:?}: a document was written");
    }
}

/// The recorded probes reach the trace: the largest attention logit for every block (its
/// value is checked against brute force in `attention`'s unit tests), the router's load
/// imbalance within `[1, E/k]` for mixture blocks and absent for dense ones.
#[test]
fn probes_are_recorded_per_block() {
    let c = cfg("pre", |r| {
        r.moe_experts = Some(4);
        r.moe_top_k = Some(1);
    });
    let t = train::train_seed(&c, &settings(Task::Bigram, 1, 1e-3), 0, &|| {});
    assert_eq!(t.max_logit[0].len(), 2);
    assert!(t.max_logit[0].iter().all(|v| v.is_some_and(f64::is_finite)));
    assert!(t.max_load[0]
        .iter()
        .all(|v| v.is_some_and(|x| (1.0..=4.0).contains(&x))));
    let dense = cfg("pre", |_| {});
    let t = train::train_seed(&dense, &settings(Task::Bigram, 1, 1e-3), 0, &|| {});
    assert!(t.max_load[0].iter().all(Option::is_none));
}

/// Figures 10 and 11 from a sweep with a dense and a mixture configuration, one rate that
/// trains and one (`1e30`, f32, no decay) that overflows at once: figure 10 has a dense and a mixture
/// panel, each with the configuration's curve (a point at the good rate, none at the
/// diverged one, and a note saying so) and the floor; figure 11 draws each configuration at
/// its best rate over the recorded steps. The CLI writes both images, and refuses the flags
/// of the plot grammar with one line.
#[test]
fn training_figures_draw_each_configuration_and_leave_out_diverged_rates() {
    use spannorm::plot::training::{loss_against_rate, signal_over_steps};
    let dir = tempfile::tempdir().unwrap();
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
    std::fs::write(
        p("models.json"),
        r#"{"placement": "pre", "moe-experts": [null, 4], "precision": "f32"}"#,
    )
    .unwrap();
    let mut a = SMALL_TRAIN[1..].to_vec();
    a.retain(|&s| s != "--placement" && s != "pre");
    let models = p("models.json");
    let doc_path = p("doc.json");
    let mut args = vec![
        "train",
        "--config",
        &models,
        "--lr",
        "1e-2,1e30",
        "--weight-decay",
        "0",
    ];
    args.extend_from_slice(&a);
    args.extend_from_slice(&["--out", &doc_path]);
    spannorm_ok(&args);
    let doc = spannorm::train::run::Document::read(std::path::Path::new(&doc_path)).unwrap();
    assert_eq!(doc.runs.len(), 4);
    assert!(doc.runs.iter().all(|r| (r.diverged == 2) == (r.lr == 1e30)));

    let fig = loss_against_rate(&doc);
    let spannorm::plot::canvas::Body::Lines { panels, .. } = &fig.body else {
        panic!("figure 10 is a line figure")
    };
    assert_eq!(panels.len(), 2, "a dense and a mixture panel");
    for panel in panels {
        assert_eq!(
            panel.lines.len(),
            2,
            "{}: the curve and the floor",
            panel.title
        );
        let curve = &panel.lines[0];
        assert!(curve.points[0].is_some_and(|(x, y)| x == 1e-2 && y.is_finite()));
        assert_eq!(
            curve.points[1], None,
            "{}: a diverged rate has no point",
            panel.title
        );
        let floor = doc.runs[0].traces[0].floor;
        assert!(panel.lines[1].points.iter().all(|q| q.unwrap().1 == floor));
    }
    assert_eq!(fig.notes.len(), 2, "{:?}", fig.notes);
    assert!(fig.notes.iter().all(|n| n.contains("diverged")));
    // A rate at which some seeds diverged has no point, though the others have a mean.
    let mut partly = doc.clone();
    partly.runs[0].diverged = 1;
    let spannorm::plot::canvas::Body::Lines { panels, .. } = loss_against_rate(&partly).body else {
        panic!("figure 10 is a line figure")
    };
    assert_eq!(panels[0].lines[0].points[0], None);

    let fig = signal_over_steps(&doc);
    let spannorm::plot::canvas::Body::Lines { panels, .. } = &fig.body else {
        panic!("figure 11 is a line figure")
    };
    assert_eq!(
        panels.len(),
        6,
        "three quantities for dense, three for the mixture"
    );
    let steps: Vec<f64> = doc.runs[0].traces[0]
        .recorded_steps
        .iter()
        .map(|&s| s as f64)
        .collect();
    assert_eq!(steps, [0.0, 10.0, 11.0]);
    for panel in panels {
        assert_eq!(panel.lines.len(), 1, "{}", panel.title);
        for l in &panel.lines {
            let xs: Vec<f64> = l.points.iter().map(|q| q.unwrap().0).collect();
            assert_eq!(xs, steps, "{}", panel.title);
        }
    }

    for n in ["10", "11"] {
        let img = p(&format!("fig{n}.png"));
        spannorm_ok(&["plot", &doc_path, "--figure", n, "--out", &img]);
        assert_eq!(&std::fs::read(&img).unwrap()[..4], b"\x89PNG");
    }
    let o = spannorm(&[
        "plot",
        &doc_path,
        "--figure",
        "10",
        "--y",
        "q",
        "--out",
        &p("x.png"),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
}

/// The experiment of figures 10 and 11 is what `reproduce` runs: its model file expands
/// under train's defaults and its flags parse (a dry run lists the 8 configurations).
#[test]
fn the_training_figures_experiment_is_valid() {
    use spannorm::plot::training::TRAINING_FLAGS;
    let mut a = vec![
        "train",
        "--config",
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/analysis/figures/10-training.json"
        ),
    ];
    a.extend_from_slice(TRAINING_FLAGS);
    a.push("--dry-run");
    let o = spannorm_ok(&a);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("8 configurations × 4 rates, 100 steps of 6"),
        "{text}"
    );
    assert_eq!(text.matches("MoE 4/2").count(), 4, "{text}");
}

/// `train --help` shows train's own defaults for the model flags it changes (the same
/// definition the runs use), and `simulate --help` still shows simulate's.
#[test]
fn help_shows_trains_defaults() {
    let help = |cmd: &str| String::from_utf8(spannorm_ok(&[cmd, "--help"]).stdout).unwrap();
    let train = help("train");
    for shown in [
        "Number of blocks L [default: 16]",
        "Model width d [default: 128]",
        "Number of seeds [default: 4]",
        "random unembedding [default: 256]",
        "bidirectional or causal [default: causal]",
        "cross-entropy [default: cross-entropy]",
        "Attention heads H [default: 4]",
    ] {
        assert!(train.contains(shown), "{shown}:\n{train}");
    }
    assert!(!train.contains("[default: bidirectional]"), "{train}");
    let simulate = help("simulate");
    assert!(
        simulate.contains("Number of blocks L [default: 64]"),
        "{simulate}"
    );
    assert!(simulate.contains("[default: bidirectional]"));
}
