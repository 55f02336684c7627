//! `Windows.System.Launcher`: launching another application by URI (protocol activation), with
//! data, and for results (`LaunchUriForResultsAsync`).
//!
//! ```no_run
//! # async fn demo(session: &appipc::Session) -> appipc::Result<()> {
//! use appipc::launcher::{LaunchUriStatus, Launcher, LauncherOptions};
//! use appipc::ValueSet;
//! let options = LauncherOptions::for_package("Contoso.Picker_cvnpggrrsm18p");
//! let mut input = ValueSet::new();
//! input.insert("what", "photo");
//! let r = Launcher::launch_uri_for_results(session, "contoso-pick:photo", &options, Some(input))
//!     .await?;
//! match (r.status, r.result) {
//!     (LaunchUriStatus::Success, Some(v)) => println!("picked {:?}", v.get("token")),
//!     (LaunchUriStatus::Success, None) => println!("the picker closed without an answer"),
//!     (status, _) => println!("could not launch: {status}"),
//! }
//! # Ok(()) }
//! ```
//!
//! The target's side is [`crate::activation`]: [`crate::AppInstance::activated`] gives it a
//! [`ProtocolForResultsActivatedEventArgs`](crate::activation::ProtocolForResultsActivatedEventArgs)
//! whose `operation.report_completed(…)` answers the caller, once. Everything the target learns
//! about the caller (its package family name, "" for an unpackaged caller) is the broker's
//! attestation. Larger content than the 100 KiB a `ValueSet` may carry each way travels as
//! file tokens ([`crate::SharedStorageAccessManager`]) inside it.

use std::time::Duration;

use appipc_wire::protocol::launcher::{FindUriSchemeHandlers, LaunchUri, QueryUriSupport};
pub use appipc_wire::protocol::launcher::{MAX_PROTOCOL_DATA, UriSchemeHandler};
use appipc_wire::status::WindowsCode;
pub use appipc_wire::status::{LaunchQuerySupportStatus, LaunchQuerySupportType, LaunchUriStatus};

use crate::ValueSet;
use crate::error::{Error, Result};
use crate::session::Session;

/// How long a launch for results may wait for its target (the user may take their time): a
/// year, that is, until the target reports or exits or the session ends.
const FOR_RESULTS: Duration = Duration::from_secs(365 * 24 * 3600);

/// `LauncherOptions`: what a launch asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LauncherOptions {
    /// `TargetApplicationPackageFamilyName`: the package that must handle the URI. Required
    /// for a launch for results and for a launch with data (`E_INVALIDARG` otherwise).
    pub target_application_package_family_name: Option<String>,
}

impl LauncherOptions {
    /// Options naming the target package.
    pub fn for_package(family_name: impl Into<String>) -> LauncherOptions {
        LauncherOptions { target_application_package_family_name: Some(family_name.into()) }
    }
}

/// `LaunchUriResult`.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchUriResult {
    /// `Status`.
    pub status: LaunchUriStatus,
    /// `Result`: what the target reported; `None` if it exited without reporting.
    pub result: Option<ValueSet>,
    /// Why the launch did not succeed, in the broker's words (appipc extension).
    pub extended_error: Option<String>,
    /// The process that received the activation (appipc extension).
    pub target_pid: Option<u32>,
}

/// `Launcher` (static methods, taking the session).
#[derive(Debug)]
pub struct Launcher;

async fn launch(
    session: &Session,
    uri: &str,
    options: &LauncherOptions,
    data: Option<ValueSet>,
    for_results: bool,
) -> Result<LaunchUriResult> {
    let request = LaunchUri {
        uri: uri.to_owned(),
        target_package_family_name: options.target_application_package_family_name.clone(),
        data,
        for_results,
    };
    let wait = if for_results { FOR_RESULTS } else { crate::management::START };
    match session.call_within(request, &[], wait).await.map(|r| r.0) {
        Ok(o) => Ok(LaunchUriResult {
            status: o.status,
            result: o.result,
            extended_error: None,
            target_pid: Some(o.target_pid),
        }),
        Err(Error::Broker { code: WindowsCode::Status(v), message, .. }) => Ok(LaunchUriResult {
            status: LaunchUriStatus::from_value(v).unwrap_or(LaunchUriStatus::Unknown),
            result: None,
            extended_error: Some(message),
            target_pid: None,
        }),
        Err(e) => Err(e),
    }
}

impl Launcher {
    /// `LaunchUriAsync(Uri, LauncherOptions)`: `true` if an application was activated. A URI
    /// the broker refuses (control characters, over 2048 bytes) is an error (`E_INVALIDARG`).
    pub async fn launch_uri(
        session: &Session,
        uri: &str,
        options: &LauncherOptions,
    ) -> Result<bool> {
        Ok(launch(session, uri, options, None, false).await?.status == LaunchUriStatus::Success)
    }

    /// `LaunchUriAsync(Uri, LauncherOptions, ValueSet)`: with data, which needs
    /// `target_application_package_family_name` (`E_INVALIDARG` otherwise).
    pub async fn launch_uri_with_data(
        session: &Session,
        uri: &str,
        options: &LauncherOptions,
        data: ValueSet,
    ) -> Result<bool> {
        Ok(launch(session, uri, options, Some(data), false).await?.status
            == LaunchUriStatus::Success)
    }

    /// [`Launcher::launch_uri`] with the full outcome (the status, why, the target's pid).
    pub async fn launch_uri_detailed(
        session: &Session,
        uri: &str,
        options: &LauncherOptions,
        data: Option<ValueSet>,
    ) -> Result<LaunchUriResult> {
        launch(session, uri, options, data, false).await
    }

    /// `LaunchUriForResultsAsync(Uri, LauncherOptions[, ValueSet])`: completes when the target
    /// reports (`Success` with its result) or exits without reporting (`Success`, no result);
    /// `AppUnavailable` (not installed, being deployed), `ProtocolUnavailable` (no such
    /// protocol, or `return-results = "none"`). Without
    /// `target_application_package_family_name`, or with a `ValueSet` over 100 KiB, it fails
    /// with `E_INVALIDARG` and nothing is launched.
    pub async fn launch_uri_for_results(
        session: &Session,
        uri: &str,
        options: &LauncherOptions,
        data: Option<ValueSet>,
    ) -> Result<LaunchUriResult> {
        launch(session, uri, options, data, true).await
    }

    /// `QueryUriSupportAsync(Uri, LaunchQuerySupportType[, String])`.
    pub async fn query_uri_support(
        session: &Session,
        uri: &str,
        kind: LaunchQuerySupportType,
        package_family_name: Option<&str>,
    ) -> Result<LaunchQuerySupportStatus> {
        session
            .call(QueryUriSupport {
                uri: uri.to_owned(),
                kind,
                package_family_name: package_family_name.map(str::to_owned),
            })
            .await
    }

    /// `FindUriSchemeHandlersAsync(String[, LaunchQuerySupportType])`.
    pub async fn find_uri_scheme_handlers(
        session: &Session,
        scheme: &str,
        kind: LaunchQuerySupportType,
    ) -> Result<Vec<UriSchemeHandler>> {
        session.call(FindUriSchemeHandlers { scheme: scheme.to_owned(), kind }).await
    }
}
