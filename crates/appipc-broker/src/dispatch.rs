//! From a decoded request to its mechanism's handler: the request's declared fds are checked
//! here, once, before any handler runs.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use appipc_model::policy::{Decision, Operation};
use appipc_sys::aio::AsyncSeqPacket;
use appipc_wire::frame::Raw;
use appipc_wire::protocol::{Call, Request};

use crate::Shared;
use crate::caller::Caller;
use crate::error::{BrokerError, Denied};
use crate::mech;

/// What a handler works with: the broker, who is asking, the session it asked on (for
/// events sent later), and the fds that came with the request.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    /// The broker's shared state.
    pub(crate) shared: &'a Arc<Shared>,
    /// Who is asking.
    pub(crate) caller: &'a Arc<Caller>,
    /// The session's socket.
    pub(crate) session: &'a Arc<AsyncSeqPacket>,
    /// The fds attached to the request (as many as it declares).
    pub(crate) fds: Vec<OwnedFd>,
}

impl Cx<'_> {
    /// Decides `op`, records the decision; a refusal is `Denied`.
    pub(crate) fn enforce(&self, op: Operation<'_>) -> Result<Decision, Denied> {
        crate::decide::enforce(self.shared, self.caller, op)
    }

    /// Whether the policy allows `op`, unrecorded (for filtering listings).
    pub(crate) fn permits(&self, op: Operation<'_>) -> bool {
        crate::decide::permits(self.caller, op)
    }

    /// Takes the request's fds.
    pub(crate) fn take_fds(&mut self) -> Vec<OwnedFd> {
        std::mem::take(&mut self.fds)
    }
}

/// A handler's answer: the output, encoded as its request's [`Call::Output`], and the fds that
/// go with it.
#[derive(Debug)]
pub(crate) struct Replied {
    pub(crate) out: Raw,
    pub(crate) fds: Vec<OwnedFd>,
}

impl Replied {
    /// The output of a `C` request.
    pub(crate) fn of<C: Call>(out: C::Output) -> Replied {
        Replied { out: Raw::encode(&out), fds: Vec::new() }
    }

    /// The output of a `C` request, with fds.
    pub(crate) fn with_fds<C: Call>(out: C::Output, fds: Vec<OwnedFd>) -> Replied {
        Replied { out: Raw::encode(&out), fds }
    }
}

/// Runs one request.
pub(crate) async fn dispatch(cx: Cx<'_>, request: Request) -> Result<Replied, BrokerError> {
    let expected = request.fds();
    if cx.fds.len() != expected {
        return Err(BrokerError::BadRequest(format!(
            "{} takes {expected} fd(s), {} attached",
            request.name(),
            cx.fds.len()
        )));
    }
    Ok(match request {
        Request::Broker(r) => mech::broker::handle(cx, r).await?,
        Request::Packages(r) => mech::packages::handle(cx, r).await?,
        Request::Launch(r) => mech::launch::handle(cx, r).await?,
        Request::AppService(r) => mech::app_service::handle(cx, r).await?,
        Request::FullTrust(r) => mech::full_trust::handle(cx, r).await?,
        Request::Storage(r) => mech::storage::handle(cx, r).await?,
        Request::NamedObjects(r) => mech::named_objects::handle(cx, r).await?,
        Request::Pipes(r) => mech::pipes::handle(cx, r).await?,
        Request::Diagnostics(r) => mech::diagnostics::handle(cx, r).await?,
        Request::Unknown { mechanism, call } => {
            return Err(BrokerError::Unsupported(format!(
                "this broker does not know request {call} of mechanism {mechanism} (a newer \
                 client?)"
            )));
        }
    })
}
