//! The state database: one SQLite file, WAL, every change a transaction. A file per table:
//! [`packages`], [`tokens`], [`trust`] (trusted keys and settings), [`operations`] (the
//! deployment journal), [`processes`] (started processes and namespace holders), [`registry`]
//! (registry hives, version 7).

use std::path::Path;

use rusqlite::Connection;

mod loopback;
mod operations;
mod packages;
mod processes;
pub mod registry;
mod tokens;
mod trust;

pub use operations::{OperationKind, OperationRow};
pub use packages::{PackageRow, SignerRow};
pub use processes::{HolderRow, ProcessRow};
pub use tokens::TokenRow;
pub use trust::{DEVELOPER_MODE, TrustedKeyRow};

use crate::error::InternalError;

type Result<T, E = InternalError> = std::result::Result<T, E>;

/// Schema version this broker writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 8;

const SCHEMA_V1: &str = "
CREATE TABLE packages (
    family_name   TEXT PRIMARY KEY COLLATE NOCASE,
    full_name     TEXT NOT NULL UNIQUE,
    manifest      TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    install_dir   TEXT NOT NULL,
    installed_at  INTEGER NOT NULL
);
";

const SCHEMA_V2: &str = "
CREATE TABLE file_tokens (
    token         TEXT PRIMARY KEY,
    source        TEXT NOT NULL,
    path          TEXT NOT NULL,
    dev           INTEGER NOT NULL,
    ino           INTEGER NOT NULL,
    writable      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    birth_ns      INTEGER
);
CREATE INDEX file_tokens_source ON file_tokens(source);
";

/// Version 3: the capabilities granted at install, apart from the declared ones (`NULL` for
/// rows written before: the broker derives them from the manifest).
const SCHEMA_V3: &str = "
ALTER TABLE packages ADD COLUMN granted_capabilities TEXT;
";

/// Version 4: the trust store, settings (developer mode), and who signed each installed
/// package (`NULL`: installed from a folder, unsigned; every row written before was).
const SCHEMA_V4: &str = "
CREATE TABLE trusted_keys (
    key_id        TEXT NOT NULL,
    publisher     TEXT NOT NULL,
    public_key    TEXT NOT NULL,
    added_at      INTEGER NOT NULL,
    PRIMARY KEY (key_id, publisher)
);
CREATE TABLE settings (
    name          TEXT PRIMARY KEY,
    value         TEXT NOT NULL
);
ALTER TABLE packages ADD COLUMN signer_key_id TEXT;
ALTER TABLE packages ADD COLUMN signer_publisher TEXT;
";

/// Version 5: crash survival. The deployment journal, and every process and namespace holder
/// the broker started, identified by more than its pid (see [`processes`]).
const SCHEMA_V5: &str = "
CREATE TABLE operations (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    family_name   TEXT NOT NULL COLLATE NOCASE,
    new_dir       TEXT,
    old_dir       TEXT,
    data_dir      TEXT,
    committed     INTEGER NOT NULL,
    started_at    INTEGER NOT NULL
);
CREATE TABLE processes (
    id             INTEGER PRIMARY KEY,
    pid            INTEGER NOT NULL,
    start_time     INTEGER NOT NULL,
    boot_id        TEXT NOT NULL,
    pidfs_inode    INTEGER,
    aumid          TEXT NOT NULL,
    family_name    TEXT NOT NULL COLLATE NOCASE,
    full_name      TEXT NOT NULL,
    trust          TEXT NOT NULL,
    activation     TEXT NOT NULL,
    app_service    TEXT,
    confinement    TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    notify_session INTEGER,
    tied_to        INTEGER
);
CREATE TABLE holders (
    family_name   TEXT PRIMARY KEY COLLATE NOCASE,
    pid           INTEGER NOT NULL,
    start_time    INTEGER NOT NULL,
    boot_id       TEXT NOT NULL,
    pidfs_inode   INTEGER,
    uid           INTEGER NOT NULL,
    gid           INTEGER NOT NULL,
    second_gid    INTEGER
);
";

const SCHEMA_V6: &str = "
CREATE TABLE loopback_exemptions (
    family_name   TEXT PRIMARY KEY COLLATE NOCASE,
    added_at      INTEGER NOT NULL
);
";

/// Version 8: why each declared custom capability was not granted at install (a JSON array of
/// `[name, reason]`; `NULL` for rows written before: none was granted, for no recorded reason).
const SCHEMA_V8: &str = "
ALTER TABLE packages ADD COLUMN capability_refusals TEXT;
";

/// The database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        // The database holds bearer tokens: the user's alone (0600) whatever the umask, and
        // SQLite gives its -wal and -shm files the database file's mode.
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| InternalError::io(format!("creating {}", path.display()), e))?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| InternalError::io(format!("restricting {}", path.display()), e))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(InternalError::io(
                "opening the state database",
                std::io::Error::other(format!(
                    "schema version {version} is newer than this broker's ({SCHEMA_VERSION}); \
                     run a newer appipcd"
                )),
            ));
        }
        let tx = self.conn.transaction()?;
        if version < 1 {
            tx.execute_batch(SCHEMA_V1)?;
        }
        if version < 2 {
            tx.execute_batch(SCHEMA_V2)?;
        }
        if version < 3 {
            tx.execute_batch(SCHEMA_V3)?;
        }
        if version < 4 {
            tx.execute_batch(SCHEMA_V4)?;
        }
        if version < 5 {
            tx.execute_batch(SCHEMA_V5)?;
        }
        if version < 6 {
            tx.execute_batch(SCHEMA_V6)?;
        }
        if version < 7 {
            tx.execute_batch(registry::SCHEMA_V7)?;
        }
        if version < 8 {
            tx.execute_batch(SCHEMA_V8)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }
}
