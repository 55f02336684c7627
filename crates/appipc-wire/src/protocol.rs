//! The broker protocol: the messages that travel on a broker session socket.
//!
//! A session is a `SOCK_SEQPACKET` unix socket; every socket message is exactly one
//! [`Frame`], CBOR-encoded, at most [`MAX_FRAME_LEN`] bytes, with any fds it carries attached
//! to that same socket message (`SCM_RIGHTS`). A client sends [`Request`]s, each with an id of
//! its choosing; the broker answers each with one [`Reply`] carrying the same id, in any
//! order, and may send [`Event`]s (id 0) at any time. See `docs/wire.md`.
//!
//! Every type here is plain data (strings, numbers): validation into the typed identities of
//! `appipc-model` happens in the broker, at the boundary.

use minicbor::{Decode, Encode};

use crate::app_service::{
    AppServiceConnectionStatus, BackgroundTaskCancellationReason, FullTrustLaunchResult,
};

/// Version of this protocol; the broker reports it in [`Reply::Pong`].
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame either side sends or accepts on a broker session. A larger one closes
/// the connection.
pub const MAX_FRAME_LEN: usize = 128 * 1024;

/// One socket message. Exactly one of `request`, `reply` or `event` is present.
///
/// The body fields are optional so that a request kind this broker does not know decodes as
/// "no request" and can be answered with [`ErrorCode::Unsupported`] instead of tearing down
/// the session.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Frame {
    /// Request id, chosen by the client (non-zero); echoed in the reply; 0 for events.
    #[n(0)]
    pub id: u64,
    /// A request (client → broker).
    #[n(1)]
    pub request: Option<Request>,
    /// A reply (broker → client).
    #[n(2)]
    pub reply: Option<Reply>,
    /// An event (broker → client).
    #[n(3)]
    pub event: Option<Event>,
}

/// Why bytes could not be read as a frame.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Longer than [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    TooLarge(usize),
    /// Not a CBOR frame of this protocol.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Bytes left after the frame.
    #[error("malformed frame: {0} trailing bytes")]
    Trailing(usize),
}

impl Frame {
    /// A request frame.
    pub fn request(id: u64, request: Request) -> Frame {
        Frame { id, request: Some(request), reply: None, event: None }
    }

    /// A reply frame.
    pub fn reply(id: u64, reply: Reply) -> Frame {
        Frame { id, request: None, reply: Some(reply), event: None }
    }

    /// An event frame.
    pub fn event(event: Event) -> Frame {
        Frame { id: 0, request: None, reply: None, event: Some(event) }
    }

    /// Encodes the frame.
    pub fn to_cbor(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Decodes a frame, refusing oversized input and trailing bytes.
    pub fn from_cbor(bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        let mut d = minicbor::Decoder::new(bytes);
        let frame: Frame = d.decode().map_err(|e| FrameError::Malformed(e.to_string()))?;
        let rest = bytes.len() - d.position();
        if rest != 0 {
            return Err(FrameError::Trailing(rest));
        }
        Ok(frame)
    }
}

/// What a client asks the broker.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Request {
    /// Liveness and version check.
    #[n(0)]
    Ping,
    /// Who does the broker think I am? Answered with [`Reply::Identity`].
    #[n(1)]
    WhoAmI,
    /// Install (or upgrade) the package in the folder at `path` (absolute, as seen by the
    /// broker). Only callers without a package may install. Answered with [`Reply::Installed`].
    #[n(2)]
    Install {
        /// Absolute path of the package folder.
        #[n(0)]
        path: String,
    },
    /// List installed packages. Answered with [`Reply::Packages`].
    #[n(3)]
    ListPackages,
    /// Remove a package by family name; stops its running processes. Only callers without a
    /// package may remove. Answered with [`Reply::Removed`].
    #[n(4)]
    Remove {
        /// Package family name.
        #[n(0)]
        family_name: String,
    },
    /// Launch an application: `target` is `PFN` (the package's first application) or
    /// `PFN!AppId`. With `stdio`, the request carries three fds (stdin, stdout, stderr) that
    /// become the app's fds 0, 1, 2. With `notify_exit`, the broker sends
    /// [`Event::ProcessExited`] on this session when the process ends. Answered with
    /// [`Reply::Launched`].
    #[n(5)]
    Launch {
        /// `PFN` or `PFN!AppId`.
        #[n(0)]
        target: String,
        /// Arguments appended after the manifest's own.
        #[n(1)]
        args: Vec<String>,
        /// Three fds attached: stdin, stdout, stderr.
        #[n(2)]
        stdio: bool,
        /// Send [`Event::ProcessExited`] here when it exits.
        #[n(3)]
        notify_exit: bool,
    },
    /// Open one more session with the caller's identity; the reply carries its fd.
    /// Answered with [`Reply::Session`].
    #[n(6)]
    OpenSession,
    /// The processes the broker started and that still run. Answered with
    /// [`Reply::Processes`].
    #[n(7)]
    ListProcesses,
    /// Stop the broker (callers without a package only). Answered with [`Reply::Ok`].
    #[n(8)]
    Shutdown,
    /// `AppServiceConnection.OpenAsync`. Answered with [`Reply::AppServiceOpened`], which
    /// carries the client's end of the connection when the status is `Success`.
    #[n(9)]
    OpenAppService {
        /// The provider's package family name.
        #[n(0)]
        package_family_name: String,
        /// The service name.
        #[n(1)]
        app_service_name: String,
    },
    /// A provider process is ready to serve this app service of its own package; connections
    /// then arrive as [`Event::AppServiceConnection`] on this session. Answered with
    /// [`Reply::Ok`].
    #[n(10)]
    RegisterAppServiceHost {
        /// A service the caller's package declares.
        #[n(0)]
        app_service_name: String,
    },
    /// A provider reports that a connection it served has ended (for idle tracking).
    /// Answered with [`Reply::Ok`].
    #[n(11)]
    AppServiceConnectionClosed {
        /// The id from [`IncomingAppServiceConnection`].
        #[n(0)]
        connection_id: u64,
    },
    /// `AppServiceCatalog.FindAppServiceProvidersAsync`. Answered with
    /// [`Reply::AppServiceProviders`].
    #[n(12)]
    FindAppServiceProviders {
        /// The service name.
        #[n(0)]
        app_service_name: String,
    },
    /// Declared services and live connections, for `appipc app-service list`. Answered with
    /// [`Reply::AppServices`].
    #[n(13)]
    ListAppServices,
    /// `FullTrustProcessLauncher`: start the full-trust process declared by an application of
    /// the caller's own package. Answered with [`Reply::FullTrustProcessLaunched`].
    #[n(14)]
    LaunchFullTrustProcess {
        /// The application whose `full-trust-process` to start; `None`: the caller's own.
        #[n(0)]
        app_id: Option<String>,
        /// A declared parameter group whose `parameters` become the command line.
        #[n(1)]
        parameter_group: Option<String>,
        /// Arguments as a list (appipc extension; instead of a parameter group).
        #[n(2)]
        arguments: Option<Vec<String>>,
    },
    /// `ApplicationData.GetPublisherCacheFolder(name)`: the path of a publisher cache folder
    /// the caller's package declares. Answered with [`Reply::Path`].
    #[n(15)]
    GetPublisherCacheFolder {
        /// The declared folder name.
        #[n(0)]
        name: String,
    },
    /// `ClearPublisherCacheFolderAsync(name)` from a package that declares it, or (without a
    /// package) the user clearing `publisher_id`'s folder. Answered with [`Reply::Ok`].
    #[n(16)]
    ClearPublisherCacheFolder {
        /// The folder.
        #[n(0)]
        name: String,
        /// For an unpackaged caller: whose folder.
        #[n(1)]
        publisher_id: Option<String>,
    },
    /// The publisher cache folders that exist. Answered with [`Reply::PublisherCaches`].
    #[n(17)]
    ListPublisherCaches,
    /// `SharedStorageAccessManager.AddFile`: the file is the attached fd (opened for reading,
    /// or reading and writing). Answered with [`Reply::Token`].
    #[n(18)]
    AddFileToken,
    /// `RedeemTokenForFileAsync`. Answered with [`Reply::File`] and the fd.
    #[n(19)]
    RedeemFileToken {
        /// The token.
        #[n(0)]
        token: String,
    },
    /// `RemoveFile`. Answered with [`Reply::Ok`].
    #[n(20)]
    RemoveFileToken {
        /// The token.
        #[n(0)]
        token: String,
    },
    /// Outstanding tokens (the caller's own; all of the user's for an unpackaged caller).
    /// Answered with [`Reply::Tokens`].
    #[n(21)]
    ListFileTokens,
    /// `CreateFileMapping` / `CreateEvent` / `CreateSemaphore` with a name. Answered with
    /// [`Reply::NamedObject`] (the object's fd attached) or [`Reply::NamedObjectFailed`].
    #[n(22)]
    CreateNamedObject {
        /// What to create.
        #[n(0)]
        kind: NamedObjectKind,
        /// The name as written (`LOCAL\name`, …).
        #[n(1)]
        name: String,
        /// Security descriptor in SDDL (`D:(A;;GA;;;AC)`); `None`: the default.
        #[n(2)]
        sddl: Option<String>,
    },
    /// `OpenFileMapping` / `OpenEvent` / `OpenSemaphore`. Answered like
    /// [`Request::CreateNamedObject`].
    #[n(23)]
    OpenNamedObject {
        /// The object type expected: 0 event, 1 semaphore, 2 file mapping.
        #[n(0)]
        object_type: u8,
        /// The name as written.
        #[n(1)]
        name: String,
        /// Desired access (generic or specific rights).
        #[n(2)]
        desired_access: u32,
    },
    /// `CloseHandle`. Answered with [`Reply::Ok`].
    #[n(24)]
    CloseNamedObject {
        /// The handle from [`Reply::NamedObject`].
        #[n(0)]
        handle: u64,
    },
    /// Live named objects (for `appipc objects`). Answered with [`Reply::NamedObjects`].
    #[n(25)]
    ListNamedObjects,
    /// `GetAppContainerNamedObjectPath` for a package. Answered with [`Reply::Path`].
    #[n(26)]
    GetNamedObjectPath {
        /// Package family name.
        #[n(0)]
        package_family_name: String,
    },
    /// `CreateNamedPipe`: one more instance of a pipe served by this session. Answered with
    /// [`Reply::PipeInstance`]; clients then arrive as [`Event::PipeClientConnected`].
    #[n(27)]
    CreatePipeInstance {
        /// `\\.\pipe\LOCAL\name`, …
        #[n(0)]
        name: String,
        /// Message mode (boundaries kept) rather than byte mode.
        #[n(1)]
        message_mode: bool,
        /// 0 duplex, 1 inbound (client to server), 2 outbound (server to client).
        #[n(2)]
        direction: u8,
        /// 1 to 255; 255 is `PIPE_UNLIMITED_INSTANCES`.
        #[n(3)]
        max_instances: u8,
        /// Security descriptor in SDDL (first instance only).
        #[n(4)]
        sddl: Option<String>,
    },
    /// `DisconnectNamedPipe`: the instance may take the next client. Answered with
    /// [`Reply::Ok`].
    #[n(28)]
    DisconnectPipeInstance {
        /// The instance.
        #[n(0)]
        instance: u64,
    },
    /// `CreateFile` on a pipe name. Answered with [`Reply::PipeConnected`] and the client's end,
    /// or [`Reply::NamedObjectFailed`] (2 no such pipe, 5 denied, 231 busy).
    #[n(29)]
    OpenPipe {
        /// The pipe name.
        #[n(0)]
        name: String,
        /// Desired access (`GENERIC_READ`, `GENERIC_WRITE`, …).
        #[n(1)]
        desired_access: u32,
    },
    /// `WaitNamedPipe`: waits until an instance is free. Answered with [`Reply::Ok`] or
    /// [`Reply::NamedObjectFailed`] (2 no such pipe, 121 timeout).
    #[n(30)]
    WaitNamedPipe {
        /// The pipe name.
        #[n(0)]
        name: String,
        /// Milliseconds.
        #[n(1)]
        timeout_ms: u32,
    },
}

/// What [`Request::CreateNamedObject`] creates.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
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
    /// A file mapping backed by memory (a sealed memfd: its size cannot change), or — with an
    /// fd attached to the request and `size` 0 — by that file (the caller's open file; its size
    /// at creation).
    #[n(2)]
    FileMapping {
        /// Size in bytes.
        #[n(0)]
        size: u64,
        /// `PAGE_READWRITE` (else `PAGE_READONLY`).
        #[n(1)]
        writable: bool,
    },
}

/// A live named object.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct NamedObjectInfo {
    /// Namespace (`Session` or `AppContainerNamedObjects\<SID>`).
    #[n(0)]
    pub namespace: String,
    /// Name.
    #[n(1)]
    pub name: String,
    /// `event`, `semaphore`, `file mapping`.
    #[n(2)]
    pub object_type: String,
    /// Who created it.
    #[n(3)]
    pub creator: String,
    /// Its security descriptor in SDDL.
    #[n(4)]
    pub sddl: String,
    /// Open handles.
    #[n(5)]
    pub handles: u32,
    /// Size (file mappings).
    #[n(6)]
    pub size: u64,
}

/// The broker's answer to one request.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Reply {
    /// The request failed.
    #[n(0)]
    Error(#[n(0)] ErrorReply),
    /// Done, nothing to report.
    #[n(1)]
    Ok,
    /// Answer to [`Request::Ping`].
    #[n(2)]
    Pong {
        /// [`PROTOCOL_VERSION`] of the broker.
        #[n(0)]
        protocol: u32,
        /// The broker's process id.
        #[n(1)]
        broker_pid: u32,
        /// The broker's version string.
        #[n(2)]
        version: String,
    },
    /// Answer to [`Request::WhoAmI`].
    #[n(3)]
    Identity(#[n(0)] CallerIdentity),
    /// Answer to [`Request::Install`].
    #[n(4)]
    Installed {
        /// Package full name.
        #[n(0)]
        full_name: String,
        /// Package family name.
        #[n(1)]
        family_name: String,
        /// What the install did.
        #[n(2)]
        outcome: InstallOutcome,
        /// The full name this replaced, for an upgrade.
        #[n(3)]
        replaced: Option<String>,
    },
    /// Answer to [`Request::ListPackages`].
    #[n(5)]
    Packages(#[n(0)] Vec<PackageInfo>),
    /// Answer to [`Request::Remove`].
    #[n(6)]
    Removed {
        /// The full name that was removed.
        #[n(0)]
        full_name: String,
        /// How many running processes of it were stopped.
        #[n(1)]
        stopped_processes: u32,
    },
    /// Answer to [`Request::Launch`].
    #[n(7)]
    Launched {
        /// The new process.
        #[n(0)]
        pid: u32,
        /// `PFN!AppId` of what was launched.
        #[n(1)]
        app_user_model_id: String,
    },
    /// Answer to [`Request::OpenSession`]; the session's fd is attached.
    #[n(8)]
    Session,
    /// Answer to [`Request::ListProcesses`].
    #[n(9)]
    Processes(#[n(0)] Vec<ProcessInfo>),
    /// Answer to [`Request::OpenAppService`]; with `Success`, the client's end of the
    /// connection is attached.
    #[n(10)]
    AppServiceOpened {
        /// The Windows status.
        #[n(0)]
        status: AppServiceConnectionStatus,
        /// The broker's id for the connection (0 when it failed).
        #[n(1)]
        connection_id: u64,
        /// The largest message the service accepts, in bytes.
        #[n(2)]
        max_message_size: u64,
        /// Why, when it failed.
        #[n(3)]
        message: String,
    },
    /// Answer to [`Request::FindAppServiceProviders`].
    #[n(11)]
    AppServiceProviders(#[n(0)] Vec<AppServiceProviderInfo>),
    /// A path (answer to [`Request::GetPublisherCacheFolder`]).
    #[n(14)]
    Path(#[n(0)] String),
    /// Answer to [`Request::ListPublisherCaches`].
    #[n(15)]
    PublisherCaches(#[n(0)] Vec<PublisherCacheInfo>),
    /// Answer to [`Request::AddFileToken`].
    #[n(16)]
    Token(#[n(0)] String),
    /// Answer to [`Request::RedeemFileToken`]; the fd is attached.
    #[n(17)]
    File {
        /// The file was shared for reading and writing (else reading only).
        #[n(0)]
        writable: bool,
        /// The file's path as the source saw it (for display).
        #[n(1)]
        path: String,
    },
    /// Answer to [`Request::ListFileTokens`].
    #[n(18)]
    Tokens(#[n(0)] Vec<FileTokenInfo>),
    /// A named object opened or created; its fd is attached.
    #[n(19)]
    NamedObject {
        /// The handle (close it with [`Request::CloseNamedObject`]).
        #[n(0)]
        handle: u64,
        /// Create found the name taken by an object of the same type and opened it
        /// (`ERROR_ALREADY_EXISTS`, 183).
        #[n(1)]
        already_exists: bool,
        /// The rights granted.
        #[n(2)]
        granted_access: u32,
        /// Size (file mappings).
        #[n(3)]
        size: u64,
        /// The fd may be written (file mappings).
        #[n(4)]
        writable: bool,
        /// A manual-reset event (events).
        #[n(5)]
        manual_reset: bool,
    },
    /// A named-object call failed with a Windows error code (2, 5, 6, 123, …).
    #[n(20)]
    NamedObjectFailed {
        /// The Win32 error code.
        #[n(0)]
        code: u32,
        /// Why.
        #[n(1)]
        message: String,
    },
    /// Answer to [`Request::ListNamedObjects`].
    #[n(21)]
    NamedObjects(#[n(0)] Vec<NamedObjectInfo>),
    /// Answer to [`Request::CreatePipeInstance`].
    #[n(22)]
    PipeInstance {
        /// The instance id.
        #[n(0)]
        instance: u64,
    },
    /// Answer to [`Request::OpenPipe`]; the client's end is attached.
    #[n(23)]
    PipeConnected {
        /// Message mode.
        #[n(0)]
        message_mode: bool,
    },
    /// Answer to [`Request::LaunchFullTrustProcess`].
    #[n(13)]
    FullTrustProcessLaunched {
        /// The Windows result.
        #[n(0)]
        result: FullTrustLaunchResult,
        /// The new process, on success.
        #[n(1)]
        pid: Option<u32>,
        /// Why, when it failed (`ExtendedError`).
        #[n(2)]
        message: String,
    },
    /// Answer to [`Request::ListAppServices`].
    #[n(12)]
    AppServices {
        /// Every declared service of the packages the caller may see.
        #[n(0)]
        declared: Vec<DeclaredAppService>,
        /// Connections the broker opened whose provider has not reported them closed.
        #[n(1)]
        connections: Vec<AppServiceConnectionInfo>,
    },
}

/// A publisher cache folder.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PublisherCacheInfo {
    /// Publisher id.
    #[n(0)]
    pub publisher_id: String,
    /// Folder name.
    #[n(1)]
    pub folder: String,
    /// Where it is.
    #[n(2)]
    pub path: String,
    /// Bytes in it.
    #[n(3)]
    pub size: u64,
    /// Installed packages that declare it.
    #[n(4)]
    pub packages: Vec<String>,
}

/// An outstanding file token.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct FileTokenInfo {
    /// The token.
    #[n(0)]
    pub token: String,
    /// The package that shared the file ("" for the user).
    #[n(1)]
    pub source_package_family_name: String,
    /// The file.
    #[n(2)]
    pub path: String,
    /// Shared for writing too.
    #[n(3)]
    pub writable: bool,
    /// Seconds since the epoch.
    #[n(4)]
    pub created_at: u64,
    /// Seconds since the epoch.
    #[n(5)]
    pub expires_at: u64,
}

/// A package that provides an app service (`AppInfo` in `FindAppServiceProvidersAsync`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AppServiceProviderInfo {
    /// Package family name.
    #[n(0)]
    pub package_family_name: String,
    /// The application that declares it.
    #[n(1)]
    pub app_id: String,
    /// The package's display name.
    #[n(2)]
    pub display_name: String,
}

/// An app service a package declares.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct DeclaredAppService {
    /// Package family name.
    #[n(0)]
    pub package_family_name: String,
    /// The application that declares it.
    #[n(1)]
    pub app_id: String,
    /// Service name.
    #[n(2)]
    pub name: String,
    /// Package-relative host executable; `None` for an in-process service.
    #[n(3)]
    pub entry_point: Option<String>,
    /// A new host process per connection.
    #[n(4)]
    pub supports_multiple_instances: bool,
    /// Largest message accepted.
    #[n(5)]
    pub max_message_size: u64,
}

/// A live app-service connection.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AppServiceConnectionInfo {
    /// The broker's id.
    #[n(0)]
    pub connection_id: u64,
    /// Provider package.
    #[n(1)]
    pub package_family_name: String,
    /// Service name.
    #[n(2)]
    pub app_service_name: String,
    /// Caller's package family name ("" for unpackaged).
    #[n(3)]
    pub caller_package_family_name: String,
    /// Caller's pid.
    #[n(4)]
    pub caller_pid: u32,
    /// The provider host's pid.
    #[n(5)]
    pub host_pid: u32,
    /// Seconds since the epoch.
    #[n(6)]
    pub opened_at: u64,
}

/// What a provider learns about a new connection (`AppServiceTriggerDetails`), all attested
/// by the broker.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct IncomingAppServiceConnection {
    /// The broker's id (report it with [`Request::AppServiceConnectionClosed`]).
    #[n(0)]
    pub connection_id: u64,
    /// The service name.
    #[n(1)]
    pub app_service_name: String,
    /// `CallerPackageFamilyName`: empty for an unpackaged caller.
    #[n(2)]
    pub caller_package_family_name: String,
    /// The caller's declared capabilities (for `CheckCallerForCapabilityAsync`).
    #[n(3)]
    pub caller_capabilities: Vec<String>,
    /// The caller's trust level.
    #[n(4)]
    pub caller_trust: TrustLevel,
    /// The caller's pid.
    #[n(5)]
    pub caller_pid: u32,
    /// The largest message either side may send, in bytes.
    #[n(6)]
    pub max_message_size: u64,
}

/// What went wrong, for a person and for a program.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ErrorReply {
    /// The kind of failure.
    #[n(0)]
    pub code: ErrorCode,
    /// What was asked, what was refused and why.
    #[n(1)]
    pub message: String,
}

/// Kinds of broker errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request was malformed or its arguments invalid.
    #[n(1)]
    BadRequest,
    /// The caller may not do this.
    #[n(2)]
    AccessDenied,
    /// No such package, application or process.
    #[n(3)]
    NotFound,
    /// The package folder or its manifest is invalid.
    #[n(4)]
    InvalidPackage,
    /// A newer version of the package is already installed.
    #[n(5)]
    Downgrade,
    /// The same version is installed with different content.
    #[n(6)]
    Conflict,
    /// The process could not be started.
    #[n(7)]
    LaunchFailed,
    /// Something failed inside the broker (storage, file system).
    #[n(8)]
    Internal,
    /// This broker does not know the request.
    #[n(9)]
    Unsupported,
    /// The package is being installed, upgraded or removed.
    #[n(10)]
    Busy,
    /// The file token is unknown, expired, already redeemed or removed.
    #[n(11)]
    TokenInvalid,
    /// The source package has 1 000 outstanding tokens.
    #[n(12)]
    QuotaExceeded,
    /// The caller's package does not declare that publisher cache folder.
    #[n(13)]
    NotDeclared,
}

/// Identity as the broker attests it: from the kernel and from which socket the request came
/// in on, never from what the caller claims.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct CallerIdentity {
    /// Process id of the peer that opened the session (for a launched package: the process
    /// the broker started).
    #[n(0)]
    pub pid: u32,
    /// User id.
    #[n(1)]
    pub uid: u32,
    /// Package full name; `None` for an unpackaged caller.
    #[n(2)]
    pub package_full_name: Option<String>,
    /// Package family name; `None` for an unpackaged caller.
    #[n(3)]
    pub package_family_name: Option<String>,
    /// Application id inside the package.
    #[n(4)]
    pub app_id: Option<String>,
    /// Trust level.
    #[n(5)]
    pub trust: TrustLevel,
    /// Declared capability names.
    #[n(6)]
    pub capabilities: Vec<String>,
    /// AppContainer SID of the package.
    #[n(7)]
    pub package_sid: Option<String>,
    /// Capability SIDs.
    #[n(8)]
    pub capability_sids: Vec<String>,
    /// The session's id in the broker's log.
    #[n(9)]
    pub session_id: u64,
}

/// How much a process is trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
pub enum TrustLevel {
    /// No package identity: a process the user started outside the broker.
    #[n(0)]
    Unpackaged,
    /// A packaged process in its app container.
    #[n(1)]
    AppContainer,
    /// A packaged process with full trust (`mediumIL`, `runFullTrust`).
    #[n(2)]
    FullTrust,
}

impl TrustLevel {
    /// Lower-case name used in listings.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustLevel::Unpackaged => "unpackaged",
            TrustLevel::AppContainer => "appcontainer",
            TrustLevel::FullTrust => "fulltrust",
        }
    }
}

/// What an install did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
pub enum InstallOutcome {
    /// Newly installed.
    #[n(0)]
    Installed,
    /// Replaced an older version of the same family.
    #[n(1)]
    Upgraded,
    /// This exact package was already installed; nothing changed.
    #[n(2)]
    AlreadyInstalled,
}

/// An installed package.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PackageInfo {
    /// `Identity@Name`.
    #[n(0)]
    pub name: String,
    /// Four-part version.
    #[n(1)]
    pub version: String,
    /// Publisher distinguished name.
    #[n(2)]
    pub publisher: String,
    /// 13-character publisher id.
    #[n(3)]
    pub publisher_id: String,
    /// Package family name.
    #[n(4)]
    pub family_name: String,
    /// Package full name.
    #[n(5)]
    pub full_name: String,
    /// Declared capabilities.
    #[n(6)]
    pub capabilities: Vec<String>,
    /// Applications.
    #[n(7)]
    pub applications: Vec<AppInfo>,
    /// Where the package's files are installed.
    #[n(8)]
    pub install_location: String,
    /// Where its app data folders are.
    #[n(9)]
    pub data_location: String,
    /// Display name, if the manifest gives one.
    #[n(10)]
    pub display_name: Option<String>,
    /// AppContainer SID.
    #[n(11)]
    pub package_sid: String,
    /// Install time, seconds since the Unix epoch.
    #[n(12)]
    pub installed_at: u64,
}

/// An application inside a package.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct AppInfo {
    /// Application id.
    #[n(0)]
    pub id: String,
    /// Package-relative executable.
    #[n(1)]
    pub executable: String,
    /// Trust level it runs at.
    #[n(2)]
    pub trust: TrustLevel,
}

/// A process the broker started.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ProcessInfo {
    /// Process id.
    #[n(0)]
    pub pid: u32,
    /// `PFN!AppId`.
    #[n(1)]
    pub app_user_model_id: String,
    /// Package family name.
    #[n(2)]
    pub package_family_name: String,
    /// Trust level.
    #[n(3)]
    pub trust: TrustLevel,
    /// Start time, seconds since the Unix epoch.
    #[n(4)]
    pub started_at: u64,
    /// The confinement applied, in words (for `appipc ps`).
    #[n(5)]
    pub confinement: String,
}

/// Something the broker tells a client without being asked.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Event {
    /// A process launched with `notify_exit` ended.
    #[n(0)]
    ProcessExited {
        /// Its pid.
        #[n(0)]
        pid: u32,
        /// Exit code, if it exited.
        #[n(1)]
        code: Option<i32>,
        /// Terminating signal, if killed.
        #[n(2)]
        signal: Option<i32>,
    },
    /// A client connected to an app service this session hosts; the provider's end of the
    /// connection is attached.
    #[n(1)]
    AppServiceConnection(#[n(0)] IncomingAppServiceConnection),
    /// A client opened a pipe instance of this session; the server's end is attached.
    #[n(3)]
    PipeClientConnected {
        /// The instance.
        #[n(0)]
        instance: u64,
        /// The client's pid (`GetNamedPipeClientProcessId`).
        #[n(1)]
        client_pid: u32,
        /// The client's package family name ("" for unpackaged).
        #[n(2)]
        client_package_family_name: String,
    },
    /// The broker is stopping this provider host (`BackgroundTaskInstance.Canceled`); it is
    /// killed after a grace period.
    #[n(2)]
    Canceled {
        /// Why.
        #[n(0)]
        reason: BackgroundTaskCancellationReason,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let f = Frame::request(
            7,
            Request::Launch {
                target: "A_8wekyb3d8bbwe!App".into(),
                args: vec!["x".into()],
                stdio: true,
                notify_exit: false,
            },
        );
        assert_eq!(Frame::from_cbor(&f.to_cbor()).unwrap(), f);
        let r = Frame::reply(
            7,
            Reply::Error(ErrorReply { code: ErrorCode::Downgrade, message: "m".into() }),
        );
        assert_eq!(Frame::from_cbor(&r.to_cbor()).unwrap(), r);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff", b"\x9f\x9f\x9f", b"\xbb\xff\xff\xff\xff\xff\xff\xff\xff"] {
            assert!(Frame::from_cbor(bytes).is_err());
        }
        let mut ok = Frame::request(1, Request::Ping).to_cbor();
        ok.push(0);
        assert!(matches!(Frame::from_cbor(&ok), Err(FrameError::Trailing(1))));
    }

    #[test]
    fn unknown_request_kind_decodes_as_none() {
        // Frame::request(5, Ping) encodes as [5, [0, []]] (absent trailing fields omitted).
        assert_eq!(Frame::request(5, Request::Ping).to_cbor(), [0x82, 0x05, 0x82, 0x00, 0x80]);
        // The same with variant index 99, which this version does not know.
        let bytes = [0x82, 0x05, 0x82, 0x18, 0x63, 0x80];
        let f = Frame::from_cbor(&bytes).unwrap();
        assert_eq!(f.id, 5);
        assert!(f.request.is_none());
    }
}

#[cfg(test)]
mod event_tests {
    use super::*;

    #[test]
    fn app_service_events_round_trip() {
        let f = Frame::event(Event::AppServiceConnection(IncomingAppServiceConnection {
            connection_id: 1,
            app_service_name: "com.x".into(),
            caller_package_family_name: String::new(),
            caller_capabilities: vec!["internetClient".into()],
            caller_trust: TrustLevel::AppContainer,
            caller_pid: 4,
            max_message_size: 16,
        }));
        assert_eq!(Frame::from_cbor(&f.to_cbor()).unwrap(), f);
        let c =
            Frame::event(Event::Canceled { reason: BackgroundTaskCancellationReason::IdleTask });
        assert_eq!(Frame::from_cbor(&c.to_cbor()).unwrap(), c);
    }
}
