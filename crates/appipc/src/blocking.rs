//! A blocking facade over the async SDK, for programs without an async runtime.
//!
//! Each blocking session owns a small current-thread tokio runtime and drives the async
//! session on it for the length of each call.

use std::path::Path;

use appipc_wire::protocol::Call;
use appipc_wire::protocol::packages::PackageInfo;

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

    /// Runs `f` to completion on this session's runtime.
    pub(crate) fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The async session this one drives.
    pub(crate) fn inner(&self) -> &crate::Session {
        &self.inner
    }

    /// Sends a request and waits for its typed output.
    pub fn call<C: Call>(&self, call: C) -> Result<C::Output> {
        self.rt.block_on(self.inner.call(call))
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

/// A blocking app-service connection: `send_message` writes the request and reads the
/// response on the calling thread, with no runtime in between (the fastest client path).
///
/// Requests the provider sends on this connection go to the handler set with
/// [`AppServiceConnection::on_request_received`], called on the waiting thread; without one
/// they are queued and handed out by [`AppServiceConnection::next_request`].
pub struct AppServiceConnection {
    sock: std::os::fd::OwnedFd,
    max: u64,
    next_id: u64,
    buf: Vec<u8>,
    queued: std::collections::VecDeque<(u64, ValueSet)>,
    closed: Option<AppServiceClosedStatus>,
    handler: Option<RequestHandler>,
    spin: crate::spin::Spin,
}

impl std::fmt::Debug for AppServiceConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServiceConnection")
            .field("max", &self.max)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

use crate::app_service::{
    AppServiceClosedStatus, AppServiceConnectionStatus, AppServiceResponse,
    AppServiceResponseStatus, Incoming, encode_frame, frame_message,
};
use appipc_sys::socket::{self, Blocking};
use appipc_wire::ValueSet;
use appipc_wire::app_service::{ChannelFrame, ChannelKind, INLINE_MESSAGE_MAX};

/// Receives one message: polls for it first while that pays (see [`crate::spin`]; the
/// answer to a request often comes within microseconds), then blocks.
fn recv_spinning(
    sock: &std::os::fd::OwnedFd,
    buf: &mut [u8],
    spin: &crate::spin::Spin,
) -> std::io::Result<Option<appipc_sys::socket::Received>> {
    let polled = spin.poll(1, || match socket::recv_into(sock, buf, Blocking::No) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        other => Some(other),
    });
    match polled {
        Some(r) => r,
        None => socket::recv_into(sock, buf, Blocking::Yes),
    }
}

/// Answers a request from the provider with a reply.
type RequestHandler = Box<dyn FnMut(&ValueSet) -> ValueSet + Send>;

/// One frame read from a blocking connection.
enum Read {
    Frame(ChannelFrame, Vec<std::os::fd::OwnedFd>),
    Closed,
}

impl Session {
    /// `OpenAsync`, blocking. The Windows status on failure.
    pub fn open_app_service(
        &self,
        family: &str,
        service: &str,
    ) -> std::result::Result<AppServiceConnection, AppServiceConnectionStatus> {
        let opened =
            self.rt.block_on(crate::app_service::open_raw(&self.inner, family, service, None))?;
        Ok(AppServiceConnection {
            sock: opened.fd,
            max: opened.max_message_size,
            next_id: 1,
            buf: vec![0u8; INLINE_MESSAGE_MAX + 64],
            queued: Default::default(),
            closed: None,
            handler: None,
            spin: crate::spin::Spin::new(),
        })
    }
}

impl AppServiceConnection {
    /// Answers the provider's requests with `handler` (called on the thread that is waiting
    /// in `send_message` or `next_request`), instead of queueing them.
    pub fn on_request_received(
        &mut self,
        handler: impl FnMut(&ValueSet) -> ValueSet + Send + 'static,
    ) {
        self.handler = Some(Box::new(handler));
        while let Some((id, m)) = self.queued.pop_front() {
            self.handle(id, m);
        }
    }

    /// Runs the handler on a request, or queues it.
    fn handle(&mut self, id: u64, message: ValueSet) {
        match self.handler.as_mut() {
            Some(h) => {
                let reply = h(&message);
                let _ = self.respond(id, AppServiceResponseStatus::Success, Some(&reply));
            }
            None => self.queued.push_back((id, message)),
        }
    }

    /// The largest message either side may send.
    pub fn max_message_size(&self) -> u64 {
        self.max
    }

    fn read(&mut self) -> Read {
        if self.closed.is_some() {
            return Read::Closed;
        }
        let r = match recv_spinning(&self.sock, &mut self.buf, &self.spin) {
            Ok(Some(r)) if !r.truncated => r,
            _ => return self.mark_closed(AppServiceClosedStatus::Unknown),
        };
        match ChannelFrame::from_cbor(&self.buf[..r.len]) {
            Ok(f) if f.kind == ChannelKind::Close => {
                let s = AppServiceClosedStatus::from_value(f.status)
                    .unwrap_or(AppServiceClosedStatus::Canceled);
                self.mark_closed(s)
            }
            Ok(f) => Read::Frame(f, r.fds),
            Err(_) => self.mark_closed(AppServiceClosedStatus::Unknown),
        }
    }

    fn mark_closed(&mut self, s: AppServiceClosedStatus) -> Read {
        self.closed.get_or_insert(s);
        let _ = socket::shutdown(&self.sock);
        Read::Closed
    }

    /// `SendMessageAsync`, blocking: sends and waits for the response. Requests from the
    /// provider that arrive meanwhile are queued.
    pub fn send_message(&mut self, message: &ValueSet) -> AppServiceResponse {
        let failed = |status| AppServiceResponse { status, message: ValueSet::new() };
        if self.closed.is_some() {
            return failed(AppServiceResponseStatus::Failure);
        }
        let id = self.next_id;
        self.next_id += 1;
        let (bytes, fd) = match encode_frame(id, ChannelKind::Request, 0, Some(message), self.max) {
            Ok(x) => x,
            Err(status) => return failed(status),
        };
        let fds: Vec<_> = fd.iter().map(std::os::fd::AsFd::as_fd).collect();
        if socket::send(&self.sock, &bytes, &fds, Blocking::Yes).is_err() {
            self.mark_closed(AppServiceClosedStatus::Unknown);
            return failed(AppServiceResponseStatus::Failure);
        }
        loop {
            match self.read() {
                Read::Closed => return failed(AppServiceResponseStatus::Failure),
                Read::Frame(mut f, mut fds) => match f.kind {
                    ChannelKind::Response if f.id == id => {
                        let status = AppServiceResponseStatus::from_value(f.status)
                            .unwrap_or(AppServiceResponseStatus::Unknown);
                        return match frame_message(&mut f, &mut fds, self.max) {
                            Incoming::Message(m) => AppServiceResponse { status, message: m },
                            Incoming::TooLarge => {
                                failed(AppServiceResponseStatus::MessageSizeTooLarge)
                            }
                            Incoming::Broken(_) => {
                                self.mark_closed(AppServiceClosedStatus::Unknown);
                                failed(AppServiceResponseStatus::Failure)
                            }
                        };
                    }
                    ChannelKind::Request => match self.take_request(f, fds) {
                        Some(Ok((id, m))) => self.handle(id, m),
                        Some(Err(())) => return failed(AppServiceResponseStatus::Failure),
                        None => {}
                    },
                    _ => {} // a stale response
                },
            }
        }
    }

    /// Waits for the next request the provider sends; `None` once the connection is closed.
    /// Answer it with [`AppServiceConnection::send_response`].
    pub fn next_request(&mut self) -> Option<(u64, ValueSet)> {
        loop {
            if let Some(r) = self.queued.pop_front() {
                return Some(r);
            }
            match self.read() {
                Read::Closed => return None,
                Read::Frame(f, fds) if f.kind == ChannelKind::Request => {
                    match self.take_request(f, fds) {
                        Some(Ok(r)) => return Some(r),
                        Some(Err(())) => return None,
                        None => {}
                    }
                }
                Read::Frame(..) => {}
            }
        }
    }

    /// The message of a request frame: `Some(Ok)` to handle, `None` when it was answered
    /// already (too large), `Some(Err)` when the connection broke.
    #[allow(clippy::type_complexity)]
    fn take_request(
        &mut self,
        mut f: ChannelFrame,
        mut fds: Vec<std::os::fd::OwnedFd>,
    ) -> Option<Result<(u64, ValueSet), ()>> {
        match frame_message(&mut f, &mut fds, self.max) {
            Incoming::Message(m) => Some(Ok((f.id, m))),
            Incoming::TooLarge => {
                let _ = self.respond(f.id, AppServiceResponseStatus::MessageSizeTooLarge, None);
                None
            }
            Incoming::Broken(_) => {
                self.mark_closed(AppServiceClosedStatus::Unknown);
                Some(Err(()))
            }
        }
    }

    /// Completes a request from [`next_request`](Self::next_request) with a reply.
    pub fn send_response(&mut self, id: u64, message: &ValueSet) -> AppServiceResponseStatus {
        self.respond(id, AppServiceResponseStatus::Success, Some(message))
    }

    fn respond(
        &mut self,
        id: u64,
        status: AppServiceResponseStatus,
        message: Option<&ValueSet>,
    ) -> AppServiceResponseStatus {
        let (bytes, fd) =
            match encode_frame(id, ChannelKind::Response, status.value(), message, self.max) {
                Ok(x) => x,
                Err(s) => return s,
            };
        let fds: Vec<_> = fd.iter().map(std::os::fd::AsFd::as_fd).collect();
        match socket::send(&self.sock, &bytes, &fds, Blocking::Yes) {
            Ok(()) => AppServiceResponseStatus::Success,
            Err(_) => AppServiceResponseStatus::Failure,
        }
    }

    /// Whether the connection has ended, and how.
    pub fn closed_status(&self) -> Option<AppServiceClosedStatus> {
        self.closed
    }

    /// `Close()`: the provider sees `ServiceClosed(Canceled)`.
    pub fn close(mut self) {
        self.close_inner();
    }

    fn close_inner(&mut self) {
        if self.closed.is_none() {
            if let Ok((bytes, _)) = encode_frame(
                0,
                ChannelKind::Close,
                AppServiceClosedStatus::Canceled.value(),
                None,
                0,
            ) {
                let _ = socket::send(&self.sock, &bytes, &[], Blocking::No);
            }
            self.closed = Some(AppServiceClosedStatus::Canceled);
        }
        let _ = socket::shutdown(&self.sock);
    }
}

impl Drop for AppServiceConnection {
    fn drop(&mut self) {
        self.close_inner();
    }
}
