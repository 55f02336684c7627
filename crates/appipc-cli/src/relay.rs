//! The stdio relay of `appipc launch --wait`: the app gets fds the CLI made for it, never the
//! CLI's own, so a confined app cannot touch the user's terminal (change its mode, leave
//! `tcsetattr` settings behind, read what the user types elsewhere) nor any file the user
//! redirected the CLI to (change its mode or times).
//!
//! * If any of the CLI's stdin, stdout, stderr is a terminal, the CLI opens a new pty (as
//!   `ssh -t` and `systemd-run --pty` do), copies the terminal's modes and window size to it,
//!   and gives its terminal side to the app at each of fds 0–2 whose CLI counterpart is a
//!   terminal (the app makes it its controlling terminal, so `^C`, `^Z` and window-size
//!   changes reach it through the pty's own line discipline). When stdin is a terminal it is
//!   put in raw mode for the session, and restored on every way out of [`Relay`].
//! * Every other fd is a pipe the CLI pumps: its stdin into the app, the app's output to the
//!   CLI's stdout or stderr.
//! * `SIGWINCH` copies the terminal's new size to the pty; `SIGHUP`, `SIGINT`, `SIGQUIT` and
//!   `SIGTERM` that reach the CLI go to the launched process (the broker's waiter, which hands
//!   them to the app through the container's init).
//!
//! Output is drained before the CLI exits: each pump ends at end of file (the pty's at `EIO`,
//! when no process holds its terminal side any more), with a short grace period for
//! processes of an unconfined app that keep the pipes open.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use appipc::{ActivateOptions, ApplicationActivationManager, Session};
use appipc_sys::process::ProcessSignal;
use appipc_sys::pty::{self, TerminalMode};

/// How long to wait for output still in flight after the app has exited.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// The signals forwarded to the launched process.
const FORWARDED: [ProcessSignal; 4] =
    [ProcessSignal::HUP, ProcessSignal::INT, ProcessSignal::QUIT, ProcessSignal::TERM];

/// A running relay; dropping it restores the terminal.
#[derive(Debug)]
pub(crate) struct Relay {
    /// The pty master, when there is a pty.
    master: Option<std::sync::Arc<OwnedFd>>,
    /// The CLI's terminal (a duplicate) and the mode to restore on it.
    restore: Option<(OwnedFd, TerminalMode)>,
    /// The terminal whose size the pty follows.
    size_from: Option<OwnedFd>,
    /// One message per output pump when it ends.
    done: mpsc::Receiver<()>,
    pumps: usize,
}

fn dup(fd: BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned().context("duplicating a standard fd")
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    appipc_sys::fs::pipe().context("creating a relay pipe")
}

/// Copies `from` to `to` until end of file (or `EIO`, which a pty master reports when its
/// terminal side is closed) or a write error.
fn pump(from: OwnedFd, to: OwnedFd, done: Option<mpsc::Sender<()>>) {
    std::thread::spawn(move || {
        let (mut from, mut to) = (std::fs::File::from(from), std::fs::File::from(to));
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        if let Some(d) = done {
            let _ = d.send(());
        }
    });
}

impl Relay {
    /// Sets the relay up for this process's stdio: returns it and the app's fds 0, 1, 2.
    /// `allow_pty: false` relays through pipes only (for callers that print around the app, as
    /// the demo does).
    pub(crate) fn start(allow_pty: bool) -> Result<(Relay, [OwnedFd; 3])> {
        let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
        let ours = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
        let is_tty = ours.map(|fd| allow_pty && pty::is_terminal(fd));
        let (done_tx, done) = mpsc::channel();
        let mut relay = Relay { master: None, restore: None, size_from: None, done, pumps: 0 };
        // The CLI's terminal: output to it is preferred on stdout, then stderr, then stdin.
        let terminal = [1, 2, 0].into_iter().find(|i| is_tty[*i]).map(|i| ours[i]);
        let mut slave = None;
        if let Some(term) = terminal {
            let p = pty::open().context("opening a pty for the app")?;
            if let Ok(mode) = TerminalMode::get(term) {
                let _ = mode.set(&p.slave);
            }
            if let Ok(size) = pty::window_size(term) {
                let _ = pty::set_window_size(&p.master, size);
            }
            let master = std::sync::Arc::new(p.master);
            // The app's output on its terminal goes to ours.
            relay.pumps += 1;
            pump(dup(master.as_fd())?, dup(term)?, Some(done_tx.clone()));
            if is_tty[0] {
                // Keys go to the app's pty as they are typed; its line discipline does the rest.
                let mode = TerminalMode::get(ours[0]).context("reading the terminal's mode")?;
                mode.raw().set(ours[0]).context("setting the terminal to raw mode")?;
                relay.restore = Some((dup(ours[0])?, mode));
                pump(dup(ours[0])?, dup(master.as_fd())?, None);
            }
            relay.size_from = Some(dup(term)?);
            relay.master = Some(master);
            slave = Some(p.slave);
        }
        let mut app: Vec<OwnedFd> = Vec::with_capacity(3);
        for (i, fd) in ours.iter().enumerate() {
            if let (true, Some(s)) = (is_tty[i], &slave) {
                app.push(s.try_clone().context("duplicating the pty")?);
            } else if i == 0 {
                let (r, w) = pipe()?;
                pump(dup(*fd)?, w, None);
                app.push(r);
            } else {
                let (r, w) = pipe()?;
                relay.pumps += 1;
                pump(r, dup(*fd)?, Some(done_tx.clone()));
                app.push(w);
            }
        }
        let [a, b, c]: [OwnedFd; 3] = app.try_into().expect("three fds");
        Ok((relay, [a, b, c]))
    }

    /// Copies the terminal's window size to the app's pty (on `SIGWINCH`).
    fn follow_size(&self) {
        if let (Some(master), Some(term)) = (&self.master, &self.size_from)
            && let Ok(size) = pty::window_size(term)
        {
            let _ = pty::set_window_size(master.as_fd(), size);
        }
    }

    /// Waits (a little) for the app's output to drain, then restores the terminal.
    pub(crate) fn finish(mut self) {
        let deadline = Instant::now() + DRAIN_GRACE;
        for _ in 0..self.pumps {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                break;
            }
        }
        self.restore_terminal();
    }

    fn restore_terminal(&mut self) {
        if let Some((fd, mode)) = self.restore.take() {
            let _ = mode.set(&fd);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.restore_terminal();
    }
}

/// A pidfd for the launched process, checked to be the broker's child (its pid was given by
/// the broker a moment ago; a process that ended since and whose pid was reused by another of
/// the user's processes is not signalled).
fn launched_process(session_broker_pid: Option<u32>, pid: u32) -> Option<OwnedFd> {
    let pidfd = appipc_sys::process::pidfd_open(pid).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let ppid: u32 = status.lines().find_map(|l| l.strip_prefix("PPid:"))?.trim().parse().ok()?;
    (Some(ppid) == session_broker_pid).then_some(pidfd)
}

/// `appipc launch --wait`: launches `target` with relayed stdio, forwards signals and window
/// sizes, waits for it and exits as it did.
pub(crate) async fn launch_and_wait(
    session: &Session,
    target: &str,
    args: &[String],
) -> Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    // Watched before the app exists: a resize or a signal that comes while it starts (the app
    // may already be waiting for one) is queued, not lost to the default disposition.
    let mut winch = signal(SignalKind::window_change()).context("watching SIGWINCH")?;
    let mut forwarded = Vec::new();
    for sig in FORWARDED {
        let watch = signal(SignalKind::from_raw(sig.as_raw())).context("watching signals")?;
        forwarded.push((sig, watch));
    }
    let (relay, stdio) = Relay::start(true)?;
    let aam = ApplicationActivationManager::new(session);
    let options = ActivateOptions { stdio: Some(stdio), notify_exit: true };
    let (pid, aumid) = aam
        .activate_application(target, args, options)
        .await
        .with_context(|| format!("launching {target}"))?;
    let broker_pid = appipc::broker::ping(session).await.ok().map(|p| p.broker_pid);
    let process = launched_process(broker_pid, pid);
    let exit = session.wait_for_exit(pid);
    tokio::pin!(exit);
    let status = loop {
        let next_forward = futures_any(&mut forwarded);
        tokio::select! {
            s = &mut exit => break s?,
            _ = winch.recv() => relay.follow_size(),
            sig = next_forward => match &process {
                Some(p) => {
                    let _ = appipc_sys::process::send_signal(p, sig);
                }
                None => {
                    // Nothing to hand it to: end as the signal would have ended us.
                    relay.finish();
                    eprintln!("appipc: {aumid} keeps running (pid {pid}); the signal could not be forwarded");
                    return Ok(ExitCode::from(u8::try_from(128 + sig.as_raw()).unwrap_or(1)));
                }
            },
        }
    };
    relay.finish();
    Ok(match (status.code, status.signal) {
        (Some(c), _) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        (None, Some(s)) => {
            eprintln!("appipc: {aumid} was killed by signal {s}");
            ExitCode::from(u8::try_from(128 + s).unwrap_or(1))
        }
        _ => ExitCode::FAILURE,
    })
}

/// The first of the watched signals to arrive.
async fn futures_any(
    signals: &mut [(ProcessSignal, tokio::signal::unix::Signal)],
) -> ProcessSignal {
    std::future::poll_fn(|cx| {
        for (sig, s) in signals.iter_mut() {
            if s.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*sig);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
