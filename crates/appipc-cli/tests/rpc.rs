//! RPC endpoints guarded by security descriptors (issue 20, the endpoints), against a real
//! broker and real confined processes of two packages (the `access-probe` helper):
//!
//! * an endpoint ACL'd to one package's SID admits exactly that package's app containers, and
//!   the refusal is in `appipc why` with the entry that would admit the other;
//! * one ACL'd to a capability admits the app containers granted it, not the others;
//! * unpackaged callers are decided by the user side of the descriptor alone;
//! * a server in an app container gets its package's default descriptor and learns who
//!   connected (package, container, capabilities) as the broker attests it;
//! * the errors Windows gives: 1722 no endpoint (also once its server died), 1740 a name taken,
//!   1706 a malformed name, 5 a server that is not the SID the client asked for;
//! * calls go peer to peer: 1 000 round trips complete with the broker stopped (SIGSTOP);
//! * `appipc rpc list` shows endpoints, servers and their open connections.
//!
//! Outcomes only: no test asserts how long anything took.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use appipc::rpc::{RpcServer, connect};
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, unique};

/// A runtime whose workers serve this process's endpoints while the test thread waits for
/// confined probes.
fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Installs `access-probe` as package `name` with `[capabilities] general = [caps…]`.
fn install(b: &TestBroker, name: &str, publisher: &str, caps: &[&str]) -> String {
    let caps: Vec<String> = caps.iter().map(|c| format!("{c:?}")).collect();
    let text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"{publisher}\"\nversion = \"1.0.0.0\"\n\n\
         [capabilities]\ngeneral = [{}]\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/access-probe\"\n",
        caps.join(", ")
    );
    let tmp = tempfile::tempdir().unwrap();
    let dir = assemble_manifest(&text, &tmp.path().join(unique("app")), &bin_dir()).unwrap();
    let out = b.cli().args(["install", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let full = String::from_utf8_lossy(&out.stdout).trim().rsplit(' ').next().unwrap().to_owned();
    let p: Vec<&str> = full.split('_').collect();
    format!("{}_{}", p[0], p[4])
}

fn contoso(b: &TestBroker) -> String {
    install(b, "Contoso.Rpc", "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH", &["internetClient"])
}

fn fabrikam(b: &TestBroker) -> String {
    install(b, "Fabrikam.Rpc", "CN=Fabrikam Inc, O=Fabrikam, C=US", &[])
}

/// The result of step `step` in a probe's output.
fn result<'a>(out: &'a str, step: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(step).and_then(|r| r.strip_prefix(" => ")))
        .unwrap_or_else(|| panic!("no result for {step:?} in:\n{out}"))
}

/// Connects from a confined process of `pfn`; the probe's answer line.
fn connect_from(b: &TestBroker, pfn: &str, name: &str) -> String {
    let out = b.run_app(pfn, &["rpc", name, "-"]);
    result(&out, &format!("rpc {name} -")).to_owned()
}

fn sid_of(pfn: &str) -> String {
    appipc_model::sid::appcontainer_sid(pfn).to_string()
}

/// Runs a confined server of `pfn` serving `name` with `sddl`, until killed; returns once it
/// has registered.
fn serve_confined(b: &TestBroker, pfn: &str, name: &str, sddl: &str) -> Child {
    let mut child = b
        .cli()
        .args(["launch", "--wait", pfn, "--", "rpc-serve", name, sddl, "sleep", "60000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the server's first line").unwrap();
    assert_eq!(first, format!("rpc-serve {name} {sddl} => registered"));
    child
}

/// Serves `name` from this (unpackaged) test process: answers each message with who sent it.
async fn serve_here(s: &appipc::Session, name: &str, sddl: Option<&str>) {
    let mut server = RpcServer::register(s, name, sddl).await.unwrap();
    tokio::spawn(async move {
        while let Some(conn) = server.accept().await {
            tokio::spawn(async move {
                let c = conn.caller();
                let who = format!(
                    "caller {} container {} caps {}",
                    if c.package_family_name.is_empty() { "-" } else { &c.package_family_name },
                    c.app_container,
                    c.capability_sids.len()
                );
                while let Ok(Some(_)) = conn.channel().recv().await {
                    if conn.channel().send(who.as_bytes(), &[]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

fn code(e: &appipc::Error) -> u32 {
    e.win32_code().unwrap_or_else(|| panic!("no Win32 code in {e:?}"))
}

#[test]
fn an_endpoint_acled_to_a_package_sid_admits_exactly_that_package() {
    let b = TestBroker::start();
    let (a, other) = (contoso(&b), fabrikam(&b));
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    // The user side for everyone of the user, the app-container side for package A only.
    let only_a = format!("D:(A;;GA;;;OW)(A;;0x1;;;{})", sid_of(&a));
    let name = unique("only-a");
    rt.block_on(serve_here(&s, &name, Some(&only_a)));
    let out_a = connect_from(&b, &a, &name);
    assert_eq!(out_a, format!("connected to - answer caller {a} container true caps 1"));
    assert_eq!(connect_from(&b, &other, &name), "error 5");
    // The refusal names the entry that would admit the other package.
    let why = b.cli_ok(&["why".as_ref(), "--package".as_ref(), other.as_ref()]);
    assert!(why.contains(&sid_of(&other)), "{why}");
    assert!(why.contains(&name), "{why}");
    // This unpackaged process: the user side (OW) alone decides.
    rt.block_on(async {
        let c = connect(&s, &name, None).await.unwrap();
        c.channel.send(b"ping", &[]).await.unwrap();
        let (answer, _) = c.channel.recv().await.unwrap().unwrap();
        assert_eq!(answer, b"caller - container false caps 0");
    });
}

#[test]
fn an_endpoint_acled_to_a_capability_admits_the_packages_granted_it() {
    let b = TestBroker::start();
    let (with, without) = (contoso(&b), fabrikam(&b));
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let cap = appipc_model::sid::capability_sid("internetClient").to_string();
    let name = unique("cap");
    rt.block_on(serve_here(&s, &name, Some(&format!("D:(A;;GA;;;OW)(A;;0x1;;;{cap})"))));
    assert_eq!(
        connect_from(&b, &with, &name),
        format!("connected to - answer caller {with} container true caps 1")
    );
    assert_eq!(connect_from(&b, &without, &name), "error 5");
    // `AC` alone, no user side: every app container is refused (the dual check), and so is
    // an unpackaged process (no entry for it).
    let ac_only = unique("ac-only");
    rt.block_on(serve_here(&s, &ac_only, Some("D:(A;;GA;;;AC)")));
    assert_eq!(connect_from(&b, &with, &ac_only), "error 5");
    rt.block_on(async {
        assert_eq!(code(&connect(&s, &ac_only, None).await.unwrap_err()), 5);
    });
    // Both sides: every app container.
    let every = unique("every");
    rt.block_on(serve_here(&s, &every, Some("D:(A;;GA;;;OW)(A;;0x1;;;AC)")));
    assert!(connect_from(&b, &without, &every).starts_with("connected"));
}

#[test]
fn a_confined_server_gets_its_packages_default_and_learns_who_connected() {
    let b = TestBroker::start();
    let (server_pkg, other) = (contoso(&b), fabrikam(&b));
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let name = unique("confined");
    let mut server = serve_confined(&b, &server_pkg, &name, "-");
    // Its own package's processes and the user's unpackaged ones: in; other packages: out.
    assert_eq!(
        connect_from(&b, &server_pkg, &name),
        format!("connected to {server_pkg} answer caller {server_pkg} container true caps 1")
    );
    assert_eq!(connect_from(&b, &other, &name), "error 5");
    rt.block_on(async {
        let c = connect(&s, &name, None).await.unwrap();
        assert_eq!(c.server.server_package_family_name, server_pkg);
        assert_eq!(c.server.server_sid, sid_of(&server_pkg));
        c.channel.send(b"ping", &[]).await.unwrap();
        let (answer, _) = c.channel.recv().await.unwrap().unwrap();
        assert_eq!(answer, b"caller - container false caps 0");
        // Mutual authentication: a client that wants another server is refused.
        let wrong = connect(&s, &name, Some(&sid_of(&other))).await.unwrap_err();
        assert_eq!(code(&wrong), 5, "{wrong}");
        assert!(connect(&s, &name, Some(&sid_of(&server_pkg))).await.is_ok());
        // The list shows it, with its open connections (the one above is still open).
        let list = appipc::rpc::list(&s).await.unwrap();
        let e = list.iter().find(|e| e.name == name).expect("listed");
        assert_eq!(e.server_package_family_name, server_pkg);
        assert!(e.connections >= 1, "{e:?}");
        // The server dies: its endpoint goes, and the client's connection sees the end.
        let pid = e.server_pid;
        assert!(pid > 0);
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::KILL,
        )
        .unwrap();
        assert!(c.channel.recv().await.unwrap().is_none(), "the server's end closed");
        let mut gone = None;
        for _ in 0..100 {
            match connect(&s, &name, None).await {
                Err(e) => {
                    gone = Some(code(&e));
                    break;
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        assert_eq!(gone, Some(1722), "RPC_S_SERVER_UNAVAILABLE once the server is gone");
    });
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn windows_errors_for_names_taken_malformed_and_missing() {
    let b = TestBroker::start();
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    rt.block_on(async {
        let name = unique("taken");
        let _first = RpcServer::register(&s, &name, None).await.unwrap();
        let again = RpcServer::register(&s, &name.to_uppercase(), None).await.unwrap_err();
        assert_eq!(code(&again), 1740, "{again}");
        for bad in ["", "has space", "slash/y", &"x".repeat(129)] {
            let e = RpcServer::register(&s, bad, None).await.unwrap_err();
            assert_eq!(code(&e), 1706, "{bad:?}: {e}");
            assert_eq!(code(&connect(&s, bad, None).await.unwrap_err()), 1706);
        }
        let e = RpcServer::register(&s, &unique("bad-sd"), Some("D:(A;;GA;;;nonsense)"))
            .await
            .unwrap_err();
        assert_eq!(code(&e), 87, "{e}");
        assert_eq!(code(&connect(&s, &unique("nobody"), None).await.unwrap_err()), 1722);
        // A descriptor past Windows' 64 KiB ACL bound: 87, nothing registered.
        let huge = format!("D:{}", "(A;;GA;;;WD)".repeat(6000));
        let e = RpcServer::register(&s, &unique("huge"), Some(&huge)).await.unwrap_err();
        assert_eq!(code(&e), 87, "{e}");
        // A session registers at most rpc-endpoints-per-session (64) endpoints: then 1816.
        let mut kept = Vec::new();
        let quota = loop {
            match RpcServer::register(&s, &unique("many"), None).await {
                Ok(server) => kept.push(server),
                Err(e) => break code(&e),
            }
            assert!(kept.len() <= 64, "past the per-session limit");
        };
        assert_eq!((quota, kept.len()), (1816, 64 - 1), "the first endpoint above counts too");
        for server in kept {
            server.unregister().await.unwrap();
        }
        // Unregistered: the quota is free again at once.
        RpcServer::register(&s, &unique("again"), None).await.unwrap().unregister().await.unwrap();
        // A server that drops its endpoint: new connects find nobody.
        let dropped = unique("dropped");
        drop(RpcServer::register(&s, &dropped, None).await.unwrap());
        let mut last = 0;
        for _ in 0..100 {
            match connect(&s, &dropped, None).await {
                Err(e) => {
                    last = code(&e);
                    break;
                }
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
        assert_eq!(last, 1722);
    });
}

#[test]
fn calls_go_peer_to_peer_with_the_broker_stopped() {
    let b = TestBroker::start();
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let name = unique("p2p");
    rt.block_on(serve_here(&s, &name, None));
    let c = rt.block_on(connect(&s, &name, None)).unwrap();
    let listed = rt.block_on(appipc::rpc::list(&s)).unwrap();
    assert_eq!(listed.iter().find(|e| e.name == name).map(|e| e.connections), Some(1));
    let broker = rustix::process::Pid::from_raw(b.pid() as i32).unwrap();
    rustix::process::kill_process(broker, rustix::process::Signal::STOP).unwrap();
    let done = rt.block_on(async {
        let mut n = 0;
        for _ in 0..1000 {
            c.channel.send(b"ping", &[]).await.unwrap();
            let (answer, _) = c.channel.recv().await.unwrap().unwrap();
            assert_eq!(answer, b"caller - container false caps 0");
            n += 1;
        }
        n
    });
    rustix::process::kill_process(broker, rustix::process::Signal::CONT).unwrap();
    assert_eq!(done, 1000);
    // `appipc rpc list` (the broker answers again).
    let out = b.cli_ok(&["rpc".as_ref(), "list".as_ref()]);
    assert!(out.contains(&name) && out.contains("unpackaged"), "{out}");
    let json = b.cli_ok(&["--json".as_ref(), "rpc".as_ref(), "list".as_ref()]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let e = v.as_array().unwrap().iter().find(|e| e["name"] == name.as_str()).expect("listed");
    assert_eq!(e["connections"], 1, "{json}");
    // Who is connected: this (unpackaged) process, with its connection id and pid.
    let clients = e["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 1, "{json}");
    assert_eq!(clients[0]["connection_id"], c.server.connection_id, "{json}");
    assert_eq!(clients[0]["package_family_name"], "", "{json}");
    assert_eq!(clients[0]["app_container"], false, "{json}");
    assert_eq!(clients[0]["pid"], std::process::id(), "{json}");
    assert!(out.contains(&format!("clients of {name}:")), "{out}");
    // The client closes: the server drops its end and tells the broker.
    drop(c);
    let mut open = 1;
    for _ in 0..100 {
        let l = rt.block_on(appipc::rpc::list(&s)).unwrap();
        open = l.iter().find(|e| e.name == name).map_or(0, |e| e.connections);
        if open == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(open, 0, "the closed connection is no longer counted");
}

/// A package cannot get past the per-session endpoint limit by opening more sessions: its
/// processes together register at most `[limits] rpc-endpoints-per-package` (256), then 1816,
/// and another package still registers.
#[test]
fn a_package_registers_at_most_its_endpoint_quota_over_many_sessions() {
    let b = TestBroker::start();
    let hoarder = contoso(&b);
    let other = fabrikam(&b);
    let out = b.run_app(&hoarder, &["hoard-endpoints", "400"]);
    assert_eq!(result(&out, "hoard-endpoints 400"), "got 256 then error 1816", "{out}");
    let out = b.run_app(&other, &["hoard-endpoints", "3"]);
    assert_eq!(result(&out, "hoard-endpoints 3"), "got 3 then none", "{out}");
}
