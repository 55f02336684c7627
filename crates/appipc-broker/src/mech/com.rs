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

use appipc_model::manifest::{Application, ComClass, ExeServer, Guid, Manifest};
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
use crate::repository::InstalledPackage;

type Result<T, E = ComError> = std::result::Result<T, E>;

/// `REGCLS_MULTIPLEUSE`.
const REGCLS_MULTIPLEUSE: u32 = 1;
/// `REGCLS_MULTI_SEPARATE`.
const REGCLS_MULTI_SEPARATE: u32 = 2;
/// `REGCLS_SUSPENDED`.
const REGCLS_SUSPENDED: u32 = 4;
/// `REGCLS_SURROGATE`: accepted, it changes nothing here.
const REGCLS_SURROGATE: u32 = 8;

/// Class registrations one session may hold.
pub(crate) const MAX_REGISTRATIONS_PER_SESSION: usize = 256;

/// How often one activation tries a server (a server going away under it, a `SINGLEUSE`
/// registration taken by another client, a start that registered other classes first).
const ATTEMPTS: usize = 6;

/// The longest ProgID taken (Windows: 39 characters).
const MAX_PROG_ID: usize = 255;

/// `LaunchAndActivationPermission` when the manifest gives none: the user (and SYSTEM) may
/// start and activate; no app container may (machine-wide COM restrictions leave out
/// `ALL APPLICATION PACKAGES` by default).
fn default_permission(user_sid: &str) -> String {
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
        R::ClsidFromProgId(p) => Replied::of::<wire::ClsidFromProgId>(
            clsid_from_prog_id(cx.shared, &p.prog_id)?.to_string(),
        ),
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

/// A declared class: its package, application and exe server.
struct Found {
    pkg: Arc<InstalledPackage>,
    app_index: usize,
    clsid: Guid,
}

impl Found {
    fn parts(&self) -> (&Application, &ExeServer, &ComClass) {
        let app = &self.pkg.manifest.applications[self.app_index];
        let (exe, class) = app
            .com_servers
            .iter()
            .find_map(|s| s.find_class(self.clsid))
            .expect("the class was found in this application");
        (app, exe, class)
    }
}

fn find_class(shared: &Shared, clsid: Guid) -> Option<Found> {
    shared.repository.all().into_iter().find_map(|pkg| {
        let app_index = pkg
            .manifest
            .applications
            .iter()
            .position(|a| a.com_servers.iter().any(|s| s.find_class(clsid).is_some()))?;
        Some(Found { pkg, app_index, clsid })
    })
}

/// The ProgIDs that name classes in a manifest: `(ProgID, CLSID)`.
fn prog_ids(manifest: &Manifest) -> Vec<(String, Guid)> {
    let mut v = Vec::new();
    for app in &manifest.applications {
        for block in &app.com_servers {
            for (_, c) in block.classes() {
                for p in [&c.prog_id, &c.version_independent_prog_id].into_iter().flatten() {
                    v.push((p.clone(), c.id));
                }
            }
            for p in &block.prog_ids {
                if let Some(g) = block.resolve_prog_id(&p.id) {
                    v.push((p.id.clone(), g));
                }
            }
        }
    }
    v
}

/// `CLSIDFromProgID` over the catalog (case-insensitive, as the registry compares).
fn clsid_from_prog_id(shared: &Shared, prog_id: &str) -> Result<Guid> {
    let bad = || {
        failed(
            HResult::ClassString,
            format!(
                "no installed package declares the ProgID {:?}",
                appipc_wire::text::printable(&prog_id.chars().take(80).collect::<String>())
            ),
        )
    };
    if prog_id.is_empty() || prog_id.len() > MAX_PROG_ID {
        return Err(bad());
    }
    for pkg in shared.repository.all() {
        // A `prog-id` entry first (it may name the current version), then classes' own.
        for app in &pkg.manifest.applications {
            for block in &app.com_servers {
                if let Some(g) = block.resolve_prog_id(prog_id) {
                    return Ok(g);
                }
            }
        }
        if let Some((_, g)) =
            prog_ids(&pkg.manifest).into_iter().find(|(p, _)| p.eq_ignore_ascii_case(prog_id))
        {
            return Ok(g);
        }
    }
    Err(bad())
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
    let names = prog_ids(manifest);
    if classes.is_empty() && names.is_empty() {
        return None;
    }
    for other in shared.repository.all() {
        if other.family_name == family {
            continue;
        }
        let theirs = prog_ids(&other.manifest);
        for c in &classes {
            if other.manifest.com_class(*c).is_some() {
                return Some(format!(
                    "COM class {{{c}}} is declared by {}, installed already: a CLSID belongs to \
                     one package of the catalog",
                    other.family_name
                ));
            }
        }
        for (p, _) in &names {
            if theirs.iter().any(|(q, _)| q.eq_ignore_ascii_case(p)) {
                return Some(format!(
                    "ProgID {p:?} is declared by {}, installed already: a ProgID belongs to one \
                     package of the catalog",
                    other.family_name
                ));
            }
        }
    }
    None
}

/// The permission an exe server's activations are decided by.
fn permission(exe: &ExeServer, user_sid: &str) -> std::result::Result<SecurityDescriptor, String> {
    let text = match &exe.launch_and_activation_permission {
        Some(t) => t.clone(),
        None => default_permission(user_sid),
    };
    SecurityDescriptor::from_sddl(&text).map_err(|e| format!("its permission {text:?}: {e}"))
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
    /// Servers being started: (family, CLSID) → the pid started.
    starting: HashMap<(String, Guid), u32>,
    /// Pids the broker started as servers.
    started: std::collections::HashSet<u32>,
}

/// The COM table.
#[derive(Debug)]
pub struct Com {
    state: Mutex<State>,
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

    /// `CoCreateInstance`: routes to a running server of the class, else starts one.
    async fn create_instance(&self, cx: &Cx<'_>, text: &str) -> Result<(ComActivated, OwnedFd)> {
        let shared = cx.shared;
        let clsid = parse_clsid(text)?;
        let found = find_class(shared, clsid).ok_or_else(|| {
            failed(
                HResult::ClassNotRegistered,
                format!("no installed package declares the COM class {{{clsid}}}"),
            )
        })?;
        let family = found.pkg.family_name.to_string();
        let (_, exe, _) = found.parts();
        let user = cx.caller.principal.user_sid().to_string();
        let sd = permission(exe, &user).map_err(|why| {
            failed(
                HResult::AccessDenied,
                format!("the exe server of class {{{clsid}}} cannot be activated: {why}"),
            )
        })?;
        let (mut may_activate, mut may_launch) = (false, false);
        for _ in 0..ATTEMPTS {
            if self.has_server(&family, clsid) {
                if !may_activate {
                    self.check(cx, clsid, &family, &sd, false)?;
                    may_activate = true;
                }
                if let Some(done) = self.route(cx, clsid, &family)? {
                    return Ok(done);
                }
                continue;
            }
            if !may_launch {
                self.check(cx, clsid, &family, &sd, true)?;
                (may_launch, may_activate) = (true, true);
            }
            self.start_server(shared, &found).await?;
        }
        Err(failed(
            HResult::ServerExecFailure,
            format!("no server of class {{{clsid}}} in {family} took the activation"),
        ))
    }

    fn check(
        &self,
        cx: &Cx<'_>,
        clsid: Guid,
        family: &str,
        sd: &SecurityDescriptor,
        launch: bool,
    ) -> Result<()> {
        let desired = COM_RIGHTS_EXECUTE
            | COM_RIGHTS_ACTIVATE_LOCAL
            | if launch { COM_RIGHTS_EXECUTE_LOCAL } else { 0 };
        let clsid = clsid.to_string();
        cx.enforce(Operation::ActivateComClass { clsid: &clsid, server: family, sd, desired })?;
        Ok(())
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

    /// Starts the class's exe server (or joins a start of it under way) and waits until some
    /// server of the package registers the class; `CO_E_SERVER_EXEC_FAILURE` when it exits or
    /// the time runs out first.
    async fn start_server(&self, shared: &Arc<Shared>, found: &Found) -> Result<()> {
        let (app, exe, _) = found.parts();
        let family = found.pkg.family_name.to_string();
        let clsid = found.clsid;
        let key = (family.clone(), clsid);
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + self.start;
        let joined = self.lock().starting.get(&key).copied();
        let record = match joined {
            Some(_) => None,
            None => {
                if shared.repository.is_busy(&family) {
                    return Err(failed(
                        HResult::ServerExecFailure,
                        format!("{family} is being deployed: its COM server does not start now"),
                    ));
                }
                let mut start = Start::app(&found.pkg, app, Activation::ComServer);
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
                let mut st = self.lock();
                st.starting.insert(key.clone(), record.pid);
                st.started.insert(record.pid);
                tracing::info!(clsid = %clsid, package = %family, pid = record.pid, "com server started");
                Some(record)
            }
        };
        let outcome = loop {
            if self.has_server(&family, clsid) {
                break Ok(());
            }
            if joined.is_some() && !self.lock().starting.contains_key(&key) {
                // The start joined ended without a server: try again (or start one).
                break Ok(());
            }
            let exited = async {
                match &record {
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
                    break Err(format!("exited before it registered the class ({status})"));
                }
                () = tokio::time::sleep_until(deadline) => {
                    break Err(format!("did not register the class within {:?}", self.start));
                }
            }
        };
        if let Some(r) = &record {
            self.lock().starting.remove(&key);
            self.bump();
            if outcome.is_err()
                && let Some(p) = shared.processes.list().into_iter().find(|p| p.pid == r.pid)
            {
                let _ = appipc_sys::process::send_signal(
                    &p.pidfd,
                    appipc_sys::process::ProcessSignal::KILL,
                );
            }
        }
        outcome.map_err(|why| {
            let pid = record.as_ref().map(|r| r.pid).unwrap_or_default();
            failed(
                HResult::ServerExecFailure,
                format!("the COM server of class {{{clsid}}} in {family} (pid {pid}) {why}"),
            )
        })
    }

    /// `CoRegisterClassObject`: a full-trust process of the package declaring the class.
    fn register(&self, cx: &Cx<'_>, text: &str, flags: u32) -> Result<u64> {
        let who = cx.caller;
        let clsid = parse_clsid(text)?;
        let known =
            REGCLS_MULTIPLEUSE | REGCLS_MULTI_SEPARATE | REGCLS_SUSPENDED | REGCLS_SURROGATE;
        if flags & !known != 0 {
            return Err(failed(
                HResult::InvalidArg,
                format!("REGCLS flags {flags:#x}: only 0x1, 0x2, 0x4 and 0x8 are defined"),
            ));
        }
        let p = identity_for_registration(cx.shared, who, clsid)?;
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

    fn resume(&self, cx: &Cx<'_>) {
        if let Some(s) = self.lock().servers.get_mut(&cx.caller.session_id) {
            s.regs.iter_mut().for_each(|r| r.waiting_resume = false);
        }
        self.bump();
    }

    fn suspend(&self, cx: &Cx<'_>) {
        if let Some(s) = self.lock().servers.get_mut(&cx.caller.session_id) {
            s.suspended = true;
            tracing::debug!(pid = s.pid, "com server suspended its class objects");
        }
        self.bump();
    }

    fn report_count(&self, cx: &Cx<'_>, objects: u32, locks: u32) {
        if let Some(s) = self.lock().servers.get_mut(&cx.caller.session_id) {
            (s.objects, s.locks) = (objects, locks);
        }
    }

    /// The catalog and the servers; an app container sees only its own package's servers
    /// (and pids as 0).
    fn list(&self, cx: &Cx<'_>) -> ComList {
        let who = cx.caller;
        let confined = who.principal.is_confined();
        let user = who.principal.user_sid().to_string();
        let mut classes = Vec::new();
        for pkg in cx.shared.repository.all() {
            let names = prog_ids(&pkg.manifest);
            for app in &pkg.manifest.applications {
                for (exe, c) in app.com_servers.iter().flat_map(|s| s.classes()) {
                    let mut prog_ids: Vec<String> =
                        names.iter().filter(|(_, g)| *g == c.id).map(|(p, _)| p.clone()).collect();
                    prog_ids.sort();
                    prog_ids.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
                    classes.push(ComClassInfo {
                        clsid: c.id.to_string(),
                        display_name: c.display_name.clone().unwrap_or_default(),
                        prog_ids,
                        auto_convert_to: c
                            .auto_convert_to
                            .map(|g| g.to_string())
                            .unwrap_or_default(),
                        package_family_name: pkg.family_name.to_string(),
                        app_id: app.id.to_string(),
                        executable: exe.executable.to_string(),
                        permission: permission(exe, &user)
                            .map(|sd| sd.to_sddl())
                            .unwrap_or_else(|why| format!("(unusable: {why})")),
                    });
                }
            }
        }
        classes.sort_by(|a, b| a.clsid.cmp(&b.clsid));
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
                started_by_broker: st.started.contains(&s.pid),
            })
            .collect();
        servers.sort_by_key(|s| s.pid);
        ComList { classes, servers }
    }

    /// A session ended: the server it was is gone.
    pub(crate) fn session_closed(&self, session: u64) {
        let gone = self.lock().servers.remove(&session);
        if let Some(s) = gone {
            self.lock().started.remove(&s.pid);
            self.bump();
        }
    }
}

/// Whether `s` takes activations of `clsid` for `family` now.
fn serves(s: &Server, family: &str, clsid: Guid) -> bool {
    !s.suspended
        && s.family.eq_ignore_ascii_case(family)
        && s.regs.iter().any(|r| r.clsid == clsid && r.available())
}

/// The package identity a registration of `clsid` is made with: a full-trust process of the
/// package declaring the class; else `CO_E_WRONG_SERVER_IDENTITY` (or `REGDB_E_CLASSNOTREG`
/// for a class no package declares).
fn identity_for_registration<'a>(
    shared: &Shared,
    who: &'a Caller,
    clsid: Guid,
) -> Result<&'a appipc_model::principal::PackagePrincipal> {
    let Some(found) = find_class(shared, clsid) else {
        return Err(failed(
            HResult::ClassNotRegistered,
            format!("no installed package declares the COM class {{{clsid}}}"),
        ));
    };
    let wrong = |what: String| {
        failed(
            HResult::WrongServerIdentity,
            format!("{what} may not serve class {{{clsid}}} of {}", found.pkg.family_name),
        )
    };
    let Some(p) = who.principal.package.as_ref() else {
        return Err(wrong(format!("an unpackaged process (pid {})", who.pid)));
    };
    if p.family_name != found.pkg.family_name {
        return Err(wrong(format!("a process of {}", p.family_name)));
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
