//! `appipc-bench rpc`: the round trip of a message over an RPC endpoint's channel (connected
//! through a real broker, then peer to peer), and of a typed call (`#[appipc::interface]`,
//! async and blocking clients), against a raw blocking `SOCK_SEQPACKET` ping-pong, interleaved
//! in the same rounds, under the load asked for (idle, busy, bursty).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::load::{CpuMeter, Load, LoadKind};
use crate::{RawPeer, stats};

const ENDPOINT: &str = "org.appipc.bench";
const TYPED_ENDPOINT: &str = "org.appipc.bench.typed";

/// The typed call measured: 48 bytes there and back.
#[appipc::interface(uuid = "2d7c4b1a-9e3f-4a6b-8c5d-0e1f2a3b4c5d", version = "1.0")]
pub trait Echo {
    /// Gives back what it got.
    async fn echo(
        &self,
        cx: &appipc::rpc::CallContext,
        data: Vec<u8>,
    ) -> appipc::rpc::CallResult<Vec<u8>>;
}

struct Echoer;

#[appipc::async_trait]
impl Echo for Echoer {
    async fn echo(
        &self,
        _cx: &appipc::rpc::CallContext,
        data: Vec<u8>,
    ) -> appipc::rpc::CallResult<Vec<u8>> {
        Ok(data)
    }
}

struct Options {
    iterations: usize,
    rounds: usize,
    load: LoadKind,
}

fn options(args: &[String]) -> Result<Options> {
    let mut o = Options { iterations: 20_000, rounds: 10, load: LoadKind::Idle };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--iterations" => o.iterations = value()?.parse()?,
            "--rounds" => o.rounds = value()?.parse::<usize>()?.max(1),
            "--load" => o.load = LoadKind::parse(value()?)?,
            _ => bail!("unknown option {a}"),
        }
    }
    Ok(o)
}

/// Child (`appipc-bench rpc-server`): registers the endpoint, says "ready", echoes every
/// message of every connection.
pub fn server() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let session = appipc::Session::connect().await?;
        let mut server = appipc::rpc::RpcServer::register(&session, ENDPOINT, None).await?;
        let typed = appipc::rpc::RpcServer::register(&session, TYPED_ENDPOINT, None).await?;
        tokio::spawn(
            typed.serve(
                appipc::rpc::Interfaces::new().with::<dyn Echo>(std::sync::Arc::new(Echoer)),
            ),
        );
        println!("ready");
        while let Some(conn) = server.accept().await {
            tokio::spawn(async move {
                while let Ok(Some((m, _))) = conn.channel().recv().await {
                    if conn.channel().send(&m, &[]).await.is_err() {
                        break;
                    }
                }
            });
        }
        anyhow::Ok(())
    })
}

pub fn rpc(args: &[String]) -> Result<()> {
    let o = options(args)?;
    let broker = crate::bench_broker(&[]);
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("rpc-server").stdout(Stdio::piped());
    broker.apply_env(&mut cmd);
    let mut child = cmd.spawn()?;
    let mut lines = BufReader::new(child.stdout.take().context("server stdout")?).lines();
    if lines.next().transpose()?.as_deref() != Some("ready") {
        bail!("the RPC server did not start");
    }
    let server_pid = child.id();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let session = rt.block_on(async { broker.session() });
    let conn = rt.block_on(appipc::rpc::connect(&session, ENDPOINT, None))?;
    let typed = rt.block_on(EchoClient::connect(&session, TYPED_ENDPOINT, None))?;
    let blocking_session = appipc::blocking::Session::connect_to(&broker.socket())?;
    let blocking = EchoBlockingClient::connect(&blocking_session, TYPED_ENDPOINT, None)?;
    let mut raw = RawPeer::start("raw-echo")?;
    let message = [7u8; 48];
    let load = Load::start(o.load)?;
    let loadavg = crate::load::loadavg();
    let (mut raw_t, mut rpc_t, mut typed_t, mut blocking_t) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut raw_cpu, mut rpc_cpu, mut typed_cpu, mut blocking_cpu) = (0u64, 0u64, 0u64, 0u64);
    let me = std::process::id();
    for _ in 0..o.rounds {
        let cpu = CpuMeter::start(&[me, raw.child.pid]);
        for _ in 0..o.iterations {
            let t = Instant::now();
            raw.round_trip(&message);
            raw_t.push(t.elapsed());
        }
        raw_cpu += cpu.stop().iter().sum::<u64>();
        let cpu = CpuMeter::start(&[me, server_pid]);
        rt.block_on(async {
            for _ in 0..o.iterations {
                let t = Instant::now();
                conn.channel.send(&message, &[]).await?;
                conn.channel.recv().await?.context("the server closed")?;
                rpc_t.push(t.elapsed());
            }
            anyhow::Ok(())
        })?;
        rpc_cpu += cpu.stop().iter().sum::<u64>();
        let cpu = CpuMeter::start(&[me, server_pid]);
        rt.block_on(async {
            for _ in 0..o.iterations {
                let t = Instant::now();
                typed.echo(message.to_vec()).await?;
                typed_t.push(t.elapsed());
            }
            anyhow::Ok(())
        })?;
        typed_cpu += cpu.stop().iter().sum::<u64>();
        let cpu = CpuMeter::start(&[me, server_pid]);
        for _ in 0..o.iterations {
            let t = Instant::now();
            blocking.echo(message.to_vec())?;
            blocking_t.push(t.elapsed());
        }
        blocking_cpu += cpu.stop().iter().sum::<u64>();
    }
    drop(load);
    let n = (o.rounds * o.iterations) as f64;
    let (raw_s, rpc_s) = (stats(raw_t), stats(rpc_t));
    let (typed_s, blocking_s) = (stats(typed_t), stats(blocking_t));
    let (raw_cpu, rpc_cpu) = (raw_cpu as f64 / n / 1e3, rpc_cpu as f64 / n / 1e3);
    let (typed_cpu, blocking_cpu) = (typed_cpu as f64 / n / 1e3, blocking_cpu as f64 / n / 1e3);
    println!(
        "RPC round trips ({} x {} interleaved), load {}: median / p99 / CPU µs per round trip",
        o.rounds,
        o.iterations,
        o.load.name()
    );
    println!("raw seqpacket   {:>8.1} {:>8.1} {:>8.1}", raw_s.median, raw_s.p99, raw_cpu);
    println!(
        "rpc channel     {:>8.1} {:>8.1} {:>8.1}   ({:.2}x)",
        rpc_s.median,
        rpc_s.p99,
        rpc_cpu,
        rpc_s.median / raw_s.median
    );
    println!(
        "typed async     {:>8.1} {:>8.1} {:>8.1}   ({:.2}x)",
        typed_s.median,
        typed_s.p99,
        typed_cpu,
        typed_s.median / raw_s.median
    );
    println!(
        "typed blocking  {:>8.1} {:>8.1} {:>8.1}   ({:.2}x)",
        blocking_s.median,
        blocking_s.p99,
        blocking_cpu,
        blocking_s.median / raw_s.median
    );
    let q = |s: &crate::Stats, cpu: f64| serde_json::json!({"median_us": s.median, "p99_us": s.p99, "cpu_us_per_rt": cpu});
    let ratio = rpc_s.median / raw_s.median;
    let typed_ratio = typed_s.median / raw_s.median;
    let blocking_ratio = blocking_s.median / raw_s.median;
    let json = serde_json::json!({
        "bench": "rpc",
        "load": o.load.name(),
        "loadavg_1m": loadavg,
        "baseline": "raw_seqpacket_warm",
        "raw_seqpacket": q(&raw_s, raw_cpu),
        "rpc_channel": q(&rpc_s, rpc_cpu),
        "typed_async": q(&typed_s, typed_cpu),
        "typed_blocking": q(&blocking_s, blocking_cpu),
        "ratio_median": ratio,
        "typed_async_ratio_median": typed_ratio,
        "typed_blocking_ratio_median": blocking_ratio,
        "goals": {"median_max": 1.2},
        "goals_met": {"rpc_channel": ratio <= 1.2, "typed_async": typed_ratio <= 1.2,
                      "typed_blocking": blocking_ratio <= 1.2},
    });
    println!("{json}");
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}
