//! When to poll for the next message instead of sleeping.
//!
//! Polling (spinning) for a reply that comes within microseconds saves the sleep and the
//! wake-up, which on a small VM cost more than the work of a round trip. It pays only while the
//! answer does come within the spin: spinning for one that does not burns CPU, and on a busy
//! machine it holds a CPU the peer may need (and it spends the spinner's scheduling credit, so
//! the scheduler later makes it wait behind the other load). So the default is **adaptive**:
//!
//! * each waiting site (a connection's reader, a blocking connection, one side of a ring, a
//!   named event handle) keeps the recent time its answers took when they came within the
//!   spin, and spins only for a small multiple of it ([`CAP`] at most; the first spin after a
//!   back-off tries the whole cap);
//! * a spin that ends without an answer (a miss), or that was preempted (a gap between two
//!   polls: another process got this CPU), turns spinning off for the next 1, 2, 4 … 64 waits,
//!   which then sleep at once; each hit halves that back-off. At a message rate too low for
//!   spinning to catch anything (a request every millisecond) it costs one short spin every
//!   64 messages; on a loaded machine, the same;
//!
//! `APPIPC_SPIN_US` overrides it for the process: `0` never spins; a number of microseconds
//! busy-polls that long after every message, always (for an app that wants the lowest latency
//! on a machine it knows to be idle, and pays for it in CPU); `auto` (or unset) is adaptive. The
//! broker passes its own `APPIPC_SPIN_US` on to the apps and service hosts it starts.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest adaptive spin for a socket (an app-service connection, an event): about what
/// a wake-up costs on a small VM, so a spin never costs much more than the sleep it tries to
/// save.
pub(crate) const CAP: Duration = Duration::from_micros(20);
/// The longest adaptive spin of a ring side: a ring streams at memory speed, and a 1 MiB
/// record takes some 25–50 µs to copy, which a waiting producer should wait out awake.
pub(crate) const RING_CAP: Duration = Duration::from_micros(50);
/// A gap this long between two polls means the spinner lost its CPU meanwhile.
const PREEMPTED: Duration = Duration::from_micros(15);
/// The most waits spinning stays off after misses.
const MAX_BACKOFF: u32 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Adaptive,
    Fixed(Duration),
}

fn mode() -> Mode {
    static MODE: std::sync::OnceLock<Mode> = std::sync::OnceLock::new();
    *MODE.get_or_init(|| parse_mode(std::env::var("APPIPC_SPIN_US").ok().as_deref()))
}

fn parse_mode(v: Option<&str>) -> Mode {
    match v.map(str::trim) {
        None | Some("" | "auto") => Mode::Adaptive,
        Some(n) => match n.parse::<u64>() {
            Ok(us) => Mode::Fixed(Duration::from_micros(us)),
            Err(_) => Mode::Adaptive,
        },
    }
}

/// One waiting site's spin state (atomics: a ring side is shared; a wait is one at a time).
#[derive(Debug)]
pub(crate) struct Spin {
    /// The longest spin.
    cap: Duration,
    /// Recent time an answer took when it came within the spin (an average, in ns).
    hit_ns: AtomicU64,
    /// Waits left that sleep at once.
    skip: AtomicU32,
    /// What the next miss sets `skip` to (doubles per miss, halves per hit).
    backoff: AtomicU32,
}

impl Spin {
    /// A site whose spins last at most [`CAP`].
    pub(crate) fn new() -> Spin {
        Spin::with_cap(CAP)
    }

    pub(crate) fn with_cap(cap: Duration) -> Spin {
        Spin { cap, hit_ns: AtomicU64::new(0), skip: AtomicU32::new(0), backoff: AtomicU32::new(0) }
    }

    /// How long the next wait should poll before it sleeps (zero: sleep at once).
    fn budget(&self) -> Duration {
        match mode() {
            Mode::Fixed(d) => d,
            Mode::Adaptive => {
                let skip = self.skip.load(Ordering::Relaxed);
                if skip > 0 {
                    self.skip.store(skip - 1, Ordering::Relaxed);
                    return Duration::ZERO;
                }
                let hit = self.hit_ns.load(Ordering::Relaxed);
                // Nothing known yet, or the first spin after a back-off: try the whole cap.
                // While this side slept, the peer's answers came later (its wait included this
                // side's wake-up, so it may be asleep too); a spin bounded by the answers of
                // a conversation in which both sides spun would then never catch one, and
                // both would stay asleep.
                if hit == 0 || self.backoff.load(Ordering::Relaxed) > 0 {
                    return self.cap;
                }
                Duration::from_nanos(hit.saturating_mul(4).saturating_add(2_000)).min(self.cap)
            }
        }
    }

    fn hit(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let old = self.hit_ns.load(Ordering::Relaxed);
        let new = if old == 0 { ns } else { old - old / 8 + ns / 8 };
        self.hit_ns.store(new.max(1), Ordering::Relaxed);
        self.backoff.store(self.backoff.load(Ordering::Relaxed) / 2, Ordering::Relaxed);
    }

    fn miss(&self) {
        let b = (self.backoff.load(Ordering::Relaxed) * 2).clamp(1, MAX_BACKOFF);
        self.backoff.store(b, Ordering::Relaxed);
        self.skip.store(b, Ordering::Relaxed);
    }

    /// Polls `attempt` until it gives a value, for this site's spin budget; `None` when the
    /// caller should sleep (the budget ran out, or there was none). `polls_per_clock`: how many
    /// attempts between two readings of the clock (1 for a syscall; more for a memory poll,
    /// which costs less than reading the clock).
    pub(crate) fn poll<T>(
        &self,
        polls_per_clock: u32,
        mut attempt: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        let budget = self.budget();
        if budget.is_zero() {
            return None;
        }
        // Already there: that says nothing about how long the peer takes.
        if let Some(v) = attempt() {
            return Some(v);
        }
        let adaptive = mode() == Mode::Adaptive;
        let start = Instant::now();
        let mut last = start;
        loop {
            for _ in 0..polls_per_clock {
                if let Some(v) = attempt() {
                    if adaptive {
                        self.hit(start.elapsed());
                    }
                    return Some(v);
                }
                std::hint::spin_loop();
            }
            let now = Instant::now();
            let preempted = adaptive && now.duration_since(last) >= PREEMPTED;
            if preempted || now.duration_since(start) >= budget {
                if adaptive {
                    self.miss();
                }
                return None;
            }
            last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_knob() {
        assert_eq!(parse_mode(None), Mode::Adaptive);
        assert_eq!(parse_mode(Some("auto")), Mode::Adaptive);
        assert_eq!(parse_mode(Some("0")), Mode::Fixed(Duration::ZERO));
        assert_eq!(parse_mode(Some("50")), Mode::Fixed(Duration::from_micros(50)));
    }

    #[test]
    fn misses_back_off_and_hits_come_back() {
        if mode() != Mode::Adaptive {
            eprintln!("APPIPC_SPIN_US is set: the adaptive policy is not in use here");
            return;
        }
        let s = Spin::new();
        // Nothing ever comes: after a miss the next wait sleeps at once, and the back-off
        // doubles up to its maximum.
        assert_eq!(s.poll(1, || None::<()>), None);
        assert!(s.budget().is_zero(), "one wait skipped after the first miss");
        for _ in 0..500 {
            let _ = s.poll(1, || None::<()>);
        }
        assert_eq!(s.backoff.load(Ordering::Relaxed), MAX_BACKOFF);
        // An answer already there when the wait starts says nothing of the peer.
        s.skip.store(0, Ordering::Relaxed);
        assert_eq!(s.poll(1, || Some(7)), Some(7));
        assert_eq!(s.backoff.load(Ordering::Relaxed), MAX_BACKOFF);
        // Answers that come while it spins: every hit halves the back-off.
        for _ in 0..10 {
            s.skip.store(0, Ordering::Relaxed);
            let mut polls = 0;
            let got = s.poll(1, || {
                polls += 1;
                (polls > 1).then_some(7)
            });
            assert_eq!(got, Some(7));
        }
        assert_eq!(s.backoff.load(Ordering::Relaxed), 0);
        assert!(!s.budget().is_zero());
        assert!(s.budget() <= CAP);
    }
}
