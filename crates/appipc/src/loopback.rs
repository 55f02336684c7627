//! Loopback isolation between packages (`uap4:LoopbackAccessRules`) and its exemptions
//! (`CheckNetIsolation.exe LoopbackExempt`).
//!
//! App containers of different packages reach each other over 127.0.0.1 / `::1` only when both
//! were granted `privateNetworkClientServer`, the client declares an `out` rule naming the
//! server's family and the server an `in` rule naming the client's; a packaged full-trust
//! process reaches an app container of another package when that package was granted
//! `privateNetworkClientServer` and its `in` rule names the client's family. [`why`] (and
//! [`why_full_trust`]) asks the broker how a connect between two packages would be decided;
//! the exemption calls are the user's `LoopbackExempt -a` / `-d` / `-s` / `-c`.

pub use appipc_wire::protocol::loopback::LoopbackVerdict;
use appipc_wire::protocol::loopback::{
    AddExemption, ClearExemptions, InboundConnect, InboundPorts, ListExemptions, RemoveExemption,
    Why,
};

use crate::error::Result;
use crate::session::Session;

/// How a TCP connect from an app container of `client` to a listener of `server` on loopback
/// (`port`, if given) would be decided now; `None` for an unpackaged process on that side.
pub async fn why(
    session: &Session,
    client: Option<&str>,
    server: Option<&str>,
    port: Option<u16>,
) -> Result<LoopbackVerdict> {
    session
        .call(Why {
            client: client.unwrap_or_default().to_owned(),
            server: server.unwrap_or_default().to_owned(),
            port,
            client_full_trust: None,
        })
        .await
}

/// How a TCP connect from a packaged full-trust process of `client` to an app container's
/// listener of `server` on loopback (`port`, if given) would be decided now.
pub async fn why_full_trust(
    session: &Session,
    client: &str,
    server: &str,
    port: Option<u16>,
) -> Result<LoopbackVerdict> {
    session
        .call(Why {
            client: client.to_owned(),
            server: server.to_owned(),
            port,
            client_full_trust: Some(true),
        })
        .await
}

/// `LoopbackExempt -a -n=PFN`: lets the package connect out to loopback listeners that are not
/// in an app container; kept across broker restarts.
pub async fn add_exemption(session: &Session, family_name: &str) -> Result<()> {
    session.call(AddExemption { package_family_name: family_name.to_owned() }).await
}

/// `LoopbackExempt -d -n=PFN`; whether the package was exempt.
pub async fn remove_exemption(session: &Session, family_name: &str) -> Result<bool> {
    session.call(RemoveExemption { package_family_name: family_name.to_owned() }).await
}

/// `LoopbackExempt -s`: the exempt families, sorted.
pub async fn exemptions(session: &Session) -> Result<Vec<String>> {
    session.call(ListExemptions {}).await
}

/// `LoopbackExempt -is`: the loopback TCP ports the package's app containers listen on now.
pub async fn inbound_ports(session: &Session, family_name: &str) -> Result<Vec<u16>> {
    session.call(InboundPorts { package_family_name: family_name.to_owned() }).await
}

/// `LoopbackExempt -is`: a TCP socket in the package's network namespace, connected to its
/// listener on `port`, for an unpackaged client (the caller relays it).
pub async fn inbound_connect(
    session: &Session,
    family_name: &str,
    port: u16,
) -> Result<std::os::fd::OwnedFd> {
    let call = InboundConnect { package_family_name: family_name.to_owned(), port };
    let ((), mut fds) = session.call_with_fds(call, &[]).await?;
    fds.pop().ok_or_else(|| {
        crate::error::Error::Protocol("InboundConnect: the reply carried no socket".into())
    })
}

/// `LoopbackExempt -c`; how many exemptions there were.
pub async fn clear_exemptions(session: &Session) -> Result<u32> {
    session.call(ClearExemptions {}).await
}
