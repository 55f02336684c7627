//! App services: the broker's control-plane half.
//!
//! `OpenAppService` resolves the provider (`AppNotInstalled`, `AppUnavailable`,
//! `AppServiceUnavailable`, `NotAuthorized`), finds or starts a host process (the service's
//! entry point out of process, or the declaring application in process, started in the
//! background), waits until that process registers as host, creates a `SOCK_SEQPACKET` pair,
//! sends one end to the host with the broker-attested caller details and returns the other to
//! the client. From then on the two talk directly; the broker only hears from the host when a
//! connection ends. It stops an out-of-process host it started as soon as that serves no
//! connection (`Canceled(Abort)`: on Windows a client's dispose cancels the background task that
//! served it, and a task host with no task left ends), and an application it started in the
//! background for an in-process service after the idle timeout (`Canceled(IdleTask)`); either
//! is killed after a grace period if it does not exit.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appipc_model::identity::PackageFamilyName;
use appipc_model::manifest::{AppService, Application};
use appipc_model::policy::{Operation, ServiceTarget};
use appipc_wire::app_service::DEFAULT_MAX_MESSAGE_SIZE;
use appipc_wire::protocol::app_service::{
    self as wire, AppServiceConnectionInfo, AppServiceList, AppServiceProviderInfo, Canceled,
    DeclaredAppService, IncomingConnection, Opened,
};
use appipc_wire::status::BackgroundTaskCancellationReason;
use tokio::sync::oneshot;

use crate::Shared;
use crate::activation::{self, Activation};
use crate::cx::{Cx, Replied};
use crate::error::{AppServiceError, InternalError};
use crate::outbox::{Outbox, Undeliverable};
use crate::repository::InstalledPackage;

type Result<T, E = AppServiceError> = std::result::Result<T, E>;

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied> {
    use wire::Request as R;
    let apps = &cx.shared.app_services;
    Ok(match r {
        R::Open(o) => {
            let (opened, fd) =
                apps.open(&cx, &o.package_family_name, &o.app_service_name, o.user).await?;
            Replied::with_fds::<wire::Open>(opened, vec![fd])
        }
        R::RegisterHost(h) => {
            apps.register(&cx, &h.app_service_name, h.serving.as_deref().unwrap_or_default())?;
            Replied::of::<wire::RegisterHost>(())
        }
        R::ConnectionClosed(c) => {
            apps.connection_closed(&cx, c.connection_id)?;
            Replied::of::<wire::ConnectionClosed>(())
        }
        R::FindProviders(f) => {
            Replied::of::<wire::FindProviders>(apps.find_providers(cx.shared, &f.app_service_name))
        }
        R::List(_) => Replied::of::<wire::List>(apps.list(&cx)),
    })
}

/// Timings, from the environment (milliseconds) with Windows' defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// An idle host the broker started is canceled after this (`APPIPC_APP_SERVICE_IDLE_MS`,
    /// default 30 s as Windows).
    pub idle: Duration,
    /// A canceled host is killed after this (`APPIPC_APP_SERVICE_GRACE_MS`, default 5 s).
    pub grace: Duration,
    /// A started host must register within this (`APPIPC_APP_SERVICE_START_MS`, default 10 s).
    pub start: Duration,
}

impl Timings {
    fn from_env() -> Timings {
        let ms = |k: &str, d: u64| {
            Duration::from_millis(std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d))
        };
        Timings {
            idle: ms("APPIPC_APP_SERVICE_IDLE_MS", 30_000),
            grace: ms("APPIPC_APP_SERVICE_GRACE_MS", 5_000),
            start: ms("APPIPC_APP_SERVICE_START_MS", 10_000),
        }
    }
}

/// A process that registered as the host of one app service.
#[derive(Debug)]
struct Host {
    session_id: u64,
    pid: u32,
    family: String,
    service: String,
    sock: Arc<Outbox>,
    /// Started by the broker for a service (out of process, or in process in the background):
    /// stopped when idle.
    stoppable: bool,
    /// The service's own host process (an entry point), not an application: stopped as soon
    /// as it serves no connection, as Windows ends a background task host whose tasks ended.
    out_of_process: bool,
    active: AtomicUsize,
    generation: AtomicU64,
    canceled: AtomicBool,
    /// Connections it served before the broker restarted (it said so when it registered
    /// again): counted in `active` until it reports them closed.
    served_before: Mutex<HashSet<u64>>,
}

#[derive(Debug)]
struct Waiter {
    family: String,
    service: String,
    pid: Option<u32>,
    tx: oneshot::Sender<Arc<Host>>,
}

#[derive(Debug, Default)]
struct State {
    hosts: Vec<Arc<Host>>,
    waiters: Vec<Waiter>,
    /// connection id → (its listing, its host, the session of the caller that opened it).
    connections: HashMap<u64, (AppServiceConnectionInfo, Arc<Host>, u64)>,
    started_for_service: HashSet<u32>,
    /// Hosts a broker before this one started and this one adopted, until they register again
    /// (or exit): an opener waits for them rather than starting a second host.
    returning: Vec<Returning>,
}

/// An adopted process started for `service` of `family` that has not registered again yet.
#[derive(Debug)]
struct Returning {
    family: String,
    service: String,
    pid: u32,
    exited: tokio::sync::watch::Receiver<Option<appipc_sys::process::ExitStatus>>,
}

/// The broker's app-service state.
#[derive(Debug)]
pub struct AppServices {
    state: Mutex<State>,
    next_connection: AtomicU64,
    timings: Timings,
    /// Account names by uid (NSS), looked up once.
    user_names: Mutex<HashMap<u32, Option<String>>>,
}

impl AppServices {
    /// The state of a broker whose first connection id is `first` (ids never repeat across
    /// restarts: a host that registers again names the connections it still serves).
    pub(crate) fn first_connection(first: u64) -> Self {
        AppServices {
            state: Mutex::new(State::default()),
            next_connection: AtomicU64::new(first),
            timings: Timings::from_env(),
            user_names: Mutex::new(HashMap::new()),
        }
    }
}

fn lc(s: &str) -> String {
    s.to_ascii_lowercase()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The service declaration, the application that declares it, and its key path in the
/// manifest.
fn find_service<'a>(
    pkg: &'a InstalledPackage,
    name: &str,
) -> Option<(&'a Application, &'a AppService, String)> {
    pkg.manifest.applications.iter().enumerate().find_map(|(i, app)| {
        app.app_services
            .iter()
            .enumerate()
            .find(|(_, s)| s.name.as_str().eq_ignore_ascii_case(name))
            .map(|(j, s)| (app, s, format!("application[{i}].app-service[{j}]")))
    })
}

impl AppServices {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("app service state poisoned")
    }

    /// `OpenAppService`: the policy decides on what the broker found; then a host is found or
    /// started and handed its end. `user` is `AppServiceConnection.User` as the caller set it.
    pub(crate) async fn open(
        &self,
        cx: &Cx<'_>,
        family: &str,
        name: &str,
        user: Option<u32>,
    ) -> Result<(Opened, OwnedFd)> {
        let shared = cx.shared;
        let caller = cx.caller;
        let pkg = family
            .parse::<PackageFamilyName>()
            .ok()
            .and_then(|pfn| shared.repository.get(pfn.as_str()));
        let found = pkg.as_ref().and_then(|p| find_service(p, name));
        let target = match (&pkg, &found) {
            (None, _) => ServiceTarget::NotInstalled,
            (Some(p), _) if shared.repository.is_busy(p.family_name.as_str()) => {
                ServiceTarget::Deploying
            }
            (Some(_), None) => ServiceTarget::NotDeclared,
            (Some(_), Some((_, s, key))) => ServiceTarget::Declared {
                allows_unpackaged: s.allow_unpackaged_callers,
                key: key.clone(),
            },
        };
        cx.enforce(Operation::OpenAppService { provider: family, service: name, target, user })?;
        let (Some(pkg), Some((app, service, _))) = (&pkg, found) else {
            unreachable!("the policy allows only a declared service")
        };
        let pfn = &pkg.family_name;
        let open_here =
            self.lock().connections.values().filter(|(_, _, s)| *s == caller.session_id).count();
        let cap = shared.config.limits.app_service_connections_per_session;
        if open_here >= cap {
            return Err(AppServiceError::Quota(format!(
                "this session has {open_here} app-service connections open, the most it may \
                 ([limits] app-service-connections-per-session); close some"
            )));
        }
        let max = service.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE);
        let service_lc = lc(service.name.as_str());
        let family_lc = lc(pfn.as_str());

        // Two attempts: a registered host may turn out to be gone when we hand it the
        // connection; then a fresh one is started.
        for attempt in 0..2 {
            let host = if service.supports_multiple_instances || attempt > 0 {
                None
            } else {
                self.lock()
                    .hosts
                    .iter()
                    .find(|h| {
                        h.family == family_lc
                            && h.service == service_lc
                            && !h.canceled.load(Ordering::SeqCst)
                    })
                    .cloned()
            };
            let host = match host {
                Some(h) => Some(h),
                None if !service.supports_multiple_instances && attempt == 0 => {
                    self.await_returning(&family_lc, &service_lc).await
                }
                None => None,
            };
            let host = match host {
                Some(h) => h,
                None => {
                    match self.start_host(shared, pkg, app, service, &family_lc, &service_lc).await
                    {
                        Ok(h) => h,
                        Err(message) => return Err(AppServiceError::Unavailable(message)),
                    }
                }
            };
            if let Some(opened) = self.hand_over(cx, pkg, service, &host, max).await? {
                return Ok(opened);
            }
        }
        Err(AppServiceError::Unavailable(format!(
            "no host of {name} in {pfn} could take the connection"
        )))
    }

    /// Gives `host` its end of a new connection for `caller`; `None` if the host is gone.
    async fn hand_over(
        &self,
        cx: &Cx<'_>,
        pkg: &InstalledPackage,
        service: &AppService,
        host: &Arc<Host>,
        max: u64,
    ) -> Result<Option<(Opened, OwnedFd)>> {
        let caller = cx.caller;
        let (client_end, provider_end) = appipc_sys::socket::seqpacket_pair()
            .map_err(|e| InternalError::io("creating an app service socket pair", e))?;
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let caller_pfn = caller.family_name_or_empty();
        let incoming = IncomingConnection {
            connection_id: id,
            app_service_name: service.name.to_string(),
            caller_package_family_name: caller_pfn.clone(),
            caller_capabilities: caller
                .principal
                .package
                .as_ref()
                .map(|p| p.capabilities.clone())
                .unwrap_or_default(),
            caller_trust: caller.trust(),
            caller_pid: caller.pid,
            max_message_size: max,
            caller_uid: Some(caller.uid),
            caller_user_name: self.user_name(caller.uid),
        };
        {
            // Counted before it is sent, under the lock a stopping host is marked under: a
            // host is either stopped or handed this connection, never both.
            let _st = self.lock();
            if host.canceled.load(Ordering::SeqCst) {
                return Ok(None);
            }
            host.active.fetch_add(1, Ordering::SeqCst);
            host.generation.fetch_add(1, Ordering::SeqCst);
        }
        match host.sock.event(incoming, vec![provider_end]) {
            Ok(()) => {}
            Err(Undeliverable::Gone) => {
                tracing::warn!(pid = host.pid, "app service host is gone; starting another");
                host.active.fetch_sub(1, Ordering::SeqCst);
                self.remove_host(host.session_id);
                return Ok(None);
            }
            Err(Undeliverable::Full) => {
                host.active.fetch_sub(1, Ordering::SeqCst);
                return Err(AppServiceError::Unavailable(format!(
                    "the host of {} (pid {}) does not read its session with the broker",
                    service.name, host.pid
                )));
            }
        }
        let info = AppServiceConnectionInfo {
            connection_id: id,
            package_family_name: pkg.family_name.to_string(),
            app_service_name: service.name.to_string(),
            caller_package_family_name: caller_pfn,
            caller_pid: caller.pid,
            host_pid: host.pid,
            opened_at: now(),
        };
        tracing::debug!(
            connection = id,
            service = %service.name,
            provider = %pkg.family_name,
            host_pid = host.pid,
            caller = %caller.describe(),
            "app service connection opened"
        );
        {
            let mut st = self.lock();
            cx.session.ensure_open()?;
            st.connections.insert(id, (info, host.clone(), caller.session_id));
        }
        Ok(Some((Opened { connection_id: id, max_message_size: max }, client_end)))
    }

    /// Starts a host process for a service and waits until it registers.
    async fn start_host(
        &self,
        shared: &Arc<Shared>,
        pkg: &Arc<InstalledPackage>,
        app: &Application,
        service: &AppService,
        family_lc: &str,
        service_lc: &str,
    ) -> std::result::Result<Arc<Host>, String> {
        let (program, activation) = match &service.entry_point {
            Some(exe) => (exe, Activation::AppServiceHost),
            None => (&app.executable, Activation::Background),
        };
        let (tx, rx) = oneshot::channel();
        let record = {
            let mut start = activation::Start::app(pkg, app, activation);
            start.program = program;
            start.app_service = Some(service.name.as_str());
            let started = activation::start_app(shared, start).await;
            match started {
                Ok(r) => r,
                Err(e) => return Err(format!("the service host could not be started: {e}")),
            }
        };
        {
            // The process may already have registered; under the lock either its host is in
            // the list or our waiter is in place before it registers.
            let mut st = self.lock();
            st.started_for_service.insert(record.pid);
            if let Some(h) =
                st.hosts.iter().find(|h| h.pid == record.pid && h.service == service_lc).cloned()
            {
                return Ok(h);
            }
            st.waiters.push(Waiter {
                family: family_lc.to_owned(),
                service: service_lc.to_owned(),
                pid: Some(record.pid),
                tx,
            });
        }
        let mut exited = record.exited.clone();
        let pid = record.pid;
        let outcome = tokio::select! {
            r = rx => r.map_err(|_| "the broker dropped the wait".to_owned()),
            s = exited.wait_for(|s| s.is_some()) => {
                let status = s.ok().and_then(|s| *s).map(|s| s.to_string()).unwrap_or_default();
                Err(format!("the service host (pid {pid}) exited before it registered ({status})"))
            }
            () = tokio::time::sleep(self.timings.start) => Err(format!(
                "the service host (pid {pid}) did not register within {:?}", self.timings.start
            )),
        };
        if outcome.is_err() {
            self.lock().waiters.retain(|w| w.pid != Some(pid));
            if let Some(p) = shared.processes.list().into_iter().find(|p| p.pid == pid) {
                let _ = appipc_sys::process::send_signal(
                    &p.pidfd,
                    appipc_sys::process::ProcessSignal::KILL,
                );
            }
        }
        outcome
    }

    /// `RegisterAppServiceHost`; `serving` are the connections a host registering again after
    /// a broker restart still serves (honored on a session that outlived a broker only, at most
    /// a session's quota of them).
    pub(crate) fn register(&self, cx: &Cx<'_>, name: &str, serving: &[u64]) -> Result<()> {
        let (shared, caller, sock) = (cx.shared, cx.caller, &cx.session.outbox);
        let pkg = caller.family_name().and_then(|f| shared.repository.get(f));
        let found = pkg.as_ref().and_then(|p| find_service(p, name));
        cx.enforce(Operation::HostAppService {
            service: name,
            declared_by: found.as_ref().map(|(app, _, _)| app.id.as_str()),
        })?;
        let (Some(p), Some((_, service, _))) = (caller.principal.package.as_ref(), found) else {
            unreachable!("the policy allows only a packaged host of a declared service")
        };
        let family = lc(p.family_name.as_str());
        let service_lc = lc(service.name.as_str());
        let mut st = self.lock();
        cx.session.ensure_open()?;
        let stoppable =
            service.entry_point.is_some() || st.started_for_service.contains(&caller.pid);
        let served_before: HashSet<u64> = if cx.session.was_restarted() {
            let cap = shared.config.limits.app_service_connections_per_session;
            serving.iter().copied().take(cap).collect()
        } else {
            HashSet::new()
        };
        let host = Arc::new(Host {
            session_id: caller.session_id,
            pid: caller.pid,
            family: family.clone(),
            service: service_lc.clone(),
            sock: sock.clone(),
            stoppable,
            out_of_process: service.entry_point.is_some(),
            active: AtomicUsize::new(served_before.len()),
            generation: AtomicU64::new(0),
            canceled: AtomicBool::new(false),
            served_before: Mutex::new(served_before),
        });
        st.hosts.push(host.clone());
        st.returning.retain(|r| r.pid != caller.pid || r.service != service_lc);
        // Hand the host to the opener waiting for this very process, else to any opener of
        // a single-instance service.
        let pos = st
            .waiters
            .iter()
            .position(|w| {
                w.family == family && w.service == service_lc && w.pid == Some(caller.pid)
            })
            .or_else(|| {
                (!service.supports_multiple_instances)
                    .then(|| {
                        st.waiters.iter().position(|w| {
                            w.family == family && w.service == service_lc && w.pid.is_none()
                        })
                    })
                    .flatten()
            });
        if let Some(i) = pos {
            let w = st.waiters.remove(i);
            let _ = w.tx.send(host.clone());
        }
        tracing::info!(service = %service.name, package = %p.family_name, pid = caller.pid, stoppable,
            serving = host.active.load(Ordering::SeqCst), "app service host registered");
        drop(st);
        if stoppable && host.active.load(Ordering::SeqCst) == 0 {
            self.schedule_idle(shared, host);
        }
        Ok(())
    }

    /// `AppServiceConnectionClosed` from a host.
    pub(crate) fn connection_closed(&self, cx: &Cx<'_>, id: u64) -> Result<()> {
        let hosted_by = self.lock().connections.get(&id).map(|(_, h, _)| h.pid);
        let Some(pid) = hosted_by else {
            // One this host served before the broker restarted, or already gone (the host's
            // session ended first).
            let before = self
                .lock()
                .hosts
                .iter()
                .find(|h| {
                    h.session_id == cx.caller.session_id
                        && h.served_before.lock().expect("host poisoned").remove(&id)
                })
                .cloned();
            if let Some(host) = before {
                let left = host.active.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
                if left == 0 {
                    self.last_closed(cx.shared, host);
                }
            }
            return Ok(());
        };
        cx.enforce(Operation::ReportAppServiceClosed {
            connection_id: id,
            hosted_by_caller: pid == cx.caller.pid,
        })?;
        let host = self.lock().connections.remove(&id).map(|(_, h, _)| h);
        if let Some(host) = host {
            tracing::debug!(connection = id, pid = host.pid, "app service connection closed");
            let left = host.active.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
            if left == 0 {
                self.last_closed(cx.shared, host);
            }
        }
        Ok(())
    }

    /// A host's last connection ended. An out-of-process host the broker started is stopped
    /// now (on Windows a background task host ends with its last task: a client that disposes
    /// its connection cancels the task that served it, and nothing else keeps the host); an
    /// application hosting an in-process service that the broker started in the background
    /// idles until the idle timeout; an application the user launched stays.
    fn last_closed(&self, shared: &Arc<Shared>, host: Arc<Host>) {
        if !host.stoppable {
            return;
        }
        if !host.out_of_process {
            self.schedule_idle(shared, host);
            return;
        }
        {
            let _st = self.lock();
            if host.active.load(Ordering::SeqCst) != 0 || host.canceled.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
        tracing::info!(pid = host.pid, service = %host.service,
            "app service host serves no connection any more; stopping it");
        let shared = shared.clone();
        tokio::spawn(async move {
            shared.app_services.stop(&shared, &host, BackgroundTaskCancellationReason::Abort).await;
        });
    }

    /// The account name of `uid` (NSS), looked up once.
    fn user_name(&self, uid: u32) -> Option<String> {
        let mut names = self.user_names.lock().expect("user names poisoned");
        names.entry(uid).or_insert_with(|| appipc_sys::ids::user_name(uid).ok().flatten()).clone()
    }

    /// Starts the idle clock of a host; if it is still idle when it runs out, it is canceled.
    fn schedule_idle(&self, shared: &Arc<Shared>, host: Arc<Host>) {
        let generation = host.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let shared = shared.clone();
        let idle = self.timings.idle;
        tokio::spawn(async move {
            tokio::time::sleep(idle).await;
            if host.active.load(Ordering::SeqCst) == 0
                && host.generation.load(Ordering::SeqCst) == generation
                && !host.canceled.load(Ordering::SeqCst)
            {
                shared
                    .app_services
                    .cancel(&shared, &host, BackgroundTaskCancellationReason::IdleTask)
                    .await;
            }
        });
    }

    /// Tells a host it is being stopped, takes it out of service and kills it after the grace
    /// period.
    async fn cancel(
        &self,
        shared: &Arc<Shared>,
        host: &Arc<Host>,
        reason: BackgroundTaskCancellationReason,
    ) {
        if host.canceled.swap(true, Ordering::SeqCst) {
            return;
        }
        tracing::info!(pid = host.pid, service = %host.service, %reason, "canceling app service host");
        self.stop(shared, host, reason).await;
    }

    /// Stops a host already marked canceled: out of service, told why, killed after the grace
    /// period.
    async fn stop(
        &self,
        shared: &Arc<Shared>,
        host: &Arc<Host>,
        reason: BackgroundTaskCancellationReason,
    ) {
        self.remove_host(host.session_id);
        let _ = host.sock.event(Canceled { reason }, Vec::new());
        if !host.stoppable {
            return;
        }
        let grace = self.timings.grace;
        let shared = shared.clone();
        let pid = host.pid;
        tokio::spawn(async move {
            let Some(p) = shared.processes.list().into_iter().find(|p| p.pid == pid) else {
                return;
            };
            let mut exited = p.exited.clone();
            if tokio::time::timeout(grace, exited.wait_for(|s| s.is_some())).await.is_err() {
                tracing::info!(pid, "app service host ignored its cancellation; killing it");
                let _ = appipc_sys::process::send_signal(
                    &p.pidfd,
                    appipc_sys::process::ProcessSignal::KILL,
                );
            }
        });
    }

    /// Cancels every host of a package (before it is upgraded or removed).
    pub(crate) async fn cancel_family(
        &self,
        shared: &Arc<Shared>,
        family: &str,
        reason: BackgroundTaskCancellationReason,
    ) {
        let f = lc(family);
        let hosts: Vec<_> = self.lock().hosts.iter().filter(|h| h.family == f).cloned().collect();
        for h in hosts {
            self.cancel(shared, &h, reason).await;
        }
    }

    /// The pids of a package's registered hosts.
    pub(crate) fn host_pids(&self, family: &str) -> Vec<u32> {
        let f = lc(family);
        self.lock().hosts.iter().filter(|h| h.family == f).map(|h| h.pid).collect()
    }

    /// How long a canceled host has to end before it is killed.
    pub(crate) fn grace(&self) -> Duration {
        self.timings.grace
    }

    /// Whether a session hosts an app service.
    pub(crate) fn hosts_in(&self, session_id: u64) -> bool {
        self.lock().hosts.iter().any(|h| h.session_id == session_id)
    }

    fn remove_host(&self, session_id: u64) {
        let mut st = self.lock();
        st.hosts.retain(|h| h.session_id != session_id);
    }

    /// A session ended: whatever it hosted is gone.
    pub(crate) fn session_closed(&self, session_id: u64) {
        let mut st = self.lock();
        let gone: Vec<u32> =
            st.hosts.iter().filter(|h| h.session_id == session_id).map(|h| h.pid).collect();
        if gone.is_empty() {
            return;
        }
        st.hosts.retain(|h| h.session_id != session_id);
        st.connections.retain(|_, (_, h, _)| h.session_id != session_id);
        for pid in gone {
            tracing::debug!(pid, "app service host session ended");
        }
    }

    /// A process a broker before this one started for a service (adopted after a restart).
    /// Until it registers again, openers of that service wait for it (at most the start time).
    pub(crate) fn adopted_host(
        &self,
        record: &crate::launcher::ProcessRecord,
        family: &str,
        service: Option<&str>,
    ) {
        let mut st = self.lock();
        st.started_for_service.insert(record.pid);
        if let Some(service) = service {
            st.returning.push(Returning {
                family: lc(family),
                service: lc(service),
                pid: record.pid,
                exited: record.exited.clone(),
            });
        }
    }

    /// Waits for an adopted host of the service to register again; `None` if there is none, it
    /// exits, or it does not register within the start time (then a fresh host is started).
    async fn await_returning(&self, family_lc: &str, service_lc: &str) -> Option<Arc<Host>> {
        let (tx, rx) = oneshot::channel();
        let (pid, mut exited) = {
            let mut st = self.lock();
            st.returning.retain(|r| r.exited.borrow().is_none());
            let r =
                st.returning.iter().find(|r| r.family == family_lc && r.service == service_lc)?;
            let (pid, exited) = (r.pid, r.exited.clone());
            if let Some(h) = st.hosts.iter().find(|h| h.pid == pid && h.service == service_lc) {
                return Some(h.clone());
            }
            st.waiters.push(Waiter {
                family: family_lc.to_owned(),
                service: service_lc.to_owned(),
                pid: Some(pid),
                tx,
            });
            (pid, exited)
        };
        tracing::debug!(pid, service = service_lc, "waiting for an adopted host to register again");
        let host = tokio::select! {
            r = rx => r.ok(),
            _ = exited.wait_for(|s| s.is_some()) => None,
            () = tokio::time::sleep(self.timings.start) => None,
        };
        let mut st = self.lock();
        st.waiters.retain(|w| !w.tx.is_closed());
        if host.is_none() {
            st.returning.retain(|r| r.pid != pid);
        }
        host
    }

    /// A process exited: forget it was started for a service.
    pub(crate) fn process_exited(&self, pid: u32) {
        let mut st = self.lock();
        st.started_for_service.remove(&pid);
        st.returning.retain(|r| r.pid != pid);
    }

    /// `FindAppServiceProviders`.
    pub(crate) fn find_providers(
        &self,
        shared: &Arc<Shared>,
        name: &str,
    ) -> Vec<AppServiceProviderInfo> {
        let mut out = Vec::new();
        for pkg in shared.repository.all() {
            if let Some((app, _, _)) = find_service(&pkg, name) {
                out.push(AppServiceProviderInfo {
                    package_family_name: pkg.family_name.to_string(),
                    app_id: app.id.to_string(),
                    display_name: pkg.manifest.properties.display_name.clone(),
                });
            }
        }
        out
    }

    /// `ListAppServices`.
    pub(crate) fn list(&self, cx: &Cx<'_>) -> AppServiceList {
        let visible = |family: &str| cx.permits(Operation::QueryPackage { family_name: family });
        let mut declared = Vec::new();
        for pkg in cx.shared.repository.all() {
            if !visible(pkg.family_name.as_str()) {
                continue;
            }
            for app in &pkg.manifest.applications {
                for s in &app.app_services {
                    declared.push(DeclaredAppService {
                        package_family_name: pkg.family_name.to_string(),
                        app_id: app.id.to_string(),
                        name: s.name.to_string(),
                        entry_point: s.entry_point.as_ref().map(|p| p.as_str().to_owned()),
                        supports_multiple_instances: s.supports_multiple_instances,
                        max_message_size: s.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
                    });
                }
            }
        }
        let mut connections: Vec<_> = self
            .lock()
            .connections
            .values()
            .filter(|(i, _, _)| visible(&i.package_family_name))
            .map(|(i, _, _)| i.clone())
            .collect();
        connections.sort_by_key(|c| c.connection_id);
        AppServiceList { declared, connections }
    }
}
