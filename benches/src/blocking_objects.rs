//! The named-object round trips with the SDK's blocking waits (`Event::wait_blocking`,
//! `RingProducer::push_blocking` …): both ends on threads of their own, sleeping in `poll(2)`
//! on the object's fd, as the raw eventfd baseline sleeps in `read(2)`.

use anyhow::Result;
use appipc::Session;
use appipc::named_objects::{Event, INFINITE, SYNCHRONIZE};
use appipc::ring::{RingConsumer, RingProducer};
use std::time::Instant;

use crate::{Stats, stats, with_cpu};

const N: usize = 20_000;
const EVENT_MODIFY_STATE: u32 = 2;

/// Event ping-pong: `set_blocking` then `wait_blocking`, on two threads.
pub fn event_pingpong(
    rt: &tokio::runtime::Runtime,
    s1: &Session,
    s2: &Session,
) -> Result<(Stats, f64)> {
    let (ping, pong, ping2, pong2) = rt.block_on(async {
        let ping = Event::create(s1, r"Local\bping", false, false, None).await?.object;
        let pong = Event::create(s1, r"Local\bpong", false, false, None).await?.object;
        let access = SYNCHRONIZE | EVENT_MODIFY_STATE;
        let ping2 = Event::open(s2, r"Local\bping", access).await?;
        let pong2 = Event::open(s2, r"Local\bpong", access).await?;
        anyhow::Ok((ping, pong, ping2, pong2))
    })?;
    let (r, cpu) = with_cpu(|| {
        std::thread::scope(|scope| {
            let peer = scope.spawn(|| -> Result<()> {
                for _ in 0..N {
                    ping2.wait_blocking(INFINITE)?;
                    pong2.set_blocking()?;
                }
                Ok(())
            });
            let mut v = Vec::with_capacity(N);
            for _ in 0..N {
                let t = Instant::now();
                ping.set_blocking()?;
                pong.wait_blocking(INFINITE)?;
                v.push(t.elapsed());
            }
            peer.join().expect("peer thread")?;
            anyhow::Ok(stats(v))
        })
    });
    rt.block_on(async { drop((ping, pong, ping2, pong2)) });
    Ok((r?, cpu))
}

/// Ring round trip of a small record, there and back, with the blocking push and pop.
pub fn ring_rtt(rt: &tokio::runtime::Runtime, s1: &Session, s2: &Session) -> Result<(Stats, f64)> {
    let (there, back, there_c, back_c) = rt.block_on(async {
        let there = RingProducer::create(s1, r"Local\bthere", 4096, None).await?;
        let back = RingProducer::create(s2, r"Local\bback", 4096, None).await?;
        let there_c = RingConsumer::open(s2, r"Local\bthere").await?;
        let back_c = RingConsumer::open(s1, r"Local\bback").await?;
        anyhow::Ok((there, back, there_c, back_c))
    })?;
    let (r, cpu) = with_cpu(|| {
        std::thread::scope(|scope| {
            let peer = scope.spawn(|| -> Result<()> {
                let mut buf = Vec::new();
                for _ in 0..N {
                    there_c.pop_blocking(&mut buf)?;
                    back.push_blocking(&buf)?;
                }
                Ok(())
            });
            let mut buf = Vec::new();
            let mut v = Vec::with_capacity(N);
            for _ in 0..N {
                let t = Instant::now();
                there.push_blocking(b"ping-record")?;
                back_c.pop_blocking(&mut buf)?;
                v.push(t.elapsed());
            }
            peer.join().expect("peer thread")?;
            anyhow::Ok(stats(v))
        })
    });
    rt.block_on(async { drop((there, back, there_c, back_c)) });
    Ok((r?, cpu))
}
