//! Broker sessions: a socket whose identity ([`Caller`]) the broker fixed when it was created,
//! the requests that arrive on it, and everything sent back on it.
//!
//! A session's identity comes from the kernel (`SO_PEERCRED` on the public socket) or from
//! the fact that the broker created the socket for a process it launched. Nothing a client
//! writes can change it.
//!
//! Limits (`[limits]` of the configuration, see `docs/architecture.md`):
//!
//! * at most `requests-in-flight` requests of one session run at once; past that the broker
//!   reads no more of its requests until one finishes;
//! * everything sent to a session (replies and events) goes through its [`Outbox`], written by
//!   a task of its own; once `queued-reply-bytes` are waiting for a peer that does not read,
//!   the broker reads no more of its requests and refuses events for it, and closes it if the
//!   queue stays full for `non-reader-grace-ms`;
//! * requests still queued in the socket of a peer that has gone are not run;
//! * at most `connections` sessions of unpackaged processes (public connections and the
//!   sessions opened over them) and `sessions-per-package` sessions of one package; an
//!   unpackaged session that holds nothing and asked nothing for `idle-timeout-secs` is closed,
//!   and when the unpackaged sessions are full the longest idle one is closed to make room.
//!
//! The broker says why it closes a session (`broker.Closing`) before it does.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appipc_sys::aio::AsyncSeqPacket;
use appipc_wire::frame::{Frame, MAX_FRAME_LEN, Reply};
use appipc_wire::protocol::Event;
use appipc_wire::protocol::broker::Closing;
use tokio::sync::{Notify, mpsc, watch};

use crate::Shared;
use crate::caller::Caller;
use crate::cx::Cx;
use crate::dispatch::dispatch;
use crate::limits::FdCharge;

/// One frame on its way to the peer.
#[derive(Debug)]
struct Outgoing {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
}

/// Why an event could not be queued for a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Undeliverable {
    /// The session has ended.
    Gone,
    /// Its peer does not read: its queue is full.
    Full,
}

/// Everything sent to one session, in order, by a writer task of its own, with the bytes
/// waiting counted.
#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: AtomicUsize,
    limit: usize,
    drained: Notify,
    filled: Notify,
    closing: watch::Sender<Option<String>>,
    /// The session's socket, once it is served: an event for a peer that has gone is refused
    /// at once, not queued for a writer that will find out later.
    sock: std::sync::OnceLock<Arc<AsyncSeqPacket>>,
}

impl Outbox {
    fn new(limit: usize) -> (Arc<Outbox>, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Arc::new(Outbox {
            tx,
            queued: AtomicUsize::new(0),
            limit,
            drained: Notify::new(),
            filled: Notify::new(),
            closing: watch::channel(None).0,
            sock: std::sync::OnceLock::new(),
        });
        (outbox, rx)
    }

    fn push(&self, bytes: Vec<u8>, fds: Vec<OwnedFd>) -> Result<(), Undeliverable> {
        if self.is_closed() {
            return Err(Undeliverable::Gone);
        }
        let len = bytes.len();
        if self.queued.fetch_add(len, Ordering::SeqCst) + len >= self.limit {
            self.filled.notify_waiters();
        }
        self.tx.send(Outgoing { bytes, fds }).map_err(|_| {
            self.queued.fetch_sub(len, Ordering::SeqCst);
            Undeliverable::Gone
        })
    }

    /// Queues a reply (the request's work is done; it is sent whatever the queue holds).
    fn reply(&self, id: u64, reply: Reply, fds: Vec<OwnedFd>) {
        let _ = self.push(Frame::reply(id, reply).to_cbor(), fds);
    }

    /// Queues an event, unless the session has ended or its peer leaves its queue full.
    pub(crate) fn event(
        &self,
        event: impl Into<Event>,
        fds: Vec<OwnedFd>,
    ) -> Result<(), Undeliverable> {
        if self.sock.get().is_some_and(|s| appipc_sys::socket::peer_hung_up(s.as_fd())) {
            self.close("peer closed the session");
            return Err(Undeliverable::Gone);
        }
        let bytes = Frame::event(event).to_cbor();
        if self.queued.load(Ordering::SeqCst) + bytes.len() > self.limit && self.queued() > 0 {
            return Err(Undeliverable::Full);
        }
        self.push(bytes, fds)
    }

    /// Bytes waiting for the peer.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Ends the session (the peer is told why, if it still listens).
    pub(crate) fn close(&self, reason: impl Into<String>) {
        let reason = reason.into();
        self.closing.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Whether the session has ended or is ending.
    pub(crate) fn is_closed(&self) -> bool {
        self.closing.borrow().is_some()
    }

    /// Resolves when the session ends, with why.
    pub(crate) async fn closed(&self) -> String {
        let mut rx = self.closing.subscribe();
        match rx.wait_for(|r| r.is_some()).await {
            Ok(r) => r.clone().unwrap_or_default(),
            Err(_) => "broker stopping".to_owned(),
        }
    }

    /// Resolves once the queue has stayed full for `grace` without a break.
    async fn stays_full(&self, grace: Duration) {
        loop {
            loop {
                let filled = self.filled.notified();
                if self.queued() >= self.limit {
                    break;
                }
                filled.await;
            }
            let deadline = tokio::time::Instant::now() + grace;
            loop {
                let drained = self.drained.notified();
                if self.queued() < self.limit {
                    break;
                }
                if tokio::time::timeout_at(deadline, drained).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Resolves when fewer than the limit's bytes are waiting.
    async fn room(&self) {
        loop {
            let drained = self.drained.notified();
            if self.queued() < self.limit {
                return;
            }
            drained.await;
        }
    }
}

/// Writes a session's frames to its socket; stops when the session ends.
async fn write_loop(
    sock: Arc<AsyncSeqPacket>,
    outbox: Arc<Outbox>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    loop {
        let next = tokio::select! {
            m = rx.recv() => m,
            reason = outbox.closed() => {
                // What was queued goes out if the peer takes it soon, then why the session
                // ends; a peer that does not read loses the rest.
                let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
                while let Ok(m) = rx.try_recv() {
                    let borrowed: Vec<_> = m.fds.iter().map(|f| f.as_fd()).collect();
                    if tokio::time::timeout_at(deadline, sock.send(&m.bytes, &borrowed)).await.is_err() {
                        break;
                    }
                }
                let bytes = Frame::event(Closing { reason }).to_cbor();
                let _ = tokio::time::timeout_at(deadline, sock.send(&bytes, &[])).await;
                let _ = appipc_sys::socket::shutdown(sock.as_fd());
                return;
            }
        };
        let Some(m) = next else { return };
        let borrowed: Vec<_> = m.fds.iter().map(|f| f.as_fd()).collect();
        // A peer that never reads must not keep this task (and its session) forever.
        let sent = tokio::select! {
            r = sock.send(&m.bytes, &borrowed) => r,
            _ = outbox.closed() => {
                let _ = appipc_sys::socket::shutdown(sock.as_fd());
                return;
            }
        };
        outbox.queued.fetch_sub(m.bytes.len(), Ordering::SeqCst);
        outbox.drained.notify_waiters();
        if let Err(e) = sent {
            tracing::debug!(error = %e, "cannot send to the session (peer gone?)");
            outbox.close("the peer is gone");
            return;
        }
    }
}

/// A live session, as the registry keeps it.
#[derive(Debug)]
pub struct SessionEntry {
    /// Who.
    pub caller: Arc<Caller>,
    /// Where its frames go.
    pub outbox: Arc<Outbox>,
    last_active: AtomicU64,
    /// Things the session waits for that keep it from being idle (followed decisions, a
    /// launched process's exit).
    interest: AtomicUsize,
    in_flight: AtomicUsize,
    _fds: FdCharge,
}

/// Something a session waits for; while it lives the session is not idle.
#[derive(Debug)]
pub(crate) struct Interest(Arc<SessionEntry>);

impl Drop for Interest {
    fn drop(&mut self) {
        self.0.interest.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A request whose session closed while it ran: what it would have entered in a table is not
/// (the session's entries are released once, when it closes).
#[derive(Debug, thiserror::Error)]
#[error("the session closed while its request ran")]
pub(crate) struct SessionGone;

impl From<SessionGone> for crate::error::InternalError {
    fn from(e: SessionGone) -> Self {
        crate::error::InternalError::io(
            "entering a handle",
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, e),
        )
    }
}

impl SessionEntry {
    /// `Err` once the session is closing: call it under the lock of the table a request is
    /// about to enter something in, so that the session's close (which takes that lock after
    /// marking the session closed) sees the entry or the request sees the close.
    pub(crate) fn ensure_open(&self) -> Result<(), crate::error::InternalError> {
        if self.outbox.is_closed() { Err(SessionGone.into()) } else { Ok(()) }
    }

    fn touch(&self, now: u64) {
        self.last_active.store(now, Ordering::Relaxed);
    }

    /// Marks the session as waiting for something until the returned guard drops.
    pub(crate) fn interest(self: &Arc<Self>) -> Interest {
        self.interest.fetch_add(1, Ordering::SeqCst);
        Interest(self.clone())
    }
}

/// Why a session was not admitted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// Too many sessions of unpackaged processes.
    #[error(
        "{0} sessions of unpackaged processes are open, the most allowed ([limits] connections); close some"
    )]
    Connections(usize),
    /// Too many sessions of one package.
    #[error("package {0} has {1} sessions open, the most allowed ([limits] sessions-per-package)")]
    Package(String, usize),
    /// The fd budget is spent.
    #[error(
        "the broker holds as many files for its clients as it may ({0}); close some sessions or objects"
    )]
    Fds(usize),
}

/// The live sessions.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<u64, Arc<SessionEntry>>>,
    /// Held across an admission's count, eviction and insertion, so two sessions accepted at
    /// once cannot both see room for one.
    admitting: Mutex<()>,
    start: Instant,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            admitting: Mutex::new(()),
            start: Instant::now(),
        }
    }
}

impl Sessions {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<SessionEntry>>> {
        self.map.lock().expect("sessions poisoned")
    }

    /// The live sessions of a package family.
    pub(crate) fn of_package(&self, family: &str) -> usize {
        self.lock()
            .values()
            .filter(|e| e.caller.family_name().is_some_and(|f| f.eq_ignore_ascii_case(family)))
            .count()
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Live sessions of unpackaged processes (public connections and the sessions opened over
    /// them), those already closing aside.
    fn unpackaged(&self) -> usize {
        self.lock()
            .values()
            .filter(|e| e.caller.family_name().is_none() && !e.outbox.is_closed())
            .count()
    }

    /// Whether an unpackaged process may open one more session (over the one it has).
    pub(crate) fn room_for_unpackaged(&self, shared: &Shared) -> Result<(), Refused> {
        let n = self.unpackaged();
        if n >= shared.config.limits.connections {
            return Err(Refused::Connections(n));
        }
        Ok(())
    }

    /// Whether a package may open one more session.
    pub(crate) fn room_for_package(&self, shared: &Shared, family: &str) -> Result<(), Refused> {
        let n = self.of_package(family);
        if n >= shared.config.limits.sessions_per_package {
            return Err(Refused::Package(family.to_owned(), n));
        }
        Ok(())
    }

    /// Admits a session: the limits are checked (a full table of unpackaged sessions first
    /// closes its longest idle session), the fd it costs is charged.
    fn admit(
        &self,
        shared: &Shared,
        caller: Caller,
    ) -> Result<(Arc<SessionEntry>, mpsc::UnboundedReceiver<Outgoing>), Refused> {
        let limits = &shared.config.limits;
        let _admitting = self.admitting.lock().expect("admission poisoned");
        match caller.family_name() {
            // Unpackaged sessions, on the public socket or opened over one, share the cap.
            None => {
                let n = self.unpackaged();
                if n >= limits.connections && !self.close_longest_idle(shared) {
                    return Err(Refused::Connections(n));
                }
            }
            Some(f) => self.room_for_package(shared, f)?,
        }
        let charge = shared.fds.try_charge(1).ok_or(Refused::Fds(shared.fds.max()))?;
        let (outbox, rx) = Outbox::new(limits.queued_reply_bytes);
        let entry = Arc::new(SessionEntry {
            caller: Arc::new(caller),
            outbox,
            last_active: AtomicU64::new(self.now()),
            interest: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            _fds: charge,
        });
        self.lock().insert(entry.caller.session_id, entry.clone());
        Ok((entry, rx))
    }

    /// Whether an unpackaged session holds nothing and waits for nothing (so closing it loses
    /// nothing of its peer's). Packaged sessions are bounded per package and never closed to
    /// make room.
    fn holds_nothing(shared: &Shared, e: &SessionEntry) -> bool {
        let id = e.caller.session_id;
        e.caller.family_name().is_none()
            && e.in_flight.load(Ordering::SeqCst) == 0
            && e.interest.load(Ordering::SeqCst) == 0
            && e.outbox.queued() == 0
            && shared.named_objects.handles_of(id) == 0
            && shared.pipes.instances_of(id) == 0
            && !shared.app_services.hosts_in(id)
    }

    /// Closes the unpackaged session idle the longest that holds nothing; whether there was one.
    fn close_longest_idle(&self, shared: &Shared) -> bool {
        let victim = self
            .lock()
            .values()
            .filter(|e| !e.outbox.is_closed() && Self::holds_nothing(shared, e))
            .min_by_key(|e| e.last_active.load(Ordering::Relaxed))
            .cloned();
        match victim {
            Some(v) => {
                v.outbox
                    .close("the broker's table of sessions is full and this one was idle longest");
                true
            }
            None => false,
        }
    }

    /// Closes unpackaged sessions that held nothing and asked nothing for the idle timeout.
    pub(crate) fn close_idle(&self, shared: &Shared) {
        let timeout = shared.config.limits.idle_timeout_secs.saturating_mul(1000);
        let now = self.now();
        let idle: Vec<_> = self
            .lock()
            .values()
            .filter(|e| {
                now.saturating_sub(e.last_active.load(Ordering::Relaxed)) >= timeout
                    && Self::holds_nothing(shared, e)
            })
            .cloned()
            .collect();
        for e in idle {
            e.outbox.close(format!(
                "idle for {} s with nothing open ([limits] idle-timeout-secs)",
                shared.config.limits.idle_timeout_secs
            ));
        }
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// Admits and serves a session; a refused one is told why and closed.
pub(crate) async fn start(shared: Arc<Shared>, sock: OwnedFd, caller: Caller) {
    let describe = caller.describe();
    let admitted = shared.sessions.admit(&shared, caller);
    let sock = match AsyncSeqPacket::new(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot register session socket");
            return;
        }
    };
    match admitted {
        Ok((entry, rx)) => serve(shared, entry, sock, rx).await,
        Err(refused) => {
            if let Some(n) = shared.log_limiter.allow("session refused") {
                tracing::warn!(caller = %describe, reason = %refused, suppressed = n, "session refused");
            }
            let bytes = Frame::event(Closing { reason: refused.to_string() }).to_cbor();
            let _ = tokio::time::timeout(Duration::from_millis(100), sock.send(&bytes, &[])).await;
        }
    }
}

/// Serves one session until the peer closes it, breaks the protocol, or the broker closes it.
async fn serve(
    shared: Arc<Shared>,
    entry: Arc<SessionEntry>,
    sock: Arc<AsyncSeqPacket>,
    rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let caller = entry.caller.clone();
    let outbox = entry.outbox.clone();
    let _ = outbox.sock.set(sock.clone());
    let writer = tokio::spawn(write_loop(sock.clone(), outbox.clone(), rx));
    let limits = &shared.config.limits;
    let grace = Duration::from_millis(limits.non_reader_grace_ms);
    // Requests run concurrently, but a client that floods the broker waits for its own
    // earlier requests instead of growing the broker without bound.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(limits.requests_in_flight.max(1)));
    tracing::debug!(session = caller.session_id, caller = %caller.describe(), "session opened");
    let reason = loop {
        // A peer that does not read its replies is not read from either.
        if outbox.queued() >= limits.queued_reply_bytes
            && tokio::time::timeout(grace, outbox.room()).await.is_err()
        {
            break format!(
                "the peer does not read its replies ({} bytes waited {} ms)",
                outbox.queued(),
                limits.non_reader_grace_ms
            );
        }
        let packet = tokio::select! {
            r = sock.recv(MAX_FRAME_LEN + 1) => r,
            reason = outbox.closed() => break reason,
            () = shared.stopping.cancelled() => break "broker stopping".to_owned(),
            // A peer that stopped sending, and reading, is not waited for forever either.
            () = outbox.stays_full(grace) => break format!(
                "the peer does not read its replies ({} bytes waited {} ms)",
                outbox.queued(),
                limits.non_reader_grace_ms
            ),
        };
        let packet = match packet {
            Ok(Some(p)) => p,
            Ok(None) => break "peer closed the session".to_owned(),
            Err(e) => break format!("receive failed: {e}"),
        };
        if packet.truncated || packet.data.len() > MAX_FRAME_LEN {
            break format!(
                "protocol violation: frame of {} bytes exceeds the limit of {MAX_FRAME_LEN}",
                packet.full_len
            );
        }
        if packet.fds_truncated {
            break "protocol violation: too many fds in one message".to_owned();
        }
        let frame = match Frame::from_cbor(&packet.data) {
            Ok(f) => f,
            Err(e) => break format!("protocol violation: {e}"),
        };
        let (id, Some(request)) = (frame.id, frame.request) else {
            break "protocol violation: a client sent a reply or an event".to_owned();
        };
        if frame.reply.is_some() || frame.event.is_some() || id == 0 {
            break "protocol violation: a client sent a reply, an event or request id 0".to_owned();
        }
        // Requests a gone peer left in the socket are not run.
        if appipc_sys::socket::peer_hung_up(sock.as_fd()) {
            break "peer closed the session".to_owned();
        }
        entry.touch(shared.sessions.now());
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break "request limiter closed".to_owned();
        };
        let shared = shared.clone();
        let entry = entry.clone();
        entry.in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let _permit = permit;
            let name = request.name();
            let cx =
                Cx { shared: &shared, caller: &entry.caller, session: &entry, fds: packet.fds };
            let (reply, fds) = match dispatch(cx, request).await {
                Ok(r) => (Reply::Ok(r.out), r.fds),
                Err(e) => {
                    tracing::info!(caller = %entry.caller.describe(), request = %name, error = %e, "request failed");
                    (Reply::Err(e.to_reply()), Vec::new())
                }
            };
            entry.outbox.reply(id, reply, fds);
            entry.in_flight.fetch_sub(1, Ordering::SeqCst);
            entry.touch(shared.sessions.now());
        });
    };
    // Requests still running finish (a little while) so that their replies go out first.
    let all = u32::try_from(limits.requests_in_flight.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(1), in_flight.acquire_many(all)).await;
    outbox.close(reason.clone());
    let _ = writer.await;
    shared.sessions.remove(caller.session_id);
    crate::hooks::session_closed(&shared, &caller);
    tracing::debug!(session = caller.session_id, caller = %caller.describe(), %reason, "session closed");
    let worth_a_warning = reason.starts_with("protocol violation")
        || reason.starts_with("receive failed")
        || reason.starts_with("the peer does not read");
    if worth_a_warning && let Some(n) = shared.log_limiter.allow("closing session") {
        tracing::warn!(session = caller.session_id, caller = %caller.describe(), %reason, suppressed = n, "closing session");
    }
}
