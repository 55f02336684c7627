//! `appipc loopback serve-inbound` (`LoopbackExempt -is`) end to end, through a real broker and
//! real confined listeners (`loop-probe`), with the broker as root and as the unprivileged test
//! user: a connection the command relayed goes on after the command is killed (`kill -9`, or a
//! terminal's `^C` to its process group) while new connects are refused; each connection's
//! relay is a process of its own that holds its two sockets and nothing else (no listener, no
//! broker session, not root), passes half-closes both ways, stops taking data from a peer
//! whose other end does not read, and exits when its connection has closed.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use appipc_model::identity::PackageFamilyName;
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, readable_by_all, test_user, unique};

const FABRIKAM: &str = "CN=Fabrikam, O=Fabrikam, C=US";

fn cli(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let out = b.cli().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Installs a `loop-probe` package with `privateNetworkClientServer`; its family name.
fn probe_package(b: &TestBroker, name: &str) -> String {
    let text = format!(
        "[package]\nname = \"{name}\"\npublisher = \"{FABRIKAM}\"\nversion = \"1.0.0.1\"\n\n\
         [capabilities]\ngeneral = [\"privateNetworkClientServer\"]\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/loop-probe\"\n"
    );
    let dir = assemble_manifest(&text, &b.root.path().join(unique("loop")), &bin_dir()).unwrap();
    if b.user().is_some() {
        readable_by_all(&dir);
    }
    let (code, out, err) = cli(b, &["install", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    PackageFamilyName::from_publisher(&name.parse().unwrap(), FABRIKAM).to_string()
}

/// A loopback port no host process listens on now (so the host does not own it).
fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = 20000 + (std::process::id() % 2000) as u16 * 4 + n;
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// A broker as root, or as the unprivileged test user (`None` with a printed reason if there
/// is none).
fn broker(unprivileged: bool) -> Option<TestBroker> {
    if !unprivileged || !rustix::process::geteuid().is_root() {
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

fn wait_log(b: &TestBroker, pfn: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = b.app_log(pfn);
        if log.contains(what) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {what:?} in {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The first whole line of `pfn`'s log that starts with `prefix`, once there is one.
fn wait_line(b: &TestBroker, pfn: &str, prefix: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = b.app_log(pfn);
        let whole = log.rsplit_once('\n').map_or("", |(lines, _)| lines);
        if let Some(line) = whole.lines().find(|l| l.starts_with(prefix)) {
            return line.to_owned();
        }
        assert!(Instant::now() < deadline, "no line {prefix:?} in {log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `loop-probe MODE PORT 300` confined and waits until it listens.
fn listen(b: &TestBroker, pfn: &str, mode: &str, port: u16) {
    let p = port.to_string();
    let (code, out, err) = cli(b, &["launch", pfn, "--", mode, &p, "300"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_log(b, pfn, &format!("listening {port}\n"));
}

/// A running `appipc loopback serve-inbound`, in a process group of its own as a shell starts
/// a job (so that `^C` can be sent to the group, as a terminal does).
struct ServeInbound {
    child: std::process::Child,
    pid: u32,
    /// What it has said on stderr so far.
    said: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ServeInbound {
    /// Starts it and waits until it listens on the host on each of `ports`.
    fn start(b: &TestBroker, pfn: &str, ports: &[u16]) -> ServeInbound {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut child = b
            .cli()
            .args(["loopback", "serve-inbound", pfn])
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let all = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let keep = all.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut said = String::new();
        let mut waiting: Vec<String> =
            ports.iter().map(|p| format!("listening on 127.0.0.1:{p}")).collect();
        while !waiting.is_empty() {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    waiting.retain(|w| *w != line);
                    said.push_str(&line);
                    said.push('\n');
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("serve-inbound never listened on {waiting:?}:\n{said}\n{}", b.log());
                }
            }
        }
        ServeInbound { child, pid, said: all }
    }

    fn said(&self) -> String {
        self.said.lock().unwrap().clone()
    }

    /// `kill -9`.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// A terminal's `^C`: `SIGINT` to the whole process group.
    fn interrupt(&mut self) {
        let group = rustix::process::Pid::from_raw(self.pid as i32).unwrap();
        rustix::process::kill_process_group(group, rustix::process::Signal::INT).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "serve-inbound ended by ^C with {status}");
    }
}

impl Drop for ServeInbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A host client connected through serve-inbound (read timeout 30 s: a test that breaks
/// fails instead of hanging).
fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// One message to the echo listener and its whole answer.
fn exchange(s: &mut TcpStream, msg: &str) -> String {
    s.write_all(msg.as_bytes()).unwrap();
    let mut got = vec![0u8; 5 + msg.len()];
    s.read_exact(&mut got).unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

/// `/proc/PID/stat` fields after the command name: state, ppid, pgrp, session, ...
fn stat(pid: u32) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().map(str::to_owned).collect()
}

/// The live relay processes of `pfn` (`appipc loopback relay-inbound PFN PORT`).
fn relays(pfn: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|&c| c == 0).collect();
        if args.contains(&&b"relay-inbound"[..]) && args.contains(&pfn.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

/// The processes whose parent is `pid`, zombies included.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Some(p) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if stat(p).get(1).is_some_and(|ppid| *ppid == pid.to_string()) {
            found.push(p);
        }
    }
    found
}

/// `pid`'s open fds and what each is.
fn fds(pid: u32) -> Vec<(u32, String)> {
    // Empty once it has exited.
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let mut all: Vec<(u32, String)> = dir
        .filter_map(Result::ok)
        .filter_map(|e| {
            let n = e.file_name().to_str()?.parse().ok()?;
            Some((n, std::fs::read_link(e.path()).ok()?.display().to_string()))
        })
        .collect();
    all.sort();
    all
}

fn status_line(pid: u32, key: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = text.lines().find(|l| l.starts_with(key)).unwrap_or_default();
    line[key.len()..].split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Waits until `pfn` has no relay left (each must exit once its connection has closed).
fn wait_no_relays(pfn: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = relays(pfn);
        if left.is_empty() {
            return;
        }
        let what: Vec<_> = left.iter().map(|p| (p, stat(*p), fds(*p))).collect();
        assert!(Instant::now() < deadline, "relays left after their connections closed: {what:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Who a process was started by and in which session: (pid, ppid, session).
fn lineage(pid: u32) -> (u32, u32, u32) {
    let st = stat(pid);
    let field = |i: usize| st.get(i).and_then(|f| f.parse().ok()).unwrap_or(0);
    (pid, field(1), field(3))
}

/// The relays of `pfn` seen while serve-inbound `parent` (whose session was `parent_session`)
/// ran: one, started by it, in a session of its own; and now holding exactly `/dev/null` at
/// 0–2 and its two sockets at 3 and 4 (not the host listener, not the broker session), with
/// `no_new_privs`, and `nobody` if it was started by root.
fn check_relay(b: &TestBroker, seen: &[(u32, u32, u32)], parent: u32, parent_session: u32) {
    assert_eq!(seen.len(), 1, "one relay per connection: {seen:?}");
    let (relay, ppid, session) = seen[0];
    assert_eq!(ppid, parent, "the relay's parent");
    assert_eq!(session, relay, "the relay leads its own session");
    assert_ne!(session, parent_session, "not serve-inbound's session");
    let held = fds(relay);
    let kinds: Vec<(u32, bool)> =
        held.iter().map(|(n, w)| (*n, w.starts_with("socket:"))).collect();
    assert_eq!(kinds, [(0, false), (1, false), (2, false), (3, true), (4, true)], "{held:?}");
    assert!(held[..3].iter().all(|(_, w)| w == "/dev/null"), "{held:?}");
    assert_eq!(status_line(relay, "NoNewPrivs:"), "1");
    let cli_uid = match b.user() {
        Some((uid, _)) => uid,
        None => rustix::process::geteuid().as_raw(),
    };
    let uid = if cli_uid == 0 { 65534 } else { cli_uid };
    assert_eq!(status_line(relay, "Uid:"), format!("{uid} {uid} {uid} {uid}"), "the relay's uids");
    if cli_uid == 0 {
        assert_eq!(status_line(relay, "Gid:"), "65534 65534 65534 65534");
        assert_eq!(status_line(relay, "Groups:"), "", "no supplementary groups");
        assert_eq!(status_line(relay, "CapEff:"), "0000000000000000");
        assert_eq!(status_line(relay, "CapPrm:"), "0000000000000000");
    }
}

/// The attack on `-is`'s "established connections stay": end serve-inbound, by `kill -9` and
/// by a terminal's `^C` to its process group. New connects are refused (`ECONNREFUSED`: the
/// host listener was only in serve-inbound), the established connection keeps exchanging
/// data both ways, a half-close still goes through, and its relay exits when it has closed.
fn established_connections_outlive_serve_inbound(unprivileged: bool) {
    let Some(b) = broker(unprivileged) else { return };
    let pfn = probe_package(&b, &format!("Fabrikam.InKeep{}", u8::from(unprivileged)));
    let port = free_port();
    listen(&b, &pfn, "serve", port);
    for interrupt in [false, true] {
        let case = if interrupt { "^C" } else { "kill -9" };
        let mut si = ServeInbound::start(&b, &pfn, &[port]);
        let mut c = connect(port);
        assert_eq!(exchange(&mut c, "one"), "echo:one", "{case}");
        let seen: Vec<_> = relays(&pfn).into_iter().map(lineage).collect();
        let parent_session = lineage(si.pid).2;
        if interrupt {
            si.interrupt();
        } else {
            si.kill();
        }
        let refused = TcpStream::connect(("127.0.0.1", port)).map(|_| ()).unwrap_err();
        assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{case}: {refused}");
        assert_eq!(exchange(&mut c, "two"), "echo:two", "{case}: after serve-inbound ended");
        assert_eq!(exchange(&mut c, "three"), "echo:three", "{case}");
        check_relay(&b, &seen, si.pid, parent_session);
        assert_eq!(relays(&pfn), [seen[0].0], "{case}");
        // The client's half-close reaches the listener, which closes: end of stream here.
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "{case}: {rest:?}");
        drop(c);
        wait_no_relays(&pfn);
    }
}

#[test]
fn established_connections_outlive_serve_inbound_root_broker() {
    established_connections_outlive_serve_inbound(false);
}

#[test]
fn established_connections_outlive_serve_inbound_unprivileged_broker() {
    established_connections_outlive_serve_inbound(true);
}

/// The edges of the relay: a half-close by the client (the listener answers only once it has
/// read to the end) and by the listener (the client goes on sending after it read the end); a
/// client that never reads while the listener floods it (the listener's writes stall, nothing
/// is buffered without bound, and every byte arrives once the client reads); a client that
/// goes away mid-stream. Every relay exits, serve-inbound reaps each and holds no fd of any.
fn relay_edges(unprivileged: bool) {
    let Some(b) = broker(unprivileged) else { return };
    let pfn = probe_package(&b, &format!("Fabrikam.InEdge{}", u8::from(unprivileged)));
    let (drain, greet, flood) = (free_port(), free_port(), free_port());
    listen(&b, &pfn, "drain", drain);
    listen(&b, &pfn, "greet", greet);
    listen(&b, &pfn, "flood", flood);
    let si = ServeInbound::start(&b, &pfn, &[drain, greet, flood]);
    // What serve-inbound holds once a first connection has come and gone.
    let mut c = connect(drain);
    c.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "drained 0");
    drop(c);
    wait_no_relays(&pfn);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !children(si.pid).is_empty() {
        assert!(Instant::now() < deadline, "a relay not reaped: {:?}", children(si.pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = fds(si.pid);

    // The client half-closes; the answer comes after.
    let mut c = connect(drain);
    let sent = vec![b'a'; 300_000];
    c.write_all(&sent).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, format!("drained {}", sent.len()));
    drop(c);

    // The listener half-closes; the client reads its end of stream, then still sends.
    let mut c = connect(greet);
    let mut hello = String::new();
    c.read_to_string(&mut hello).unwrap();
    assert_eq!(hello, "hello");
    c.write_all(b"after your end").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let line = wait_line(&b, &pfn, "greet got:");
    assert_eq!(line, "greet got: after your end");
    drop(c);

    // A client that does not read: the flood stalls.
    let mut c = connect(flood);
    let line = wait_line(&b, &pfn, "flood ");
    let sent: u64 = match line.strip_prefix("flood stalled after ") {
        Some(n) => n.parse().unwrap(),
        None => panic!("the listener's writes never stalled: {line}"),
    };
    let mut got = Vec::new();
    c.read_to_end(&mut got).unwrap();
    assert_eq!(got.len() as u64, sent, "every byte written arrives, once");
    drop(c);

    // A client that goes away mid-stream (the listener waits for the end).
    let mut c = connect(drain);
    c.write_all(b"partial").unwrap();
    drop(c);

    wait_no_relays(&pfn);
    // serve-inbound reaps every relay and holds no fd of any connection.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !children(si.pid).is_empty() || fds(si.pid).len() != before.len() {
        assert!(
            Instant::now() < deadline,
            "serve-inbound kept children {:?} or fds {:?} (before: {before:?})",
            children(si.pid),
            fds(si.pid)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn relays_pass_half_closes_and_back_pressure_root_broker() {
    relay_edges(false);
}

#[test]
fn relays_pass_half_closes_and_back_pressure_unprivileged_broker() {
    relay_edges(true);
}

/// The attack: run serve-inbound out of fds with connections held open (each costs it a
/// pidfd while its relay lives, and every accept an fd). Connections beyond what it can take
/// wait or are closed; but once the held ones have closed it serves new connections again:
/// its listener stays while it runs.
#[test]
fn serve_inbound_serves_again_after_running_out_of_fds() {
    use rustix::process::{Resource, Rlimit};
    let b = TestBroker::start();
    let pfn = probe_package(&b, "Fabrikam.InFds");
    let port = free_port();
    listen(&b, &pfn, "serve", port);
    let si = ServeInbound::start(&b, &pfn, &[port]);
    let mut c = connect(port);
    assert_eq!(exchange(&mut c, "warm"), "echo:warm");
    drop(c);
    wait_no_relays(&pfn);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !children(si.pid).is_empty() {
        assert!(Instant::now() < deadline, "a relay not reaped: {:?}", children(si.pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    // Room for a few more fds (at least 72: spawning places fds above 64 first).
    let open = fds(si.pid).len() as u64;
    let limit = (open + 3).max(72);
    let hard = rustix::process::getrlimit(Resource::Nofile).maximum;
    let pid = rustix::process::Pid::from_raw(si.pid as i32).unwrap();
    rustix::process::prlimit(
        Some(pid),
        Resource::Nofile,
        Rlimit { current: Some(limit), maximum: hard },
    )
    .unwrap();
    let held: Vec<TcpStream> = (0..limit - open + 8)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", port)).ok())
        .inspect(|mut s| {
            let _ = s.write_all(b"held");
        })
        .collect();
    assert!(!held.is_empty());
    drop(held);
    wait_no_relays(&pfn);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| {
        panic!("serve-inbound stopped listening after running out of fds: {e}")
    });
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = vec![0u8; 10];
    let answer = c.write_all(b"again").and_then(|()| c.read_exact(&mut got));
    assert!(
        answer.is_ok(),
        "{answer:?} (fds {open}, limit {limit}): serve-inbound said:\n{}\n{}",
        si.said(),
        std::fs::read_to_string(format!("/proc/{}/limits", si.pid)).unwrap_or_default()
    );
    assert_eq!(got, b"echo:again");
}

/// An unpackaged client that uses `::1` gets in too (serve-inbound listens on both loopback
/// addresses; the listener in the package listens on 127.0.0.1), and is refused once the
/// command has ended. Skipped on a host without IPv6 loopback.
#[test]
fn ipv6_loopback_clients_get_in_while_serve_inbound_runs() {
    if std::net::TcpListener::bind(("::1", 0)).is_err() {
        eprintln!("SKIPPED: this host has no IPv6 loopback (::1)");
        return;
    }
    let b = TestBroker::start();
    let pfn = probe_package(&b, "Fabrikam.InSix");
    let port = free_port();
    listen(&b, &pfn, "serve", port);
    let mut si = ServeInbound::start(&b, &pfn, &[port]);
    let line = format!("listening on [::1]:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !si.said().lines().any(|l| l == line) {
        assert!(Instant::now() < deadline, "serve-inbound never said {line:?}:\n{}", si.said());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = TcpStream::connect(("::1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    assert_eq!(exchange(&mut c, "six"), "echo:six");
    si.kill();
    let refused = TcpStream::connect(("::1", port)).map(|_| ()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    assert_eq!(exchange(&mut c, "seven"), "echo:seven", "established over ::1 stays");
    drop(c);
    wait_no_relays(&pfn);
}
