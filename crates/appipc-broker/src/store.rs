//! The state database: one SQLite file, WAL, every change a transaction.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::Result;

/// Schema version this broker writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 2;

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

/// One outstanding file token as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    /// The token.
    pub token: String,
    /// Source package family name ("" for the user).
    pub source: String,
    /// The file's path when it was shared.
    pub path: String,
    /// Its device and inode then (to detect a replaced file).
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Shared for writing too.
    pub writable: bool,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// The file's birth time, where the file system records one.
    pub birth_ns: Option<i64>,
}

/// One installed package as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageRow {
    /// Package family name (primary key, case-insensitive).
    pub family_name: String,
    /// Package full name.
    pub full_name: String,
    /// The manifest text as installed.
    pub manifest: String,
    /// SHA-256 over the package's files (see `packages::copy_tree`).
    pub content_hash: String,
    /// Where its files are.
    pub install_dir: String,
    /// Seconds since the epoch.
    pub installed_at: u64,
}

/// The database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
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
            return Err(crate::error::BrokerError::BadRequest(format!(
                "state database schema version {version} is newer than this broker's \
                 ({SCHEMA_VERSION}); run a newer appipcd"
            )));
        }
        let tx = self.conn.transaction()?;
        if version < 1 {
            tx.execute_batch(SCHEMA_V1)?;
        }
        if version < 2 {
            tx.execute_batch(SCHEMA_V2)?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }

    /// Every installed package.
    pub fn packages(&self) -> Result<Vec<PackageRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at
             FROM packages ORDER BY family_name",
        )?;
        let rows = stmt.query_map([], row_to_package)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// The package of a family, if installed.
    pub fn package(&self, family_name: &str) -> Result<Option<PackageRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at
                 FROM packages WHERE family_name = ?1",
                [family_name],
                row_to_package,
            )
            .optional()?)
    }

    /// Records a package, replacing any of the same family, in one transaction. Returns the
    /// row it replaced.
    pub fn put_package(&mut self, row: &PackageRow) -> Result<Option<PackageRow>> {
        let tx = self.conn.transaction()?;
        let old = tx
            .query_row(
                "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at
                 FROM packages WHERE family_name = ?1",
                [&row.family_name],
                row_to_package,
            )
            .optional()?;
        tx.execute("DELETE FROM packages WHERE family_name = ?1", [&row.family_name])?;
        tx.execute(
            "INSERT INTO packages (family_name, full_name, manifest, content_hash, install_dir,
             installed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                row.family_name,
                row.full_name,
                row.manifest,
                row.content_hash,
                row.install_dir,
                row.installed_at as i64
            ],
        )?;
        tx.commit()?;
        Ok(old)
    }

    /// Deletes a package's record; returns it if there was one.
    pub fn delete_package(&mut self, family_name: &str) -> Result<Option<PackageRow>> {
        let tx = self.conn.transaction()?;
        let old = tx
            .query_row(
                "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at
                 FROM packages WHERE family_name = ?1",
                [family_name],
                row_to_package,
            )
            .optional()?;
        tx.execute("DELETE FROM packages WHERE family_name = ?1", [family_name])?;
        tx.commit()?;
        Ok(old)
    }
}

impl Store {
    /// Records a token.
    pub fn put_token(&mut self, t: &TokenRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO file_tokens (token, source, path, dev, ino, writable, created_at, birth_ns)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                t.token,
                t.source,
                t.path,
                t.dev as i64,
                t.ino as i64,
                t.writable,
                t.created_at as i64,
                t.birth_ns
            ],
        )?;
        Ok(())
    }

    /// Takes a token out (redeem, remove): returns it if it was there.
    pub fn take_token(&mut self, token: &str) -> Result<Option<TokenRow>> {
        let tx = self.conn.transaction()?;
        let row = tx
            .query_row(
                "SELECT token, source, path, dev, ino, writable, created_at, birth_ns FROM file_tokens WHERE token = ?1",
                [token],
                row_to_token,
            )
            .optional()?;
        tx.execute("DELETE FROM file_tokens WHERE token = ?1", [token])?;
        tx.commit()?;
        Ok(row)
    }

    /// A token, without taking it.
    pub fn token(&self, token: &str) -> Result<Option<TokenRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT token, source, path, dev, ino, writable, created_at, birth_ns FROM file_tokens WHERE token = ?1",
                [token],
                row_to_token,
            )
            .optional()?)
    }

    /// Deletes tokens created before `cutoff` (expired); returns them.
    pub fn expire_tokens(&mut self, cutoff: u64) -> Result<Vec<String>> {
        let tx = self.conn.transaction()?;
        let gone = {
            let mut stmt = tx.prepare("SELECT token FROM file_tokens WHERE created_at < ?1")?;
            let rows = stmt.query_map([cutoff as i64], |r| r.get::<_, String>(0))?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        tx.execute("DELETE FROM file_tokens WHERE created_at < ?1", [cutoff as i64])?;
        tx.commit()?;
        Ok(gone)
    }

    /// Outstanding tokens of a source.
    pub fn count_tokens(&self, source: &str) -> Result<u64> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM file_tokens WHERE source = ?1",
            [source],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// All outstanding tokens (of one source, if given).
    pub fn tokens(&self, source: Option<&str>) -> Result<Vec<TokenRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT token, source, path, dev, ino, writable, created_at, birth_ns FROM file_tokens
             WHERE ?1 IS NULL OR source = ?1 ORDER BY created_at",
        )?;
        let rows = stmt.query_map([source], row_to_token)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

fn row_to_token(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        token: r.get(0)?,
        source: r.get(1)?,
        path: r.get(2)?,
        dev: r.get::<_, i64>(3)? as u64,
        ino: r.get::<_, i64>(4)? as u64,
        writable: r.get(5)?,
        created_at: r.get::<_, i64>(6)? as u64,
        birth_ns: r.get(7)?,
    })
}

fn row_to_package(r: &rusqlite::Row<'_>) -> rusqlite::Result<PackageRow> {
    Ok(PackageRow {
        family_name: r.get(0)?,
        full_name: r.get(1)?,
        manifest: r.get(2)?,
        content_hash: r.get(3)?,
        install_dir: r.get(4)?,
        installed_at: r.get::<_, i64>(5)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fam: &str, full: &str) -> PackageRow {
        PackageRow {
            family_name: fam.into(),
            full_name: full.into(),
            manifest: "m".into(),
            content_hash: "h".into(),
            install_dir: "/x".into(),
            installed_at: 1,
        }
    }

    #[test]
    fn put_replace_delete_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.sqlite");
        {
            let mut s = Store::open(&db).unwrap();
            assert!(s.put_package(&row("A_x", "A_1")).unwrap().is_none());
            let old = s.put_package(&row("a_X", "A_2")).unwrap().unwrap();
            assert_eq!(old.full_name, "A_1");
        }
        let mut s = Store::open(&db).unwrap();
        let all = s.packages().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].full_name, "A_2");
        assert!(s.package("A_X").unwrap().is_some());
        assert!(s.delete_package("A_x").unwrap().is_some());
        assert!(s.packages().unwrap().is_empty());
    }
}
