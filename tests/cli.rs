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
    rejects(&["--placement", "sandwich"], "placement");
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
    assert_eq!(results.len(), 11);
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
    assert!(text.starts_with("run,placement,scale,metric,l,mean,lo,hi,n\n"));
    assert!(text.contains("0,span,sqrt-depth,q,2,"));
    assert!(!text.contains("0,span,sqrt-depth,q,3,"));
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
