//! `Windows.ApplicationModel.FullTrustProcessLauncher`: a packaged app with `runFullTrust`
//! starts the full-trust process its package declares. The process runs outside the app
//! container, with the package's identity; the usual pattern is that it talks back to the app
//! through the app's own app service.

use appipc_wire::protocol::full_trust::LaunchFullTrustProcess;
use appipc_wire::status::WindowsCode;

pub use appipc_wire::status::FullTrustLaunchResult;

use crate::error::{Error, Result};
use crate::session::Session;

/// `FullTrustProcessLaunchResult`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullTrustProcessLaunchResult {
    /// `LaunchResult`.
    pub launch_result: FullTrustLaunchResult,
    /// `ExtendedError`: why, when it did not succeed.
    pub extended_error: Option<String>,
    /// The process started (appipc extension).
    pub pid: Option<u32>,
}

/// `FullTrustProcessLauncher` (static methods, taking the session).
#[derive(Debug)]
pub struct FullTrustProcessLauncher;

async fn launch(
    session: &Session,
    app_id: Option<&str>,
    parameter_group: Option<&str>,
    arguments: Option<Vec<String>>,
) -> Result<FullTrustProcessLaunchResult> {
    let request = LaunchFullTrustProcess {
        app_id: app_id.map(str::to_owned),
        parameter_group: parameter_group.map(str::to_owned),
        arguments,
    };
    match session.call_within(request, &[], crate::management::START).await.map(|r| r.0) {
        Ok(l) => Ok(FullTrustProcessLaunchResult {
            launch_result: FullTrustLaunchResult::Success,
            extended_error: None,
            pid: Some(l.pid),
        }),
        Err(Error::Broker { code: WindowsCode::Status(v), message, .. }) => {
            Ok(FullTrustProcessLaunchResult {
                launch_result: FullTrustLaunchResult::from_value(v)
                    .unwrap_or(FullTrustLaunchResult::Unknown),
                extended_error: Some(message),
                pid: None,
            })
        }
        Err(e) => Err(e),
    }
}

impl FullTrustProcessLauncher {
    /// `LaunchFullTrustProcessForCurrentAppAsync()`.
    pub async fn launch_for_current_app(session: &Session) -> Result<FullTrustProcessLaunchResult> {
        launch(session, None, None, None).await
    }

    /// `LaunchFullTrustProcessForCurrentAppAsync(parameterGroupId)`.
    pub async fn launch_for_current_app_with_parameter_group(
        session: &Session,
        parameter_group: &str,
    ) -> Result<FullTrustProcessLaunchResult> {
        launch(session, None, Some(parameter_group), None).await
    }

    /// `LaunchFullTrustProcessForAppAsync(fullTrustPackageRelativeAppId[, parameterGroupId])`.
    pub async fn launch_for_app(
        session: &Session,
        app_id: &str,
        parameter_group: Option<&str>,
    ) -> Result<FullTrustProcessLaunchResult> {
        launch(session, Some(app_id), parameter_group, None).await
    }

    /// `LaunchFullTrustProcessForCurrentAppWithArgumentsAsync`, with the arguments as a list
    /// (no command-line quoting).
    pub async fn launch_for_current_app_with_arguments(
        session: &Session,
        arguments: &[String],
    ) -> Result<FullTrustProcessLaunchResult> {
        launch(session, None, None, Some(arguments.to_vec())).await
    }

    /// `LaunchFullTrustProcessForAppWithArgumentsAsync`, with the arguments as a list.
    pub async fn launch_for_app_with_arguments(
        session: &Session,
        app_id: &str,
        arguments: &[String],
    ) -> Result<FullTrustProcessLaunchResult> {
        launch(session, Some(app_id), None, Some(arguments.to_vec())).await
    }
}
