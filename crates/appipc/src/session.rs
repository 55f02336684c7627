//! A session with the broker: the channel every SDK call goes through.
//!
//! A packaged process (started by the broker) inherits a pre-authenticated session socket
//! whose number is in `APPIPC_SESSION_FD`; the SDK uses it to open a private session of the
//! same identity and leaves the inherited one open, so that the process's children inherit
//! the identity as Windows children inherit the token. An unpackaged process connects to the
//! broker's public socket instead.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use appipc_sys::aio::AsyncSeqPacket;
use appipc_sys::process::ExitStatus;
use appipc_sys::socket::{self, Blocking};
use appipc_wire::frame::{Frame, MAX_FRAME_LEN, Raw, Reply};
use appipc_wire::protocol::app_service::IncomingConnection;
use appipc_wire::protocol::diagnostics::DecisionRecord;
use appipc_wire::protocol::launcher::ProtocolActivation;
pub use appipc_wire::protocol::packages::InstallProgress;
use appipc_wire::protocol::{self, Call, Event, Request};
use appipc_wire::status::BackgroundTaskCancellationReason;
use tokio::sync::{oneshot, watch};

use crate::error::{Error, Result};

/// Environment variable naming the inherited session fd.
pub const SESSION_FD_VAR: &str = "APPIPC_SESSION_FD";

type Pending = oneshot::Sender<Result<(Raw, Vec<OwnedFd>)>>;

/// A request waiting for its reply.
#[derive(Debug)]
struct Waiting {
    tx: Pending,
    /// Its message is in the socket (a broker that restarts may have read it).
    sent: bool,
    /// Its name, for the error if it is lost.
    name: &'static str,
}

#[derive(Debug, Default)]
struct Exits {
    done: HashMap<u32, ExitStatus>,
}

/// Where the clients of one pipe instance go: (client pid, client package, server end).
pub(crate) type PipeSender = tokio::sync::mpsc::UnboundedSender<(u32, String, OwnedFd)>;

/// Pipe instances' routes, and clients that arrived before their instance was routed (the
/// create reply and the first client can come back to back).
#[derive(Debug, Default)]
struct PipeRoutes {
    routes: HashMap<u64, PipeSender>,
    early: HashMap<u64, Vec<(u32, String, OwnedFd)>>,
}

/// Where the connections of one RPC endpoint go.
pub(crate) type ComSender = tokio::sync::mpsc::UnboundedSender<(protocol::com::Activate, OwnedFd)>;
/// Where a COM server's activations go, and its class registrations (made again after a
/// broker restart): SDK cookie → (CLSID, flags, the broker's cookie).
#[derive(Debug, Default)]
pub(crate) struct ComRoute {
    pub(crate) tx: Option<ComSender>,
    pub(crate) registrations: HashMap<u64, (String, u32, u64)>,
    /// Suspended (shutting down): not registered again.
    pub(crate) suspended: bool,
    /// The count last reported (objects, locks): reported again after a broker restart.
    pub(crate) counts: (u32, u32),
}

pub(crate) type RpcSender = tokio::sync::mpsc::UnboundedSender<(protocol::rpc::Incoming, OwnedFd)>;

/// The most connections held for RPC endpoints not routed yet (a register's reply and the
/// first connection can come back to back); past it a connection is closed at once.
const EARLY_RPC: usize = 1024;

/// RPC endpoints' routes, and connections that came before their endpoint was routed.
#[derive(Debug, Default)]
struct RpcRoutes {
    routes: HashMap<u64, RpcRoute>,
    early: HashMap<u64, Vec<(protocol::rpc::Incoming, OwnedFd)>>,
    early_count: usize,
}

/// One endpoint this session serves: where its connections go, and what registers it again
/// with a restarted broker.
#[derive(Debug)]
struct RpcRoute {
    tx: RpcSender,
    name: String,
    sddl: Option<String>,
    /// The broker's id of the endpoint, which a restarted broker gives anew.
    id: Arc<std::sync::atomic::AtomicU64>,
}

/// Where app-service connections for one service name go.
pub(crate) type IncomingSender = tokio::sync::mpsc::UnboundedSender<(IncomingConnection, OwnedFd)>;

/// Where followed decisions go.
pub(crate) type DecisionSender = tokio::sync::mpsc::UnboundedSender<DecisionRecord>;

/// Where one registry watch's changes go (bounded: past its bound they coalesce into one).
pub(crate) type RegistryQueue = Arc<crate::registry::ChangeQueue>;

/// Registry watches' routes, and the changes of watches not routed yet (the watch's reply and
/// its first change can come back to back).
#[derive(Debug, Default)]
struct RegistryRoutes {
    routes: HashMap<u64, RegistryQueue>,
    early: HashMap<u64, RegistryQueue>,
}

impl RegistryRoutes {
    /// The session ended: every reader hears so once it has read what is queued.
    fn close(&mut self) {
        for q in self.routes.values().chain(self.early.values()) {
            q.close();
        }
        *self = RegistryRoutes::default();
    }
}

/// Watches not yet routed whose changes are kept (each bounded as a routed one).
const EARLY_WATCHES: usize = 64;

/// Where protocol activations for a registered instance go.
pub(crate) type ActivationSender = tokio::sync::mpsc::UnboundedSender<ProtocolActivation>;

#[derive(Debug)]
struct Inner {
    sock: AsyncSeqPacket,
    next_id: AtomicU64,
    pending: Mutex<Option<HashMap<u64, Waiting>>>,
    /// The app services this session hosts (as registered) and the connections each serves:
    /// registered again, with those, when the broker restarts.
    hosting: Mutex<HashMap<String, std::collections::HashSet<u64>>>,
    exits: Mutex<Exits>,
    exit_signal: watch::Sender<u64>,
    incoming: Mutex<HashMap<String, IncomingSender>>,
    pipes: Mutex<PipeRoutes>,
    registry: Mutex<RegistryRoutes>,
    rpc: Mutex<RpcRoutes>,
    com: Mutex<ComRoute>,
    canceled: watch::Sender<Option<BackgroundTaskCancellationReason>>,
    decisions: Mutex<Option<DecisionSender>>,
    /// The latest `packages.InstallProgress` of an install on this session.
    install_progress: watch::Sender<Option<InstallProgress>>,
    /// Why the broker said it closes the session (`broker.Closing`), if it did.
    closing: Mutex<Option<String>>,
    /// How long a request waits for its reply unless it says otherwise.
    timeout: std::time::Duration,
    /// Where `launcher.Activated` events go (`AppInstance::register_for_activation`).
    activations: Mutex<Option<ActivationSender>>,
    /// Launches for results whose caller went away (`launcher.OperationCanceled`); the counter
    /// moves with each.
    canceled_operations: Mutex<std::collections::HashSet<u64>>,
    operations_signal: watch::Sender<u64>,
}

/// A session with the broker. Cheap to clone; requests may be issued concurrently.
#[derive(Debug, Clone)]
pub struct Session {
    inner: Arc<Inner>,
    _reader: Arc<ReaderGuard>,
}

#[derive(Debug)]
struct ReaderGuard(tokio::task::JoinHandle<()>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How long a request waits for the broker's reply by default: 10 s, or `APPIPC_TIMEOUT_MS`.
/// Requests that take long by nature (installs, launches, opening an app service whose host
/// must start) wait longer; see each call.
pub fn default_timeout() -> std::time::Duration {
    let ms = std::env::var("APPIPC_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    std::time::Duration::from_millis(ms)
}

/// The broker's public socket for this environment (`APPIPC_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR/appipc`, else `/tmp/appipc-<uid>`, then `broker.sock`).
pub fn public_socket_path() -> PathBuf {
    appipc_sys::env::runtime_dir().join("broker.sock")
}

impl Session {
    /// Connects the way this process should: through the inherited session if it has one
    /// (packaged process), else to the public socket (unpackaged process).
    pub async fn connect() -> Result<Session> {
        match std::env::var(SESSION_FD_VAR) {
            Ok(v) if !v.is_empty() => Session::from_inherited(&v),
            _ => Session::connect_to(&public_socket_path()),
        }
    }

    /// Connects to a broker's public socket (as an unpackaged process).
    pub fn connect_to(path: &Path) -> Result<Session> {
        let fd = socket::seqpacket_connect(path)
            .map_err(|source| Error::Connect { path: path.display().to_string(), source })?;
        Session::from_fd(fd)
    }

    fn from_inherited(value: &str) -> Result<Session> {
        let bad = |reason: String| Error::BadSessionFd { value: value.to_owned(), reason };
        let number: u32 = value.parse().map_err(|_| bad("not a file descriptor number".into()))?;
        let root =
            appipc_sys::env::dup_inherited_session(number).map_err(|e| bad(e.to_string()))?;
        // Ask for a private session over the shared one, blocking: nothing else reads this
        // dup, and a sibling process that bootstraps at the same moment can only swap an
        // identical reply with us.
        let req = Frame::request(1, protocol::broker::OpenSession {}).to_cbor();
        let ask = || {
            socket::send(&root, &req, &[], Blocking::Yes)
                .map_err(|source| Error::Io { what: "sending on the inherited session", source })
        };
        ask()?;
        let mut asked = 1;
        let packet = loop {
            // A broker that died after it read our request never answers it; the next one
            // answers a request sent again (a reply too many stays for the next process of
            // this identity to bootstrap).
            let ready = socket::wait_readable(&root, default_timeout())
                .map_err(|source| Error::Io { what: "waiting on the inherited session", source })?;
            if !ready {
                if asked == 3 {
                    return Err(Error::Timeout {
                        request: "OpenSession",
                        after: default_timeout() * 3,
                    });
                }
                asked += 1;
                ask()?;
                continue;
            }
            let packet = socket::recv(&root, MAX_FRAME_LEN, Blocking::Yes)
                .map_err(|source| Error::Io { what: "receiving on the inherited session", source })?
                .ok_or(Error::Disconnected)?;
            let frame =
                Frame::from_cbor(&packet.data).map_err(|e| Error::Protocol(e.to_string()))?;
            match (frame.reply, frame.event) {
                (Some(Reply::Ok(_)), _) => break packet,
                (Some(Reply::Err(e)), _) => return Err(Error::from_reply(e)),
                (None, Some(_)) => {}
                (None, None) => {
                    return Err(Error::Protocol("expected a reply to open-session".into()));
                }
            }
        };
        let fd = packet
            .fds
            .into_iter()
            .next()
            .ok_or_else(|| Error::Protocol("session reply without its fd".into()))?;
        Session::from_fd(fd)
    }

    /// Uses an already connected session socket. Must be called inside a tokio runtime.
    pub fn from_fd(fd: OwnedFd) -> Result<Session> {
        let sock = AsyncSeqPacket::new_reading(fd)
            .map_err(|source| Error::Io { what: "registering the session socket", source })?;
        let inner = Arc::new(Inner {
            sock,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Some(HashMap::new())),
            hosting: Mutex::new(HashMap::new()),
            exits: Mutex::new(Exits::default()),
            exit_signal: watch::channel(0).0,
            incoming: Mutex::new(HashMap::new()),
            pipes: Mutex::new(PipeRoutes::default()),
            registry: Mutex::new(RegistryRoutes::default()),
            rpc: Mutex::new(RpcRoutes::default()),
            com: Mutex::new(ComRoute::default()),
            canceled: watch::channel(None).0,
            decisions: Mutex::new(None),
            install_progress: watch::channel(None).0,
            closing: Mutex::new(None),
            timeout: default_timeout(),
            activations: Mutex::new(None),
            canceled_operations: Mutex::new(std::collections::HashSet::new()),
            operations_signal: watch::channel(0).0,
        });
        let reader = tokio::spawn(read_loop(inner.clone()));
        Ok(Session { inner, _reader: Arc::new(ReaderGuard(reader)) })
    }

    /// Sends one request of any kind with fds and waits for its reply, undecoded: the
    /// output's bytes and the fds that came with it. A broker error becomes [`Error::Broker`].
    pub async fn request_raw(
        &self,
        request: Request,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<(Raw, Vec<OwnedFd>)> {
        self.inner.request(request, fds).await
    }

    /// Sends a request with the fds it declares, and returns its typed output and the fds
    /// of the reply; fails with [`Error::Timeout`] if no reply comes within
    /// [`default_timeout`].
    pub async fn call_with_fds<C: Call>(
        &self,
        call: C,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<(C::Output, Vec<OwnedFd>)> {
        self.call_within(call, fds, self.inner.timeout).await
    }

    /// [`Session::call_with_fds`], waiting at most `timeout` for the reply.
    pub async fn call_within<C: Call>(
        &self,
        call: C,
        fds: &[std::os::fd::BorrowedFd<'_>],
        timeout: std::time::Duration,
    ) -> Result<(C::Output, Vec<OwnedFd>)> {
        if fds.len() != call.fds() {
            return Err(Error::Protocol(format!(
                "{} takes {} fd(s), {} given",
                C::NAME,
                call.fds(),
                fds.len()
            )));
        }
        let (raw, fds) = tokio::time::timeout(timeout, self.request_raw(call.into(), fds))
            .await
            .map_err(|_| Error::Timeout { request: C::NAME, after: timeout })??;
        let out = raw
            .decode::<C::Output>()
            .map_err(|e| Error::Protocol(format!("reply to {}: {e}", C::NAME)))?;
        Ok((out, fds))
    }

    /// Sends a request that carries no fds and returns its typed output.
    pub async fn call<C: Call>(&self, call: C) -> Result<C::Output> {
        Ok(self.call_with_fds(call, &[]).await?.0)
    }

    /// How far the installs of this session got: the latest `packages.InstallProgress` the
    /// broker sent (`None` before the first), to watch while an install runs.
    pub fn install_progress(&self) -> watch::Receiver<Option<InstallProgress>> {
        self.inner.install_progress.subscribe()
    }

    /// Waits for a process launched with exit notification on this session to end.
    pub async fn wait_for_exit(&self, pid: u32) -> Result<ExitStatus> {
        let mut rx = self.inner.exit_signal.subscribe();
        loop {
            if let Some(s) = self.inner.exits.lock().expect("exits poisoned").done.remove(&pid) {
                return Ok(s);
            }
            if rx.changed().await.is_err() {
                return Err(Error::Disconnected);
            }
            if self.inner.pending.lock().expect("pending poisoned").is_none() {
                // Closed: one last look, then give up.
                if let Some(s) = self.inner.exits.lock().expect("exits poisoned").done.remove(&pid)
                {
                    return Ok(s);
                }
                return Err(Error::Disconnected);
            }
        }
    }

    /// Routes app-service connections for `name` (case-insensitive) to `tx`, and notes that
    /// this session hosts it (registered again after a broker restart).
    pub(crate) fn route_app_service(&self, name: &str, tx: IncomingSender) {
        self.inner
            .incoming
            .lock()
            .expect("incoming poisoned")
            .insert(name.to_ascii_lowercase(), tx);
        self.inner.hosting.lock().expect("hosting poisoned").entry(name.to_owned()).or_default();
    }

    /// A hosted connection of `name` opened (`open`) or ended.
    pub(crate) fn hosting(&self, name: &str, connection: u64, open: bool) {
        let mut h = self.inner.hosting.lock().expect("hosting poisoned");
        if let Some(live) = h.get_mut(name) {
            if open {
                live.insert(connection);
            } else {
                live.remove(&connection);
            }
        }
    }

    /// Routes the clients of a pipe instance to `tx`.
    pub(crate) fn route_pipe(&self, instance: u64, tx: PipeSender) {
        let mut p = self.inner.pipes.lock().expect("pipes poisoned");
        for early in p.early.remove(&instance).unwrap_or_default() {
            let _ = tx.send(early);
        }
        p.routes.insert(instance, tx);
    }

    /// Routes RPC endpoint `endpoint`'s connections to `tx` (with any that came early).
    pub(crate) fn route_rpc(
        &self,
        id: Arc<std::sync::atomic::AtomicU64>,
        name: &str,
        sddl: Option<&str>,
        tx: RpcSender,
    ) {
        let endpoint = id.load(Ordering::SeqCst);
        let mut r = self.inner.rpc.lock().expect("rpc routes poisoned");
        let early = r.early.remove(&endpoint).unwrap_or_default();
        r.early_count -= early.len();
        for c in early {
            let _ = tx.send(c);
        }
        if self.inner.pending.lock().expect("pending poisoned").is_some() {
            let route = RpcRoute { tx, name: name.to_owned(), sddl: sddl.map(str::to_owned), id };
            r.routes.insert(endpoint, route);
        }
    }

    /// Stops routing an endpoint's connections (those still to come are closed).
    pub(crate) fn unroute_rpc(&self, endpoint: u64) {
        let mut r = self.inner.rpc.lock().expect("rpc routes poisoned");
        r.routes.remove(&endpoint);
        if let Some(early) = r.early.remove(&endpoint) {
            r.early_count -= early.len();
        }
    }

    /// The COM server state of this session (activations' route, registrations).
    pub(crate) fn com(&self) -> std::sync::MutexGuard<'_, ComRoute> {
        self.inner.com.lock().expect("com route poisoned")
    }

    /// Routes registry watch `watch`'s changes to a queue (with any that came early).
    pub(crate) fn route_registry(&self, watch: u64) -> RegistryQueue {
        let mut r = self.inner.registry.lock().expect("registry routes poisoned");
        let q = r.early.remove(&watch).unwrap_or_default();
        if self.inner.pending.lock().expect("pending poisoned").is_none() {
            q.close();
        }
        r.routes.insert(watch, q.clone());
        q
    }

    /// Stops routing a watch's changes.
    pub(crate) fn unroute_registry(&self, watch: u64) {
        let mut r = self.inner.registry.lock().expect("registry routes poisoned");
        r.routes.remove(&watch);
        r.early.remove(&watch);
    }

    /// Routes protocol activations (`launcher.Activated`) to `tx`.
    pub(crate) fn route_activations(&self, tx: ActivationSender) {
        *self.inner.activations.lock().expect("activations poisoned") = Some(tx);
    }

    /// Resolves when the broker says the caller of operation `id` went away (or the session
    /// ends).
    pub(crate) async fn operation_canceled(&self, id: u64) {
        let mut rx = self.inner.operations_signal.subscribe();
        loop {
            if self.inner.canceled_operations.lock().expect("operations poisoned").contains(&id) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether the broker said the caller of operation `id` went away.
    pub(crate) fn is_operation_canceled(&self, id: u64) -> bool {
        self.inner.canceled_operations.lock().expect("operations poisoned").contains(&id)
    }

    /// Routes followed decisions (`diagnostics.FollowDecisions`) to `tx`.
    pub(crate) fn route_decisions(&self, tx: DecisionSender) {
        *self.inner.decisions.lock().expect("decisions poisoned") = Some(tx);
    }

    /// Resolves when the broker cancels this process's background work
    /// (`IBackgroundTaskInstance.Canceled`), with the reason; or with `Abort` when the session
    /// ends.
    pub async fn canceled(&self) -> BackgroundTaskCancellationReason {
        let mut rx = self.inner.canceled.subscribe();
        match rx.wait_for(|r| r.is_some()).await {
            Ok(r) => r.unwrap_or(BackgroundTaskCancellationReason::Abort),
            Err(_) => BackgroundTaskCancellationReason::Abort,
        }
    }

    /// Why the broker canceled this process's background work, if it did (the broker's
    /// `Canceled`; unlike [`canceled`](Self::canceled), not `Abort` when the session ended).
    pub(crate) fn canceled_reason(&self) -> Option<BackgroundTaskCancellationReason> {
        *self.inner.canceled.borrow()
    }

    /// The raw socket (for tests that need to misbehave on purpose).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.inner.sock.as_fd()
    }
}

impl Inner {
    async fn request(
        &self,
        request: Request,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<(Raw, Vec<OwnedFd>)> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let name = request.call_name();
        match self.pending.lock().expect("pending poisoned").as_mut() {
            Some(p) => {
                p.insert(id, Waiting { tx, sent: false, name });
            }
            None => return Err(Error::Disconnected),
        }
        let bytes = Frame::request(id, request).to_cbor();
        let sent = self.sock.send(&bytes, fds).await;
        self.mark_sent(id, sent)?;
        rx.await.map_err(|_| self.disconnected())?
    }

    /// After a request's message was sent (or not): marks it sent, or forgets it.
    fn mark_sent(&self, id: u64, sent: std::io::Result<()>) -> Result<()> {
        let mut pending = self.pending.lock().expect("pending poisoned");
        match sent {
            Ok(()) => {
                if let Some(w) = pending.as_mut().and_then(|p| p.get_mut(&id)) {
                    w.sent = true;
                }
                Ok(())
            }
            Err(source) => {
                if let Some(p) = pending.as_mut() {
                    p.remove(&id);
                }
                Err(match source.kind() {
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset => {
                        Error::Disconnected
                    }
                    _ => Error::Io { what: "sending a request to the broker", source },
                })
            }
        }
    }

    /// The error for a session that has ended: why the broker closed it, if it said.
    fn disconnected(&self) -> Error {
        match self.closing.lock().expect("closing poisoned").clone() {
            Some(reason) => Error::Closed { reason },
            None => Error::Disconnected,
        }
    }
}

/// After `broker.Restarted`: asks which of the requests in flight the old broker took along
/// and fails those (retryable), then registers this session's app-service hosts again with the
/// connections they still serve.
async fn after_restart(inner: Arc<Inner>) {
    use protocol::app_service::RegisterHost;
    use protocol::broker::Resync;
    let sent: Vec<u64> = match inner.pending.lock().expect("pending poisoned").as_ref() {
        Some(p) => p.iter().filter(|(_, w)| w.sent).map(|(id, _)| *id).collect(),
        None => return,
    };
    let asked =
        tokio::time::timeout(inner.timeout, inner.request(Resync { sent }.into(), &[])).await;
    let lost: Vec<u64> = match asked {
        Ok(Ok((raw, _))) => raw.decode().unwrap_or_default(),
        _ => Vec::new(),
    };
    for id in lost {
        let waiting =
            inner.pending.lock().expect("pending poisoned").as_mut().and_then(|p| p.remove(&id));
        if let Some(w) = waiting {
            let _ = w.tx.send(Err(Error::BrokerRestarted { request: w.name }));
        }
    }
    let hosted: Vec<(String, Vec<u64>)> = inner
        .hosting
        .lock()
        .expect("hosting poisoned")
        .iter()
        .map(|(name, live)| (name.clone(), live.iter().copied().collect()))
        .collect();
    for (name, serving) in hosted {
        let again = RegisterHost { app_service_name: name, serving: Some(serving) };
        let _ = tokio::time::timeout(inner.timeout, inner.request(again.into(), &[])).await;
    }
    // RPC endpoints: the broker's table is gone; register each again under a new id. One whose
    // name another process took meanwhile (or that the broker refuses now) ends: its
    // `RpcServer::accept` returns `None`. Connections made stay (they are peer to peer).
    let endpoints: Vec<(u64, String, Option<String>)> = {
        let r = inner.rpc.lock().expect("rpc routes poisoned");
        r.routes.iter().map(|(id, route)| (*id, route.name.clone(), route.sddl.clone())).collect()
    };
    register_com_again(&inner).await;
    for (old, name, sddl) in endpoints {
        let again = protocol::rpc::Register { name, sddl };
        let reply = tokio::time::timeout(inner.timeout, inner.request(again.into(), &[])).await;
        let new: Option<u64> = match reply {
            Ok(Ok((raw, _))) => raw.decode().ok(),
            _ => None,
        };
        let mut r = inner.rpc.lock().expect("rpc routes poisoned");
        let Some(route) = r.routes.remove(&old) else { continue };
        let Some(new) = new else { continue };
        route.id.store(new, Ordering::SeqCst);
        let early = r.early.remove(&new).unwrap_or_default();
        r.early_count -= early.len();
        for c in early {
            let _ = route.tx.send(c);
        }
        r.routes.insert(new, route);
    }
}

/// After a broker restart: the class registrations of a COM server that is not shutting down,
/// made again (the broker's cookies change; the SDK's stay).
async fn register_com_again(inner: &Inner) {
    let again: Vec<(u64, String, u32)> = {
        let c = inner.com.lock().expect("com route poisoned");
        if c.suspended || c.tx.is_none() {
            return;
        }
        c.registrations.iter().map(|(k, (clsid, flags, _))| (*k, clsid.clone(), *flags)).collect()
    };
    let any = !again.is_empty();
    for (key, clsid, flags) in again {
        let r = protocol::com::RegisterClassObject { clsid, flags };
        let reply = tokio::time::timeout(inner.timeout, inner.request(r.into(), &[])).await;
        let cookie: Option<u64> = match reply {
            Ok(Ok((raw, _))) => raw.decode().ok(),
            _ => None,
        };
        let mut c = inner.com.lock().expect("com route poisoned");
        match cookie {
            Some(cookie) => {
                if let Some(reg) = c.registrations.get_mut(&key) {
                    reg.2 = cookie;
                }
            }
            None => {
                c.registrations.remove(&key);
            }
        }
    }
    if any {
        let (objects, locks) = inner.com.lock().expect("com route poisoned").counts;
        let report = protocol::com::ReportCount { objects, locks };
        let _ = tokio::time::timeout(inner.timeout, inner.request(report.into(), &[])).await;
    }
}

async fn read_loop(inner: Arc<Inner>) {
    let why = loop {
        let packet = match inner.sock.recv(MAX_FRAME_LEN + 1).await {
            Ok(Some(p)) => p,
            Ok(None) => break Error::Disconnected,
            Err(source) => break Error::Io { what: "receiving from the broker", source },
        };
        if packet.truncated {
            break Error::Protocol(format!("broker sent a frame of {} bytes", packet.full_len));
        }
        let frame = match Frame::from_cbor(&packet.data) {
            Ok(f) => f,
            Err(e) => break Error::Protocol(e.to_string()),
        };
        if let Some(reply) = frame.reply {
            let waiter = inner
                .pending
                .lock()
                .expect("pending poisoned")
                .as_mut()
                .and_then(|p| p.remove(&frame.id));
            if let Some(w) = waiter {
                let _ = w.tx.send(match reply {
                    Reply::Ok(raw) => Ok((raw, packet.fds)),
                    Reply::Err(e) => Err(Error::from_reply(e)),
                });
            }
        } else if let Some(event) = frame.event {
            if let Event::Broker(protocol::broker::Event::Restarted(_)) = event {
                tokio::spawn(after_restart(inner.clone()));
                continue;
            }
            route_event(&inner, event, packet.fds);
        }
    };
    let pending = inner.pending.lock().expect("pending poisoned").take();
    inner.exit_signal.send_modify(|n| *n += 1);
    inner.incoming.lock().expect("incoming poisoned").clear();
    inner.decisions.lock().expect("decisions poisoned").take();
    inner.registry.lock().expect("registry routes poisoned").close();
    *inner.rpc.lock().expect("rpc routes poisoned") = RpcRoutes::default();
    inner.com.lock().expect("com route poisoned").tx.take();
    inner.activations.lock().expect("activations poisoned").take();
    inner.operations_signal.send_modify(|n| *n += 1);
    inner.canceled.send_if_modified(|r| {
        if r.is_none() {
            *r = Some(BackgroundTaskCancellationReason::Abort);
            true
        } else {
            false
        }
    });
    let closing = inner.closing.lock().expect("closing poisoned").clone();
    for (_, w) in pending.into_iter().flatten() {
        let _ = w.tx.send(Err(match (&why, &closing) {
            (Error::Protocol(m), _) => Error::Protocol(m.clone()),
            (_, Some(reason)) => Error::Closed { reason: reason.clone() },
            _ => Error::Disconnected,
        }));
    }
}

fn route_event(inner: &Inner, event: Event, fds: Vec<OwnedFd>) {
    use protocol::{app_service, diagnostics, launch, launcher, pipes};
    match event {
        Event::Launch(launch::Event::ProcessExited(e)) => {
            let mut exits = inner.exits.lock().expect("exits poisoned");
            exits.done.insert(e.pid, ExitStatus { code: e.code, signal: e.signal });
            drop(exits);
            inner.exit_signal.send_modify(|n| *n += 1);
        }
        Event::AppService(app_service::Event::IncomingConnection(incoming)) => {
            // An unrouted connection (no provider for that name here) is dropped: closing its
            // fd tells the client at once.
            let key = incoming.app_service_name.to_ascii_lowercase();
            let tx = inner.incoming.lock().expect("incoming poisoned").get(&key).cloned();
            if let (Some(tx), Some(fd)) = (tx, fds.into_iter().next()) {
                let _ = tx.send((incoming, fd));
            }
        }
        Event::AppService(app_service::Event::Canceled(c)) => {
            inner.canceled.send_replace(Some(c.reason));
        }
        Event::Pipes(pipes::Event::ClientConnected(c)) => {
            if let Some(fd) = fds.into_iter().next() {
                let mut p = inner.pipes.lock().expect("pipes poisoned");
                let client = (c.client_pid, c.client_package_family_name, fd);
                match p.routes.get(&c.instance) {
                    Some(tx) => {
                        let _ = tx.send(client);
                    }
                    None => p.early.entry(c.instance).or_default().push(client),
                }
            }
        }
        Event::Launcher(launcher::Event::Activated(a)) => {
            if let Some(tx) = inner.activations.lock().expect("activations poisoned").as_ref() {
                let _ = tx.send(a.activation);
            }
        }
        Event::Launcher(launcher::Event::OperationCanceled(c)) => {
            inner.canceled_operations.lock().expect("operations poisoned").insert(c.operation_id);
            inner.operations_signal.send_modify(|n| *n += 1);
        }
        Event::Broker(protocol::broker::Event::Closing(c)) => {
            *inner.closing.lock().expect("closing poisoned") = Some(c.reason);
        }
        Event::Packages(protocol::packages::Event::InstallProgress(p)) => {
            inner.install_progress.send_replace(Some(p));
        }
        Event::Rpc(protocol::rpc::Event::Incoming(c)) => {
            let Some(fd) = fds.into_iter().next() else { return };
            let mut r = inner.rpc.lock().expect("rpc routes poisoned");
            match r.routes.get(&c.endpoint_id) {
                Some(route) => {
                    let _ = route.tx.send((c, fd));
                }
                // Not routed yet: held (bounded), else closed, which the client sees as EOF.
                None if r.early_count < EARLY_RPC => {
                    r.early_count += 1;
                    r.early.entry(c.endpoint_id).or_default().push((c, fd));
                }
                None => {}
            }
        }
        Event::Com(protocol::com::Event::Activate(a)) => {
            // Without a route (no server here) the fd is closed: the client activates again.
            let Some(fd) = fds.into_iter().next() else { return };
            if let Some(tx) = inner.com.lock().expect("com route poisoned").tx.as_ref() {
                let _ = tx.send((a, fd));
            }
        }
        Event::Registry(protocol::registry::Event::KeyChanged(c)) => {
            let mut r = inner.registry.lock().expect("registry routes poisoned");
            // A reader that does not keep up gets its changes coalesced, not more memory.
            if let Some(q) = r.routes.get(&c.watch) {
                q.push(c);
            } else if r.early.len() < EARLY_WATCHES || r.early.contains_key(&c.watch) {
                r.early.entry(c.watch).or_default().push(c);
            }
        }
        Event::Diagnostics(diagnostics::Event::Decision(d)) => {
            if let Some(tx) = inner.decisions.lock().expect("decisions poisoned").as_ref() {
                let _ = tx.send(d.record);
            }
        }
        _ => {}
    }
}
