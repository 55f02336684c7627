//! App services (`Windows.ApplicationModel.AppService`): opening connections, hosting
//! services, the catalog.

use minicbor::{Decode, Encode};

use crate::caller::TrustLevel;
use crate::status::BackgroundTaskCancellationReason;

super::mechanism! {
    /// App services (`Windows.ApplicationModel.AppService`). The broker resolves the provider,
    /// starts its host, and hands each side one end of a `SOCK_SEQPACKET` pair; the two then
    /// exchange `ChannelFrame`s directly.
    mechanism AppService;
    requests {
        /// `AppServiceConnection.OpenAsync`. On failure the error's code is
        /// `Status(AppServiceConnectionStatus)`: AppNotInstalled 1, AppUnavailable 2,
        /// AppServiceUnavailable 3, NotAuthorized 7.
        0 Open {
            /// The provider's package family name.
            0 package_family_name: String,
            /// The service name.
            1 app_service_name: String,
            /// `AppServiceConnection.User` as the caller set it: the uid it connects as. It must
            /// be the caller's own (the broker serves one user), else `NotAuthorized` 7.
            2 user: Option<u32>,
        } fds(0) -> Opened, reply fds "1: the client's end of the connection";
        /// A provider process is ready to serve this app service of its own application;
        /// connections then arrive as `app_service.IncomingConnection` on this session.
        1 RegisterHost {
            /// A service the caller's application declares.
            0 app_service_name: String,
            /// When registering again after `broker.Restarted`: the connections this host still
            /// serves (their ids), so that it is not taken for idle. Honored only on a session
            /// that outlived a broker.
            1 serving: Option<Vec<u64>>,
        } fds(0) -> (), reply fds "0";
        /// A provider reports that a connection it served has ended (for idle tracking).
        2 ConnectionClosed {
            /// The id from `IncomingConnection`.
            0 connection_id: u64,
        } fds(0) -> (), reply fds "0";
        /// `AppServiceCatalog.FindAppServiceProvidersAsync`.
        3 FindProviders {
            /// The service name.
            0 app_service_name: String,
        } fds(0) -> Vec<AppServiceProviderInfo>, reply fds "0";
        /// Declared services and live connections of the packages the caller may see (for
        /// `appipc app-service list`).
        4 List {} fds(0) -> AppServiceList, reply fds "0";
    }
    events {
        /// A client connected to an app service this session hosts
        /// (`AppServiceTriggerDetails`, all attested by the broker); the provider's end of the
        /// connection is attached.
        0 IncomingConnection {
            /// The broker's id (report it with `ConnectionClosed`).
            0 connection_id: u64,
            /// The service name.
            1 app_service_name: String,
            /// `CallerPackageFamilyName`: empty for an unpackaged caller.
            2 caller_package_family_name: String,
            /// The caller's granted capabilities (for `CheckCallerForCapabilityAsync`).
            3 caller_capabilities: Vec<String>,
            /// The caller's trust level.
            4 caller_trust: TrustLevel,
            /// The caller's pid.
            5 caller_pid: u32,
            /// The largest message either side may send, in bytes.
            6 max_message_size: u64,
            /// The caller's user as the broker attests it (`IBackgroundTaskInstance4.User`,
            /// `AppServiceConnection.User`): its uid.
            7 caller_uid: Option<u32>,
            /// That user's account name (NSS), when it has one.
            8 caller_user_name: Option<String>,
        } fds "1: the provider's end";
        /// The broker is stopping this provider host (`IBackgroundTaskInstance.Canceled` for
        /// every task it still runs); it is killed after a grace period. An out-of-process host
        /// whose last connection ended gets it with `Abort` (0): it has nothing left to do.
        1 Canceled {
            /// Why.
            0 reason: BackgroundTaskCancellationReason,
        } fds "0";
    }
}

/// Answer to [`Open`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct Opened {
    /// The broker's id of the connection.
    #[n(0)]
    pub connection_id: u64,
    /// The largest message either side may send.
    #[n(1)]
    pub max_message_size: u64,
}

/// A package that provides an app service (`AppInfo` in `FindAppServiceProvidersAsync`).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct AppServiceProviderInfo {
    /// Package family name.
    #[n(0)]
    pub package_family_name: String,
    /// The application that declares it.
    #[n(1)]
    pub app_id: String,
    /// The package's display name.
    #[n(2)]
    pub display_name: String,
}

/// Answer to [`List`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct AppServiceList {
    /// Every declared service of the packages the caller may see.
    #[n(0)]
    pub declared: Vec<DeclaredAppService>,
    /// Connections the broker opened whose provider has not reported them closed.
    #[n(1)]
    pub connections: Vec<AppServiceConnectionInfo>,
}

/// An app service a package declares.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct DeclaredAppService {
    /// Package family name.
    #[n(0)]
    pub package_family_name: String,
    /// The application that declares it.
    #[n(1)]
    pub app_id: String,
    /// Service name.
    #[n(2)]
    pub name: String,
    /// Package-relative host executable; `None` for an in-process service.
    #[n(3)]
    pub entry_point: Option<String>,
    /// A new host process per connection.
    #[n(4)]
    pub supports_multiple_instances: bool,
    /// Largest message accepted.
    #[n(5)]
    pub max_message_size: u64,
}

/// A live app-service connection.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct AppServiceConnectionInfo {
    /// The broker's id.
    #[n(0)]
    pub connection_id: u64,
    /// Provider package.
    #[n(1)]
    pub package_family_name: String,
    /// Service name.
    #[n(2)]
    pub app_service_name: String,
    /// Caller's package family name ("" for unpackaged).
    #[n(3)]
    pub caller_package_family_name: String,
    /// Caller's pid.
    #[n(4)]
    pub caller_pid: u32,
    /// The provider host's pid.
    #[n(5)]
    pub host_pid: u32,
    /// Seconds since the epoch.
    #[n(6)]
    pub opened_at: u64,
}
