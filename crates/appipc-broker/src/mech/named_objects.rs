//! `named_objects`: the broker holds the name table (per user: the session namespace and one
//! namespace per package), decides every create and open with the Windows rules
//! (`appipc_model::policy`), and hands out the object as an fd that can do exactly what the
//! handle's granted rights allow:
//!
//! | object | rights granted | fd handed out |
//! |---|---|---|
//! | file mapping of memory | `FILE_MAP_WRITE` on a `PAGE_READWRITE` mapping | a duplicate of the broker's read-write fd of the memfd (the writers share its offset and status flags; a view is unaffected) |
//! | file mapping of memory | `FILE_MAP_READ` (or write on a read-only mapping) | the memfd reopened read-only |
//! | file mapping of a file | `FILE_MAP_WRITE` on a `PAGE_READWRITE` mapping | the creator's file reopened read-write |
//! | file mapping of a file | `FILE_MAP_READ` (or write on a read-only mapping) | the creator's file reopened read-only |
//! | event | `SYNCHRONIZE` and `EVENT_MODIFY_STATE` | the eventfd |
//! | event | `SYNCHRONIZE` only | an epoll fd that is readable while the event is signalled (an auto-reset event is then taken with `Acquire`) |
//! | semaphore, mutex, waitable timer | `SYNCHRONIZE` (with or without the modify right) | an epoll fd that is readable while the object is signalled; `Acquire` takes it |
//! | event, semaphore, timer | the modify right only | none (`Signal` through the broker) |
//! | any | nothing usable | none |
//!
//! A semaphore's count, a mutex's owner and a timer's schedule are the broker's: no holder gets
//! an fd that could change them, so a semaphore keeps its maximum (`ReleaseSemaphore` past it
//! is 298), only the owner releases a mutex (288), and every wait on them completes through
//! `Acquire`. The fd behind a semaphore's or mutex's readiness is an eventfd the broker keeps
//! readable exactly while the object is signalled (a count above 0; no owner); a timer's is
//! its `timerfd` (`CLOCK_REALTIME`). A mutex is owned by a session (a process's broker
//! connection): when the session ends holding it, the mutex is abandoned, and the next wait
//! gets `WAIT_ABANDONED` and ownership.
//!
//! A read-only fd stays read-only. A memfd can be reopened read-write through
//! `/proc/self/fd/N` by whoever its mode allows, and Landlock does not govern that (memfds live
//! on the kernel's internal shm mount), so the broker's memfd is mode 0400
//! (`appipc_sys::memfd::create_fixed_size`) and whoever could set the mode back must not be a
//! holder: under a root broker it belongs to root and apps run as uids of their own (neither
//! reopen nor `chmod`/ACL passes); under an unprivileged broker the app's uid owns it, and the
//! app container's seccomp supervisor (`appipc_sys::seccomp_notify`) refuses `chmod`,
//! `fchmod`, ACLs and other extended attributes on anything not on the app's own mounts. A
//! mapping of a file refuses a memfd (or hugetlbfs file) as its file (87): its mode is its
//! creator's to change. Other files are reopened through a path, which Landlock confines.
//!
//! An open with access 0 is refused (5), as Windows' access check refuses an empty request.
//! Data never goes through the broker. Handles are counted per session: `Close`, or the end of
//! the session (the process exited), closes them. An object lives while any handle to it is
//! open; then its name is gone. Creation is all-or-nothing: the object enters the table only
//! together with its first handle.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use appipc_model::named_objects::{
    self as model, FILE_MAP_READ, FILE_MAP_WRITE, GENERIC_ALL, MAXIMUM_WAIT_OBJECTS, MODIFY_STATE,
    MutexState, NameKind, Namespace, ObjectType, SYNCHRONIZE, SecurityDescriptor, TimerDue,
};
use appipc_model::policy::Operation;
use appipc_wire::protocol::named_objects::{
    self as wire, HandleFd, NamedObjectHandle, NamedObjectInfo, NamedObjectKind, SignalOp,
    WaitOutcome,
};
use appipc_wire::status::Win32Error;

use crate::caller::Caller;
use crate::cx::{Cx, Replied};
use crate::error::InternalError;
pub use crate::error::NamedObjectError;
use crate::limits::FdCharge;

type Result<T, E = NamedObjectError> = std::result::Result<T, E>;

type Key = (Namespace, String);

#[derive(Debug)]
struct Object {
    ty: ObjectType,
    display: String,
    creator_family: String,
    creator_pid: u32,
    sd: SecurityDescriptor,
    fd: OwnedFd,
    size: u64,
    /// A file mapping created `PAGE_READWRITE`.
    writable: bool,
    /// A file mapping backed by the broker's own memfd (mode 0400, so nobody without
    /// capabilities over it reopens it read-write), not by the creator's file.
    broker_memory: bool,
    /// A manual-reset event or timer.
    manual_reset: bool,
    /// The state the broker keeps (semaphores, mutexes).
    sync: SyncState,
    handles: u32,
    /// The fd the broker holds for it, charged to the budget.
    _fd_charge: FdCharge,
}

/// What the broker keeps of an object's state; `fd` is then a readiness flag (an eventfd that
/// is readable exactly while the object is signalled), or a timer's timerfd.
#[derive(Debug, Clone)]
enum SyncState {
    /// The fd is the state (events: their eventfd; timers: their timerfd; mappings).
    InFd,
    /// A semaphore.
    Semaphore { count: u32, maximum: u32 },
    /// A mutex.
    Mutex(MutexState),
}

/// Makes a flag eventfd readable (`on`) or not.
fn set_flag(fd: &OwnedFd, on: bool) -> std::io::Result<()> {
    let now = appipc_sys::aio::is_readable(fd)?;
    match (now, on) {
        (false, true) => appipc_sys::aio::eventfd_signal(fd),
        (true, false) => appipc_sys::aio::eventfd_drain(fd),
        _ => Ok(()),
    }
}

#[derive(Debug)]
struct Handle {
    session: u64,
    /// The holder's package family (lower case; "" for an unpackaged holder), for its
    /// package's quota.
    package: String,
    key: Key,
    granted: u32,
}

#[derive(Debug, Default)]
struct State {
    objects: HashMap<Key, Object>,
    handles: HashMap<u64, Handle>,
    /// session → how many handles it holds.
    per_session: HashMap<u64, usize>,
    /// package family (lower case) → how many handles its sessions hold.
    per_package: HashMap<String, usize>,
}

fn down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

impl State {
    /// `ERROR_NOT_ENOUGH_QUOTA` when the caller's session or package holds its share of
    /// handles: every object costs the broker an fd and every handle memory, so a client
    /// that hoards them is stopped here, not by the broker's own limits.
    fn check_quota(&self, who: &Caller, limits: &crate::config::LimitsConfig) -> Result<()> {
        let held = self.per_session.get(&who.session_id).copied().unwrap_or(0);
        if held >= limits.handles_per_session {
            return Err(NamedObjectError::win32(
                Win32Error::NotEnoughQuota,
                format!(
                    "this session holds {held} named-object handles, the most it may ([limits] \
                     handles-per-session); close some"
                ),
            ));
        }
        if let Some(f) = who.family_name() {
            let held = self.per_package.get(&f.to_ascii_lowercase()).copied().unwrap_or(0);
            if held >= limits.handles_per_package {
                return Err(NamedObjectError::win32(
                    Win32Error::NotEnoughQuota,
                    format!(
                        "package {f} holds {held} named-object handles, the most it may \
                         ([limits] handles-per-package); close some"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn forget_handle(&mut self, handle: u64) -> Option<Key> {
        let h = self.handles.remove(&handle)?;
        down(&mut self.per_session, &h.session);
        if !h.package.is_empty() {
            down(&mut self.per_package, &h.package);
        }
        Some(h.key)
    }

    fn release(&mut self, key: &Key) {
        let gone = match self.objects.get_mut(key) {
            Some(obj) => {
                obj.handles = obj.handles.saturating_sub(1);
                obj.handles == 0
            }
            None => false,
        };
        if gone && let Some(obj) = self.objects.remove(key) {
            tracing::info!(name = %obj.display, "last handle closed: named object gone");
        }
    }
}

/// The name table.
#[derive(Debug, Default)]
pub struct NamedObjects {
    state: Mutex<State>,
    next_handle: AtomicU64,
}

fn type_name(t: ObjectType) -> &'static str {
    match t {
        ObjectType::Event => "event",
        ObjectType::Semaphore => "semaphore",
        ObjectType::FileMapping => "file mapping",
        ObjectType::Mutex => "mutex",
        ObjectType::WaitableTimer => "waitable timer",
        ObjectType::Pipe => "pipe",
        ObjectType::RpcEndpoint => "RPC endpoint",
        ObjectType::ComServer => "COM server",
    }
}

fn from_wire(t: wire::ObjectType) -> ObjectType {
    match t {
        wire::ObjectType::Event => ObjectType::Event,
        wire::ObjectType::Semaphore => ObjectType::Semaphore,
        wire::ObjectType::FileMapping => ObjectType::FileMapping,
        wire::ObjectType::Mutex => ObjectType::Mutex,
        wire::ObjectType::WaitableTimer => ObjectType::WaitableTimer,
    }
}

fn to_wire(t: ObjectType) -> wire::ObjectType {
    match t {
        ObjectType::Event => wire::ObjectType::Event,
        ObjectType::Semaphore => wire::ObjectType::Semaphore,
        ObjectType::Mutex => wire::ObjectType::Mutex,
        ObjectType::WaitableTimer => wire::ObjectType::WaitableTimer,
        // Pipes and endpoints are not in the named-object table (they have their own).
        ObjectType::FileMapping
        | ObjectType::Pipe
        | ObjectType::RpcEndpoint
        | ObjectType::ComServer => wire::ObjectType::FileMapping,
    }
}

/// `ERROR_INVALID_HANDLE`, as Windows answers an open of a name that holds another type.
fn wrong_type(name: &str, found: ObjectType, asked: ObjectType) -> NamedObjectError {
    NamedObjectError::win32(
        Win32Error::InvalidHandle,
        format!("{name:?} names a {}, not a {}", type_name(found), type_name(asked)),
    )
}

/// The fd a handle with `granted` rights gets, and what it is.
fn handle_fd(obj: &Object, granted: u32) -> std::io::Result<(Option<OwnedFd>, HandleFd)> {
    match obj.ty {
        ObjectType::FileMapping => {
            if obj.writable && granted & FILE_MAP_WRITE != 0 {
                // The broker's memfd cannot be reopened read-write (its mode is 0400): the
                // writers share the broker's own read-write description (a view is all a
                // mapping handle is for; offset and status flags are common to them).
                let fd = if obj.broker_memory {
                    obj.fd.try_clone()?
                } else {
                    appipc_sys::fs::reopen(&obj.fd, true)?
                };
                Ok((Some(fd), HandleFd::Object))
            } else if granted & (FILE_MAP_READ | FILE_MAP_WRITE) != 0 {
                Ok((Some(appipc_sys::fs::reopen(&obj.fd, false)?), HandleFd::ReadOnly))
            } else {
                Ok((None, HandleFd::None))
            }
        }
        ObjectType::Semaphore | ObjectType::Mutex | ObjectType::WaitableTimer => {
            if granted & SYNCHRONIZE != 0 {
                Ok((Some(appipc_sys::aio::readiness_fd(&obj.fd)?), HandleFd::Readiness))
            } else {
                Ok((None, HandleFd::None))
            }
        }
        _ => match (granted & SYNCHRONIZE != 0, granted & MODIFY_STATE != 0) {
            (true, true) => Ok((Some(obj.fd.try_clone()?), HandleFd::Object)),
            (true, false) => {
                Ok((Some(appipc_sys::aio::readiness_fd(&obj.fd)?), HandleFd::Readiness))
            }
            _ => Ok((None, HandleFd::None)),
        },
    }
}

pub(crate) async fn handle(mut cx: Cx<'_>, r: wire::Request) -> Result<Replied> {
    use wire::Request as R;
    let objects = &cx.shared.named_objects;
    Ok(match r {
        R::Create(c) => {
            let backing = cx.take_fds().pop();
            let (h, fd) = objects.create(&cx, c.kind, &c.name, c.sddl.as_deref(), backing)?;
            Replied::with_fds::<wire::Create>(h, fd.into_iter().collect())
        }
        R::Open(o) => {
            let (h, fd) = objects.open(&cx, from_wire(o.object_type), &o.name, o.desired_access)?;
            Replied::with_fds::<wire::Open>(h, fd.into_iter().collect())
        }
        R::Close(c) => {
            objects.close(&cx, c.handle)?;
            Replied::of::<wire::Close>(())
        }
        R::List(_) => Replied::of::<wire::List>(objects.list(cx.caller)),
        R::GetNamedObjectPath(g) => {
            let pfn: appipc_model::identity::PackageFamilyName =
                g.package_family_name.parse().map_err(|e| {
                    NamedObjectError::parameter(format!("{:?}: {e}", g.package_family_name))
                })?;
            Replied::of::<wire::GetNamedObjectPath>(model::named_object_path(pfn.as_str()))
        }
        R::Signal(s) => Replied::of::<wire::Signal>(objects.signal(&cx, s.handle, s.op)?),
        R::TakeSignal(t) => Replied::of::<wire::TakeSignal>(
            objects.acquire(&cx, t.handle)? != WaitOutcome::NotSignalled,
        ),
        R::Acquire(a) => Replied::of::<wire::Acquire>(objects.acquire(&cx, a.handle)?),
        R::AcquireAll(a) => Replied::of::<wire::AcquireAll>(objects.acquire_all(&cx, &a.handles)?),
    })
}

impl NamedObjects {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("named objects poisoned")
    }

    /// Handles a session holds.
    pub(crate) fn handles_of(&self, session: u64) -> usize {
        self.lock().per_session.get(&session).copied().unwrap_or(0)
    }

    /// Opens a handle to the object at `key` for the caller with `granted` rights: the fd is
    /// made first, so nothing enters the table unless the whole open succeeds. A session that
    /// closed while the request ran gets none (its handles are released once, when it closes;
    /// one entered after that would never be).
    fn open_handle(
        &self,
        st: &mut State,
        cx: &Cx<'_>,
        key: Key,
        granted: u32,
        already_exists: bool,
    ) -> Result<(NamedObjectHandle, Option<OwnedFd>)> {
        let who = cx.caller;
        cx.session.ensure_open()?;
        let obj = st.objects.get_mut(&key).expect("caller checked");
        let (fd, kind) = handle_fd(obj, granted).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                NamedObjectError::win32(
                    Win32Error::SharingViolation,
                    format!("the file behind this mapping cannot be opened now: {e}"),
                )
            } else {
                InternalError::io("opening a handle to a named object", e).into()
            }
        })?;
        obj.handles += 1;
        let out = NamedObjectHandle {
            handle: self.next_handle.fetch_add(1, Ordering::Relaxed) + 1,
            already_exists,
            granted_access: granted,
            size: obj.size,
            manual_reset: obj.manual_reset,
            fd: kind,
        };
        let package = who.family_name().unwrap_or_default().to_ascii_lowercase();
        if !package.is_empty() {
            *st.per_package.entry(package.clone()).or_default() += 1;
        }
        *st.per_session.entry(who.session_id).or_default() += 1;
        st.handles.insert(out.handle, Handle { session: who.session_id, package, key, granted });
        Ok((out, fd))
    }

    /// `Create…` with a name.
    fn create(
        &self,
        cx: &Cx<'_>,
        kind: NamedObjectKind,
        name: &str,
        sddl: Option<&str>,
        backing: Option<OwnedFd>,
    ) -> Result<(NamedObjectHandle, Option<OwnedFd>)> {
        let who = cx.caller;
        let ty = from_wire(kind.object_type());
        let n = model::resolve(&who.principal, name, NameKind::Object)?;
        cx.enforce(Operation::CreateNamedObject { name: &n, ty })?;
        let key = (n.namespace.clone(), n.key.clone());
        {
            let mut st = self.lock();
            st.check_quota(who, &cx.shared.config.limits)?;
            if let Some(obj) = st.objects.get(&key) {
                if obj.ty != ty {
                    return Err(wrong_type(name, obj.ty, ty));
                }
                let d = cx.enforce(Operation::OpenNamedObject {
                    name: &n,
                    ty,
                    sd: &obj.sd,
                    desired: GENERIC_ALL,
                })?;
                return self.open_handle(&mut st, cx, key, d.granted, true);
            }
        }
        let made = model::descriptor_for_new_object(&who.principal, sddl)?;
        for note in &made.notes {
            tracing::info!(name = %n.display, by = %who.describe(), "security descriptor: {note}");
        }
        let sd = made.descriptor;
        let charge = cx.shared.fds.try_charge(1).ok_or_else(|| {
            NamedObjectError::win32(
                Win32Error::NoSystemResources,
                "the broker holds as many objects for its clients as it may; close some",
            )
        })?;
        let initial_owner = matches!(kind, NamedObjectKind::Mutex { initial_owner: true });
        let made = make_object(kind, backing)?;
        let mut st = self.lock();
        // Another create may have won the name while the object was being made.
        if st.objects.contains_key(&key) {
            drop(st);
            return self.create(cx, made.kind, name, sddl, made.backing);
        }
        st.check_quota(who, &cx.shared.config.limits)?;
        tracing::info!(namespace = %n.namespace, name = %n.display, object_type = type_name(ty), by = %who.describe(), sddl = %sd.to_sddl(), "named object created");
        st.objects.insert(
            key.clone(),
            Object {
                ty,
                display: n.display,
                creator_family: who.family_name_or_empty(),
                creator_pid: who.pid,
                sd,
                fd: made.fd,
                size: made.size,
                writable: made.writable,
                broker_memory: made.broker_memory,
                manual_reset: made.manual_reset,
                sync: made.sync,
                handles: 0,
                _fd_charge: charge,
            },
        );
        let granted = ty.map_generic(GENERIC_ALL);
        match self.open_handle(&mut st, cx, key.clone(), granted, false) {
            Ok(h) => {
                // `CreateMutex(bInitialOwner)`: the creator owns it (only when it created it).
                if initial_owner {
                    let obj = st.objects.get_mut(&key).expect("just entered");
                    take(obj, who.session_id, name)?;
                }
                Ok(h)
            }
            Err(e) => {
                st.objects.remove(&key);
                Err(e)
            }
        }
    }

    /// `Open…`.
    fn open(
        &self,
        cx: &Cx<'_>,
        ty: ObjectType,
        name: &str,
        desired: u32,
    ) -> Result<(NamedObjectHandle, Option<OwnedFd>)> {
        let who = cx.caller;
        let n = model::resolve(&who.principal, name, NameKind::Object)?;
        let key = (n.namespace.clone(), n.key.clone());
        let mut st = self.lock();
        st.check_quota(who, &cx.shared.config.limits)?;
        let Some(obj) = st.objects.get(&key) else {
            return Err(NamedObjectError::win32(
                Win32Error::FileNotFound,
                format!("no object named {name:?} in {}", n.namespace),
            ));
        };
        if obj.ty != ty {
            return Err(wrong_type(name, obj.ty, ty));
        }
        let d = cx.enforce(Operation::OpenNamedObject { name: &n, ty, sd: &obj.sd, desired })?;
        tracing::debug!(name = %n.display, by = %who.describe(), granted = d.granted, "named object opened");
        self.open_handle(&mut st, cx, key, d.granted, false)
    }

    /// The caller's handle `handle` (the policy decides whether it is the caller's).
    fn owned<'s>(&self, cx: &Cx<'_>, st: &'s State, handle: u64) -> Result<&'s Handle> {
        let h = st.handles.get(&handle);
        let owned = h.is_some_and(|h| h.session == cx.caller.session_id);
        cx.enforce(Operation::UseHandle { handle, owned })?;
        Ok(h.expect("owned implies present"))
    }

    /// `CloseHandle`.
    fn close(&self, cx: &Cx<'_>, handle: u64) -> Result<()> {
        let mut st = self.lock();
        self.owned(cx, &st, handle)?;
        let key = st.forget_handle(handle).expect("checked");
        st.release(&key);
        Ok(())
    }

    /// `SetEvent` / `ResetEvent` (for a handle without the event's fd), `ReleaseSemaphore`,
    /// `ReleaseMutex`, `SetWaitableTimer`, `CancelWaitableTimer`. Returns a semaphore's
    /// previous count (0 otherwise).
    fn signal(&self, cx: &Cx<'_>, handle: u64, op: SignalOp) -> Result<u32> {
        let mut st = self.lock();
        let h = self.owned(cx, &st, handle)?;
        let (key, granted) = (h.key.clone(), h.granted);
        let obj = st.objects.get_mut(&key).expect("a handle's object lives");
        let action = match (obj.ty, op) {
            (ObjectType::Event, SignalOp::Set) => "SetEvent",
            (ObjectType::Event, SignalOp::Reset) => "ResetEvent",
            (ObjectType::Semaphore, SignalOp::Release { .. }) => "ReleaseSemaphore",
            (ObjectType::Mutex, SignalOp::ReleaseMutex) => "ReleaseMutex",
            (ObjectType::WaitableTimer, SignalOp::SetTimer { .. }) => "SetWaitableTimer",
            (ObjectType::WaitableTimer, SignalOp::CancelTimer) => "CancelWaitableTimer",
            (ty, _) => {
                return Err(NamedObjectError::win32(
                    Win32Error::InvalidHandle,
                    format!("{op:?} does not apply to a {}", type_name(ty)),
                ));
            }
        };
        // `ReleaseMutex` needs ownership, not a right (`MUTEX_MODIFY_STATE` is reserved).
        if op != SignalOp::ReleaseMutex {
            cx.enforce(Operation::UseHandleRight {
                handle,
                action,
                needed: MODIFY_STATE,
                granted,
            })?;
        }
        let io = |e| InternalError::io(format!("{action} on {}", obj.display), e);
        let fd = &obj.fd;
        match (op, &mut obj.sync) {
            (SignalOp::Set, _) => {
                if !(obj.manual_reset && appipc_sys::aio::is_readable(fd).unwrap_or(false)) {
                    appipc_sys::aio::eventfd_signal(fd).map_err(io)?;
                }
                Ok(0)
            }
            (SignalOp::Reset, _) => {
                appipc_sys::aio::eventfd_drain(fd).map_err(io)?;
                Ok(0)
            }
            (SignalOp::Release { count: n }, SyncState::Semaphore { count, maximum }) => {
                let previous = *count;
                *count = model::semaphore_release(previous, *maximum, n)?;
                set_flag(fd, true).map_err(io)?;
                Ok(previous)
            }
            (SignalOp::ReleaseMutex, SyncState::Mutex(m)) => {
                let free = m.release(cx.caller.session_id)?;
                if free {
                    set_flag(fd, true).map_err(io)?;
                }
                Ok(0)
            }
            (SignalOp::SetTimer { due_time, period_ms }, _) => {
                let (due, period) = model::timer_due(due_time, period_ms)?;
                let (value, absolute) = match due {
                    TimerDue::Relative(d) => (d, false),
                    TimerDue::Absolute(d) => (d, true),
                };
                appipc_sys::timer::timerfd_arm(fd, value, absolute, period.unwrap_or_default())
                    .map_err(io)?;
                Ok(0)
            }
            (SignalOp::CancelTimer, _) => {
                appipc_sys::timer::timerfd_cancel(fd).map_err(io)?;
                Ok(0)
            }
            _ => Err(InternalError::io(
                format!("{action} on {}", obj.display),
                std::io::Error::other("object state does not match its type"),
            )
            .into()),
        }
    }

    /// The caller's handle `handle`, which must have `SYNCHRONIZE` and name a waitable object:
    /// its object's key.
    fn waitable(&self, cx: &Cx<'_>, st: &State, handle: u64) -> Result<Key> {
        let h = self.owned(cx, st, handle)?;
        let obj = st.objects.get(&h.key).expect("a handle's object lives");
        if obj.ty == ObjectType::FileMapping {
            return Err(NamedObjectError::win32(
                Win32Error::InvalidHandle,
                format!("a {} is not waited on", type_name(obj.ty)),
            ));
        }
        cx.enforce(Operation::UseHandleRight {
            handle,
            action: "WaitForSingleObject",
            needed: SYNCHRONIZE,
            granted: h.granted,
        })?;
        Ok(h.key.clone())
    }

    /// Completes a wait on one object, without blocking.
    fn acquire(&self, cx: &Cx<'_>, handle: u64) -> Result<WaitOutcome> {
        let mut st = self.lock();
        let key = self.waitable(cx, &st, handle)?;
        let obj = st.objects.get_mut(&key).expect("a handle's object lives");
        if !ready(obj, cx.caller.session_id)? {
            return Ok(WaitOutcome::NotSignalled);
        }
        let display = obj.display.clone();
        take(obj, cx.caller.session_id, &display)
    }

    /// `WaitForMultipleObjects(bWaitAll = TRUE)`: takes every object or none.
    fn acquire_all(&self, cx: &Cx<'_>, handles: &[u64]) -> Result<wire::AllAcquired> {
        let none = |i: usize| wire::AllAcquired {
            outcome: WaitOutcome::NotSignalled,
            waiting_for: u32::try_from(i).unwrap_or(0),
        };
        if handles.is_empty() || handles.len() > MAXIMUM_WAIT_OBJECTS {
            return Err(NamedObjectError::parameter(format!(
                "WaitForMultipleObjects with {} handles: 1 to {MAXIMUM_WAIT_OBJECTS} \
                 (MAXIMUM_WAIT_OBJECTS)",
                handles.len()
            )));
        }
        let mut st = self.lock();
        let mut keys = Vec::with_capacity(handles.len());
        for (i, &h) in handles.iter().enumerate() {
            if handles[..i].contains(&h) {
                return Err(NamedObjectError::parameter(format!(
                    "WaitForMultipleObjects: handle {h} is in the array twice"
                )));
            }
            keys.push(self.waitable(cx, &st, h)?);
        }
        let session = cx.caller.session_id;
        for (i, k) in keys.iter().enumerate() {
            if !ready(st.objects.get(k).expect("a handle's object lives"), session)? {
                return Ok(none(i));
            }
        }
        // Auto-reset events first: a holder of an event's own fd may take its signal in the
        // meantime, and only an event's take can be given back (by setting it again).
        keys.sort_by_key(|k| st.objects[k].ty != ObjectType::Event);
        let mut taken: Vec<&Key> = Vec::new();
        let mut outcome = WaitOutcome::Signalled;
        for k in keys.iter() {
            let obj = st.objects.get_mut(k).expect("a handle's object lives");
            let display = obj.display.clone();
            match take(obj, session, &display)? {
                WaitOutcome::NotSignalled => {
                    for t in taken {
                        let obj = st.objects.get_mut(t).expect("a handle's object lives");
                        if !obj.manual_reset {
                            appipc_sys::aio::eventfd_signal(&obj.fd).map_err(|e| {
                                InternalError::io(format!("giving back {}", obj.display), e)
                            })?;
                        }
                    }
                    let i = handles.iter().position(|h| st.handles[h].key == *k).unwrap_or(0);
                    return Ok(none(i));
                }
                WaitOutcome::Abandoned => outcome = WaitOutcome::Abandoned,
                WaitOutcome::Signalled => {}
            }
            if st.objects[k].ty == ObjectType::Event {
                taken.push(k);
            }
        }
        Ok(wire::AllAcquired { outcome, waiting_for: 0 })
    }

    /// A session ended: its handles are closed.
    pub(crate) fn session_closed(&self, session: u64) {
        let mut st = self.lock();
        // Mutexes it owns are abandoned (Windows: when the owning thread ends).
        for obj in st.objects.values_mut() {
            if let SyncState::Mutex(m) = &mut obj.sync
                && m.owner_ended(session)
            {
                tracing::info!(name = %obj.display, "mutex abandoned: its owner ended holding it");
                if let Err(e) = set_flag(&obj.fd, true) {
                    tracing::warn!(name = %obj.display, "abandoned mutex: {e}");
                }
            }
        }
        let mine: Vec<u64> =
            st.handles.iter().filter(|(_, h)| h.session == session).map(|(id, _)| *id).collect();
        for h in mine {
            if let Some(key) = st.forget_handle(h) {
                st.release(&key);
            }
        }
    }

    /// `List`: an app container sees its own namespace's objects only.
    fn list(&self, who: &Caller) -> Vec<NamedObjectInfo> {
        let home = who.principal.appcontainer_sid().map(|s| Namespace::AppContainer(s.clone()));
        let st = self.lock();
        let mut out: Vec<NamedObjectInfo> = st
            .objects
            .iter()
            .filter(|((ns, _), _)| home.as_ref().is_none_or(|h| h == ns))
            .map(|((ns, key), o)| NamedObjectInfo {
                namespace: ns.to_string(),
                name: key.clone(),
                object_type: to_wire(o.ty),
                creator_package_family_name: o.creator_family.clone(),
                creator_pid: o.creator_pid,
                sddl: o.sd.to_sddl(),
                handles: o.handles,
                size: o.size,
            })
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }
}

/// A new object, before it has a name.
struct Made {
    fd: OwnedFd,
    size: u64,
    writable: bool,
    broker_memory: bool,
    manual_reset: bool,
    sync: SyncState,
    /// What it was made from (to retry a create that lost the name race).
    kind: NamedObjectKind,
    backing: Option<OwnedFd>,
}

fn make_object(kind: NamedObjectKind, backing: Option<OwnedFd>) -> Result<Made> {
    let broker_memory = matches!(kind, NamedObjectKind::FileMapping { .. });
    let made = |fd, size, writable, manual_reset, backing| Made {
        fd,
        size,
        writable,
        broker_memory,
        manual_reset,
        sync: SyncState::InFd,
        kind: kind.clone(),
        backing,
    };
    match kind {
        NamedObjectKind::FileMappingOfFile { writable } => {
            // A mapping of the caller's open file: the broker keeps the fd it was given.
            let file = backing.expect("dispatch checked the declared fd");
            let id = appipc_sys::fs::identity(&file).map_err(|e| InternalError::io("fstat", e))?;
            if !id.regular {
                return Err(NamedObjectError::parameter(
                    "a file mapping's file must be a regular file",
                ));
            }
            let memory = appipc_sys::memfd::is_anonymous_memory(&file)
                .map_err(|e| InternalError::io("telling a memfd from a file", e))?;
            if memory {
                return Err(NamedObjectError::parameter(
                    "a file mapping's file must be a file on a file system, not a memfd: a \
                     memfd's mode is its owner's to change and its reopening through \
                     /proc/self/fd is not confined, so the mapping's readers could write it; \
                     create a mapping backed by memory (a size, no file) instead",
                ));
            }
            let mode =
                appipc_sys::fs::access_mode(&file).map_err(|e| InternalError::io("F_GETFL", e))?;
            if writable && mode != appipc_sys::fs::AccessMode::ReadWrite {
                return Err(NamedObjectError::parameter(
                    "PAGE_READWRITE needs the file open for reading and writing",
                ));
            }
            let again = file.try_clone().map_err(|e| InternalError::io("dup", e))?;
            Ok(made(file, id.size, writable, false, Some(again)))
        }
        NamedObjectKind::FileMapping { size, writable } => {
            if size == 0 {
                return Err(NamedObjectError::parameter(
                    "a file mapping backed by memory needs a size",
                ));
            }
            if i64::try_from(size).is_err() {
                return Err(NamedObjectError::parameter(format!(
                    "a file mapping of {size} bytes is larger than a file can be"
                )));
            }
            let fd = appipc_sys::memfd::create_fixed_size("appipc-file-mapping", size)
                .map_err(|e| InternalError::io("creating the mapping's memfd", e))?;
            Ok(made(fd, size, writable, false, None))
        }
        NamedObjectKind::Event { initial_state, manual_reset } => {
            let fd = appipc_sys::aio::eventfd_new(u32::from(initial_state), false)
                .map_err(|e| InternalError::io("eventfd", e))?;
            Ok(made(fd, 0, true, manual_reset, None))
        }
        NamedObjectKind::Semaphore { initial, maximum } => {
            if initial > maximum || maximum == 0 {
                return Err(NamedObjectError::parameter(format!(
                    "semaphore count {initial} of {maximum}"
                )));
            }
            // The count is the broker's; the eventfd is readable while it is above 0.
            let fd = appipc_sys::aio::eventfd_new(u32::from(initial > 0), false)
                .map_err(|e| InternalError::io("eventfd", e))?;
            let mut m = made(fd, 0, true, false, None);
            m.sync = SyncState::Semaphore { count: initial, maximum };
            Ok(m)
        }
        NamedObjectKind::Mutex { .. } => {
            // Readable while nobody owns it.
            let fd = appipc_sys::aio::eventfd_new(1, false)
                .map_err(|e| InternalError::io("eventfd", e))?;
            let mut m = made(fd, 0, true, false, None);
            m.sync = SyncState::Mutex(MutexState::default());
            Ok(m)
        }
        NamedObjectKind::WaitableTimer { manual_reset } => {
            let fd = appipc_sys::timer::timerfd_new()
                .map_err(|e| InternalError::io("timerfd_create", e))?;
            Ok(made(fd, 0, true, manual_reset, None))
        }
    }
}

/// Whether a wait by `session` on `obj` would complete now (nothing is taken).
fn ready(obj: &Object, session: u64) -> Result<bool> {
    Ok(match &obj.sync {
        SyncState::Semaphore { count, .. } => *count > 0,
        SyncState::Mutex(m) => m.can_take(session),
        SyncState::InFd => appipc_sys::aio::is_readable(&obj.fd)
            .map_err(|e| InternalError::io(format!("polling {}", obj.display), e))?,
    })
}

/// Takes what a completed wait takes: an auto-reset event's or timer's signal, one count of a
/// semaphore, ownership of a mutex; a manual-reset event or timer is only looked at.
fn take(obj: &mut Object, session: u64, display: &str) -> Result<WaitOutcome> {
    let io = |e| InternalError::io(format!("waiting on {display}"), e);
    let got = |b: bool| if b { WaitOutcome::Signalled } else { WaitOutcome::NotSignalled };
    Ok(match (&mut obj.sync, obj.ty) {
        (SyncState::Semaphore { count, .. }, _) => {
            if *count == 0 {
                return Ok(WaitOutcome::NotSignalled);
            }
            *count -= 1;
            if *count == 0 {
                set_flag(&obj.fd, false).map_err(io)?;
            }
            WaitOutcome::Signalled
        }
        (SyncState::Mutex(m), _) => {
            let r = m.acquire(session)?;
            if r != WaitOutcome::NotSignalled {
                set_flag(&obj.fd, false).map_err(io)?;
            }
            r
        }
        (SyncState::InFd, _) if obj.manual_reset => {
            got(appipc_sys::aio::is_readable(&obj.fd).map_err(io)?)
        }
        (SyncState::InFd, ObjectType::WaitableTimer) => {
            got(appipc_sys::timer::timerfd_try_take(&obj.fd).map_err(io)?)
        }
        (SyncState::InFd, _) => got(appipc_sys::aio::eventfd_try_take(&obj.fd).map_err(io)?),
    })
}
