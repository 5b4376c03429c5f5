//! Files written whole or not at all, and the temporary files a killed process leaves.
//!
//! An [`AtomicFile`] writes into a temporary file in the target's directory and renames it
//! over the target only on [`AtomicFile::commit`]. Temporary names are
//! `.spannorm~HOST~PID~RANDOM.tmp`, so the next process writing into that directory can tell
//! a leftover of a dead process on this host (removed) from one still being written by a
//! live process or another host sharing the directory (left alone unless a day old). Names
//! of the older form `.spannorm-RANDOM.tmp` carry no owner and are removed after an hour.

use crate::error::{io_reason, OutputError};
use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

/// A file written in full or not at all.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

/// This host's name as temporary file names carry it (letters, digits, `-` and `.`).
fn host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .unwrap_or_default();
        let h: String = raw
            .trim()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
            .collect();
        if h.is_empty() {
            "host".into()
        } else {
            h
        }
    })
}

/// The prefix of this process's temporary files.
fn prefix() -> String {
    format!(".spannorm~{}~{}~", host(), std::process::id())
}

/// Whether a temporary file named `name` (in a directory, last modified `age` ago) was left
/// by a process that can no longer finish it.
fn is_stale(name: &str, age: Duration) -> bool {
    if !name.ends_with(".tmp") {
        return false;
    }
    if let Some(rest) = name.strip_prefix(".spannorm~") {
        let mut parts = rest.splitn(3, '~');
        let (h, pid) = match (parts.next(), parts.next()) {
            (Some(h), Some(p)) => (h, p.parse::<u32>().ok()),
            _ => return false,
        };
        if h == host() {
            // Linux keeps /proc/PID for every live process; elsewhere, age decides.
            return match pid {
                Some(p) if Path::new("/proc/self").exists() => {
                    p != std::process::id() && !Path::new(&format!("/proc/{p}")).exists()
                }
                _ => age > Duration::from_secs(86_400),
            };
        }
        return age > Duration::from_secs(86_400);
    }
    name.starts_with(".spannorm-") && age > Duration::from_secs(3600)
}

/// Removes the temporary files in `dir` that dead processes left (once per directory per
/// process). Returns how many it removed.
pub fn clean_stale(dir: &Path) -> usize {
    static DONE: OnceLock<Mutex<HashSet<PathBuf>>> = OnceLock::new();
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let first = DONE
        .get_or_init(Default::default)
        .lock()
        .map(|mut d| d.insert(key))
        .unwrap_or(false);
    if !first {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .unwrap_or_default();
        if is_stale(name, age) && std::fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl AtomicFile {
    /// Checks now that `path` can be written (so a long run does not fail at the end), and
    /// cleans the stale temporary files of its directory.
    pub fn create(path: &Path) -> Result<Self, OutputError> {
        let fail = |reason: String| OutputError::Io {
            path: path.to_path_buf(),
            reason,
        };
        if path.is_dir() {
            return Err(fail("it is a directory".into()));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(fail(format!(
                "the directory {} does not exist",
                dir.display()
            )));
        }
        clean_stale(dir);
        let tmp = tempfile::Builder::new()
            .prefix(&prefix())
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|e| fail(io_reason(&e)))?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The file this will become.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` and renames the file into place.
    pub fn commit(mut self, bytes: &[u8]) -> Result<(), OutputError> {
        let path = self.path.clone();
        let io = |e: std::io::Error| OutputError::io(&path, &e);
        self.tmp.write_all(bytes).map_err(io)?;
        self.tmp.as_file().sync_all().map_err(io)?;
        // Temporary files are created private (0600); results are ordinary files.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let perms = std::fs::Permissions::from_mode(0o644);
            self.tmp.as_file().set_permissions(perms).map_err(io)?;
        }
        self.tmp.persist(&self.path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically, unless the file already has exactly these bytes
/// (so a complete read-only directory needs no write). Returns whether it wrote.
pub fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<bool, OutputError> {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(false);
    }
    AtomicFile::create(path)?.commit(bytes)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_files_of_dead_processes_are_removed_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // A dead process on this host (PID beyond any Linux pid_max), this process, another
        // host, an old-style name, and an unrelated file.
        let dead = format!(".spannorm~{}~4294967295~abc.tmp", host());
        let live = format!("{}xyz.tmp", prefix());
        let other = ".spannorm~elsewhere~12~q.tmp".to_string();
        for name in [&dead, &live, &other, &"notes.tmp".to_string()] {
            std::fs::write(d.join(name), b"{").unwrap();
        }
        assert_eq!(clean_stale(d), 1);
        assert!(!d.join(&dead).exists());
        assert!(d.join(&live).exists() && d.join(&other).exists());
        assert!(d.join("notes.tmp").exists());
        assert!(is_stale(".spannorm-old.tmp", Duration::from_secs(7200)));
        assert!(!is_stale(".spannorm-new.tmp", Duration::from_secs(60)));
        assert!(is_stale(&other, Duration::from_secs(100_000)));
    }

    #[test]
    fn a_missing_directory_is_named() {
        let e = AtomicFile::create(Path::new("/nonexistent/dir/x.json"))
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "cannot write /nonexistent/dir/x.json: the directory /nonexistent/dir does not exist"
        );
    }

    #[test]
    fn unchanged_bytes_are_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        assert!(write_if_changed(&p, b"a").unwrap());
        assert!(!write_if_changed(&p, b"a").unwrap());
        assert!(write_if_changed(&p, b"b").unwrap());
        assert_eq!(std::fs::read(&p).unwrap(), b"b");
    }
}
