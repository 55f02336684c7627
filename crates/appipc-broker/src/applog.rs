//! The logs of apps launched without stdio of their own (`appipc launch` without `--wait`,
//! app-service hosts, background activations): one file per package,
//! `$XDG_STATE_HOME/appipc/logs/<family name>.log` ([`Paths::app_log`](crate::Paths::app_log)),
//! which the app's stdout and stderr append to directly (the broker is not in the way, and a
//! broker that stops does not stop the app's output).
//!
//! Rotation: a log larger than [`MAX_BYTES`] becomes `<name>.log.1` (the older ones move up
//! to `.log.{KEPT}`, the oldest is deleted) when a process of the package starts, and every
//! [`SWEEP_EVERY`] for the processes still running: their file is copied to `.log.1` and
//! emptied in place (their descriptors append, so they go on writing at the new end; what is
//! written between the copy and the truncation is lost, as with logrotate's `copytruncate`).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A log is rotated past this size.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// Rotated files kept beside the current one (`.log.1` … `.log.3`).
pub const KEPT: usize = 3;

/// How often the broker looks for logs grown past [`MAX_BYTES`].
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Moves `.log.1` … to `.log.2` …, dropping the oldest.
fn shift(path: &Path) {
    let _ = std::fs::remove_file(rotated(path, KEPT));
    for n in (1..KEPT).rev() {
        let _ = std::fs::rename(rotated(path, n), rotated(path, n + 1));
    }
}

fn too_big(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() > MAX_BYTES)
}

/// Opens a package's log to append to, rotating it first when it is too big.
pub fn open(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if too_big(path) {
        shift(path);
        let _ = std::fs::rename(path, rotated(path, 1));
    }
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// Rotates every log in `dir` grown past [`MAX_BYTES`] by copy and truncation (its writers
/// keep their descriptors).
pub fn sweep(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "log") || !too_big(&path) {
            continue;
        }
        shift(&path);
        let copied = std::fs::copy(&path, rotated(&path, 1));
        let emptied = copied.and_then(|_| OpenOptions::new().write(true).open(&path)?.set_len(0));
        match emptied {
            Ok(()) => tracing::info!(log = %path.display(), "app log rotated"),
            Err(e) => tracing::warn!(log = %path.display(), error = %e, "cannot rotate app log"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_log_is_rotated_at_open_and_by_the_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("A_b.log");
        std::fs::write(&log, vec![b'x'; MAX_BYTES as usize + 1]).unwrap();
        let f = open(&log).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0, "a fresh file after rotation");
        assert_eq!(std::fs::metadata(rotated(&log, 1)).unwrap().len(), MAX_BYTES + 1);
        // A writer that keeps its fd goes on at the start of the emptied file.
        use std::io::Write;
        let mut w = &f;
        w.write_all(&vec![b'y'; MAX_BYTES as usize + 1]).unwrap();
        sweep(dir.path());
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
        assert_eq!(std::fs::read(rotated(&log, 1)).unwrap()[0], b'y');
        assert_eq!(std::fs::read(rotated(&log, 2)).unwrap()[0], b'x');
        w.write_all(b"more\n").unwrap();
        assert_eq!(std::fs::read(&log).unwrap(), b"more\n");
        // Only KEPT rotated files stay.
        for _ in 0..KEPT + 2 {
            std::fs::write(&log, vec![b'z'; MAX_BYTES as usize + 1]).unwrap();
            sweep(dir.path());
        }
        assert!(rotated(&log, KEPT).exists());
        assert!(!rotated(&log, KEPT + 1).exists());
    }
}
