//! A ready single-producer, single-consumer ring over a named file mapping plus two named
//! events, for streaming records between two apps at memory speed. Each side polls briefly
//! before it sleeps while polling pays (adaptive, see `APPIPC_SPIN_US` in the SDK's docs), so
//! a busy stream never touches the kernel, and an idle one costs nothing.
//!
//! The producer creates `NAME` (mapping), `NAME.data` and `NAME.space` (events) with one
//! security descriptor; the consumer opens them (qualified with [`crate::named_objects::named_object_path`]
//! when it is another package).

use std::sync::atomic::Ordering;

use appipc_sys::ring::{HEADER, Ring};

use crate::error::{Error, Result};
use crate::named_objects::{
    Event, FILE_MAP_READ, FILE_MAP_WRITE, FileMapping, INFINITE, SYNCHRONIZE,
};
use crate::session::Session;
use crate::spin::{RING_CAP, Spin};

const EVENT_ALL: u32 = 0x001F_0003;

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

struct Side {
    _mapping: FileMapping,
    ring: Ring,
    /// Signalled when records arrive (the consumer sleeps on it).
    data: Event,
    /// Signalled when room appears (the producer sleeps on it).
    space: Event,
    /// When this side polls instead of sleeping.
    spin: Spin,
}

impl std::fmt::Debug for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring").field("capacity", &self.ring.capacity()).finish_non_exhaustive()
    }
}

/// The writing end.
#[derive(Debug)]
pub struct RingProducer(Side);

/// The reading end.
#[derive(Debug)]
pub struct RingConsumer(Side);

/// The op now, then again while the spin pays: `Some` when it is done (or failed) without
/// sleeping.
fn without_sleep(
    side: &Side,
    try_op: &mut impl FnMut(&Ring) -> Result<bool>,
) -> Option<Result<()>> {
    match try_op(&side.ring) {
        Ok(false) => {}
        other => return Some(other.map(|_| ())),
    }
    // Reading the clock costs about as much as a poll: look at it every 32 polls.
    side.spin
        .poll(32, || match try_op(&side.ring) {
            Ok(false) => None,
            other => Some(other),
        })
        .map(|r| r.map(|_| ()))
}

/// The Dekker handshake before a sleep: raises this side's sleeping flag, then tries once
/// more (the peer may have acted before it saw the flag). `true`: done, no sleep.
fn arm(
    side: &Side,
    consumer: bool,
    try_op: &mut impl FnMut(&Ring) -> Result<bool>,
) -> Result<bool> {
    let flag = side.ring.sleeping_flag(consumer);
    flag.store(1, Ordering::SeqCst);
    let done = try_op(&side.ring)?;
    if done {
        flag.store(0, Ordering::SeqCst);
    }
    Ok(done)
}

/// After a wake-up: lowers the flag and tries. `false`: sleep again.
fn woken(
    side: &Side,
    consumer: bool,
    try_op: &mut impl FnMut(&Ring) -> Result<bool>,
) -> Result<bool> {
    side.ring.sleeping_flag(consumer).store(0, Ordering::SeqCst);
    try_op(&side.ring)
}

/// Spins with `try_op` for the spin time, then sleeps on this side's event with the Dekker
/// handshake on its flag (set, re-check, sleep) so no wake-up is lost.
async fn spin_then_sleep(
    side: &Side,
    consumer: bool,
    mut try_op: impl FnMut(&Ring) -> Result<bool>,
) -> Result<()> {
    if let Some(r) = without_sleep(side, &mut try_op) {
        return r;
    }
    let wake = if consumer { &side.data } else { &side.space };
    while !arm(side, consumer, &mut try_op)? {
        wake.wait().await?;
        if woken(side, consumer, &mut try_op)? {
            break;
        }
    }
    Ok(())
}

/// [`spin_then_sleep`] sleeping in `poll(2)` on the calling thread.
fn spin_then_sleep_blocking(
    side: &Side,
    consumer: bool,
    mut try_op: impl FnMut(&Ring) -> Result<bool>,
) -> Result<()> {
    if let Some(r) = without_sleep(side, &mut try_op) {
        return r;
    }
    let wake = if consumer { &side.data } else { &side.space };
    while !arm(side, consumer, &mut try_op)? {
        wake.wait_blocking(INFINITE)?;
        if woken(side, consumer, &mut try_op)? {
            break;
        }
    }
    Ok(())
}

/// Whether the peer sleeps and must be woken (and lowers its flag if so).
fn peer_sleeps(side: &Side, peer_is_consumer: bool) -> bool {
    std::sync::atomic::fence(Ordering::SeqCst);
    let flag = side.ring.sleeping_flag(peer_is_consumer);
    // Read first: a write on every record would bounce the flag's cache line between cores.
    flag.load(Ordering::SeqCst) == 1 && flag.swap(0, Ordering::SeqCst) == 1
}

async fn wake_peer(side: &Side, peer_is_consumer: bool) -> Result<()> {
    if peer_sleeps(side, peer_is_consumer) {
        if peer_is_consumer { side.data.set().await } else { side.space.set().await }?;
    }
    Ok(())
}

fn wake_peer_blocking(side: &Side, peer_is_consumer: bool) -> Result<()> {
    if peer_sleeps(side, peer_is_consumer) {
        if peer_is_consumer { side.data.set_blocking() } else { side.space.set_blocking() }?;
    }
    Ok(())
}

impl RingProducer {
    /// Creates the ring `name` (`Local\…`) with `capacity` bytes of records (a power of two)
    /// and the security descriptor `sddl` of its mapping and events (`None`: the creator's
    /// default, which shares with its own package). For a consumer in another package the
    /// descriptor needs both sides, as on Windows: `D:(A;;GA;;;OW)(A;;GA;;;PFN:<consumer>)`,
    /// and, when an unconfined process creates it for an app container, `S:(ML;;NW;;;LW)`.
    pub async fn create(
        session: &Session,
        name: &str,
        capacity: usize,
        sddl: Option<&str>,
    ) -> Result<RingProducer> {
        let mapping = FileMapping::create(session, name, (HEADER + capacity) as u64, true, sddl)
            .await?
            .object;
        let data =
            Event::create(session, &format!("{name}.data"), false, false, sddl).await?.object;
        let space =
            Event::create(session, &format!("{name}.space"), false, false, sddl).await?.object;
        let ring = Ring::new(mapping.map_view()?).map_err(io("setting up the ring"))?;
        Ok(RingProducer(Side {
            _mapping: mapping,
            ring,
            data,
            space,
            spin: Spin::with_cap(RING_CAP),
        }))
    }

    /// Appends a record, waiting for room if the ring is full.
    pub async fn push(&self, record: &[u8]) -> Result<()> {
        spin_then_sleep(&self.0, false, |r| r.try_push(record).map_err(io("writing to the ring")))
            .await?;
        wake_peer(&self.0, true).await
    }

    /// [`RingProducer::push`] blocking the calling thread: it sleeps in `poll(2)` on the
    /// event's fd instead of the runtime's reactor (one thread hop per wake-up). For a thread
    /// of its own; do not call it from an async task.
    pub fn push_blocking(&self, record: &[u8]) -> Result<()> {
        spin_then_sleep_blocking(&self.0, false, |r| {
            r.try_push(record).map_err(io("writing to the ring"))
        })?;
        wake_peer_blocking(&self.0, true)
    }

    /// The largest record.
    pub fn max_record(&self) -> usize {
        self.0.ring.max_record()
    }
}

impl RingConsumer {
    /// Opens the ring `name` (qualified when it belongs to another package).
    pub async fn open(session: &Session, name: &str) -> Result<RingConsumer> {
        let mapping = FileMapping::open(session, name, FILE_MAP_READ | FILE_MAP_WRITE).await?;
        let data = Event::open(session, &format!("{name}.data"), SYNCHRONIZE | EVENT_ALL).await?;
        let space = Event::open(session, &format!("{name}.space"), SYNCHRONIZE | EVENT_ALL).await?;
        let ring = Ring::new(mapping.map_view()?).map_err(io("setting up the ring"))?;
        Ok(RingConsumer(Side {
            _mapping: mapping,
            ring,
            data,
            space,
            spin: Spin::with_cap(RING_CAP),
        }))
    }

    /// Takes the next record into `out`, waiting for one if the ring is empty.
    pub async fn pop(&self, out: &mut Vec<u8>) -> Result<()> {
        spin_then_sleep(&self.0, true, |r| r.try_pop(out).map_err(io("reading from the ring")))
            .await?;
        wake_peer(&self.0, false).await
    }

    /// [`RingConsumer::pop`] blocking the calling thread (see [`RingProducer::push_blocking`]).
    pub fn pop_blocking(&self, out: &mut Vec<u8>) -> Result<()> {
        spin_then_sleep_blocking(&self.0, true, |r| {
            r.try_pop(out).map_err(io("reading from the ring"))
        })?;
        wake_peer_blocking(&self.0, false)
    }
}
