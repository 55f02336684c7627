//! A blocking facade over the async SDK, for programs without an async runtime.
//!
//! Each blocking session owns a small current-thread tokio runtime and drives the async
//! session on it for the length of each call.

use std::path::Path;

use appipc_wire::protocol::{PackageInfo, Reply, Request};

use crate::error::{Error, Result};
use crate::management::{DeploymentResult, PackageManager};
use crate::package::{Package, ProcessIdentity};

/// A blocking session with the broker.
#[derive(Debug)]
pub struct Session {
    rt: tokio::runtime::Runtime,
    inner: crate::Session,
}

impl Session {
    /// Connects like [`crate::Session::connect`].
    pub fn connect() -> Result<Session> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io { what: "starting a runtime", source })?;
        let inner = rt.block_on(crate::Session::connect())?;
        Ok(Session { rt, inner })
    }

    /// Connects to a given public socket.
    pub fn connect_to(path: &Path) -> Result<Session> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| Error::Io { what: "starting a runtime", source })?;
        let inner = rt.block_on(async { crate::Session::connect_to(path) })?;
        Ok(Session { rt, inner })
    }

    /// Sends a request and waits for the reply.
    pub fn request(&self, request: Request) -> Result<Reply> {
        self.rt.block_on(self.inner.request(request))
    }

    /// Who the broker thinks this process is.
    pub fn who_am_i(&self) -> Result<ProcessIdentity> {
        self.rt.block_on(ProcessIdentity::query(&self.inner))
    }

    /// `Package.Current`.
    pub fn current_package(&self) -> Result<Package> {
        self.rt.block_on(Package::current(&self.inner))
    }

    /// `PackageManager.AddPackageAsync`.
    pub fn add_package(&self, path: &Path) -> Result<DeploymentResult> {
        self.rt.block_on(PackageManager::new(&self.inner).add_package(path))
    }

    /// `PackageManager.FindPackagesForUser`.
    pub fn find_packages(&self) -> Result<Vec<PackageInfo>> {
        self.rt.block_on(PackageManager::new(&self.inner).find_packages())
    }
}
