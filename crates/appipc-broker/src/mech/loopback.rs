//! `loopback`: loopback isolation between packages (`uap4:LoopbackAccessRules`) and its
//! exemptions (`CheckNetIsolation LoopbackExempt`). Every loopback decision is
//! [`Operation::LoopbackConnect`], decided by `appipc_model::loopback`; this module gathers its
//! facts (what each package declares and was granted, which exemptions hold) and keeps the
//! persistent outbound exemptions in the store.

pub(crate) mod data_path;

use std::sync::Arc;

use appipc_model::identity::PackageFamilyName;
use appipc_model::loopback::{Connect, LoopbackEnd, PackageEnd, Transport};
use appipc_model::manifest::PRIVATE_NETWORK_CLIENT_SERVER;
use appipc_model::policy::{Decision, Operation};
use appipc_wire::protocol::loopback::{self as wire, LoopbackVerdict};

use crate::cx::{Cx, Replied};
use crate::error::{BrokerError, PackagesError};
use crate::mech::storage::store;
use crate::repository::InstalledPackage;

/// The facts about one installed package, as one end of a loopback connect.
pub(crate) struct EndFacts {
    package: Arc<InstalledPackage>,
    exempt: bool,
    /// An app container of it (`false`: a packaged full-trust process of it).
    confined: bool,
}

impl EndFacts {
    /// The package's end: an app container of it, or a full-trust process.
    pub(crate) fn end(&self) -> LoopbackEnd<'_> {
        LoopbackEnd::Package(PackageEnd {
            family_name: &self.package.family_name,
            confined: self.confined,
            capability: self
                .package
                .granted
                .iter()
                .any(|c| c.eq_ignore_ascii_case(PRIVATE_NETWORK_CLIENT_SERVER)),
            rules: &self.package.manifest.loopback_rules,
            exempt: self.exempt,
        })
    }
}

/// The installed package `family`, visible to the caller, or `NotInstalled`.
fn package(cx: &Cx<'_>, family: &str) -> Result<Arc<InstalledPackage>, BrokerError> {
    let found = cx.shared.repository.get(family);
    match found {
        Some(p) if cx.permits(Operation::QueryPackage { family_name: family }) => Ok(p),
        _ => Err(PackagesError::NotInstalled(format!("no package {family} is installed")).into()),
    }
}

/// What a connect between these two would be decided now (unrecorded).
async fn why(cx: &Cx<'_>, w: wire::Why) -> Result<LoopbackVerdict, BrokerError> {
    let facts = |family: String, outbound: bool, confined: bool| async move {
        if family.is_empty() {
            return Ok::<_, BrokerError>(None);
        }
        let package = package(cx, &family)?;
        // The outbound exemption counts for a client; the inbound one (serve-inbound) is not
        // kept in the store.
        let exempt = outbound && {
            let f = package.family_name.to_string();
            store(cx.shared, move |s| s.is_loopback_exempt(&f)).await?
        };
        Ok(Some(EndFacts { package, exempt, confined }))
    };
    let client = facts(w.client, true, w.client_full_trust != Some(true)).await?;
    let server = facts(w.server, false, true).await?;
    fn end(f: &Option<EndFacts>) -> LoopbackEnd<'_> {
        f.as_ref().map_or(LoopbackEnd::Unpackaged, EndFacts::end)
    }
    let connect = Connect {
        client: end(&client),
        server: end(&server),
        port: w.port,
        transport: Transport::Tcp,
    };
    let d: Decision = appipc_model::loopback::decide(&connect);
    let manifest = crate::decide::manifest_line(cx.shared, &d);
    Ok(LoopbackVerdict { allowed: d.allowed, rule: d.rule, remedy: d.remedy, manifest })
}

/// `serve-inbound`: an unpackaged client's connect to `family`'s listener on `port`, decided
/// with the inbound exemption in force (the asking process is the exemption), then a socket in
/// the package's namespace connected to it.
async fn inbound_connect(
    cx: &Cx<'_>,
    family: &str,
    port: u16,
) -> Result<std::os::fd::OwnedFd, BrokerError> {
    let server = EndFacts { package: package(cx, family)?, exempt: true, confined: true };
    let connect = Connect {
        client: LoopbackEnd::Unpackaged,
        server: server.end(),
        port: Some(port),
        transport: Transport::Tcp,
    };
    cx.enforce(Operation::LoopbackConnect(connect))?;
    data_path::connect_into(cx.shared, family, port).await.map_err(|e| {
        BrokerError::BadRequest(format!("connecting to {family}'s loopback port {port}: {e}"))
    })
}

/// A family name given to an exemption request, checked.
fn family(name: &str) -> Result<PackageFamilyName, BrokerError> {
    name.parse::<PackageFamilyName>()
        .map_err(|e| BrokerError::BadRequest(format!("{name:?} is not a package family name: {e}")))
}

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied, BrokerError> {
    use wire::Request as R;
    Ok(match r {
        R::Why(w) => Replied::of::<wire::Why>(why(&cx, w).await?),
        R::AddExemption(wire::AddExemption { package_family_name: name }) => {
            let f = family(&name)?.to_string();
            cx.enforce(Operation::ChangeLoopbackExemptions { family_name: &f })?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let added = store(cx.shared, move |s| s.add_loopback_exemption(&f, now)).await?;
            tracing::info!(caller = %cx.caller.describe(), family = %name, added, "loopback exemption added");
            Replied::of::<wire::AddExemption>(())
        }
        R::RemoveExemption(wire::RemoveExemption { package_family_name: name }) => {
            let f = family(&name)?.to_string();
            cx.enforce(Operation::ChangeLoopbackExemptions { family_name: &f })?;
            let was = store(cx.shared, move |s| s.remove_loopback_exemption(&f)).await?;
            Replied::of::<wire::RemoveExemption>(was)
        }
        R::ListExemptions(_) => {
            let all = store(cx.shared, |s| s.loopback_exemptions()).await?;
            let visible = all
                .into_iter()
                .filter(|f| cx.permits(Operation::QueryPackage { family_name: f }))
                .collect();
            Replied::of::<wire::ListExemptions>(visible)
        }
        R::InboundPorts(wire::InboundPorts { package_family_name: name }) => {
            let f = family(&name)?.to_string();
            cx.enforce(Operation::ChangeLoopbackExemptions { family_name: &f })?;
            Replied::of::<wire::InboundPorts>(data_path::inbound_ports(cx.shared, &f).await)
        }
        R::InboundConnect(wire::InboundConnect { package_family_name: name, port }) => {
            let f = family(&name)?.to_string();
            cx.enforce(Operation::ChangeLoopbackExemptions { family_name: &f })?;
            let fd = inbound_connect(&cx, &f, port).await?;
            Replied::with_fds::<wire::InboundConnect>((), vec![fd])
        }
        R::ClearExemptions(_) => {
            cx.enforce(Operation::ChangeLoopbackExemptions { family_name: "" })?;
            let n = store(cx.shared, |s| s.clear_loopback_exemptions()).await?;
            Replied::of::<wire::ClearExemptions>(n)
        }
    })
}
