//! The broker's errors: [`BrokerError`] nests one error type per mechanism; each maps to its
//! [`ErrorKind`] and to the Windows code its counterpart reports, which the reply carries.

use appipc_model::policy::Decision;
use appipc_wire::status::{ErrorKind, ErrorReply, Win32Error, WindowsCode};

pub use crate::mech::app_service::AppServiceError;
pub use crate::mech::full_trust::FullTrustError;
pub use crate::mech::launch::LaunchError;
pub use crate::mech::named_objects::NamedObjectError;
pub use crate::mech::packages::PackagesError;
pub use crate::mech::storage::StorageError;

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

impl InternalError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> InternalError {
        InternalError::Io { what: what.into(), source }
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
    /// Publisher cache folders and file tokens.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Named objects and pipes.
    #[error(transparent)]
    NamedObjects(#[from] NamedObjectError),
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
            BrokerError::Denied(d) => d.kind(),
            BrokerError::Packages(e) => e.kind(),
            BrokerError::Launch(e) => e.kind(),
            BrokerError::AppService(e) => e.kind(),
            BrokerError::FullTrust(e) => e.kind(),
            BrokerError::Storage(e) => e.kind(),
            BrokerError::NamedObjects(e) => e.kind(),
            BrokerError::Internal(_) | BrokerError::AlreadyRunning(_) => ErrorKind::Internal,
        }
    }

    fn code(&self) -> WindowsCode {
        match self {
            BrokerError::BadRequest(_) => WindowsCode::Win32(Win32Error::InvalidParameter.value()),
            BrokerError::Unsupported(_)
            | BrokerError::Internal(_)
            | BrokerError::AlreadyRunning(_) => WindowsCode::None,
            BrokerError::Denied(d) => d.code(),
            BrokerError::Packages(e) => e.code(),
            BrokerError::Launch(e) => e.code(),
            BrokerError::AppService(e) => e.code(),
            BrokerError::FullTrust(e) => e.code(),
            BrokerError::Storage(e) => e.code(),
            BrokerError::NamedObjects(e) => e.code(),
        }
    }
}

/// Result with [`BrokerError`].
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
