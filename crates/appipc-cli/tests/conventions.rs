//! The conventions of the Linux ecosystem that both binaries follow: `--help` and `--version`
//! answer without starting anything, exit codes are documented and distinct per class of
//! failure, `--json` means the output format everywhere, completions and manual pages are
//! generated.

use std::process::{Command, Output};
use std::time::Duration;

fn run(bin: &str, args: &[&str]) -> Output {
    use std::io::Read;
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
    // Read while it runs (its output may be larger than a pipe holds).
    let mut pipes = [
        child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
    ];
    let readers: Vec<_> = pipes
        .iter_mut()
        .map(|p| {
            let mut p = p.take().expect("piped");
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = p.read_to_end(&mut v);
                v
            })
        })
        .collect();
    // `--help` must answer, not block serving: a broker would run until killed.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{bin} {args:?} did not exit: it must parse its arguments, not serve");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = readers.into_iter().map(|r| r.join().expect("reader"));
    Output { status, stdout: out.next().unwrap(), stderr: out.next().unwrap() }
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

/// Runs `appipc ARGS` with stdout on a new pty (a terminal) and returns what it printed.
fn on_terminal(b: &appipc_testkit::TestBroker, args: &[&str], env: &[(&str, &str)]) -> String {
    use std::io::Read;
    let pty = appipc_sys::pty::open().expect("a pty");
    let slave = std::fs::File::from(pty.slave);
    let mut cmd = b.cli();
    cmd.args(args).env_remove("NO_COLOR").env("TERM", "xterm").envs(env.iter().copied());
    let status = cmd.stdout(slave).status().expect("appipc");
    assert!(status.success());
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // The pty's output is all there once the process has exited; read until EIO (no writer).
    while let Ok(n) = master.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn tables_have_headers_and_aligned_columns_and_colour_follows_no_color() {
    let b = appipc_testkit::TestBroker::start();
    let dir = tempfile::tempdir().unwrap();
    for name in ["a", "a-much-longer-file-name"] {
        let f = dir.path().join(name);
        std::fs::write(&f, "x").unwrap();
        let out = b.cli().args(["token".as_ref(), "add".as_ref(), f.as_os_str()]).output().unwrap();
        assert!(out.status.success());
    }
    let out = b.cli().args(["token", "list"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two rows: {text}");
    for col in ["TOKEN", "ACCESS", "FROM", "CREATED", "EXPIRES", "PATH"] {
        assert!(lines[0].contains(col), "header {col}: {text}");
    }
    // Every row's columns start where the header's do.
    let at = lines[0].find("EXPIRES").unwrap();
    let path_at = lines[0].find("PATH").unwrap();
    for row in &lines[1..] {
        assert!(row[at..].chars().next().is_some_and(|c| c.is_ascii_digit()), "{text}");
        assert!(row[path_at..].starts_with('/'), "{text}");
    }
    assert!(!text.contains('\x1b'), "no colour into a pipe: {text:?}");

    // On a terminal: coloured, unless NO_COLOR; --color decides over both.
    let tty = on_terminal(&b, &["token", "list"], &[]);
    assert!(tty.contains("\x1b["), "a terminal is coloured: {tty:?}");
    let tty = on_terminal(&b, &["token", "list"], &[("NO_COLOR", "1")]);
    assert!(!tty.contains("\x1b["), "NO_COLOR: {tty:?}");
    let tty = on_terminal(&b, &["--color", "never", "token", "list"], &[]);
    assert!(!tty.contains("\x1b["), "--color never: {tty:?}");
    let out = b.cli().args(["--color", "always", "token", "list"]).env("NO_COLOR", "1").output();
    assert!(String::from_utf8_lossy(&out.unwrap().stdout).contains("\x1b["), "--color always");
}

#[test]
fn completions_for_bash_zsh_and_fish_and_manual_pages() {
    let bin = env!("CARGO_BIN_EXE_appipc");
    for (shell, marker) in
        [("bash", "complete -F"), ("zsh", "#compdef appipc"), ("fish", "complete -c appipc")]
    {
        let o = run(bin, &["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", text(&o));
        let script = String::from_utf8_lossy(&o.stdout);
        assert!(script.contains(marker), "{shell} script lacks {marker:?}");
        for word in ["install", "app-service", "completions", "color"] {
            assert!(script.contains(word), "the {shell} script does not complete {word}");
        }
    }
    let bad = run(bin, &["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(64), "{}", text(&bad));

    let dir = tempfile::tempdir().unwrap();
    let o = run(bin, &["man", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    for page in ["appipc.1", "appipc-install.1", "appipc-app-service-call.1", "appipcd.1"] {
        let roff = std::fs::read_to_string(dir.path().join(page)).unwrap_or_default();
        assert!(roff.contains(".TH"), "{page} is not a manual page");
    }
    let appipcd = std::fs::read_to_string(dir.path().join("appipcd.1")).unwrap();
    assert!(appipcd.contains("foreground") && appipcd.contains("log"), "{appipcd}");
}

#[test]
fn the_install_script_puts_everything_where_it_belongs() {
    let prefix = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/install.sh");
    let out = Command::new("bash")
        .arg(script)
        .env("PREFIX", prefix.path())
        .env("APPIPC_BIN_DIR", appipc_testkit::bin_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for f in [
        "bin/appipc",
        "bin/appipcd",
        "share/bash-completion/completions/appipc",
        "share/zsh/site-functions/_appipc",
        "share/fish/vendor_completions.d/appipc.fish",
        "share/man/man1/appipc.1",
        "share/man/man1/appipcd.1",
        "share/systemd/user/appipcd.service",
        "share/systemd/user/appipcd.socket",
    ] {
        let p = prefix.path().join(f);
        assert!(p.metadata().is_ok_and(|m| m.len() > 0), "{f} not installed");
    }
    // The unit starts the appipcd installed there, wherever that is.
    let unit =
        std::fs::read_to_string(prefix.path().join("share/systemd/user/appipcd.service")).unwrap();
    let appipcd = prefix.path().join("bin/appipcd").canonicalize().unwrap();
    assert!(unit.contains(&format!("\nExecStart={}\n", appipcd.display())), "{unit}");
}

#[test]
fn install_progress_is_shown_on_a_terminal_only() {
    use std::io::Read;
    let b = appipc_testkit::TestBroker::start();
    let dir =
        appipc_testkit::assemble(&appipc_testkit::HELLO, &b.root.path().join("hello")).unwrap();
    // Into a pipe: no progress, however long it takes.
    let out = b
        .cli()
        .args(["install".as_ref(), dir.as_os_str()])
        .env("APPIPC_PROGRESS_AFTER_MS", "0")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("copying"), "no progress into a pipe");
    b.cli_ok(&["remove".as_ref(), "Contoso.Hello_cvnpggrrsm18p".as_ref()]);
    // On a terminal, once the install has taken longer than the threshold (here at once):
    // files and bytes copied, ending with the final count.
    let pty = appipc_sys::pty::open().expect("a pty");
    let mut cmd = b.cli();
    cmd.args(["install".as_ref(), dir.as_os_str()])
        .env("APPIPC_PROGRESS_AFTER_MS", "0")
        .stderr(std::fs::File::from(pty.slave));
    assert!(cmd.status().unwrap().success());
    drop(cmd);
    let mut shown = Vec::new();
    let _ = std::fs::File::from(pty.master).read_to_end(&mut shown);
    let shown = String::from_utf8_lossy(&shown);
    assert!(shown.contains("copying 2 files, ") && shown.contains(": done"), "{shown:?}");
}
