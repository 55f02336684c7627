//! `pipes`: the broker holds the pipe names and their instances, decides access by the
//! named-object rules, and connects a client to a free instance with a stream socket pair; the
//! data then flows between the two. Byte-type pipes are the plain stream; on message-type
//! pipes the SDK frames each message with its length, so a message of any size keeps its
//! boundary and a short read can leave the rest for the next (`ERROR_MORE_DATA`).
//!
//! The client's end can do exactly what its granted rights allow: it reads only with
//! `FILE_READ_DATA` granted and writes only with `FILE_WRITE_DATA` granted (the other half of
//! the socket is shut down), and the rights asked must fit the pipe's direction (reading an
//! inbound pipe, or writing an outbound one, is refused as on Windows).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appipc_model::named_objects::{
    self as model, FILE_CREATE_PIPE_INSTANCE, FILE_READ_DATA, FILE_WRITE_DATA, NameKind, Namespace,
    ObjectType, SecurityDescriptor,
};
use appipc_model::policy::Operation;
use appipc_wire::protocol::pipes::{self as wire, ClientConnected, PipeDirection, PipeOpened};
use appipc_wire::status::Win32Error;
use tokio::sync::Notify;

use crate::cx::{Cx, Replied};
use crate::error::{InternalError, NamedObjectError};
use crate::outbox::{Outbox, Undeliverable};

type Result<T, E = NamedObjectError> = std::result::Result<T, E>;

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied> {
    use wire::Request as R;
    let pipes = &cx.shared.pipes;
    Ok(match r {
        R::CreateInstance(c) => Replied::of::<wire::CreateInstance>(pipes.create_instance(&cx, c)?),
        R::Disconnect(d) => {
            pipes.disconnect(&cx, d.instance)?;
            Replied::of::<wire::Disconnect>(())
        }
        R::Open(o) => {
            let (opened, fd) = pipes.open(&cx, &o.name, o.desired_access).await?;
            Replied::with_fds::<wire::Open>(opened, vec![fd])
        }
        R::Wait(w) => {
            pipes.wait(&cx, &w.name, w.timeout_ms).await?;
            Replied::of::<wire::Wait>(())
        }
    })
}

type Key = (Namespace, String);

#[derive(Debug)]
struct Instance {
    id: u64,
    session_id: u64,
    server: Arc<Outbox>,
    /// The server's pid, as the broker numbers it (for an app container, the process the
    /// broker launched, outside the container's pid namespace: what `appipc launch` reports).
    server_pid: u32,
    /// The server runs in an app container (its own pid namespace).
    server_confined: bool,
    connected: bool,
}

#[derive(Debug)]
struct Pipe {
    display: String,
    sd: SecurityDescriptor,
    message_mode: bool,
    direction: PipeDirection,
    max_instances: u8,
    /// `nDefaultTimeOut` (0 given: 50 ms).
    default_timeout_ms: u32,
    instances: Vec<Instance>,
}

/// `nDefaultTimeOut` of 0: "a default time-out of 50 milliseconds" (`CreateNamedPipe`).
const DEFAULT_WAIT_MS: u32 = 50;
/// `NMPWAIT_USE_DEFAULT_WAIT`.
const NMPWAIT_USE_DEFAULT_WAIT: u32 = 0;
/// `NMPWAIT_WAIT_FOREVER`.
const NMPWAIT_WAIT_FOREVER: u32 = 0xFFFF_FFFF;

/// The pipe table: names ordered, so that the "a pipe's name is not another's folder" rule
/// and the per-namespace count take a lookup, not a scan.
#[derive(Debug, Default)]
pub struct Pipes {
    pipes: Mutex<BTreeMap<Key, Pipe>>,
    /// session → the instances it serves (for its quota, without a scan).
    per_session: Mutex<std::collections::HashMap<u64, usize>>,
    next: AtomicU64,
    freed: Notify,
}

/// Whether `key` names a "folder" of an existing pipe of `ns`, or an existing pipe names a
/// folder of `key`: O(depth · log n).
fn overlaps(pipes: &BTreeMap<Key, Pipe>, ns: &Namespace, key: &str) -> bool {
    let mut prefix = String::new();
    for part in key.split('\\') {
        if !prefix.is_empty() {
            if pipes.contains_key(&(ns.clone(), prefix.clone())) {
                return true;
            }
            prefix.push('\\');
        }
        prefix.push_str(part);
    }
    let below = (ns.clone(), format!("{key}\\"));
    pipes
        .range(below.clone()..)
        .next()
        .is_some_and(|((n, k), _)| n == ns && k.starts_with(&below.1))
}

/// Pipe names in namespace `ns`: O(log n) to find the range (its size to count it).
fn names_in(pipes: &BTreeMap<Key, Pipe>, ns: &Namespace) -> usize {
    pipes.range((ns.clone(), String::new())..).take_while(|((n, _), _)| n == ns).count()
}

/// Whether `who` runs in an app container, in a pid namespace of its own: a pid of the
/// broker's would name another process there, or none, so it is told 0
/// (`GetNamedPipeServerProcessId` / `GetNamedPipeClientProcessId`).
fn confined(who: &crate::caller::Caller) -> bool {
    who.trust() == appipc_wire::caller::TrustLevel::AppContainer
}

fn failed(code: Win32Error, message: impl Into<String>) -> NamedObjectError {
    NamedObjectError::win32(code, message)
}

/// Whether one more instance of the existing pipe `p` may be created as `c` asks (with the
/// default time-out `default_timeout_ms`, 0 already replaced).
fn may_join(
    cx: &Cx<'_>,
    n: &model::ObjectName,
    p: &Pipe,
    c: &wire::CreateInstance,
    default_timeout_ms: u32,
) -> Result<()> {
    let name = &c.name;
    if c.first_instance {
        // `FILE_FLAG_FIRST_PIPE_INSTANCE`: "creation of the next instance fails with
        // ERROR_ACCESS_DENIED" (`CreateNamedPipe`).
        return Err(failed(
            Win32Error::AccessDenied,
            format!("{name:?} exists and FILE_FLAG_FIRST_PIPE_INSTANCE was given"),
        ));
    }
    cx.enforce(Operation::OpenNamedObject {
        name: n,
        ty: ObjectType::Pipe,
        sd: &p.sd,
        desired: FILE_CREATE_PIPE_INSTANCE,
    })?;
    // "All instances of a named pipe must specify the same pipe type (byte-type or
    // message-type), pipe access (duplex, inbound, or outbound), instance count, and time-out
    // value. If different values are used, this function fails and GetLastError returns
    // ERROR_ACCESS_DENIED" (`CreateNamedPipe`).
    if p.message_mode != c.message_mode
        || p.max_instances != c.max_instances
        || p.direction != c.direction
        || p.default_timeout_ms != default_timeout_ms
    {
        return Err(failed(
            Win32Error::AccessDenied,
            format!(
                "{name:?} exists with another type, direction, instance limit or default \
                 time-out"
            ),
        ));
    }
    if p.max_instances != 255 && p.instances.len() >= usize::from(p.max_instances) {
        return Err(failed(
            Win32Error::PipeBusy,
            format!("{name:?} already has its {} instance(s)", p.max_instances),
        ));
    }
    Ok(())
}

impl Pipes {
    /// `CreateNamedPipe` (one instance).
    fn create_instance(&self, cx: &Cx<'_>, c: wire::CreateInstance) -> Result<u64> {
        let who = cx.caller;
        let default_timeout_ms =
            if c.default_timeout_ms == 0 { DEFAULT_WAIT_MS } else { c.default_timeout_ms };
        let name = &c.name;
        if c.max_instances == 0 {
            return Err(NamedObjectError::parameter("a pipe needs at least one instance"));
        }
        let n = model::resolve(&who.principal, name, NameKind::Pipe)?;
        let key = (n.namespace.clone(), n.key.clone());
        let limits = &cx.shared.config.limits;
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        cx.session.ensure_open()?;
        let mine = self.instances_of(who.session_id);
        if mine >= limits.pipe_instances_per_session {
            return Err(failed(
                Win32Error::NotEnoughQuota,
                format!(
                    "this session serves {mine} pipe instances, the most it may ([limits] \
                     pipe-instances-per-session)"
                ),
            ));
        }
        // A pipe's name cannot be the "folder" of another's.
        if !pipes.contains_key(&key) && overlaps(&pipes, &key.0, &key.1) {
            return Err(failed(
                Win32Error::InvalidName,
                format!("{name:?} overlaps the name of another pipe"),
            ));
        }
        if !pipes.contains_key(&key) && names_in(&pipes, &key.0) >= limits.pipe_names_per_namespace
        {
            return Err(failed(
                Win32Error::NoSystemResources,
                format!(
                    "{} already holds {} pipe names, the most it may ([limits] \
                     pipe-names-per-namespace)",
                    key.0, limits.pipe_names_per_namespace
                ),
            ));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let instance = Instance {
            id,
            session_id: who.session_id,
            server: cx.session.outbox.clone(),
            server_pid: who.pid,
            server_confined: confined(who),
            connected: false,
        };
        match pipes.get_mut(&key) {
            Some(p) => {
                may_join(cx, &n, p, &c, default_timeout_ms)?;
                p.instances.push(instance);
                self.count(who.session_id, true);
            }
            None => {
                cx.enforce(Operation::CreateNamedObject { name: &n, ty: ObjectType::Pipe })?;
                let made = model::descriptor_for_new_object(&who.principal, c.sddl.as_deref())?;
                for note in &made.notes {
                    tracing::info!(pipe = %n.display, by = %who.describe(), "security descriptor: {note}");
                }
                let sd = made.descriptor;
                tracing::info!(pipe = %n.display, namespace = %n.namespace, by = %who.describe(), sddl = %sd, "named pipe created");
                pipes.insert(
                    key,
                    Pipe {
                        display: n.display,
                        sd,
                        message_mode: c.message_mode,
                        direction: c.direction,
                        max_instances: c.max_instances,
                        default_timeout_ms,
                        instances: vec![instance],
                    },
                );
                self.count(who.session_id, true);
            }
        }
        drop(pipes);
        self.freed.notify_waiters();
        Ok(id)
    }

    /// `DisconnectNamedPipe`.
    fn disconnect(&self, cx: &Cx<'_>, instance: u64) -> Result<()> {
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        let inst =
            pipes.values_mut().flat_map(|p| p.instances.iter_mut()).find(|i| i.id == instance);
        let owned = inst.as_ref().is_some_and(|i| i.session_id == cx.caller.session_id);
        cx.enforce(Operation::UseHandle { handle: instance, owned })?;
        inst.expect("owned implies present").connected = false;
        drop(pipes);
        self.freed.notify_waiters();
        Ok(())
    }

    /// `CreateFile` on a pipe.
    async fn open(
        &self,
        cx: &Cx<'_>,
        name: &str,
        desired: u32,
    ) -> Result<(PipeOpened, std::os::fd::OwnedFd)> {
        let who = cx.caller;
        let n = model::resolve(&who.principal, name, NameKind::Pipe)?;
        let key = (n.namespace.clone(), n.key.clone());
        loop {
            let c = self.claim_instance(cx, &n, &key, name, desired)?;
            let (server_end, client_end) = directed_pair(&c)?;
            let event = ClientConnected {
                instance: c.id,
                client_pid: if c.server_confined { 0 } else { who.pid },
                client_package_family_name: who.family_name_or_empty(),
            };
            match c.server.event(event, vec![server_end]) {
                Ok(()) => {}
                Err(Undeliverable::Gone) => {
                    // The server is gone: drop the instance and try the next.
                    self.drop_instance(&key, c.id);
                    continue;
                }
                Err(Undeliverable::Full) => {
                    // The server does not read its session: this instance cannot take a
                    // client now.
                    self.free_instance(&key, c.id);
                    return Err(failed(
                        Win32Error::PipeBusy,
                        format!("the server of {name:?} does not read its session"),
                    ));
                }
            }
            tracing::debug!(pipe = %n.display, instance = c.id, client = %who.describe(), "pipe connected");
            let opened = PipeOpened {
                message_mode: c.message_mode,
                can_read: c.read,
                can_write: c.write,
                server_pid: if confined(who) { 0 } else { c.server_pid },
            };
            return Ok((opened, client_end));
        }
    }

    /// Decides the open and marks a free instance connected (under the pipes' lock).
    fn claim_instance(
        &self,
        cx: &Cx<'_>,
        n: &model::ObjectName,
        key: &Key,
        name: &str,
        desired: u32,
    ) -> Result<Claimed> {
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        let Some(p) = pipes.get_mut(key) else {
            return Err(failed(Win32Error::FileNotFound, format!("no pipe {name:?}")));
        };
        let d = cx.enforce(Operation::OpenNamedObject {
            name: n,
            ty: ObjectType::Pipe,
            sd: &p.sd,
            desired,
        })?;
        let (read, write) = (d.granted & FILE_READ_DATA != 0, d.granted & FILE_WRITE_DATA != 0);
        let fits = match p.direction {
            PipeDirection::Duplex => read || write,
            PipeDirection::Inbound => write && !read,
            PipeDirection::Outbound => read && !write,
        };
        if !fits {
            return Err(failed(
                Win32Error::AccessDenied,
                format!(
                    "{name:?} is {} and the access asked ({:#x}) does not fit it: a client \
                     writes an inbound pipe, reads an outbound one",
                    match p.direction {
                        PipeDirection::Duplex => "duplex",
                        PipeDirection::Inbound => "inbound",
                        PipeDirection::Outbound => "outbound",
                    },
                    d.granted
                ),
            ));
        }
        let Some(inst) = p.instances.iter_mut().find(|i| !i.connected) else {
            return Err(failed(
                Win32Error::PipeBusy,
                format!("every instance of {name:?} is busy"),
            ));
        };
        inst.connected = true;
        Ok(Claimed {
            server: inst.server.clone(),
            server_pid: inst.server_pid,
            server_confined: inst.server_confined,
            id: inst.id,
            message_mode: p.message_mode,
            read,
            write,
        })
    }

    /// Removes an instance whose server has gone (and the pipe with its last instance).
    fn drop_instance(&self, key: &Key, id: u64) {
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        if let Some(p) = pipes.get_mut(key) {
            if let Some(i) = p.instances.iter().find(|i| i.id == id) {
                self.count(i.session_id, false);
            }
            p.instances.retain(|i| i.id != id);
            if p.instances.is_empty() {
                pipes.remove(key);
            }
        }
    }

    /// Marks an instance free again.
    fn free_instance(&self, key: &Key, id: u64) {
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        if let Some(i) =
            pipes.get_mut(key).and_then(|p| p.instances.iter_mut().find(|i| i.id == id))
        {
            i.connected = false;
        }
    }

    /// `WaitNamedPipe`: `NMPWAIT_USE_DEFAULT_WAIT` (0) waits the pipe's `nDefaultTimeOut`,
    /// `NMPWAIT_WAIT_FOREVER` without end; a missing pipe fails at once (`WaitNamedPipe`: "If
    /// no instances of the specified named pipe exist, the WaitNamedPipe function returns
    /// immediately, regardless of the time-out value").
    async fn wait(&self, cx: &Cx<'_>, name: &str, timeout_ms: u32) -> Result<()> {
        let n = model::resolve(&cx.caller.principal, name, NameKind::Pipe)?;
        let key = (n.namespace, n.key);
        let mut deadline: Option<Option<tokio::time::Instant>> = None;
        let mut waited_ms = timeout_ms;
        loop {
            let freed = self.freed.notified();
            {
                let pipes = self.pipes.lock().expect("pipes poisoned");
                match pipes.get(&key) {
                    None => {
                        return Err(failed(Win32Error::FileNotFound, format!("no pipe {name:?}")));
                    }
                    Some(p) if p.instances.iter().any(|i| !i.connected) => return Ok(()),
                    Some(p) => {
                        if deadline.is_none() {
                            waited_ms = match timeout_ms {
                                NMPWAIT_USE_DEFAULT_WAIT => p.default_timeout_ms,
                                ms => ms,
                            };
                            // Fixed at the first look, so that a freed-then-taken instance
                            // does not restart the wait.
                            deadline = Some((waited_ms != NMPWAIT_WAIT_FOREVER).then(|| {
                                tokio::time::Instant::now()
                                    + Duration::from_millis(u64::from(waited_ms))
                            }));
                        }
                    }
                }
            }
            let expired = match deadline.flatten() {
                None => {
                    freed.await;
                    false
                }
                Some(at) => tokio::time::timeout_at(at, freed).await.is_err(),
            };
            if expired {
                return Err(failed(
                    Win32Error::SemTimeout,
                    format!("no instance of {name:?} became free in {waited_ms} ms"),
                ));
            }
        }
    }

    /// Pipe instances a session serves.
    pub(crate) fn instances_of(&self, session: u64) -> usize {
        self.per_session.lock().expect("pipes poisoned").get(&session).copied().unwrap_or(0)
    }

    fn count(&self, session: u64, up: bool) {
        let mut per = self.per_session.lock().expect("pipes poisoned");
        let n = per.entry(session).or_default();
        if up {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per.remove(&session);
            }
        }
    }

    /// A session ended: its instances go; a pipe without instances is gone.
    pub(crate) fn session_closed(&self, session: u64) {
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        pipes.retain(|_, p| {
            p.instances.retain(|i| i.session_id != session);
            if p.instances.is_empty() {
                tracing::debug!(pipe = %p.display, "last instance closed: pipe gone");
            }
            !p.instances.is_empty()
        });
        drop(pipes);
        self.per_session.lock().expect("pipes poisoned").remove(&session);
        self.freed.notify_waiters();
    }
}

/// An instance claimed for a client, with the rights it was granted.
struct Claimed {
    server: Arc<Outbox>,
    server_pid: u32,
    server_confined: bool,
    id: u64,
    message_mode: bool,
    read: bool,
    write: bool,
}

/// The stream socket pair of a connection: the client's end reads only if it may read and writes
/// only if it may write; the server's end the other way round.
fn directed_pair(c: &Claimed) -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    // A stream either way: a message-type pipe's SDK frames its messages, so that one of any
    // size fits and a short read can leave the rest (a `SOCK_SEQPACKET` read takes a whole
    // datagram, and a datagram is bounded by the socket buffer).
    let (server_end, client_end) = appipc_sys::socket::stream_pair()
        .map_err(|e| InternalError::io("creating a pipe's socket pair", e))?;
    let shut = |fd: &std::os::fd::OwnedFd, reading: bool| {
        appipc_sys::socket::shutdown_direction(fd, reading)
            .map_err(|e| InternalError::io("setting the pipe's direction", e))
    };
    if !c.read {
        shut(&client_end, true)?;
        shut(&server_end, false)?;
    }
    if !c.write {
        shut(&client_end, false)?;
        shut(&server_end, true)?;
    }
    Ok((server_end, client_end))
}
