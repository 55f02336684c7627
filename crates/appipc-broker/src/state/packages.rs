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
    /// SHA-256 of the package's block map (`repository::staging::content_hash`); rows written
    /// before version 4 hold an older hash over the files.
    pub content_hash: String,
    /// Where its files are.
    pub install_dir: String,
    /// Seconds since the epoch.
    pub installed_at: u64,
    /// The capabilities granted at install; `None` for a row written before grants were
    /// recorded (derive them from the manifest).
    pub granted_capabilities: Option<Vec<String>>,
    /// Who signed the installed package; `None`: installed from a folder (developer mode),
    /// or before signatures existed.
    pub signer: Option<SignerRow>,
    /// The declared custom capabilities not granted at install, each with the reason (empty
    /// for a row written before they were recorded).
    pub capability_refusals: Vec<(String, String)>,
}

/// The key that signed an installed package (later issues use the key id as the package's
/// certificate hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerRow {
    /// The key id, 64 lower-case hex digits.
    pub key_id: String,
    /// The publisher the key speaks for (equal to the manifest's).
    pub publisher: String,
}

impl Store {
    /// Every installed package.
    pub fn packages(&self) -> Result<Vec<PackageRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at,
                    granted_capabilities, signer_key_id, signer_publisher,
                    capability_refusals
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
                    granted_capabilities, signer_key_id, signer_publisher,
                    capability_refusals
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
        let old = replace_package(&tx, row)?;
        tx.commit()?;
        Ok(old)
    }

    /// Records who signed the installed package of a family, and the grants decided for that
    /// signer (a re-install of the same content signed by another trusted key, or signed
    /// where it was unsigned): `row`'s signer, granted capabilities and refusals. Returns
    /// whether a row was changed.
    pub fn set_package_signer(&mut self, row: &PackageRow) -> Result<bool> {
        let Some(signer) = &row.signer else { return Ok(false) };
        let n = self.conn.execute(
            "UPDATE packages SET signer_key_id = ?2, signer_publisher = ?3,
                 granted_capabilities = ?4, capability_refusals = ?5
             WHERE family_name = ?1",
            params![
                row.family_name,
                signer.key_id,
                signer.publisher,
                row.granted_capabilities.as_ref().map(|g| g.join("\n")),
                (!row.capability_refusals.is_empty()).then(|| {
                    serde_json::to_string(&row.capability_refusals).expect("strings serialize")
                }),
            ],
        )?;
        Ok(n == 1)
    }

    /// Deletes a package's record; returns it if there was one.
    pub fn delete_package(&mut self, family_name: &str) -> Result<Option<PackageRow>> {
        let tx = self.conn.transaction()?;
        let old = tx
            .query_row(
                "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at,
                    granted_capabilities, signer_key_id, signer_publisher,
                    capability_refusals
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

/// The columns of a package row, in [`row_to_package`]'s order.
pub(super) const SELECT_PACKAGE: &str =
    "SELECT family_name, full_name, manifest, content_hash, install_dir, installed_at,
            granted_capabilities, signer_key_id, signer_publisher,
                    capability_refusals FROM packages";

/// Replaces the family's row within `tx`; returns the row replaced.
pub(super) fn replace_package(
    tx: &rusqlite::Transaction<'_>,
    row: &PackageRow,
) -> Result<Option<PackageRow>> {
    let old = tx
        .query_row(
            &format!("{SELECT_PACKAGE} WHERE family_name = ?1"),
            [&row.family_name],
            row_to_package,
        )
        .optional()?;
    tx.execute("DELETE FROM packages WHERE family_name = ?1", [&row.family_name])?;
    tx.execute(
        "INSERT INTO packages (family_name, full_name, manifest, content_hash, install_dir,
         installed_at, granted_capabilities, signer_key_id, signer_publisher,
         capability_refusals)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            row.family_name,
            row.full_name,
            row.manifest,
            row.content_hash,
            row.install_dir,
            row.installed_at as i64,
            row.granted_capabilities.as_ref().map(|g| g.join("\n")),
            row.signer.as_ref().map(|s| s.key_id.as_str()),
            row.signer.as_ref().map(|s| s.publisher.as_str()),
            (!row.capability_refusals.is_empty()).then(|| {
                serde_json::to_string(&row.capability_refusals).expect("strings serialize")
            }),
        ],
    )?;
    Ok(old)
}

pub(super) fn row_to_package(r: &rusqlite::Row<'_>) -> rusqlite::Result<PackageRow> {
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
        signer: match (r.get::<_, Option<String>>(7)?, r.get::<_, Option<String>>(8)?) {
            (Some(key_id), Some(publisher)) => Some(SignerRow { key_id, publisher }),
            _ => None,
        },
        // A value this broker did not write reads as no recorded reason.
        capability_refusals: r
            .get::<_, Option<String>>(9)?
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default(),
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
            signer: None,
            capability_refusals: vec![("Contoso.x_cvnpggrrsm18p".into(), "why".into())],
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
        assert_eq!(all[0].capability_refusals[0].1, "why", "the reasons survive a reopen");
        assert!(s.package("A_X").unwrap().is_some());
        let signer = SignerRow { key_id: "ab".into(), publisher: "CN=A".into() };
        let resigned = PackageRow {
            family_name: "a_x".into(),
            signer: Some(signer.clone()),
            capability_refusals: Vec::new(),
            ..row("a_x", "A_2")
        };
        assert!(s.set_package_signer(&resigned).unwrap());
        let now = s.package("A_x").unwrap().unwrap();
        assert_eq!(now.signer, Some(signer));
        assert!(now.capability_refusals.is_empty(), "the refusals are the new signer's");
        assert!(s.delete_package("A_x").unwrap().is_some());
        assert!(s.packages().unwrap().is_empty());
    }
}
