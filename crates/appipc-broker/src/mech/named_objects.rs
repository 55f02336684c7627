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
//! | event, semaphore | `SYNCHRONIZE` and the modify right | the eventfd |
//! | event, semaphore | `SYNCHRONIZE` only | an epoll fd that is readable while the object is signalled (auto-reset events and semaphores are then taken with `TakeSignal`) |
//! | event, semaphore | the modify right only | none (`Signal` through the broker) |
//! | any | nothing usable | none |
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
    self as model, FILE_MAP_READ, FILE_MAP_WRITE, GENERIC_ALL, MODIFY_STATE, NameKind, Namespace,
    ObjectType, SYNCHRONIZE, SecurityDescriptor,
};
use appipc_model::policy::Operation;
use appipc_wire::protocol::named_objects::{
    self as wire, HandleFd, NamedObjectHandle, NamedObjectInfo, NamedObjectKind, SignalOp,
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
    /// A manual-reset event.
    manual_reset: bool,
    handles: u32,
    /// The fd the broker holds for it, charged to the budget.
    _fd_charge: FdCharge,
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
        ObjectType::Pipe => "pipe",
    }
}

fn from_wire(t: wire::ObjectType) -> ObjectType {
    match t {
        wire::ObjectType::Event => ObjectType::Event,
        wire::ObjectType::Semaphore => ObjectType::Semaphore,
        wire::ObjectType::FileMapping => ObjectType::FileMapping,
    }
}

fn to_wire(t: ObjectType) -> wire::ObjectType {
    match t {
        ObjectType::Event => wire::ObjectType::Event,
        ObjectType::Semaphore => wire::ObjectType::Semaphore,
        ObjectType::FileMapping | ObjectType::Pipe => wire::ObjectType::FileMapping,
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
        R::TakeSignal(t) => Replied::of::<wire::TakeSignal>(objects.take_signal(&cx, t.handle)?),
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
                handles: 0,
                _fd_charge: charge,
            },
        );
        let granted = ty.map_generic(GENERIC_ALL);
        match self.open_handle(&mut st, cx, key.clone(), granted, false) {
            Ok(h) => Ok(h),
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

    /// `SetEvent` / `ResetEvent` / `ReleaseSemaphore` for a handle without the object's fd.
    fn signal(&self, cx: &Cx<'_>, handle: u64, op: SignalOp) -> Result<u32> {
        let st = self.lock();
        let h = self.owned(cx, &st, handle)?;
        let obj = st.objects.get(&h.key).expect("a handle's object lives");
        let action = match (obj.ty, op) {
            (ObjectType::Event, SignalOp::Set) => "SetEvent",
            (ObjectType::Event, SignalOp::Reset) => "ResetEvent",
            (ObjectType::Semaphore, SignalOp::Release { .. }) => "ReleaseSemaphore",
            (ty, _) => {
                return Err(NamedObjectError::win32(
                    Win32Error::InvalidHandle,
                    format!("{op:?} does not apply to a {}", type_name(ty)),
                ));
            }
        };
        cx.enforce(Operation::UseHandleRight {
            handle,
            action,
            needed: MODIFY_STATE,
            granted: h.granted,
        })?;
        let r = match op {
            SignalOp::Set => {
                if obj.manual_reset && appipc_sys::aio::is_readable(&obj.fd).unwrap_or(false) {
                    Ok(())
                } else {
                    appipc_sys::aio::eventfd_signal(&obj.fd)
                }
            }
            SignalOp::Reset => appipc_sys::aio::eventfd_drain(&obj.fd),
            SignalOp::Release { count } => {
                if count == 0 {
                    return Err(NamedObjectError::parameter("ReleaseSemaphore with a count of 0"));
                }
                appipc_sys::aio::eventfd_add(&obj.fd, u64::from(count))
            }
        };
        r.map_err(|e| InternalError::io(format!("{action} on {}", obj.display), e))?;
        Ok(0)
    }

    /// Completes a wait of a wait-only handle: takes the signal of an auto-reset event or one
    /// count of a semaphore if still there; a manual-reset event is only looked at.
    fn take_signal(&self, cx: &Cx<'_>, handle: u64) -> Result<bool> {
        let st = self.lock();
        let h = self.owned(cx, &st, handle)?;
        let obj = st.objects.get(&h.key).expect("a handle's object lives");
        if !matches!(obj.ty, ObjectType::Event | ObjectType::Semaphore) {
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
        let r = if obj.manual_reset {
            appipc_sys::aio::is_readable(&obj.fd)
        } else {
            appipc_sys::aio::eventfd_try_take(&obj.fd)
        };
        Ok(r.map_err(|e| InternalError::io(format!("waiting on {}", obj.display), e))?)
    }

    /// A session ended: its handles are closed.
    pub(crate) fn session_closed(&self, session: u64) {
        let mut st = self.lock();
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
            let fd = appipc_sys::aio::eventfd_new(initial, true)
                .map_err(|e| InternalError::io("eventfd", e))?;
            Ok(made(fd, 0, true, false, None))
        }
    }
}
