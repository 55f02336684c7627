//! The `file_tokens` table: outstanding SharedStorageAccessManager tokens.

use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::error::InternalError;

type Result<T, E = InternalError> = std::result::Result<T, E>;

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
            rows.collect::<std::result::Result<Vec<_>, _>>()?
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
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
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
