//! Named objects: the broker holds the name table (per user: the session namespace and one
//! namespace per package), checks access by the Windows rules (`appipc-model::named_objects`)
//! and hands out the object itself as an fd — a sealed memfd for a file mapping, an eventfd for
//! an event or semaphore. Data never goes through the broker.
//!
//! Handles are counted per session: `CloseNamedObject`, or the end of the session (the process
//! exited), closes them. An object lives while any handle to it is open; then its name is gone.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use appipc_model::named_objects::{
    self as model, FILE_MAP_WRITE, GENERIC_ALL, Intent, NameKind, Namespace, ObjectType, Requester,
    SecurityDescriptor, Win32Error,
};
use appipc_wire::protocol::{NamedObjectInfo, NamedObjectKind, Reply, TrustLevel};

use crate::error::{BrokerError, Result};
use crate::session::Identity;

type Key = (Namespace, String);

#[derive(Debug)]
struct Object {
    ty: ObjectType,
    display: String,
    creator: String,
    sd: SecurityDescriptor,
    fd: OwnedFd,
    size: u64,
    /// A file mapping created `PAGE_READWRITE`.
    writable: bool,
    /// A manual-reset event.
    manual_reset: bool,
    handles: u32,
}

#[derive(Debug, Default)]
struct State {
    objects: HashMap<Key, Object>,
    /// handle → (session, object)
    handles: HashMap<u64, (u64, Key)>,
    /// session → how many handles it holds.
    per_session: HashMap<u64, usize>,
}

/// How many named-object handles one session may hold: every object costs the broker an fd,
/// so a client that leaks handles is stopped here, not by the broker's fd limit.
pub const MAX_HANDLES_PER_SESSION: usize = 4096;

impl State {
    /// `ERROR_NOT_ENOUGH_QUOTA` when `session` holds its share of handles.
    fn over_quota(&self, session: u64) -> Option<Reply> {
        let held = self.per_session.get(&session).copied().unwrap_or(0);
        (held >= MAX_HANDLES_PER_SESSION).then(|| {
            failed(
                Win32Error::NotEnoughQuota,
                format!(
                    "this session holds {held} named-object handles, the most it may; close some"
                ),
            )
        })
    }

    fn forget_handle(&mut self, handle: u64) -> Option<Key> {
        let (session, key) = self.handles.remove(&handle)?;
        if let Some(n) = self.per_session.get_mut(&session) {
            *n -= 1;
            if *n == 0 {
                self.per_session.remove(&session);
            }
        }
        Some(key)
    }
}

/// The name table.
#[derive(Debug, Default)]
pub struct NamedObjects {
    state: Mutex<State>,
    next_handle: AtomicU64,
}

fn failed(code: Win32Error, message: impl Into<String>) -> Reply {
    let message = message.into();
    tracing::info!(code = code.code(), %message, "named object refused");
    Reply::NamedObjectFailed { code: code.code(), message }
}

fn requester(who: &Identity) -> Requester {
    match &who.package {
        Some(p) if p.trust == TrustLevel::AppContainer => {
            Requester::confined(&p.family_name, &p.capabilities)
        }
        _ => Requester::unconfined(),
    }
}

fn type_name(t: ObjectType) -> &'static str {
    match t {
        ObjectType::Event => "event",
        ObjectType::Semaphore => "semaphore",
        ObjectType::FileMapping => "file mapping",
        ObjectType::Pipe => "pipe",
    }
}

/// `ERROR_INVALID_HANDLE`, as Windows answers an open of a name that holds another type.
fn wrong_type(name: &str, found: ObjectType, asked: ObjectType) -> Reply {
    failed(
        Win32Error::InvalidHandle,
        format!("{name:?} names a {}, not a {}", type_name(found), type_name(asked)),
    )
}

fn type_from_wire(t: u8) -> Option<ObjectType> {
    match t {
        0 => Some(ObjectType::Event),
        1 => Some(ObjectType::Semaphore),
        2 => Some(ObjectType::FileMapping),
        _ => None,
    }
}

impl NamedObjects {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("named objects poisoned")
    }

    /// Resolves `name` for `who` and takes the table, or the refusal to send back (a bad name,
    /// a name the caller may not create, or the caller's handle quota reached).
    fn locate(
        &self,
        who: &Identity,
        req: &Requester,
        name: &str,
        intent: Intent,
    ) -> std::result::Result<(model::ObjectName, std::sync::MutexGuard<'_, State>), Box<Reply>>
    {
        let n = model::resolve(req, name, NameKind::Object, intent)
            .map_err(|e| Box::new(failed(e.code, e.message)))?;
        let st = self.lock();
        if let Some(refused) = st.over_quota(who.session_id) {
            return Err(Box::new(refused));
        }
        Ok((n, st))
    }

    /// The fd a handle gets: file mappings read-only unless write access was granted on a
    /// writable mapping (a read-only fd cannot be mapped for writing).
    fn handle_fd(obj: &Object, granted: u32) -> std::io::Result<(OwnedFd, bool)> {
        if obj.ty == ObjectType::FileMapping {
            let writable = obj.writable && granted & FILE_MAP_WRITE != 0;
            return Ok((appipc_sys::fs::reopen(&obj.fd, writable)?, writable));
        }
        Ok((obj.fd.try_clone()?, true))
    }

    fn open_handle(
        &self,
        st: &mut State,
        session: u64,
        key: Key,
        granted: u32,
        already_exists: bool,
    ) -> Result<(Reply, Vec<OwnedFd>)> {
        let obj = st.objects.get_mut(&key).expect("caller checked");
        let (fd, writable) = Self::handle_fd(obj, granted)
            .map_err(|e| BrokerError::io("opening a handle to a named object", e))?;
        obj.handles += 1;
        let (size, manual_reset) = (obj.size, obj.manual_reset);
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed) + 1;
        st.handles.insert(handle, (session, key));
        *st.per_session.entry(session).or_default() += 1;
        Ok((
            Reply::NamedObject {
                handle,
                already_exists,
                granted_access: granted,
                size,
                writable,
                manual_reset,
            },
            vec![fd],
        ))
    }

    /// `Create…` with a name.
    pub(crate) fn create(
        &self,
        who: &Identity,
        kind: NamedObjectKind,
        name: &str,
        sddl: Option<&str>,
        mut backing: Vec<OwnedFd>,
    ) -> Result<(Reply, Vec<OwnedFd>)> {
        let req = requester(who);
        if backing.len() > 1
            || (!backing.is_empty()
                && !matches!(kind, NamedObjectKind::FileMapping { size: 0, .. }))
        {
            return Err(BrokerError::BadRequest(
                "only a file mapping of size 0 takes a file (one fd)".into(),
            ));
        }
        let ty = match &kind {
            NamedObjectKind::Event { .. } => ObjectType::Event,
            NamedObjectKind::Semaphore { .. } => ObjectType::Semaphore,
            NamedObjectKind::FileMapping { .. } => ObjectType::FileMapping,
        };
        let (n, mut st) = match self.locate(who, &req, name, Intent::Create) {
            Ok(found) => found,
            Err(refused) => return Ok((*refused, Vec::new())),
        };
        let key = (n.namespace.clone(), n.key.clone());
        if let Some(obj) = st.objects.get(&key) {
            if obj.ty != ty {
                return Ok((wrong_type(name, obj.ty, ty), Vec::new()));
            }
            let granted = match model::check_access(&req, &obj.sd, ty, GENERIC_ALL) {
                Ok(g) => g,
                Err(e) => return Ok((failed(e.code, e.message), Vec::new())),
            };
            return self.open_handle(&mut st, who.session_id, key, granted, true);
        }
        let sd = match sddl {
            Some(text) => SecurityDescriptor::from_sddl(text)
                .map_err(|e| BrokerError::BadRequest(format!("security descriptor: {e}")))?,
            None => model::default_descriptor(&req),
        };
        let mut manual = false;
        let (fd, size, writable) = match kind {
            NamedObjectKind::FileMapping { size: 0, writable } if !backing.is_empty() => {
                // A mapping of the caller's open file: the broker keeps the fd it was given.
                let file = backing.remove(0);
                let id =
                    appipc_sys::fs::identity(&file).map_err(|e| BrokerError::io("fstat", e))?;
                if !id.regular {
                    return Err(BrokerError::BadRequest(
                        "a file mapping's file must be a regular file".into(),
                    ));
                }
                let mode = appipc_sys::fs::access_mode(&file)
                    .map_err(|e| BrokerError::io("F_GETFL", e))?;
                if writable && mode != appipc_sys::fs::AccessMode::ReadWrite {
                    return Err(BrokerError::BadRequest(
                        "PAGE_READWRITE needs the file open for reading and writing".into(),
                    ));
                }
                (file, id.size, writable)
            }
            NamedObjectKind::FileMapping { size, writable } => {
                if size == 0 {
                    return Err(BrokerError::BadRequest(
                        "a file mapping backed by memory needs a size".into(),
                    ));
                }
                let fd = appipc_sys::memfd::create_fixed_size("appipc-file-mapping", size)
                    .map_err(|e| BrokerError::io("creating the mapping's memfd", e))?;
                (fd, size, writable)
            }
            NamedObjectKind::Event { initial_state, manual_reset } => {
                manual = manual_reset;
                let fd = appipc_sys::aio::eventfd_new(u32::from(initial_state), false)
                    .map_err(|e| BrokerError::io("eventfd", e))?;
                (fd, 0, true)
            }
            NamedObjectKind::Semaphore { initial, maximum } => {
                if initial > maximum || maximum == 0 {
                    return Err(BrokerError::BadRequest(format!(
                        "semaphore count {initial} of {maximum}"
                    )));
                }
                let fd = appipc_sys::aio::eventfd_new(initial, true)
                    .map_err(|e| BrokerError::io("eventfd", e))?;
                (fd, 0, true)
            }
        };
        tracing::info!(namespace = %n.namespace, name = %n.display, object_type = type_name(ty), by = %who.describe(), sddl = %sd.to_sddl(), "named object created");
        st.objects.insert(
            key.clone(),
            Object {
                ty,
                display: n.display,
                creator: who.describe(),
                sd,
                fd,
                size,
                writable,
                manual_reset: manual,
                handles: 0,
            },
        );
        self.open_handle(&mut st, who.session_id, key, ty.map_generic(GENERIC_ALL), false)
    }

    /// `Open…`.
    pub(crate) fn open(
        &self,
        who: &Identity,
        object_type: u8,
        name: &str,
        desired: u32,
    ) -> Result<(Reply, Vec<OwnedFd>)> {
        let Some(ty) = type_from_wire(object_type) else {
            return Err(BrokerError::BadRequest(format!("object type {object_type}")));
        };
        let req = requester(who);
        let (n, mut st) = match self.locate(who, &req, name, Intent::Open) {
            Ok(found) => found,
            Err(refused) => return Ok((*refused, Vec::new())),
        };
        let key = (n.namespace.clone(), n.key.clone());
        let Some(obj) = st.objects.get(&key) else {
            return Ok((
                failed(
                    Win32Error::FileNotFound,
                    format!("no object named {name:?} in {}", n.namespace),
                ),
                Vec::new(),
            ));
        };
        if obj.ty != ty {
            return Ok((wrong_type(name, obj.ty, ty), Vec::new()));
        }
        let granted = match model::check_access(&req, &obj.sd, ty, desired) {
            Ok(g) => g,
            Err(e) => return Ok((failed(e.code, e.message), Vec::new())),
        };
        tracing::debug!(name = %n.display, by = %who.describe(), granted, "named object opened");
        self.open_handle(&mut st, who.session_id, key, granted, false)
    }

    fn release(st: &mut State, key: &Key) {
        let gone = match st.objects.get_mut(key) {
            Some(obj) => {
                obj.handles = obj.handles.saturating_sub(1);
                obj.handles == 0
            }
            None => false,
        };
        if gone && let Some(obj) = st.objects.remove(key) {
            tracing::info!(name = %obj.display, "last handle closed: named object gone");
        }
    }

    /// `CloseHandle`.
    pub(crate) fn close(&self, who: &Identity, handle: u64) -> Result<Reply> {
        let mut st = self.lock();
        match st.handles.get(&handle) {
            Some((session, _)) if *session == who.session_id => {}
            Some(_) => {
                return Err(BrokerError::AccessDenied(format!(
                    "handle {handle} belongs to another session"
                )));
            }
            None => return Err(BrokerError::NotFound(format!("no handle {handle}"))),
        }
        let key = st.forget_handle(handle).expect("checked");
        Self::release(&mut st, &key);
        Ok(Reply::Ok)
    }

    /// A session ended: its handles are closed.
    pub(crate) fn session_closed(&self, session: u64) {
        let mut st = self.lock();
        let mine: Vec<u64> =
            st.handles.iter().filter(|(_, (s, _))| *s == session).map(|(h, _)| *h).collect();
        for h in mine {
            if let Some(key) = st.forget_handle(h) {
                Self::release(&mut st, &key);
            }
        }
    }

    /// `ListNamedObjects`: an app container sees its own namespace's objects only.
    pub(crate) fn list(&self, who: &Identity) -> Reply {
        let req = requester(who);
        let st = self.lock();
        let mut out: Vec<NamedObjectInfo> = st
            .objects
            .iter()
            .filter(|((ns, _), _)| match &req.appcontainer {
                Some(sid) => *ns == Namespace::AppContainer(sid.clone()),
                None => true,
            })
            .map(|((ns, key), o)| NamedObjectInfo {
                namespace: ns.to_string(),
                name: key.clone(),
                object_type: type_name(o.ty).to_owned(),
                creator: o.creator.clone(),
                sddl: o.sd.to_sddl(),
                handles: o.handles,
                size: o.size,
            })
            .collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        Reply::NamedObjects(out)
    }
}
