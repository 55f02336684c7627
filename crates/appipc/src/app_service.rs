//! `Windows.ApplicationModel.AppService`: app services.
//!
//! A client opens an [`AppServiceConnection`] to `(package family name, service name)`; the
//! broker checks and connects it to a provider process, and from then on the two exchange
//! [`ValueSet`]s directly over a socket pair, in both directions. A provider registers with
//! [`AppServiceProvider::register`] and receives [`AppServiceTriggerDetails`] for each
//! connection, with the caller's identity as the broker attests it.
//!
//! Semantics kept from Windows: `send_message` completes when the other side's handler has
//! completed (the handler returned and every deferral it took completed), with the response
//! it attached or an empty set; at most one response per request (a second
//! `send_response` gives `Failure`); delivery is not guaranteed and the status says what
//! happened; handlers may run concurrently.
//!
//! Lifetimes kept from Windows: each connection a provider accepts is a background task
//! ([`BackgroundTaskInstance`], from [`AppServiceTriggerDetails::task_instance`]) that stays
//! while a [`BackgroundTaskDeferral`] is outstanding and ends, closing its connection, when the
//! last one completes; the client then sees `ServiceClosed(Completed)`. A client that closes its
//! connection cancels that task (`Abort`); the broker cancels it with the host (`IdleTask`,
//! `ServicingUpdate`, `Uninstall`, `Terminating`), and the client then sees `Canceled`; a
//! provider that crashes gives `Unknown`. The caller's [`User`] is attested by the broker.
//! `docs/windows-differences.md` lists where this differs from Windows.
//!
//! Waiting for a message: each end polls its socket for a few microseconds before it sleeps
//! while that pays — while answers come within the poll — and stops polling when they do not
//! or when the process is losing its CPU to other work, so it is cheap on a busy machine and
//! an idle connection costs nothing. `APPIPC_SPIN_US` overrides that for the process (it
//! applies to rings and event waits as well): a number of microseconds busy-polls that long
//! after every message, always (the lowest latency on a machine known to be idle, paid in
//! CPU); `0` never polls; unset or `auto` is the adaptive default. `docs/performance.md` has
//! the numbers.
//!
//! ```no_run
//! # async fn demo(session: &appipc::Session) {
//! use appipc::app_service::{AppServiceConnection, AppServiceConnectionStatus};
//! use appipc::wire::ValueSet;
//! let mut conn = AppServiceConnection::new("Contoso.Services_cvnpggrrsm18p", "com.contoso.echo");
//! if conn.open(session).await == AppServiceConnectionStatus::Success {
//!     let mut msg = ValueSet::new();
//!     msg.insert("Command", "Hello");
//!     let r = conn.send_message(msg).await;
//!     println!("{}: {:?}", r.status, r.message);
//! }
//! # }
//! ```

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use appipc_sys::aio::AsyncSeqPacket;
use appipc_sys::socket::{self, Blocking, Received};
pub use appipc_wire::app_service::{
    AppServiceClosedStatus, AppServiceConnectionStatus, AppServiceResponseStatus,
    BackgroundTaskCancellationReason, StatelessAppServiceResponseStatus,
};
use appipc_wire::app_service::{ChannelFrame, ChannelKind, INLINE_MESSAGE_MAX};
use appipc_wire::caller::TrustLevel;
use appipc_wire::protocol::app_service::{self as wire, IncomingConnection};
pub use appipc_wire::protocol::app_service::{AppServiceList, AppServiceProviderInfo};
use appipc_wire::status::WindowsCode;
use appipc_wire::{DecodeLimits, ValueSet};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{Error, Result};
use crate::session::Session;

/// Bytes a frame needs besides its message (id, kind, status, field markers).
const FRAME_OVERHEAD: usize = 64;

/// `AppServiceResponse`: the outcome of `send_message`.
#[derive(Debug, Clone, PartialEq)]
pub struct AppServiceResponse {
    /// Whether the message was delivered and handled.
    pub status: AppServiceResponseStatus,
    /// The reply (empty when the handler attached none, or when the status is not Success).
    pub message: ValueSet,
}

impl AppServiceResponse {
    fn failed(status: AppServiceResponseStatus) -> AppServiceResponse {
        AppServiceResponse { status, message: ValueSet::new() }
    }
}

/// `StatelessAppServiceResponse`: the outcome of [`AppServiceConnection::send_stateless_message`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatelessAppServiceResponse {
    /// What happened.
    pub status: StatelessAppServiceResponseStatus,
    /// The reply.
    pub message: ValueSet,
}

/// Encodes a message into a frame and its attachments: inline when it fits one socket
/// message, else in a sealed memfd. `Err` when it exceeds `max` bytes.
pub(crate) fn encode_frame(
    id: u64,
    kind: ChannelKind,
    status: u32,
    message: Option<&ValueSet>,
    max: u64,
) -> std::result::Result<(Vec<u8>, Option<OwnedFd>), AppServiceResponseStatus> {
    let Some(message) = message else {
        return Ok((ChannelFrame::encode_parts(id, kind, status, None, 0, None), None));
    };
    let len = message.encoded_len();
    if len as u64 > max {
        return Err(AppServiceResponseStatus::MessageSizeTooLarge);
    }
    if len + FRAME_OVERHEAD <= INLINE_MESSAGE_MAX {
        let bytes = ChannelFrame::encode_parts(id, kind, status, Some(message), len, None);
        return Ok((bytes, None));
    }
    let fd = appipc_sys::memfd::create_sealed("appipc-message", len, |buf| {
        minicbor::encode(message, buf).expect("encoded_len is exact");
    })
    .map_err(|_| AppServiceResponseStatus::ResourceLimitsExceeded)?;
    let bytes = ChannelFrame::encode_parts(id, kind, status, None, 0, Some(len as u64));
    Ok((bytes, Some(fd)))
}

/// Why a received message could not be taken.
pub(crate) enum Incoming {
    /// The message.
    Message(ValueSet),
    /// Larger than the limit: answer `MessageSizeTooLarge`.
    TooLarge,
    /// Broken: the connection must close.
    Broken(String),
}

/// The message of a received frame (inline or from its memfd).
pub(crate) fn frame_message(
    frame: &mut ChannelFrame,
    fds: &mut Vec<OwnedFd>,
    max: u64,
) -> Incoming {
    if let Some(m) = frame.message.take() {
        return Incoming::Message(m);
    }
    let Some(len) = frame.memfd_len else {
        return Incoming::Message(ValueSet::new());
    };
    if len > max {
        return Incoming::TooLarge;
    }
    let Some(fd) = fds.pop() else {
        return Incoming::Broken("frame announces a memfd but none is attached".into());
    };
    let view = match appipc_sys::memfd::SealedView::open(&fd, len, max) {
        Ok(v) => v,
        Err(e) => return Incoming::Broken(format!("message memfd: {e}")),
    };
    let limits = DecodeLimits::new(
        DecodeLimits::DEFAULT_MAX_DEPTH,
        usize::try_from(max).unwrap_or(usize::MAX),
    );
    match ValueSet::from_cbor(view.as_bytes(), &limits) {
        Ok(m) => Incoming::Message(m),
        Err(e) => Incoming::Broken(format!("message: {e}")),
    }
}

type Handler = Arc<dyn Fn(AppServiceRequestReceivedEventArgs) + Send + Sync>;

/// Receives the next message: polls for it while that pays (see [`crate::spin`]), then
/// waits in the reactor.
async fn recv_next(
    sock: &AsyncSeqPacket,
    buf: &mut [u8],
    spin: &crate::spin::Spin,
) -> std::io::Result<Option<Received>> {
    let polled = spin.poll(1, || match socket::recv_into(sock, buf, Blocking::No) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
        other => Some(other),
    });
    match polled {
        Some(r) => r,
        None => sock.recv_into(buf).await,
    }
}

/// One open connection's shared state.
struct Channel {
    sock: AsyncSeqPacket,
    max: u64,
    next_id: AtomicU64,
    pending: Mutex<Option<HashMap<u64, oneshot::Sender<AppServiceResponse>>>>,
    handler: Mutex<HandlerSlot>,
    closed: watch::Sender<Option<AppServiceClosedStatus>>,
    /// Why the connection broke, when the peer broke the protocol.
    broken: Mutex<Option<String>>,
    /// On a provider's end: the background task this connection is (its deferrals, its
    /// cancellation).
    task: Option<Arc<TaskState>>,
}

#[derive(Default)]
struct HandlerSlot {
    handler: Option<Handler>,
    queued: Vec<AppServiceRequestReceivedEventArgs>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel").field("max", &self.max).finish_non_exhaustive()
    }
}

impl Channel {
    /// Sends without waiting when the socket has room (the normal case), else from a task.
    fn send_detached(self: &Arc<Self>, bytes: Vec<u8>, fd: Option<OwnedFd>) {
        let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
        match socket::send(&self.sock, &bytes, &fds, Blocking::No) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let chan = self.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(h) => {
                        h.spawn(async move {
                            let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
                            let _ = chan.sock.send(&bytes, &fds).await;
                        });
                    }
                    Err(_) => {
                        let _ = socket::set_nonblocking(&chan.sock, false);
                        let _ = socket::send(&chan.sock, &bytes, &fds, Blocking::Yes);
                        let _ = socket::set_nonblocking(&chan.sock, true);
                    }
                }
            }
            Err(_) => {} // the peer is gone; the reader reports the close
        }
    }

    fn deliver(self: &Arc<Self>, args: AppServiceRequestReceivedEventArgs) {
        let handler = {
            let mut slot = self.handler.lock().expect("handler poisoned");
            match &slot.handler {
                Some(h) => h.clone(),
                None => {
                    slot.queued.push(args);
                    return;
                }
            }
        };
        handler(args);
    }

    fn is_closed(&self) -> bool {
        self.closed.borrow().is_some()
    }

    /// The `AppServiceClosedStatus` the other side reports when this side closes now. A client
    /// that closes cancels the provider's task (`Canceled`). A provider's task that ends by
    /// itself (its last deferral completed, or the provider closed or dropped the connection)
    /// closed gracefully (`Completed`); one that ends after it was canceled was closed by the
    /// system (`Canceled`; `ResourceLimitsExceeded` when canceled for resources).
    fn closing_status(&self) -> AppServiceClosedStatus {
        let Some(task) = &self.task else { return AppServiceClosedStatus::Canceled };
        match task.reason() {
            None => AppServiceClosedStatus::Completed,
            Some(
                BackgroundTaskCancellationReason::ResourceRevocation
                | BackgroundTaskCancellationReason::ExecutionTimeExceeded,
            ) => AppServiceClosedStatus::ResourceLimitsExceeded,
            Some(_) => AppServiceClosedStatus::Canceled,
        }
    }

    /// Tells the other side the connection ends with `status` and ends it.
    fn close_with(&self, status: AppServiceClosedStatus) {
        if !self.is_closed() {
            let (bytes, _) =
                encode_frame(0, ChannelKind::Close, status.value(), None, 0).expect("no message");
            let _ = socket::send(&self.sock, &bytes, &[], Blocking::No);
            self.closed.send_if_modified(|s| {
                if s.is_none() {
                    *s = Some(status);
                    true
                } else {
                    false
                }
            });
        }
        let _ = socket::shutdown(&self.sock);
    }
}

async fn read_loop(chan: Arc<Channel>, on_close: Option<Box<dyn FnOnce() + Send>>) {
    let mut buf = vec![0u8; INLINE_MESSAGE_MAX + FRAME_OVERHEAD];
    let broken = |chan: &Channel, why: String| {
        *chan.broken.lock().expect("broken poisoned") = Some(why);
        AppServiceClosedStatus::Unknown
    };
    let spin = crate::spin::Spin::new();
    let status = loop {
        let received = match recv_next(&chan.sock, &mut buf, &spin).await {
            Ok(Some(r)) => r,
            Ok(None) => break AppServiceClosedStatus::Unknown,
            Err(e) => break broken(&chan, format!("receive failed: {e}")),
        };
        let Received { len, truncated, mut fds, .. } = received;
        if truncated {
            break broken(&chan, "the peer sent an oversized frame".into());
        }
        let mut frame = match ChannelFrame::from_cbor(&buf[..len]) {
            Ok(f) => f,
            Err(e) => break broken(&chan, format!("the peer sent a malformed frame: {e}")),
        };
        match frame.kind {
            ChannelKind::Close => {
                break AppServiceClosedStatus::from_value(frame.status)
                    .unwrap_or(AppServiceClosedStatus::Canceled);
            }
            ChannelKind::Response => {
                let status = AppServiceResponseStatus::from_value(frame.status)
                    .unwrap_or(AppServiceResponseStatus::Unknown);
                let response = match frame_message(&mut frame, &mut fds, chan.max) {
                    Incoming::Message(m) => AppServiceResponse { status, message: m },
                    Incoming::TooLarge => {
                        AppServiceResponse::failed(AppServiceResponseStatus::MessageSizeTooLarge)
                    }
                    Incoming::Broken(why) => break broken(&chan, why),
                };
                let waiter = chan
                    .pending
                    .lock()
                    .expect("pending poisoned")
                    .as_mut()
                    .and_then(|p| p.remove(&frame.id));
                if let Some(w) = waiter {
                    let _ = w.send(response);
                    // Let the waiter run before this task spins for the next message: on a
                    // current-thread runtime it would otherwise wait out the spin.
                    tokio::task::yield_now().await;
                }
            }
            ChannelKind::Request => {
                if frame.id == 0 {
                    break broken(&chan, "the peer sent a request with id 0".into());
                }
                match frame_message(&mut frame, &mut fds, chan.max) {
                    Incoming::Message(message) => {
                        let state = Arc::new(RequestState {
                            chan: chan.clone(),
                            id: frame.id,
                            reply: Mutex::new(None),
                        });
                        chan.deliver(AppServiceRequestReceivedEventArgs {
                            request: AppServiceRequest { message, state },
                        });
                    }
                    Incoming::TooLarge => {
                        let (bytes, _) = encode_frame(
                            frame.id,
                            ChannelKind::Response,
                            AppServiceResponseStatus::MessageSizeTooLarge.value(),
                            None,
                            chan.max,
                        )
                        .expect("no message");
                        chan.send_detached(bytes, None);
                    }
                    Incoming::Broken(why) => break broken(&chan, why),
                }
            }
        }
    };
    let _ = socket::shutdown(&chan.sock);
    let by_peer = chan.closed.send_if_modified(|s| {
        if s.is_none() {
            *s = Some(status);
            true
        } else {
            false
        }
    });
    let pending = chan.pending.lock().expect("pending poisoned").take();
    for (_, w) in pending.into_iter().flatten() {
        let _ = w.send(AppServiceResponse::failed(AppServiceResponseStatus::Failure));
    }
    // The client closed (or lost) the connection: as on Windows, that cancels the provider's
    // background task that served it.
    if by_peer && let Some(task) = &chan.task {
        task.cancel(BackgroundTaskCancellationReason::Abort);
    }
    if let Some(f) = on_close {
        f();
    }
}

/// `AppServiceConnection`: one end of an app-service connection.
pub struct AppServiceConnection {
    /// `AppServiceName`.
    pub app_service_name: String,
    /// `PackageFamilyName` of the provider.
    pub package_family_name: String,
    /// `User`: on a client, the user it connects as, set before `open` (`None`, the default,
    /// connects as the process's own user; another user than its own is refused with
    /// `NotAuthorized`, as this broker serves one user). On a provider, the caller's user as
    /// the broker attests it (Windows gives `null` there when the caller set none).
    pub user: Option<User>,
    chan: Option<Arc<Channel>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for AppServiceConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServiceConnection")
            .field("app_service_name", &self.app_service_name)
            .field("package_family_name", &self.package_family_name)
            .field("user", &self.user)
            .field("open", &self.chan.is_some())
            .finish()
    }
}

/// What `OpenAppService` gave: the client's socket and the size limit.
pub(crate) struct Opened {
    pub(crate) fd: OwnedFd,
    pub(crate) max_message_size: u64,
}

/// Asks the broker to open a connection; the Windows status on failure.
pub(crate) async fn open_raw(
    session: &Session,
    family: &str,
    name: &str,
    user: Option<u32>,
) -> std::result::Result<Opened, AppServiceConnectionStatus> {
    let request = wire::Open {
        package_family_name: family.to_owned(),
        app_service_name: name.to_owned(),
        user,
    };
    match session.call_within(request, &[], crate::management::START).await {
        Ok((o, fds)) => match fds.into_iter().next() {
            Some(fd) => Ok(Opened { fd, max_message_size: o.max_message_size }),
            None => Err(AppServiceConnectionStatus::Unknown),
        },
        Err(Error::Broker { code: WindowsCode::Status(v), .. }) => {
            Err(AppServiceConnectionStatus::from_value(v)
                .unwrap_or(AppServiceConnectionStatus::Unknown))
        }
        Err(_) => Err(AppServiceConnectionStatus::Unknown),
    }
}

impl AppServiceConnection {
    /// A connection to open to `service` of package `family` (`new AppServiceConnection()`
    /// with `PackageFamilyName` and `AppServiceName` set).
    pub fn new(family: impl Into<String>, service: impl Into<String>) -> AppServiceConnection {
        AppServiceConnection {
            app_service_name: service.into(),
            package_family_name: family.into(),
            user: None,
            chan: None,
            reader: None,
        }
    }

    /// `OpenAsync`. Set a request handler before opening if the provider may send requests
    /// right away; requests that arrive before one is set wait for it.
    pub async fn open(&mut self, session: &Session) -> AppServiceConnectionStatus {
        if self.chan.is_some() {
            return AppServiceConnectionStatus::Success;
        }
        let user = self.user.as_ref().map(|u| u.uid);
        match open_raw(session, &self.package_family_name, &self.app_service_name, user).await {
            Ok(o) => match Self::attach(o.fd, o.max_message_size, None, None) {
                Ok((chan, reader)) => {
                    self.chan = Some(chan);
                    self.reader = Some(reader);
                    AppServiceConnectionStatus::Success
                }
                Err(_) => AppServiceConnectionStatus::Unknown,
            },
            Err(status) => status,
        }
    }

    fn attach(
        fd: OwnedFd,
        max: u64,
        task: Option<Arc<TaskState>>,
        on_close: Option<Box<dyn FnOnce() + Send>>,
    ) -> Result<(Arc<Channel>, tokio::task::JoinHandle<()>)> {
        let sock = AsyncSeqPacket::new_reading(fd)
            .map_err(|source| Error::Io { what: "registering the connection", source })?;
        let chan = Arc::new(Channel {
            sock,
            max,
            next_id: AtomicU64::new(1),
            pending: Mutex::new(Some(HashMap::new())),
            handler: Mutex::new(HandlerSlot::default()),
            closed: watch::channel(None).0,
            broken: Mutex::new(None),
            task: task.clone(),
        });
        if let Some(task) = task {
            let _ = task.chan.set(Arc::downgrade(&chan));
        }
        let reader = tokio::spawn(read_loop(chan.clone(), on_close));
        Ok((chan, reader))
    }

    /// The largest message either side may send on this connection, once open.
    pub fn max_message_size(&self) -> Option<u64> {
        self.chan.as_ref().map(|c| c.max)
    }

    /// `SendMessageAsync`: sends a request and waits until the other side's handler has
    /// completed. Never hangs on a dead peer: its loss completes the call with `Failure`.
    pub async fn send_message(&self, message: ValueSet) -> AppServiceResponse {
        let Some(chan) = &self.chan else {
            return AppServiceResponse::failed(AppServiceResponseStatus::Failure);
        };
        let id = chan.next_id.fetch_add(1, Ordering::Relaxed);
        let (bytes, fd) = match encode_frame(id, ChannelKind::Request, 0, Some(&message), chan.max)
        {
            Ok(x) => x,
            Err(status) => return AppServiceResponse::failed(status),
        };
        let (tx, rx) = oneshot::channel();
        match chan.pending.lock().expect("pending poisoned").as_mut() {
            Some(p) => {
                p.insert(id, tx);
            }
            None => return AppServiceResponse::failed(AppServiceResponseStatus::Failure),
        }
        let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
        if chan.sock.send(&bytes, &fds).await.is_err() {
            if let Some(p) = chan.pending.lock().expect("pending poisoned").as_mut() {
                p.remove(&id);
            }
            return AppServiceResponse::failed(AppServiceResponseStatus::Failure);
        }
        rx.await.unwrap_or_else(|_| AppServiceResponse::failed(AppServiceResponseStatus::Failure))
    }

    /// The `RequestReceived` event: `handler` runs for every request the other side sends,
    /// on the connection's reader task (keep it short; take a deferral for longer work).
    /// Requests that arrived before the handler was set are delivered now.
    pub fn on_request_received(
        &self,
        handler: impl Fn(AppServiceRequestReceivedEventArgs) + Send + Sync + 'static,
    ) {
        let Some(chan) = &self.chan else { return };
        let handler: Handler = Arc::new(handler);
        let queued = {
            let mut slot = chan.handler.lock().expect("handler poisoned");
            slot.handler = Some(handler.clone());
            std::mem::take(&mut slot.queued)
        };
        for args in queued {
            handler(args);
        }
    }

    /// The requests the other side sends, as a stream (an alternative to
    /// [`on_request_received`](Self::on_request_received)).
    pub fn requests(&self) -> mpsc::UnboundedReceiver<AppServiceRequestReceivedEventArgs> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.on_request_received(move |args| {
            let _ = tx.send(args);
        });
        rx
    }

    /// The `ServiceClosed` event: resolves with the status when the connection ends. A client
    /// sees `Completed` when the provider's task ended by itself (its last
    /// [`BackgroundTaskDeferral`] completed, or the provider closed or dropped the connection),
    /// `Canceled` when the system canceled the provider's task (idle, package update or
    /// removal, broker stopping), `ResourceLimitsExceeded` when it was canceled for resources,
    /// `Unknown` when the provider vanished (crashed or was killed). A provider sees `Canceled`
    /// when the client closed the connection, `Unknown` when the client vanished. On this
    /// side's own close it resolves with the status it sent.
    pub async fn service_closed(&self) -> AppServiceClosedStatus {
        let Some(chan) = &self.chan else { return AppServiceClosedStatus::Unknown };
        let mut rx = chan.closed.subscribe();
        match rx.wait_for(|s| s.is_some()).await {
            Ok(s) => s.unwrap_or(AppServiceClosedStatus::Unknown),
            Err(_) => AppServiceClosedStatus::Unknown,
        }
    }

    /// Why the connection ended, when the other side broke the protocol (a malformed frame,
    /// an unsealed memfd, …).
    pub fn close_reason(&self) -> Option<String> {
        self.chan.as_ref().and_then(|c| c.broken.lock().expect("broken poisoned").clone())
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.chan.as_ref().is_none_or(|c| c.is_closed())
    }

    /// `Close()`: tells the other side and ends the connection. Dropping the connection does
    /// the same. A client's close cancels the provider's background task (the provider sees
    /// `ServiceClosed(Canceled)` and its task's [`canceled`](BackgroundTaskInstance::canceled)
    /// resolves with `Abort`); a provider's close ends its task (the client sees `Completed`,
    /// or `Canceled` if the task had been canceled).
    pub fn close(&mut self) {
        if let Some(chan) = self.chan.take() {
            chan.close_with(chan.closing_status());
        }
    }

    /// `SendStatelessMessageAsync`: open, send one message, wait for the reply, close.
    pub async fn send_stateless_message(
        session: &Session,
        family: &str,
        service: &str,
        message: ValueSet,
    ) -> StatelessAppServiceResponse {
        let mut conn = AppServiceConnection::new(family, service);
        let status = conn.open(session).await;
        if status != AppServiceConnectionStatus::Success {
            return StatelessAppServiceResponse { status: status.into(), message: ValueSet::new() };
        }
        let r = conn.send_message(message).await;
        conn.close();
        StatelessAppServiceResponse { status: r.status.into(), message: r.message }
    }
}

impl Drop for AppServiceConnection {
    fn drop(&mut self) {
        self.close();
        // The reader ends by itself once the socket is shut down; it also runs the provider's
        // close report, so it is not aborted.
        let _ = self.reader.take();
    }
}

struct RequestState {
    chan: Arc<Channel>,
    id: u64,
    reply: Mutex<Option<ValueSet>>,
}

impl Drop for RequestState {
    /// The handler and every deferral have completed: the response goes out now.
    fn drop(&mut self) {
        let reply = self.reply.lock().map(|mut r| r.take()).unwrap_or(None).unwrap_or_default();
        let frame = encode_frame(
            self.id,
            ChannelKind::Response,
            AppServiceResponseStatus::Success.value(),
            Some(&reply),
            self.chan.max,
        )
        .or_else(|status| {
            encode_frame(self.id, ChannelKind::Response, status.value(), None, self.chan.max)
        });
        if let Ok((bytes, fd)) = frame {
            self.chan.send_detached(bytes, fd);
        }
    }
}

/// `AppServiceRequest`: a request the other side sent.
pub struct AppServiceRequest {
    message: ValueSet,
    state: Arc<RequestState>,
}

impl std::fmt::Debug for AppServiceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServiceRequest")
            .field("id", &self.state.id)
            .field("message", &self.message)
            .finish()
    }
}

impl AppServiceRequest {
    /// `Message`.
    pub fn message(&self) -> &ValueSet {
        &self.message
    }

    /// Takes the message out (leaves an empty set).
    pub fn take_message(&mut self) -> ValueSet {
        std::mem::take(&mut self.message)
    }

    /// `SendResponseAsync`: attaches the reply, sent when the handler (and its deferrals)
    /// complete. A second call gives `Failure`; a reply over the size limit gives
    /// `MessageSizeTooLarge` (and is not attached).
    pub fn send_response(&self, message: ValueSet) -> AppServiceResponseStatus {
        if self.state.chan.is_closed() {
            return AppServiceResponseStatus::Failure;
        }
        if message.encoded_len() as u64 > self.state.chan.max {
            return AppServiceResponseStatus::MessageSizeTooLarge;
        }
        let mut slot = self.state.reply.lock().expect("reply poisoned");
        if slot.is_some() {
            return AppServiceResponseStatus::Failure;
        }
        *slot = Some(message);
        AppServiceResponseStatus::Success
    }
}

/// `AppServiceRequestReceivedEventArgs`. The request completes when this value and every
/// deferral taken from it have been dropped (or completed).
#[derive(Debug)]
pub struct AppServiceRequestReceivedEventArgs {
    /// `Request`.
    pub request: AppServiceRequest,
}

impl AppServiceRequestReceivedEventArgs {
    /// `GetDeferral`: the request stays open until the deferral completes.
    pub fn get_deferral(&self) -> AppServiceDeferral {
        AppServiceDeferral { _state: self.request.state.clone() }
    }
}

/// `AppServiceDeferral`.
pub struct AppServiceDeferral {
    _state: Arc<RequestState>,
}

impl std::fmt::Debug for AppServiceDeferral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AppServiceDeferral")
    }
}

impl AppServiceDeferral {
    /// `Complete`.
    pub fn complete(self) {}
}

/// `Windows.System.User` as appipc has it: a Linux user, as the broker attests it. The broker
/// serves one user (its own; peers of other uids are refused), so every connection's user is
/// that user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The uid (`NonRoamingId` on Windows is a string; here the number).
    pub uid: u32,
    /// The account name NSS gives it (`KnownUserProperties.AccountName`), when it has one.
    pub name: Option<String>,
}

impl User {
    /// The user this process runs as (its uid as it sees it; in an app container that is the
    /// uid the sandbox maps it to).
    pub fn current() -> User {
        let uid = appipc_sys::cred::current_uid();
        User { uid, name: appipc_sys::ids::user_name(uid).ok().flatten() }
    }
}

/// What a provider's background task knows of its deferrals and cancellation.
#[derive(Debug)]
pub(crate) struct TaskState {
    id: u64,
    /// The host's session (its `Canceled` cancels every task); `None` in unit tests.
    session: Option<Session>,
    user: Option<User>,
    deferrals: Mutex<Deferrals>,
    canceled: watch::Sender<Option<BackgroundTaskCancellationReason>>,
    chan: std::sync::OnceLock<std::sync::Weak<Channel>>,
}

#[derive(Debug, Default)]
struct Deferrals {
    outstanding: usize,
    ended: bool,
}

impl TaskState {
    /// Why the task was canceled: by its client (`Abort`), or by the broker for the whole host.
    fn reason(&self) -> Option<BackgroundTaskCancellationReason> {
        (*self.canceled.borrow()).or_else(|| self.session.as_ref()?.canceled_reason())
    }

    fn cancel(&self, reason: BackgroundTaskCancellationReason) {
        self.canceled.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// A deferral completed; the last one ends the task, and with it the connection.
    fn deferral_completed(&self) {
        let end = {
            let mut d = self.deferrals.lock().expect("deferrals poisoned");
            d.outstanding = d.outstanding.saturating_sub(1);
            d.outstanding == 0 && !std::mem::replace(&mut d.ended, true)
        };
        if end && let Some(chan) = self.chan.get().and_then(std::sync::Weak::upgrade) {
            chan.close_with(chan.closing_status());
        }
    }
}

/// `IBackgroundTaskInstance` of an app-service provider: the task that serves one connection
/// (on Windows `IBackgroundTask.Run` or `OnBackgroundActivated` gets it, and its
/// `TriggerDetails` are the [`AppServiceTriggerDetails`]; here the trigger details own the
/// connection and [`AppServiceTriggerDetails::task_instance`] gives this handle).
///
/// Lifetime, as on Windows: while a [`BackgroundTaskDeferral`] is outstanding the task stays;
/// when the last one completes the task ends and its connection closes (the client sees
/// `ServiceClosed(Completed)`, or `Canceled` when the task had been canceled). Without a
/// deferral the task lasts as long as the provider keeps the connection (Windows would end
/// such a task about 30 s after its last request; appipc leaves that to the provider).
/// [`canceled`](Self::canceled) resolves when the client closes or loses the connection
/// (`Abort`) or when the broker cancels the host (`IdleTask`, `ServicingUpdate`, `Uninstall`,
/// `Terminating`); complete the deferral then.
#[derive(Debug, Clone)]
pub struct BackgroundTaskInstance {
    task: Arc<TaskState>,
}

impl BackgroundTaskInstance {
    /// `InstanceId`: the broker's id of the connection this task serves.
    pub fn instance_id(&self) -> u64 {
        self.task.id
    }

    /// `IBackgroundTaskInstance4.User`: the caller's user, as the broker attests it.
    pub fn user(&self) -> Option<&User> {
        self.task.user.as_ref()
    }

    /// `GetDeferral`: the task stays until every deferral taken has completed.
    pub fn get_deferral(&self) -> BackgroundTaskDeferral {
        self.task.deferrals.lock().expect("deferrals poisoned").outstanding += 1;
        BackgroundTaskDeferral { task: Some(self.task.clone()) }
    }

    /// The `Canceled` event: resolves with the reason when the task is canceled.
    pub async fn canceled(&self) -> BackgroundTaskCancellationReason {
        let mut rx = self.task.canceled.subscribe();
        let own = async {
            let r = rx.wait_for(|r| r.is_some()).await;
            r.ok().and_then(|r| *r).unwrap_or(BackgroundTaskCancellationReason::Abort)
        };
        match &self.task.session {
            Some(session) => tokio::select! {
                r = own => r,
                r = session.canceled() => r,
            },
            None => own.await,
        }
    }

    /// Why the task was canceled, if it was.
    pub fn cancellation_reason(&self) -> Option<BackgroundTaskCancellationReason> {
        self.task.reason()
    }
}

/// `BackgroundTaskDeferral`, from [`BackgroundTaskInstance::get_deferral`]. Completing (or
/// dropping) the last one ends the task.
#[derive(Debug)]
pub struct BackgroundTaskDeferral {
    task: Option<Arc<TaskState>>,
}

impl BackgroundTaskDeferral {
    /// `Complete`.
    pub fn complete(self) {}
}

impl Drop for BackgroundTaskDeferral {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.deferral_completed();
        }
    }
}

/// `AppServiceTriggerDetails`: a new connection to a provider, with the caller as the broker
/// attests it.
#[derive(Debug)]
pub struct AppServiceTriggerDetails {
    /// `Name` of the service.
    pub name: String,
    /// `CallerPackageFamilyName` (empty for an unpackaged caller).
    pub caller_package_family_name: String,
    /// The caller's trust level.
    pub caller_trust: TrustLevel,
    /// The caller's pid.
    pub caller_pid: u32,
    caller_capabilities: Vec<String>,
    connection: AppServiceConnection,
    task: BackgroundTaskInstance,
}

impl AppServiceTriggerDetails {
    /// `CheckCallerForCapabilityAsync`: true only if the caller declared the capability
    /// (case-insensitive), as the broker attests.
    pub fn check_caller_for_capability(&self, name: &str) -> bool {
        self.caller_capabilities.iter().any(|c| c.eq_ignore_ascii_case(name))
    }

    /// `AppServiceConnection`.
    pub fn app_service_connection(&self) -> &AppServiceConnection {
        &self.connection
    }

    /// Takes the connection.
    pub fn into_connection(self) -> AppServiceConnection {
        self.connection
    }

    /// The background task serving this connection (`IBackgroundTaskInstance`: its deferral,
    /// its `Canceled` event, its `User`).
    pub fn task_instance(&self) -> BackgroundTaskInstance {
        self.task.clone()
    }
}

/// A provider of one app service in this process (the Linux form of `OnBackgroundActivated` /
/// `IBackgroundTask.Run` for app services): every [`accept`](Self::accept)ed connection is one
/// background task, as every activation is on Windows.
///
/// ```no_run
/// # async fn demo(session: &appipc::Session) -> appipc::Result<()> {
/// use appipc::app_service::AppServiceProvider;
/// let mut provider = AppServiceProvider::register(session, "com.contoso.echo").await?;
/// while let Some(details) = provider.accept().await {
///     tokio::spawn(async move {
///         // As Windows' sample: a deferral keeps the task; complete it when canceled.
///         let task = details.task_instance();
///         let deferral = task.get_deferral();
///         let conn = details.into_connection();
///         conn.on_request_received(|args| {
///             let reply = args.request.message().clone();
///             args.request.send_response(reply);
///         });
///         let reason = task.canceled().await;
///         eprintln!("canceled: {reason}");
///         deferral.complete();
///     });
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AppServiceProvider {
    session: Session,
    name: String,
    rx: mpsc::UnboundedReceiver<(IncomingConnection, OwnedFd)>,
}

impl AppServiceProvider {
    /// Registers this process as host of `name`, a service its package declares (for an
    /// in-process service, its own application must be the one that declares it).
    pub async fn register(session: &Session, name: &str) -> Result<AppServiceProvider> {
        let (tx, rx) = mpsc::unbounded_channel();
        session.route_app_service(name, tx);
        session
            .call(wire::RegisterHost { app_service_name: name.to_owned(), serving: None })
            .await?;
        Ok(AppServiceProvider { session: session.clone(), name: name.to_owned(), rx })
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the next connection; `None` when the broker session has ended.
    pub async fn accept(&mut self) -> Option<AppServiceTriggerDetails> {
        let (incoming, fd) = self.rx.recv().await?;
        let session = self.session.clone();
        let id = incoming.connection_id;
        let name = self.name.clone();
        session.hosting(&name, id, true);
        let on_close: Box<dyn FnOnce() + Send> = Box::new(move || {
            session.hosting(&name, id, false);
            tokio::spawn(async move {
                let _ = session.call(wire::ConnectionClosed { connection_id: id }).await;
            });
        });
        let user = incoming.caller_uid.map(|uid| User { uid, name: incoming.caller_user_name });
        let task = Arc::new(TaskState {
            id,
            session: Some(self.session.clone()),
            user: user.clone(),
            deferrals: Mutex::new(Deferrals::default()),
            canceled: watch::channel(None).0,
            chan: std::sync::OnceLock::new(),
        });
        let (chan, reader) = AppServiceConnection::attach(
            fd,
            incoming.max_message_size,
            Some(task.clone()),
            Some(on_close),
        )
        .ok()?;
        let connection = AppServiceConnection {
            app_service_name: incoming.app_service_name.clone(),
            package_family_name: std::env::var("APPIPC_PACKAGE_FAMILY_NAME").unwrap_or_default(),
            user,
            chan: Some(chan),
            reader: Some(reader),
        };
        Some(AppServiceTriggerDetails {
            name: incoming.app_service_name,
            caller_package_family_name: incoming.caller_package_family_name,
            caller_trust: incoming.caller_trust,
            caller_pid: incoming.caller_pid,
            caller_capabilities: incoming.caller_capabilities,
            connection,
            task: BackgroundTaskInstance { task },
        })
    }
}

/// `AppServiceCatalog`.
#[derive(Debug)]
pub struct AppServiceCatalog;

impl AppServiceCatalog {
    /// `FindAppServiceProvidersAsync`: the installed packages that declare `name`.
    pub async fn find_app_service_providers(
        session: &Session,
        name: &str,
    ) -> Result<Vec<AppServiceProviderInfo>> {
        session.call(wire::FindProviders { app_service_name: name.to_owned() }).await
    }

    /// Every declared service of the packages this caller may see, and the live connections
    /// (appipc extension; `appipc app-service list`).
    pub async fn list(session: &Session) -> Result<AppServiceList> {
        session.call(wire::List {}).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two connected ends, as the broker would hand out.
    fn pair(max: u64) -> (AppServiceConnection, AppServiceConnection) {
        let (a, b) = appipc_sys::socket::seqpacket_pair().unwrap();
        let mk = |fd| {
            let (chan, reader) = AppServiceConnection::attach(fd, max, None, None).unwrap();
            AppServiceConnection {
                app_service_name: "t".into(),
                package_family_name: "P_x".into(),
                user: None,
                chan: Some(chan),
                reader: Some(reader),
            }
        };
        (mk(a), mk(b))
    }

    fn vs(k: &str, v: i32) -> ValueSet {
        let mut s = ValueSet::new();
        s.insert(k, v);
        s
    }

    #[tokio::test]
    async fn request_response_both_ways() {
        let (client, provider) = pair(1 << 20);
        provider.on_request_received(|args| {
            let n = args.request.message().get("n").and_then(|v| v.as_int32()).unwrap_or(0);
            assert_eq!(
                args.request.send_response(vs("n", n + 1)),
                AppServiceResponseStatus::Success
            );
        });
        client.on_request_received(|args| {
            args.request.send_response(vs("from_client", 7));
        });
        let r = client.send_message(vs("n", 41)).await;
        assert_eq!(r.status, AppServiceResponseStatus::Success);
        assert_eq!(r.message.get("n").and_then(|v| v.as_int32()), Some(42));
        let r = provider.send_message(ValueSet::new()).await;
        assert_eq!(r.message.get("from_client").and_then(|v| v.as_int32()), Some(7));
    }

    #[tokio::test]
    async fn completion_waits_for_deferral_and_reply_is_optional() {
        let (client, provider) = pair(1 << 20);
        provider.on_request_received(|args| {
            if args.request.message().has_key("silent") {
                return; // completes with no reply
            }
            let d = args.get_deferral();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                assert_eq!(
                    args.request.send_response(vs("late", 1)),
                    AppServiceResponseStatus::Success
                );
                assert_eq!(
                    args.request.send_response(vs("again", 2)),
                    AppServiceResponseStatus::Failure
                );
                d.complete();
            });
        });
        let t = std::time::Instant::now();
        let r = client.send_message(ValueSet::new()).await;
        assert!(
            t.elapsed() >= std::time::Duration::from_millis(50),
            "completed before the deferral"
        );
        assert_eq!(r.status, AppServiceResponseStatus::Success);
        assert_eq!(r.message, vs("late", 1), "the first response wins");
        let r = client.send_message(vs("silent", 0)).await;
        assert_eq!((r.status, r.message.len()), (AppServiceResponseStatus::Success, 0));
    }

    #[tokio::test]
    async fn size_limits_both_ways_and_memfd_for_large_messages() {
        let (client, provider) = pair(4 << 20);
        provider.on_request_received(|mut args| {
            let m = args.request.take_message();
            let big = m.has_key("want_big");
            let reply = if big {
                let mut r = ValueSet::new();
                r.insert("blob", vec![7u8; 5 << 20]); // over the 4 MiB limit
                r
            } else {
                m
            };
            let status = args.request.send_response(reply);
            if big {
                assert_eq!(status, AppServiceResponseStatus::MessageSizeTooLarge);
            }
        });
        // 3 MiB: travels in a sealed memfd and comes back whole.
        let mut m = ValueSet::new();
        m.insert("blob", (0..3u32 << 20).map(|i| i as u8).collect::<Vec<u8>>());
        let r = client.send_message(m.clone()).await;
        assert_eq!(r.status, AppServiceResponseStatus::Success);
        assert_eq!(r.message, m);
        // 5 MiB: refused at once by the sender, nothing sent.
        let mut big = ValueSet::new();
        big.insert("blob", vec![0u8; 5 << 20]);
        assert_eq!(
            client.send_message(big).await.status,
            AppServiceResponseStatus::MessageSizeTooLarge
        );
        // A reply over the limit is not attached; the request completes with an empty reply.
        let r = client.send_message(vs("want_big", 1)).await;
        assert_eq!((r.status, r.message.len()), (AppServiceResponseStatus::Success, 0));
    }

    #[tokio::test]
    async fn receiver_refuses_oversized_memfd_without_decoding() {
        // The provider's limit is smaller than what the client believes.
        let (a, b) = appipc_sys::socket::seqpacket_pair().unwrap();
        let (cchan, creader) = AppServiceConnection::attach(a, 8 << 20, None, None).unwrap();
        let client = AppServiceConnection {
            app_service_name: "t".into(),
            package_family_name: "P".into(),
            user: None,
            chan: Some(cchan),
            reader: Some(creader),
        };
        let (pchan, preader) = AppServiceConnection::attach(b, 1 << 20, None, None).unwrap();
        let provider = AppServiceConnection {
            app_service_name: "t".into(),
            package_family_name: "P".into(),
            user: None,
            chan: Some(pchan),
            reader: Some(preader),
        };
        provider.on_request_received(|_| panic!("an oversized request must not reach the handler"));
        let mut m = ValueSet::new();
        m.insert("blob", vec![1u8; 2 << 20]);
        assert_eq!(
            client.send_message(m).await.status,
            AppServiceResponseStatus::MessageSizeTooLarge
        );
    }

    #[tokio::test]
    async fn peer_loss_fails_pending_requests_and_reports_closed() {
        let (client, provider) = pair(1 << 20);
        provider.on_request_received(|args| {
            // Hold the request forever: the connection will be lost first.
            std::mem::forget(args.get_deferral());
        });
        let pending = client.send_message(ValueSet::new());
        let killer = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            // Vanish without a close frame, as a crashed process would.
            let chan = provider.chan.as_ref().unwrap();
            appipc_sys::socket::shutdown(&chan.sock).unwrap();
        };
        let (r, ()) = tokio::join!(pending, killer);
        assert_eq!(r.status, AppServiceResponseStatus::Failure);
        assert_eq!(client.service_closed().await, AppServiceClosedStatus::Unknown);
    }

    #[tokio::test]
    async fn close_is_reported_as_canceled() {
        let (client, mut provider) = pair(1 << 20);
        provider.close();
        assert_eq!(client.service_closed().await, AppServiceClosedStatus::Canceled);
        assert_eq!(
            client.send_message(ValueSet::new()).await.status,
            AppServiceResponseStatus::Failure
        );
    }

    /// A client end and a provider end whose connection is a background task.
    fn task_pair() -> (AppServiceConnection, AppServiceConnection, BackgroundTaskInstance) {
        let (a, b) = appipc_sys::socket::seqpacket_pair().unwrap();
        let (cchan, creader) = AppServiceConnection::attach(a, 1 << 20, None, None).unwrap();
        let task = Arc::new(TaskState {
            id: 9,
            session: None,
            user: Some(User { uid: 1000, name: Some("alice".into()) }),
            deferrals: Mutex::new(Deferrals::default()),
            canceled: watch::channel(None).0,
            chan: std::sync::OnceLock::new(),
        });
        let (pchan, preader) =
            AppServiceConnection::attach(b, 1 << 20, Some(task.clone()), None).unwrap();
        let mk = |chan, reader| AppServiceConnection {
            app_service_name: "t".into(),
            package_family_name: "P".into(),
            user: None,
            chan: Some(chan),
            reader: Some(reader),
        };
        (mk(cchan, creader), mk(pchan, preader), BackgroundTaskInstance { task })
    }

    #[tokio::test]
    async fn the_last_task_deferral_ends_the_task_completed() {
        let (client, provider, task) = task_pair();
        provider.on_request_received(|args| {
            args.request.send_response(vs("ok", 1));
        });
        let (d1, d2) = (task.get_deferral(), task.get_deferral());
        d1.complete();
        // One deferral still outstanding: the task and its connection stay.
        let r = client.send_message(ValueSet::new()).await;
        assert_eq!(r.status, AppServiceResponseStatus::Success);
        assert!(!client.is_closed());
        d2.complete();
        assert_eq!(client.service_closed().await, AppServiceClosedStatus::Completed);
        assert_eq!(provider.service_closed().await, AppServiceClosedStatus::Completed);
        assert_eq!(task.cancellation_reason(), None, "ending is not a cancellation");
        assert_eq!(task.user().map(|u| u.uid), Some(1000));
    }

    #[tokio::test]
    async fn a_provider_close_is_completed_and_a_canceled_task_closes_canceled() {
        let (client, mut provider, _task) = task_pair();
        provider.close();
        assert_eq!(client.service_closed().await, AppServiceClosedStatus::Completed);

        let (client, provider, task) = task_pair();
        let d = task.get_deferral();
        task.task.cancel(BackgroundTaskCancellationReason::ServicingUpdate);
        assert_eq!(task.canceled().await, BackgroundTaskCancellationReason::ServicingUpdate);
        drop(d);
        assert_eq!(client.service_closed().await, AppServiceClosedStatus::Canceled);
        drop(provider);

        let (client, _provider, task) = task_pair();
        let _d = task.get_deferral();
        task.task.cancel(BackgroundTaskCancellationReason::ResourceRevocation);
        drop(_d);
        assert_eq!(client.service_closed().await, AppServiceClosedStatus::ResourceLimitsExceeded);
    }

    #[tokio::test]
    async fn a_client_close_cancels_the_providers_task() {
        let (mut client, provider, task) = task_pair();
        let _d = task.get_deferral();
        client.close();
        assert_eq!(task.canceled().await, BackgroundTaskCancellationReason::Abort);
        assert_eq!(provider.service_closed().await, AppServiceClosedStatus::Canceled);
        // A client that vanishes cancels it too.
        let (client, provider, task) = task_pair();
        appipc_sys::socket::shutdown(&client.chan.as_ref().unwrap().sock).unwrap();
        assert_eq!(task.canceled().await, BackgroundTaskCancellationReason::Abort);
        assert_eq!(provider.service_closed().await, AppServiceClosedStatus::Unknown);
    }

    #[tokio::test]
    async fn garbage_from_the_peer_closes_with_a_reason() {
        let (a, b) = appipc_sys::socket::seqpacket_pair().unwrap();
        let (chan, reader) = AppServiceConnection::attach(a, 1 << 20, None, None).unwrap();
        let conn = AppServiceConnection {
            app_service_name: "t".into(),
            package_family_name: "P".into(),
            user: None,
            chan: Some(chan),
            reader: Some(reader),
        };
        appipc_sys::socket::send(&b, b"\xff\x00garbage", &[], appipc_sys::socket::Blocking::Yes)
            .unwrap();
        assert_eq!(conn.service_closed().await, AppServiceClosedStatus::Unknown);
        assert!(conn.close_reason().unwrap().contains("malformed"), "{:?}", conn.close_reason());
    }
}
