//! Named objects: file mappings (shared memory), events, semaphores, mutexes and waitable
//! timers, in per-package namespaces, shared across packages only by the creator's security
//! descriptor. The broker checks names and access and hands over the object itself (a memfd,
//! an eventfd) as far as the handle's granted rights allow: reading, writing and signalling an
//! event then never involve it. A handle that may wait but not signal gets only a readiness fd
//! it can wait on but not signal through (the broker completes its waits); one that may signal
//! but not wait signals through the broker; an open with access 0 is refused, as on Windows.
//! Semaphores, mutexes and timers keep their state in the broker (a count and its maximum, an
//! owner, a schedule), so no fd a holder has can break their rules; their waits complete with
//! a request to the broker.
//!
//! Waits: [`wait_for_single_object`] and [`wait_for_multiple_objects`] (any or all, up to
//! [`MAXIMUM_WAIT_OBJECTS`]) with a time-out in milliseconds or [`INFINITE`], returning a
//! [`WaitResult`] whose [`code`](WaitResult::code) is Windows' (`WAIT_OBJECT_0` 0,
//! `WAIT_ABANDONED` 0x80, `WAIT_TIMEOUT` 258).
//!
//! Names: `Local\name` (or `name`) is the caller's own namespace — its package's in an app
//! container, the user's session otherwise; another package's objects are reached by
//! qualifying the name with [`named_object_path`]. As on Windows, names are case-sensitive and
//! so are the keywords `Local\`, `Global\` and `Session\` (`local\x` is refused, 123); pipe
//! names ([`crate::named_pipes`]) are not. Rights are Windows' (`FILE_MAP_READ` 0x4,
//! `FILE_MAP_WRITE` 0x2, `GENERIC_ALL`, …); errors carry Windows' codes.

use std::os::fd::OwnedFd;

use appipc_sys::memfd::SharedView;
use appipc_wire::protocol::named_objects::{
    self as wire, HandleFd, NamedObjectHandle, NamedObjectKind, SignalOp, WaitOutcome,
};
pub use appipc_wire::protocol::named_objects::{NamedObjectInfo, ObjectType};

use crate::error::{Error, Result};
use crate::session::Session;

/// `FILE_MAP_READ`.
pub const FILE_MAP_READ: u32 = 0x0004;
/// `FILE_MAP_WRITE`.
pub const FILE_MAP_WRITE: u32 = 0x0002;
/// `FILE_MAP_ALL_ACCESS`.
pub const FILE_MAP_ALL_ACCESS: u32 = 0x000F_001F;
/// `SYNCHRONIZE`.
pub const SYNCHRONIZE: u32 = 0x0010_0000;
/// `EVENT_MODIFY_STATE`.
pub const EVENT_MODIFY_STATE: u32 = 0x0002;
/// `SEMAPHORE_MODIFY_STATE`.
pub const SEMAPHORE_MODIFY_STATE: u32 = 0x0002;
/// `MAXIMUM_ALLOWED`: every right the descriptor grants.
pub const MAXIMUM_ALLOWED: u32 = 0x0200_0000;
/// `ERROR_ALREADY_EXISTS`, reported by [`Created::already_exists`].
pub const ERROR_ALREADY_EXISTS: u32 = 183;
/// `GENERIC_READ` (mapped per object type by the access check).
pub const GENERIC_READ: u32 = 0x8000_0000;
/// `GENERIC_WRITE`.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// `GENERIC_EXECUTE`.
pub const GENERIC_EXECUTE: u32 = 0x2000_0000;
/// `GENERIC_ALL`.
pub const GENERIC_ALL: u32 = 0x1000_0000;

/// A security descriptor for a named object or pipe, built entry by entry, for those who would
/// rather not write SDDL. [`SecurityDescriptor::to_sddl`] gives the text the create calls take
/// (the broker parses and checks it; a bad family name or SID is refused there, naming it).
///
/// The access check is Windows': an app container is granted only what **both** a user-side
/// entry (the user, [`allow_everyone`](Self::allow_everyone), [`allow_owner`](Self::allow_owner))
/// **and** an app-container-side entry (its package, one of its capabilities, ALL APPLICATION
/// PACKAGES) grant; an unconfined process needs a user-side entry. And an app container runs at
/// Low integrity: it may not write an object an unconfined process created unless that object is
/// labelled Low ([`low_integrity`](Self::low_integrity), `S:(ML;;NW;;;LW)`); what an app
/// container creates is labelled Low already.
///
/// ```
/// use appipc::named_objects::{GENERIC_ALL, GENERIC_READ, SecurityDescriptor, SYNCHRONIZE};
/// let sd = SecurityDescriptor::new()
///     .allow_owner(GENERIC_ALL)
///     .allow_package("Fabrikam.Tools_8tkjkmve8mrwr", GENERIC_READ)
///     .allow_capability("internetClient", SYNCHRONIZE)
///     .deny_all_application_packages(GENERIC_READ)
///     .low_integrity();
/// assert_eq!(
///     sd.to_sddl(),
///     "D:(A;;GA;;;OW)(A;;GR;;;PFN:Fabrikam.Tools_8tkjkmve8mrwr)(A;;0x100000;;;CAP:internetClient)\
///      (D;;GR;;;AC)S:(ML;;NW;;;LW)"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityDescriptor {
    entries: Vec<(bool, String, u32)>,
    low_integrity: bool,
}

impl SecurityDescriptor {
    /// An empty DACL: nobody is granted a right (the owner, the creating user, keeps
    /// `READ_CONTROL` and `WRITE_DAC`, as on Windows).
    pub fn new() -> SecurityDescriptor {
        SecurityDescriptor::default()
    }

    fn entry(mut self, allow: bool, trustee: String, rights: u32) -> SecurityDescriptor {
        self.entries.push((allow, trustee, rights));
        self
    }

    /// Allows `rights` to a package, by family name or by its AppContainer SID (`S-1-15-2-…`):
    /// the app-container side of the check.
    pub fn allow_package(self, family_name_or_sid: &str, rights: u32) -> SecurityDescriptor {
        let t = package_trustee(family_name_or_sid);
        self.entry(true, t, rights)
    }

    /// Allows `rights` to every app container holding a capability, by name
    /// (`internetClient`) or SID (`S-1-15-3-…`).
    pub fn allow_capability(self, name_or_sid: &str, rights: u32) -> SecurityDescriptor {
        let t = capability_trustee(name_or_sid);
        self.entry(true, t, rights)
    }

    /// Allows `rights` to `ALL APPLICATION PACKAGES` (SDDL `AC`).
    pub fn allow_all_application_packages(self, rights: u32) -> SecurityDescriptor {
        self.entry(true, "AC".into(), rights)
    }

    /// Allows `rights` to Everyone (SDDL `WD`): the user side of the check, for every process
    /// of the user, confined or not.
    pub fn allow_everyone(self, rights: u32) -> SecurityDescriptor {
        self.entry(true, "WD".into(), rights)
    }

    /// Allows `rights` to the object's owner, the user who created it (SDDL `OW`, OWNER
    /// RIGHTS): the user side of the check. With an `OW` entry the owner no longer has
    /// `READ_CONTROL` and `WRITE_DAC` implicitly.
    pub fn allow_owner(self, rights: u32) -> SecurityDescriptor {
        self.entry(true, "OW".into(), rights)
    }

    /// Allows `rights` to a SID or an SDDL alias (`S-1-22-1-1000`, `AU`, `SY`, …).
    pub fn allow_sid(self, sid_or_alias: &str, rights: u32) -> SecurityDescriptor {
        self.entry(true, sid_or_alias.to_owned(), rights)
    }

    /// Denies `rights` to a package. Entries are checked in the order added, as Windows walks a
    /// DACL: put deny entries first.
    pub fn deny_package(self, family_name_or_sid: &str, rights: u32) -> SecurityDescriptor {
        let t = package_trustee(family_name_or_sid);
        self.entry(false, t, rights)
    }

    /// Denies `rights` to app containers holding a capability.
    pub fn deny_capability(self, name_or_sid: &str, rights: u32) -> SecurityDescriptor {
        let t = capability_trustee(name_or_sid);
        self.entry(false, t, rights)
    }

    /// Denies `rights` to `ALL APPLICATION PACKAGES`.
    pub fn deny_all_application_packages(self, rights: u32) -> SecurityDescriptor {
        self.entry(false, "AC".into(), rights)
    }

    /// Denies `rights` to Everyone: every process of the user, confined or not.
    pub fn deny_everyone(self, rights: u32) -> SecurityDescriptor {
        self.entry(false, "WD".into(), rights)
    }

    /// Denies `rights` to a SID or an SDDL alias.
    pub fn deny_sid(self, sid_or_alias: &str, rights: u32) -> SecurityDescriptor {
        self.entry(false, sid_or_alias.to_owned(), rights)
    }

    /// Labels the object Low, no-write-up (`S:(ML;;NW;;;LW)`), so app containers (which run at
    /// Low) may write it if its DACL lets them. Only matters for what an unconfined process
    /// creates: an app container's objects are Low already.
    pub fn low_integrity(mut self) -> SecurityDescriptor {
        self.low_integrity = true;
        self
    }

    /// The SDDL text (`D:(A;;GR;;;PFN:…)…`): generic rights as their codes, others as a number;
    /// packages and capabilities named by name use appipc's `PFN:`/`CAP:` trustees.
    pub fn to_sddl(&self) -> String {
        let mut s = String::from("D:");
        for (allow, trustee, rights) in &self.entries {
            let kind = if *allow { "A" } else { "D" };
            s.push_str(&format!("({kind};;{};;;{trustee})", sddl_rights(*rights)));
        }
        if self.low_integrity {
            s.push_str("S:(ML;;NW;;;LW)");
        }
        s
    }
}

fn package_trustee(family_name_or_sid: &str) -> String {
    if family_name_or_sid.starts_with("S-1-15-2-") {
        family_name_or_sid.to_owned()
    } else {
        format!("PFN:{family_name_or_sid}")
    }
}

fn capability_trustee(name_or_sid: &str) -> String {
    if name_or_sid.starts_with("S-1-15-3-") {
        name_or_sid.to_owned()
    } else {
        format!("CAP:{name_or_sid}")
    }
}

/// Rights as SDDL: `GR`, `GRGW`, … when only generic rights are asked, else a number.
fn sddl_rights(rights: u32) -> String {
    const CODES: [(u32, &str); 4] =
        [(GENERIC_ALL, "GA"), (GENERIC_READ, "GR"), (GENERIC_WRITE, "GW"), (GENERIC_EXECUTE, "GX")];
    let generic = CODES.iter().fold(0, |m, (bit, _)| m | bit);
    if rights == 0 || rights & !generic != 0 {
        return format!("{rights:#x}");
    }
    CODES.iter().filter(|(bit, _)| rights & bit != 0).map(|(_, code)| *code).collect()
}

/// `GetAppContainerNamedObjectPath`: the prefix that names a package's namespace
/// (`AppContainerNamedObjects\<package SID>`).
pub async fn named_object_path(session: &Session, package_family_name: &str) -> Result<String> {
    session
        .call(wire::GetNamedObjectPath { package_family_name: package_family_name.to_owned() })
        .await
        .map_err(Error::into_win32)
}

/// The live named objects this caller may see (an app container: its own namespace's).
pub async fn list(session: &Session) -> Result<Vec<NamedObjectInfo>> {
    session.call(wire::List {}).await
}

/// The broker's handle of an object.
#[derive(Debug)]
struct Handle {
    session: Session,
    id: u64,
}

impl Drop for Handle {
    /// `CloseHandle`: the object goes when its last handle anywhere closes.
    fn drop(&mut self) {
        let session = self.session.clone();
        let id = self.id;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = session.call(wire::Close { handle: id }).await;
            });
        }
        // Without a runtime the handle is closed when the session ends.
    }
}

/// What a create returned: the object, and whether it existed already (183).
#[derive(Debug)]
pub struct Created<T> {
    /// The object.
    pub object: T,
    /// `GetLastError() == ERROR_ALREADY_EXISTS`: the name was taken by an object of the same
    /// type, which was opened instead.
    pub already_exists: bool,
}

/// A handle as the broker opened it, and the fd that came with it.
struct Opened {
    handle: Handle,
    fd: Option<OwnedFd>,
    info: NamedObjectHandle,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opened")
    }
}

async fn call<C>(
    session: &Session,
    request: C,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<Opened>
where
    C: appipc_wire::protocol::Call<Output = NamedObjectHandle>,
{
    let (info, mut fds) = session.call_with_fds(request, fds).await.map_err(Error::into_win32)?;
    let fd = fds.pop();
    if fd.is_some() == (info.fd == HandleFd::None) {
        return Err(Error::Protocol(format!(
            "handle {:?} came with {} fd(s)",
            info.fd,
            fd.iter().count()
        )));
    }
    Ok(Opened { handle: Handle { session: session.clone(), id: info.handle }, fd, info })
}

/// `ERROR_ACCESS_DENIED` for something this handle's rights do not allow.
fn not_granted(what: &str, granted: u32) -> Error {
    Error::NamedObject {
        code: 5,
        message: format!("{what}: this handle was granted {granted:#x}, which does not allow it"),
    }
}

/// A named file mapping: shared memory of a fixed size.
#[derive(Debug)]
pub struct FileMapping {
    _handle: Handle,
    fd: Option<OwnedFd>,
    size: u64,
    writable: bool,
    granted: u32,
}

impl FileMapping {
    fn from(o: Opened) -> FileMapping {
        FileMapping {
            writable: o.info.fd == HandleFd::Object,
            size: o.info.size,
            granted: o.info.granted_access,
            fd: o.fd,
            _handle: o.handle,
        }
    }

    /// `CreateFileMapping(INVALID_HANDLE_VALUE, sa, PAGE_READWRITE or PAGE_READONLY, size, name)`.
    /// `sddl` is the security descriptor (`D:(A;;GA;;;WD)(A;;GR;;;S-1-15-2-…)`, see
    /// [`SecurityDescriptor`]); `None` gives the creator's default (the user, SYSTEM and, for an
    /// app container, its package).
    pub async fn create(
        session: &Session,
        name: &str,
        size: u64,
        writable: bool,
        sddl: Option<&str>,
    ) -> Result<Created<FileMapping>> {
        let request = wire::Create {
            kind: NamedObjectKind::FileMapping { size, writable },
            name: name.to_owned(),
            sddl: sddl.map(str::to_owned),
        };
        let o = call(session, request, &[]).await?;
        let already_exists = o.info.already_exists;
        Ok(Created { object: FileMapping::from(o), already_exists })
    }

    /// `CreateFileMapping(file, …)`: a named mapping of a file this process has open (its
    /// size now); `writable` needs the file open for reading and writing.
    pub async fn create_from_file(
        session: &Session,
        name: &str,
        file: &std::fs::File,
        writable: bool,
        sddl: Option<&str>,
    ) -> Result<Created<FileMapping>> {
        use std::os::fd::AsFd;
        let request = wire::Create {
            kind: NamedObjectKind::FileMappingOfFile { writable },
            name: name.to_owned(),
            sddl: sddl.map(str::to_owned),
        };
        let o = call(session, request, &[file.as_fd()]).await?;
        let already_exists = o.info.already_exists;
        Ok(Created { object: FileMapping::from(o), already_exists })
    }

    /// `OpenFileMapping(desired_access, name)`. Access 0 is refused (5); the handle can map
    /// views only as its granted rights allow.
    pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<FileMapping> {
        let request = wire::Open {
            object_type: wire::ObjectType::FileMapping,
            name: name.to_owned(),
            desired_access,
        };
        Ok(FileMapping::from(call(session, request, &[]).await?))
    }

    /// Its size (fixed at creation).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether views may be writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The rights this handle was granted.
    pub fn granted_access(&self) -> u32 {
        self.granted
    }

    fn view(&self, writable: bool, what: &'static str) -> Result<SharedView> {
        let Some(fd) = &self.fd else { return Err(not_granted("MapViewOfFile", self.granted)) };
        let len = usize::try_from(self.size)
            .map_err(|_| Error::Protocol("mapping larger than memory".into()))?;
        SharedView::map(fd, len, writable).map_err(|source| Error::Io { what, source })
    }

    /// `MapViewOfFile`: the whole mapping, writable if this handle allows writing.
    pub fn map_view(&self) -> Result<SharedView> {
        self.view(self.writable, "mapping the view")
    }

    /// Tries to map a writable view even if this handle is read-only (the kernel refuses:
    /// `EACCES`).
    pub fn map_view_writable(&self) -> Result<SharedView> {
        self.view(true, "mapping a writable view")
    }
}

/// `WAIT_OBJECT_0`: [`WaitResult::Object`]`(0)`'s code.
pub const WAIT_OBJECT_0: u32 = 0;
/// `WAIT_ABANDONED` (`WAIT_ABANDONED_0`): [`WaitResult::Abandoned`]`(0)`'s code.
pub const WAIT_ABANDONED: u32 = 0x80;
/// `WAIT_TIMEOUT`.
pub const WAIT_TIMEOUT: u32 = 258;
/// `INFINITE`: a wait without a time-out.
pub const INFINITE: u32 = 0xFFFF_FFFF;
/// `MAXIMUM_WAIT_OBJECTS`: the most objects [`wait_for_multiple_objects`] takes.
pub const MAXIMUM_WAIT_OBJECTS: usize = 64;
/// `MUTEX_ALL_ACCESS`.
pub const MUTEX_ALL_ACCESS: u32 = 0x001F_0001;
/// `MUTEX_MODIFY_STATE` (reserved on Windows; `ReleaseMutex` needs ownership, not a right).
pub const MUTEX_MODIFY_STATE: u32 = 0x0001;
/// `TIMER_MODIFY_STATE`: needed by [`WaitableTimer::set`] and [`WaitableTimer::cancel`].
pub const TIMER_MODIFY_STATE: u32 = 0x0002;
/// `TIMER_ALL_ACCESS`.
pub const TIMER_ALL_ACCESS: u32 = 0x001F_0003;
/// `ERROR_NOT_OWNER`: [`Mutex::release`] by a process that does not own the mutex.
pub const ERROR_NOT_OWNER: u32 = 288;
/// `ERROR_TOO_MANY_POSTS`: [`Semaphore::release_count`] past the maximum.
pub const ERROR_TOO_MANY_POSTS: u32 = 298;

/// How a wait ended (`WaitForSingleObject`'s and `WaitForMultipleObjects`' return value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitResult {
    /// `WAIT_OBJECT_0 + i`: object `i` was signalled and the wait took what it takes (0 for a
    /// single object and for a wait on all).
    Object(usize),
    /// `WAIT_ABANDONED_0 + i`: object `i` is a mutex whose owner ended without releasing it;
    /// the caller owns it now, and should check what it protects.
    Abandoned(usize),
    /// `WAIT_TIMEOUT`.
    Timeout,
}

impl WaitResult {
    /// The value Windows' wait functions return for it.
    pub fn code(self) -> u32 {
        let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        match self {
            WaitResult::Object(i) => WAIT_OBJECT_0 + index(i),
            WaitResult::Abandoned(i) => WAIT_ABANDONED + index(i),
            WaitResult::Timeout => WAIT_TIMEOUT,
        }
    }
}

fn parameter(message: String) -> Error {
    Error::NamedObject { code: 87, message }
}

/// A waitable object's handle and fd, by what the handle may do. Not used directly: see
/// [`WaitHandle`].
#[doc(hidden)]
#[derive(Debug)]
pub struct WaitCore {
    handle: Handle,
    fd: Option<OwnedFd>,
    kind: HandleFd,
    granted: u32,
    manual_reset: bool,
    /// When a wait polls the object's fd before it sleeps.
    spin: crate::spin::Spin,
}

impl WaitCore {
    fn from(o: Opened) -> WaitCore {
        WaitCore {
            spin: crate::spin::Spin::new(),
            granted: o.info.granted_access,
            kind: o.info.fd,
            manual_reset: o.info.manual_reset,
            fd: o.fd,
            handle: o.handle,
        }
    }

    /// The object's own eventfd, if this handle holds it (events with both rights).
    fn object(&self) -> Option<&OwnedFd> {
        self.fd.as_ref().filter(|_| self.kind == HandleFd::Object)
    }

    async fn signal(&self, op: SignalOp) -> Result<u32> {
        self.handle
            .session
            .call(wire::Signal { handle: self.handle.id, op })
            .await
            .map_err(Error::into_win32)
    }

    /// The handle's fd registered with the reactor, to wait on (it needs `SYNCHRONIZE`).
    fn watch(&self, what: &'static str) -> Result<appipc_sys::aio::EventFd> {
        let Some(fd) = &self.fd else { return Err(not_granted(what, self.granted)) };
        let dup = fd
            .try_clone()
            .map_err(|source| Error::Io { what: "duplicating the handle", source })?;
        appipc_sys::aio::EventFd::new(dup)
            .map_err(|source| Error::Io { what: "registering the handle", source })
    }

    /// Takes what a completed wait takes, without blocking: directly from the event's own fd,
    /// by looking at a manual-reset object, or through the broker.
    async fn try_take(&self, what: &'static str) -> Result<WaitOutcome> {
        let Some(fd) = &self.fd else { return Err(not_granted(what, self.granted)) };
        let got = |b| if b { WaitOutcome::Signalled } else { WaitOutcome::NotSignalled };
        let io = |source| Error::Io { what, source };
        if self.manual_reset {
            return Ok(got(appipc_sys::aio::is_readable(fd).map_err(io)?));
        }
        if self.kind == HandleFd::Object {
            return Ok(got(appipc_sys::aio::eventfd_try_take(fd).map_err(io)?));
        }
        self.handle
            .session
            .call(wire::Acquire { handle: self.handle.id })
            .await
            .map_err(Error::into_win32)
    }

    /// Polls the object for the spin time, when this handle can take it without the broker
    /// (an event's own fd, a manual-reset object's readiness): `Some` when it was taken (or
    /// failed), `None` when the wait should sleep.
    fn spin_take(&self, what: &'static str) -> Option<Result<WaitOutcome>> {
        let fd = self.fd.as_ref()?;
        if !self.manual_reset && self.kind != HandleFd::Object {
            return None;
        }
        let io = |source| Error::Io { what, source };
        self.spin.poll(1, || {
            let r = if self.manual_reset {
                appipc_sys::aio::is_readable(fd)
            } else {
                appipc_sys::aio::eventfd_try_take(fd)
            };
            match r {
                Ok(false) => None,
                Ok(true) => Some(Ok(WaitOutcome::Signalled)),
                Err(e) => Some(Err(io(e))),
            }
        })
    }

    /// A wait on the calling thread that needs neither the reactor nor the broker: for an
    /// event's own eventfd or a manual-reset object's readiness (what [`WaitCore::spin_take`]
    /// can poll). `None` for a handle whose wait takes from the broker.
    fn wait_here(&self, what: &'static str, ms: u32) -> Option<Result<WaitResult>> {
        let Some(fd) = &self.fd else { return Some(Err(not_granted(what, self.granted))) };
        if !self.manual_reset && self.kind != HandleFd::Object {
            return None;
        }
        let io = |source| Error::Io { what, source };
        let take = || {
            if self.manual_reset {
                appipc_sys::aio::is_readable(fd)
            } else {
                appipc_sys::aio::eventfd_try_take(fd)
            }
        };
        let timeout = (ms != INFINITE).then(|| std::time::Duration::from_millis(ms.into()));
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let r = (|| {
            if take()? {
                return Ok(true);
            }
            if ms == 0 {
                return Ok(false);
            }
            if let Some(r) =
                self.spin.poll(1, || take().map_or_else(|e| Some(Err(e)), |b| b.then_some(Ok(()))))
            {
                return r.map(|()| true);
            }
            loop {
                let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
                // Readable, then taken: another waiter may take it first (then wait again).
                if !appipc_sys::aio::wait_readable_for(fd, left)? {
                    return take();
                }
                if take()? {
                    return Ok(true);
                }
            }
        })();
        Some(match r {
            Ok(true) => Ok(WaitResult::Object(0)),
            Ok(false) => Ok(WaitResult::Timeout),
            Err(e) => Err(io(e)),
        })
    }

    fn is_set(&self) -> Result<bool> {
        let Some(fd) = &self.fd else {
            return Err(not_granted("polling the object", self.granted));
        };
        appipc_sys::aio::is_readable(fd)
            .map_err(|source| Error::Io { what: "polling the object", source })
    }
}

/// The deadline of a wait of `ms` milliseconds (`None`: `INFINITE`).
fn deadline(ms: u32) -> Option<tokio::time::Instant> {
    (ms != INFINITE)
        .then(|| tokio::time::Instant::now() + std::time::Duration::from_millis(ms.into()))
}

/// Waits until `ready` completes or the deadline passes: `false` if it passed.
async fn until<F: std::future::Future<Output = std::io::Result<()>>>(
    ready: F,
    deadline: Option<tokio::time::Instant>,
    what: &'static str,
) -> Result<bool> {
    let r = match deadline {
        None => ready.await,
        Some(d) => match tokio::time::timeout_at(d, ready).await {
            Ok(r) => r,
            Err(_) => return Ok(false),
        },
    };
    r.map(|()| true).map_err(|source| Error::Io { what, source })
}

/// An object a wait function takes: [`Event`], [`Semaphore`], [`Mutex`], [`WaitableTimer`].
pub trait WaitHandle: Sync {
    /// The handle's wait state (appipc's own; not for use outside the SDK).
    #[doc(hidden)]
    fn wait_core(&self) -> &WaitCore;
}

/// `WaitForSingleObject(h, ms)`: waits until the object is signalled or `ms` milliseconds
/// pass ([`INFINITE`]: no time-out; 0: only looks). A completed wait takes what Windows' does:
/// an auto-reset event's or synchronization timer's signal, one count of a semaphore,
/// ownership of a mutex (`Abandoned` if its owner ended holding it); a manual-reset event or
/// timer stays signalled. Needs `SYNCHRONIZE` (else 5).
///
/// Where the state is the broker's (semaphores, mutexes, timers, and events waited on by a
/// handle without `EVENT_MODIFY_STATE`), the wait watches the handle's fd and completes with
/// a request to the broker, which takes the signal if it is still there; an event with both
/// rights is taken from its own eventfd, without the broker. A wait dropped while that request
/// is under way may have taken the signal.
pub async fn wait_for_single_object(h: &dyn WaitHandle, ms: u32) -> Result<WaitResult> {
    const WHAT: &str = "WaitForSingleObject";
    let core = h.wait_core();
    // Signalled already, or soon (a ping-pong): no registration with the reactor needed.
    let first = match core.try_take(WHAT).await? {
        WaitOutcome::NotSignalled if ms != 0 => core.spin_take(WHAT).transpose()?,
        o => Some(o),
    };
    match first {
        Some(WaitOutcome::Signalled) => return Ok(WaitResult::Object(0)),
        Some(WaitOutcome::Abandoned) => return Ok(WaitResult::Abandoned(0)),
        Some(WaitOutcome::NotSignalled) if ms == 0 => return Ok(WaitResult::Timeout),
        _ => {}
    }
    let watch = core.watch(WHAT)?;
    let deadline = deadline(ms);
    loop {
        match core.try_take(WHAT).await? {
            WaitOutcome::Signalled => return Ok(WaitResult::Object(0)),
            WaitOutcome::Abandoned => return Ok(WaitResult::Abandoned(0)),
            WaitOutcome::NotSignalled => {}
        }
        if !until(watch.wait_signalled(), deadline, WHAT).await? {
            return Ok(WaitResult::Timeout);
        }
    }
}

/// `WaitForSingleObject(h, ms)` blocking the calling thread, as on Windows, for the handles
/// whose wait needs no broker round trip: an event whose handle has both `SYNCHRONIZE` and
/// `EVENT_MODIFY_STATE` (it holds the event's own eventfd), and manual-reset events and
/// timers (their readiness). The wait polls briefly while that pays (see `APPIPC_SPIN_US`),
/// then sleeps in `poll(2)` on that fd: one thread hop per wake-up, where the async
/// [`wait_for_single_object`] goes through the runtime's reactor. Any other handle gives
/// error 50 (`ERROR_NOT_SUPPORTED`): use the async wait. Needs `SYNCHRONIZE` (else 5). Do
/// not call it from an async task: it blocks the thread.
pub fn wait_for_single_object_blocking(h: &dyn WaitHandle, ms: u32) -> Result<WaitResult> {
    const WHAT: &str = "WaitForSingleObject";
    h.wait_core().wait_here(WHAT, ms).unwrap_or_else(|| {
        Err(Error::NamedObject {
            code: 50,
            message: format!(
                "{WHAT} blocking on a handle whose wait takes from the broker (a semaphore, a \
                 mutex, an auto-reset timer, or an event handle without EVENT_MODIFY_STATE): \
                 use the async wait_for_single_object"
            ),
        })
    })
}

/// `WaitForMultipleObjects(n, handles, wait_all, ms)`: 1 to [`MAXIMUM_WAIT_OBJECTS`] (64)
/// objects, no object twice (else 87), each with `SYNCHRONIZE` (else 5), all of one
/// [`Session`].
///
/// * Wait for any (`wait_all` false): returns when one is signalled, as
///   [`WaitResult::Object`]`(i)` (or `Abandoned(i)`) for the lowest index `i` signalled when
///   the wait completed; only that object is taken.
/// * Wait for all: returns when all are signalled at once, and takes them all together — the
///   broker takes every one or none (so a wait never holds some while it waits for others),
///   as Windows does. `Abandoned(0)` if one of them was an abandoned mutex (Windows gives an
///   index in the `WAIT_ABANDONED_0` range too; its meaning is then only "one was").
pub async fn wait_for_multiple_objects(
    handles: &[&dyn WaitHandle],
    wait_all: bool,
    ms: u32,
) -> Result<WaitResult> {
    const WHAT: &str = "WaitForMultipleObjects";
    if handles.is_empty() || handles.len() > MAXIMUM_WAIT_OBJECTS {
        return Err(parameter(format!(
            "{WHAT} with {} objects: 1 to {MAXIMUM_WAIT_OBJECTS} (MAXIMUM_WAIT_OBJECTS)",
            handles.len()
        )));
    }
    let cores: Vec<&WaitCore> = handles.iter().map(|h| h.wait_core()).collect();
    for (i, c) in cores.iter().enumerate() {
        if cores[..i].iter().any(|o| o.handle.id == c.handle.id) {
            return Err(parameter(format!("{WHAT}: object {i} is in the array twice")));
        }
    }
    let watches = cores.iter().map(|c| c.watch(WHAT)).collect::<Result<Vec<_>>>()?;
    let deadline = deadline(ms);
    if wait_all {
        let ids: Vec<u64> = cores.iter().map(|c| c.handle.id).collect();
        let session = &cores[0].handle.session;
        loop {
            let r = session
                .call(wire::AcquireAll { handles: ids.clone() })
                .await
                .map_err(Error::into_win32)?;
            match r.outcome {
                WaitOutcome::Signalled => return Ok(WaitResult::Object(0)),
                WaitOutcome::Abandoned => return Ok(WaitResult::Abandoned(0)),
                WaitOutcome::NotSignalled => {}
            }
            let i = usize::try_from(r.waiting_for).unwrap_or(0).min(watches.len() - 1);
            if !until(watches[i].wait_signalled(), deadline, WHAT).await? {
                return Ok(WaitResult::Timeout);
            }
        }
    }
    loop {
        for (i, c) in cores.iter().enumerate() {
            match c.try_take(WHAT).await? {
                WaitOutcome::Signalled => return Ok(WaitResult::Object(i)),
                WaitOutcome::Abandoned => return Ok(WaitResult::Abandoned(i)),
                WaitOutcome::NotSignalled => {}
            }
        }
        let mut waits: Vec<_> = watches.iter().map(|w| Box::pin(w.wait_signalled())).collect();
        let any = std::future::poll_fn(|cx| {
            for w in waits.iter_mut() {
                if let std::task::Poll::Ready(r) = w.as_mut().poll(cx) {
                    return std::task::Poll::Ready(r);
                }
            }
            std::task::Poll::Pending
        });
        if !until(any, deadline, WHAT).await? {
            return Ok(WaitResult::Timeout);
        }
    }
}

/// A named event (auto or manual reset).
#[derive(Debug)]
pub struct Event {
    w: WaitCore,
}

impl WaitHandle for Event {
    fn wait_core(&self) -> &WaitCore {
        &self.w
    }
}

impl Event {
    fn from(o: Opened) -> Event {
        Event { w: WaitCore::from(o) }
    }

    /// `CreateEvent(sa, manual_reset, initial_state, name)`.
    pub async fn create(
        session: &Session,
        name: &str,
        manual_reset: bool,
        initial_state: bool,
        sddl: Option<&str>,
    ) -> Result<Created<Event>> {
        let request = wire::Create {
            kind: NamedObjectKind::Event { manual_reset, initial_state },
            name: name.to_owned(),
            sddl: sddl.map(str::to_owned),
        };
        let o = call(session, request, &[]).await?;
        let already_exists = o.info.already_exists;
        Ok(Created { object: Event::from(o), already_exists })
    }

    /// `OpenEvent(desired_access, name)`: `SYNCHRONIZE` to wait, `EVENT_MODIFY_STATE` to set
    /// and reset. Access 0 is refused (5). A handle with `SYNCHRONIZE` alone holds only an fd
    /// that can be waited on: the process cannot signal the event through it (Windows: "The
    /// handle must have the EVENT_MODIFY_STATE access right" for `SetEvent`).
    pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<Event> {
        let request = wire::Open {
            object_type: wire::ObjectType::Event,
            name: name.to_owned(),
            desired_access,
        };
        Ok(Event::from(call(session, request, &[]).await?))
    }

    /// The rights this handle was granted.
    pub fn granted_access(&self) -> u32 {
        self.w.granted
    }

    /// `SetEvent`: signalled (a manual-reset event stays so until [`Event::reset`]). Needs
    /// `EVENT_MODIFY_STATE`; a handle that may also wait signals directly, one that may not
    /// asks the broker.
    pub async fn set(&self) -> Result<()> {
        match self.w.object() {
            Some(fd) => {
                if self.w.manual_reset && self.w.is_set()? {
                    return Ok(());
                }
                appipc_sys::aio::eventfd_signal(fd)
                    .map_err(|source| Error::Io { what: "signalling the event", source })
            }
            None => self.w.signal(SignalOp::Set).await.map(|_| ()),
        }
    }

    /// [`Event::set`] without a runtime, for a handle that holds the event's own eventfd
    /// (`SYNCHRONIZE` and `EVENT_MODIFY_STATE`): one `write(2)`. Any other handle gives error
    /// 50 (`ERROR_NOT_SUPPORTED`; its set is a broker request: use [`Event::set`]).
    pub fn set_blocking(&self) -> Result<()> {
        let Some(fd) = self.w.object() else {
            return Err(Error::NamedObject {
                code: 50,
                message: "SetEvent blocking on a handle without both SYNCHRONIZE and \
                          EVENT_MODIFY_STATE (its set goes through the broker): use set()"
                    .into(),
            });
        };
        if self.w.manual_reset && self.w.is_set()? {
            return Ok(());
        }
        appipc_sys::aio::eventfd_signal(fd)
            .map_err(|source| Error::Io { what: "signalling the event", source })
    }

    /// `WaitForSingleObject(h, ms)` blocking the calling thread: see
    /// [`wait_for_single_object_blocking`].
    pub fn wait_blocking(&self, ms: u32) -> Result<WaitResult> {
        wait_for_single_object_blocking(self, ms)
    }

    /// `ResetEvent`. Needs `EVENT_MODIFY_STATE`.
    pub async fn reset(&self) -> Result<()> {
        match self.w.object() {
            Some(fd) => appipc_sys::aio::eventfd_drain(fd)
                .map_err(|source| Error::Io { what: "resetting the event", source }),
            None => self.w.signal(SignalOp::Reset).await.map(|_| ()),
        }
    }

    /// Whether it is signalled now (without consuming the signal). Needs `SYNCHRONIZE`.
    pub fn is_set(&self) -> Result<bool> {
        self.w.is_set()
    }

    /// `WaitForSingleObject(h, INFINITE)`: waits until the event is signalled; an auto-reset
    /// event is reset by the wait (one waiter released per `set`), a manual-reset one stays
    /// signalled. Needs `SYNCHRONIZE`.
    pub async fn wait(&self) -> Result<()> {
        self.wait_timeout(INFINITE).await.map(|_| ())
    }

    /// `WaitForSingleObject(h, ms)`: [`WaitResult::Object`]`(0)` or [`WaitResult::Timeout`].
    pub async fn wait_timeout(&self, ms: u32) -> Result<WaitResult> {
        wait_for_single_object(self, ms).await
    }
}

/// A named semaphore. Its count is kept by the broker, which hands no holder an fd that could
/// change it: `ReleaseSemaphore` past the maximum fails with `ERROR_TOO_MANY_POSTS` (298) and
/// leaves the count as it was, as on Windows, whatever the holder does with its fd. Every wait
/// and release is a request to the broker (a round trip each; for a hot path between two
/// processes use an [`Event`] pair or [`crate::ring`]).
#[derive(Debug)]
pub struct Semaphore {
    w: WaitCore,
}

impl WaitHandle for Semaphore {
    fn wait_core(&self) -> &WaitCore {
        &self.w
    }
}

impl Semaphore {
    /// `CreateSemaphore(sa, initial, maximum, name)`: `initial` ≤ `maximum`, `maximum` > 0
    /// (else 87).
    pub async fn create(
        session: &Session,
        name: &str,
        initial: u32,
        maximum: u32,
        sddl: Option<&str>,
    ) -> Result<Created<Semaphore>> {
        let request = wire::Create {
            kind: NamedObjectKind::Semaphore { initial, maximum },
            name: name.to_owned(),
            sddl: sddl.map(str::to_owned),
        };
        let o = call(session, request, &[]).await?;
        let already_exists = o.info.already_exists;
        Ok(Created { object: Semaphore { w: WaitCore::from(o) }, already_exists })
    }

    /// `OpenSemaphore(desired_access, name)`: `SYNCHRONIZE` to wait, `SEMAPHORE_MODIFY_STATE`
    /// to release. Access 0 is refused (5).
    pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<Semaphore> {
        let request = wire::Open {
            object_type: wire::ObjectType::Semaphore,
            name: name.to_owned(),
            desired_access,
        };
        Ok(Semaphore { w: WaitCore::from(call(session, request, &[]).await?) })
    }

    /// The rights this handle was granted.
    pub fn granted_access(&self) -> u32 {
        self.w.granted
    }

    /// `ReleaseSemaphore(h, 1, NULL)`. Needs `SEMAPHORE_MODIFY_STATE`.
    pub async fn release(&self) -> Result<()> {
        self.release_count(1).await.map(|_| ())
    }

    /// `ReleaseSemaphore(h, count, &previous)`: adds `count` (> 0, else 87) and returns the
    /// count before. Past the maximum: `ERROR_TOO_MANY_POSTS` (298), the count unchanged.
    /// Needs `SEMAPHORE_MODIFY_STATE`.
    pub async fn release_count(&self, count: u32) -> Result<u32> {
        self.w.signal(SignalOp::Release { count }).await
    }

    /// `WaitForSingleObject(h, INFINITE)`: waits for a count and takes one. Needs
    /// `SYNCHRONIZE`.
    pub async fn wait(&self) -> Result<()> {
        self.wait_timeout(INFINITE).await.map(|_| ())
    }

    /// `WaitForSingleObject(h, ms)`.
    pub async fn wait_timeout(&self, ms: u32) -> Result<WaitResult> {
        wait_for_single_object(self, ms).await
    }
}

/// A named mutex (`CreateMutex`, `OpenMutex`, `ReleaseMutex`).
///
/// **Owner.** Windows makes a *thread* the owner. Here the owner is the broker session the
/// wait went through — the process (every thread and task of it; a child that inherited the
/// session counts as the same process), because a session is what the broker can tell apart
/// and watch end. So two processes exclude each other as on Windows, but two threads of one
/// process do not: the second one's wait succeeds at once, recursively (use a
/// `std::sync::Mutex` inside a process). Ownership is recursive, as on Windows: the owner's
/// waits succeed at once and each must be matched by a [`release`](Self::release).
///
/// **Abandoned.** When the owning process ends (its session closes) holding the mutex, the
/// next wait gets [`WaitResult::Abandoned`] and ownership, as Windows' `WAIT_ABANDONED`.
///
/// **Single instance.** [`create`](Self::create) of a name that exists opens it and reports
/// [`Created::already_exists`] (`ERROR_ALREADY_EXISTS`, 183), without taking ownership even
/// with `initial_owner` — the usual "is another instance running?" test:
///
/// ```no_run
/// # async fn f(session: &appipc::Session) -> appipc::Result<()> {
/// use appipc::named_objects::Mutex;
/// let m = Mutex::create(session, r"Local\MyApp.SingleInstance", true, None).await?;
/// if m.already_exists {
///     println!("another instance is running");
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Mutex {
    w: WaitCore,
}

impl WaitHandle for Mutex {
    fn wait_core(&self) -> &WaitCore {
        &self.w
    }
}

impl Mutex {
    /// `CreateMutex(sa, initial_owner, name)`: with `initial_owner` the calling process owns
    /// the new mutex at once; if the name exists, the existing mutex is opened
    /// (`already_exists`) and `initial_owner` is ignored ("it has already been set by the
    /// creating process", `CreateMutex`).
    pub async fn create(
        session: &Session,
        name: &str,
        initial_owner: bool,
        sddl: Option<&str>,
    ) -> Result<Created<Mutex>> {
        let request = wire::Create {
            kind: NamedObjectKind::Mutex { initial_owner },
            name: name.to_owned(),
            sddl: sddl.map(str::to_owned),
        };
        let o = call(session, request, &[]).await?;
        let already_exists = o.info.already_exists;
        Ok(Created { object: Mutex { w: WaitCore::from(o) }, already_exists })
    }

    /// `OpenMutex(desired_access, name)`: `SYNCHRONIZE` to wait (and so to own). Access 0 is
    /// refused (5).
    pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<Mutex> {
        let request = wire::Open {
            object_type: wire::ObjectType::Mutex,
            name: name.to_owned(),
            desired_access,
        };
        Ok(Mutex { w: WaitCore::from(call(session, request, &[]).await?) })
    }

    /// The rights this handle was granted.
    pub fn granted_access(&self) -> u32 {
        self.w.granted
    }

    /// `ReleaseMutex`: one level of ownership less (free at 0). A process that does not own it
    /// gets `ERROR_NOT_OWNER` (288).
    pub async fn release(&self) -> Result<()> {
        self.w.signal(SignalOp::ReleaseMutex).await.map(|_| ())
    }

    /// `WaitForSingleObject(h, ms)`: takes ownership ([`WaitResult::Object`]`(0)`, or
    /// [`WaitResult::Abandoned`]`(0)`), or [`WaitResult::Timeout`].
    pub async fn wait(&self, ms: u32) -> Result<WaitResult> {
        wait_for_single_object(self, ms).await
    }
}

/// A named waitable timer (`CreateWaitableTimer`, `SetWaitableTimer`, `CancelWaitableTimer`).
/// A manual-reset (notification) timer stays signalled once due until it is set again; a
/// synchronization timer releases one wait per expiry. Periodic timers expire again every
/// period; expiries nobody waited for do not pile up (one wait takes them all, as on
/// Windows a signalled timer is just signalled). The timer runs in the kernel (`timerfd`), so
/// it fires while nobody waits and without the broker being involved until a wait completes.
/// No completion routine (APC) and no `fResume`: Linux has no APCs to queue to a thread, and
/// waking a suspended system is not the app's to ask.
#[derive(Debug)]
pub struct WaitableTimer {
    w: WaitCore,
}

impl WaitHandle for WaitableTimer {
    fn wait_core(&self) -> &WaitCore {
        &self.w
    }
}

impl WaitableTimer {
    /// `CreateWaitableTimer(sa, manual_reset, name)`: inactive until [`set`](Self::set).
    pub async fn create(
        session: &Session,
        name: &str,
        manual_reset: bool,
        sddl: Option<&str>,
    ) -> Result<Created<WaitableTimer>> {
        let request = wire::Create {
            kind: NamedObjectKind::WaitableTimer { manual_reset },
            name: name.to_owned(),
            sddl: sddl.map(str::to_owned),
        };
        let o = call(session, request, &[]).await?;
        let already_exists = o.info.already_exists;
        Ok(Created { object: WaitableTimer { w: WaitCore::from(o) }, already_exists })
    }

    /// `OpenWaitableTimer(desired_access, name)`: `SYNCHRONIZE` to wait, `TIMER_MODIFY_STATE`
    /// to set and cancel. Access 0 is refused (5).
    pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<WaitableTimer> {
        let request = wire::Open {
            object_type: wire::ObjectType::WaitableTimer,
            name: name.to_owned(),
            desired_access,
        };
        Ok(WaitableTimer { w: WaitCore::from(call(session, request, &[]).await?) })
    }

    /// The rights this handle was granted.
    pub fn granted_access(&self) -> u32 {
        self.w.granted
    }

    /// `SetWaitableTimer(h, &due_time, period_ms, NULL, NULL, FALSE)`: `due_time` in
    /// 100-nanosecond units, negative relative to now (`-10_000_000` is one second), positive
    /// an absolute UTC `FILETIME`; `period_ms` 0 for once, negative is 87. The timer is
    /// non-signalled until it is due. Needs `TIMER_MODIFY_STATE`.
    pub async fn set(&self, due_time: i64, period_ms: i32) -> Result<()> {
        self.w.signal(SignalOp::SetTimer { due_time, period_ms }).await.map(|_| ())
    }

    /// `CancelWaitableTimer`: stops it without changing whether it is signalled. Needs
    /// `TIMER_MODIFY_STATE`.
    pub async fn cancel(&self) -> Result<()> {
        self.w.signal(SignalOp::CancelTimer).await.map(|_| ())
    }

    /// `WaitForSingleObject(h, ms)`.
    pub async fn wait(&self, ms: u32) -> Result<WaitResult> {
        wait_for_single_object(self, ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_builder_writes_the_sddl_windows_developers_would() {
        assert_eq!(sddl_rights(GENERIC_READ | GENERIC_WRITE), "GRGW");
        assert_eq!(sddl_rights(GENERIC_ALL), "GA");
        assert_eq!(sddl_rights(FILE_MAP_READ), "0x4");
        assert_eq!(sddl_rights(GENERIC_READ | SYNCHRONIZE), "0x80100000");
        assert_eq!(sddl_rights(0), "0x0");
        let sid = "S-1-15-2-1-2-3-4-5-6-7";
        let sd = SecurityDescriptor::new()
            .allow_package(sid, GENERIC_ALL)
            .allow_capability("S-1-15-3-1", GENERIC_READ)
            .allow_all_application_packages(SYNCHRONIZE)
            .deny_package("Contoso.Hello_cvnpggrrsm18p", GENERIC_WRITE)
            .deny_capability("internetClient", GENERIC_EXECUTE)
            .allow_everyone(GENERIC_READ)
            .allow_owner(GENERIC_ALL)
            .allow_sid("S-1-22-1-1000", SYNCHRONIZE)
            .deny_everyone(GENERIC_WRITE)
            .deny_sid("AU", GENERIC_EXECUTE)
            .low_integrity();
        assert_eq!(
            sd.to_sddl(),
            format!(
                "D:(A;;GA;;;{sid})(A;;GR;;;S-1-15-3-1)(A;;0x100000;;;AC)\
                 (D;;GW;;;PFN:Contoso.Hello_cvnpggrrsm18p)(D;;GX;;;CAP:internetClient)\
                 (A;;GR;;;WD)(A;;GA;;;OW)(A;;0x100000;;;S-1-22-1-1000)(D;;GW;;;WD)(D;;GX;;;AU)\
                 S:(ML;;NW;;;LW)"
            )
        );
        assert_eq!(SecurityDescriptor::new().to_sddl(), "D:");
    }
}
