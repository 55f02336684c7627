//! Protocol activation (`Windows.System.Launcher`): `LaunchUriAsync`, `LaunchUriForResultsAsync`,
//! `QueryUriSupportAsync`, `FindUriSchemeHandlersAsync`, and the target's side
//! (`ProtocolForResultsOperation.ReportCompleted`).
//!
//! The broker checks the URI once ([`Uri`]), resolves its scheme to a package's
//! `[[application.protocol]]`, lets the policy decide on what it found (so `appipc why` explains
//! every refusal), and activates the target application: its running instance if that
//! registered for activations (`RegisterForActivation`, single instance per application), else
//! a new process started with `APPIPC_ACTIVATION=protocol|protocolforresults` and
//! `APPIPC_ACTIVATION_ID`, which takes its activation (URI, data, the broker-attested caller)
//! with `TakeActivation`. A launch for results is an operation the broker holds: the caller's
//! request stays open until the target reports (`ReportCompleted`, once), the target exits
//! (then `Success` without a result), or the caller's session ends (then the target is told
//! `OperationCanceled`). Operations live in this broker's memory: a broker restart ends them
//! (see `docs/protocol.md`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appipc_model::identity::PackageFamilyName;
use appipc_model::manifest::{Application, Protocol};
use appipc_model::policy::{DESKTOP_SCHEMES, Operation, UriTarget, uri_support};
use appipc_sys::process::ExitStatus;
use appipc_wire::protocol::launcher::{
    self as wire, ACTIVATION_KIND_PROTOCOL, ACTIVATION_KIND_PROTOCOL_FOR_RESULTS, Activated,
    LaunchUriOutcome, MAX_PROTOCOL_DATA, OperationCanceled, ProtocolActivation, UriSchemeHandler,
};
use appipc_wire::status::{LaunchQuerySupportStatus, LaunchQuerySupportType, LaunchUriStatus};
use appipc_wire::uri::Uri;
use appipc_wire::valueset::ValueSet;
use tokio::sync::{oneshot, watch};

use crate::Shared;
use crate::activation::{self, Activation};
use crate::cx::{Cx, Replied};
pub use crate::error::ProtocolError;
use crate::outbox::Outbox;
use crate::repository::InstalledPackage;

pub(crate) mod desktop;

type Result<T, E = ProtocolError> = std::result::Result<T, E>;

/// How long a started process may take to be known to the broker before its `TakeActivation`
/// gives up.
const TAKE_WAIT: Duration = Duration::from_secs(10);

/// After the target of a launch for results exited, how long its session may take to end (so
/// that a report it sent just before is read) before the caller is answered without a result.
const SETTLE: Duration = Duration::from_millis(500);

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied> {
    use wire::Request as R;
    let p = &cx.shared.protocols;
    Ok(match r {
        R::LaunchUri(l) => Replied::of::<wire::LaunchUri>(p.launch(&cx, l).await?),
        R::QueryUriSupport(q) => Replied::of::<wire::QueryUriSupport>(query(
            cx.shared,
            &q.uri,
            q.kind,
            q.package_family_name,
        )?),
        R::FindUriSchemeHandlers(f) => {
            Replied::of::<wire::FindUriSchemeHandlers>(handlers(cx.shared, &f.scheme, f.kind))
        }
        R::TakeActivation(t) => {
            Replied::of::<wire::TakeActivation>(p.take(&cx, t.activation_id).await)
        }
        R::RegisterForActivation(_) => {
            p.register(&cx)?;
            Replied::of::<wire::RegisterForActivation>(())
        }
        R::ReportCompleted(c) => {
            p.report(&cx, c.operation_id, c.data)?;
            Replied::of::<wire::ReportCompleted>(())
        }
    })
}

/// A target that declares the scheme: the package, the application, the protocol, its key path.
type Found = (Arc<InstalledPackage>, usize, usize);

fn protocol_of(pkg: &InstalledPackage, scheme: &str) -> Option<(usize, usize)> {
    pkg.manifest.applications.iter().enumerate().find_map(|(i, a)| {
        a.protocols
            .iter()
            .position(|p| p.name.as_str().eq_ignore_ascii_case(scheme))
            .map(|j| (i, j))
    })
}

fn parts(found: &Found) -> (&Application, &Protocol, String) {
    let (pkg, i, j) = found;
    let app = &pkg.manifest.applications[*i];
    (app, &app.protocols[*j], format!("application[{i}].protocol[{j}]"))
}

/// What a launch of `scheme` finds: in the named package, or (none named) in the first installed
/// package, by family name, that declares the scheme for this kind of launch (else any that
/// declares it).
fn resolve(
    shared: &Shared,
    scheme: &str,
    named: Option<&str>,
    for_results: bool,
) -> Result<(Option<String>, UriTarget, Option<Found>)> {
    let pkg = match named {
        Some(n) => {
            let pfn: PackageFamilyName = n.parse().map_err(|e| {
                ProtocolError::BadRequest(format!(
                    "target package family name {n:?}: {e} (LauncherOptions.\
                     TargetApplicationPackageFamilyName must be a valid family name)"
                ))
            })?;
            shared.repository.get(pfn.as_str())
        }
        None => {
            let mut all: Vec<_> = shared
                .repository
                .all()
                .into_iter()
                .filter_map(|p| protocol_of(&p, scheme).map(|ij| (p, ij)))
                .collect();
            all.sort_by(|a, b| a.0.family_name.as_str().cmp(b.0.family_name.as_str()));
            let fits = |(p, (i, j)): &(Arc<InstalledPackage>, (usize, usize))| {
                let rr = p.manifest.applications[*i].protocols[*j].return_results;
                if for_results { rr.for_results() } else { rr.plain_launch() }
            };
            let pick = all.iter().position(fits).unwrap_or(0);
            all.into_iter().nth(pick).map(|(p, _)| p)
        }
    };
    let family = pkg.as_ref().map(|p| p.family_name.to_string()).or(named.map(str::to_owned));
    let Some(pkg) = pkg else {
        if named.is_none() && !for_results {
            let scheme_allowed = DESKTOP_SCHEMES.contains(&scheme);
            return Ok((None, UriTarget::Desktop { scheme_allowed }, None));
        }
        return Ok((family, UriTarget::NotInstalled, None));
    };
    if shared.repository.is_busy(pkg.family_name.as_str()) {
        return Ok((family, UriTarget::Deploying, None));
    }
    let Some((i, j)) = protocol_of(&pkg, scheme) else {
        return Ok((family, UriTarget::NoProtocol, None));
    };
    let found = (pkg, i, j);
    let (_, protocol, key) = parts(&found);
    let target = UriTarget::Declared { return_results: protocol.return_results, key };
    Ok((family, target, Some(found)))
}

fn parse_uri(uri: &str) -> Result<Uri> {
    Uri::parse(uri).map_err(|e| ProtocolError::BadRequest(e.to_string()))
}

fn check_size(data: Option<&ValueSet>, what: &str) -> Result<()> {
    let n = data.map_or(0, ValueSet::encoded_len);
    if n > MAX_PROTOCOL_DATA {
        return Err(ProtocolError::TooLarge(format!(
            "the {what} ValueSet is {n} bytes encoded, more than the {MAX_PROTOCOL_DATA} a \
             protocol activation carries; pass larger content as file tokens \
             (SharedStorageAccessManager) inside the ValueSet"
        )));
    }
    Ok(())
}

/// `QueryUriSupport`.
fn query(
    shared: &Shared,
    uri: &str,
    kind: LaunchQuerySupportType,
    named: Option<String>,
) -> Result<LaunchQuerySupportStatus> {
    let uri = parse_uri(uri)?;
    let for_results = kind == LaunchQuerySupportType::UriForResults;
    let (_, target, _) = resolve(shared, uri.scheme(), named.as_deref(), for_results)?;
    Ok(uri_support(&target, for_results))
}

/// `FindUriSchemeHandlers`.
fn handlers(shared: &Shared, scheme: &str, kind: LaunchQuerySupportType) -> Vec<UriSchemeHandler> {
    let for_results = kind == LaunchQuerySupportType::UriForResults;
    let mut out: Vec<UriSchemeHandler> = shared
        .repository
        .all()
        .into_iter()
        .filter_map(|p| {
            let (i, j) = protocol_of(&p, scheme)?;
            let app = &p.manifest.applications[i];
            let rr = app.protocols[j].return_results;
            let fits = if for_results { rr.for_results() } else { rr.plain_launch() };
            fits.then(|| UriSchemeHandler {
                package_family_name: p.family_name.to_string(),
                app_id: app.id.to_string(),
                display_name: p.manifest.properties.display_name.clone(),
                return_results: rr.as_str().to_owned(),
            })
        })
        .collect();
    out.sort_by(|a, b| a.package_family_name.cmp(&b.package_family_name));
    out
}

/// A started process's activation, until it takes it.
#[derive(Debug)]
struct Unclaimed {
    activation: ProtocolActivation,
    /// The process's pid once the broker knows it.
    pid: watch::Sender<Option<u32>>,
}

/// A launch for results in progress.
#[derive(Debug)]
struct Pending {
    /// The caller's session.
    caller_session: u64,
    /// The activated process (0 until it is known).
    target_pid: u32,
    /// The activated process's session, told when the operation is canceled.
    target: Option<Arc<Outbox>>,
    /// Completes the caller's request.
    done: Option<oneshot::Sender<Option<ValueSet>>>,
}

/// A running instance that receives its application's activations.
#[derive(Debug)]
struct Registered {
    session_id: u64,
    pid: u32,
    family: String,
    app_id: String,
    outbox: Arc<Outbox>,
}

#[derive(Debug, Default)]
struct State {
    unclaimed: HashMap<u64, Unclaimed>,
    pending: HashMap<u64, Pending>,
    registered: Vec<Registered>,
}

/// The broker's protocol-activation state.
#[derive(Debug)]
pub struct Protocols {
    state: Mutex<State>,
    next: AtomicU64,
}

impl Protocols {
    /// The state of a broker whose first id is `first` (ids never repeat across restarts).
    pub(crate) fn first_id(first: u64) -> Self {
        Protocols { state: Mutex::new(State::default()), next: AtomicU64::new(first) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("protocol state poisoned")
    }

    /// `LaunchUri`.
    async fn launch(&self, cx: &Cx<'_>, l: wire::LaunchUri) -> Result<LaunchUriOutcome> {
        let shared = cx.shared;
        let uri = parse_uri(&l.uri)?;
        let named = l.target_package_family_name.as_deref().filter(|s| !s.is_empty());
        let (family, target, found) = resolve(shared, uri.scheme(), named, l.for_results)?;
        cx.enforce(Operation::LaunchUri {
            scheme: uri.scheme(),
            target_family: family.as_deref(),
            target_named: named.is_some(),
            for_results: l.for_results,
            with_data: l.data.is_some(),
            target,
        })?;
        let Some(found) = found else {
            // The policy allows nothing else without a target package.
            return desktop::open(shared, &uri, cx.caller).await;
        };
        check_size(l.data.as_ref(), "input")?;
        let caller = cx.caller;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if l.for_results {
            let mut st = self.lock();
            let here =
                st.pending.values().filter(|p| p.caller_session == caller.session_id).count();
            let cap = shared.config.limits.launches_for_results_per_session;
            if here >= cap {
                return Err(ProtocolError::Quota(format!(
                    "this session waits for {here} launches for results, the most it may \
                     ([limits] launches-for-results-per-session)"
                )));
            }
            cx.session.ensure_open()?;
            let p = Pending {
                caller_session: caller.session_id,
                target_pid: 0,
                target: None,
                done: Some(tx),
            };
            st.pending.insert(id, p);
        }
        let activation = ProtocolActivation {
            kind: if l.for_results {
                ACTIVATION_KIND_PROTOCOL_FOR_RESULTS
            } else {
                ACTIVATION_KIND_PROTOCOL
            },
            uri: uri.to_string(),
            data: l.data,
            caller_package_family_name: caller.family_name_or_empty(),
            caller_pid: caller.pid,
            operation_id: l.for_results.then_some(id),
        };
        let (pid, exited) = match self.deliver(shared, &found, id, activation).await {
            Ok(d) => d,
            Err(e) => {
                self.lock().pending.remove(&id);
                return Err(e);
            }
        };
        let (_, protocol, _) = parts(&found);
        tracing::info!(uri = %uri.scheme(), target = %found.0.family_name, pid, for_results = l.for_results,
            protocol = %protocol.name, by = %caller.describe(), "protocol activation");
        if !l.for_results {
            return Ok(LaunchUriOutcome {
                status: LaunchUriStatus::Success,
                result: None,
                reported: false,
                target_pid: pid,
            });
        }
        Ok(self.wait(cx, id, pid, rx, exited).await)
    }

    /// Waits for a launch for results to end: the target's report, its exit, or the caller's
    /// session ending (then the target is told).
    async fn wait(
        &self,
        cx: &Cx<'_>,
        id: u64,
        pid: u32,
        rx: oneshot::Receiver<Option<ValueSet>>,
        mut exited: Option<watch::Receiver<Option<ExitStatus>>>,
    ) -> LaunchUriOutcome {
        let _interest = cx.session.interest();
        let exit = async {
            match exited.as_mut() {
                Some(e) => {
                    let _ = e.wait_for(|s| s.is_some()).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let outcome = |result, reported| LaunchUriOutcome {
            status: LaunchUriStatus::Success,
            result,
            reported,
            target_pid: pid,
        };
        let mut rx = rx;
        let caller_gone = tokio::select! {
            biased;
            r = &mut rx => {
                let reported = r.is_ok();
                return outcome(r.ok().flatten(), reported);
            }
            () = exit => None,
            why = cx.session.outbox.closed() => Some(why),
        };
        let target = self.lock().pending.get(&id).and_then(|p| p.target.clone());
        match caller_gone {
            None => {
                // A report the target sent just before it exited is read by the time its
                // session has ended: give that a moment, so that the report wins.
                if let Some(t) = &target {
                    let _ = tokio::time::timeout(SETTLE, t.closed()).await;
                }
                if let Ok(result) = rx.try_recv() {
                    return outcome(result, true);
                }
                self.lock().pending.remove(&id);
                tracing::info!(
                    operation = id,
                    pid,
                    "the target of a launch for results exited without reporting"
                );
                outcome(None, false)
            }
            Some(why) => {
                self.lock().pending.remove(&id);
                if let Some(t) = target {
                    let _ = t.event(OperationCanceled { operation_id: id }, Vec::new());
                }
                tracing::info!(operation = id, pid, %why, "the caller of a launch for results went away; operation canceled");
                outcome(None, false)
            }
        }
    }

    /// Activates the target: its registered running instance, else a new process. Returns the
    /// pid and, for a tracked process, its exit.
    async fn deliver(
        &self,
        shared: &Arc<Shared>,
        found: &Found,
        id: u64,
        activation: ProtocolActivation,
    ) -> Result<(u32, Option<watch::Receiver<Option<ExitStatus>>>)> {
        let (pkg, _, _) = found;
        let (app, _, _) = parts(found);
        let family = pkg.family_name.as_str().to_ascii_lowercase();
        let app_id = app.id.as_str().to_ascii_lowercase();
        let running: Vec<(u32, Arc<Outbox>)> = self
            .lock()
            .registered
            .iter()
            .filter(|r| r.family == family && r.app_id == app_id)
            .map(|r| (r.pid, r.outbox.clone()))
            .collect();
        for (pid, outbox) in running {
            let Some(record) = shared.processes.list().into_iter().find(|p| p.pid == pid) else {
                continue;
            };
            self.set_target(activation.operation_id, pid, Some(outbox.clone()));
            if outbox.event(Activated { activation: activation.clone() }, Vec::new()).is_ok() {
                return Ok((pid, Some(record.exited.clone())));
            }
        }
        let for_results = activation.operation_id.is_some();
        let how = if for_results { Activation::ProtocolForResults } else { Activation::Protocol };
        let (pid_tx, _) = watch::channel(None);
        self.lock().unclaimed.insert(id, Unclaimed { activation, pid: pid_tx });
        let mut start = activation::Start::app(pkg, app, how);
        start.activation_id = Some(id);
        let record = match activation::start_app(shared, start).await {
            Ok(r) => r,
            Err(e) => {
                self.lock().unclaimed.remove(&id);
                return Err(ProtocolError::Failed(format!("the target could not be started: {e}")));
            }
        };
        {
            let mut st = self.lock();
            if let Some(u) = st.unclaimed.get(&id) {
                u.pid.send_replace(Some(record.pid));
            }
            if let Some(p) = st.pending.get_mut(&id) {
                p.target_pid = record.pid;
            }
        }
        Ok((record.pid, Some(record.exited.clone())))
    }

    fn set_target(&self, operation: Option<u64>, pid: u32, outbox: Option<Arc<Outbox>>) {
        let Some(id) = operation else { return };
        if let Some(p) = self.lock().pending.get_mut(&id) {
            p.target_pid = pid;
            p.target = outbox;
        }
    }

    /// `TakeActivation`: the activation this process was started for, once; `None` for any
    /// other caller.
    async fn take(&self, cx: &Cx<'_>, id: u64) -> Option<ProtocolActivation> {
        let mut rx = self.lock().unclaimed.get(&id)?.pid.subscribe();
        let pid = tokio::time::timeout(TAKE_WAIT, rx.wait_for(Option::is_some))
            .await
            .ok()?
            .ok()?
            .unwrap_or(0);
        if pid != cx.caller.pid {
            tracing::warn!(activation = id, by = %cx.caller.describe(), "a process asked for another's activation");
            return None;
        }
        let mut st = self.lock();
        let u = st.unclaimed.remove(&id)?;
        if let Some(p) = st.pending.get_mut(&id) {
            p.target = Some(cx.session.outbox.clone());
        }
        Some(u.activation)
    }

    /// `RegisterForActivation`.
    fn register(&self, cx: &Cx<'_>) -> Result<()> {
        let caller = cx.caller;
        let p = caller.principal.package.as_ref();
        let declares = p
            .and_then(|p| {
                let pkg = cx.shared.repository.get(p.family_name.as_str())?;
                let app = pkg.manifest.application(p.app_id.as_str())?;
                Some(!app.protocols.is_empty())
            })
            .unwrap_or(false);
        cx.enforce(Operation::RegisterForProtocolActivation { declares_protocol: declares })?;
        let Some(p) = p else { unreachable!("the policy allows only a packaged process") };
        let mut st = self.lock();
        cx.session.ensure_open()?;
        st.registered.retain(|r| r.session_id != caller.session_id);
        st.registered.push(Registered {
            session_id: caller.session_id,
            pid: caller.pid,
            family: p.family_name.as_str().to_ascii_lowercase(),
            app_id: p.app_id.as_str().to_ascii_lowercase(),
            outbox: cx.session.outbox.clone(),
        });
        Ok(())
    }

    /// `ReportCompleted`.
    fn report(&self, cx: &Cx<'_>, id: u64, data: Option<ValueSet>) -> Result<()> {
        let target = self.lock().pending.get(&id).map(|p| p.target_pid);
        cx.enforce(Operation::ReportProtocolResult {
            operation_id: id,
            activated_caller: target.is_some_and(|pid| pid != 0 && pid == cx.caller.pid),
        })?;
        check_size(data.as_ref(), "result")?;
        let done = self.lock().pending.remove(&id).and_then(|mut p| p.done.take());
        match done.map(|tx| tx.send(data)) {
            Some(Ok(())) => Ok(()),
            _ => Err(ProtocolError::NotPending(format!(
                "operation {id} ended before the report (its caller went away)"
            ))),
        }
    }

    /// A session ended: it receives no more activations.
    pub(crate) fn session_closed(&self, session_id: u64) {
        self.lock().registered.retain(|r| r.session_id != session_id);
    }

    /// A process exited: its activation, if it never took it, goes.
    pub(crate) fn process_exited(&self, pid: u32) {
        let mut st = self.lock();
        st.registered.retain(|r| r.pid != pid);
        st.unclaimed.retain(|_, u| *u.pid.borrow() != Some(pid));
    }
}
