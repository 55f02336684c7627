//! What the broker sends a session: replies and events queue in its [`Outbox`] (the bytes
//! waiting counted, for the session and for all sessions together in [`QueuedTotal`]) and a
//! writer task of the session's own sends them in order; past `queued-reply-bytes` waiting
//! for a peer that does not read, or past `queued-reply-bytes-total` for all sessions while
//! this one has anything waiting, events for it are refused and the session's reader stops
//! reading (see [`crate::session`]).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use appipc_sys::aio::AsyncSeqPacket;
use appipc_sys::socket::Blocking;
use appipc_wire::frame::{Frame, Reply};
use appipc_wire::protocol::Event;
use appipc_wire::protocol::broker::Closing;
use tokio::sync::{Notify, mpsc, watch};

/// One frame on its way to the peer.
#[derive(Debug)]
pub(crate) struct Outgoing {
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

/// The bytes queued for all sessions together, and their bound (`queued-reply-bytes-total`).
/// Once the total reaches the bound it counts as full until it has fallen below three
/// quarters of it: the sessions it held back then resume together once per quarter of the
/// bound drained, not each time one session's queue goes.
#[derive(Debug)]
pub struct QueuedTotal {
    bytes: AtomicUsize,
    limit: usize,
    /// Set when `bytes` reached `limit`, cleared when it fell below three quarters of it.
    over: std::sync::atomic::AtomicBool,
    /// Notified when `over` is cleared.
    drained: Notify,
}

impl QueuedTotal {
    /// A total bounded by `limit` bytes.
    pub fn new(limit: usize) -> Arc<QueuedTotal> {
        Arc::new(QueuedTotal {
            bytes: AtomicUsize::new(0),
            limit,
            over: std::sync::atomic::AtomicBool::new(false),
            drained: Notify::new(),
        })
    }

    /// Bytes queued for all sessions.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }

    fn full(&self) -> bool {
        self.over.load(Ordering::SeqCst)
    }

    fn add(&self, len: usize) {
        if self.bytes.fetch_add(len, Ordering::SeqCst) + len >= self.limit {
            self.over.store(true, Ordering::SeqCst);
        }
    }

    fn sub(&self, len: usize) {
        let after = self.bytes.fetch_sub(len, Ordering::SeqCst) - len;
        if after < self.limit - self.limit / 4 && self.over.swap(false, Ordering::SeqCst) {
            self.drained.notify_waiters();
        }
    }
}

/// Everything sent to one session, in order, by a writer task of its own, with the bytes
/// waiting counted.
#[derive(Debug)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: AtomicUsize,
    limit: usize,
    total: Arc<QueuedTotal>,
    drained: Notify,
    filled: Notify,
    closing: watch::Sender<Option<String>>,
    /// The session's socket, once it is served: an event for a peer that has gone is refused
    /// at once, not queued for a writer that will find out later.
    sock: std::sync::OnceLock<Arc<AsyncSeqPacket>>,
}

impl Outbox {
    pub(crate) fn new(
        limit: usize,
        total: Arc<QueuedTotal>,
    ) -> (Arc<Outbox>, mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outbox = Arc::new(Outbox {
            tx,
            queued: AtomicUsize::new(0),
            limit,
            total,
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
        // Nothing queued, so the writer is not sending either (it counts a frame out only once
        // it is sent): this frame goes out now, from this task, without the hop to the writer
        // task. Frames of one producer stay in order: one queued before went out before the
        // count fell to zero. A full socket queues it as before.
        if self.queued.load(Ordering::SeqCst) == 0
            && let Some(sock) = self.sock.get()
        {
            let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
            match appipc_sys::socket::send(sock.as_fd(), &bytes, &borrowed, Blocking::No) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    tracing::debug!(error = %e, "cannot send to the session (peer gone?)");
                    self.close("the peer is gone");
                    return Err(Undeliverable::Gone);
                }
            }
        }
        let len = bytes.len();
        self.total.add(len);
        if self.queued.fetch_add(len, Ordering::SeqCst) + len >= self.limit {
            self.filled.notify_waiters();
        }
        self.tx.send(Outgoing { bytes, fds }).map_err(|_| {
            self.sent(len);
            Undeliverable::Gone
        })
    }

    /// `len` bytes left the queue (sent, or dropped with the session).
    fn sent(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::SeqCst);
        self.total.sub(len);
        self.drained.notify_waiters();
    }

    /// Whether the session's reader must wait: its own queue is full, or it has something
    /// queued while all sessions together are at their bound.
    pub(crate) fn held_back(&self) -> bool {
        let q = self.queued();
        q >= self.limit || (q > 0 && self.total.full())
    }

    /// Queues a reply (the request's work is done; it is sent whatever the queue holds).
    pub(crate) fn reply(&self, id: u64, reply: Reply, fds: Vec<OwnedFd>) {
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
        let q = self.queued();
        if q > 0 && (q + bytes.len() > self.limit || self.total.full()) {
            return Err(Undeliverable::Full);
        }
        self.push(bytes, fds)
    }

    /// Ties the outbox to its session's socket, once it is served.
    pub(crate) fn attach(&self, sock: Arc<AsyncSeqPacket>) {
        let _ = self.sock.set(sock);
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
    pub(crate) async fn stays_full(&self, grace: Duration) {
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

    /// Resolves when an event of `len` bytes would be queued (see [`Outbox::event`]), or the
    /// session has ended.
    pub(crate) async fn room_for_event(&self, len: usize) {
        let mut closing = self.closing.subscribe();
        loop {
            let drained = self.drained.notified();
            let total = self.total.drained.notified();
            let q = self.queued();
            if self.is_closed() || q == 0 || (q + len <= self.limit && !self.total.full()) {
                return;
            }
            tokio::select! {
                () = drained => {}
                () = total => {}
                _ = closing.changed() => {}
            }
        }
    }

    /// Resolves when the session's reader may read again (see [`Outbox::held_back`]).
    pub(crate) async fn room(&self) {
        loop {
            let drained = self.drained.notified();
            let total = self.total.drained.notified();
            if !self.held_back() {
                return;
            }
            tokio::select! {
                () = drained => {}
                () = total => {}
            }
        }
    }
}

/// Writes a session's frames to its socket; stops when the session ends. What is still queued
/// then is dropped, and no longer counted.
pub(crate) async fn write_loop(
    sock: Arc<AsyncSeqPacket>,
    outbox: Arc<Outbox>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    write_all(&sock, &outbox, &mut rx).await;
    rx.close();
    while let Ok(m) = rx.try_recv() {
        outbox.sent(m.bytes.len());
    }
}

async fn write_all(
    sock: &AsyncSeqPacket,
    outbox: &Outbox,
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
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
                    let sent = tokio::time::timeout_at(deadline, sock.send(&m.bytes, &borrowed)).await;
                    outbox.sent(m.bytes.len());
                    if sent.is_err() {
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
        outbox.sent(m.bytes.len());
        if let Err(e) = sent {
            tracing::debug!(error = %e, "cannot send to the session (peer gone?)");
            outbox.close("the peer is gone");
            return;
        }
    }
}
