//! What a request's handler works with ([`Cx`]) and what it answers ([`Replied`]).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use appipc_model::policy::{Decision, Operation};
use appipc_wire::frame::Raw;
use appipc_wire::protocol::Call;

use crate::Shared;
use crate::caller::Caller;
use crate::error::Denied;
use crate::sessions::SessionEntry;

/// What a handler works with: the broker, who is asking, the session it asked on (for
/// events sent later), and the fds that came with the request.
#[derive(Debug)]
pub(crate) struct Cx<'a> {
    /// The broker's shared state.
    pub(crate) shared: &'a Arc<Shared>,
    /// Who is asking.
    pub(crate) caller: &'a Arc<Caller>,
    /// The session it came on (its outbox, for events sent later).
    pub(crate) session: &'a Arc<SessionEntry>,
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
