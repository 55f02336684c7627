//! The block map: one line per package file with its SHA-256, mode and size, in a canonical
//! text form that the signature covers byte for byte (appipc's `AppxBlockMap.xml`).
//!
//! ```text
//! appipc-block-map 1
//! <sha256: 64 lower-case hex> <mode: 644 or 755> <size: decimal> <path>
//! …
//! ```
//!
//! Every line ends with `\n`; lines are sorted by the paths' UTF-8 bytes, each path once; the
//! manifest `appipc.toml` is one of them. Decoding is strict (no other spelling of the same
//! map is accepted), so the signed bytes have exactly one meaning.

use std::collections::HashSet;

use data_encoding::HEXLOWER;
use sha2::{Digest, Sha256};

use crate::manifest::{MANIFEST_FILE, PackageEntry, PackagePath};

use super::error::PackageFileError;
use super::{BLOCK_MAP_FILE, Limits, MAX_MANIFEST_SIZE, SIGNATURE_FILE};

/// The first line of a block map.
pub const BLOCK_MAP_HEADER: &str = "appipc-block-map 1";

/// A package file's mode: the only two a package file records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileMode {
    /// `644`: readable.
    Regular,
    /// `755`: readable and executable.
    Executable,
}

impl FileMode {
    /// `Executable` when any execute bit of a Unix mode is set, else `Regular`.
    pub fn from_unix(mode: u32) -> FileMode {
        if mode & 0o111 != 0 { FileMode::Executable } else { FileMode::Regular }
    }

    /// `0o644` or `0o755`.
    pub fn bits(self) -> u32 {
        match self {
            FileMode::Regular => 0o644,
            FileMode::Executable => 0o755,
        }
    }

    /// Whether the file is executable.
    pub fn is_executable(self) -> bool {
        self == FileMode::Executable
    }

    fn from_bits(bits: u32) -> Option<FileMode> {
        match bits {
            0o644 => Some(FileMode::Regular),
            0o755 => Some(FileMode::Executable),
            _ => None,
        }
    }

    fn as_text(self) -> &'static str {
        match self {
            FileMode::Regular => "644",
            FileMode::Executable => "755",
        }
    }
}

/// One file of the block map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMapEntry {
    /// Where the file goes, relative to the package root.
    pub path: PackagePath,
    /// Its mode.
    pub mode: FileMode,
    /// Its size in bytes.
    pub size: u64,
    /// SHA-256 of its content.
    pub sha256: [u8; 32],
}

impl BlockMapEntry {
    /// The entry for `content` at `path`.
    pub fn of(path: PackagePath, mode: FileMode, content: &[u8]) -> BlockMapEntry {
        BlockMapEntry {
            path,
            mode,
            size: content.len() as u64,
            sha256: Sha256::digest(content).into(),
        }
    }
}

/// The validated block map: sorted, each path once, the manifest among them, no path both a
/// file and a folder, within the [`Limits`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockMap {
    entries: Vec<BlockMapEntry>,
    total_size: u64,
}

fn bad(line: usize, reason: impl Into<String>) -> PackageFileError {
    PackageFileError::BadBlockMap { line, reason: reason.into() }
}

impl BlockMap {
    /// Sorts and checks `entries`. Errors name the offending path; `line` in them is 0.
    pub fn new(
        mut entries: Vec<BlockMapEntry>,
        limits: &Limits,
    ) -> Result<BlockMap, PackageFileError> {
        if entries.len() as u64 > limits.max_files {
            return Err(PackageFileError::TooManyFiles { limit: limits.max_files });
        }
        entries.sort_by(|a, b| a.path.as_str().as_bytes().cmp(b.path.as_str().as_bytes()));
        for w in entries.windows(2) {
            if w[0].path == w[1].path {
                return Err(bad(0, format!("{} is listed twice", w[0].path)));
            }
        }
        BlockMap::check(entries, limits, |_| 0)
    }

    /// The checks shared by [`BlockMap::new`] and [`BlockMap::parse`], on sorted, unique
    /// entries. `line_of` gives the line an entry index came from, for messages.
    fn check(
        entries: Vec<BlockMapEntry>,
        limits: &Limits,
        line_of: impl Fn(usize) -> usize,
    ) -> Result<BlockMap, PackageFileError> {
        let mut total: u64 = 0;
        let mut folders: HashSet<&str> = HashSet::new();
        for e in &entries {
            total = total
                .checked_add(e.size)
                .filter(|t| *t <= limits.max_total_size)
                .ok_or(PackageFileError::TooLarge { limit: limits.max_total_size })?;
            let p = e.path.as_str();
            if p == BLOCK_MAP_FILE || p == SIGNATURE_FILE {
                return Err(PackageFileError::ReservedName { path: p.to_owned() });
            }
            for (i, _) in p.match_indices('/') {
                folders.insert(&p[..i]);
            }
        }
        for (i, e) in entries.iter().enumerate() {
            if folders.contains(e.path.as_str()) {
                return Err(bad(
                    line_of(i),
                    format!("{} is both a file and a folder of other files", e.path),
                ));
            }
        }
        let manifest = entries
            .binary_search_by(|e| e.path.as_str().as_bytes().cmp(MANIFEST_FILE.as_bytes()))
            .map_err(|_| PackageFileError::ManifestMissing)?;
        let size = entries[manifest].size;
        if size > MAX_MANIFEST_SIZE {
            return Err(PackageFileError::ManifestTooLarge { size, limit: MAX_MANIFEST_SIZE });
        }
        Ok(BlockMap { entries, total_size: total })
    }

    /// Decodes the canonical form (strictly; see the module documentation), within `limits`.
    pub fn parse(bytes: &[u8], limits: &Limits) -> Result<BlockMap, PackageFileError> {
        if bytes.len() as u64 > limits.max_block_map_size {
            return Err(PackageFileError::MetadataTooLarge {
                file: BLOCK_MAP_FILE,
                size: bytes.len() as u64,
                limit: limits.max_block_map_size,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            bad(line, "not UTF-8")
        })?;
        let Some(body) = text.strip_suffix('\n') else {
            return Err(bad(text.lines().count().max(1), "the last line does not end with \\n"));
        };
        let mut lines = body.split('\n');
        if lines.next() != Some(BLOCK_MAP_HEADER) {
            return Err(bad(1, format!("must be {BLOCK_MAP_HEADER:?}")));
        }
        let mut entries: Vec<BlockMapEntry> = Vec::new();
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            if entries.len() as u64 >= limits.max_files {
                return Err(PackageFileError::TooManyFiles { limit: limits.max_files });
            }
            let e = parse_line(line).map_err(|r| bad(n, r))?;
            if let Some(prev) = entries.last() {
                match prev.path.as_str().as_bytes().cmp(e.path.as_str().as_bytes()) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => {
                        return Err(bad(n, format!("{} is listed twice", e.path)));
                    }
                    std::cmp::Ordering::Greater => {
                        return Err(bad(n, format!("{} is out of order (sort by bytes)", e.path)));
                    }
                }
            }
            entries.push(e);
        }
        let map = BlockMap::check(entries, limits, |i| i + 2)?;
        // The rules above admit exactly one spelling; this guards them.
        if map.to_bytes() != bytes {
            return Err(bad(0, "not in canonical form"));
        }
        Ok(map)
    }

    /// The canonical bytes: what the signature signs.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(20 + self.entries.len() * 100);
        out.push_str(BLOCK_MAP_HEADER);
        out.push('\n');
        for e in &self.entries {
            out.push_str(&HEXLOWER.encode(&e.sha256));
            out.push(' ');
            out.push_str(e.mode.as_text());
            out.push(' ');
            out.push_str(&e.size.to_string());
            out.push(' ');
            out.push_str(e.path.as_str());
            out.push('\n');
        }
        out.into_bytes()
    }

    /// SHA-256 of the canonical bytes: identifies the package's exact content.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_bytes()).into()
    }

    /// The entries, sorted by path bytes.
    pub fn entries(&self) -> &[BlockMapEntry] {
        &self.entries
    }

    /// The number of files, the manifest included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: a block map lists at least the manifest.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sum of the files' sizes.
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// The position of `path` in [`entries`](Self::entries).
    pub fn position(&self, path: &str) -> Option<usize> {
        self.entries.binary_search_by(|e| e.path.as_str().as_bytes().cmp(path.as_bytes())).ok()
    }

    /// The entry for `path`.
    pub fn get(&self, path: &str) -> Option<&BlockMapEntry> {
        self.position(path).map(|i| &self.entries[i])
    }

    /// The manifest's entry.
    pub fn manifest(&self) -> &BlockMapEntry {
        self.get(MANIFEST_FILE).expect("checked when the block map was made")
    }

    /// What the package holds at `path`: a file (executable or not), a folder of other files,
    /// or nothing; for checking the files a manifest names
    /// ([`manifest::parse_with_files`](crate::manifest::parse_with_files)).
    pub fn lookup(&self, path: &str) -> Option<PackageEntry> {
        if let Some(e) = self.get(path) {
            return Some(PackageEntry::File { executable: e.mode.is_executable() });
        }
        let folder = format!("{path}/");
        let at = self.entries.partition_point(|e| e.path.as_str().as_bytes() < folder.as_bytes());
        self.entries
            .get(at)
            .filter(|e| e.path.as_str().starts_with(&folder))
            .map(|_| PackageEntry::Folder)
    }
}

fn parse_line(line: &str) -> Result<BlockMapEntry, String> {
    let mut parts = line.splitn(4, ' ');
    let (Some(hash), Some(mode), Some(size), Some(path)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("expected \"<sha256> <mode> <size> <path>\"".into());
    };
    let sha256: [u8; 32] = (hash.len() == 64)
        .then(|| HEXLOWER.decode(hash.as_bytes()).ok())
        .flatten()
        .and_then(|v| v.try_into().ok())
        .ok_or("the hash must be 64 lower-case hex digits")?;
    let mode = match mode {
        "644" => FileMode::Regular,
        "755" => FileMode::Executable,
        _ => return Err(format!("mode {mode:?}: must be 644 or 755")),
    };
    let canonical_number = !size.is_empty()
        && size.len() <= 20
        && size.bytes().all(|b| b.is_ascii_digit())
        && (size == "0" || !size.starts_with('0'));
    let size: u64 = canonical_number
        .then(|| size.parse().ok())
        .flatten()
        .ok_or_else(|| format!("size {size:?}: must be a decimal number without leading zeros"))?;
    let path: PackagePath = path.parse().map_err(|e: crate::manifest::NameError| e.to_string())?;
    Ok(BlockMapEntry { path, mode, size, sha256 })
}

pub(super) fn mode_from_bits(bits: u32) -> Option<FileMode> {
    FileMode::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, content: &[u8]) -> BlockMapEntry {
        BlockMapEntry::of(path.parse().unwrap(), FileMode::Regular, content)
    }

    fn sample() -> BlockMap {
        BlockMap::new(
            vec![
                entry("bin/app", b"\x7fELF"),
                entry(MANIFEST_FILE, b"[package]\n"),
                BlockMapEntry::of("a b/c".parse().unwrap(), FileMode::Executable, b""),
            ],
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn canonical_text() {
        let text = String::from_utf8(sample().to_bytes()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "appipc-block-map 1");
        assert_eq!(
            lines[1],
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 755 0 a b/c"
        );
        assert!(lines[2].ends_with(" 644 10 appipc.toml"), "{}", lines[2]);
        assert!(lines[3].ends_with(" 644 4 bin/app"), "{}", lines[3]);
        assert_eq!(BlockMap::parse(text.as_bytes(), &Limits::default()).unwrap(), sample());
    }

    #[test]
    fn other_spellings_are_refused() {
        let text = String::from_utf8(sample().to_bytes()).unwrap();
        let hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let cases: Vec<(String, &str)> = vec![
            (text.replace(hash, &hash.to_uppercase()), "hash"),
            (text.replace(" 755 0 ", " 755 00 "), "leading zeros"),
            (text.replace(" 755 0 ", " 755 +0 "), "leading zeros"),
            (text.replace(" 755 0 ", " 775 0 "), "must be 644 or 755"),
            (text.replace(" 755 0 ", " 755  0 "), "size"),
            (text.replace("appipc-block-map 1", "appipc-block-map 2"), "line 1"),
            (text.trim_end().to_owned(), "does not end"),
            (text.replace('\n', "\r\n"), "line 1"),
            (text.replace("a b/c", "../c"), "package path"),
            (text.replace("a b/c", "/c"), "package path"),
            (text.replace("a b/c", "zz"), "out of order"),
            (format!("{text}{}", text.lines().nth(3).unwrap().to_owned() + "\n"), "twice"),
            (text.replace("a b/c", "appipc.signature"), "reserved"),
            (text.replace("appipc.toml", "appipc.tom"), "does not list appipc.toml"),
        ];
        for (bad, want) in cases {
            let err = BlockMap::parse(bad.as_bytes(), &Limits::default()).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} lacks {want:?}\n{bad}");
        }
    }

    #[test]
    fn limits_are_checked() {
        let bytes = sample().to_bytes();
        let tight = Limits { max_files: 2, ..Limits::default() };
        assert!(matches!(
            BlockMap::parse(&bytes, &tight),
            Err(PackageFileError::TooManyFiles { limit: 2 })
        ));
        let tight = Limits { max_total_size: 7, ..Limits::default() };
        assert!(matches!(
            BlockMap::parse(&bytes, &tight),
            Err(PackageFileError::TooLarge { limit: 7 })
        ));
        let tight = Limits { max_block_map_size: 10, ..Limits::default() };
        assert!(matches!(
            BlockMap::parse(&bytes, &tight),
            Err(PackageFileError::MetadataTooLarge { .. })
        ));
        let huge = BlockMapEntry { size: MAX_MANIFEST_SIZE + 1, ..entry(MANIFEST_FILE, b"") };
        assert!(matches!(
            BlockMap::new(vec![huge], &Limits::default()),
            Err(PackageFileError::ManifestTooLarge { .. })
        ));
        let clash = vec![entry("bin", b""), entry("bin/app", b""), entry(MANIFEST_FILE, b"")];
        let err = BlockMap::new(clash, &Limits::default()).unwrap_err().to_string();
        assert!(err.contains("bin is both a file and a folder"), "{err}");
        // A size that would overflow a u64 sum is caught by the total, not wrapped.
        let a = BlockMapEntry { size: u64::MAX, ..entry("a", b"") };
        let b = BlockMapEntry { size: u64::MAX, ..entry("b", b"") };
        let limits = Limits { max_total_size: u64::MAX, ..Limits::default() };
        assert!(matches!(
            BlockMap::new(vec![a, b, entry(MANIFEST_FILE, b"")], &limits),
            Err(PackageFileError::TooLarge { .. })
        ));
    }

    #[test]
    fn lookup_tells_files_folders_and_nothing_apart() {
        let mut exe = entry("bin/app", b"#!");
        exe.mode = FileMode::Executable;
        let map = BlockMap::new(
            vec![exe, entry("bin-data", b"x"), entry(MANIFEST_FILE, b"")],
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(map.lookup("bin/app"), Some(PackageEntry::File { executable: true }));
        assert_eq!(map.lookup("bin-data"), Some(PackageEntry::File { executable: false }));
        assert_eq!(map.lookup("bin"), Some(PackageEntry::Folder));
        assert_eq!(map.lookup("bi"), None);
        assert_eq!(map.lookup("bin/app/x"), None);
        assert_eq!(map.lookup("bin/ap"), None);
    }
}
