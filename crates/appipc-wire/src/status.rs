//! Windows status values and error codes, with their exact numbers, and the error a broker
//! reply carries.
//!
//! Every Windows enumeration appipc reproduces is declared here with its Windows numeric value,
//! which is also its value on the wire (a bare CBOR unsigned integer), so test suites and
//! clients in other languages can assert on numbers.

use minicbor::{Decode, Encode};

/// Declares a C-like enum whose discriminants are Windows' numeric values.
macro_rules! windows_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
        #[cbor(index_only)]
        #[repr(u32)]
        pub enum $name {
            $($(#[$vm])* #[n($value)] $variant = $value,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The Windows numeric value.
            pub fn value(self) -> u32 {
                self as u32
            }

            /// The variant with this Windows numeric value.
            pub fn from_value(v: u32) -> Option<$name> {
                match v {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The Windows name of the value.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} ({})", self.name(), self.value())
            }
        }
    };
}

windows_enum!(
    /// `AppServiceConnectionStatus`: the result of `OpenAsync`.
    AppServiceConnectionStatus {
        /// The connection is open.
        Success = 0,
        /// No package with that family name is installed.
        AppNotInstalled = 1,
        /// The package is installed but cannot be used now (being deployed, or its service
        /// host failed to start).
        AppUnavailable = 2,
        /// The package does not declare that app service.
        AppServiceUnavailable = 3,
        /// Some other failure.
        Unknown = 4,
        /// (Remote) the device is unreachable.
        RemoteSystemUnavailable = 5,
        /// (Remote) the service does not support remote systems.
        RemoteSystemNotSupportedByApp = 6,
        /// The caller is not authorized to connect.
        NotAuthorized = 7,
        /// Account authentication failed.
        AuthenticationError = 8,
        /// No network.
        NetworkNotAvailable = 9,
        /// Blocked by policy.
        DisabledByPolicy = 10,
        /// A web service the connection depends on is unavailable.
        WebServiceUnavailable = 11,
    }
);

windows_enum!(
    /// `AppServiceResponseStatus`: the result of `SendMessageAsync` / `SendResponseAsync`.
    AppServiceResponseStatus {
        /// Delivered and handled.
        Success = 0,
        /// The other side could not receive or handle it.
        Failure = 1,
        /// The service exited for lack of resources.
        ResourceLimitsExceeded = 2,
        /// Some other failure.
        Unknown = 3,
        /// (Remote) the device is unreachable.
        RemoteSystemUnavailable = 4,
        /// The message is larger than the service accepts.
        MessageSizeTooLarge = 5,
        /// The app failed to start.
        AppUnavailable = 6,
        /// Account authentication failed.
        AuthenticationError = 7,
        /// No network.
        NetworkNotAvailable = 8,
        /// Blocked by policy.
        DisabledByPolicy = 9,
        /// A web service is unavailable.
        WebServiceUnavailable = 10,
    }
);

windows_enum!(
    /// `AppServiceClosedStatus`: why `ServiceClosed` fired.
    AppServiceClosedStatus {
        /// Closed gracefully.
        Completed = 0,
        /// Closed by the other side or by the system.
        Canceled = 1,
        /// Closed for lack of resources.
        ResourceLimitsExceeded = 2,
        /// Closed for an unknown reason (the other side vanished).
        Unknown = 3,
    }
);

windows_enum!(
    /// `StatelessAppServiceResponseStatus`: the result of `SendStatelessMessageAsync`.
    StatelessAppServiceResponseStatus {
        /// Delivered and handled.
        Success = 0,
        /// Not installed.
        AppNotInstalled = 1,
        /// Installed but unusable now.
        AppUnavailable = 2,
        /// No such service.
        AppServiceUnavailable = 3,
        /// (Remote) unreachable.
        RemoteSystemUnavailable = 4,
        /// (Remote) not supported.
        RemoteSystemNotSupportedByApp = 5,
        /// Not authorized.
        NotAuthorized = 6,
        /// Resources exhausted.
        ResourceLimitsExceeded = 7,
        /// Message too large.
        MessageSizeTooLarge = 8,
        /// The other side failed.
        Failure = 9,
        /// Other failure.
        Unknown = 10,
        /// Authentication failed.
        AuthenticationError = 11,
        /// No network.
        NetworkNotAvailable = 12,
        /// Blocked by policy.
        DisabledByPolicy = 13,
        /// A web service is unavailable.
        WebServiceUnavailable = 14,
    }
);

windows_enum!(
    /// `BackgroundTaskCancellationReason`: why a provider host is being stopped.
    BackgroundTaskCancellationReason {
        /// Canceled by the application or for an unspecified reason.
        Abort = 0,
        /// The app is terminating.
        Terminating = 1,
        /// The user is logging off.
        LoggingOff = 2,
        /// The package is being updated.
        ServicingUpdate = 3,
        /// The task was active but doing no work (idle timeout).
        IdleTask = 4,
        /// The package is being uninstalled.
        Uninstall = 5,
        /// A condition of the task no longer holds.
        ConditionLoss = 6,
        /// System policy.
        SystemPolicy = 7,
        /// Quiet hours (obsolete).
        QuietHoursEntered = 8,
        /// The task ran out of time.
        ExecutionTimeExceeded = 9,
        /// Resources were revoked.
        ResourceRevocation = 10,
        /// Energy saver.
        EnergySaver = 11,
    }
);

windows_enum!(
    /// `FullTrustLaunchResult`: the result of `FullTrustProcessLauncher`'s `…WithArguments`
    /// calls (and the outcome of the others).
    FullTrustLaunchResult {
        /// The process was started.
        Success = 0,
        /// The caller may not launch it (no `runFullTrust`, or another package's executable).
        AccessDenied = 1,
        /// No such full-trust executable, application or parameter group.
        FileNotFound = 2,
        /// Something else failed.
        Unknown = 3,
    }
);

windows_enum!(
    /// `LaunchUriStatus` (`Windows.System`): the result of `LaunchUriForResultsAsync`.
    LaunchUriStatus {
        /// The application was activated (and, for results, completed or exited).
        Success = 0,
        /// The application cannot be activated: not installed, or being deployed.
        AppUnavailable = 1,
        /// The application does not handle this URI (for results: not with `return-results`).
        ProtocolUnavailable = 2,
        /// Some other failure.
        Unknown = 3,
    }
);

windows_enum!(
    /// `LaunchQuerySupportStatus` (`Windows.System`): the answer of `QueryUriSupportAsync`.
    LaunchQuerySupportStatus {
        /// An app that handles the activation is available.
        Available = 0,
        /// No app is installed that handles the activation.
        AppNotInstalled = 1,
        /// An app that handles it is installed but unavailable now (being deployed).
        AppUnavailable = 2,
        /// The app does not handle the activation.
        NotSupported = 3,
        /// Some other failure.
        Unknown = 4,
    }
);

windows_enum!(
    /// `LaunchQuerySupportType` (`Windows.System`): which activation a query is about.
    LaunchQuerySupportType {
        /// Activation by URI, no result (the default).
        Uri = 0,
        /// Activation by URI for results (`LaunchUriForResultsAsync`).
        UriForResults = 1,
    }
);

impl From<AppServiceConnectionStatus> for StatelessAppServiceResponseStatus {
    fn from(s: AppServiceConnectionStatus) -> Self {
        use AppServiceConnectionStatus as C;
        use StatelessAppServiceResponseStatus as S;
        match s {
            C::Success => S::Success,
            C::AppNotInstalled => S::AppNotInstalled,
            C::AppUnavailable => S::AppUnavailable,
            C::AppServiceUnavailable => S::AppServiceUnavailable,
            C::Unknown => S::Unknown,
            C::RemoteSystemUnavailable => S::RemoteSystemUnavailable,
            C::RemoteSystemNotSupportedByApp => S::RemoteSystemNotSupportedByApp,
            C::NotAuthorized => S::NotAuthorized,
            C::AuthenticationError => S::AuthenticationError,
            C::NetworkNotAvailable => S::NetworkNotAvailable,
            C::DisabledByPolicy => S::DisabledByPolicy,
            C::WebServiceUnavailable => S::WebServiceUnavailable,
        }
    }
}

impl From<AppServiceResponseStatus> for StatelessAppServiceResponseStatus {
    fn from(s: AppServiceResponseStatus) -> Self {
        use AppServiceResponseStatus as R;
        use StatelessAppServiceResponseStatus as S;
        match s {
            R::Success => S::Success,
            R::Failure => S::Failure,
            R::ResourceLimitsExceeded => S::ResourceLimitsExceeded,
            R::Unknown => S::Unknown,
            R::RemoteSystemUnavailable => S::RemoteSystemUnavailable,
            R::MessageSizeTooLarge => S::MessageSizeTooLarge,
            R::AppUnavailable => S::AppUnavailable,
            R::AuthenticationError => S::AuthenticationError,
            R::NetworkNotAvailable => S::NetworkNotAvailable,
            R::DisabledByPolicy => S::DisabledByPolicy,
            R::WebServiceUnavailable => S::WebServiceUnavailable,
        }
    }
}

windows_enum!(
    /// Win32 error codes (`GetLastError`) appipc's mechanisms report. Named objects, pipes and
    /// the registry fail with these, as their Windows counterparts do.
    Win32Error {
        /// `ERROR_FILE_NOT_FOUND`: no such object, pipe or key.
        FileNotFound = 2,
        /// `ERROR_ACCESS_DENIED`.
        AccessDenied = 5,
        /// `ERROR_INVALID_HANDLE`: not a handle of this session, or the name holds another
        /// object type.
        InvalidHandle = 6,
        /// `ERROR_SHARING_VIOLATION`: the file behind a mapping is in use in a way that
        /// keeps it from being opened now (its owner holds a lease on it); try again.
        SharingViolation = 32,
        /// `ERROR_INVALID_PARAMETER`.
        InvalidParameter = 87,
        /// `ERROR_SEM_TIMEOUT`: `WaitNamedPipe` timed out.
        SemTimeout = 121,
        /// `ERROR_INVALID_NAME`.
        InvalidName = 123,
        /// `ERROR_ALREADY_EXISTS` (a create returned the existing object).
        AlreadyExists = 183,
        /// `ERROR_PIPE_BUSY`: every instance is in use.
        PipeBusy = 231,
        /// `ERROR_MORE_DATA`.
        MoreData = 234,
        /// `ERROR_NO_MORE_ITEMS`.
        NoMoreItems = 259,
        /// `ERROR_NOT_OWNER`: `ReleaseMutex` by a caller that does not own the mutex.
        NotOwner = 288,
        /// `ERROR_TOO_MANY_POSTS`: a semaphore released past its maximum.
        TooManyPosts = 298,
        /// `ERROR_KEY_DELETED`: the registry key a handle refers to has been deleted.
        KeyDeleted = 1018,
        /// `ERROR_INVALID_LABEL`: a security descriptor labels an object above its creator's
        /// integrity level.
        InvalidLabel = 1299,
        /// `ERROR_INVALID_OWNER`: a security descriptor names an owner its creator may not
        /// assign.
        InvalidOwner = 1307,
        /// `ERROR_NO_SYSTEM_RESOURCES`.
        NoSystemResources = 1450,
        /// `RPC_S_INVALID_ENDPOINT_FORMAT`: an endpoint name appipc does not take.
        RpcInvalidEndpointFormat = 1706,
        /// `RPC_S_SERVER_UNAVAILABLE`: no server has registered the endpoint (or it is gone).
        RpcServerUnavailable = 1722,
        /// `RPC_S_SERVER_TOO_BUSY`: the server does not take connections now (it does not read
        /// its session with the broker).
        RpcServerTooBusy = 1723,
        /// `RPC_S_DUPLICATE_ENDPOINT`: another server has registered the endpoint.
        RpcDuplicateEndpoint = 1740,
        /// `ERROR_NOT_ENOUGH_QUOTA`: the caller holds as many handles (or instances) as it may.
        NotEnoughQuota = 1816,
    }
);

windows_enum!(
    /// `HRESULT`s appipc reports (their unsigned 32-bit value).
    HResult {
        /// `E_ACCESSDENIED`.
        AccessDenied = 0x8007_0005,
        /// `E_INVALIDARG`.
        InvalidArg = 0x8007_0057,
        /// `E_FAIL`.
        Fail = 0x8000_4005,
        /// `E_ILLEGAL_METHOD_CALL`: a call in the wrong state (a second
        /// `ReportCompleted`, or one after the operation ended).
        IllegalMethodCall = 0x8000_000E,
        /// `HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)`.
        FileNotFound = 0x8007_0002,
        /// `HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_QUOTA)`.
        NotEnoughQuota = 0x8007_0718,
        /// `ERROR_BAD_FORMAT` as an HRESULT: a package whose signature or publisher does not
        /// match.
        BadFormat = 0x8007_000B,
        /// `ERROR_INSTALL_OPEN_PACKAGE_FAILED`: the package cannot be opened or is invalid.
        InstallOpenPackageFailed = 0x8007_3CF0,
        /// `ERROR_INSTALL_PACKAGE_NOT_FOUND`: no such package is installed.
        InstallPackageNotFound = 0x8007_3CF1,
        /// `ERROR_PACKAGE_ALREADY_EXISTS`: the same version is installed with other content.
        PackageAlreadyExists = 0x8007_3CFB,
        /// `ERROR_INSTALL_RESOURCES_IN_USE`: the package is being deployed or in use.
        InstallResourcesInUse = 0x8007_3D02,
        /// `ERROR_INSTALL_PACKAGE_DOWNGRADE`: a newer version is installed.
        InstallPackageDowngrade = 0x8007_3D06,
        /// `ERROR_INSTALL_POLICY_FAILURE`: the deployment policy refuses the package (a folder
        /// install without developer mode, an unsigned package replacing a signed one).
        InstallPolicyFailure = 0x8007_3CFF,
        /// `APPX_E_MISSING_REQUIRED_FILE`: no block map, or the manifest is not where it must
        /// be (not a package file).
        AppxMissingRequiredFile = 0x8008_0203,
        /// `APPX_E_INVALID_MANIFEST`: the package's manifest is invalid.
        AppxInvalidManifest = 0x8008_0204,
        /// `APPX_E_INVALID_BLOCKMAP`: the block map is invalid, or the archive does not hold
        /// exactly its files (tampered with).
        AppxInvalidBlockMap = 0x8008_0205,
        /// `APPX_E_CORRUPT_CONTENT`: the archive cannot be read (truncated, bad headers).
        AppxCorruptContent = 0x8008_0206,
        /// `APPX_E_BLOCK_HASH_INVALID`: a file's content, size or mode differs from its block
        /// map entry.
        AppxBlockHashInvalid = 0x8008_0207,
        /// `TRUST_E_SUBJECT_NOT_TRUSTED`: the signature does not verify (the package was
        /// changed after signing).
        TrustSubjectNotTrusted = 0x800B_0004,
        /// `TRUST_E_NOSIGNATURE`: the package is unsigned.
        TrustNoSignature = 0x800B_0100,
        /// `CERT_E_UNTRUSTEDROOT`: the signing key is not trusted.
        CertUntrustedRoot = 0x800B_0109,
        /// `CRYPT_E_NOT_FOUND`: no such key in the trust store.
        CryptNotFound = 0x8009_2004,
        /// `REGDB_E_CLASSNOTREG`: no installed package declares the class.
        ClassNotRegistered = 0x8004_0154,
        /// `CO_E_CLASSSTRING`: not a ProgID of the catalog (or not a CLSID).
        ClassString = 0x8004_01F3,
        /// `CO_E_SERVER_EXEC_FAILURE`: the server did not start, or did not register the
        /// class in time.
        ServerExecFailure = 0x8008_0005,
        /// `CO_E_SERVER_STOPPING`: the server is shutting down (a client's SDK activates
        /// again; it never reaches the application).
        ServerStopping = 0x8008_0008,
        /// `CO_E_WRONG_SERVER_IDENTITY`: a process registered a class its package does not
        /// declare.
        WrongServerIdentity = 0x8000_4015,
        /// `CO_E_OBJISREG`: the class is registered in this process already.
        ObjectIsRegistered = 0x8004_01FB,
        /// `CO_E_OBJNOTREG`: no such registration in this process.
        ObjectNotRegistered = 0x8004_01FC,
        /// `E_NOINTERFACE`: the object does not serve the interface asked.
        NoInterface = 0x8000_4002,
        /// `RPC_E_DISCONNECTED`: the object's server is gone.
        RpcDisconnected = 0x8001_0108,
    }
);

/// The kind of a broker error: what a person or a script needs to know to react (the CLI's
/// exit codes follow it). The Windows code of the failure, when it has one, is in
/// [`ErrorReply::code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
#[cbor(index_only)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request was malformed or its arguments invalid.
    #[n(1)]
    BadRequest,
    /// The caller may not do this; `appipc why` shows the rule.
    #[n(2)]
    AccessDenied,
    /// No such package, application, object or process.
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
    /// A quota is exhausted (tokens, handles, …).
    #[n(12)]
    QuotaExceeded,
    /// The caller's package does not declare what it asked for.
    #[n(13)]
    NotDeclared,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::BadRequest,
        ErrorKind::AccessDenied,
        ErrorKind::NotFound,
        ErrorKind::InvalidPackage,
        ErrorKind::Downgrade,
        ErrorKind::Conflict,
        ErrorKind::LaunchFailed,
        ErrorKind::Internal,
        ErrorKind::Unsupported,
        ErrorKind::Busy,
        ErrorKind::TokenInvalid,
        ErrorKind::QuotaExceeded,
        ErrorKind::NotDeclared,
    ];

    /// The wire number.
    pub fn value(self) -> u32 {
        match self {
            ErrorKind::BadRequest => 1,
            ErrorKind::AccessDenied => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::InvalidPackage => 4,
            ErrorKind::Downgrade => 5,
            ErrorKind::Conflict => 6,
            ErrorKind::LaunchFailed => 7,
            ErrorKind::Internal => 8,
            ErrorKind::Unsupported => 9,
            ErrorKind::Busy => 10,
            ErrorKind::TokenInvalid => 11,
            ErrorKind::QuotaExceeded => 12,
            ErrorKind::NotDeclared => 13,
        }
    }

    /// The name, as in the docs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "BadRequest",
            ErrorKind::AccessDenied => "AccessDenied",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::InvalidPackage => "InvalidPackage",
            ErrorKind::Downgrade => "Downgrade",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::LaunchFailed => "LaunchFailed",
            ErrorKind::Internal => "Internal",
            ErrorKind::Unsupported => "Unsupported",
            ErrorKind::Busy => "Busy",
            ErrorKind::TokenInvalid => "TokenInvalid",
            ErrorKind::QuotaExceeded => "QuotaExceeded",
            ErrorKind::NotDeclared => "NotDeclared",
        }
    }
}

/// The Windows code a failure maps to. Which enumeration a `Status` belongs to is fixed by the
/// request (documented with each request in `docs/wire.md`): `AppServiceConnectionStatus` for
/// `app_service.Open`, `FullTrustLaunchResult` for `full_trust.Launch`, and so on.
///
/// On the wire: `[0]` none, `[1, code]` a Win32 error code, `[2, code]` an `HRESULT`, `[3,
/// value]` a status value of the request's enumeration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum WindowsCode {
    /// No Windows code (a failure of appipc's own, such as a malformed request).
    #[default]
    None,
    /// A Win32 error code (`GetLastError`).
    Win32(u32),
    /// An `HRESULT`.
    HResult(u32),
    /// A value of the request's status enumeration.
    Status(u32),
}

impl WindowsCode {
    fn parts(self) -> (u32, Option<u32>) {
        match self {
            WindowsCode::None => (0, None),
            WindowsCode::Win32(c) => (1, Some(c)),
            WindowsCode::HResult(c) => (2, Some(c)),
            WindowsCode::Status(c) => (3, Some(c)),
        }
    }
}

impl From<Win32Error> for WindowsCode {
    fn from(e: Win32Error) -> Self {
        WindowsCode::Win32(e.value())
    }
}

impl From<HResult> for WindowsCode {
    fn from(e: HResult) -> Self {
        WindowsCode::HResult(e.value())
    }
}

impl std::fmt::Display for WindowsCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowsCode::None => f.write_str("no Windows code"),
            WindowsCode::Win32(c) => match Win32Error::from_value(*c) {
                Some(e) => write!(f, "error {c} ({})", e.name()),
                None => write!(f, "error {c}"),
            },
            WindowsCode::HResult(c) => write!(f, "HRESULT {c:#010x}"),
            WindowsCode::Status(c) => write!(f, "status {c}"),
        }
    }
}

impl<C> Encode<C> for WindowsCode {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut minicbor::Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        match self.parts() {
            (d, None) => e.array(1)?.u32(d)?.ok(),
            (d, Some(v)) => e.array(2)?.u32(d)?.u32(v)?.ok(),
        }
    }
}

impl<'b, C> Decode<'b, C> for WindowsCode {
    fn decode(d: &mut minicbor::Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let n = d.array()?;
        let domain = d.u32()?;
        let code = match (domain, n) {
            (0, Some(1)) => WindowsCode::None,
            (1, Some(2)) => WindowsCode::Win32(d.u32()?),
            (2, Some(2)) => WindowsCode::HResult(d.u32()?),
            (3, Some(2)) => WindowsCode::Status(d.u32()?),
            _ => return Err(minicbor::decode::Error::message("bad Windows code")),
        };
        Ok(code)
    }
}

/// What went wrong, for a person and for a program.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ErrorReply {
    /// The kind of failure.
    #[n(0)]
    pub kind: ErrorKind,
    /// The Windows code it maps to.
    #[n(1)]
    pub code: WindowsCode,
    /// What was asked, what was refused and why.
    #[n(2)]
    pub message: String,
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_values_are_windows() {
        assert_eq!(AppServiceConnectionStatus::NotAuthorized.value(), 7);
        assert_eq!(AppServiceConnectionStatus::DisabledByPolicy.value(), 10);
        assert_eq!(AppServiceConnectionStatus::NetworkNotAvailable.value(), 9);
        assert_eq!(AppServiceResponseStatus::MessageSizeTooLarge.value(), 5);
        assert_eq!(AppServiceResponseStatus::AppUnavailable.value(), 6);
        assert_eq!(AppServiceClosedStatus::Canceled.value(), 1);
        assert_eq!(StatelessAppServiceResponseStatus::Failure.value(), 9);
        assert_eq!(BackgroundTaskCancellationReason::IdleTask.value(), 4);
        assert_eq!(BackgroundTaskCancellationReason::EnergySaver.value(), 11);
        // Windows.System: LaunchUriStatus, LaunchQuerySupportStatus, LaunchQuerySupportType.
        let launch: Vec<u32> = LaunchUriStatus::ALL.iter().map(|s| s.value()).collect();
        assert_eq!(launch, [0, 1, 2, 3]);
        assert_eq!(LaunchUriStatus::ProtocolUnavailable.value(), 2);
        assert_eq!(LaunchQuerySupportStatus::NotSupported.value(), 3);
        assert_eq!(LaunchQuerySupportStatus::Unknown.value(), 4);
        assert_eq!(LaunchQuerySupportType::UriForResults.value(), 1);
        // On the wire the value is the Windows number itself.
        let bytes = minicbor::to_vec(AppServiceConnectionStatus::WebServiceUnavailable).unwrap();
        assert_eq!(bytes, [0x0b]);
        assert_eq!(
            AppServiceResponseStatus::from_value(5),
            Some(AppServiceResponseStatus::MessageSizeTooLarge)
        );
        assert_eq!(AppServiceResponseStatus::from_value(11), None);
    }

    #[test]
    fn windows_codes_round_trip() {
        for c in [
            WindowsCode::None,
            WindowsCode::Win32(5),
            WindowsCode::HResult(0x8007_0057),
            WindowsCode::Status(7),
        ] {
            let bytes = minicbor::to_vec(c).unwrap();
            assert_eq!(minicbor::decode::<WindowsCode>(&bytes).unwrap(), c);
        }
        assert_eq!(minicbor::to_vec(WindowsCode::Win32(5)).unwrap(), [0x82, 0x01, 0x05]);
        assert!(minicbor::decode::<WindowsCode>(&[0x82, 0x07, 0x05]).is_err());
        assert_eq!(Win32Error::NotEnoughQuota.value(), 1816);
        assert_eq!(HResult::InvalidArg.value(), 0x8007_0057);
        for k in ErrorKind::ALL {
            let bytes = minicbor::to_vec(k).unwrap();
            assert_eq!(minicbor::decode::<u32>(&bytes).unwrap(), k.value(), "{}", k.name());
        }
    }
}
