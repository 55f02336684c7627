//! The broker's errors, each mapped to a protocol [`ErrorCode`].

use appipc_wire::protocol::{ErrorCode, ErrorReply};

/// Everything that can go wrong in the broker. Each message says what was asked, what was
/// refused and why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// A malformed request or argument.
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not do this.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// The package is invalid.
    #[error("invalid package: {0}")]
    InvalidPackage(String),
    /// A newer version is installed.
    #[error("{0}")]
    Downgrade(String),
    /// Same version, different content.
    #[error("{0}")]
    Conflict(String),
    /// A process could not be started.
    #[error("launch failed: {0}")]
    LaunchFailed(String),
    /// Package is mid-deployment.
    #[error("{0}")]
    Busy(String),
    /// A file token that cannot be redeemed.
    #[error("{0}")]
    TokenInvalid(String),
    /// Too many outstanding tokens.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A publisher cache folder the caller did not declare.
    #[error("{0}")]
    NotDeclared(String),
    /// Another broker already serves this runtime directory or home.
    #[error("another broker already runs for {0}")]
    AlreadyRunning(String),
    /// The state database failed.
    #[error("state database: {0}")]
    Store(#[from] rusqlite::Error),
    /// A file-system step failed.
    #[error("{what}: {source}")]
    Io {
        /// What the broker was doing.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl BrokerError {
    /// An I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> BrokerError {
        BrokerError::Io { what: what.into(), source }
    }

    /// The protocol code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            BrokerError::BadRequest(_) => ErrorCode::BadRequest,
            BrokerError::AccessDenied(_) => ErrorCode::AccessDenied,
            BrokerError::NotFound(_) => ErrorCode::NotFound,
            BrokerError::InvalidPackage(_) => ErrorCode::InvalidPackage,
            BrokerError::Downgrade(_) => ErrorCode::Downgrade,
            BrokerError::Conflict(_) => ErrorCode::Conflict,
            BrokerError::LaunchFailed(_) => ErrorCode::LaunchFailed,
            BrokerError::Busy(_) => ErrorCode::Busy,
            BrokerError::TokenInvalid(_) => ErrorCode::TokenInvalid,
            BrokerError::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
            BrokerError::NotDeclared(_) => ErrorCode::NotDeclared,
            BrokerError::AlreadyRunning(_) | BrokerError::Store(_) | BrokerError::Io { .. } => {
                ErrorCode::Internal
            }
        }
    }

    /// The reply a client gets.
    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply { code: self.code(), message: self.to_string() }
    }
}

/// Result with [`BrokerError`].
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
