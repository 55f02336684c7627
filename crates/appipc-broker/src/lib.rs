//! The appipc broker (`appipcd`) as a library.
//!
//! One broker runs per user. It listens on a public `SOCK_SEQPACKET` socket for the user's
//! unpackaged processes, refuses peers of any other uid, installs and removes packages,
//! launches packaged processes confined in app containers with a pre-authenticated session
//! socket (their identity), keeps a pidfd for each and notices when they exit, and mediates
//! every IPC mechanism. It decides; it does not carry application data.
//!
//! The structure (see `docs/architecture.md`):
//!
//! * [`session`] reads a session's frames, [`outbox`] sends what goes back, [`sessions`] keeps the
//!   table of live sessions and its limits; [`dispatch`] checks a request's fds and hands it to
//!   its mechanism in [`mech`], one module per mechanism;
//! * [`caller`] is who is asking, fixed when the session was created;
//! * [`decide`] is the one place where anything is allowed or refused (the pure rules are in
//!   `appipc_model::policy`), and keeps the decision log that `appipc why` reads;
//! * [`hooks`] carries lifecycle events (session closed, process exited, package installed or
//!   removed) to the mechanisms;
//! * [`repository`] and [`state`] hold installed packages and the SQLite store;
//! * [`launcher`], [`activation`], [`container`] start (confined) processes;
//! * [`error`] nests one error type per mechanism, each mapped to its Windows code.
//!
//! ```no_run
//! # async fn run() -> Result<(), appipc_broker::BrokerError> {
//! use appipc_broker::{Broker, Paths};
//! let broker = Broker::bind(Paths::from_env())?;
//! broker.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```
//!
//! App-container processes are confined (`container`, `restrictions`: namespaces, the uid
//! model, the mount plan, Landlock, seccomp; docs/architecture.md, "App containers"). The IPC
//! mechanisms not yet here arrive as modules of their own.
#![forbid(unsafe_code)]

pub mod activation;
pub mod applog;
pub mod blocking;
pub mod caller;
pub mod config;
pub mod container;
mod cx;
pub mod decide;
mod dispatch;
pub mod error;
mod hooks;
pub mod keeper;
pub mod launcher;
pub mod limits;
pub mod mech;
pub mod outbox;
mod recovery;
pub mod repository;
mod restrictions;
pub mod session;
pub mod sessions;
pub mod state;
mod turns;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use appipc_sys::aio::AsyncListener;
use appipc_sys::fs::LockFile;
use tokio::sync::watch;

pub use config::{Config, Paths};
pub use error::BrokerError;

use crate::caller::Caller;
use crate::error::Result;
use crate::launcher::{Launcher, Processes};
use crate::repository::Repository;

/// The fd number at which a launched process finds its session socket
/// (`APPIPC_SESSION_FD`).
pub const SESSION_FD: u32 = 3;

/// The async runtime's worker threads in `appipcd`.
const WORKER_THREADS: usize = 2;

/// The turns pipelining sessions share ([`turns`]): one fewer than the worker threads, so that
/// however many clients pipeline, one worker is left to sessions that send one request at a
/// time (measured: a probe's p99 under 1 000 pipelining clients fell from ~100 ms to ~10 ms on
/// a loaded 2-core machine, at the same requests per second).
const PIPELINING_TURNS: usize = if WORKER_THREADS > 1 { WORKER_THREADS - 1 } else { 1 };

/// A one-way "stop now" signal shared by all tasks.
#[derive(Debug)]
pub(crate) struct Stopping {
    tx: watch::Sender<bool>,
}

impl Stopping {
    fn new() -> Stopping {
        Stopping { tx: watch::channel(false).0 }
    }

    /// Asks everything to stop.
    pub(crate) fn cancel(&self) {
        self.tx.send_replace(true);
    }

    /// Whether [`Stopping::cancel`] was called.
    pub(crate) fn is_cancelled(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once [`Stopping::cancel`] was called.
    pub(crate) async fn cancelled(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
}

/// State every session shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) paths: Paths,
    pub(crate) repository: Repository,
    pub(crate) decisions: decide::Decisions,
    pub(crate) launcher: Launcher,
    pub(crate) processes: Arc<Processes>,
    pub(crate) stopping: Stopping,
    pub(crate) app_services: mech::app_service::AppServices,
    pub(crate) holders: container::Holders,
    /// Loopback ports packages hold (`mech::loopback::data_path`).
    pub(crate) loopback_ports: mech::loopback::data_path::Ports,
    pub(crate) tokens: mech::storage::Tokens,
    pub(crate) named_objects: mech::named_objects::NamedObjects,
    pub(crate) pipes: mech::pipes::Pipes,
    pub(crate) registry: mech::registry::Registry,
    pub(crate) rpc: mech::rpc::Rpc,
    pub(crate) com: mech::com::Com,
    pub(crate) protocols: mech::launcher::Protocols,
    /// Where blocking work runs (bounded).
    pub(crate) blocking: blocking::BlockingPool,
    /// Where the loopback data path's `sock_diag` queries and socket making run: bounded, and
    /// apart from `blocking`, so that neither starves the other.
    pub(crate) loopback_pool: blocking::BlockingPool,
    /// The live connect supervisors of packaged full-trust processes, per package.
    pub(crate) supervisors: mech::loopback::data_path::Supervisors,
    /// The configuration (limits).
    pub(crate) config: Config,
    /// The live sessions.
    pub(crate) sessions: sessions::Sessions,
    /// The fds clients may make the broker hold.
    pub(crate) fds: Arc<limits::FdBudget>,
    /// Log lines a flood would repeat.
    pub(crate) log_limiter: limits::LogLimiter,
    /// Held while a publisher cache folder is looked up and created, so two spellings of one
    /// name never become two folders (`mech::storage::ensure_folder`).
    pub(crate) publisher_cache_lock: std::sync::Mutex<()>,
    /// Holds a duplicate of every session, so that none ends with the broker.
    pub(crate) keeper: keeper::Keeper,
    /// This broker's generation (one more than the broker before it): the high half of every
    /// key it hands out, so that keys never repeat across restarts.
    generation: u64,
    next_key: AtomicU64,
    uid: u32,
    /// Sessions the broker created itself (for launched processes, `OpenSession`), handed to
    /// the accept loop to serve. A channel rather than a direct spawn keeps the session future
    /// from containing itself.
    adopt: tokio::sync::mpsc::UnboundedSender<(std::os::fd::OwnedFd, Caller)>,
}

impl Shared {
    /// Serves a session the broker created.
    pub(crate) fn adopt_session(&self, sock: std::os::fd::OwnedFd, caller: Caller) {
        if self.adopt.send((sock, caller)).is_err() {
            tracing::warn!("broker stopping; session dropped");
        }
    }

    /// Gives the keeper the session, then serves it (for a session handed to a process: a
    /// broker that dies once the process has it does not take it along).
    pub(crate) async fn keep_and_adopt_session(
        &self,
        sock: std::os::fd::OwnedFd,
        caller: Caller,
        bootstrap: bool,
    ) {
        use std::os::fd::AsFd;
        let kept = self.keeper.put(
            caller.session_id,
            keeper::Record::of(&caller, bootstrap),
            sock.as_fd(),
        );
        keeper::wait_kept(kept, caller.session_id, &self.log_limiter).await;
        self.adopt_session(sock, caller);
    }

    /// A key no other session, process record or broker before this one used.
    pub(crate) fn next_key(&self) -> u64 {
        (self.generation << 32) | (self.next_key.fetch_add(1, Ordering::Relaxed) & 0xFFFF_FFFF)
    }
}

/// A broker bound to its socket, ready to [`run`](Broker::run).
#[derive(Debug)]
pub struct Broker {
    shared: Arc<Shared>,
    adopted: tokio::sync::mpsc::UnboundedReceiver<(std::os::fd::OwnedFd, Caller)>,
    listener: std::os::fd::OwnedFd,
    found: recovery::Found,
    /// The listening socket came from socket activation: its file is systemd's, not removed.
    inherited: bool,
    _locks: [LockFile; 2],
}

/// Creates `dir` (and its parents) private to the user, and checks it is the user's.
pub(crate) fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| BrokerError::io(format!("creating {}", dir.display()), e))?;
    let meta = std::fs::metadata(dir)
        .map_err(|e| BrokerError::io(format!("reading {}", dir.display()), e))?;
    use std::os::unix::fs::MetadataExt;
    if meta.uid() != appipc_sys::cred::current_uid() {
        return Err(BrokerError::io(
            format!("checking {}", dir.display()),
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("it belongs to uid {}, not to this user", meta.uid()),
            ),
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| BrokerError::io(format!("restricting {}", dir.display()), e))?;
    }
    Ok(())
}

impl Broker {
    /// Creates the folders, takes the single-instance locks, opens the state database and
    /// binds the public socket. Must be called before any tokio runtime is started in this
    /// process only if the caller relies on the launcher thread being forked early; it is safe
    /// to call anywhere.
    pub fn bind(paths: Paths) -> Result<Broker> {
        let config = Config::load(&Paths::config_file())
            .map_err(|e| BrokerError::io("reading the configuration", std::io::Error::other(e)))?;
        Broker::bind_with(paths, config)
    }

    /// [`Broker::bind`] with a given configuration. Sessions end with this broker (no keeper:
    /// see [`Broker::bind_keeping`]).
    pub fn bind_with(paths: Paths, config: Config) -> Result<Broker> {
        Broker::bind_keeping(paths, config, None)
    }

    /// [`Broker::bind_with`], with `keeper` the executable that runs the session keeper (one
    /// that calls [`keeper::main_if_keeper`] first, as `appipcd` and `appipc` do): the keeper
    /// of a broker before this one is found again and its sessions taken over, or one is
    /// started, so that sessions outlive this broker too.
    pub fn bind_keeping(
        paths: Paths,
        config: Config,
        keeper: Option<std::path::PathBuf>,
    ) -> Result<Broker> {
        Broker::bind_on(paths, config, keeper, None)
    }

    /// [`Broker::bind_keeping`] on a listening socket the broker inherited (socket activation):
    /// it is served as it is, and its file is left in place when the broker stops.
    pub fn bind_inherited(
        paths: Paths,
        config: Config,
        keeper: Option<std::path::PathBuf>,
        listener: std::os::fd::OwnedFd,
    ) -> Result<Broker> {
        Broker::bind_on(paths, config, keeper, Some(listener))
    }

    fn bind_on(
        paths: Paths,
        config: Config,
        keeper: Option<std::path::PathBuf>,
        inherited: Option<std::os::fd::OwnedFd>,
    ) -> Result<Broker> {
        // Every folder appipc keeps things in is the user's alone (0700), whatever the umask.
        for dir in [&paths.runtime_dir, &paths.home, &paths.cache_dir, &paths.state_dir] {
            create_private_dir(dir)?;
        }
        let take = |dir: &std::path::Path| -> Result<LockFile> {
            let lock = dir.join("broker.lock");
            appipc_sys::fs::try_lock_exclusive(&lock)
                .map_err(|e| BrokerError::io(format!("locking {}", lock.display()), e))?
                .ok_or_else(|| BrokerError::AlreadyRunning(dir.display().to_string()))
        };
        let locks = [take(&paths.runtime_dir)?, take(&paths.home)?];
        let repository = Repository::open(&paths, &config.packages)?;
        let generation = repository.with_store(|s| s.next_generation()).map_err(|e| {
            BrokerError::io("counting broker generations", std::io::Error::other(e))
        })?;
        let mut found = recovery::prepare(&paths, &repository)?;
        let decisions = decide::Decisions::start(&config.decisions, paths.decision_log());
        let socket = paths.socket();
        let is_inherited = inherited.is_some();
        let listener = listen(&socket, inherited)?;
        let launcher =
            Launcher::start().map_err(|e| BrokerError::io("starting the launcher thread", e))?;
        let (keeper, kept) = match keeper {
            Some(exe) => keeper::Keeper::open(exe, &paths.runtime_dir),
            None => (keeper::Keeper::none(), Vec::new()),
        };
        found.sessions = kept;
        let (adopt, adopted) = tokio::sync::mpsc::unbounded_channel();
        Ok(Broker {
            adopted,
            found,
            shared: Arc::new(Shared {
                adopt,
                paths,
                repository,
                decisions,
                launcher,
                processes: Arc::new(Processes::default()),
                stopping: Stopping::new(),
                app_services: mech::app_service::AppServices::first_connection(
                    (generation << 32) | 1,
                ),
                holders: container::Holders::default(),
                loopback_ports: Default::default(),
                tokens: mech::storage::Tokens::default(),
                named_objects: mech::named_objects::NamedObjects::default(),
                pipes: mech::pipes::Pipes::default(),
                registry: mech::registry::Registry::first_handle((generation << 32) | 0x1000),
                rpc: mech::rpc::Rpc::default(),
                com: mech::com::Com::default(),
                protocols: mech::launcher::Protocols::first_id((generation << 32) | 1),
                blocking: blocking::BlockingPool::new(config.limits.blocking_threads),
                loopback_pool: blocking::BlockingPool::new(mech::loopback::data_path::POOL_THREADS),
                supervisors: Default::default(),
                fds: limits::FdBudget::new(
                    appipc_sys::env::open_file_limit(),
                    config.limits.fd_reserve,
                ),
                sessions: sessions::Sessions::new(
                    config.limits.queued_reply_bytes_total,
                    PIPELINING_TURNS,
                ),
                log_limiter: limits::LogLimiter::default(),
                publisher_cache_lock: std::sync::Mutex::new(()),
                config,
                keeper,
                generation,
                next_key: AtomicU64::new(1),
                uid: appipc_sys::cred::current_uid(),
            }),
            listener,
            inherited: is_inherited,
            _locks: locks,
        })
    }

    /// The locations this broker uses.
    pub fn paths(&self) -> &Paths {
        &self.shared.paths
    }

    /// Serves until `shutdown` resolves or a client asks it to stop. Removes the socket on the
    /// way out. Must run inside a tokio runtime.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Broker { shared, listener, mut adopted, found, inherited, _locks } = self;
        let listener = match AsyncListener::new(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot register the listening socket");
                return;
            }
        };
        tracing::info!(
            socket = %shared.paths.socket().display(),
            home = %shared.paths.home.display(),
            pid = appipc_sys::cred::current_pid(),
            keeper = shared.keeper.pid(),
            generation = shared.generation,
            "broker listening"
        );
        recovery::resume(&shared, found);
        tokio::pin!(shutdown);
        spawn_housekeeping(&shared);
        spawn_trimmer(&shared);
        // One fd kept aside: when the process is out of fds, it is given up to accept (and
        // close) the connection that waits, instead of spinning on EMFILE.
        let mut spare = appipc_sys::fs::open_file(std::path::Path::new("/dev/null"), false).ok();
        loop {
            let conn = tokio::select! {
                c = listener.accept() => c,
                Some((sock, caller)) = adopted.recv() => {
                    tokio::spawn(session::start(shared.clone(), sock, caller));
                    continue;
                }
                () = &mut shutdown => break,
                () = shared.stopping.cancelled() => break,
            };
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE (24), ENFILE (23).
                    let out_of_fds = matches!(e.raw_os_error(), Some(24 | 23));
                    if let Some(n) = shared.log_limiter.allow("accept failed") {
                        tracing::error!(error = %e, suppressed = n, "accept failed");
                    }
                    if out_of_fds && spare.take().is_some() {
                        if let Ok(c) = listener.accept().await {
                            drop(c);
                        }
                        spare = appipc_sys::fs::open_file(std::path::Path::new("/dev/null"), false)
                            .ok();
                    } else {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    }
                    continue;
                }
            };
            let Some(creds) = admitted(&shared, &conn) else { continue };
            let caller = Caller::unpackaged(shared.next_key(), creds.pid, creds.uid);
            // Served once the keeper has it (within a bound): a broker that dies after it
            // answered the connection's first request does not take the connection along.
            let kept = {
                use std::os::fd::AsFd;
                shared.keeper.put(caller.session_id, keeper::Record::Public, conn.as_fd())
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                keeper::wait_kept(kept, caller.session_id, &shared.log_limiter).await;
                session::start(shared, conn, caller).await
            });
        }
        shared.stopping.cancel();
        // Sessions finish what they were doing and say goodbye (a little while).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while !shared.sessions.is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        shared.decisions.close();
        if !inherited {
            let _ = std::fs::remove_file(shared.paths.socket());
        }
        tracing::info!("broker stopped");
    }
}

/// The credentials of a peer of the public socket, if it may have a session: one of the
/// broker's user, with a pid in the broker's pid namespace (pid 0: a peer outside it, which
/// could not be told from any other such peer, nor followed). Refusals are logged.
fn admitted(
    shared: &Shared,
    conn: impl std::os::fd::AsFd,
) -> Option<appipc_sys::cred::PeerCredentials> {
    let creds = match appipc_sys::cred::peer_credentials(conn) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read peer credentials; closing");
            return None;
        }
    };
    let refusal = if creds.uid != shared.uid {
        "refused a peer of another user"
    } else if creds.pid == 0 {
        "refused a peer outside the broker's pid namespace"
    } else {
        return Some(creds);
    };
    if let Some(n) = shared.log_limiter.allow(refusal) {
        tracing::warn!(peer_uid = creds.uid, peer_pid = creds.pid, suppressed = n, "{refusal}");
    }
    None
}

/// Once a flood has subsided (many sessions gone, or many queued bytes sent or dropped), and
/// again once it has ended (nothing changed for a second after some sessions or bytes went),
/// the allocator's free memory is given back to the kernel (`malloc_trim`, off the runtime's
/// threads), so that the broker's RSS returns near where it was before: glibc returns only
/// the top of its heap by itself, and the pages a flood freed in the middle stay otherwise.
fn spawn_trimmer(shared: &Arc<Shared>) {
    const SESSIONS_GONE: usize = 64;
    const BYTES_GONE: usize = 4 << 20;
    let shared = shared.clone();
    tokio::spawn(async move {
        // The highest counts since the last trim, and the counts a second ago.
        let (mut high_sessions, mut high_bytes) = (0usize, 0usize);
        let mut before = (0usize, 0usize);
        loop {
            tokio::select! {
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                () = shared.stopping.cancelled() => return,
            }
            let (sessions, bytes) = (shared.sessions.len(), shared.sessions.queued_bytes());
            high_sessions = high_sessions.max(sessions);
            high_bytes = high_bytes.max(bytes);
            let (gone, drained) = (high_sessions - sessions, high_bytes - bytes);
            let subsided = (gone >= SESSIONS_GONE && sessions <= high_sessions / 2)
                || (drained >= BYTES_GONE && bytes <= high_bytes / 4);
            let ended = (sessions, bytes) == before
                && (gone >= SESSIONS_GONE / 4 || drained >= BYTES_GONE / 4);
            before = (sessions, bytes);
            if subsided || ended {
                (high_sessions, high_bytes) = (sessions, bytes);
                let released =
                    tokio::task::spawn_blocking(appipc_sys::malloc::trim).await.unwrap_or(false);
                tracing::debug!(
                    sessions,
                    queued_bytes = bytes,
                    released,
                    "flood subsided: malloc_trim"
                );
            }
        }
    });
}

/// Now and then: public sessions idle with nothing open are closed, and app logs grown past
/// their size are rotated (off the runtime's threads).
fn spawn_housekeeping(shared: &Arc<Shared>) {
    let shared = shared.clone();
    tokio::spawn(async move {
        let every =
            std::time::Duration::from_secs(shared.config.limits.idle_timeout_secs.clamp(1, 10));
        let mut logs_checked = std::time::Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => shared.sessions.close_idle(&shared),
                () = shared.stopping.cancelled() => return,
            }
            if logs_checked.elapsed() >= applog::SWEEP_EVERY {
                logs_checked = std::time::Instant::now();
                let dir = shared.paths.logs();
                tokio::task::spawn_blocking(move || applog::sweep(&dir));
            }
        }
    });
}

/// Runs a broker for this environment ([`Paths::from_env`]) until SIGTERM or SIGINT or a
/// client's shutdown request: what `appipcd` and `appipc daemon` do.
pub fn run_daemon() -> Result<()> {
    match appipc_sys::process::raise_open_file_limit() {
        Ok(n) => tracing::debug!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!("could not raise the open-file limit: {e}"),
    }
    let config = Config::load(&Paths::config_file())
        .map_err(|e| BrokerError::io("reading the configuration", std::io::Error::other(e)))?;
    // How long a loopback supervisor waits for this broker's answer before it lets a call
    // through (20 s; tests shorten it).
    if let Some(ms) = std::env::var("APPIPC_LOOPBACK_ANSWER_MS").ok().and_then(|v| v.parse().ok()) {
        appipc_sys::seccomp_notify::set_loopback_answer_wait(std::time::Duration::from_millis(ms));
    }
    let exe = std::env::current_exe().ok();
    let paths = Paths::from_env();
    let activated = appipc_sys::systemd::take_listen_fd()
        .map_err(|e| BrokerError::io("taking the socket-activation socket (LISTEN_FDS)", e))?;
    let broker = match activated {
        Some(listener) => {
            tracing::info!("socket activation: serving the inherited socket");
            Broker::bind_inherited(paths, config, exe, listener)?
        }
        None => Broker::bind_keeping(paths, config, exe)?,
    };
    let socket = broker.paths().socket();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build()
        .map_err(|e| BrokerError::io("starting the runtime", e))?;
    rt.block_on(async move {
        let stop = async {
            use tokio::signal::unix::{SignalKind, signal};
            match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM"),
                        _ = int.recv() => tracing::info!("SIGINT"),
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        // Listening: systemd (Type=notify) may start what depends on the broker.
        let status = format!("READY=1\nSTATUS=serving {}", socket.display());
        if let Err(e) = appipc_sys::systemd::notify(&status) {
            tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
        }
        broker.run(stop).await;
        let _ = appipc_sys::systemd::notify("STOPPING=1");
    });
    Ok(())
}

/// The listening socket: the one systemd passed (warning when it is not where clients look),
/// or a new one at `socket`, replacing a dead broker's (the caller holds the broker lock).
fn listen(
    socket: &std::path::Path,
    inherited: Option<std::os::fd::OwnedFd>,
) -> Result<std::os::fd::OwnedFd> {
    Ok(match inherited {
        Some(l) => {
            let bound = appipc_sys::systemd::bound_path(&l);
            if bound.as_deref() != Some(socket) {
                tracing::warn!(
                    inherited = ?bound,
                    expected = %socket.display(),
                    "the inherited socket is not where clients look for the broker"
                );
            }
            l
        }
        None => {
            // We hold the lock, so a socket file left here belongs to a broker that died.
            match std::fs::remove_file(socket) {
                Ok(()) => tracing::info!(path = %socket.display(), "removed stale socket"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(BrokerError::io(format!("removing stale {}", socket.display()), e));
                }
            }
            appipc_sys::socket::seqpacket_listen(socket, 128)
                .map_err(|e| BrokerError::io(format!("listening on {}", socket.display()), e))?
        }
    })
}
