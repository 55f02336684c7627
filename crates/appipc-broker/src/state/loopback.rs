//! The `loopback_exemptions` table: packages that may connect out to loopback listeners that
//! are not in an app container (`CheckNetIsolation LoopbackExempt -a`), kept across restarts.

use super::Store;
use crate::error::InternalError;

type Result<T, E = InternalError> = std::result::Result<T, E>;

impl Store {
    /// The exempt families, sorted case-insensitively.
    pub fn loopback_exemptions(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT family_name FROM loopback_exemptions ORDER BY family_name")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Whether `family` is exempt (case-insensitive).
    pub fn is_loopback_exempt(&self, family: &str) -> Result<bool> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM loopback_exemptions WHERE family_name = ?1",
            [family],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Exempts `family`; `false` when it already was.
    pub fn add_loopback_exemption(&mut self, family: &str, added_at: u64) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO loopback_exemptions (family_name, added_at) VALUES (?1, ?2)",
            rusqlite::params![family, added_at as i64],
        )?;
        Ok(n == 1)
    }

    /// Removes `family`'s exemption; whether there was one.
    pub fn remove_loopback_exemption(&mut self, family: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM loopback_exemptions WHERE family_name = ?1", [family])?;
        Ok(n > 0)
    }

    /// Removes every exemption; how many there were.
    pub fn clear_loopback_exemptions(&mut self) -> Result<u32> {
        let n = self.conn.execute("DELETE FROM loopback_exemptions", [])?;
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemptions_persist_and_ignore_case() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let mut s = Store::open(&path).unwrap();
            assert!(s.add_loopback_exemption("Contoso.App_cvnpggrrsm18p", 1).unwrap());
            assert!(!s.add_loopback_exemption("CONTOSO.APP_cvnpggrrsm18p", 2).unwrap());
            assert!(s.add_loopback_exemption("Alpha.App_cvnpggrrsm18p", 3).unwrap());
        }
        let mut s = Store::open(&path).unwrap();
        assert_eq!(
            s.loopback_exemptions().unwrap(),
            ["Alpha.App_cvnpggrrsm18p", "Contoso.App_cvnpggrrsm18p"]
        );
        assert!(s.is_loopback_exempt("contoso.app_CVNPGGRRSM18P").unwrap());
        assert!(s.remove_loopback_exemption("contoso.app_cvnpggrrsm18p").unwrap());
        assert!(!s.remove_loopback_exemption("contoso.app_cvnpggrrsm18p").unwrap());
        assert_eq!(s.clear_loopback_exemptions().unwrap(), 1);
        assert!(s.loopback_exemptions().unwrap().is_empty());
    }
}
