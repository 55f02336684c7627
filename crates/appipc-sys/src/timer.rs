//! Waitable timers: a `timerfd` on `CLOCK_REALTIME` (named waitable timers). Relative times on
//! that clock are unaffected by changes to the clock, absolute ones follow it, as Windows'
//! relative and absolute (UTC) due times do.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: d.subsec_nanos().into(),
    }
}

/// A new non-blocking, close-on-exec timerfd on `CLOCK_REALTIME`, disarmed.
pub fn timerfd_new() -> io::Result<OwnedFd> {
    Ok(rustix::time::timerfd_create(
        TimerfdClockId::Realtime,
        TimerfdFlags::CLOEXEC | TimerfdFlags::NONBLOCK,
    )?)
}

/// Arms it: first expiry at `value` (from now, or with `absolute` since the Unix epoch; a zero
/// `value` is raised to 1 ns, as zero would disarm), then every `period` (zero: once). Arming
/// clears expirations not yet read, so the timer is not signalled until it expires again.
pub fn timerfd_arm(
    fd: impl AsFd,
    value: Duration,
    absolute: bool,
    period: Duration,
) -> io::Result<()> {
    let flags = if absolute { TimerfdTimerFlags::ABSTIME } else { TimerfdTimerFlags::empty() };
    let spec = Itimerspec {
        it_interval: timespec(period),
        it_value: timespec(value.max(Duration::from_nanos(1))),
    };
    rustix::time::timerfd_settime(fd, flags, &spec)?;
    Ok(())
}

/// Stops it, leaving whether it is signalled as it was (`CancelWaitableTimer`): a timer that
/// has expired (its fd is readable) is re-armed to expire once at once, with no period, so that
/// it stays readable; one that has not is disarmed.
pub fn timerfd_cancel(fd: impl AsFd) -> io::Result<()> {
    if crate::aio::is_readable(&fd)? {
        timerfd_arm(fd, Duration::from_nanos(1), true, Duration::ZERO)
    } else {
        let zero = Itimerspec {
            it_interval: timespec(Duration::ZERO),
            it_value: timespec(Duration::ZERO),
        };
        rustix::time::timerfd_settime(fd, TimerfdTimerFlags::empty(), &zero)?;
        Ok(())
    }
}

/// Takes its expirations (a synchronization timer's wait): `false` if it had none.
pub fn timerfd_try_take(fd: impl AsFd) -> io::Result<bool> {
    let mut buf = [0u8; 8];
    match rustix::io::read(fd, &mut buf) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::AGAIN) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_expires_is_taken_and_keeps_its_state_when_cancelled() {
        let t = timerfd_new().unwrap();
        assert!(!timerfd_try_take(&t).unwrap(), "disarmed");
        // Due at once (an absolute time in the past).
        timerfd_arm(&t, Duration::from_secs(1), true, Duration::ZERO).unwrap();
        let mut fds = [rustix::event::PollFd::new(&t, rustix::event::PollFlags::IN)];
        rustix::event::poll(&mut fds, None).unwrap();
        // Cancelling an expired timer leaves it signalled.
        timerfd_cancel(&t).unwrap();
        let mut fds = [rustix::event::PollFd::new(&t, rustix::event::PollFlags::IN)];
        rustix::event::poll(&mut fds, None).unwrap();
        assert!(timerfd_try_take(&t).unwrap());
        assert!(!timerfd_try_take(&t).unwrap(), "taken");
        // Cancelling an armed timer that has not expired disarms it.
        timerfd_arm(&t, Duration::from_secs(3600), false, Duration::ZERO).unwrap();
        timerfd_cancel(&t).unwrap();
        let spec = rustix::time::timerfd_gettime(&t).unwrap();
        assert_eq!((spec.it_value.tv_sec, spec.it_value.tv_nsec), (0, 0));
    }
}
