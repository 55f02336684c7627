//! appipc under systemd: the user units, written with the path of the `appipcd` installed
//! beside this `appipc` (`appipc systemd-units DIR`), and whether a command should start the
//! systemd-managed broker instead of one of its own.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

/// `dist/appipcd.service.in`: `@APPIPCD@` is the path of `appipcd`.
pub(crate) const SERVICE: &str = include_str!("../../../dist/appipcd.service.in");
/// `dist/appipcd.socket.in`.
pub(crate) const SOCKET: &str = include_str!("../../../dist/appipcd.socket.in");

/// The units' names.
pub(crate) const SERVICE_UNIT: &str = "appipcd.service";
const SOCKET_UNIT: &str = "appipcd.socket";

/// The `appipcd` beside this executable (where `cargo install` and scripts/install.sh put
/// both).
fn appipcd_path() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the appipc executable")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    Ok(exe.with_file_name("appipcd"))
}

/// The unit texts with `appipcd`'s path filled in.
pub(crate) fn units(appipcd: &Path) -> [(&'static str, String); 2] {
    // systemd reads `%` as a specifier and splits on spaces: escape both.
    let exec = appipcd.display().to_string().replace('%', "%%");
    let exec = if exec.contains(' ') { format!("\"{exec}\"") } else { exec };
    [(SERVICE_UNIT, SERVICE.replace("@APPIPCD@", &exec)), (SOCKET_UNIT, SOCKET.to_owned())]
}

/// `appipc systemd-units DIR`.
pub(crate) fn write_units(dir: &Path) -> Result<()> {
    let appipcd = appipcd_path()?;
    if !appipcd.is_file() {
        eprintln!("appipc: warning: {} does not exist (yet)", appipcd.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    for (name, text) in units(&appipcd) {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        files.push(path.display().to_string());
    }
    if crate::style::json() {
        return crate::style::print_json(&serde_json::json!({
            "files": files, "exec_start": appipcd.display().to_string(),
        }));
    }
    for f in &files {
        println!("wrote {f}");
    }
    println!(
        "ExecStart={}; now: systemctl --user daemon-reload && systemctl --user enable --now \
         {SOCKET_UNIT}",
        appipcd.display()
    );
    Ok(())
}

/// Whether this environment's broker is the user's systemd-managed one: the default
/// locations (no `APPIPC_HOME` or `APPIPC_RUNTIME_DIR` of another broker) and an enabled
/// `appipcd.socket` or `appipcd.service` in the user's service manager. Then a command that
/// finds no broker starts that unit rather than a broker of its own, so that the two never
/// compete for the same home.
pub(crate) fn managed_unit() -> Option<&'static str> {
    let overridden = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
    if overridden("APPIPC_HOME") || overridden("APPIPC_RUNTIME_DIR") {
        return None;
    }
    // Only with a user manager to ask (its private socket is in the runtime directory).
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")?;
    if !Path::new(&runtime).join("systemd/private").exists() {
        return None;
    }
    [SOCKET_UNIT, SERVICE_UNIT].into_iter().find(|unit| {
        Command::new("systemctl")
            .args(["--user", "--quiet", "is-enabled", unit])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Starts the systemd-managed broker (`systemctl --user start UNIT`).
pub(crate) fn start(unit: &str) -> Result<()> {
    let out = Command::new("systemctl")
        .args(["--user", "start", unit])
        .stdin(std::process::Stdio::null())
        .output()
        .context("running systemctl --user start")?;
    if !out.status.success() {
        anyhow::bail!(
            "systemctl --user start {unit} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_units_name_the_installed_appipcd() {
        let [(service_name, service), (socket_name, socket)] =
            units(Path::new("/opt/my tools/bin/appipcd"));
        assert_eq!(service_name, "appipcd.service");
        assert!(service.contains("\nExecStart=\"/opt/my tools/bin/appipcd\"\n"), "{service}");
        assert!(service.contains("\nType=notify\n"), "{service}");
        assert!(service.contains("\nRestartPreventExitStatus=75 78\n"), "{service}");
        assert!(!service.contains("@APPIPCD@"));
        assert_eq!(socket_name, "appipcd.socket");
        assert!(socket.contains("\nListenSequentialPacket=%t/appipc/broker.sock\n"), "{socket}");
        let [(_, s), _] = units(Path::new("/home/a%b/appipcd"));
        assert!(s.contains("ExecStart=/home/a%%b/appipcd\n"));
    }
}
