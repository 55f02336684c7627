//! Typed interfaces over RPC connections: what `#[appipc::interface]` generates code against.
//!
//! A trait marked `#[appipc::interface(uuid = "…", version = "M.m")]` gets a client proxy
//! (`<Trait>Client`, async), a blocking one (`<Trait>BlockingClient`) and a server dispatcher
//! (an [`Interface`] implementation for `dyn Trait`). Arguments and results are serde types
//! carried as CBOR; methods are numbered in declaration order (their procnum); appending a
//! method is a minor version, anything else a major one. The format on the wire is in
//! docs/wire.md ("RPC calls").
//!
//! ```no_run
//! use std::sync::Arc;
//! use appipc::rpc::{CallContext, CallResult, Fault, Interfaces, ObjectRef, RpcServer};
//!
//! #[appipc::interface(uuid = "5b0c6f8e-2a41-4c57-9d0e-6a1f3e2b7c90", version = "1.0")]
//! pub trait Thermometer {
//!     /// Degrees Celsius of sensor `n`.
//!     async fn read(&self, cx: &CallContext, n: u32) -> CallResult<f64>;
//! }
//!
//! struct Probe;
//! #[appipc::async_trait]
//! impl Thermometer for Probe {
//!     async fn read(&self, cx: &CallContext, n: u32) -> CallResult<f64> {
//!         if cx.caller().is_some_and(|c| !c.app_container) {
//!             return Err(Fault::access_denied("app containers only"));
//!         }
//!         Ok(20.0 + f64::from(n))
//!     }
//! }
//!
//! # async fn demo(session: &appipc::Session) -> appipc::Result<()> {
//! let server = RpcServer::register(session, "contoso.thermo", None).await?;
//! tokio::spawn(server.serve(Interfaces::new().with::<dyn Thermometer>(Arc::new(Probe))));
//! let client = ThermometerClient::connect(session, "contoso.thermo", None).await?;
//! assert_eq!(client.read(2).await?, 22.0);
//! # Ok(()) }
//! ```
//!
//! Errors a call returns ([`Error::Rpc`], Windows' codes): 1722 `RPC_S_SERVER_UNAVAILABLE`
//! (the connection was closed before the call was sent), 1726 `RPC_S_CALL_FAILED` (it closed
//! during the call: the server may have run it), 1717 `RPC_S_UNKNOWN_IF` (the endpoint does not
//! serve the interface at this version), 1745 `RPC_S_PROCNUM_OUT_OF_RANGE`, 1783
//! `RPC_X_BAD_STUB_DATA` (arguments or result that do not decode as the method's types), 1818
//! `RPC_S_CALL_CANCELLED` (the call's timeout passed), 87 (arguments larger than a message),
//! and whatever [`Fault`] the server's method returned (5 for its own access checks).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use appipc_sys::aio::AsyncSeqPacket;
use appipc_sys::socket::{self, Blocking, MAX_FDS_PER_MESSAGE};
use minicbor::{Decode, Encode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::{Semaphore, oneshot};

use super::{MAX_MESSAGE, RpcCaller, RpcClientConnection, RpcConnected, RpcServer};
use crate::error::{Error, Result};
use crate::session::Session;

/// `RPC_S_ACCESS_DENIED`.
pub const RPC_S_ACCESS_DENIED: u32 = 5;
/// `ERROR_INVALID_PARAMETER`: arguments larger than one message.
pub const ERROR_INVALID_PARAMETER: u32 = 87;
/// `RPC_S_UNKNOWN_IF`: the endpoint serves no such interface (or not at this version).
pub const RPC_S_UNKNOWN_IF: u32 = 1717;
/// `RPC_S_SERVER_UNAVAILABLE`: no server (the connection closed before the call was sent).
pub const RPC_S_SERVER_UNAVAILABLE: u32 = 1722;
/// `RPC_S_SERVER_TOO_BUSY`.
pub const RPC_S_SERVER_TOO_BUSY: u32 = 1723;
/// `RPC_S_CALL_FAILED`: the connection closed during the call.
pub const RPC_S_CALL_FAILED: u32 = 1726;
/// `RPC_S_PROCNUM_OUT_OF_RANGE`: the interface has no method of that number.
pub const RPC_S_PROCNUM_OUT_OF_RANGE: u32 = 1745;
/// `RPC_X_BAD_STUB_DATA`: arguments or a result that do not decode as the method's types.
pub const RPC_X_BAD_STUB_DATA: u32 = 1783;
/// `RPC_S_CALL_CANCELLED`.
pub const RPC_S_CALL_CANCELLED: u32 = 1818;

/// Calls one connection runs at once; past it the server stops reading that connection until
/// one ends (the client's further calls wait in its socket).
pub const MAX_CALLS_IN_FLIGHT: usize = 64;

/// A boxed future, as the generated dispatchers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a method of an interface returns.
pub type CallResult<T> = std::result::Result<T, Fault>;

/// A method's failure, sent to the client as its Win32 code and message (a fault PDU); the
/// client's call returns it as [`Error::Rpc`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The Win32 / `RPC_S_…` code.
    pub code: u32,
    /// Why, for a person.
    pub message: String,
}

impl Fault {
    /// A fault with a code and a message.
    pub fn new(code: u32, message: impl Into<String>) -> Fault {
        Fault { code, message: message.into() }
    }

    /// `RPC_S_ACCESS_DENIED` (5): the method's own check refused the caller.
    pub fn access_denied(message: impl Into<String>) -> Fault {
        Fault::new(RPC_S_ACCESS_DENIED, message)
    }

    fn bad_stub_data(message: impl Into<String>) -> Fault {
        Fault::new(RPC_X_BAD_STUB_DATA, message)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (error {})", self.message, self.code)
    }
}

impl std::error::Error for Fault {}

impl From<Fault> for Error {
    fn from(f: Fault) -> Error {
        Error::Rpc { code: f.code, message: f.message }
    }
}

fn rpc_error(code: u32, message: impl Into<String>) -> Error {
    Error::Rpc { code, message: message.into() }
}

/// An interface a `#[appipc::interface]` trait declares, implemented for `dyn Trait`.
pub trait Interface: Send + Sync + 'static {
    /// The trait's name.
    const NAME: &'static str;
    /// The interface's UUID, lowercase.
    const UUID: &'static str;
    /// (major, minor).
    const VERSION: (u16, u16);
    /// The methods' names; a method's procnum is its index.
    const METHODS: &'static [&'static str];
    /// The async client proxy.
    type Client;
    /// The blocking client proxy.
    type BlockingClient;
    /// Wraps a bound connection in the async proxy.
    fn client(proxy: Proxy) -> Self::Client;
    /// Wraps a bound connection in the blocking proxy.
    fn blocking_client(proxy: BlockingProxy) -> Self::BlockingClient;
    /// Runs method `procnum` of `this` with the encoded `args`.
    fn dispatch(
        this: Arc<Self>,
        cx: CallContext,
        procnum: u32,
        args: Args,
    ) -> BoxFuture<'static, CallResult<Encoded>>;
}

/// Who is on the other side of a connection.
#[derive(Debug, Clone)]
enum Peer {
    /// This side serves: the client the broker attested.
    Client(Arc<RpcCaller>),
    /// This side is the client: the server the broker attested.
    Server(Arc<RpcConnected>),
    /// This side is the client of a COM object: as `Server`, and failures are `HRESULT`s
    /// ([`Error::Com`]).
    ComServer(Arc<RpcConnected>),
}

impl Peer {
    fn server(&self) -> Option<&RpcConnected> {
        match self {
            Peer::Server(s) | Peer::ComServer(s) => Some(s),
            Peer::Client(_) => None,
        }
    }

    /// A call's failure as this connection reports it: a COM proxy's as an `HRESULT`.
    fn map_error(&self, e: Error) -> Error {
        match (self, e) {
            (Peer::ComServer(_), Error::Rpc { code, message }) => {
                Error::Com { hresult: crate::com::hresult_of_rpc(code), message }
            }
            (_, e) => e,
        }
    }
}

/// What a method of a served interface learns about its call.
#[derive(Debug, Clone)]
pub struct CallContext {
    peer: Peer,
    interface: &'static str,
    method: &'static str,
    procnum: u32,
    call_id: u64,
}

impl CallContext {
    /// The caller, as the broker attested it when it connected (`RpcServerInqCallAttributes`):
    /// `Some` for the methods of an endpoint's interfaces and of the objects this server hands
    /// its clients; `None` for a callback a client serves (the caller is then the server,
    /// [`CallContext::server`]). A reference passed on keeps the identity of the connection it
    /// was first sent over.
    pub fn caller(&self) -> Option<&RpcCaller> {
        match &self.peer {
            Peer::Client(c) => Some(c),
            Peer::Server(_) | Peer::ComServer(_) => None,
        }
    }

    /// The server, when this side is a client serving a callback object to it.
    pub fn server(&self) -> Option<&RpcConnected> {
        self.peer.server()
    }

    /// The interface's name.
    pub fn interface(&self) -> &'static str {
        self.interface
    }

    /// The method's name.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// The method's number.
    pub fn procnum(&self) -> u32 {
        self.procnum
    }

    /// The call's id on its connection.
    pub fn call_id(&self) -> u64 {
        self.call_id
    }

    /// Encodes a method's result (generated code calls this).
    #[doc(hidden)]
    pub fn encode_result<R: Serialize>(&self, r: CallResult<R>) -> CallResult<Encoded> {
        let value = r?;
        encode_value(&value, &self.peer).map_err(|e| Fault::new(e.0, e.1))
    }
}

/// A value encoded for the wire: CBOR bytes and the fds of the object references in it.
#[derive(Debug)]
pub struct Encoded {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
}

/// A call's encoded arguments, as the dispatcher gets them.
#[derive(Debug)]
pub struct Args {
    bytes: Vec<u8>,
    fds: Vec<OwnedFd>,
    peer: Peer,
}

impl Args {
    /// Decodes the arguments as the method's tuple of types (generated code calls this).
    #[doc(hidden)]
    pub fn decode<T: DeserializeOwned>(self) -> CallResult<T> {
        decode_value(&self.bytes, self.fds, &self.peer).map_err(Fault::bad_stub_data)
    }
}

// ---------------------------------------------------------------------------------------------
// The envelope: one CBOR message per SOCK_SEQPACKET datagram.

#[derive(Debug, Encode, Decode)]
enum Envelope {
    #[n(0)]
    Bind {
        #[n(0)]
        uuid: String,
        #[n(1)]
        major: u16,
        #[n(2)]
        minor: u16,
    },
    #[n(1)]
    BindAck {
        #[n(0)]
        status: u32,
        #[n(1)]
        message: String,
    },
    #[n(2)]
    Request {
        #[n(0)]
        id: u64,
        #[n(1)]
        procnum: u32,
        #[cbor(n(2), with = "minicbor::bytes")]
        args: Vec<u8>,
    },
    #[n(3)]
    Response {
        #[n(0)]
        id: u64,
        #[cbor(n(1), with = "minicbor::bytes")]
        result: Vec<u8>,
    },
    #[n(4)]
    Fault {
        #[n(0)]
        id: u64,
        #[n(1)]
        code: u32,
        #[n(2)]
        message: String,
    },
    #[n(5)]
    Cancel {
        #[n(0)]
        id: u64,
    },
}

impl Envelope {
    fn to_cbor(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    fn from_cbor(bytes: &[u8]) -> std::result::Result<Envelope, String> {
        minicbor::decode(bytes).map_err(|e| e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Values: serde over CBOR, object references as indexes into the message's fds.

thread_local! {
    /// While a value is encoded: the peer it goes to and the fds of its object references.
    static ENCODING: RefCell<Option<(Peer, Vec<OwnedFd>)>> = const { RefCell::new(None) };
    /// While a value is decoded: the peer it came from and the fds that came with it.
    static DECODING: RefCell<Option<(Peer, Vec<Option<OwnedFd>>)>> = const { RefCell::new(None) };
}

fn encode_value<T: Serialize + ?Sized>(
    value: &T,
    peer: &Peer,
) -> std::result::Result<Encoded, (u32, String)> {
    let outer = ENCODING.with(|e| e.replace(Some((peer.clone(), Vec::new()))));
    let bytes = minicbor_serde::to_vec(value);
    let (_, fds) = ENCODING.with(|e| e.replace(outer)).expect("set above");
    let bytes = bytes.map_err(|e| (RPC_X_BAD_STUB_DATA, format!("cannot encode: {e}")))?;
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err((
            ERROR_INVALID_PARAMETER,
            format!(
                "{} object references in one message: at most {MAX_FDS_PER_MESSAGE}",
                fds.len()
            ),
        ));
    }
    Ok(Encoded { bytes, fds })
}

fn decode_value<T: DeserializeOwned>(
    bytes: &[u8],
    fds: Vec<OwnedFd>,
    peer: &Peer,
) -> std::result::Result<T, String> {
    let fds = fds.into_iter().map(Some).collect();
    let outer = DECODING.with(|d| d.replace(Some((peer.clone(), fds))));
    let mut de = minicbor_serde::Deserializer::new(bytes);
    let value = T::deserialize(&mut de).map_err(|e| e.to_string());
    DECODING.with(|d| d.replace(outer));
    let value = value?;
    if de.decoder().position() != bytes.len() {
        return Err(format!("{} bytes after the value", bytes.len() - de.decoder().position()));
    }
    Ok(value)
}

/// The runtime that serves objects handed out where no runtime runs (blocking clients).
fn background() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("appipc-rpc-objects")
            .enable_all()
            .build()
            .expect("starting the runtime that serves RPC objects")
    })
}

fn spawn<F: Future<Output = ()> + Send + 'static>(f: F) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => drop(h.spawn(f)),
        Err(_) => drop(background().spawn(f)),
    }
}

/// A reference to an object of interface `T` that crosses a call as a channel of its own (an
/// fd): a server hands a client a live object, a client passes the server a callback.
///
/// Made from an implementation ([`ObjectRef::new`]): sending it serves the object on a fresh
/// connection and gives the other side its end. Received: call it through
/// [`ObjectRef::client`] (or [`ObjectRef::blocking_client`]); passing it on hands the same
/// object to a third process. Its lifetime is the channel's: when the last holder's end closes
/// (its proxy dropped, or its process died, `SIGKILL` included) the serving side drops its
/// `Arc` of the implementation, so the implementer's `Drop` runs once no other reference is
/// left. At most 16 references cross in one call.
pub struct ObjectRef<T: ?Sized> {
    inner: RefInner<T>,
}

enum RefInner<T: ?Sized> {
    Local(Arc<T>),
    Remote { fd: OwnedFd, peer: Peer },
}

impl<T: ?Sized> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            RefInner::Local(_) => f.write_str("ObjectRef(local)"),
            RefInner::Remote { fd, .. } => write!(f, "ObjectRef(remote, {fd:?})"),
        }
    }
}

impl<T: ?Sized + Interface> ObjectRef<T> {
    /// A reference to an object of this process.
    pub fn new(object: Arc<T>) -> ObjectRef<T> {
        ObjectRef { inner: RefInner::Local(object) }
    }

    /// Whether the object lives in this process.
    pub fn is_local(&self) -> bool {
        matches!(self.inner, RefInner::Local(_))
    }

    /// An async proxy to the object (in a tokio runtime). A local object is served on a fresh
    /// connection of this process, as a remote one would be.
    pub fn client(self) -> Result<T::Client> {
        let (fd, peer) = self.into_channel()?;
        Ok(T::client(Proxy::from_fd(fd, peer)?))
    }

    /// A blocking proxy to the object.
    pub fn blocking_client(self) -> Result<T::BlockingClient> {
        let (fd, peer) = self.into_channel()?;
        Ok(T::blocking_client(BlockingProxy::from_fd(fd, peer)?))
    }

    fn into_channel(self) -> Result<(OwnedFd, Peer)> {
        match self.inner {
            RefInner::Remote { fd, peer } => Ok((fd, peer)),
            RefInner::Local(object) => {
                let (ours, theirs) = socket::seqpacket_pair()
                    .map_err(|source| Error::Io { what: "creating an object's channel", source })?;
                // In-process: the caller is this process itself, given as a server without a
                // connection id, package or SID (no broker attested it).
                let peer = Peer::Server(Arc::new(RpcConnected {
                    connection_id: 0,
                    server_package_family_name: String::new(),
                    server_sid: String::new(),
                    server_pid: std::process::id(),
                }));
                serve_object(object, ours, peer.clone());
                Ok((theirs, peer))
            }
        }
    }
}

fn serve_object<T: ?Sized + Interface>(object: Arc<T>, fd: OwnedFd, peer: Peer) {
    let entry = Arc::new(Entry::of(object));
    // Counted for a COM server: objects it hands its clients, not the callbacks it passes
    // as a client of another server.
    let served = matches!(peer, Peer::Client(_)).then(ObjectServed::new);
    spawn(async move {
        let _served = served;
        let Ok(sock) = AsyncSeqPacket::new_reading(fd) else { return };
        serve_channel(Arc::new(sock), Bound::Object(entry), peer).await;
    });
}

/// How many objects this process serves on channels of their own ([`ObjectRef`]s it handed
/// out), changed as they come and go: part of a COM server's count.
pub(crate) static OBJECTS_SERVED: std::sync::LazyLock<tokio::sync::watch::Sender<usize>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::channel(0).0);

/// One object served, counted in [`OBJECTS_SERVED`] until dropped.
struct ObjectServed;

impl ObjectServed {
    fn new() -> ObjectServed {
        OBJECTS_SERVED.send_modify(|n| *n += 1);
        ObjectServed
    }
}

impl Drop for ObjectServed {
    fn drop(&mut self) {
        OBJECTS_SERVED.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Serves a COM activation's channel: its first message (the client's bind) is answered by
/// the object `make` creates — or by the `HRESULT` it fails with (`CO_E_SERVER_STOPPING`, a
/// factory's failure) — and the object is then served as an endpoint's interfaces are, until
/// the client's last reference is gone. `make`'s guard is dropped then.
pub(crate) async fn serve_activation<G: Send + 'static>(
    fd: OwnedFd,
    caller: RpcCaller,
    make: impl FnOnce() -> std::result::Result<(Interfaces, G), (u32, String)>,
) {
    let Ok(sock) = AsyncSeqPacket::new_reading(fd) else { return };
    let sock = Arc::new(sock);
    // A client that does not bind soon gives its channel back: it cannot hold the server's
    // fds with activations it never uses.
    let first = tokio::time::timeout(BIND_WITHIN, sock.recv(MAX_MESSAGE)).await;
    let Ok(Ok(Some(packet))) = first else { return };
    let Ok(Envelope::Bind { uuid, major, minor }) = Envelope::from_cbor(&packet.data) else {
        return;
    };
    match make() {
        Err((status, message)) => {
            // A factory's failure without a code is still a failure (E_FAIL), not a bind.
            let status = if status == 0 { 0x8000_4005 } else { status };
            send_envelope(&sock, &Envelope::BindAck { status, message }, &[]).await;
        }
        Ok((table, guard)) => {
            let mut bound = Bound::Endpoint(Arc::new(table), None);
            if send_envelope(&sock, &bound.bind(&uuid, major, minor), &[]).await {
                serve_channel(sock, bound, Peer::Client(Arc::new(caller))).await;
            }
            drop(guard);
        }
    }
}

/// The reference to a COM object whose channel is bound to `T`: its proxies report failures
/// as `HRESULT`s, and so do those of the references it hands out.
pub(crate) fn com_object<T: ?Sized + Interface>(fd: OwnedFd, server: RpcConnected) -> ObjectRef<T> {
    ObjectRef { inner: RefInner::Remote { fd, peer: Peer::ComServer(Arc::new(server)) } }
}

/// How long a COM server waits for an activation's bind (the client's SDK sends it at once).
const BIND_WITHIN: Duration = Duration::from_secs(10);

/// How long a COM client waits for the server's answer to its bind (its factory runs
/// meanwhile).
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

/// How a bind (an endpoint's, or a COM activation's) ended.
pub(crate) enum ComBind<P> {
    /// The object serves the interface.
    Bound(P),
    /// The server answered with this status (an `HRESULT`, or 1717 for an interface the
    /// object does not serve).
    Refused(u32, String),
    /// The channel closed before an answer (the server died or exited).
    Closed,
    /// No answer within two minutes.
    NoAnswer,
}

/// Binds interface `T` on a COM activation's channel; bound, the channel is the object's
/// reference ([`com_object`]).
pub(crate) async fn bind_com<T: ?Sized + Interface>(fd: OwnedFd) -> Result<ComBind<OwnedFd>> {
    let sock = AsyncSeqPacket::new_reading(fd)
        .map_err(|source| Error::Io { what: "registering a COM object's channel", source })?;
    Ok(match send_bind::<T>(&sock, Some(ANSWER_WITHIN)).await {
        ComBind::Bound(()) => ComBind::Bound(sock.into_inner()),
        ComBind::Refused(status, message) => ComBind::Refused(status, message),
        ComBind::Closed => ComBind::Closed,
        ComBind::NoAnswer => ComBind::NoAnswer,
    })
}

/// Binds interface `T` on a connection (an endpoint's or a COM activation's): its first
/// message, and the server's answer, waited for at most `within`.
async fn send_bind<T: ?Sized + Interface>(
    sock: &AsyncSeqPacket,
    within: Option<Duration>,
) -> ComBind<()> {
    let bind = Envelope::Bind { uuid: T::UUID.into(), major: T::VERSION.0, minor: T::VERSION.1 };
    if !send_envelope(sock, &bind, &[]).await {
        return ComBind::Closed;
    }
    let answer = match within {
        Some(t) => match tokio::time::timeout(t, sock.recv(MAX_MESSAGE)).await {
            Ok(r) => r,
            Err(_) => return ComBind::NoAnswer,
        },
        None => sock.recv(MAX_MESSAGE).await,
    };
    let Ok(Some(packet)) = answer else { return ComBind::Closed };
    match Envelope::from_cbor(&packet.data) {
        Ok(Envelope::BindAck { status: 0, .. }) => ComBind::Bound(()),
        Ok(Envelope::BindAck { status, message }) => ComBind::Refused(status, message),
        _ => ComBind::Refused(RPC_X_BAD_STUB_DATA, "the server's answer is not a bind".into()),
    }
}

impl<T: ?Sized + Interface> Serialize for ObjectRef<T> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let fd = match &self.inner {
            RefInner::Local(object) => {
                let (ours, theirs) = socket::seqpacket_pair()
                    .map_err(|e| S::Error::custom(format!("creating an object's channel: {e}")))?;
                let peer = ENCODING
                    .with(|e| e.borrow().as_ref().map(|(p, _)| p.clone()))
                    .ok_or_else(|| S::Error::custom("an ObjectRef is sent only in a call"))?;
                serve_object(object.clone(), ours, peer);
                theirs
            }
            RefInner::Remote { fd, .. } => fd
                .try_clone()
                .map_err(|e| S::Error::custom(format!("duplicating an object's channel: {e}")))?,
        };
        let index = ENCODING
            .with(|e| {
                let mut e = e.borrow_mut();
                let (_, fds) = e.as_mut()?;
                fds.push(fd);
                Some(fds.len() - 1)
            })
            .ok_or_else(|| S::Error::custom("an ObjectRef is sent only in a call"))?;
        s.serialize_u32(index as u32)
    }
}

impl<'de, T: ?Sized + Interface> Deserialize<'de> for ObjectRef<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let index = u32::deserialize(d)? as usize;
        let (fd, peer) = DECODING
            .with(|slot| {
                let mut slot = slot.borrow_mut();
                let (peer, fds) = slot.as_mut()?;
                Some((fds.get_mut(index)?.take(), peer.clone()))
            })
            .ok_or_else(|| D::Error::custom(format!("object reference {index} has no fd")))?;
        let fd = fd.ok_or_else(|| D::Error::custom(format!("object reference {index} twice")))?;
        if !socket::is_unix_seqpacket(&fd) {
            return Err(D::Error::custom(format!(
                "object reference {index} is not a unix SOCK_SEQPACKET socket"
            )));
        }
        Ok(ObjectRef { inner: RefInner::Remote { fd, peer } })
    }
}

// ---------------------------------------------------------------------------------------------
// The server side.

type DispatchFn =
    dyn Fn(CallContext, u32, Args) -> BoxFuture<'static, CallResult<Encoded>> + Send + Sync;

struct Entry {
    name: &'static str,
    uuid: &'static str,
    version: (u16, u16),
    methods: &'static [&'static str],
    dispatch: Box<DispatchFn>,
}

impl Entry {
    fn of<T: ?Sized + Interface>(object: Arc<T>) -> Entry {
        Entry {
            name: T::NAME,
            uuid: T::UUID,
            version: T::VERSION,
            methods: T::METHODS,
            dispatch: Box::new(move |cx, procnum, args| {
                T::dispatch(object.clone(), cx, procnum, args)
            }),
        }
    }
}

/// The interfaces an endpoint serves (`RpcServerRegisterIf`), by UUID and version.
#[derive(Default)]
pub struct Interfaces {
    entries: Vec<Arc<Entry>>,
}

impl fmt::Debug for Interfaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries.iter().map(|e| (e.name, e.uuid, e.version))).finish()
    }
}

impl Interfaces {
    /// No interface yet.
    pub fn new() -> Interfaces {
        Interfaces::default()
    }

    /// Serves interface `T` with `object` (`with::<dyn Trait>(Arc::new(implementation))`). A
    /// client binds when it asks for the same UUID and major version and a minor version no
    /// higher than `T`'s.
    pub fn with<T: ?Sized + Interface>(mut self, object: Arc<T>) -> Interfaces {
        self.entries.push(Arc::new(Entry::of(object)));
        self
    }

    fn find(&self, uuid: &str, major: u16, minor: u16) -> std::result::Result<Arc<Entry>, String> {
        let Some(same) = self.entries.iter().find(|e| e.uuid.eq_ignore_ascii_case(uuid)) else {
            return Err(format!("the endpoint serves no interface {uuid}"));
        };
        if same.version.0 != major || same.version.1 < minor {
            return Err(format!(
                "the endpoint serves {} {uuid} at version {}.{}, not {major}.{minor}",
                same.name, same.version.0, same.version.1
            ));
        }
        Ok(same.clone())
    }
}

impl RpcServer {
    /// Serves `interfaces` to every client that connects, each connection on a task of its
    /// own, until the session with the broker ends. Calls on one connection run concurrently
    /// (at most [`MAX_CALLS_IN_FLIGHT`] at once).
    pub async fn serve(mut self, interfaces: Interfaces) {
        let interfaces = Arc::new(interfaces);
        while let Some(conn) = self.accept().await {
            let table = interfaces.clone();
            tokio::spawn(async move {
                let peer = Peer::Client(Arc::new(conn.caller().clone()));
                let sock = conn.channel.sock.clone();
                serve_channel(sock, Bound::Endpoint(table, None), peer).await;
                drop(conn);
            });
        }
    }
}

impl Bound {
    /// Answers a Bind.
    fn bind(&mut self, uuid: &str, major: u16, minor: u16) -> Envelope {
        let (status, message) = match self {
            Bound::Endpoint(table, slot) => match table.find(uuid, major, minor) {
                Ok(entry) => {
                    *slot = Some(entry);
                    (0, String::new())
                }
                Err(why) => (RPC_S_UNKNOWN_IF, why),
            },
            Bound::Object(e) => {
                (RPC_S_UNKNOWN_IF, format!("an object's channel is bound to {}", e.name))
            }
        };
        Envelope::BindAck { status, message }
    }
}

enum Bound {
    /// An endpoint's connection: bound by the client's first message.
    Endpoint(Arc<Interfaces>, Option<Arc<Entry>>),
    /// An object's channel: bound from the start.
    Object(Arc<Entry>),
}

async fn send_envelope(sock: &AsyncSeqPacket, env: &Envelope, fds: &[OwnedFd]) -> bool {
    let bytes = env.to_cbor();
    let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
    sock.send(&bytes, &fds).await.is_ok()
}

/// A method's future whose panic becomes `RPC_S_CALL_FAILED` for its caller (as an exception
/// in a Windows server routine reaches the client as a failed call), not the end of the
/// connection's other calls.
struct CatchPanic(BoxFuture<'static, CallResult<Encoded>>);

impl Future for CatchPanic {
    type Output = CallResult<Encoded>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<CallResult<Encoded>> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx))) {
            Ok(p) => p,
            Err(_) => std::task::Poll::Ready(Err(Fault::new(
                RPC_S_CALL_FAILED,
                "the server's method failed (it panicked)",
            ))),
        }
    }
}

/// Sends call `id`'s result or fault; false when the connection is gone.
async fn answer(sock: &AsyncSeqPacket, id: u64, reply: CallResult<Encoded>) -> bool {
    match reply {
        Ok(Encoded { bytes, fds }) => {
            let env = Envelope::Response { id, result: bytes }.to_cbor();
            if env.len() > MAX_MESSAGE {
                let f = Envelope::Fault {
                    id,
                    code: RPC_X_BAD_STUB_DATA,
                    message: format!("the result takes {} bytes: at most {MAX_MESSAGE}", env.len()),
                };
                return send_envelope(sock, &f, &[]).await;
            }
            let fds: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
            sock.send(&env, &fds).await.is_ok()
        }
        Err(Fault { code, message }) => {
            send_envelope(sock, &Envelope::Fault { id, code, message }, &[]).await
        }
    }
}

/// Serves one connection until its peer closes it; then the calls still running are dropped.
async fn serve_channel(sock: Arc<AsyncSeqPacket>, mut bound: Bound, peer: Peer) {
    let slots = Arc::new(Semaphore::new(MAX_CALLS_IN_FLIGHT));
    let running: Arc<Mutex<HashMap<u64, tokio::task::AbortHandle>>> = Arc::default();
    loop {
        let packet = match sock.recv(MAX_MESSAGE).await {
            Ok(Some(p)) => p,
            Ok(None) | Err(_) => break,
        };
        if packet.truncated || packet.fds_truncated {
            // Not a message of this protocol; nothing in it can be answered.
            continue;
        }
        let Ok(env) = Envelope::from_cbor(&packet.data) else { break };
        match env {
            Envelope::Bind { uuid, major, minor } => {
                if !send_envelope(&sock, &bound.bind(&uuid, major, minor), &[]).await {
                    break;
                }
            }
            Envelope::Request { id, procnum, args } => {
                let entry = match &bound {
                    Bound::Endpoint(_, Some(e)) | Bound::Object(e) => e.clone(),
                    Bound::Endpoint(_, None) => {
                        let f = Envelope::Fault {
                            id,
                            code: RPC_S_UNKNOWN_IF,
                            message: "no interface bound on this connection".into(),
                        };
                        if !send_envelope(&sock, &f, &[]).await {
                            break;
                        }
                        continue;
                    }
                };
                let Some(&method) = entry.methods.get(procnum as usize) else {
                    let f = Envelope::Fault {
                        id,
                        code: RPC_S_PROCNUM_OUT_OF_RANGE,
                        message: format!(
                            "{} has {} methods: no procnum {procnum}",
                            entry.name,
                            entry.methods.len()
                        ),
                    };
                    if !send_envelope(&sock, &f, &[]).await {
                        break;
                    }
                    continue;
                };
                // Past the limit, stop reading this connection until a call ends.
                let Ok(permit) = slots.clone().acquire_owned().await else { break };
                let cx = CallContext {
                    peer: peer.clone(),
                    interface: entry.name,
                    method,
                    procnum,
                    call_id: id,
                };
                let call = (entry.dispatch)(
                    cx,
                    procnum,
                    Args { bytes: args, fds: packet.fds, peer: peer.clone() },
                );
                let mut call = Box::pin(CatchPanic(call));
                // A call that completes at its first poll is answered here, without a task of
                // its own (the common case of a method that does not wait). One that waits is
                // spawned: its task polls it again with its own waker.
                let first = {
                    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                    match call.as_mut().poll(&mut cx) {
                        std::task::Poll::Ready(reply) => Some(reply),
                        std::task::Poll::Pending => None,
                    }
                };
                if let Some(reply) = first {
                    drop(permit);
                    if !answer(&sock, id, reply).await {
                        break;
                    }
                    continue;
                }
                let (sock2, running2) = (sock.clone(), running.clone());
                let mut table = running.lock().expect("running poisoned");
                let task = tokio::spawn(async move {
                    let reply = call.await;
                    running2.lock().expect("running poisoned").remove(&id);
                    if !answer(&sock2, id, reply).await {
                        let _ = socket::shutdown(sock2.as_fd());
                    }
                    drop(permit);
                });
                table.insert(id, task.abort_handle());
            }
            Envelope::Cancel { id } => {
                let task = running.lock().expect("running poisoned").remove(&id);
                if let Some(task) = task {
                    task.abort();
                    let f = Envelope::Fault {
                        id,
                        code: RPC_S_CALL_CANCELLED,
                        message: "the call was cancelled".into(),
                    };
                    if !send_envelope(&sock, &f, &[]).await {
                        break;
                    }
                }
            }
            // A client sends none of these: the peer does not speak the protocol.
            Envelope::BindAck { .. } | Envelope::Response { .. } | Envelope::Fault { .. } => break,
        }
    }
    for (_, task) in running.lock().expect("running poisoned").drain() {
        task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// The client side.

enum Reply {
    Ok(Vec<u8>, Vec<OwnedFd>),
    Fault(u32, String),
}

type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>>;

/// The async client end of a bound connection, which a generated `<Trait>Client` wraps.
/// Clones share the connection; calls on it run concurrently. Dropping the last clone closes
/// the connection.
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<ProxyInner>,
}

struct ProxyInner {
    sock: Arc<AsyncSeqPacket>,
    pending: Pending,
    next_id: AtomicU64,
    peer: Peer,
    timeout: Mutex<Option<Duration>>,
    closed: tokio::sync::watch::Sender<bool>,
    /// Held by the call that reads the connection for everyone (there is no reader task: the
    /// first waiting call reads, and hands other calls their answers, so that an answer
    /// reaches its caller without a task switch).
    reading: tokio::sync::Mutex<()>,
}

impl Drop for ProxyInner {
    fn drop(&mut self) {
        let _ = socket::shutdown(self.sock.as_fd());
    }
}

impl ProxyInner {
    /// Reads one message and hands it to its call; false once the connection has ended
    /// (every call waiting then fails with 1726, later ones with 1722).
    async fn read_one(&self) -> bool {
        let packet = match self.sock.recv(MAX_MESSAGE).await {
            Ok(Some(p)) if !p.truncated && !p.fds_truncated => p,
            Ok(Some(_)) => return true,
            Ok(None) | Err(_) => return self.end(),
        };
        let (id, reply) = match Envelope::from_cbor(&packet.data) {
            Ok(Envelope::Response { id, result }) => (id, Reply::Ok(result, packet.fds)),
            Ok(Envelope::Fault { id, code, message }) => (id, Reply::Fault(code, message)),
            // A server sends nothing else: it does not speak the protocol.
            _ => return self.end(),
        };
        let waiter =
            self.pending.lock().expect("pending poisoned").as_mut().and_then(|p| p.remove(&id));
        if let Some(w) = waiter {
            let _ = w.send(reply);
        }
        true
    }

    fn end(&self) -> bool {
        self.pending.lock().expect("pending poisoned").take();
        let _ = socket::shutdown(self.sock.as_fd());
        self.closed.send_replace(true);
        false
    }

    /// Waits for a call's answer, reading the connection while no other call does; `None`
    /// when the connection ended first.
    async fn answer(&self, rx: &mut oneshot::Receiver<Reply>) -> Option<Reply> {
        tokio::select! {
            biased;
            r = &mut *rx => r.ok(),
            guard = self.reading.lock() => {
                let _reading = guard;
                loop {
                    match rx.try_recv() {
                        Ok(r) => return Some(r),
                        Err(oneshot::error::TryRecvError::Closed) => return None,
                        Err(oneshot::error::TryRecvError::Empty) => {}
                    }
                    self.read_one().await;
                }
            }
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy").field("peer", &self.inner.peer).finish_non_exhaustive()
    }
}

impl Proxy {
    /// Connects to endpoint `name` ([`super::connect`]) and binds interface `T`.
    pub async fn connect<T: ?Sized + Interface>(
        session: &Session,
        name: &str,
        server_sid: Option<&str>,
    ) -> Result<Proxy> {
        Proxy::bind::<T>(super::connect(session, name, server_sid).await?).await
    }

    /// Binds interface `T` on a connection: 1717 when its server does not serve it.
    pub async fn bind<T: ?Sized + Interface>(conn: RpcClientConnection) -> Result<Proxy> {
        let RpcClientConnection { server, channel } = conn;
        match send_bind::<T>(&channel.sock, None).await {
            ComBind::Bound(()) => Ok(Proxy::start(channel.sock, Peer::Server(Arc::new(server)))),
            ComBind::Refused(status, message) => Err(rpc_error(status, message)),
            ComBind::Closed | ComBind::NoAnswer => {
                Err(rpc_error(RPC_S_SERVER_UNAVAILABLE, "the server closed the connection"))
            }
        }
    }

    fn from_fd(fd: OwnedFd, peer: Peer) -> Result<Proxy> {
        let sock = AsyncSeqPacket::new_reading(fd)
            .map_err(|source| Error::Io { what: "registering an object's channel", source })?;
        Ok(Proxy::start(Arc::new(sock), peer))
    }

    fn start(sock: Arc<AsyncSeqPacket>, peer: Peer) -> Proxy {
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let closed = tokio::sync::watch::channel(false).0;
        Proxy {
            inner: Arc::new(ProxyInner {
                sock,
                pending,
                next_id: AtomicU64::new(1),
                peer,
                timeout: Mutex::new(None),
                closed,
                reading: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The server, as the broker attested it at connect (empty for an object's channel made
    /// in this process).
    pub fn server(&self) -> Option<&RpcConnected> {
        self.inner.peer.server()
    }

    /// How long a call waits for its result before it is cancelled (1818, and the server is
    /// told): none by default, as for `ncalrpc`.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        *self.inner.timeout.lock().expect("timeout poisoned") = timeout;
    }

    /// Calls method `procnum` with `args` (a tuple of the method's arguments).
    pub async fn call<A: Serialize, R: DeserializeOwned>(
        &self,
        procnum: u32,
        args: &A,
    ) -> Result<R> {
        self.call_rpc(procnum, args).await.map_err(|e| self.inner.peer.map_error(e))
    }

    async fn call_rpc<A: Serialize, R: DeserializeOwned>(
        &self,
        procnum: u32,
        args: &A,
    ) -> Result<R> {
        let inner = &*self.inner;
        let Encoded { bytes, fds } =
            encode_value(args, &inner.peer).map_err(|(code, why)| rpc_error(code, why))?;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let env = Envelope::Request { id, procnum, args: bytes }.to_cbor();
        if env.len() > MAX_MESSAGE {
            return Err(rpc_error(
                ERROR_INVALID_PARAMETER,
                format!("the arguments take {} bytes: at most {MAX_MESSAGE} a call", env.len()),
            ));
        }
        let (tx, mut rx) = oneshot::channel();
        match inner.pending.lock().expect("pending poisoned").as_mut() {
            Some(p) => p.insert(id, tx),
            None => {
                return Err(rpc_error(
                    RPC_S_SERVER_UNAVAILABLE,
                    "the server closed the connection",
                ));
            }
        };
        let mut guard = Outstanding { inner, id, armed: true };
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        if inner.sock.send(&env, &borrowed).await.is_err() {
            guard.armed = false;
            inner.pending.lock().expect("pending poisoned").as_mut().map(|p| p.remove(&id));
            return Err(rpc_error(RPC_S_SERVER_UNAVAILABLE, "the server closed the connection"));
        }
        drop(fds);
        let timeout = *inner.timeout.lock().expect("timeout poisoned");
        let reply = match timeout {
            None => inner.answer(&mut rx).await,
            Some(t) => match tokio::time::timeout(t, inner.answer(&mut rx)).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(rpc_error(
                        RPC_S_CALL_CANCELLED,
                        format!("no result within {} ms: the call was cancelled", t.as_millis()),
                    ));
                }
            },
        };
        guard.armed = false;
        match reply {
            None => Err(rpc_error(
                RPC_S_CALL_FAILED,
                "the connection closed during the call (the server may have run it)",
            )),
            Some(Reply::Fault(code, message)) => Err(rpc_error(code, message)),
            Some(Reply::Ok(bytes, fds)) => decode_value(&bytes, fds, &inner.peer)
                .map_err(|why| rpc_error(RPC_X_BAD_STUB_DATA, format!("the result: {why}"))),
        }
    }

    /// Resolves when the connection has closed (the server ended it or died).
    pub async fn closed(&self) {
        let mut rx = self.inner.closed.subscribe();
        tokio::select! {
            _ = rx.wait_for(|c| *c) => {}
            // Read (handing calls their answers) until the end.
            guard = self.inner.reading.lock() => {
                let _reading = guard;
                while self.inner.read_one().await {}
            }
        }
    }
}

/// A call sent and not answered: dropping its future (or its timeout) cancels it.
struct Outstanding<'a> {
    inner: &'a ProxyInner,
    id: u64,
    armed: bool,
}

impl Drop for Outstanding<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(p) = self.inner.pending.lock().expect("pending poisoned").as_mut() {
            p.remove(&self.id);
        }
        let cancel = Envelope::Cancel { id: self.id }.to_cbor();
        let _ = socket::send(self.inner.sock.as_fd(), &cancel, &[], Blocking::No);
    }
}

/// The blocking client end of a bound connection, which a generated
/// `<Trait>BlockingClient` wraps: a call writes its request and reads its result on the
/// calling thread, no runtime in between. One call at a time (calls from several threads
/// take turns).
pub struct BlockingProxy {
    fd: OwnedFd,
    peer: Peer,
    state: Mutex<BlockingState>,
}

#[derive(Debug)]
struct BlockingState {
    next_id: u64,
    closed: bool,
    timeout: Option<Duration>,
}

impl fmt::Debug for BlockingProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingProxy").field("peer", &self.peer).finish_non_exhaustive()
    }
}

impl BlockingProxy {
    /// Connects to endpoint `name` and binds interface `T`.
    pub fn connect<T: ?Sized + Interface>(
        session: &crate::blocking::Session,
        name: &str,
        server_sid: Option<&str>,
    ) -> Result<BlockingProxy> {
        let conn = session.block_on(super::connect(session.inner(), name, server_sid))?;
        let RpcClientConnection { server, channel } = conn;
        let fd = channel.sock_into_fd()?;
        let proxy = BlockingProxy::from_fd(fd, Peer::Server(Arc::new(server)))?;
        let bind =
            Envelope::Bind { uuid: T::UUID.into(), major: T::VERSION.0, minor: T::VERSION.1 };
        match proxy.exchange(&bind.to_cbor(), &[], None)?.0 {
            Envelope::BindAck { status: 0, .. } => Ok(proxy),
            Envelope::BindAck { status, message } => Err(rpc_error(status, message)),
            _ => Err(rpc_error(RPC_X_BAD_STUB_DATA, "the server's answer is not a bind")),
        }
    }

    fn from_fd(fd: OwnedFd, peer: Peer) -> Result<BlockingProxy> {
        socket::set_nonblocking(&fd, false)
            .map_err(|source| Error::Io { what: "preparing an RPC connection", source })?;
        Ok(BlockingProxy {
            fd,
            peer,
            state: Mutex::new(BlockingState { next_id: 1, closed: false, timeout: None }),
        })
    }

    /// The server, as the broker attested it at connect.
    pub fn server(&self) -> Option<&RpcConnected> {
        self.peer.server()
    }

    /// How long a call waits for its result before it is cancelled (1818): none by default.
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.state.lock().expect("state poisoned").timeout = timeout;
    }

    /// Sends `bytes` and reads until the reply `id` matches (`None`: the first message).
    fn exchange(
        &self,
        bytes: &[u8],
        fds: &[BorrowedFd<'_>],
        id: Option<u64>,
    ) -> Result<(Envelope, Vec<OwnedFd>)> {
        let mut st = self.state.lock().expect("state poisoned");
        if st.closed {
            return Err(rpc_error(RPC_S_SERVER_UNAVAILABLE, "the server closed the connection"));
        }
        if socket::send(&self.fd, bytes, fds, Blocking::Yes).is_err() {
            st.closed = true;
            return Err(rpc_error(RPC_S_SERVER_UNAVAILABLE, "the server closed the connection"));
        }
        let failed = |st: &mut BlockingState| {
            st.closed = true;
            rpc_error(
                RPC_S_CALL_FAILED,
                "the connection closed during the call (the server may have run it)",
            )
        };
        // One deadline for the whole wait: answers to other (timed-out) calls do not extend it.
        let deadline = st.timeout.map(|t| (t, std::time::Instant::now() + t));
        loop {
            if let Some((t, deadline)) = deadline {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                let ready = socket::wait_readable(&self.fd, left)
                    .map_err(|source| Error::Io { what: "waiting for an RPC result", source })?;
                if !ready {
                    if let Some(id) = id {
                        let cancel = Envelope::Cancel { id }.to_cbor();
                        let _ = socket::send(&self.fd, &cancel, &[], Blocking::No);
                    }
                    return Err(rpc_error(
                        RPC_S_CALL_CANCELLED,
                        format!("no result within {} ms: the call was cancelled", t.as_millis()),
                    ));
                }
            }
            let packet = match socket::recv(&self.fd, MAX_MESSAGE, Blocking::Yes) {
                Ok(Some(p)) => p,
                Ok(None) | Err(_) => return Err(failed(&mut st)),
            };
            if packet.truncated || packet.fds_truncated {
                continue;
            }
            let env = Envelope::from_cbor(&packet.data).map_err(|_| failed(&mut st))?;
            let matches = match (&env, id) {
                (Envelope::BindAck { .. }, None) => true,
                (
                    Envelope::Response { id: got, .. } | Envelope::Fault { id: got, .. },
                    Some(id),
                ) => {
                    if *got == id {
                        true
                    } else {
                        // The late answer of a call that timed out.
                        continue;
                    }
                }
                _ => false,
            };
            if !matches {
                return Err(failed(&mut st));
            }
            return Ok((env, packet.fds));
        }
    }

    /// Calls method `procnum` with `args` (a tuple of the method's arguments).
    pub fn call<A: Serialize, R: DeserializeOwned>(&self, procnum: u32, args: &A) -> Result<R> {
        self.call_rpc(procnum, args).map_err(|e| self.peer.map_error(e))
    }

    fn call_rpc<A: Serialize, R: DeserializeOwned>(&self, procnum: u32, args: &A) -> Result<R> {
        let Encoded { bytes, fds } =
            encode_value(args, &self.peer).map_err(|(code, why)| rpc_error(code, why))?;
        let id = {
            let mut st = self.state.lock().expect("state poisoned");
            st.next_id += 1;
            st.next_id - 1
        };
        let env = Envelope::Request { id, procnum, args: bytes }.to_cbor();
        if env.len() > MAX_MESSAGE {
            return Err(rpc_error(
                ERROR_INVALID_PARAMETER,
                format!("the arguments take {} bytes: at most {MAX_MESSAGE} a call", env.len()),
            ));
        }
        let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(AsFd::as_fd).collect();
        match self.exchange(&env, &borrowed, Some(id))? {
            (Envelope::Response { result, .. }, fds) => decode_value(&result, fds, &self.peer)
                .map_err(|why| rpc_error(RPC_X_BAD_STUB_DATA, format!("the result: {why}"))),
            (Envelope::Fault { code, message, .. }, _) => Err(rpc_error(code, message)),
            _ => unreachable!("exchange returns the reply to the request"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use serde::{Deserialize, Serialize};

    use super::*;

    #[test]
    fn the_envelope_is_the_documented_cbor() {
        // docs/wire.md "RPC calls": [variant, [fields…]].
        let e = Envelope::Request { id: 1, procnum: 2, args: vec![0x82, 0x01, 0x02] };
        assert_eq!(e.to_cbor(), [0x82, 0x02, 0x83, 0x01, 0x02, 0x43, 0x82, 0x01, 0x02]);
        let b = Envelope::Bind { uuid: "u".into(), major: 1, minor: 0 };
        assert_eq!(b.to_cbor(), [0x82, 0x00, 0x83, 0x61, b'u', 0x01, 0x00]);
        assert_eq!(Envelope::Cancel { id: 7 }.to_cbor(), [0x82, 0x05, 0x81, 0x07]);
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: i32,
        label: Option<String>,
    }

    #[appipc::interface(uuid = "0a4f3c1e-8a9b-4c2d-9e0f-112233445566", version = "1.1")]
    trait Calc {
        /// a + b.
        async fn add(&self, cx: &CallContext, a: i64, b: i64) -> CallResult<i64>;
        async fn mirror(&self, cx: &CallContext, p: Point) -> CallResult<Point>;
        async fn refuse(&self, cx: &CallContext) -> CallResult<()>;
        async fn panic(&self, cx: &CallContext, at_once: bool) -> CallResult<()>;
        async fn stall(&self, cx: &CallContext, ms: u64) -> CallResult<u64>;
        async fn counter(&self, cx: &CallContext) -> CallResult<ObjectRef<dyn Counter>>;
        async fn drain(
            &self,
            cx: &CallContext,
            c: ObjectRef<dyn Counter>,
            n: u32,
        ) -> CallResult<u64>;
    }

    #[appipc::interface(uuid = "0a4f3c1e-8a9b-4c2d-9e0f-112233445567", version = "1.0")]
    trait Counter {
        async fn next(&self, cx: &CallContext) -> CallResult<u64>;
    }

    static COUNTERS: AtomicUsize = AtomicUsize::new(0);

    struct Count(AtomicU64);
    impl Count {
        fn new() -> Arc<Count> {
            COUNTERS.fetch_add(1, Ordering::SeqCst);
            Arc::new(Count(AtomicU64::new(0)))
        }
    }
    impl Drop for Count {
        fn drop(&mut self) {
            COUNTERS.fetch_sub(1, Ordering::SeqCst);
        }
    }
    #[appipc::async_trait]
    impl Counter for Count {
        async fn next(&self, _cx: &CallContext) -> CallResult<u64> {
            Ok(self.0.fetch_add(1, Ordering::SeqCst) + 1)
        }
    }

    struct Calculator;
    #[appipc::async_trait]
    impl Calc for Calculator {
        async fn add(&self, cx: &CallContext, a: i64, b: i64) -> CallResult<i64> {
            assert_eq!((cx.interface(), cx.method(), cx.procnum()), ("Calc", "add", 0));
            a.checked_add(b).ok_or_else(|| Fault::new(534, "arithmetic overflow"))
        }
        async fn mirror(&self, _cx: &CallContext, p: Point) -> CallResult<Point> {
            Ok(Point { x: -p.x, label: p.label.map(|l| l.chars().rev().collect()) })
        }
        async fn refuse(&self, _cx: &CallContext) -> CallResult<()> {
            Err(Fault::access_denied("not you"))
        }
        async fn panic(&self, _cx: &CallContext, at_once: bool) -> CallResult<()> {
            if !at_once {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("a bug in a method");
        }
        async fn stall(&self, _cx: &CallContext, ms: u64) -> CallResult<u64> {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(ms)
        }
        async fn counter(&self, _cx: &CallContext) -> CallResult<ObjectRef<dyn Counter>> {
            Ok(ObjectRef::new(Count::new()))
        }
        async fn drain(
            &self,
            _cx: &CallContext,
            c: ObjectRef<dyn Counter>,
            n: u32,
        ) -> CallResult<u64> {
            let c = c.client().map_err(|e| Fault::new(1726, e.to_string()))?;
            let mut last = 0;
            for _ in 0..n {
                last = c.next().await.map_err(|e| Fault::new(1726, e.to_string()))?;
            }
            Ok(last)
        }
    }

    fn calc() -> CalcClient {
        ObjectRef::<dyn Calc>::new(Arc::new(Calculator)).client().unwrap()
    }

    #[tokio::test]
    async fn calls_faults_and_codes() {
        let c = calc();
        assert_eq!(c.add(2, 40).await.unwrap(), 42);
        let p = Point { x: 3, label: Some("abc".into()) };
        assert_eq!(c.mirror(p).await.unwrap(), Point { x: -3, label: Some("cba".into()) });
        let e = c.add(i64::MAX, 1).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(534), "{e}");
        assert_eq!(c.refuse().await.unwrap_err().win32_code(), Some(5));
        // A procnum the interface does not have; arguments that are not the method's types.
        let e = c.proxy().call::<_, ()>(99, &()).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(RPC_S_PROCNUM_OUT_OF_RANGE), "{e}");
        let e = c.proxy().call::<_, i64>(0, &("two", "strings")).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(RPC_X_BAD_STUB_DATA), "{e}");
        // A result that is not the type the client expects.
        let e = c.proxy().call::<_, String>(0, &(1i64, 2i64)).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(RPC_X_BAD_STUB_DATA), "{e}");
        // Arguments larger than a message.
        let big = Point { x: 0, label: Some("x".repeat(MAX_MESSAGE)) };
        let e = c.mirror(big).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(ERROR_INVALID_PARAMETER), "{e}");
        // A method that panics fails its call (at its first poll or later), not the connection.
        for at_once in [true, false] {
            let e = c.panic(at_once).await.unwrap_err();
            assert_eq!(e.win32_code(), Some(RPC_S_CALL_FAILED), "{e}");
        }
        assert_eq!(c.add(1, 1).await.unwrap(), 2);
        // Concurrent calls on one connection.
        let (a, b) = tokio::join!(c.stall(30), c.add(1, 1));
        assert_eq!((a.unwrap(), b.unwrap()), (30, 2));
        // A call past its timeout is cancelled; the connection goes on.
        c.proxy().set_timeout(Some(Duration::from_millis(20)));
        let e = c.stall(60_000).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(RPC_S_CALL_CANCELLED), "{e}");
        c.proxy().set_timeout(None);
        assert_eq!(c.add(1, 2).await.unwrap(), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn objects_cross_both_ways_and_die_with_their_last_holder() {
        let before = COUNTERS.load(Ordering::SeqCst);
        let c = calc();
        // The server hands out an object.
        let counter = c.counter().await.unwrap().client().unwrap();
        assert_eq!(counter.next().await.unwrap(), 1);
        assert_eq!(counter.next().await.unwrap(), 2);
        assert!(COUNTERS.load(Ordering::SeqCst) > before);
        drop(counter);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while COUNTERS.load(Ordering::SeqCst) != before {
            assert!(std::time::Instant::now() < deadline, "the dropped object is released");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The client passes one of its own: the server calls back into it.
        let mine = Count::new();
        assert_eq!(c.drain(ObjectRef::new(mine.clone()), 5).await.unwrap(), 5);
        assert_eq!(mine.0.load(Ordering::SeqCst), 5);
        // A reference received and passed on reaches the same object.
        let theirs = c.counter().await.unwrap();
        assert_eq!(c.drain(theirs, 3).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_closed_connection_fails_calls_in_flight_1726_and_later_ones_1722() {
        let (ours, theirs) = socket::seqpacket_pair().unwrap();
        let client = <dyn Calc as Interface>::client(
            Proxy::from_fd(
                ours,
                Peer::Server(Arc::new(RpcConnected {
                    connection_id: 0,
                    server_package_family_name: String::new(),
                    server_sid: String::new(),
                    server_pid: 0,
                })),
            )
            .unwrap(),
        );
        // A "server" that reads the call and dies.
        let server = tokio::spawn(async move {
            let sock = AsyncSeqPacket::new_reading(theirs).unwrap();
            let _ = sock.recv(MAX_MESSAGE).await;
            drop(sock);
        });
        let e = client.add(1, 2).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(RPC_S_CALL_FAILED), "{e}");
        server.await.unwrap();
        client.proxy().closed().await;
        let e = client.add(1, 2).await.unwrap_err();
        assert_eq!(e.win32_code(), Some(RPC_S_SERVER_UNAVAILABLE), "{e}");
    }

    #[test]
    fn deeply_nested_input_is_no_stack_overflow() {
        // A struct's unknown field whose value nests 60 000 arrays deep, within one message.
        let mut bytes = vec![0xa2, 0x61, b'x', 0x01, 0x61, b'z'];
        bytes.extend(std::iter::repeat_n(0x81u8, 60_000));
        bytes.push(0x00);
        let peer = Peer::Server(Arc::new(RpcConnected {
            connection_id: 0,
            server_package_family_name: String::new(),
            server_sid: String::new(),
            server_pid: 0,
        }));
        // Skipped without recursion (unknown fields are ignored, as serde does by default).
        let r = decode_value::<Point>(&bytes, Vec::new(), &peer);
        assert_eq!(r, Ok(Point { x: 1, label: None }));
        // And as a value the type nests (Option<Vec<…>>), the same.
        let mut bytes = vec![];
        bytes.extend(std::iter::repeat_n(0x81u8, 60_000));
        let r = decode_value::<Vec<Vec<Vec<u8>>>>(&bytes, Vec::new(), &peer);
        assert!(r.is_err(), "{r:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hostile_peer_cannot_pass_a_non_socket_as_an_object() {
        let (ours, theirs) = socket::seqpacket_pair().unwrap();
        let sock = AsyncSeqPacket::new_reading(ours).unwrap();
        let entry = Entry::of::<dyn Calc>(Arc::new(Calculator));
        let peer = Peer::Server(Arc::new(RpcConnected {
            connection_id: 0,
            server_package_family_name: String::new(),
            server_sid: String::new(),
            server_pid: 0,
        }));
        tokio::spawn(serve_channel(Arc::new(sock), Bound::Object(Arc::new(entry)), peer));
        let drain =
            <dyn Calc as Interface>::METHODS.iter().position(|m| *m == "drain").unwrap() as u32;
        // drain(c, n) with a file where the object's socket should be.
        let r: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let args = minicbor_serde::to_vec((0u32, 1u32)).unwrap();
        let req = Envelope::Request { id: 1, procnum: drain, args }.to_cbor();
        socket::send(&theirs, &req, &[r.as_fd()], Blocking::Yes).unwrap();
        // An index past the fds sent.
        let args = minicbor_serde::to_vec((3u32, 1u32)).unwrap();
        let req = Envelope::Request { id: 2, procnum: drain, args }.to_cbor();
        socket::send(&theirs, &req, &[], Blocking::Yes).unwrap();
        // Calls run concurrently: their answers come in either order.
        let mut ids = Vec::new();
        for _ in 0..2 {
            let p = socket::recv(&theirs, MAX_MESSAGE, Blocking::Yes).unwrap().unwrap();
            match Envelope::from_cbor(&p.data).unwrap() {
                Envelope::Fault { id, code, message } => {
                    assert_eq!(code, RPC_X_BAD_STUB_DATA, "{message}");
                    assert!(message.contains("object reference"), "{message}");
                    ids.push(id);
                }
                other => panic!("{other:?}"),
            }
        }
        ids.sort_unstable();
        assert_eq!(ids, [1, 2]);
        // A message that is not of the protocol ends the connection.
        socket::send(&theirs, b"\xff\xff", &[], Blocking::Yes).unwrap();
        assert!(socket::recv(&theirs, MAX_MESSAGE, Blocking::Yes).unwrap().is_none());
    }
}
