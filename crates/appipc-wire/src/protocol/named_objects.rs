//! Named objects: events, semaphores and file mappings in per-package namespaces.

use minicbor::{Decode, Encode};

super::mechanism! {
    /// Named objects (`CreateEvent`, `CreateSemaphore`, `CreateFileMapping` and their `Open…`):
    /// the broker checks names and access and hands over the object as an fd that can do
    /// exactly what the handle's granted rights allow. Errors carry `Win32` codes: 2 not
    /// found, 5 access denied, 6 wrong type or handle, 87 bad parameter, 123 bad name, 1816
    /// handle quota.
    mechanism NamedObjects;
    requests {
        /// `Create…` with a name. A name taken by an object of the same type opens it instead
        /// (`already_exists`, `ERROR_ALREADY_EXISTS` 183) if the caller may.
        0 Create {
            /// What to create.
            0 kind: NamedObjectKind,
            /// The name as written (`Local\name`, …).
            1 name: String,
            /// Security descriptor in SDDL (`D:(A;;GA;;;AC)`); `None`: the default (the
            /// creator's package only).
            2 sddl: Option<String>,
        } fds(|r| r.kind.fds()) -> NamedObjectHandle, reply fds "0 or 1: see `HandleFd`";
        /// `Open…`. `desired_access` 0 is refused (5), as Windows' access check refuses an
        /// empty request; `MAXIMUM_ALLOWED` (0x02000000) asks for every right the descriptor
        /// grants.
        1 Open {
            /// The object type expected.
            0 object_type: ObjectType,
            /// The name as written.
            1 name: String,
            /// Desired access (generic or specific rights).
            2 desired_access: u32,
        } fds(0) -> NamedObjectHandle, reply fds "0 or 1: see `HandleFd`";
        /// `CloseHandle`.
        2 Close {
            /// The handle.
            0 handle: u64,
        } fds(0) -> (), reply fds "0";
        /// Live named objects (for `appipc objects`); an app container sees its own
        /// namespace's.
        3 List {} fds(0) -> Vec<NamedObjectInfo>, reply fds "0";
        /// `GetAppContainerNamedObjectPath` for a package.
        4 GetNamedObjectPath {
            /// Package family name.
            0 package_family_name: String,
        } fds(0) -> String, reply fds "0";
        /// `SetEvent`, `ResetEvent`, `ReleaseSemaphore` through the broker, for a handle whose
        /// rights include the modify right but not waiting (it holds no fd of the object).
        /// Returns the semaphore's previous count (0 for events).
        5 Signal {
            /// The handle.
            0 handle: u64,
            /// What to do.
            1 op: SignalOp,
        } fds(0) -> u32, reply fds "0";
        /// Completes a wait of a wait-only handle (`SYNCHRONIZE` without the modify right) on
        /// an auto-reset event or a semaphore: takes the signal if it is still there. Returns
        /// whether it was.
        6 TakeSignal {
            /// The handle.
            0 handle: u64,
        } fds(0) -> bool, reply fds "0";
    }
    events {}
}

/// The object types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, serde::Serialize)]
#[cbor(index_only)]
#[serde(rename_all = "snake_case")]
pub enum ObjectType {
    /// An event.
    #[n(0)]
    Event,
    /// A semaphore.
    #[n(1)]
    Semaphore,
    /// A file mapping.
    #[n(2)]
    FileMapping,
}

/// What [`Create`] creates.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub enum NamedObjectKind {
    /// An event.
    #[n(0)]
    Event {
        /// Manual reset (else auto reset).
        #[n(0)]
        manual_reset: bool,
        /// Signalled at creation.
        #[n(1)]
        initial_state: bool,
    },
    /// A semaphore.
    #[n(1)]
    Semaphore {
        /// Initial count.
        #[n(0)]
        initial: u32,
        /// Maximum count.
        #[n(1)]
        maximum: u32,
    },
    /// A file mapping backed by memory (a sealed memfd: its size cannot change).
    #[n(2)]
    FileMapping {
        /// Size in bytes.
        #[n(0)]
        size: u64,
        /// `PAGE_READWRITE` (else `PAGE_READONLY`).
        #[n(1)]
        writable: bool,
    },
    /// A file mapping of the file attached to the request (the caller's open file; its size
    /// at creation).
    #[n(3)]
    FileMappingOfFile {
        /// `PAGE_READWRITE` (needs the file open for reading and writing).
        #[n(0)]
        writable: bool,
    },
}

impl NamedObjectKind {
    /// Fds the create request carries.
    pub fn fds(&self) -> usize {
        match self {
            NamedObjectKind::FileMappingOfFile { .. } => 1,
            _ => 0,
        }
    }

    /// The type it creates.
    pub fn object_type(&self) -> ObjectType {
        match self {
            NamedObjectKind::Event { .. } => ObjectType::Event,
            NamedObjectKind::Semaphore { .. } => ObjectType::Semaphore,
            NamedObjectKind::FileMapping { .. } | NamedObjectKind::FileMappingOfFile { .. } => {
                ObjectType::FileMapping
            }
        }
    }
}

/// What the fd attached to a [`NamedObjectHandle`] is, which follows from the rights granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, serde::Serialize)]
#[cbor(index_only)]
#[serde(rename_all = "snake_case")]
pub enum HandleFd {
    /// No fd: the handle's rights allow nothing done directly (signal through `Signal`).
    #[n(0)]
    None,
    /// The object itself: the eventfd (wait and signal), or a mapping's memfd for reading and
    /// writing.
    #[n(1)]
    Object,
    /// A mapping's memfd opened read-only (views cannot be writable).
    #[n(2)]
    ReadOnly,
    /// An epoll fd that becomes readable when the event or semaphore is signalled: wait only
    /// (an auto-reset event or a semaphore is then taken with `TakeSignal`).
    #[n(3)]
    Readiness,
}

/// A handle the broker opened: answer to [`Create`] and [`Open`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct NamedObjectHandle {
    /// The handle (for `Close`, `Signal`, `TakeSignal`).
    #[n(0)]
    pub handle: u64,
    /// Create found the name taken by an object of the same type and opened it
    /// (`ERROR_ALREADY_EXISTS`, 183).
    #[n(1)]
    pub already_exists: bool,
    /// The rights granted (specific rights, generic ones mapped).
    #[n(2)]
    pub granted_access: u32,
    /// Size (file mappings). In JSON a decimal string: a mapping of a (sparse) file may be
    /// larger than 2^53.
    #[n(3)]
    #[serde(serialize_with = "crate::json64::string")]
    pub size: u64,
    /// A manual-reset event (events).
    #[n(4)]
    pub manual_reset: bool,
    /// What the attached fd is.
    #[n(5)]
    pub fd: HandleFd,
}

/// What [`Signal`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub enum SignalOp {
    /// `SetEvent`.
    #[n(0)]
    Set,
    /// `ResetEvent`.
    #[n(1)]
    Reset,
    /// `ReleaseSemaphore(count)`.
    #[n(2)]
    Release {
        /// How much to add.
        #[n(0)]
        count: u32,
    },
}

/// A live named object.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct NamedObjectInfo {
    /// Namespace (`Session` or `AppContainerNamedObjects\<SID>`).
    #[n(0)]
    pub namespace: String,
    /// Name.
    #[n(1)]
    pub name: String,
    /// Its type.
    #[n(2)]
    pub object_type: ObjectType,
    /// The creator's package family name ("" for an unpackaged creator).
    #[n(3)]
    pub creator_package_family_name: String,
    /// The creator's pid.
    #[n(4)]
    pub creator_pid: u32,
    /// Its security descriptor in SDDL.
    #[n(5)]
    pub sddl: String,
    /// Open handles.
    #[n(6)]
    pub handles: u32,
    /// Size (file mappings). In JSON a decimal string, as `NamedObjectHandle.size`.
    #[n(7)]
    #[serde(serialize_with = "crate::json64::string")]
    pub size: u64,
}
