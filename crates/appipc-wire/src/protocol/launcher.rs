//! Protocol activation (`Windows.System.Launcher`): launching an application by URI, with data,
//! and for results (`LaunchUriForResultsAsync`, the `ProtocolForResults` contract).

use minicbor::{Decode, Encode};

use crate::status::{LaunchQuerySupportStatus, LaunchQuerySupportType, LaunchUriStatus};
use crate::valueset::ValueSet;

/// The largest input or result `ValueSet` of a protocol activation, encoded (Windows: "must not
/// exceed 100 KB"; larger content travels as file tokens inside the `ValueSet`).
pub const MAX_PROTOCOL_DATA: usize = 100 * 1024;

/// `ActivationKind.Protocol`.
pub const ACTIVATION_KIND_PROTOCOL: u32 = 4;
/// `ActivationKind.ProtocolForResults`.
pub const ACTIVATION_KIND_PROTOCOL_FOR_RESULTS: u32 = 1009;

super::mechanism! {
    /// Protocol activation (`Windows.System.Launcher`). The broker resolves the URI's scheme
    /// to a package's `[[application.protocol]]`, decides (`appipc why` explains it), starts the
    /// target application (or hands the activation to its running instance that registered
    /// for activations) and, for results, holds the caller's request open until the target
    /// reports, exits, or the caller goes away.
    mechanism Launcher;
    requests {
        /// `Launcher.LaunchUriAsync` (`for_results` false) and `LaunchUriForResultsAsync`
        /// (true). On success the output's status is `Success`; a refusal's code is
        /// `Status(LaunchUriStatus)` (AppUnavailable 1, ProtocolUnavailable 2, Unknown 3) or
        /// `HResult(E_INVALIDARG)` for a launch for results, or with data, that names no target
        /// package, or a `ValueSet` over 100 KiB. A launch for results answers when the target
        /// reports (`ReportCompleted`) or exits (then `Success` without a result).
        0 LaunchUri {
            /// The URI (at most 2048 bytes; no control characters, spaces or DEL).
            0 uri: String,
            /// `LauncherOptions.TargetApplicationPackageFamilyName`.
            1 target_package_family_name: Option<String>,
            /// The input `ValueSet` (`inputData`), at most 100 KiB encoded.
            2 data: Option<ValueSet>,
            /// `LaunchUriForResultsAsync` rather than `LaunchUriAsync`.
            3 for_results: bool,
        } fds(0) -> LaunchUriOutcome, reply fds "0";
        /// `Launcher.QueryUriSupportAsync`: whether a launch of this kind would find a handler
        /// (in the named package, if one is named).
        1 QueryUriSupport {
            /// The URI.
            0 uri: String,
            /// `Uri` 0 or `UriForResults` 1.
            1 kind: LaunchQuerySupportType,
            /// The package to ask about, if any.
            2 package_family_name: Option<String>,
        } fds(0) -> LaunchQuerySupportStatus, reply fds "0";
        /// `Launcher.FindUriSchemeHandlersAsync`: the applications that handle a scheme for a
        /// launch of this kind.
        2 FindUriSchemeHandlers {
            /// The scheme (without `:`).
            0 scheme: String,
            /// `Uri` 0 or `UriForResults` 1.
            1 kind: LaunchQuerySupportType,
        } fds(0) -> Vec<UriSchemeHandler>, reply fds "0";
        /// The activation the broker started the calling process for (`Protocol` or
        /// `ProtocolForResults`), with its data and the broker-attested caller; `None` if it was
        /// not started by a protocol activation. Each process gets it once.
        3 TakeActivation {
            /// `APPIPC_ACTIVATION_ID`, as the broker set it for this process.
            0 activation_id: u64,
        } fds(0) -> Option<ProtocolActivation>, reply fds "0";
        /// The calling process receives its application's later protocol activations as
        /// `launcher.Activated` events instead of the broker starting another process (single
        /// instance; see `docs/protocol.md`). Only a packaged process of an application that
        /// declares a protocol.
        4 RegisterForActivation {} fds(0) -> (), reply fds "0";
        /// `ProtocolForResultsOperation.ReportCompleted`: the result of an operation the caller's
        /// process was activated for (at most 100 KiB encoded). Once: a second report, or one
        /// for an operation that ended (the caller went away), fails.
        5 ReportCompleted {
            /// The operation's id (from the activation).
            0 operation_id: u64,
            /// The result.
            1 data: Option<ValueSet>,
        } fds(0) -> (), reply fds "0";
    }
    events {
        /// A protocol activation for a process that registered for them
        /// (`RegisterForActivation`): its running instance gets it instead of a new process.
        0 Activated {
            /// The activation.
            0 activation: ProtocolActivation,
        } fds "0";
        /// The caller of a launch for results went away (its session closed) before the target
        /// reported: the operation is over, and reporting it fails.
        1 OperationCanceled {
            /// The operation.
            0 operation_id: u64,
        } fds "0";
    }
}

/// Answer to [`LaunchUri`].
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct LaunchUriOutcome {
    /// `LaunchUriResult.Status`.
    #[n(0)]
    pub status: LaunchUriStatus,
    /// `LaunchUriResult.Result`: the target's `ReportCompleted` data; `None` for a plain launch,
    /// and when the target exited without reporting.
    #[n(1)]
    pub result: Option<ValueSet>,
    /// The target reported (`false`: it exited without reporting, or this was a plain launch).
    #[n(2)]
    pub reported: bool,
    /// The pid of the process that received the activation.
    #[n(3)]
    pub target_pid: u32,
}

/// An application that handles a scheme (`AppInfo` in `FindUriSchemeHandlersAsync`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct UriSchemeHandler {
    /// Package family name.
    #[n(0)]
    pub package_family_name: String,
    /// The application that declares the protocol.
    #[n(1)]
    pub app_id: String,
    /// The package's display name.
    #[n(2)]
    pub display_name: String,
    /// The protocol's `return-results`: `none`, `always` or `optional`.
    #[n(3)]
    pub return_results: String,
}

/// One protocol activation, as the target receives it (`ProtocolActivatedEventArgs`,
/// `ProtocolForResultsActivatedEventArgs`); everything about the caller is the broker's.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct ProtocolActivation {
    /// `ActivationKind`: `Protocol` 4 or `ProtocolForResults` 1009.
    #[n(0)]
    pub kind: u32,
    /// `Uri`.
    #[n(1)]
    pub uri: String,
    /// `Data` (may be absent).
    #[n(2)]
    pub data: Option<ValueSet>,
    /// `CallerPackageFamilyName`: "" for an unpackaged caller.
    #[n(3)]
    pub caller_package_family_name: String,
    /// The caller's pid.
    #[n(4)]
    pub caller_pid: u32,
    /// For results: the operation to report (`ProtocolForResultsOperation`).
    #[n(5)]
    pub operation_id: Option<u64>,
}
