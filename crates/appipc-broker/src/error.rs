//! The broker's errors: [`BrokerError`] nests one error type per mechanism; each maps to its
//! [`ErrorKind`] and to the Windows code its counterpart reports, which the reply carries.

use appipc_model::named_objects as model;
use appipc_model::package_file::PackageFileError;
use appipc_model::policy::{self, Decision};
use appipc_wire::status::{
    AppServiceConnectionStatus, ErrorKind, ErrorReply, FullTrustLaunchResult, HResult,
    LaunchUriStatus, Win32Error, WindowsCode,
};

/// An error that knows its kind and Windows code.
pub trait Coded {
    /// The kind (the CLI's exit code follows it).
    fn kind(&self) -> ErrorKind;
    /// The Windows code.
    fn code(&self) -> WindowsCode;
}

/// A refusal by the policy ([`crate::decide`]), with the rule that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub Box<Decision>);

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.rule)?;
        if let Some(r) = &self.0.remedy {
            write!(f, " (to allow it: {r})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Denied {}

impl Coded for Denied {
    fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    fn code(&self) -> WindowsCode {
        self.0.code
    }
}

/// Something failed inside the broker.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// The state database failed.
    #[error("state database: {0}")]
    Store(#[from] rusqlite::Error),
    /// A file-system or process step failed.
    #[error("{what}: {source}")]
    Io {
        /// What the broker was doing.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl From<crate::blocking::JobFailed> for InternalError {
    fn from(e: crate::blocking::JobFailed) -> Self {
        InternalError::io("a blocking job", std::io::Error::other(e))
    }
}

impl InternalError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> InternalError {
        InternalError::Io { what: what.into(), source }
    }
}

/// What installing, listing or removing a package, or changing the deployment policy, can
/// fail with; codes are the deployment `HRESULT`s `PackageManager` reports on Windows.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackagesError {
    /// The policy refused.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A malformed argument.
    #[error("{0}")]
    BadRequest(String),
    /// No such package is installed.
    #[error("{0}")]
    NotInstalled(String),
    /// The package folder or its manifest is invalid.
    #[error("invalid package: {0}")]
    InvalidPackage(String),
    /// The package file was refused (unsigned, bad signature, tampered, malformed, too large).
    #[error("{0}")]
    PackageFile(PackageFileError),
    /// No trusted key matches.
    #[error("{0}")]
    UnknownKey(String),
    /// A newer version is installed.
    #[error("{0}")]
    Downgrade(String),
    /// The same version is installed with different content.
    #[error("{0}")]
    Conflict(String),
    /// The family is being deployed by another request.
    #[error("{0}")]
    Busy(String),
    /// Inside the broker.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Coded for PackagesError {
    fn kind(&self) -> ErrorKind {
        match self {
            PackagesError::Denied(d) => d.kind(),
            PackagesError::BadRequest(_) => ErrorKind::BadRequest,
            PackagesError::NotInstalled(_) | PackagesError::UnknownKey(_) => ErrorKind::NotFound,
            PackagesError::InvalidPackage(_) | PackagesError::PackageFile(_) => {
                ErrorKind::InvalidPackage
            }
            PackagesError::Downgrade(_) => ErrorKind::Downgrade,
            PackagesError::Conflict(_) => ErrorKind::Conflict,
            PackagesError::Busy(_) => ErrorKind::Busy,
            PackagesError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            PackagesError::Denied(d) => d.code(),
            PackagesError::BadRequest(_) => HResult::InvalidArg.into(),
            PackagesError::NotInstalled(_) => HResult::InstallPackageNotFound.into(),
            PackagesError::InvalidPackage(_) => HResult::InstallOpenPackageFailed.into(),
            PackagesError::PackageFile(e) => policy::package_file_code(e).into(),
            PackagesError::UnknownKey(_) => HResult::CryptNotFound.into(),
            PackagesError::Downgrade(_) => HResult::InstallPackageDowngrade.into(),
            PackagesError::Conflict(_) => HResult::PackageAlreadyExists.into(),
            PackagesError::Busy(_) => HResult::InstallResourcesInUse.into(),
            PackagesError::Internal(_) => HResult::Fail.into(),
        }
    }
}

/// What starting a process can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LaunchError {
    /// The policy refused.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A malformed argument.
    #[error("{0}")]
    BadRequest(String),
    /// No such package or application.
    #[error("{0}")]
    NotFound(String),
    /// The package is being deployed.
    #[error("{0}")]
    Busy(String),
    /// The package runs as many processes (or sessions) as it may.
    #[error("{0}")]
    Quota(String),
    /// The process could not be started (a confinement step, exec, …).
    #[error("launch failed: {0}")]
    Failed(String),
    /// Inside the broker.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Coded for LaunchError {
    fn kind(&self) -> ErrorKind {
        match self {
            LaunchError::Denied(d) => d.kind(),
            LaunchError::BadRequest(_) => ErrorKind::BadRequest,
            LaunchError::NotFound(_) => ErrorKind::NotFound,
            LaunchError::Busy(_) => ErrorKind::Busy,
            LaunchError::Quota(_) => ErrorKind::QuotaExceeded,
            LaunchError::Failed(_) => ErrorKind::LaunchFailed,
            LaunchError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            LaunchError::Denied(d) => d.code(),
            LaunchError::BadRequest(_) => HResult::InvalidArg.into(),
            LaunchError::NotFound(_) => HResult::FileNotFound.into(),
            LaunchError::Busy(_) => HResult::InstallResourcesInUse.into(),
            LaunchError::Quota(_) => HResult::NotEnoughQuota.into(),
            LaunchError::Failed(_) | LaunchError::Internal(_) => HResult::Fail.into(),
        }
    }
}

/// What app-service requests can fail with; an open's code is an
/// `AppServiceConnectionStatus`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppServiceError {
    /// The policy refused or the target does not offer the service (`AppNotInstalled`,
    /// `AppUnavailable`, `AppServiceUnavailable`, `NotAuthorized`; E_ACCESSDENIED for a host
    /// that may not register).
    #[error(transparent)]
    Denied(#[from] Denied),
    /// The service's host could not be started or did not register (`AppUnavailable`).
    #[error("{0}")]
    Unavailable(String),
    /// The caller holds as many connections as it may (`Unknown`: Windows has no status for
    /// it).
    #[error("{0}")]
    Quota(String),
    /// Inside the broker (`Unknown`).
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Coded for AppServiceError {
    fn kind(&self) -> ErrorKind {
        match self {
            AppServiceError::Denied(d) => d.kind(),
            AppServiceError::Unavailable(_) => ErrorKind::LaunchFailed,
            AppServiceError::Quota(_) => ErrorKind::QuotaExceeded,
            AppServiceError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            AppServiceError::Denied(d) => d.code(),
            AppServiceError::Unavailable(_) => {
                WindowsCode::Status(AppServiceConnectionStatus::AppUnavailable.value())
            }
            AppServiceError::Internal(_) | AppServiceError::Quota(_) => {
                WindowsCode::Status(AppServiceConnectionStatus::Unknown.value())
            }
        }
    }
}

/// What `FullTrustProcessLauncher` can fail with; the code is a `FullTrustLaunchResult`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FullTrustError {
    /// The policy refused (`AccessDenied`), or what was asked is not declared or not there
    /// (`FileNotFound`).
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A malformed request (`Unknown`).
    #[error("{0}")]
    BadRequest(String),
    /// Starting it failed (`Unknown`).
    #[error("{0}")]
    Failed(String),
}

impl Coded for FullTrustError {
    fn kind(&self) -> ErrorKind {
        match self {
            FullTrustError::Denied(d) => d.kind(),
            FullTrustError::BadRequest(_) => ErrorKind::BadRequest,
            FullTrustError::Failed(_) => ErrorKind::LaunchFailed,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            FullTrustError::Denied(d) => d.code(),
            FullTrustError::BadRequest(_) | FullTrustError::Failed(_) => {
                WindowsCode::Status(FullTrustLaunchResult::Unknown.value())
            }
        }
    }
}

/// What protocol activation can fail with; a launch's refusals carry a `LaunchUriStatus`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The policy refused (the code is a `LaunchUriStatus`, or `E_INVALIDARG`).
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A malformed URI or family name (`E_INVALIDARG`).
    #[error("{0}")]
    BadRequest(String),
    /// A `ValueSet` over 100 KiB (`E_INVALIDARG`).
    #[error("{0}")]
    TooLarge(String),
    /// Too many launches for results waiting (`ERROR_NOT_ENOUGH_QUOTA`).
    #[error("{0}")]
    Quota(String),
    /// The operation reported is over.
    #[error("{0}")]
    NotPending(String),
    /// The target could not be started (`LaunchUriStatus::Unknown`).
    #[error("{0}")]
    Failed(String),
    /// Inside the broker.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Coded for ProtocolError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProtocolError::Denied(d) => d.kind(),
            ProtocolError::BadRequest(_) | ProtocolError::TooLarge(_) => ErrorKind::BadRequest,
            ProtocolError::Quota(_) => ErrorKind::QuotaExceeded,
            ProtocolError::NotPending(_) => ErrorKind::NotFound,
            ProtocolError::Failed(_) => ErrorKind::LaunchFailed,
            ProtocolError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            ProtocolError::Denied(d) => d.code(),
            ProtocolError::BadRequest(_) | ProtocolError::TooLarge(_) => HResult::InvalidArg.into(),
            ProtocolError::Quota(_) => WindowsCode::Win32(Win32Error::NotEnoughQuota.value()),
            ProtocolError::NotPending(_) => HResult::IllegalMethodCall.into(),
            ProtocolError::Failed(_) => WindowsCode::Status(LaunchUriStatus::Unknown.value()),
            ProtocolError::Internal(_) => HResult::Fail.into(),
        }
    }
}

/// What publisher cache folders and file tokens can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The policy refused (an undeclared folder, another package's token).
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A malformed argument.
    #[error("{0}")]
    BadRequest(String),
    /// No such folder.
    #[error("{0}")]
    NotFound(String),
    /// The token is unknown, expired, redeemed, removed, or its file is gone or replaced.
    #[error("{0}")]
    TokenInvalid(String),
    /// The source has 1 000 outstanding tokens.
    #[error("{0}")]
    QuotaExceeded(String),
    /// Inside the broker.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Coded for StorageError {
    fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Denied(d) => d.kind(),
            StorageError::BadRequest(_) => ErrorKind::BadRequest,
            StorageError::NotFound(_) => ErrorKind::NotFound,
            StorageError::TokenInvalid(_) => ErrorKind::TokenInvalid,
            StorageError::QuotaExceeded(_) => ErrorKind::QuotaExceeded,
            StorageError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            StorageError::Denied(d) => d.code(),
            StorageError::BadRequest(_) | StorageError::TokenInvalid(_) => {
                HResult::InvalidArg.into()
            }
            StorageError::NotFound(_) => HResult::FileNotFound.into(),
            StorageError::QuotaExceeded(_) => {
                WindowsCode::Win32(appipc_wire::status::Win32Error::NotEnoughQuota.value())
            }
            StorageError::Internal(_) => HResult::Fail.into(),
        }
    }
}

/// What named-object and pipe requests fail with: a Win32 error code, as their Windows
/// counterparts report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NamedObjectError {
    /// The policy refused (5), or the handle is not the caller's (6).
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A Win32 failure: not found (2), wrong type (6), bad parameter (87), bad name (123),
    /// busy (231), quota (1816), …
    #[error("{message} (error {})", .code.value())]
    Win32 {
        /// The code.
        code: Win32Error,
        /// What was asked and why it failed.
        message: String,
    },
    /// Inside the broker.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl NamedObjectError {
    /// A Win32 failure.
    pub(crate) fn win32(code: Win32Error, message: impl Into<String>) -> NamedObjectError {
        NamedObjectError::Win32 { code, message: message.into() }
    }

    /// `ERROR_INVALID_PARAMETER`.
    pub(crate) fn parameter(message: impl Into<String>) -> NamedObjectError {
        NamedObjectError::win32(Win32Error::InvalidParameter, message)
    }
}

impl From<model::NamedObjectError> for NamedObjectError {
    fn from(e: model::NamedObjectError) -> Self {
        NamedObjectError::Win32 { code: e.code, message: e.message }
    }
}

impl Coded for NamedObjectError {
    fn kind(&self) -> ErrorKind {
        match self {
            NamedObjectError::Denied(d) => d.kind(),
            NamedObjectError::Win32 { code, .. } => match code {
                Win32Error::FileNotFound => ErrorKind::NotFound,
                Win32Error::AccessDenied => ErrorKind::AccessDenied,
                Win32Error::NotEnoughQuota | Win32Error::NoSystemResources => {
                    ErrorKind::QuotaExceeded
                }
                Win32Error::PipeBusy | Win32Error::SemTimeout => ErrorKind::Busy,
                _ => ErrorKind::BadRequest,
            },
            NamedObjectError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            NamedObjectError::Denied(d) => d.code(),
            NamedObjectError::Win32 { code, .. } => (*code).into(),
            NamedObjectError::Internal(_) => Win32Error::NoSystemResources.into(),
        }
    }
}

/// What COM requests fail with: an `HRESULT`, as `CoCreateInstance` and
/// `CoRegisterClassObject` report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComError {
    /// The policy refused (`E_ACCESSDENIED`).
    #[error(transparent)]
    Denied(#[from] Denied),
    /// An `HRESULT` failure.
    #[error("{message} (HRESULT {:#010x})", .code.value())]
    HResult {
        /// The code.
        code: HResult,
        /// What was asked and why it failed.
        message: String,
    },
    /// Inside the broker.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl ComError {
    /// An `HRESULT` failure.
    pub(crate) fn new(code: HResult, message: impl Into<String>) -> ComError {
        ComError::HResult { code, message: message.into() }
    }
}

impl Coded for ComError {
    fn kind(&self) -> ErrorKind {
        match self {
            ComError::Denied(d) => d.kind(),
            ComError::HResult { code, .. } => match code {
                HResult::ClassNotRegistered | HResult::ClassString => ErrorKind::NotFound,
                HResult::AccessDenied | HResult::WrongServerIdentity => ErrorKind::AccessDenied,
                HResult::ServerExecFailure => ErrorKind::LaunchFailed,
                HResult::ServerStopping => ErrorKind::Busy,
                HResult::NotEnoughQuota => ErrorKind::QuotaExceeded,
                _ => ErrorKind::BadRequest,
            },
            ComError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            ComError::Denied(d) => d.code(),
            ComError::HResult { code, .. } => (*code).into(),
            ComError::Internal(_) => HResult::Fail.into(),
        }
    }
}

/// What registry requests fail with: a Win32 error code, as the Win32 registry API reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// 2, 5, 6, 87, 234, 259, 1018, 1816 (the message without the code: the reply carries it).
    #[error("{}", .0.message)]
    Win32(#[from] appipc_model::registry::RegError),
    /// Inside the broker.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl Coded for RegistryError {
    fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Win32(e) => match e.code {
                Win32Error::FileNotFound | Win32Error::NoMoreItems | Win32Error::KeyDeleted => {
                    ErrorKind::NotFound
                }
                Win32Error::AccessDenied => ErrorKind::AccessDenied,
                Win32Error::NotEnoughQuota => ErrorKind::QuotaExceeded,
                _ => ErrorKind::BadRequest,
            },
            RegistryError::Internal(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            RegistryError::Win32(e) => e.code.into(),
            RegistryError::Internal(_) => Win32Error::NoSystemResources.into(),
        }
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// A malformed request (wrong fds, …).
    #[error("{0}")]
    BadRequest(String),
    /// A request this broker does not know.
    #[error("{0}")]
    Unsupported(String),
    /// A limit of the caller's is reached (`ERROR_NOT_ENOUGH_QUOTA`).
    #[error("{0}")]
    Quota(String),
    /// The policy refused.
    #[error(transparent)]
    Denied(#[from] Denied),
    /// Packages.
    #[error(transparent)]
    Packages(#[from] PackagesError),
    /// Launching.
    #[error(transparent)]
    Launch(#[from] LaunchError),
    /// App services.
    #[error(transparent)]
    AppService(#[from] AppServiceError),
    /// Full-trust processes.
    #[error(transparent)]
    FullTrust(#[from] FullTrustError),
    /// Protocol activation.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// Publisher cache folders and file tokens.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Named objects and pipes.
    #[error(transparent)]
    NamedObjects(#[from] NamedObjectError),
    /// The registry.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// COM.
    #[error(transparent)]
    Com(#[from] ComError),
    /// Inside the broker.
    #[error(transparent)]
    Internal(#[from] InternalError),
    /// Another broker already serves this runtime directory or home.
    #[error("another broker already runs for {0}")]
    AlreadyRunning(String),
}

impl From<rusqlite::Error> for BrokerError {
    fn from(e: rusqlite::Error) -> Self {
        BrokerError::Internal(InternalError::Store(e))
    }
}

impl BrokerError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BrokerError {
        BrokerError::Internal(InternalError::io(what, source))
    }

    /// The reply a client gets.
    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply { kind: self.kind(), code: self.code(), message: self.to_string() }
    }
}

impl Coded for BrokerError {
    fn kind(&self) -> ErrorKind {
        match self {
            BrokerError::BadRequest(_) => ErrorKind::BadRequest,
            BrokerError::Unsupported(_) => ErrorKind::Unsupported,
            BrokerError::Quota(_) => ErrorKind::QuotaExceeded,
            BrokerError::Denied(d) => d.kind(),
            BrokerError::Packages(e) => e.kind(),
            BrokerError::Launch(e) => e.kind(),
            BrokerError::AppService(e) => e.kind(),
            BrokerError::FullTrust(e) => e.kind(),
            BrokerError::Protocol(e) => e.kind(),
            BrokerError::Storage(e) => e.kind(),
            BrokerError::NamedObjects(e) => e.kind(),
            BrokerError::Registry(e) => e.kind(),
            BrokerError::Com(e) => e.kind(),
            BrokerError::Internal(_) | BrokerError::AlreadyRunning(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            BrokerError::BadRequest(_) => WindowsCode::Win32(Win32Error::InvalidParameter.value()),
            BrokerError::Quota(_) => WindowsCode::Win32(Win32Error::NotEnoughQuota.value()),
            BrokerError::Unsupported(_)
            | BrokerError::Internal(_)
            | BrokerError::AlreadyRunning(_) => WindowsCode::None,
            BrokerError::Denied(d) => d.code(),
            BrokerError::Packages(e) => e.code(),
            BrokerError::Launch(e) => e.code(),
            BrokerError::AppService(e) => e.code(),
            BrokerError::FullTrust(e) => e.code(),
            BrokerError::Protocol(e) => e.code(),
            BrokerError::Storage(e) => e.code(),
            BrokerError::NamedObjects(e) => e.code(),
            BrokerError::Registry(e) => e.code(),
            BrokerError::Com(e) => e.code(),
        }
    }
}

/// Result with [`BrokerError`].
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
