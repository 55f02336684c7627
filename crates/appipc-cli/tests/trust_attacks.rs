//! Attacks on the broker's trust core (issue 9's red team). Each test is a hole that was
//! found: it failed on the code it was written against and passes since the hole was closed. The attacker is a
//! confined app (the `redteam-probe` binary installed as a package and launched by the broker)
//! or a malicious local client (raw frames on the public socket).

use std::io::{BufRead, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use appipc_sys::socket::{self, Blocking};
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, unique};
use appipc_wire::frame::{Frame, MAX_FRAME_LEN};
use appipc_wire::protocol::named_objects::{self as no, NamedObjectKind};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn install_probe(b: &TestBroker, name: &str, publisher: &str) -> String {
    b.install_app(name, publisher, "redteam-probe")
}

/// Runs the probe confined as `pfn` and waits; returns its stdout.
fn probe(b: &TestBroker, pfn: &str, steps: &[&str]) -> String {
    b.run_app(pfn, steps)
}

/// Starts the probe confined as `pfn` without waiting; its stdout lines arrive on the channel.
fn probe_spawn(
    b: &TestBroker,
    pfn: &str,
    steps: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut args = vec!["launch", "--wait", pfn, "--"];
    args.extend_from_slice(steps);
    let mut child = b.cli().args(&args).stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn wait_line(rx: &std::sync::mpsc::Receiver<String>, needle: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seen = String::new();
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push_str(&l);
            seen.push('\n');
            if l.contains(needle) {
                return seen;
            }
        }
    }
    panic!("no line with {needle:?} in {secs} s; got:\n{seen}");
}

fn result<'a>(out: &'a str, step: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(step).and_then(|r| r.strip_prefix(" => ")))
        .unwrap_or_else(|| panic!("no result for {step:?} in:\n{out}"))
}

/// How many fds the broker process has open.
fn broker_fds(b: &TestBroker) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", b.pid())).unwrap().count()
}

/// How many of the broker's threads sleep in a kernel function whose name contains `what`.
fn broker_threads_in(b: &TestBroker, what: &str) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", b.pid()))
        .unwrap()
        .flatten()
        .filter(|t| {
            let stack = std::fs::read_to_string(t.path().join("stack")).unwrap_or_default();
            let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
            stack.contains(what) || wchan.contains(what)
        })
        .count()
}

/// Whether a brand-new client gets a `Pong` within `secs`.
fn fresh_client_is_served(b: &TestBroker, secs: u64) -> bool {
    let Ok(fd) = socket::seqpacket_connect(&b.socket()) else { return false };
    ping_within(&fd, secs)
}

/// Whether a `Ping` on `fd` is answered within `secs`.
fn ping_within(fd: &OwnedFd, secs: u64) -> bool {
    let req = Frame::request(1, appipc_wire::protocol::broker::Ping {}).to_cbor();
    if socket::send(fd, &req, &[], Blocking::Yes).is_err() {
        return false;
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match socket::recv(fd, MAX_FRAME_LEN, Blocking::No) {
            Ok(Some(p)) => return Frame::from_cbor(&p.data).is_ok_and(|f| f.reply.is_some()),
            Ok(None) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(_) => return false,
        }
    }
    false
}

const CONTOSO: &str = "CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH";
const FABRIKAM: &str = "CN=Fabrikam Inc, O=Fabrikam, C=US";

/// The user the unprivileged-broker variants run as (CI creates it; `scripts/test.sh` too).
const UNPRIVILEGED_USER: &str = "appipc-test";

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
            .flatten()
    })
}

/// A broker as root (`None`), or as the unprivileged test user; `None` (with the reason
/// printed) when this machine cannot run that variant.
fn broker_as(unprivileged: bool, test: &str) -> Option<TestBroker> {
    let root = rustix::process::getuid().is_root();
    match (unprivileged, root) {
        (false, true) => Some(TestBroker::start()),
        (false, false) => {
            eprintln!("SKIPPED {test}: not root (the unprivileged variant runs as this user)");
            None
        }
        (true, false) => Some(TestBroker::start()),
        (true, true) => match lookup_user(UNPRIVILEGED_USER) {
            Some((uid, gid)) => Some(TestBroker::start_as(uid, gid, &[])),
            None => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must create the user {UNPRIVILEGED_USER} (.ci/run does)"
                );
                eprintln!(
                    "SKIPPED {test}: no user {UNPRIVILEGED_USER} (useradd {UNPRIVILEGED_USER})"
                );
                None
            }
        },
    }
}

/// F1 (high): a `FILE_MAP_READ` handle was the broker's memfd reopened read-only, but a memfd
/// can be reopened read-write through `/proc/self/fd/N` (or `/dev/fd/N`) — inside the app
/// container too (Landlock does not govern memfds: they live on the kernel's internal shm
/// mount) — and it was mode 0777. Under an unprivileged broker the app's uid *is* the memfd's
/// owner, so a mode the broker sets it can set back (`fchmod`, `chmod` of `/proc/self/fd/N`,
/// a symbolic link swapped to it, a POSIX ACL). A mapping backed by the creator's own memfd
/// had the same hole. The package granted `FILE_MAP_READ` only must not change a byte; a
/// `FILE_MAP_WRITE` holder still writes and the readers see it.
fn f1_matrix(unprivileged: bool, test: &str) {
    let Some(b) = broker_as(unprivileged, test) else { return };
    let who = if unprivileged { "unprivileged broker" } else { "root broker" };
    let creator = install_probe(&b, "Contoso.Rt9Creator", CONTOSO);
    let reader = install_probe(&b, "Fabrikam.Rt9Reader", FABRIKAM);
    let writer = install_probe(&b, "Fabrikam.Rt9Writer", FABRIKAM);
    let sid = |pfn: &str| appipc_model::sid::appcontainer_sid(pfn).to_string();
    // FILE_MAP_READ for the reader, FILE_MAP_READ | FILE_MAP_WRITE for the writer (and the
    // user's side, OW: an app container gets what both sides grant).
    let sddl = format!("D:(A;;GA;;;OW)(A;;0x4;;;{})(A;;0x6;;;{})", sid(&reader), sid(&writer));
    let (map, file_map) = (unique("rt9map"), unique("rt9filemap"));
    let local = |n: &str| format!(r"Local\{n}");
    // What the others open: the creator's namespace, by its qualified name.
    let there = |n: &str| format!(r"AppContainerNamedObjects\{}\{n}", sid(&creator));
    let mut args = vec!["launch", "--wait", creator.as_str(), "--"];
    let (lm, lf) = (local(&map), local(&file_map));
    args.extend(["create-map", &lm, &sddl, "create-file-map", &lf, &sddl, "wait-stdin"]);
    args.extend(["show-map", &lm, "show-map", &lf]);
    let mut child =
        b.cli().args(&args).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let created = wait_line(&rx, "create-file-map", 60);
    let mut problems = Vec::new();
    if !created.contains(&format!("create-map {lm} {sddl} => created")) {
        problems.push(format!("the creator could not create its mapping:\n{created}"));
    }
    // A mapping over the creator's own memfd is refused (87): its readers could write it.
    let file_map_refused = created.contains("=> error 87");
    if !file_map_refused {
        problems.push(format!("a mapping of the creator's own memfd was created:\n{created}"));
    }

    let m = there(&map);
    let mut steps: Vec<String> = Vec::new();
    for attack in [
        "rw-reopen",
        "devfd-reopen",
        "fchmod-reopen",
        "chmod-reopen",
        "acl-reopen",
        "acl-path-reopen",
    ] {
        steps.extend([attack.to_owned(), m.clone()]);
    }
    steps.extend(["symlink-race".to_owned(), m.clone(), "2000".to_owned()]);
    if !file_map_refused {
        steps.extend(["rw-reopen".to_owned(), there(&file_map)]);
    }
    let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
    let out = probe(&b, &reader, &steps);
    for line in out.lines().filter(|l| l.contains(" => ")) {
        let r = line.split(" => ").nth(1).unwrap_or("");
        let refused = r.contains("granted 0x4 fd read-only")
            && (r.ends_with("reopen-rw refused every time") || r.contains("reopen-rw refused:"));
        if !refused {
            problems.push(format!("the FILE_MAP_READ holder got a writable fd: {line}"));
        }
        eprintln!("{who}: {line}");
    }
    if let Some(race) = out.lines().find(|l| l.starts_with("symlink-race")) {
        // The race did run: some chmods reached the app's own file.
        if race.contains(" 0 chmods done") {
            problems.push(format!("the symlink race never chmodded the app's own file: {race}"));
        }
    }

    let wrote = probe(&b, &writer, &["write-map", &m, "8", "written!"]);
    if !wrote.contains("granted 0x6; wrote 8 bytes through a writable view") {
        problems.push(format!("the FILE_MAP_WRITE holder could not write: {wrote}"));
    }
    let seen = probe(&b, &reader, &["read-map", &m, "8", "8"]);
    if !seen.contains(r#"read "written!""#) {
        problems.push(format!("the reader does not see the writer's bytes: {seen}"));
    }

    input.write_all(b"go\n").unwrap();
    let shown = wait_line(&rx, &format!("show-map {lm} =>"), 60);
    let _ = child.wait();
    let line = shown.lines().find(|l| l.starts_with(&format!("show-map {lm}"))).unwrap_or("");
    if !line.contains(r#""originalwritten!"#) {
        problems.push(format!(
            "the creator's mapping holds other bytes than its own and the writer's: {line}"
        ));
    }
    assert!(
        problems.is_empty(),
        "{who}: {} problems:\n{}\n{}",
        problems.len(),
        problems.join("\n"),
        b.log()
    );
}

#[test]
fn f1_read_only_mapping_is_writable_through_proc_self_fd_with_a_root_broker() {
    f1_matrix(false, "f1_read_only_mapping_is_writable_through_proc_self_fd_with_a_root_broker");
}

#[test]
fn f1_read_only_mapping_is_writable_through_proc_self_fd_with_an_unprivileged_broker() {
    f1_matrix(
        true,
        "f1_read_only_mapping_is_writable_through_proc_self_fd_with_an_unprivileged_broker",
    );
}

/// F2 (high, DoS): redeeming a file token opens the token's recorded *path* in the broker
/// (`storage.rs`, `redeem`: `at_path = open_file(&row.path, false)`) without `O_NONBLOCK`, on
/// the async runtime. A confined app shares a file of its own folder, renames it away, makes a
/// FIFO at its path and redeems: the broker's worker blocks in `open()` on the FIFO. Two such
/// redeems take both runtime workers: the broker answers no one.
#[test]
fn f2_fifo_at_a_shared_files_path_freezes_the_broker() {
    let b = TestBroker::start();
    let app = install_probe(&b, "Contoso.Rt9Fifo", CONTOSO);
    let (mut child, rx) = probe_spawn(&b, &app, &["fifo-redeem", "2"]);
    let seen = wait_line(&rx, "redeeming", 60);
    std::thread::sleep(Duration::from_millis(1500));
    let served = fresh_client_is_served(&b, 5);
    let stuck = broker_threads_in(&b, "fifo");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        served,
        "the broker stopped answering after a confined app's redeem ({stuck} broker threads \
         blocked opening a FIFO):\n{seen}"
    );
}

/// F3 (medium, DoS): `diagnostics.FollowDecisions` spawns a task that holds the session's
/// socket and ends only when a send fails or the broker stops (`mech/diagnostics.rs`); with a
/// filter no decision matches it never sends, so it outlives its session forever. A confined
/// app loops OpenSession + FollowDecisions + close: one broker fd (and task) leaked per round,
/// with no quota, until the broker hits its fd limit.
#[test]
fn f3_follow_decisions_outlives_its_session_and_leaks_an_fd() {
    let b = TestBroker::start();
    let app = install_probe(&b, "Contoso.Rt9Follow", CONTOSO);
    // Let the broker settle, then measure.
    std::thread::sleep(Duration::from_millis(500));
    let before = broker_fds(&b);
    let out = probe(&b, &app, &["follow-leak", "300", "Nobody.Nothing_0000000000000"]);
    assert!(out.contains("300 followers left behind"), "{out}");
    std::thread::sleep(Duration::from_millis(1500));
    let after = broker_fds(&b);
    assert!(
        after < before + 50,
        "closed sessions keep their sockets open in the broker: {before} fds before, {after} after"
    );
}

/// F4 (medium, DoS): the named-object quota is per *session* (`MAX_HANDLES_PER_SESSION`,
/// `mech/named_objects.rs`) and `broker.OpenSession` is unlimited, so one confined app holds
/// 5 × 4096 objects — one broker fd each — and exhausts the broker's fd limit (20 000 here):
/// the broker then accepts no client at all.
#[test]
fn f4_per_session_quota_times_unlimited_sessions_exhausts_the_broker() {
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    let b = TestBroker::start();
    let app = install_probe(&b, "Contoso.Rt9Flood", CONTOSO);
    // Enough sessions that their quotas together pass the broker's own fd limit.
    let sessions = hard.map_or(8, |h| (h / 4096 + 1).min(64)).to_string();
    let (mut child, rx) = probe_spawn(&b, &app, &["hold", &sessions, "4096", "120"]);
    let seen = wait_line(&rx, "holding", 300);
    let fds = broker_fds(&b);
    // A few other clients of the user, at once (each costs the broker one fd).
    let mut kept = Vec::new();
    let mut served = true;
    for _ in 0..3 {
        match socket::seqpacket_connect(&b.socket()) {
            Ok(fd) => {
                served &= ping_within(&fd, 5);
                kept.push(fd);
            }
            Err(_) => served = false,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        served,
        "one confined app made the broker unable to serve other clients (fd limit {hard:?}, \
         broker holds {fds} fds):\n{seen}"
    );
}

/// Sends raw request frames on a fresh public-socket connection and closes it at once.
fn fire_and_close(b: &TestBroker, frames: &[Vec<u8>]) {
    let fd: OwnedFd = socket::seqpacket_connect(&b.socket()).unwrap();
    for f in frames {
        socket::send(fd.as_fd(), f, &[], Blocking::Yes).unwrap();
    }
    drop(fd);
}

/// F5 (medium, leak): a session's requests run as tasks of their own, and `hooks::session_closed`
/// runs as soon as the session's reader sees the end of the socket (`session.rs`, `serve`), not
/// after its requests finished. A `Create` that runs after that inserts a handle for a session
/// that will never be closed again: the object, its name and its broker fd stay forever,
/// outside any quota.
#[test]
fn f5_creates_in_flight_when_the_session_closes_leak_forever() {
    let b = TestBroker::start();
    // Control: the same creates on a session that waits for its replies before closing leave
    // nothing behind (its runtime is dropped with it, so its socket closes).
    let control = unique("rt9control");
    rt().block_on(async {
        let s = b.session();
        for i in 0..20 {
            let request = no::Create {
                kind: NamedObjectKind::Event { manual_reset: false, initial_state: false },
                name: format!(r"Session\{control}-{i}"),
                sddl: None,
            };
            s.call_with_fds(request, &[]).await.unwrap();
        }
    });
    let tag = unique("rt9leak");
    for round in 0..20 {
        let frames: Vec<Vec<u8>> = (0..60u64)
            .map(|i| {
                Frame::request(
                    i + 1,
                    no::Create {
                        kind: NamedObjectKind::Event { manual_reset: false, initial_state: false },
                        name: format!(r"Session\{tag}-{round}-{i}"),
                        sddl: None,
                    },
                )
                .to_cbor()
            })
            .collect();
        fire_and_close(&b, &frames);
    }
    // The broker releases a closed session's handles soon; a leak stays for good.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (leaked, control_left) = loop {
        let (leaked, left) = live(&b, &tag, &control);
        if (leaked.is_empty() && left == 0) || Instant::now() > deadline {
            break (leaked, left);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(control_left, 0, "a session that closed normally left objects behind");
    assert!(
        leaked.is_empty(),
        "{} objects of closed sessions are still alive, e.g. {:?}",
        leaked.len(),
        &leaked[..leaked.len().min(5)]
    );
}

/// The live objects whose names contain `tag`, and how many contain `control`.
fn live(b: &TestBroker, tag: &str, control: &str) -> (Vec<String>, usize) {
    rt().block_on(async {
        let s = b.session();
        let all = s.call(no::List {}).await.unwrap();
        let left = all.iter().filter(|o| o.name.contains(control)).count();
        let leaked = all
            .into_iter()
            .filter(|o| o.name.contains(tag))
            .map(|o| format!("{} ({} handles)", o.name, o.handles))
            .collect();
        (leaked, left)
    })
}

/// F6 (low, information leak): a decision's "object package" is set only for package
/// operations; a named-object or pipe decision records "" even when the object lives in
/// another package's namespace. `diagnostics::visible` then shows every decision of the user's
/// unpackaged processes to every confined app: the names (and namespaces) of other packages'
/// objects the user opens or creates.
#[test]
fn f6_why_shows_a_confined_app_the_users_decisions_about_other_packages() {
    let b = TestBroker::start();
    let victim = install_probe(&b, "Fabrikam.Rt9Victim", FABRIKAM);
    let snoop = install_probe(&b, "Contoso.Rt9Snoop", CONTOSO);
    let secret = unique("victimsecret");
    let rt = rt();
    rt.block_on(async {
        let s = b.session();
        let ns =
            s.call(no::GetNamedObjectPath { package_family_name: victim.clone() }).await.unwrap();
        let request = no::Create {
            kind: NamedObjectKind::FileMapping { size: 4096, writable: true },
            name: format!(r"{ns}\{secret}"),
            sddl: None,
        };
        s.call_with_fds(request, &[]).await.unwrap();
    });
    let out = probe(&b, &snoop, &["why", &secret]);
    let r = result(&out, &format!("why {secret}"));
    // The user sees it, and so does the package whose namespace it is in.
    let user = b.cli().args(["why", "--all", "--json"]).output().unwrap();
    assert!(String::from_utf8_lossy(&user.stdout).contains(&secret), "the user sees the decision");
    let own = probe(&b, &victim, &["why", &secret]);
    assert!(result(&own, &format!("why {secret}")).contains(" 1 mention it"), "{own}");
    assert!(
        r.contains(" 0 mention it"),
        "another package's object, seen in the decision log from a confined app: {r}"
    );
}

/// F8 (low-medium, audit forgery): decision records keep client strings as written — the
/// provider and service names of `app_service.Open` (`policy.rs`: `Operation::object`,
/// the `NotInstalled` rule), a full-trust `app_id`, an app-service host's service name — and
/// `appipc why` prints them raw (`appipc-cli/src/main.rs`, `print_decision`). A confined app
/// puts newlines and terminal escapes in a refused request: `appipc why` then shows a forged
/// refusal attributed to another package, and the escapes reach the user's terminal.
#[test]
fn f8_a_confined_app_forges_lines_and_escapes_in_appipc_why() {
    let b = TestBroker::start();
    let app = install_probe(&b, "Contoso.Rt9Forger", CONTOSO);
    let out = probe(&b, &app, &["forge-why"]);
    assert!(out.contains("refused as expected"), "{out}");
    let why = b.cli().args(["why"]).output().unwrap();
    let text = String::from_utf8_lossy(&why.stdout).into_owned();
    let forged = text.lines().any(|l| l.starts_with("#1 REFUSED packages.remove"));
    let escapes = text.contains('\x1b');
    assert!(
        !forged && !escapes,
        "appipc why shows a forged record ({forged}) and raw terminal escapes ({escapes}):\n{}",
        text.escape_debug()
    );
}

/// F11 (medium, DoS): pipes have no quota at all (`mech/pipes.rs`, `create_instance`; named
/// objects stop a session at 4096), and every create scans every pipe name, building two
/// strings per key, under the one pipes mutex on a runtime worker. One client (a confined app
/// as well) creates pipes without bound; measured here: 40 000 pipes, the last 5 000 creates at
/// ~44 ms each, every other client's pipe operation waiting behind that mutex.
#[test]
fn f11_pipes_have_no_quota() {
    let b = TestBroker::start();
    let rt = rt();
    let tag = unique("rt9pipe");
    let stopped_at = rt.block_on(async {
        let s = b.session();
        for i in 0..5000u32 {
            let request = appipc_wire::protocol::pipes::CreateInstance {
                name: format!(r"\\.\pipe\{tag}-{i}"),
                message_mode: false,
                direction: appipc_wire::protocol::pipes::PipeDirection::Duplex,
                max_instances: 1,
                sddl: None,
                default_timeout_ms: 0,
                first_instance: false,
            };
            if let Err(e) = s.call(request).await {
                return Some((i, e.windows_code()));
            }
        }
        None
    });
    assert!(
        matches!(stopped_at, Some((n, appipc::WindowsCode::Win32(1816))) if n <= 4096),
        "one session created 5000 pipes with no quota: {stopped_at:?}"
    );
}

/// F10 (high, confinement): a deny entry for a SID the app's token holds on the user's side was
/// skipped — an app container was checked against its package's entries only. Windows checks an
/// app container twice — user and groups, then package and capabilities — and grants the
/// intersection, so `D:(D;;0x2;;;WD)(A;;GA;;;AC)` ("apps may read, nobody may write") refuses
/// `FILE_MAP_WRITE` there. Here every app got a writable handle. Read access is refused too now:
/// nothing on the user's side grants it (add `(A;;GR;;;WD)` for that, as on Windows).
#[test]
fn f10_deny_entries_for_everyone_bind_app_containers() {
    let b = TestBroker::start();
    let text = "[package]\nname = \"Fabrikam.Rt9Deny\"\npublisher = \"CN=Fabrikam Inc, O=Fabrikam, C=US\"\n\
         version = \"1.0.0.0\"\n\n[[application]]\nid = \"App\"\nexecutable = \"bin/access-probe\"\n";
    let dir = assemble_manifest(text, &b.root.path().join(unique("rt9deny")), &bin_dir()).unwrap();
    let out = b.cli().args(["install", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let full = String::from_utf8_lossy(&out.stdout).trim().rsplit(' ').next().unwrap().to_owned();
    let p: Vec<&str> = full.split('_').collect();
    let app = format!("{}_{}", p[0], p[4]);
    let rt = rt();
    let (deny, readable) =
        (format!(r"Session\rt9deny{}", unique("")), format!(r"Session\rt9read{}", unique("")));
    let s = rt.block_on(async { b.session() });
    let _h = rt.block_on(async {
        let mut held = Vec::new();
        for (name, sddl) in [
            (&deny, "D:(D;;0x2;;;WD)(A;;GA;;;AC)"),
            (&readable, "D:(D;;0x2;;;WD)(A;;GR;;;WD)(A;;GA;;;AC)S:(ML;;NW;;;LW)"),
        ] {
            let request = no::Create {
                kind: NamedObjectKind::FileMapping { size: 4096, writable: true },
                name: name.clone(),
                sddl: Some(sddl.to_owned()),
            };
            held.push(s.call_with_fds(request, &[]).await.unwrap());
        }
        held
    });
    let out = probe(
        &b,
        &app,
        &[
            "map", &deny, "0x2", "map", &deny, "0x4", "map", &readable, "0x2", "map", &readable,
            "0x4",
        ],
    );
    assert_eq!(
        result(&out, &format!("map {deny} 0x2")),
        "error 5",
        "a deny entry for Everyone did not stop an app container from writing"
    );
    assert_eq!(result(&out, &format!("map {deny} 0x4")), "error 5", "nothing grants the user side");
    assert_eq!(result(&out, &format!("map {readable} 0x2")), "error 5");
    assert_eq!(result(&out, &format!("map {readable} 0x4")), "fd read-only read no-write", "{out}");
    // The deny binds the user's unconfined processes as well.
    let write = rt.block_on(async {
        let request = no::Open {
            object_type: no::ObjectType::FileMapping,
            name: deny.clone(),
            desired_access: 0x2,
        };
        s.call_with_fds(request, &[]).await.map(|_| ()).map_err(|e| e.windows_code())
    });
    assert_eq!(write, Err(appipc::WindowsCode::Win32(5)));
}

/// F12: a creator that holds a write lease (`F_SETLEASE`, which the owner of a file may take)
/// on the file it makes a mapping of made the broker's reopen of that file (for the creator's
/// own handle, or any later open) wait out the lease-break time (45 s) in a broker thread
/// holding the named-objects lock, so no one could create or open a named object meanwhile.
/// Now that reopen fails at once with `ERROR_SHARING_VIOLATION` (32), the broker answers others,
/// and the mapping can be made once the lease is given up.
#[test]
fn f12_a_lease_on_a_mappings_file_does_not_hold_the_broker() {
    use appipc::named_objects::{Event, FILE_MAP_READ, FileMapping};
    use std::os::fd::AsRawFd;
    let b = TestBroker::start();
    let rt = rt();
    let _in_rt = rt.enter();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leased.bin");
    std::fs::write(&path, vec![7u8; 4096]).unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let name = format!(r"Local\{}", unique("leased"));
    // SAFETY: fcntl/signal on an fd this test owns; a lease break signals this process (SIGIO),
    // whose default action would end the test binary.
    unsafe {
        libc::signal(libc::SIGIO, libc::SIG_IGN);
        assert_eq!(libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK), 0, "lease taken");
    }
    let creator = std::thread::spawn({
        let socket = b.socket();
        let name = name.clone();
        let f = f.try_clone().unwrap();
        move || {
            crate::rt().block_on(async {
                let s = appipc::Session::connect_to(&socket).expect("connect");
                let r = FileMapping::create_from_file(&s, &name, &f, false, None).await;
                r.map(|_| ()).map_err(|e| (e.windows_code(), e.to_string()))
            })
        }
    });
    // Meanwhile another client creates a named object: the named-objects lock is free.
    let other = rt.block_on(async {
        let s3 = b.session();
        let ev = format!(r"Local\{}", unique("free"));
        tokio::time::timeout(Duration::from_secs(20), Event::create(&s3, &ev, false, false, None))
            .await
    });
    assert!(matches!(other, Ok(Ok(_))), "another client was held up: {other:?}");
    let (code, msg) = creator.join().unwrap().expect_err("a mapping made through a lease");
    assert_eq!(code, appipc::WindowsCode::Win32(32), "{msg}");
    assert!(msg.contains("lease"), "{msg}");
    // SAFETY: as above.
    unsafe {
        assert_eq!(libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK), 0);
    }
    let s1 = b.session();
    let created = rt.block_on(FileMapping::create_from_file(&s1, &name, &f, false, None));
    let _created = created.expect("made once the lease is gone").object;
    let opened = rt.block_on(FileMapping::open(&b.session(), &name, FILE_MAP_READ)).unwrap();
    assert_eq!(opened.map_view().unwrap().as_bytes()[0], 7);
}
