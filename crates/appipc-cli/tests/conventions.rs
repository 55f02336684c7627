//! The conventions of the Linux ecosystem that both binaries follow: `--help` and `--version`
//! answer without starting anything, exit codes are documented and distinct per class of
//! failure, `--json` means the output format everywhere, completions and manual pages are
//! generated.

use std::process::{Command, Output};
use std::time::Duration;

fn run(bin: &str, args: &[&str]) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        // A broker started by mistake would find nothing here.
        .env("APPIPC_HOME", "/nonexistent/appipc-home")
        .env("APPIPC_RUNTIME_DIR", "/nonexistent/appipc-run")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // `--help` must answer, not block serving: a broker would run until killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{bin} {args:?} did not exit: it must parse its arguments, not serve");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn appipcd_answers_help_and_version_without_serving() {
    let bin = env!("CARGO_BIN_EXE_appipcd");
    let help = run(bin, &["--help"]);
    assert!(help.status.success(), "{}", text(&help));
    let h = String::from_utf8_lossy(&help.stdout);
    for opt in ["--foreground", "--log", "--version", "--help"] {
        assert!(h.contains(opt), "appipcd --help does not mention {opt}:\n{h}");
    }
    let version = run(bin, &["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    let v = String::from_utf8_lossy(&version.stdout);
    assert!(
        v.starts_with(&format!("appipcd {} (protocol ", env!("CARGO_PKG_VERSION"))),
        "appipcd --version printed {v:?}"
    );
    let bad = run(bin, &["--no-such-option"]);
    assert_eq!(bad.status.code(), Some(64), "a usage error exits 64: {}", text(&bad));
}

#[test]
fn appipc_prints_its_version() {
    let o = run(env!("CARGO_BIN_EXE_appipc"), &["--version"]);
    assert!(o.status.success(), "{}", text(&o));
    let v = String::from_utf8_lossy(&o.stdout);
    assert!(v.starts_with(&format!("appipc {} (protocol ", env!("CARGO_PKG_VERSION"))), "{v:?}");
}
