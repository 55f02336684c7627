//! `com`: Packaged COM. The catalog is the installed packages' `[[application.com-server]]`
//! classes and ProgIDs (a second package declaring one of them is refused at install). An
//! activation (`CoCreateInstance`) is decided by the exe server's launch and activation
//! permission — `COM_RIGHTS_EXECUTE | ACTIVATE_LOCAL` to reach a running server, and
//! `| EXECUTE_LOCAL` as well to start one — with the dual check for an app container. A
//! running server that registered the class (`CoRegisterClassObject`) and did not suspend gets
//! the server's end of a new socket pair and the attested caller; the client gets the other
//! end. With none, the broker starts the exe server (full trust, the identity of the
//! application declaring the class: Activate-As-Package, with `-Embedding`) and waits until it
//! registers the class. The object's calls then go between the two processes.
//!
//! Lifetime is the server's business, as for a classic `LocalServer32`: its count (live
//! objects and locks) falls to zero, it suspends its class objects (no activation reaches it
//! any more) and exits. An activation routed to it just before it suspended is answered
//! `CO_E_SERVER_STOPPING` by the server; the client's SDK activates again and reaches a new
//! server.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appipc_model::manifest::{Guid, Manifest, RUN_FULL_TRUST};
use appipc_model::named_objects::{
    COM_RIGHTS_ACTIVATE_LOCAL, COM_RIGHTS_EXECUTE, COM_RIGHTS_EXECUTE_LOCAL, SecurityDescriptor,
};
use appipc_model::policy::Operation;
use appipc_wire::caller::TrustLevel;
use appipc_wire::protocol::com::{
    self as wire, Activate, ComActivated, ComClassInfo, ComList, ComRegistration, ComServerInfo,
};
use appipc_wire::status::HResult;
use tokio::sync::watch;

use crate::Shared;
use crate::activation::{self, Activation, Start};
use crate::caller::Caller;
use crate::cx::{Cx, Replied};
use crate::error::{ComError, InternalError};
use crate::outbox::{Outbox, Undeliverable};

mod catalog;
use catalog::Catalog;

type Result<T, E = ComError> = std::result::Result<T, E>;

/// `REGCLS_MULTIPLEUSE`.
const REGCLS_MULTIPLEUSE: u32 = 1;
/// `REGCLS_MULTI_SEPARATE`.
const REGCLS_MULTI_SEPARATE: u32 = 2;
/// `REGCLS_SUSPENDED`.
const REGCLS_SUSPENDED: u32 = 4;
/// `REGCLS_SURROGATE`: accepted, it changes nothing here.
const REGCLS_SURROGATE: u32 = 8;
/// `REGCLS_AGILE`: accepted, it changes nothing here (no apartments).
const REGCLS_AGILE: u32 = 0x10;

/// Class registrations one session may hold.
pub(crate) const MAX_REGISTRATIONS_PER_SESSION: usize = 256;

/// The most servers one activation starts (each start that ends without a server of the
/// class, a `SINGLEUSE` registration another client took first); it also ends at the start
/// timeout.
const STARTS: usize = 8;

/// The longest ProgID taken (Windows: 39 characters).
const MAX_PROG_ID: usize = 255;

/// `LaunchAndActivationPermission` when the manifest gives none: the user (and SYSTEM) may
/// start and activate; no app container may (machine-wide COM restrictions leave out
/// `ALL APPLICATION PACKAGES` by default).
pub(super) fn default_permission(user_sid: &str) -> String {
    format!("O:{user_sid}G:{user_sid}D:(A;;0xb;;;{user_sid})(A;;0xb;;;SY)")
}

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied> {
    use wire::Request as R;
    let com = &cx.shared.com;
    Ok(match r {
        R::CreateInstance(c) => {
            let (activated, fd) = com.create_instance(&cx, &c.clsid).await?;
            Replied::with_fds::<wire::CreateInstance>(activated, vec![fd])
        }
        R::ClsidFromProgId(p) => {
            Replied::of::<wire::ClsidFromProgId>(clsid_from_prog_id(&cx, &p.prog_id)?.to_string())
        }
        R::RegisterClassObject(r) => {
            Replied::of::<wire::RegisterClassObject>(com.register(&cx, &r.clsid, r.flags)?)
        }
        R::RevokeClassObject(r) => {
            com.revoke(&cx, r.cookie)?;
            Replied::of::<wire::RevokeClassObject>(())
        }
        R::ResumeClassObjects(_) => {
            com.resume(&cx);
            Replied::of::<wire::ResumeClassObjects>(())
        }
        R::SuspendClassObjects(_) => {
            com.suspend(&cx);
            Replied::of::<wire::SuspendClassObjects>(())
        }
        R::ReportCount(c) => {
            com.report_count(&cx, c.objects, c.locks);
            Replied::of::<wire::ReportCount>(())
        }
        R::List(_) => Replied::of::<wire::List>(com.list(&cx)),
    })
}

fn failed(code: HResult, message: impl Into<String>) -> ComError {
    ComError::new(code, message)
}

/// A CLSID as text: with or without braces, any case.
fn parse_clsid(text: &str) -> Result<Guid> {
    let inner = text.strip_prefix('{').and_then(|t| t.strip_suffix('}')).unwrap_or(text);
    inner.parse().map_err(|_| {
        failed(
            HResult::ClassString,
            format!(
                "{:?} is not a CLSID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
                appipc_wire::text::printable(&text.chars().take(80).collect::<String>())
            ),
        )
    })
}

fn not_registered(clsid: Guid) -> ComError {
    failed(
        HResult::ClassNotRegistered,
        format!("no installed package declares the COM class {{{clsid}}}"),
    )
}

/// `CLSIDFromProgID` over the catalog (case-insensitive, as the registry compares).
fn clsid_from_prog_id(cx: &Cx<'_>, prog_id: &str) -> Result<Guid> {
    let found = (!prog_id.is_empty() && prog_id.len() <= MAX_PROG_ID)
        .then(|| cx.shared.com.catalog(cx.shared).prog_id(prog_id))
        .flatten();
    found.ok_or_else(|| {
        failed(
            HResult::ClassString,
            format!(
                "no installed package declares the ProgID {:?}",
                appipc_wire::text::printable(&prog_id.chars().take(80).collect::<String>())
            ),
        )
    })
}

/// Why installing `manifest` would put a CLSID or ProgID in the catalog twice: another
/// installed package (not an earlier version of this one) declares it.
pub(crate) fn catalog_conflict(shared: &Shared, manifest: &Manifest) -> Option<String> {
    let family = manifest.identity.family_name();
    let classes: Vec<Guid> = manifest
        .applications
        .iter()
        .flat_map(|a| a.com_servers.iter().flat_map(|s| s.classes().map(|(_, c)| c.id)))
        .collect();
    let names = catalog::declared_prog_ids(manifest);
    if classes.is_empty() && names.is_empty() {
        return None;
    }
    let catalog = shared.com.catalog(shared);
    let other = |g: &Guid| {
        catalog
            .classes
            .get(g)
            .filter(|c| !c.pkg.family_name.as_str().eq_ignore_ascii_case(family.as_str()))
    };
    for c in &classes {
        if let Some(owner) = other(c) {
            return Some(format!(
                "COM class {{{c}}} is declared by {}, installed already: a CLSID belongs to one \
                 package of the catalog",
                owner.pkg.family_name
            ));
        }
    }
    for (p, _) in &names {
        if let Some(owner) = catalog.prog_id(p).as_ref().and_then(other) {
            return Some(format!(
                "ProgID {p:?} is declared by {}, installed already: a ProgID belongs to one \
                 package of the catalog",
                owner.pkg.family_name
            ));
        }
    }
    None
}

/// The class `clsid` of the catalog now, its permission, and its package's family.
struct Resolved {
    catalog: Arc<Catalog>,
    clsid: Guid,
    sd: Arc<SecurityDescriptor>,
    family: String,
}

impl Resolved {
    fn class(&self) -> &catalog::Class {
        &self.catalog.classes[&self.clsid]
    }
}

#[derive(Debug)]
struct Registration {
    cookie: u64,
    clsid: Guid,
    flags: u32,
    /// Registered `SUSPENDED` and not resumed yet.
    waiting_resume: bool,
    /// A `SINGLEUSE` registration that served its activation.
    used: bool,
}

impl Registration {
    fn available(&self) -> bool {
        !self.waiting_resume && !self.used
    }
}

/// A session that registered class objects.
#[derive(Debug)]
struct Server {
    pid: u32,
    family: String,
    app_id: String,
    package_sid: String,
    outbox: Arc<Outbox>,
    regs: Vec<Registration>,
    suspended: bool,
    activations: u64,
    objects: u32,
    locks: u32,
}

#[derive(Debug, Default)]
struct State {
    /// Session → the server it is.
    servers: HashMap<u64, Server>,
    /// Servers being started: (family, CLSID) → the start's token (reserved before the
    /// process is started, so that concurrent activations join it).
    starting: HashMap<(String, Guid), u64>,
    /// The last start of each key that failed: (its token, why), for the activations that
    /// joined it.
    failed: HashMap<(String, Guid), (u64, String)>,
}

/// The COM table.
#[derive(Debug)]
pub struct Com {
    state: Mutex<State>,
    catalog: Mutex<Arc<Catalog>>,
    next: AtomicU64,
    /// Bumped when a server registers, resumes, suspends or goes, and when a start ends.
    changed: watch::Sender<u64>,
    /// A started server must register the class within this (`APPIPC_COM_START_MS`, default
    /// 30 s).
    start: Duration,
}

impl Default for Com {
    fn default() -> Com {
        let ms = std::env::var("APPIPC_COM_START_MS").ok().and_then(|v| v.parse().ok());
        Com {
            state: Mutex::default(),
            catalog: Mutex::default(),
            next: AtomicU64::new(0),
            changed: watch::channel(0).0,
            start: Duration::from_millis(ms.unwrap_or(30_000)),
        }
    }
}

impl Com {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("com poisoned")
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn catalog(&self, shared: &Shared) -> Arc<Catalog> {
        catalog::current(&self.catalog, shared)
    }

    /// The class as the catalog has it now (an upgrade or removal may have changed it since
    /// the activation began) and the permission that decides it.
    fn resolve(&self, cx: &Cx<'_>, clsid: Guid) -> Result<Resolved> {
        let catalog = self.catalog(cx.shared);
        let class = catalog.classes.get(&clsid).ok_or_else(|| not_registered(clsid))?;
        let sd = match &class.permission {
            Some(Ok(sd)) => sd.clone(),
            Some(Err(why)) => {
                return Err(failed(
                    HResult::AccessDenied,
                    format!("the exe server of class {{{clsid}}} cannot be activated: {why}"),
                ));
            }
            None => {
                let user = cx.caller.principal.user_sid().to_string();
                let text = default_permission(&user);
                let sd = SecurityDescriptor::from_sddl(&text).map_err(|e| {
                    InternalError::io("the default COM permission", std::io::Error::other(e))
                })?;
                Arc::new(sd)
            }
        };
        let family = class.pkg.family_name.to_string();
        Ok(Resolved { catalog: catalog.clone(), clsid, sd, family })
    }

    /// `CoCreateInstance`: routes to a running server of the class, else starts one; until
    /// the start timeout, as many times as servers go away under it.
    async fn create_instance(&self, cx: &Cx<'_>, text: &str) -> Result<(ComActivated, OwnedFd)> {
        let clsid = parse_clsid(text)?;
        let deadline = tokio::time::Instant::now() + self.start;
        let (mut may_activate, mut may_launch, mut starts) = (false, false, 0);
        let mut decided_by: Option<(String, String)> = None;
        loop {
            let r = self.resolve(cx, clsid)?;
            // An upgrade in between may have changed the permission (or the class's package):
            // decided again.
            let now = (r.sd.to_sddl(), r.family.clone());
            if decided_by.as_ref().is_some_and(|d| *d != now) {
                (may_activate, may_launch) = (false, false);
            }
            decided_by = Some(now);
            if self.has_server(&r.family, clsid) {
                if !may_activate {
                    self.check(cx, &r, false)?;
                    may_activate = true;
                }
                if let Some(done) = self.route(cx, clsid, &r.family)? {
                    return Ok(done);
                }
                continue;
            }
            if !may_launch {
                self.check(cx, &r, true)?;
                (may_launch, may_activate) = (true, true);
            }
            if starts >= STARTS || tokio::time::Instant::now() >= deadline {
                return Err(failed(
                    HResult::ServerExecFailure,
                    format!(
                        "no server of class {{{clsid}}} in {} took the activation ({starts} \
                         started)",
                        r.family
                    ),
                ));
            }
            starts += 1;
            // The first start is shared with concurrent activations; one that lost the server
            // it waited for to another (a SINGLEUSE registration) starts its own at once.
            self.start_server(cx.shared, &r, deadline, starts == 1).await?;
        }
    }

    fn check(&self, cx: &Cx<'_>, r: &Resolved, launch: bool) -> Result<()> {
        let desired = COM_RIGHTS_EXECUTE
            | COM_RIGHTS_ACTIVATE_LOCAL
            | if launch { COM_RIGHTS_EXECUTE_LOCAL } else { 0 };
        let clsid = r.clsid.to_string();
        let op =
            Operation::ActivateComClass { clsid: &clsid, server: &r.family, sd: &r.sd, desired };
        cx.enforce(op)?;
        Ok(())
    }

    /// Whether process `pid` registered `clsid` (taken since or not).
    fn registered(&self, pid: u32, clsid: Guid) -> bool {
        self.lock().servers.values().any(|s| {
            s.pid == pid && s.regs.iter().any(|r| r.clsid == clsid && (r.used || r.available()))
        })
    }

    /// Whether process `pid` was handed an activation.
    fn served(&self, pid: u32) -> bool {
        self.lock().servers.values().any(|s| s.pid == pid && s.activations > 0)
    }

    fn has_server(&self, family: &str, clsid: Guid) -> bool {
        self.lock().servers.values().any(|s| serves(s, family, clsid))
    }

    /// Hands a running server of the class the activation; `None` when none could take it.
    fn route(
        &self,
        cx: &Cx<'_>,
        clsid: Guid,
        family: &str,
    ) -> Result<Option<(ComActivated, OwnedFd)>> {
        let who = cx.caller;
        let mut st = self.lock();
        cx.session.ensure_open()?;
        loop {
            let Some((&session, server)) =
                st.servers.iter_mut().find(|(_, s)| serves(s, family, clsid))
            else {
                return Ok(None);
            };
            let (server_end, client_end) = appipc_sys::socket::seqpacket_pair()
                .map_err(|e| InternalError::io("creating a COM object's socket pair", e))?;
            let activation_id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
            let caller = super::rpc::attested(who, false);
            let event = Activate { activation_id, clsid: clsid.to_string(), caller };
            match server.outbox.event(event, vec![server_end]) {
                Ok(()) => {}
                Err(Undeliverable::Gone) => {
                    st.servers.remove(&session);
                    self.bump();
                    continue;
                }
                Err(Undeliverable::Full) => {
                    return Err(failed(
                        HResult::ServerExecFailure,
                        format!(
                            "the server of class {{{clsid}}} (pid {}) does not read its session",
                            server.pid
                        ),
                    ));
                }
            }
            server.activations += 1;
            if let Some(r) = server.regs.iter_mut().find(|r| r.clsid == clsid && r.available())
                && r.flags & (REGCLS_MULTIPLEUSE | REGCLS_MULTI_SEPARATE) == 0
            {
                r.used = true;
            }
            tracing::debug!(clsid = %clsid, server = server.pid, client = %who.describe(), "com activation");
            let activated = ComActivated {
                activation_id,
                server_package_family_name: server.family.clone(),
                server_sid: server.package_sid.clone(),
                server_pid: if who.principal.is_confined() { 0 } else { server.pid },
                server_app_id: server.app_id.clone(),
            };
            return Ok(Some((activated, client_end)));
        }
    }

    /// Starts the class's exe server (or, `may_join`, joins a start of it under way) and waits
    /// until some server of the package registers the class; `CO_E_SERVER_EXEC_FAILURE` when
    /// it exits or the time runs out first.
    async fn start_server(
        &self,
        shared: &Arc<Shared>,
        r: &Resolved,
        deadline: tokio::time::Instant,
        may_join: bool,
    ) -> Result<()> {
        let clsid = r.clsid;
        let key = (r.family.to_ascii_lowercase(), clsid);
        let mut changed = self.changed.subscribe();
        let token = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let joined = {
            let mut st = self.lock();
            match st.starting.get(&key) {
                Some(&t) if may_join => Some(t),
                Some(_) => None,
                None => {
                    st.starting.insert(key.clone(), token);
                    None
                }
            }
        };
        let record = match joined {
            Some(_) => None,
            None => match self.spawn_server(shared, r).await {
                Ok(record) => Some(record),
                Err(e) => {
                    self.end_start(&key, token);
                    return Err(e);
                }
            },
        };
        let outcome =
            self.await_registration(&key, joined, record.as_deref(), &mut changed, deadline).await;
        if let Some(rec) = &record {
            if let Err(why) = &outcome {
                let message = format!("the COM server (pid {}) {why}", rec.pid);
                self.lock().failed.insert(key.clone(), (token, message));
            }
            self.end_start(&key, token);
            // A process that took activations (of this class or another) serves clients: it
            // is not killed for being slow with this one.
            if outcome.is_err() && !self.served(rec.pid) {
                let _ = appipc_sys::process::send_signal(
                    &rec.pidfd,
                    appipc_sys::process::ProcessSignal::KILL,
                );
            }
        }
        outcome.map_err(|why| {
            let pid = record.as_ref().map(|r| r.pid).unwrap_or_default();
            failed(
                HResult::ServerExecFailure,
                format!("the COM server of class {{{clsid}}} in {} (pid {pid}) {why}", r.family),
            )
        })
    }

    /// Ends the start `token` of `key` (not a later one).
    fn end_start(&self, key: &(String, Guid), token: u64) {
        let mut st = self.lock();
        if st.starting.get(key) == Some(&token) {
            st.starting.remove(key);
        }
        drop(st);
        self.bump();
    }

    /// Starts the exe server: full trust, as the application declaring the class, with its
    /// arguments and `-Embedding`.
    async fn spawn_server(
        &self,
        shared: &Arc<Shared>,
        r: &Resolved,
    ) -> Result<Arc<crate::launcher::ProcessRecord>> {
        let class = r.class();
        let (clsid, family) = (r.clsid, &r.family);
        if shared.repository.is_busy(family) {
            return Err(failed(
                HResult::ServerExecFailure,
                format!("{family} is being deployed: its COM server does not start now"),
            ));
        }
        if !class.pkg.is_granted(RUN_FULL_TRUST) {
            return Err(failed(
                HResult::ServerExecFailure,
                format!("{family} was not granted {RUN_FULL_TRUST}: its COM server does not start"),
            ));
        }
        let exe = class.exe();
        let mut start = Start::app(&class.pkg, class.app(), Activation::ComServer);
        start.program = &exe.executable;
        start.args = exe.arguments.clone();
        start.args.push("-Embedding".into());
        start.trust = TrustLevel::FullTrust;
        let record = activation::start_app(shared, start).await.map_err(|e| {
            failed(
                HResult::ServerExecFailure,
                format!("the COM server of class {{{clsid}}} could not be started: {e}"),
            )
        })?;
        tracing::info!(clsid = %clsid, package = %family, pid = record.pid, "com server started");
        Ok(record)
    }

    /// Waits until a server of the package takes activations of the class, the start joined
    /// ended, the process started exits, or the deadline.
    async fn await_registration(
        &self,
        key: &(String, Guid),
        joined: Option<u64>,
        record: Option<&crate::launcher::ProcessRecord>,
        changed: &mut watch::Receiver<u64>,
        deadline: tokio::time::Instant,
    ) -> std::result::Result<(), String> {
        loop {
            if self.has_server(&key.0, key.1) {
                return Ok(());
            }
            // The process started registered the class, and another activation may have taken
            // it already (`SINGLEUSE`): the start did its part.
            if let Some(r) = record
                && self.registered(r.pid, key.1)
            {
                return Ok(());
            }
            if let Some(t) = joined {
                let st = self.lock();
                if st.starting.get(key) != Some(&t) {
                    // The start joined ended: failed, its failure is ours; else it served
                    // another activation first (the caller starts its own).
                    return match st.failed.get(key) {
                        Some((f, why)) if *f == t => Err(format!("(joined) failed: {why}")),
                        _ => Ok(()),
                    };
                }
            }
            let exited = async {
                match record {
                    Some(r) => {
                        let mut e = r.exited.clone();
                        let s = e.wait_for(|s| s.is_some()).await.ok().and_then(|s| *s);
                        s.map(|s| s.to_string()).unwrap_or_default()
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = changed.changed() => {}
                status = exited => {
                    return Err(format!("exited before it registered the class ({status})"));
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(format!("did not register the class within {:?}", self.start));
                }
            }
        }
    }

    /// `CoRegisterClassObject`: a full-trust process of the application declaring the class.
    fn register(&self, cx: &Cx<'_>, text: &str, flags: u32) -> Result<u64> {
        let who = cx.caller;
        let clsid = parse_clsid(text)?;
        let known = REGCLS_MULTIPLEUSE
            | REGCLS_MULTI_SEPARATE
            | REGCLS_SUSPENDED
            | REGCLS_SURROGATE
            | REGCLS_AGILE;
        if flags & !known != 0 {
            return Err(failed(
                HResult::InvalidArg,
                format!("REGCLS flags {flags:#x}: only 0x1, 0x2, 0x4, 0x8 and 0x10 are defined"),
            ));
        }
        let catalog = self.catalog(cx.shared);
        let p = identity_for_registration(&catalog, who, clsid)?;
        let mut st = self.lock();
        cx.session.ensure_open()?;
        let server = st.servers.entry(who.session_id).or_insert_with(|| Server {
            pid: who.pid,
            family: p.family_name.to_string(),
            app_id: p.app_id.to_string(),
            package_sid: p.package_sid.to_string(),
            outbox: cx.session.outbox.clone(),
            regs: Vec::new(),
            suspended: false,
            activations: 0,
            objects: 0,
            locks: 0,
        });
        if server.regs.is_empty() {
            // Registering again after it revoked everything (a new ComServer): it serves.
            server.suspended = false;
        }
        if server.regs.iter().any(|r| r.clsid == clsid) {
            return Err(failed(
                HResult::ObjectIsRegistered,
                format!("class {{{clsid}}} is registered in this process already"),
            ));
        }
        if server.regs.len() >= MAX_REGISTRATIONS_PER_SESSION {
            return Err(failed(
                HResult::NotEnoughQuota,
                format!(
                    "this session holds {MAX_REGISTRATIONS_PER_SESSION} class registrations, the \
                     most it may"
                ),
            ));
        }
        let cookie = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        server.regs.push(Registration {
            cookie,
            clsid,
            flags,
            waiting_resume: flags & REGCLS_SUSPENDED != 0,
            used: false,
        });
        tracing::info!(clsid = %clsid, by = %who.describe(), flags, "com class registered");
        drop(st);
        self.bump();
        Ok(cookie)
    }

    fn revoke(&self, cx: &Cx<'_>, cookie: u64) -> Result<()> {
        let mut st = self.lock();
        let server = st.servers.get_mut(&cx.caller.session_id);
        let Some(server) = server.filter(|s| s.regs.iter().any(|r| r.cookie == cookie)) else {
            return Err(failed(
                HResult::ObjectNotRegistered,
                format!("{cookie} is not a class registration of this process"),
            ));
        };
        server.regs.retain(|r| r.cookie != cookie);
        drop(st);
        self.bump();
        Ok(())
    }

    /// `CoResumeClassObjects`: the registrations waiting take activations, and a server that
    /// suspended takes them again.
    fn resume(&self, cx: &Cx<'_>) {
        let changed = self.lock().servers.get_mut(&cx.caller.session_id).is_some_and(|s| {
            let before = s.suspended || s.regs.iter().any(|r| r.waiting_resume);
            s.suspended = false;
            s.regs.iter_mut().for_each(|r| r.waiting_resume = false);
            before
        });
        if changed {
            self.bump();
        }
    }

    fn suspend(&self, cx: &Cx<'_>) {
        let changed = self.lock().servers.get_mut(&cx.caller.session_id).is_some_and(|s| {
            tracing::debug!(pid = s.pid, "com server suspended its class objects");
            !std::mem::replace(&mut s.suspended, true)
        });
        if changed {
            self.bump();
        }
    }

    fn report_count(&self, cx: &Cx<'_>, objects: u32, locks: u32) {
        if let Some(s) = self.lock().servers.get_mut(&cx.caller.session_id) {
            (s.objects, s.locks) = (objects, locks);
        }
    }

    /// The catalog and the servers, as much as fits a reply. An app container sees the
    /// classes of the packages it may query and only its own package's servers (pids as 0).
    fn list(&self, cx: &Cx<'_>) -> ComList {
        let who = cx.caller;
        let confined = who.principal.is_confined();
        let user = who.principal.user_sid().to_string();
        let catalog = self.catalog(cx.shared);
        let (mut classes, mut size, mut more) = (Vec::new(), 0usize, 0u32);
        for (clsid, c) in catalog.sorted() {
            let family = c.pkg.family_name.as_str();
            if !cx.permits(Operation::QueryPackage { family_name: family }) {
                continue;
            }
            // Past the budget the rest is counted, not built.
            if size >= LIST_BUDGET {
                more += 1;
                continue;
            }
            let class = c.class();
            let info = ComClassInfo {
                clsid: clsid.to_string(),
                display_name: class.display_name.clone().unwrap_or_default(),
                prog_ids: c.prog_ids.clone(),
                auto_convert_to: class.auto_convert_to.map(|g| g.to_string()).unwrap_or_default(),
                package_family_name: family.to_owned(),
                app_id: c.app().id.to_string(),
                executable: c.exe().executable.to_string(),
                permission: c.listed_permission(&user),
            };
            let cost = minicbor::to_vec(&info).map_or(usize::MAX, |v| v.len());
            if cost > LIST_BUDGET - size {
                size = LIST_BUDGET;
                more += 1;
                continue;
            }
            size += cost;
            classes.push(info);
        }
        let started: std::collections::HashSet<u32> = cx
            .shared
            .processes
            .list()
            .into_iter()
            .filter(|r| r.activation == Activation::ComServer.as_str())
            .map(|r| r.pid)
            .collect();
        let st = self.lock();
        let mut servers: Vec<ComServerInfo> = st
            .servers
            .values()
            .filter(|s| !confined || who.principal.is_package(&s.family))
            .map(|s| ComServerInfo {
                pid: if confined { 0 } else { s.pid },
                package_family_name: s.family.clone(),
                app_id: s.app_id.clone(),
                classes: s
                    .regs
                    .iter()
                    .map(|r| ComRegistration {
                        clsid: r.clsid.to_string(),
                        flags: r.flags,
                        available: r.available() && !s.suspended,
                    })
                    .collect(),
                activations: s.activations,
                objects: s.objects,
                locks: s.locks,
                suspended: s.suspended,
                started_by_broker: started.contains(&s.pid),
            })
            .collect();
        drop(st);
        servers.sort_by_key(|s| s.pid);
        let mut kept = Vec::new();
        let mut budget = SERVER_BUDGET;
        for s in servers {
            let cost = minicbor::to_vec(&s).map_or(usize::MAX, |v| v.len());
            if cost > budget {
                budget = 0;
                more += 1;
                continue;
            }
            budget -= cost;
            kept.push(s);
        }
        ComList { classes, servers: kept, more }
    }

    /// A session ended: the server it was is gone.
    pub(crate) fn session_closed(&self, session: u64) {
        let gone = self.lock().servers.remove(&session);
        if gone.is_some() {
            self.bump();
        }
    }
}

/// What of a reply `List` spends on classes, and on servers after them (a reply is at most
/// 128 KiB).
const LIST_BUDGET: usize = 64 * 1024;
const SERVER_BUDGET: usize = 32 * 1024;

/// Whether `s` takes activations of `clsid` for `family` now.
fn serves(s: &Server, family: &str, clsid: Guid) -> bool {
    !s.suspended
        && s.family.eq_ignore_ascii_case(family)
        && s.regs.iter().any(|r| r.clsid == clsid && r.available())
}

/// The package identity a registration of `clsid` is made with: a full-trust process of the
/// application declaring the class (the identity Activate-As-Package gives its servers); else
/// `CO_E_WRONG_SERVER_IDENTITY` (or `REGDB_E_CLASSNOTREG` for a class no package declares).
fn identity_for_registration<'a>(
    catalog: &Catalog,
    who: &'a Caller,
    clsid: Guid,
) -> Result<&'a appipc_model::principal::PackagePrincipal> {
    let found = catalog.classes.get(&clsid).ok_or_else(|| not_registered(clsid))?;
    let owner = format!("{}!{}", found.pkg.family_name, found.app().id);
    let wrong = |what: String| {
        failed(
            HResult::WrongServerIdentity,
            format!("{what} may not serve class {{{clsid}}}: its server runs as {owner}"),
        )
    };
    let Some(p) = who.principal.package.as_ref() else {
        return Err(wrong(format!("an unpackaged process (pid {})", who.pid)));
    };
    if !p.family_name.as_str().eq_ignore_ascii_case(found.pkg.family_name.as_str())
        || p.app_id != found.app().id
    {
        return Err(wrong(format!("a process of {}!{}", p.family_name, p.app_id)));
    }
    if who.principal.is_confined() {
        return Err(wrong(
            "a process in an app container (COM servers run full trust, as the application \
             declaring the class)"
                .to_owned(),
        ));
    }
    Ok(p)
}
