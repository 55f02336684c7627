//! Desktop integration: an installed package's protocols become `x-scheme-handler/<scheme>`
//! entries (`.desktop` files, freedesktop Desktop Entry Specification) in the user's
//! applications folder, whose `Exec` is `appipc launch-uri --target PFN %u`; so `xdg-open
//! scheme:…`, once the desktop picks the entry for the scheme, activates the package through the
//! broker, as an unpackaged caller. Only protocols a plain launch may reach (`return-results`
//! `none` or `optional`) get one: a desktop cannot launch for results. Removing the package
//! deletes its entries; an upgrade writes them again.

use std::path::{Path, PathBuf};

use appipc_wire::protocol::launcher::LaunchUriOutcome;
use appipc_wire::status::LaunchUriStatus;
use appipc_wire::uri::Uri;

use super::ProtocolError;
use crate::Shared;
use crate::caller::Caller;
use crate::repository::InstalledPackage;

/// The file-name prefix of every entry the broker writes.
const PREFIX: &str = "appipc-";

/// The entries' folder: `$APPIPC_HOME/applications` when `APPIPC_HOME` is set, else
/// `$XDG_DATA_HOME/applications`.
fn folder(shared: &Shared) -> &Path {
    &shared.paths.applications_dir
}

/// The file of one entry: `appipc-<family, lower-cased>-<scheme>.desktop`.
pub(crate) fn entry_name(family: &str, scheme: &str) -> String {
    format!("{PREFIX}{}-{scheme}.desktop", family.to_ascii_lowercase())
}

/// A value as a desktop entry may hold it: one line, no control characters.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// An `Exec` argument, quoted as the Desktop Entry Specification says (double quotes; `"`,
/// `` ` ``, `$` and `\` escaped with a backslash; `%` doubled).
fn exec_arg(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The `appipc` command next to the broker's executable, else `appipc` on `PATH`.
fn appipc_command() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("appipc")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("appipc"))
}

/// The text of one entry.
pub(crate) fn entry_text(appipc: &Path, family: &str, scheme: &str, name: &str) -> String {
    format!(
        "[Desktop Entry]\nType=Application\nName={}\nExec={} launch-uri --target {} %u\n\
         NoDisplay=true\nTerminal=false\nMimeType=x-scheme-handler/{scheme};\n\
         X-Appipc-Package={family}\n",
        one_line(name),
        exec_arg(&appipc.display().to_string()),
        exec_arg(family),
    )
}

/// Writes the entries of `pkg` (after removing any it had: an upgrade may drop a protocol).
pub(crate) fn install(shared: &Shared, pkg: &InstalledPackage) {
    remove(shared, pkg.family_name.as_str());
    let dir = folder(shared);
    let family = pkg.family_name.as_str();
    let appipc = appipc_command();
    for app in &pkg.manifest.applications {
        for p in app.protocols.iter().filter(|p| p.return_results.plain_launch()) {
            let name = p.display_name.clone().unwrap_or_else(|| {
                format!("{} ({}:)", pkg.manifest.properties.display_name, p.name)
            });
            let path = dir.join(entry_name(family, p.name.as_str()));
            let written = std::fs::create_dir_all(dir).and_then(|()| {
                std::fs::write(&path, entry_text(&appipc, family, p.name.as_str(), &name))
            });
            match written {
                Ok(()) => tracing::info!(entry = %path.display(), "scheme handler written"),
                Err(e) => {
                    tracing::warn!(entry = %path.display(), error = %e, "cannot write a scheme handler")
                }
            }
        }
    }
}

/// Deletes the entries of `family`.
pub(crate) fn remove(shared: &Shared, family: &str) {
    let prefix = format!("{PREFIX}{}-", family.to_ascii_lowercase());
    let Ok(entries) = std::fs::read_dir(folder(shared)) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(".desktop") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Hands a URI no package handles to the desktop's handler: `xdg-open URI` (or
/// `APPIPC_URI_OPENER`), run as the user outside any sandbox, its output discarded, waited for
/// in the blocking pool (xdg-open returns once the handler is started). The policy allowed it
/// (a plain launch of `http`, `https` or `mailto`); it is logged with the caller.
pub(crate) async fn open(
    shared: &std::sync::Arc<Shared>,
    uri: &Uri,
    caller: &Caller,
) -> Result<LaunchUriOutcome, ProtocolError> {
    let opener = std::env::var_os("APPIPC_URI_OPENER").unwrap_or_else(|| "xdg-open".into());
    let text = uri.to_string();
    tracing::info!(uri = %uri.scheme(), by = %caller.describe(), opener = %opener.to_string_lossy(),
        "no package handles the scheme; handed to the desktop's handler");
    let ran = shared
        .blocking
        .run(move || {
            std::process::Command::new(&opener)
                .arg(&text)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
        })
        .await
        .map_err(|e| ProtocolError::Failed(format!("the desktop's handler: {e}")))?;
    match ran {
        Ok(s) if s.success() => Ok(LaunchUriOutcome {
            status: LaunchUriStatus::Success,
            result: None,
            reported: false,
            target_pid: 0,
        }),
        Ok(s) => Err(ProtocolError::Failed(format!("the desktop's handler failed ({s})"))),
        Err(e) => Err(ProtocolError::Failed(format!("the desktop's handler could not run: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_runs_the_cli_for_its_scheme() {
        let t =
            entry_text(Path::new("/opt/my apps/appipc"), "A.B_x", "contoso-view", "Show\na $photo");
        assert!(
            t.contains("Exec=\"/opt/my apps/appipc\" launch-uri --target \"A.B_x\" %u\n"),
            "{t}"
        );
        assert!(t.contains("MimeType=x-scheme-handler/contoso-view;\n"));
        assert!(t.contains("Name=Show a $photo\n"), "one line: {t}");
        assert_eq!(exec_arg("a\"b$c`d\\e%f"), "\"a\\\"b\\$c\\`d\\\\e%%f\"");
        assert_eq!(
            entry_name("Contoso.Picker_cvnpggrrsm18p", "x"),
            "appipc-contoso.picker_cvnpggrrsm18p-x.desktop"
        );
    }
}
