//! The `trusted_keys` table (the user's trust store) and the `settings` table (developer
//! mode).

use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::error::InternalError;

type Result<T, E = InternalError> = std::result::Result<T, E>;

/// The `settings` name of developer mode (`"1"` on, anything else or absent off).
pub const DEVELOPER_MODE: &str = "developer_mode";

/// One trusted key as stored: the key trusted for the publisher it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedKeyRow {
    /// SHA-256 of the public key, 64 lower-case hex digits.
    pub key_id: String,
    /// The publisher it speaks for.
    pub publisher: String,
    /// The public key file's text (parsed again, and its binding checked, at every start).
    pub public_key: String,
    /// Seconds since the epoch.
    pub added_at: u64,
}

impl Store {
    /// Every trusted key, by id then publisher.
    pub fn trusted_keys(&self) -> Result<Vec<TrustedKeyRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT key_id, publisher, public_key, added_at FROM trusted_keys
             ORDER BY key_id, publisher",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TrustedKeyRow {
                key_id: r.get(0)?,
                publisher: r.get(1)?,
                public_key: r.get(2)?,
                added_at: r.get::<_, i64>(3)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Trusts a key; `false` when it was already trusted for that publisher (nothing changes).
    pub fn add_trusted_key(&mut self, row: &TrustedKeyRow) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO trusted_keys (key_id, publisher, public_key, added_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![row.key_id, row.publisher, row.public_key, row.added_at as i64],
        )?;
        Ok(n == 1)
    }

    /// Stops trusting a key id (for every publisher it was trusted for); returns what was
    /// removed.
    pub fn remove_trusted_key(&mut self, key_id: &str) -> Result<Vec<TrustedKeyRow>> {
        let tx = self.conn.transaction()?;
        let removed = {
            let mut stmt = tx.prepare(
                "SELECT key_id, publisher, public_key, added_at FROM trusted_keys
                 WHERE key_id = ?1 ORDER BY publisher",
            )?;
            let rows = stmt.query_map([key_id], |r| {
                Ok(TrustedKeyRow {
                    key_id: r.get(0)?,
                    publisher: r.get(1)?,
                    public_key: r.get(2)?,
                    added_at: r.get::<_, i64>(3)?.max(0) as u64,
                })
            })?;
            rows.collect::<std::result::Result<Vec<_>, _>>()?
        };
        tx.execute("DELETE FROM trusted_keys WHERE key_id = ?1", [key_id])?;
        tx.commit()?;
        Ok(removed)
    }

    /// A setting's value.
    pub fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| r.get(0))
            .optional()?)
    }

    /// Sets a setting.
    pub fn set_setting(&mut self, name: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO settings (name, value) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            params![name, value],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, publisher: &str) -> TrustedKeyRow {
        TrustedKeyRow {
            key_id: id.into(),
            publisher: publisher.into(),
            public_key: format!("text of {id}"),
            added_at: 7,
        }
    }

    #[test]
    fn trust_and_settings_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.sqlite");
        {
            let mut s = Store::open(&db).unwrap();
            assert_eq!(s.setting(DEVELOPER_MODE).unwrap(), None);
            assert!(s.add_trusted_key(&key("aa", "CN=A")).unwrap());
            assert!(!s.add_trusted_key(&key("aa", "CN=A")).unwrap(), "already trusted");
            assert!(s.add_trusted_key(&key("aa", "CN=B")).unwrap(), "same key, other publisher");
            assert!(s.add_trusted_key(&key("bb", "CN=A")).unwrap());
            s.set_setting(DEVELOPER_MODE, "1").unwrap();
            s.set_setting(DEVELOPER_MODE, "0").unwrap();
        }
        let mut s = Store::open(&db).unwrap();
        assert_eq!(s.setting(DEVELOPER_MODE).unwrap().as_deref(), Some("0"));
        assert_eq!(
            s.trusted_keys().unwrap(),
            [key("aa", "CN=A"), key("aa", "CN=B"), key("bb", "CN=A")]
        );
        assert_eq!(s.remove_trusted_key("aa").unwrap().len(), 2);
        assert!(s.remove_trusted_key("aa").unwrap().is_empty());
        assert_eq!(s.trusted_keys().unwrap(), [key("bb", "CN=A")]);
    }
}
