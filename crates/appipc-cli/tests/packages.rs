//! Packages end to end: a real broker, the real example packages, real launched processes.

use std::process::{Command, Output};

use appipc::management::InstallOutcome;
use appipc::{ActivateOptions, ApplicationActivationManager, PackageManager};
use appipc::{ErrorKind, TrustLevel};
use appipc_testkit::{
    FABRIKAM_TOOLS, HELLO, TestBroker, assemble, assemble_manifest, bin_dir, unique,
};

fn run(mut cmd: Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().expect("run");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let mut cmd = b.cli();
    cmd.args(args);
    run(cmd)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn install_list_launch_remove_through_the_cli() {
    let b = TestBroker::start();
    let dir = assemble(&HELLO, &b.root.path().join("pkg")).unwrap();
    let (code, out, err) = cli(&b, &["install", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let publisher_id = appipc_model::identity::PublisherId::from_publisher(
        "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH",
    );
    let pfn = format!("Contoso.Hello_{publisher_id}");
    assert_eq!(out.trim(), format!("installed Contoso.Hello_1.0.0.0_neutral__{publisher_id}"));

    let (code, out, _) = cli(&b, &["list", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["family_name"], pfn.as_str());
    assert_eq!(v[0]["applications"][0]["trust"], "appcontainer");
    assert_eq!(v[0]["capabilities"][0], "internetClient");

    // --wait forwards stdout and the exit status; the app sees its broker-attested identity.
    let (code, out, err) =
        cli(&b, &["launch", "--wait", &format!("{pfn}!App"), "--", "--exit", "7"]);
    assert_eq!(code, 7, "stdout: {out}\nstderr: {err}");
    assert!(out.contains(&format!("hello from {pfn}!App")), "{out}");
    assert!(out.contains("trust appcontainer"), "{out}");
    let sid = appipc_model::sid::appcontainer_sid(&pfn).to_string();
    assert!(out.contains(&sid), "{out}");

    let (code, out, _) = cli(&b, &["remove", &pfn]);
    assert_eq!(code, 0);
    assert!(out.contains("removed Contoso.Hello_1.0.0.0"), "{out}");
    let (_, out, _) = cli(&b, &["list"]);
    assert!(out.contains("no packages installed"), "{out}");
    assert!(!b.home.join("data").join(&pfn).exists(), "app data removed with the package");
}

#[test]
fn unpackaged_whoami_and_children_inherit_identity() {
    let b = TestBroker::start();
    let (code, out, _) = cli(&b, &["whoami"]);
    assert_eq!(code, 0);
    assert!(out.contains("trust unpackaged"), "{out}");
    rt().block_on(async {
        let r = b.install(&HELLO).await;
        let (code, out, err) = cli(&b, &["launch", "--wait", &r.family_name, "--", "--child"]);
        assert_eq!(code, 0, "{err}");
        let ours = format!("hello from {}!App", r.family_name);
        assert!(out.contains(&ours), "{out}");
        assert!(out.contains(&format!("  child: {ours}")), "child must inherit the session: {out}");
    });
}

#[test]
fn app_container_rules_and_full_trust() {
    let b = TestBroker::start();
    rt().block_on(async {
        let hello = b.install(&HELLO).await;
        let tools = b.install(&FABRIKAM_TOOLS).await;
        let spare = assemble(&HELLO, &b.root.path().join("spare")).unwrap();

        // An app container sees only its own package and may not deploy.
        let (_, out, _) = cli(
            &b,
            &[
                "launch",
                "--wait",
                &hello.family_name,
                "--",
                "--packages",
                "--try-install",
                spare.to_str().unwrap(),
            ],
        );
        assert!(out.contains(&format!("packages I may see: {}\n", hello.family_name)), "{out}");
        assert!(
            out.contains("install refused:")
                && out.contains("may not deploy packages")
                && out.contains("packageManagement"),
            "{out}"
        );

        // The full-trust tool of the other package sees every package.
        let (_, out, _) = cli(
            &b,
            &["launch", "--wait", &format!("{}!Tool", tools.family_name), "--", "--packages"],
        );
        assert!(out.contains("trust fulltrust"), "{out}");
        assert!(out.contains(&hello.family_name) && out.contains(&tools.family_name), "{out}");

        // The listing reports both trust levels.
        let pkgs = PackageManager::new(&b.session()).find_packages().await.unwrap();
        let t = pkgs.iter().find(|p| p.family_name == tools.family_name).unwrap();
        let trusts: Vec<_> = t.applications.iter().map(|a| (a.id.as_str(), a.trust)).collect();
        assert_eq!(trusts, [("Viewer", TrustLevel::AppContainer), ("Tool", TrustLevel::FullTrust)]);
    });
}

fn versioned(version: &str, extra: &str) -> String {
    HELLO.manifest.replace("version = \"1.0.0.0\"", &format!("version = \"{version}\"")) + extra
}

#[test]
fn upgrade_idempotence_downgrade_conflict_and_app_data() {
    let b = TestBroker::start();
    rt().block_on(async {
        let pm = PackageManager::new(&b.session());
        let v1 =
            assemble_manifest(&versioned("1.0.0.0", ""), &b.root.path().join("v1"), &bin_dir())
                .unwrap();
        let v2 =
            assemble_manifest(&versioned("1.2.0.0", ""), &b.root.path().join("v2"), &bin_dir())
                .unwrap();
        let r1 = pm.add_package(&v1).await.unwrap();
        assert_eq!(r1.outcome, InstallOutcome::Installed);
        assert_eq!(pm.add_package(&v1).await.unwrap().outcome, InstallOutcome::AlreadyInstalled);

        let state = b.home.join("data").join(&r1.family_name).join("LocalState");
        for f in ["LocalState", "LocalCache", "TempState", "RoamingState"] {
            assert!(state.parent().unwrap().join(f).is_dir(), "{f} created");
        }
        std::fs::write(state.join("settings.txt"), "kept").unwrap();

        let r2 = pm.add_package(&v2).await.unwrap();
        assert_eq!(r2.outcome, InstallOutcome::Upgraded);
        assert_eq!(r2.replaced.as_deref(), Some(r1.full_name.as_str()));
        assert_eq!(std::fs::read_to_string(state.join("settings.txt")).unwrap(), "kept");
        assert!(
            !b.home.join("packages").join(&r1.full_name).exists(),
            "old version's files removed"
        );

        let e = pm.add_package(&v1).await.unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::Downgrade), "{e}");
        assert!(e.to_string().contains("older"), "{e}");

        let v2b = assemble_manifest(
            &versioned("1.2.0.0", "\n# changed\n"),
            &b.root.path().join("v2b"),
            &bin_dir(),
        )
        .unwrap();
        let e = pm.add_package(&v2b).await.unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::Conflict), "{e}");

        // The installed files are read-only.
        let installed = b.home.join("packages").join(&r2.full_name).join("appipc.toml");
        assert!(std::fs::metadata(&installed).unwrap().permissions().readonly());
    });
}

#[test]
fn bad_manifest_is_refused_with_key_and_line() {
    let b = TestBroker::start();
    let dir = b.root.path().join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("appipc.toml"),
        "[package]\nname = \"Contoso.Bad\"\npublisher = \"CN=Contoso\"\nversion = \"1.0.0.0\"\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/app\"\n\n\
         [[application.app-service]]\nname = \"x\"\n",
    )
    .unwrap();
    let (code, _, err) = cli(&b, &["install", dir.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid package"), "{err}");
    assert!(err.contains(":11:"), "line 11 named: {err}");
    assert!(err.contains("app-service[0].name"), "key named: {err}");

    std::fs::write(dir.join("appipc.toml"), "[package]\nname = \"Contoso.Bad\"\nflavour = 1\n")
        .unwrap();
    let (code, _, err) = cli(&b, &["install", dir.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("flavour"), "unknown key named: {err}");
    // Nothing was installed.
    let (_, out, _) = cli(&b, &["list"]);
    assert!(out.contains("no packages installed"), "{out}");
}

#[test]
fn state_survives_restart_and_crash_leftovers_are_swept() {
    let mut b = TestBroker::start();
    let r = rt().block_on(b.install(&HELLO));
    b.kill();
    let stale = b.home.join("packages").join(".staging-deadbeef");
    std::fs::create_dir_all(stale.join("bin")).unwrap();
    b.restart();
    assert!(!stale.exists(), "leftover staging folder swept at start");
    let (_, out, _) = cli(&b, &["list"]);
    assert!(out.contains(&r.full_name), "{out}");
    let (code, out, err) = cli(&b, &["launch", "--wait", &r.family_name]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("hello from"), "{out}");
}

#[test]
fn exits_are_noticed_and_remove_stops_running_apps() {
    let b = TestBroker::start();
    rt().block_on(async {
        let r = b.install(&HELLO).await;
        let session = b.session();
        let aam = ApplicationActivationManager::new(&session);
        let pm = PackageManager::new(&session);
        let (quick, _) = aam
            .activate_application(
                &r.family_name,
                &["--exit".into(), "3".into()],
                ActivateOptions { notify_exit: true, ..Default::default() },
            )
            .await
            .unwrap();
        assert_eq!(session.wait_for_exit(quick).await.unwrap().code, Some(3));

        let (sleeper, aumid) = aam
            .activate_application(
                &r.family_name,
                &["--sleep".into(), "60".into()],
                ActivateOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(aumid, format!("{}!App", r.family_name));
        let ps = pm.running_processes().await.unwrap();
        assert_eq!(ps.iter().map(|p| p.pid).collect::<Vec<_>>(), [sleeper]);
        assert!(!ps.iter().any(|p| p.pid == quick), "exited process gone from the table");
        let (_, stopped) = pm.remove_package(&r.family_name).await.unwrap();
        assert_eq!(stopped, 1);
        assert!(pm.running_processes().await.unwrap().is_empty());
        assert!(
            !std::path::Path::new(&format!("/proc/{sleeper}")).exists(),
            "process really ended"
        );
    });
}

#[test]
fn launch_errors_say_what_is_wrong() {
    let b = TestBroker::start();
    rt().block_on(async {
        let r = b.install(&HELLO).await;
        let aam = ApplicationActivationManager::new(&b.session());
        let e = aam
            .activate_application("Nope.App_8wekyb3d8bbwe", &[], Default::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::NotFound));
        assert!(e.to_string().contains("Nope.App_8wekyb3d8bbwe is not installed"), "{e}");
        let e = aam
            .activate_application(&format!("{}!Other", r.family_name), &[], Default::default())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::NotFound));
        assert!(e.to_string().contains("no application Other"), "{e}");
        let e = aam.activate_application("not a name", &[], Default::default()).await.unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::BadRequest), "{e}");
        let e = PackageManager::new(&b.session())
            .remove_package("Nope.App_8wekyb3d8bbwe")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), Some(ErrorKind::NotFound));
    });
}

#[test]
fn cli_starts_a_broker_when_none_answers() {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_appipc"));
    cmd.env("APPIPC_HOME", root.path().join("home"))
        .env("APPIPC_RUNTIME_DIR", root.path().join("run"))
        .env_remove("APPIPC_SESSION_FD")
        .arg("list");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("no broker was running; started one"), "{err}");
    assert!(out.contains("no packages installed"), "{out}");
    // The second command finds it running and says nothing about starting.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_appipc"));
    cmd.env("APPIPC_HOME", root.path().join("home"))
        .env("APPIPC_RUNTIME_DIR", root.path().join("run"))
        .arg("stop");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("broker stopped"), "{out}");
    assert!(!err.contains("started one"), "{err}");
}

#[test]
fn a_second_broker_on_the_same_runtime_dir_refuses_to_start() {
    let b = TestBroker::start();
    let mut cmd = Command::new(appipc_testkit::binary("appipcd"));
    b.apply_env(&mut cmd);
    let (code, _, err) = run(cmd);
    assert_ne!(code, 0);
    assert!(err.contains("another broker already runs"), "{err}");
    // The first one still answers.
    let (code, _, _) = cli(&b, &["status"]);
    assert_eq!(code, 0);
    let _ = unique("x");
}
