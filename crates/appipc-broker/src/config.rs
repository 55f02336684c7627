//! Where the broker keeps things.

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
        let cache_dir = match explicit_home {
            Some(h) => h.join("cache"),
            None => var("XDG_CACHE_HOME").unwrap_or_else(|| home_dir.join(".cache")).join("appipc"),
        };
        Paths { home, runtime_dir, cache_dir }
    }

    /// Locations under one folder (tests): home `ROOT/home`, runtime `ROOT/run`, cache
    /// `ROOT/home/cache`.
    pub fn under(root: &Path) -> Paths {
        Paths {
            home: root.join("home"),
            runtime_dir: root.join("run"),
            cache_dir: root.join("home/cache"),
        }
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

    /// Logs of apps launched without a terminal.
    pub fn logs(&self) -> PathBuf {
        self.home.join("logs")
    }
}
