//! The machine a result was produced on, for published runs and benchmarks: the processor's
//! model, its cores, the SIMD path the kernels take, and the time of day.
//!
//! Timings differ between machines (some have AVX-512, some only AVX2), so every published
//! time or rate carries this description.

use crate::simd::Isa;
use serde::Serialize;

/// A description of this machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Machine {
    /// The processor's model name (`/proc/cpuinfo`), or `unknown`.
    pub cpu: String,
    /// Logical cores available to this process.
    pub cores: usize,
    /// The SIMD path of the kernels ([`Isa::detected`]).
    pub simd: String,
    /// The processor's vector features among `avx2 fma avx512f avx512bw avx512dq avx512vl`.
    pub flags: Vec<String>,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Machine::from_cpuinfo(&info)
    }

    /// The description from the text of `/proc/cpuinfo` (the first processor's entry).
    pub fn from_cpuinfo(info: &str) -> Machine {
        let field = |name: &str| {
            info.lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let have: Vec<String> = field("flags")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let flags = ["avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
            .iter()
            .filter(|f| have.iter().any(|h| h == *f))
            .map(|f| f.to_string())
            .collect();
        Machine {
            cpu: field("model name").unwrap_or_else(|| "unknown".into()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            simd: match Isa::detected() {
                Isa::Portable => "portable",
                Isa::Avx2 => "avx2",
                Isa::Avx512 => "avx512",
            }
            .into(),
            flags,
        }
    }

    /// One line: `Intel Xeon …, 2 cores, SIMD avx512 (avx2 fma avx512f …)`.
    pub fn line(&self) -> String {
        format!(
            "{}, {} cores, SIMD {} ({})",
            self.cpu,
            self.cores,
            self.simd,
            if self.flags.is_empty() {
                "no AVX".to_string()
            } else {
                self.flags.join(" ")
            }
        )
    }
}

/// The current UTC date and time as `YYYY-MM-DD HH:MM UTC`.
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    utc(secs)
}

/// `secs` after the Unix epoch as `YYYY-MM-DD HH:MM UTC` (proleptic Gregorian calendar;
/// H. Hinnant's `civil_from_days`).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_cpuinfo() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_104_800 + 47 * 60), "2026-12-01 06:47 UTC");
        let m = Machine::from_cpuinfo(
            "processor\t: 0\nmodel name\t: Test CPU @ 2.0GHz\nflags\t\t: fpu sse2 avx2 fma avx512f\n",
        );
        assert_eq!(m.cpu, "Test CPU @ 2.0GHz");
        assert_eq!(m.flags, ["avx2", "fma", "avx512f"]);
        assert!(m.line().starts_with("Test CPU @ 2.0GHz, "));
        assert_eq!(Machine::from_cpuinfo("").cpu, "unknown");
    }
}
