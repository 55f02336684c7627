//! The README's newcomer walkthrough, run as written: the lines between its `BEGIN newcomer
//! walkthrough` and `END` markers, in bash, with real processes (the CLI, the broker it starts,
//! the example app and a shell-script package, confined). The build step of
//! `scripts/examples.sh` is the one thing left out: the binaries `cargo test` built are given
//! to it (`APPIPC_BIN_DIR`), and it lays out a copy of `examples/` in a temporary folder.

use std::path::{Path, PathBuf};
use std::process::Command;

const README: &str = include_str!("../../../README.md");

fn walkthrough() -> String {
    let start = README.find("<!-- BEGIN newcomer walkthrough -->").expect("begin marker");
    let end = README.find("<!-- END newcomer walkthrough -->").expect("end marker");
    let block = &README[start..end];
    let code = block.split("```sh\n").nth(1).expect("a sh block");
    code.split("```").next().expect("the block's end").to_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Stops the broker the walkthrough started, however the test ends.
struct StopBroker(Vec<(String, PathBuf)>);

impl Drop for StopBroker {
    fn drop(&mut self) {
        let _ = Command::new(appipc_testkit::binary("appipc"))
            .arg("stop")
            .envs(self.0.iter().map(|(k, v)| (k, v)))
            .env_remove("APPIPC_SESSION_FD")
            .output();
    }
}

#[test]
fn the_readme_walkthrough_runs_as_written() {
    let bins = appipc_testkit::bin_dir();
    appipc_testkit::binary("hello-app");
    let tmp = tempfile::Builder::new().prefix("appipc-newcomer-").tempdir().expect("tempdir");
    let checkout = tmp.path().join("appipc");
    // The parts of a checkout the walkthrough uses: the script and the example manifests.
    std::fs::create_dir_all(checkout.join("scripts")).unwrap();
    std::fs::copy(repo().join("scripts/examples.sh"), checkout.join("scripts/examples.sh"))
        .unwrap();
    for e in std::fs::read_dir(repo().join("examples")).unwrap() {
        let e = e.unwrap();
        let manifest = e.path().join("appipc.toml");
        if manifest.is_file() {
            let dest = checkout.join("examples").join(e.file_name());
            std::fs::create_dir_all(&dest).unwrap();
            std::fs::copy(&manifest, dest.join("appipc.toml")).unwrap();
        }
    }
    let env: Vec<(String, PathBuf)> = vec![
        ("APPIPC_HOME".into(), tmp.path().join("state")),
        ("APPIPC_RUNTIME_DIR".into(), tmp.path().join("run")),
        ("HOME".into(), tmp.path().join("user")),
        ("APPIPC_BIN_DIR".into(), bins.clone()),
    ];
    let _stop = StopBroker(env.clone());
    let path = format!("{}:{}", bins.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c"])
        .arg(walkthrough())
        .current_dir(&checkout)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("PATH", path)
        .env("APPIPC_LOG", "warn")
        .env_remove("APPIPC_SESSION_FD")
        .env_remove("XDG_STATE_HOME")
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the walkthrough failed:\n{stdout}\n{stderr}");
    let expect = [
        // The example installs as shipped.
        "installed Contoso.Hello_1.0.0.0_neutral__cvnpggrrsm18p",
        // It runs, confined, and its output reaches the terminal.
        "hello from Contoso.Hello_cvnpggrrsm18p!App: pid ",
        "trust appcontainer",
        // Launched in the background, it says where its output goes.
        "launched Contoso.Hello_cvnpggrrsm18p!App (pid ",
        "its output goes to ",
        // The shell-script package: checked, installed, launched with arguments, removed.
        "valid; full name My.Hello_1.0.0.0_neutral__hxmhn7vrhn3vp",
        "installed My.Hello_1.0.0.0_neutral__hxmhn7vrhn3vp",
        "hello from My.Hello_hxmhn7vrhn3vp!App, pid ",
        ", args: one two",
        "removed My.Hello_1.0.0.0_neutral__hxmhn7vrhn3vp",
        "removed Contoso.Hello_1.0.0.0_neutral__cvnpggrrsm18p",
        "broker stopped",
    ];
    for line in expect {
        assert!(
            stdout.contains(line),
            "the walkthrough did not print {line:?}:\n{stdout}\n{stderr}"
        );
    }
    assert!(
        stderr.contains("no broker was running; started one"),
        "the first command says it started a broker:\n{stderr}"
    );
    // What the app launched in the background wrote is in its log (the walkthrough's `appipc
    // logs` may have run before the app printed anything).
    let log = tmp.path().join("state/state/logs/Contoso.Hello_cvnpggrrsm18p.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("hello from") {
        assert!(std::time::Instant::now() < deadline, "nothing in {}", log.display());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The family names the README writes are the ones the identity rules give.
    for (name, publisher, family) in [
        ("My.Hello", "CN=Me", "My.Hello_hxmhn7vrhn3vp"),
        (
            "Contoso.Hello",
            "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH",
            "Contoso.Hello_cvnpggrrsm18p",
        ),
    ] {
        let o = Command::new(appipc_testkit::binary("appipc"))
            .args(["identity", "family-name", name, publisher])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), family);
    }
}
