//! One broker session: a socket whose identity ([`Caller`]) the broker fixed when it was
//! created, the requests that arrive on it, and the replies.
//!
//! A session's identity comes from the kernel (`SO_PEERCRED` on the public socket) or from
//! the fact that the broker created the socket for a process it launched. Nothing a client
//! writes can change it. Requests run concurrently, at most [`MAX_IN_FLIGHT`] at a time per
//! session; a frame that is not a valid request closes the session.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use appipc_sys::aio::AsyncSeqPacket;
use appipc_wire::frame::{Frame, MAX_FRAME_LEN, Reply};

use crate::Shared;
use crate::caller::Caller;
use crate::cx::Cx;
use crate::dispatch::dispatch;

/// Requests one session may have in progress at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// Serves one session until the peer closes it or breaks the protocol.
pub(crate) async fn serve(shared: Arc<Shared>, sock: OwnedFd, caller: Caller) {
    let sock = match AsyncSeqPacket::new(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(session = caller.session_id, error = %e, "cannot register session socket");
            return;
        }
    };
    let caller = Arc::new(caller);
    // Requests run concurrently, but a client that floods the broker waits for its own
    // earlier requests instead of growing the broker without bound.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    tracing::debug!(session = caller.session_id, caller = %caller.describe(), "session opened");
    let reason = loop {
        let packet = tokio::select! {
            r = sock.recv(MAX_FRAME_LEN + 1) => r,
            () = shared.stopping.cancelled() => break "broker stopping".to_owned(),
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
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break "request limiter closed".to_owned();
        };
        let shared = shared.clone();
        let sock = sock.clone();
        let caller = caller.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let name = request.name();
            let cx = Cx { shared: &shared, caller: &caller, session: &sock, fds: packet.fds };
            let (reply, fds) = match dispatch(cx, request).await {
                Ok(r) => (Reply::Ok(r.out), r.fds),
                Err(e) => {
                    tracing::info!(caller = %caller.describe(), request = %name, error = %e, "request failed");
                    (Reply::Err(e.to_reply()), Vec::new())
                }
            };
            send(&sock, id, reply, fds).await;
        });
    };
    crate::hooks::session_closed(&shared, &caller);
    tracing::debug!(session = caller.session_id, caller = %caller.describe(), %reason, "session closed");
    if reason.starts_with("protocol violation") || reason.starts_with("receive failed") {
        tracing::warn!(session = caller.session_id, caller = %caller.describe(), %reason, "closing session");
    }
}

async fn send(sock: &AsyncSeqPacket, id: u64, reply: Reply, fds: Vec<OwnedFd>) {
    let bytes = Frame::reply(id, reply).to_cbor();
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    if let Err(e) = sock.send(&bytes, &borrowed).await {
        tracing::debug!(error = %e, "cannot send reply (peer gone?)");
    }
}
