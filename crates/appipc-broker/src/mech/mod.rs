//! One module per mechanism, named as in `appipc_wire::protocol`. Each has one entry point,
//! `handle(cx, request) -> Result<Replied, ItsError>`, called by [`crate::dispatch`]; its
//! decisions go through [`crate::decide`], its lifecycle work is called from
//! [`crate::hooks`].

pub mod app_service;
pub mod broker;
pub mod com;
pub mod diagnostics;
pub mod full_trust;
pub mod launch;
pub mod launcher;
pub mod loopback;
pub mod named_objects;
pub mod packages;
pub mod pipes;
pub mod registry;
pub mod rpc;
pub mod storage;
