//! The `spannorm` binary: bad input gets one line on stderr, exit code 2 and no output file;
//! good input gets a table and a complete result file.

use std::path::Path;
use std::process::{Command, Output};

fn spannorm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spannorm"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Configurations `--placement all` names: every built-in placement.
const ALL_PLACEMENTS: usize = 20;

const SMALL: [&str; 10] = [
    "--depth", "3", "--width", "16", "--tokens", "6", "--heads", "2", "--seeds", "2",
];

/// Runs `simulate` with `args` writing to a fresh folder; asserts the bad-input contract and
/// that the message names `field`.
fn rejects(args: &[&str], field: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let mut all = vec!["simulate"];
    all.extend_from_slice(&SMALL);
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = spannorm(&all);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{args:?}: not one line: {err}"
    );
    assert!(err.contains(field), "{args:?}: '{field}' not in: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "{args:?}: a file was left"
    );
}

#[test]
fn bad_flags() {
    rejects(&["--placement", "sandwiches"], "placement");
    rejects(&[], "placement");
    rejects(&["--placement", "pre", "--scale", "cubic"], "scale");
    rejects(&["--placement", "pre", "--scale", "const:-1"], "scale");
    rejects(&["--placement", "pre", "--scale", "const:inf"], "scale");
    rejects(&["--placement", "pre", "--scale", "const:nan"], "scale");
    rejects(&["--placement", "pre", "--norm", "batchnorm"], "norm");
    rejects(&["--placement", "pre", "--act", "tanh"], "act");
    rejects(&["--placement", "pre", "--mask", "sliding"], "mask");
    rejects(&["--placement", "pre", "--init", "orthogonal"], "init");
    rejects(&["--placement", "pre", "--precision", "f16"], "precision");
    rejects(&["--placement", "pre", "--heads", "3"], "heads");
    rejects(&["--placement", "pre", "--depth", "0"], "depth");
    rejects(&["--placement", "pre", "--seeds", "0"], "seeds");
    rejects(&["--placement", "pre", "--seeds", "100000000"], "seeds");
    rejects(&["--placement", "pre", "--tokens", "0"], "tokens");
    rejects(&["--placement", "pre", "--depth", "-4"], "depth");
    rejects(&["--placement", "pre", "--depth", "lots"], "depth");
    rejects(&["--placement", "pre", "--rho0", "1"], "rho0");
    rejects(&["--placement", "pre", "--rho0", "-0.1"], "rho0");
    rejects(&["--placement", "pre", "--rho0", "NaN"], "rho0");
    rejects(&["--placement", "pre", "--sigma-w", "-1"], "sigma-w");
    rejects(
        &[
            "--placement",
            "pre",
            "--moe-experts",
            "2",
            "--moe-top-k",
            "3",
        ],
        "moe-top-k",
    );
    rejects(&["--placement", "pre", "--moe-top-k", "1"], "moe-top-k");
    rejects(
        &["--placement", "attn-only", "--scale", "sqrt-depth"],
        "scale",
    );
    rejects(&["--placement", "post", "--inner-norm"], "inner-norm");
    rejects(&["--placement", "pre", "--d-ff", "100000000000"], "d-ff");
    rejects(&["--placement", "pre", "--threads", "0"], "threads");
    rejects(&["--placement", "pre", "--frobnicate"], "frobnicate");
}

#[test]
fn bad_formulas_are_one_line_with_their_position() {
    let cases: [(&[&str], &str); 8] = [
        (
            &["--block", "h = x + a*attn(nrom(x)); y = h + a*ffn(norm(h))"],
            "block:1:16: unknown function 'nrom' (known: norm, layernorm, rmsnorm, dyt, \
             l2norm, attn, ffn",
        ),
        (
            &["--block", "y = h + attn(x); h = norm(x)"],
            "block:1:5: 'h' is used before it is defined (at 1:18)",
        ),
        (
            &["--block", "y = norm(x)"],
            "block:1:1: the block's output never depends on attn(…) or ffn(…)",
        ),
        (
            &["--block", "y = x + attn(x)", "--final", "ffn(x)"],
            "final:1:1: ffn(…) is not available in the final formula",
        ),
        (
            &["--block", "y = x + attn(x)", "--placement", "pre"],
            "block: a block formula replaces the placement",
        ),
        (
            &["--placement", "pre", "--final", "x"],
            "final: goes with --block",
        ),
        (
            &["--block", "y = x + attn(x)", "--scale", "sqrt-depth"],
            "scale: formula has no residual sum to scale",
        ),
        (
            &["--block", "y = x + log(l - 3)*attn(x)"],
            "placement: formula: block 1: 'log(l - 3)' is NaN, not a finite number",
        ),
    ];
    for (args, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.json");
        let mut all = vec!["simulate"];
        all.extend_from_slice(&SMALL);
        all.extend_from_slice(args);
        all.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let o = spannorm(&all);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        let msg = err.strip_prefix("error: ").unwrap_or(&err);
        assert!(
            msg.starts_with(want),
            "{args:?}:\n  got  {err}  want {want}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn placement_files_run_and_their_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = write(
        "mine.json",
        r#"{"name": "mine", "block": "h = x + a*attn(norm(x))\ny = h + a*ffn(norm(h))",
            "final": "norm(x)", "citation": "a test"}"#,
    );
    let out = dir.path().join("r.json");
    let mut args = vec!["simulate", "--placement", &good, "--quiet"];
    args.extend_from_slice(&SMALL);
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = spannorm(&args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The result holds the definition itself: it runs again from its own config.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let cfg = &doc["results"][0]["config"];
    assert_eq!(cfg["placement"]["name"], "mine");
    assert_eq!(cfg["placement"]["final"], "norm(x)");
    let again = write("again.json", &cfg.to_string());
    let out2 = dir.path().join("r2.json");
    let o = spannorm(&[
        "simulate",
        "--config",
        &again,
        "--quiet",
        "--out",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        std::fs::read_to_string(&out2).unwrap()
    );
    let bad = [
        (write("a.json", r#"{"name": "a"}"#), "needs a block formula"),
        (
            write("b.json", r#"{"name": "b", "block": "y = x + atn(x)"}"#),
            "b.json: block:1:9: unknown function 'atn'",
        ),
        (
            write(
                "c.json",
                r#"{"name": "c", "block": "y = attn(x)", "colour": 3}"#,
            ),
            "c.json: colour: unknown field `colour`",
        ),
        (
            write(
                "d.json",
                r#"{"name": "d", "block": "y = attn(x)", "attention": {"qk-norm": "yes"}}"#,
            ),
            "d.json: attention.qk-norm: unknown value 'yes'",
        ),
        (
            dir.path().join("none.json").to_str().unwrap().to_string(),
            "none.json: ",
        ),
    ];
    for (file, want) in bad {
        let o = spannorm(&["simulate", "--placement", &file, "--depth", "2"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{file}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{file}: {err}");
        assert!(err.contains(want), "{file}: '{want}' not in {err}");
    }
}

fn with_config(json: &str, field: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.json");
    std::fs::write(&cfg, json).unwrap();
    let out = dir.path().join("r.json");
    let o = spannorm(&[
        "simulate",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{json}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{json}: {err}");
    assert!(err.contains(field), "{json}: '{field}' not in: {err}");
    assert!(!out.exists());
}

#[test]
fn bad_config_files() {
    with_config(r#"{"placement": "pre", "depth": 3,"#, "run.json");
    with_config(r#"{"placement": "pre", "layers": 3}"#, "layers");
    with_config(r#"{"placement": "pre", "depth": "three"}"#, "depth");
    with_config(r#"{"placement": "pre", "depth": -3}"#, "depth");
    with_config(r#"{"placement": "pre", "rho0": 2.5}"#, "rho0");
    with_config(r#"[1, 2]"#, "run.json");
    let o = spannorm(&["simulate", "--config", "/nonexistent/run.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/run.json"));
}

#[test]
fn unwritable_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["simulate", "--placement", "pre"];
    args.extend_from_slice(&SMALL);
    for out in ["/nonexistent/dir/r.json", dir.path().to_str().unwrap()] {
        let mut a = args.clone();
        a.extend_from_slice(&["--out", out]);
        let o = spannorm(&a);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{out}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(out), "{err}");
        assert!(
            o.stdout.is_empty(),
            "ran before failing: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn simulate_writes_json_csv_and_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let mut a = vec!["simulate", "--placement", "all", "--quiet"];
    a.extend_from_slice(&SMALL);
    a.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = spannorm(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("log10 grad") && table.contains("span-outer"),
        "{table}"
    );
    let v = read_json(&out);
    assert_eq!(v["schema"], 1);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), ALL_PLACEMENTS);
    let span = results
        .iter()
        .find(|r| r["config"]["placement"] == "span")
        .unwrap();
    assert_eq!(span["config"]["scale"], "sqrt-depth");
    assert_eq!(span["config"]["d-ff"], 64);
    assert_eq!(span["boundaries"]["q"]["mean"].as_array().unwrap().len(), 4);
    assert_eq!(
        span["blocks"]["adj_cos"]["mean"].as_array().unwrap().len(),
        3
    );

    // The resolved config of a result, fed back as --config, repeats the run exactly.
    let cfg = dir.path().join("cfg.json");
    std::fs::write(&cfg, span["config"].to_string()).unwrap();
    let again = dir.path().join("again.json");
    let o = spannorm(&[
        "simulate",
        "--config",
        cfg.to_str().unwrap(),
        "--quiet",
        "--out",
        again.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert_eq!(read_json(&again)["results"][0], *span);

    // A flag overrides the file.
    let csv = dir.path().join("r.csv");
    let o = spannorm(&[
        "simulate",
        "--config",
        cfg.to_str().unwrap(),
        "--depth",
        "2",
        "--quiet",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let text = std::fs::read_to_string(&csv).unwrap();
    let header = text.lines().next().unwrap();
    assert_eq!(
        header,
        "placement,depth,width,tokens,heads,d-ff,seeds,seed,scale,norm,act,mask,init,sigma-w,\
         rho0,moe-experts,moe-top-k,inner-norm,precision,block,final,dyt-alpha,loss,vocab,source,\
         metric,l,seed_index,mean,lo,hi,n"
    );
    // Every config field in every row: depth 2 here, so q at boundaries 0..=2 only.
    assert!(text.contains("span,2,16,6,2,64,2,0,sqrt-depth,"));
    assert!(text.contains(",simulation,q,2,,"));
    assert!(!text.contains(",simulation,q,3,,"));
    assert!(
        text.lines().all(|l| l.split(',').count() == 32),
        "ragged rows"
    );
}

#[test]
fn divergence_is_reported_not_written_as_nan() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let mut a = vec![
        "simulate",
        "--placement",
        "attn-skip",
        "--scale",
        "const:1e200",
        "--quiet",
    ];
    a.extend_from_slice(&SMALL);
    a.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = spannorm(&a);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    // Block 1 outputs entries near 1e200 whose square overflows: diverged at block 1.
    assert!(
        err.contains("seed 0 diverged at block 1 (forward)"),
        "{err}"
    );
    let v = read_json(&out);
    let r = &v["results"][0];
    assert_eq!(r["diverged"][0]["block"], 1);
    assert_eq!(r["diverged"][0]["pass"], "forward");
    assert_eq!(r["boundaries"]["q"]["n"][0], 2);
    assert_eq!(r["boundaries"]["q"]["n"][1], 0);
    assert!(r["boundaries"]["q"]["mean"][1].is_null());

    // post normalizes the overflowing sum back to finite values, but its q_pre_norm is
    // infinite: that is a divergence too, not a null.
    let mut a = vec![
        "simulate",
        "--placement",
        "post",
        "--scale",
        "const:1e200",
        "--quiet",
    ];
    a.extend_from_slice(&SMALL);
    let o = spannorm(&a);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("seed 0 diverged at block 1 (forward)"),
        "{err}"
    );
}

#[test]
fn theory_writes_predictions_or_refuses_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.json");
    let mut a = vec!["theory", "--placement", "span", "--init", "zero-query"];
    a.extend_from_slice(&SMALL);
    a.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let o = spannorm(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = read_json(&out);
    assert_eq!(v["results"][0]["source"], "theory");
    assert_eq!(v["results"][0]["boundaries"]["q"]["n"][0], 0);

    let bad = dir.path().join("moe.json");
    let mut a = vec![
        "theory",
        "--placement",
        "pre",
        "--moe-experts",
        "4",
        "--mask",
        "causal",
        "--init",
        "zero-query",
    ];
    a.extend_from_slice(&SMALL);
    a.extend_from_slice(&["--out", bad.to_str().unwrap()]);
    let o = spannorm(&a);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("mixture-of-experts"), "{err}");
    assert!(!bad.exists());
}

#[test]
fn check_refuses_an_unusable_cache_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let cache = file.join("cache");
    let out = dir.path().join("v.json");
    let o = spannorm(&[
        "check",
        "--preset",
        "ci",
        "--cache",
        cache.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains("cache directory"), "{err}");
    assert!(!out.exists());
    let o = spannorm(&["check", "--cache", "x", "--no-cache"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn bench_rejects_bad_flags_with_one_line() {
    for args in [
        &["bench", "--repeat", "0"][..],
        &["bench", "--threads", "0", "--case", "reference-f32"][..],
        &["bench", "--case", "everything"][..],
    ] {
        let o = spannorm(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}: printed a table");
    }
}

/// Runs `args` in `dir` and returns (exit code, stdout, stderr).
fn run_in(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_spannorm"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("binary runs");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A usage error: exit 2, one line naming `needle`, nothing left in `dir`.
fn refused(dir: &Path, args: &[&str], needle: &str) {
    let before = std::fs::read_dir(dir).unwrap().count();
    let (code, _, err) = run_in(dir, args);
    assert_eq!(code, Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: '{needle}' not in {err}");
    assert!(err.len() < 4096, "{args:?}: {} bytes", err.len());
    assert_eq!(
        std::fs::read_dir(dir).unwrap().count(),
        before,
        "{args:?}: a file was left"
    );
}

fn doc(p: &Path) -> spannorm::result::Document {
    spannorm::result::Document::from_json(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// Defect 1 of the fuzzing round: absurd mixtures are refused before any allocation, for
/// simulation and theory alike, and attention-only stacks take no mixture.
#[test]
fn absurd_mixtures_are_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = [
        "--placement",
        "pre",
        "--depth",
        "2",
        "--width",
        "8",
        "--tokens",
        "4",
        "--heads",
        "2",
    ];
    for cmd in ["simulate", "theory"] {
        let mut a = vec![cmd];
        a.extend_from_slice(&base);
        a.extend_from_slice(&["--moe-experts", "9223372036854775808", "--out", "x.json"]);
        refused(d, &a, "moe-experts");
        let mut a = vec![cmd];
        a.extend_from_slice(&base);
        a.extend_from_slice(&[
            "--moe-experts",
            "100000",
            "--moe-top-k",
            "1",
            "--out",
            "x.json",
        ]);
        refused(d, &a, "moe-experts");
    }
    refused(
        d,
        &["simulate", "--placement", "attn-skip", "--moe-experts", "2"],
        "no feed-forward",
    );
}

/// Defects 2 and 3: every entry is a number or absent for a stated reason; overflowing
/// linear gradients, vanished signals, overflowing intervals and exactly-zero weight
/// gradients are all said, never NaN, infinity or a silent gap.
#[test]
fn extremes_are_stated_not_written_as_nan_or_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: [(&[&str], &str); 4] = [
        (
            &[
                "--placement",
                "attn-skip",
                "--depth",
                "256",
                "--width",
                "32",
                "--tokens",
                "8",
                "--heads",
                "4",
                "--seeds",
                "1",
            ],
            "overflow",
        ),
        (
            &[
                "--placement",
                "attn-only",
                "--depth",
                "40",
                "--width",
                "32",
                "--tokens",
                "8",
                "--heads",
                "2",
                "--seeds",
                "2",
                "--sigma-w",
                "1e-6",
            ],
            "vanished",
        ),
        // q passes 1e154, where squared deviations overflow: the interval is summed scaled.
        // q grows by about 10^4 per block and leaves f64 near block 78, where the run
        // diverges in the forward pass.
        (
            &[
                "--placement",
                "attn-skip",
                "--depth",
                "80",
                "--width",
                "32",
                "--tokens",
                "8",
                "--heads",
                "2",
                "--seeds",
                "2",
                "--sigma-w",
                "10",
            ],
            "diverged",
        ),
        (
            &[
                "--placement",
                "attn-only",
                "--depth",
                "17",
                "--width",
                "64",
                "--tokens",
                "3",
                "--heads",
                "2",
                "--seeds",
                "2",
                "--seed",
                "18446744073709551615",
                "--rho0",
                "0.9",
            ],
            "zero",
        ),
    ];
    for (args, reason) in cases {
        let mut a = vec!["simulate", "--quiet", "--out", "r.json"];
        a.extend_from_slice(args);
        let (code, _, err) = run_in(d, &a);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        let r = &doc(&d.join("r.json")).results[0];
        assert!(r.holes().is_empty(), "{args:?}: {:?}", r.holes());
        let q = &r.boundaries.q;
        for i in 0..q.len() {
            if q.n[i] == 2 {
                assert!(q.lo[i].is_some() && q.hi[i].is_some(), "{args:?}: q at {i}");
            }
        }
        let json = std::fs::read_to_string(d.join("r.json")).unwrap();
        assert!(
            json.contains(&format!("\"reason\": \"{reason}\"")),
            "{args:?}"
        );
        let mut a = vec!["simulate", "--quiet", "--out", "r.csv"];
        a.extend_from_slice(args);
        assert_eq!(run_in(d, &a).0, Some(0));
        let csv = std::fs::read_to_string(d.join("r.csv")).unwrap();
        assert!(!csv.contains("inf") && !csv.contains("NaN"), "{args:?}");
    }
    // The zero-query W_k gradient is exactly zero: 0 in linear terms with every seed, and
    // its log absent for that reason.
    let (code, _, _) = run_in(
        d,
        &[
            "simulate",
            "--placement",
            "pre",
            "--init",
            "zero-query",
            "--depth",
            "2",
            "--width",
            "8",
            "--tokens",
            "4",
            "--heads",
            "2",
            "--seeds",
            "3",
            "--quiet",
            "--out",
            "z.json",
        ],
    );
    assert_eq!(code, Some(0));
    let r = &doc(&d.join("z.json")).results[0];
    let wk = spannorm::weight::WeightName::AttnK;
    assert_eq!(r.blocks.param_grad[&wk].mean, vec![Some(0.0); 2]);
    assert_eq!(r.blocks.param_grad[&wk].n, vec![3; 2]);
    assert_eq!(r.blocks.log10_param_grad[&wk].n, vec![0; 2]);
    assert_eq!(
        r.blocks.log10_param_grad[&wk].absent_at(0),
        vec![(spannorm::summary::Reason::Zero, 3)]
    );
}

/// Defects 4 and 5: a config file is one object (text after it is an error, for simulate
/// and theory alike); theory predicts a switched-off branch, refuses a kernel its
/// approximation breaks, and states a vanished signal.
#[test]
fn config_files_and_theory_edges() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for text in [
        r#"{"placement": "pre"} x"#,
        r#"{"placement": "pre"} {"depth": "garbage"}"#,
    ] {
        std::fs::write(d.join("c.json"), text).unwrap();
        for cmd in ["simulate", "theory"] {
            refused(
                d,
                &[cmd, "--config", "c.json"],
                "text after the config object",
            );
        }
    }
    std::fs::remove_file(d.join("c.json")).unwrap();
    let (code, _, err) = run_in(
        d,
        &[
            "theory",
            "--placement",
            "post",
            "--scale",
            "const:0",
            "--depth",
            "3",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    refused(
        d,
        &[
            "theory",
            "--placement",
            "attn-only",
            "--init",
            "xavier",
            "--rho0",
            "0.9",
            "--depth",
            "4",
            "--width",
            "32",
            "--tokens",
            "8",
            "--heads",
            "2",
        ],
        "outside [-1, 1]",
    );
    let (code, out, _) = run_in(
        d,
        &[
            "theory",
            "--placement",
            "attn-only",
            "--sigma-w",
            "1e-6",
            "--init",
            "zero-query",
            "--depth",
            "64",
            "--width",
            "32",
            "--tokens",
            "8",
            "--heads",
            "2",
            "--out",
            "t.csv",
        ],
    );
    assert_eq!(code, Some(0));
    assert!(!out.contains("NaN") && !out.contains("inf"), "{out}");
    let csv = std::fs::read_to_string(d.join("t.csv")).unwrap();
    assert!(!csv.contains("NaN") && !csv.contains("inf"));
}

/// Defect 6: a closed stdout stops the table, not the run: the result file is written.
#[test]
fn a_closed_stdout_still_writes_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_spannorm"))
        .args([
            "simulate",
            "--placement",
            "all",
            "--depth",
            "3",
            "--width",
            "16",
            "--tokens",
            "4",
            "--heads",
            "2",
            "--seeds",
            "2",
            "--quiet",
            "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once, as `| head -0` would
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(doc(&out).results.len(), ALL_PLACEMENTS);
}

/// Defect 7: sweep directories: an unwritable output is one line and exit 2; a broken file
/// that is not part of the sweep is skipped, not fatal; a complete read-only directory
/// needs no write; a killed process's temporary file is cleaned up; -0.0 is 0.0; results of
/// another engine revision are refused by plot and merge; huge values are cut in messages;
/// clap's errors are whole; `--list` needs no directory; a missing output directory is
/// named.
#[test]
fn sweep_directory_defects() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("s.json"),
        r#"{"placement": "pre", "depth": [1, 2], "width": 8, "tokens": 4, "heads": 2, "seeds": 2, "rho0": [0.0, -0.0]}"#,
    )
    .unwrap();
    let (code, out, _) = run_in(d, &["sweep", "--config", "s.json", "--list"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.lines().count(),
        2,
        "-0.0 and 0.0 are one configuration: {out}"
    );
    // A read-only output directory that is not done: one line, exit 2.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = d.join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        // Root writes anyway: only check when the directory really is read-only.
        if std::fs::write(ro.join("probe"), b"").is_err() {
            let (code, _, err) = run_in(
                d,
                &["sweep", "--config", "s.json", "--out", "ro", "--quiet"],
            );
            assert_eq!(code, Some(2), "{err}");
            assert_eq!(err.trim_end().lines().count(), 1, "{err}");
            assert_eq!(err.matches("ermission denied").count(), 1, "{err}");
        }
    }
    let (code, _, err) = run_in(
        d,
        &["sweep", "--config", "s.json", "--out", "out", "--quiet"],
    );
    assert_eq!(code, Some(0), "{err}");
    // A stale temporary file of a dead process and a broken file outside the sweep.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .collect();
    let stale = d
        .join("out")
        .join(format!(".spannorm~{host}~4294967295~x.tmp"));
    std::fs::write(&stale, b"{").unwrap();
    std::fs::write(d.join("out").join("0123456789abcdef.json"), b"{broken").unwrap();
    let (code, out, err) = run_in(d, &["sweep", "--config", "s.json", "--out", "out"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("skipped"), "{out}");
    assert!(
        !stale.exists() || host.is_empty(),
        "the stale temporary file is still there"
    );
    std::fs::remove_file(d.join("out").join("0123456789abcdef.json")).unwrap();
    // A complete directory made read-only: the summary is unchanged, nothing is written.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let (code, _, _) = run_in(
            d,
            &["sweep", "--config", "s.json", "--out", "out", "--quiet"],
        );
        assert_eq!(code, Some(0));
        std::fs::set_permissions(d.join("out"), std::fs::Permissions::from_mode(0o555)).unwrap();
        let (code, _, err) = run_in(
            d,
            &["sweep", "--config", "s.json", "--out", "out", "--quiet"],
        );
        std::fs::set_permissions(d.join("out"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(code, Some(0), "{err}");
    }
    // Results of another engine revision: plot and merge refuse them.
    let name = std::fs::read_dir(d.join("out"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .find(|n| n.len() == 21)
        .unwrap();
    let old = d.join("old");
    std::fs::create_dir(&old).unwrap();
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("out").join(&name)).unwrap()).unwrap();
    v["engine"] = (spannorm::simulate::ENGINE + 7).into();
    std::fs::write(old.join(&name), serde_json::to_vec(&v).unwrap()).unwrap();
    refused(
        d,
        &["plot", "old", "--figure", "1", "--out", "f.png"],
        "engine revision",
    );
    refused(d, &["merge", "old", "--out", "merged"], "engine revision");
    // A 10 MB value is cut in the message.
    let huge = format!("{{\"placement\": \"{}\"}}", "p".repeat(10_000_000));
    std::fs::write(d.join("h.json"), huge).unwrap();
    refused(d, &["simulate", "--config", "h.json"], "characters");
    refused(
        d,
        &["sweep", "--config", "h.json", "--out", "hh"],
        "characters",
    );
    std::fs::remove_file(d.join("h.json")).unwrap();
    // clap's errors whole, in one line.
    refused(d, &["sweep"], "--config");
    refused(
        d,
        &["simulate", "--norm", "batchnorm"],
        "possible values: layernorm, rmsnorm",
    );
    refused(
        d,
        &[
            "simulate",
            "--placement",
            "pre",
            "--out",
            "missing/dir/x.json",
        ],
        "the directory missing/dir does not exist",
    );
}

/// `export` writes any results (files, directories) as one tidy CSV, with per-seed rows
/// where the results kept their seeds; CSVs of different runs share their columns.
#[test]
fn export_writes_tidy_csv_with_every_config_field() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, _, err) = run_in(
        d,
        &[
            "simulate",
            "--placement",
            "post",
            "--depth",
            "2",
            "--width",
            "8",
            "--tokens",
            "4",
            "--heads",
            "2",
            "--seeds",
            "3",
            "--per-seed",
            "--quiet",
            "--out",
            "a.json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, _) = run_in(
        d,
        &[
            "theory",
            "--placement",
            "pre",
            "--init",
            "zero-query",
            "--depth",
            "3",
            "--width",
            "8",
            "--tokens",
            "4",
            "--heads",
            "2",
            "--out",
            "b.json",
        ],
    );
    assert_eq!(code, Some(0));
    let (code, _, err) = run_in(
        d,
        &["export", "a.json", "b.json", "--per-seed", "--out", "t.csv"],
    );
    assert_eq!(code, Some(0), "{err}");
    let text = std::fs::read_to_string(d.join("t.csv")).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert!(rows.iter().all(|r| r.split(',').count() == 32));
    // Summary rows of both sources, and three per-seed rows of q at boundary 1.
    assert!(rows.iter().any(|r| r.contains(",theory,q,3,,")));
    let seeds = rows
        .iter()
        .filter(|r| {
            r.starts_with("post,") && r.contains(",simulation,q,1,") && !r.contains(",q,1,,")
        })
        .count();
    assert_eq!(seeds, 3, "{text}");
    refused(
        d,
        &["export", "nothing-here.json", "--out", "u.csv"],
        "nothing-here.json",
    );
}

/// `--dry-run` estimates and runs nothing; without a terminal, progress is a line every
/// few seconds (`SPANNORM_PROGRESS_SECONDS`), counted in block passes.
#[test]
fn dry_runs_and_progress_lines() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (code, out, err) = run_in(
        d,
        &[
            "simulate",
            "--placement",
            "all",
            "--depth",
            "8",
            "--width",
            "32",
            "--tokens",
            "8",
            "--heads",
            "2",
            "--seeds",
            "2",
            "--dry-run",
            "--out",
            "r.json",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("dry run: 20 configurations, 40 seeds"),
        "{out}"
    );
    assert!(
        out.contains("in all: about") && out.contains("GFLOP executed"),
        "{out}"
    );
    assert!(!d.join("r.json").exists(), "a dry run writes nothing");
    std::fs::write(d.join("s.json"), r#"{"placement": ["pre", "post"], "depth": [2, 4], "width": 8, "tokens": 4, "heads": 2, "seeds": 2}"#).unwrap();
    let (code, out, _) = run_in(
        d,
        &["sweep", "--config", "s.json", "--out", "o", "--dry-run"],
    );
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("dry run: 4 configurations, 8 seeds"),
        "{out}"
    );
    assert!(!d.join("o").join("summary.json").exists());
    // Without --out every configuration is pending; --limit and --shard still apply.
    let (code, out, _) = run_in(
        d,
        &["sweep", "--config", "s.json", "--dry-run", "--shard", "1/2"],
    );
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("dry run: 2 configurations, 4 seeds"),
        "{out}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_spannorm"))
        .args([
            "simulate",
            "--placement",
            "post",
            "--depth",
            "400",
            "--width",
            "64",
            "--tokens",
            "16",
            "--heads",
            "2",
            "--seeds",
            "1",
        ])
        .env("SPANNORM_PROGRESS_SECONDS", "0")
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("/800 block passes ("), "{err}");
    let (code, _, err) = run_in(
        d,
        &[
            "simulate",
            "--placement",
            "post",
            "--depth",
            "40",
            "--width",
            "64",
            "--tokens",
            "16",
            "--heads",
            "2",
            "--seeds",
            "1",
            "--quiet",
        ],
    );
    assert_eq!(code, Some(0));
    assert!(err.is_empty(), "--quiet: {err}");
}

/// `check --claims`: each kind of claim can PASS, FAIL or be INCONCLUSIVE; exit code 1 on
/// FAIL (and on INCONCLUSIVE with `--strict`), 2 on a malformed file; JUnit and Markdown
/// reports.
#[test]
fn claims_files_pass_fail_inconclusive_and_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = r#""config": {"placement": "post", "depth": 6, "width": 32, "tokens": 8, "heads": 2, "seeds": 6, "init": "zero-query"}"#;
    let sweep = r#""sweep": {"placement": "span", "depth": [4, 8, 16], "width": 32, "tokens": 8, "heads": 2, "seeds": 6}"#;
    // post ends every block with a norm: q = 1 (to 1e-6) after block 1.
    let pass = format!(
        r#"{{"claims": [
        {{"name": "q at most 1.01", {cfg}, "metric": "q", "at": "layer:6", "op": "<=", "value": 1.01}},
        {{"name": "q at least 0.99", {cfg}, "metric": "q", "at": "final", "op": ">=", "value": 0.99}},
        {{"name": "q within", {cfg}, "metric": "q", "at": "max", "op": "within", "value": [0.5, 2]}},
        {{"name": "token_cos theory", {cfg}, "metric": "token_cos", "at": "all", "op": "~theory"}},
        {{"name": "ratio flat in depth", {sweep}, "metric": "log10_grad_ratio", "at": "slope:depth", "op": "within", "value": [-0.5, 0.5]}},
        {{"name": "grad slope", {cfg}, "metric": "log10_grad", "at": "slope:layer", "layers": [1, 5], "op": ">=", "value": -1}}
    ]}}"#
    );
    std::fs::write(d.join("pass.json"), &pass).unwrap();
    let (code, out, err) = run_in(
        d,
        &[
            "check",
            "--claims",
            "pass.json",
            "--quiet",
            "--junit",
            "j.xml",
            "--markdown",
            "m.md",
            "--out",
            "v.json",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("6 PASS, 0 FAIL"), "{out}");
    let junit = std::fs::read_to_string(d.join("j.xml")).unwrap();
    assert!(junit.contains(r#"tests="6" failures="0""#), "{junit}");
    assert!(std::fs::read_to_string(d.join("m.md"))
        .unwrap()
        .contains("| PASS | q at most 1.01 |"));
    // A claim the stack refutes: FAIL, exit 1, a JUnit failure.
    let fail = format!(
        r#"[{{"name": "q below a half", {cfg}, "metric": "q", "at": "all", "op": "<=", "value": 0.5}}]"#
    );
    std::fs::write(d.join("fail.json"), fail).unwrap();
    let (code, out, _) = run_in(
        d,
        &[
            "check",
            "--claims",
            "fail.json",
            "--quiet",
            "--junit",
            "j.xml",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(std::fs::read_to_string(d.join("j.xml"))
        .unwrap()
        .contains("<failure message=\"FAIL\">"));
    // A bound inside the seeds' interval: INCONCLUSIVE, exit 0, or 1 with --strict.
    let mid = format!(
        r#"[{{"name": "q about its mean", {cfg}, "metric": "q", "at": "layer:0", "op": "<=", "value": 1.0}}]"#
    );
    std::fs::write(d.join("mid.json"), mid).unwrap();
    let (code, out, _) = run_in(d, &["check", "--claims", "mid.json", "--quiet"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("INCONCLUSIVE"), "{out}");
    let (code, _, _) = run_in(d, &["check", "--claims", "mid.json", "--quiet", "--strict"]);
    assert_eq!(code, Some(1));
    // Malformed: one line naming the claim and the field, exit 2, nothing written.
    std::fs::write(
        d.join("bad.json"),
        format!(
            r#"[{{"name": "oops", {cfg}, "metric": "q", "at": "finall", "op": "<=", "value": 1}}]"#
        ),
    )
    .unwrap();
    refused(
        d,
        &["check", "--claims", "bad.json", "--out", "never.json"],
        "claim 1 (\"oops\"): at: unknown value 'finall'",
    );
    refused(d, &["check", "--claims", "missing.json"], "missing.json");
}
