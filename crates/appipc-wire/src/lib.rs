//! The wire side of appipc: [`ValueSet`] (the property bag apps exchange), its CBOR encoding,
//! the frame layout and the broker protocol's message types.
//!
//! * [`frame`]: one [`Frame`](frame::Frame) per socket message, replies as typed outputs;
//! * [`protocol`]: every request, its output and the events, one module per mechanism;
//! * [`status`]: Windows status enumerations and error codes with their exact numbers;
//! * [`caller`]: trust levels and the attested identity;
//! * [`app_service`]: the frames two peers exchange on an app-service connection;
//! * [`valueset`]: `ValueSet` and its encoding;
//! * [`text`]: client text made safe to show;
//! * [`uri`]: the URIs of protocol activation, checked once at the boundary;
//! * [`json64`]: how the JSON form (`serde::Serialize` of the protocol types) writes the
//!   integers that may exceed 2^53;
//! * `json` (feature `json`): the JSON mapping of `ValueSet` (`appipc::json` in the SDK).
//!
//! No I/O and no OS calls live here: sockets and fds are `appipc-sys`'s job.
#![forbid(unsafe_code)]

pub mod app_service;
pub mod caller;
pub mod frame;
#[cfg(feature = "json")]
pub mod json;
pub mod json64;
pub mod protocol;
pub mod status;
pub mod text;
pub mod uri;
pub mod valueset;

pub use valueset::{
    DateTime, DecodeError, DecodeErrorKind, DecodeLimits, Guid, Point, PropertyType, PropertyValue,
    Rect, Size, TimeSpan, ValueSet,
};
