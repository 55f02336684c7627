//! Broker sessions: a socket whose identity ([`Caller`]) the broker fixed when it was created,
//! and the requests that arrive on it. What goes back is [`crate::outbox`]'s; the table of live
//! sessions and its limits is [`crate::sessions`]'s.
//!
//! A session's identity comes from the kernel (`SO_PEERCRED` on the public socket) or from
//! the fact that the broker created the socket for a process it launched. Nothing a client
//! writes can change it.
//!
//! Limits (`[limits]` of the configuration, see `docs/architecture.md`):
//!
//! * at most `requests-in-flight` requests of one session run at once; past that the broker
//!   reads no more of its requests until one finishes; a request starts on the reader's turn
//!   and, if it finishes without waiting, has its reply queued before the next is read;
//! * a session that has a second request waiting as soon as it has read one pipelines: it
//!   reads its requests only on one of a few turns all pipelining sessions share, 16 at most a
//!   turn ([`Pace`]), handed round-robin by package or unpackaged process
//!   ([`crate::turns`]), so that clients sending one request at a time are not queued behind
//!   it and a principal's thousand sessions get one turn a round, as one session would (a
//!   new session of a principal whose sessions wait for a turn pipelines from its first
//!   request);
//! * everything sent to a session (replies and events) goes through its
//!   [`Outbox`](crate::outbox::Outbox), written by
//!   a task of its own; once `queued-reply-bytes` are waiting for a peer that does not read
//!   (or it has anything waiting while all sessions together have `queued-reply-bytes-total`),
//!   the broker reads no more of its requests and refuses events for it, and closes it if it
//!   stays held back for `non-reader-grace-ms`;
//! * requests still queued in the socket of a peer that has gone are not run;
//! * at most `connections` sessions of unpackaged processes (public connections and the
//!   sessions opened over them) and `sessions-per-package` sessions of one package; an
//!   unpackaged session that holds nothing and asked nothing for `idle-timeout-secs` is closed,
//!   and when the unpackaged sessions are full the longest idle one is closed to make room.
//!
//! The broker says why it closes a session (`broker.Closing`) before it does.

use std::future::Future;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use appipc_sys::aio::AsyncSeqPacket;
use appipc_sys::socket::Packet;
use appipc_wire::frame::{Frame, MAX_FRAME_LEN, Reply};
use appipc_wire::protocol::Request;
use appipc_wire::protocol::broker::Closing;
use tokio::sync::mpsc;

use crate::Shared;
use crate::caller::Caller;
use crate::cx::Cx;
use crate::dispatch::dispatch;
use crate::outbox::{Outbox, Outgoing, write_loop};
use crate::sessions::SessionEntry;

/// Why a session stops being served when the broker stops (it lives on in the keeper).
const STOPPING: &str = "broker stopping";

/// Requests a pipelining session reads on one shared turn before it gives the turn to the
/// next pipelining session (see [`Pace`]).
const TURN: usize = 16;

/// How a session's reader shares the broker with the other sessions. A session that has a
/// second request waiting as soon as it has read one *pipelines*: from then on it reads its
/// requests only on one of the few turns all pipelining sessions share
/// ([`crate::sessions::Sessions::turn`], round-robin by principal), at most [`TURN`] a turn,
/// until it finds its socket empty after at most one request. So however many clients flood
/// the broker, a client that sends one request at a time waits for the few sessions on their
/// turns, not for a turn of every flooder, and the flooders' own wake-ups cost the broker
/// almost nothing while they wait for a turn.
#[derive(Debug, Default)]
struct Pace {
    /// Requests read since the session last found its socket empty.
    streak: usize,
    /// Requests read on the turn it holds.
    on_turn: usize,
    pipelining: bool,
    turn: Option<crate::turns::Turn>,
}

impl Pace {
    /// A new session's pace: a session of a principal whose sessions wait for a turn (a
    /// flooder opening one more) reads even its first request on a turn.
    fn starting(shared: &Shared, caller: &Caller) -> Pace {
        Pace { pipelining: shared.sessions.principal_waits_for_turns(caller), ..Pace::default() }
    }

    /// Whether the next request may only be read on a shared turn, which the session lacks.
    fn needs_turn(&self) -> bool {
        self.pipelining && self.turn.is_none()
    }

    /// Gives the shared turn back (the session waits for something else, or its turn is over).
    fn release(&mut self) {
        self.turn = None;
        self.on_turn = 0;
    }

    /// The session's socket was found empty: it has read all it had sent.
    fn caught_up(&mut self) {
        if self.streak <= 1 {
            self.pipelining = false;
        }
        self.streak = 0;
        self.release();
    }

    /// A request was read and started; whether the reader's turn is over (it should then let
    /// the other tasks run before it asks for the next).
    fn ran(&mut self) -> bool {
        self.streak += 1;
        if self.streak >= 2 {
            self.pipelining = true;
        }
        if self.turn.is_some() {
            self.on_turn += 1;
            if self.on_turn >= TURN {
                self.release();
                return true;
            }
        }
        false
    }
}

/// Admits and serves a session; a refused one is told why and closed.
pub(crate) async fn start(shared: Arc<Shared>, sock: OwnedFd, caller: Caller) {
    let describe = caller.describe();
    let key = caller.session_id;
    let admitted = shared.sessions.admit(&shared, caller);
    let sock = match AsyncSeqPacket::new(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot register session socket");
            shared.keeper.forget(key);
            return;
        }
    };
    shared.keeper.attach(key, &sock);
    match admitted {
        Ok((entry, rx)) => serve(shared, entry, sock, rx).await,
        Err(refused) => {
            shared.keeper.forget(key);
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
    outbox.attach(sock.clone());
    let writer = tokio::spawn(write_loop(sock.clone(), outbox.clone(), rx));
    let limits = &shared.config.limits;
    let grace = Duration::from_millis(limits.non_reader_grace_ms);
    // Requests run concurrently, but a client that floods the broker waits for its own
    // earlier requests instead of growing the broker without bound.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(limits.requests_in_flight.max(1)));
    tracing::debug!(session = caller.session_id, caller = %caller.describe(), "session opened");
    let mut pace = Pace::starting(&shared, &caller);
    let reason = loop {
        // A peer that does not read its replies is not read from either.
        if outbox.held_back() {
            pace.release();
            if tokio::time::timeout(grace, outbox.room()).await.is_err() {
                break not_reading(&outbox, limits.non_reader_grace_ms);
            }
        }
        if outbox.is_closed() {
            break outbox.closed().await;
        }
        if shared.stopping.is_cancelled() {
            break STOPPING.to_owned();
        }
        // A pipelining session reads its next request only on one of the shared turns.
        if pace.needs_turn()
            && let Err(reason) = take_turn(&shared, &caller, &sock, &outbox, &mut pace).await
        {
            break reason;
        }
        // A request already waiting is read at once; when none is, the session has read all
        // it had sent.
        let recv = sock.recv(MAX_FRAME_LEN + 1);
        tokio::pin!(recv);
        let ready = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match recv.as_mut().poll(cx) {
                std::task::Poll::Ready(r) => Some(r),
                std::task::Poll::Pending => None,
            })
        })
        .await;
        let packet = if let Some(r) = ready {
            r
        } else {
            pace.caught_up();
            if pace.pipelining {
                // Still pipelining: its next request waits for a turn (above).
                continue;
            }
            tokio::select! {
                r = &mut recv => r,
                reason = outbox.closed() => break reason,
                () = shared.stopping.cancelled() => break STOPPING.to_owned(),
                // A peer that stopped sending, and reading, is not waited for forever either.
                () = outbox.stays_full(grace) => break not_reading(&outbox, limits.non_reader_grace_ms),
            }
        };
        let packet = match packet {
            Ok(Some(p)) => p,
            Ok(None) => break "peer closed the session".to_owned(),
            Err(e) => break format!("receive failed: {e}"),
        };
        let (id, request, fds) = match request_of(packet) {
            Ok(r) => r,
            Err(violation) => break violation,
        };
        entry.read_request(id);
        // Requests a gone peer left in the socket are not run.
        if appipc_sys::socket::peer_hung_up(sock.as_fd()) {
            break "peer closed the session".to_owned();
        }
        entry.touch(shared.sessions.now());
        let permit = match in_flight.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                // Waiting for its own requests, the session holds no shared turn.
                pace.release();
                let Ok(p) = in_flight.clone().acquire_owned().await else {
                    break "request limiter closed".to_owned();
                };
                p
            }
        };
        run(&shared, &entry, permit, id, request, fds).await;
        if pace.ran() {
            tokio::task::yield_now().await;
        }
    };
    pace.release();
    end(&shared, &entry, &in_flight, writer, reason, pace.pipelining).await;
}

/// Waits for one of the shared turns for a pipelining session: first, if it has read all it
/// had sent, for its next request (so that a quiet session holds no turn); `Err` with why the
/// session ends if it ends meanwhile.
async fn take_turn(
    shared: &Shared,
    caller: &Caller,
    sock: &AsyncSeqPacket,
    outbox: &Outbox,
    pace: &mut Pace,
) -> Result<(), String> {
    let grace_ms = shared.config.limits.non_reader_grace_ms;
    if pace.streak == 0 {
        tokio::select! {
            r = sock.readable() => r.map_err(|e| format!("receive failed: {e}"))?,
            reason = outbox.closed() => return Err(reason),
            () = shared.stopping.cancelled() => return Err(STOPPING.to_owned()),
            () = outbox.stays_full(Duration::from_millis(grace_ms)) => return Err(not_reading(outbox, grace_ms)),
        }
    }
    pace.turn = shared.sessions.turn(caller).await;
    Ok(())
}

/// Why a session that does not read its replies is closed.
fn not_reading(outbox: &Outbox, grace_ms: u64) -> String {
    format!("the peer does not read its replies ({} bytes waited {grace_ms} ms)", outbox.queued())
}

/// Ends a served session: lets its running requests finish (a little while) so that their
/// replies go out, then hands it to the keeper (the broker stops) or closes it. A flood's
/// sessions often end together (their peers gone at once, or cut off after the same grace):
/// one that `pipelined` is closed on one of the shared turns, a few at a time.
async fn end(
    shared: &Arc<Shared>,
    entry: &Arc<SessionEntry>,
    in_flight: &tokio::sync::Semaphore,
    writer: tokio::task::JoinHandle<()>,
    reason: String,
    pipelined: bool,
) {
    let caller = &entry.caller;
    let outbox = &entry.outbox;
    let limits = &shared.config.limits;
    let all = u32::try_from(limits.requests_in_flight.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(Duration::from_secs(1), in_flight.acquire_many(all)).await;
    if reason == STOPPING && shared.keeper.keeps() {
        // The broker stops, the session does not: its replies go out, and the keeper holds
        // it for the next broker. Nothing is closed.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while outbox.queued() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        shared.sessions.remove(caller.session_id);
        return;
    }
    outbox.close(reason.clone());
    let _ = writer.await;
    let _turn = if pipelined { shared.sessions.turn(caller).await } else { None };
    shared.sessions.remove(caller.session_id);
    shared.keeper.forget(caller.session_id);
    crate::hooks::session_closed(shared, caller);
    tracing::debug!(session = caller.session_id, caller = %caller.describe(), %reason, "session closed");
    let worth_a_warning = reason.starts_with("protocol violation")
        || reason.starts_with("receive failed")
        || reason.starts_with("the peer does not read");
    if worth_a_warning && let Some(n) = shared.log_limiter.allow("closing session") {
        tracing::warn!(session = caller.session_id, caller = %caller.describe(), %reason, suppressed = n, "closing session");
    }
}

/// Serves a session a broker before this one served (the keeper held it meanwhile), already
/// admitted: its client first hears that the broker restarted (`broker.Restarted`), so that
/// it learns which of its requests were lost. Not so an inherited session (`bootstrap`, fd 3
/// of a packaged process and its children): nobody reads it between two children's
/// bootstraps, and a child that waits for an answer to `OpenSession` asks again by itself.
pub(crate) async fn resume(
    shared: Arc<Shared>,
    sock: OwnedFd,
    entry: Arc<SessionEntry>,
    rx: mpsc::UnboundedReceiver<Outgoing>,
    bootstrap: bool,
) {
    let key = entry.caller.session_id;
    let sock = match AsyncSeqPacket::new(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(error = %e, "cannot register a kept session's socket");
            shared.sessions.remove(key);
            shared.keeper.forget(key);
            return;
        }
    };
    shared.keeper.attach(key, &sock);
    if !bootstrap {
        entry.mark_restarted();
        let _ = entry.outbox.event(appipc_wire::protocol::broker::Restarted {}, Vec::new());
    }
    serve(shared, entry, sock, rx).await;
}

/// The request in a packet, or why the packet breaks the protocol.
fn request_of(packet: Packet) -> Result<(u64, Request, Vec<OwnedFd>), String> {
    if packet.truncated || packet.data.len() > MAX_FRAME_LEN {
        return Err(format!(
            "protocol violation: frame of {} bytes exceeds the limit of {MAX_FRAME_LEN}",
            packet.full_len
        ));
    }
    if packet.fds_truncated {
        return Err("protocol violation: too many fds in one message".to_owned());
    }
    let frame = Frame::from_cbor(&packet.data).map_err(|e| format!("protocol violation: {e}"))?;
    let (id, Some(request)) = (frame.id, frame.request) else {
        return Err("protocol violation: a client sent a reply or an event".to_owned());
    };
    if frame.reply.is_some() || frame.event.is_some() || id == 0 {
        return Err(
            "protocol violation: a client sent a reply, an event or request id 0".to_owned()
        );
    }
    Ok((id, request, packet.fds))
}

/// Runs one request; its reply goes to the session's outbox. The request starts at once, on
/// the reader's turn: most requests finish without waiting (their reply is queued before the
/// next request is read, so that the queue's limits hold exactly, and no task is spawned);
/// one that has to wait goes on as a task of its own.
async fn run(
    shared: &Arc<Shared>,
    entry: &Arc<SessionEntry>,
    permit: tokio::sync::OwnedSemaphorePermit,
    id: u64,
    request: Request,
    fds: Vec<OwnedFd>,
) {
    let shared = shared.clone();
    let entry = entry.clone();
    entry.in_flight.fetch_add(1, Ordering::SeqCst);
    let mut task = Box::pin(async move {
        let _permit = permit;
        let name = request.name();
        let cx = Cx { shared: &shared, caller: &entry.caller, session: &entry, fds };
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
    // The first poll, with the reader's waker: a future that waits registers it, and registers
    // its own task's waker when that task polls it again (a spurious wake of the reader at
    // most). A panic ends the request unanswered, as it would end its task, not the session.
    let first = std::future::poll_fn(|cx| {
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            task.as_mut().poll(cx).is_ready()
        }));
        std::task::Poll::Ready(polled)
    })
    .await;
    match first {
        Ok(true) => {}
        Ok(false) => {
            tokio::spawn(task);
        }
        Err(_) => tracing::error!(request = id, "a request's handler panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::{Pace, TURN};

    fn permit(t: &std::sync::Arc<crate::turns::Turns>) -> crate::turns::Turn {
        t.try_take().expect("a free turn")
    }

    #[test]
    fn a_session_sending_one_request_at_a_time_never_needs_a_turn() {
        let mut pace = Pace::default();
        for _ in 0..1000 {
            assert!(!pace.needs_turn());
            assert!(!pace.ran());
            pace.caught_up();
        }
    }

    #[test]
    fn a_second_request_waiting_makes_a_session_pipeline_until_it_catches_up_after_one() {
        let turns = crate::turns::Turns::new(1);
        let mut pace = Pace::default();
        pace.ran();
        assert!(!pace.needs_turn(), "one request read is not pipelining");
        pace.ran();
        assert!(pace.needs_turn(), "a second one waiting at once is");
        pace.turn = Some(permit(&turns));
        pace.ran();
        // Caught up after a streak of three: it still pipelines (and gave its turn back).
        pace.caught_up();
        assert!(pace.needs_turn());
        assert_eq!(turns.counts().0, 1);
        pace.turn = Some(permit(&turns));
        pace.ran();
        pace.caught_up();
        assert!(!pace.needs_turn(), "one request, then an empty socket: light again");
    }

    #[test]
    fn a_turn_lasts_at_most_turn_requests() {
        let turns = crate::turns::Turns::new(1);
        let mut pace = Pace { pipelining: true, streak: 5, ..Pace::default() };
        pace.turn = Some(permit(&turns));
        for i in 1..TURN {
            assert!(!pace.ran(), "request {i} of the turn");
        }
        assert!(pace.ran(), "the turn is over after {TURN}");
        assert_eq!(turns.counts().0, 1, "and given back");
        assert!(pace.needs_turn());
    }

    #[test]
    fn waiting_for_something_else_gives_the_turn_back() {
        let turns = crate::turns::Turns::new(1);
        let mut pace = Pace { pipelining: true, ..Pace::default() };
        pace.turn = Some(permit(&turns));
        pace.release();
        assert_eq!(turns.counts().0, 1);
    }
}
