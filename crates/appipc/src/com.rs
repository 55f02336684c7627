//! Packaged COM: out-of-process servers declared in a package's manifest
//! (`[[application.com-server]]`), activated by class id.
//!
//! A client asks for an object of a class, [`co_create_instance`], and gets a reference to it
//! bound to one of its interfaces (a `#[appipc::interface]` trait), whose typed client calls
//! it. The broker decides by the
//! exe server's `launch-and-activation-permission` and starts the server when none runs (full
//! trust, with the identity of the application declaring the class, `-Embedding` on its
//! command line). The server, a [`ComServer`], registers a factory per class
//! (`CoRegisterClassObject`) and [`ComServer::run`]s: each activation gets a new object from
//! its factory, served on a channel of its own, until the client's last reference is gone.
//! When its count (live objects, objects it handed out, locks) falls to zero it suspends its
//! class objects, revokes them and `run` returns: the process exits, as a classic
//! `LocalServer32` does. An activation that raced that shutdown is activated again by this
//! SDK; the application never sees `CO_E_SERVER_STOPPING`.
//!
//! Failures are [`Error::Com`] with an `HRESULT` ([`Error::hresult`]); the constants below
//! name them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appipc_wire::protocol::com as wire;
pub use appipc_wire::protocol::com::{
    ComActivated, ComClassInfo, ComList, ComRegistration, ComServerInfo,
};
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::rpc::{CallResult, Interface, Interfaces, ObjectRef, RpcCaller, RpcConnected};
use crate::session::Session;

/// `REGCLS_SINGLEUSE`: the registration serves one activation; the next one starts another
/// server process.
pub const REGCLS_SINGLEUSE: u32 = 0;
/// `REGCLS_MULTIPLEUSE`: every activation of the class reaches this process.
pub const REGCLS_MULTIPLEUSE: u32 = 1;
/// `REGCLS_MULTI_SEPARATE`: as `MULTIPLEUSE` here.
pub const REGCLS_MULTI_SEPARATE: u32 = 2;
/// `REGCLS_SUSPENDED`: no activation reaches the registration until
/// [`ComServer::resume_class_objects`].
pub const REGCLS_SUSPENDED: u32 = 4;

/// `E_ACCESSDENIED`.
pub const E_ACCESSDENIED: u32 = 0x8007_0005;
/// `E_INVALIDARG`.
pub const E_INVALIDARG: u32 = 0x8007_0057;
/// `E_NOINTERFACE`: the object does not serve the interface asked.
pub const E_NOINTERFACE: u32 = 0x8000_4002;
/// `REGDB_E_CLASSNOTREG`: no installed package declares the class.
pub const REGDB_E_CLASSNOTREG: u32 = 0x8004_0154;
/// `CO_E_CLASSSTRING`: not a ProgID of the catalog (or not a CLSID).
pub const CO_E_CLASSSTRING: u32 = 0x8004_01F3;
/// `CO_E_SERVER_EXEC_FAILURE`: the server did not start or did not register the class in time.
pub const CO_E_SERVER_EXEC_FAILURE: u32 = 0x8008_0005;
/// `CO_E_SERVER_STOPPING`: the server is shutting down (handled inside this SDK).
pub const CO_E_SERVER_STOPPING: u32 = 0x8008_0008;
/// `CO_E_WRONG_SERVER_IDENTITY`: this process may not serve the class (another package's, or
/// an app container).
pub const CO_E_WRONG_SERVER_IDENTITY: u32 = 0x8000_4015;
/// `CO_E_OBJISREG`: the class is registered in this process already.
pub const CO_E_OBJISREG: u32 = 0x8004_01FB;
/// `CO_E_OBJNOTREG`: no such registration.
pub const CO_E_OBJNOTREG: u32 = 0x8004_01FC;
/// `RPC_E_DISCONNECTED`: the object's server is gone (exited, ended by an update or a removal).
pub const RPC_E_DISCONNECTED: u32 = 0x8001_0108;
/// `RPC_E_CALL_CANCELED`: the call timed out and was cancelled.
pub const RPC_E_CALL_CANCELED: u32 = 0x8001_0002;
/// `HRESULT_FROM_WIN32(RPC_S_CALL_FAILED)`: the server died during the call.
pub const RPC_S_CALL_FAILED_HRESULT: u32 = 0x8007_06BE;

/// How long [`co_create_instance`] goes on activating again when the server it reached was
/// shutting down or went away before it answered (each time a new server can start).
const ACTIVATION_RETRIES_FOR: Duration = Duration::from_secs(30);

/// The `HRESULT` a COM proxy reports for an RPC failure code (or a method's fault).
pub(crate) fn hresult_of_rpc(code: u32) -> u32 {
    match code {
        1722 => RPC_E_DISCONNECTED,
        1726 => RPC_S_CALL_FAILED_HRESULT,
        1818 => RPC_E_CALL_CANCELED,
        1717 => E_NOINTERFACE,
        0 => 0x8000_4005,
        c if c >= 0x8000_0000 => c,
        c => 0x8007_0000 | (c & 0xFFFF),
    }
}

fn com_error(hresult: u32, message: impl Into<String>) -> Error {
    Error::Com { hresult, message: message.into() }
}

/// Whether this process was started as a COM server (`-Embedding` or `/Embedding` on its
/// command line, as the broker starts exe servers).
pub fn is_embedding() -> bool {
    std::env::args()
        .skip(1)
        .any(|a| a.eq_ignore_ascii_case("-Embedding") || a.eq_ignore_ascii_case("/Embedding"))
}

/// `CoCreateInstance(clsid, CLSCTX_LOCAL_SERVER, IID_T)`: an object of class `clsid`
/// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, braces allowed), as a reference bound to its
/// interface `T`: call it through [`ObjectRef::client`] (async) or
/// [`ObjectRef::blocking_client`], or pass it on to another process. The object is released
/// when the last proxy and reference made from it are gone (or this process dies).
///
/// Errors ([`Error::Com`]): `REGDB_E_CLASSNOTREG`, `E_ACCESSDENIED` (the permission refuses
/// this process; `appipc why` shows the rule), `CO_E_SERVER_EXEC_FAILURE`, `E_NOINTERFACE`,
/// `CO_E_CLASSSTRING` (not a CLSID), a factory's own failure. Calls on its proxies fail with
/// `RPC_E_DISCONNECTED` once the server is gone, 0x800706BE when it dies during the call.
pub async fn co_create_instance<T: ?Sized + Interface>(
    session: &Session,
    clsid: &str,
) -> Result<ObjectRef<T>> {
    co_create_instance_with_info::<T>(session, clsid).await.map(|(c, _)| c)
}

/// [`co_create_instance`], with the server the object lives in (its package, application and
/// pid, as the broker attests them).
pub async fn co_create_instance_with_info<T: ?Sized + Interface>(
    session: &Session,
    clsid: &str,
) -> Result<(ObjectRef<T>, ComActivated)> {
    let mut last = String::new();
    let until = tokio::time::Instant::now() + ACTIVATION_RETRIES_FOR;
    let mut attempt = 0u32;
    while attempt == 0 || tokio::time::Instant::now() < until {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(2 << attempt.min(5))).await;
        }
        attempt += 1;
        // The broker may start the server (up to its APPIPC_COM_START_MS, 30 s): wait as for
        // any start.
        let request = wire::CreateInstance { clsid: clsid.to_owned() };
        let (activated, mut fds) = session
            .call_within(request, &[], crate::management::START)
            .await
            .map_err(Error::into_com)?;
        let fd = fds.pop().ok_or_else(|| Error::Protocol("activation without its fd".into()))?;
        match crate::rpc::bind_com::<T>(fd).await? {
            crate::rpc::ComBind::Bound(fd) => {
                let server = RpcConnected {
                    connection_id: activated.activation_id,
                    server_package_family_name: activated.server_package_family_name.clone(),
                    server_sid: activated.server_sid.clone(),
                    server_pid: activated.server_pid,
                };
                return Ok((crate::rpc::com_object(fd, server), activated));
            }
            crate::rpc::ComBind::Refused(CO_E_SERVER_STOPPING, m) => last = m,
            crate::rpc::ComBind::Refused(code, m) => {
                return Err(com_error(hresult_of_rpc(code), m));
            }
            crate::rpc::ComBind::Closed => {
                last = format!(
                    "the server (pid {}) closed the object's channel before it answered",
                    activated.server_pid
                );
            }
            crate::rpc::ComBind::NoAnswer => {
                return Err(com_error(
                    CO_E_SERVER_EXEC_FAILURE,
                    format!(
                        "the server (pid {}) did not answer the activation within two minutes",
                        activated.server_pid
                    ),
                ));
            }
        }
    }
    Err(com_error(
        CO_E_SERVER_EXEC_FAILURE,
        format!(
            "no server of class {clsid} took the activation in {attempt} attempts over {} s: \
             {last}",
            ACTIVATION_RETRIES_FOR.as_secs()
        ),
    ))
}

/// `CLSIDFromProgID`: the class a ProgID names in the catalog (a class's own ProgID, its
/// version-independent one, or a `prog-id` entry, following `current-version`), lowercase.
/// `CO_E_CLASSSTRING` for one no installed package declares.
pub async fn clsid_from_prog_id(session: &Session, prog_id: &str) -> Result<String> {
    session
        .call(wire::ClsidFromProgId { prog_id: prog_id.to_owned() })
        .await
        .map_err(Error::into_com)
}

/// The catalog (every installed class) and the running servers (`appipc com list`); an app
/// container sees only its own package's servers.
pub async fn list(session: &Session) -> Result<ComList> {
    session.call(wire::List {}).await.map_err(Error::into_com)
}

/// A class factory: makes the object of an activation, for the client the broker attested
/// (`IClassFactory::CreateInstance`). The object is the interfaces it serves; the client binds
/// the one it asked for. A [`crate::rpc::Fault`] refuses the activation with its code.
pub type Factory = dyn Fn(&RpcCaller) -> CallResult<Interfaces> + Send + Sync;

#[derive(Default)]
struct Count {
    /// Objects made for activations whose channel is open.
    objects: usize,
    /// `LockServer(TRUE)` not undone.
    locks: usize,
    /// Set once the count fell to zero: the server is shutting down.
    stopping: bool,
    /// Whether an object was ever made.
    ever: bool,
}

struct Shared {
    session: Session,
    count: Mutex<Count>,
    changed: watch::Sender<()>,
    factories: Mutex<HashMap<String, Arc<Factory>>>,
    next_cookie: AtomicU64,
}

impl Shared {
    fn total(&self, c: &Count) -> usize {
        c.objects + c.locks + *crate::rpc::OBJECTS_SERVED.borrow()
    }
}

/// A COM server: the class objects this process registered, and its count.
///
/// One per process (one per session): a second replaces the first's route for activations.
pub struct ComServer {
    shared: Arc<Shared>,
    rx: tokio::sync::Mutex<
        tokio::sync::mpsc::UnboundedReceiver<(wire::Activate, std::os::fd::OwnedFd)>,
    >,
}

impl std::fmt::Debug for ComServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComServer").field("objects", &self.object_count()).finish_non_exhaustive()
    }
}

/// One object made for an activation: counted until its channel closes.
struct Live(Arc<Shared>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.count.lock().expect("count poisoned").objects -= 1;
        self.0.changed.send_replace(());
    }
}

fn normalize(clsid: &str) -> String {
    let inner = clsid.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(clsid);
    inner.to_ascii_lowercase()
}

impl ComServer {
    /// A server on `session` (activations of the classes it registers arrive on it).
    pub fn new(session: &Session) -> ComServer {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        {
            let mut c = session.com();
            c.tx = Some(tx);
            c.suspended = false;
        }
        ComServer {
            shared: Arc::new(Shared {
                session: session.clone(),
                count: Mutex::default(),
                changed: watch::channel(()).0,
                factories: Mutex::default(),
                next_cookie: AtomicU64::new(1),
            }),
            rx: tokio::sync::Mutex::new(rx),
        }
    }

    /// `CoRegisterClassObject(clsid, factory, CLSCTX_LOCAL_SERVER, flags)`: activations of the
    /// class reach this process (one of the package declaring it, running full trust).
    /// Returns the registration's cookie (for [`ComServer::revoke_class_object`]).
    ///
    /// Errors: `CO_E_WRONG_SERVER_IDENTITY` (another package's class, an unpackaged process,
    /// an app container), `REGDB_E_CLASSNOTREG`, `CO_E_OBJISREG`, `E_INVALIDARG` (flags).
    pub async fn register_class_object(
        &self,
        clsid: &str,
        flags: u32,
        factory: impl Fn(&RpcCaller) -> CallResult<Interfaces> + Send + Sync + 'static,
    ) -> Result<u64> {
        let key = normalize(clsid);
        let factory: Arc<Factory> = Arc::new(factory);
        let before = self.shared.factories.lock().expect("factories").insert(key.clone(), factory);
        let reply = self
            .shared
            .session
            .call(wire::RegisterClassObject { clsid: key.clone(), flags })
            .await
            .map_err(Error::into_com);
        let broker_cookie = match reply {
            Ok(c) => c,
            Err(e) => {
                let mut f = self.shared.factories.lock().expect("factories");
                match before {
                    Some(b) => f.insert(key, b),
                    None => f.remove(&key),
                };
                return Err(e);
            }
        };
        let cookie = self.shared.next_cookie.fetch_add(1, Ordering::Relaxed);
        self.shared.session.com().registrations.insert(cookie, (key, flags, broker_cookie));
        Ok(cookie)
    }

    /// `CoRevokeClassObject`: no more activations of that registration.
    pub async fn revoke_class_object(&self, cookie: u64) -> Result<()> {
        let reg = self.shared.session.com().registrations.remove(&cookie);
        let Some((clsid, _, broker_cookie)) = reg else {
            return Err(com_error(CO_E_OBJNOTREG, format!("{cookie} is not a registration")));
        };
        self.shared.factories.lock().expect("factories").remove(&clsid);
        self.shared
            .session
            .call(wire::RevokeClassObject { cookie: broker_cookie })
            .await
            .map_err(Error::into_com)
    }

    /// `CoResumeClassObjects`: registrations made with [`REGCLS_SUSPENDED`] take activations.
    pub async fn resume_class_objects(&self) -> Result<()> {
        self.shared.session.call(wire::ResumeClassObjects {}).await.map_err(Error::into_com)?;
        for reg in self.shared.session.com().registrations.values_mut() {
            reg.1 &= !REGCLS_SUSPENDED;
        }
        Ok(())
    }

    /// `IClassFactory::LockServer`: a lock keeps the server running with no object alive.
    pub fn lock_server(&self, lock: bool) {
        {
            let mut c = self.shared.count.lock().expect("count poisoned");
            if lock {
                c.locks += 1;
                c.ever = true;
            } else {
                c.locks = c.locks.saturating_sub(1);
            }
        }
        self.shared.changed.send_replace(());
    }

    /// The count: live objects (of activations, and handed out as references) and locks.
    pub fn object_count(&self) -> usize {
        let c = self.shared.count.lock().expect("count poisoned");
        self.shared.total(&c)
    }

    /// Serves activations until the count falls to zero (after the first object or lock), or
    /// — started with `-Embedding` — no object came within `APPIPC_COM_IDLE_MS` (default
    /// 30 s) of the start; then suspends and revokes the class objects and returns: the
    /// process should exit. Also returns when the session with the broker ends.
    pub async fn run(&self) {
        let mut rx = self.rx.lock().await;
        let mut changed = self.shared.changed.subscribe();
        let mut served = crate::rpc::OBJECTS_SERVED.subscribe();
        let idle_ms = std::env::var("APPIPC_COM_IDLE_MS").ok().and_then(|v| v.parse().ok());
        let idle = tokio::time::sleep(Duration::from_millis(idle_ms.unwrap_or(30_000)));
        tokio::pin!(idle);
        let reporter = tokio::spawn(report_counts(self.shared.clone()));
        let mut waiting_first = is_embedding();
        loop {
            tokio::select! {
                a = rx.recv() => match a {
                    // The session ended, or another ComServer took its activations.
                    None => {
                        reporter.abort();
                        return;
                    }
                    Some((activation, fd)) => self.activate(activation, fd),
                },
                _ = changed.changed() => {}
                _ = served.changed() => {}
                () = &mut idle, if waiting_first => {
                    // No object came: end as if the last one went.
                    waiting_first = false;
                    self.shared.count.lock().expect("count poisoned").ever = true;
                }
            }
            let mut c = self.shared.count.lock().expect("count poisoned");
            if c.ever && self.shared.total(&c) == 0 {
                c.stopping = true;
                break;
            }
        }
        reporter.abort();
        self.shutdown(&mut rx).await;
    }

    /// The count fell to zero: `CoSuspendClassObjects`, then every registration revoked; an
    /// activation still on its way is answered `CO_E_SERVER_STOPPING` (its client activates
    /// again and reaches a new server).
    async fn shutdown(
        &self,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<(wire::Activate, std::os::fd::OwnedFd)>,
    ) {
        let session = &self.shared.session;
        session.com().suspended = true;
        let _ = session.call(wire::SuspendClassObjects {}).await;
        let regs: Vec<u64> = session.com().registrations.drain().map(|(_, r)| r.2).collect();
        for cookie in regs {
            let _ = session.call(wire::RevokeClassObject { cookie }).await;
        }
        session.com().tx = None;
        while let Ok((activation, fd)) = rx.try_recv() {
            self.activate(activation, fd);
        }
    }

    /// Serves one activation on a task of its own.
    fn activate(&self, activation: wire::Activate, fd: std::os::fd::OwnedFd) {
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let caller = activation.caller.clone();
            let make = || {
                {
                    let mut c = shared.count.lock().expect("count poisoned");
                    if c.stopping {
                        return Err((
                            CO_E_SERVER_STOPPING,
                            "the server is shutting down".to_owned(),
                        ));
                    }
                    c.objects += 1;
                }
                let live = Live(shared.clone());
                let factory =
                    shared.factories.lock().expect("factories").get(&activation.clsid).cloned();
                let Some(factory) = factory else {
                    return Err((
                        CO_E_SERVER_STOPPING,
                        format!("class {} was revoked", activation.clsid),
                    ));
                };
                match factory(&activation.caller) {
                    Ok(table) => {
                        shared.count.lock().expect("count poisoned").ever = true;
                        shared.changed.send_replace(());
                        Ok((table, live))
                    }
                    Err(f) => Err((f.code, f.message)),
                }
            };
            crate::rpc::serve_activation(fd, caller, make).await;
        });
    }
}

/// Tells the broker the count as it changes (for `appipc com list`), the latest value only.
async fn report_counts(shared: Arc<Shared>) {
    let mut changed = shared.changed.subscribe();
    let mut served = crate::rpc::OBJECTS_SERVED.subscribe();
    let mut last = None;
    loop {
        let now = {
            let c = shared.count.lock().expect("count poisoned");
            let served = *crate::rpc::OBJECTS_SERVED.borrow();
            ((c.objects + served) as u32, c.locks as u32)
        };
        if last != Some(now) {
            shared.session.com().counts = now;
            let _ = shared.session.call(wire::ReportCount { objects: now.0, locks: now.1 }).await;
            last = Some(now);
        }
        tokio::select! {
            r = changed.changed() => if r.is_err() { return },
            r = served.changed() => if r.is_err() { return },
        }
    }
}
