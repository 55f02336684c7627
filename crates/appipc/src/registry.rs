//! The registry (`RegCreateKeyEx`, `RegSetValueEx`, `RegQueryValueEx`, `RegEnumKeyEx`,
//! `RegDeleteKey`, `RegNotifyChangeKeyValue`, …), virtualized per package as MSIX does it for
//! packaged desktop apps.
//!
//! A packaged process's HKCU writes go to its package's private hive, which only that
//! package's processes see, merged over the user's HKCU on read for a full-trust process (an
//! app container sees its private hive only, and the keys its package shares through
//! `excluded-keys`): two processes of one package can use a value and a change notification
//! to talk. HKLM shows the package's shipped `Registry.reg` over the user's HKLM, read-only. An unpackaged process sees and writes the
//! global hives. Failures are [`Error::Registry`] with the Win32 code: 2 no such key or value,
//! 5 access denied, 6 not a handle of this session, 87 invalid parameter, 234 more data, 259
//! no more items, 1018 key deleted, 1816 too many handles.
//!
//! ```no_run
//! # async fn demo() -> appipc::Result<()> {
//! use appipc::Session;
//! use appipc::registry::{RegKey, RegValue, NotifyFilter};
//! let session = Session::connect().await?;
//! let (key, _disposition) = RegKey::current_user(&session).create("Software\\Contoso").await?;
//! key.set_value("Greeting", &RegValue::sz("hello")).await?;
//! let mut changes = key.notify_change(NotifyFilter::LAST_SET, false).await?;
//! if let Some(change) = changes.next().await {
//!     println!("changed: {change:?}");
//! }
//! # Ok(()) }
//! ```

use appipc_wire::protocol::registry::{
    CancelNotify, CloseKey, CreateKey, DeleteKey, DeleteTree, DeleteValue, EnumKey, EnumValue,
    NotifyChangeKeyValue, OpenKey, QueryKeyInfo, QueryValue, SetValue,
};
pub use appipc_wire::protocol::registry::{CreatedKey, KeyChanged, RegKeyInfo, RegValueInfo};

use crate::error::{Error, Result};
use crate::session::Session;

/// `REG_NONE`.
pub const REG_NONE: u32 = 0;
/// `REG_SZ`.
pub const REG_SZ: u32 = 1;
/// `REG_EXPAND_SZ`.
pub const REG_EXPAND_SZ: u32 = 2;
/// `REG_BINARY`.
pub const REG_BINARY: u32 = 3;
/// `REG_DWORD`.
pub const REG_DWORD: u32 = 4;
/// `REG_DWORD_BIG_ENDIAN`.
pub const REG_DWORD_BIG_ENDIAN: u32 = 5;
/// `REG_LINK`.
pub const REG_LINK: u32 = 6;
/// `REG_MULTI_SZ`.
pub const REG_MULTI_SZ: u32 = 7;
/// `REG_QWORD`.
pub const REG_QWORD: u32 = 11;

/// `ERROR_FILE_NOT_FOUND`.
pub const ERROR_FILE_NOT_FOUND: u32 = 2;
/// `ERROR_ACCESS_DENIED`.
pub const ERROR_ACCESS_DENIED: u32 = 5;
/// `ERROR_MORE_DATA`.
pub const ERROR_MORE_DATA: u32 = 234;
/// `ERROR_NO_MORE_ITEMS`.
pub const ERROR_NO_MORE_ITEMS: u32 = 259;
/// `ERROR_KEY_DELETED`.
pub const ERROR_KEY_DELETED: u32 = 1018;

/// `REG_CREATED_NEW_KEY` / `REG_OPENED_EXISTING_KEY`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// `REG_CREATED_NEW_KEY` (1).
    CreatedNewKey = 1,
    /// `REG_OPENED_EXISTING_KEY` (2).
    OpenedExistingKey = 2,
}

/// `REG_NOTIFY_CHANGE_*` filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyFilter(pub u32);

impl NotifyFilter {
    /// `REG_NOTIFY_CHANGE_NAME` (0x1): a subkey is added or deleted.
    pub const NAME: NotifyFilter = NotifyFilter(0x1);
    /// `REG_NOTIFY_CHANGE_ATTRIBUTES` (0x2) (keys have no attributes here: never fires).
    pub const ATTRIBUTES: NotifyFilter = NotifyFilter(0x2);
    /// `REG_NOTIFY_CHANGE_LAST_SET` (0x4): a value is set or deleted.
    pub const LAST_SET: NotifyFilter = NotifyFilter(0x4);
    /// `REG_NOTIFY_CHANGE_SECURITY` (0x8) (keys have no security descriptor here: never fires).
    pub const SECURITY: NotifyFilter = NotifyFilter(0x8);
    /// All four.
    pub const ALL: NotifyFilter = NotifyFilter(0xF);
}

impl std::ops::BitOr for NotifyFilter {
    type Output = NotifyFilter;
    fn bitor(self, o: NotifyFilter) -> NotifyFilter {
        NotifyFilter(self.0 | o.0)
    }
}

/// A value: its type (`REG_SZ`, …) and its data in Windows' layout (strings UTF-16LE with
/// their terminating NUL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegValue {
    /// `REG_SZ` 1, …
    pub value_type: u32,
    /// The data.
    pub data: Vec<u8>,
}

fn utf16(s: &str) -> Vec<u8> {
    let mut out: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    out.extend([0, 0]);
    out
}

fn text(data: &[u8]) -> Option<String> {
    if !data.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = data.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).ok()
}

impl RegValue {
    /// `REG_SZ`.
    pub fn sz(s: &str) -> RegValue {
        RegValue { value_type: REG_SZ, data: utf16(s) }
    }
    /// `REG_EXPAND_SZ`.
    pub fn expand_sz(s: &str) -> RegValue {
        RegValue { value_type: REG_EXPAND_SZ, data: utf16(s) }
    }
    /// `REG_MULTI_SZ`.
    pub fn multi_sz<S: AsRef<str>>(items: &[S]) -> RegValue {
        let mut data: Vec<u8> = items.iter().flat_map(|s| utf16(s.as_ref())).collect();
        data.extend([0, 0]);
        RegValue { value_type: REG_MULTI_SZ, data }
    }
    /// `REG_DWORD`.
    pub fn dword(v: u32) -> RegValue {
        RegValue { value_type: REG_DWORD, data: v.to_le_bytes().to_vec() }
    }
    /// `REG_QWORD`.
    pub fn qword(v: u64) -> RegValue {
        RegValue { value_type: REG_QWORD, data: v.to_le_bytes().to_vec() }
    }
    /// `REG_BINARY`.
    pub fn binary(data: &[u8]) -> RegValue {
        RegValue { value_type: REG_BINARY, data: data.to_vec() }
    }
    /// The text of a `REG_SZ`, `REG_EXPAND_SZ` or `REG_LINK` (without its NUL).
    pub fn as_str(&self) -> Option<String> {
        if !matches!(self.value_type, REG_SZ | REG_EXPAND_SZ | REG_LINK) {
            return None;
        }
        let s = text(&self.data)?;
        Some(s.strip_suffix('\0').map_or(s.clone(), str::to_owned))
    }
    /// The strings of a `REG_MULTI_SZ`.
    pub fn as_multi(&self) -> Option<Vec<String>> {
        if self.value_type != REG_MULTI_SZ {
            return None;
        }
        let s = text(&self.data)?;
        let s = s.trim_end_matches('\0');
        Some(if s.is_empty() { Vec::new() } else { s.split('\0').map(str::to_owned).collect() })
    }
    /// The number of a `REG_DWORD`, `REG_DWORD_BIG_ENDIAN` or `REG_QWORD`.
    pub fn as_u64(&self) -> Option<u64> {
        match (self.value_type, self.data.as_slice()) {
            (REG_DWORD, [a, b, c, d]) => Some(u64::from(u32::from_le_bytes([*a, *b, *c, *d]))),
            (REG_DWORD_BIG_ENDIAN, [a, b, c, d]) => {
                Some(u64::from(u32::from_be_bytes([*a, *b, *c, *d])))
            }
            (REG_QWORD, d) if d.len() == 8 => Some(u64::from_le_bytes(d.try_into().ok()?)),
            _ => None,
        }
    }
}

impl From<RegValueInfo> for RegValue {
    fn from(i: RegValueInfo) -> RegValue {
        RegValue { value_type: i.value_type, data: i.data.into() }
    }
}

/// An open registry key (`HKEY`). The predefined keys ([`RegKey::current_user`],
/// [`RegKey::local_machine`]) need no opening; others are closed by [`RegKey::close`] or
/// when dropped inside a tokio runtime.
#[derive(Debug)]
pub struct RegKey {
    session: Session,
    handle: u64,
    owned: bool,
}

/// `HKEY_CURRENT_USER`'s predefined handle.
pub const HKEY_CURRENT_USER: u64 = 0x8000_0001;
/// `HKEY_LOCAL_MACHINE`'s predefined handle.
pub const HKEY_LOCAL_MACHINE: u64 = 0x8000_0002;

impl RegKey {
    /// `HKEY_CURRENT_USER`, in this process's view.
    pub fn current_user(session: &Session) -> RegKey {
        RegKey { session: session.clone(), handle: HKEY_CURRENT_USER, owned: false }
    }

    /// `HKEY_LOCAL_MACHINE`, in this process's view.
    pub fn local_machine(session: &Session) -> RegKey {
        RegKey { session: session.clone(), handle: HKEY_LOCAL_MACHINE, owned: false }
    }

    /// A predefined key (`HKEY_CURRENT_USER` or `HKEY_LOCAL_MACHINE`) in package
    /// `family_name`'s merged view, as its processes see it (unpackaged callers only: a
    /// packaged process sees its own view, 5).
    pub async fn package_view(
        session: &Session,
        predefined: u64,
        family_name: &str,
    ) -> Result<RegKey> {
        let handle = session
            .call(OpenKey {
                parent: predefined,
                subkey: String::new(),
                package: Some(family_name.to_owned()),
            })
            .await
            .map_err(Error::into_registry)?;
        Ok(RegKey { session: session.clone(), handle, owned: true })
    }

    /// The handle's number.
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// `RegOpenKeyEx`: a subkey (2 if it does not exist).
    pub async fn open(&self, subkey: &str) -> Result<RegKey> {
        let handle = self
            .session
            .call(OpenKey { parent: self.handle, subkey: subkey.to_owned(), package: None })
            .await
            .map_err(Error::into_registry)?;
        Ok(RegKey { session: self.session.clone(), handle, owned: true })
    }

    /// `RegCreateKeyEx`: a subkey, created (with its missing ancestors) if it does not exist.
    pub async fn create(&self, subkey: &str) -> Result<(RegKey, Disposition)> {
        let c = self
            .session
            .call(CreateKey { parent: self.handle, subkey: subkey.to_owned(), package: None })
            .await
            .map_err(Error::into_registry)?;
        let d = if c.disposition == 1 {
            Disposition::CreatedNewKey
        } else {
            Disposition::OpenedExistingKey
        };
        Ok((RegKey { session: self.session.clone(), handle: c.handle, owned: true }, d))
    }

    /// `RegSetValueEx` ("" is the default value).
    pub async fn set_value(&self, name: &str, value: &RegValue) -> Result<()> {
        self.session
            .call(SetValue {
                handle: self.handle,
                name: name.to_owned(),
                value_type: value.value_type,
                data: value.data.clone().into(),
            })
            .await
            .map_err(Error::into_registry)
    }

    /// `RegQueryValueEx`.
    pub async fn query_value(&self, name: &str) -> Result<RegValue> {
        Ok(self.query_value_info(name, None).await?.into())
    }

    /// `RegQueryValueEx` with a buffer of `max_data` bytes (234 if the data is longer), and
    /// the layer the value came from.
    pub async fn query_value_info(
        &self,
        name: &str,
        max_data: Option<u32>,
    ) -> Result<RegValueInfo> {
        self.session
            .call(QueryValue { handle: self.handle, name: name.to_owned(), max_data })
            .await
            .map_err(Error::into_registry)
    }

    /// `RegEnumKeyEx` of one index (259 past the last; 234 if the name is longer than
    /// `max_name` characters).
    pub async fn enum_key(&self, index: u32, max_name: Option<u32>) -> Result<String> {
        self.session
            .call(EnumKey { handle: self.handle, index, max_name })
            .await
            .map_err(Error::into_registry)
    }

    /// Every subkey's name, in case-insensitive order (`RegEnumKeyEx` until 259).
    pub async fn enum_keys(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        loop {
            match self.enum_key(u32::try_from(out.len()).unwrap_or(u32::MAX), None).await {
                Ok(n) => out.push(n),
                Err(e) if e.win32_code() == Some(ERROR_NO_MORE_ITEMS) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    /// `RegEnumValue` of one index (259 past the last; 234 if a buffer is too small).
    pub async fn enum_value(
        &self,
        index: u32,
        max_name: Option<u32>,
        max_data: Option<u32>,
    ) -> Result<RegValueInfo> {
        self.session
            .call(EnumValue { handle: self.handle, index, max_name, max_data })
            .await
            .map_err(Error::into_registry)
    }

    /// Every value, in case-insensitive order of names, with its layer.
    pub async fn enum_values(&self) -> Result<Vec<RegValueInfo>> {
        let mut out = Vec::new();
        loop {
            match self.enum_value(u32::try_from(out.len()).unwrap_or(u32::MAX), None, None).await {
                Ok(v) => out.push(v),
                Err(e) if e.win32_code() == Some(ERROR_NO_MORE_ITEMS) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    /// `RegDeleteValue`.
    pub async fn delete_value(&self, name: &str) -> Result<()> {
        self.session
            .call(DeleteValue { handle: self.handle, name: name.to_owned() })
            .await
            .map_err(Error::into_registry)
    }

    /// `RegDeleteKey`: 5 if the subkey has subkeys.
    pub async fn delete_key(&self, subkey: &str) -> Result<()> {
        self.session
            .call(DeleteKey { handle: self.handle, subkey: subkey.to_owned() })
            .await
            .map_err(Error::into_registry)
    }

    /// `RegDeleteTree`: the subkey and everything below it; with "" this key's values and
    /// subkeys.
    pub async fn delete_tree(&self, subkey: &str) -> Result<()> {
        self.session
            .call(DeleteTree { handle: self.handle, subkey: subkey.to_owned() })
            .await
            .map_err(Error::into_registry)
    }

    /// The key's path as stored, whose view it is and where a write to it goes.
    pub async fn info(&self) -> Result<RegKeyInfo> {
        self.session.call(QueryKeyInfo { handle: self.handle }).await.map_err(Error::into_registry)
    }

    /// `RegNotifyChangeKeyValue`: the changes `filter` selects of this key (and, with
    /// `subtree`, of the keys below it), each delivered as soon as the broker committed it,
    /// until the stream is dropped or the key closed. Unlike Windows' one-shot event, one call
    /// keeps watching. A reader that falls behind by more than 64 changes loses some.
    pub async fn notify_change(&self, filter: NotifyFilter, subtree: bool) -> Result<RegChanges> {
        let watch = self
            .session
            .call(NotifyChangeKeyValue {
                handle: self.handle,
                watch_subtree: subtree,
                filter: filter.0,
            })
            .await
            .map_err(Error::into_registry)?;
        let queue = self.session.route_registry(watch);
        Ok(RegChanges { session: self.session.clone(), watch, queue })
    }

    /// `RegCloseKey`.
    pub async fn close(mut self) -> Result<()> {
        if !self.owned {
            return Ok(());
        }
        self.owned = false;
        self.session.call(CloseKey { handle: self.handle }).await.map_err(Error::into_registry)
    }
}

impl Drop for RegKey {
    fn drop(&mut self) {
        if self.owned
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let (session, handle) = (self.session.clone(), self.handle);
            rt.spawn(async move {
                let _ = session.call(CloseKey { handle }).await;
            });
        }
    }
}

/// Changes kept for a reader that does not keep up; past them, changes are coalesced into
/// one.
pub(crate) const KEPT_CHANGES: usize = 64;

/// One watch's changes on their way to its reader: at most [`KEPT_CHANGES`], then the ones
/// that do not fit coalesce into one last change marked [`KeyChanged::coalesced`] (every bit
/// they had, `subkey` ""): a change is never lost without the reader hearing of it.
#[derive(Debug, Default)]
pub(crate) struct ChangeQueue {
    state: std::sync::Mutex<Queued>,
    ready: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Queued {
    changes: std::collections::VecDeque<KeyChanged>,
    /// The coalesced change, after `changes`.
    coalesced: Option<KeyChanged>,
    closed: bool,
}

impl ChangeQueue {
    /// Queues a change (coalesced once [`KEPT_CHANGES`] wait, or one already was).
    pub(crate) fn push(&self, c: KeyChanged) {
        let mut q = self.state.lock().expect("change queue poisoned");
        if q.closed {
            return;
        }
        if q.coalesced.is_none() && q.changes.len() < KEPT_CHANGES && !c.coalesced {
            q.changes.push_back(c);
        } else {
            let change = c.change;
            let all = q.coalesced.get_or_insert_with(|| KeyChanged {
                watch: c.watch,
                change: 0,
                subkey: String::new(),
                coalesced: true,
            });
            all.change |= change;
        }
        drop(q);
        self.ready.notify_one();
    }

    /// No more changes (the session ended); what is queued is still read.
    pub(crate) fn close(&self) {
        self.state.lock().expect("change queue poisoned").closed = true;
        self.ready.notify_one();
    }

    async fn next(&self) -> Option<KeyChanged> {
        loop {
            {
                let mut q = self.state.lock().expect("change queue poisoned");
                if let Some(c) = q.changes.pop_front().or_else(|| q.coalesced.take()) {
                    return Some(c);
                }
                if q.closed {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }
}

/// The changes of a watched key ([`RegKey::notify_change`]), in order. A reader that falls
/// behind (by 64 changes here, or by its session's queue in the broker) gets one change marked
/// [`KeyChanged::coalesced`] for all those it missed: look at the key again.
#[derive(Debug)]
pub struct RegChanges {
    session: Session,
    watch: u64,
    queue: std::sync::Arc<ChangeQueue>,
}

impl RegChanges {
    /// The next change; `None` once the session has ended.
    pub async fn next(&mut self) -> Option<KeyChanged> {
        self.queue.next().await
    }

    /// The watch's id.
    pub fn id(&self) -> u64 {
        self.watch
    }
}

impl Drop for RegChanges {
    fn drop(&mut self) {
        self.session.unroute_registry(self.watch);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (session, watch) = (self.session.clone(), self.watch);
            rt.spawn(async move {
                let _ = session.call(CancelNotify { watch }).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(i: usize, bit: u32) -> KeyChanged {
        KeyChanged { watch: 1, change: bit, subkey: format!("k{i}"), coalesced: false }
    }

    /// Red team finding 10 (the SDK's side): past 64 waiting changes the rest were dropped.
    #[test]
    fn a_full_queue_coalesces_the_rest_and_a_closed_one_ends_after_what_it_holds() {
        let q = ChangeQueue::default();
        for i in 0..70 {
            q.push(change(i, if i < 69 { 0x4 } else { 0x1 }));
        }
        q.close();
        q.push(change(99, 0x4));
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            for i in 0..KEPT_CHANGES {
                let c = q.next().await.unwrap();
                assert_eq!((c.subkey.as_str(), c.coalesced), (format!("k{i}").as_str(), false));
            }
            let c = q.next().await.unwrap();
            assert!(c.coalesced);
            assert_eq!((c.change, c.subkey.as_str()), (0x5, ""), "every bit of the six");
            assert!(q.next().await.is_none(), "closed: nothing after what it held");
        });
    }
}
