//! `Windows.ApplicationModel.Activation`: why this process was started.
//!
//! On Windows an app learns how it was activated from the `IActivatedEventArgs` its
//! `OnLaunched` / `OnActivated` gets (or `AppInstance.GetActivatedEventArgs()`), whose `Kind` is
//! an [`ActivationKind`]; a background activation is not an `ActivationKind` but a separate entry
//! point: `OnBackgroundActivated(BackgroundActivatedEventArgs)` for an in-process app service,
//! `IBackgroundTask.Run(IBackgroundTaskInstance)` in an out-of-process task host. The broker
//! tells a process it starts which of these it is (`APPIPC_ACTIVATION`, `APPIPC_APP_SERVICE`);
//! [`AppInstance::get_activated_event_args`] reads that into the Windows shape, so apps do not
//! parse the variables themselves.
//!
//! ```no_run
//! use appipc::{ActivatedEventArgs, AppInstance};
//! match AppInstance::get_activated_event_args() {
//!     Some(ActivatedEventArgs::Launch(_)) => println!("launched: show the window"),
//!     Some(ActivatedEventArgs::Background(b)) => println!("started for {:?}", b.app_service),
//!     Some(ActivatedEventArgs::BackgroundTask(t)) => println!("task host of {}", t.app_service),
//!     Some(other) => println!("{other:?}"),
//!     None => println!("not started by the broker (unpackaged)"),
//! }
//! ```
//!
//! The broker starts processes for these reasons only: launch (`appipc launch`,
//! `ApplicationActivationManager`), a full-trust process (`FullTrustProcessLauncher`), an
//! in-process app service's application started in the background, an out-of-process app
//! service's host. File, protocol, share-target and the other Windows kinds do not exist here.

/// The environment variable the broker sets to say why it started a process.
pub const ACTIVATION_VAR: &str = "APPIPC_ACTIVATION";

/// The environment variable naming the app service a process was started for.
pub const APP_SERVICE_VAR: &str = "APPIPC_APP_SERVICE";

/// `ActivationKind` (Windows values), for the kinds appipc produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(i32)]
pub enum ActivationKind {
    /// `Launch` (0): the user or another app launched the app.
    Launch = 0,
}

impl ActivationKind {
    /// The Windows numeric value.
    pub fn value(self) -> i32 {
        self as i32
    }
}

/// `LaunchActivatedEventArgs`: the app was launched (its arguments are the process's own,
/// `std::env::args`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaunchActivatedEventArgs {
    /// Started by `FullTrustProcessLauncher` (a packaged full-trust process; on Windows a
    /// desktop process that is simply started), rather than launched as the application.
    pub full_trust_process: bool,
}

/// `BackgroundActivatedEventArgs`: the application was started without UI to serve its
/// in-process app service (`OnBackgroundActivated`); it should register as its provider.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackgroundActivatedEventArgs {
    /// The app service it was started for.
    pub app_service: Option<String>,
}

/// The activation of an out-of-process background task host (`IBackgroundTask.Run`): the
/// process was started as the entry point of an app service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackgroundTaskActivation {
    /// The app service it hosts.
    pub app_service: String,
}

/// `IActivatedEventArgs`: how this process was activated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActivatedEventArgs {
    /// [`ActivationKind::Launch`].
    Launch(LaunchActivatedEventArgs),
    /// Started in the background for an in-process app service (`OnBackgroundActivated`; no
    /// `ActivationKind` on Windows either).
    Background(BackgroundActivatedEventArgs),
    /// Started as an out-of-process app service host (`IBackgroundTask.Run`).
    BackgroundTask(BackgroundTaskActivation),
}

impl ActivatedEventArgs {
    /// `Kind`; `None` for the background activations, which Windows does not give a kind.
    pub fn kind(&self) -> Option<ActivationKind> {
        match self {
            ActivatedEventArgs::Launch(_) => Some(ActivationKind::Launch),
            ActivatedEventArgs::Background(_) | ActivatedEventArgs::BackgroundTask(_) => None,
        }
    }

    /// From the broker's variables: `APPIPC_ACTIVATION` and `APPIPC_APP_SERVICE`. `None` when
    /// there is no activation or one this SDK does not know.
    pub fn from_vars(activation: Option<&str>, app_service: Option<&str>) -> Option<Self> {
        let service = app_service.filter(|s| !s.is_empty()).map(str::to_owned);
        Some(match activation? {
            "launch" => {
                ActivatedEventArgs::Launch(LaunchActivatedEventArgs { full_trust_process: false })
            }
            "fulltrust" => {
                ActivatedEventArgs::Launch(LaunchActivatedEventArgs { full_trust_process: true })
            }
            "background" => ActivatedEventArgs::Background(BackgroundActivatedEventArgs {
                app_service: service,
            }),
            "appservice" => ActivatedEventArgs::BackgroundTask(BackgroundTaskActivation {
                app_service: service?,
            }),
            _ => return None,
        })
    }
}

/// `AppInstance`: this app's instance.
#[derive(Debug)]
pub struct AppInstance;

impl AppInstance {
    /// `AppInstance.GetActivatedEventArgs()`: how the broker activated this process; `None`
    /// for a process it did not start (unpackaged) and for an activation this SDK does not know.
    pub fn get_activated_event_args() -> Option<ActivatedEventArgs> {
        let activation = std::env::var(ACTIVATION_VAR).ok();
        let service = std::env::var(APP_SERVICE_VAR).ok();
        ActivatedEventArgs::from_vars(activation.as_deref(), service.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_activation_the_broker_sets_maps_to_its_windows_shape() {
        let f = ActivatedEventArgs::from_vars;
        assert_eq!(f(Some("launch"), None).unwrap().kind(), Some(ActivationKind::Launch));
        assert_eq!(ActivationKind::Launch.value(), 0);
        assert_eq!(
            f(Some("fulltrust"), None),
            Some(ActivatedEventArgs::Launch(LaunchActivatedEventArgs { full_trust_process: true }))
        );
        assert_eq!(
            f(Some("background"), Some("com.contoso.inproc")),
            Some(ActivatedEventArgs::Background(BackgroundActivatedEventArgs {
                app_service: Some("com.contoso.inproc".into())
            }))
        );
        let host = f(Some("appservice"), Some("com.contoso.echo")).unwrap();
        assert_eq!(host.kind(), None);
        assert_eq!(
            host,
            ActivatedEventArgs::BackgroundTask(BackgroundTaskActivation {
                app_service: "com.contoso.echo".into()
            })
        );
        // A host without its service, an unknown activation, no activation: none.
        assert_eq!(f(Some("appservice"), None), None);
        assert_eq!(f(Some("protocol"), None), None);
        assert_eq!(f(None, None), None);
    }
}
