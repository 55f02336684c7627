//! One broker session: a socket whose identity the broker fixed when it was created, and the
//! requests that arrive on it.
//!
//! A session's identity comes from the kernel (`SO_PEERCRED` on the public socket) or from
//! the fact that the broker created the socket for a process it launched. Nothing a client
//! writes can change it.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use appipc_model::identity::{AppId, AppUserModelId, PackageFamilyName};
use appipc_model::policy::{self, Caller, Operation};
use appipc_model::sid;
use appipc_sys::aio::AsyncSeqPacket;
use appipc_wire::app_service::BackgroundTaskCancellationReason;
use appipc_wire::protocol::{
    CallerIdentity, ErrorCode, ErrorReply, Event, Frame, MAX_FRAME_LEN, PROTOCOL_VERSION, Reply,
    Request, TrustLevel,
};

use crate::Shared;
use crate::error::{BrokerError, Result};

/// The package side of an identity.
#[derive(Debug, Clone)]
pub struct PackageIdentity {
    /// Package full name.
    pub full_name: String,
    /// Package family name.
    pub family_name: String,
    /// Application id.
    pub app_id: String,
    /// Trust level (never `Unpackaged`).
    pub trust: TrustLevel,
    /// Declared capabilities.
    pub capabilities: Vec<String>,
}

/// Who is behind a session.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The broker's id for this session (in logs).
    pub session_id: u64,
    /// pid of the process the session belongs to.
    pub pid: u32,
    /// uid.
    pub uid: u32,
    /// `None` for an unpackaged process.
    pub package: Option<PackageIdentity>,
}

impl Identity {
    /// The trust level.
    pub fn trust(&self) -> TrustLevel {
        self.package.as_ref().map(|p| p.trust).unwrap_or(TrustLevel::Unpackaged)
    }

    /// The policy view of this identity.
    pub fn caller(&self) -> Caller<'_> {
        match &self.package {
            None => Caller::UNPACKAGED,
            Some(p) => Caller {
                family_name: Some(&p.family_name),
                trust: p.trust,
                capabilities: &p.capabilities,
            },
        }
    }

    /// Short description for logs.
    pub fn describe(&self) -> String {
        match &self.package {
            None => format!("unpackaged pid {}", self.pid),
            Some(p) => {
                format!("{}!{} pid {} ({})", p.family_name, p.app_id, self.pid, p.trust.as_str())
            }
        }
    }

    fn attest(&self) -> CallerIdentity {
        let p = self.package.as_ref();
        CallerIdentity {
            pid: self.pid,
            uid: self.uid,
            package_full_name: p.map(|p| p.full_name.clone()),
            package_family_name: p.map(|p| p.family_name.clone()),
            app_id: p.map(|p| p.app_id.clone()),
            trust: self.trust(),
            capabilities: p.map(|p| p.capabilities.clone()).unwrap_or_default(),
            package_sid: p.map(|p| sid::appcontainer_sid(&p.family_name).to_string()),
            capability_sids: p
                .map(|p| {
                    p.capabilities.iter().map(|c| sid::capability_sid(c).to_string()).collect()
                })
                .unwrap_or_default(),
            session_id: self.session_id,
        }
    }
}

/// Checks one operation, logs the decision with its reason, and turns a refusal into an
/// error.
pub(crate) fn check(identity: &Identity, op: Operation<'_>) -> Result<()> {
    let d = policy::decide(&identity.caller(), &op);
    if d.allowed {
        tracing::debug!(caller = %identity.describe(), operation = ?op, reason = %d.reason, "allowed");
        Ok(())
    } else {
        tracing::info!(caller = %identity.describe(), operation = ?op, reason = %d.reason, "denied");
        Err(BrokerError::AccessDenied(d.reason))
    }
}

/// Requests one session may have in progress at once.
const MAX_IN_FLIGHT: usize = 64;

/// Serves one session until the peer closes it or breaks the protocol.
pub(crate) async fn serve(shared: Arc<Shared>, sock: OwnedFd, identity: Identity) {
    let sock = match AsyncSeqPacket::new(sock) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!(session = identity.session_id, error = %e, "cannot register session socket");
            return;
        }
    };
    let identity = Arc::new(identity);
    // Requests run concurrently, but a client that floods the broker waits for its own
    // earlier requests instead of growing the broker without bound.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    tracing::debug!(session = identity.session_id, caller = %identity.describe(), "session opened");
    let reason = loop {
        let packet = tokio::select! {
            r = sock.recv(MAX_FRAME_LEN + 1) => r,
            () = shared.stopping.cancelled() => break "broker stopping".to_owned(),
        };
        let packet = match packet {
            Ok(Some(p)) => p,
            Ok(None) => break "peer closed the session".to_owned(),
            Err(e) => break format!("receive failed: {e}"),
        };
        if packet.truncated || packet.data.len() > MAX_FRAME_LEN {
            break format!(
                "protocol violation: frame of {} bytes exceeds the limit of {MAX_FRAME_LEN}",
                packet.full_len
            );
        }
        if packet.fds_truncated {
            break "protocol violation: too many fds in one message".to_owned();
        }
        let frame = match Frame::from_cbor(&packet.data) {
            Ok(f) => f,
            Err(e) => break format!("protocol violation: {e}"),
        };
        if frame.reply.is_some() || frame.event.is_some() || frame.id == 0 {
            break "protocol violation: a client sent a reply, an event or request id 0".to_owned();
        }
        let id = frame.id;
        let Some(request) = frame.request else {
            let reply = Reply::Error(ErrorReply {
                code: ErrorCode::Unsupported,
                message: "this broker does not know that request (a newer client?)".into(),
            });
            send(&sock, id, reply, Vec::new()).await;
            continue;
        };
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break "request limiter closed".to_owned();
        };
        let shared = shared.clone();
        let sock = sock.clone();
        let identity = identity.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let name = request_name(&request);
            let (reply, fds) = match handle(&shared, &identity, &sock, request, packet.fds).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::info!(caller = %identity.describe(), request = name, error = %e, "request failed");
                    (Reply::Error(e.to_reply()), Vec::new())
                }
            };
            send(&sock, id, reply, fds).await;
        });
    };
    shared.app_services.session_closed(identity.session_id);
    shared.named_objects.session_closed(identity.session_id);
    shared.pipes.session_closed(identity.session_id);
    tracing::debug!(session = identity.session_id, caller = %identity.describe(), %reason, "session closed");
    if reason.starts_with("protocol violation") || reason.starts_with("receive failed") {
        tracing::warn!(session = identity.session_id, caller = %identity.describe(), %reason, "closing session");
    }
}

async fn send(sock: &AsyncSeqPacket, id: u64, reply: Reply, fds: Vec<OwnedFd>) {
    let bytes = Frame::reply(id, reply).to_cbor();
    let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    if let Err(e) = sock.send(&bytes, &borrowed).await {
        tracing::debug!(error = %e, "cannot send reply (peer gone?)");
    }
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::Ping => "ping",
        Request::WhoAmI => "who-am-i",
        Request::Install { .. } => "install",
        Request::ListPackages => "list-packages",
        Request::Remove { .. } => "remove",
        Request::Launch { .. } => "launch",
        Request::OpenSession => "open-session",
        Request::ListProcesses => "list-processes",
        Request::Shutdown => "shutdown",
        Request::OpenAppService { .. } => "open-app-service",
        Request::RegisterAppServiceHost { .. } => "register-app-service-host",
        Request::AppServiceConnectionClosed { .. } => "app-service-connection-closed",
        Request::FindAppServiceProviders { .. } => "find-app-service-providers",
        Request::ListAppServices => "list-app-services",
        Request::LaunchFullTrustProcess { .. } => "launch-full-trust-process",
        Request::GetPublisherCacheFolder { .. } => "get-publisher-cache-folder",
        Request::ClearPublisherCacheFolder { .. } => "clear-publisher-cache-folder",
        Request::ListPublisherCaches => "list-publisher-caches",
        Request::AddFileToken => "add-file-token",
        Request::RedeemFileToken { .. } => "redeem-file-token",
        Request::RemoveFileToken { .. } => "remove-file-token",
        Request::ListFileTokens => "list-file-tokens",
        Request::CreateNamedObject { .. } => "create-named-object",
        Request::OpenNamedObject { .. } => "open-named-object",
        Request::CloseNamedObject { .. } => "close-named-object",
        Request::ListNamedObjects => "list-named-objects",
        Request::GetNamedObjectPath { .. } => "get-named-object-path",
        Request::CreatePipeInstance { .. } => "create-pipe-instance",
        Request::DisconnectPipeInstance { .. } => "disconnect-pipe-instance",
        Request::OpenPipe { .. } => "open-pipe",
        Request::WaitNamedPipe { .. } => "wait-named-pipe",
    }
}

fn no_fds(fds: &[OwnedFd], what: &str) -> Result<()> {
    if fds.is_empty() {
        Ok(())
    } else {
        Err(BrokerError::BadRequest(format!("{what} takes no fds, {} attached", fds.len())))
    }
}

async fn handle(
    shared: &Arc<Shared>,
    identity: &Arc<Identity>,
    sock: &Arc<AsyncSeqPacket>,
    request: Request,
    fds: Vec<OwnedFd>,
) -> Result<(Reply, Vec<OwnedFd>)> {
    if !matches!(
        request,
        Request::Launch { .. } | Request::AddFileToken | Request::CreateNamedObject { .. }
    ) {
        no_fds(&fds, request_name(&request))?;
    }
    let reply = match request {
        Request::Ping => Reply::Pong {
            protocol: PROTOCOL_VERSION,
            broker_pid: appipc_sys::cred::current_pid(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        },
        Request::WhoAmI => Reply::Identity(identity.attest()),
        Request::Install { path } => {
            check(identity, Operation::InstallPackage)?;
            let registry = shared.clone();
            let (pkg, outcome, replaced) = tokio::task::spawn_blocking(move || {
                registry.registry.install(std::path::Path::new(&path))
            })
            .await
            .map_err(|e| BrokerError::io("install task", std::io::Error::other(e.to_string())))??;
            crate::storage::provision(shared, &pkg)?;
            if outcome == appipc_wire::protocol::InstallOutcome::Upgraded {
                shared
                    .app_services
                    .cancel_family(
                        shared,
                        pkg.family_name.as_str(),
                        BackgroundTaskCancellationReason::ServicingUpdate,
                    )
                    .await;
            }
            Reply::Installed {
                full_name: pkg.full_name.to_string(),
                family_name: pkg.family_name.to_string(),
                outcome,
                replaced,
            }
        }
        Request::ListPackages => Reply::Packages(
            shared
                .registry
                .all()
                .into_iter()
                .filter(|p| {
                    policy::decide(
                        &identity.caller(),
                        &Operation::QueryPackage { family_name: p.family_name.as_str() },
                    )
                    .allowed
                })
                .map(|p| p.info())
                .collect(),
        ),
        Request::Remove { family_name } => {
            let family: PackageFamilyName =
                family_name.parse().map_err(|e| BrokerError::BadRequest(format!("{e}")))?;
            check(identity, Operation::RemovePackage { family_name: family.as_str() })?;
            if shared.registry.get(family.as_str()).is_none() {
                return Err(BrokerError::NotFound(format!("package {family} is not installed")));
            }
            let guard = shared.registry.begin_deployment(family.as_str())?;
            shared
                .app_services
                .cancel_family(shared, family.as_str(), BackgroundTaskCancellationReason::Uninstall)
                .await;
            let stopped = shared.processes.stop_family(family.as_str()).await;
            let registry = shared.clone();
            let fam = family.to_string();
            let pkg = tokio::task::spawn_blocking(move || registry.registry.remove(&fam, guard))
                .await
                .map_err(|e| {
                    BrokerError::io("remove task", std::io::Error::other(e.to_string()))
                })??;
            crate::storage::release_if_last(shared, &pkg.family_name.publisher_id());
            Reply::Removed { full_name: pkg.full_name.to_string(), stopped_processes: stopped }
        }
        Request::Launch { target, args, stdio, notify_exit } => {
            return launch(shared, identity, sock, &target, args, stdio, notify_exit, fds).await;
        }
        Request::OpenSession => {
            let (mine, theirs) = appipc_sys::socket::seqpacket_pair()
                .map_err(|e| BrokerError::io("creating a session socket pair", e))?;
            let mut child = (**identity).clone();
            child.session_id = shared.next_session_id();
            shared.adopt_session(mine, child);
            return Ok((Reply::Session, vec![theirs]));
        }
        Request::ListProcesses => Reply::Processes(
            shared
                .processes
                .list()
                .into_iter()
                .filter(|p| {
                    policy::decide(
                        &identity.caller(),
                        &Operation::QueryPackage { family_name: &p.family_name },
                    )
                    .allowed
                })
                .map(|p| p.info())
                .collect(),
        ),
        Request::OpenAppService { package_family_name, app_service_name } => {
            return shared
                .app_services
                .open(shared, identity, &package_family_name, &app_service_name)
                .await;
        }
        Request::RegisterAppServiceHost { app_service_name } => {
            shared.app_services.register(shared, identity, sock, &app_service_name)?
        }
        Request::AppServiceConnectionClosed { connection_id } => {
            shared.app_services.connection_closed(shared, identity, connection_id)?
        }
        Request::FindAppServiceProviders { app_service_name } => {
            shared.app_services.find_providers(shared, &app_service_name)
        }
        Request::ListAppServices => shared.app_services.list(shared, identity),
        Request::GetPublisherCacheFolder { name } => {
            crate::storage::get_folder(shared, identity, &name)?
        }
        Request::ClearPublisherCacheFolder { name, publisher_id } => {
            crate::storage::clear_folder(shared, identity, &name, publisher_id.as_deref())?
        }
        Request::ListPublisherCaches => crate::storage::list_folders(shared, identity),
        Request::AddFileToken => {
            let mut fds = fds;
            if fds.len() != 1 {
                return Err(BrokerError::BadRequest(format!(
                    "add-file-token takes the file as one fd, {} attached",
                    fds.len()
                )));
            }
            shared.tokens.add(shared, identity, fds.remove(0))?
        }
        Request::RedeemFileToken { token } => {
            return shared.tokens.redeem(shared, identity, &token);
        }
        Request::RemoveFileToken { token } => shared.tokens.remove(shared, identity, &token)?,
        Request::ListFileTokens => shared.tokens.list(shared, identity)?,
        Request::CreateNamedObject { kind, name, sddl } => {
            return shared.named_objects.create(identity, kind, &name, sddl.as_deref(), fds);
        }
        Request::OpenNamedObject { object_type, name, desired_access } => {
            return shared.named_objects.open(identity, object_type, &name, desired_access);
        }
        Request::CloseNamedObject { handle } => shared.named_objects.close(identity, handle)?,
        Request::ListNamedObjects => shared.named_objects.list(identity),
        Request::CreatePipeInstance { name, message_mode, direction, max_instances, sddl } => {
            shared.pipes.create_instance(
                identity,
                sock,
                &name,
                message_mode,
                direction,
                max_instances,
                sddl.as_deref(),
            )?
        }
        Request::DisconnectPipeInstance { instance } => {
            shared.pipes.disconnect(identity, instance)?
        }
        Request::OpenPipe { name, desired_access } => {
            return shared.pipes.open(identity, &name, desired_access).await;
        }
        Request::WaitNamedPipe { name, timeout_ms } => {
            shared.pipes.wait(identity, &name, timeout_ms).await?
        }
        Request::GetNamedObjectPath { package_family_name } => {
            let pfn: PackageFamilyName =
                package_family_name.parse().map_err(|e| BrokerError::BadRequest(format!("{e}")))?;
            Reply::Path(appipc_model::named_objects::named_object_path(pfn.as_str()))
        }
        Request::LaunchFullTrustProcess { app_id, parameter_group, arguments } => {
            crate::full_trust::launch(shared, identity, app_id, parameter_group, arguments).await
        }
        Request::Shutdown => {
            check(identity, Operation::Shutdown)?;
            tracing::info!(caller = %identity.describe(), "shutdown requested");
            shared.stopping.cancel();
            Reply::Ok
        }
    };
    Ok((reply, Vec::new()))
}

/// Parses `PFN` or `PFN!AppId`.
fn parse_target(target: &str) -> Result<(PackageFamilyName, Option<AppId>)> {
    if target.contains('!') {
        let aumid: AppUserModelId =
            target.parse().map_err(|e| BrokerError::BadRequest(format!("launch target: {e}")))?;
        Ok((aumid.family_name, Some(aumid.app_id)))
    } else {
        let pfn: PackageFamilyName =
            target.parse().map_err(|e| BrokerError::BadRequest(format!("launch target: {e}")))?;
        Ok((pfn, None))
    }
}

#[allow(clippy::too_many_arguments)] // the fields of Request::Launch plus the session's context
async fn launch(
    shared: &Arc<Shared>,
    identity: &Arc<Identity>,
    sock: &Arc<AsyncSeqPacket>,
    target: &str,
    args: Vec<String>,
    stdio: bool,
    notify_exit: bool,
    fds: Vec<OwnedFd>,
) -> Result<(Reply, Vec<OwnedFd>)> {
    let (family, app_id) = parse_target(target)?;
    check(identity, Operation::Launch { family_name: family.as_str() })?;
    let expected = if stdio { 3 } else { 0 };
    if fds.len() != expected {
        return Err(BrokerError::BadRequest(format!(
            "launch with stdio={stdio} takes {expected} fds, {} attached",
            fds.len()
        )));
    }
    let Some(pkg) = shared.registry.get(family.as_str()) else {
        return Err(BrokerError::NotFound(format!("package {family} is not installed")));
    };
    if shared.registry.is_busy(family.as_str()) {
        return Err(BrokerError::Busy(format!("package {family} is being deployed; try again")));
    }
    let Some(app) = pkg.application(app_id.as_ref()) else {
        return Err(BrokerError::NotFound(format!(
            "package {family} has no application {}",
            app_id.map(|a| a.to_string()).unwrap_or_default()
        )));
    };
    let stdio = if stdio {
        let mut it = fds.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(i), Some(o), Some(e)) => Some([i, o, e]),
            _ => unreachable!("three fds were checked above"),
        }
    } else {
        None
    };
    let mut start = crate::activation::Start::app(&pkg, app, crate::activation::Activation::Launch);
    start.args = args;
    start.stdio = stdio;
    let record = crate::activation::start_app(shared, start).await?;
    let (pid, aumid) = (record.pid, record.aumid.clone());
    tracing::info!(app = %aumid, pid, by = %identity.describe(), "launched on request");
    if notify_exit {
        let sock = sock.clone();
        let mut exited = record.exited.clone();
        tokio::spawn(async move {
            let status = exited.wait_for(|s| s.is_some()).await.ok().and_then(|s| *s);
            if let Some(s) = status {
                let frame =
                    Frame::event(Event::ProcessExited { pid, code: s.code, signal: s.signal });
                let _ = sock.send(&frame.to_cbor(), &[]).await;
            }
        });
    }
    Ok((Reply::Launched { pid, app_user_model_id: aumid }, Vec::new()))
}
