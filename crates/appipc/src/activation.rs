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
//! service's host, and protocol activation (`Launcher.LaunchUriAsync`,
//! `LaunchUriForResultsAsync`). File, share-target and the other Windows kinds do not exist here.
//!
//! A protocol activation carries a URI, data and the caller's attested identity, which do not
//! fit the environment: [`AppInstance::activated`] fetches them from the broker (once per
//! process), and [`AppInstance::get_activated_event_args`], which reads only the environment,
//! returns `None` for them.
//!
//! ```no_run
//! # async fn target(session: &appipc::Session) -> appipc::Result<()> {
//! use appipc::{ActivatedEventArgs, AppInstance, ValueSet};
//! if let Some(ActivatedEventArgs::ProtocolForResults(args)) = AppInstance::activated(session).await? {
//!     println!("{} asked {} of me", args.caller_package_family_name, args.uri);
//!     let mut answer = ValueSet::new();
//!     answer.insert("picked", "photo-1");
//!     args.operation.report_completed(answer).await?; // once; a second report fails
//! }
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use appipc_wire::protocol::launcher::{
    ACTIVATION_KIND_PROTOCOL, ACTIVATION_KIND_PROTOCOL_FOR_RESULTS, MAX_PROTOCOL_DATA,
    ProtocolActivation, RegisterForActivation, ReportCompleted, TakeActivation,
};
use appipc_wire::status::{ErrorKind, HResult};

use crate::ValueSet;
use crate::error::{Error, Result};
use crate::session::Session;

/// The environment variable the broker sets to say why it started a process.
pub const ACTIVATION_VAR: &str = "APPIPC_ACTIVATION";

/// The environment variable naming the app service a process was started for.
pub const APP_SERVICE_VAR: &str = "APPIPC_APP_SERVICE";

/// The environment variable holding the id of the protocol activation a process was started
/// for (given to the broker, which checks that the asker is that process).
pub const ACTIVATION_ID_VAR: &str = "APPIPC_ACTIVATION_ID";

/// `ActivationKind` (Windows values), for the kinds appipc produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(i32)]
pub enum ActivationKind {
    /// `Launch` (0): the user or another app launched the app.
    Launch = 0,
    /// `Protocol` (4): an app launched a URI whose scheme this app handles.
    Protocol = 4,
    /// `ProtocolForResults` (1009): launched for a URI, expected to report a result.
    ProtocolForResults = 1009,
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

/// `ProtocolActivatedEventArgs`: activated for a URI
/// (`IProtocolActivatedEventArgsWithCallerPackageFamilyNameAndData`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProtocolActivatedEventArgs {
    /// `Uri`.
    pub uri: String,
    /// `Data`: the caller's `ValueSet`, if it sent one.
    pub data: Option<ValueSet>,
    /// `CallerPackageFamilyName`: as the broker attests it; "" for an unpackaged caller.
    pub caller_package_family_name: String,
    /// The caller's pid (appipc extension).
    pub caller_pid: u32,
}

/// `ProtocolForResultsActivatedEventArgs`: activated for a URI by `LaunchUriForResultsAsync`;
/// report the result with [`ProtocolForResultsOperation::report_completed`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProtocolForResultsActivatedEventArgs {
    /// `Uri`.
    pub uri: String,
    /// `Data`: the caller's `ValueSet`, if it sent one.
    pub data: Option<ValueSet>,
    /// `CallerPackageFamilyName`: as the broker attests it; "" for an unpackaged caller.
    pub caller_package_family_name: String,
    /// The caller's pid (appipc extension).
    pub caller_pid: u32,
    /// `ProtocolForResultsOperation`.
    pub operation: ProtocolForResultsOperation,
}

/// `ProtocolForResultsOperation`: the caller's pending `LaunchUriForResultsAsync`.
#[derive(Debug, Clone)]
pub struct ProtocolForResultsOperation {
    session: Session,
    id: u64,
    reported: Arc<AtomicBool>,
}

impl PartialEq for ProtocolForResultsOperation {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl ProtocolForResultsOperation {
    /// The broker's id of the operation.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// `ReportCompleted(ValueSet)`: answers the caller (at most 100 KiB encoded; larger content
    /// as file tokens inside it). Once: a second call fails (`E_ILLEGAL_METHOD_CALL`), here and
    /// at the broker; so does a report after the caller went away ([`Self::canceled`]).
    pub async fn report_completed(&self, data: ValueSet) -> Result<()> {
        let n = data.encoded_len();
        if n > MAX_PROTOCOL_DATA {
            return Err(Error::Broker {
                kind: ErrorKind::BadRequest,
                code: HResult::InvalidArg.into(),
                message: format!(
                    "the result ValueSet is {n} bytes encoded, more than the {MAX_PROTOCOL_DATA} \
                     a protocol activation carries; pass larger content as file tokens \
                     (SharedStorageAccessManager) inside the ValueSet"
                ),
            });
        }
        if self.reported.swap(true, Ordering::SeqCst) {
            return Err(Error::Broker {
                kind: ErrorKind::NotFound,
                code: HResult::IllegalMethodCall.into(),
                message: format!("operation {} was already reported", self.id),
            });
        }
        self.session.call(ReportCompleted { operation_id: self.id, data: Some(data) }).await
    }

    /// Resolves when the caller of the operation went away before the report (its session
    /// ended): reporting is pointless then, and fails.
    pub async fn canceled(&self) {
        self.session.operation_canceled(self.id).await;
    }

    /// Whether the caller went away.
    pub fn is_canceled(&self) -> bool {
        self.session.is_operation_canceled(self.id)
    }
}

/// `IActivatedEventArgs`: how this process was activated.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ActivatedEventArgs {
    /// [`ActivationKind::Launch`].
    Launch(LaunchActivatedEventArgs),
    /// Started in the background for an in-process app service (`OnBackgroundActivated`; no
    /// `ActivationKind` on Windows either).
    Background(BackgroundActivatedEventArgs),
    /// Started as an out-of-process app service host (`IBackgroundTask.Run`).
    BackgroundTask(BackgroundTaskActivation),
    /// [`ActivationKind::Protocol`].
    Protocol(ProtocolActivatedEventArgs),
    /// [`ActivationKind::ProtocolForResults`].
    ProtocolForResults(ProtocolForResultsActivatedEventArgs),
}

impl ActivatedEventArgs {
    /// `Kind`; `None` for the background activations, which Windows does not give a kind.
    pub fn kind(&self) -> Option<ActivationKind> {
        match self {
            ActivatedEventArgs::Launch(_) => Some(ActivationKind::Launch),
            ActivatedEventArgs::Protocol(_) => Some(ActivationKind::Protocol),
            ActivatedEventArgs::ProtocolForResults(_) => Some(ActivationKind::ProtocolForResults),
            ActivatedEventArgs::Background(_) | ActivatedEventArgs::BackgroundTask(_) => None,
        }
    }

    /// From the broker's variables: `APPIPC_ACTIVATION` and `APPIPC_APP_SERVICE`. `None` when
    /// there is no activation, one this SDK does not know, or a protocol activation (whose
    /// details only the broker has: [`AppInstance::activated`]).
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
    /// for a process it did not start (unpackaged), for an activation this SDK does not know,
    /// and for a protocol activation (use [`AppInstance::activated`]).
    pub fn get_activated_event_args() -> Option<ActivatedEventArgs> {
        let activation = std::env::var(ACTIVATION_VAR).ok();
        let service = std::env::var(APP_SERVICE_VAR).ok();
        ActivatedEventArgs::from_vars(activation.as_deref(), service.as_deref())
    }

    /// How the broker activated this process, protocol activations included: their URI, data
    /// and attested caller come from the broker, which hands them to this process once (a
    /// second call in the same process gets the same answer from a cache).
    pub async fn activated(session: &Session) -> Result<Option<ActivatedEventArgs>> {
        let kind = std::env::var(ACTIVATION_VAR).ok();
        if !matches!(kind.as_deref(), Some("protocol" | "protocolforresults")) {
            return Ok(Self::get_activated_event_args());
        }
        let taken = TAKEN
            .get_or_try_init(|| async {
                let Some(id) = std::env::var(ACTIVATION_ID_VAR).ok().and_then(|v| v.parse().ok())
                else {
                    return Ok(None);
                };
                session.call(TakeActivation { activation_id: id }).await
            })
            .await?;
        Ok(taken.clone().and_then(|a| from_activation(session, a)))
    }

    /// Receives this application's later protocol activations in this process instead of the
    /// broker starting another process for each (single instance: the activations of an
    /// application go to its earliest registered instance that still runs; see
    /// `docs/protocol.md`). Only a packaged process whose application declares a protocol.
    pub async fn register_for_activation(session: &Session) -> Result<ActivationReceiver> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        session.route_activations(tx);
        session.call(RegisterForActivation {}).await?;
        Ok(ActivationReceiver { session: session.clone(), rx })
    }
}

/// The activation this process was started for, once taken from the broker.
static TAKEN: tokio::sync::OnceCell<Option<ProtocolActivation>> =
    tokio::sync::OnceCell::const_new();

/// The Windows shape of a protocol activation.
fn from_activation(session: &Session, a: ProtocolActivation) -> Option<ActivatedEventArgs> {
    Some(match (a.kind, a.operation_id) {
        (ACTIVATION_KIND_PROTOCOL_FOR_RESULTS, Some(id)) => {
            ActivatedEventArgs::ProtocolForResults(ProtocolForResultsActivatedEventArgs {
                uri: a.uri,
                data: a.data,
                caller_package_family_name: a.caller_package_family_name,
                caller_pid: a.caller_pid,
                operation: ProtocolForResultsOperation {
                    session: session.clone(),
                    id,
                    reported: Arc::new(AtomicBool::new(false)),
                },
            })
        }
        (ACTIVATION_KIND_PROTOCOL, _) => ActivatedEventArgs::Protocol(ProtocolActivatedEventArgs {
            uri: a.uri,
            data: a.data,
            caller_package_family_name: a.caller_package_family_name,
            caller_pid: a.caller_pid,
        }),
        _ => return None,
    })
}

/// The protocol activations a running instance receives ([`AppInstance::register_for_activation`]).
#[derive(Debug)]
pub struct ActivationReceiver {
    session: Session,
    rx: tokio::sync::mpsc::UnboundedReceiver<ProtocolActivation>,
}

impl ActivationReceiver {
    /// The next activation; `None` when the session ended.
    pub async fn next(&mut self) -> Option<ActivatedEventArgs> {
        loop {
            let a = self.rx.recv().await?;
            if let Some(args) = from_activation(&self.session, a) {
                return Some(args);
            }
        }
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
