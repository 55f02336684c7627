//! The session keeper: a small process that holds a duplicate of the broker's end of every
//! session, so that a broker's death closes none of them. A restarted broker takes them back
//! (the keeper hands over every fd it holds, with a record of whose session it is) and serves
//! them again; their peers never see the end of the stream.
//!
//! The keeper is the broker's own executable started with [`KEEPER_ENV`] set (both `appipcd`
//! and `appipc` call [`main_if_keeper`] first). It runs in a session of its own, not dumpable
//! (no process of the user without `CAP_SYS_PTRACE` can `ptrace` it or take its fds with
//! `pidfd_getfd`), with no fd of the broker's but the ones it is given, and listens on
//! `keeper.sock` in the broker's private runtime folder (0700), where no app container can
//! reach. It accepts one broker at a time, and only the process that holds the broker's lock
//! (`broker.lock` of the same runtime folder, as `/proc/locks` reports it) and has the
//! keeper's uid. A broker accepts a keeper only if it is the process a broker before it
//! started, recorded in `keeper.id` by pid, start time, boot and pidfs inode: a process that
//! took its pid or its socket's name is not it.
//!
//! The keeper is told of every session as it opens ([`Keeper::put`], with the fd) and closes
//! ([`Keeper::forget`]); it drops a session by itself when the peer's end is closed (`EPOLLHUP`).
//! It never reads or writes a session: requests that arrive while no broker runs wait in the
//! socket for the next one. It exits when no broker is connected and it holds nothing, so a
//! user's last session going away takes it too. If it dies while a broker runs, the broker
//! starts another and gives it every live session again.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use appipc_sys::aio::AsyncSeqPacket;
use appipc_sys::process::ProcessIdentity;
use appipc_sys::socket::{self, Blocking};
use serde::{Deserialize, Serialize};

use crate::caller::Caller;

/// Set (to the runtime folder) in the environment of the keeper process.
pub const KEEPER_ENV: &str = "APPIPC_KEEPER";

/// The keeper's socket, in the runtime folder.
pub const KEEPER_SOCKET: &str = "keeper.sock";

/// The keeper's identity, in the runtime folder.
pub const KEEPER_ID: &str = "keeper.id";

/// The most bytes of one keeper message.
const MAX_MESSAGE: usize = 64 * 1024;

/// Whose session a kept fd is: what the broker needs to serve it again with the same identity.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A connection to the public socket: the kernel still says who connected
    /// (`SO_PEERCRED`).
    Public,
    /// A session the broker opened for an unpackaged process (`OpenSession`).
    Unpackaged {
        /// Its pid.
        pid: u32,
        /// Its uid.
        uid: u32,
    },
    /// A session of a packaged process: the one it was started with (`bootstrap`, fd 3), or
    /// one opened over it.
    Packaged {
        /// The pid of the process the broker started.
        pid: u32,
        /// Its uid.
        uid: u32,
        /// The full name of the package version it runs.
        full_name: String,
        /// Its application.
        app_id: String,
        /// `appcontainer` or `fulltrust` (`TrustLevel::as_str`).
        trust: String,
        /// The session it inherited at fd 3 (shared with its children).
        bootstrap: bool,
    },
    /// The loopback channel of an app container's supervisor (`mech::loopback::data_path`):
    /// the broker's end of the socket pair made at that process's launch. A restarted broker
    /// answers the supervisor's questions again, so the container's loopback connects between
    /// packages go on working.
    Loopback {
        /// The pid of the process the broker started.
        pid: u32,
        /// Its uid.
        uid: u32,
        /// The full name of the package version it runs.
        full_name: String,
        /// Its application.
        app_id: String,
        /// `fulltrust` for a packaged full-trust process's supervisor (its `connect` only);
        /// absent for an app container's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trust: Option<String>,
    },
}

impl Record {
    /// The record of a session the broker created for `caller`.
    pub(crate) fn of(caller: &Caller, bootstrap: bool) -> Record {
        match (&caller.principal.package, &caller.full_name) {
            (Some(p), Some(full)) => Record::Packaged {
                pid: caller.pid,
                uid: caller.uid,
                full_name: full.clone(),
                app_id: p.app_id.to_string(),
                trust: caller.trust().as_str().to_owned(),
                bootstrap,
            },
            _ => Record::Unpackaged { pid: caller.pid, uid: caller.uid },
        }
    }

    /// The record of the loopback channel made for `caller` (a packaged process); `None` for
    /// a caller without a package.
    pub(crate) fn loopback(caller: &Caller) -> Option<Record> {
        let full_trust = caller.trust() == appipc_wire::caller::TrustLevel::FullTrust;
        match (&caller.principal.package, &caller.full_name) {
            (Some(p), Some(full)) => Some(Record::Loopback {
                pid: caller.pid,
                uid: caller.uid,
                full_name: full.clone(),
                app_id: p.app_id.to_string(),
                trust: full_trust
                    .then(|| appipc_wire::caller::TrustLevel::FullTrust.as_str().to_owned()),
            }),
            _ => None,
        }
    }
}

/// What broker and keeper say to each other (one JSON object per message, fds attached).
#[derive(Serialize, Deserialize, Debug)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Message {
    /// Broker: "I am the broker now; give me everything you hold."
    Hello,
    /// Broker: keep this session (its fd attached).
    Put { key: u64, record: Record },
    /// Broker: the session is closed; let it go.
    Drop { key: u64 },
    /// Broker: let everything go and exit (`appipc stop --apps`).
    Exit,
    /// Keeper: one session it holds (its fd attached).
    Entry { key: u64, record: Record },
    /// Keeper: that was all.
    End { count: usize },
}

fn send(sock: impl AsFd, m: &Message, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let bytes = serde_json::to_vec(m).map_err(io::Error::other)?;
    socket::send(sock, &bytes, fds, Blocking::Yes)
}

fn parse(p: &socket::Packet) -> io::Result<Message> {
    if p.truncated || p.fds_truncated {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "oversized keeper message"));
    }
    serde_json::from_slice(&p.data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

// ------------------------------------------------------------------------------------------
// The keeper process.

/// Runs the keeper and returns its exit code if this process was started as one (`KEEPER_ENV`
/// set); `None` otherwise. Call it first thing in `main`.
pub fn main_if_keeper() -> Option<std::process::ExitCode> {
    let dir = std::env::var_os(KEEPER_ENV)?;
    Some(match serve(Path::new(&dir)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appipc keeper: {e}");
            std::process::ExitCode::FAILURE
        }
    })
}

/// Whether `conn` comes from the broker of `runtime_dir`: the keeper's uid, and the process
/// that holds the broker's lock.
fn is_the_broker(conn: &OwnedFd, runtime_dir: &Path) -> bool {
    let Ok(creds) = appipc_sys::cred::peer_credentials(conn) else { return false };
    let holder = appipc_sys::fs::lock_holder(&runtime_dir.join("broker.lock")).ok().flatten();
    // Pid 0: a peer outside this pid namespace (as is a lock holder there): never the broker.
    creds.pid != 0 && creds.uid == rustix::process::geteuid().as_raw() && holder == Some(creds.pid)
}

struct KeeperState {
    epoll: OwnedFd,
    broker: Option<OwnedFd>,
    entries: HashMap<u64, (Record, OwnedFd)>,
}

const LISTENER: u64 = 0;
const BROKER: u64 = 1;

impl KeeperState {
    /// Watches `fd`: for what it has to say (`readable`), or only for its end (`EPOLLHUP`,
    /// which epoll always reports: a session's peer closed it, or the broker shut it down).
    fn watch(&self, fd: impl AsFd, key: u64, readable: bool) {
        use rustix::event::epoll::{self, EventData, EventFlags};
        let flags = if readable { EventFlags::IN | EventFlags::RDHUP } else { EventFlags::empty() };
        let _ = epoll::add(&self.epoll, fd, EventData::new_u64(key), flags);
    }

    fn unwatch(&self, fd: impl AsFd) {
        let _ = rustix::event::epoll::delete(&self.epoll, fd);
    }

    fn drop_entry(&mut self, key: u64) {
        if let Some((_, fd)) = self.entries.remove(&key) {
            self.unwatch(&fd);
        }
    }

    /// Handles what the broker sent; `Ok(false)` when the keeper is to exit.
    fn handle_broker_messages(&mut self) -> io::Result<bool> {
        loop {
            let Some(broker) = &self.broker else { return Ok(true) };
            let mut packet = match socket::recv(broker, MAX_MESSAGE, Blocking::No) {
                Ok(Some(p)) => p,
                Ok(None) => {
                    self.disconnect();
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(_) => {
                    self.disconnect();
                    return Ok(true);
                }
            };
            let mut fds = std::mem::take(&mut packet.fds);
            match parse(&packet) {
                Ok(Message::Hello) => {
                    let handed = self.entries.iter().try_for_each(|(key, (record, fd))| {
                        let m = Message::Entry { key: *key, record: record.clone() };
                        send(broker, &m, &[fd.as_fd()])
                    });
                    let ended = handed.and_then(|()| {
                        send(broker, &Message::End { count: self.entries.len() }, &[])
                    });
                    if ended.is_err() {
                        // That broker is gone already: wait for the next one, keeping all.
                        self.disconnect();
                        return Ok(true);
                    }
                }
                Ok(Message::Put { key, record }) if fds.len() == 1 && key > BROKER => {
                    self.drop_entry(key);
                    let fd = fds.remove(0);
                    self.watch(&fd, key, false);
                    self.entries.insert(key, (record, fd));
                }
                Ok(Message::Drop { key }) => self.drop_entry(key),
                Ok(Message::Exit) => return Ok(false),
                _ => {
                    eprintln!("appipc keeper: a message it does not understand; ignored");
                }
            }
        }
    }

    fn disconnect(&mut self) {
        if let Some(b) = self.broker.take() {
            self.unwatch(&b);
        }
    }
}

fn serve(runtime_dir: &Path) -> io::Result<()> {
    appipc_sys::process::close_inherited_fds()?;
    let _ = rustix::thread::set_name(c"appipc-keeper");
    let path = runtime_dir.join(KEEPER_SOCKET);
    let r = keep(runtime_dir, &path);
    // Our socket's name goes with us (unless another keeper's has taken it).
    let _ = std::fs::remove_file(&path);
    r
}

fn keep(runtime_dir: &Path, path: &Path) -> io::Result<()> {
    use rustix::event::epoll;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    let _ = rustix::process::setsid();
    let _ = appipc_sys::process::raise_open_file_limit();
    let _ = std::fs::remove_file(path);
    let listener = socket::seqpacket_listen(path, 16)?;
    let ours = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path)?.ino()
    };
    let mut st = KeeperState {
        epoll: epoll::create(epoll::CreateFlags::CLOEXEC)?,
        broker: None,
        entries: HashMap::new(),
    };
    st.watch(&listener, LISTENER, true);
    let started = Instant::now();
    let mut ever_served = false;
    let mut events = Vec::with_capacity(256);
    loop {
        events.clear();
        let tick = rustix::event::Timespec { tv_sec: 2, tv_nsec: 0 };
        match epoll::wait(&st.epoll, rustix::buffer::spare_capacity(&mut events), Some(&tick)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        for ev in events.drain(..) {
            match ev.data.u64() {
                LISTENER => {
                    // The listener is non-blocking: accept until there is no one left.
                    while let Ok(conn) = socket::accept(&listener) {
                        if st.broker.is_none() && is_the_broker(&conn, runtime_dir) {
                            st.watch(&conn, BROKER, true);
                            st.broker = Some(conn);
                            ever_served = true;
                        }
                        // Anyone else is closed at once.
                    }
                }
                BROKER => {
                    if !st.handle_broker_messages()? {
                        return Ok(());
                    }
                }
                key => st.drop_entry(key),
            }
        }
        if st.broker.is_none() {
            let replaced = {
                use std::os::unix::fs::MetadataExt;
                std::fs::metadata(path).map(|m| m.ino() != ours).unwrap_or(true)
            };
            let waited_enough = ever_served || started.elapsed() > Duration::from_secs(30);
            if replaced {
                // Another keeper serves this runtime folder: its name is not ours to remove.
                std::process::exit(0);
            }
            if waited_enough && st.entries.is_empty() {
                return Ok(());
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// The broker's side.

/// A session the keeper held across a broker's death.
#[derive(Debug)]
pub(crate) struct Kept {
    /// Its key (the session id it had).
    pub(crate) key: u64,
    /// Whose it is.
    pub(crate) record: Record,
    /// The broker's end.
    pub(crate) fd: OwnedFd,
}

enum Command {
    Put { key: u64, record: Record, fd: OwnedFd, done: Option<tokio::sync::oneshot::Sender<()>> },
    Drop { key: u64 },
    Exit { done: tokio::sync::oneshot::Sender<()> },
}

struct Entry {
    record: Record,
    sock: Option<Weak<AsyncSeqPacket>>,
}

/// The broker's handle on its keeper.
pub(crate) struct Keeper {
    tx: Option<Mutex<std::sync::mpsc::Sender<Command>>>,
    ended: std::sync::atomic::AtomicBool,
    entries: Arc<Mutex<HashMap<u64, Entry>>>,
    pid: Arc<std::sync::atomic::AtomicU32>,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keeper").field("pid", &self.pid()).finish_non_exhaustive()
    }
}

/// Where the keeper runs from and lives.
#[derive(Debug, Clone)]
struct Place {
    exe: PathBuf,
    runtime_dir: PathBuf,
}

fn read_id(runtime_dir: &Path) -> Option<ProcessIdentity> {
    #[derive(Deserialize)]
    struct Id {
        pid: u32,
        start_time: u64,
        boot_id: String,
        pidfs_inode: Option<u64>,
    }
    let text = std::fs::read_to_string(runtime_dir.join(KEEPER_ID)).ok()?;
    let id: Id = serde_json::from_str(&text).ok()?;
    Some(ProcessIdentity {
        pid: id.pid,
        start_time: id.start_time,
        boot_id: id.boot_id,
        pidfs_inode: id.pidfs_inode,
    })
}

fn write_id(runtime_dir: &Path, id: &ProcessIdentity) -> io::Result<()> {
    let text = serde_json::json!({
        "pid": id.pid,
        "start_time": id.start_time,
        "boot_id": id.boot_id,
        "pidfs_inode": id.pidfs_inode,
    });
    let tmp = runtime_dir.join(format!("{KEEPER_ID}.tmp"));
    std::fs::write(&tmp, text.to_string())?;
    std::fs::rename(&tmp, runtime_dir.join(KEEPER_ID))
}

/// Connects to the keeper `id` names, checking that the socket's listener is that very
/// process; hands over what it holds.
fn connect(runtime_dir: &Path, id: &ProcessIdentity) -> io::Result<(OwnedFd, Vec<Kept>)> {
    let pidfd = appipc_sys::process::adopt(id)?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the recorded keeper has exited"))?;
    let conn = socket::seqpacket_connect(&runtime_dir.join(KEEPER_SOCKET))?;
    let creds = appipc_sys::cred::peer_credentials(&conn)?;
    if creds.pid != id.pid || appipc_sys::process::has_exited(&pidfd) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{KEEPER_SOCKET} is served by pid {}, not the keeper {}", creds.pid, id.pid),
        ));
    }
    send(&conn, &Message::Hello, &[])?;
    let mut kept = Vec::new();
    loop {
        let ready = {
            use rustix::event::{PollFd, PollFlags, Timespec, poll};
            let mut p = [PollFd::new(&conn, PollFlags::IN)];
            poll(&mut p, Some(&Timespec { tv_sec: 10, tv_nsec: 0 }))?
        };
        if ready == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "the keeper did not answer"));
        }
        let Some(mut p) = socket::recv(&conn, MAX_MESSAGE, Blocking::Yes)? else {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the keeper hung up"));
        };
        match parse(&p)? {
            Message::Entry { key, record } if p.fds.len() == 1 => {
                kept.push(Kept { key, record, fd: p.fds.remove(0) });
            }
            Message::End { .. } => return Ok((conn, kept)),
            other => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unexpected keeper message {other:?}"),
                ));
            }
        }
    }
}

/// Starts a new keeper and connects to it; returns the connection, its identity and its
/// pidfd (it is our child: reap it when it ends).
fn start(place: &Place) -> io::Result<(OwnedFd, ProcessIdentity, OwnedFd)> {
    use std::os::unix::process::CommandExt;
    let _ = std::fs::remove_file(place.runtime_dir.join(KEEPER_SOCKET));
    let mut cmd = std::process::Command::new(&place.exe);
    cmd.env_clear()
        .env(KEEPER_ENV, &place.runtime_dir)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .process_group(0);
    let child = cmd.spawn()?;
    let pid = child.id();
    let pidfd = appipc_sys::process::pidfd_open(pid)?;
    drop(child);
    let id = appipc_sys::process::identify(&pidfd, pid)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match connect(&place.runtime_dir, &id) {
            Ok((conn, kept)) => {
                if !kept.is_empty() {
                    tracing::warn!(n = kept.len(), "a new keeper already held sessions; ignored");
                }
                write_id(&place.runtime_dir, &id)?;
                tracing::info!(keeper = pid, "session keeper started");
                return Ok((conn, id, pidfd));
            }
            Err(e) if Instant::now() > deadline || appipc_sys::process::has_exited(&pidfd) => {
                let _ = appipc_sys::process::send_signal(
                    &pidfd,
                    appipc_sys::process::ProcessSignal::KILL,
                );
                let _ = appipc_sys::process::try_reap(&pidfd);
                return Err(e);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

impl Keeper {
    /// A keeper that keeps nothing (the broker runs from a program that cannot be a keeper):
    /// sessions end with the broker.
    pub(crate) fn none() -> Keeper {
        Keeper {
            tx: None,
            ended: std::sync::atomic::AtomicBool::new(false),
            entries: Arc::new(Mutex::new(HashMap::new())),
            pid: Arc::new(std::sync::atomic::AtomicU32::new(0)),
        }
    }

    /// The keeper of a previous broker of `runtime_dir`, if one runs and is the process that
    /// broker recorded, with the sessions it held; else a new one started from `exe`. A keeper
    /// that cannot be started is logged: sessions then end with the broker.
    pub(crate) fn open(exe: PathBuf, runtime_dir: &Path) -> (Keeper, Vec<Kept>) {
        let place = Place { exe, runtime_dir: runtime_dir.to_path_buf() };
        let found = read_id(runtime_dir).map(|id| (connect(runtime_dir, &id), id));
        let (conn, id, kept, child) = match found {
            Some((Ok((conn, kept)), id)) => {
                tracing::info!(keeper = id.pid, sessions = kept.len(), "session keeper found");
                (conn, id, kept, None)
            }
            other => {
                if let Some((Err(e), id)) = other {
                    tracing::info!(keeper = id.pid, error = %e, "no usable session keeper");
                }
                match start(&place) {
                    Ok((conn, id, child)) => (conn, id, Vec::new(), Some(child)),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the session keeper; sessions will not survive the broker");
                        return (Keeper::none(), Vec::new());
                    }
                }
            }
        };
        let keeper = Keeper {
            tx: None,
            ended: std::sync::atomic::AtomicBool::new(false),
            entries: Arc::new(Mutex::new(HashMap::new())),
            pid: Arc::new(std::sync::atomic::AtomicU32::new(id.pid)),
        };
        for k in &kept {
            keeper
                .entries
                .lock()
                .expect("keeper poisoned")
                .insert(k.key, Entry { record: k.record.clone(), sock: None });
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let entries = keeper.entries.clone();
        let pid = keeper.pid.clone();
        let spawned = std::thread::Builder::new()
            .name("appipc-keeper".into())
            .spawn(move || client_loop(place, (conn, child), rx, entries, pid));
        match spawned {
            Ok(_) => (Keeper { tx: Some(Mutex::new(tx)), ..keeper }, kept),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the keeper thread");
                (Keeper::none(), kept)
            }
        }
    }

    /// Whether sessions outlive this broker (a keeper holds them).
    pub(crate) fn keeps(&self) -> bool {
        self.tx.is_some() && !self.ended.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The keeper's pid (0: none).
    pub(crate) fn pid(&self) -> u32 {
        self.pid.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn command(&self, c: Command) {
        if let Some(tx) = &self.tx {
            let _ = tx.lock().expect("keeper poisoned").send(c);
        }
    }

    /// Gives the keeper a duplicate of a session's fd; the receiver resolves once the keeper
    /// has it (it is in the keeper's socket: a broker that dies now does not take the session).
    pub(crate) fn put(
        &self,
        key: u64,
        record: Record,
        fd: BorrowedFd<'_>,
    ) -> tokio::sync::oneshot::Receiver<()> {
        let (done, rx) = tokio::sync::oneshot::channel();
        if self.tx.is_none() {
            let _ = done.send(());
            return rx;
        }
        let Ok(fd) = fd.try_clone_to_owned() else {
            tracing::warn!(session = key, "cannot duplicate a session fd for the keeper");
            let _ = done.send(());
            return rx;
        };
        self.entries
            .lock()
            .expect("keeper poisoned")
            .insert(key, Entry { record: record.clone(), sock: None });
        self.command(Command::Put { key, record, fd, done: Some(done) });
        rx
    }

    /// The session `key` is served on `sock` (so that a new keeper gets it again).
    pub(crate) fn attach(&self, key: u64, sock: &Arc<AsyncSeqPacket>) {
        if let Some(e) = self.entries.lock().expect("keeper poisoned").get_mut(&key) {
            e.sock = Some(Arc::downgrade(sock));
        }
    }

    /// The session `key` is closed: the keeper lets it go (its peer then sees it end).
    pub(crate) fn forget(&self, key: u64) {
        if self.entries.lock().expect("keeper poisoned").remove(&key).is_some() {
            self.command(Command::Drop { key });
        }
    }

    /// Tells the keeper to let everything go and exit; resolves when it was told.
    pub(crate) async fn end(&self) {
        let (done, rx) = tokio::sync::oneshot::channel();
        self.ended.store(true, std::sync::atomic::Ordering::SeqCst);
        self.entries.lock().expect("keeper poisoned").clear();
        self.command(Command::Exit { done });
        let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
    }
}

/// The keeper thread: sends what the broker asks, notices the keeper's death, starts another
/// and gives it every live session.
fn client_loop(
    place: Place,
    (mut conn, mut child): (OwnedFd, Option<OwnedFd>),
    rx: std::sync::mpsc::Receiver<Command>,
    entries: Arc<Mutex<HashMap<u64, Entry>>>,
    pid: Arc<std::sync::atomic::AtomicU32>,
) {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        let sent = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(Command::Put { key, record, fd, done }) => {
                let r = send(&conn, &Message::Put { key, record }, &[fd.as_fd()]);
                if let Some(d) = done {
                    let _ = d.send(());
                }
                r
            }
            Ok(Command::Drop { key }) => send(&conn, &Message::Drop { key }, &[]),
            Ok(Command::Exit { done }) => {
                let _ = send(&conn, &Message::Exit, &[]);
                let _ = std::fs::remove_file(place.runtime_dir.join(KEEPER_ID));
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {
                if socket::peer_hung_up(&conn) {
                    Err(io::Error::from(io::ErrorKind::BrokenPipe))
                } else {
                    Ok(())
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if sent.is_ok() {
            continue;
        }
        tracing::warn!(
            keeper = pid.load(std::sync::atomic::Ordering::Relaxed),
            "the session keeper is gone; starting another"
        );
        if let Some(old) = child.take() {
            // Ours: reap it (it has ended, or ends now).
            let _ =
                appipc_sys::process::send_signal(&old, appipc_sys::process::ProcessSignal::KILL);
            while matches!(appipc_sys::process::try_reap(&old), Ok(None)) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        loop {
            match start(&place) {
                Ok((c, id, new_child)) => {
                    conn = c;
                    child = Some(new_child);
                    pid.store(id.pid, std::sync::atomic::Ordering::Relaxed);
                    let live: Vec<(u64, Record, Arc<AsyncSeqPacket>)> = entries
                        .lock()
                        .expect("keeper poisoned")
                        .iter()
                        .filter_map(|(k, e)| {
                            e.sock.as_ref()?.upgrade().map(|s| (*k, e.record.clone(), s))
                        })
                        .collect();
                    let mut n = 0;
                    for (key, record, sock) in &live {
                        if send(
                            &conn,
                            &Message::Put { key: *key, record: record.clone() },
                            &[sock.as_fd()],
                        )
                        .is_ok()
                        {
                            n += 1;
                        }
                    }
                    tracing::info!(
                        keeper = id.pid,
                        sessions = n,
                        "sessions deposited again with a new keeper"
                    );
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a session keeper; trying again");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }
}

/// How long a new session waits for the keeper to hold it before it is served anyway (a keeper
/// that is stopped or starved must not stall the broker; such a session would end with a
/// broker that dies before the keeper took it).
const KEEP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Waits until the keeper holds the session `key` (see [`Keeper::put`]), at most [`KEEP_WAIT`].
/// A keeper that does not take sessions is logged at most once a second (`limiter`).
pub(crate) async fn wait_kept(
    kept: tokio::sync::oneshot::Receiver<()>,
    key: u64,
    limiter: &crate::limits::LogLimiter,
) {
    if tokio::time::timeout(KEEP_WAIT, kept).await.is_err()
        && let Some(n) = limiter.allow("keeper slow")
    {
        tracing::warn!(
            session = key,
            suppressed = n,
            "the keeper did not take a session within 2 s; serving it"
        );
    }
}
