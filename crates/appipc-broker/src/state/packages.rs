//! The `packages` table: installed packages.

use rusqlite::{OptionalExtension, params};

use super::Store;
use crate::error::InternalError;

type Result<T, E = InternalError> = std::result::Result<T, E>;

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
    /// The capabilities granted at install; `None` for a row written before grants were
    /// recorded (derive them from the manifest).
    pub granted_capabilities: Option<Vec<String>>,
}

impl Store {
    /// Every installed package.
    pub fn packages(&self) -> Result<Vec<PackageRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at,
                    granted_capabilities
             FROM packages ORDER BY family_name",
        )?;
        let rows = stmt.query_map([], row_to_package)?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// The package of a family, if installed.
    pub fn package(&self, family_name: &str) -> Result<Option<PackageRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at,
                    granted_capabilities
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
                "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at,
                    granted_capabilities
                 FROM packages WHERE family_name = ?1",
                [&row.family_name],
                row_to_package,
            )
            .optional()?;
        tx.execute("DELETE FROM packages WHERE family_name = ?1", [&row.family_name])?;
        tx.execute(
            "INSERT INTO packages (family_name, full_name, manifest, content_hash, install_dir,
             installed_at, granted_capabilities) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.family_name,
                row.full_name,
                row.manifest,
                row.content_hash,
                row.install_dir,
                row.installed_at as i64,
                row.granted_capabilities.as_ref().map(|g| g.join("\n"))
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
                "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at,
                    granted_capabilities
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

fn row_to_package(r: &rusqlite::Row<'_>) -> rusqlite::Result<PackageRow> {
    Ok(PackageRow {
        family_name: r.get(0)?,
        full_name: r.get(1)?,
        manifest: r.get(2)?,
        content_hash: r.get(3)?,
        install_dir: r.get(4)?,
        installed_at: r.get::<_, i64>(5)? as u64,
        granted_capabilities: r
            .get::<_, Option<String>>(6)?
            .map(|g| g.split('\n').filter(|c| !c.is_empty()).map(str::to_owned).collect()),
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
            granted_capabilities: Some(vec!["internetClient".into()]),
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
        assert_eq!(
            all[0].granted_capabilities.as_deref(),
            Some(&["internetClient".to_owned()][..])
        );
        assert!(s.package("A_X").unwrap().is_some());
        assert!(s.delete_package("A_x").unwrap().is_some());
        assert!(s.packages().unwrap().is_empty());
    }
}
