//! The `.reg` text format of Windows' Registry Editor: reading version 5 files ("Windows
//! Registry Editor Version 5.00", UTF-16LE with a BOM, or UTF-8) and `REGEDIT4` files (ANSI:
//! read as UTF-8, or Latin-1 when not UTF-8), and writing version 5.
//!
//! ```text
//! Windows Registry Editor Version 5.00
//!
//! [HKEY_CURRENT_USER\Software\Contoso]
//! @="default value"
//! "Name"="a \"quoted\" C:\\path"
//! "Count"=dword:0000002a
//! "Blob"=hex:de,ad,be,ef
//! "Path"=hex(2):25,00,41,00,00,00
//! "List"=hex(7):61,00,00,00,00,00
//! "Big"=hex(b):01,00,00,00,00,00,00,00
//! "Gone"=-
//!
//! [-HKEY_CURRENT_USER\Software\Old]
//! ```
//!
//! `[key]` creates the key and its ancestors, `[-key]` deletes it with its subtree, `"v"=-`
//! deletes a value, `@` is the default value; `hex(N):` is data of type N (hex digits), a
//! line ending in `\` continues on the next. In a `REGEDIT4` file the data of `hex(1)`,
//! `hex(2)` and `hex(7)` is 8-bit text and is converted to UTF-16 as Registry Editor's ANSI
//! import does. Unlike Registry Editor, which skips what it cannot read, the reader refuses a
//! malformed file with the line and the problem.

use super::{
    KeyPath, MAX_VALUE_DATA, RegValue, ValueType, check_value_name, from_utf16le, shorten,
};

/// The version 5 header.
pub const HEADER_V5: &str = "Windows Registry Editor Version 5.00";
/// The version 4 (ANSI) header.
pub const HEADER_V4: &str = "REGEDIT4";

/// Which header a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegVersion {
    /// "Windows Registry Editor Version 5.00".
    V5,
    /// `REGEDIT4`.
    Regedit4,
}

/// One section of a `.reg` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegEntry {
    /// `[key]` and its value lines: `Some` sets, `None` (`"v"=-`) deletes.
    Key {
        /// The key.
        path: KeyPath,
        /// Values in file order.
        values: Vec<(String, Option<RegValue>)>,
    },
    /// `[-key]`: the key and its subtree are deleted.
    DeleteKey(KeyPath),
}

/// A parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegFile {
    /// Its header.
    pub version: RegVersion,
    /// Its sections in order.
    pub entries: Vec<RegEntry>,
}

/// Why a file was refused: the line (1-based, of the line a continued line starts on) and
/// the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct RegFileError {
    /// The line.
    pub line: usize,
    /// What is wrong.
    pub problem: String,
}

fn err(line: usize, problem: impl Into<String>) -> RegFileError {
    RegFileError { line, problem: problem.into() }
}

/// The file's bytes as text: UTF-16LE after an `FF FE` BOM, UTF-16BE after `FE FF`, UTF-8
/// (a BOM skipped), else Latin-1.
fn decode(bytes: &[u8]) -> Result<String, RegFileError> {
    let utf16 = |rest: &[u8], le: bool| -> Result<String, RegFileError> {
        if !rest.len().is_multiple_of(2) {
            return Err(err(1, "UTF-16 text of an odd number of bytes"));
        }
        let units = rest.chunks_exact(2).map(|c| {
            if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) }
        });
        char::decode_utf16(units)
            .collect::<Result<String, _>>()
            .map_err(|_| err(1, "UTF-16 text with an unpaired surrogate"))
    };
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16(rest, true);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
        return utf16(rest, false);
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    Ok(match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    })
}

/// Lines joined where one ends in `\`, each with the number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let (start, mut acc) = match open.take() {
            Some((n, acc)) => (n, acc + line.trim_start()),
            None => (i + 1, line.to_owned()),
        };
        let head = acc.trim_start();
        if acc.trim_end().ends_with('\\') && !head.starts_with('[') && !head.starts_with(';') {
            let keep = acc.trim_end().len() - 1;
            acc.truncate(keep);
            open = Some((start, acc));
        } else {
            out.push((start, acc));
        }
    }
    if let Some(o) = open {
        out.push(o);
    }
    out
}

/// Reads a `.reg` file.
pub fn parse(bytes: &[u8]) -> Result<RegFile, RegFileError> {
    let text = decode(bytes)?;
    let mut lines = logical_lines(&text).into_iter().filter(|(_, l)| !l.trim().is_empty());
    let version = match lines.next() {
        Some((_, l)) if l.trim() == HEADER_V5 => RegVersion::V5,
        Some((_, l)) if l.trim() == HEADER_V4 => RegVersion::Regedit4,
        Some((n, _)) => {
            return Err(err(
                n,
                format!("not a .reg file: the first line must be {HEADER_V5:?} or {HEADER_V4:?}"),
            ));
        }
        None => return Err(err(1, "empty file")),
    };
    let mut entries: Vec<RegEntry> = Vec::new();
    for (n, line) in lines {
        let t = line.trim();
        if t.starts_with(';') {
            continue;
        }
        if let Some(inner) = t.strip_prefix('[') {
            let inner =
                inner.strip_suffix(']').ok_or_else(|| err(n, "a key line must end with ']'"))?;
            let (delete, path) = match inner.strip_prefix('-') {
                Some(p) => (true, p),
                None => (false, inner),
            };
            let path = KeyPath::parse(path).map_err(|e| err(n, e.message))?;
            entries.push(if delete {
                RegEntry::DeleteKey(path)
            } else {
                RegEntry::Key { path, values: Vec::new() }
            });
            continue;
        }
        let (name, value) = value_line(t, version).map_err(|p| err(n, p))?;
        match entries.last_mut() {
            Some(RegEntry::Key { values, .. }) => values.push((name, value)),
            Some(RegEntry::DeleteKey(_)) => {
                return Err(err(n, "a value line after [-key]: that key is being deleted"));
            }
            None => return Err(err(n, "a value line before any [key]")),
        }
    }
    Ok(RegFile { version, entries })
}

/// A quoted string at the start of `s` (after its `"`), with `\\` and `\"` unescaped, and the
/// rest after the closing quote.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('\\' | '"'))) => out.push(e),
                Some((_, e)) => return Err(format!("unknown escape \\{e} in a string")),
                None => return Err("a string ends in a lone backslash".to_owned()),
            },
            c => out.push(c),
        }
    }
    Err("a string is not closed with '\"'".to_owned())
}

fn value_line(t: &str, version: RegVersion) -> Result<(String, Option<RegValue>), String> {
    let (name, rest) = if let Some(r) = t.strip_prefix('@') {
        (String::new(), r)
    } else if let Some(r) = t.strip_prefix('"') {
        quoted(r)?
    } else {
        return Err(format!(
            "expected [key], \"name\"=value, @=value or a ; comment, not {:?}",
            shorten(t)
        ));
    };
    check_value_name(&name).map_err(|e| e.message)?;
    let data = rest
        .trim_start()
        .strip_prefix('=')
        .ok_or_else(|| "expected '=' after the value name".to_owned())?
        .trim();
    if data == "-" {
        return Ok((name, None));
    }
    Ok((name, Some(value_data(data, version)?)))
}

fn value_data(data: &str, version: RegVersion) -> Result<RegValue, String> {
    if let Some(r) = data.strip_prefix('"') {
        let (s, rest) = quoted(r)?;
        if !rest.trim().is_empty() {
            return Err(format!("text after a string value: {:?}", shorten(rest)));
        }
        return Ok(RegValue::sz(&s));
    }
    let lower = data.to_ascii_lowercase();
    if let Some(hex) = lower.strip_prefix("dword:") {
        let hex = hex.trim();
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("dword: takes 1 to 8 hex digits, not {:?}", shorten(hex)));
        }
        let v = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
        return Ok(RegValue::dword(v));
    }
    let (ty, bytes) = if let Some(b) = lower.strip_prefix("hex:") {
        (ValueType::Binary, b)
    } else if let Some(r) = lower.strip_prefix("hex(") {
        let (n, b) = r.split_once("):").ok_or_else(|| "hex(N): expected".to_owned())?;
        if n.is_empty() || n.len() > 8 || !n.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("hex({n}): the type is 1 to 8 hex digits"));
        }
        let v = u32::from_str_radix(n, 16).map_err(|e| e.to_string())?;
        (ValueType::from_value(v).map_err(|e| e.message)?, b)
    } else {
        return Err(format!(
            "value data must be \"string\", dword:, hex: or hex(N):, not {:?}",
            shorten(data)
        ));
    };
    let mut out = Vec::new();
    let bytes = bytes.trim();
    if !bytes.is_empty() {
        for tok in bytes.split(',') {
            let tok = tok.trim();
            if tok.is_empty() || tok.len() > 2 || !tok.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("{:?} is not a hex byte", shorten(tok)));
            }
            out.push(u8::from_str_radix(tok, 16).map_err(|e| e.to_string())?);
            if out.len() > MAX_VALUE_DATA {
                return Err(format!("value data is longer than {MAX_VALUE_DATA} bytes"));
            }
        }
    }
    if version == RegVersion::Regedit4 && ty.is_text() {
        // ANSI text, as RegSetValueExA converts it.
        let text: String = match std::str::from_utf8(&out) {
            Ok(s) => s.to_owned(),
            Err(_) => out.iter().map(|&b| char::from(b)).collect(),
        };
        out = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    }
    RegValue::new(ty, out).map_err(|e| e.message)
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The text of a `REG_SZ` written as `"…"`: UTF-16 with exactly one NUL, at the end, and no
/// control character (anything else is written as `hex(1):`, so it reads back the same).
fn plain_string(v: &RegValue) -> Option<String> {
    let s = from_utf16le(&v.data)?;
    let s = s.strip_suffix('\0')?;
    (!s.chars().any(char::is_control)).then(|| s.to_owned())
}

/// Appends `prefix` and the bytes as comma-separated hex, wrapped as Registry Editor wraps
/// (a line stays within 80 columns; continued with `,\` and two spaces).
fn hex_line(out: &mut String, start: usize, prefix: &str, data: &[u8]) {
    out.push_str(prefix);
    let mut col = start + prefix.len();
    for (i, b) in data.iter().enumerate() {
        if i > 0 {
            if col + 3 > 77 {
                out.push_str(",\\\r\n  ");
                col = 2;
            } else {
                out.push(',');
                col += 1;
            }
        }
        out.push_str(&format!("{b:02x}"));
        col += 2;
    }
}

/// One value line (without its line end).
pub fn value_line_text(name: &str, v: &RegValue) -> String {
    let mut out = if name.is_empty() { "@=".to_owned() } else { format!("\"{}\"=", escape(name)) };
    let start = out.chars().count();
    match v.ty {
        ValueType::Sz if plain_string(v).is_some() => {
            out.push_str(&format!("\"{}\"", escape(&plain_string(v).unwrap_or_default())));
        }
        ValueType::Dword if v.data.len() == 4 => {
            let n = u32::from_le_bytes([v.data[0], v.data[1], v.data[2], v.data[3]]);
            out.push_str(&format!("dword:{n:08x}"));
        }
        ValueType::Binary => hex_line(&mut out, start, "hex:", &v.data),
        ty => hex_line(&mut out, start, &format!("hex({:x}):", ty.value()), &v.data),
    }
    out
}

/// Writes entries as a version 5 `.reg` text (CRLF line ends, as Registry Editor writes).
/// [`to_utf16le`] gives the bytes Registry Editor would write.
pub fn write(entries: &[RegEntry]) -> String {
    let mut out = String::new();
    out.push_str(HEADER_V5);
    out.push_str("\r\n");
    for e in entries {
        out.push_str("\r\n");
        match e {
            RegEntry::DeleteKey(p) => out.push_str(&format!("[-{p}]\r\n")),
            RegEntry::Key { path, values } => {
                out.push_str(&format!("[{path}]\r\n"));
                for (name, v) in values {
                    match v {
                        Some(v) => out.push_str(&value_line_text(name, v)),
                        None if name.is_empty() => out.push_str("@=-"),
                        None => out.push_str(&format!("\"{}\"=-", escape(name))),
                    }
                    out.push_str("\r\n");
                }
            }
        }
    }
    out
}

/// Text as UTF-16LE with a BOM (the encoding of Registry Editor's version 5 export).
pub fn to_utf16le(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    out
}
