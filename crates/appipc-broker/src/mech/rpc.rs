//! `rpc`: named RPC endpoints (`ncalrpc`) guarded by security descriptors. The broker keeps the
//! names, runs the access check once when a client connects (`PORT_CONNECT` against the
//! endpoint's descriptor: the user side and, for an app container, the app-container side),
//! and hands each side its end of a `SOCK_SEQPACKET` pair with the attested caller; calls then
//! go between the two processes without the broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use appipc_model::named_objects::{self as model, PORT_CONNECT, SecurityDescriptor};
use appipc_model::policy::Operation;
use appipc_wire::protocol::rpc::{
    self as wire, Incoming, RpcCaller, RpcClientInfo, RpcConnected, RpcEndpointInfo,
};
use appipc_wire::status::Win32Error;

use crate::caller::Caller;
use crate::cx::{Cx, Replied};
use crate::error::{InternalError, NamedObjectError};
use crate::outbox::{Outbox, Undeliverable};

type Result<T, E = NamedObjectError> = std::result::Result<T, E>;

/// The longest endpoint name.
pub(crate) const MAX_ENDPOINT_NAME: usize = 128;

/// The longest security descriptor text an endpoint takes: Windows' ACLs are at most 64 KiB
/// (`ACL.AclSize` is 16 bits), and the broker keeps every endpoint's descriptor.
pub(crate) const MAX_ENDPOINT_SDDL: usize = 64 * 1024;

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied> {
    use wire::Request as R;
    let rpc = &cx.shared.rpc;
    Ok(match r {
        R::Register(r) => {
            Replied::of::<wire::Register>(rpc.register(&cx, &r.name, r.sddl.as_deref())?)
        }
        R::Unregister(u) => {
            rpc.unregister(&cx, u.endpoint_id)?;
            Replied::of::<wire::Unregister>(())
        }
        R::Connect(c) => {
            let (connected, fd) = rpc.connect(&cx, &c.name, c.server_sid.as_deref())?;
            Replied::with_fds::<wire::Connect>(connected, vec![fd])
        }
        R::List(_) => Replied::of::<wire::List>(rpc.list(&cx)),
        R::Closed(c) => {
            rpc.closed(&cx, c.connection_id)?;
            Replied::of::<wire::Closed>(())
        }
    })
}

fn failed(code: Win32Error, message: impl Into<String>) -> NamedObjectError {
    NamedObjectError::win32(code, message)
}

/// An endpoint name's key (names are case-insensitive), or 1706 naming what is wrong.
fn endpoint_key(name: &str) -> Result<String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_ENDPOINT_NAME || !name.chars().all(ok) {
        return Err(failed(
            Win32Error::RpcInvalidEndpointFormat,
            format!(
                "endpoint name {:?}{}: 1 to {MAX_ENDPOINT_NAME} of A-Z a-z 0-9 . _ -",
                appipc_wire::text::printable(&name.chars().take(80).collect::<String>()),
                if name.chars().count() > 80 { "…" } else { "" }
            ),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

/// The SID a server runs as: its package SID, or its user's SID when unpackaged.
fn server_sid(who: &Caller) -> String {
    match &who.principal.package {
        Some(p) => p.package_sid.to_string(),
        None => who.principal.user_sid().to_string(),
    }
}

fn confined(who: &Caller) -> bool {
    who.principal.is_confined()
}

#[derive(Debug)]
struct Endpoint {
    id: u64,
    name: String,
    sd: SecurityDescriptor,
    session_id: u64,
    server: Arc<Outbox>,
    server_family: String,
    server_sid: String,
    server_pid: u32,
    server_confined: bool,
    /// Connections handed out and not reported closed.
    connections: usize,
}

/// A connection handed out and not reported closed.
#[derive(Debug)]
struct Connection {
    /// The endpoint's key and id (a later endpoint of the same name is another).
    key: String,
    endpoint_id: u64,
    /// The server's session.
    session: u64,
    client: RpcClientInfo,
}

#[derive(Debug, Default)]
struct State {
    /// Endpoint key → endpoint.
    endpoints: HashMap<String, Endpoint>,
    /// Connection → what it is a connection to, and who holds it.
    connections: HashMap<u64, Connection>,
}

/// The endpoint table.
#[derive(Debug, Default)]
pub struct Rpc {
    state: Mutex<State>,
    next: AtomicU64,
}

impl Rpc {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("rpc poisoned")
    }

    fn register(&self, cx: &Cx<'_>, name: &str, sddl: Option<&str>) -> Result<u64> {
        let who = cx.caller;
        let key = endpoint_key(name)?;
        if sddl.is_some_and(|s| s.len() > MAX_ENDPOINT_SDDL) {
            return Err(NamedObjectError::parameter(format!(
                "an endpoint's security descriptor is at most {MAX_ENDPOINT_SDDL} bytes of SDDL"
            )));
        }
        cx.enforce(Operation::RegisterRpcEndpoint { endpoint: name })?;
        let made = model::descriptor_for_new_object(&who.principal, sddl)?;
        let mut st = self.lock();
        cx.session.ensure_open()?;
        if let Some(e) = st.endpoints.get(&key) {
            return Err(failed(
                Win32Error::RpcDuplicateEndpoint,
                format!("endpoint {name:?} is registered already (by {})", describe(e)),
            ));
        }
        let mine = st.endpoints.values().filter(|e| e.session_id == who.session_id).count();
        let cap = cx.shared.config.limits.rpc_endpoints_per_session;
        if mine >= cap {
            return Err(failed(
                Win32Error::NotEnoughQuota,
                format!(
                    "this session serves {mine} RPC endpoints, the most it may ([limits] \
                     rpc-endpoints-per-session)"
                ),
            ));
        }
        let family = who.family_name_or_empty();
        let ours = st.endpoints.values().filter(|e| e.server_family == family).count();
        if ours >= cx.shared.config.limits.rpc_endpoints_per_package {
            return Err(failed(
                Win32Error::NotEnoughQuota,
                format!(
                    "{} serve {ours} RPC endpoints, the most they may ([limits] \
                     rpc-endpoints-per-package)",
                    if family.is_empty() { "the user's unpackaged processes" } else { &family }
                ),
            ));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(endpoint = name, by = %who.describe(), sddl = %made.descriptor, "rpc endpoint registered");
        st.endpoints.insert(
            key,
            Endpoint {
                id,
                name: name.to_owned(),
                sd: made.descriptor,
                session_id: who.session_id,
                server: cx.session.outbox.clone(),
                server_family: family,
                server_sid: server_sid(who),
                server_pid: who.pid,
                server_confined: confined(who),
                connections: 0,
            },
        );
        Ok(id)
    }

    fn unregister(&self, cx: &Cx<'_>, id: u64) -> Result<()> {
        let mut st = self.lock();
        let before = st.endpoints.len();
        st.endpoints.retain(|_, e| !(e.id == id && e.session_id == cx.caller.session_id));
        if st.endpoints.len() == before {
            return Err(failed(
                Win32Error::InvalidHandle,
                format!("endpoint {id} is not an endpoint of this session"),
            ));
        }
        Ok(())
    }

    fn connect(
        &self,
        cx: &Cx<'_>,
        name: &str,
        want_server: Option<&str>,
    ) -> Result<(RpcConnected, std::os::fd::OwnedFd)> {
        let who = cx.caller;
        let key = endpoint_key(name)?;
        let unavailable = || {
            failed(
                Win32Error::RpcServerUnavailable,
                format!("no server has registered the RPC endpoint {name:?}"),
            )
        };
        // Decided and counted under the lock: the endpoint cannot go in between.
        let mut st = self.lock();
        let e = st.endpoints.get_mut(&key).ok_or_else(unavailable)?;
        cx.enforce(Operation::ConnectRpcEndpoint {
            endpoint: &e.name,
            sd: &e.sd,
            desired: PORT_CONNECT,
        })?;
        // Only a client the descriptor admits learns who serves the endpoint.
        if let Some(want) = want_server
            && !want.eq_ignore_ascii_case(&e.server_sid)
        {
            return Err(failed(
                Win32Error::AccessDenied,
                format!(
                    "the server of endpoint {name:?} runs as {}, not as the {want} the client \
                     asked for",
                    e.server_sid
                ),
            ));
        }
        if e.connections >= cx.shared.config.limits.rpc_connections_per_endpoint {
            return Err(failed(
                Win32Error::RpcServerTooBusy,
                format!(
                    "endpoint {name:?} has {} connections open, the most it may ([limits] \
                     rpc-connections-per-endpoint)",
                    e.connections
                ),
            ));
        }
        let (server_end, client_end) = appipc_sys::socket::seqpacket_pair()
            .map_err(|e| InternalError::io("creating an RPC socket pair", e))?;
        let connection_id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let caller = attested(who, e.server_confined);
        let event = Incoming { endpoint_id: e.id, connection_id, caller };
        match e.server.event(event, vec![server_end]) {
            Ok(()) => {}
            Err(Undeliverable::Gone) => {
                st.endpoints.remove(&key);
                return Err(unavailable());
            }
            Err(Undeliverable::Full) => {
                return Err(failed(
                    Win32Error::RpcServerTooBusy,
                    format!("the server of endpoint {name:?} does not read its session"),
                ));
            }
        }
        e.connections += 1;
        let connected = RpcConnected {
            connection_id,
            server_package_family_name: e.server_family.clone(),
            server_sid: e.server_sid.clone(),
            server_pid: if confined(who) { 0 } else { e.server_pid },
        };
        let server_session = e.session_id;
        let client = RpcClientInfo {
            connection_id,
            package_family_name: who.family_name_or_empty(),
            app_container: confined(who),
            pid: who.pid,
        };
        let endpoint_id = e.id;
        st.connections.insert(
            connection_id,
            Connection { key, endpoint_id, session: server_session, client },
        );
        tracing::debug!(endpoint = name, connection = connection_id, client = %who.describe(), "rpc connected");
        Ok((connected, client_end))
    }

    fn closed(&self, cx: &Cx<'_>, connection_id: u64) -> Result<()> {
        let mut st = self.lock();
        match st.connections.get(&connection_id) {
            Some(c) if c.session == cx.caller.session_id => {}
            _ => {
                return Err(failed(
                    Win32Error::InvalidHandle,
                    format!("connection {connection_id} is not one this session serves"),
                ));
            }
        }
        if let Some(c) = st.connections.remove(&connection_id)
            && let Some(e) = st.endpoints.get_mut(&c.key)
            && e.id == c.endpoint_id
        {
            e.connections = e.connections.saturating_sub(1);
        }
        Ok(())
    }

    /// The endpoints the caller may see: all for an unconfined caller, its own package's for
    /// an app container.
    fn list(&self, cx: &Cx<'_>) -> Vec<RpcEndpointInfo> {
        let who = cx.caller;
        let st = self.lock();
        let mut v: Vec<RpcEndpointInfo> = st
            .endpoints
            .iter()
            .filter(|(_, e)| !confined(who) || who.principal.is_package(&e.server_family))
            .map(|(key, e)| {
                let mut clients: Vec<RpcClientInfo> = st
                    .connections
                    .values()
                    .filter(|c| c.key == *key && c.endpoint_id == e.id)
                    .map(|c| RpcClientInfo {
                        pid: if confined(who) { 0 } else { c.client.pid },
                        ..c.client.clone()
                    })
                    .collect();
                clients.sort_by_key(|c| c.connection_id);
                RpcEndpointInfo {
                    name: e.name.clone(),
                    server_package_family_name: e.server_family.clone(),
                    server_pid: if confined(who) { 0 } else { e.server_pid },
                    sddl: e.sd.to_sddl(),
                    connections: u32::try_from(e.connections).unwrap_or(u32::MAX),
                    clients,
                }
            })
            .collect();
        v.sort_by_key(|e| e.name.to_ascii_lowercase());
        v
    }

    /// A session ended: its endpoints and the connections it served are gone.
    pub(crate) fn session_closed(&self, session: u64) {
        let mut st = self.lock();
        st.endpoints.retain(|_, e| e.session_id != session);
        st.connections.retain(|_, c| c.session != session);
    }
}

/// The client as the broker attests it to the server (`RpcServerInqCallAttributes`); its pid
/// is 0 for a server in an app container (whose pid namespace is its own).
pub(crate) fn attested(who: &Caller, server_confined: bool) -> RpcCaller {
    RpcCaller {
        package_family_name: who.family_name_or_empty(),
        package_sid: who
            .principal
            .package
            .as_ref()
            .map(|p| p.package_sid.to_string())
            .unwrap_or_default(),
        capability_sids: {
            let mut v: Vec<String> = who
                .principal
                .package
                .as_ref()
                .map(|p| p.capability_sids.iter().map(ToString::to_string).collect())
                .unwrap_or_default();
            v.sort();
            v
        },
        app_container: confined(who),
        user_sid: who.principal.user_sid().to_string(),
        pid: if server_confined { 0 } else { who.pid },
    }
}

fn describe(e: &Endpoint) -> String {
    if e.server_family.is_empty() {
        format!("an unpackaged process, pid {}", e.server_pid)
    } else {
        format!("{}, pid {}", e.server_family, e.server_pid)
    }
}
