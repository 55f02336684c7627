//! Typed RPC interfaces (`#[appipc::interface]`, issue 20) against a real broker, with the
//! server confined in an app container (the `rpc-probe` helper) and clients in this process,
//! in confined processes of other packages, and in a process killed while it holds an object:
//!
//! * typed calls carry every kind of argument and result; the server learns the caller as the
//!   broker attested it and makes its own per-method check (5);
//! * an `ObjectRef` each way: the server hands out an object, the client passes one of its own,
//!   the server calls a client's callback; a reference received and passed on reaches the
//!   same object;
//! * a holder's death (`SIGKILL`) releases its reference on the server;
//! * the server's death mid-call fails the call 1726 and later calls 1722;
//! * binding: 1717 for another major version, a later minor one, or an interface the endpoint
//!   does not serve; an earlier minor version binds; 1745 and 1783 from a raw call;
//! * 1818 for a call past its timeout;
//! * 1 000 async and 1 000 blocking calls complete with the broker stopped (SIGSTOP).
//!
//! Outcomes only: no test asserts how long anything took.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use appipc::rpc::{CallContext, CallResult, Interface, ObjectRef};
use appipc_testkit::rpc_probe::{
    Counter, CounterClient, Everything, Listener, ProbeBlockingClient, ProbeClient,
    ProbeNextClient, ProbeOldClient, ProbeV2Client,
};
use appipc_testkit::{TestBroker, unique};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam Inc, O=Fabrikam, C=US";

/// A confined probe server of a new package serving `name` with its default descriptor (the
/// user, and its own package); returns once it serves.
fn serve(b: &TestBroker, name: &str) -> (Child, String) {
    let pfn = b.install_app(&unique("Contoso.Probe"), CONTOSO, "rpc-probe");
    let mut child = b
        .cli()
        .args(["launch", "--wait", &pfn, "--", "serve", name, "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the server's first line").unwrap();
    assert_eq!(first, format!("serving {name}"));
    (child, pfn)
}

#[test]
fn typed_calls_carry_every_kind_of_value_and_the_attested_caller() {
    let b = TestBroker::start();
    let name = unique("contoso.probe");
    let (mut server, server_pfn) = serve(&b, &name);
    rt().block_on(async {
        let s = b.session();
        let c = ProbeClient::connect(&s, &name, None).await.unwrap();
        assert_eq!(c.proxy().server().unwrap().server_package_family_name, server_pfn);
        let v = Everything::sample();
        assert_eq!(c.echo(v.clone()).await.unwrap(), v);
        assert_eq!(c.add(40, 2).await.unwrap(), 42);
        let e = c.add(i64::MAX, 1).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(534), "the server's own fault: {e}");
        assert_eq!(c.whoami().await.unwrap(), "- container false caps 0");
    });
    // Confined callers of two packages: the per-method check admits the one with the
    // capability and refuses the other with 5.
    let with =
        b.install_app_with(&unique("Fabrikam.Net"), FABRIKAM, "rpc-probe", &["internetClient"]);
    let without = b.install_app(&unique("Fabrikam.Plain"), FABRIKAM, "rpc-probe");
    // The server's default descriptor admits the user and its own package's containers only.
    let out = b.run_app(&with, &["call", &name]);
    assert!(out.contains("connect => error 5"), "another package's container: {out}");
    let _ = server.kill();
    let _ = server.wait();
    // One that admits every app container (and the user).
    let name = unique("contoso.open");
    let mut open = b
        .cli()
        .args([
            "launch",
            "--wait",
            &server_pfn,
            "--",
            "serve",
            &name,
            "D:(A;;GA;;;OW)(A;;0x1;;;AC)",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(open.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), format!("serving {name}"));
    let out = b.run_app(&with, &["call", &name]);
    assert!(out.contains(&format!("whoami => {with} container true caps 1")), "{out}");
    assert!(out.contains(&format!("guarded => {with} container true caps 1")), "{out}");
    let out = b.run_app(&without, &["call", &name]);
    assert!(out.contains(&format!("whoami => {without} container true caps 0")), "{out}");
    assert!(out.contains("guarded => error 5"), "the method's own check: {out}");
    let _ = open.kill();
    let _ = open.wait();
}

/// A client's callback: counts the events it acknowledged.
struct Events(AtomicU32);

#[appipc::async_trait]
impl Listener for Events {
    async fn event(&self, cx: &CallContext, n: u32, text: String) -> CallResult<bool> {
        // Called by the server: this side knows it as the server the broker attested.
        assert!(cx.caller().is_none() && cx.server().is_some());
        assert_eq!(text, format!("event {n}"));
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(n.is_multiple_of(2))
    }
}

/// A client's own counter, which the server drains.
struct Mine(AtomicU32);

#[appipc::async_trait]
impl Counter for Mine {
    async fn next(&self, _cx: &CallContext) -> CallResult<u64> {
        Ok(u64::from(self.0.fetch_add(1, Ordering::SeqCst) + 1))
    }
}

#[test]
fn objects_cross_each_way_and_a_killed_holder_releases_its_reference() {
    let b = TestBroker::start();
    let name = unique("contoso.objects");
    let (mut server, _) = serve(&b, &name);
    rt().block_on(async {
        let s = b.session();
        let c = ProbeClient::connect(&s, &name, None).await.unwrap();
        // The server hands out an object; its methods run in the server.
        let counter: CounterClient = c.counter(10).await.unwrap().client().unwrap();
        assert_eq!(counter.next().await.unwrap(), 11);
        assert_eq!(counter.next().await.unwrap(), 12);
        assert_eq!(c.live_counters().await.unwrap(), 1);
        drop(counter);
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.live_counters().await.unwrap() != 0 {
            assert!(Instant::now() < deadline, "the dropped reference was released");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The client passes its own object; the server calls it.
        let mine = Arc::new(Mine(AtomicU32::new(0)));
        assert_eq!(c.drain(ObjectRef::new(mine.clone()), 7).await.unwrap(), 7);
        assert_eq!(mine.0.load(Ordering::SeqCst), 7);
        // A callback: the server calls back while the client's call is in flight.
        let events = Arc::new(Events(AtomicU32::new(0)));
        assert_eq!(c.subscribe(ObjectRef::new(events.clone()), 5).await.unwrap(), 3);
        assert_eq!(events.0.load(Ordering::SeqCst), 5);
        // A reference received and passed back reaches the same object.
        let theirs = c.counter(100).await.unwrap();
        assert!(!theirs.is_local());
        assert_eq!(c.drain(theirs, 3).await.unwrap(), 103);
    });
    // A holder killed with SIGKILL releases its reference.
    let mut holder = std::process::Command::new(appipc_testkit::binary("rpc-probe"))
        .args(["hold", &name])
        .env("APPIPC_RUNTIME_DIR", b.socket().parent().unwrap())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "holding");
    rt().block_on(async {
        let s = b.session();
        let c = ProbeClient::connect(&s, &name, None).await.unwrap();
        assert_eq!(c.live_counters().await.unwrap(), 1, "the holder's counter");
        holder.kill().unwrap();
        holder.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while c.live_counters().await.unwrap() != 0 {
            assert!(Instant::now() < deadline, "the killed holder's reference was released");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn the_servers_death_mid_call_is_1726_and_later_calls_1722() {
    let b = TestBroker::start();
    let name = unique("contoso.dies");
    let (mut server, _) = serve(&b, &name);
    rt().block_on(async {
        let s = b.session();
        let c = ProbeClient::connect(&s, &name, None).await.unwrap();
        assert_eq!(c.add(1, 1).await.unwrap(), 2);
        let e = c.exit_now().await.unwrap_err();
        assert_eq!(e.win32_code(), Some(1726), "{e}");
        c.proxy().closed().await;
        let e = c.add(1, 1).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(1722), "{e}");
    });
    let _ = server.wait();
    // SIGKILL while a call runs.
    let name = unique("contoso.killed");
    let (mut server, server_pfn) = serve(&b, &name);
    rt().block_on(async {
        let s = b.session();
        let c = ProbeClient::connect(&s, &name, None).await.unwrap();
        let call = tokio::spawn({
            let c = c.clone();
            async move { c.stall(60_000).await }
        });
        // The call is in the server (its session shows the connection) before the kill.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let pid = appipc::PackageManager::new(&s)
            .running_processes()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p.package_family_name == server_pfn)
            .expect("the server runs")
            .pid;
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        let e = call.await.unwrap().unwrap_err();
        assert_eq!(e.win32_code(), Some(1726), "{e}");
    });
    let _ = server.wait();
}

#[test]
fn binding_checks_the_interface_and_its_version() {
    let b = TestBroker::start();
    let name = unique("contoso.versions");
    let (mut server, _) = serve(&b, &name);
    rt().block_on(async {
        let s = b.session();
        let v = Everything::sample();
        // An earlier minor version binds and calls the methods it knows.
        let old = ProbeOldClient::connect(&s, &name, None).await.unwrap();
        assert_eq!(old.echo(v.clone()).await.unwrap(), v);
        assert_eq!(old.add(2, 3).await.unwrap(), 5);
        // A later minor version, another major one, another interface: 1717.
        let e = ProbeNextClient::connect(&s, &name, None).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(1717), "{e}");
        let e = ProbeV2Client::connect(&s, &name, None).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(1717), "{e}");
        let e = CounterClient::connect(&s, &name, None).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(1717), "{e}");
        // Through the raw proxy: a procnum past the interface, arguments of the wrong types.
        let c = ProbeClient::connect(&s, &name, None).await.unwrap();
        let methods = <dyn appipc_testkit::rpc_probe::Probe as Interface>::METHODS.len() as u32;
        let e = c.proxy().call::<_, ()>(methods, &()).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(1745), "{e}");
        let e = c.proxy().call::<_, i64>(1, &("forty", "two")).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(1783), "{e}");
        // A call past its timeout is cancelled; the connection serves the next one.
        c.proxy().set_timeout(Some(Duration::from_millis(100)));
        let e = c.stall(60_000).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(1818), "{e}");
        c.proxy().set_timeout(None);
        assert_eq!(c.add(1, 2).await.unwrap(), 3);
    });
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn typed_calls_go_on_with_the_broker_stopped() {
    let b = TestBroker::start();
    let name = unique("contoso.stopped");
    let (mut server, _) = serve(&b, &name);
    let blocking = appipc::blocking::Session::connect_to(&b.socket()).unwrap();
    let bc = ProbeBlockingClient::connect(&blocking, &name, None).unwrap();
    rt().block_on(async {
        let s = b.session();
        let c = ProbeClient::connect(&s, &name, None).await.unwrap();
        let broker = rustix::process::Pid::from_raw(b.pid() as i32).unwrap();
        rustix::process::kill_process(broker, rustix::process::Signal::STOP).unwrap();
        let mut sum = 0;
        for i in 0..1000 {
            sum += c.add(i, 1).await.unwrap();
        }
        let bc = &bc;
        let blocking_sum =
            tokio::task::block_in_place(|| (0..1000).map(|i| bc.add(i, 1).unwrap()).sum::<i64>());
        rustix::process::kill_process(broker, rustix::process::Signal::CONT).unwrap();
        assert_eq!((sum, blocking_sum), (500_500, 500_500));
    });
    let v = Everything::sample();
    assert_eq!(bc.echo(v.clone()).unwrap(), v);
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn a_killed_broker_leaves_connections_and_its_successor_gets_the_endpoint_again() {
    let mut b = TestBroker::start();
    let name = unique("contoso.survives");
    let (mut server, _) = serve(&b, &name);
    let runtime = rt();
    let s = runtime.block_on(async { b.session() });
    let c = runtime.block_on(ProbeClient::connect(&s, &name, None)).unwrap();
    assert_eq!(runtime.block_on(c.add(1, 1)).unwrap(), 2);
    b.kill();
    // With no broker at all, the connection made goes on.
    assert_eq!(runtime.block_on(c.add(2, 2)).unwrap(), 4);
    b.restart();
    // The server's SDK registers the endpoint with the new broker by itself.
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        let again = loop {
            match ProbeClient::connect(&s, &name, None).await {
                Ok(c) => break c,
                Err(e) => {
                    assert_eq!(e.win32_code(), Some(1722), "until it registered again: {e}");
                    assert!(Instant::now() < deadline, "the endpoint came back");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        assert_eq!(again.add(3, 3).await.unwrap(), 6);
        assert_eq!(c.add(4, 4).await.unwrap(), 8);
    });
    let out = b.cli().args(["rpc", "list", "--json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&name), "listed again");
    let _ = server.kill();
    let _ = server.wait();
}

/// The same calls between two confined packages, with the broker as root and as the
/// unprivileged test user.
#[test]
fn typed_calls_between_confined_packages_with_a_root_and_an_unprivileged_broker() {
    let mut users = vec![None];
    match appipc_testkit::test_user() {
        Some(u) => users.push(Some(u)),
        None => eprintln!(
            "skipping the unprivileged broker: no user appipc-test (scripts/test.sh adds it)"
        ),
    }
    for user in users {
        let b = match user {
            Some((uid, gid)) => TestBroker::start_as(uid, gid, &[]),
            None => TestBroker::start(),
        };
        let server_pfn = b.install_app(&unique("Contoso.Probe"), CONTOSO, "rpc-probe");
        let client = b.install_app(&unique("Fabrikam.Probe"), FABRIKAM, "rpc-probe");
        let name = unique("contoso.confined");
        let mut server = b
            .cli()
            .args([
                "launch",
                "--wait",
                &server_pfn,
                "--",
                "serve",
                &name,
                "D:(A;;GA;;;OW)(A;;0x1;;;AC)",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), format!("serving {name}"));
        let out = b.run_app(&client, &["call", &name]);
        assert!(
            out.contains(&format!("whoami => {client} container true caps 0")),
            "{user:?}: {out}"
        );
        assert!(out.contains("guarded => error 5"), "{user:?}: {out}");
        let _ = server.kill();
        let _ = server.wait();
    }
}
