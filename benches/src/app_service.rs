//! `appipc-bench app-service`: app-service round trips against raw baselines, warm and cold,
//! under a chosen load, with CPU time per round trip.
//!
//! Two ways of sending, each in its own interleaved rounds:
//!
//! * **warm**: round trips back to back (as a chatty conversation does); the vCPUs of both
//!   sides stay awake between messages;
//! * **cold**: one round trip every millisecond (a realistic message rate), so the vCPUs may
//!   idle between messages and every hop may pay for waking one.
//!
//! Each appipc variant is compared with the raw `SOCK_SEQPACKET` ping-pong sent the same way
//! (the JSON line of each says which baseline, `raw_seqpacket_warm` or `raw_seqpacket_cold`).
//! Rounds interleave the variants so that drift of the machine hits every variant alike.
//! CPU time is the scheduler's runtime of both processes (this one, and the peer: the echo
//! child, the provider, or the D-Bus daemon and server) over each batch, per round trip.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appipc::app_service::{
    AppServiceConnection, AppServiceConnectionStatus, AppServiceResponseStatus,
};
use appipc_testkit::CONTOSO_SERVICES;

use crate::load::{CpuMeter, Load, LoadKind, descendants_named};
use crate::{DbusPeer, RawPeer, Stats, payload, stats};

/// Options of `appipc-bench app-service`.
struct Options {
    warm: usize,
    cold: usize,
    rounds: usize,
    /// Warm `open()`s timed.
    opens: usize,
    load: LoadKind,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options { warm: 20_000, cold: 2_000, rounds: 10, opens: 200, load: LoadKind::Idle };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--iterations" => o.warm = value()?.parse()?,
            "--cold-iterations" => o.cold = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse::<usize>()?.max(1),
            "--opens" => o.opens = value()?.parse::<usize>()?.max(1),
            "--load" => o.load = LoadKind::parse(value()?)?,
            _ => bail!("unknown option {a}"),
        }
    }
    Ok(o)
}

/// One way of doing a round trip.
enum Variant {
    Raw(RawPeer),
    RawTokio(RawPeer),
    Blocking(appipc::blocking::AppServiceConnection),
    Async(AppServiceConnection),
    Dbus(DbusPeer),
}

/// What was measured of one variant in one mode.
#[derive(Default)]
struct Measured {
    times: Vec<Duration>,
    round_medians: Vec<f64>,
    self_ns: u64,
    peer_ns: u64,
}

impl Measured {
    fn json(&self) -> (Stats, serde_json::Value) {
        let s = stats(self.times.clone());
        let n = self.times.len().max(1) as f64;
        let (me, peer) = (self.self_ns as f64 / n / 1e3, self.peer_ns as f64 / n / 1e3);
        let mut rm = self.round_medians.clone();
        rm.sort_by(f64::total_cmp);
        let r = |x: f64| (x * 1000.0).round() / 1000.0;
        let v = serde_json::json!({
            "median_us": r(s.median), "p99_us": r(s.p99), "n": s.n,
            "round_medians_us": {"min": r(*rm.first().unwrap_or(&0.0)), "max": r(*rm.last().unwrap_or(&0.0))},
            "cpu_us_per_rt": {"this": r(me), "peer": r(peer), "total": r(me + peer)},
        });
        (s, v)
    }

    fn cpu_total(&self) -> f64 {
        (self.self_ns + self.peer_ns) as f64 / self.times.len().max(1) as f64 / 1e3
    }
}

/// Paces round trips: one every `period` (none when zero).
struct Pace {
    period: Duration,
    next: Instant,
}

impl Pace {
    fn new(period: Duration) -> Pace {
        Pace { period, next: Instant::now() }
    }

    /// How long to wait before the next round trip.
    fn wait(&mut self) -> Option<Duration> {
        if self.period.is_zero() {
            return None;
        }
        self.next += self.period;
        let now = Instant::now();
        if self.next <= now {
            self.next = now;
            return None;
        }
        Some(self.next - now)
    }
}

struct Ctx<'a> {
    rt: &'a tokio::runtime::Runtime,
    frame: Vec<u8>,
    msg: appipc::wire::ValueSet,
}

impl Variant {
    /// `n` round trips, one every `period`; appends their times.
    fn batch(&mut self, cx: &Ctx<'_>, n: usize, period: Duration, out: &mut Vec<Duration>) {
        let mut pace = Pace::new(period);
        match self {
            Variant::Raw(p) | Variant::RawTokio(p) => {
                for _ in 0..n {
                    if let Some(d) = pace.wait() {
                        std::thread::sleep(d);
                    }
                    let t = Instant::now();
                    p.round_trip(&cx.frame);
                    out.push(t.elapsed());
                }
            }
            Variant::Blocking(c) => {
                for _ in 0..n {
                    if let Some(d) = pace.wait() {
                        std::thread::sleep(d);
                    }
                    let t = Instant::now();
                    let r = c.send_message(&cx.msg);
                    out.push(t.elapsed());
                    assert_eq!(r.status, AppServiceResponseStatus::Success);
                }
            }
            // The async ones wait in the runtime (as an app would), so that whatever the SDK
            // does between messages (its reader task) runs as it would in an app.
            Variant::Async(c) => cx.rt.block_on(async {
                for _ in 0..n {
                    if let Some(d) = pace.wait() {
                        tokio::time::sleep(d).await;
                    }
                    let m = cx.msg.clone();
                    let t = Instant::now();
                    let r = c.send_message(m).await;
                    out.push(t.elapsed());
                    assert_eq!(r.status, AppServiceResponseStatus::Success);
                }
            }),
            Variant::Dbus(d) => cx.rt.block_on(async {
                for _ in 0..n {
                    if let Some(w) = pace.wait() {
                        tokio::time::sleep(w).await;
                    }
                    let t = Instant::now();
                    d.call().await;
                    out.push(t.elapsed());
                }
            }),
        }
    }
}

/// Runs every variant in `rounds` interleaved rounds of `per` round trips (after a warm-up
/// round), one every `period`.
fn measure(
    cx: &Ctx<'_>,
    variants: &mut [(&'static str, Variant, Vec<u32>)],
    rounds: usize,
    per: usize,
    period: Duration,
) -> Vec<Measured> {
    let me = std::process::id();
    let mut out: Vec<Measured> = variants.iter().map(|_| Measured::default()).collect();
    for round in 0..=rounds {
        for (i, (_, v, peers)) in variants.iter_mut().enumerate() {
            let mut times = Vec::with_capacity(per);
            let mut pids = vec![me];
            pids.extend(peers.iter().copied());
            let cpu = CpuMeter::start(&pids);
            v.batch(cx, if round == 0 { per.min(200) } else { per }, period, &mut times);
            let used = cpu.stop();
            if round == 0 {
                continue; // warm-up
            }
            let m = &mut out[i];
            m.self_ns += used[0];
            m.peer_ns += used[1..].iter().sum::<u64>();
            m.round_medians.push(stats(times.clone()).median);
            m.times.extend(times);
        }
    }
    out
}

/// The goals of issue 15 for this load: (median ratio, p99 ratio, CPU ratio) maxima.
fn goals(load: LoadKind) -> (f64, f64, f64) {
    let median = if load == LoadKind::Idle { 1.2 } else { 1.3 };
    (median, 2.0, 1.5)
}

pub fn app_service(args: &[String]) -> Result<()> {
    let o = options(args)?;
    let broker = crate::bench_broker(&[("APPIPC_APP_SERVICE_IDLE_MS", "600000")]);
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
    let raw = RawPeer::start("raw-echo")?;
    let raw_tokio = RawPeer::start("raw-echo-tokio")?;
    let (raw_pid, raw_tokio_pid) = (raw.child.pid, raw_tokio.child.pid);
    let blocking = appipc::blocking::Session::connect_to(&broker.socket())?;
    let conn = blocking
        .open_app_service(&provider, "com.contoso.echo")
        .map_err(|s| anyhow::anyhow!("open: {s}"))?;
    let session = rt.block_on(async { broker.session() });
    let mut aconn = AppServiceConnection::new(&provider, "com.contoso.echo");
    if rt.block_on(aconn.open(&session)) != AppServiceConnectionStatus::Success {
        bail!("async open failed");
    }
    let host = descendants_named(broker.pid(), "echo-service");
    if host.len() != 1 {
        eprintln!("warning: found {} echo-service processes; CPU of the provider", host.len());
    }
    let dbus = rt.block_on(DbusPeer::start(broker.root.path()))?;
    let mut variants: Vec<(&'static str, Variant, Vec<u32>)> = vec![
        ("raw_seqpacket", Variant::Raw(raw), vec![raw_pid]),
        ("raw_tokio_peer", Variant::RawTokio(raw_tokio), vec![raw_tokio_pid]),
        ("blocking", Variant::Blocking(conn), host.clone()),
        ("async", Variant::Async(aconn), host.clone()),
    ];
    if let Some(d) = dbus {
        let pids = d.pids();
        variants.push(("dbus", Variant::Dbus(d), pids));
    }
    let cx = Ctx { rt: &rt, frame, msg };

    // The load runs only while measuring (not while the broker and the peers start).
    let load = Load::start(o.load)?;
    let modes = [("warm", o.warm, Duration::ZERO), ("cold", o.cold, Duration::from_millis(1))];
    for (mode, n, period) in modes {
        let per = (n / o.rounds).max(1);
        let loadavg = crate::load::loadavg();
        let m = measure(&cx, &mut variants, o.rounds, per, period);
        report(&o, &load, mode, &variants, &m, loadavg);
    }
    drop(load);
    open_times(&o, &rt, &session, &provider)?;
    Ok(())
}

fn report(
    o: &Options,
    load: &Load,
    mode: &str,
    variants: &[(&'static str, Variant, Vec<u32>)],
    m: &[Measured],
    loadavg: f64,
) {
    println!(
        "app-service round trips, {mode} ({} each, {} interleaved rounds{}), load {}",
        m[0].times.len(),
        o.rounds,
        if mode == "cold" { ", one every 1 ms" } else { ", back to back" },
        load.kind().name()
    );
    println!(
        "{:<16} {:>10} {:>10} {:>16} {:>12}",
        "", "median µs", "p99 µs", "rounds µs", "CPU µs/rt"
    );
    let mut by_name = serde_json::Map::new();
    let mut st = Vec::new();
    for ((name, ..), mm) in variants.iter().zip(m) {
        let (s, v) = mm.json();
        let mut rm = mm.round_medians.clone();
        rm.sort_by(f64::total_cmp);
        println!(
            "{name:<16} {:>10.1} {:>10.1} {:>7.1}–{:<8.1} {:>12.1}",
            s.median,
            s.p99,
            rm.first().unwrap_or(&0.0),
            rm.last().unwrap_or(&0.0),
            mm.cpu_total()
        );
        by_name.insert((*name).into(), v);
        st.push((s, mm.cpu_total()));
    }
    let (gm, gp, gc) = goals(load.kind());
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    let (raw, raw_cpu) = st[0];
    let mut ratios = serde_json::Map::new();
    let mut met = true;
    for (i, name) in [(2, "blocking"), (3, "async")] {
        let (s, cpu) = st[i];
        let (a, b, c) = (s.median / raw.median, s.p99 / raw.p99, cpu / raw_cpu);
        met &= a <= gm && b <= gp && c <= gc;
        ratios.insert(name.into(), serde_json::json!({"median": r(a), "p99": r(b), "cpu": r(c)}));
    }
    if let Some((d, _)) = st.get(4) {
        ratios.insert("blocking_to_dbus".into(), serde_json::json!(r(st[2].0.median / d.median)));
    }
    let json = serde_json::json!({
        "bench": "app-service",
        "load": load.kind().name(),
        "mode": mode,
        "baseline": format!("raw_seqpacket_{mode}"),
        "period_us": if mode == "cold" { 1000 } else { 0 },
        "loadavg_1m": loadavg,
        "variants": by_name,
        "ratios_to_baseline": ratios,
        "goals": {"median_max": gm, "p99_max": gp, "cpu_max": gc},
        "goals_met": met,
    });
    println!("{json}");
}

/// Warm `open()` (the host runs) and cold `open()` (a new host process per connection).
fn open_times(
    o: &Options,
    rt: &tokio::runtime::Runtime,
    session: &appipc::Session,
    provider: &str,
) -> Result<()> {
    let load = Load::start(o.load)?;
    let (warm, cold) = rt.block_on(async {
        let mut v = Vec::new();
        for _ in 0..o.opens {
            let mut c = AppServiceConnection::new(provider, "com.contoso.echo");
            let t = Instant::now();
            assert_eq!(c.open(session).await, AppServiceConnectionStatus::Success);
            v.push(t.elapsed());
        }
        let warm = stats(v);
        let mut v = Vec::new();
        for _ in 0..20 {
            let mut c = AppServiceConnection::new(provider, "com.contoso.echo.multi");
            let t = Instant::now();
            assert_eq!(c.open(session).await, AppServiceConnectionStatus::Success);
            v.push(t.elapsed());
        }
        (warm, stats(v))
    });
    println!(
        "open(): provider running {:.1} µs median ({:.1} p99); new host process {:.0} µs ({:.0})",
        warm.median, warm.p99, cold.median, cold.p99
    );
    let json = serde_json::json!({
        "bench": "app-service-open",
        "load": load.kind().name(),
        "open_warm_us": {"median": warm.median, "p99": warm.p99, "n": warm.n},
        "open_cold_us": {"median": cold.median, "p99": cold.p99, "n": cold.n},
        "goals": {"open_warm_median_max_us": 50},
        "goals_met": warm.median <= 50.0,
    });
    println!("{json}");
    Ok(())
}
