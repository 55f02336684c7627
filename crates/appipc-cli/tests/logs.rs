//! `appipc launch` without `--wait` says where the app's output goes; `appipc logs PKG` prints
//! it and `--follow` keeps printing what is appended; the log lives in the broker's state
//! folder (`$XDG_STATE_HOME/appipc/logs`, here `$APPIPC_HOME/state/logs`).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use appipc_testkit::{HELLO, TestBroker};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn launch_says_where_output_goes_and_logs_follows_it() {
    let b = TestBroker::start();
    let hello = rt().block_on(b.install(&HELLO));
    let family = hello.family_name;
    let log = b.home.join("state/logs").join(format!("{family}.log"));

    // `logs --follow` started before anything was written waits for the file.
    let mut follow = b
        .cli()
        .args(["logs", "--follow", &hello.full_name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("appipc logs --follow");

    let out = b.cli().args(["launch", &family, "--", "--exit", "0"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("launched {family}!App (pid ")), "{stdout}");
    assert!(
        stdout.contains(&format!("its output goes to {}", log.display())),
        "launch must say where the output goes: {stdout}"
    );
    assert!(stdout.contains(&format!("appipc logs {family}")), "{stdout}");

    // The follower sees the app's line as it is appended (read on a thread, so that a
    // follower that prints nothing fails the test instead of hanging it).
    let lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let (tx, rx) = std::sync::mpsc::channel();
    let want = format!("hello from {family}!App");
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if l.contains(&want) {
                let _ = tx.send(());
                return;
            }
        }
    });
    let seen = rx.recv_timeout(Duration::from_secs(60)).is_ok();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen, "appipc logs --follow did not print the app's output");

    // Without --follow: the whole log, by family or full name, and the file is where it said.
    for name in [&family, &hello.full_name] {
        let out = b.cli().args(["logs", name]).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("hello from"), "logs {name}");
    }
    assert!(std::fs::read_to_string(&log).unwrap().contains("hello from"));
    assert!(!b.home.join("logs").exists(), "logs are state, not data");
    // An application is not a package here, and an unknown package has no log.
    let out = b.cli().args(["logs", &format!("{family}!App")]).output().unwrap();
    assert_eq!(out.status.code(), Some(65));
    let out = b.cli().args(["logs", "Nobody.Here_cvnpggrrsm18p"]).output().unwrap();
    assert_eq!(out.status.code(), Some(66), "{}", String::from_utf8_lossy(&out.stderr));
}
