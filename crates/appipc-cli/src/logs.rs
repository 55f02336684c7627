//! `appipc logs PKG [--follow]`: what a package's processes launched without a terminal wrote
//! (`$XDG_STATE_HOME/appipc/logs/<family name>.log`, rotated by the broker: `appipc_broker::
//! applog`).

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use appipc::{PackageManager, Session};

use crate::exit::{Class, fail};
use crate::target;

/// How often `--follow` looks for more.
const POLL: Duration = Duration::from_millis(200);

/// The log of the package `text` names: the one the broker reports for an installed package,
/// else (a removed package) where this environment's broker keeps them.
pub(crate) async fn locate(session: &Session, text: &str) -> Result<PathBuf> {
    let r = target::parse(text, "logs", target::Takes::Package)?;
    let family = r.family_name().to_string();
    let pkgs = PackageManager::new(session).find_packages().await?;
    if let Some(p) = pkgs.iter().find(|p| p.family_name.eq_ignore_ascii_case(&family)) {
        if r.full_name().is_some() {
            target::installed(session, &r).await?;
        }
        if let Some(l) = &p.log_location {
            return Ok(PathBuf::from(l));
        }
    }
    let path = appipc_broker::Paths::from_env().app_log(&family);
    if path.exists() {
        return Ok(path);
    }
    Err(fail(
        Class::NotFound,
        format!("{family} is not installed and has no log at {}", path.display()),
    ))
}

/// Writes what was read: as it is, or with `json` one `{"line": …}` object per line (a
/// line not ended yet waits for its end, or for `flush`).
struct Sink {
    json: bool,
    partial: Vec<u8>,
}

impl Sink {
    fn write(&mut self, out: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
        if !self.json {
            return out.write_all(bytes);
        }
        self.partial.extend_from_slice(bytes);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            self.line(out, &line[..i])?;
        }
        Ok(())
    }

    fn line(&self, out: &mut impl Write, line: &[u8]) -> std::io::Result<()> {
        let v = serde_json::json!({ "line": String::from_utf8_lossy(line) });
        writeln!(out, "{v}")
    }

    fn flush(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        if self.json && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.line(out, &line)?;
        }
        out.flush()
    }
}

/// Prints the log, then with `follow` what is appended to it, across rotations, until
/// interrupted; with `json`, one JSON object per line of it.
pub(crate) async fn show(path: &Path, follow: bool, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut sink = Sink { json, partial: Vec::new() };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && follow => None,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "appipc: {} is empty: nothing was launched without a terminal yet",
                path.display()
            );
            return Ok(());
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(f) = file.as_mut() {
            loop {
                let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
                if n == 0 {
                    break;
                }
                sink.write(&mut out, &buf[..n])?;
            }
            if !follow {
                sink.flush(&mut out)?;
            } else {
                out.flush()?;
            }
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
        // Rotated (a new file at the path) or emptied in place: start again from its start.
        let now = std::fs::metadata(path).ok();
        match (&mut file, now) {
            (Some(f), Some(m)) => {
                let ours = f.metadata()?;
                if ours.ino() != m.ino() || ours.dev() != m.dev() {
                    file = std::fs::File::open(path).ok();
                } else if m.len() < f.stream_position()? {
                    f.seek(SeekFrom::Start(0))?;
                }
            }
            (None, Some(_)) => file = std::fs::File::open(path).ok(),
            (_, None) => {}
        }
    }
}
