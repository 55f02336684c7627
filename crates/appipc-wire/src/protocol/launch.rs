//! Starting applications (`IApplicationActivationManager`) and watching them.

use minicbor::{Decode, Encode};

use crate::caller::TrustLevel;

super::mechanism! {
    /// Starting applications (`IApplicationActivationManager::ActivateApplication`) and the
    /// processes the broker started.
    mechanism Launch;
    requests {
        /// Launch an application. An app container may start only its own package's
        /// applications.
        0 Launch {
            /// `PFN` (the package's first application) or `PFN!AppId`.
            0 target: String,
            /// Arguments appended after the manifest's own.
            1 args: Vec<String>,
            /// Three fds attached: stdin, stdout, stderr.
            2 stdio: bool,
            /// Send `launch.ProcessExited` on this session when the process ends.
            3 notify_exit: bool,
        } fds(|r| if r.stdio { 3 } else { 0 }) -> Launched, reply fds "0";
        /// The processes the broker started and that still run (those of packages the caller
        /// may see).
        1 ListProcesses {} fds(0) -> Vec<ProcessInfo>, reply fds "0";
    }
    events {
        /// A process launched with `notify_exit` ended.
        0 ProcessExited {
            /// Its pid.
            0 pid: u32,
            /// Exit code, if it exited.
            1 code: Option<i32>,
            /// Terminating signal, if killed.
            2 signal: Option<i32>,
        } fds "0";
    }
}

/// Answer to [`Launch`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Launched {
    /// The new process.
    #[n(0)]
    pub pid: u32,
    /// `PFN!AppId` started.
    #[n(1)]
    pub app_user_model_id: String,
    /// The file its stdout and stderr append to, when it was launched without stdio of its
    /// own.
    #[n(2)]
    pub log: Option<String>,
}

/// A process the broker started.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct ProcessInfo {
    /// Process id.
    #[n(0)]
    pub pid: u32,
    /// `PFN!AppId`.
    #[n(1)]
    pub app_user_model_id: String,
    /// Package family name.
    #[n(2)]
    pub package_family_name: String,
    /// Trust level.
    #[n(3)]
    pub trust: TrustLevel,
    /// Start time, seconds since the Unix epoch.
    #[n(4)]
    pub started_at: u64,
    /// The confinement applied, in words (for `appipc ps`).
    #[n(5)]
    pub confinement: String,
    /// Whether it runs confined in its app container (`false`: full trust, or an app container
    /// started unconfined because `APPIPC_ALLOW_UNCONFINED=1`).
    #[n(6)]
    pub confined: Option<bool>,
}
