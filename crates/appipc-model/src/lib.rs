//! Package identity, manifests, capabilities and access policy for appipc, as pure functions
//! over data: no I/O beyond reading a manifest file, no processes, no syscalls.
//!
//! ```
//! use appipc_model::identity::{PackageFamilyName, PublisherId};
//! let id = PublisherId::from_publisher(
//!     "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US");
//! assert_eq!(id.as_str(), "8wekyb3d8bbwe");
//! let pfn: PackageFamilyName = "Microsoft.MicrosoftEdge_8wekyb3d8bbwe".parse().unwrap();
//! assert_eq!(appipc_model::sid::appcontainer_sid(pfn.as_str()).to_string(),
//!     "S-1-15-2-3624051433-2125758914-1423191267-1740899205-1073925389-3782572162-737981194");
//! ```
//!
//! This crate does not enforce anything: the broker gathers facts and carries out decisions.
#![forbid(unsafe_code)]

pub mod identity;
pub mod loopback;
pub mod manifest;
pub mod named_objects;
pub mod package_file;
pub mod policy;
pub mod principal;
pub mod registry;
pub mod sandbox;
pub mod sccd;
pub mod sddl;
pub mod sid;
