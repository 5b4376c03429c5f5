//! The documented examples are real: the claims in `analysis/claims.md` and
//! `examples/ci/claims.json` parse, the JSON Schema agrees with the parser, and the CI
//! examples run the claims file that exists.

use spannorm::check::{data, Group};
use spannorm::choice::Choice;
use std::path::Path;

fn root(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn documented_claims_parse() {
    let ex = data::from_file(&root("examples/ci/claims.json"), Group::User).unwrap();
    assert_eq!(ex.len(), 4);
    let md = std::fs::read_to_string(root("analysis/claims.md")).unwrap();
    let block = md
        .split("```json\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a JSON example");
    let doc = data::parse(block, "claims.md", Group::User).unwrap();
    assert_eq!(doc.len(), ex.len());
    for preset in ["ci", "full"] {
        let p = root(&format!("analysis/claims/{preset}.json"));
        assert!(
            data::from_file(&p, Group::User).unwrap().len() > 60,
            "{preset}"
        );
    }
    for ci in [
        "examples/ci/github-actions.yml",
        "examples/ci/gitlab-ci.yml",
    ] {
        let text = std::fs::read_to_string(root(ci)).unwrap();
        assert!(text.contains("--claims examples/ci/claims.json"), "{ci}");
        assert!(text.contains("--junit spannorm-junit.xml"), "{ci}");
    }
}

#[test]
fn the_schema_agrees_with_the_parser() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root("analysis/claims.schema.json")).unwrap(),
    )
    .unwrap();
    let claim = &schema["$defs"]["claim"]["properties"];
    let ops: Vec<&str> = claim["op"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(ops, ["<=", ">=", "within", "~theory"]);
    let groups: Vec<&str> = claim["group"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
    assert_eq!(groups, ours);
    // Every op and `at` the schema allows, the parser accepts (and the other way round for
    // a misspelling).
    let cfg = r#""config": {"placement": "post", "depth": 4, "width": 16, "tokens": 4, "heads": 2, "seeds": 2}"#;
    for at in ["final", "max", "min", "all", "layer:3"] {
        for (op, value) in [
            ("<=", ", \"value\": 1"),
            (">=", ", \"value\": 1"),
            ("within", ", \"value\": [0, 1]"),
            ("~theory", ""),
        ] {
            if op == "~theory" && (at == "max" || at == "min") {
                continue;
            }
            let text = format!(
                r#"[{{"name": "x", {cfg}, "metric": "q", "at": "{at}", "op": "{op}"{value}}}]"#
            );
            assert!(data::parse(&text, "t", Group::User).is_ok(), "{text}");
        }
    }
    let pattern = claim["at"]["pattern"].as_str().unwrap();
    for at in ["slope:depth", "slope:width", "slope:layer", "layer:12"] {
        let body = &pattern[2..pattern.len() - 2];
        assert!(
            body.split('|')
                .any(|alt| alt == at || (alt.starts_with("layer:") && at.starts_with("layer:"))),
            "{at}"
        );
    }
}

#[test]
fn the_container_recipe_fits_the_crate_and_the_cluster_example() {
    let docker = std::fs::read_to_string(root("examples/cluster/Dockerfile")).unwrap();
    let cargo = std::fs::read_to_string(root("Cargo.toml")).unwrap();
    let job = std::fs::read_to_string(root("examples/cluster/sweep-job.yaml")).unwrap();
    let from: Vec<&str> = docker
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "a build stage and a runtime stage: {from:?}");
    // The build image's Rust is at least the crate's rust-version.
    let version = |s: &str| -> (u32, u32) {
        let mut it = s.split('.').map(|x| x.parse::<u32>().unwrap());
        (it.next().unwrap(), it.next().unwrap())
    };
    let image = from[0]
        .strip_prefix("rust:")
        .and_then(|s| s.split('-').next())
        .expect("the build stage is an official rust image");
    let needed = cargo
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .map(|v| v.trim_end_matches('"'))
        .expect("rust-version");
    assert!(version(image) >= version(needed), "rust:{image} < {needed}");
    assert!(from[1].starts_with("debian:") && from[1].contains("slim"));
    assert!(docker.contains("cargo build --release --locked --bin spannorm"));
    assert!(docker.contains("COPY --from=build"));
    // Non-root, and the same user the Kubernetes example runs as.
    let user = docker
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let uid = user.split(':').next().unwrap();
    assert_ne!(uid, "0");
    assert!(job.contains(&format!("runAsUser: {uid}")), "{uid}");
    assert!(job.contains("image: spannorm:latest") && docker.contains("-t spannorm:latest"));
    assert!(docker.contains(r#"ENTRYPOINT ["spannorm"]"#));
}

/// README's block-language section: the formula error it shows is what the binary prints,
/// and the example placement file runs and is predicted.
#[test]
fn the_block_language_examples_run() {
    let bin = env!("CARGO_BIN_EXE_spannorm");
    let readme = std::fs::read_to_string(root("README.md")).unwrap();
    let shown = readme
        .lines()
        .find(|l| l.starts_with("error: block:1:16:"))
        .expect("the README shows a formula error");
    let o = std::process::Command::new(bin)
        .args([
            "simulate",
            "--block",
            "h = x + a*attn(nrom(x)); y = h + a*ffn(norm(h))",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim_end(), shown);
    let file = root("examples/placements/pre-qknorm.json");
    assert!(readme.contains("examples/placements/pre-qknorm.json"));
    for cmd in ["simulate", "theory"] {
        let o = std::process::Command::new(bin)
            .args([cmd, "--placement", file.to_str().unwrap()])
            .args([
                "--depth", "4", "--width", "32", "--tokens", "64", "--heads", "4",
            ])
            .args(if cmd == "simulate" {
                &["--seeds", "2"][..]
            } else {
                &[][..]
            })
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("pre-qknorm ("));
    }
}

/// A published check run (`check --publish`) is of the current engine revision and holds a
/// verdict for every claim of its preset's claims file: a stale file fails here.
#[test]
fn the_published_check_runs_are_current() {
    let mut found = 0;
    for preset in ["ci", "full"] {
        let path = root(&format!("analysis/check-{preset}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        found += 1;
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            doc["engine"].as_u64(),
            Some(u64::from(spannorm::result::ENGINE)),
            "{preset}: published under another engine revision; rerun `check --preset \
             {preset} --publish analysis/check-{preset}`"
        );
        let names: Vec<&str> = doc["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        let claims = data::from_file(
            &root(&format!("analysis/claims/{preset}.json")),
            Group::User,
        )
        .unwrap();
        for c in &claims {
            let name = c.name();
            assert!(
                names.iter().any(|n| n.starts_with(name)),
                "{preset}: no published verdict for {name}"
            );
        }
        let md = std::fs::read_to_string(root(&format!("analysis/check-{preset}.md"))).unwrap();
        assert!(md.contains(&format!("engine revision {}", spannorm::result::ENGINE)));
    }
    assert!(found >= 1, "no published check run in analysis/");
}
