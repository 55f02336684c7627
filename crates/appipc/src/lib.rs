//! The appipc client SDK: the Windows packaged-app vocabulary in Rust.
//!
//! Every call goes through a [`Session`] with the per-user broker. A process the broker
//! launched (a packaged app) inherits its identity through the session; any other process of
//! the user is unpackaged and full trust.
//!
//! ```no_run
//! # async fn demo() -> appipc::Result<()> {
//! use appipc::{Package, Session};
//! let session = Session::connect().await?;
//! match Package::current(&session).await {
//!     Ok(p) => println!("I am {} ({:?})", p.id().family_name, p.trust()),
//!     Err(appipc::Error::NoPackageIdentity) => println!("unpackaged"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```
//!
//! Async (tokio) first; [`blocking`] wraps the same calls for synchronous programs. This crate
//! holds no policy: the broker decides every access.
#![forbid(unsafe_code)]

// The code `#[appipc::interface]` generates names `::appipc`, in this crate too.
extern crate self as appipc;

pub mod activation;
pub mod app_service;
pub mod blocking;
pub mod broker;
pub mod com;
pub mod diagnostics;
pub mod error;
pub mod full_trust;
pub mod launcher;
pub mod loopback;
pub use appipc_wire::json;
pub mod management;
pub mod named_objects;
pub mod named_pipes;
pub mod package;
pub mod registry;
pub mod ring;
pub mod rpc;
pub mod session;
mod spin;
pub mod storage;
pub mod trust;

pub use activation::{
    ActivatedEventArgs, ActivationKind, AppInstance, ProtocolActivatedEventArgs,
    ProtocolForResultsActivatedEventArgs, ProtocolForResultsOperation,
};
pub use app_service::{
    AppServiceCatalog, AppServiceClosedStatus, AppServiceConnection, AppServiceConnectionStatus,
    AppServiceProvider, AppServiceResponse, AppServiceResponseStatus, AppServiceTriggerDetails,
    BackgroundTaskDeferral, BackgroundTaskInstance, User,
};
/// `#[appipc::interface(uuid = "…", version = "M.m")]`: an RPC interface from a trait (see
/// [`rpc`]).
pub use appipc_macros::interface;
pub use appipc_wire as wire;
pub use appipc_wire::caller::TrustLevel;
pub use appipc_wire::status::{ErrorKind, WindowsCode};
pub use appipc_wire::{PropertyValue, ValueSet};
/// Implement an [`interface`] trait with `#[appipc::async_trait]` on the `impl` block.
pub use async_trait::async_trait;
pub use error::{Error, Result};
pub use full_trust::{
    FullTrustLaunchResult, FullTrustProcessLaunchResult, FullTrustProcessLauncher,
};
pub use launcher::{
    LaunchQuerySupportStatus, LaunchQuerySupportType, LaunchUriResult, LaunchUriStatus, Launcher,
    LauncherOptions,
};
pub use management::{
    ActivateOptions, AddPackageOptions, ApplicationActivationManager, DeploymentResult,
    PackageManager,
};
pub use package::{Package, PackageId, ProcessIdentity};
pub use session::Session;
pub use storage::{ApplicationData, SharedStorageAccessManager, StorageFile};
