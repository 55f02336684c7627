//! The session itself: liveness, identity, more sessions, stopping the broker.

use minicbor::{Decode, Encode};

pub use crate::caller::{CallerIdentity, TrustLevel};

super::mechanism! {
    /// The session itself: liveness and version, who the caller is, more sessions of the same
    /// identity, stopping the broker.
    mechanism Broker;
    requests {
        /// Liveness and version check.
        0 Ping {} fds(0) -> Pong, reply fds "0";
        /// Who does the broker think I am? Identity as the broker attests it, never as the
        /// caller claims.
        1 WhoAmI {} fds(0) -> CallerIdentity, reply fds "0";
        /// One more session with the caller's identity (a packaged process's children inherit
        /// the identity this way). The reply carries the new session's socket.
        2 OpenSession {} fds(0) -> (), reply fds "1: the new session";
        /// Stop the broker. Callers without a package only (else AccessDenied).
        3 Shutdown {} fds(0) -> (), reply fds "0";
    }
    events {
        /// The broker is closing this session, and why (a limit reached, idle, the peer does
        /// not read its replies, the broker stopping); the socket's end follows.
        0 Closing {
            /// Why, in words.
            0 reason: String,
        } fds "0";
    }
}

/// Answer to [`Ping`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Pong {
    /// [`PROTOCOL_VERSION`](crate::frame::PROTOCOL_VERSION) of the broker.
    #[n(0)]
    pub protocol: u32,
    /// The broker's process id.
    #[n(1)]
    pub broker_pid: u32,
    /// The broker's version string.
    #[n(2)]
    pub version: String,
}
