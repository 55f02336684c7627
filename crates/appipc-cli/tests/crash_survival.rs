//! Crash survival (issue 13): a broker killed with SIGKILL costs running apps nothing. Apps
//! (confined and full trust), their established channels (an app-service conversation, a
//! pipe, a file mapping) and their sessions outlive it; the restarted broker adopts the
//! processes by identity, lists them, tells `launch --wait` how they ended, and stops them
//! before it removes their package. With the broker as root and as an ordinary user.
//!
//! The apps are `crash-probe` (appipc-testkit), driven line by line through `appipc launch
//! --wait`, whose own session outlives the broker too.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use appipc_testkit::{
    CONTOSO_SERVICES, TestBroker, assemble, assemble_manifest, bin_dir, readable_by_all, test_user,
    unique,
};

const PROBE: &str = r#"
[package]
name = "AppIpc.CrashProbe"
publisher = "CN=appipc tests"
version = "1.0.0.0"

[capabilities]
restricted = ["runFullTrust"]

[[application]]
id = "App"
executable = "bin/crash-probe"

[[application]]
id = "Full"
executable = "bin/crash-probe"
trust-level = "mediumIL"
"#;

const ECHO: &str = "com.contoso.echo";

/// Installs a package folder through the CLI, consenting; returns its family name.
fn install_dir(b: &TestBroker, dir: &Path) -> String {
    readable_by_all(dir);
    let out = b.cli().args(["install", "--yes", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "install: {}", String::from_utf8_lossy(&out.stderr));
    let full = String::from_utf8_lossy(&out.stdout).trim().rsplit(' ').next().unwrap().to_owned();
    let p: Vec<&str> = full.split('_').collect();
    format!("{}_{}", p[0], p[4])
}

fn install_probe(b: &TestBroker) -> String {
    let dir = assemble_manifest(PROBE, &b.root.path().join(unique("probe")), &bin_dir()).unwrap();
    install_dir(b, &dir)
}

fn install_services(b: &TestBroker) -> String {
    let dir = assemble(&CONTOSO_SERVICES, &b.root.path().join(unique("services"))).unwrap();
    install_dir(b, &dir)
}

/// A `crash-probe` launched with `appipc launch --wait`, its stdin and stdout piped.
struct Probe {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    seen: Vec<String>,
    what: String,
}

impl Probe {
    fn launch(b: &TestBroker, target: &str) -> Probe {
        let mut child = b
            .cli()
            .args(["launch", "--wait", target])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut p = Probe { child, stdin, lines, seen: Vec::new(), what: target.to_owned() };
        p.expect("ready");
        p
    }

    /// The next line that starts with `prefix` (other lines are kept for later).
    fn expect(&mut self, prefix: &str) -> String {
        if let Some(i) = self.seen.iter().position(|l| l.starts_with(prefix)) {
            return self.seen.remove(i);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                if l.starts_with(prefix) {
                    return l;
                }
                self.seen.push(l);
            }
        }
        panic!("{}: no line starting with {prefix:?}; got {:?}", self.what, self.seen);
    }

    /// Sends a command and returns its answer.
    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let word = command.split_whitespace().next().unwrap().to_owned();
        self.expect(&word)
    }

    /// `whoami`, checked: (family, app, trust, pid).
    fn whoami(&mut self) -> (String, String, String, u32) {
        let l = self.ask("whoami");
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.get(1), Some(&"ok"), "{}: {l}", self.what);
        (f[2].to_owned(), f[3].to_owned(), f[4].to_owned(), f[5].parse().unwrap())
    }

    /// Waits for `appipc launch --wait` to exit.
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pids `appipc ps` lists.
fn ps(b: &TestBroker) -> Vec<(u32, String)> {
    let out = b.cli().args(["ps", "--json"]).output().unwrap();
    assert!(out.status.success(), "ps: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (p["pid"].as_u64().unwrap() as u32, p["app_user_model_id"].as_str().unwrap().to_owned())
        })
        .collect()
}

mod libc_sig {
    pub const STOP: i32 = 19;
    pub const CONT: i32 = 18;
}

/// Sends `sig` to `pid` and all its descendants (an app container's pid is its init's).
fn send(pid: u32, sig: i32) {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", all[i])).into_iter().flatten();
        for t in tasks.flatten() {
            let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            all.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .args(all.iter().map(u32::to_string))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {all:?}");
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| !r.trim_start().starts_with('Z')))
}

/// The whole scenario of the issue's "done when" (a), (b), (c).
fn apps_and_channels_survive(user: Option<(u32, u32)>) {
    let mut b = match user {
        Some((uid, gid)) => TestBroker::start_as(uid, gid, &[]),
        None => TestBroker::start(),
    };
    let probe = install_probe(&b);
    let services = install_services(&b);
    let mut a = Probe::launch(&b, &format!("{probe}!App"));
    let mut c = Probe::launch(&b, &format!("{probe}!App"));
    let mut f = Probe::launch(&b, &format!("{probe}!Full"));
    let (fam, app, trust, a_pid) = a.whoami();
    assert_eq!(
        (fam.as_str(), app.as_str(), trust.as_str()),
        (probe.as_str(), "App", "appcontainer")
    );
    let c_pid = c.whoami().3;
    let (_, f_app, f_trust, f_pid) = f.whoami();
    assert_eq!((f_app.as_str(), f_trust.as_str()), ("Full", "fulltrust"));
    // (b) an app-service conversation, (c) a pipe and a mapping between two confined apps.
    assert_eq!(a.ask(&format!("open {services} {ECHO}")), "open Success");
    assert_eq!(a.ask("send 1"), "send 1 ok");
    assert_eq!(a.ask(r"pipe-serve \\.\pipe\LOCAL\crash"), "pipe-serve ok");
    assert_eq!(c.ask(r"pipe-open \\.\pipe\LOCAL\crash"), "pipe-open ok");
    a.expect("pipe-serve connected");
    assert_eq!(c.ask("pipe-send before"), "pipe-send ok");
    assert_eq!(a.ask("pipe-recv"), "pipe-recv before");
    assert_eq!(a.ask(r"map-create Local\crashmap"), "map-create ok");
    assert_eq!(a.ask("map-write one"), "map-write ok");
    assert_eq!(c.ask(r"map-open Local\crashmap"), "map-open ok");
    assert_eq!(c.ask("map-read"), "map-read one");
    let before = ps(&b);
    let host = before.iter().find(|(_, a)| a.starts_with(&services)).expect("the echo host").0;

    b.kill();
    // Nothing the apps talk over went through the broker.
    for (pid, what) in &before {
        assert!(alive(*pid), "{what} (pid {pid}) died with the broker");
    }
    assert_eq!(a.ask("send 2"), "send 2 ok");
    assert_eq!(c.ask("pipe-send during"), "pipe-send ok");
    assert_eq!(a.ask("pipe-recv"), "pipe-recv during");
    assert_eq!(a.ask("map-write two"), "map-write ok");
    assert_eq!(c.ask("map-read"), "map-read two");

    // The host is held stopped across the restart, so it registers again only after the
    // next opener asks: that opener waits for it rather than starting a second host.
    send(host, libc_sig::STOP);
    b.restart();
    // The apps' next SDK calls work, with their identities.
    assert_eq!(a.whoami(), (probe.clone(), "App".into(), "appcontainer".into(), a_pid));
    assert_eq!(c.whoami().3, c_pid);
    assert_eq!(f.whoami(), (probe.clone(), "Full".into(), "fulltrust".into(), f_pid));
    // The host registers again by itself: a new connection goes to it, not to a new host,
    // even when asked for before the host is back.
    writeln!(c.stdin, "open {services} {ECHO}").unwrap();
    c.stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    send(host, libc_sig::CONT);
    assert_eq!(c.expect("open"), "open Success");
    assert_eq!(a.ask("send 3"), "send 3 ok", "the conversation goes on");
    assert_eq!(c.ask("send 4"), "send 4 ok");
    assert_eq!(c.ask("pipe-send after"), "pipe-send ok");
    assert_eq!(a.ask("pipe-recv"), "pipe-recv after");
    // The restarted broker knows every process the first one started.
    let mut after: Vec<u32> = ps(&b).into_iter().map(|(p, _)| p).collect();
    after.sort_unstable();
    let mut want: Vec<u32> = before.iter().map(|(p, _)| *p).collect();
    want.sort_unstable();
    assert_eq!(after, want, "ps after the restart");
    assert!(want.contains(&host) && want.contains(&a_pid) && want.contains(&f_pid));
    // A new process of the package works as well.
    let mut d = Probe::launch(&b, &format!("{probe}!App"));
    assert_eq!(d.whoami().0, probe);
    // remove stops them first: the `launch --wait`s hear of it from the new broker.
    let out = b.cli().args(["remove", &probe]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "remove: {said}{}", String::from_utf8_lossy(&out.stderr));
    assert!(said.contains("stopped 4 running process"), "{said}");
    for p in [&mut a, &mut c, &mut f, &mut d] {
        assert_eq!(
            p.exit_code(Duration::from_secs(30)),
            Some(128 + 9),
            "{} exits as killed",
            p.what
        );
    }
    for pid in [a_pid, c_pid, f_pid] {
        assert!(!alive(pid), "pid {pid} still runs after remove");
    }
    // The echo host served only the removed apps' connections: an out-of-process host ends
    // with its last connection (as a Windows task host with no task left).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left: Vec<u32> = ps(&b).iter().map(|(p, _)| *p).collect();
        if left.is_empty() {
            break;
        }
        assert_eq!(left, [host], "only the echo host may still be ending");
        assert!(std::time::Instant::now() < deadline, "the echo host ended with its connections");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn apps_and_their_channels_survive_a_killed_root_broker() {
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!("SKIPPED apps_and_their_channels_survive_a_killed_root_broker: not root");
        return;
    }
    apps_and_channels_survive(None);
}

#[test]
fn apps_and_their_channels_survive_a_killed_unprivileged_broker() {
    if rustix::process::getuid().as_raw() != 0 {
        apps_and_channels_survive(None);
        return;
    }
    let Some(user) = test_user() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs the user appipc-test (scripts/test.sh creates it)"
        );
        eprintln!(
            "SKIPPED apps_and_their_channels_survive_a_killed_unprivileged_broker: no user appipc-test"
        );
        return;
    };
    apps_and_channels_survive(Some(user));
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A request the dying broker had read and not answered fails with a clear, retryable error;
/// one sent while no broker ran is answered by the next; the session is the same.
#[test]
fn a_request_the_dead_broker_took_along_fails_retryably_and_queued_ones_are_answered() {
    use appipc::named_pipes::{NamedPipeServer, PipeOptions};
    let mut b = TestBroker::start();
    rt().block_on(async {
        let s = b.session();
        let me = appipc::ProcessIdentity::query(&s).await.unwrap().0;
        // A pipe whose only instance is busy: WaitNamedPipe waits in the broker.
        let opts = PipeOptions { max_instances: 1, ..Default::default() };
        let _server = NamedPipeServer::create(&s, r"\\.\pipe\busy", &opts).await.unwrap();
        let _client =
            appipc::named_pipes::open(&s, r"\\.\pipe\busy", appipc::named_pipes::GENERIC_READ)
                .await
                .unwrap();
        let waiting = {
            let s = s.clone();
            tokio::spawn(async move {
                appipc::named_pipes::wait_named_pipe(&s, r"\\.\pipe\busy", Duration::from_secs(60))
                    .await
            })
        };
        // Requests are read in order: once a later one is answered, the wait has been read.
        tokio::task::yield_now().await;
        appipc::broker::ping(&s).await.unwrap();
        b.kill();
        let queued = {
            let s = s.clone();
            tokio::spawn(async move { appipc::ProcessIdentity::query(&s).await })
        };
        tokio::task::yield_now().await;
        b.restart();
        let lost = waiting.await.unwrap().unwrap_err();
        assert!(
            matches!(lost, appipc::Error::BrokerRestarted { request: "Wait" })
                && lost.is_retryable(),
            "{lost:?}"
        );
        let answered = queued.await.unwrap().expect("the request sent while no broker ran");
        assert_eq!(answered.0.session_id, me.session_id, "the same session");
        assert_eq!(answered.0.pid, me.pid);
    });
}

/// Right after a broker is killed, CLI commands neither fail nor start a second broker: they
/// wait for the dying broker to be gone, one of them starts a broker, the others use it.
#[test]
fn commands_right_after_a_crash_wait_and_start_exactly_one_broker() {
    let mut b = TestBroker::start();
    let pid = b.pid();
    let broker = appipc_sys::process::pidfd_open(pid).unwrap();
    appipc_sys::process::send_signal(&broker, appipc_sys::process::ProcessSignal::KILL).unwrap();
    let commands: Vec<_> = (0..12)
        .map(|_| b.cli().arg("list").stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    let outs: Vec<_> = commands.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    b.kill();
    let mut started = 0;
    for o in &outs {
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "a command right after the crash failed: {err}");
        started += usize::from(err.contains("started one"));
    }
    assert_eq!(started, 1, "exactly one command starts a broker");
    let holder = appipc_sys::fs::lock_holder(&b.runtime_dir.join("broker.lock")).unwrap();
    assert!(holder.is_some_and(|h| h != pid), "a new broker holds the runtime folder");
    // That broker is not the test's: stop it, and all it holds.
    let out = b.cli().args(["stop", "--apps"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The keeper's pid, as the broker recorded it.
fn keeper_pid(b: &TestBroker) -> u32 {
    let text = std::fs::read_to_string(b.runtime_dir.join("keeper.id")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["pid"].as_u64().unwrap() as u32
}

fn wait_for_log(b: &TestBroker, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !b.log().contains(needle) {
        assert!(Instant::now() < deadline, "the broker never logged {needle:?}:\n{}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A confined app cannot signal the keeper; a keeper killed anyway (a full-trust app can) is
/// replaced at once, and the sessions still outlive the broker.
#[test]
fn a_killed_keeper_is_replaced_and_sessions_still_survive_the_broker() {
    let mut b = TestBroker::start();
    let probe = install_probe(&b);
    let mut a = Probe::launch(&b, &format!("{probe}!App"));
    let me = a.whoami();
    let keeper = keeper_pid(&b);
    let tried = a.ask(&format!("signal {keeper}"));
    assert!(tried.starts_with("signal err"), "a confined app signalled the keeper: {tried}");
    assert!(alive(keeper));
    let pidfd = appipc_sys::process::pidfd_open(keeper).unwrap();
    appipc_sys::process::send_signal(&pidfd, appipc_sys::process::ProcessSignal::KILL).unwrap();
    wait_for_log(&b, "sessions deposited again with a new keeper");
    assert_ne!(keeper_pid(&b), keeper);
    b.kill();
    b.restart();
    assert_eq!(a.whoami(), me, "the session outlived the keeper and the broker");
}

/// A full-trust app (the user's own uid, or root under a root broker) can reach the keeper's
/// socket, but the keeper takes sessions only from the broker: a session deposited with a
/// forged record is not served after a restart, and nothing is handed over to it. Under an
/// unprivileged broker it cannot take the keeper's fds either (the keeper is not dumpable).
fn the_keeper_trusts_only_the_broker(user: Option<(u32, u32)>) {
    let mut b = match user {
        Some((uid, gid)) => TestBroker::start_as(uid, gid, &[]),
        None => TestBroker::start(),
    };
    let probe = install_probe(&b);
    let full_name = {
        let out = b.cli().args(["list", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v[0]["full_name"].as_str().unwrap().to_owned()
    };
    let mut f = Probe::launch(&b, &format!("{probe}!Full"));
    let mut a = Probe::launch(&b, &format!("{probe}!App"));
    let socket = b.runtime_dir.join("keeper.sock");
    let forge = format!("forge-keeper {} {full_name}", socket.display());
    let forged = f.ask(&forge);
    assert!(forged.starts_with("forge-keeper refused"), "while the broker runs: {forged}");
    if user.is_some() || rustix::process::getuid().as_raw() != 0 {
        let stolen = f.ask(&format!("steal-fds {}", keeper_pid(&b)));
        assert!(
            stolen.starts_with("steal-fds err"),
            "a full-trust app took the keeper's fds: {stolen}"
        );
    }
    // While no broker runs, the keeper waits for the next one: not for anyone.
    b.kill();
    let forged = f.ask(&forge);
    assert!(forged.starts_with("forge-keeper refused"), "while no broker runs: {forged}");
    b.restart();
    let forged = f.ask("forged-whoami");
    assert!(forged.starts_with("forged-whoami err"), "a forged session was served: {forged}");
    assert_eq!(f.whoami().1, "Full");
    assert_eq!(a.whoami().1, "App");
}

#[test]
fn the_keeper_trusts_only_the_broker_root() {
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!("SKIPPED the_keeper_trusts_only_the_broker_root: not root");
        return;
    }
    the_keeper_trusts_only_the_broker(None);
}

#[test]
fn the_keeper_trusts_only_the_broker_unprivileged() {
    if rustix::process::getuid().as_raw() != 0 {
        the_keeper_trusts_only_the_broker(None);
        return;
    }
    let Some(user) = test_user() else {
        eprintln!("SKIPPED the_keeper_trusts_only_the_broker_unprivileged: no user appipc-test");
        return;
    };
    the_keeper_trusts_only_the_broker(Some(user));
}

/// A process record whose pid now belongs to another process (the app ended while no broker
/// ran, the kernel gave its pid away) is not adopted: that process is neither listed nor
/// stopped.
#[test]
fn a_reused_pid_is_not_taken_for_the_app() {
    let mut b = TestBroker::start();
    let probe = install_probe(&b);
    let mut a = Probe::launch(&b, &format!("{probe}!App"));
    let app_pid = a.whoami().3;
    let mut bystander = std::process::Command::new("sleep").arg("300").spawn().unwrap();
    b.kill();
    drop(a);
    // The app's record now names the bystander's pid, as a reused pid would.
    let db = rusqlite::Connection::open(b.home.join("state.sqlite")).unwrap();
    let n = db
        .execute(
            "UPDATE processes SET pid = ?1 WHERE pid = ?2",
            [i64::from(bystander.id()), i64::from(app_pid)],
        )
        .unwrap();
    assert_eq!(n, 1, "the app's record");
    drop(db);
    b.restart();
    assert!(!ps(&b).iter().any(|(p, _)| *p == bystander.id()), "the bystander is listed");
    let out = b.cli().args(["remove", &probe]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(said.contains("stopped 0"), "{said}");
    assert!(bystander.try_wait().unwrap().is_none(), "remove killed a process that is not the app");
    let _ = bystander.kill();
    let _ = bystander.wait();
}

/// The socket inodes behind a process's fds.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// `pid` and all its descendants.
fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                out.extend(kids.split_whitespace().filter_map(|k| k.parse::<u32>().ok()));
            }
        }
        i += 1;
    }
    out
}

/// No app ever holds the broker's end of a session, before a restart or after: the keeper's
/// fds (a duplicate of every broker end) and the apps' fds are different sockets.
#[test]
fn no_app_holds_the_brokers_end_of_a_session() {
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!(
            "SKIPPED no_app_holds_the_brokers_end_of_a_session: reading other processes' fds needs root"
        );
        return;
    }
    let mut b = TestBroker::start();
    let probe = install_probe(&b);
    let mut a = Probe::launch(&b, &format!("{probe}!App"));
    let mut f = Probe::launch(&b, &format!("{probe}!Full"));
    let pids = [a.whoami().3, f.whoami().3];
    let check = |b: &TestBroker, when: &str| {
        let broker_ends = socket_inodes(keeper_pid(b));
        assert!(broker_ends.len() >= 4, "the keeper holds the sessions: {broker_ends:?}");
        for pid in pids {
            for p in tree(pid) {
                let leaked: Vec<_> =
                    socket_inodes(p).into_iter().filter(|i| broker_ends.contains(i)).collect();
                assert!(leaked.is_empty(), "{when}: process {p} holds broker ends {leaked:?}");
            }
        }
    };
    check(&b, "before the restart");
    b.kill();
    b.restart();
    a.whoami();
    f.whoami();
    check(&b, "after the restart");
}

fn servicing_manifest(version: &str) -> String {
    format!(
        "[package]\nname = \"AppIpc.Servicing\"\npublisher = \"CN=appipc tests\"\nversion = \"{version}\"\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/crash-probe\"\n\n\
         [[application]]\nid = \"Svc\"\nexecutable = \"bin/services-app\"\n\n\
         [[application.app-service]]\nname = \"com.contoso.inproc\"\n"
    )
}

/// An upgrade ends the old version's running processes before it replaces its files, as
/// Windows shuts an app down for servicing — after its app-service hosts were told
/// (`ServicingUpdate`). (Before, a process of the old version ran on, with the old version's
/// grants, over files that were gone: red team of issue 9, F9.)
#[test]
fn an_upgrade_ends_the_old_versions_processes_after_servicing_update() {
    let b = TestBroker::start();
    let v1 = assemble_manifest(
        &servicing_manifest("1.0.0.0"),
        &b.root.path().join(unique("v1")),
        &bin_dir(),
    )
    .unwrap();
    let pfn = install_dir(&b, &v1);
    let mut app = Probe::launch(&b, &format!("{pfn}!App"));
    app.whoami();
    let out = b.cli().args(["launch", &format!("{pfn}!Svc")]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for_log(&b, "app service host registered");
    assert_eq!(ps(&b).len(), 2);
    let v2 = assemble_manifest(
        &servicing_manifest("1.1.0.0"),
        &b.root.path().join(unique("v2")),
        &bin_dir(),
    )
    .unwrap();
    let out = b.cli().args(["install", v2.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // By the time the upgrade answered, the old version's processes were gone.
    assert!(ps(&b).is_empty(), "old version still running: {:?}", ps(&b));
    assert_eq!(app.exit_code(Duration::from_secs(30)), Some(128 + 9), "the app was ended");
    assert!(
        b.app_log(&pfn).contains("canceled: ServicingUpdate (3)"),
        "the host was told why first:\n{}",
        b.app_log(&pfn)
    );
    let list = b.cli().args(["list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("1.1.0.0"));
}

/// A process that ends while no broker runs is forgotten by the next one (not listed, its
/// record gone), and the `launch --wait` that waited for it is told (its status is lost).
#[test]
fn a_process_that_ends_while_no_broker_runs_is_forgotten_and_its_waiter_told() {
    let mut b = TestBroker::start();
    let probe = install_probe(&b);
    let mut a = Probe::launch(&b, &format!("{probe}!App"));
    let pid = a.whoami().3;
    b.kill();
    writeln!(a.stdin, "exit 3").unwrap();
    a.stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(pid) {
        assert!(Instant::now() < deadline, "the app did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(a.exit_code(Duration::from_millis(200)), None, "launch --wait waits for the broker");
    b.restart();
    assert_eq!(a.exit_code(Duration::from_secs(30)), Some(1), "launch --wait is told");
    assert!(ps(&b).is_empty(), "{:?}", ps(&b));
}

/// `appipc stop --apps` ends what a broker before it started too, and the keeper.
#[test]
fn stop_apps_ends_adopted_processes_and_the_keeper() {
    let mut b = TestBroker::start();
    let probe = install_probe(&b);
    let mut a = Probe::launch(&b, &format!("{probe}!App"));
    let mut f = Probe::launch(&b, &format!("{probe}!Full"));
    let pids = [a.whoami().3, f.whoami().3];
    b.kill();
    b.restart();
    let keeper = keeper_pid(&b);
    let out = b.cli().args(["stop", "--apps"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for p in [&mut a, &mut f] {
        // Killed (137), as its waiter tells; or 75 when the broker was killed after the app
        // had started but before its `Launch` reply reached the waiter (seen on a loaded
        // machine): the SDK then says the launch "may or may not have been carried out". Either
        // way the process itself must be gone (below).
        let code = p.exit_code(Duration::from_secs(30));
        assert!(matches!(code, Some(137 | 75)), "{} ended with {code:?}", p.what);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids.iter().any(|p| alive(*p)) || alive(keeper) {
        assert!(Instant::now() < deadline, "processes or the keeper outlived stop --apps");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A new session is served once the keeper holds it (the hand-over is in the keeper's socket);
/// a keeper that does not read (stopped: a full-trust app of the user can stop it) delays new
/// sessions by at most a bound once its socket is full, and stalls nothing.
#[test]
fn a_stopped_keeper_does_not_stall_new_sessions() {
    let b = TestBroker::start();
    let keeper = keeper_pid(&b);
    send(keeper, libc_sig::STOP);
    let mut lists = Vec::new();
    for _ in 0..3 {
        lists.push(b.cli().args(["list"]).spawn().unwrap());
    }
    for mut l in lists {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = l.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = l.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.is_some_and(|s| s.success()), "list under a stopped keeper: {status:?}");
    }
    send(keeper, libc_sig::CONT);
    assert!(b.cli().args(["list"]).status().unwrap().success());
}
