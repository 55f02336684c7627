//! Misbehaving clients in numbers: the broker keeps answering a well-behaved client, and its
//! memory and fd counts stay bounded. Each scenario asserts outcomes, never times.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use appipc_sys::socket::{self, Blocking};
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, unique};
use appipc_wire::frame::Frame;
use appipc_wire::protocol::packages;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A broker with these `[limits]`.
fn broker_with(limits: &str) -> (TestBroker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("broker.toml");
    std::fs::write(&config, format!("[limits]\n{limits}\n")).unwrap();
    let b = TestBroker::start_with_env(&[("APPIPC_CONFIG", config.to_str().unwrap())]);
    (b, dir)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// A well-behaved client is answered (within the SDK's own timeout).
fn answered(b: &TestBroker) {
    rt().block_on(async {
        let s = appipc::Session::connect_to(&b.socket()).expect("a new client gets in");
        let pong = appipc::broker::ping(&s).await.expect("and is answered");
        assert!(pong.protocol >= 2);
    });
}

fn raw(b: &TestBroker) -> OwnedFd {
    socket::seqpacket_connect(&b.socket()).unwrap()
}

/// Waits until `f` holds (at most 30 s).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn clients_that_never_read_are_cut_off_not_buffered() {
    let (b, _c) = broker_with("queued-reply-bytes = 16384\nnon-reader-grace-ms = 500");
    let pid = b.pid();
    // Enough packages that the replies to what the clients ask overflow their sockets.
    for i in 0..12 {
        let text = format!(
            "[package]\nname = \"Contoso.Filler{i}\"\npublisher = \"CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH\"\n\
             version = \"1.0.0.0\"\n\n[[application]]\nid = \"App\"\nexecutable = \"bin/access-probe\"\n"
        );
        let dir =
            assemble_manifest(&text, &b.root.path().join(unique("filler")), &bin_dir()).unwrap();
        let out = b.cli().args(["install", dir.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success());
    }
    answered(&b);
    let (rss0, fds0) = (rss_kib(pid), fds_of(pid));
    // Each client pushes requests until its socket is full, and never reads a reply.
    let mut hogs = Vec::new();
    for _ in 0..100 {
        let c = raw(&b);
        let mut id = 1u64;
        loop {
            let f = Frame::request(id, packages::ListPackages {}).to_cbor();
            match socket::send(&c, &f, &[], Blocking::No) {
                Ok(()) => id += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        hogs.push(c);
    }
    answered(&b);
    let rss1 = rss_kib(pid);
    assert!(rss1 < rss0 + 64 * 1024, "RSS {rss0} kB -> {rss1} kB under 100 non-readers");
    // Past the grace period the broker closes them (their sockets end) and does no more work.
    for c in &hogs {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket::peer_hung_up(c) {
            assert!(
                Instant::now() < deadline,
                "a non-reader was not closed; log:\n{}",
                b.log().lines().rev().take(40).collect::<Vec<_>>().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    drop(hogs);
    eventually("fds back to the baseline", || fds_of(pid) <= fds0 + 2);
    answered(&b);
    let log = b.log();
    assert!(log.contains("does not read its replies"), "the reason is logged");
}

/// Installs a dozen small packages, so that a `ListPackages` reply is a few kilobytes.
fn install_fillers(b: &TestBroker) {
    for i in 0..12 {
        let text = format!(
            "[package]\nname = \"Contoso.Filler{i}\"\npublisher = \"CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH\"\n\
             version = \"1.0.0.0\"\n\n[[application]]\nid = \"App\"\nexecutable = \"bin/access-probe\"\n"
        );
        let dir =
            assemble_manifest(&text, &b.root.path().join(unique("filler")), &bin_dir()).unwrap();
        let out = b.cli().args(["install", dir.to_str().unwrap()]).output().unwrap();
        assert!(out.status.success());
    }
}

/// Non-readers that each push requests until their socket is full; never read.
fn non_readers(b: &TestBroker, n: usize) -> Vec<OwnedFd> {
    let mut hogs = Vec::new();
    for _ in 0..n {
        let c = raw(b);
        let mut id = 1u64;
        loop {
            let f = Frame::request(id, packages::ListPackages {}).to_cbor();
            match socket::send(&c, &f, &[], Blocking::No) {
                Ok(()) => id += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        hogs.push(c);
    }
    hogs
}

/// A broker with these `[limits]`, the filler packages, and `n` non-readers that have pushed
/// requests until their sockets were full; a well-behaved client answered before, during and
/// after the broker had two seconds to work through what it was sent.
struct Flooded {
    b: TestBroker,
    _config: tempfile::TempDir,
    pid: u32,
    rss0: u64,
    fds0: usize,
    hogs: Vec<OwnedFd>,
    rss1: u64,
}

fn flooded(limits: &str, n: usize) -> Flooded {
    let (b, _config) = broker_with(limits);
    let pid = b.pid();
    install_fillers(&b);
    answered(&b);
    let (rss0, fds0) = (rss_kib(pid), fds_of(pid));
    let hogs = non_readers(&b, n);
    answered(&b);
    std::thread::sleep(Duration::from_secs(2));
    answered(&b);
    let rss1 = rss_kib(pid);
    Flooded { b, _config, pid, rss0, fds0, hogs, rss1 }
}

#[test]
fn non_readers_below_their_own_cap_are_bounded_by_the_total() {
    // Each session may queue 1 MiB, which 100 non-readers' requests would fill (~100 MiB);
    // all of them together may queue 4 MiB. The grace period is long: only the total bounds
    // them here.
    // The total is reached: a client that reads its replies is still read from and answered.
    let Flooded { b, _config, pid, rss0, fds0, hogs, rss1 } = flooded(
        "queued-reply-bytes = 1048576\nqueued-reply-bytes-total = 4194304\nnon-reader-grace-ms = 600000",
        100,
    );
    assert!(
        rss1 < rss0 + 32 * 1024,
        "RSS {rss0} kB -> {rss1} kB under 100 non-readers with a 4 MiB total"
    );
    // A non-reader that reads again gets its replies: it was held back, not cut.
    let c = &hogs[0];
    let mut buf = vec![0u8; 256 * 1024];
    let got = socket::recv_into(c, &mut buf, Blocking::Yes).unwrap().expect("a reply");
    let f = Frame::from_cbor(&buf[..got.len]).unwrap();
    assert!(f.reply.is_some(), "{f:?}");
    drop(hogs);
    eventually("fds back to the baseline", || fds_of(pid) <= fds0 + 2);
    // The memory is given back once they are gone (one malloc arena, malloc_trim).
    eventually("RSS back near the baseline", || rss_kib(pid) < rss0 + 8 * 1024);
    // The bytes the closed sessions left queued are no longer counted: a second wave is
    // bounded the same way, and the broker still answers.
    let hogs = non_readers(&b, 100);
    answered(&b);
    std::thread::sleep(Duration::from_secs(2));
    let rss2 = rss_kib(pid);
    assert!(rss2 < rss0 + 32 * 1024, "RSS {rss0} kB -> {rss2} kB under a second wave");
    drop(hogs);
    answered(&b);
}

#[test]
fn requests_in_flight_do_not_overshoot_a_sessions_queue() {
    // 64 requests may be in flight per session; were each read before the replies of the
    // earlier ones were queued, 200 non-readers would hold 200 × 64 replies of a few kB
    // (~60 MiB) whatever the 16 KiB queue limit says. Requests that finish at once are
    // answered before the next is read, so the limit holds to within one reply.
    let Flooded { b, rss0, hogs, rss1, .. } = flooded(
        "queued-reply-bytes = 16384\nrequests-in-flight = 64\nnon-reader-grace-ms = 600000",
        200,
    );
    assert!(rss1 < rss0 + 24 * 1024, "RSS {rss0} kB -> {rss1} kB under 200 non-readers");
    drop(hogs);
    answered(&b);
}

#[test]
fn a_connection_flood_does_not_lock_out_the_user() {
    let (b, _c) = broker_with("connections = 64");
    let pid = b.pid();
    answered(&b);
    let fds0 = fds_of(pid);
    // A session that holds something is not closed to make room.
    let rt = rt();
    let (holder, event) = rt.block_on(async {
        let s = b.session();
        let e = appipc::named_objects::Event::create(&s, r"Session\held", false, false, None).await;
        (s, e.unwrap().object)
    });
    // 300 idle connections: the table holds 64; each new one makes room by closing the
    // longest idle one that holds nothing.
    let idle: Vec<OwnedFd> = (0..300).map(|_| raw(&b)).collect();
    answered(&b);
    eventually("all but 64 idle connections closed", || {
        idle.iter().filter(|c| socket::peer_hung_up(c)).count() >= 300 - 64
    });
    eventually("the broker's fds bounded by the cap", || fds_of(pid) <= fds0 + 64 + 16);
    rt.block_on(async {
        appipc::broker::ping(&holder).await.expect("the holder's session is still open");
        event.set().await.expect("and its handle works");
    });
    drop(idle);
}

#[test]
fn an_unpackaged_session_hoarder_shares_the_users_cap() {
    let (b, _c) = broker_with("connections = 64");
    let pid = b.pid();
    answered(&b);
    let fds0 = fds_of(pid);
    // One connection opens sessions over itself until refused, and keeps them, idle.
    let (kept, err) = rt().block_on(async {
        let s = b.session();
        let mut kept = Vec::new();
        loop {
            match s.call_with_fds(appipc_wire::protocol::broker::OpenSession {}, &[]).await {
                Ok((_, fds)) => kept.push(fds),
                Err(e) => break (kept, e),
            }
            assert!(kept.len() < 1000, "OpenSession is not bounded");
        }
    });
    assert!(kept.len() < 64, "{} sessions opened over one", kept.len());
    assert_eq!(err.windows_code(), appipc::WindowsCode::Win32(1816), "{err}");
    // The idle ones make room for a new client of the user.
    answered(&b);
    eventually("the broker's fds bounded by the cap", || fds_of(pid) <= fds0 + 64 + 16);
}

fn install_probe(b: &TestBroker) -> String {
    let text = "[package]\nname = \"Contoso.Hoarder\"\npublisher = \"CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH\"\n\
                version = \"1.0.0.0\"\n\n[[application]]\nid = \"App\"\nexecutable = \"bin/access-probe\"\n";
    let dir = assemble_manifest(text, &b.root.path().join(unique("probe")), &bin_dir()).unwrap();
    let out = b.cli().args(["install", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    "Contoso.Hoarder_cvnpggrrsm18p".to_owned()
}

#[test]
fn hoarders_inside_a_container_hit_their_package_quotas() {
    let (b, _c) = broker_with(
        "sessions-per-package = 32\npipe-instances-per-session = 20\nhandles-per-session = 40",
    );
    let pid = b.pid();
    let pfn = install_probe(&b);
    answered(&b);
    let fds0 = fds_of(pid);
    let out = b
        .cli()
        .args([
            "launch",
            "--wait",
            &pfn,
            "--",
            "hoard-sessions",
            "1000",
            "hoard-pipes",
            "1000",
            "hoard-events",
            "1000",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let out = String::from_utf8_lossy(&out.stdout).into_owned() + &err;
    // The app's two sessions count (the one it inherits, and the private one the SDK opens
    // over it): it gets 30 more, then ERROR_NOT_ENOUGH_QUOTA.
    assert!(out.contains("hoard-sessions 1000 => got 30 then error 1816"), "{out}");
    assert!(out.contains("hoard-pipes 1000 => got 20 then error 1816"), "{out}");
    assert!(out.contains("hoard-events 1000 => got 40 then error 1816"), "{out}");
    answered(&b);
    // The app exited: everything it held is given back.
    eventually("fds back to the baseline", || fds_of(pid) <= fds0 + 2);
}

#[test]
fn the_pipe_names_of_a_namespace_are_bounded_and_checked_without_a_scan() {
    let (b, _c) =
        broker_with("pipe-names-per-namespace = 3000\npipe-instances-per-session = 10000");
    rt().block_on(async {
        let s = b.session();
        let options = appipc::named_pipes::PipeOptions::default();
        let mut servers = Vec::new();
        let err = loop {
            let name = format!(r"\\.\pipe\LOCAL\flood\{}", servers.len());
            match appipc::named_pipes::NamedPipeServer::create(&s, &name, &options).await {
                Ok(p) => servers.push(p),
                Err(e) => break e,
            }
            assert!(servers.len() <= 3000);
        };
        assert_eq!(servers.len(), 3000);
        assert!(matches!(err, appipc::Error::NamedObject { code: 1450, .. }), "{err}");
        // A name under an existing pipe's name is still refused as a folder (123).
        let e =
            appipc::named_pipes::NamedPipeServer::create(&s, r"\\.\pipe\LOCAL\flood\7\x", &options)
                .await
                .unwrap_err();
        assert!(matches!(e, appipc::Error::NamedObject { code: 123, .. }), "{e}");
        // Another client is still answered.
        let other = b.session();
        appipc::broker::ping(&other).await.unwrap();
    });
}

#[test]
fn requests_of_a_peer_that_left_are_not_run() {
    let b = TestBroker::start();
    answered(&b);
    // While the broker is stopped, a client queues many requests and leaves; the broker must
    // not work through them when it runs again.
    let signal = |sig: &str| {
        let ok =
            std::process::Command::new("kill").args([sig, &b.pid().to_string()]).status().unwrap();
        assert!(ok.success());
    };
    signal("-STOP");
    let c = raw(&b);
    let mut queued = 0u64;
    loop {
        let request = appipc_wire::protocol::named_objects::Create {
            kind: appipc_wire::protocol::named_objects::NamedObjectKind::Event {
                manual_reset: false,
                initial_state: false,
            },
            name: format!(r"Session\left{queued}"),
            sddl: None,
        };
        match socket::send(&c, &Frame::request(queued + 1, request).to_cbor(), &[], Blocking::No) {
            Ok(()) => queued += 1,
            Err(_) => break,
        }
    }
    drop(c);
    signal("-CONT");
    answered(&b);
    let out = b.cli().args(["why", "--all", "--json", "--last", "100000"]).output().unwrap();
    let ran = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"mechanism\":\"named_objects\"") && l.contains("left"))
        .count();
    assert!(queued > 50, "only {queued} requests fit the socket");
    assert!(ran <= 1, "{queued} requests were queued by a peer that left; {ran} of them ran");
}

#[test]
fn redeems_of_tokens_whose_files_became_fifos_do_not_stall_anyone() {
    // After a restart the broker opens a token's file by its recorded path; a sharer that put
    // FIFOs there and redeems them all at once must not tie up the broker or its fds.
    let mut b = TestBroker::start();
    let dir = b.root.path().join(unique("shared"));
    std::fs::create_dir_all(&dir).unwrap();
    let n = 40;
    let tokens: Vec<String> = rt().block_on(async {
        let s = b.session();
        let mut tokens = Vec::new();
        for i in 0..n {
            let path = dir.join(format!("f{i}"));
            std::fs::write(&path, "shared\n").unwrap();
            let f = std::fs::File::open(&path).unwrap();
            tokens.push(appipc::SharedStorageAccessManager::add_file(&s, &f).await.unwrap());
        }
        tokens
    });
    b.stop();
    b.restart();
    for i in 0..n {
        let path = dir.join(format!("f{i}"));
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success());
    }
    let pid = b.pid();
    answered(&b);
    let fds0 = fds_of(pid);
    let errors = rt().block_on(async {
        let s = b.session();
        let mut redeems = tokio::task::JoinSet::new();
        for t in tokens.clone() {
            let s = s.clone();
            redeems.spawn(async move {
                appipc::SharedStorageAccessManager::redeem_token_for_file(&s, &t).await.map(|_| ())
            });
        }
        // Meanwhile another client is answered.
        let other = b.session();
        appipc::broker::ping(&other).await.expect("a bystander is answered while the redeems run");
        redeems.join_all().await.into_iter().map(|r| r.unwrap_err().to_string()).collect::<Vec<_>>()
    });
    for e in &errors {
        assert!(e.contains("not a regular file"), "{e}");
    }
    answered(&b);
    eventually("fds back to the baseline", || fds_of(pid) <= fds0 + 2);
}

/// The `GLIBC_TUNABLES` the broker's process started with. glibc, parsing it at start, ends
/// each value in the original string with a NUL (the process itself sees a copy), so
/// `/proc/PID/environ` shows `GLIBC_TUNABLES=a=1` followed by `b=2`, ... as separate entries:
/// they are joined again here.
fn tunables_of(b: &TestBroker) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{}/environ", b.pid())).unwrap();
    let entries: Vec<String> =
        raw.split(|b| *b == 0).map(|v| String::from_utf8_lossy(v).into_owned()).collect();
    let at = entries.iter().position(|e| e.starts_with("GLIBC_TUNABLES="))?;
    let mut value = entries[at]["GLIBC_TUNABLES=".len()..].to_owned();
    for more in entries[at + 1..].iter().take_while(|e| e.starts_with("glibc.")) {
        value.push(':');
        value.push_str(more);
    }
    Some(value)
}

#[test]
fn the_broker_runs_with_small_malloc_caches_and_keeps_the_callers_tunables() {
    if !cfg!(target_env = "gnu") {
        eprintln!("skipped: the tcache tunable is glibc's");
        return;
    }
    // Started without any: it started itself again with the cache cut to one chunk a size.
    let b = TestBroker::start_with_env(&[("GLIBC_TUNABLES", "")]);
    assert_eq!(tunables_of(&b).as_deref(), Some("glibc.malloc.tcache_count=1"));
    answered(&b);
    drop(b);
    // Someone else's tunables are kept, and the broker's added after them.
    let b = TestBroker::start_with_env(&[("GLIBC_TUNABLES", "glibc.malloc.perturb=0")]);
    assert_eq!(
        tunables_of(&b).as_deref(),
        Some("glibc.malloc.perturb=0:glibc.malloc.tcache_count=1")
    );
    // Started once more, it did not start itself again (it is listening).
    answered(&b);
    drop(b);
    // A tcache count chosen by whoever started it wins.
    let b = TestBroker::start_with_env(&[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=7")]);
    assert_eq!(tunables_of(&b).as_deref(), Some("glibc.malloc.tcache_count=7"));
    answered(&b);
}
