//! The broker itself: whether it answers, its version, stopping it.

pub use appipc_wire::protocol::broker::Pong;
use appipc_wire::protocol::broker::{Ping, Shutdown};

use crate::error::Result;
use crate::session::Session;

/// Asks the broker for its protocol, pid and version.
pub async fn ping(session: &Session) -> Result<Pong> {
    session.call(Ping {}).await
}

/// Asks the broker to stop (callers without a package only).
pub async fn shutdown(session: &Session) -> Result<()> {
    session.call(Shutdown {}).await
}
