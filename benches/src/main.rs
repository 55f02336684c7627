//! `appipc-bench`: measures appipc against raw baselines in the same run and prints numbers
//! (a table, then one JSON line). It never asserts on time.
//!
//! ```text
//! appipc-bench app-service [--load idle|busy|bursty] [--iterations N] [--cold-iterations N] [--opens N]
//! appipc-bench launch [--load L] | objects [--load L]
//! appipc-bench scale [--connections 1000,10000]
//! appipc-bench flood [--runs N] [--clients 100,500,1000] [--kinds non-reading,idle,active]
//! appipc-bench loopback [--iterations N] [--connects N] [--runs N]
//! appipc-bench rpc [--load L] [--iterations N] [--rounds R]
//! ```
//!
//! Needs the workspace's binaries built (`cargo build --release --workspace`) and, for the
//! D-Bus comparison, `dbus-daemon` (Debian package `dbus`; `scripts/bench.sh` installs it).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appipc::wire::ValueSet;
use appipc_sys::socket::{self, Blocking};
use appipc_testkit::TestBroker;
use zbus::zvariant::{OwnedValue, Value};

mod app_service;
mod blocking_objects;
mod flood;
mod load;
mod loopback;
mod rpc;
mod scale;

/// Each subcommand's usage, printed for `--help` (exit 0) and after a bad option (exit 2).
const USAGES: &[(&str, &str)] = &[
    (
        "app-service",
        "appipc-bench app-service [--load idle|busy|bursty] [--iterations N] \
         [--cold-iterations N] [--rounds R] [--opens N]",
    ),
    ("launch", "appipc-bench launch [--load idle|busy|bursty]"),
    ("objects", "appipc-bench objects [--load idle|busy|bursty]"),
    ("scale", "appipc-bench scale [--connections 1000,10000]"),
    (
        "flood",
        "appipc-bench flood [--runs N] [--clients 100,500,1000] \
         [--kinds non-reading,idle,active] [--seconds S] [--after-seconds S] [--depth D] \
         [--connections CAP] [--flooder-nice N]",
    ),
    ("loopback", "appipc-bench loopback [--iterations N] [--connects N] [--runs N]"),
    ("rpc", "appipc-bench rpc [--load idle|busy|bursty] [--iterations N] [--rounds R]"),
];

fn usage_of(command: &str) -> Option<&'static str> {
    USAGES.iter().find(|(c, _)| *c == command).map(|(_, u)| *u)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = args.first().map(String::as_str).unwrap_or("");
    if command == "--help" || command == "-h" || command == "help" {
        println!("appipc-bench: measures appipc against raw baselines in the same run.\n");
        for (_, u) in USAGES {
            println!("  {u}");
        }
        return;
    }
    if let Some(u) = usage_of(command)
        && args[1..].iter().any(|a| a == "--help" || a == "-h")
    {
        println!("usage: {u}");
        return;
    }
    if let Err(e) = run(command, &args) {
        eprintln!("appipc-bench {command}: {e:#}");
        if let Some(u) = usage_of(command)
            && e.to_string().starts_with("unknown option")
        {
            eprintln!("usage: {u}");
        }
        std::process::exit(2);
    }
}

/// Checks that `args` are `--option value` pairs of `known` options.
fn only_options(args: &[String], known: &[&str]) -> Result<()> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if !known.contains(&a.as_str()) {
            bail!("unknown option {a}");
        }
        it.next().with_context(|| format!("{a} needs a value"))?;
    }
    Ok(())
}

fn run(command: &str, args: &[String]) -> Result<()> {
    match command {
        "launch" | "objects" => only_options(&args[1..], &["--load"])?,
        "loopback" => only_options(&args[1..], &["--iterations", "--connects", "--runs"])?,
        _ => {}
    }
    match command {
        "app-service" => app_service::app_service(&args[1..]),
        "launch" => launch(&args[1..]),
        "objects" => objects(&args[1..]),
        "scale" => scale::scale(&args[1..]),
        "load-worker" => load::worker(&args[1..]),
        "flood" => flood::flood(&args[1..]),
        "flood-worker" => flood::worker(&args[1..]),
        "loopback" => loopback::loopback(&args[1..]),
        "rpc" => rpc::rpc(&args[1..]),
        "rpc-server" => rpc::server(),
        "raw-echo" => raw_echo(),
        "raw-echo-tokio" => raw_echo_tokio(),
        "dbus-server" => dbus_server(args.get(1).context("address")?),
        _ => {
            eprintln!("usage:");
            for (_, u) in USAGES {
                eprintln!("  {u}");
            }
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

/// A broker for a benchmark: logging at `info`, the daemon's default (the test kit's default is
/// `debug`, which writes several lines per request), unless `APPIPC_LOG` says otherwise.
fn bench_broker(env: &[(&str, &str)]) -> TestBroker {
    let log = std::env::var("APPIPC_LOG").unwrap_or_else(|_| "info".into());
    let mut env = env.to_vec();
    env.push(("APPIPC_LOG", &log));
    TestBroker::start_with_env(&env)
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    Stats { median: at(0.5), p99: at(0.99), n: v.len() }
}

/// The app-service benchmark's message: three keys, and `$plain`, which has the example echo
/// provider send it back unchanged (the raw peers echo the same bytes); without it the
/// provider adds seven keys of its own (`APPIPC_BENCH_FULL_ECHO=1`).
fn payload() -> ValueSet {
    let mut m = ValueSet::new();
    m.insert("Command", "Ping");
    m.insert("Id", 42i32);
    m.insert("Value", 3.5f64);
    if std::env::var_os("APPIPC_BENCH_FULL_ECHO").is_none_or(|v| v != "1") {
        m.insert("$plain", true);
    }
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
    daemon: Child,
    server: Child,
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
        Ok(Some(DbusPeer { daemon, server: Child(server), conn, payload }))
    }

    /// The bus daemon's and the server's pids (the peer's CPU time is theirs).
    fn pids(&self) -> Vec<u32> {
        vec![self.daemon.0.id(), self.server.0.id()]
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

/// Launch latency: from the launch request to the first line the app prints, which
/// `hello-app` prints right after its first requests to the broker (opening its private
/// session, asking who it is). The same binary confined (app container) and unconfined (a
/// copy of the package at full trust), 20 each, interleaved.
fn launch(args: &[String]) -> Result<()> {
    use appipc::{ActivateOptions, ApplicationActivationManager};
    use std::io::Read;
    let broker = bench_broker(&[]);
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
    // An app container whose program is `true` (it exits at once): launch request to exit,
    // the same span as bwrap's spawn-to-exit of `true`.
    let true_dir = broker.root.path().join("launch-true");
    std::fs::create_dir_all(true_dir.join("bin"))?;
    std::fs::copy(
        ["/usr/bin/true", "/bin/true"]
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .context("no true")?,
        true_dir.join("bin/true"),
    )?;
    let true_manifest = "[package]\nname = \"Contoso.LaunchTrue\"\n\
        publisher = \"CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH\"\nversion = \"1.0.0.0\"\n\n\
        [[application]]\nid = \"App\"\nexecutable = \"bin/true\"\n";
    let dir =
        appipc_testkit::assemble_manifest(true_manifest, &true_dir, &appipc_testkit::bin_dir())?;
    let exits = rt.block_on(appipc::PackageManager::new(&session).add_package(&dir))?.family_name;
    let aam = ApplicationActivationManager::new(&session);
    let to_exit = |target: &str| -> Result<Duration> {
        let t = Instant::now();
        let (pid, _) = rt.block_on(aam.activate_application(
            target,
            &[],
            ActivateOptions { stdio: None, notify_exit: true },
        ))?;
        rt.block_on(session.wait_for_exit(pid))?;
        Ok(t.elapsed())
    };
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
    let bwrap = bwrap_available();
    once(&confined)?;
    once(&unconfined)?;
    to_exit(&exits)?;
    let kind = load::LoadKind::from_args(args)?;
    let load = load::Load::start(kind)?;
    let (mut c, mut u, mut b, mut e) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..20 {
        c.push(once(&confined)?);
        u.push(once(&unconfined)?);
        e.push(to_exit(&exits)?);
        if bwrap {
            b.push(bwrap_once()?);
        }
    }
    drop(load);
    let (c, u, e) = (stats(c), stats(u), stats(e));
    let b = (!b.is_empty()).then(|| stats(b));
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
    println!(
        "{:<44} {:>10.2} {:>10.2}",
        "confined `true` (launch request to exit)",
        e.median / 1000.0,
        e.p99 / 1000.0
    );
    if let Some(b) = &b {
        println!(
            "{:<44} {:>10.2} {:>10.2}",
            "bwrap --unshare-all ... true (spawn to exit)",
            b.median / 1000.0,
            b.p99 / 1000.0
        );
    }
    let json = serde_json::json!({
        "bench": "launch",
        "load": kind.name(),
        "confined_ms": {"median": c.median / 1000.0, "p99": c.p99 / 1000.0},
        "unconfined_ms": {"median": u.median / 1000.0, "p99": u.p99 / 1000.0},
        "confined_true_to_exit_ms": {"median": e.median / 1000.0, "p99": e.p99 / 1000.0},
        "ratio_confined_true_to_bwrap": b.map(|b| e.median / b.median),
        "bwrap_ms": b.map(|b| serde_json::json!({"median": b.median / 1000.0, "p99": b.p99 / 1000.0})),
        "bwrap_command": BWRAP_ARGS.join(" "),
        "ratio_confined_to_bwrap": b.map(|b| c.median / b.median),
        "confinement_overhead_ms": (c.median - u.median) / 1000.0,
        "goals": {"confined_median_max_ms": 25, "confined_to_bwrap_max": 1.0},
        "goals_met": c.median <= 25_000.0 && b.is_none_or(|b| c.median <= b.median),
        "goals_met_true_to_exit": b.is_none_or(|b| e.median <= b.median),
    });
    println!("{json}");
    Ok(())
}

/// Runs `f` and gives its result with the CPU time this process used meanwhile, in µs per
/// round trip of the 20 000 every such measurement takes (both ends are threads of this
/// process).
fn with_cpu<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let cpu = load::CpuMeter::start(&[std::process::id()]);
    let r = f();
    (r, cpu.stop()[0] as f64 / 20_000.0 / 1e3)
}

/// What `bwrap` runs for the comparison: every namespace new, the host's root read-only, a
/// fresh `/proc` and `/dev`, then `true`.
const BWRAP_ARGS: [&str; 10] = [
    "--unshare-all",
    "--die-with-parent",
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "true",
];

fn bwrap_available() -> bool {
    match std::process::Command::new("bwrap").args(BWRAP_ARGS).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "bwrap cannot create its namespaces here ({}): skipping the bwrap comparison",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!(
                "bwrap is not installed (Debian package bubblewrap: {e}): skipping the bwrap comparison"
            );
            false
        }
    }
}

/// One `bwrap ... true`, from the spawn to its exit.
fn bwrap_once() -> Result<Duration> {
    let t = Instant::now();
    let status = std::process::Command::new("bwrap")
        .args(BWRAP_ARGS)
        .stdin(std::process::Stdio::null())
        .status()?;
    let d = t.elapsed();
    if !status.success() {
        bail!("bwrap failed: {status}");
    }
    Ok(d)
}

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Named objects: pipes, events and the ring against their raw kernel equivalents, in one run
/// (both ends in this process, on two threads; the pipe and event objects come from a real
/// broker). Medians of 7 repetitions.
fn objects(args: &[String]) -> Result<()> {
    use appipc::named_objects::{Event, SYNCHRONIZE};
    use appipc::named_pipes::{self, GENERIC_READ, GENERIC_WRITE, NamedPipeServer, PipeOptions};
    use appipc::ring::{RingConsumer, RingProducer};
    use std::io::{Read, Write};
    let broker = bench_broker(&[]);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (s1, s2) = rt.block_on(async { (broker.session(), broker.session()) });
    let load = load::Load::start(load::LoadKind::from_args(args)?)?;
    let loadavg = load::loadavg();

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
    let (raw_rtt, raw_rtt_cpu) = with_cpu(|| rtt(ra.into(), rb.into()));
    let opts = PipeOptions { message_mode: true, ..Default::default() };
    let (pc, ps) = rt.block_on(async {
        let mut srv = NamedPipeServer::create(&s1, r"\\.\pipe\LOCAL\msg", &opts).await?;
        let c = named_pipes::open(&s2, r"\\.\pipe\LOCAL\msg", GENERIC_READ | GENERIC_WRITE).await?;
        anyhow::Ok((c, srv.connect().await?.stream))
    })?;
    let (pipe_rtt, pipe_rtt_cpu) = with_cpu(|| rtt(pc.into(), ps.into()));

    // 3. Event ping-pong vs raw eventfd (blocking reads on two threads).
    let (raw_event, raw_event_cpu) = with_cpu(|| -> Result<Stats> {
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
        Ok(stats(v))
    });
    let raw_event = raw_event?;
    let (named_event, named_event_cpu) = with_cpu(|| {
        rt.block_on(async {
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
        })
    });
    let named_event = named_event?;
    let (blocking_event, blocking_event_cpu) = blocking_objects::event_pingpong(&rt, &s1, &s2)?;

    // 4. Ring: round trip of small records vs a busy-polled shared-memory ping-pong, and
    //    throughput of 1 MiB records vs memcpy bandwidth.
    let (shm_rtt, shm_cpu) = with_cpu(|| {
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
    });
    let ((ring_rtt, ring_cpu), ring_tp) = rt.block_on(async {
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
        let cpu = load::CpuMeter::start(&[std::process::id()]);
        for _ in 0..20_000 {
            let t = Instant::now();
            there.push(b"ping-record").await?;
            back_c.pop(&mut buf).await?;
            v.push(t.elapsed());
        }
        peer.await??;
        let rtt = (stats(v), cpu.stop()[0] as f64 / 20_000.0 / 1e3);
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
    let (ring_rtt_b, ring_cpu_b) = blocking_objects::ring_rtt(&rt, &s1, &s2)?;
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

    drop(load);
    let kind = load::LoadKind::from_args(args)?;
    println!(
        "appipc named-objects benchmark (medians; p99 and CPU µs per round trip), load {}",
        kind.name()
    );
    println!("{:<52} {:>12} {:>12} {:>8}", "", "appipc", "raw", "ratio");
    let line = |name: &str, a: f64, r: f64, unit: &str| {
        println!("{name:<52} {a:>9.2} {unit} {r:>9.2} {unit} {:>8.2}", a / r)
    };
    line("pipe byte-mode throughput, 64 KiB writes (GiB/s)", pipe_tp, raw_tp, "  ");
    line("pipe message-mode round trip (µs) vs seqpacket", pipe_rtt.median, raw_rtt.median, "  ");
    line(
        "event ping-pong (µs) vs eventfd: blocking waits",
        blocking_event.median,
        raw_event.median,
        "  ",
    );
    line("  p99", blocking_event.p99, raw_event.p99, "  ");
    line("  CPU µs per round trip", blocking_event_cpu, raw_event_cpu, "  ");
    line(
        "event ping-pong (µs) vs eventfd: async waits",
        named_event.median,
        raw_event.median,
        "  ",
    );
    line("  p99", named_event.p99, raw_event.p99, "  ");
    line("  CPU µs per round trip", named_event_cpu, raw_event_cpu, "  ");
    line(
        "ring round trip (µs) vs busy-polled shm ping-pong",
        ring_rtt.median,
        shm_rtt.median,
        "  ",
    );
    line("ring round trip (µs) vs eventfd: async", ring_rtt.median, raw_event.median, "  ");
    line("  p99 vs eventfd", ring_rtt.p99, raw_event.p99, "  ");
    line("  CPU µs per round trip vs eventfd", ring_cpu, raw_event_cpu, "  ");
    line(
        "ring round trip (µs) vs shm ping-pong: blocking",
        ring_rtt_b.median,
        shm_rtt.median,
        "  ",
    );
    line("ring round trip (µs) vs eventfd: blocking", ring_rtt_b.median, raw_event.median, "  ");
    line("  p99 vs eventfd", ring_rtt_b.p99, raw_event.p99, "  ");
    line("  CPU µs per round trip vs eventfd", ring_cpu_b, raw_event_cpu, "  ");
    line("ring throughput, 1 MiB records (GiB/s) vs memcpy", ring_tp, memcpy_bw, "  ");
    let idle = kind == load::LoadKind::Idle;
    let q = |s: &Stats, cpu: f64| serde_json::json!({"median_us": s.median, "p99_us": s.p99, "cpu_us_per_rt": cpu});
    let json = serde_json::json!({
        "bench": "objects",
        "load": kind.name(),
        "loadavg_1m": loadavg,
        "pipe_throughput_gib_s": pipe_tp, "raw_stream_throughput_gib_s": raw_tp, "ratio_pipe_throughput": pipe_tp / raw_tp,
        "pipe_message_rtt": q(&pipe_rtt, pipe_rtt_cpu), "raw_seqpacket_rtt": q(&raw_rtt, raw_rtt_cpu),
        "ratio_pipe_rtt": pipe_rtt.median / raw_rtt.median,
        "event_pingpong": q(&blocking_event, blocking_event_cpu), "raw_eventfd_pingpong": q(&raw_event, raw_event_cpu),
        "ratio_event": blocking_event.median / raw_event.median,
        "event_pingpong_async": q(&named_event, named_event_cpu),
        "ratio_event_async": named_event.median / raw_event.median,
        "ring_rtt_blocking": q(&ring_rtt_b, ring_cpu_b),
        "ratio_ring_blocking_rtt_to_busy_poll": ring_rtt_b.median / shm_rtt.median,
        "ratio_ring_blocking_rtt_to_eventfd": ring_rtt_b.median / raw_event.median,
        "ring_rtt": q(&ring_rtt, ring_cpu), "shm_busy_poll_rtt": q(&shm_rtt, shm_cpu),
        "ratio_ring_rtt_to_busy_poll": ring_rtt.median / shm_rtt.median,
        "ratio_ring_rtt_to_eventfd": ring_rtt.median / raw_event.median,
        "ratio_ring_cpu_to_eventfd": ring_cpu / raw_event_cpu,
        "ring_throughput_gib_s": ring_tp, "memcpy_gib_s": memcpy_bw, "ratio_ring_to_memcpy": ring_tp / memcpy_bw,
        "goals": {"pipe_throughput_min": 0.95, "pipe_rtt_max": 1.2, "event_max": 1.2,
                  "ring_rtt_to_busy_poll_max_idle": 2.0, "ring_rtt_to_eventfd_max_loaded": 1.2,
                  "ring_to_memcpy_min_idle": 0.8},
        "goals_met": {
            "event": blocking_event.median / raw_event.median <= 1.2,
            "event_async": named_event.median / raw_event.median <= 1.2,
            "ring_rtt": if idle { ring_rtt_b.median / shm_rtt.median <= 2.0 } else { ring_rtt_b.median / raw_event.median <= 1.2 },
            "ring_rtt_async": if idle { ring_rtt.median / shm_rtt.median <= 2.0 } else { ring_rtt.median / raw_event.median <= 1.2 },
            "ring_throughput": if idle { Some(ring_tp / memcpy_bw >= 0.8) } else { None },
        },
    });
    println!("{json}");
    Ok(())
}
