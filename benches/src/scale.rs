//! `appipc-bench scale`: the broker's memory per idle connection and per open app-service
//! connection, at 1 000 and 10 000 of them (issue 15's goal: 10 000 live connections in
//! ≤ 100 MB of broker RSS).
//!
//! For each count N a fresh release broker starts on a temporary `APPIPC_HOME` with a
//! configuration that admits N connections (`[limits] connections`, and
//! `app-service-connections-per-session` for the app-service case). Then:
//!
//! * **idle**: N clients connect to the public socket and do nothing;
//! * **app-service**: one session opens N connections to the echo service (the provider runs,
//!   so each is a broker request, bookkeeping and a socket pair handed to both ends).
//!
//! RSS is `/proc/PID/status` `VmRSS` of the broker, before and with the N connections live;
//! the per-connection figure is the difference over N. One JSON line per scenario.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appipc::app_service::{AppServiceConnection, AppServiceConnectionStatus};
use appipc_sys::socket;
use appipc_testkit::{CONTOSO_SERVICES, TestBroker};

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// A broker that admits `n` connections (plus some room).
fn broker_for(n: usize) -> Result<(TestBroker, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("broker.toml");
    std::fs::write(
        &path,
        format!(
            "[limits]\nconnections = {}\napp-service-connections-per-session = {}\n",
            n + 64,
            n + 64
        ),
    )?;
    let b = crate::bench_broker(&[
        ("APPIPC_CONFIG", path.to_str().context("path")?),
        ("APPIPC_APP_SERVICE_IDLE_MS", "600000"),
    ]);
    Ok((b, dir))
}

/// Waits (bounded) until the broker's RSS stops growing, then reads it.
fn settled_rss(pid: u32) -> u64 {
    let mut last = rss_kib(pid);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = rss_kib(pid);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

fn print(kind: &str, n: usize, before: u64, live: u64, extra: serde_json::Value) {
    let per = (live.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    println!(
        "broker RSS, {n} {kind} connections: {:.1} MB before, {:.1} MB live, {:.0} bytes each",
        before as f64 / 1024.0,
        live as f64 / 1024.0,
        per
    );
    let json = serde_json::json!({
        "bench": "scale",
        "kind": kind,
        "connections": n,
        "rss_kib": {"before": before, "live": live},
        "bytes_per_connection": per.round(),
        "extra": extra,
        "goals": {"rss_max_mb_at_10000": 100},
        "goals_met": if n >= 10_000 { Some(live as f64 / 1024.0 <= 100.0) } else { None },
    });
    println!("{json}");
}

fn idle(n: usize) -> Result<()> {
    let (b, _dir) = broker_for(n)?;
    let pid = b.pid();
    let before = settled_rss(pid);
    let base_fds = fds_of(pid);
    let path = b.socket();
    let t = Instant::now();
    let mut socks = Vec::with_capacity(n);
    for i in 0..n {
        socks.push(socket::seqpacket_connect(&path).with_context(|| format!("connection {i}"))?);
    }
    let connect_s = t.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fds_of(pid) < base_fds + n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let accepted = fds_of(pid).saturating_sub(base_fds);
    let live = settled_rss(pid);
    print(
        "idle",
        n,
        before,
        live,
        serde_json::json!({"accepted_fds": accepted, "connect_s": connect_s}),
    );
    drop(socks);
    Ok(())
}

fn app_service(n: usize) -> Result<()> {
    let (b, _dir) = broker_for(n)?;
    let pid = b.pid();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let provider = rt.block_on(b.install(&CONTOSO_SERVICES)).family_name;
    let session = rt.block_on(async { b.session() });
    // The first open starts the host; the figure counts the connections, not the host.
    let mut first = AppServiceConnection::new(&provider, "com.contoso.echo");
    if rt.block_on(first.open(&session)) != AppServiceConnectionStatus::Success {
        bail!("open failed");
    }
    let before = settled_rss(pid);
    let t = Instant::now();
    let conns = rt.block_on(async {
        let mut v = Vec::with_capacity(n);
        for i in 0..n {
            let mut c = AppServiceConnection::new(&provider, "com.contoso.echo");
            let s = c.open(&session).await;
            if s != AppServiceConnectionStatus::Success {
                bail!("open {i} of {n}: {s}");
            }
            v.push(c);
        }
        Ok(v)
    })?;
    let open_s = t.elapsed().as_secs_f64();
    let live = settled_rss(pid);
    print(
        "app-service",
        n,
        before,
        live,
        serde_json::json!({"open_s": open_s, "broker_fds": fds_of(pid)}),
    );
    rt.block_on(async { drop(conns) });
    Ok(())
}

pub fn scale(args: &[String]) -> Result<()> {
    let mut counts = vec![1000usize, 10_000];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--connections" => {
                let v = it.next().context("--connections needs a value")?;
                counts = v.split(',').map(str::parse).collect::<Result<_, _>>()?;
            }
            _ => bail!("unknown option {a}"),
        }
    }
    let limit = appipc_sys::process::raise_open_file_limit()?;
    for &n in &counts {
        if n as u64 + 256 > limit {
            println!("skipping {n} connections: this process may open only {limit} files");
            continue;
        }
        idle(n)?;
        app_service(n)?;
    }
    Ok(())
}
