//! A run is determined by its config and seed: the same bytes twice, and at 1 and 2 threads.

use spannorm::config::RawConfig;
use spannorm::report;
use spannorm::simulate::simulate;

fn run(threads: usize, precision: &str) -> String {
    let cfgs = RawConfig {
        placement: Some("all".into()),
        depth: Some(4),
        width: Some(16),
        tokens: Some(8),
        heads: Some(2),
        seeds: Some(3),
        precision: Some(precision.into()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    let results = pool.install(|| simulate(&cfgs, &|| {}));
    report::to_json(&results).unwrap()
}

#[test]
fn same_bytes_at_one_and_two_threads_and_twice() {
    for precision in ["f64", "f32"] {
        let a = run(1, precision);
        let b = run(2, precision);
        let c = run(2, precision);
        assert_eq!(a, b, "{precision}: 1 vs 2 threads");
        assert_eq!(b, c, "{precision}: run twice");
    }
}
