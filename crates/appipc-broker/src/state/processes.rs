//! The `processes` and `holders` tables: every process the broker started and every
//! namespace holder it keeps, as the kernel identifies them (pid, start time, boot, pidfs
//! inode), so that a restarted broker adopts exactly those processes again and no other that
//! happens to have the same pid.

use rusqlite::params;

use super::Store;
use crate::error::InternalError;

type Result<T, E = InternalError> = std::result::Result<T, E>;

/// A started process as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessRow {
    /// The broker's key of the record (unique over restarts).
    pub id: u64,
    /// Who the process is ([`appipc_sys::process::ProcessIdentity`]).
    pub pid: u32,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
    /// Boot id.
    pub boot_id: String,
    /// pidfs inode, where known.
    pub pidfs_inode: Option<u64>,
    /// `PFN!AppId`.
    pub aumid: String,
    /// Family name.
    pub family_name: String,
    /// The full name of the version it runs.
    pub full_name: String,
    /// `appcontainer` or `fulltrust` (`TrustLevel::as_str`).
    pub trust: String,
    /// Why it was started (`launch`, `background`, `appservice`, `fulltrust`).
    pub activation: String,
    /// The app service it hosts (`APPIPC_APP_SERVICE`), if started as a host.
    pub app_service: Option<String>,
    /// The confinement in words (`appipc ps`).
    pub confinement: String,
    /// Seconds since the epoch.
    pub started_at: u64,
    /// The keeper key of the session to tell when it exits (`notify_exit`).
    pub notify_session: Option<u64>,
    /// The record of the process whose exit ends this one (`tie-lifetime-to-caller`).
    pub tied_to: Option<u64>,
}

/// A namespace holder as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HolderRow {
    /// Family name (one holder per family).
    pub family_name: String,
    /// pid.
    pub pid: u32,
    /// Start time in clock ticks after boot.
    pub start_time: u64,
    /// Boot id.
    pub boot_id: String,
    /// pidfs inode, where known.
    pub pidfs_inode: Option<u64>,
    /// Host uid of uid 1000 inside.
    pub uid: u32,
    /// Host gid of gid 1000 inside.
    pub gid: u32,
    /// Host gid of gid 1001 inside.
    pub second_gid: Option<u32>,
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Store {
    /// Runs `f` with `synchronous = NORMAL`: its commit is not flushed to the disk at once
    /// (about 0.5 ms a launch here). What these tables say is needed after a *broker* crash,
    /// which loses nothing in WAL mode at `NORMAL`; an OS crash or power loss, which could lose
    /// the last commits, ends every process and namespace they describe anyway.
    fn unflushed<T>(&mut self, f: impl FnOnce(&mut Store) -> Result<T>) -> Result<T> {
        self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        let r = f(self);
        self.conn.pragma_update(None, "synchronous", "FULL")?;
        r
    }

    /// Records a started process.
    pub fn put_process(&mut self, p: &ProcessRow) -> Result<()> {
        self.unflushed(|s| s.put_process_row(p))
    }

    fn put_process_row(&mut self, p: &ProcessRow) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO processes (id, pid, start_time, boot_id, pidfs_inode, aumid,
             family_name, full_name, trust, activation, app_service, confinement, started_at,
             notify_session, tied_to)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            params![
                i64_of(p.id),
                p.pid,
                i64_of(p.start_time),
                p.boot_id,
                p.pidfs_inode.map(i64_of),
                p.aumid,
                p.family_name,
                p.full_name,
                p.trust,
                p.activation,
                p.app_service,
                p.confinement,
                i64_of(p.started_at),
                p.notify_session.map(i64_of),
                p.tied_to.map(i64_of),
            ],
        )?;
        Ok(())
    }

    /// Forgets a process (it exited).
    pub fn delete_process(&mut self, id: u64) -> Result<()> {
        self.unflushed(|s| {
            s.conn.execute("DELETE FROM processes WHERE id = ?1", [i64_of(id)])?;
            Ok(())
        })
    }

    /// Every recorded process.
    pub fn processes(&self) -> Result<Vec<ProcessRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, pid, start_time, boot_id, pidfs_inode, aumid, family_name, full_name,
                    trust, activation, app_service, confinement, started_at, notify_session,
                    tied_to
             FROM processes ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ProcessRow {
                id: u64_of(r.get(0)?),
                pid: u32_of(r.get(1)?),
                start_time: u64_of(r.get(2)?),
                boot_id: r.get(3)?,
                pidfs_inode: r.get::<_, Option<i64>>(4)?.map(u64_of),
                aumid: r.get(5)?,
                family_name: r.get(6)?,
                full_name: r.get(7)?,
                trust: r.get(8)?,
                activation: r.get(9)?,
                app_service: r.get(10)?,
                confinement: r.get(11)?,
                started_at: u64_of(r.get(12)?),
                notify_session: r.get::<_, Option<i64>>(13)?.map(u64_of),
                tied_to: r.get::<_, Option<i64>>(14)?.map(u64_of),
            })
        })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Records a family's namespace holder (replacing an older one).
    pub fn put_holder(&mut self, h: &HolderRow) -> Result<()> {
        self.unflushed(|s| s.put_holder_row(h))
    }

    fn put_holder_row(&mut self, h: &HolderRow) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO holders (family_name, pid, start_time, boot_id, pidfs_inode,
             uid, gid, second_gid) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                h.family_name,
                h.pid,
                i64_of(h.start_time),
                h.boot_id,
                h.pidfs_inode.map(i64_of),
                h.uid,
                h.gid,
                h.second_gid,
            ],
        )?;
        Ok(())
    }

    /// Forgets a family's holder, if it is the one with this pid.
    pub fn delete_holder(&mut self, family_name: &str, pid: u32) -> Result<()> {
        self.unflushed(|s| {
            s.conn.execute(
                "DELETE FROM holders WHERE family_name = ?1 AND pid = ?2",
                params![family_name, pid],
            )?;
            Ok(())
        })
    }

    /// Every recorded holder.
    pub fn holders(&self) -> Result<Vec<HolderRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT family_name, pid, start_time, boot_id, pidfs_inode, uid, gid, second_gid
             FROM holders ORDER BY family_name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(HolderRow {
                family_name: r.get(0)?,
                pid: u32_of(r.get(1)?),
                start_time: u64_of(r.get(2)?),
                boot_id: r.get(3)?,
                pidfs_inode: r.get::<_, Option<i64>>(4)?.map(u64_of),
                uid: u32_of(r.get(5)?),
                gid: u32_of(r.get(6)?),
                second_gid: r.get::<_, Option<i64>>(7)?.map(u32_of),
            })
        })?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// The next broker generation: a number that grows at every start, so that keys the
    /// broker hands out (process records, kept sessions, app-service connections) never repeat
    /// those of a broker before it.
    pub fn next_generation(&mut self) -> Result<u64> {
        let tx = self.conn.transaction()?;
        let now: Option<String> = {
            use rusqlite::OptionalExtension;
            tx.query_row("SELECT value FROM settings WHERE name = 'generation'", [], |r| r.get(0))
                .optional()?
        };
        let next = now.and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + 1;
        tx.execute(
            "INSERT INTO settings (name, value) VALUES ('generation', ?1)
             ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            [next.to_string()],
        )?;
        tx.commit()?;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_holders_and_generations_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.sqlite");
        let p = ProcessRow {
            id: 7 << 32 | 1,
            pid: 42,
            start_time: 123,
            boot_id: "b".into(),
            pidfs_inode: Some(9),
            aumid: "A_x!App".into(),
            family_name: "A_x".into(),
            full_name: "A_1.0.0.0_neutral__x".into(),
            trust: "appContainer".into(),
            activation: "launch".into(),
            app_service: None,
            confinement: "c".into(),
            started_at: 5,
            notify_session: Some(3),
            tied_to: None,
        };
        let h = HolderRow {
            family_name: "A_x".into(),
            pid: 43,
            start_time: 124,
            boot_id: "b".into(),
            pidfs_inode: None,
            uid: 1,
            gid: 2,
            second_gid: Some(3),
        };
        {
            let mut s = Store::open(&db).unwrap();
            assert_eq!(s.next_generation().unwrap(), 1);
            s.put_process(&p).unwrap();
            s.put_holder(&h).unwrap();
        }
        let mut s = Store::open(&db).unwrap();
        assert_eq!(s.next_generation().unwrap(), 2);
        assert_eq!(s.processes().unwrap(), std::slice::from_ref(&p));
        assert_eq!(s.holders().unwrap(), std::slice::from_ref(&h));
        s.delete_holder("a_X", 1).unwrap();
        assert_eq!(s.holders().unwrap().len(), 1, "another pid's holder stays");
        s.delete_holder("a_X", 43).unwrap();
        s.delete_process(p.id).unwrap();
        assert!(s.processes().unwrap().is_empty() && s.holders().unwrap().is_empty());
    }
}
