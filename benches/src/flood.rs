//! `appipc-bench flood`: the broker under floods of misbehaving and busy clients (issue 12).
//!
//! Each scenario starts a fresh release `appipcd` on a temporary `APPIPC_HOME` (as the user
//! running the bench), installs a dozen small packages (so that `ListPackages` replies are a
//! few kilobytes, as in the load test), and runs a probe client that sends `broker.Ping` every
//! millisecond on a connection of its own, timing each round trip. The probe runs through
//! three phases: idle (no flood), the flood, and after (the flooders gone, a few seconds
//! later). Flood kinds:
//!
//! * `non-reading`: each client pushes `ListPackages` requests until its socket says
//!   `EAGAIN`, and never reads a reply;
//! * `idle`: each client connects and does nothing;
//! * `active`: each client keeps a few `broker.Ping` requests in flight (pipelined) and sends
//!   the next as each reply comes; the replies counted give the broker's requests per second.
//!
//! The broker's RSS is read from `/proc/PID/status` (`VmRSS`, and `VmHWM` reset through
//! `/proc/PID/clear_refs` before the flood, so the peak is the flood's). Each scenario prints
//! a JSON line; the end prints a table (medians over `--runs`, with their spread).
//!
//! The flooders run in a process of their own (`appipc-bench flood-worker`, started by the
//! bench), as an attacker's clients would: the probe and the flooders are different processes
//! to the kernel's scheduler and different principals to the broker.
//!
//! `--flooder-nice N` runs the flooders' process at nice N (the probe and the broker keep
//! theirs), to tell the broker's own queueing from the flooders' competing for the CPUs;
//! `APPIPC_BENCH_SLOW_US=N` prints each probe round trip slower than N µs with when it was.
//!
//! The broker runs with its default `[limits]` (1 024 connections of unpackaged processes, so
//! 1 000 flooders and the probe fit; `--connections N` writes a configuration file that sets
//! another cap). The bench raises its own `RLIMIT_NOFILE` to the hard limit.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appipc_sys::socket::{self, Blocking};
use appipc_testkit::{TestBroker, assemble_manifest, bin_dir, unique};
use appipc_wire::frame::Frame;
use appipc_wire::protocol::{broker, packages};

/// What the flooding clients do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    None,
    NonReading,
    Idle,
    Active,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::NonReading => "non-reading",
            Kind::Idle => "idle",
            Kind::Active => "active",
        }
    }

    fn parse(s: &str) -> Result<Kind> {
        Ok(match s {
            "non-reading" => Kind::NonReading,
            "idle" => Kind::Idle,
            "active" => Kind::Active,
            _ => bail!("unknown flood kind {s:?} (non-reading, idle, active)"),
        })
    }
}

/// Options of `appipc-bench flood`.
#[derive(Debug)]
struct Options {
    clients: Vec<usize>,
    kinds: Vec<Kind>,
    runs: usize,
    seconds: f64,
    after_seconds: f64,
    depth: usize,
    connections: Option<usize>,
    flooder_nice: i32,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut o = Options {
        clients: vec![100, 500, 1000],
        kinds: vec![Kind::NonReading, Kind::Idle, Kind::Active],
        runs: 1,
        seconds: 3.0,
        after_seconds: 3.0,
        depth: 4,
        connections: None,
        flooder_nice: 0,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--clients" => {
                o.clients = value()?.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            "--kinds" => o.kinds = value()?.split(',').map(Kind::parse).collect::<Result<_>>()?,
            "--runs" => o.runs = value()?.parse()?,
            "--seconds" => o.seconds = value()?.parse()?,
            "--after-seconds" => o.after_seconds = value()?.parse()?,
            "--depth" => o.depth = value()?.parse()?,
            "--connections" => o.connections = Some(value()?.parse()?),
            "--flooder-nice" => o.flooder_nice = value()?.parse()?,
            other => bail!("unknown option {other}"),
        }
    }
    o.runs = o.runs.max(1);
    o.depth = o.depth.max(1);
    Ok(o)
}

/// The broker's memory, from `/proc/PID/status`, in KiB.
fn vm(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The broker's CPU time (user + system, all threads), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return 0.0 };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the comm: state is field 3, utime 14, stime 15 (1-based) -> 11, 12 here.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

/// Probe phases.
const IDLE: u8 = 0;
const FLOOD: u8 = 1;
const SETTLING: u8 = 2;
const AFTER: u8 = 3;
const STOP: u8 = 4;

#[derive(Default)]
struct ProbeResult {
    by_phase: [Vec<Duration>; 4],
    /// The probe thread's time runnable but waiting for a CPU, by phase (µs).
    waited_us: [f64; 4],
    failures: usize,
}

/// The probe: `broker.Ping` every millisecond on its own connection, timed, by phase.
fn probe(socket_path: std::path::PathBuf, phase: Arc<AtomicU8>) -> ProbeResult {
    let mut out = ProbeResult::default();
    let mut sock = socket::seqpacket_connect(&socket_path).ok();
    let mut buf = vec![0u8; 65536];
    let mut id = 0u64;
    let mut next = Instant::now();
    let slow: Option<u128> =
        std::env::var("APPIPC_BENCH_SLOW_US").ok().and_then(|v| v.parse().ok());
    loop {
        let p = phase.load(Ordering::SeqCst);
        if p == STOP {
            return out;
        }
        next += Duration::from_millis(1);
        let Some(s) = sock.as_ref() else {
            out.failures += 1;
            std::thread::sleep(Duration::from_millis(10));
            sock = socket::seqpacket_connect(&socket_path).ok();
            continue;
        };
        id += 1;
        let w0 = run_queue_wait_us("/proc/thread-self/schedstat");
        let t = Instant::now();
        let ok =
            socket::send(s, &Frame::request(id, broker::Ping {}).to_cbor(), &[], Blocking::Yes)
                .is_ok()
                && loop {
                    match socket::recv_into(s, &mut buf, Blocking::Yes) {
                        Ok(Some(r)) => match Frame::from_cbor(&buf[..r.len]) {
                            Ok(f) if f.id == id && f.reply.is_some() => break true,
                            Ok(_) => continue,
                            Err(_) => break false,
                        },
                        _ => break false,
                    }
                };
        let d = t.elapsed();
        out.waited_us[usize::from(p)] += run_queue_wait_us("/proc/thread-self/schedstat") - w0;
        if slow.is_some_and(|us| d.as_micros() > us) {
            let ns =
                |t: rustix::time::Timespec| t.tv_sec as i128 * 1_000_000_000 + t.tv_nsec as i128;
            let now = ns(rustix::time::clock_gettime(rustix::time::ClockId::Monotonic));
            eprintln!("SLOWPROBE sent {} recv {}", now - d.as_nanos() as i128, now);
            eprintln!("slow probe: phase {p} at {:.3} s: {} us", wall(), d.as_micros());
        }
        if ok {
            out.by_phase[usize::from(p)].push(d);
        } else {
            out.failures += 1;
            sock = None;
        }
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// The time a thread (`/proc/.../schedstat`, its second field) spent runnable but waiting for
/// a CPU, in µs: what the kernel's scheduler, not the broker, added to a round trip.
fn run_queue_wait_us(schedstat: &str) -> f64 {
    std::fs::read_to_string(schedstat)
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        .map_or(0.0, |ns| ns / 1000.0)
}

/// The run-queue wait of all threads of process `pid`, in µs.
fn process_wait_us(pid: u32) -> f64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0.0 };
    dir.filter_map(Result::ok)
        .map(|t| run_queue_wait_us(&format!("{}/schedstat", t.path().display())))
        .sum()
}

/// Whether `APPIPC_BENCH_SLOW_US` is set: probe round trips slower than that many µs are
/// printed (stderr) with the wall clock (seconds mod 1000), and so are the phases' starts and
/// the non-reading flooders' progress, to see when in a scenario the tail happens.
fn tracing_slow() -> bool {
    std::env::var_os("APPIPC_BENCH_SLOW_US").is_some()
}

/// The wall clock in seconds, modulo 1000 (for [`tracing_slow`]'s lines).
fn wall() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() % 1000.0)
}

/// Percentiles of a set of durations, in microseconds.
#[derive(Clone, Copy, Debug, Default)]
struct Lat {
    p50: f64,
    p99: f64,
    max: f64,
    n: usize,
}

fn lat(mut v: Vec<Duration>) -> Lat {
    if v.is_empty() {
        return Lat::default();
    }
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    Lat { p50: at(0.5), p99: at(0.99), max: at(1.0), n: v.len() }
}

/// The flooding clients: a process of their own (`appipc-bench flood-worker`), so that to the
/// kernel and to the broker they are one principal apart from the probe, as an attacker's
/// clients would be. It reports on its stdout (`connected N`, `replies N`) and exits, closing
/// every connection at once, when its stdin closes.
struct Flooders {
    child: std::process::Child,
    connected: Arc<AtomicU64>,
    replies: Arc<AtomicU64>,
    /// Every client connected (or the worker gave up).
    done: Arc<AtomicBool>,
}

impl Flooders {
    fn start(kind: Kind, path: &std::path::Path, n: usize, o: &Options) -> Result<Flooders> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe()?)
            .arg("flood-worker")
            .args([kind.name(), &n.to_string(), &o.depth.to_string(), &o.flooder_nice.to_string()])
            .arg(path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("starting the flooders' process")?;
        let stdout = child.stdout.take().context("the flooders' stdout")?;
        let connected = Arc::new(AtomicU64::new(0));
        let replies = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let (c, r, d) = (connected.clone(), replies.clone(), done.clone());
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut words = line.split_whitespace();
                let (Some(what), Some(v)) = (words.next(), words.next()) else { continue };
                let v: u64 = v.parse().unwrap_or(0);
                match what {
                    "progress" => c.store(v, Ordering::SeqCst),
                    "connected" => {
                        c.store(v, Ordering::SeqCst);
                        d.store(true, Ordering::SeqCst);
                    }
                    "replies" => r.store(v, Ordering::SeqCst),
                    _ => {}
                }
                if tracing_slow() && what != "replies" {
                    eprintln!("flooders: {line} at {:.3}", wall());
                }
            }
            d.store(true, Ordering::SeqCst);
        });
        Ok(Flooders { child, connected, replies, done })
    }

    /// Ends the flooders' process: all its connections close together.
    fn stop(mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            eprintln!("flood: the flooders' process ended before the flood did ({status})");
        }
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `appipc-bench flood-worker KIND N DEPTH NICE SOCKET`: the flooders' process (see
/// [`Flooders`]).
pub(crate) fn worker(args: &[String]) -> Result<()> {
    let [kind, n, depth, nice, path] = args else {
        bail!("usage: appipc-bench flood-worker KIND N DEPTH NICE SOCKET (started by `flood`)")
    };
    let (kind, n, depth) = (Kind::parse(kind)?, n.parse()?, depth.parse()?);
    // A session of its own, as an app launched apart from the probe would have: with
    // autogroup scheduling (`/proc/sys/kernel/sched_autogroup_enabled`) the kernel shares the
    // CPUs between sessions, so the flooders compete with the probe as one more program, not
    // as threads of the probe's own program.
    if let Err(e) = rustix::process::setsid() {
        eprintln!("flood-worker: setsid: {e} (the flooders share the bench's session)");
    }
    // Threads made after this inherit it.
    set_nice(nice.parse()?);
    let path = std::path::PathBuf::from(path);
    // The flood ends when the bench closes our stdin.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    let say = |what: &str, v: u64| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{what} {v}");
        let _ = out.flush();
    };
    match kind {
        Kind::None => say("connected", 0),
        Kind::Idle => {
            let mut held = Vec::new();
            for _ in 0..n {
                match socket::seqpacket_connect(&path) {
                    Ok(c) => held.push(c),
                    Err(_) => break,
                }
            }
            say("connected", held.len() as u64);
            std::mem::forget(held);
        }
        Kind::NonReading => {
            let held = non_reading(&path, n, &say);
            say("connected", held.len() as u64);
            std::mem::forget(held);
        }
        Kind::Active => active(&path, n, depth, &say),
    }
    loop {
        std::thread::park();
    }
}

/// The active flooders: `n` connections on one thread, each keeping `depth` pings in flight;
/// the replies counted are reported every 50 ms.
fn active(path: &std::path::Path, n: usize, depth: usize, say: &dyn Fn(&str, u64)) {
    let replies = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        let mut connected = 0u64;
        for _ in 0..n {
            let Ok(fd) = socket::seqpacket_connect(path) else { continue };
            let r = replies.clone();
            connected += 1;
            tasks.spawn(async move {
                let Ok(sock) = appipc_sys::aio::AsyncSeqPacket::new(fd) else { return };
                let ping = Frame::request(1, broker::Ping {}).to_cbor();
                let mut buf = vec![0u8; 4096];
                for _ in 0..depth {
                    if sock.send(&ping, &[]).await.is_err() {
                        return;
                    }
                }
                loop {
                    match sock.recv_into(&mut buf).await {
                        Ok(Some(_)) => {
                            r.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => return,
                    }
                    if sock.send(&ping, &[]).await.is_err() {
                        return;
                    }
                }
            });
        }
        say("connected", connected);
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = tick.tick() => say("replies", replies.load(Ordering::Relaxed)),
                r = tasks.join_next() => if r.is_none() { break },
            }
        }
    });
}

/// Gives the calling (flooding) thread the nice value `--flooder-nice` asks for.
fn set_nice(nice: i32) {
    if nice != 0
        && let Err(e) = appipc_sys::process::set_thread_nice(nice)
    {
        eprintln!("flood: cannot set the flooders' nice value to {nice}: {e}");
    }
}

/// The non-reading flooders: `n` connections, each pushing `ListPackages` until its socket
/// says `EAGAIN`.
fn non_reading(path: &std::path::Path, n: usize, say: &dyn Fn(&str, u64)) -> Vec<OwnedFd> {
    let list = |id: u64| Frame::request(id, packages::ListPackages {}).to_cbor();
    let mut held = Vec::new();
    for _ in 0..n {
        let Ok(c) = socket::seqpacket_connect(path) else { break };
        let mut id = 1u64;
        loop {
            match socket::send(&c, &list(id), &[], Blocking::No) {
                Ok(()) => id += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // Cut off already (a limit): it counts as connected, and done.
                Err(_) => break,
            }
        }
        held.push(c);
        if held.len().is_multiple_of(50) {
            say("progress", held.len() as u64);
        }
    }
    held
}

/// A dozen small packages, so that a `ListPackages` reply is a few kilobytes.
fn install_fillers(b: &TestBroker) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let session = b.session();
        let pm = appipc::PackageManager::new(&session);
        for i in 0..12 {
            let text = format!(
                "[package]\nname = \"Contoso.Filler{i}\"\npublisher = \"CN=Contoso Ltd, O=Contoso, L=Zurich, C=CH\"\n\
                 version = \"1.0.0.0\"\n\n[[application]]\nid = \"App\"\nexecutable = \"bin/access-probe\"\n"
            );
            let dir = assemble_manifest(&text, &b.root.path().join(unique("filler")), &bin_dir())?;
            pm.add_package(&dir).await?;
        }
        anyhow::Ok(())
    })
}

/// What one scenario measured.
#[derive(Clone, Debug)]
struct Outcome {
    kind: Kind,
    clients: usize,
    connected: usize,
    idle: Lat,
    flood: Lat,
    after: Lat,
    probe_failures: usize,
    rss_before_kib: u64,
    rss_peak_kib: u64,
    rss_after_kib: u64,
    /// `RssAnon` and `RssFile` (the binary's pages and other file pages) before and after.
    anon_file_before_kib: (u64, u64),
    anon_file_after_kib: (u64, u64),
    fds_peak: usize,
    requests_per_s: Option<f64>,
    broker_cpu_cores: f64,
    /// How many of the broker's threads, on average, were runnable but waiting for a CPU
    /// during the flood.
    broker_wait_threads: f64,
    /// The probe thread's run-queue wait per round trip (µs), idle and during the flood.
    probe_wait_us: [f64; 2],
    settle_s: f64,
    load_1m: f64,
    flooder_nice: i32,
}

fn scenario(o: &Options, kind: Kind, n: usize, run: usize) -> Result<Outcome> {
    let config_dir = tempfile::tempdir()?;
    let mut env = vec![("APPIPC_LOG".to_owned(), "info".to_owned())];
    if let Some(cap) = o.connections {
        let path = config_dir.path().join("broker.toml");
        std::fs::write(&path, format!("[limits]\nconnections = {cap}\n"))?;
        env.push(("APPIPC_CONFIG".to_owned(), path.display().to_string()));
    }
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let b = TestBroker::start_with_env(&env_ref);
    let pid = b.pid();
    install_fillers(&b)?;
    let load_1m = loadavg();
    let phase = Arc::new(AtomicU8::new(IDLE));
    let probe = {
        let (path, phase) = (b.socket(), phase.clone());
        std::thread::spawn(move || probe(path, phase))
    };
    let secs = Duration::from_secs_f64(o.seconds);
    std::thread::sleep(secs);
    let rss_before_kib = vm(pid, "VmRSS:");
    let anon_file_before_kib = (vm(pid, "RssAnon:"), vm(pid, "RssFile:"));
    let fds0 = fds_of(pid);
    // The peak is the flood's.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
    let mut peak = rss_before_kib;
    let mut fds_peak = fds0;
    let sample = |peak: &mut u64, fds_peak: &mut usize| {
        *peak = (*peak).max(vm(pid, "VmRSS:"));
        *fds_peak = (*fds_peak).max(fds_of(pid));
    };
    phase.store(FLOOD, Ordering::SeqCst);
    if tracing_slow() {
        eprintln!("phase FLOOD at {:.3}", wall());
    }
    let flooders = match kind {
        Kind::None => None,
        _ => Some(Flooders::start(kind, &b.socket(), n, o)?),
    };
    // The flood runs for `seconds` once every client is connected.
    let connect_deadline = Instant::now() + Duration::from_secs(60);
    if let Some(f) = &flooders {
        while !f.done.load(Ordering::SeqCst) && Instant::now() < connect_deadline {
            std::thread::sleep(Duration::from_millis(10));
            sample(&mut peak, &mut fds_peak);
        }
    }
    if tracing_slow() {
        eprintln!("connected at {:.3}", wall());
    }
    let connected = flooders.as_ref().map_or(0, |f| f.connected.load(Ordering::SeqCst) as usize);
    let cpu0 = cpu_seconds(pid);
    let wait0 = process_wait_us(pid);
    let replies0 = flooders.as_ref().map(|f| f.replies.load(Ordering::SeqCst));
    let t0 = Instant::now();
    while t0.elapsed() < secs {
        std::thread::sleep(Duration::from_millis(50));
        sample(&mut peak, &mut fds_peak);
    }
    let window = t0.elapsed().as_secs_f64();
    let broker_cpu_cores = (cpu_seconds(pid) - cpu0) / window;
    let broker_wait_threads = (process_wait_us(pid) - wait0) / 1e6 / window;
    let requests_per_s = match (&flooders, replies0) {
        (Some(f), Some(r0)) if kind == Kind::Active => {
            Some((f.replies.load(Ordering::SeqCst) - r0) as f64 / window)
        }
        _ => None,
    };
    let rss_peak_kib = peak.max(vm(pid, "VmHWM:"));
    // The flooders go; the broker settles (its fds back to where they were), then after a few
    // seconds its memory is read again.
    phase.store(SETTLING, Ordering::SeqCst);
    if tracing_slow() {
        eprintln!("phase SETTLING at {:.3}", wall());
    }
    if let Some(f) = flooders {
        f.stop();
    }
    let t_settle = Instant::now();
    while fds_of(pid) > fds0 + 2 && t_settle.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let settle_s = t_settle.elapsed().as_secs_f64();
    phase.store(AFTER, Ordering::SeqCst);
    if tracing_slow() {
        eprintln!("phase AFTER at {:.3}", wall());
    }
    std::thread::sleep(Duration::from_secs_f64(o.after_seconds));
    let rss_after_kib = vm(pid, "VmRSS:");
    let anon_file_after_kib = (vm(pid, "RssAnon:"), vm(pid, "RssFile:"));
    phase.store(STOP, Ordering::SeqCst);
    let pr = probe.join().map_err(|_| anyhow::anyhow!("the probe panicked"))?;
    let [idle, flood, _, after] = pr.by_phase;
    let per_trip = |w: f64, n: usize| if n == 0 { 0.0 } else { w / n as f64 };
    let probe_wait_us = [
        per_trip(pr.waited_us[usize::from(IDLE)], idle.len()),
        per_trip(pr.waited_us[usize::from(FLOOD)], flood.len()),
    ];
    let out = Outcome {
        kind,
        clients: n,
        connected,
        idle: lat(idle),
        flood: lat(flood),
        after: lat(after),
        probe_failures: pr.failures,
        rss_before_kib,
        rss_peak_kib,
        rss_after_kib,
        anon_file_before_kib,
        anon_file_after_kib,
        fds_peak,
        requests_per_s,
        broker_cpu_cores,
        broker_wait_threads,
        probe_wait_us,
        settle_s,
        load_1m,
        flooder_nice: o.flooder_nice,
    };
    println!("{}", json_of(&out, run));
    drop(b);
    Ok(out)
}

fn json_of(o: &Outcome, run: usize) -> serde_json::Value {
    let l = |l: &Lat| serde_json::json!({"p50": round(l.p50), "p99": round(l.p99), "max": round(l.max), "n": l.n});
    serde_json::json!({
        "bench": "flood",
        "run": run,
        "kind": o.kind.name(),
        "clients": o.clients,
        "connected": o.connected,
        "probe_idle_us": l(&o.idle),
        "probe_flood_us": l(&o.flood),
        "probe_after_us": l(&o.after),
        "probe_failures": o.probe_failures,
        "flooder_nice": o.flooder_nice,
        "rss_kib": {"before": o.rss_before_kib, "peak": o.rss_peak_kib, "after": o.rss_after_kib},
        "rss_anon_kib": {"before": o.anon_file_before_kib.0, "after": o.anon_file_after_kib.0},
        "rss_file_kib": {"before": o.anon_file_before_kib.1, "after": o.anon_file_after_kib.1},
        "broker_fds_peak": o.fds_peak,
        "requests_per_s": o.requests_per_s.map(round),
        "broker_cpu_cores": round(o.broker_cpu_cores * 100.0) / 100.0,
        "broker_run_queue_wait_threads": round(o.broker_wait_threads * 100.0) / 100.0,
        "probe_run_queue_wait_us_per_trip": {"idle": round(o.probe_wait_us[0]), "flood": round(o.probe_wait_us[1])},
        "settle_s": round(o.settle_s * 100.0) / 100.0,
        "loadavg_1m": o.load_1m,
    })
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let m = v.len() / 2;
    if v.len() % 2 == 1 { v[m] } else { (v[m - 1] + v[m]) / 2.0 }
}

fn spread(v: &[f64]) -> (f64, f64) {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// `appipc-bench flood [options]`.
pub(crate) fn flood(args: &[String]) -> Result<()> {
    let o = parse_options(args)?;
    let nofile = appipc_sys::process::raise_open_file_limit()?;
    let need = o.clients.iter().copied().max().unwrap_or(0) + 256;
    if (nofile as usize) < need {
        eprintln!(
            "RLIMIT_NOFILE is {nofile}, below the {need} this run needs: raise the hard limit"
        );
    }
    let cap = o.connections.map_or("1024 (default)".to_owned(), |c| c.to_string());
    eprintln!(
        "appipc flood benchmark: {} run(s), clients {:?}, kinds {:?}, {} s per phase; \
         broker [limits] connections = {cap}; {} cores, load average {:.2}",
        o.runs,
        o.clients,
        o.kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        o.seconds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let mut scenarios = vec![(Kind::None, 0usize)];
    for k in &o.kinds {
        for n in &o.clients {
            scenarios.push((*k, *n));
        }
    }
    let mut all: Vec<Vec<Outcome>> = vec![Vec::new(); scenarios.len()];
    for run in 1..=o.runs {
        for (i, (k, n)) in scenarios.iter().enumerate() {
            all[i].push(scenario(&o, *k, *n, run)?);
        }
    }
    println!(
        "\nappipc broker under flood: medians of {} run(s) [min-max]; probe = broker.Ping every ms, µs",
        o.runs
    );
    println!(
        "{:<12} {:>5} {:>16} {:>22} {:>16} {:>8} {:>16} {:>8} {:>18} {:>6}",
        "flood",
        "N",
        "probe idle p99",
        "probe flood p50/p99",
        "probe after p99",
        "RSS0 MB",
        "RSS peak MB",
        "RSS1 MB",
        "req/s",
        "cpu"
    );
    for runs in &all {
        let f = |g: &dyn Fn(&Outcome) -> f64| -> (f64, f64, f64) {
            let v: Vec<f64> = runs.iter().map(g).collect();
            let (lo, hi) = spread(&v);
            (median(v), lo, hi)
        };
        let idle = f(&|o| o.idle.p99);
        let fp50 = f(&|o| o.flood.p50);
        let fp99 = f(&|o| o.flood.p99);
        let after = f(&|o| o.after.p99);
        let mb = |k: u64| k as f64 / 1024.0;
        let r0 = f(&|o| mb(o.rss_before_kib));
        let peak = f(&|o| mb(o.rss_peak_kib));
        let r1 = f(&|o| mb(o.rss_after_kib));
        let cpu = f(&|o| o.broker_cpu_cores);
        let first = &runs[0];
        let rps = first.requests_per_s.map(|_| f(&|o| o.requests_per_s.unwrap_or(0.0)));
        println!(
            "{:<12} {:>5} {:>16} {:>22} {:>16} {:>8.1} {:>16} {:>8.1} {:>18} {:>6.2}",
            first.kind.name(),
            first.clients,
            format!("{:.0} [{:.0}-{:.0}]", idle.0, idle.1, idle.2),
            format!("{:.0}/{:.0} [{:.0}-{:.0}]", fp50.0, fp99.0, fp99.1, fp99.2),
            format!("{:.0} [{:.0}-{:.0}]", after.0, after.1, after.2),
            r0.0,
            format!("{:.1} [{:.1}-{:.1}]", peak.0, peak.1, peak.2),
            r1.0,
            rps.map_or("-".to_owned(), |r| format!("{:.0} [{:.0}-{:.0}]", r.0, r.1, r.2)),
            cpu.0,
        );
        println!(
            "{}",
            serde_json::json!({
                "bench": "flood-summary",
                "runs": runs.len(),
                "kind": first.kind.name(),
                "clients": first.clients,
                "probe_idle_p99_us": {"median": round(idle.0), "min": round(idle.1), "max": round(idle.2)},
                "probe_flood_p50_us": {"median": round(fp50.0), "min": round(fp50.1), "max": round(fp50.2)},
                "probe_flood_p99_us": {"median": round(fp99.0), "min": round(fp99.1), "max": round(fp99.2)},
                "probe_after_p99_us": {"median": round(after.0), "min": round(after.1), "max": round(after.2)},
                "rss_before_mib": round(r0.0),
                "rss_peak_mib": {"median": round(peak.0), "min": round(peak.1), "max": round(peak.2)},
                "rss_after_mib": {"median": round(r1.0), "min": round(r1.1), "max": round(r1.2)},
                "requests_per_s": rps.map(|r| serde_json::json!({"median": r.0.round(), "min": r.1.round(), "max": r.2.round()})),
                "broker_cpu_cores": round(cpu.0 * 10.0) / 10.0,
                "targets": {"probe_p99_max_us_at_1000": 5000, "rss_peak_max_mib_non_reading_1000": 64, "rss_after_within_of_idle": 0.10, "requests_per_s_min": 50000},
            })
        );
    }
    Ok(())
}
