//! The `operations` table: the deployment journal. An install, upgrade or removal is written
//! here before it touches the file system (`prepared`), marked `committed` in the same
//! transaction that changes its package row (the commit point), and deleted once its files are
//! in their final state. A broker that starts and finds a row finishes what the row says: a
//! prepared operation is rolled back (its new folders removed), a committed one completed (the
//! folders it replaced or removed deleted, app data included).

use rusqlite::params;

use super::Store;
use super::packages::{PackageRow, row_to_package};
use crate::error::InternalError;

type Result<T, E = InternalError> = std::result::Result<T, E>;

/// What a deployment does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    /// A family not installed before.
    Install,
    /// A new version over an installed one.
    Upgrade,
    /// A removal.
    Remove,
}

impl OperationKind {
    fn as_str(self) -> &'static str {
        match self {
            OperationKind::Install => "install",
            OperationKind::Upgrade => "upgrade",
            OperationKind::Remove => "remove",
        }
    }

    fn parse(s: &str) -> Option<OperationKind> {
        Some(match s {
            "install" => OperationKind::Install,
            "upgrade" => OperationKind::Upgrade,
            "remove" => OperationKind::Remove,
            _ => return None,
        })
    }
}

/// One journaled deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperationRow {
    /// Its key.
    pub id: u64,
    /// What it does.
    pub kind: OperationKind,
    /// The family.
    pub family_name: String,
    /// The install folder it renames into place (install, upgrade).
    pub new_dir: Option<String>,
    /// The install folder it deletes once committed (upgrade: the old version's; remove).
    pub old_dir: Option<String>,
    /// The app data folder: created by an install (removed if it is rolled back), deleted by a
    /// committed removal.
    pub data_dir: Option<String>,
    /// The package row has been changed.
    pub committed: bool,
    /// Seconds since the epoch.
    pub started_at: u64,
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn mark_committed(tx: &rusqlite::Transaction<'_>, id: u64) -> Result<()> {
    let n = tx.execute("UPDATE operations SET committed = 1 WHERE id = ?1", [i64_of(id)])?;
    if n != 1 {
        return Err(InternalError::io(
            "committing a deployment",
            std::io::Error::other(format!("journal entry {id} is missing")),
        ));
    }
    Ok(())
}

impl Store {
    /// Journals a deployment before it touches the file system; returns its id.
    pub fn begin_operation(&mut self, op: &OperationRow) -> Result<u64> {
        self.conn.execute(
            "INSERT INTO operations (kind, family_name, new_dir, old_dir, data_dir, committed,
             started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                op.kind.as_str(),
                op.family_name,
                op.new_dir,
                op.old_dir,
                op.data_dir,
                op.committed,
                i64_of(op.started_at)
            ],
        )?;
        Ok(u64::try_from(self.conn.last_insert_rowid()).unwrap_or(0))
    }

    /// Records a package and marks its journaled install or upgrade committed, in one
    /// transaction (the commit point). Returns the row it replaced.
    pub fn commit_install(&mut self, row: &PackageRow, op: u64) -> Result<Option<PackageRow>> {
        let tx = self.conn.transaction()?;
        let old = super::packages::replace_package(&tx, row)?;
        mark_committed(&tx, op)?;
        tx.commit()?;
        Ok(old)
    }

    /// Deletes a package's row and journals its removal as committed, in one transaction (the
    /// commit point of a removal). Returns the journal entry's id and the row.
    pub fn commit_remove(&mut self, op: &OperationRow) -> Result<(u64, Option<PackageRow>)> {
        let family_name = op.family_name.as_str();
        let tx = self.conn.transaction()?;
        let old = {
            use rusqlite::OptionalExtension;
            tx.query_row(
                &format!("{} WHERE family_name = ?1", super::packages::SELECT_PACKAGE),
                [family_name],
                row_to_package,
            )
            .optional()?
        };
        tx.execute("DELETE FROM packages WHERE family_name = ?1", [family_name])?;
        // The package's private registry hive goes with it (kept across upgrades).
        super::registry::drop_private_hive(&tx, family_name)?;
        tx.execute(
            "INSERT INTO operations (kind, family_name, new_dir, old_dir, data_dir, committed,
             started_at) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
            params![
                op.kind.as_str(),
                op.family_name,
                op.new_dir,
                op.old_dir,
                op.data_dir,
                i64_of(op.started_at)
            ],
        )?;
        let id = u64::try_from(tx.last_insert_rowid()).unwrap_or(0);
        tx.commit()?;
        Ok((id, old))
    }

    /// A deployment is over: its files are in their final state.
    pub fn finish_operation(&mut self, id: u64) -> Result<()> {
        self.conn.execute("DELETE FROM operations WHERE id = ?1", [i64_of(id)])?;
        Ok(())
    }

    /// Every journaled deployment, oldest first.
    pub fn operations(&self) -> Result<Vec<OperationRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, kind, family_name, new_dir, old_dir, data_dir, committed, started_at
             FROM operations ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let kind: String = r.get(1)?;
            Ok(OperationRow {
                id: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                kind: OperationKind::parse(&kind).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        1,
                        rusqlite::types::Type::Text,
                        format!("unknown deployment kind {kind:?}").into(),
                    )
                })?,
                family_name: r.get(2)?,
                new_dir: r.get(3)?,
                old_dir: r.get(4)?,
                data_dir: r.get(5)?,
                committed: r.get(6)?,
                started_at: u64::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(fam: &str, full: &str) -> PackageRow {
        PackageRow {
            family_name: fam.into(),
            full_name: full.into(),
            manifest: "m".into(),
            content_hash: "h".into(),
            install_dir: format!("/p/{full}"),
            installed_at: 1,
            granted_capabilities: None,
            signer: None,
            capability_refusals: Vec::new(),
        }
    }

    #[test]
    fn the_commit_point_changes_the_row_and_the_journal_together() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let op = OperationRow {
            id: 0,
            kind: OperationKind::Install,
            family_name: "A_x".into(),
            new_dir: Some("/p/A_1".into()),
            old_dir: None,
            data_dir: Some("/d/A_x".into()),
            committed: false,
            started_at: 1,
        };
        let id = s.begin_operation(&op).unwrap();
        assert_eq!(s.operations().unwrap(), [OperationRow { id, ..op.clone() }]);
        assert!(s.commit_install(&pkg("A_x", "A_1"), id).unwrap().is_none());
        assert!(s.operations().unwrap()[0].committed);
        s.finish_operation(id).unwrap();
        assert!(s.operations().unwrap().is_empty());
        // A commit whose journal entry is gone changes nothing.
        assert!(s.commit_install(&pkg("A_x", "A_2"), 999).is_err());
        assert_eq!(s.package("A_x").unwrap().unwrap().full_name, "A_1");
        let rm = OperationRow { kind: OperationKind::Remove, family_name: "a_X".into(), ..op };
        let (id, old) = s.commit_remove(&rm).unwrap();
        assert!(old.is_some());
        assert!(s.package("A_x").unwrap().is_none());
        assert_eq!(s.operations().unwrap(), [OperationRow { id, committed: true, ..rm }]);
    }
}
