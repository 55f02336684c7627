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
        /// Stop the broker. Callers without a package only (else AccessDenied). Running
        /// processes and every session live on (the keeper holds the sessions) and the next
        /// broker adopts them; with `stop_apps`, every process the broker started is ended
        /// first and the keeper lets every session go.
        3 Shutdown {
            /// End every process the broker started, and every session, too.
            0 stop_apps: Option<bool>,
        } fds(0) -> (), reply fds "0";
        /// After `broker.Restarted`: which of the requests the client sent before it heard of
        /// the restart were lost (read by the broker that died, never answered). The client
        /// fails those with a retryable error; the others are answered as usual.
        4 Resync {
            /// The ids of the requests the client sent and has no reply to.
            0 sent: Vec<u64>,
        } fds(0) -> Vec<u64>, reply fds "0";
    }
    events {
        /// The broker is closing this session, and why (a limit reached, idle, the peer does
        /// not read its replies, the broker stopping); the socket's end follows.
        0 Closing {
            /// Why, in words.
            0 reason: String,
        } fds "0";
        /// This session outlived a broker: a new broker serves it now. The first frame the new
        /// broker sends; requests the old one read and did not answer are lost (ask with
        /// `broker.Resync`), state kept only in the old broker's memory is gone (named objects'
        /// names and handles, pipe instances, followed decisions); app-service hosts and RPC
        /// endpoints register again (the SDK does it; an endpoint gets a new id). Not sent on a packaged process's inherited session (fd 3), which nobody reads
        /// between two children's bootstraps (a child that gets no answer asks again).
        1 Restarted {} fds "0";
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
