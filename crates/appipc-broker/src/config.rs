//! Where the broker keeps things, and its configuration (`broker.toml`: `[limits]`,
//! `[packages]`).

use appipc_model::package_file::Limits;
use std::path::{Path, PathBuf};

/// The broker's locations. [`Paths::from_env`] follows XDG, overridden by `APPIPC_HOME` and
/// `APPIPC_RUNTIME_DIR`.
#[derive(Clone, Debug)]
pub struct Paths {
    /// State: database, installed packages, app data.
    pub home: PathBuf,
    /// Sockets and the instance lock.
    pub runtime_dir: PathBuf,
    /// Cache (publisher cache folders): `$XDG_CACHE_HOME/appipc` unless `APPIPC_HOME` is set,
    /// then `$APPIPC_HOME/cache`.
    pub cache_dir: PathBuf,
    /// State that is not data (the decision log): `$XDG_STATE_HOME/appipc` unless
    /// `APPIPC_HOME` is set, then `$APPIPC_HOME/state`.
    pub state_dir: PathBuf,
    /// Desktop entries (`x-scheme-handler/<scheme>` for installed protocols):
    /// `$APPIPC_HOME/applications` if `APPIPC_HOME` is set, else `$XDG_DATA_HOME/applications`.
    pub applications_dir: PathBuf,
}

/// Name of the public socket inside the runtime directory.
pub const SOCKET_NAME: &str = "broker.sock";

impl Paths {
    /// Locations from the environment:
    ///
    /// | what | from |
    /// |---|---|
    /// | home | `APPIPC_HOME`, else `$XDG_DATA_HOME/appipc`, else `~/.local/share/appipc` |
    /// | runtime dir | `APPIPC_RUNTIME_DIR`, else `$XDG_RUNTIME_DIR/appipc`, else `/tmp/appipc-<uid>` |
    /// | cache | `$APPIPC_HOME/cache` if `APPIPC_HOME` is set, else `$XDG_CACHE_HOME/appipc`, else `~/.cache/appipc` |
    /// | state | `$APPIPC_HOME/state` if `APPIPC_HOME` is set, else `$XDG_STATE_HOME/appipc`, else `~/.local/state/appipc` |
    /// | desktop entries | `$APPIPC_HOME/applications` if `APPIPC_HOME` is set, else `$XDG_DATA_HOME/applications`, else `~/.local/share/applications` |
    pub fn from_env() -> Paths {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let home_dir = var("HOME").unwrap_or_else(|| PathBuf::from("/"));
        let explicit_home = var("APPIPC_HOME");
        let home = explicit_home.clone().unwrap_or_else(|| {
            var("XDG_DATA_HOME").unwrap_or_else(|| home_dir.join(".local/share")).join("appipc")
        });
        let runtime_dir =
            var("APPIPC_RUNTIME_DIR").unwrap_or_else(|| match var("XDG_RUNTIME_DIR") {
                Some(d) => d.join("appipc"),
                None => PathBuf::from(format!("/tmp/appipc-{}", appipc_sys::cred::current_uid())),
            });
        let (cache_dir, state_dir, applications_dir) = match explicit_home {
            Some(h) => (h.join("cache"), h.join("state"), h.join("applications")),
            None => (
                var("XDG_CACHE_HOME").unwrap_or_else(|| home_dir.join(".cache")).join("appipc"),
                var("XDG_STATE_HOME")
                    .unwrap_or_else(|| home_dir.join(".local/state"))
                    .join("appipc"),
                var("XDG_DATA_HOME")
                    .unwrap_or_else(|| home_dir.join(".local/share"))
                    .join("applications"),
            ),
        };
        Paths { home, runtime_dir, cache_dir, state_dir, applications_dir }
    }

    /// Locations under one folder (tests): home `ROOT/home`, runtime `ROOT/run`, cache
    /// `ROOT/home/cache`, state `ROOT/home/state`, desktop entries `ROOT/home/applications`.
    pub fn under(root: &Path) -> Paths {
        Paths {
            home: root.join("home"),
            runtime_dir: root.join("run"),
            cache_dir: root.join("home/cache"),
            state_dir: root.join("home/state"),
            applications_dir: root.join("home/applications"),
        }
    }

    /// The broker's configuration file: `APPIPC_CONFIG`, else `$APPIPC_HOME/broker.toml` if
    /// `APPIPC_HOME` is set, else `$XDG_CONFIG_HOME/appipc/broker.toml`.
    pub fn config_file() -> PathBuf {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        if let Some(p) = var("APPIPC_CONFIG") {
            return p;
        }
        if let Some(h) = var("APPIPC_HOME") {
            return h.join("broker.toml");
        }
        let home_dir = var("HOME").unwrap_or_else(|| PathBuf::from("/"));
        var("XDG_CONFIG_HOME")
            .unwrap_or_else(|| home_dir.join(".config"))
            .join("appipc/broker.toml")
    }

    /// The decision log (refusals, rotated).
    pub fn decision_log(&self) -> PathBuf {
        self.state_dir.join("decisions.log")
    }

    /// The public socket.
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir.join(SOCKET_NAME)
    }

    /// The state database.
    pub fn database(&self) -> PathBuf {
        self.home.join("state.sqlite")
    }

    /// Installed package files, one folder per full name.
    pub fn packages(&self) -> PathBuf {
        self.home.join("packages")
    }

    /// App data folders, one per family name.
    pub fn app_data(&self) -> PathBuf {
        self.home.join("data")
    }

    /// Logs of apps launched without their own stdio (`$XDG_STATE_HOME/appipc/logs`, or
    /// `$APPIPC_HOME/state/logs`), one per package, rotated (`crate::applog`).
    pub fn logs(&self) -> PathBuf {
        self.state_dir.join("logs")
    }

    /// The log of one package's processes: `logs/<family name>.log`.
    pub fn app_log(&self, family_name: &str) -> PathBuf {
        self.logs().join(format!("{family_name}.log"))
    }
}

/// Whether the operator allowed unconfined app containers when confinement is impossible.
pub fn unconfined_allowed() -> bool {
    std::env::var("APPIPC_ALLOW_UNCONFINED").is_ok_and(|v| v == "1")
}

/// The broker's settings, from its configuration file ([`Paths::config_file`]); every key is
/// optional and has a documented default.
///
/// ```toml
/// [decisions]
/// kept = 10000          # decisions kept in memory for `appipc why`
/// log-max-bytes = 1048576  # a refusal log file is rotated past this size
/// log-files = 3         # rotated files kept beside the current one
///
/// [limits]              # see LimitsConfig; docs/architecture.md lists each with its code
/// connections = 1024
/// queued-reply-bytes = 65536
/// queued-reply-bytes-total = 33554432
/// [packages]             # bounds on what one install may bring (see PackageLimits)
/// max-files = 100000
/// max-total-size = 8589934592
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// The decision log.
    #[serde(default)]
    pub decisions: DecisionsConfig,
    /// Bounds on packages.
    #[serde(default)]
    pub packages: PackageLimits,
    /// What one client may hold and ask at once.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// `[limits]`: what one client (a connection, a session, a package) may hold and ask of the
/// broker at once. Exceeding one is refused to that client with its mechanism's code; other
/// clients are not affected.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct LimitsConfig {
    /// Sessions of unpackaged processes (connections to the public socket) at once; when full,
    /// the longest-idle connection that holds nothing is closed to make room, else the new one
    /// is refused.
    pub connections: usize,
    /// A public connection that holds nothing and asked nothing for this long is closed.
    pub idle_timeout_secs: u64,
    /// Sessions of one package at once (its launched processes' and those they open).
    pub sessions_per_package: usize,
    /// Requests one session may have in progress at once; more wait (the broker reads no more
    /// of that session's requests).
    pub requests_in_flight: usize,
    /// Bytes of replies and events queued for a session that does not read them; past this
    /// the broker reads no more of its requests, and events for it are refused.
    pub queued_reply_bytes: usize,
    /// Bytes of replies and events queued for all sessions together: past this, a session
    /// that has anything queued is read from no more until its own queue empties or the total
    /// falls below three quarters of this (a session with nothing queued is still read from,
    /// so a client that reads its replies is always served), and events for it are refused. Bounds the broker's memory under a flood of
    /// non-readers that each stay below `queued-reply-bytes`.
    pub queued_reply_bytes_total: usize,
    /// A session whose queue stays full this long is closed.
    pub non_reader_grace_ms: u64,
    /// Named-object handles one session may hold (`ERROR_NOT_ENOUGH_QUOTA`).
    pub handles_per_session: usize,
    /// Named-object handles all sessions of one package may hold.
    pub handles_per_package: usize,
    /// Pipe instances one session may serve (`ERROR_NOT_ENOUGH_QUOTA`).
    pub pipe_instances_per_session: usize,
    /// RPC endpoints one session may register (`ERROR_NOT_ENOUGH_QUOTA`).
    pub rpc_endpoints_per_session: usize,
    /// RPC endpoints all sessions of one package (or the user's unpackaged processes
    /// together) may register (`ERROR_NOT_ENOUGH_QUOTA`).
    pub rpc_endpoints_per_package: usize,
    /// RPC connections of one endpoint handed out and not reported closed
    /// (`RPC_S_SERVER_TOO_BUSY`).
    pub rpc_connections_per_endpoint: usize,
    /// Registry key handles and change watches one session may hold
    /// (`ERROR_NOT_ENOUGH_QUOTA`).
    pub registry_handles_per_session: usize,
    /// Registry change watches all sessions of one package may hold
    /// (`ERROR_NOT_ENOUGH_QUOTA`): every committed change is matched against every watch.
    pub registry_watches_per_package: usize,
    /// Bytes one registry hive may hold (a package's private hive, or the user's HKCU or
    /// HKLM): names, data and 64 bytes a key or value (`ERROR_NOT_ENOUGH_QUOTA`).
    pub registry_bytes_per_hive: u64,
    /// Pipe names in one namespace (`ERROR_NO_SYSTEM_RESOURCES`).
    pub pipe_names_per_namespace: usize,
    /// Processes of one package running at once (and, counted apart, its live full-trust
    /// connect supervisors).
    pub processes_per_package: usize,
    /// Live app-service connections one session may have opened.
    pub app_service_connections_per_session: usize,
    /// Launches for results one session may wait for at once (`ERROR_NOT_ENOUGH_QUOTA`).
    pub launches_for_results_per_session: usize,
    /// Launches for results all sessions of one caller package may wait for at once (the
    /// user's unpackaged processes count as one caller) (`ERROR_NOT_ENOUGH_QUOTA`).
    pub launches_for_results_per_package: usize,
    /// Desktop handlers (`xdg-open` of a web or mail link) one caller package may have running
    /// at once (the user's unpackaged processes count as one) (`ERROR_NOT_ENOUGH_QUOTA`).
    pub desktop_handlers_per_package: usize,
    /// File descriptors the broker keeps for its own work (the database, launching, accepting):
    /// what clients make it hold (sessions, objects, kept files) stops this far below its
    /// open-file limit.
    pub fd_reserve: usize,
    /// Blocking jobs (file copies, opens of client-named files, database writes) at once.
    pub blocking_threads: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            connections: 1024,
            idle_timeout_secs: 600,
            sessions_per_package: 256,
            requests_in_flight: 64,
            queued_reply_bytes: 64 * 1024,
            queued_reply_bytes_total: 32 * 1024 * 1024,
            non_reader_grace_ms: 5000,
            handles_per_session: 4096,
            handles_per_package: 16384,
            pipe_instances_per_session: 256,
            rpc_endpoints_per_session: 64,
            rpc_endpoints_per_package: 256,
            rpc_connections_per_endpoint: 4096,
            registry_handles_per_session: 1024,
            registry_watches_per_package: 4096,
            registry_bytes_per_hive: 64 * 1024 * 1024,
            pipe_names_per_namespace: 4096,
            processes_per_package: 256,
            app_service_connections_per_session: 1024,
            launches_for_results_per_session: 16,
            launches_for_results_per_package: 64,
            desktop_handlers_per_package: 4,
            fd_reserve: 256,
            blocking_threads: 4,
        }
    }
}

/// Bounds on what one install may bring: `[packages]` in the broker's configuration file.
/// Reading refuses anything beyond them before reading it, with an error that names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PackageLimits {
    /// Most files in a package, the manifest included (default 100 000).
    #[serde(default = "default_max_files")]
    pub max_files: u64,
    /// Most bytes a package's files may add up to (default 8 GiB).
    #[serde(default = "default_max_total_size")]
    pub max_total_size: u64,
}

fn default_max_files() -> u64 {
    Limits::default().max_files
}

fn default_max_total_size() -> u64 {
    Limits::default().max_total_size
}

impl Default for PackageLimits {
    fn default() -> Self {
        PackageLimits { max_files: default_max_files(), max_total_size: default_max_total_size() }
    }
}

impl PackageLimits {
    /// As the package file reader's limits (the block map's bound follows from the files').
    pub fn file_limits(&self) -> Limits {
        Limits {
            max_files: self.max_files,
            max_total_size: self.max_total_size,
            ..Limits::default()
        }
    }
}

/// `[decisions]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DecisionsConfig {
    /// Decisions kept in memory.
    #[serde(default = "default_kept")]
    pub kept: usize,
    /// Size past which the refusal log is rotated.
    #[serde(default = "default_log_max_bytes")]
    pub log_max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_log_files")]
    pub log_files: u32,
}

fn default_kept() -> usize {
    10_000
}

fn default_log_max_bytes() -> u64 {
    1024 * 1024
}

fn default_log_files() -> u32 {
    3
}

impl Default for DecisionsConfig {
    fn default() -> Self {
        DecisionsConfig {
            kept: default_kept(),
            log_max_bytes: default_log_max_bytes(),
            log_files: default_log_files(),
        }
    }
}

impl Config {
    /// Reads the configuration file; a missing file gives the defaults, an unreadable or
    /// invalid one is an error naming the file and the problem.
    pub fn load(path: &Path) -> Result<Config, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broker.toml");
        assert_eq!(Config::load(&p).unwrap(), Config::default());
        std::fs::write(&p, "[decisions]\nkept = 5\n").unwrap();
        let c = Config::load(&p).unwrap();
        assert_eq!(c.decisions.kept, 5);
        assert_eq!(c.decisions.log_files, 3);
        std::fs::write(&p, "[decisions]\nkeep = 5\n").unwrap();
        let e = Config::load(&p).unwrap_err();
        assert!(e.contains("keep") && e.contains("broker.toml"), "{e}");
    }
}
