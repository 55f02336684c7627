//! Starting a package's process: the one place that turns an application of an installed
//! package into a running, tracked process with its own pre-authenticated session.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use appipc_model::manifest::{Application, PackagePath};
use appipc_model::principal::Principal;
use appipc_sys::process::SpawnRequest;
use appipc_wire::caller::TrustLevel;

use crate::Shared;
use crate::caller::Caller;
use crate::error::InternalError;
use crate::error::LaunchError;
use crate::launcher::{ProcessMeta, ProcessRecord};
use crate::repository::InstalledPackage;

type Result<T, E = LaunchError> = std::result::Result<T, E>;

/// Why a process is started (`APPIPC_ACTIVATION` tells the process; the SDK reads it as
/// `appipc::AppInstance::get_activated_event_args`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Launched by the user or another app (`launch`).
    Launch,
    /// Started without UI to serve an in-process app service (`background`).
    Background,
    /// Started as the out-of-process host of an app service (`appservice`); the service's
    /// name is in `APPIPC_APP_SERVICE`.
    AppServiceHost,
    /// Started by `FullTrustProcessLauncher` (`fulltrust`).
    FullTrust,
    /// Activated for a URI (`protocol`, `ActivationKind.Protocol`); the activation's id is in
    /// `APPIPC_ACTIVATION_ID`.
    Protocol,
    /// Activated for a URI, for results (`protocolforresults`,
    /// `ActivationKind.ProtocolForResults`); likewise.
    ProtocolForResults,
    /// Started by the broker as the COM server of a class (`comserver`), with `-Embedding`.
    ComServer,
}

impl Activation {
    /// Its name, as `APPIPC_ACTIVATION` and the process records have it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Activation::Launch => "launch",
            Activation::Background => "background",
            Activation::AppServiceHost => "appservice",
            Activation::FullTrust => "fulltrust",
            Activation::Protocol => "protocol",
            Activation::ProtocolForResults => "protocolforresults",
            Activation::ComServer => "comserver",
        }
    }
}

/// Environment variables a launched process may inherit from the broker. `APPIPC_SPIN_US`
/// (the SDK's polling policy, see `crates/appipc/src/spin.rs`) so that one setting of the
/// broker's applies to the apps and service hosts it starts.
const PASSED_ENV: [&str; 8] =
    ["PATH", "LANG", "LC_ALL", "TERM", "TZ", "RUST_LOG", "RUST_BACKTRACE", "APPIPC_SPIN_US"];

/// What to start.
#[derive(Debug)]
pub(crate) struct Start<'a> {
    /// The package.
    pub(crate) pkg: &'a Arc<InstalledPackage>,
    /// The application whose identity the process carries.
    pub(crate) app: &'a Application,
    /// The executable (an app's, a service host's or a full-trust process').
    pub(crate) program: &'a PackagePath,
    /// Arguments after the application's own.
    pub(crate) args: Vec<String>,
    /// stdin, stdout, stderr; `None`: `/dev/null` and the package's log.
    pub(crate) stdio: Option<[OwnedFd; 3]>,
    /// Why.
    pub(crate) activation: Activation,
    /// For a service host: the service (`APPIPC_APP_SERVICE`).
    pub(crate) app_service: Option<&'a str>,
    /// App container (confined) or full trust.
    pub(crate) trust: TrustLevel,
    /// The session to tell when it exits (`notify_exit`), recorded so that a restarted broker
    /// still tells it.
    pub(crate) notify_session: Option<u64>,
    /// The process whose exit ends this one (`tie-lifetime-to-caller`), likewise.
    pub(crate) tied_to: Option<u64>,
    /// For a protocol activation: its id (`APPIPC_ACTIVATION_ID`).
    pub(crate) activation_id: Option<u64>,
}

impl<'a> Start<'a> {
    /// Starting `app` of `pkg` with its own executable and trust level.
    pub(crate) fn app(
        pkg: &'a Arc<InstalledPackage>,
        app: &'a Application,
        activation: Activation,
    ) -> Start<'a> {
        Start {
            pkg,
            app,
            program: &app.executable,
            args: Vec::new(),
            stdio: None,
            activation,
            app_service: None,
            trust: InstalledPackage::trust_of(app),
            notify_session: None,
            tied_to: None,
            activation_id: None,
        }
    }
}

/// `[limits] processes-per-package` and `sessions-per-package`: room for one more process.
fn room_for_process(shared: &Shared, family: &str) -> Result<()> {
    let running = shared.processes.of_family(family).len();
    if running >= shared.config.limits.processes_per_package {
        return Err(LaunchError::Quota(format!(
            "package {family} runs {running} processes, the most it may ([limits] \
             processes-per-package)"
        )));
    }
    shared
        .sessions
        .room_for_package(shared, family)
        .map_err(|e| LaunchError::Quota(e.to_string()))?;
    Ok(())
}

/// The app's stdio: as given, else nothing to read and its output appended to the package's
/// log.
fn app_stdio(
    shared: &Shared,
    pkg: &InstalledPackage,
    stdio: Option<[OwnedFd; 3]>,
) -> [Option<OwnedFd>; 3] {
    match stdio {
        Some([i, o, e]) => [Some(i), Some(o), Some(e)],
        None => {
            let log = shared.paths.app_log(pkg.family_name.as_str());
            match crate::applog::open(&log) {
                Ok(f) => {
                    let f: OwnedFd = f.into();
                    [None, f.try_clone().ok(), Some(f)]
                }
                Err(e) => {
                    tracing::warn!(log = %log.display(), error = %e, "cannot open app log");
                    [None, None, None]
                }
            }
        }
    }
}

/// The app's environment: the few host variables passed on and what appipc tells it.
fn app_env(
    pkg: &InstalledPackage,
    app: &Application,
    activation: Activation,
    app_service: Option<&str>,
    activation_id: Option<u64>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> =
        PASSED_ENV.iter().filter_map(|k| std::env::var_os(k).map(|v| ((*k).into(), v))).collect();
    env.push(("APPIPC_SESSION_FD".into(), crate::SESSION_FD.to_string().into()));
    env.push(("APPIPC_PACKAGE_FAMILY_NAME".into(), pkg.family_name.to_string().into()));
    env.push(("APPIPC_APP_ID".into(), app.id.to_string().into()));
    env.push(("APPIPC_ACTIVATION".into(), activation.as_str().into()));
    if let Some(name) = app_service {
        env.push(("APPIPC_APP_SERVICE".into(), name.into()));
    }
    if let Some(id) = activation_id {
        env.push(("APPIPC_ACTIVATION_ID".into(), id.to_string().into()));
    }
    env
}

/// How a process is confined, in words, and its home and temporary folders.
struct Confined {
    confinement: Option<Arc<appipc_sys::sandbox::Confinement>>,
    description: String,
    home: std::path::PathBuf,
    tmpdir: std::path::PathBuf,
    /// The broker's end of the supervisor's loopback channel (an app container's, or a
    /// packaged full-trust process's).
    loopback: Option<std::os::fd::OwnedFd>,
    /// A full-trust process's `connect` filter and its supervisor's pid.
    notify: Option<(appipc_sys::seccomp_notify::NotifyFilter, u32)>,
}

/// The `connect` supervision of a packaged full-trust process (`mech::loopback::data_path`:
/// its connects to app containers' listeners): the broker's end of its loopback channel, the
/// filter the process installs and its supervisor's pid (started now, detached). `None`, with
/// a warning, where the kernel cannot: the process then runs as before, reaching no app
/// container.
async fn supervise_full_trust(
    shared: &Arc<Shared>,
    aumid: &str,
) -> Option<(std::os::fd::OwnedFd, (appipc_sys::seccomp_notify::NotifyFilter, u32))> {
    let started = std::time::Instant::now();
    let made = shared
        .launcher
        .run(|| {
            let (broker_end, theirs) = appipc_sys::socket::seqpacket_pair()?;
            let (filter, supervisor) = appipc_sys::seccomp_notify::supervised_full_trust(theirs)?;
            let pid = supervisor.start_detached()?;
            Ok::<_, std::io::Error>((broker_end, (filter, pid)))
        })
        .await
        .and_then(|r| r);
    match made {
        Ok(m) => {
            let us = started.elapsed().as_micros() as u64;
            tracing::debug!(app = %aumid, supervisor = m.1.1, us, "full trust: connect supervisor started");
            Some(m)
        }
        Err(e) => {
            tracing::warn!(app = %aumid, error = %e, "full trust: no connect supervisor; its loopback connects reach no app container");
            None
        }
    }
}

/// Prepares an app container's confinement (full trust: none, but its `connect` supervision).
async fn confine(
    shared: &Arc<Shared>,
    pkg: &InstalledPackage,
    trust: TrustLevel,
    aumid: &str,
) -> Result<Confined> {
    let (mut confinement, mut loopback, mut notify) = (None, None, None);
    let mut description = crate::launcher::UNCONFINED_FULL_TRUST.to_owned();
    let (mut home, mut tmpdir) = (pkg.data_dir.join("LocalState"), pkg.data_dir.join("TempState"));
    if trust == TrustLevel::AppContainer {
        match crate::container::prepare(shared, pkg).await {
            Ok(p) => {
                confinement = Some(p.confinement);
                loopback = Some(p.loopback);
                description = p.description;
                home = p.home;
                tmpdir = p.tmpdir;
            }
            Err(e) if crate::config::unconfined_allowed() => {
                tracing::error!(
                    app = %aumid,
                    error = %e,
                    "STARTING AN APP CONTAINER UNCONFINED because APPIPC_ALLOW_UNCONFINED=1"
                );
                description = format!(
                    "{} (APPIPC_ALLOW_UNCONFINED=1; {e})",
                    crate::launcher::UNCONFINED_FALLBACK
                );
            }
            Err(e) => return Err(e),
        }
    } else if let Err(why) =
        crate::mech::loopback::data_path::room_for_supervisor(shared, pkg.family_name.as_str())
    {
        return Err(LaunchError::Quota(why));
    } else if let Some((channel, filter)) = supervise_full_trust(shared, aumid).await {
        loopback = Some(channel);
        notify = Some(filter);
    }
    Ok(Confined { confinement, description, home, tmpdir, loopback, notify })
}

/// Starts a process of a package: a new session socket at fd 3, stdio as asked, a clean
/// environment, confined when its trust level says so, tracked by pidfd.
pub(crate) async fn start_app(
    shared: &Arc<Shared>,
    start: Start<'_>,
) -> Result<Arc<ProcessRecord>> {
    let Start {
        pkg,
        app,
        program,
        args,
        stdio,
        activation,
        app_service,
        trust,
        notify_session,
        tied_to,
        activation_id,
    } = start;
    let aumid = format!("{}!{}", pkg.family_name, app.id);
    let family = pkg.family_name.as_str();
    room_for_process(shared, family)?;
    let [stdin, stdout, stderr] = app_stdio(shared, pkg, stdio);
    let (broker_end, app_end) = appipc_sys::socket::seqpacket_pair()
        .map_err(|e| InternalError::io("creating a session socket pair", e))?;
    // A COM exe server runs its own program with its own arguments (and `-Embedding`), not the
    // application's.
    let own: &[String] = if activation == Activation::ComServer { &[] } else { &app.arguments };
    let mut argv: Vec<OsString> = own.iter().map(Into::into).collect();
    argv.extend(args.into_iter().map(Into::into));
    let mut env = app_env(pkg, app, activation, app_service, activation_id);
    let Confined { confinement, description, home, tmpdir, loopback, notify } =
        confine(shared, pkg, trust, &aumid).await?;
    env.push(("HOME".into(), home.into()));
    env.push(("TMPDIR".into(), tmpdir.into()));
    let request = SpawnRequest {
        program: pkg.install_dir.join(program.as_str()),
        args: argv,
        env,
        cwd: pkg.install_dir.clone(),
        stdin,
        stdout,
        stderr,
        fds: vec![(crate::SESSION_FD, app_end)],
        // No parent-death signal: the process outlives the broker, which a restart re-adopts.
        parent_death_signal: None,
        new_session: true,
        confinement,
        notify,
    };
    let spawned = shared.launcher.spawn(request).await.map_err(|e| {
        tracing::warn!(app = %aumid, error = %e, "start failed");
        LaunchError::Failed(format!("{aumid}: {e}"))
    })?;
    let pid = spawned.pid;
    let identity = appipc_sys::process::identify(&spawned.pidfd, pid).unwrap_or_else(|e| {
        tracing::debug!(pid, error = %e, "a process ended as it started");
        appipc_sys::process::ProcessIdentity {
            pid,
            start_time: 0,
            boot_id: String::new(),
            pidfs_inode: None,
        }
    });
    let meta = ProcessMeta::now(
        aumid.clone(),
        pkg.family_name.to_string(),
        pkg.full_name.to_string(),
        trust,
        description,
        activation.as_str(),
        app_service.map(str::to_owned),
    );
    let record = shared.processes.track(shared.next_key(), spawned, identity, meta);
    journal(shared, &record, notify_session, tied_to).await;
    watch(shared, &record);
    let uid = appipc_sys::cred::current_uid();
    let caller = Caller {
        session_id: shared.next_key(),
        pid,
        uid,
        principal: Principal::packaged(
            uid,
            pkg.family_name.clone(),
            app.id.clone(),
            trust,
            pkg.granted.clone(),
        ),
        full_name: Some(pkg.full_name.to_string()),
    };
    tracing::info!(app = %aumid, pid, trust = trust.as_str(), activation = activation.as_str(), "started");
    crate::mech::loopback::data_path::serve(shared, &caller, loopback).await;
    shared.keep_and_adopt_session(broker_end, caller, true).await;
    Ok(record)
}

/// Records a started process in the state database (before anyone hears of it: a broker that
/// dies from now on finds it again at its next start).
async fn journal(
    shared: &Arc<Shared>,
    record: &ProcessRecord,
    notify_session: Option<u64>,
    tied_to: Option<u64>,
) {
    let row = record.row(notify_session, tied_to);
    let s = shared.clone();
    let written =
        shared.blocking.run(move || s.repository.with_store(|st| st.put_process(&row))).await;
    if !matches!(written, Ok(Ok(()))) {
        tracing::error!(
            pid = record.pid,
            "cannot record a started process; a restarted broker will not know it"
        );
    }
}

/// Watches a process until it exits: then the mechanisms hear of it and its record goes.
pub(crate) fn watch(shared: &Arc<Shared>, record: &Arc<ProcessRecord>) {
    let shared = shared.clone();
    let record = record.clone();
    let mut exited = record.exited.clone();
    tokio::spawn(async move {
        let _ = exited.wait_for(|s| s.is_some()).await;
        crate::hooks::process_exited(&shared, &record);
        let id = record.id;
        let s = shared.clone();
        let _ =
            shared.blocking.run(move || s.repository.with_store(|st| st.delete_process(id))).await;
    });
}
