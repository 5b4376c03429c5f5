//! `spannorm plot`: every figure and every kind of x axis renders from results on disk, as
//! PNG, SVG and PDF; plots that do not fit their data exit 2.

use std::path::Path;
use std::process::{Command, Output};

fn spannorm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spannorm"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Pixel size of a PNG from its IHDR chunk, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// Checks an image's format: PNG of `size`, SVG with its text as glyph outlines (so no
/// viewer needs the font), or a PDF.
fn check_image(path: &Path, size: (u32, u32)) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() > 5_000,
        "{}: {} bytes",
        path.display(),
        bytes.len()
    );
    match path.extension().unwrap().to_str().unwrap() {
        "png" => assert_eq!(png_size(&bytes), size, "{}", path.display()),
        "svg" => {
            let svg = String::from_utf8(bytes).unwrap();
            assert!(svg.trim_start().starts_with("<svg"), "not an SVG root");
            assert!(svg.contains(&format!(r#"width="{}""#, size.0)));
            assert!(svg.contains(&format!(r#"height="{}""#, size.1)));
            assert!(svg.trim_end().ends_with("</svg>"));
            assert!(!svg.contains("<text"), "text is not converted to outlines");
            assert!(
                svg.matches("<path").count() > 200,
                "glyphs and curves are paths"
            );
        }
        "pdf" => {
            assert!(bytes.starts_with(b"%PDF-"), "PDF header");
            assert!(
                String::from_utf8_lossy(&bytes[bytes.len() - 32..]).contains("%%EOF"),
                "PDF trailer"
            );
        }
        e => panic!("unexpected extension {e}"),
    }
}

/// Runs a sweep file's text into a results directory under `dir`.
fn sweep(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let spec = dir.join(format!("{name}.json"));
    std::fs::write(&spec, text).unwrap();
    let results = dir.join(name);
    let o = spannorm(&[
        "sweep",
        "--config",
        spec.to_str().unwrap(),
        "--out",
        results.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    results
}

#[test]
fn every_figure_renders_as_png_svg_and_pdf() {
    let dir = tempfile::tempdir().unwrap();
    // Placements of every figure, two depths, two scales, two widths: each figure has data.
    let results = sweep(
        dir.path(),
        "results",
        r#"[{"placement": ["pre", "post", "span", "span-outer"], "depth": [2, 4],
             "width": 16, "tokens": 6, "heads": 2, "seeds": 2, "init": "zero-query"},
            {"placement": ["span", "post"], "scale": ["const:0.1", "const:1"], "depth": [2, 4],
             "width": [8, 16], "tokens": 6, "heads": 2, "seeds": 2, "init": "zero-query"}]"#,
    );
    let spec = dir.path().join("results.json");
    for n in 1..=8 {
        for ext in ["png", "svg", "pdf"] {
            let out = dir.path().join(format!("fig{n}.{ext}"));
            let o = spannorm(&[
                "plot",
                results.to_str().unwrap(),
                "--figure",
                &n.to_string(),
                "--out",
                out.to_str().unwrap(),
            ]);
            assert!(
                o.status.success(),
                "figure {n}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            // Figure 6 has a heatmap per placement and width here: two rows of panels.
            let size = if n == 6 { (1500, 1120) } else { (1500, 760) };
            check_image(&out, size);
        }
    }
    // A result file (not a directory) plots too, and --spec keeps the figure's own results.
    let one = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap() != "summary.json")
        .unwrap();
    let out = dir.path().join("one.png");
    let o = spannorm(&[
        "plot",
        one.to_str().unwrap(),
        "--figure",
        "2",
        "--spec",
        spec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_image(&out, (1500, 760));
}

#[test]
fn the_grammar_renders_every_x_kind() {
    let dir = tempfile::tempdir().unwrap();
    let base = serde_json::json!({"placement": ["pre", "span"], "depth": 3, "width": 8,
        "tokens": 4, "heads": 2, "seeds": 2, "init": "zero-query"});
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base.clone();
        b[k] = v;
        b.to_string()
    };
    // Each x kind over a sweep that varies that field only.
    let kinds: [(&str, String); 8] = [
        ("layer", base.to_string()),
        ("depth", with("depth", serde_json::json!([2, 4, 8]))),
        ("width", with("width", serde_json::json!([8, 16]))),
        ("tokens", with("tokens", serde_json::json!([4, 8]))),
        ("heads", with("heads", serde_json::json!([1, 2]))),
        (
            "scale",
            with(
                "scale",
                serde_json::json!(["none", "sqrt-depth", "const:0.5"]),
            ),
        ),
        ("rho0", with("rho0", serde_json::json!([0, 0.5]))),
        ("sigma-w", with("sigma-w", serde_json::json!([0.5, 1]))),
    ];
    for (x, text) in &kinds {
        let x = *x;
        let results = sweep(dir.path(), x, text);
        let (y, at): (&str, &[&str]) = if x == "layer" {
            ("q,log10_grad,1-adj_cos", &[])
        } else {
            ("q,log10_grad_ratio", &["--at", "final"])
        };
        for ext in ["png", "svg"] {
            let out = dir.path().join(format!("{x}.{ext}"));
            let mut args = vec![
                "plot",
                results.to_str().unwrap(),
                "--y",
                y,
                "--x",
                x,
                "--theory",
                "--out",
                out.to_str().unwrap(),
            ];
            args.extend_from_slice(at);
            let o = spannorm(&args);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "--x {x}: {err}");
            check_image(&out, (1500, 760));
        }
    }
    // Colour, facets, filters, a title, fits, a reference slope, log axes, another layer.
    let depth = dir.path().join("depth");
    let out = dir.path().join("custom.pdf");
    let o = spannorm(&[
        "plot",
        depth.to_str().unwrap(),
        "--y",
        "q",
        "--x",
        "depth",
        "--at",
        "layer:2",
        "--color",
        "placement",
        "--facet",
        "placement",
        "--where",
        "placement=pre,span",
        "--fit",
        "--reference-slope",
        "-0.5",
        "--log-x",
        "--log-y",
        "--title",
        "q_{2} against depth",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_image(&out, (1500, 760));
    // README's question: does span-outer stay bounded with --scale depth? Final q against
    // depth, one colour per scale, with theory and fitted slopes.
    let mut g = base.clone();
    g["placement"] = serde_json::json!(["span-outer", "pre"]);
    g["scale"] = serde_json::json!(["depth", "sqrt-depth"]);
    g["depth"] = serde_json::json!([2, 4, 8]);
    let mine = sweep(dir.path(), "mine", &g.to_string());
    let out = dir.path().join("q-vs-depth.pdf");
    let o = spannorm(&[
        "plot",
        mine.to_str().unwrap(),
        "--y",
        "q",
        "--x",
        "depth",
        "--at",
        "final",
        "--color",
        "scale",
        "--where",
        "placement=span-outer",
        "--theory",
        "--fit",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_image(&out, (1500, 760));
    // A heatmap: scale rows against depth columns, with theory's contour.
    let mut g = base.clone();
    g["placement"] = "post".into();
    g["scale"] = serde_json::json!(["const:0.1", "const:1"]);
    g["depth"] = serde_json::json!([2, 4]);
    let grid = sweep(dir.path(), "grid", &g.to_string());
    let out = dir.path().join("heat.png");
    let o = spannorm(&[
        "plot",
        grid.to_str().unwrap(),
        "--y",
        "log10_grad_ratio",
        "--x",
        "depth",
        "--rows",
        "scale",
        "--bounded",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_image(&out, (1500, 760));
}

#[test]
fn curves_that_coincide_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // post and b2t end every block with a norm: q is 1 at every boundary for both.
    let results = sweep(
        dir.path(),
        "r",
        r#"{"placement": ["post", "b2t", "pre"], "depth": 4, "width": 16, "tokens": 4,
            "heads": 2, "seeds": 2}"#,
    );
    let out = dir.path().join("q.png");
    let o = spannorm(&[
        "plot",
        results.to_str().unwrap(),
        "--y",
        "q",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("post, b2t coincide"), "{err}");
    assert!(!err.contains("pre,"), "pre does not coincide: {err}");
}

#[test]
fn plots_that_do_not_fit_the_data_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let results = sweep(
        dir.path(),
        "r",
        r#"{"placement": ["pre", "span"], "depth": 3, "width": 8, "tokens": 4, "heads": 2,
            "seeds": 2}"#,
    );
    let r = results.to_str().unwrap();
    let png = dir.path().join("f.png");
    let p = png.to_str().unwrap();
    // One depth: a curve against depth would be one point.
    rejects(
        &["plot", r, "--y", "q", "--x", "depth", "--out", p],
        "nothing to plot: each curve has one point along depth",
        &png,
    );
    rejects(
        &[
            "plot",
            r,
            "--y",
            "q",
            "--where",
            "placement=lns",
            "--out",
            p,
        ],
        "nothing to plot: no results with placement=lns",
        &png,
    );
    rejects(
        &["plot", r, "--y", "log10_grad_ratio", "--out", p],
        "one value per run",
        &png,
    );
    rejects(
        &["plot", r, "--y", "qq", "--out", p],
        "unknown quantity",
        &png,
    );
    rejects(&["plot", r, "--out", p], "--figure N", &png);
    rejects(
        &["plot", r, "--y", "q", "--x", "scale", "--log-x", "--out", p],
        "log axis needs numbers",
        &png,
    );
    rejects(
        &[
            "plot",
            r,
            "--y",
            "q",
            "--log-y",
            "--y-scale",
            "linear",
            "--out",
            p,
        ],
        "disagree",
        &png,
    );
}

fn rejects(args: &[&str], needle: &str, out: &Path) {
    let o = spannorm(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(needle), "{args:?}: '{needle}' not in {err}");
    assert!(!out.exists());
}

#[test]
fn bad_plot_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let png = dir.path().join("f.png");
    let p = png.to_str().unwrap();
    rejects(&["plot", d, "--figure", "12", "--out", p], "figure", &png);
    // Figures 10 and 11 read one training document, not a results directory.
    rejects(
        &["plot", d, "--figure", "10", "--out", p],
        "directory",
        &png,
    );
    let jpg = dir.path().join("f.jpg");
    rejects(
        &["plot", d, "--figure", "1", "--out", jpg.to_str().unwrap()],
        ".png, .svg or .pdf",
        &jpg,
    );
    rejects(
        &["plot", "/nonexistent.json", "--figure", "1", "--out", p],
        "/nonexistent.json",
        &png,
    );
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{}").unwrap();
    rejects(
        &["plot", junk.to_str().unwrap(), "--figure", "1", "--out", p],
        "junk.json",
        &png,
    );
}

/// SplitMix64, for the generated invocations below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[(self.next() % v.len() as u64) as usize]
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

#[test]
fn generated_plot_invocations_keep_the_contract() {
    // 300 random combinations of the grammar's flags (valid and not) over one small sweep:
    // each exits 0 with a complete image, or 2 with one line and no image; never a panic.
    let dir = tempfile::tempdir().unwrap();
    let results = sweep(
        dir.path(),
        "r",
        r#"{"placement": ["pre", "post", "span-outer"], "depth": [2, 4], "width": 8,
            "tokens": 4, "heads": 2, "seeds": 2, "scale": ["none", "const:0.5"]}"#,
    );
    let r = results.to_str().unwrap();
    let mut rng = Rng(0x5eed_9107);
    let ys = [
        "q",
        "log10_grad",
        "1-adj_cos",
        "token_cos",
        "eff_rank",
        "q_pre_norm",
        "branch_q.ffn",
        "log10_param_grad.ffn.w_2",
        "param_grad.attn.w_q",
        "loss",
        "log10_grad_ratio",
        "theory_error.q",
        "q,log10_grad",
        "nope",
        "",
        "1-",
    ];
    let xs = ["layer", "depth", "scale", "placement", "width", "seed", "x"];
    let fields = ["placement", "depth", "scale", "width", "norm", "bogus"];
    let ats = [
        "final", "max", "min", "layer:0", "layer:3", "layer:99", "layer:-1",
    ];
    let wheres = [
        "placement=pre",
        "placement=lns",
        "depth=4",
        "depth=4.0",
        "scale=const:0.5",
        "depth",
        "=",
        "width=abc",
    ];
    let mut ok = 0;
    for k in 0..300 {
        let out = dir
            .path()
            .join(format!("p{k}.{}", rng.pick(&["png", "svg", "pdf"])));
        let mut args: Vec<String> = vec!["plot".into(), r.into()];
        let mut flag = |a: &str, v: &str| {
            args.push(a.into());
            args.push(v.into());
        };
        if rng.chance(0.1) {
            flag("--figure", rng.pick(&["1", "5", "6", "8", "0"]));
        } else {
            flag("--y", rng.pick(&ys));
        }
        if rng.chance(0.6) {
            flag("--x", rng.pick(&xs));
        }
        if rng.chance(0.3) {
            flag("--at", rng.pick(&ats));
        }
        for f in ["--color", "--facet", "--rows"] {
            if rng.chance(0.2) {
                flag(f, rng.pick(&fields));
            }
        }
        if rng.chance(0.3) {
            flag("--where", rng.pick(&wheres));
        }
        if rng.chance(0.1) {
            flag("--bounded", rng.pick(&["1", "-1", "nan"]));
        }
        if rng.chance(0.1) {
            flag("--reference-slope", rng.pick(&["-0.5", "inf"]));
        }
        for f in ["--theory", "--fit", "--log-x", "--log-y"] {
            if rng.chance(0.25) {
                args.push(f.into());
            }
        }
        args.push("--out".into());
        args.push(out.to_str().unwrap().into());
        let o = Command::new(env!("CARGO_BIN_EXE_spannorm"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        match o.status.code() {
            Some(0) => {
                ok += 1;
                assert!(out.exists(), "{args:?}: exit 0 without an image");
            }
            Some(2) => {
                assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
                assert!(!out.exists(), "{args:?}: an image despite exit 2");
            }
            c => panic!("{args:?}: exit {c:?}: {err}"),
        }
    }
    // The generator is not all refusals.
    assert!(ok >= 30, "only {ok} of 300 plots drawn");
}
