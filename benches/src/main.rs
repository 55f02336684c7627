//! `appipc-bench`: measures appipc against raw baselines in the same run and prints numbers
//! (a table, then one JSON line). It never asserts on time.
//!
//! ```text
//! appipc-bench app-service [--iterations N]
//! appipc-bench launch | objects
//! appipc-bench flood [--runs N] [--clients 100,500,1000] [--kinds non-reading,idle,active]
//! ```
//!
//! Needs the workspace's binaries built (`cargo build --release --workspace`) and, for the
//! D-Bus comparison, `dbus-daemon` (Debian package `dbus`; `scripts/bench.sh` installs it).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appipc::app_service::{
    AppServiceConnection, AppServiceConnectionStatus, AppServiceResponseStatus,
};
use appipc::wire::ValueSet;
use appipc_sys::socket::{self, Blocking};
use appipc_testkit::{CONTOSO_SERVICES, TestBroker};
use zbus::zvariant::{OwnedValue, Value};

mod flood;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("app-service") => {
            let n = args
                .iter()
                .position(|a| a == "--iterations")
                .and_then(|i| args.get(i + 1))
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(20_000usize);
            app_service(n)
        }
        Some("launch") => launch(),
        Some("objects") => objects(),
        Some("flood") => flood::flood(&args[1..]),
        Some("raw-echo") => raw_echo(),
        Some("raw-echo-tokio") => raw_echo_tokio(),
        Some("dbus-server") => dbus_server(args.get(1).context("address")?),
        _ => {
            eprintln!(
                "usage: appipc-bench app-service [--iterations N] | launch | objects | flood [--help]"
            );
            std::process::exit(2);
        }
    }
}

/// Median, 99th percentile and mean of a set of durations, in microseconds.
#[derive(Clone, Copy, Debug)]
struct Stats {
    median: f64,
    p99: f64,
    n: usize,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    Stats { median: at(0.5), p99: at(0.99), n: v.len() }
}

fn payload() -> ValueSet {
    let mut m = ValueSet::new();
    m.insert("Command", "Ping");
    m.insert("Id", 42i32);
    m.insert("Value", 3.5f64);
    m
}

/// Child: echoes every message on fd 3 back, until the end of the stream.
fn raw_echo_tokio() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let sock = appipc_sys::aio::AsyncSeqPacket::new(
            appipc_sys::env::dup_inherited_session(3).context("fd 3")?,
        )?;
        let mut buf = vec![0u8; 65536];
        while let Some(r) = sock.recv_into(&mut buf).await? {
            sock.send(&buf[..r.len], &[]).await?;
        }
        Ok(())
    })
}

fn raw_echo() -> Result<()> {
    let sock = appipc_sys::env::dup_inherited_session(3).context("fd 3")?;
    let mut buf = vec![0u8; 65536];
    while let Some(r) = socket::recv_into(&sock, &mut buf, Blocking::Yes)? {
        socket::send(&sock, &buf[..r.len], &[], Blocking::Yes)?;
    }
    Ok(())
}

/// A child process echoing on a raw `SOCK_SEQPACKET` pair: the baseline.
struct RawPeer {
    sock: OwnedFd,
    child: appipc_sys::process::Spawned,
    buf: Vec<u8>,
}

impl RawPeer {
    fn start(mode: &str) -> Result<RawPeer> {
        let (mine, theirs) = socket::seqpacket_pair()?;
        let child = appipc_sys::process::spawn(appipc_sys::process::SpawnRequest {
            program: std::env::current_exe()?,
            args: vec![mode.into()],
            env: vec![],
            cwd: "/".into(),
            stderr: Some(std::io::stderr().as_fd().try_clone_to_owned()?),
            fds: vec![(3, theirs)],
            ..Default::default()
        })?;
        Ok(RawPeer { sock: mine, child, buf: vec![0u8; 65536] })
    }

    fn round_trip(&mut self, bytes: &[u8]) {
        socket::send(&self.sock, bytes, &[], Blocking::Yes).expect("send");
        socket::recv_into(&self.sock, &mut self.buf, Blocking::Yes).expect("recv").expect("open");
    }

    fn stop(self) {
        drop(self.sock);
        wait(&self.child.pidfd);
    }
}

fn wait(pidfd: &OwnedFd) {
    while appipc_sys::process::try_reap(pidfd).ok().flatten().is_none() {
        std::thread::sleep(Duration::from_millis(5));
    }
}

const BENCH_NAME: &str = "org.appipc.Bench";

struct Echo;

#[zbus::interface(name = "org.appipc.Bench")]
impl Echo {
    fn echo(&self, m: HashMap<String, OwnedValue>) -> HashMap<String, OwnedValue> {
        m
    }
}

/// Child: serves `org.appipc.Bench.Echo` on the bus at `address` until killed.
fn dbus_server(address: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let _conn = zbus::connection::Builder::address(address)?
            .name(BENCH_NAME)?
            .serve_at("/bench", Echo)?
            .build()
            .await?;
        println!("ready");
        std::future::pending::<()>().await;
        Ok(())
    })
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private dbus-daemon with the echo server on it, and a client connection.
struct DbusPeer {
    _daemon: Child,
    _server: Child,
    conn: zbus::Connection,
    payload: HashMap<String, OwnedValue>,
}

impl DbusPeer {
    async fn start(dir: &std::path::Path) -> Result<Option<DbusPeer>> {
        if std::process::Command::new("dbus-daemon").arg("--version").output().is_err() {
            eprintln!(
                "dbus-daemon is not installed (Debian package dbus): skipping the D-Bus comparison"
            );
            return Ok(None);
        }
        let socket_path = dir.join("bus");
        let config = dir.join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path={}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/>
<allow receive_sender="*"/><allow own="*"/></policy></busconfig>"#,
                socket_path.display()
            ),
        )?;
        let daemon = Child(
            std::process::Command::new("dbus-daemon")
                .arg(format!("--config-file={}", config.display()))
                .arg("--nofork")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("starting dbus-daemon")?,
        );
        let address = format!("unix:path={}", socket_path.display());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket_path.exists() {
            if Instant::now() > deadline {
                bail!("dbus-daemon did not start");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut server = std::process::Command::new(std::env::current_exe()?)
            .args(["dbus-server", &address])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        {
            use std::io::BufRead;
            let mut line = String::new();
            std::io::BufReader::new(server.stdout.take().context("stdout")?)
                .read_line(&mut line)?;
            if line.trim() != "ready" {
                bail!("the D-Bus server did not start");
            }
        }
        let conn = zbus::connection::Builder::address(address.as_str())?.build().await?;
        let mut payload: HashMap<String, OwnedValue> = HashMap::new();
        payload.insert("Command".into(), Value::from("Ping").try_into()?);
        payload.insert("Id".into(), Value::from(42i32).try_into()?);
        payload.insert("Value".into(), Value::from(3.5f64).try_into()?);
        Ok(Some(DbusPeer { _daemon: daemon, _server: Child(server), conn, payload }))
    }

    async fn call(&self) {
        let reply = self
            .conn
            .call_method(
                Some(BENCH_NAME),
                "/bench",
                Some(BENCH_NAME),
                "Echo",
                &(self.payload.clone(),),
            )
            .await
            .expect("dbus call");
        let _: HashMap<String, OwnedValue> = reply.body().deserialize().expect("reply");
    }
}

fn app_service(n: usize) -> Result<()> {
    let broker = TestBroker::start_with_env(&[("APPIPC_APP_SERVICE_IDLE_MS", "600000")]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let provider = rt.block_on(broker.install(&CONTOSO_SERVICES)).family_name;
    let msg = payload();

    // The same bytes an app-service request frame carries.
    let frame = appipc_wire::app_service::ChannelFrame {
        id: 1,
        kind: appipc_wire::app_service::ChannelKind::Request,
        status: 0,
        message: Some(msg.clone()),
        memfd_len: None,
    }
    .to_cbor();
    let mut raw_peer = RawPeer::start("raw-echo")?;
    let mut tokio_peer = RawPeer::start("raw-echo-tokio")?;
    let blocking = appipc::blocking::Session::connect_to(&broker.socket())?;
    let mut conn = blocking
        .open_app_service(&provider, "com.contoso.echo")
        .map_err(|s| anyhow::anyhow!("open: {s}"))?;
    let session = rt.block_on(async { broker.session() });
    let mut aconn = AppServiceConnection::new(&provider, "com.contoso.echo");
    if rt.block_on(aconn.open(&session)) != AppServiceConnectionStatus::Success {
        bail!("async open failed");
    }
    let dbus_peer = rt.block_on(DbusPeer::start(broker.root.path()))?;

    // Interleaved rounds, so that drift of the machine (other load, frequency) hits every
    // variant alike; a warm-up round first, not counted.
    const ROUNDS: usize = 10;
    let per = (n / ROUNDS).max(1);
    let (mut raw_v, mut blk_v, mut async_v, mut dbus_v) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut tokio_v = Vec::new();
    for round in 0..=ROUNDS {
        let keep = round > 0;
        let timed = |v: &mut Vec<Duration>, t: Instant| {
            if keep {
                v.push(t.elapsed());
            }
        };
        for _ in 0..per {
            let t = Instant::now();
            raw_peer.round_trip(&frame);
            timed(&mut raw_v, t);
        }
        for _ in 0..per {
            let t = Instant::now();
            tokio_peer.round_trip(&frame);
            timed(&mut tokio_v, t);
        }
        for _ in 0..per {
            let t = Instant::now();
            let r = conn.send_message(&msg);
            timed(&mut blk_v, t);
            assert_eq!(r.status, AppServiceResponseStatus::Success);
        }
        rt.block_on(async {
            for _ in 0..per {
                let m = msg.clone();
                let t = Instant::now();
                let r = aconn.send_message(m).await;
                timed(&mut async_v, t);
                assert_eq!(r.status, AppServiceResponseStatus::Success);
            }
            if let Some(d) = &dbus_peer {
                for _ in 0..per {
                    let t = Instant::now();
                    d.call().await;
                    timed(&mut dbus_v, t);
                }
            }
        });
    }
    raw_peer.stop();
    tokio_peer.stop();
    let raw_tokio = stats(tokio_v);
    let (raw, blocking_rt, async_rt) = (stats(raw_v), stats(blk_v), stats(async_v));
    let dbus = dbus_peer.as_ref().map(|_| stats(dbus_v));

    let (warm, cold) = rt.block_on(async {
        // Warm open: the host runs already.
        let mut v = Vec::new();
        for _ in 0..200 {
            let mut c = AppServiceConnection::new(&provider, "com.contoso.echo");
            let t = Instant::now();
            assert_eq!(c.open(&session).await, AppServiceConnectionStatus::Success);
            v.push(t.elapsed());
        }
        let warm = stats(v);
        // Cold open: a new host process per connection.
        let mut v = Vec::new();
        for _ in 0..20 {
            let mut c = AppServiceConnection::new(&provider, "com.contoso.echo.multi");
            let t = Instant::now();
            assert_eq!(c.open(&session).await, AppServiceConnectionStatus::Success);
            v.push(t.elapsed());
        }
        (warm, stats(v))
    });

    println!(
        "appipc app-service benchmark ({} round trips each, in {ROUNDS} interleaved rounds; microseconds)",
        raw.n
    );
    println!("{:<44} {:>10} {:>10}", "", "median", "p99");
    let row = |name: &str, s: &Stats| println!("{name:<44} {:>10.1} {:>10.1}", s.median, s.p99);
    row("raw SOCK_SEQPACKET ping-pong (2 processes)", &raw);
    row("raw ping-pong, echo peer on a tokio runtime", &raw_tokio);
    row("app service round trip, blocking client", &blocking_rt);
    row("app service round trip, async client", &async_rt);
    if let Some(d) = &dbus {
        row("D-Bus method call via dbus-daemon (zbus)", d);
    }
    row(&format!("open(), provider running ({} opens)", warm.n), &warm);
    row(&format!("open(), cold: new host process ({} opens)", cold.n), &cold);
    let ratio = |a: f64, b: f64| (a / b * 1000.0).round() / 1000.0;
    let json = serde_json::json!({
        "bench": "app-service",
        "iterations": n,
        "raw_seqpacket_us": {"median": raw.median, "p99": raw.p99},
        "raw_tokio_peer_us": {"median": raw_tokio.median, "p99": raw_tokio.p99},
        "blocking_us": {"median": blocking_rt.median, "p99": blocking_rt.p99},
        "async_us": {"median": async_rt.median, "p99": async_rt.p99},
        "dbus_us": dbus.map(|d| serde_json::json!({"median": d.median, "p99": d.p99})),
        "open_warm_us": {"median": warm.median, "p99": warm.p99},
        "open_cold_us": {"median": cold.median, "p99": cold.p99},
        "ratio_blocking_to_raw": ratio(blocking_rt.median, raw.median),
        "ratio_async_to_raw": ratio(async_rt.median, raw.median),
        "ratio_blocking_to_dbus": dbus.map(|d| ratio(blocking_rt.median, d.median)),
        "targets": {"blocking_to_raw_max": 1.5, "blocking_to_dbus_max": 0.25, "open_warm_median_max_us": 300},
    });
    println!("{json}");
    Ok(())
}

/// Launch latency: from the launch request to the first line the app prints, which
/// `hello-app` prints right after its first requests to the broker (opening its private
/// session, asking who it is). The same binary confined (app container) and unconfined (a
/// copy of the package at full trust), 20 each, interleaved.
fn launch() -> Result<()> {
    use appipc::{ActivateOptions, ApplicationActivationManager};
    use std::io::Read;
    let broker = TestBroker::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let confined = rt.block_on(broker.install(&appipc_testkit::HELLO)).family_name;
    let full_trust_manifest = appipc_testkit::HELLO
        .manifest
        .replace("name = \"Contoso.Hello\"", "name = \"Contoso.HelloFullTrust\"")
        .replace(
            "general = [\"internetClient\"]",
            "general = [\"internetClient\"]\nrestricted = [\"runFullTrust\"]",
        )
        .replace(
            "executable = \"bin/hello-app\"",
            "executable = \"bin/hello-app\"\ntrust-level = \"mediumIL\"",
        );
    let dir = appipc_testkit::assemble_manifest(
        &full_trust_manifest,
        &broker.root.path().join("fulltrust"),
        &appipc_testkit::bin_dir(),
    )?;
    let session = rt.block_on(async { broker.session() });
    let consent = appipc::AddPackageOptions::consenting_to(["runFullTrust"]);
    let unconfined = rt
        .block_on(appipc::PackageManager::new(&session).add_package_with(&dir, &consent))?
        .family_name;
    let aam = ApplicationActivationManager::new(&session);
    let once = |target: &str| -> Result<Duration> {
        let (r, w) = socket::stream_pair()?;
        let null = std::fs::File::open("/dev/null")?;
        let stdio = [OwnedFd::from(null), w.try_clone()?, w];
        let t = Instant::now();
        let (pid, _) = rt.block_on(aam.activate_application(
            target,
            &[],
            ActivateOptions { stdio: Some(stdio), notify_exit: true },
        ))?;
        let mut r = std::fs::File::from(r);
        let mut byte = [0u8; 1];
        loop {
            if r.read(&mut byte)? == 0 || byte[0] == b'\n' {
                break;
            }
        }
        let d = t.elapsed();
        rt.block_on(session.wait_for_exit(pid))?;
        Ok(d)
    };
    once(&confined)?;
    once(&unconfined)?;
    let (mut c, mut u) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        c.push(once(&confined)?);
        u.push(once(&unconfined)?);
    }
    let (c, u) = (stats(c), stats(u));
    println!(
        "appipc launch benchmark (20 launches each, interleaved; milliseconds to the app's first line)"
    );
    println!("{:<44} {:>10} {:>10}", "", "median", "p99");
    println!(
        "{:<44} {:>10.2} {:>10.2}",
        "confined (app container)",
        c.median / 1000.0,
        c.p99 / 1000.0
    );
    println!(
        "{:<44} {:>10.2} {:>10.2}",
        "same binary unconfined (full trust)",
        u.median / 1000.0,
        u.p99 / 1000.0
    );
    let json = serde_json::json!({
        "bench": "launch",
        "confined_ms": {"median": c.median / 1000.0, "p99": c.p99 / 1000.0},
        "unconfined_ms": {"median": u.median / 1000.0, "p99": u.p99 / 1000.0},
        "confinement_overhead_ms": (c.median - u.median) / 1000.0,
        "targets": {"confined_median_max_ms": 25},
    });
    println!("{json}");
    Ok(())
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Named objects: pipes, events and the ring against their raw kernel equivalents, in one run
/// (both ends in this process, on two threads; the pipe and event objects come from a real
/// broker). Medians of 7 repetitions.
fn objects() -> Result<()> {
    use appipc::named_objects::{Event, SYNCHRONIZE};
    use appipc::named_pipes::{self, GENERIC_READ, GENERIC_WRITE, NamedPipeServer, PipeOptions};
    use appipc::ring::{RingConsumer, RingProducer};
    use std::io::{Read, Write};
    let broker = TestBroker::start();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (s1, s2) = rt.block_on(async { (broker.session(), broker.session()) });

    // 1. Byte-mode throughput, 64 KiB writes, 256 MiB.
    const CHUNK: usize = 64 * 1024;
    const TOTAL: usize = 256 << 20;
    let throughput =
        |mut w: std::os::unix::net::UnixStream, mut r: std::os::unix::net::UnixStream| -> f64 {
            let t = Instant::now();
            let writer = std::thread::spawn(move || {
                let buf = vec![7u8; CHUNK];
                for _ in 0..TOTAL / CHUNK {
                    w.write_all(&buf).unwrap();
                }
            });
            let mut buf = vec![0u8; CHUNK];
            let mut got = 0;
            while got < TOTAL {
                got += r.read(&mut buf).unwrap();
            }
            writer.join().unwrap();
            TOTAL as f64 / t.elapsed().as_secs_f64() / (1 << 30) as f64
        };
    let mut raw_tp = Vec::new();
    let mut pipe_tp = Vec::new();
    for i in 0..7 {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        raw_tp.push(throughput(a, b));
        let name = format!(r"\\.\pipe\LOCAL\bench{i}");
        let (client, server) = rt.block_on(async {
            let mut srv = NamedPipeServer::create(&s1, &name, &PipeOptions::default()).await?;
            let c = named_pipes::open(&s2, &name, GENERIC_READ | GENERIC_WRITE).await?;
            anyhow::Ok((c, srv.connect().await?.stream))
        })?;
        pipe_tp.push(throughput(client.into(), server.into()));
    }
    let (raw_tp, pipe_tp) = (median_of(raw_tp), median_of(pipe_tp));

    // 2. Message-mode round trip vs raw seqpacket (echo thread).
    let rtt = |a: std::os::unix::net::UnixStream, mut b: std::os::unix::net::UnixStream| -> Stats {
        let echo = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok(n) = b.read(&mut buf) {
                if n == 0 || b.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let mut a = a;
        let mut buf = [0u8; 64];
        let mut v = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let t = Instant::now();
            a.write_all(b"ping-message").unwrap();
            let _ = a.read(&mut buf).unwrap();
            v.push(t.elapsed());
        }
        drop(a);
        echo.join().unwrap();
        stats(v)
    };
    let (ra, rb) = socket::seqpacket_pair()?;
    let raw_rtt = rtt(ra.into(), rb.into());
    let opts = PipeOptions { message_mode: true, ..Default::default() };
    let (pc, ps) = rt.block_on(async {
        let mut srv = NamedPipeServer::create(&s1, r"\\.\pipe\LOCAL\msg", &opts).await?;
        let c = named_pipes::open(&s2, r"\\.\pipe\LOCAL\msg", GENERIC_READ | GENERIC_WRITE).await?;
        anyhow::Ok((c, srv.connect().await?.stream))
    })?;
    let pipe_rtt = rtt(pc.into(), ps.into());

    // 3. Event ping-pong vs raw eventfd (blocking reads on two threads).
    let raw_event = {
        let e1 = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)?;
        let e2 = rustix::event::eventfd(0, rustix::event::EventfdFlags::CLOEXEC)?;
        let (f1, f2) = (e1.try_clone()?, e2.try_clone()?);
        let peer = std::thread::spawn(move || {
            let mut b = [0u8; 8];
            for _ in 0..20_000 {
                rustix::io::read(&f1, &mut b).unwrap();
                rustix::io::write(&f2, &1u64.to_ne_bytes()).unwrap();
            }
        });
        let mut b = [0u8; 8];
        let mut v = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let t = Instant::now();
            rustix::io::write(&e1, &1u64.to_ne_bytes())?;
            rustix::io::read(&e2, &mut b)?;
            v.push(t.elapsed());
        }
        peer.join().unwrap();
        stats(v)
    };
    let named_event = rt.block_on(async {
        let ping = Event::create(&s1, r"Local\ping", false, false, None).await?.object;
        let pong = Event::create(&s1, r"Local\pong", false, false, None).await?.object;
        let ping2 = Event::open(&s2, r"Local\ping", SYNCHRONIZE | 2).await?;
        let pong2 = Event::open(&s2, r"Local\pong", SYNCHRONIZE | 2).await?;
        let peer = tokio::spawn(async move {
            for _ in 0..20_000 {
                ping2.wait().await?;
                pong2.set().await?;
            }
            anyhow::Ok(())
        });
        let mut v = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let t = Instant::now();
            ping.set().await?;
            pong.wait().await?;
            v.push(t.elapsed());
        }
        peer.await??;
        anyhow::Ok(stats(v))
    })?;

    // 4. Ring: round trip of small records vs a busy-polled shared-memory ping-pong, and
    //    throughput of 1 MiB records vs memcpy bandwidth.
    let shm_rtt = {
        use std::sync::atomic::{AtomicU64, Ordering};
        let flags = std::sync::Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        let f = flags.clone();
        let peer = std::thread::spawn(move || {
            for i in 1..=20_000u64 {
                while f.0.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                f.1.store(i, Ordering::Release);
            }
        });
        let mut v = Vec::with_capacity(20_000);
        for i in 1..=20_000u64 {
            let t = Instant::now();
            flags.0.store(i, Ordering::Release);
            while flags.1.load(Ordering::Acquire) != i {
                std::hint::spin_loop();
            }
            v.push(t.elapsed());
        }
        peer.join().unwrap();
        stats(v)
    };
    let (ring_rtt, ring_tp) = rt.block_on(async {
        let there = RingProducer::create(&s1, r"Local\there", 4096, None).await?;
        let back = RingProducer::create(&s2, r"Local\back", 4096, None).await?;
        let there_c = RingConsumer::open(&s2, r"Local\there").await?;
        let back_c = RingConsumer::open(&s1, r"Local\back").await?;
        let peer = tokio::spawn(async move {
            let mut buf = Vec::new();
            for _ in 0..20_000 {
                there_c.pop(&mut buf).await?;
                back.push(&buf).await?;
            }
            anyhow::Ok(())
        });
        let mut buf = Vec::new();
        let mut v = Vec::with_capacity(20_000);
        for _ in 0..20_000 {
            let t = Instant::now();
            there.push(b"ping-record").await?;
            back_c.pop(&mut buf).await?;
            v.push(t.elapsed());
        }
        peer.await??;
        let rtt = stats(v);
        // Throughput: 1 MiB records through a 4 MiB ring, producer and consumer on two threads.
        let big = RingProducer::create(&s1, r"Local\big", 4 << 20, None).await?;
        let big_c = std::sync::Arc::new(RingConsumer::open(&s2, r"Local\big").await?);
        let mut tps = Vec::new();
        let record = vec![1u8; 1 << 20];
        for _ in 0..5 {
            const N: usize = 512;
            let c = big_c.clone();
            let t = Instant::now();
            let consumer = tokio::spawn(async move {
                let mut out = Vec::with_capacity(1 << 20);
                for _ in 0..N {
                    c.pop(&mut out).await?;
                }
                anyhow::Ok(())
            });
            for _ in 0..N {
                big.push(&record).await?;
            }
            consumer.await??;
            tps.push((N << 20) as f64 / t.elapsed().as_secs_f64() / (1 << 30) as f64);
        }
        anyhow::Ok((rtt, median_of(tps)))
    })?;
    let memcpy_bw = {
        let src = vec![3u8; 1 << 20];
        let mut dst = vec![0u8; 1 << 20];
        let mut v = Vec::new();
        for _ in 0..7 {
            let t = Instant::now();
            for _ in 0..512 {
                dst.copy_from_slice(std::hint::black_box(&src));
            }
            std::hint::black_box(&dst);
            v.push(512.0 / 1024.0 / t.elapsed().as_secs_f64());
        }
        median_of(v)
    };

    println!("appipc named-objects benchmark (medians)");
    println!("{:<52} {:>12} {:>12} {:>8}", "", "appipc", "raw", "ratio");
    let line = |name: &str, a: f64, r: f64, unit: &str| {
        println!("{name:<52} {a:>9.2} {unit} {r:>9.2} {unit} {:>8.2}", a / r)
    };
    line("pipe byte-mode throughput, 64 KiB writes (GiB/s)", pipe_tp, raw_tp, "  ");
    line("pipe message-mode round trip (µs) vs seqpacket", pipe_rtt.median, raw_rtt.median, "  ");
    line("event ping-pong (µs) vs eventfd, blocking", named_event.median, raw_event.median, "  ");
    line(
        "ring round trip (µs) vs busy-polled shm ping-pong",
        ring_rtt.median,
        shm_rtt.median,
        "  ",
    );
    line("ring throughput, 1 MiB records (GiB/s) vs memcpy", ring_tp, memcpy_bw, "  ");
    let json = serde_json::json!({
        "bench": "objects",
        "pipe_throughput_gib_s": pipe_tp, "raw_stream_throughput_gib_s": raw_tp, "ratio_pipe_throughput": pipe_tp / raw_tp,
        "pipe_message_rtt_us": pipe_rtt.median, "raw_seqpacket_rtt_us": raw_rtt.median, "ratio_pipe_rtt": pipe_rtt.median / raw_rtt.median,
        "event_pingpong_us": named_event.median, "raw_eventfd_pingpong_us": raw_event.median, "ratio_event": named_event.median / raw_event.median,
        "ring_rtt_us": ring_rtt.median, "shm_busy_poll_rtt_us": shm_rtt.median,
        "ring_throughput_gib_s": ring_tp, "memcpy_gib_s": memcpy_bw, "ratio_ring_to_memcpy": ring_tp / memcpy_bw,
        "targets": {"pipe_throughput_min": 0.95, "rtt_max": 1.2, "ring_to_memcpy_min": 0.8},
    });
    println!("{json}");
    Ok(())
}
