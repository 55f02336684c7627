//! `FullTrustProcessLauncher`.

use minicbor::{Decode, Encode};

super::mechanism! {
    /// `FullTrustProcessLauncher`: a packaged app with `runFullTrust` starts the full-trust
    /// process its own package declares, unconfined but with the package's identity.
    mechanism FullTrust;
    requests {
        /// `LaunchFullTrustProcessFor…Async`. On failure the error's code is
        /// `Status(FullTrustLaunchResult)`: AccessDenied 1, FileNotFound 2, Unknown 3.
        0 LaunchFullTrustProcess {
            /// The application whose `full-trust-process` to start; `None`: the caller's own.
            0 app_id: Option<String>,
            /// A declared parameter group whose `parameters` become the command line.
            1 parameter_group: Option<String>,
            /// Arguments as a list (appipc extension; instead of a parameter group).
            2 arguments: Option<Vec<String>>,
        } fds(0) -> FullTrustProcessLaunched, reply fds "0";
    }
    events {}
}

/// Answer to [`LaunchFullTrustProcess`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct FullTrustProcessLaunched {
    /// The new process.
    #[n(0)]
    pub pid: u32,
}
