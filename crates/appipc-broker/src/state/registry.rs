//! The registry's tables (`registry_keys`, `registry_values`) and the merged views read and
//! written through them, each call one transaction ([`Store::registry`]).
//!
//! A hive is a name: `HKCU` and `HKLM` are the user's global hives; `pkg:<family>` (lower case)
//! is a package's private hive, which takes its processes' HKCU writes. A key row is keyed by
//! its folded path below the root (`SOFTWARE\CONTOSO`) and keeps its name as created. In a
//! private hive a key row may be a tombstone: `Deleted` hides the global key (and what is
//! below it), `Opaque` is a key created again after that, whose global namesake's values and
//! subkeys stay hidden; a value row may be a tombstone that hides the global value. Roots are
//! not stored: they always exist; `Software` below each global root exists from the start, as
//! on Windows.
//!
//! A view is an upper layer over the global hive of the key's root: nothing (unpackaged
//! callers), the package's private hive (HKCU of a packaged caller), or the package's shipped
//! tree (HKLM, read-only, from its `Registry.reg`). An app container's HKCU view shows of the
//! global hive only what `registry::global_at` says it sees (red team finding 4): the keys
//! its package shares, and the names on the way to them.

use std::collections::BTreeMap;

use appipc_model::registry::{
    KeyPath, Layer, RegError, RegTree, RegValue, Root, Sees, ValueType, Virtualized, fold,
    global_at,
};
use rusqlite::{OptionalExtension, Transaction, params};

use super::Store;
use crate::error::InternalError;

/// A registry call's failure: a Win32 one, or the database's.
#[derive(Debug)]
pub enum RegFail {
    /// 2, 5, 87, …
    Reg(RegError),
    /// The database.
    Store(rusqlite::Error),
}

impl From<RegError> for RegFail {
    fn from(e: RegError) -> Self {
        RegFail::Reg(e)
    }
}

impl From<rusqlite::Error> for RegFail {
    fn from(e: rusqlite::Error) -> Self {
        RegFail::Store(e)
    }
}

type R<T> = std::result::Result<T, RegFail>;

/// The schema (migration 7).
pub(super) const SCHEMA_V7: &str = "
CREATE TABLE registry_keys (
    hive          TEXT NOT NULL,
    path          TEXT NOT NULL,
    parent        TEXT NOT NULL,
    name          TEXT NOT NULL,
    state         INTEGER NOT NULL,
    written_at    INTEGER NOT NULL,
    PRIMARY KEY (hive, path)
) WITHOUT ROWID;
CREATE INDEX registry_keys_parent ON registry_keys(hive, parent);
INSERT INTO registry_keys (hive, path, parent, name, state, written_at)
    VALUES ('HKCU', 'SOFTWARE', '', 'Software', 0, 0), ('HKLM', 'SOFTWARE', '', 'Software', 0, 0);
CREATE TABLE registry_usage (
    hive          TEXT PRIMARY KEY,
    bytes         INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE registry_values (
    hive          TEXT NOT NULL,
    path          TEXT NOT NULL,
    folded        TEXT NOT NULL,
    name          TEXT NOT NULL,
    type          INTEGER NOT NULL,
    data          BLOB NOT NULL,
    deleted       INTEGER NOT NULL,
    PRIMARY KEY (hive, path, folded)
) WITHOUT ROWID;
";

/// A key row's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyState {
    Live = 0,
    Deleted = 1,
    Opaque = 2,
}

impl KeyState {
    fn of(v: i64) -> KeyState {
        match v {
            1 => KeyState::Deleted,
            2 => KeyState::Opaque,
            _ => KeyState::Live,
        }
    }
}

/// A package's private hive.
pub fn private_hive(family: &str) -> String {
    format!("pkg:{}", family.to_ascii_lowercase())
}

/// The global hive of a root.
pub fn global_hive(root: Root) -> &'static str {
    root.short()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The range of folded paths strictly below `p`.
fn below(p: &str) -> (String, String) {
    if p.is_empty() {
        (String::new(), "\u{10FFFF}".to_owned())
    } else {
        (format!("{p}\\"), format!("{p}]"))
    }
}

/// What a row costs a hive's quota besides its names and data.
const ROW_BYTES: i64 = 64;

fn len64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One hive, inside a transaction.
struct Hive<'a> {
    tx: &'a Transaction<'a>,
    name: &'a str,
    /// `[limits] registry-bytes-per-hive`.
    max: u64,
}

impl Hive<'_> {
    /// Adds `delta` bytes to the hive's use; 1816 when that goes past its quota (the
    /// transaction is then rolled back).
    fn charge(&self, delta: i64) -> R<()> {
        if delta == 0 {
            return Ok(());
        }
        self.tx.execute(
            "INSERT INTO registry_usage (hive, bytes) VALUES (?1, max(0, ?2))
             ON CONFLICT (hive) DO UPDATE SET bytes = max(0, bytes + ?2)",
            params![self.name, delta],
        )?;
        if delta > 0 {
            let used: i64 = self.tx.query_row(
                "SELECT bytes FROM registry_usage WHERE hive = ?1",
                [self.name],
                |r| r.get(0),
            )?;
            if u64::try_from(used).unwrap_or(0) > self.max {
                return Err(RegError::new(
                    appipc_wire::status::Win32Error::NotEnoughQuota,
                    format!(
                        "the {} hive would hold {used} bytes, more than it may ([limits] \
                         registry-bytes-per-hive, {})",
                        self.name, self.max
                    ),
                )
                .into());
            }
        }
        Ok(())
    }

    /// The bytes the rows of `table` matching `cond` (on `?1` the hive, `?2`, `?3`) cost:
    /// every text the row stores (paths included, red team finding 3) and its data.
    fn size_of(&self, table: &str, cond: &str, a: &str, b: &str) -> R<i64> {
        let expr = if table == "registry_keys" {
            "length(CAST(path AS BLOB)) + length(CAST(parent AS BLOB)) + length(CAST(name AS BLOB))"
        } else {
            "length(CAST(path AS BLOB)) + length(CAST(folded AS BLOB)) + length(CAST(name AS BLOB)) \
             + length(data)"
        };
        Ok(self.tx.query_row(
            &format!(
                "SELECT COALESCE(SUM({expr} + {ROW_BYTES}), 0) FROM {table} WHERE hive = ?1 AND {cond}"
            ),
            params![self.name, a, b],
            |r| r.get(0),
        )?)
    }

    fn state(&self, path: &KeyPath) -> R<Option<KeyState>> {
        if path.depth() == 0 {
            return Ok(Some(KeyState::Live));
        }
        let v: Option<i64> = self
            .tx
            .query_row(
                "SELECT state FROM registry_keys WHERE hive = ?1 AND path = ?2",
                params![self.name, path.folded_path()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.map(KeyState::of))
    }

    fn live(&self, path: &KeyPath) -> R<bool> {
        Ok(matches!(self.state(path)?, Some(KeyState::Live | KeyState::Opaque)))
    }

    fn put_key(&self, path: &KeyPath, state: KeyState) -> R<()> {
        let parent = path.parent().map(|p| p.folded_path()).unwrap_or_default();
        let folded = path.folded_path();
        if self.state(path)?.is_none() {
            // What the row stores: its path, its parent's and its name (see `size_of`).
            self.charge(ROW_BYTES + len64(folded.len() + parent.len() + path.name().len()))?;
        }
        self.tx.execute(
            "INSERT INTO registry_keys (hive, path, parent, name, state, written_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (hive, path) DO UPDATE SET name = ?4, state = ?5, written_at = ?6",
            params![self.name, folded, parent, path.name(), state as i64, now()],
        )?;
        Ok(())
    }

    /// Direct subkeys: folded name → (name, state).
    fn children(&self, path: &KeyPath) -> R<BTreeMap<String, (String, KeyState)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT name, state FROM registry_keys WHERE hive = ?1 AND parent = ?2",
        )?;
        let rows = stmt.query_map(params![self.name, path.folded_path()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (name, state) = row?;
            out.insert(fold(&name), (name, KeyState::of(state)));
        }
        Ok(out)
    }

    /// The stored names of `path`'s parts (as created), where rows exist.
    fn stored_case(&self, path: &KeyPath) -> R<Vec<String>> {
        let mut out = Vec::new();
        for p in path.ancestors_and_self().into_iter().skip(1) {
            let n: Option<String> = self
                .tx
                .query_row(
                    "SELECT name FROM registry_keys WHERE hive = ?1 AND path = ?2",
                    params![self.name, p.folded_path()],
                    |r| r.get(0),
                )
                .optional()?;
            out.push(n.unwrap_or_else(|| p.name().to_owned()));
        }
        Ok(out)
    }

    /// One value by folded name: (name, value, tombstone).
    fn value(&self, path: &KeyPath, folded: &str) -> R<Option<(String, RegValue, bool)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT name, type, data, deleted FROM registry_values
             WHERE hive = ?1 AND path = ?2 AND folded = ?3",
        )?;
        let row = stmt
            .query_row(params![self.name, path.folded_path(), folded], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)? != 0,
                ))
            })
            .optional()?;
        Ok(row.map(|(name, ty, data, deleted)| {
            let ty = u32::try_from(ty).ok().and_then(|t| ValueType::from_value(t).ok());
            (name, RegValue { ty: ty.unwrap_or(ValueType::Binary), data }, deleted)
        }))
    }

    /// Value names without their data: folded name → (name, tombstone).
    fn value_names(&self, path: &KeyPath) -> R<BTreeMap<String, (String, bool)>> {
        let mut stmt = self.tx.prepare_cached(
            "SELECT folded, name, deleted FROM registry_values WHERE hive = ?1 AND path = ?2",
        )?;
        let rows = stmt.query_map(params![self.name, path.folded_path()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)? != 0))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (folded, name, deleted) = row?;
            out.insert(folded, (name, deleted));
        }
        Ok(out)
    }

    fn put_value(&self, path: &KeyPath, name: &str, v: &RegValue, tombstone: bool) -> R<()> {
        let old = self.size_of(
            "registry_values",
            "path = ?2 AND folded = ?3",
            &path.folded_path(),
            &fold(name),
        )?;
        // What the row stores: its key's path, folded and given name, and data (`size_of`).
        let stored = path.folded_path().len() + fold(name).len() + name.len() + v.data.len();
        self.charge(ROW_BYTES + len64(stored) - old)?;
        self.tx.execute(
            "INSERT INTO registry_values (hive, path, folded, name, type, data, deleted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (hive, path, folded) DO UPDATE SET name = ?4, type = ?5, data = ?6,
             deleted = ?7",
            params![
                self.name,
                path.folded_path(),
                fold(name),
                name,
                i64::from(v.ty.value()),
                v.data,
                i64::from(tombstone)
            ],
        )?;
        Ok(())
    }

    fn remove_value(&self, path: &KeyPath, name: &str) -> R<bool> {
        let freed = self.size_of(
            "registry_values",
            "path = ?2 AND folded = ?3",
            &path.folded_path(),
            &fold(name),
        )?;
        self.charge(-freed)?;
        let n = self.tx.execute(
            "DELETE FROM registry_values WHERE hive = ?1 AND path = ?2 AND folded = ?3",
            params![self.name, path.folded_path(), fold(name)],
        )?;
        Ok(n > 0)
    }

    /// Removes the rows below `path`, and its own key row and values unless `keep_self`.
    fn remove_subtree(&self, path: &KeyPath, keep_self: bool) -> R<()> {
        let p = path.folded_path();
        let (lo, hi) = below(&p);
        let mut freed = self.size_of("registry_values", "path = ?2 AND ?3 = ?3", &p, "")?;
        if !keep_self && path.depth() > 0 {
            freed += self.size_of("registry_keys", "path = ?2 AND ?3 = ?3", &p, "")?;
        }
        for table in ["registry_keys", "registry_values"] {
            freed += self.size_of(table, "path >= ?2 AND path < ?3", &lo, &hi)?;
        }
        self.charge(-freed)?;
        for table in ["registry_keys", "registry_values"] {
            self.tx.execute(
                &format!("DELETE FROM {table} WHERE hive = ?1 AND path >= ?2 AND path < ?3"),
                params![self.name, lo, hi],
            )?;
        }
        if !keep_self && path.depth() > 0 {
            self.tx.execute(
                "DELETE FROM registry_keys WHERE hive = ?1 AND path = ?2",
                params![self.name, p],
            )?;
        }
        self.tx.execute(
            "DELETE FROM registry_values WHERE hive = ?1 AND path = ?2",
            params![self.name, p],
        )?;
        Ok(())
    }

    /// Creates the missing keys of `path` (live), turns deleted ones into opaque ones.
    fn ensure(&self, path: &KeyPath) -> R<()> {
        for p in path.ancestors_and_self().into_iter().skip(1) {
            match self.state(&p)? {
                Some(KeyState::Live | KeyState::Opaque) => {}
                Some(KeyState::Deleted) => self.put_key(&p, KeyState::Opaque)?,
                None => self.put_key(&p, KeyState::Live)?,
            }
        }
        Ok(())
    }
}

/// The layer over the global hive in a view.
#[derive(Debug, Clone, Copy)]
pub enum Upper<'a> {
    /// None: the global view.
    None,
    /// A private hive (`pkg:<family>`).
    Private(&'a str),
    /// A private hive over the part of the global hive an app container sees (its rules).
    Confined(&'a str, &'a Virtualized),
    /// A package's shipped keys (read-only).
    Shipped(&'a RegTree),
}

/// A change a write made, for notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The hive written.
    pub hive: String,
    /// The key whose subkeys (`REG_NOTIFY_CHANGE_NAME`) or values (`LAST_SET`) changed.
    pub key: KeyPath,
    /// The `REG_NOTIFY_CHANGE_*` bit.
    pub bit: u32,
    /// The key (and its subtree) was deleted: watches at or below it fire too.
    pub deleted: bool,
}

/// `REG_NOTIFY_CHANGE_NAME`.
pub const CHANGE_NAME: u32 = 0x1;
/// `REG_NOTIFY_CHANGE_LAST_SET`.
pub const CHANGE_LAST_SET: u32 = 0x4;

/// A merged view of one root inside one transaction.
#[derive(Debug)]
pub struct View<'a> {
    tx: &'a Transaction<'a>,
    root: Root,
    upper: Upper<'a>,
    max: u64,
}

/// Where a key of a view is.
struct Found {
    exists: bool,
    /// The global hive's values (and all its subkeys) show through at this key.
    lower_visible: bool,
    /// The global hive's subkeys show through at this key (those the view sees).
    lower_names: bool,
}

impl<'a> View<'a> {
    fn global(&self) -> Hive<'a> {
        Hive { tx: self.tx, name: global_hive(self.root), max: self.max }
    }

    fn private(&self) -> Option<Hive<'a>> {
        match self.upper {
            Upper::Private(h) | Upper::Confined(h, _) => {
                Some(Hive { tx: self.tx, name: h, max: self.max })
            }
            _ => None,
        }
    }

    /// How much of the global hive this view shows at `path`.
    fn sees(&self, path: &KeyPath) -> Sees {
        match self.upper {
            Upper::Confined(_, rules) => global_at(Some(rules), path),
            _ => Sees::All,
        }
    }

    /// Whether the global key `path` exists in this view (an app container does not see all).
    pub fn hidden(&self, path: &KeyPath) -> R<bool> {
        Ok(self.sees(path) == Sees::Nothing && self.global().live(path)?)
    }

    fn shipped(&self) -> Option<&'a RegTree> {
        match self.upper {
            Upper::Shipped(t) => Some(t),
            _ => None,
        }
    }

    fn find(&self, path: &KeyPath) -> R<Found> {
        let mut lower_visible = true;
        if let Some(u) = self.private() {
            for p in path.ancestors_and_self().into_iter().skip(1) {
                match u.state(&p)? {
                    Some(KeyState::Deleted) => {
                        return Ok(Found {
                            exists: false,
                            lower_visible: false,
                            lower_names: false,
                        });
                    }
                    Some(KeyState::Opaque) => lower_visible = false,
                    _ => {}
                }
            }
        }
        let sees = self.sees(path);
        let lower_names = lower_visible && sees != Sees::Nothing;
        let found = |exists| Found {
            exists,
            lower_visible: lower_visible && sees == Sees::All,
            lower_names,
        };
        if let Some(u) = self.private()
            && u.live(path)?
        {
            return Ok(found(true));
        }
        if self.shipped().is_some_and(|t| path.depth() == 0 || t.get(path).is_some()) {
            return Ok(found(true));
        }
        Ok(found(path.depth() == 0 || (lower_names && self.global().live(path)?)))
    }

    /// Whether the key exists in this view.
    pub fn exists(&self, path: &KeyPath) -> R<bool> {
        Ok(self.find(path)?.exists)
    }

    /// The key with the names as stored (the upper layer's case first).
    pub fn stored(&self, path: &KeyPath) -> R<KeyPath> {
        let mut p = path.clone();
        if self.sees(path) != Sees::Nothing {
            p = p.with_case_of(&self.global().stored_case(path)?);
        }
        if let Some(t) = self.shipped() {
            let names: Vec<String> = path
                .ancestors_and_self()
                .iter()
                .skip(1)
                .map(|a| t.get(a).map_or_else(|| a.name().to_owned(), |k| k.path.name().to_owned()))
                .collect();
            p = p.with_case_of(&names);
        }
        if let Some(u) = self.private() {
            p = p.with_case_of(&u.stored_case(path)?);
        }
        Ok(p)
    }

    /// Subkey names, in case-insensitive order.
    pub fn subkeys(&self, path: &KeyPath) -> R<Vec<String>> {
        let f = self.find(path)?;
        let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
        if let Some(u) = self.private() {
            for (folded, (name, state)) in u.children(path)? {
                out.insert(folded, (state != KeyState::Deleted).then_some(name));
            }
        }
        if let Some(t) = self.shipped() {
            for k in t.children(path) {
                out.entry(fold(k.path.name())).or_insert_with(|| Some(k.path.name().to_owned()));
            }
        }
        if f.lower_names {
            for (folded, (name, state)) in self.global().children(path)? {
                let seen = f.lower_visible
                    || path.child(&name).is_ok_and(|c| self.sees(&c) != Sees::Nothing);
                if state != KeyState::Deleted && seen {
                    out.entry(folded).or_insert(Some(name));
                }
            }
        }
        Ok(out.into_values().flatten().collect())
    }

    /// Value names in case-insensitive order, with the layer each comes from (no data: a
    /// key's values may hold its hive's whole quota, and a request needs one of them).
    pub fn value_names(&self, path: &KeyPath) -> R<Vec<(String, Layer)>> {
        let f = self.find(path)?;
        let mut out: BTreeMap<String, Option<(String, Layer)>> = BTreeMap::new();
        if let Some(u) = self.private() {
            for (folded, (name, tomb)) in u.value_names(path)? {
                out.insert(folded, (!tomb).then_some((name, Layer::Private)));
            }
        }
        if let Some(k) = self.shipped().and_then(|t| t.get(path)) {
            for (folded, (name, _)) in &k.values {
                out.entry(folded.clone()).or_insert_with(|| Some((name.clone(), Layer::Shipped)));
            }
        }
        if f.lower_visible {
            for (folded, (name, tomb)) in self.global().value_names(path)? {
                if !tomb {
                    out.entry(folded).or_insert(Some((name, Layer::Global)));
                }
            }
        }
        Ok(out.into_values().flatten().collect())
    }

    /// One value, from the layer that shows it (the upper one first).
    pub fn value(&self, path: &KeyPath, name: &str) -> R<Option<(String, RegValue, Layer)>> {
        let folded = fold(name);
        if let Some(u) = self.private()
            && let Some((name, v, tomb)) = u.value(path, &folded)?
        {
            return Ok((!tomb).then_some((name, v, Layer::Private)));
        }
        if let Some((name, v)) = self.shipped().and_then(|t| t.get(path)?.values.get(&folded)) {
            return Ok(Some((name.clone(), v.clone(), Layer::Shipped)));
        }
        if self.find(path)?.lower_visible
            && let Some((name, v, tomb)) = self.global().value(path, &folded)?
            && !tomb
        {
            return Ok(Some((name, v, Layer::Global)));
        }
        Ok(None)
    }

    /// The `index`th value (in the order of [`View::value_names`]).
    pub fn value_at(&self, path: &KeyPath, index: usize) -> R<Option<(String, RegValue, Layer)>> {
        match self.value_names(path)?.into_iter().nth(index) {
            Some((name, _)) => self.value(path, &name),
            None => Ok(None),
        }
    }

    fn hive_of(&self, layer: Layer) -> R<Hive<'a>> {
        match (layer, self.private()) {
            (Layer::Private, Some(h)) => Ok(h),
            (Layer::Global, _) => Ok(self.global()),
            _ => Err(RegError::denied("that layer is read-only").into()),
        }
    }

    /// `RegCreateKeyEx` into `layer`: whether it was created, and the change.
    pub fn create(&self, path: &KeyPath, layer: Layer) -> R<(bool, Vec<Change>)> {
        if self.exists(path)? {
            return Ok((false, Vec::new()));
        }
        let h = self.hive_of(layer)?;
        // The first key new in the view (its parent's subkeys changed), not the first row new
        // in the hive: a copy-on-write of keys the view has is no change of names.
        let mut first = None;
        for p in path.ancestors_and_self().into_iter().skip(1) {
            if !self.exists(&p)? {
                first = Some(p);
                break;
            }
        }
        h.ensure(path)?;
        let changes = first
            .and_then(|k| k.parent())
            .map(|parent| Change {
                hive: h.name.to_owned(),
                key: parent,
                bit: CHANGE_NAME,
                deleted: false,
            })
            .into_iter()
            .collect();
        Ok((true, changes))
    }

    /// `RegSetValueEx` into `layer` (the key exists in the view).
    pub fn set(&self, path: &KeyPath, name: &str, v: &RegValue, layer: Layer) -> R<Vec<Change>> {
        let h = self.hive_of(layer)?;
        // The key is in the view: making its rows in `layer` (copy-on-write) changes no names.
        h.ensure(path)?;
        h.put_value(path, name, v, false)?;
        Ok(vec![Change {
            hive: h.name.to_owned(),
            key: path.clone(),
            bit: CHANGE_LAST_SET,
            deleted: false,
        }])
    }

    /// `RegDeleteValue` in `layer`: 2 when the view has no such value.
    pub fn delete_value(&self, path: &KeyPath, name: &str, layer: Layer) -> R<Vec<Change>> {
        let Some((_, _, from)) = self.value(path, name)? else {
            return Err(RegError::not_found(format!(
                "{} has no value {:?}",
                path.short(),
                appipc_model::registry::shorten(name)
            ))
            .into());
        };
        if from == Layer::Shipped {
            return Err(RegError::denied(format!(
                "value {:?} of {} is part of the package's Registry.reg (read-only)",
                appipc_model::registry::shorten(name),
                path.short()
            ))
            .into());
        }
        let h = self.hive_of(layer)?;
        // A tombstone wherever the global hive has the value (hidden or not: harmless).
        let lower_has = self.global().value(path, &fold(name))?.is_some_and(|(_, _, t)| !t);
        if layer == Layer::Private {
            h.remove_value(path, name)?;
            if lower_has {
                h.ensure(path)?;
                h.put_value(path, name, &RegValue::none(), true)?;
            }
        } else {
            h.remove_value(path, name)?;
            if let Some(u) = self.private() {
                u.remove_value(path, name)?;
            }
        }
        Ok(vec![Change {
            hive: h.name.to_owned(),
            key: path.clone(),
            bit: CHANGE_LAST_SET,
            deleted: false,
        }])
    }

    /// `RegDeleteKey` (no subkeys left: the caller checked) or `RegDeleteTree`, in `layer`;
    /// `keep_self`: `RegDeleteTree` of the key itself (its values and subkeys go).
    pub fn delete(&self, path: &KeyPath, layer: Layer, keep_self: bool) -> R<Vec<Change>> {
        if path.depth() == 0 && !keep_self {
            return Err(RegError::parameter("a root key cannot be deleted").into());
        }
        if let Some(t) = self.shipped()
            && t.keys().any(|k| k.path.is_at_or_under(path))
        {
            return Err(RegError::denied(format!(
                "{} holds keys of the package's Registry.reg (read-only)",
                path.short()
            ))
            .into());
        }
        let h = self.hive_of(layer)?;
        let lower_has = self.global().live(path)?;
        h.remove_subtree(path, keep_self)?;
        if layer == Layer::Private && lower_has && path.depth() > 0 {
            if let Some(parent) = path.parent() {
                h.ensure(&parent)?;
            }
            h.put_key(path, if keep_self { KeyState::Opaque } else { KeyState::Deleted })?;
        }
        if layer == Layer::Global
            && let Some(u) = self.private()
        {
            u.remove_subtree(path, keep_self)?;
        }
        let mut changes = vec![Change {
            hive: h.name.to_owned(),
            key: path.clone(),
            bit: CHANGE_NAME | CHANGE_LAST_SET,
            deleted: !keep_self,
        }];
        if let Some(parent) = path.parent().filter(|_| !keep_self) {
            changes.push(Change {
                hive: h.name.to_owned(),
                key: parent,
                bit: CHANGE_NAME,
                deleted: false,
            });
        }
        Ok(changes)
    }
}

impl Store {
    /// Runs `f` on a view of `root` in one transaction: committed when it returns `Ok`, rolled
    /// back otherwise. A hive may hold at most `max_bytes` (names, data and 64 bytes a row).
    pub fn registry<T>(
        &mut self,
        root: Root,
        upper: Upper<'_>,
        max_bytes: u64,
        f: impl FnOnce(&View<'_>) -> R<T>,
    ) -> Result<Result<T, RegError>, InternalError> {
        let tx = self.conn.transaction()?;
        let out = {
            let view = View { tx: &tx, root, upper, max: max_bytes };
            f(&view)
        };
        match out {
            Ok(v) => {
                tx.commit()?;
                Ok(Ok(v))
            }
            Err(RegFail::Reg(e)) => Ok(Err(e)),
            Err(RegFail::Store(e)) => Err(e.into()),
        }
    }

    /// Deletes a package's private hive (the package is removed).
    pub fn drop_private_hive(&mut self, family: &str) -> Result<(), InternalError> {
        drop_private_hive(&self.conn, family)
    }
}

/// Deletes `family`'s private hive on `conn` (inside the caller's transaction, if any).
pub(super) fn drop_private_hive(
    conn: &rusqlite::Connection,
    family: &str,
) -> Result<(), InternalError> {
    let hive = private_hive(family);
    conn.execute("DELETE FROM registry_keys WHERE hive = ?1", [&hive])?;
    conn.execute("DELETE FROM registry_values WHERE hive = ?1", [&hive])?;
    conn.execute("DELETE FROM registry_usage WHERE hive = ?1", [&hive])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> KeyPath {
        KeyPath::parse(s).unwrap()
    }

    fn ok<T>(r: Result<Result<T, RegError>, InternalError>) -> T {
        r.unwrap().unwrap()
    }

    #[test]
    fn the_private_hive_is_copy_on_write_with_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("state.db")).unwrap();
        let hkcu = Root::CurrentUser;
        let key = k("HKCU\\Software\\Contoso");
        // The global view writes the global hive.
        ok(s.registry(hkcu, Upper::None, u64::MAX, |v| {
            v.create(&key, Layer::Global)?;
            v.set(&key, "Shared", &RegValue::sz("global"), Layer::Global)?;
            v.set(&key, "Other", &RegValue::dword(1), Layer::Global)?;
            v.create(&key.join("Child").unwrap(), Layer::Global)?;
            Ok(())
        }));
        let pkg = private_hive("Contoso.App_x");
        let up = Upper::Private(&pkg);
        // The package sees the global data, writes its own, and deletes with tombstones.
        ok(s.registry(hkcu, up, u64::MAX, |v| {
            assert!(v.exists(&key)?);
            v.set(&key, "Shared", &RegValue::sz("mine"), Layer::Private)?;
            v.delete_value(&key, "other", Layer::Private)?;
            v.delete(&key.join("child").unwrap(), Layer::Private, false)?;
            Ok(())
        }));
        ok(s.registry(hkcu, up, u64::MAX, |v| {
            let vals = v.value_names(&key)?;
            assert_eq!(vals, [("Shared".to_owned(), Layer::Private)]);
            assert_eq!(v.value(&key, "shared")?.unwrap().1, RegValue::sz("mine"));
            assert!(v.subkeys(&key)?.is_empty());
            assert!(!v.exists(&key.join("Child").unwrap())?);
            // Created again: empty (the global one's content stays hidden).
            assert!(v.create(&key.join("CHILD").unwrap(), Layer::Private)?.0);
            assert_eq!(v.subkeys(&key)?, ["CHILD"]);
            Ok(())
        }));
        // The global view is unchanged.
        ok(s.registry(hkcu, Upper::None, u64::MAX, |v| {
            assert_eq!(v.value_names(&key)?.len(), 2);
            assert_eq!(v.value(&key, "shared")?.unwrap().1, RegValue::sz("global"));
            assert_eq!(v.subkeys(&key)?, ["Child"]);
            Ok(())
        }));
        // An error rolls the whole call back.
        let e = s
            .registry(hkcu, Upper::None, u64::MAX, |v| {
                v.set(&key, "half", &RegValue::dword(2), Layer::Global)?;
                v.delete_value(&key, "nope", Layer::Global)
            })
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code, appipc_wire::status::Win32Error::FileNotFound);
        ok(s.registry(hkcu, Upper::None, u64::MAX, |v| {
            assert!(v.value(&key, "half")?.is_none());
            Ok(())
        }));
        s.drop_private_hive("CONTOSO.APP_X").unwrap();
        ok(s.registry(hkcu, up, u64::MAX, |v| {
            assert_eq!(v.value(&key, "Shared")?.unwrap().2, Layer::Global);
            assert_eq!(v.subkeys(&key)?, ["Child"]);
            Ok(())
        }));
    }

    #[test]
    fn a_hive_holds_at_most_its_quota_and_deletes_give_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("state.db")).unwrap();
        let key = k("HKCU\\Software\\Q");
        let pkg = private_hive("Contoso.Q_x");
        let up = Upper::Private(&pkg);
        let big = RegValue::binary(&[0; 400]);
        let set = |s: &mut Store, name: &str| {
            s.registry(Root::CurrentUser, up, 1200, |v| {
                v.create(&key, Layer::Private)?;
                v.set(&key, name, &big, Layer::Private)
            })
            .unwrap()
        };
        assert!(set(&mut s, "a").is_ok());
        assert!(set(&mut s, "b").is_ok());
        let e = set(&mut s, "c").unwrap_err();
        assert_eq!(e.code, appipc_wire::status::Win32Error::NotEnoughQuota);
        // Overwriting costs only the difference; deleting gives the bytes back.
        assert!(set(&mut s, "b").is_ok());
        ok(s.registry(Root::CurrentUser, up, 1200, |v| v.delete_value(&key, "a", Layer::Private)));
        assert!(set(&mut s, "c").is_ok());
        ok(s.registry(Root::CurrentUser, up, 1200, |v| v.delete(&key, Layer::Private, false)));
        ok(s.registry(Root::CurrentUser, up, 1200, |v| {
            assert!(!v.exists(&key)?);
            Ok(())
        }));
        assert!(set(&mut s, "a").is_ok() && set(&mut s, "b").is_ok());
        // The global hive has its own quota.
        let e = s
            .registry(Root::CurrentUser, Upper::None, 100, |v| {
                v.set(&key, "g", &big, Layer::Global)
            })
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code, appipc_wire::status::Win32Error::NotEnoughQuota);
    }

    /// Red team finding 3: every row stores its full path, so a deep key of long names cost
    /// the hive far more than its names; the quota counts what is stored.
    #[test]
    fn the_quota_counts_the_paths_each_row_stores() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("state.db")).unwrap();
        let pkg = private_hive("Contoso.Q_x");
        let up = Upper::Private(&pkg);
        let name = "n".repeat(250);
        let deep = k("HKCU\\Software").join(&vec![name.as_str(); 100].join("\\")).unwrap();
        // 100 names of 250 bytes, but rows holding 2.5 MB of paths: more than 1 MiB.
        let e = s
            .registry(Root::CurrentUser, up, 1 << 20, |v| v.create(&deep, Layer::Private))
            .unwrap()
            .unwrap_err();
        assert_eq!(e.code, appipc_wire::status::Win32Error::NotEnoughQuota);
        // A value pays for its key's path too.
        let key = k("HKCU\\Software").join(&[name.as_str(); 8].join("\\")).unwrap();
        let set = |s: &mut Store, n: &str| {
            s.registry(Root::CurrentUser, up, 64 * 1024, |v| {
                v.create(&key, Layer::Private)?;
                v.set(&key, n, &RegValue::dword(1), Layer::Private)
            })
            .unwrap()
        };
        let mut stored = 0;
        while set(&mut s, &format!("v{stored}")).is_ok() {
            stored += 1;
            assert!(stored < 100, "{stored} values of a 2 KB path fit in 64 KiB");
        }
    }

    #[test]
    fn shipped_keys_merge_over_hklm_and_are_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("state.db")).unwrap();
        let mut t = RegTree::new();
        let sw = k("HKLM\\Software\\Fabrikam");
        t.set(&sw, "Version", RegValue::sz("1.0"));
        ok(s.registry(Root::LocalMachine, Upper::None, u64::MAX, |v| {
            v.create(&k("HKLM\\Software\\Native"), Layer::Global)?;
            Ok(())
        }));
        ok(s.registry(Root::LocalMachine, Upper::Shipped(&t), u64::MAX, |v| {
            assert_eq!(v.subkeys(&k("HKLM\\software"))?, ["Fabrikam", "Native"]);
            assert_eq!(v.value(&sw, "version")?.unwrap().2, Layer::Shipped);
            assert!(v.delete(&k("HKLM\\Software"), Layer::Global, false).is_err());
            assert!(v.delete_value(&sw, "Version", Layer::Global).is_err());
            Ok(())
        }));
    }
}
