//! The wire side of appipc: [`ValueSet`] (the property bag apps exchange), its CBOR encoding,
//! the frame layout and the broker protocol's message types.
//!
//! No I/O and no OS calls live here: sockets and fds are `appipc-sys`'s job.
#![forbid(unsafe_code)]

pub mod app_service;
pub mod protocol;
pub mod valueset;

pub use valueset::{
    DateTime, DecodeError, DecodeErrorKind, DecodeLimits, Guid, Point, PropertyType, PropertyValue,
    Rect, Size, TimeSpan, ValueSet,
};
