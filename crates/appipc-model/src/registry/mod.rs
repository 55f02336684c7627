//! The registry's data model, as pure functions: key paths (case-insensitive, case-preserving,
//! with Windows' limits), typed values in their Windows byte layout, the `.reg` text format
//! ([`regfile`]), an in-memory tree ([`RegTree`], a package's shipped keys and `.reg`
//! round trips), where a write of a packaged process goes ([`write_target`], MSIX registry
//! virtualization) and how much of the global hive it sees ([`global_at`]: an app container
//! does not see the user's HKCU).
//!
//! Limits are Windows' (*Registry Element Size Limits*), counted as Windows counts them, in
//! UTF-16 code units: a key name component at most [`MAX_KEY_COMPONENT`] (255), a value name at
//! most [`MAX_VALUE_NAME`] (16 383), a tree at most [`MAX_DEPTH`] (512) levels deep, a key's
//! absolute path at most [`MAX_KEY_PATH`] (32 767), one create at most [`MAX_CREATE_LEVELS`]
//! (32) new levels. Messages name a key by [`KeyPath::short`] (at most 200 characters). Windows
//! allows value data up to available memory; appipc caps it at [`MAX_VALUE_DATA`] (64 KiB, so
//! that a value always fits in one broker message) and refuses more with 87. Names may not
//! hold control characters (NUL included: the Win32 API cannot pass one either), so that
//! every name can be written to a `.reg` file and read back.
//!
//! Failures carry Win32 codes ([`RegError`]): 2 not found, 5 access denied, 87 invalid
//! parameter, 234 more data, 259 no more items, 1018 key deleted.

use std::fmt;

use appipc_wire::status::Win32Error;

pub mod regfile;
mod tree;

pub use tree::{RegTree, TreeKey};

/// Most UTF-16 code units in one key name component.
pub const MAX_KEY_COMPONENT: usize = 255;
/// Most UTF-16 code units in a value name.
pub const MAX_VALUE_NAME: usize = 16_383;
/// Most levels below a root key.
pub const MAX_DEPTH: usize = 512;
/// Most UTF-16 code units in a key's absolute path (`HKEY_CURRENT_USER\…`, root and
/// backslashes included): Windows' bound, a `UNICODE_STRING` (its length a 16-bit count of
/// bytes) holds at most 32 767 units. Windows' own code past it is not documented; appipc
/// answers 87. Bounded so, a path (at most 3 bytes of UTF-8 a unit) fits in any reply or event.
pub const MAX_KEY_PATH: usize = 32_767;
/// Most levels one create makes ("You can create up to 32 levels at a time through a single
/// registry API call", *Registry Element Size Limits*); appipc answers 87 past it.
pub const MAX_CREATE_LEVELS: usize = 32;
/// Most characters of a key path in a message ([`KeyPath::short`]).
pub const SHORT_PATH: usize = 200;
/// Most bytes of one value's data (appipc's bound; Windows': available memory).
pub const MAX_VALUE_DATA: usize = 64 * 1024;

/// A registry failure: its Win32 code and what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (error {})", .code.value())]
pub struct RegError {
    /// The Win32 code (`ERROR_FILE_NOT_FOUND` 2, `ERROR_ACCESS_DENIED` 5, …).
    pub code: Win32Error,
    /// What was asked, and why it failed.
    pub message: String,
}

impl RegError {
    /// A failure with `code`.
    pub fn new(code: Win32Error, message: impl Into<String>) -> RegError {
        RegError { code, message: message.into() }
    }

    /// `ERROR_INVALID_PARAMETER` (87).
    pub fn parameter(message: impl Into<String>) -> RegError {
        RegError::new(Win32Error::InvalidParameter, message)
    }

    /// `ERROR_FILE_NOT_FOUND` (2).
    pub fn not_found(message: impl Into<String>) -> RegError {
        RegError::new(Win32Error::FileNotFound, message)
    }

    /// `ERROR_ACCESS_DENIED` (5).
    pub fn denied(message: impl Into<String>) -> RegError {
        RegError::new(Win32Error::AccessDenied, message)
    }
}

type Result<T, E = RegError> = std::result::Result<T, E>;

/// A predefined key (`HKEY_CURRENT_USER`, `HKEY_LOCAL_MACHINE`). `HKEY_CLASSES_ROOT` and
/// `HKEY_USERS` are not offered: the broker is per user, and the merged class view is not
/// part of a package's registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Root {
    /// `HKEY_CURRENT_USER` (`HKCU`).
    CurrentUser,
    /// `HKEY_LOCAL_MACHINE` (`HKLM`): the broker's machine-wide view (one per user broker).
    LocalMachine,
}

impl Root {
    /// Both.
    pub const ALL: [Root; 2] = [Root::CurrentUser, Root::LocalMachine];

    /// The full name (`HKEY_CURRENT_USER`).
    pub fn name(self) -> &'static str {
        match self {
            Root::CurrentUser => "HKEY_CURRENT_USER",
            Root::LocalMachine => "HKEY_LOCAL_MACHINE",
        }
    }

    /// The short name (`HKCU`).
    pub fn short(self) -> &'static str {
        match self {
            Root::CurrentUser => "HKCU",
            Root::LocalMachine => "HKLM",
        }
    }

    /// The predefined handle's value, as Windows defines it (`HKEY_CURRENT_USER` is
    /// `0x80000001`, `HKEY_LOCAL_MACHINE` `0x80000002`).
    pub fn handle(self) -> u64 {
        match self {
            Root::CurrentUser => 0x8000_0001,
            Root::LocalMachine => 0x8000_0002,
        }
    }

    /// The root whose predefined handle this is.
    pub fn from_handle(h: u64) -> Option<Root> {
        Root::ALL.into_iter().find(|r| r.handle() == h)
    }

    /// `HKEY_CURRENT_USER` or `HKCU` (any case), and the same for `HKEY_LOCAL_MACHINE`.
    pub fn parse(s: &str) -> Option<Root> {
        Root::ALL
            .into_iter()
            .find(|r| s.eq_ignore_ascii_case(r.name()) || s.eq_ignore_ascii_case(r.short()))
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The case-insensitive form of a name, as the registry compares names: each character that
/// has a single-character upper case is replaced by it (Windows compares with a one-to-one
/// upcase table; `ß` stays `ß`).
pub fn fold(name: &str) -> String {
    name.chars()
        .map(|c| {
            let mut up = c.to_uppercase();
            match (up.next(), up.next()) {
                (Some(u), None) => u,
                _ => c,
            }
        })
        .collect()
}

fn utf16_len(s: &str) -> usize {
    s.encode_utf16().count()
}

/// Checks one key name component: 1 to 255 UTF-16 code units, no `\`, no control character.
pub fn check_key_component(name: &str) -> Result<()> {
    let n = utf16_len(name);
    if n == 0 {
        return Err(RegError::parameter(
            "a key name component is empty (two backslashes in a row?)",
        ));
    }
    if n > MAX_KEY_COMPONENT {
        return Err(RegError::parameter(format!(
            "a key name component is {n} characters long; at most {MAX_KEY_COMPONENT}"
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(RegError::parameter(format!(
            "key name {:?} holds control character U+{:04X}",
            shorten(name),
            u32::from(c)
        )));
    }
    Ok(())
}

/// Checks a value name: at most 16 383 UTF-16 code units (empty is the default value), no
/// control character.
pub fn check_value_name(name: &str) -> Result<()> {
    let n = utf16_len(name);
    if n > MAX_VALUE_NAME {
        return Err(RegError::parameter(format!(
            "a value name is {n} characters long; at most {MAX_VALUE_NAME}"
        )));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(RegError::parameter(format!(
            "value name {:?} holds control character U+{:04X}",
            shorten(name),
            u32::from(c)
        )));
    }
    Ok(())
}

/// At most 40 characters of a name, for messages.
pub fn shorten(s: &str) -> String {
    if s.chars().count() <= 40 {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(40).collect();
        t.push('…');
        t
    }
}

/// A key: its root and the names below it, as written when each was created (case
/// preserved); compared case-insensitively.
#[derive(Debug, Clone, Eq)]
pub struct KeyPath {
    root: Root,
    parts: Vec<String>,
}

impl PartialEq for KeyPath {
    fn eq(&self, other: &Self) -> bool {
        self.root == other.root && self.folded() == other.folded()
    }
}

impl std::hash::Hash for KeyPath {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.root.hash(state);
        self.folded().hash(state);
    }
}

impl KeyPath {
    /// The root key itself.
    pub fn root(root: Root) -> KeyPath {
        KeyPath { root, parts: Vec::new() }
    }

    /// A full path, `HKEY_CURRENT_USER\Software\Contoso` (or `HKCU\…`).
    pub fn parse(full: &str) -> Result<KeyPath> {
        let (head, rest) = match full.split_once('\\') {
            Some((h, r)) => (h, r),
            None => (full, ""),
        };
        let root = Root::parse(head).ok_or_else(|| {
            RegError::parameter(format!(
                "{:?} does not start with HKEY_CURRENT_USER (HKCU) or HKEY_LOCAL_MACHINE (HKLM)",
                shorten(full)
            ))
        })?;
        KeyPath::root(root).join(rest)
    }

    /// A subkey: `subkey` is relative (`Software\Contoso`; "" is this key itself; one trailing
    /// `\` is ignored). A leading `\`, an empty component, a component over 255 characters, a
    /// control character or more than 512 levels is 87. `.` and `..` are names like any
    /// other: nothing in a key path refers to a parent.
    pub fn join(&self, subkey: &str) -> Result<KeyPath> {
        let mut out = self.clone();
        if subkey.is_empty() {
            return Ok(out);
        }
        if subkey.starts_with('\\') {
            return Err(RegError::parameter(format!(
                "subkey {:?} begins with a backslash",
                shorten(subkey)
            )));
        }
        let subkey = subkey.strip_suffix('\\').unwrap_or(subkey);
        let mut units = out.path_units();
        for part in subkey.split('\\') {
            check_key_component(part)?;
            if out.parts.len() >= MAX_DEPTH {
                return Err(RegError::parameter(format!(
                    "a key may be at most {MAX_DEPTH} levels deep"
                )));
            }
            units += 1 + utf16_len(part);
            if units > MAX_KEY_PATH {
                return Err(RegError::parameter(format!(
                    "{}\\{}: a key's absolute path may be at most {MAX_KEY_PATH} characters",
                    out.short(),
                    shorten(part)
                )));
            }
            out.parts.push(part.to_owned());
        }
        Ok(out)
    }

    /// UTF-16 code units of the absolute path (`HKEY_CURRENT_USER\…`).
    pub fn path_units(&self) -> usize {
        utf16_len(self.root.name()) + self.parts.iter().map(|p| 1 + utf16_len(p)).sum::<usize>()
    }

    /// The path for a message: whole when at most [`SHORT_PATH`] characters, else its root,
    /// its first and last names (each shortened) and `…` between.
    pub fn short(&self) -> String {
        let whole = self.to_string();
        if whole.chars().count() <= SHORT_PATH {
            return whole;
        }
        let first = self.parts.first().map_or(String::new(), |p| shorten(p));
        let last = shorten(self.name());
        format!("{}\\{first}\\…({} levels)…\\{last}", self.root.name(), self.parts.len())
    }

    /// The root key.
    pub fn root_key(&self) -> Root {
        self.root
    }

    /// The names below the root.
    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// How many levels below the root.
    pub fn depth(&self) -> usize {
        self.parts.len()
    }

    /// The last name ("" for a root).
    pub fn name(&self) -> &str {
        self.parts.last().map_or("", String::as_str)
    }

    /// The parts, folded.
    pub fn folded(&self) -> Vec<String> {
        self.parts.iter().map(|p| fold(p)).collect()
    }

    /// The path below the root, folded and joined by `\` ("" for the root): the storage key.
    pub fn folded_path(&self) -> String {
        self.folded().join("\\")
    }

    /// The path below the root, as written.
    pub fn sub_path(&self) -> String {
        self.parts.join("\\")
    }

    /// The parent (`None` for a root).
    pub fn parent(&self) -> Option<KeyPath> {
        if self.parts.is_empty() {
            return None;
        }
        let mut p = self.clone();
        p.parts.pop();
        Some(p)
    }

    /// The child `name` (checked).
    pub fn child(&self, name: &str) -> Result<KeyPath> {
        if name.contains('\\') {
            return Err(RegError::parameter(format!("{:?} is not one name", shorten(name))));
        }
        self.join(name)
    }

    /// This key and every key up to the root, root first.
    pub fn ancestors_and_self(&self) -> Vec<KeyPath> {
        (0..=self.parts.len())
            .map(|n| KeyPath { root: self.root, parts: self.parts[..n].to_vec() })
            .collect()
    }

    /// Whether this is `other` or below it (case-insensitive).
    pub fn is_at_or_under(&self, other: &KeyPath) -> bool {
        self.root == other.root
            && self.parts.len() >= other.parts.len()
            && self.parts.iter().zip(&other.parts).all(|(a, b)| fold(a) == fold(b))
    }

    /// The same key with the names as `other` writes them where the two agree
    /// case-insensitively (the stored case wins over the asked one).
    pub fn with_case_of(&self, stored: &[String]) -> KeyPath {
        let mut out = self.clone();
        for (p, s) in out.parts.iter_mut().zip(stored) {
            if fold(p) == fold(s) {
                p.clone_from(s);
            }
        }
        out
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.root.name())?;
        for p in &self.parts {
            write!(f, "\\{p}")?;
        }
        Ok(())
    }
}

/// A value's type, with Windows' numbers (`REG_SZ` is 1, …). The other Windows types
/// (`REG_RESOURCE_LIST` 8 …) are not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum ValueType {
    /// `REG_NONE`.
    None = 0,
    /// `REG_SZ`: a NUL-terminated UTF-16LE string.
    Sz = 1,
    /// `REG_EXPAND_SZ`: a string with `%VARIABLE%` references, unexpanded.
    ExpandSz = 2,
    /// `REG_BINARY`.
    Binary = 3,
    /// `REG_DWORD`: 4 bytes, little-endian.
    Dword = 4,
    /// `REG_DWORD_BIG_ENDIAN`: 4 bytes, big-endian.
    DwordBigEndian = 5,
    /// `REG_LINK`: a UTF-16LE key path (stored, not followed).
    Link = 6,
    /// `REG_MULTI_SZ`: NUL-terminated UTF-16LE strings, then one more NUL.
    MultiSz = 7,
    /// `REG_QWORD`: 8 bytes, little-endian.
    Qword = 11,
}

impl ValueType {
    /// Every type.
    pub const ALL: [ValueType; 9] = [
        ValueType::None,
        ValueType::Sz,
        ValueType::ExpandSz,
        ValueType::Binary,
        ValueType::Dword,
        ValueType::DwordBigEndian,
        ValueType::Link,
        ValueType::MultiSz,
        ValueType::Qword,
    ];

    /// The Windows number.
    pub fn value(self) -> u32 {
        self as u32
    }

    /// The type with this number, or 87.
    pub fn from_value(v: u32) -> Result<ValueType> {
        ValueType::ALL.into_iter().find(|t| t.value() == v).ok_or_else(|| {
            RegError::parameter(format!(
                "value type {v} is not one of REG_NONE 0, REG_SZ 1, REG_EXPAND_SZ 2, REG_BINARY \
                 3, REG_DWORD 4, REG_DWORD_BIG_ENDIAN 5, REG_LINK 6, REG_MULTI_SZ 7, REG_QWORD 11"
            ))
        })
    }

    /// `REG_SZ`, …
    pub fn name(self) -> &'static str {
        match self {
            ValueType::None => "REG_NONE",
            ValueType::Sz => "REG_SZ",
            ValueType::ExpandSz => "REG_EXPAND_SZ",
            ValueType::Binary => "REG_BINARY",
            ValueType::Dword => "REG_DWORD",
            ValueType::DwordBigEndian => "REG_DWORD_BIG_ENDIAN",
            ValueType::Link => "REG_LINK",
            ValueType::MultiSz => "REG_MULTI_SZ",
            ValueType::Qword => "REG_QWORD",
        }
    }

    /// The type named `REG_SZ` (or `SZ`, any case).
    pub fn from_name(s: &str) -> Option<ValueType> {
        let s = s.to_ascii_uppercase();
        let s = s.strip_prefix("REG_").unwrap_or(&s);
        ValueType::ALL.into_iter().find(|t| &t.name()[4..] == s)
    }

    /// Whether its data is text (the ANSI `.reg` format converts those).
    pub fn is_text(self) -> bool {
        matches!(self, ValueType::Sz | ValueType::ExpandSz | ValueType::MultiSz)
    }
}

/// A value: its type and its data, in the byte layout Windows keeps (strings UTF-16LE with
/// their terminating NUL).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RegValue {
    /// The type.
    pub ty: ValueType,
    /// The data.
    pub data: Vec<u8>,
}

fn utf16le(s: &str, nul: bool) -> Vec<u8> {
    let mut out: Vec<u8> = s.encode_utf16().flat_map(u16::to_le_bytes).collect();
    if nul {
        out.extend([0, 0]);
    }
    out
}

/// UTF-16LE bytes as text (`None` for an odd length or an unpaired surrogate).
pub fn from_utf16le(bytes: &[u8]) -> Option<String> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).ok()
}

impl RegValue {
    /// A value of type `ty` with `data`, checked: `REG_DWORD` and `REG_DWORD_BIG_ENDIAN` take
    /// 4 bytes, `REG_QWORD` 8, any at most [`MAX_VALUE_DATA`]; otherwise 87.
    pub fn new(ty: ValueType, data: Vec<u8>) -> Result<RegValue> {
        let want = match ty {
            ValueType::Dword | ValueType::DwordBigEndian => Some(4),
            ValueType::Qword => Some(8),
            _ => None,
        };
        if let Some(n) = want
            && data.len() != n
        {
            return Err(RegError::parameter(format!(
                "a {} value takes {n} bytes, not {}",
                ty.name(),
                data.len()
            )));
        }
        if data.len() > MAX_VALUE_DATA {
            return Err(RegError::parameter(format!(
                "value data of {} bytes is more than appipc keeps in one value ({MAX_VALUE_DATA} \
                 bytes); store large data in a file",
                data.len()
            )));
        }
        Ok(RegValue { ty, data })
    }

    /// `REG_SZ`.
    pub fn sz(s: &str) -> RegValue {
        RegValue { ty: ValueType::Sz, data: utf16le(s, true) }
    }

    /// `REG_EXPAND_SZ`.
    pub fn expand_sz(s: &str) -> RegValue {
        RegValue { ty: ValueType::ExpandSz, data: utf16le(s, true) }
    }

    /// `REG_LINK` (no terminating NUL, as Windows stores it).
    pub fn link(s: &str) -> RegValue {
        RegValue { ty: ValueType::Link, data: utf16le(s, false) }
    }

    /// `REG_MULTI_SZ`.
    pub fn multi_sz<S: AsRef<str>>(items: &[S]) -> RegValue {
        let mut data = Vec::new();
        for s in items {
            data.extend(utf16le(s.as_ref(), true));
        }
        data.extend([0, 0]);
        RegValue { ty: ValueType::MultiSz, data }
    }

    /// `REG_DWORD`.
    pub fn dword(v: u32) -> RegValue {
        RegValue { ty: ValueType::Dword, data: v.to_le_bytes().to_vec() }
    }

    /// `REG_DWORD_BIG_ENDIAN`.
    pub fn dword_big_endian(v: u32) -> RegValue {
        RegValue { ty: ValueType::DwordBigEndian, data: v.to_be_bytes().to_vec() }
    }

    /// `REG_QWORD`.
    pub fn qword(v: u64) -> RegValue {
        RegValue { ty: ValueType::Qword, data: v.to_le_bytes().to_vec() }
    }

    /// `REG_BINARY`.
    pub fn binary(data: &[u8]) -> RegValue {
        RegValue { ty: ValueType::Binary, data: data.to_vec() }
    }

    /// `REG_NONE` with no data.
    pub fn none() -> RegValue {
        RegValue { ty: ValueType::None, data: Vec::new() }
    }

    /// The text of a string type (`REG_SZ`, `REG_EXPAND_SZ`, `REG_LINK`), without its
    /// terminating NUL.
    pub fn as_str(&self) -> Option<String> {
        if !matches!(self.ty, ValueType::Sz | ValueType::ExpandSz | ValueType::Link) {
            return None;
        }
        let s = from_utf16le(&self.data)?;
        Some(s.strip_suffix('\0').map_or(s.clone(), str::to_owned))
    }

    /// The strings of a `REG_MULTI_SZ`.
    pub fn as_multi(&self) -> Option<Vec<String>> {
        if self.ty != ValueType::MultiSz {
            return None;
        }
        let s = from_utf16le(&self.data)?;
        let s = s.strip_suffix('\0').unwrap_or(&s);
        let s = s.strip_suffix('\0').unwrap_or(s);
        if s.is_empty() {
            return Some(Vec::new());
        }
        Some(s.split('\0').map(str::to_owned).collect())
    }

    /// The number of a `REG_DWORD`, `REG_DWORD_BIG_ENDIAN` or `REG_QWORD`.
    pub fn as_u64(&self) -> Option<u64> {
        match (self.ty, self.data.as_slice()) {
            (ValueType::Dword, [a, b, c, d]) => {
                Some(u64::from(u32::from_le_bytes([*a, *b, *c, *d])))
            }
            (ValueType::DwordBigEndian, [a, b, c, d]) => {
                Some(u64::from(u32::from_be_bytes([*a, *b, *c, *d])))
            }
            (ValueType::Qword, d) if d.len() == 8 => {
                Some(u64::from_le_bytes(d.try_into().expect("8 bytes")))
            }
            _ => None,
        }
    }

    /// The data as `reg query` shows it.
    pub fn display(&self) -> String {
        if let Some(s) = self.as_str() {
            return s;
        }
        if let Some(m) = self.as_multi() {
            return m.join("\\0");
        }
        if let Some(n) = self.as_u64() {
            return format!("{n:#x}");
        }
        self.data.iter().map(|b| format!("{b:02X}")).collect()
    }
}

/// Where a write lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The user's global hive (what unpackaged processes see).
    Global,
    /// The package's private hive (HKCU writes of its processes, copy-on-write).
    Private,
    /// The package's shipped keys (`Registry.reg`, read-only).
    Shipped,
}

impl Layer {
    /// In words (`appipc reg query --explain`).
    pub fn describe(self) -> &'static str {
        match self {
            Layer::Global => "global",
            Layer::Private => "package private hive",
            Layer::Shipped => "package Registry.reg (read-only)",
        }
    }
}

/// How a packaged process's writes are virtualized (from its manifest's `[virtualization]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Virtualized {
    /// HKCU writes go to the private hive (`registry-write-virtualization`; off only with
    /// `unvirtualizedResources` granted).
    pub hkcu_writes_private: bool,
    /// HKCU keys written directly (`excluded-keys`).
    pub excluded: Vec<KeyPath>,
    /// The process is in an app container (HKLM is read-only to it).
    pub confined: bool,
}

/// How much of the global hive a view shows at a key ([`global_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Sees {
    /// All of it: the key, its values and its subkeys (merged under the upper layer).
    All,
    /// The key and the names of those of its subkeys that lead to a key it sees, no values:
    /// a key on the way to a shared one (`HKCU`, `HKCU\Software`, the ancestors of an
    /// `excluded-keys` entry).
    Names,
    /// Nothing: the key is not in the view unless the upper layer has it.
    Nothing,
}

/// How much of the global hive a caller with `rules` (`None`: unpackaged) sees at `key`.
///
/// Windows lets an app container reach only what is granted to it (its own package's storage,
/// and what is ACL'd to `ALL APPLICATION PACKAGES`, which includes most of `HKLM\Software`
/// but not the keys other apps and the user keep in HKCU). appipc's rule: an app container
/// (`confined`) sees, of the global HKCU, only the keys its package writes there — those at
/// or under an `excluded-keys` entry, or all of HKCU when `registry-write-virtualization` is
/// off (both need `unvirtualizedResources` granted) — and the names on the way to them; its
/// HKCU is otherwise its package's private hive alone. `HKCU` and `HKCU\Software` always
/// exist for it, empty but for what leads to keys it sees. Everyone sees all of HKLM (the
/// package's shipped keys over it), and an unpackaged or full-trust process all of HKCU (a
/// packaged one under its private hive).
pub fn global_at(rules: Option<&Virtualized>, key: &KeyPath) -> Sees {
    let Some(r) = rules else { return Sees::All };
    if !r.confined || key.root_key() != Root::CurrentUser || !r.hkcu_writes_private {
        return Sees::All;
    }
    if r.excluded.iter().any(|e| key.is_at_or_under(e)) {
        return Sees::All;
    }
    let software = key.depth() == 1 && fold(key.name()) == "SOFTWARE";
    if key.depth() == 0 || software || r.excluded.iter().any(|e| e.is_at_or_under(key)) {
        Sees::Names
    } else {
        Sees::Nothing
    }
}

/// Where a write to `key` goes, for a packaged process with `rules` (`None`: unpackaged, the
/// global view); `shipped` says whether the package ships `key` (or the value's key). The
/// MSIX rules: HKCU writes go to the private hive unless virtualization is off or the key is
/// excluded; HKLM writes to keys the package ships are refused (5), others go to the global
/// hive for a full-trust process and are refused to an app container (5).
pub fn write_target(rules: Option<&Virtualized>, key: &KeyPath, shipped: bool) -> Result<Layer> {
    let Some(r) = rules else { return Ok(Layer::Global) };
    match key.root_key() {
        Root::CurrentUser => {
            if !r.hkcu_writes_private || r.excluded.iter().any(|e| key.is_at_or_under(e)) {
                Ok(Layer::Global)
            } else {
                Ok(Layer::Private)
            }
        }
        Root::LocalMachine if shipped => Err(RegError::denied(format!(
            "{} is part of the package's registry (Registry.reg), which is read-only",
            key.short()
        ))),
        Root::LocalMachine if r.confined => Err(RegError::denied(format!(
            "{}: an app container may not write HKEY_LOCAL_MACHINE",
            key.short()
        ))),
        Root::LocalMachine => Ok(Layer::Global),
    }
}

#[cfg(test)]
mod tests;
