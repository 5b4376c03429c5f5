//! `spannorm plot`: every figure renders from results on disk, as PNG and SVG.

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

#[test]
fn every_figure_renders_as_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("sweep.json");
    // Placements of every figure, two depths, two scales, two widths: each figure has data.
    std::fs::write(
        &spec,
        r#"[{"placement": ["pre", "post", "span", "span-outer"], "depth": [2, 4],
             "width": 16, "tokens": 6, "heads": 2, "seeds": 2, "init": "zero-query"},
            {"placement": ["span", "post"], "scale": ["const:0.1", "const:1"], "depth": [2, 4],
             "width": [8, 16], "tokens": 6, "heads": 2, "seeds": 2, "init": "zero-query"}]"#,
    )
    .unwrap();
    let results = dir.path().join("results");
    let o = spannorm(&[
        "sweep",
        "--config",
        spec.to_str().unwrap(),
        "--out",
        results.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for n in 1..=8 {
        for ext in ["png", "svg"] {
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
            let bytes = std::fs::read(&out).unwrap();
            assert!(
                bytes.len() > 10_000,
                "figure {n}.{ext}: only {} bytes",
                bytes.len()
            );
            if ext == "png" {
                assert_eq!(png_size(&bytes), (1500, 760), "figure {n}");
            } else {
                let svg = String::from_utf8(bytes).unwrap();
                assert!(
                    svg.trim_start().starts_with("<svg"),
                    "figure {n}: not an SVG root"
                );
                assert!(svg.contains(r#"width="1500""#) && svg.contains(r#"height="760""#));
                assert!(svg.trim_end().ends_with("</svg>"));
                assert!(
                    svg.contains("<text") && svg.contains("<polyline"),
                    "figure {n}"
                );
            }
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
    assert_eq!(png_size(&std::fs::read(&out).unwrap()), (1500, 760));
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
    rejects(&["plot", d, "--figure", "9", "--out", p], "figure", &png);
    let pdf = dir.path().join("f.pdf");
    rejects(
        &["plot", d, "--figure", "1", "--out", pdf.to_str().unwrap()],
        ".png or .svg",
        &pdf,
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
