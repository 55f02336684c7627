//! One exit status per class of failure, the same on every command (docs/cli.md), and every
//! cause printed once.

use std::process::Command;

use appipc_testkit::{CONTOSO_SERVICES, TestBroker};

fn run(mut cmd: Command) -> (i32, String) {
    let out = cmd.output().expect("run");
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String) {
    let mut c = b.cli();
    c.args(args);
    run(c)
}

#[test]
fn each_class_of_failure_has_its_status() {
    let b = TestBroker::start();
    let services = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(b.install(&CONTOSO_SERVICES))
        .family_name;
    let call = |service: &str, message: &str| {
        cli(&b, &["app-service", "call", &services, service, "--message", message])
    };
    let cases: Vec<(&str, (i32, String), i32)> = vec![
        ("success", cli(&b, &["status"]), 0),
        ("usage: unknown option", cli(&b, &["list", "--bogus"]), 64),
        ("usage: missing argument", cli(&b, &["launch"]), 64),
        ("data: not a package name", cli(&b, &["launch", "Contoso.Hello"]), 65),
        ("data: invalid JSON", call("com.contoso.echo", "{"), 65),
        ("not found: package", cli(&b, &["remove", "Nobody.Here_cvnpggrrsm18p"]), 66),
        ("not found: file", cli(&b, &["token", "add", "/nonexistent/appipc-file"]), 66),
        ("unavailable: app service", call("com.contoso.nope", "{}"), 69),
        ("permission: not authorized", call("com.contoso.echo.private", "{}"), 77),
        ("failed: the provider died", call("com.contoso.echo", r#"{"$crash": true}"#), 1),
    ];
    for (what, (code, out), want) in cases {
        assert_eq!(code, want, "{what}: {out}");
    }
    // A second broker for the same user: try again later (75), and the unit does not restart.
    let mut second = Command::new(appipc_testkit::binary("appipcd"));
    b.apply_env(&mut second);
    let (code, out) = run(second);
    assert_eq!(code, 75, "{out}");
    assert!(out.contains("another broker already runs"), "{out}");
    // A session fd that is not one: configuration (78).
    let mut c = b.cli();
    c.arg("whoami").env("APPIPC_SESSION_FD", "not-a-number");
    let (code, out) = run(c);
    assert_eq!(code, 78, "{out}");
}

#[test]
fn no_broker_is_unavailable_and_each_cause_is_said_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Command::new(appipc_testkit::binary("appipc"));
    c.arg("status")
        .env("APPIPC_HOME", tmp.path().join("home"))
        .env("APPIPC_RUNTIME_DIR", tmp.path().join("run"))
        .env_remove("APPIPC_SESSION_FD");
    let (code, out) = run(c);
    assert_eq!(code, 69, "{out}");
    let cause = std::io::Error::from_raw_os_error(2).to_string();
    assert_eq!(out.matches(&cause).count(), 1, "the cause once: {out}");
    assert!(out.contains("cannot reach the appipc broker"), "{out}");

    let mut c = Command::new(appipc_testkit::binary("appipc"));
    c.args(["check", "/nonexistent/appipc-package"]);
    let (code, out) = run(c);
    assert_eq!(code, 66, "{out}");
    assert_eq!(out.matches(&cause).count(), 1, "the cause once: {out}");
}
