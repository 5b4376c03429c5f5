//! A fuzzer of the command line: 3000 generated invocations of `simulate`, `theory` and
//! `sweep` (flags, config files, sweep files; valid, edge and absurd values), each held to the
//! contract: exit code 0, 1 or 2 (never a panic or a signal), bad input one line on stderr,
//! no message over 4 KiB, no temporary file left, and every result written complete: no
//! NaN or infinity, no entry absent without a stated reason ([`RunResult::holes`]).
//!
//! Cases come from a fixed generator (SplitMix64, seed below), so a failure names a case
//! that reproduces. Sizes are kept small so the whole set runs in about a minute on two
//! cores; the absurd ones must be refused before any work.

use spannorm::result::{Document, RunResult};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Cases per run.
const CASES: usize = 3000;
/// The generator's seed.
const SEED: u64 = 0x5eed_f022;
/// The longest a case may take (the largest valid case is well under a second).
const LIMIT: Duration = Duration::from_secs(60);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len())]
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// A value for `field`: mostly valid and small, sometimes (when `hostile`) an edge or an
/// absurd one.
fn value(r: &mut Rng, field: &str, hostile: bool) -> String {
    let absurd = [
        "0",
        "-1",
        "-0",
        "-0.0",
        "1e308",
        "NaN",
        "inf",
        "-inf",
        "18446744073709551615",
        "9223372036854775808",
        "18446744073709551616",
        "1.5",
        "",
        " ",
        "x",
        "all",
        "const:",
        "const:-0.0",
        "const:1e400",
    ];
    if hostile && r.chance(0.15) {
        return r.pick(&absurd).to_string();
    }
    let s = match field {
        "placement" if !hostile => r.pick(&[
            "pre",
            "post",
            "span",
            "span-outer",
            "deepnorm",
            "b2t",
            "peri",
            "mix",
            "lns",
            "attn-only",
            "attn-skip",
            "all",
        ]),
        "placement" => r.pick(&[
            "pre",
            "post",
            "span",
            "span-outer",
            "deepnorm",
            "b2t",
            "peri",
            "mix",
            "lns",
            "attn-only",
            "attn-skip",
            "all",
            "sandwich",
            "PRE",
        ]),
        "depth" => r.pick(&["1", "2", "3", "4", "6", "17", "40", "256"]),
        "width" => r.pick(&["1", "2", "4", "8", "12", "16", "32", "64"]),
        "tokens" => r.pick(&["1", "2", "3", "4", "8", "16"]),
        "heads" => r.pick(&["1", "2", "3", "4", "8"]),
        "d-ff" => r.pick(&["1", "3", "8", "16", "32"]),
        "seeds" => r.pick(&["1", "2", "3", "4"]),
        "seed" => r.pick(&["0", "1", "7", "18446744073709551615"]),
        "scale" => r.pick(&[
            "none",
            "sqrt-depth",
            "depth",
            "quarter-depth",
            "sqrt-layer",
            "const:0",
            "const:0.3",
            "const:1",
            "const:30",
            "const:1e200",
        ]),
        "norm" => r.pick(&["layernorm", "rmsnorm", "batchnorm"]),
        "act" => r.pick(&["relu", "gelu", "swiglu", "tanh"]),
        "mask" => r.pick(&["bidirectional", "causal"]),
        "init" => r.pick(&["fan-in", "xavier", "zero-query"]),
        "sigma-w" => r.pick(&["1", "0.5", "2", "10", "1e-6", "1e-160", "1e150"]),
        "rho0" => r.pick(&["0", "0.2", "0.5", "0.9", "0.999999"]),
        "moe-experts" => r.pick(&["1", "2", "3", "4", "100000"]),
        "moe-top-k" => r.pick(&["1", "2", "3"]),
        "inner-norm" => r.pick(&["true", "false"]),
        "precision" => r.pick(&["f32", "f64", "f16"]),
        _ => "1",
    };
    s.to_string()
}

const FIELDS: [&str; 19] = [
    "placement",
    "depth",
    "width",
    "tokens",
    "heads",
    "d-ff",
    "seeds",
    "seed",
    "scale",
    "norm",
    "act",
    "mask",
    "init",
    "sigma-w",
    "rho0",
    "moe-experts",
    "moe-top-k",
    "inner-norm",
    "precision",
];

/// A JSON value for a config file: the flag's text as a number, bool or string, or (when
/// `hostile`) a wrong type.
fn json_value(r: &mut Rng, field: &str, hostile: bool) -> String {
    let v = value(r, field, hostile);
    if hostile && r.chance(0.08) {
        return r
            .pick(&["null", "[]", "{}", "[1, 2]", "true", "\"\"", "-3"])
            .to_string();
    }
    let numeric = v.parse::<f64>().is_ok() && !v.trim().is_empty();
    if (numeric || v == "true" || v == "false") && !(hostile && r.chance(0.1)) {
        v
    } else {
        serde_json::to_string(&v).unwrap()
    }
}

/// A field's value as JSON: numbers and booleans bare, names as strings (or, when
/// `hostile`, now and then as the wrong type).
fn as_json(r: &mut Rng, field: &str, v: String, hostile: bool) -> String {
    if hostile && r.chance(0.08) {
        return json_value(r, field, true);
    }
    let numeric = v.parse::<f64>().is_ok() && !v.trim().is_empty();
    if numeric || v == "true" || v == "false" {
        v
    } else {
        serde_json::to_string(&v).unwrap()
    }
}

/// One generated invocation: arguments, and files to write first (name, contents).
struct Case {
    args: Vec<String>,
    files: Vec<(String, String)>,
}

/// The fields of a case and their values. A hostile case draws any fields with edge and
/// absurd values; a friendly one a consistent configuration (heads dividing the width, at
/// least two tokens, mixture settings only where there is a feed-forward network, ...), so
/// that about half the cases run and write results.
fn fields(r: &mut Rng, hostile: bool) -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = Vec::new();
    for f in ["placement", "depth", "width", "tokens", "seeds"] {
        v.push((f, value(r, f, hostile)));
    }
    if hostile {
        for _ in 0..r.below(6) {
            let f = FIELDS[r.below(FIELDS.len())];
            if !v.iter().any(|(x, _)| *x == f) {
                v.push((f, value(r, f, true)));
            }
        }
        if r.chance(0.05) {
            v.remove(0);
        }
        return v;
    }
    // Friendly stacks stay small: the cost of a case is depth · width² · tokens · seeds.
    v[1].1 = r.pick(&["1", "2", "3", "4", "6", "17"]).into();
    v[2].1 = r.pick(&["2", "4", "8", "16", "32"]).into();
    let width: usize = v[2].1.parse().unwrap_or(8);
    let heads = [1, 2, 4, 8]
        .into_iter()
        .filter(|h| width.is_multiple_of(*h))
        .collect::<Vec<_>>();
    v.push(("heads", heads[r.below(heads.len())].to_string()));
    if v[3].1 == "1" {
        v[3].1 = "2".into();
    }
    let placement = v[0].1.clone();
    let attention_only = placement == "attn-only" || placement == "attn-skip" || placement == "all";
    for _ in 0..r.below(5) {
        let f = r.pick(&[
            "norm",
            "act",
            "mask",
            "init",
            "sigma-w",
            "rho0",
            "seed",
            "precision",
            "scale",
            "moe-experts",
            "d-ff",
        ]);
        if v.iter().any(|(x, _)| *x == f) {
            continue;
        }
        let val = match f {
            "norm" => r.pick(&["layernorm", "rmsnorm"]).to_string(),
            "act" => r.pick(&["relu", "gelu", "swiglu"]).to_string(),
            "precision" => r.pick(&["f32", "f64"]).to_string(),
            "scale" if placement == "attn-only" || placement == "all" => continue,
            "scale" => r
                .pick(&[
                    "none",
                    "sqrt-depth",
                    "depth",
                    "quarter-depth",
                    "sqrt-layer",
                    "const:0",
                    "const:0.5",
                    "const:3",
                ])
                .to_string(),
            "moe-experts" if attention_only => continue,
            "moe-experts" => {
                v.push(("moe-top-k", "1".into()));
                r.pick(&["1", "2", "3"]).to_string()
            }
            "d-ff" => r.pick(&["4", "8", "16"]).to_string(),
            other => value(r, other, false),
        };
        v.push((f, val));
    }
    if placement == "span" && r.chance(0.2) {
        v.push(("inner-norm", "true".into()));
    }
    v
}

fn generate(r: &mut Rng, k: usize) -> Case {
    let command = r.pick(&["simulate", "simulate", "theory", "sweep"]);
    let mut args = vec![command.to_string()];
    let mut files = Vec::new();
    let hostile = r.chance(0.5);
    let fs = fields(r, hostile);
    let small = |f: &str, v: String| -> String {
        // Keep valid dimensions small: the cost of a case is depth · width² · tokens.
        match f {
            "depth" if v.parse::<u64>().is_ok_and(|x| x > 40) && !k.is_multiple_of(7) => "4".into(),
            _ => v,
        }
    };
    match command {
        "sweep" => {
            let mut obj = Vec::new();
            for (f, v) in fs {
                let mut v = as_json(r, f, v, hostile);
                if r.chance(0.3) {
                    let w = json_value(r, f, hostile);
                    v = format!("[{v}, {w}]");
                }
                obj.push(format!("\"{f}\": {}", small(f, v)));
            }
            let mut text = format!("{{{}}}", obj.join(", "));
            if r.chance(0.05) {
                text = format!("[{text}, {{\"placement\": \"pre\", \"depth\": 2, \"width\": 8, \"tokens\": 2, \"heads\": 2, \"seeds\": 1}}]");
            }
            if r.chance(0.03) {
                text += " trailing";
            }
            files.push(("sweep.json".into(), text));
            args.extend([
                "--config".into(),
                "sweep.json".into(),
                "--out".into(),
                "out".into(),
                "--quiet".into(),
            ]);
            if r.chance(0.2) {
                let shard = if hostile {
                    r.pick(&["1/2", "0/2", "3/2", "x"])
                } else {
                    r.pick(&["1/2", "2/2"])
                };
                args.extend(["--shard".into(), shard.into()]);
            }
        }
        _ => {
            let by_file = r.chance(0.3);
            if by_file {
                let obj: Vec<String> = fs
                    .into_iter()
                    .map(|(f, v)| format!("\"{f}\": {}", small(f, as_json(r, f, v, hostile))))
                    .collect();
                let mut text = format!("{{{}}}", obj.join(", "));
                if hostile && r.chance(0.1) {
                    text += r.pick(&[" x", " {\"depth\": \"garbage\"}", "]", ""]);
                }
                if hostile && r.chance(0.05) {
                    text = r
                        .pick(&["", "[]", "null", "{", "{\"depht\": 3}"])
                        .to_string();
                }
                files.push(("run.json".into(), text));
                args.extend(["--config".into(), "run.json".into()]);
            } else {
                for (f, v) in fs {
                    let v = small(f, v);
                    if f == "inner-norm" && v == "true" {
                        args.push("--inner-norm".into());
                    } else {
                        args.push(format!("--{f}"));
                        args.push(v);
                    }
                }
            }
            let out = if hostile {
                r.pick(&["r.json", "r.csv", "none", "missing/dir/r.json", "."])
            } else {
                r.pick(&["r.json", "r.json", "r.csv", "none"])
            };
            if out != "none" {
                args.extend(["--out".into(), out.into()]);
            }
            if command == "simulate" {
                args.push("--quiet".into());
                if r.chance(0.2) {
                    args.push("--per-seed".into());
                }
                if r.chance(0.1) {
                    let t = if hostile {
                        r.pick(&["0", "1", "2", "x"])
                    } else {
                        r.pick(&["1", "2"])
                    };
                    args.extend(["--threads".into(), t.into()]);
                }
            }
        }
    }
    if hostile && r.chance(0.02) {
        args.push(
            r.pick(&["--frobnicate", "--depth", "--placement=", "-x"])
                .into(),
        );
    }
    Case { args, files }
}

/// Runs `case` in a fresh directory and returns its exit code and what violates the
/// contract.
fn check(case: &Case) -> (Option<i32>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &case.files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spannorm"))
        .args(&case.args)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        if start.elapsed() > LIMIT {
            let _ = child.kill();
            return (None, vec![format!("took more than {LIMIT:?}")]);
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let mut bad = Vec::new();
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0..=2) => {}
        other => bad.push(format!("exit status {other:?}")),
    }
    if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
        bad.push("a panic".into());
    }
    if err.lines().any(|l| l.len() > 4096) {
        bad.push("a message line over 4 KiB".into());
    }
    if out.status.code() == Some(2) && err.trim_end().lines().count() != 1 {
        bad.push(format!(
            "bad input but {} lines on stderr",
            err.trim_end().lines().count()
        ));
    }
    bad.extend(outputs(dir.path(), out.status.code() == Some(0)));
    (out.status.code(), bad)
}

/// Checks every file left in `dir` (and `dir/out` of a sweep).
fn outputs(dir: &Path, ok: bool) -> Vec<String> {
    let mut bad = Vec::new();
    let mut files = Vec::new();
    for d in [dir.to_path_buf(), dir.join("out")] {
        if let Ok(rd) = std::fs::read_dir(&d) {
            files.extend(rd.flatten().map(|e| e.path()));
        }
    }
    for p in files {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.contains(".spannorm") {
            bad.push(format!("left {name}"));
            continue;
        }
        if name.ends_with(".csv") {
            let text = std::fs::read_to_string(&p).unwrap();
            if !ok {
                bad.push(format!("{name} written by a failed run"));
            }
            for cell in text.split([',', '\n']) {
                if cell.contains("inf") || cell.contains("NaN") {
                    bad.push(format!("{name}: cell {cell}"));
                    break;
                }
            }
        }
        let result = name == "r.json" || (name.ends_with(".json") && name.len() == 21);
        if result && p.is_file() {
            if !ok && name == "r.json" {
                bad.push(format!("{name} written by a failed run"));
            }
            let text = std::fs::read_to_string(&p).unwrap();
            match Document::from_json(&text) {
                Ok(doc) => bad.extend(doc.results.iter().flat_map(holes)),
                Err(e) => bad.push(format!("{name} does not read back: {e}")),
            }
        }
    }
    bad
}

fn holes(r: &RunResult) -> Vec<String> {
    r.holes()
        .into_iter()
        .take(3)
        .map(|h| format!("hole in {} at {}: {}", h.series, h.index, h.what))
        .collect()
}

#[test]
fn three_thousand_invocations_keep_the_contract() {
    let mut r = Rng(SEED);
    let cases: Vec<Case> = (0..CASES).map(|k| generate(&mut r, k)).collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let codes = Mutex::new([0usize; 3]);
    std::thread::scope(|s| {
        for _ in 0..std::thread::available_parallelism().map_or(2, |n| n.get()) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(k) else { break };
                let (code, bad) = check(case);
                if let Some(c @ 0..=2) = code {
                    codes.lock().unwrap()[c as usize] += 1;
                }
                if !bad.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "case {k}: spannorm {} {:?}: {}",
                        case.args.join(" "),
                        case.files,
                        bad.join("; ")
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let codes = codes.into_inner().unwrap();
    // Both sides of the contract are exercised: runs that write results, and refusals.
    assert!(
        codes[0] >= 600 && codes[2] >= 600,
        "exit codes 0, 1, 2: {codes:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {CASES} cases broke the contract (exit codes 0, 1, 2: {codes:?}):\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The generator covers what it should: every subcommand, valid runs that write results,
/// refusals, and config files.
#[test]
fn the_generator_covers_valid_and_invalid_input() {
    let mut r = Rng(SEED);
    let cases: Vec<Case> = (0..CASES).map(|k| generate(&mut r, k)).collect();
    for c in ["simulate", "theory", "sweep"] {
        assert!(cases.iter().filter(|k| k.args[0] == c).count() > 300, "{c}");
    }
    assert!(cases.iter().filter(|k| !k.files.is_empty()).count() > 1000);
    assert!(cases
        .iter()
        .any(|k| k.args.iter().any(|a| a == "9223372036854775808")));
}
