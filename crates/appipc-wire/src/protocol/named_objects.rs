//! Named objects: events, semaphores, mutexes, waitable timers and file mappings in per-package
//! namespaces.

use minicbor::{Decode, Encode};

super::mechanism! {
    /// Named objects (`CreateEvent`, `CreateSemaphore`, `CreateMutex`, `CreateWaitableTimer`,
    /// `CreateFileMapping` and their `Open…`): the broker checks names and access and hands
    /// over the object as an fd that can do exactly what the handle's granted rights allow.
    /// Errors carry `Win32` codes: 2 not found, 5 access denied, 6 wrong type or handle, 87 bad
    /// parameter, 123 bad name, 288 not the mutex's owner, 298 a semaphore past its maximum,
    /// 1816 handle quota.
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
        /// `SetEvent`, `ResetEvent`, `ReleaseSemaphore`, `ReleaseMutex`, `SetWaitableTimer`,
        /// `CancelWaitableTimer` through the broker: events for a handle that holds no fd of the
        /// object, the others always (the broker keeps their state). Returns the semaphore's
        /// previous count (0 for the others). `ReleaseSemaphore` past the maximum is 298 and
        /// changes nothing; `ReleaseMutex` by a session that does not own it is 288.
        5 Signal {
            /// The handle.
            0 handle: u64,
            /// What to do.
            1 op: SignalOp,
        } fds(0) -> u32, reply fds "0";
        /// Completes a wait of a wait-only handle (`SYNCHRONIZE` without the modify right) on
        /// an auto-reset event or a semaphore: takes the signal if it is still there. Returns
        /// whether it was. Kept for older clients: `Acquire` does the same for every type.
        6 TakeSignal {
            /// The handle.
            0 handle: u64,
        } fds(0) -> bool, reply fds "0";
        /// Completes a wait on one object (needs `SYNCHRONIZE`), without blocking: takes the
        /// signal of an auto-reset event or timer, one count of a semaphore, ownership of a
        /// mutex (again, recursively, if the caller's session owns it); a manual-reset event or
        /// timer is only looked at. `NotSignalled` if there was nothing to take: wait on the
        /// handle's fd and ask again.
        7 Acquire {
            /// The handle.
            0 handle: u64,
        } fds(0) -> WaitOutcome, reply fds "0";
        /// `WaitForMultipleObjects(bWaitAll = TRUE)`'s completion: takes every object at once
        /// or none (each as `Acquire` would). 1 to 64 (`MAXIMUM_WAIT_OBJECTS`) distinct handles
        /// of the caller's, each with `SYNCHRONIZE`; else 87, or 5. `Abandoned` if one of them
        /// was an abandoned mutex; `NotSignalled` names one object that is not, to wait on
        /// before asking again.
        8 AcquireAll {
            /// The handles.
            0 handles: Vec<u64>,
        } fds(0) -> AllAcquired, reply fds "0";
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
    /// A mutex.
    #[n(3)]
    Mutex,
    /// A waitable timer.
    #[n(4)]
    WaitableTimer,
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
    /// A mutex.
    #[n(4)]
    Mutex {
        /// `bInitialOwner`: the creating session owns it at once (only if it created it: a
        /// create that opens an existing mutex does not take it, as on Windows).
        #[n(0)]
        initial_owner: bool,
    },
    /// A waitable timer, inactive until `SetWaitableTimer`.
    #[n(5)]
    WaitableTimer {
        /// Manual reset (a notification timer) or synchronization (auto reset).
        #[n(0)]
        manual_reset: bool,
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
            NamedObjectKind::Mutex { .. } => ObjectType::Mutex,
            NamedObjectKind::WaitableTimer { .. } => ObjectType::WaitableTimer,
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
    /// The object itself: an event's eventfd (wait and signal), or a mapping's memfd for
    /// reading and writing.
    #[n(1)]
    Object,
    /// A mapping's memfd opened read-only (views cannot be writable).
    #[n(2)]
    ReadOnly,
    /// An epoll fd that is readable while the object is signalled (an event, a semaphore with a
    /// count, a mutex nobody owns, a timer that expired): wait only; the wait is completed
    /// with `Acquire`. Every semaphore, mutex and timer handle with `SYNCHRONIZE` gets this:
    /// their state is the broker's, so no holder can change it but through the broker.
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
    /// A manual-reset event or timer.
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
    /// `ReleaseMutex`.
    #[n(3)]
    ReleaseMutex,
    /// `SetWaitableTimer(due_time, period)`: makes the timer non-signalled and arms it.
    #[n(4)]
    SetTimer {
        /// In 100-nanosecond units: positive an absolute UTC time (`FILETIME`, since
        /// 1601-01-01), negative a time relative to now, 0 at once.
        #[n(0)]
        due_time: i64,
        /// Milliseconds between expirations after the first (0: once). Negative: 87.
        #[n(1)]
        period_ms: i32,
    },
    /// `CancelWaitableTimer`: disarms it, leaving its signalled state as it is.
    #[n(5)]
    CancelTimer,
}

/// How [`AcquireAll`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct AllAcquired {
    /// `Signalled` (all taken), `Abandoned` (all taken, one or more an abandoned mutex), or
    /// `NotSignalled` (none taken).
    #[n(0)]
    pub outcome: WaitOutcome,
    /// With `NotSignalled`: the index in the request of an object that is not signalled.
    #[n(1)]
    pub waiting_for: u32,
}

/// How [`Acquire`] and [`AcquireAll`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, serde::Serialize)]
#[cbor(index_only)]
#[serde(rename_all = "snake_case")]
pub enum WaitOutcome {
    /// Nothing to take now (`WAIT_TIMEOUT` if the wait's time is up).
    #[n(0)]
    NotSignalled,
    /// Taken (`WAIT_OBJECT_0`).
    #[n(1)]
    Signalled,
    /// A mutex whose owner ended without releasing it: the caller owns it now
    /// (`WAIT_ABANDONED`).
    #[n(2)]
    Abandoned,
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
