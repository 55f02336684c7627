//! RPC endpoints (`ncalrpc`, `RpcServerUseProtseqEp` with a security descriptor): a server
//! registers a named endpoint; a client connects by name; the broker checks the client against
//! the endpoint's descriptor once (`PORT_CONNECT`: the user side and, for an app container,
//! its package SID, its capabilities' SIDs and `AC`) and hands each side its end of a
//! `SOCK_SEQPACKET` pair. Calls then go peer to peer: a stopped broker stalls no call.
//!
//! Two layers: an [`RpcChannel`] carries whole messages with fds both ways; typed interfaces
//! (`#[appipc::interface]` on a trait: a client proxy, a blocking one, a server dispatcher,
//! [`ObjectRef`]s) run over it (see [`Interface`] and below).
//!
//! ```no_run
//! # async fn demo(session: &appipc::Session) -> appipc::Result<()> {
//! use appipc::rpc::{RpcServer, connect};
//! // Server: only processes of one package (its app containers) may connect.
//! use appipc::named_objects::SecurityDescriptor;
//! let sd = SecurityDescriptor::new()
//!     .allow_owner(0x001F_0001)
//!     .allow_package("Fabrikam.Client_8wekyb3d8bbwe", appipc::rpc::PORT_CONNECT)
//!     .to_sddl();
//! let mut server = RpcServer::register(session, "contoso.device", Some(&sd)).await?;
//! tokio::spawn(async move {
//!     while let Some(conn) = server.accept().await {
//!         println!("connected: {:?}", conn.caller().package_family_name);
//!         let msg = conn.channel().recv().await;
//!         let _ = msg;
//!     }
//! });
//! // Client.
//! let client = connect(session, "contoso.device", None).await?;
//! client.channel.send(b"hello", &[]).await?;
//! # Ok(()) }
//! ```

use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use appipc_sys::aio::AsyncSeqPacket;
use appipc_wire::protocol::rpc as wire;
pub use appipc_wire::protocol::rpc::{RpcCaller, RpcClientInfo, RpcConnected, RpcEndpointInfo};

use crate::error::{Error, Result};
use crate::session::Session;

mod typed;
pub use typed::*;

/// What the code `#[appipc::interface]` generates uses.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
}

/// `PORT_CONNECT`: the right a security descriptor grants to let a client connect.
pub const PORT_CONNECT: u32 = 0x0001;

/// The largest message an [`RpcChannel`] carries (a `SOCK_SEQPACKET` datagram within the
/// default socket buffer).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// One end of an RPC connection: whole messages (up to [`MAX_MESSAGE`] bytes), with fds.
#[derive(Debug)]
pub struct RpcChannel {
    sock: Arc<AsyncSeqPacket>,
}

impl RpcChannel {
    fn new(fd: OwnedFd) -> Result<RpcChannel> {
        let sock = AsyncSeqPacket::new_reading(fd)
            .map_err(|source| Error::Io { what: "registering the RPC connection", source })?;
        Ok(RpcChannel { sock: Arc::new(sock) })
    }

    /// The socket, for a blocking user (fails while a typed server still holds it).
    fn sock_into_fd(self) -> Result<OwnedFd> {
        Arc::try_unwrap(self.sock)
            .map(AsyncSeqPacket::into_inner)
            .map_err(|_| Error::Protocol("the RPC connection is still in use".into()))
    }

    /// Sends one message with fds attached.
    pub async fn send(&self, message: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        if message.len() > MAX_MESSAGE {
            return Err(Error::Rpc {
                code: 87,
                message: format!(
                    "an RPC message of {} bytes: at most {MAX_MESSAGE}",
                    message.len()
                ),
            });
        }
        self.sock
            .send(message, fds)
            .await
            .map_err(|source| Error::Io { what: "sending on the RPC connection", source })
    }

    /// Receives one message and its fds; `None` when the other side has closed its end (or
    /// died). A message the peer made larger than [`MAX_MESSAGE`], or with more fds than a
    /// message carries, is `RPC_X_BAD_STUB_DATA` (1783), never handed out cut short.
    pub async fn recv(&self) -> Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
        let got = self
            .sock
            .recv(MAX_MESSAGE)
            .await
            .map_err(|source| Error::Io { what: "receiving on the RPC connection", source })?;
        match got {
            Some(p) if p.truncated || p.fds_truncated => Err(Error::Rpc {
                code: 1783,
                message: format!(
                    "the peer sent a message of {} bytes (at most {MAX_MESSAGE}) or too many \
                     fds; it was dropped",
                    p.full_len
                ),
            }),
            other => Ok(other.map(|p| (p.data, p.fds))),
        }
    }
}

/// A client's connection.
#[derive(Debug)]
pub struct RpcClientConnection {
    /// The server, as the broker attests it.
    pub server: RpcConnected,
    /// The connection.
    pub channel: RpcChannel,
}

/// Connects to the endpoint `name`. `server_sid`: the SID the server must run as (its package
/// SID, `S-1-15-2-…`, or its user's SID when unpackaged; `RPC_SECURITY_QOS_V5.Sid`), so that
/// a client cannot be fooled by another process that took the name first.
///
/// Errors ([`Error::Rpc`]): 1722 no such endpoint (or its server is gone), 5 refused by the
/// endpoint's descriptor or the server is not `server_sid`, 1723 the server takes no
/// connections now, 1706 a malformed name.
pub async fn connect(
    session: &Session,
    name: &str,
    server_sid: Option<&str>,
) -> Result<RpcClientConnection> {
    let (server, mut fds) = session
        .call_with_fds(
            wire::Connect { name: name.to_owned(), server_sid: server_sid.map(str::to_owned) },
            &[],
        )
        .await
        .map_err(Error::into_rpc)?;
    let fd = fds.pop().ok_or_else(|| Error::Protocol("RPC connection without its fd".into()))?;
    Ok(RpcClientConnection { server, channel: RpcChannel::new(fd)? })
}

/// The endpoints (`appipc rpc list`); an app container sees its own package's only.
pub async fn list(session: &Session) -> Result<Vec<RpcEndpointInfo>> {
    session.call(wire::List {}).await.map_err(Error::into_rpc)
}

/// A registered endpoint: clients' connections arrive from [`RpcServer::accept`]. Dropping it
/// unregisters the endpoint (connections made stay).
#[derive(Debug)]
pub struct RpcServer {
    session: Session,
    /// The broker's id of the endpoint (a restarted broker gives a new one); `None` once
    /// unregistered.
    endpoint_id: Option<Arc<AtomicU64>>,
    name: String,
    rx: tokio::sync::mpsc::UnboundedReceiver<(wire::Incoming, OwnedFd)>,
}

impl RpcServer {
    /// Registers the endpoint `name` (1 to 128 of `A-Z a-z 0-9 . _ -`, unique for the user,
    /// case-insensitive) with the security descriptor `sddl` (`None`: this process's default:
    /// the user, and for an app container its own package). Grant [`PORT_CONNECT`] (or `GA`)
    /// to whom may connect: a package by its SID (`S-1-15-2-…`), a capability by its SID
    /// (`S-1-15-3-…`), `AC` for every app container, the user for unconfined processes; the
    /// builder [`crate::named_objects::SecurityDescriptor`] writes that SDDL
    /// (`allow_package(PFN, PORT_CONNECT)`, `allow_capability(NAME, PORT_CONNECT)`).
    ///
    /// Errors ([`Error::Rpc`]): 1740 the name is registered already, 1706 a malformed name,
    /// 87 a malformed descriptor, 1816 this session serves as many endpoints as it may.
    pub async fn register(session: &Session, name: &str, sddl: Option<&str>) -> Result<RpcServer> {
        let endpoint_id = session
            .call(wire::Register { name: name.to_owned(), sddl: sddl.map(str::to_owned) })
            .await
            .map_err(Error::into_rpc)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let endpoint_id = Arc::new(AtomicU64::new(endpoint_id));
        session.route_rpc(endpoint_id.clone(), name, sddl, tx);
        Ok(RpcServer {
            session: session.clone(),
            endpoint_id: Some(endpoint_id),
            name: name.to_owned(),
            rx,
        })
    }

    /// Unregisters the endpoint and waits until the broker has (dropping the server does the
    /// same without waiting): its name, and its place in the session's quota, are free once
    /// this returns. Connections made stay.
    pub async fn unregister(mut self) -> Result<()> {
        let Some(endpoint_id) = self.endpoint_id.take() else { return Ok(()) };
        let endpoint_id = endpoint_id.load(Ordering::SeqCst);
        self.session.unroute_rpc(endpoint_id);
        self.session.call(wire::Unregister { endpoint_id }).await.map_err(Error::into_rpc)
    }

    /// The endpoint's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next client's connection; `None` once the session with the broker has ended, or
    /// when a restarted broker could not register the endpoint again (another process took
    /// its name meanwhile). After a broker restart the SDK registers the endpoint again by
    /// itself, with the same name and descriptor.
    pub async fn accept(&mut self) -> Option<RpcServerConnection> {
        loop {
            let (incoming, fd) = self.rx.recv().await?;
            // A connection that cannot be registered with the reactor is dropped (the client
            // sees its end close).
            if let Ok(channel) = RpcChannel::new(fd) {
                return Some(RpcServerConnection {
                    caller: incoming.caller,
                    connection_id: incoming.connection_id,
                    channel,
                    _report: Report {
                        session: self.session.clone(),
                        connection_id: incoming.connection_id,
                    },
                });
            }
        }
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        let Some(endpoint_id) = self.endpoint_id.take() else { return };
        let endpoint_id = endpoint_id.load(Ordering::SeqCst);
        self.session.unroute_rpc(endpoint_id);
        let session = self.session.clone();
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                let _ = session.call(wire::Unregister { endpoint_id }).await;
            });
        }
    }
}

/// A client's connection to an endpoint of this process. Dropping it closes the connection
/// and tells the broker (for `appipc rpc list`'s counts and the endpoint's connection limit).
#[derive(Debug)]
pub struct RpcServerConnection {
    caller: RpcCaller,
    connection_id: u64,
    channel: RpcChannel,
    _report: Report,
}

impl RpcServerConnection {
    /// Who connected, as the broker attests it (`RpcServerInqCallAttributes`).
    pub fn caller(&self) -> &RpcCaller {
        &self.caller
    }

    /// The connection's id.
    pub fn connection_id(&self) -> u64 {
        self.connection_id
    }

    /// The connection.
    pub fn channel(&self) -> &RpcChannel {
        &self.channel
    }
}

/// Tells the broker the connection closed, when the server drops it.
#[derive(Debug)]
struct Report {
    session: Session,
    connection_id: u64,
}

impl Drop for Report {
    fn drop(&mut self) {
        let session = self.session.clone();
        let connection_id = self.connection_id;
        if let Ok(h) = tokio::runtime::Handle::try_current() {
            h.spawn(async move {
                let _ = session.call(wire::Closed { connection_id }).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_oversized_message_is_an_error_not_a_short_one() {
        let (a, b) = appipc_sys::socket::seqpacket_pair().unwrap();
        let ours = RpcChannel::new(a).unwrap();
        // The attacker's end sends past the limit, straight through the socket.
        let big = vec![7u8; MAX_MESSAGE + 1];
        appipc_sys::socket::send(&b, &big, &[], appipc_sys::socket::Blocking::Yes).unwrap();
        appipc_sys::socket::send(&b, b"next", &[], appipc_sys::socket::Blocking::Yes).unwrap();
        let e = ours.recv().await.unwrap_err();
        assert_eq!(e.win32_code(), Some(1783), "{e}");
        // The connection goes on with the next message.
        let (m, _) = ours.recv().await.unwrap().unwrap();
        assert_eq!(m, b"next");
        assert!(ours.send(&big, &[]).await.is_err(), "and this side does not send one");
    }
}
