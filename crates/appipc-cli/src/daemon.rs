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

/// Connects to the broker, starting one in the background (and saying so) when none answers,
/// as gpg-agent does. A packaged process never starts one: its session is inherited.
pub(crate) async fn connect_or_start() -> Result<Session> {
    match Session::connect().await {
        Ok(s) => return Ok(s),
        Err(e)
            if nobody_listens(&e)
                && std::env::var_os(appipc::session::SESSION_FD_VAR).is_none() => {}
        Err(e) => return Err(e.into()),
    }
    // The user's systemd-managed broker, when there is one, rather than a second of our own.
    if let Some(unit) = crate::systemd::managed_unit() {
        return start_managed(unit).await;
    }
    let runtime_dir = appipc_sys::env::runtime_dir();
    std::fs::create_dir_all(&runtime_dir)
        .with_context(|| format!("creating {}", runtime_dir.display()))?;
    let log_path = runtime_dir.join("broker.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = std::env::current_exe().context("finding the appipc executable")?;
    let mut child = std::process::Command::new(exe)
        .arg("daemon")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting a broker")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Session::connect().await {
            Ok(s) => {
                eprintln!(
                    "appipc: no broker was running; started one (pid {}) for {} (log: {})",
                    child.id(),
                    runtime_dir.display(),
                    log_path.display()
                );
                return Ok(s);
            }
            Err(e) if nobody_listens(&e) => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(status) = child.try_wait()? {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "the broker exited at start ({status}); last lines of {}:\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        if Instant::now() > deadline {
            bail!("the broker did not answer within 10 s; see {}", log_path.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
