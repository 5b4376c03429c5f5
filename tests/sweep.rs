//! `spannorm sweep` and `spannorm merge`: resumable, shardable, byte for byte.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

fn spannorm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spannorm"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Six small configs (three placements × two depths), two seeds each.
const SWEEP: &str = r#"{"placement": ["pre", "post", "span"], "depth": [2, 4],
    "width": 16, "tokens": 6, "heads": 2, "seeds": 2}"#;

/// Every file in `dir` (name → bytes), temporary files excluded.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.ends_with(".tmp"))
        .map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap()))
        .collect()
}

fn sweep(spec: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut a = vec![
        "sweep",
        "--config",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    a.extend_from_slice(extra);
    let o = spannorm(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("sweep.json");
    std::fs::write(&spec, SWEEP).unwrap();
    (dir, spec)
}

#[test]
fn interrupted_sweep_resumes_to_the_same_bytes() {
    let (dir, spec) = setup();
    let full = dir.path().join("full");
    sweep(&spec, &full, &["--threads", "1"]);
    let want = files(&full);
    assert_eq!(want.len(), 7, "six results and summary.json");
    assert!(want.contains_key("summary.json"));

    // Stopped after two configs, then resumed (with another thread count).
    let part = dir.path().join("part");
    sweep(&spec, &part, &["--limit", "2", "--threads", "2"]);
    assert_eq!(files(&part).len(), 3);
    sweep(&spec, &part, &["--threads", "2"]);
    assert_eq!(files(&part), want);

    // Killed mid-write: results lost, one truncated file, a temporary file left behind.
    let names: Vec<String> = want
        .keys()
        .filter(|n| *n != "summary.json")
        .cloned()
        .collect();
    std::fs::remove_file(part.join(&names[0])).unwrap();
    std::fs::remove_file(part.join(&names[3])).unwrap();
    let bytes = &want[&names[1]];
    std::fs::write(part.join(&names[1]), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(part.join(".spannorm-killed.tmp"), b"{").unwrap();
    let o = sweep(&spec, &part, &[]);
    assert!(o.stdout.is_empty(), "--quiet prints no table");
    assert_eq!(files(&part), want);

    // Nothing left to do: a re-run skips every config and changes no byte.
    sweep(&spec, &part, &[]);
    assert_eq!(files(&part), want);

    // A result from another engine revision is stale: recomputed, not reused.
    let stale = part.join(&names[2]);
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&stale).unwrap()).unwrap();
    doc["engine"] = (spannorm::simulate::ENGINE + 1).into();
    doc["results"][0]["boundaries"]["q"]["mean"][1] = 12345.0.into();
    std::fs::write(&stale, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    sweep(&spec, &part, &[]);
    assert_eq!(files(&part), want);
}

#[test]
fn sharded_and_merged_equals_unsharded() {
    let (dir, spec) = setup();
    let full = dir.path().join("full");
    sweep(&spec, &full, &[]);
    let mut shards = Vec::new();
    let mut count = 0;
    for i in 1..=4 {
        let out = dir.path().join(format!("shard{i}"));
        sweep(&spec, &out, &["--shard", &format!("{i}/4")]);
        count += files(&out).len() - 1;
        shards.push(out.to_str().unwrap().to_string());
    }
    assert_eq!(count, 6, "shards are disjoint and cover the sweep");
    let merged = dir.path().join("merged");
    let mut a = vec!["merge"];
    a.extend(shards.iter().map(String::as_str));
    a.extend_from_slice(&["--out", merged.to_str().unwrap(), "--quiet"]);
    let o = spannorm(&a);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(files(&merged), files(&full));

    // Merging again (or a shard twice) is idempotent.
    let o = spannorm(&a);
    assert!(o.status.success());
    assert_eq!(files(&merged), files(&full));

    // The same name with other bytes is a conflict: one line, exit 2, nothing written.
    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let (name, bytes) = files(&full)
        .into_iter()
        .find(|(n, _)| n != "summary.json")
        .unwrap();
    let text = String::from_utf8(bytes)
        .unwrap()
        .replacen("\"mean\": [", "\"mean\": [ ", 1);
    std::fs::write(bad.join(&name), text).unwrap();
    let out = dir.path().join("never");
    let o = spannorm(&[
        "merge",
        full.to_str().unwrap(),
        bad.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("conflicting") && err.contains(&name), "{err}");
    assert!(!out.exists());
}

/// Bad input: one line on stderr naming `needle`, exit code 2, no output directory.
fn rejects(spec: &str, extra: &[&str], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.json");
    std::fs::write(&path, spec).unwrap();
    let out = dir.path().join("out");
    let mut a = vec![
        "sweep",
        "--config",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    let o = spannorm(&a);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{spec} {extra:?}: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{spec}: not one line: {err}"
    );
    assert!(
        err.contains(needle),
        "{spec} {extra:?}: '{needle}' not in: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!out.exists(), "{spec} {extra:?}: output written");
}

#[test]
fn bad_sweeps_get_one_line_and_exit_code_2() {
    rejects(
        r#"{"placement": "pre", "depth": []}"#,
        &[],
        "depth: empty list",
    );
    rejects(
        r#"{"placement": "pre", "depht": [2, 3]}"#,
        &[],
        "depht: unknown field",
    );
    rejects(r#"{"placement": "pre", "depth": [2, "x"]}"#, &[], "depth");
    rejects(r#"{"placement": "pre", "depth": [2, 0]}"#, &[], "depth");
    rejects(r#"{"placement": ["pre", "sandwiches"]}"#, &[], "placement");
    rejects(
        r#"{"placement": "pre", "width": 16, "heads": [2, 3]}"#,
        &[],
        "heads",
    );
    rejects(r#"{"placement": "pre""#, &[], "sweep.json");
    rejects(r#"[]"#, &[], "empty array");
    rejects(SWEEP, &["--shard", "3/2"], "shard");
    rejects(SWEEP, &["--shard", "0/0"], "shard");
    rejects(SWEEP, &["--shard", "0/4"], "numbered from 1");
    rejects(SWEEP, &["--shard", "two/4"], "shard");
    rejects(SWEEP, &["--threads", "0"], "threads");
    // 8192^5 = 2^65 combinations: counted without overflow and refused.
    let many = (1..=8192)
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let huge = format!(
        r#"{{"placement": "pre", "depth": [{many}], "width": [{many}], "tokens": [{many}], "seeds": [{many}], "rho0": [{}]}}"#,
        (1..=8192)
            .map(|v| format!("0.{v}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    rejects(&huge, &[], "combinations");
    rejects(r#"{"placement": "pre", "seeds": 100000000}"#, &[], "seeds");
    let o = spannorm(&["sweep", "--config", "/nonexistent/sweep.json", "--out", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/sweep.json"));
}

#[test]
fn summary_fits_growth_exponents() {
    let (dir, spec) = setup();
    let out = dir.path().join("out");
    let o = sweep(&spec, &out, &[]);
    assert!(o.stdout.is_empty());
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["rows"].as_array().unwrap().len(), 6);
    let fits = s["fits"].as_array().unwrap();
    assert_eq!(fits.len(), 3, "one group per placement, two depths each");
    for f in fits {
        assert_eq!(f["depths"], serde_json::json!([2, 4]));
        // post closes each block with a norm: q_L = 1 at every depth, exponent 0.
        if f["placement"] == "post" {
            let b = f["q_L"]["simulation"]["exponent"].as_f64().unwrap();
            assert!(b.abs() < 1e-6, "{b}");
        }
    }
    let o = spannorm(&[
        "sweep",
        "--config",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("growth exponents") && table.contains("span"),
        "{table}"
    );
}

#[test]
fn merge_refuses_a_theory_prediction_under_a_result_name() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let cfg = spannorm::config::RawConfig {
        placement: Some("pre".parse().unwrap()),
        depth: Some(2),
        width: Some(16),
        tokens: Some(4),
        heads: Some(2),
        seeds: Some(2),
        init: Some("zero-query".parse().unwrap()),
        ..Default::default()
    }
    .resolve()
    .unwrap()
    .remove(0);
    let th = spannorm::theory::predict(&cfg).unwrap();
    let name = spannorm::store::file_name(&cfg);
    std::fs::write(src.join(&name), spannorm::report::to_json(&[th]).unwrap()).unwrap();
    let out = dir.path().join("out");
    let o = spannorm(&[
        "merge",
        src.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("theory prediction"), "{err}");
    assert!(!out.join(&name).exists());
}

#[test]
fn results_read_twice_count_once() {
    let (dir, spec) = setup();
    let full = dir.path().join("full");
    sweep(&spec, &full, &[]);
    let once = spannorm::store::load(std::slice::from_ref(&full)).unwrap();
    let twice = spannorm::store::load(&[full.clone(), full.clone()]).unwrap();
    assert_eq!(once.len(), 6);
    assert_eq!(twice, once);
}
