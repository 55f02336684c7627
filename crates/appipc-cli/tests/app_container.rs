//! App containers end to end: confined packaged processes, the full-trust helper pattern.

use std::time::{Duration, Instant};

use appipc::PackageManager;
use appipc_testkit::{CONTOSO_BRIDGE, HELLO, TestBroker};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn launch_wait(b: &TestBroker, target: &str, args: &[&str]) -> (i32, String, String) {
    let out = b.cli().args(["launch", "--wait", target, "--"]).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A broker whose user's home is a temporary folder holding `secret.txt`.
fn broker_with_home() -> (TestBroker, std::path::PathBuf) {
    let home = tempfile::Builder::new().prefix("appipc-home-").tempdir().unwrap().keep();
    std::fs::write(home.join("secret.txt"), "the secret first line\nmore\n").unwrap();
    let b = TestBroker::start_with_env(&[("HOME", home.to_str().unwrap())]);
    (b, home)
}

#[test]
fn full_trust_helper_reads_for_the_confined_app() {
    let (b, home) = broker_with_home();
    let pfn = rt().block_on(b.install(&CONTOSO_BRIDGE)).family_name;
    let secret = home.join("secret.txt");
    let (code, out, err) = launch_wait(&b, &pfn, &[secret.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}\n{err}\n{}", b.app_log(&pfn));
    assert!(out.contains("app: cannot read"), "the app container hides the home: {out}");
    assert!(out.contains("launched the full-trust helper: Success (0)"), "{out}");
    assert!(out.contains("first line: \"the secret first line\""), "{out}");
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn full_trust_launch_rules() {
    let b = TestBroker::start();
    rt().block_on(async {
        let hello = b.install(&HELLO).await.family_name;
        let bridge = b.install(&CONTOSO_BRIDGE).await.family_name;
        // Without runFullTrust: AccessDenied.
        let (_, out, _) = launch_wait(&b, &hello, &["--full-trust"]);
        assert!(
            out.contains("full-trust launch: AccessDenied (1)") && out.contains("runFullTrust"),
            "{out}"
        );
        // A declared parameter group becomes the command line; an unknown one is FileNotFound.
        let (_, out, _) = launch_wait(&b, &bridge, &["--group", "Hello"]);
        assert!(out.contains("parameter group \"Hello\": Success (0)"), "{out}");
        // Contoso.Bridge ties its helper's lifetime to the app, so the app waits for the helper
        // to finish (a loaded CI run once saw the helper ended with the app before it printed).
        let deadline = Instant::now() + Duration::from_secs(30);
        while !b.app_log(&bridge).contains("bridge-helper: from a parameter group") {
            assert!(
                Instant::now() < deadline,
                "no helper output.\napp log: {}\nbroker log:\n{}",
                b.app_log(&bridge),
                b.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let (_, out, _) = launch_wait(&b, &bridge, &["--group", "Nope"]);
        assert!(out.contains("parameter group \"Nope\": FileNotFound (2)"), "{out}");
        // The helper runs with the package's identity, at full trust.
        let (_, out, _) = launch_wait(&b, &bridge, &["--linger-helper"]);
        assert!(out.contains("lingering helper pid"), "{out}");
        // ... and it ends with the app that launched it (tie-lifetime-to-caller).
        let pm = PackageManager::new(&b.session());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let procs = pm.running_processes().await.unwrap();
            if procs.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "helper outlived its app: {procs:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn ps_shows_the_confinement() {
    let b = TestBroker::start();
    rt().block_on(async {
        let hello = b.install(&HELLO).await.family_name;
        let session = b.session();
        appipc::ApplicationActivationManager::new(&session)
            .activate_application(&hello, &["--sleep".into(), "30".into()], Default::default())
            .await
            .unwrap();
    });
    let out = b.cli().args(["ps", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["trust"], "appcontainer");
    let c = v[0]["confinement"].as_str().unwrap();
    assert!(c.contains("namespaces") && c.contains("network namespace"), "{c}");
}

/// A parameter group's command line reaches the full-trust process split as
/// `CommandLineToArgvW` splits it: backslashes are literal unless they precede a quote (the
/// old splitter turned `C:\x\y` into `C:xy`).
#[test]
fn full_trust_parameters_keep_their_backslashes() {
    let b = TestBroker::start();
    let text = CONTOSO_BRIDGE.manifest.replace(
        r#"parameter-group = [{ id = "Hello", parameters = "--hello \"from a parameter group\"" }]"#,
        r#"parameter-group = [
    { id = "Hello", parameters = "--hello \"from a parameter group\"" },
    { id = "Path", parameters = '--hello C:\x\y' },
    { id = "Quoted", parameters = '--hello "C:\dir with space\\" ignored' },
    { id = "Escaped", parameters = '--hello a\"b\\\"c' },
]"#,
    );
    assert_ne!(text, CONTOSO_BRIDGE.manifest, "the example's parameter group moved");
    let dir = appipc_testkit::assemble_manifest(
        &text,
        &b.root.path().join(appipc_testkit::unique("bridge")),
        &appipc_testkit::bin_dir(),
    )
    .unwrap();
    let out = b.cli().args(["install", "--yes", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let full = String::from_utf8_lossy(&out.stdout).trim().rsplit(' ').next().unwrap().to_owned();
    let p: Vec<&str> = full.split('_').collect();
    let bridge = format!("{}_{}", p[0], p[4]);
    for (group, want) in [
        ("Path", r"bridge-helper: C:\x\y"),
        ("Quoted", r"bridge-helper: C:\dir with space\"),
        ("Escaped", r#"bridge-helper: a"b\"c"#),
    ] {
        let (_, out, _) = launch_wait(&b, &bridge, &["--group", group]);
        assert!(out.contains(&format!("parameter group \"{group}\": Success (0)")), "{out}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !b.app_log(&bridge).lines().any(|l| l.trim_end() == want) {
            assert!(
                Instant::now() < deadline,
                "{group}: no line {want:?} in the app log:\n{}",
                b.app_log(&bridge)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
