//! RPC endpoints (`ncalrpc`): named, guarded by a security descriptor, connected peer to peer.

use minicbor::{Decode, Encode};

super::mechanism! {
    /// RPC endpoints: a server registers a named endpoint with a security descriptor
    /// (`RpcServerUseProtseqEp(ncalrpc, …, SecurityDescriptor)`); a client connects by name and
    /// the broker runs the access check once (`PORT_CONNECT`, the user side and, for an app
    /// container, the app-container side of the descriptor), then hands each side its end of
    /// a socket pair: calls go peer to peer. The server learns the attested caller with the
    /// connection. Errors carry `Win32` codes: 5 denied, 87 bad parameter, 1706 bad endpoint
    /// name, 1722 no such endpoint (or its server is gone), 1723 the server does not take
    /// connections now, 1740 the endpoint is registered already.
    mechanism Rpc;
    requests {
        /// Registers an endpoint served by this session; its connections arrive as
        /// `rpc.Incoming`. The endpoint lives until [`Unregister`] or the session's end.
        0 Register {
            /// The endpoint name: 1 to 128 of `A-Z a-z 0-9 . _ -`, unique among the user's
            /// endpoints (case-insensitive).
            0 name: String,
            /// Its security descriptor in SDDL; `None`: the registering process's default
            /// (the user, and for an app container its own package).
            1 sddl: Option<String>,
        } fds(0) -> u64, reply fds "0";
        /// Removes an endpoint of this session (connections made stay).
        1 Unregister {
            /// The id `Register` returned.
            0 endpoint_id: u64,
        } fds(0) -> (), reply fds "0";
        /// Connects to an endpoint by name (`RpcBindingFromStringBinding` + the first call):
        /// checked against the endpoint's descriptor for `PORT_CONNECT`.
        2 Connect {
            /// The endpoint name.
            0 name: String,
            /// The SID the server must run as (`RPC_SECURITY_QOS_V5.Sid`, mutual
            /// authentication): its package SID, or its user's SID when unpackaged. Another
            /// server is refused with 5.
            1 server_sid: Option<String>,
        } fds(0) -> RpcConnected, reply fds "1: the client's end";
        /// The endpoints, with their owners, descriptors and open connections (for
        /// `appipc rpc list`). An app container sees only its own package's.
        3 List {} fds(0) -> Vec<RpcEndpointInfo>, reply fds "0";
        /// The server reports a connection of its endpoint closed (bookkeeping for `List`).
        4 Closed {
            /// The connection.
            0 connection_id: u64,
        } fds(0) -> (), reply fds "0";
    }
    events {
        /// A client connected to an endpoint of this session; the server's end is attached.
        0 Incoming {
            /// The endpoint.
            0 endpoint_id: u64,
            /// The connection (for `Closed`).
            1 connection_id: u64,
            /// Who connected, as the broker knows it.
            2 caller: RpcCaller,
        } fds "1: the server's end";
    }
}

/// Who connected to an endpoint (what `RpcServerInqCallAttributes` and
/// `RpcBindingInqAuthClient` tell a Windows server).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct RpcCaller {
    /// The package family name; "" for an unpackaged process.
    #[n(0)]
    pub package_family_name: String,
    /// The package SID (`S-1-15-2-…`); "" for an unpackaged process.
    #[n(1)]
    pub package_sid: String,
    /// The SIDs of the capabilities the package was granted (`S-1-15-3-…`), sorted.
    #[n(2)]
    pub capability_sids: Vec<String>,
    /// Whether it runs in an app container (else unconfined: full trust or unpackaged).
    #[n(3)]
    pub app_container: bool,
    /// The user's SID.
    #[n(4)]
    pub user_sid: String,
    /// The caller's pid as the broker numbers it (an app container's: the process the broker
    /// launched); 0 for a server in an app container, whose pid namespace is its own.
    #[n(5)]
    pub pid: u32,
}

/// Answer to [`Connect`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct RpcConnected {
    /// The connection.
    #[n(0)]
    pub connection_id: u64,
    /// The server's package family name; "" for an unpackaged server.
    #[n(1)]
    pub server_package_family_name: String,
    /// The server's SID: its package SID, or its user's SID when unpackaged.
    #[n(2)]
    pub server_sid: String,
    /// The server's pid as the broker numbers it; 0 for a client in an app container.
    #[n(3)]
    pub server_pid: u32,
}

/// One endpoint, for [`List`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct RpcEndpointInfo {
    /// The endpoint name, as registered.
    #[n(0)]
    pub name: String,
    /// The server's package family name; "" for an unpackaged server.
    #[n(1)]
    pub server_package_family_name: String,
    /// The server's pid.
    #[n(2)]
    pub server_pid: u32,
    /// The security descriptor, in SDDL.
    #[n(3)]
    pub sddl: String,
    /// Connections handed out and not reported closed.
    #[n(4)]
    pub connections: u32,
    /// Who holds those connections (as many as `connections`).
    #[n(5)]
    pub clients: Vec<RpcClientInfo>,
}

/// One client connected to an endpoint, for [`List`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct RpcClientInfo {
    /// The connection.
    #[n(0)]
    pub connection_id: u64,
    /// The client's package family name; "" for an unpackaged client.
    #[n(1)]
    pub package_family_name: String,
    /// Whether the client runs in an app container.
    #[n(2)]
    pub app_container: bool,
    /// The client's pid as the broker numbers it (0 for a caller in an app container).
    #[n(3)]
    pub pid: u32,
}
