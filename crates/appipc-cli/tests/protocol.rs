//! Protocol activation and `LaunchUriForResultsAsync` end to end: a real broker, real confined
//! target processes (`protocol-probe`) started for a URI, callers unpackaged (this test) and
//! packaged (the probe launched as another package's app). The attacker's cases first.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use appipc::launcher::{
    LaunchQuerySupportStatus, LaunchQuerySupportType, LaunchUriStatus, Launcher, LauncherOptions,
};
use appipc::{PropertyValue, Session, SharedStorageAccessManager, ValueSet, WindowsCode};
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, readable_by_all, unique};

const TARGET: &str = r#"
[package]
name = "Test.ProtocolTarget"
publisher = "CN=Protocol Target"
version = "1.0.0.0"
display-name = "Protocol target"

[[application]]
id = "App"
executable = "bin/protocol-probe"

[[application.protocol]]
name = "probe-results"
return-results = "always"

[[application.protocol]]
name = "probe-plain"

[[application.protocol]]
name = "probe-both"
return-results = "optional"
"#;

const CALLER: &str = r#"
[package]
name = "Test.ProtocolCaller"
publisher = "CN=Protocol Caller"
version = "1.0.0.0"

[[application]]
id = "App"
executable = "bin/protocol-probe"
"#;

const E_INVALIDARG: WindowsCode = WindowsCode::HResult(0x8007_0057);

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// Installs a manifest through the CLI (as the broker's user); returns the family name.
fn install(b: &TestBroker, manifest: &str) -> String {
    let dir = assemble_manifest(manifest, &b.root.path().join(unique("pkg")), &bin_dir()).unwrap();
    readable_by_all(&dir);
    let out = b.cli().args(["install", "--yes", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "install: {}", String::from_utf8_lossy(&out.stderr));
    let full = String::from_utf8_lossy(&out.stdout).trim().rsplit(' ').next().unwrap().to_owned();
    let p: Vec<&str> = full.split('_').collect();
    format!("{}_{}", p[0], p[4])
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn string(v: &ValueSet, k: &str) -> String {
    v.get(k).and_then(PropertyValue::as_string).unwrap_or_default().to_owned()
}

fn to(pfn: &str) -> LauncherOptions {
    LauncherOptions::for_package(pfn)
}

async fn processes_of(session: &Session, family: &str) -> Vec<u32> {
    let list = session.call(appipc::wire::protocol::launch::ListProcesses {}).await.unwrap();
    list.into_iter().filter(|p| p.package_family_name == family).map(|p| p.pid).collect()
}

#[test]
fn the_caller_is_attested_never_taken_from_the_caller() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    let caller = install(&b, CALLER);
    rt().block_on(async {
        let session = b.session();
        // An unpackaged caller that claims a package in its data: the target sees "".
        let mut data = ValueSet::new();
        data.insert("caller", "Forged.Package_8wekyb3d8bbwe");
        let r = Launcher::launch_uri_for_results(
            &session,
            "probe-results:echo",
            &to(&target),
            Some(data),
        )
        .await
        .unwrap();
        assert_eq!(r.status, LaunchUriStatus::Success, "{r:?}");
        let v = r.result.expect("the target reported");
        assert_eq!(string(&v, "caller"), "", "unpackaged: CallerPackageFamilyName is empty");
        match v.get("data") {
            Some(PropertyValue::ValueSet(d)) => {
                assert_eq!(string(d, "caller"), "Forged.Package_8wekyb3d8bbwe", "data arrived")
            }
            other => panic!("no data echoed: {other:?}"),
        }
    });
    // A packaged caller of another publisher (confined), claiming another package: the target
    // sees its real family name.
    let out = b.cli_ok(&[
        "launch".as_ref(),
        "--wait".as_ref(),
        caller.as_ref(),
        "--".as_ref(),
        "call".as_ref(),
        "probe-results:echo".as_ref(),
        target.as_ref(),
        "caller=Forged.Package_8wekyb3d8bbwe".as_ref(),
    ]);
    assert!(out.contains(&format!("result Success reported=true caller={caller} ")), "{out}");
}

#[test]
fn a_second_report_is_refused_and_the_first_one_wins() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    rt().block_on(async {
        let session = b.session();
        let r =
            Launcher::launch_uri_for_results(&session, "probe-results:twice", &to(&target), None)
                .await
                .unwrap();
        assert_eq!(r.status, LaunchUriStatus::Success);
        assert!(string(r.result.as_ref().unwrap(), "uri").starts_with("probe-results:twice"));
    });
    wait_for(|| b.app_log(&target).contains("second report: "), "the probe tried again");
    let log = b.app_log(&target);
    assert!(!log.contains("second report: accepted"), "{log}");
    assert!(log.contains("second report: HRESULT 0x80070005"), "{log}");
    let why = b.cli_ok(&["--json".as_ref(), "why".as_ref()]);
    assert!(why.contains("report-completed"), "the refusal is in the decision log: {why}");
}

#[test]
fn a_target_that_exits_or_is_killed_completes_the_call_without_a_result() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    rt().block_on(async {
        let session = b.session();
        let r =
            Launcher::launch_uri_for_results(&session, "probe-results:exit", &to(&target), None)
                .await
                .unwrap();
        assert_eq!((r.status, r.result), (LaunchUriStatus::Success, None));

        // A target that hangs and is killed: the caller still gets its answer.
        let s2 = session.clone();
        let t2 = target.clone();
        let call = tokio::spawn(async move {
            Launcher::launch_uri_for_results(&s2, "probe-results:hang", &to(&t2), None).await
        });
        let mut pids = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while pids.is_empty() {
            assert!(Instant::now() < deadline, "the hanging target started");
            tokio::time::sleep(Duration::from_millis(20)).await;
            pids = processes_of(&session, &target).await;
        }
        // Killed from outside (as a user closing it would).
        assert_eq!(kill(pids[0]), 0, "kill");
        let r =
            tokio::time::timeout(Duration::from_secs(20), call).await.unwrap().unwrap().unwrap();
        assert_eq!((r.status, r.result), (LaunchUriStatus::Success, None));
    });
}

/// SIGKILL through the kill command (this test crate has no unsafe code).
fn kill(pid: u32) -> i32 {
    let s = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    s.code().unwrap_or(-1)
}

#[test]
fn a_caller_that_goes_away_cancels_the_operation() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    rt().block_on(async {
        let watcher = b.session();
        let caller = b.session();
        let t = target.clone();
        let call = tokio::spawn(async move {
            Launcher::launch_uri_for_results(&caller, "probe-results:cancel", &to(&t), None).await
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while processes_of(&watcher, &target).await.is_empty() {
            assert!(Instant::now() < deadline, "the target started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The caller's session goes with its task.
        call.abort();
        let _ = call.await;
    });
    wait_for(|| b.app_log(&target).contains("report after cancel: "), "the target heard");
    let log = b.app_log(&target);
    assert!(log.contains("probe: canceled"), "{log}");
    assert!(!log.contains("report after cancel: accepted"), "{log}");
}

#[test]
fn a_flood_of_pending_launches_is_bounded_per_session() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    rt().block_on(async {
        let session = b.session();
        // One running instance that registered takes every later activation (single
        // instance), so the flood starts no processes.
        let first = Launcher::launch_uri_for_results(
            &session,
            "probe-results:register",
            &to(&target),
            None,
        )
        .await
        .unwrap();
        assert!(first.result.is_some());
        let flood = b.session();
        let mut held = Vec::new();
        for _ in 0..16 {
            let (s, t) = (flood.clone(), target.clone());
            held.push(tokio::spawn(async move {
                Launcher::launch_uri_for_results(&s, "probe-results:register-hold", &to(&t), None)
                    .await
            }));
        }
        // The broker accepted 16 (the instance holds them all); the 17th is refused with
        // ERROR_NOT_ENOUGH_QUOTA.
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.app_log(&target).matches("probe: holding").count() < 16 {
            assert!(Instant::now() < deadline, "the instance holds 16:\n{}", b.app_log(&target));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let e = Launcher::launch_uri_for_results(&flood, "probe-results:x", &to(&target), None)
            .await
            .unwrap_err();
        assert_eq!(e.windows_code(), WindowsCode::Win32(1816), "{e}");
        assert!(held.iter().all(|h| !h.is_finished()), "all 16 still wait");
        assert_eq!(processes_of(&session, &target).await.len(), 1, "one instance served them all");
        for h in held {
            h.abort();
        }
        // Another session is not affected by that one's flood.
        let other = b.session();
        let r = Launcher::launch_uri_for_results(&other, "probe-results:again", &to(&target), None)
            .await
            .unwrap();
        assert_eq!(r.target_pid, first.target_pid, "the registered instance answered");
        assert_eq!(string(r.result.as_ref().unwrap(), "uri"), "probe-results:again");
    });
}

/// Many sessions of one caller (here: the user's unpackaged processes) cannot add up to more
/// pending launches than `[limits] launches-for-results-per-package` (64): the per-session cap
/// alone let 1024 sessions × 16 wait at once. Another package's caller is not affected.
#[test]
fn a_flood_of_pending_launches_from_many_sessions_is_bounded_per_package() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    let caller = install(&b, CALLER);
    rt().block_on(async {
        let session = b.session();
        let first = Launcher::launch_uri_for_results(
            &session,
            "probe-results:register",
            &to(&target),
            None,
        )
        .await
        .unwrap();
        assert!(first.result.is_some());
        let mut held = Vec::new();
        let mut sessions = Vec::new();
        for _ in 0..4 {
            let flood = b.session();
            for _ in 0..16 {
                let (s, t) = (flood.clone(), target.clone());
                held.push(tokio::spawn(async move {
                    Launcher::launch_uri_for_results(
                        &s,
                        "probe-results:register-hold",
                        &to(&t),
                        None,
                    )
                    .await
                }));
            }
            sessions.push(flood);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.app_log(&target).matches("probe: holding").count() < 64 {
            assert!(Instant::now() < deadline, "the instance holds 64:\n{}", b.app_log(&target));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A fresh session of the same (unpackaged) caller: refused, though it waits for none.
        let fresh = b.session();
        let e = Launcher::launch_uri_for_results(&fresh, "probe-results:x", &to(&target), None)
            .await
            .unwrap_err();
        assert_eq!(e.windows_code(), WindowsCode::Win32(1816), "{e}");
        assert!(held.iter().all(|h| !h.is_finished()), "all 64 still wait");
        // A caller of another package is served.
        let out = b.run_app(&caller, &["call", "probe-results:other", &target]);
        assert!(out.contains("result Success reported=true"), "{out}");
        for h in held {
            h.abort();
        }
    });
}

#[test]
fn oversized_data_is_refused_both_ways() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    rt().block_on(async {
        let session = b.session();
        let mut big = ValueSet::new();
        big.insert("blob", PropertyValue::UInt8Array(vec![1; 101 * 1024]));
        let e = Launcher::launch_uri_for_results(
            &session,
            "probe-results:echo",
            &to(&target),
            Some(big),
        )
        .await
        .unwrap_err();
        assert_eq!(e.windows_code(), E_INVALIDARG, "{e}");
        assert!(e.to_string().contains("file tokens"), "{e}");
        assert!(processes_of(&session, &target).await.is_empty(), "nothing was launched");
        // Exactly at the limit is fine.
        let mut fits = ValueSet::new();
        fits.insert("blob", PropertyValue::UInt8Array(vec![1; 90 * 1024]));
        let r = Launcher::launch_uri_for_results(
            &session,
            "probe-results:echo",
            &to(&target),
            Some(fits),
        )
        .await
        .unwrap();
        assert_eq!(r.status, LaunchUriStatus::Success);
        // The target's oversized result is refused to the target, which then reports a small one.
        let r = Launcher::launch_uri_for_results(&session, "probe-results:big", &to(&target), None)
            .await
            .unwrap();
        let refused = string(r.result.as_ref().expect("the small report"), "big_refused");
        assert!(refused.contains("0x80070057") && refused.contains("file tokens"), "{refused}");
    });
    let log = b.app_log(&target);
    assert!(log.contains("probe: huge report: HRESULT 0x80070057"), "{log}");
}

#[test]
fn hostile_uris_are_refused_before_anything_starts() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    rt().block_on(async {
        let session = b.session();
        let long = format!("probe-results:{}", "x".repeat(3000));
        for uri in [
            "probe-results:\u{1b}[2J",
            "probe-results:a\0b",
            "probe-results:a\nb",
            "probe-results:a b",
            "probe results:x",
            "no-colon",
            "",
            long.as_str(),
        ] {
            let e = Launcher::launch_uri_for_results(&session, uri, &to(&target), None)
                .await
                .unwrap_err();
            assert_eq!(e.windows_code(), E_INVALIDARG, "{uri:?}: {e}");
            let e =
                Launcher::launch_uri(&session, uri, &LauncherOptions::default()).await.unwrap_err();
            assert_eq!(e.windows_code(), E_INVALIDARG, "{uri:?}: {e}");
        }
        assert!(processes_of(&session, &target).await.is_empty(), "nothing was launched");
        // The broker is still fine.
        assert!(
            Launcher::launch_uri(&session, "probe-plain:ok", &LauncherOptions::default())
                .await
                .unwrap()
        );
    });
}

#[test]
fn every_status_and_the_return_results_rules() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    rt().block_on(async {
        let s = b.session();
        let status = |uri: &'static str, pfn: &str, fr: bool| {
            let (s, o) = (s.clone(), to(pfn));
            async move {
                let r = if fr {
                    Launcher::launch_uri_for_results(&s, uri, &o, None).await
                } else {
                    Launcher::launch_uri_detailed(&s, uri, &o, None).await
                };
                r.unwrap().status
            }
        };
        assert_eq!(
            status("probe-results:x", "Not.There_8wekyb3d8bbwe", true).await,
            LaunchUriStatus::AppUnavailable
        );
        assert_eq!(
            status("undeclared:x", &target, true).await,
            LaunchUriStatus::ProtocolUnavailable
        );
        // return-results = "none": not for results; "always": not plainly; "optional": both.
        assert_eq!(
            status("probe-plain:x", &target, true).await,
            LaunchUriStatus::ProtocolUnavailable
        );
        assert_eq!(
            status("probe-results:x", &target, false).await,
            LaunchUriStatus::ProtocolUnavailable
        );
        assert_eq!(status("probe-both:echo", &target, true).await, LaunchUriStatus::Success);
        assert_eq!(status("probe-both:plain", &target, false).await, LaunchUriStatus::Success);
        // Without a target: E_INVALIDARG for results and for data, nothing launched.
        let none = LauncherOptions::default();
        let e =
            Launcher::launch_uri_for_results(&s, "probe-results:x", &none, None).await.unwrap_err();
        assert_eq!(e.windows_code(), E_INVALIDARG);
        let e = Launcher::launch_uri_with_data(&s, "probe-plain:x", &none, ValueSet::new())
            .await
            .unwrap_err();
        assert_eq!(e.windows_code(), E_INVALIDARG);
        // A plain launch by scheme alone, and one with data to a named target.
        assert!(Launcher::launch_uri(&s, "probe-plain:first", &none).await.unwrap());
        let mut d = ValueSet::new();
        d.insert("k", 1i32);
        assert!(
            Launcher::launch_uri_with_data(&s, "probe-plain:second", &to(&target), d)
                .await
                .unwrap()
        );
        assert!(!Launcher::launch_uri(&s, "nobody-handles:x", &none).await.unwrap());
        // Query support and the handlers, by kind.
        use LaunchQuerySupportStatus as Q;
        use LaunchQuerySupportType::{Uri, UriForResults};
        let q = |uri: &'static str, k, pfn: Option<&str>| {
            let (s, pfn) = (s.clone(), pfn.map(str::to_owned));
            async move { Launcher::query_uri_support(&s, uri, k, pfn.as_deref()).await.unwrap() }
        };
        assert_eq!(q("probe-results:x", UriForResults, None).await, Q::Available);
        assert_eq!(q("probe-results:x", Uri, None).await, Q::NotSupported);
        assert_eq!(q("probe-plain:x", UriForResults, Some(&target)).await, Q::NotSupported);
        assert_eq!(q("nobody:x", Uri, None).await, Q::AppNotInstalled);
        assert_eq!(
            q("probe-plain:x", Uri, Some("Not.There_8wekyb3d8bbwe")).await,
            Q::AppNotInstalled
        );
        let h = Launcher::find_uri_scheme_handlers(&s, "probe-both", UriForResults).await.unwrap();
        assert_eq!(h.len(), 1);
        assert_eq!(
            (h[0].package_family_name.as_str(), h[0].return_results.as_str()),
            (target.as_str(), "optional")
        );
        assert!(
            Launcher::find_uri_scheme_handlers(&s, "probe-plain", UriForResults)
                .await
                .unwrap()
                .is_empty()
        );
    });
    wait_for(
        || b.app_log(&target).contains("plain probe-plain:second caller= data=k"),
        "data arrived",
    );
    assert!(b.app_log(&target).contains("plain probe-plain:first caller= data="));
}

#[test]
fn a_file_token_in_the_input_is_redeemed_by_the_target() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    rt().block_on(async {
        let session = b.session();
        let path = b.root.path().join("photo.txt");
        std::fs::write(&path, "the picture, larger than a ValueSet would carry").unwrap();
        let token =
            SharedStorageAccessManager::add_file(&session, &std::fs::File::open(&path).unwrap())
                .await
                .unwrap();
        let mut data = ValueSet::new();
        data.insert("token", token.as_str());
        let r = Launcher::launch_uri_for_results(
            &session,
            "probe-results:redeem",
            &to(&target),
            Some(data),
        )
        .await
        .unwrap();
        let content = string(r.result.as_ref().unwrap(), "content");
        assert_eq!(content, "the picture, larger than a ValueSet would carry");
    });
}

/// The unprivileged half: the broker and the CLI run as the test user (`scripts/test.sh`
/// creates it), the caller is the CLI.
#[test]
fn as_the_unprivileged_user_through_the_cli() {
    let Some((uid, gid)) = test_user() else {
        eprintln!("skipped: no user appipc-test (scripts/test.sh creates it)");
        return;
    };
    let b = TestBroker::start_as(uid, gid, &[]);
    let target = install(&b, TARGET);
    let out = b.cli_ok(&[
        "--json".as_ref(),
        "launch-uri".as_ref(),
        "probe-results:echo".as_ref(),
        "--for-results".as_ref(),
        "--target".as_ref(),
        target.as_ref(),
        "--json-data".as_ref(),
        r#"{"n": 5}"#.as_ref(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "Success", "{out}");
    assert_eq!(v["result"]["caller"]["String"], "", "{out}");
    assert_eq!(v["result"]["data"]["ValueSet"]["n"]["Int32"], 5, "{out}");
    let out = b.cli().args(["launch-uri", "probe-results:x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(69), "ProtocolUnavailable: always needs for-results");
    let out = b.cli().args(["launch-uri", "probe-results:x", "--for-results"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64), "E_INVALIDARG without --target");
}

/// The unprivileged test user, when this test can start a broker as it (as root).
fn test_user() -> Option<(u32, u32)> {
    if !rustix_is_root() {
        return None;
    }
    appipc_testkit::test_user()
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

/// Splits a desktop entry's `Exec` line as the Desktop Entry Specification quotes it, and puts
/// the URI in place of `%u` (what `xdg-open` does once the desktop picked the entry).
fn exec_line(exec: &str, uri: &str) -> Vec<String> {
    let (mut args, mut cur, mut quoted, mut escaped, mut any) =
        (Vec::new(), String::new(), false, false, false);
    for c in exec.chars() {
        match c {
            _ if escaped => {
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any || !cur.is_empty() {
                    args.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        args.push(cur);
    }
    args.into_iter()
        .map(|a| if a == "%u" { uri.to_owned() } else { a.replace("%%", "%") })
        .collect()
}

#[test]
fn scheme_handlers_appear_with_the_package_and_go_with_it() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    let dir = b.home.join("applications");
    let entry =
        |scheme: &str| dir.join(format!("appipc-{}-{scheme}.desktop", target.to_ascii_lowercase()));
    // Plain launches only: a desktop cannot launch for results.
    assert!(entry("probe-plain").is_file() && entry("probe-both").is_file(), "{dir:?}");
    assert!(!entry("probe-results").exists(), "return-results = always gets no entry");
    let text = std::fs::read_to_string(entry("probe-plain")).unwrap();
    assert!(text.contains("MimeType=x-scheme-handler/probe-plain;"), "{text}");
    // What xdg-open runs for probe-plain:… once the desktop picked this entry.
    let exec = text.lines().find_map(|l| l.strip_prefix("Exec=")).expect("an Exec line");
    let argv = exec_line(exec, "probe-plain:from-the-desktop");
    let mut cmd = std::process::Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    b.apply_env(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    wait_for(
        || b.app_log(&target).contains("plain probe-plain:from-the-desktop caller= data="),
        "the desktop's activation reached the package",
    );
    b.cli_ok(&["remove".as_ref(), target.as_ref()]);
    assert!(!entry("probe-plain").exists() && !entry("probe-both").exists(), "removed with it");
}

#[test]
fn a_target_that_cannot_start_is_unknown() {
    // One process per package: while the first target waits, a second cannot start.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "[limits]\nprocesses-per-package = 1\n").unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", config.to_str().unwrap())]);
    let target = install(&b, TARGET);
    rt().block_on(async {
        let session = b.session();
        let (s, t) = (session.clone(), target.clone());
        let held = tokio::spawn(async move {
            Launcher::launch_uri_for_results(&s, "probe-results:hang", &to(&t), None).await
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while processes_of(&session, &target).await.is_empty() {
            assert!(Instant::now() < deadline, "the first target started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let r = Launcher::launch_uri_detailed(&session, "probe-plain:x", &to(&target), None)
            .await
            .unwrap();
        assert_eq!(r.status, LaunchUriStatus::Unknown, "{r:?}");
        assert!(r.extended_error.unwrap_or_default().contains("processes-per-package"));
        held.abort();
    });
}

#[test]
fn a_broker_restart_ends_the_operation_with_a_retryable_error() {
    let mut b = TestBroker::start();
    let target = install(&b, TARGET);
    let rt = rt();
    let _in = rt.enter();
    let session = b.session();
    let (s, t) = (session.clone(), target.clone());
    let call = rt.spawn(async move {
        Launcher::launch_uri_for_results(&s, "probe-results:hang", &to(&t), None).await
    });
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while processes_of(&session, &target).await.is_empty() {
            assert!(Instant::now() < deadline, "the target started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    b.kill();
    b.restart();
    let r = rt.block_on(async { tokio::time::timeout(Duration::from_secs(30), call).await });
    let e = r.expect("answered, not a hang").unwrap().expect_err("the operation ended");
    assert!(e.is_retryable(), "{e}");
}

#[test]
fn a_web_link_from_an_app_container_goes_to_the_desktops_handler_and_a_file_link_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let opened = dir.path().join("opened");
    let opener = dir.path().join("xdg-open");
    std::fs::write(&opener, format!("#!/bin/sh\necho \"$1\" >> {}\n", opened.display())).unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_URI_OPENER", opener.to_str().unwrap())]);
    let caller = install(&b, CALLER);
    let open = |uri: &str| {
        b.cli_ok(&[
            "launch".as_ref(),
            "--wait".as_ref(),
            caller.as_ref(),
            "--".as_ref(),
            "open".as_ref(),
            uri.as_ref(),
        ])
    };
    assert!(open("https://example.com/a?b=c").contains("-> Success"));
    assert!(open("file:///etc/passwd").contains("-> ProtocolUnavailable"));
    assert!(open("ssh://host").contains("-> ProtocolUnavailable"));
    let got = std::fs::read_to_string(&opened).unwrap();
    assert_eq!(got, "https://example.com/a?b=c\n", "only the web link was handed over");
    assert!(b.log().contains("handed to the desktop's handler"), "logged");
}

/// A desktop handler that does not return (an `xdg-open` that waits for the browser it
/// started, a hung one) must not hold the broker's blocking threads: a caller that floods web
/// links gets `ERROR_NOT_ENOUGH_QUOTA` (1816) once it has `4` handlers running, the broker goes
/// on serving (a launch for results journals its target in the blocking pool), and another
/// package's link still opens.
#[test]
fn a_flood_of_web_links_to_a_hung_desktop_handler_holds_no_broker_threads() {
    let dir = tempfile::tempdir().unwrap();
    let opened = dir.path().join("opened");
    let opener = dir.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\necho \"$1\" >> {}\nexec sleep 120\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_URI_OPENER", opener.to_str().unwrap())]);
    let target = install(&b, TARGET);
    let caller = install(&b, CALLER);
    rt().block_on(async {
        let session = b.session();
        let mut flood = Vec::new();
        for i in 0..8 {
            let s = session.clone();
            flood.push(tokio::spawn(async move {
                let uri = format!("https://example.com/{i}");
                Launcher::launch_uri_detailed(&s, &uri, &LauncherOptions::default(), None).await
            }));
        }
        let mut refused = 0;
        for h in flood {
            let r = tokio::time::timeout(Duration::from_secs(30), h)
                .await
                .expect("a web link is answered even when its handler hangs")
                .unwrap();
            match r {
                Ok(r) => assert_eq!(r.status, LaunchUriStatus::Success, "{r:?}"),
                Err(e) => {
                    assert_eq!(e.windows_code(), WindowsCode::Win32(1816), "{e}");
                    refused += 1;
                }
            }
        }
        assert_eq!(refused, 4, "4 handlers run for one caller, the other 4 are refused");
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            Launcher::launch_uri_for_results(&session, "probe-results:echo", &to(&target), None),
        )
        .await
        .expect("the broker still starts targets")
        .unwrap();
        assert!(r.result.is_some(), "{r:?}");
    });
    let out = b.run_app(&caller, &["open", "https://example.com/other"]);
    assert!(out.contains("-> Success"), "{out}");
    let got = std::fs::read_to_string(&opened).unwrap();
    assert_eq!(got.lines().count(), 5, "{got}");
}

/// A `mailto:` link handed to the desktop may not ask the mail client to attach files
/// (`attach=`, `attachment=`, however spelled or percent-encoded): mail clients that honour it
/// (the "mailto: me your secrets" attacks) would attach the host's files, outside any sandbox,
/// for an app container. Refused with `E_INVALIDARG`, nothing run; a plain mailto: still opens.
#[test]
fn a_mailto_link_that_attaches_host_files_is_not_handed_to_the_desktop() {
    let dir = tempfile::tempdir().unwrap();
    let opened = dir.path().join("opened");
    let opener = dir.path().join("xdg-open");
    std::fs::write(&opener, format!("#!/bin/sh\necho \"$1\" >> {}\n", opened.display())).unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_URI_OPENER", opener.to_str().unwrap())]);
    rt().block_on(async {
        let session = b.session();
        for uri in [
            "mailto:x@example.com?subject=hi&attach=/home/me/.ssh/id_rsa",
            "mailto:x@example.com?ATTACHMENT=file:///etc/shadow",
            "mailto:x@example.com?body=a;%61ttach=%2Fetc%2Fpasswd",
            "MAILTO:x@example.com?Attach%3d=/etc/passwd",
        ] {
            let e = Launcher::launch_uri_detailed(&session, uri, &LauncherOptions::default(), None)
                .await
                .expect_err(uri);
            assert_eq!(e.windows_code(), E_INVALIDARG, "{uri}: {e}");
        }
        let ok = "mailto:x@example.com?subject=attached%20files&body=see%20attach";
        let r = Launcher::launch_uri_detailed(&session, ok, &LauncherOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(r.status, LaunchUriStatus::Success);
    });
    let got = std::fs::read_to_string(&opened).unwrap();
    assert_eq!(got, "mailto:x@example.com?subject=attached%20files&body=see%20attach\n");
}

/// Operation ids are sequential, so guessable: a process that is not the activated target
/// (here an unpackaged one, full trust) reporting a guessed id is refused, and the caller's
/// call is not completed by it.
#[test]
fn a_report_for_a_guessed_operation_id_from_another_process_is_refused() {
    let b = TestBroker::start();
    let target = install(&b, TARGET);
    rt().block_on(async {
        let session = b.session();
        let r =
            Launcher::launch_uri_for_results(&session, "probe-results:echo", &to(&target), None)
                .await
                .unwrap();
        let instance = string(r.result.as_ref().unwrap(), "instance");
        let last: u64 = instance.rsplit('-').next().unwrap().parse().unwrap();
        let (s2, t2) = (session.clone(), target.clone());
        let call = tokio::spawn(async move {
            Launcher::launch_uri_for_results(&s2, "probe-results:hang", &to(&t2), None).await
        });
        let mut pids = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while pids.is_empty() {
            assert!(Instant::now() < deadline, "the hanging target started");
            tokio::time::sleep(Duration::from_millis(20)).await;
            pids = processes_of(&session, &target).await;
        }
        let forger = b.session();
        for id in last..last + 4 {
            let mut forged = ValueSet::new();
            forged.insert("forged", "yes");
            let e = forger
                .call(appipc::wire::protocol::launcher::ReportCompleted {
                    operation_id: id,
                    data: Some(forged),
                })
                .await
                .expect_err("a forged report");
            assert_eq!(e.windows_code(), WindowsCode::HResult(0x8007_0005), "{id}: {e}");
        }
        assert!(!call.is_finished(), "the forged reports did not complete the call");
        assert_eq!(kill(pids[0]), 0);
        let r =
            tokio::time::timeout(Duration::from_secs(20), call).await.unwrap().unwrap().unwrap();
        assert_eq!((r.status, r.result), (LaunchUriStatus::Success, None), "no forged result");
    });
}

/// A package cannot inject lines into its desktop entries (a display name with newlines is
/// refused by the manifest reader; one with `%u`, `\n` and `Exec=` stays in its `Name=`), and a scheme no URI can have (RFC 3986: a scheme starts with a letter; `--target`
/// or `9lives` are valid Windows protocol names) gets no entry, whose `%u` would be an option to
/// `appipc launch-uri`.
#[test]
fn a_manifest_cannot_inject_into_or_misuse_its_desktop_entries() {
    let b = TestBroker::start();
    let target = install(
        &b,
        r#"
[package]
name = "Test.ProtocolInjector"
publisher = "CN=Injector"
version = "1.0.0.0"
display-name = "Evil %u Exec=/bin/sh \\n[Desktop Action x]"

[[application]]
id = "App"
executable = "bin/protocol-probe"

[[application.protocol]]
name = "inject-me"

[[application.protocol]]
name = "--target"

[[application.protocol]]
name = "9lives"
"#,
    );
    let dir = b.home.join("applications");
    let family = target.to_ascii_lowercase();
    let text = std::fs::read_to_string(dir.join(format!("appipc-{family}-inject-me.desktop")))
        .expect("the entry of inject-me");
    assert_eq!(text.lines().filter(|l| l.starts_with("Exec=")).count(), 1, "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with('[')).count(), 1, "{text}");
    assert!(
        text.contains("Name=Evil %u Exec=/bin/sh \\\\n[Desktop Action x] (inject-me:)\n"),
        "{text}"
    );
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec![format!("appipc-{family}-inject-me.desktop")], "{names:?}");
}
