//! Loopback isolation end to end through a real broker: `appipc loopback why` for the rule ×
//! capability matrix between two installed packages of two publishers (the missing rule or
//! capability named on its side, with the manifest line), the persistent outbound
//! exemptions (`appipc loopback exempt`), which survive a broker restart, and the data path:
//! real confined processes (`loop-probe`) of two packages connecting over loopback, as root and
//! as the unprivileged test user.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use appipc_model::identity::PackageFamilyName;
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, readable_by_all, test_user, unique};

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam, O=Fabrikam, C=US";

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let out = b.cli().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn family(name: &str, publisher: &str) -> String {
    PackageFamilyName::from_publisher(&name.parse().unwrap(), publisher).to_string()
}

/// Installs (or upgrades to `version`) a probe package with the capability or not and these
/// loopback rules (`(direction, family)`).
fn install(
    b: &TestBroker,
    name: &str,
    publisher: &str,
    version: u32,
    capability: bool,
    rules: &[(&str, &str)],
) {
    install_with(b, name, publisher, version, capability, rules, "access-probe");
}

fn install_with(
    b: &TestBroker,
    name: &str,
    publisher: &str,
    version: u32,
    capability: bool,
    rules: &[(&str, &str)],
    probe: &str,
) {
    let mut text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"{publisher}\"\nversion = \"1.0.0.{version}\"\n\n"
    );
    if capability {
        text.push_str("[capabilities]\ngeneral = [\"privateNetworkClientServer\"]\n\n");
    }
    text.push_str(&format!("[[application]]\nid = \"App\"\nexecutable = \"bin/{probe}\"\n\n"));
    for (d, f) in rules {
        text.push_str(&format!(
            "[[loopback-rule]]\ndirection = \"{d}\"\npackage-family-name = \"{f}\"\n\n"
        ));
    }
    let dir = assemble_manifest(&text, &b.root.path().join(unique("loop")), &bin_dir()).unwrap();
    if b.user().is_some() {
        readable_by_all(&dir);
    }
    let (code, out, err) = cli(b, &["install", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn why_names_what_is_missing_on_which_side_for_every_combination() {
    let b = TestBroker::start();
    let client = family("Contoso.LoopClient", CONTOSO);
    let server = family("Fabrikam.LoopServer", FABRIKAM);
    let mut version = 0;
    for (out_rule, in_rule) in [(false, false), (true, false), (false, true), (true, true)] {
        for (cap_c, cap_s) in [(true, true), (true, false), (false, true), (false, false)] {
            version += 1;
            let out: Vec<(&str, &str)> =
                if out_rule { vec![("out", server.as_str())] } else { vec![] };
            let inn: Vec<(&str, &str)> =
                if in_rule { vec![("in", client.as_str())] } else { vec![] };
            install(&b, "Contoso.LoopClient", CONTOSO, version, cap_c, &out);
            install(&b, "Fabrikam.LoopServer", FABRIKAM, version, cap_s, &inn);
            let (code, text, err) = cli(&b, &["loopback", "why", &client, &server, "8080"]);
            let want = out_rule && in_rule && cap_c && cap_s;
            let case = format!("rules {out_rule}/{in_rule} caps {cap_c}/{cap_s}: {text}{err}");
            assert_eq!(code, if want { 0 } else { 1 }, "{case}");
            if want {
                assert!(text.starts_with("allowed"), "{case}");
                continue;
            }
            assert!(text.starts_with("refused (ECONNREFUSED)"), "{case}");
            assert!(text.contains(&format!("{server}:8080")), "{case}");
            let says = |s: String| text.contains(&s);
            assert_eq!(says(format!("the client {client} was not granted")), !cap_c, "{case}");
            assert_eq!(says(format!("the server {server} was not granted")), !cap_s, "{case}");
            assert_eq!(says(format!("the client {client} has no \"out\"")), !out_rule, "{case}");
            assert_eq!(says(format!("the server {server} has no \"in\"")), !in_rule, "{case}");
            // The manifest line of the first thing missing, on its side.
            let whose = if !cap_c || !out_rule { &client } else { &server };
            assert!(text.contains(&format!("manifest {whose}: appipc.toml")), "{case}");
        }
    }
    // The same package always reaches itself.
    let (code, text, _) = cli(&b, &["loopback", "why", &client, &client]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("always reaches itself"), "{text}");
    // JSON for scripts.
    let (_, json, _) = cli(&b, &["--json", "loopback", "why", &server, &client]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["allowed"], false, "{json}");
    // A package that is not installed.
    let (code, _, err) = cli(&b, &["loopback", "why", &client, "Nobody.Here_8wekyb3d8bbwe"]);
    assert_ne!(code, 0);
    assert!(err.contains("no package Nobody.Here_8wekyb3d8bbwe is installed"), "{err}");
}

#[test]
fn outbound_exemptions_persist_across_a_broker_restart() {
    let mut b = TestBroker::start();
    let app = family("Contoso.LoopExempt", CONTOSO);
    install(&b, "Contoso.LoopExempt", CONTOSO, 1, true, &[]);
    let (code, text, _) = cli(&b, &["loopback", "why", &app, "-", "5000"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("appipc loopback exempt add"), "{text}");
    let (code, out, err) = cli(&b, &["loopback", "exempt", "add", &app]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&b, &["loopback", "exempt", "add", "Other.App_8wekyb3d8bbwe"]);
    assert_eq!(code, 0, "{out}{err}");
    b.stop();
    b.restart();
    let (_, list, _) = cli(&b, &["loopback", "exempt", "list"]);
    assert_eq!(list.lines().collect::<Vec<_>>(), [app.as_str(), "Other.App_8wekyb3d8bbwe"]);
    let (code, text, _) = cli(&b, &["loopback", "why", &app, "-", "5000"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("outbound loopback exemption"), "{text}");
    let (code, out, _) = cli(&b, &["loopback", "exempt", "remove", &app]);
    assert_eq!(code, 0);
    assert!(out.contains("no longer exempt"), "{out}");
    let (code, text, _) = cli(&b, &["loopback", "why", &app, "-"]);
    assert_eq!(code, 1, "{text}");
    let (_, out, _) = cli(&b, &["loopback", "exempt", "clear"]);
    assert!(out.contains("1 exemption(s) removed"), "{out}");
    let (_, list, _) = cli(&b, &["loopback", "exempt", "list"]);
    assert_eq!(list.trim(), "no exempt packages");
    // Not a family name: refused before the store.
    let (code, _, err) = cli(&b, &["loopback", "exempt", "add", "not a name"]);
    assert_ne!(code, 0, "{err}");
}

// ---------------------------------------------------------------------------------------------
// The data path: real confined processes.

/// A loopback port no host process listens on now (so the host does not own it).
fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Below the ephemeral range (32768-60999): a connect to a port in it that no one
        // listens on can, once in a few hundred tries, be given that very port as its source
        // and connect to itself (TCP simultaneous open), which a test of refused connects
        // would read as a connect let through.
        let p = 10000 + (std::process::id() % 2500) as u16 * 4 + n % 2000;
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A loop-probe package; its family name.
fn probe_package(
    b: &TestBroker,
    name: &str,
    publisher: &str,
    cap: bool,
    rules: &[(&str, &str)],
) -> String {
    install_with(b, name, publisher, 1, cap, rules, "loop-probe");
    family(name, publisher)
}

/// `loop-probe ARGS` confined, until it exits: (exit code, stdout).
fn probe(b: &TestBroker, pfn: &str, args: &[&str]) -> (i32, String) {
    let mut all = vec!["launch", "--wait", pfn, "--"];
    all.extend_from_slice(args);
    let (code, out, err) = cli(b, &all);
    (code, format!("{out}{err}"))
}

/// Starts `loop-probe serve PORT …` confined and waits until it listens.
fn serve(b: &TestBroker, pfn: &str, port: u16, extra: &[&str]) {
    let p = port.to_string();
    let mut all = vec!["launch", pfn, "--", "serve", p.as_str()];
    all.extend_from_slice(extra);
    let (code, out, err) = cli(b, &all);
    assert_eq!(code, 0, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let want = format!("listening {port}");
    let family = pfn.split('!').next().unwrap_or(pfn);
    while !b.app_log(family).contains(&want) {
        assert!(Instant::now() < deadline, "no listener: {}\n{}", b.app_log(family), b.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A broker as root, or as the unprivileged test user (`None` with a printed reason if there
/// is none).
fn broker(unprivileged: bool) -> Option<TestBroker> {
    if !unprivileged {
        return Some(TestBroker::start());
    }
    if !rustix::process::geteuid().is_root() {
        return Some(TestBroker::start());
    }
    match test_user() {
        Some((uid, gid)) => Some(TestBroker::start_as(uid, gid, &[])),
        None => {
            println!("SKIPPED: no appipc-test user (scripts/test.sh creates it)");
            None
        }
    }
}

/// Rules {none, client out only, server in only, both} × privateNetworkClientServer {both,
/// client only, server only, none}: only both rules and both capabilities connect; a refusal
/// is ECONNREFUSED and is in the decision log with what is missing.
fn matrix(unprivileged: bool) {
    let Some(b) = broker(unprivileged) else { return };
    let mut i = 0;
    for (out_rule, in_rule) in [(false, false), (true, false), (false, true), (true, true)] {
        for (cap_c, cap_s) in [(true, true), (true, false), (false, true), (false, false)] {
            i += 1;
            let (cn, sn) = (format!("Contoso.LoopC{i}"), format!("Fabrikam.LoopS{i}"));
            let (client, server) = (family(&cn, CONTOSO), family(&sn, FABRIKAM));
            let out: Vec<(&str, &str)> = if out_rule { vec![("out", &server)] } else { vec![] };
            let inn: Vec<(&str, &str)> = if in_rule { vec![("in", &client)] } else { vec![] };
            probe_package(&b, &cn, CONTOSO, cap_c, &out);
            probe_package(&b, &sn, FABRIKAM, cap_s, &inn);
            let port = free_port();
            serve(&b, &server, port, &["30"]);
            let (code, text) = probe(&b, &client, &["connect", &port.to_string()]);
            let want = out_rule && in_rule && cap_c && cap_s;
            let case = format!("rules {out_rule}/{in_rule} caps {cap_c}/{cap_s}: {text}");
            if want {
                assert_eq!(code, 0, "{case}\n{}", b.log());
                assert!(text.contains("connected: echo:ping"), "{case}");
            } else {
                assert!(text.contains(&format!("failed: errno {}", libc::ECONNREFUSED)), "{case}");
                let (_, log, _) = cli(&b, &["why", "--package", &client, "--last", "1"]);
                assert!(log.contains(&format!("{server}:{port}")), "{case}\n{log}");
            }
        }
    }
}

#[test]
fn only_both_rules_and_both_capabilities_connect_root_broker() {
    matrix(false);
}

#[test]
fn only_both_rules_and_both_capabilities_connect_unprivileged_broker() {
    matrix(true);
}

/// Two packages whose rules allow the client: IPv4 and IPv6, every kind of client, the same
/// package always, UDP never, one port space (EADDRINUSE), a signal storm, no channel fd.
fn allowed_pair(unprivileged: bool) {
    let Some(b) = broker(unprivileged) else { return };
    let (client, server) = (family("Contoso.PairC", CONTOSO), family("Fabrikam.PairS", FABRIKAM));
    probe_package(&b, "Contoso.PairC", CONTOSO, true, &[("out", &server)]);
    probe_package(&b, "Fabrikam.PairS", FABRIKAM, true, &[("in", &client)]);
    let other = probe_package(&b, "Northwind.Other", "CN=Northwind", false, &[]);
    let (p4, p6) = (free_port(), free_port());
    serve(&b, &server, p4, &["60"]);
    serve(&b, &server, p6, &["v6", "60"]);
    let (s4, s6) = (p4.to_string(), p6.to_string());
    let ok = |args: &[&str], want: &str| {
        let (code, text) = probe(&b, &client, args);
        if text.starts_with("absent: ") {
            println!("SKIPPED {args:?}: {text}");
            return;
        }
        assert_eq!(code, 0, "{args:?}: {text}\n{}", b.log());
        assert!(text.contains(want), "{args:?}: {text}");
    };
    ok(&["connect", &s4], "connected: echo:ping");
    ok(&["connect", &s6, "v6"], "connected: echo:ping");
    ok(&["tokio", &s4], "connected: echo:ping");
    ok(&["python", &s4, "blocking"], "connected: echo:ping");
    ok(&["python", &s4, "asyncio"], "connected: echo:ping");
    ok(&["curl", &s4], "hello");
    // Only that client: another package is refused.
    let (_, text) = probe(&b, &other, &["connect", &s4]);
    assert!(text.contains(&format!("failed: errno {}", libc::ECONNREFUSED)), "{text}");
    // The same package always reaches itself (no rule names it).
    let ps = free_port();
    serve(&b, &other, ps, &["30"]);
    let (code, text) = probe(&b, &other, &["connect", &ps.to_string()]);
    assert_eq!(code, 0, "{text}");
    // One port space: another package's bind of a port in use is EADDRINUSE, a free one binds.
    let (_, text) = probe(&b, &other, &["bind", &s4]);
    assert!(text.contains(&format!("bind: errno {}", libc::EADDRINUSE)), "{text}");
    let (_, text) = probe(&b, &client, &["bind", &ps.to_string()]);
    assert!(text.contains(&format!("bind: errno {}", libc::EADDRINUSE)), "{text}");
    let (code, text) = probe(&b, &client, &["bind", &free_port().to_string()]);
    assert_eq!(code, 0, "{text}");
    // UDP is never delivered to another package, rules or not.
    let pu = free_port();
    let pu_s = pu.to_string();
    let (code, out, err) = cli(&b, &["launch", &server, "--", "udp-recv", &pu_s, "3"]);
    assert_eq!(code, 0, "{out}{err}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.app_log(&server).contains("udp listening") {
        assert!(Instant::now() < deadline, "{}", b.app_log(&server));
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, text) = probe(&b, &client, &["udp-send", &pu_s]);
    assert!(text.contains("udp sent"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.app_log(&server).contains("udp got") {
        assert!(Instant::now() < deadline, "{}", b.app_log(&server));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(b.app_log(&server).contains("udp got nothing"), "{}", b.app_log(&server));
    // A signal storm during connect never yields EISCONN.
    let (_, text) = probe(&b, &client, &["storm", &s4, "300"]);
    assert!(text.contains("storm ok=300 ") && text.contains("eisconn=0 other=0"), "{text}");
    // A second connect on a socket already installed succeeds (as a connect restarted after
    // a signal must), and a second explicit one is not EISCONN either.
    let (_, text) = probe(&b, &client, &["again", &s4]);
    assert!(text.contains("again: first=0 second=0"), "{text}");
    // The app holds no socket but its session: nothing to speak to the broker's loopback
    // channel with, or to pose as another container on it.
    let (_, text) = probe(&b, &client, &["fds"]);
    assert!(text.contains("other sockets: 0"), "{text}");
}

#[test]
fn an_allowed_pair_connects_with_every_client_root_broker() {
    allowed_pair(false);
}

#[test]
fn an_allowed_pair_connects_with_every_client_unprivileged_broker() {
    allowed_pair(true);
}

/// An echo listener of this (unpackaged) test process on the host's loopback.
fn host_listener() -> u16 {
    use std::io::{Read, Write};
    let port = free_port();
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let mut buf = [0u8; 64];
            let n = c.read(&mut buf).unwrap_or(0);
            let _ = c.write_all(b"echo:");
            let _ = c.write_all(&buf[..n]);
        }
    });
    port
}

/// `appipc loopback exempt add` (`-a`): the package reaches unpackaged listeners of the host,
/// also after a broker restart; without it, ECONNREFUSED.
#[test]
fn an_exempt_package_reaches_host_listeners_across_a_restart() {
    let mut b = TestBroker::start();
    let app = probe_package(&b, "Contoso.LoopOut", CONTOSO, true, &[]);
    let port = host_listener().to_string();
    let (_, text) = probe(&b, &app, &["connect", &port]);
    assert!(text.contains(&format!("failed: errno {}", libc::ECONNREFUSED)), "{text}");
    let (code, out, err) = cli(&b, &["loopback", "exempt", "add", &app]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, text) = probe(&b, &app, &["connect", &port]);
    assert_eq!(code, 0, "{text}\n{}", b.log());
    assert!(text.contains("connected: echo:ping"), "{text}");
    b.stop();
    b.restart();
    let (code, text) = probe(&b, &app, &["connect", &port]);
    assert_eq!(code, 0, "{text}\n{}", b.log());
    let (_, _, _) = cli(&b, &["loopback", "exempt", "remove", &app]);
    let (_, text) = probe(&b, &app, &["connect", &port]);
    assert!(text.contains(&format!("failed: errno {}", libc::ECONNREFUSED)), "{text}");
}

fn wait_log(b: &TestBroker, pfn: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.app_log(pfn).contains(what) {
        assert!(Instant::now() < deadline, "no {what:?} in {}", b.app_log(pfn));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn allowed(b: &TestBroker, tag: &str) -> (String, String) {
    let (cn, sn) = (format!("Contoso.{tag}C"), format!("Fabrikam.{tag}S"));
    let (client, server) = (family(&cn, CONTOSO), family(&sn, FABRIKAM));
    probe_package(b, &cn, CONTOSO, true, &[("out", &server)]);
    probe_package(b, &sn, FABRIKAM, true, &[("in", &client)]);
    (client, server)
}

/// The broker stopped with SIGSTOP: an established flow goes on (the broker is not on its
/// path).
#[test]
fn a_stopped_broker_does_not_stall_an_established_flow() {
    let b = TestBroker::start();
    let (client, server) = allowed(&b, "Stop");
    let port = free_port();
    serve(&b, &server, port, &["60"]);
    let p = port.to_string();
    let (code, out, err) = cli(&b, &["launch", &client, "--", "session", &p, "20", "100"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_log(&b, &client, "session connected");
    let broker = rustix::process::Pid::from_raw(b.pid() as i32).unwrap();
    rustix::process::kill_process(broker, rustix::process::Signal::STOP).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.app_log(&client).contains("round 19 ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    rustix::process::kill_process(broker, rustix::process::Signal::CONT).unwrap();
    let log = b.app_log(&client);
    assert!(log.contains("round 19 ok"), "{log}");
    assert!(!log.contains("failed"), "{log}");
}

/// A stopped broker whose channel stays open (SIGSTOP; or `appipc stop` with the keeper holding
/// the channel): the container's supervisor waits for one answer, then lets the calls after it
/// through at once (in the container's own namespace: refused) instead of waiting again for
/// each, or blocking forever once the unread questions fill the channel; when the broker
/// answers again, connects between packages are asked and carried out again.
fn a_stopped_broker_delays_one_connect_not_all(unprivileged: bool) {
    let env = [("APPIPC_LOOPBACK_ANSWER_MS", "300")];
    let b = if unprivileged && rustix::process::geteuid().is_root() {
        match test_user() {
            Some((uid, gid)) => TestBroker::start_as(uid, gid, &env),
            None => {
                println!("SKIPPED: no appipc-test user (scripts/test.sh creates it)");
                return;
            }
        }
    } else {
        TestBroker::start_with_env(&env)
    };
    let (client, server) = allowed(&b, if unprivileged { "BehindU" } else { "Behind" });
    let (live, dead) = (free_port(), free_port());
    serve(&b, &server, live, &["60"]);
    let (l, d) = (live.to_string(), dead.to_string());
    let (code, out, err) = cli(&b, &["launch", &client, "--", "behind", &d, "400", &l]);
    assert_eq!(code, 0, "{out}{err}");
    let broker = rustix::process::Pid::from_raw(b.pid() as i32).unwrap();
    rustix::process::kill_process(broker, rustix::process::Signal::STOP).unwrap();
    // 400 questions of 300 ms each would take two minutes (and fill the channel first).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b.app_log(&client).contains("dead connects done") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = b.app_log(&client);
    rustix::process::kill_process(broker, rustix::process::Signal::CONT).unwrap();
    assert!(log.contains("dead connects done failed=400"), "{log}");
    wait_log(&b, &client, "live connected");
    let log = b.app_log(&client);
    assert!(log.contains("live connected after") && log.contains("echo:ping"), "{log}");
}

#[test]
fn a_stopped_broker_delays_one_connect_not_all_root_broker() {
    a_stopped_broker_delays_one_connect_not_all(false);
}

#[test]
fn a_stopped_broker_delays_one_connect_not_all_unprivileged_broker() {
    a_stopped_broker_delays_one_connect_not_all(true);
}

/// A broker that is gone leaves each running container its own namespace's isolation, never
/// more: a connect that would have been allowed fails; a restarted broker serves new launches.
#[test]
fn a_dead_broker_leaves_isolation_not_an_escape() {
    let mut b = TestBroker::start();
    let (client, server) = allowed(&b, "Dead");
    let port = free_port();
    serve(&b, &server, port, &["60"]);
    let p = port.to_string();
    let (code, out, err) = cli(&b, &["launch", &client, "--", "later", &p, "2"]);
    assert_eq!(code, 0, "{out}{err}");
    b.kill();
    wait_log(&b, &client, "failed: errno");
    let log = b.app_log(&client);
    assert!(log.contains(&format!("failed: errno {}", libc::ECONNREFUSED)), "{log}");
    b.restart();
    let (code, text) = probe(&b, &client, &["connect", &p]);
    assert_eq!(code, 0, "{text}\n{}", b.log());
    assert!(text.contains("connected: echo:ping"), "{text}");
}

/// A host (unpackaged) client's exchange with `port`: `Some(reply)` when something listens.
fn host_exchange(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(b"ping");
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    Some(reply)
}

/// `serve-inbound` until `host_exchange` gets an answer (something listens on the host); the
/// caller kills and waits for the child.
#[allow(clippy::zombie_processes)]
fn serve_inbound(b: &TestBroker, pfn: &str, port: u16) -> (std::process::Child, String) {
    let mut child = b
        .cli()
        .args(["loopback", "serve-inbound", pfn])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(reply) = host_exchange(port) {
            return (child, reply);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve-inbound never listened\n{}", b.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `appipc loopback serve-inbound` (`-is`): unpackaged clients reach the package's listeners
/// while it runs, and only then; a package without privateNetworkClientServer is not reached.
#[test]
fn serve_inbound_lets_unpackaged_clients_in_only_while_it_runs() {
    let b = TestBroker::start();
    let server = probe_package(&b, "Fabrikam.Inbound", FABRIKAM, true, &[]);
    let port = free_port();
    serve(&b, &server, port, &["60"]);
    assert_eq!(host_exchange(port), None, "nothing on the host's port before");
    let (mut child, reply) = serve_inbound(&b, &server, port);
    assert_eq!(reply, "echo:ping");
    // kill -9: the host listener goes with the process.
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(host_exchange(port), None, "refused once serve-inbound ended");
    // Without the capability the relay is refused: the connection closes unanswered, and the
    // refusal is in the decision log.
    let bare = probe_package(&b, "Fabrikam.NoCap", FABRIKAM, false, &[]);
    let port = free_port();
    serve(&b, &bare, port, &["60"]);
    let (mut child, reply) = serve_inbound(&b, &bare, port);
    assert_eq!(reply, "");
    child.kill().unwrap();
    child.wait().unwrap();
    let (_, log, _) = cli(&b, &["why", "--package", &bare, "--last", "1"]);
    assert!(log.contains("privateNetworkClientServer"), "{log}");
}

/// An echo listener on the host's loopback that counts the connections it accepts.
fn counting_host_listener() -> (u16, Arc<AtomicUsize>) {
    let port = free_port();
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            if c.is_ok() {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (port, n)
}

/// A socket installed for an allowed connect lives in another namespace (the host's, for an
/// `-a` exemption). The attack: disconnect it (`connect(AF_UNSPEC)`), then connect it, or
/// `sendto(MSG_FASTOPEN)` with it, to anything that namespace reaches — another host port, the
/// LAN. None of it may work: a restarted connect succeeds, everything else is `EISCONN`, a bind
/// `EINVAL`, and the other listener never sees a connection.
fn installed_sockets_cannot_be_reused(unprivileged: bool) {
    let Some(b) = broker(unprivileged) else { return };
    let app = probe_package(&b, "Contoso.LoopReuse", CONTOSO, true, &[]);
    let (code, out, err) = cli(&b, &["loopback", "exempt", "add", &app]);
    assert_eq!(code, 0, "{out}{err}");
    let port = host_listener().to_string();
    let (other, other_seen) = counting_host_listener();
    let (_, text) = probe(&b, &app, &["reuse", &port, &other.to_string()]);
    let e = |n: i32| format!("errno {n}");
    for (step, want) in [
        ("connect", "ok".to_owned()),
        ("restart", "ok".to_owned()),
        ("unspec", e(libc::EISCONN)),
        ("reconnect", e(libc::EISCONN)),
        ("elsewhere", e(libc::EISCONN)),
        ("bind", e(libc::EINVAL)),
    ] {
        assert!(
            text.contains(&format!("{step}: {want}")),
            "{step}: want {want}\n{text}\n{}",
            b.log()
        );
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(other_seen.load(Ordering::SeqCst), 0, "the other host port was reached:\n{text}");
}

#[test]
fn installed_sockets_cannot_be_reused_root_broker() {
    installed_sockets_cannot_be_reused(false);
}

#[test]
fn installed_sockets_cannot_be_reused_unprivileged_broker() {
    installed_sockets_cannot_be_reused(true);
}

/// The kernel takes `bind` of an `AF_UNSPEC` address with `INADDR_ANY` on an `AF_INET` socket
/// as the wildcard address: it must meet the shared port space like any other bind
/// (`EADDRINUSE` for another package's port), and `AF_UNSPEC` with another address is the
/// kernel's `EAFNOSUPPORT`.
#[test]
fn an_unspec_bind_meets_the_shared_port_space() {
    let b = TestBroker::start();
    let owner = probe_package(&b, "Contoso.LoopOwner", CONTOSO, true, &[]);
    let squatter = probe_package(&b, "Fabrikam.LoopSquat", FABRIKAM, true, &[]);
    let port = free_port();
    serve(&b, &owner, port, &["30"]);
    let (_, text) = probe(&b, &squatter, &["unspec-bind", &port.to_string()]);
    assert!(text.contains(&format!("unspec-any: errno {}", libc::EADDRINUSE)), "{text}");
    assert!(text.contains(&format!("unspec-loopback: errno {}", libc::EAFNOSUPPORT)), "{text}");
    // A free port binds.
    let (_, text) = probe(&b, &squatter, &["unspec-bind", &free_port().to_string()]);
    assert!(text.contains("unspec-any: ok"), "{text}");
}

/// The port `bound N` in `pfn`'s app log (the first one).
fn bound_port(b: &TestBroker, pfn: &str) -> u16 {
    wait_log(b, pfn, "bound ");
    let log = b.app_log(pfn);
    let line = log.lines().find_map(|l| l.strip_prefix("bound ")).unwrap_or_default();
    line.trim().parse().unwrap_or_else(|_| panic!("no port in {log}"))
}

/// Red team F2b: whose a loopback port is must never be ambiguous, or a package could listen
/// on another's port and take the connects meant for it. A port a package bound — an
/// ephemeral one (bind of port 0) too — is its own for as long as that socket is bound,
/// however long it waits before it listens: another package's bind of it is `EADDRINUSE`
/// (before, an ephemeral port was not in the shared space at all, and an explicit one only for
/// 2 s). The squatter is one the client may reach too, so a hijack would have gone through.
fn a_bound_port_stays_its_owners(unprivileged: bool) {
    let Some(b) = broker(unprivileged) else { return };
    let (cn, on, sn) = ("Contoso.OwnC", "Fabrikam.OwnS", "Northwind.OwnQ");
    let (client, owner, squatter) =
        (family(cn, CONTOSO), family(on, FABRIKAM), family(sn, "CN=Northwind"));
    probe_package(&b, cn, CONTOSO, true, &[("out", &owner), ("out", &squatter)]);
    probe_package(&b, on, FABRIKAM, true, &[("in", &client)]);
    probe_package(&b, sn, "CN=Northwind", true, &[("in", &client)]);
    // An ephemeral port, listened on 8 s later.
    let (code, out, err) = cli(&b, &["launch", &owner, "--", "bind-listen", "0", "8", "60"]);
    assert_eq!(code, 0, "{out}{err}");
    let eph = bound_port(&b, &owner);
    let (_, text) = probe(&b, &squatter, &["bind", &eph.to_string()]);
    assert!(text.contains(&format!("bind: errno {}", libc::EADDRINUSE)), "ephemeral {eph}: {text}");
    // An explicit port, still bound but not listened on after 3 s.
    let port = free_port();
    let p = port.to_string();
    let (code, out, err) = cli(&b, &["launch", &owner, "--", "bind-listen", &p, "8", "60"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_log(&b, &owner, &format!("bound {port}"));
    std::thread::sleep(Duration::from_secs(3));
    let (_, text) = probe(&b, &squatter, &["bind", &p]);
    assert!(text.contains(&format!("bind: errno {}", libc::EADDRINUSE)), "port {port}: {text}");
    // Once the owner listens, the client reaches the owner on both.
    wait_log(&b, &owner, &format!("listening {port}"));
    for q in [eph, port] {
        let (code, text) = probe(&b, &client, &["connect", &q.to_string()]);
        assert_eq!(code, 0, "{q}: {text}\n{}", b.log());
        assert!(text.contains("connected: echo:ping"), "{text}");
    }
    // A listen without a bind gets a port no other package holds, and holds it.
    let (code, out, err) = cli(&b, &["launch", &squatter, "--", "bind-listen", "none", "0", "60"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_log(&b, &squatter, "listening ");
    let log = b.app_log(&squatter);
    let auto: u16 = log
        .lines()
        .find_map(|l| l.strip_prefix("listening "))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!(auto != eph && auto != port, "{auto}");
    let (_, text) = probe(&b, &owner, &["bind", &auto.to_string()]);
    assert!(text.contains(&format!("bind: errno {}", libc::EADDRINUSE)), "auto {auto}: {text}");
}

#[test]
fn a_bound_port_stays_its_owners_root_broker() {
    a_bound_port_stays_its_owners(false);
}

#[test]
fn a_bound_port_stays_its_owners_unprivileged_broker() {
    a_bound_port_stays_its_owners(true);
}

/// The broker is crash-survivable: apps keep running across a restart. A container started by
/// the broker that was killed (`kill -9`) connects to another package after the next broker
/// started (its supervisor's channel to the broker was kept by the session keeper), and is
/// still refused what the rules refuse.
fn containers_connect_across_a_broker_crash(unprivileged: bool) {
    let Some(mut b) = broker(unprivileged) else { return };
    let (client, server) = allowed(&b, "Crash");
    let other = probe_package(&b, "Northwind.CrashOther", "CN=Northwind", true, &[]);
    let port = free_port();
    serve(&b, &server, port, &["120"]);
    let p = port.to_string();
    let (code, out, err) = cli(&b, &["launch", &client, "--", "later", &p, "8"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&b, &["launch", &other, "--", "later", &p, "8"]);
    assert_eq!(code, 0, "{out}{err}");
    b.kill();
    b.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    for pfn in [&client, &other] {
        while !b.app_log(pfn).contains("connected: ") && !b.app_log(pfn).contains("failed: ") {
            assert!(Instant::now() < deadline, "{}\n{}", b.app_log(pfn), b.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let log = b.app_log(&client);
    assert!(log.contains("connected: echo:ping"), "{log}\n{}", b.log());
    let log = b.app_log(&other);
    assert!(log.contains(&format!("failed: errno {}", libc::ECONNREFUSED)), "{log}");
}

#[test]
fn containers_connect_across_a_broker_crash_root_broker() {
    containers_connect_across_a_broker_crash(false);
}

#[test]
fn containers_connect_across_a_broker_crash_unprivileged_broker() {
    containers_connect_across_a_broker_crash(true);
}

/// The owner (uid) of this host's TCP socket from local port `local` to port `remote`
/// (`/proc/net/tcp`).
fn socket_uid(local: u16, remote: u16) -> Option<u32> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let port = |a: &str| a.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
        (f.len() > 7 && port(f[1]) == Some(local) && port(f[2]) == Some(remote))
            .then(|| f[7].parse().ok())
            .flatten()
    })
}

/// Red team F4: under a root broker, the host socket an exempt package's connect is given is
/// the app's — its host uid, as a socket it made itself would be — not root's.
#[test]
fn an_exempt_packages_host_socket_is_the_apps_not_roots() {
    use std::io::{Read, Write};
    if !rustix::process::geteuid().is_root() {
        println!("SKIPPED: the broker is not root here (its sockets are the user's anyway)");
        return;
    }
    let b = TestBroker::start();
    let app = probe_package(&b, "Contoso.LoopUid", CONTOSO, true, &[]);
    let (code, out, err) = cli(&b, &["loopback", "exempt", "add", &app]);
    assert_eq!(code, 0, "{out}{err}");
    let port = free_port();
    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let owner = std::thread::spawn(move || {
        let (mut c, peer) = l.accept().unwrap();
        let uid = socket_uid(peer.port(), port);
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap_or(0);
        let _ = c.write_all(b"echo:");
        let _ = c.write_all(&buf[..n]);
        uid
    });
    let (code, text) = probe(&b, &app, &["connect", &port.to_string()]);
    assert_eq!(code, 0, "{text}\n{}", b.log());
    let uid = owner.join().unwrap();
    assert!(uid.is_some_and(|u| u != 0), "the host socket's owner: {uid:?}");
}

// ---------------------------------------------------------------------------------------------
// A packaged full-trust client (mediumIL): not in an app container, so its connects run in the
// host's network namespace, where no app container listens.

/// Installs a package whose application `App` is a `loop-probe` app container and whose `Tool`
/// is a full-trust (`mediumIL`) `loop-probe`, granted `privateNetworkClientServer` if `cap`,
/// with these loopback rules; its family name.
fn full_trust_package(
    b: &TestBroker,
    name: &str,
    publisher: &str,
    cap: bool,
    rules: &[(&str, &str)],
) -> String {
    let mut text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"{publisher}\"\nversion = \"1.0.0.1\"\n\n\
         [capabilities]\nrestricted = [\"runFullTrust\"]\n"
    );
    if cap {
        text.push_str("general = [\"privateNetworkClientServer\"]\n");
    }
    text.push_str(
        "\n[[application]]\nid = \"App\"\nexecutable = \"bin/loop-probe\"\n\n\
         [[application]]\nid = \"Tool\"\nexecutable = \"bin/loop-probe\"\ntrust-level = \"mediumIL\"\n\n",
    );
    for (d, f) in rules {
        text.push_str(&format!(
            "[[loopback-rule]]\ndirection = \"{d}\"\npackage-family-name = \"{f}\"\n\n"
        ));
    }
    let dir = assemble_manifest(&text, &b.root.path().join(unique("loopft")), &bin_dir()).unwrap();
    if b.user().is_some() {
        readable_by_all(&dir);
    }
    let (code, out, err) = cli(b, &["install", "--yes", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    family(name, publisher)
}

/// Red team (full trust, 3): each full-trust launch has a connect supervisor that lives as long
/// as any process of its tree. An app that leaves a child running and is launched again and
/// again gets at most `[limits] processes-per-package` of them; the next launch is refused with
/// the limit named, and once the children are gone the package launches again.
#[test]
fn full_trust_supervisors_are_bounded_per_package() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, "[limits]\nprocesses-per-package = 2\n").unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", config.to_str().unwrap())]);
    let tool = full_trust_package(&b, "Contoso.FtOrphans", CONTOSO, false, &[]);
    let mut children = Vec::new();
    for _ in 0..2 {
        let (code, out) = full_trust_probe(&b, &tool, &["orphan", "120"]);
        assert_eq!(code, 0, "{out}\n{}", b.log());
        let pid: i32 = out.trim().strip_prefix("orphaned ").and_then(|p| p.parse().ok()).unwrap();
        children.push(pid);
    }
    let (code, out) = full_trust_probe(&b, &tool, &["orphan", "120"]);
    assert_ne!(code, 0, "a third tree of supervisors: {out}");
    assert!(out.contains("processes-per-package") && out.contains("full-trust"), "{out}");
    for pid in children {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
    // Their supervisors exit with the last process of their trees; then there is room again.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, out) = full_trust_probe(&b, &tool, &["orphan", "1"]);
        if code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no room after the children ended: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `loop-probe ARGS` as `pfn`'s full-trust `Tool`, until it exits: (exit code, output).
fn full_trust_probe(b: &TestBroker, pfn: &str, args: &[&str]) -> (i32, String) {
    probe(b, &format!("{pfn}!Tool"), args)
}

/// A packaged full-trust client of A connecting to B's app-container listener: allowed exactly
/// when B was granted privateNetworkClientServer and B's `in` rule names A (Windows: the loopback
/// filter of B's `uap4:Rule Direction="in"`), and then it reaches B's listener itself (the flow
/// is a socket of B's namespace); otherwise ECONNREFUSED, with the refusal in the decision log
/// and the same reason from `appipc loopback why --full-trust A B`. Its other connects are the
/// host's as before: a host listener is reached, a port nobody listens on is refused, and its
/// own package's app container is always reached.
fn full_trust_client(unprivileged: bool) {
    let Some(b) = broker(unprivileged) else { return };
    let tool = full_trust_package(&b, "Contoso.FtTool", CONTOSO, false, &[]);
    let granted = probe_package(&b, "Fabrikam.FtIn", FABRIKAM, true, &[("in", &tool)]);
    let no_rule = probe_package(&b, "Fabrikam.FtNoRule", FABRIKAM, true, &[]);
    let no_cap = probe_package(&b, "Fabrikam.FtNoCap", FABRIKAM, false, &[("in", &tool)]);
    let (pg, pr, pc) = (free_port(), free_port(), free_port());
    serve(&b, &granted, pg, &["60"]);
    serve(&b, &no_rule, pr, &["60"]);
    serve(&b, &no_cap, pc, &["60"]);
    // Allowed: the data path and the decision agree.
    let (code, text) = full_trust_probe(&b, &tool, &["connect", &pg.to_string()]);
    assert_eq!(code, 0, "{text}\n{}", b.log());
    assert!(text.contains("connected: echo:ping"), "{text}");
    let (code, text, err) = cli(&b, &["loopback", "why", "--full-trust", &tool, &granted]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("the server's in rule names the full-trust client"), "{text}");
    // Its children (the filter is inherited, and so is its supervisor).
    let (code, text) = full_trust_probe(&b, &tool, &["python", &pg.to_string(), "blocking"]);
    if !text.starts_with("absent: ") {
        assert_eq!(code, 0, "{text}\n{}", b.log());
        assert!(text.contains("connected: echo:ping"), "{text}");
    }
    // The socket installed is of B's namespace: it cannot be disconnected and connected to
    // anything else there or on the host (EISCONN; a restarted connect succeeds).
    let (other, other_seen) = counting_host_listener();
    let (_, text) = full_trust_probe(&b, &tool, &["reuse", &pg.to_string(), &other.to_string()]);
    let e = |n: i32| format!("errno {n}");
    for (step, want) in [
        ("connect", "ok".to_owned()),
        ("restart", "ok".to_owned()),
        ("unspec", e(libc::EISCONN)),
        ("reconnect", e(libc::EISCONN)),
        ("elsewhere", e(libc::EISCONN)),
        ("bind", e(libc::EINVAL)),
    ] {
        assert!(text.contains(&format!("{step}: {want}")), "{step}: want {want}\n{text}");
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(other_seen.load(Ordering::SeqCst), 0, "the other host port was reached:\n{text}");
    // Refused, for the missing rule or the missing capability, on the server's side.
    for (server, port, missing) in [
        (&no_rule, pr, format!("has no \"in\" loopback rule naming {tool}")),
        (&no_cap, pc, "was not granted the capability privateNetworkClientServer".to_owned()),
    ] {
        let p = port.to_string();
        let (code, text, _) = cli(&b, &["loopback", "why", "--full-trust", &tool, server, &p]);
        assert_eq!(code, 1, "{text}");
        assert!(text.starts_with("refused (ECONNREFUSED)") && text.contains(&missing), "{text}");
        let (code, text) = full_trust_probe(&b, &tool, &["connect", &p]);
        assert_ne!(code, 0, "{text}");
        assert!(text.contains(&format!("failed: errno {}", libc::ECONNREFUSED)), "{text}");
        let (_, log, _) = cli(&b, &["why", "--package", &tool, "--last", "1"]);
        assert!(log.contains(&format!("{server}:{port}")) && log.contains(&missing), "{log}");
    }
    // The host as before: a host listener is reached, nobody's port refused by the kernel.
    let host = host_listener().to_string();
    let (code, text) = full_trust_probe(&b, &tool, &["connect", &host]);
    assert_eq!(code, 0, "{text}\n{}", b.log());
    assert!(text.contains("connected: echo:ping"), "{text}");
    let (_, text) = full_trust_probe(&b, &tool, &["connect", &free_port().to_string()]);
    assert!(text.contains(&format!("failed: errno {}", libc::ECONNREFUSED)), "{text}");
    // Its own package's app container: a package always reaches itself.
    let own = free_port();
    serve(&b, &format!("{tool}!App"), own, &["60"]);
    let (code, text) = full_trust_probe(&b, &tool, &["connect", &own.to_string()]);
    assert_eq!(code, 0, "{text}\n{}", b.log());
    assert!(text.contains("connected: echo:ping"), "{text}");
}

#[test]
fn a_full_trust_client_reaches_a_container_by_its_in_rule_root_broker() {
    full_trust_client(false);
}

#[test]
fn a_full_trust_client_reaches_a_container_by_its_in_rule_unprivileged_broker() {
    full_trust_client(true);
}

/// A full-trust process started by a broker that was killed (`kill -9`) keeps its connect
/// supervision: the session keeper holds its loopback channel, and the next broker decides its
/// connects (as a full-trust client) again.
#[test]
fn a_full_trust_client_connects_across_a_broker_crash() {
    let mut b = TestBroker::start();
    let tool = full_trust_package(&b, "Contoso.FtCrash", CONTOSO, false, &[]);
    let server = probe_package(&b, "Fabrikam.FtCrashS", FABRIKAM, true, &[("in", &tool)]);
    let port = free_port();
    serve(&b, &server, port, &["120"]);
    let p = port.to_string();
    let (code, out, err) = cli(&b, &["launch", &format!("{tool}!Tool"), "--", "later", &p, "8"]);
    assert_eq!(code, 0, "{out}{err}");
    b.kill();
    b.restart();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !b.app_log(&tool).contains("connected: ") && !b.app_log(&tool).contains("failed: ") {
        assert!(Instant::now() < deadline, "{}\n{}", b.app_log(&tool), b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = b.app_log(&tool);
    assert!(log.contains("connected: echo:ping"), "{log}\n{}", b.log());
}

/// A full-trust process cannot stall others through its supervision: while it floods connects
/// that the broker is asked about and refuses (no `in` rule names it), its supervisor asks one
/// question at a time, so another package's allowed connect is still carried out and the broker
/// still answers other requests.
#[test]
fn a_full_trust_flood_of_refused_connects_stalls_no_one_else() {
    let b = TestBroker::start();
    let tool = full_trust_package(&b, "Contoso.FtFlood", CONTOSO, false, &[]);
    let (client, server) = allowed(&b, "FtFlood");
    let port = free_port();
    serve(&b, &server, port, &["120"]);
    let p = port.to_string();
    let flood = ["launch", &format!("{tool}!Tool"), "--", "connects", &p, "20000"];
    let (code, out, err) = cli(&b, &flood);
    assert_eq!(code, 0, "{out}{err}");
    // Under way: its refusals are in the decision log.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, log, _) = cli(&b, &["why", "--package", &tool, "--last", "1"]);
        if log.contains(&format!("{server}:{port}")) {
            break;
        }
        assert!(Instant::now() < deadline, "no flood: {log}\n{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..3 {
        let (code, text) = probe(&b, &client, &["connect", &p]);
        assert_eq!(code, 0, "{text}\n{}", b.log());
        assert!(text.contains("connected: echo:ping"), "{text}");
        let (code, out, err) = cli(&b, &["list"]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let (_, text) = full_trust_probe(&b, &tool, &["connect", &p]);
    assert!(text.contains(&format!("failed: errno {}", libc::ECONNREFUSED)), "{text}");
}
