//! The broker itself: whether it answers, its version, stopping it.
//!
//! A broker can stop (or die) and another take its place without any process noticing: the
//! running processes and their sessions outlive it. A session learns of it from
//! `broker.Restarted`; the SDK then asks which of its requests were lost
//! ([`Error::BrokerRestarted`](crate::Error::BrokerRestarted), retryable) and registers its
//! app-service hosts again, by itself.

pub use appipc_wire::protocol::broker::Pong;
use appipc_wire::protocol::broker::{Ping, Shutdown};

use crate::error::Result;
use crate::session::Session;

/// Asks the broker for its protocol, pid and version.
pub async fn ping(session: &Session) -> Result<Pong> {
    session.call(Ping {}).await
}

/// Asks the broker to stop (callers without a package only). The processes it started keep
/// running, with their sessions, and the next broker adopts them.
pub async fn shutdown(session: &Session) -> Result<()> {
    session.call(Shutdown { stop_apps: None }).await
}

/// Asks the broker to end every process it started, let every session go, and stop.
pub async fn shutdown_everything(session: &Session) -> Result<()> {
    session.call(Shutdown { stop_apps: Some(true) }).await
}
