//! The registry (`RegCreateKeyEx`, `RegSetValueEx`, …), virtualized per package as MSIX does.

use minicbor::bytes::ByteVec;
use minicbor::{Decode, Encode};

super::mechanism! {
    /// The registry, virtualized per package (MSIX): `HKEY_CURRENT_USER` and
    /// `HKEY_LOCAL_MACHINE` of the user's broker, a package's shipped `Registry.reg` merged over
    /// `HKEY_LOCAL_MACHINE\Software` (read-only), and a private hive per package that takes its
    /// processes' HKCU writes. A handle is a number of the session that opened it; the
    /// predefined keys are `0x80000001` (HKCU) and `0x80000002` (HKLM). Errors are Win32 codes:
    /// 2 no such key or value, 5 access denied (a shipped key, HKLM from an app container, a
    /// key with subkeys), 6 not a handle of this session, 87 a bad name, type or size, 234 a
    /// name or data longer than the caller's buffer, 259 no more items, 1018 the handle's key
    /// was deleted, 1816 the session holds as many handles as it may.
    mechanism Registry;
    requests {
        /// `RegOpenKeyEx`: opens `subkey` of `parent` ("" opens `parent` again). `package`
        /// (unpackaged callers only, 5 otherwise) opens in that package's view instead of the
        /// caller's own; the new handle keeps its parent's view.
        0 OpenKey {
            /// A handle, or a predefined key.
            0 parent: u64,
            /// The subkey, `\`-separated.
            1 subkey: String,
            /// A package family name whose merged view to open (only with a predefined key).
            2 package: Option<String>,
        } fds(0) -> u64, reply fds "0";
        /// `RegCreateKeyEx`: opens `subkey`, creating it and its missing ancestors where the
        /// caller's writes go; the disposition is 1 (`REG_CREATED_NEW_KEY`) or 2
        /// (`REG_OPENED_EXISTING_KEY`).
        1 CreateKey {
            /// A handle, or a predefined key.
            0 parent: u64,
            /// The subkey.
            1 subkey: String,
            /// As for `OpenKey`.
            2 package: Option<String>,
        } fds(0) -> CreatedKey, reply fds "0";
        /// `RegCloseKey` (the handle's change notifications end with it).
        2 CloseKey {
            /// The handle.
            0 handle: u64,
        } fds(0) -> (), reply fds "0";
        /// `RegSetValueEx`: sets a value of the handle's key ("" is the default value).
        3 SetValue {
            /// The handle.
            0 handle: u64,
            /// The value's name.
            1 name: String,
            /// `REG_SZ` 1, … (the Windows number).
            2 value_type: u32,
            /// The data, in Windows' layout (strings UTF-16LE with their NUL).
            3 data: ByteVec,
        } fds(0) -> (), reply fds "0";
        /// `RegQueryValueEx`: a value of the handle's key; 234 when the data is longer than
        /// `max_data` (the message gives the size needed).
        4 QueryValue {
            /// The handle.
            0 handle: u64,
            /// The value's name.
            1 name: String,
            /// The caller's buffer, in bytes (none: any size).
            2 max_data: Option<u32>,
        } fds(0) -> RegValueInfo, reply fds "0";
        /// `RegDeleteValue`.
        5 DeleteValue {
            /// The handle.
            0 handle: u64,
            /// The value's name.
            1 name: String,
        } fds(0) -> (), reply fds "0";
        /// `RegDeleteKey`: deletes `subkey` of the handle's key; 5 when it has subkeys.
        6 DeleteKey {
            /// The handle.
            0 handle: u64,
            /// The subkey (not "").
            1 subkey: String,
        } fds(0) -> (), reply fds "0";
        /// `RegDeleteTree`: deletes `subkey` with everything below it; with "" the handle's
        /// key stays and its subkeys and values go.
        7 DeleteTree {
            /// The handle.
            0 handle: u64,
            /// The subkey.
            1 subkey: String,
        } fds(0) -> (), reply fds "0";
        /// `RegEnumKeyEx`: the `index`th subkey, in case-insensitive order; 259 past the last,
        /// 234 when the name is longer than `max_name` UTF-16 units.
        8 EnumKey {
            /// The handle.
            0 handle: u64,
            /// From 0.
            1 index: u32,
            /// The caller's buffer, in characters (none: any length).
            2 max_name: Option<u32>,
        } fds(0) -> String, reply fds "0";
        /// `RegEnumValue`: the `index`th value, in case-insensitive order of names; 259 past
        /// the last, 234 when the name or the data is longer than the caller's buffers.
        9 EnumValue {
            /// The handle.
            0 handle: u64,
            /// From 0.
            1 index: u32,
            /// The name buffer, in characters (none: any length).
            2 max_name: Option<u32>,
            /// The data buffer, in bytes (none: any size).
            3 max_data: Option<u32>,
        } fds(0) -> RegValueInfo, reply fds "0";
        /// `RegNotifyChangeKeyValue`: from now on a `KeyChanged` event for every committed
        /// change of the handle's key (or, with `watch_subtree`, of any key below it) that
        /// `filter` selects (`REG_NOTIFY_CHANGE_NAME` 0x1 subkeys added or deleted,
        /// `ATTRIBUTES` 0x2, `LAST_SET` 0x4 values set or deleted, `SECURITY` 0x8), until
        /// `CancelNotify` or `CloseKey`. Returns the watch's id. Unlike Windows, one call
        /// watches until cancelled (Windows signals once per call).
        10 NotifyChangeKeyValue {
            /// The handle.
            0 handle: u64,
            /// Below the key too.
            1 watch_subtree: bool,
            /// `REG_NOTIFY_CHANGE_*` bits.
            2 filter: u32,
        } fds(0) -> u64, reply fds "0";
        /// Ends a watch.
        11 CancelNotify {
            /// The watch.
            0 watch: u64,
        } fds(0) -> (), reply fds "0";
        /// What the handle's key is: its full path as stored, and where a write to it would
        /// go for this caller.
        12 QueryKeyInfo {
            /// The handle.
            0 handle: u64,
        } fds(0) -> RegKeyInfo, reply fds "0";
    }
    events {
        /// A watched key changed (sent after the change was committed). The broker's queue
        /// for a session stays bounded: the changes of a watch that do not fit are coalesced
        /// into one, sent once the session has read enough (`coalesced`); none is dropped
        /// unheard of.
        0 KeyChanged {
            /// The watch (`NotifyChangeKeyValue`'s output).
            0 watch: u64,
            /// The `REG_NOTIFY_CHANGE_*` bit of the change (of a coalesced one: all their bits).
            1 change: u32,
            /// The key that changed, below the watched one ("" for the watched key itself, and
            /// for a coalesced change).
            2 subkey: String,
            /// This change stands for changes that did not fit a queue (the broker's for the
            /// session, or the SDK's for the reader): look at the watched key, and below it,
            /// again (`RegNotifyChangeKeyValue` too says only "something changed").
            3 coalesced: bool,
        } fds "0";
    }
}

/// Answer to [`CreateKey`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct CreatedKey {
    /// The new handle.
    #[n(0)]
    pub handle: u64,
    /// `REG_CREATED_NEW_KEY` 1 or `REG_OPENED_EXISTING_KEY` 2.
    #[n(1)]
    pub disposition: u32,
}

/// A value, with the layer of the view it came from.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct RegValueInfo {
    /// Its name ("" the default value).
    #[n(0)]
    pub name: String,
    /// `REG_SZ` 1, …
    #[n(1)]
    pub value_type: u32,
    /// The data.
    #[n(2)]
    #[serde(skip)]
    pub data: ByteVec,
    /// Where it came from: "global", "package private hive", "package Registry.reg
    /// (read-only)".
    #[n(3)]
    pub layer: String,
}

/// Answer to [`QueryKeyInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct RegKeyInfo {
    /// The key's full path, with the names as stored.
    #[n(0)]
    pub path: String,
    /// The package whose view the handle is in ("" the global view).
    #[n(1)]
    pub package: String,
    /// Where a write to it goes ("global", "package private hive"), or why it is refused.
    #[n(2)]
    pub writes_to: String,
    /// Subkeys.
    #[n(3)]
    pub subkeys: u32,
    /// Values.
    #[n(4)]
    pub values: u32,
}
