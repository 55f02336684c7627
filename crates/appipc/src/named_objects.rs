//! Named objects: file mappings (shared memory) and events, in per-package namespaces, shared
//! across packages only by the creator's security descriptor. The broker checks names and
//! access and hands over the object itself (a memfd, an eventfd); reading, writing and
//! signalling never involve it.
//!
//! Names: `LOCAL\name` (or `name`) is the caller's own namespace — its package's in an app
//! container, the user's session otherwise; another package's objects are reached by
//! qualifying the name with [`named_object_path`]. Rights are Windows' (`FILE_MAP_READ` 0x4,
//! `FILE_MAP_WRITE` 0x2, `GENERIC_ALL`, …); errors carry Windows' codes.

use std::os::fd::OwnedFd;

use appipc_sys::memfd::SharedView;
use appipc_wire::protocol::{NamedObjectKind, Reply, Request};

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
/// ```
/// use appipc::named_objects::{GENERIC_READ, SecurityDescriptor, SYNCHRONIZE};
/// let sd = SecurityDescriptor::new()
///     .allow_package("Fabrikam.Tools_8tkjkmve8mrwr", GENERIC_READ)
///     .allow_capability("internetClient", SYNCHRONIZE)
///     .deny_all_application_packages(GENERIC_READ);
/// assert_eq!(
///     sd.to_sddl(),
///     "D:(A;;GR;;;PFN:Fabrikam.Tools_8tkjkmve8mrwr)(A;;0x100000;;;CAP:internetClient)(D;;GR;;;AC)"
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityDescriptor {
    entries: Vec<(bool, String, u32)>,
}

impl SecurityDescriptor {
    /// An empty DACL: only unconfined processes of the user (who need no entry) get in.
    pub fn new() -> SecurityDescriptor {
        SecurityDescriptor::default()
    }

    fn entry(mut self, allow: bool, trustee: String, rights: u32) -> SecurityDescriptor {
        self.entries.push((allow, trustee, rights));
        self
    }

    /// Allows `rights` to a package, by family name or by its AppContainer SID (`S-1-15-2-…`).
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

    /// Denies `rights` to a package (deny entries are checked first, as Windows orders them).
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

    /// The SDDL text (`D:(A;;GR;;;PFN:…)…`): generic rights as their codes, others as a number;
    /// packages and capabilities named by name use appipc's `PFN:`/`CAP:` trustees.
    pub fn to_sddl(&self) -> String {
        let mut s = String::from("D:");
        for (allow, trustee, rights) in &self.entries {
            let kind = if *allow { "A" } else { "D" };
            s.push_str(&format!("({kind};;{};;;{trustee})", sddl_rights(*rights)));
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
    match session
        .request(Request::GetNamedObjectPath {
            package_family_name: package_family_name.to_owned(),
        })
        .await?
    {
        Reply::Path(p) => Ok(p),
        r => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
    }
}

/// The broker's handle of an object and the fd it handed over.
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
                let _ = session.request(Request::CloseNamedObject { handle: id }).await;
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

struct Opened {
    handle: Handle,
    fd: OwnedFd,
    size: u64,
    writable: bool,
    manual_reset: bool,
    already_exists: bool,
}

async fn call(session: &Session, request: Request) -> Result<Opened> {
    call_with(session, request, &[]).await
}

async fn call_with(
    session: &Session,
    request: Request,
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> Result<Opened> {
    match session.request_with_fds(request, fds).await? {
        (
            Reply::NamedObject { handle, already_exists, size, writable, manual_reset, .. },
            mut fds,
        ) if fds.len() == 1 => Ok(Opened {
            handle: Handle { session: session.clone(), id: handle },
            fd: fds.remove(0),
            size,
            writable,
            manual_reset,
            already_exists,
        }),
        (Reply::NamedObjectFailed { code, message }, _) => {
            Err(Error::NamedObject { code, message })
        }
        (r, _) => Err(Error::Protocol(format!("unexpected reply {r:?}"))),
    }
}

/// A named file mapping: shared memory of a fixed size.
#[derive(Debug)]
pub struct FileMapping {
    _handle: Handle,
    fd: OwnedFd,
    size: u64,
    writable: bool,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opened")
    }
}

impl FileMapping {
    /// `CreateFileMapping(INVALID_HANDLE_VALUE, sa, PAGE_READWRITE or PAGE_READONLY, size, name)`.
    /// `sddl` is the security descriptor (`D:(A;;GR;;;S-1-15-2-…)`); `None` gives the default
    /// (the creator's package only).
    pub async fn create(
        session: &Session,
        name: &str,
        size: u64,
        writable: bool,
        sddl: Option<&str>,
    ) -> Result<Created<FileMapping>> {
        let o = call(
            session,
            Request::CreateNamedObject {
                kind: NamedObjectKind::FileMapping { size, writable },
                name: name.to_owned(),
                sddl: sddl.map(str::to_owned),
            },
        )
        .await?;
        let already_exists = o.already_exists;
        Ok(Created {
            object: FileMapping { _handle: o.handle, fd: o.fd, size: o.size, writable: o.writable },
            already_exists,
        })
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
        let request = Request::CreateNamedObject {
            kind: NamedObjectKind::FileMapping { size: 0, writable },
            name: name.to_owned(),
            sddl: sddl.map(str::to_owned),
        };
        let o = call_with(session, request, &[file.as_fd()]).await?;
        let already_exists = o.already_exists;
        Ok(Created {
            object: FileMapping { _handle: o.handle, fd: o.fd, size: o.size, writable: o.writable },
            already_exists,
        })
    }

    /// `OpenFileMapping(desired_access, name)`.
    pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<FileMapping> {
        let o = call(
            session,
            Request::OpenNamedObject { object_type: 2, name: name.to_owned(), desired_access },
        )
        .await?;
        Ok(FileMapping { _handle: o.handle, fd: o.fd, size: o.size, writable: o.writable })
    }

    /// Its size (fixed at creation).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether views may be writable.
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// `MapViewOfFile`: the whole mapping, writable if this handle allows writing.
    pub fn map_view(&self) -> Result<SharedView> {
        let len = usize::try_from(self.size)
            .map_err(|_| Error::Protocol("mapping larger than memory".into()))?;
        SharedView::map(&self.fd, len, self.writable)
            .map_err(|source| Error::Io { what: "mapping the view", source })
    }

    /// Tries to map a writable view even if this handle is read-only (the kernel refuses:
    /// `EACCES`).
    pub fn map_view_writable(&self) -> Result<SharedView> {
        let len = usize::try_from(self.size)
            .map_err(|_| Error::Protocol("mapping larger than memory".into()))?;
        SharedView::map(&self.fd, len, true)
            .map_err(|source| Error::Io { what: "mapping a writable view", source })
    }
}

/// A named event (auto or manual reset).
#[derive(Debug)]
pub struct Event {
    _handle: Handle,
    fd: OwnedFd,
    manual_reset: bool,
}

impl Event {
    /// `CreateEvent(sa, manual_reset, initial_state, name)`.
    pub async fn create(
        session: &Session,
        name: &str,
        manual_reset: bool,
        initial_state: bool,
        sddl: Option<&str>,
    ) -> Result<Created<Event>> {
        let o = call(
            session,
            Request::CreateNamedObject {
                kind: NamedObjectKind::Event { manual_reset, initial_state },
                name: name.to_owned(),
                sddl: sddl.map(str::to_owned),
            },
        )
        .await?;
        let already_exists = o.already_exists;
        Ok(Created {
            object: Event { _handle: o.handle, fd: o.fd, manual_reset: o.manual_reset },
            already_exists,
        })
    }

    /// `OpenEvent(desired_access, name)`.
    pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<Event> {
        let o = call(
            session,
            Request::OpenNamedObject { object_type: 0, name: name.to_owned(), desired_access },
        )
        .await?;
        Ok(Event { _handle: o.handle, fd: o.fd, manual_reset: o.manual_reset })
    }

    /// `SetEvent`: signalled (a manual-reset event stays so until [`Event::reset`]).
    pub fn set(&self) -> Result<()> {
        if self.manual_reset && self.is_set()? {
            return Ok(());
        }
        rustix_write(&self.fd)
    }

    /// `ResetEvent`.
    pub fn reset(&self) -> Result<()> {
        appipc_sys::aio::eventfd_drain(&self.fd)
            .map_err(|source| Error::Io { what: "resetting the event", source })
    }

    /// Whether it is signalled now (without consuming the signal).
    pub fn is_set(&self) -> Result<bool> {
        appipc_sys::aio::eventfd_is_set(&self.fd)
            .map_err(|source| Error::Io { what: "polling the event", source })
    }

    /// `WaitForSingleObject`: waits until the event is signalled; an auto-reset event is reset
    /// by the wait (one waiter released per `set`), a manual-reset one stays signalled.
    pub async fn wait(&self) -> Result<()> {
        let dup = self
            .fd
            .try_clone()
            .map_err(|source| Error::Io { what: "duplicating the event", source })?;
        let afd = appipc_sys::aio::EventFd::new(dup)
            .map_err(|source| Error::Io { what: "registering the event", source })?;
        let r = if self.manual_reset { afd.wait_signalled().await } else { afd.wait().await };
        r.map_err(|source| Error::Io { what: "waiting on the event", source })
    }
}

/// A named semaphore.
#[derive(Debug)]
pub struct Semaphore {
    _handle: Handle,
    fd: OwnedFd,
}

impl Semaphore {
    /// `CreateSemaphore(sa, initial, maximum, name)`.
    pub async fn create(
        session: &Session,
        name: &str,
        initial: u32,
        maximum: u32,
        sddl: Option<&str>,
    ) -> Result<Created<Semaphore>> {
        let o = call(
            session,
            Request::CreateNamedObject {
                kind: NamedObjectKind::Semaphore { initial, maximum },
                name: name.to_owned(),
                sddl: sddl.map(str::to_owned),
            },
        )
        .await?;
        let already_exists = o.already_exists;
        Ok(Created { object: Semaphore { _handle: o.handle, fd: o.fd }, already_exists })
    }

    /// `OpenSemaphore(desired_access, name)`.
    pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<Semaphore> {
        let o = call(
            session,
            Request::OpenNamedObject { object_type: 1, name: name.to_owned(), desired_access },
        )
        .await?;
        Ok(Semaphore { _handle: o.handle, fd: o.fd })
    }

    /// `ReleaseSemaphore(h, 1)`.
    pub fn release(&self) -> Result<()> {
        rustix_write(&self.fd)
    }

    /// Waits for a count and takes one.
    pub async fn wait(&self) -> Result<()> {
        let dup = self
            .fd
            .try_clone()
            .map_err(|source| Error::Io { what: "duplicating the semaphore", source })?;
        let afd = appipc_sys::aio::EventFd::new(dup)
            .map_err(|source| Error::Io { what: "registering the semaphore", source })?;
        afd.wait().await.map_err(|source| Error::Io { what: "waiting on the semaphore", source })
    }
}

fn rustix_write(fd: &OwnedFd) -> Result<()> {
    appipc_sys::aio::eventfd_signal(fd)
        .map_err(|source| Error::Io { what: "signalling the event", source })
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
            .deny_capability("internetClient", GENERIC_EXECUTE);
        assert_eq!(
            sd.to_sddl(),
            format!(
                "D:(A;;GA;;;{sid})(A;;GR;;;S-1-15-3-1)(A;;0x100000;;;AC)\
                 (D;;GW;;;PFN:Contoso.Hello_cvnpggrrsm18p)(D;;GX;;;CAP:internetClient)"
            )
        );
        assert_eq!(SecurityDescriptor::new().to_sddl(), "D:");
    }
}
