//! App services end to end: a real broker, the real example provider and client packages,
//! real host processes started on demand.

use std::time::{Duration, Instant};

use appipc::app_service::{
    AppServiceCatalog, AppServiceClosedStatus, AppServiceConnection, AppServiceConnectionStatus,
    AppServiceResponseStatus, StatelessAppServiceResponseStatus, User,
};
use appipc::wire::{DateTime, Guid, Point, PropertyValue, Rect, Size, TimeSpan, ValueSet};
use appipc::{ActivateOptions, ApplicationActivationManager, PackageManager, Session};
use appipc_testkit::{
    CONTOSO_SERVICES, FABRIKAM_CLIENT, TestBroker, assemble_manifest, bin_dir, unique,
};

const ECHO: &str = "com.contoso.echo";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn open(session: &Session, pfn: &str, name: &str) -> AppServiceConnection {
    let mut c = AppServiceConnection::new(pfn, name);
    assert_eq!(c.open(session).await, AppServiceConnectionStatus::Success, "open {name}");
    c
}

fn int(v: &ValueSet, k: &str) -> Option<i64> {
    match v.get(k)? {
        PropertyValue::UInt32(x) => Some(i64::from(*x)),
        PropertyValue::Int32(x) => Some(i64::from(*x)),
        PropertyValue::UInt64(x) => i64::try_from(*x).ok(),
        _ => None,
    }
}

fn string(v: &ValueSet, k: &str) -> Option<String> {
    v.get(k).and_then(|x| x.as_string()).map(str::to_owned)
}

fn every_type() -> ValueSet {
    let g: Guid = "6b29fc40-ca47-1067-b31d-00dd010662da".parse().unwrap();
    let mut nested = ValueSet::new();
    nested.insert("inner", PropertyValue::Int64(-5));
    let values = vec![
        PropertyValue::Empty,
        PropertyValue::UInt8(200),
        PropertyValue::Int16(-300),
        PropertyValue::UInt16(60000),
        PropertyValue::Int32(-70000),
        PropertyValue::UInt32(4_000_000_000),
        PropertyValue::Int64(i64::MIN),
        PropertyValue::UInt64(u64::MAX),
        PropertyValue::Single(1.5),
        PropertyValue::Double(-2.25),
        PropertyValue::Char16(0xD800),
        PropertyValue::Boolean(true),
        PropertyValue::String("ünïcode ✓".into()),
        PropertyValue::DateTime(DateTime::from_universal_time(132_000_000_000_000_000)),
        PropertyValue::TimeSpan(TimeSpan::from_ticks(-10)),
        PropertyValue::Guid(g),
        PropertyValue::Point(Point::new(1.0, 2.0)),
        PropertyValue::Size(Size { width: 3.0, height: 4.0 }),
        PropertyValue::Rect(Rect { x: 1.0, y: 2.0, width: 3.0, height: 4.0 }),
        PropertyValue::UInt8Array(vec![0, 1, 255]),
        PropertyValue::Int16Array(vec![-1, 2]),
        PropertyValue::UInt16Array(vec![1, 65535]),
        PropertyValue::Int32Array(vec![i32::MIN]),
        PropertyValue::UInt32Array(vec![u32::MAX]),
        PropertyValue::Int64Array(vec![1, -1]),
        PropertyValue::UInt64Array(vec![u64::MAX]),
        PropertyValue::SingleArray(vec![0.5]),
        PropertyValue::DoubleArray(vec![0.25, 1e300]),
        PropertyValue::Char16Array(vec![0x41, 0xDC00]),
        PropertyValue::BooleanArray(vec![true, false]),
        PropertyValue::StringArray(vec!["a".into(), String::new()]),
        PropertyValue::DateTimeArray(vec![DateTime::UNIX_EPOCH]),
        PropertyValue::TimeSpanArray(vec![TimeSpan::from_ticks(1)]),
        PropertyValue::GuidArray(vec![g, Guid::NULL]),
        PropertyValue::PointArray(vec![Point::new(0.0, -1.0)]),
        PropertyValue::SizeArray(vec![Size { width: 1.0, height: 1.0 }]),
        PropertyValue::RectArray(vec![Rect { x: 0.0, y: 0.0, width: 2.0, height: 2.0 }]),
        PropertyValue::ValueSet(nested),
    ];
    let mut vs = ValueSet::new();
    for (i, v) in values.into_iter().enumerate() {
        vs.insert(format!("k{i:02}_{:?}", v.property_type()), v);
    }
    vs
}

#[test]
fn every_type_round_trips_and_the_caller_is_attested() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let conn = open(&session, &provider, ECHO).await;
        let mut sent = every_type();
        // A client cannot forge who it is: the provider overwrites "caller" with what the
        // broker attested (empty for an unpackaged caller).
        sent.insert("caller", "Forged.Package_8wekyb3d8bbwe");
        let r = conn.send_message(sent.clone()).await;
        assert_eq!(r.status, AppServiceResponseStatus::Success);
        assert_eq!(string(&r.message, "caller").as_deref(), Some(""));
        assert_eq!(string(&r.message, "activation").as_deref(), Some("appservice"));
        for (k, v) in sent.iter().filter(|(k, _)| k.starts_with('k')) {
            assert_eq!(r.message.get(k), Some(v), "{k} kept its exact type and value");
        }
        // The packaged client of another publisher is named by its family name.
        let client = b.install(&FABRIKAM_CLIENT).await.family_name;
        let (code, out, err) = launch_wait(&b, &client, &[]);
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!("{ECHO} in {provider}: Success (0) caller=String(\"{client}\")")),
            "{out}"
        );
        assert!(
            out.contains("com.contoso.inproc") && out.contains("activation=String(\"background\")"),
            "{out}"
        );
        assert!(
            out.contains("callBack=ValueSet({\"answer\": String(\"Fabrikam's echo client\")})"),
            "{out}"
        );
        assert!(out.contains("com.contoso.nope: open refused: AppServiceUnavailable (3)"), "{out}");
    });
}

fn launch_wait(b: &TestBroker, target: &str, args: &[&str]) -> (i32, String, String) {
    let mut cmd = b.cli();
    cmd.args(["launch", "--wait", target, "--"]).args(args);
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn open_statuses_match_windows() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let status = |pfn: String, name: &'static str| {
            let session = session.clone();
            async move { AppServiceConnection::new(pfn, name).open(&session).await }
        };
        assert_eq!(
            status("Nope.App_8wekyb3d8bbwe".into(), ECHO).await,
            AppServiceConnectionStatus::AppNotInstalled
        );
        assert_eq!(
            status("not a pfn".into(), ECHO).await,
            AppServiceConnectionStatus::AppNotInstalled
        );
        assert_eq!(
            status(provider.clone(), "com.contoso.nope").await,
            AppServiceConnectionStatus::AppServiceUnavailable
        );
        // Service names match case-insensitively, as on Windows.
        assert_eq!(
            status(provider.clone(), "COM.Contoso.Echo").await,
            AppServiceConnectionStatus::Success
        );
        // An unpackaged caller to a service that refuses them.
        assert_eq!(
            status(provider.clone(), "com.contoso.echo.private").await,
            AppServiceConnectionStatus::NotAuthorized
        );
        assert_eq!(AppServiceConnectionStatus::NotAuthorized.value(), 7);

        // A host that never registers (its executable is not a provider): AppUnavailable.
        let broken = CONTOSO_SERVICES
            .manifest
            .replace("name = \"Contoso.Services\"", "name = \"Contoso.Broken\"")
            .replace("entry-point = \"bin/echo-service\"", "entry-point = \"bin/hello-app\"");
        let dir =
            assemble_manifest(&broken, &b.root.path().join(unique("broken")), &bin_dir()).unwrap();
        let broken_pfn = PackageManager::new(&session).add_package(&dir).await.unwrap().family_name;
        let t = Instant::now();
        assert_eq!(status(broken_pfn, ECHO).await, AppServiceConnectionStatus::AppUnavailable);
        assert!(
            t.elapsed() < Duration::from_secs(9),
            "reported when the host exits, not after the start timeout"
        );
        assert!(b.log().contains("exited before it registered"), "{}", b.log());
    });
}

/// Which host process answered (pids do not tell: each app container is pid 1 of its own
/// pid namespace).
async fn instance_of(c: &AppServiceConnection) -> i64 {
    int(&c.send_message(ValueSet::new()).await.message, "instance").unwrap()
}

#[test]
fn single_and_multiple_instances() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let a = open(&session, &provider, ECHO).await;
        let b2 = open(&session, &provider, ECHO).await;
        assert_eq!(
            instance_of(&a).await,
            instance_of(&b2).await,
            "one host serves every connection"
        );
        let m1 = open(&session, &provider, "com.contoso.echo.multi").await;
        let m2 = open(&session, &provider, "com.contoso.echo.multi").await;
        assert_ne!(
            instance_of(&m1).await,
            instance_of(&m2).await,
            "SupportsMultipleInstances: a process per connection"
        );
    });
}

#[test]
fn provider_crash_mid_request_and_client_sees_service_closed() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let conn = open(&session, &provider, ECHO).await;
        let other = open(&session, &provider, ECHO).await;
        let mut crash = ValueSet::new();
        crash.insert("$crash", true);
        let t = Instant::now();
        let r = conn.send_message(crash).await;
        assert_eq!(r.status, AppServiceResponseStatus::Failure);
        // Every connected client hears of it, promptly.
        assert_eq!(other.service_closed().await, AppServiceClosedStatus::Unknown);
        assert!(t.elapsed() < Duration::from_secs(5));
        // The next open starts a new host.
        let again = open(&session, &provider, ECHO).await;
        assert_eq!(
            again.send_message(ValueSet::new()).await.status,
            AppServiceResponseStatus::Success
        );
    });
}

#[test]
fn client_close_and_client_exit_reach_the_provider() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let mut conn = open(&session, &provider, ECHO).await;
        assert_eq!(
            conn.send_message(ValueSet::new()).await.status,
            AppServiceResponseStatus::Success
        );
        conn.close();
        wait_for(
            || b.app_log(&provider).contains("connection closed (Canceled (1))"),
            "provider saw Canceled",
        );

        // A client process killed while its request is in flight.
        let mut cmd = b.cli();
        cmd.args([
            "app-service",
            "call",
            &provider,
            ECHO,
            "--message",
            r#"{"$delay_ms": {"UInt32": 5000}}"#,
        ]);
        let mut child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
        wait_for(|| connections(&b) == 1, "the CLI's connection is open");
        child.kill().unwrap();
        child.wait().unwrap();
        wait_for(|| connections(&b) == 0, "the host reported the lost connection");
    });
}

fn connections(b: &TestBroker) -> usize {
    let out = b.cli().args(["app-service", "list", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["connections"].as_array().map(Vec::len).unwrap_or(0)
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An application the broker started in the background for its in-process service idles
/// after its last connection, then is canceled (`IdleTask`) and stopped.
#[test]
fn idle_host_is_canceled_with_a_reason_then_stopped() {
    let b = TestBroker::start_with_env(&[
        ("APPIPC_APP_SERVICE_IDLE_MS", "300"),
        ("APPIPC_APP_SERVICE_GRACE_MS", "3000"),
    ]);
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let pm = PackageManager::new(&session);
        let mut conn = open(&session, &provider, "com.contoso.inproc").await;
        // While a connection exists the host stays, however long.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            conn.send_message(ValueSet::new()).await.status,
            AppServiceResponseStatus::Success
        );
        assert_eq!(pm.running_processes().await.unwrap().len(), 1);
        conn.close();
        wait_for(
            || b.app_log(&provider).contains("canceled: IdleTask (4)"),
            "the host was told why",
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !pm.running_processes().await.unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the idle host is gone");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// Windows cancels the background task that served a connection when its client disposes
/// it ("The task is canceled when the client app disposes the AppServiceConnection",
/// how-to-create-and-consume-an-app-service), and an out-of-process host whose tasks all ended
/// goes away. The idle timeout is made far longer than the test: only the last close may stop
/// the host.
#[test]
fn client_close_cancels_the_task_and_ends_an_out_of_process_host() {
    let b = TestBroker::start_with_env(&[("APPIPC_APP_SERVICE_IDLE_MS", "3600000")]);
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let pm = PackageManager::new(&session);
        // The user launched the app: it serves its in-process service and must stay.
        let (app_pid, _) = ApplicationActivationManager::new(&session)
            .activate_application(&provider, &[], ActivateOptions::default())
            .await
            .unwrap();
        wait_for(
            || {
                b.log().contains(&format!(
                    "service=com.contoso.inproc package={provider} pid={app_pid}"
                ))
            },
            "app registered",
        );
        let mut inproc = open(&session, &provider, "com.contoso.inproc").await;
        let mut a = open(&session, &provider, ECHO).await;
        let mut a2 = open(&session, &provider, ECHO).await;
        for c in [&inproc, &a, &a2] {
            assert_eq!(
                c.send_message(ValueSet::new()).await.status,
                AppServiceResponseStatus::Success
            );
        }
        assert_eq!(pm.running_processes().await.unwrap().len(), 2, "the app and one echo host");
        inproc.close();
        a.close();
        let deadline = Instant::now() + Duration::from_secs(15);
        while b.app_log(&provider).matches("task canceled: Abort (0)").count() != 2 {
            assert!(
                Instant::now() < deadline,
                "timed out waiting until each closed connection's task was canceled (Abort); app log:\n{}\nbroker log:\n{}",
                b.app_log(&provider),
                b.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The host still serves a2.
        assert_eq!(
            a2.send_message(ValueSet::new()).await.status,
            AppServiceResponseStatus::Success
        );
        a2.close();
        let deadline = Instant::now() + Duration::from_secs(20);
        while pm.running_processes().await.unwrap().len() != 1 {
            assert!(Instant::now() < deadline, "the echo host ended with its last connection");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<u32> =
            pm.running_processes().await.unwrap().into_iter().map(|p| p.pid).collect();
        assert_eq!(left, [app_pid], "the launched app stays");
        // A new connection starts a new host.
        let again = open(&session, &provider, ECHO).await;
        assert_eq!(
            again.send_message(ValueSet::new()).await.status,
            AppServiceResponseStatus::Success
        );
    });
}

/// A provider whose task ends by itself (its last `BackgroundTaskDeferral` completed) closed
/// gracefully: the client sees `ServiceClosed(Completed)` (0, "The endpoint for the app service
/// closed gracefully", AppServiceClosedStatus).
#[test]
fn a_completed_task_closes_the_connection_completed() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let conn = open(&session, &provider, ECHO).await;
        let mut m = ValueSet::new();
        m.insert("$complete", true);
        m.insert("q", 5i32);
        let r = conn.send_message(m).await;
        assert_eq!(r.status, AppServiceResponseStatus::Success);
        assert_eq!(r.message.get("q"), Some(&PropertyValue::Int32(5)), "answered first");
        let closed = tokio::time::timeout(Duration::from_secs(30), conn.service_closed()).await;
        assert_eq!(closed.ok(), Some(AppServiceClosedStatus::Completed));
        assert_eq!(
            conn.send_message(ValueSet::new()).await.status,
            AppServiceResponseStatus::Failure
        );
        wait_for(
            || b.app_log(&provider).contains("connection closed (Completed (0))"),
            "the provider saw its own graceful close",
        );
    });
}

/// `AppServiceConnection.User` / `IBackgroundTaskInstance4.User`: the provider learns the
/// caller's user as the broker attests it; a caller may not connect as another user.
#[test]
fn the_callers_user_is_attested_and_another_user_is_refused() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let me = User::current();
        let mut conn = AppServiceConnection::new(&provider, ECHO);
        conn.user = Some(me.clone());
        assert_eq!(conn.open(&session).await, AppServiceConnectionStatus::Success);
        let r = conn.send_message(ValueSet::new()).await;
        assert_eq!(r.message.get("callerUid"), Some(&PropertyValue::UInt32(me.uid)));
        assert_eq!(string(&r.message, "callerUserName"), Some(me.name.clone().unwrap_or_default()));
        // Without a User set, the provider still learns the attested one.
        let plain = open(&session, &provider, ECHO).await;
        let r = plain.send_message(ValueSet::new()).await;
        assert_eq!(r.message.get("callerUid"), Some(&PropertyValue::UInt32(me.uid)));
        let mut other = AppServiceConnection::new(&provider, ECHO);
        other.user = Some(User { uid: me.uid.wrapping_add(1), name: None });
        assert_eq!(other.open(&session).await, AppServiceConnectionStatus::NotAuthorized);
        // Decided by the policy, so it is in the decision log `appipc why` reads.
        let asked = format!("as user {}", me.uid.wrapping_add(1));
        let out = b.cli().args(["why"]).output().unwrap();
        let why = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{why}");
        assert!(why.contains("REFUSED app_service.open") && why.contains(&asked), "{why}");
    });
}

#[test]
fn upgrade_and_removal_cancel_hosts_with_windows_reasons() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let conn = open(&session, &provider, ECHO).await;
        let v2 =
            CONTOSO_SERVICES.manifest.replace("version = \"1.0.0.0\"", "version = \"1.1.0.0\"");
        let dir = assemble_manifest(&v2, &b.root.path().join(unique("v2")), &bin_dir()).unwrap();
        PackageManager::new(&session).add_package(&dir).await.unwrap();
        wait_for(
            || b.app_log(&provider).contains("canceled: ServicingUpdate (3)"),
            "upgrade cancels",
        );
        // The canceled host closes its connections: the client hears Canceled.
        assert_eq!(conn.service_closed().await, AppServiceClosedStatus::Canceled);
        let again = open(&session, &provider, ECHO).await;
        assert_eq!(
            again.send_message(ValueSet::new()).await.status,
            AppServiceResponseStatus::Success
        );
        PackageManager::new(&session).remove_package(&provider).await.unwrap();
        assert_ne!(again.service_closed().await, AppServiceClosedStatus::Completed);
    });
}

#[test]
fn the_data_path_does_not_need_the_broker() {
    let b = TestBroker::start();
    let provider = rt().block_on(b.install(&CONTOSO_SERVICES)).family_name;
    let session = appipc::blocking::Session::connect_to(&b.socket()).unwrap();
    let mut conn = session.open_app_service(&provider, ECHO).unwrap();
    // One round trip first: a host started on demand still talks to the broker while it starts
    // up (a CI run stopped the broker in that window and hung); the data path is what follows.
    let mut msg = ValueSet::new();
    msg.insert("i", u32::MAX);
    assert_eq!(conn.send_message(&msg).status, AppServiceResponseStatus::Success);
    let broker = appipc_sys::process::pidfd_open(b.pid()).unwrap();
    appipc_sys::process::send_signal(&broker, appipc_sys::process::ProcessSignal::STOP).unwrap();
    let mut ok = 0;
    for i in 0..1000u32 {
        msg.insert("i", i);
        let r = conn.send_message(&msg);
        if r.status == AppServiceResponseStatus::Success
            && r.message.get("i") == Some(&PropertyValue::UInt32(i))
        {
            ok += 1;
        }
    }
    appipc_sys::process::send_signal(&broker, appipc_sys::process::ProcessSignal::CONT).unwrap();
    assert_eq!(ok, 1000, "every round trip completed while the broker was stopped");
}

#[test]
fn message_size_limit_fails_fast_and_large_messages_travel_in_memfds() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let conn = open(&session, &provider, ECHO).await;
        assert_eq!(conn.max_message_size(), Some(16 << 20));
        let mut huge = ValueSet::new();
        huge.insert("blob", vec![0u8; 64 << 20]);
        let t = Instant::now();
        assert_eq!(
            conn.send_message(huge).await.status,
            AppServiceResponseStatus::MessageSizeTooLarge
        );
        assert!(t.elapsed() < Duration::from_secs(5), "fails fast");
        let mut big = ValueSet::new();
        let blob: Vec<u8> = (0..10u32 << 20).map(|i| (i % 251) as u8).collect();
        big.insert("blob", blob.clone());
        let r = conn.send_message(big).await;
        assert_eq!(r.status, AppServiceResponseStatus::Success);
        assert_eq!(r.message.get("blob"), Some(&PropertyValue::UInt8Array(blob)));
        // The connection is still good.
        assert_eq!(
            conn.send_message(ValueSet::new()).await.status,
            AppServiceResponseStatus::Success
        );
    });
}

#[test]
fn in_process_service_is_served_by_the_running_app() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        // The app already runs (launched by the user): that process serves the connection.
        let (pid, _) = ApplicationActivationManager::new(&session)
            .activate_application(&provider, &[], ActivateOptions::default())
            .await
            .unwrap();
        wait_for(
            || {
                b.log()
                    .contains(&format!("service=com.contoso.inproc package={provider} pid={pid}"))
            },
            "app registered",
        );
        let conn = open(&session, &provider, "com.contoso.inproc").await;
        let r = conn.send_message(ValueSet::new()).await;
        // The launched process served it (one started in the background would say so), and no
        // other process of the package was started.
        assert_eq!(string(&r.message, "activation").as_deref(), Some("launch"));
        let procs = PackageManager::new(&session).running_processes().await.unwrap();
        assert_eq!(procs.iter().map(|p| p.pid).collect::<Vec<_>>(), [pid]);
    });
}

#[test]
fn catalog_stateless_and_blocking_clients() {
    let b = TestBroker::start();
    rt().block_on(async {
        let provider = b.install(&CONTOSO_SERVICES).await.family_name;
        let session = b.session();
        let found = AppServiceCatalog::find_app_service_providers(&session, ECHO).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].package_family_name, provider);
        assert_eq!(found[0].app_id, "App");
        assert!(
            AppServiceCatalog::find_app_service_providers(&session, "x.y")
                .await
                .unwrap()
                .is_empty()
        );

        let mut m = ValueSet::new();
        m.insert("q", 1i32);
        let r = AppServiceConnection::send_stateless_message(&session, &provider, ECHO, m).await;
        assert_eq!(r.status, StatelessAppServiceResponseStatus::Success);
        assert_eq!(r.message.get("q"), Some(&PropertyValue::Int32(1)));
        let r = AppServiceConnection::send_stateless_message(
            &session,
            "Nope.X_8wekyb3d8bbwe",
            ECHO,
            ValueSet::new(),
        )
        .await;
        assert_eq!(r.status, StatelessAppServiceResponseStatus::AppNotInstalled);
    });
    let s = appipc::blocking::Session::connect_to(&b.socket()).unwrap();
    let pfn = s.find_packages().unwrap()[0].family_name.clone();
    assert_eq!(
        s.open_app_service(&pfn, "com.contoso.nope").unwrap_err(),
        AppServiceConnectionStatus::AppServiceUnavailable
    );
    let mut c = s.open_app_service(&pfn, ECHO).unwrap();
    // The provider calls the blocking client back while it waits; the handler answers inline.
    c.on_request_received(|question| {
        let mut a = ValueSet::new();
        a.insert("answer", format!("blocking client, asked {:?}", question.get("question")));
        a
    });
    let mut m = ValueSet::new();
    m.insert("$call_back", true);
    let r = c.send_message(&m);
    assert_eq!(r.status, AppServiceResponseStatus::Success);
    assert_eq!(int(&r.message, "callBackStatus"), Some(0));
    let reply = r.message.get("callBackReply").and_then(|v| v.as_value_set()).unwrap();
    assert!(string(reply, "answer").unwrap().starts_with("blocking client"), "{reply:?}");
}
