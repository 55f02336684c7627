//! The SDK's error type.

use appipc_wire::status::{ErrorKind, ErrorReply, WindowsCode};

/// Everything an SDK call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No broker answers on the public socket.
    #[error("cannot reach the appipc broker at {path}: {source}")]
    Connect {
        /// The socket path tried.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `APPIPC_SESSION_FD` is set but does not name a usable session socket.
    #[error("APPIPC_SESSION_FD={value}: {reason}")]
    BadSessionFd {
        /// The variable's value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broker refused or failed the request.
    #[error("{message}")]
    Broker {
        /// The kind of failure.
        kind: ErrorKind,
        /// The Windows code it maps to (which enumeration a `Status` is depends on the
        /// request; see `docs/wire.md`).
        code: WindowsCode,
        /// The broker's explanation.
        message: String,
    },
    /// The broker closed the session (it stopped, or it judged a message of ours malformed).
    #[error("the broker closed the session")]
    Disconnected,
    /// The broker closed the session and said why (a limit reached, idle, not reading).
    #[error("the broker closed the session: {reason}")]
    Closed {
        /// Why.
        reason: String,
    },
    /// The broker that read the request died before it answered; another broker serves the
    /// session now. The request may or may not have been carried out: retry it (an install of
    /// the same package, for instance, answers `AlreadyInstalled` if it was).
    #[error(
        "the broker restarted while it handled {request}; it may or may not have been carried \
         out: retry"
    )]
    BrokerRestarted {
        /// The request.
        request: &'static str,
    },
    /// The broker did not answer in time.
    #[error(
        "the broker did not answer {request} within {} ms (APPIPC_TIMEOUT_MS sets how long \
         requests wait)",
        .after.as_millis()
    )]
    Timeout {
        /// The request.
        request: &'static str,
        /// How long it waited.
        after: std::time::Duration,
    },
    /// The broker sent something this SDK does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Sending or receiving failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A named-object call failed with a Windows error code (2 not found, 5 access denied,
    /// 6 wrong type, 123 invalid name).
    #[error("{message} (error {code})")]
    NamedObject {
        /// The Win32 error code.
        code: u32,
        /// Why.
        message: String,
    },
    /// A registry call failed with a Win32 error code (2 not found, 5 access denied, 6 not a
    /// handle of this session, 87 invalid parameter, 234 more data, 259 no more items, 1018
    /// key deleted, 1816 quota).
    #[error("{message} (error {code})")]
    Registry {
        /// The Win32 error code.
        code: u32,
        /// Why.
        message: String,
    },
    /// An RPC call failed with a Windows code (`RPC_S_…`): 5 access denied, 1706 bad endpoint
    /// name, 1722 server unavailable, 1723 server too busy, 1740 duplicate endpoint, 1816
    /// quota.
    #[error("{message} (error {code})")]
    Rpc {
        /// The Win32 / `RPC_S_…` code.
        code: u32,
        /// Why.
        message: String,
    },
    /// A COM call failed with an `HRESULT`: `E_ACCESSDENIED` 0x80070005,
    /// `REGDB_E_CLASSNOTREG` 0x80040154, `CO_E_CLASSSTRING` 0x800401F3,
    /// `CO_E_SERVER_EXEC_FAILURE` 0x80080005, `E_NOINTERFACE` 0x80004002,
    /// `RPC_E_DISCONNECTED` 0x80010108, 0x800706BE (the server died during the call), a
    /// method's own failure (see [`crate::com`]).
    #[error("{message} (HRESULT {hresult:#010x})")]
    Com {
        /// The `HRESULT` (its unsigned 32-bit value).
        hresult: u32,
        /// Why.
        message: String,
    },
    /// The call needs package identity and this process has none (Windows:
    /// `Package.Current` throws for unpackaged processes).
    #[error("this process has no package identity")]
    NoPackageIdentity,
}

impl Error {
    /// The kind of the broker's error, if the broker refused the request.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Error::Broker { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// The Windows code of the broker's error (`WindowsCode::None` if there is none).
    pub fn windows_code(&self) -> WindowsCode {
        match self {
            Error::Broker { code, .. } => *code,
            Error::NamedObject { code, .. }
            | Error::Registry { code, .. }
            | Error::Rpc { code, .. } => WindowsCode::Win32(*code),
            Error::Com { hresult, .. } => WindowsCode::HResult(*hresult),
            _ => WindowsCode::None,
        }
    }

    /// Whether trying again may succeed: the broker restarted under the request, or is
    /// starting or stopping.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::BrokerRestarted { .. })
            || matches!(self, Error::Connect { source, .. }
                if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused))
    }

    /// The error a broker reply carries.
    pub(crate) fn from_reply(e: ErrorReply) -> Error {
        Error::Broker { kind: e.kind, code: e.code, message: e.message }
    }

    /// A broker error with a Win32 code becomes [`Error::Registry`].
    pub(crate) fn into_registry(self) -> Error {
        match self {
            Error::Broker { code: WindowsCode::Win32(code), message, .. } => {
                Error::Registry { code, message: without_code(message, code) }
            }
            other => other,
        }
    }

    /// A broker error with a Win32 code becomes [`Error::Rpc`].
    pub(crate) fn into_rpc(self) -> Error {
        match self {
            Error::Broker { code: WindowsCode::Win32(code), message, .. } => {
                Error::Rpc { code, message: without_code(message, code) }
            }
            other => other,
        }
    }

    /// The `HRESULT` of the failure: a COM failure's own, a Win32 code as
    /// `HRESULT_FROM_WIN32`, `None` when it has no Windows code.
    pub fn hresult(&self) -> Option<u32> {
        match self.windows_code() {
            WindowsCode::HResult(h) => Some(h),
            WindowsCode::Win32(0) => Some(0),
            WindowsCode::Win32(c) if c >= 0x8000_0000 => Some(c),
            WindowsCode::Win32(c) => Some(0x8007_0000 | (c & 0xFFFF)),
            _ => None,
        }
    }

    /// A broker error with an `HRESULT` becomes [`Error::Com`].
    pub(crate) fn into_com(self) -> Error {
        match self {
            Error::Broker { code: WindowsCode::HResult(hresult), message, .. } => Error::Com {
                hresult,
                message: message
                    .strip_suffix(&format!(" (HRESULT {hresult:#010x})"))
                    .map(str::to_owned)
                    .unwrap_or(message),
            },
            other => other,
        }
    }

    /// The Win32 code of a registry (or named-object) failure.
    pub fn win32_code(&self) -> Option<u32> {
        match self.windows_code() {
            WindowsCode::Win32(c) => Some(c),
            _ => None,
        }
    }

    /// A broker error with a Win32 code becomes [`Error::NamedObject`] (named objects and
    /// pipes report their Windows codes that way).
    pub(crate) fn into_win32(self) -> Error {
        match self {
            Error::Broker { code: WindowsCode::Win32(code), message, .. } => {
                Error::NamedObject { code, message: without_code(message, code) }
            }
            other => other,
        }
    }
}

/// The broker's message without the ` (error N)` its Win32 failures end with: the SDK's error
/// says the code itself.
fn without_code(message: String, code: u32) -> String {
    match message.strip_suffix(&format!(" (error {code})")) {
        Some(m) => m.to_owned(),
        None => message,
    }
}

/// Result with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The broker's message for a Win32 failure ends with its code; the SDK's error says the
    /// code once.
    #[test]
    fn a_win32_failure_names_its_code_once() {
        let broker = || Error::Broker {
            kind: ErrorKind::NotFound,
            code: WindowsCode::Win32(1722),
            message: "no server has registered the RPC endpoint \"x\" (error 1722)".into(),
        };
        for e in [broker().into_rpc(), broker().into_registry(), broker().into_win32()] {
            assert_eq!(
                e.to_string(),
                "no server has registered the RPC endpoint \"x\" (error 1722)"
            );
            assert_eq!(e.win32_code(), Some(1722));
        }
        // A message without the code (a policy refusal) keeps all it says.
        let denied = Error::Broker {
            kind: ErrorKind::AccessDenied,
            code: WindowsCode::Win32(5),
            message: "no entry grants 0x1 (error 17)".into(),
        };
        assert_eq!(denied.into_rpc().to_string(), "no entry grants 0x1 (error 17) (error 5)");
    }
}
