//! Running the broker, and finding (or starting) one for a client command.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appipc::Session;

/// `appipc daemon`: exits as `appipcd` does.
pub(crate) fn run_foreground() -> Result<ExitCode> {
    match appipc_broker::run_daemon() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("appipc: {e}");
            Ok(ExitCode::from(crate::daemon_args::exit_code(&e)))
        }
    }
}

fn nobody_listens(e: &appipc::Error) -> bool {
    matches!(e, appipc::Error::Connect { source, .. }
        if matches!(source.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused))
}

/// Connects to the public socket and checks that a broker answers on it (a broker that is
/// dying may still hold its socket a few milliseconds, and close the connection unanswered);
/// the session and the answering broker's pid.
async fn connect_answered() -> std::result::Result<(Session, u32), appipc::Error> {
    let s = Session::connect_to(&appipc::session::public_socket_path())?;
    let pong = appipc::broker::ping(&s).await?;
    Ok((s, pong.broker_pid))
}

/// Whether `e` means that no broker serves the socket right now (none runs, or one is dying
/// or starting).
fn retryable(e: &appipc::Error) -> bool {
    nobody_listens(e)
        || matches!(e, appipc::Error::Disconnected | appipc::Error::BrokerRestarted { .. })
}

/// How long a connect waits for a broker that is dying or starting (it holds the runtime
/// folder's lock) before it gives up.
const SETTLING: Duration = Duration::from_secs(2);

/// How long a broker this command started has to answer.
const STARTING: Duration = Duration::from_secs(10);

/// Connects to the broker, starting one in the background (and saying so) when none answers,
/// as gpg-agent does. A connect that fails because a broker is just dying or starting (it holds
/// the runtime folder's lock) is retried for a second or two; a broker is started only when no
/// process holds that lock, so a second broker is never started for the same runtime folder.
/// A packaged process never starts one: its session is inherited.
pub(crate) async fn connect_or_start() -> Result<Session> {
    if std::env::var_os(appipc::session::SESSION_FD_VAR).is_some() {
        return Ok(Session::connect().await?);
    }
    let runtime_dir = appipc_sys::env::runtime_dir();
    let lock = runtime_dir.join("broker.lock");
    let log_path = runtime_dir.join("broker.log");
    let mut started: Option<std::process::Child> = None;
    let mut deadline = Instant::now() + SETTLING;
    loop {
        let why = match connect_answered().await {
            Ok((s, broker_pid)) => {
                // Said only when the broker that answers is the one this command started: on a
                // busy machine a broker this command started may have found another command's
                // broker holding the runtime folder first, and exited.
                if let Some(child) = started.as_ref().filter(|c| c.id() == broker_pid) {
                    eprintln!(
                        "appipc: no broker was running; started one (pid {}) for {} (log: {})",
                        child.id(),
                        runtime_dir.display(),
                        log_path.display()
                    );
                }
                return Ok(s);
            }
            Err(e) if retryable(&e) => e,
            Err(e) => return Err(e.into()),
        };
        let held = appipc_sys::fs::lock_holder(&lock).ok().flatten().is_some();
        if !held && started.is_none() && nobody_listens(&why) {
            // One command at a time decides to start a broker (the others, waiting here, then
            // find it), so that no second one is ever started for this runtime folder.
            std::fs::create_dir_all(&runtime_dir)
                .with_context(|| format!("creating {}", runtime_dir.display()))?;
            let _deciding = appipc_sys::fs::lock_exclusive(&runtime_dir.join("start.lock"))
                .context("waiting for another command starting a broker")?;
            if appipc_sys::fs::lock_holder(&lock).ok().flatten().is_none()
                && connect_answered().await.is_err()
            {
                // The user's systemd-managed broker, when there is one, rather than one of ours.
                if let Some(unit) = crate::systemd::managed_unit() {
                    return start_managed(unit).await;
                }
                let mut child = start_broker(&runtime_dir, &log_path)?;
                wait_until_it_holds(&mut child, &lock).await;
                started = Some(child);
                deadline = Instant::now() + STARTING;
            }
            continue;
        }
        if let Some(child) = &mut started
            && let Some(status) = child.try_wait()?
            && !held
        {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "the broker exited at start ({status}); last lines of {}:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if Instant::now() > deadline {
            return Err(match started {
                Some(_) => anyhow::anyhow!(
                    "the broker did not answer within {} s; see {}",
                    STARTING.as_secs(),
                    log_path.display()
                ),
                None => anyhow::Error::from(why)
                    .context("a broker holds the runtime folder but does not answer"),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (a few seconds at most) until the broker just started holds the runtime folder's lock,
/// or has exited.
async fn wait_until_it_holds(child: &mut std::process::Child, lock: &std::path::Path) {
    let deadline = Instant::now() + STARTING;
    while Instant::now() < deadline {
        if appipc_sys::fs::lock_holder(lock).ok().flatten() == Some(child.id())
            || child.try_wait().ok().flatten().is_some()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts `appipc daemon` in the background, its output appended to `log_path`.
fn start_broker(
    runtime_dir: &std::path::Path,
    log_path: &std::path::Path,
) -> Result<std::process::Child> {
    std::fs::create_dir_all(runtime_dir)
        .with_context(|| format!("creating {}", runtime_dir.display()))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the appipc executable")?;
    std::process::Command::new(exe)
        .arg("daemon")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting a broker")
}

/// Starts the systemd unit that runs this user's broker and connects to it.
async fn start_managed(unit: &str) -> Result<Session> {
    crate::systemd::start(unit)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Session::connect().await {
            Ok(s) => {
                eprintln!(
                    "appipc: no broker was running; started the systemd-managed one ({unit})"
                );
                return Ok(s);
            }
            Err(e) if nobody_listens(&e) && Instant::now() < deadline => {}
            Err(e) => {
                return Err(anyhow::Error::from(e).context(format!(
                    "{unit} was started but no broker answers (journalctl --user -u {})",
                    crate::systemd::SERVICE_UNIT
                )));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
