//! The Python client (`clients/python`, standard library only, written from docs/wire.md)
//! against a real broker: connect, whoami, list, an app service opened and called through the
//! channel fd, a file token added and redeemed, a named object created and opened. If the
//! documentation and the code part, this fails.

use std::process::Command;

use appipc_testkit::{CONTOSO_SERVICES, TestBroker};

#[test]
fn the_python_client_works_against_a_real_broker() {
    let Ok(version) = Command::new("python3").arg("--version").output() else {
        // scripts/test.sh installs python3 where it can; elsewhere say why nothing ran.
        println!("SKIPPED: python3 is not installed (apt-get install python3-minimal)");
        return;
    };
    assert!(version.status.success());
    let b = TestBroker::start();
    let services = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(b.install(&CONTOSO_SERVICES))
        .family_name;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../clients/python");
    let mut cmd = Command::new("python3");
    cmd.args(["-m", "unittest", "-v", "test_appipc"])
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("APPIPC_TEST_SERVICES", &services)
        .env("APPIPC_TEST_DIR", b.root.path());
    b.apply_env(&mut cmd);
    let out = cmd.output().expect("python3");
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Python client failed:\n{report}\n{}", b.log());
    // Every test ran: none was skipped for want of a broker.
    assert!(!report.contains("skipped"), "{report}");
    for t in [
        "test_connect_ping_whoami",
        "test_list",
        "test_app_service_open_send_receive",
        "test_file_token_add_redeem",
        "test_named_object_open",
    ] {
        let line = report.lines().find(|l| l.starts_with(&format!("{t} ")));
        assert!(line.is_some_and(|l| l.ends_with("... ok")), "{t}: {report}");
    }
}
