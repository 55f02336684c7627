//! Accounting of what clients make the broker hold: an fd budget below the open-file limit,
//! and log lines that a flood would repeat, rate-limited. The per-session, per-package and
//! per-user limits themselves are in [`crate::config::LimitsConfig`]; each mechanism checks
//! its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The fds clients may make the broker hold (sessions, named objects, files kept for tokens):
/// the open-file limit minus a reserve for the broker's own work.
#[derive(Debug)]
pub struct FdBudget {
    used: AtomicUsize,
    max: usize,
}

/// Fds charged to the budget; given back when dropped.
#[derive(Debug)]
pub struct FdCharge {
    budget: Arc<FdBudget>,
    n: usize,
}

impl Drop for FdCharge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.n, Ordering::SeqCst);
    }
}

impl FdBudget {
    /// A budget of `limit - reserve` fds (at least 16).
    pub fn new(limit: u64, reserve: usize) -> Arc<FdBudget> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        Arc::new(FdBudget { used: AtomicUsize::new(0), max: limit.saturating_sub(reserve).max(16) })
    }

    /// Charges `n` fds, or `None` if the budget has no room.
    pub fn try_charge(self: &Arc<Self>, n: usize) -> Option<FdCharge> {
        let mut cur = self.used.load(Ordering::SeqCst);
        loop {
            if cur + n > self.max {
                return None;
            }
            match self.used.compare_exchange(cur, cur + n, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Some(FdCharge { budget: self.clone(), n }),
                Err(now) => cur = now,
            }
        }
    }

    /// Fds charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    /// The most that may be charged.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// Log lines a flood would repeat: each key is logged at most once a second, with the count of
/// the ones suppressed since.
#[derive(Debug, Default)]
pub struct LogLimiter {
    last: Mutex<HashMap<&'static str, (Instant, u64)>>,
}

impl LogLimiter {
    /// Whether a line for `key` may be logged now; if so, how many were suppressed since the
    /// last one.
    pub fn allow(&self, key: &'static str) -> Option<u64> {
        let mut last = self.last.lock().expect("log limiter poisoned");
        let now = Instant::now();
        match last.get_mut(key) {
            Some((at, suppressed)) if now.duration_since(*at) < Duration::from_secs(1) => {
                *suppressed += 1;
                None
            }
            Some((at, suppressed)) => {
                let n = *suppressed;
                *at = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                last.insert(key, (now, 0));
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_bounded_and_given_back() {
        let b = FdBudget::new(100, 80);
        assert_eq!(b.max(), 20);
        let a = b.try_charge(15).unwrap();
        assert!(b.try_charge(6).is_none());
        let c = b.try_charge(5).unwrap();
        assert_eq!(b.used(), 20);
        drop(a);
        drop(c);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn repeated_lines_are_suppressed() {
        let l = LogLimiter::default();
        assert_eq!(l.allow("x"), Some(0));
        for _ in 0..10 {
            assert_eq!(l.allow("x"), None);
        }
        assert_eq!(l.allow("y"), Some(0));
    }
}
