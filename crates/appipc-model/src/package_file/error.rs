//! Why a package file, a key file or a signer was refused.

use std::io;

use crate::identity::IdentityError;
use crate::manifest::{MANIFEST_FILE, ManifestError};

use super::keys::KeyId;

/// What kind of archive entry a package file may not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// Type `2`.
    Symlink,
    /// Type `1`.
    HardLink,
    /// Type `3`.
    CharDevice,
    /// Type `4`.
    BlockDevice,
    /// Type `5`: folders are implied by the files' paths.
    Directory,
    /// Type `6`.
    Fifo,
    /// Type `7`.
    Contiguous,
    /// Types `x` and `g`.
    PaxHeader,
    /// Type `K` (the target of a long link).
    GnuLongLink,
    /// Type `S`.
    Sparse,
    /// Any other type byte.
    Other(u8),
}

impl EntryKind {
    pub(super) fn from_type_byte(b: u8) -> EntryKind {
        match b {
            b'1' => EntryKind::HardLink,
            b'2' => EntryKind::Symlink,
            b'3' => EntryKind::CharDevice,
            b'4' => EntryKind::BlockDevice,
            b'5' => EntryKind::Directory,
            b'6' => EntryKind::Fifo,
            b'7' => EntryKind::Contiguous,
            b'x' | b'g' => EntryKind::PaxHeader,
            b'K' => EntryKind::GnuLongLink,
            b'S' => EntryKind::Sparse,
            other => EntryKind::Other(other),
        }
    }
}

impl std::fmt::Display for EntryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryKind::Symlink => f.write_str("a symbolic link"),
            EntryKind::HardLink => f.write_str("a hard link"),
            EntryKind::CharDevice => f.write_str("a character device"),
            EntryKind::BlockDevice => f.write_str("a block device"),
            EntryKind::Directory => f.write_str("a folder entry"),
            EntryKind::Fifo => f.write_str("a FIFO"),
            EntryKind::Contiguous => f.write_str("a contiguous file"),
            EntryKind::PaxHeader => f.write_str("a PAX extended header"),
            EntryKind::GnuLongLink => f.write_str("a GNU long link name"),
            EntryKind::Sparse => f.write_str("a sparse file"),
            EntryKind::Other(b) if b.is_ascii_graphic() => {
                write!(f, "an entry of unknown type '{}'", char::from(*b))
            }
            EntryKind::Other(b) => write!(f, "an entry of unknown type 0x{b:02x}"),
        }
    }
}

/// Why a key file (public or secret) was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Not TOML, or TOML with missing or unknown keys.
    #[error("not an appipc {what} file: {message}")]
    Syntax {
        /// `public key`, `secret key` or `signature`.
        what: &'static str,
        /// The TOML parser's description.
        message: String,
    },
    /// The `format` line names another kind of file or version.
    #[error("format {found:?}: expected {expected:?}")]
    Format {
        /// What the file says.
        found: String,
        /// What this kind of file must say.
        expected: &'static str,
    },
    /// The publisher is not a valid distinguished name.
    #[error("publisher: {0}")]
    Publisher(#[from] IdentityError),
    /// A field is not base64 of the right length.
    #[error("{field}: {reason}")]
    Encoding {
        /// The field (`key`, `binding`, `secret`, `signature`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The 32 bytes are not a usable ed25519 public key (not a curve point, or a weak key).
    #[error("key: not a valid ed25519 public key")]
    InvalidKey,
    /// The public key's self-signature does not verify: the publisher or the key was changed
    /// after the key pair made it.
    #[error(
        "binding: the key's signature over its publisher does not verify (the publisher or the \
         key was altered)"
    )]
    BadBinding,
    /// The operating system could not give random bytes for a new key.
    #[error("no random bytes for a new key: {0}")]
    Random(String),
}

/// Why a package file was refused, or could not be written.
///
/// Every variant names the file, the entry or the strings it is about, so a refusal can be
/// shown to the user as it is.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackageFileError {
    /// Reading the package file failed.
    #[error("reading the package file: {0}")]
    Read(#[source] io::Error),
    /// Writing the package file failed.
    #[error("writing the package file: {0}")]
    Write(#[source] io::Error),
    /// The file ends in the middle of an entry or before the end-of-archive marker.
    #[error("the package file is truncated at byte {offset}")]
    Truncated {
        /// Where the data stopped.
        offset: u64,
    },
    /// A 512-byte tar header is not valid.
    #[error("not a valid tar archive: header at byte {offset}: {reason}")]
    BadHeader {
        /// Where the header starts.
        offset: u64,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Data after the end-of-archive marker, or non-zero padding.
    #[error("not a valid tar archive: {reason} at byte {offset}")]
    BadArchive {
        /// Where the problem is.
        offset: u64,
        /// What it is.
        reason: &'static str,
    },
    /// The first entry is not the block map: this is not a package file.
    #[error(
        "not an appipc package file: the first entry must be appipc.blockmap, found {}",
        found.as_deref().unwrap_or("no entry")
    )]
    MissingBlockMap {
        /// The first entry's name, if there is one.
        found: Option<String>,
    },
    /// The second entry is not the signature.
    #[error(
        "the package file is unsigned: the second entry must be appipc.signature, found {}",
        found.as_deref().unwrap_or("no entry")
    )]
    Unsigned {
        /// The second entry's name, if there is one.
        found: Option<String>,
    },
    /// The signature entry is not a valid signature file.
    #[error("appipc.signature: {0}")]
    BadSignatureFile(#[source] KeyError),
    /// The signature does not verify over the block map with the key it names.
    #[error(
        "bad signature: appipc.signature does not verify with key {key_id} ({publisher}); the \
         block map was changed after signing or signed with another key"
    )]
    BadSignature {
        /// The id of the key the signature names.
        key_id: KeyId,
        /// The publisher that key speaks for.
        publisher: String,
    },
    /// The block map is not in its canonical form.
    #[error("appipc.blockmap: line {line}: {reason}")]
    BadBlockMap {
        /// 1-based line number (0: the block map as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The block map does not list the manifest.
    #[error("the block map does not list {MANIFEST_FILE}")]
    ManifestMissing,
    /// The third entry is not the manifest.
    #[error("the third entry must be {MANIFEST_FILE}, found {}", found.as_deref().unwrap_or("no entry"))]
    ManifestNotThird {
        /// The third entry's name, if there is one.
        found: Option<String>,
    },
    /// The manifest is larger than [`MAX_MANIFEST_SIZE`](super::MAX_MANIFEST_SIZE).
    #[error("{MANIFEST_FILE} is {size} bytes; at most {limit} are allowed")]
    ManifestTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The manifest is not UTF-8.
    #[error("{MANIFEST_FILE} is not UTF-8 (from byte {offset})")]
    ManifestNotUtf8 {
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// The manifest is not valid .
    #[error("{0}")]
    InvalidManifest(#[source] ManifestError),
    /// The block map or signature entry is larger than its limit.
    #[error("{file} is {size} bytes; at most {limit} are allowed")]
    MetadataTooLarge {
        /// `appipc.blockmap`, `appipc.signature` or `a long name`.
        file: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// More files than [`Limits::max_files`](super::Limits::max_files).
    #[error("the package has more than {limit} files")]
    TooManyFiles {
        /// The limit.
        limit: u64,
    },
    /// Files adding up to more than [`Limits::max_total_size`](super::Limits::max_total_size).
    #[error("the package's files add up to more than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// An entry that is not a regular file.
    #[error("{path} is {kind}; a package file holds only regular files")]
    ForbiddenEntry {
        /// The entry's name as written (lossy UTF-8).
        path: String,
        /// What it is.
        kind: EntryKind,
    },
    /// An entry name that is not a package path: absolute, with `..`, `.` or empty
    /// components, a backslash, control characters, not UTF-8.
    #[error("entry name {path:?}: {reason}")]
    BadPath {
        /// The name as written (lossy UTF-8).
        path: String,
        /// The rule it breaks.
        reason: String,
    },
    /// A package file named like one of the package file's own entries.
    #[error("{path} is a reserved name: the package file's own entries use it")]
    ReservedName {
        /// The name.
        path: String,
    },
    /// The same name twice in the archive.
    #[error("{path} appears twice in the archive")]
    DuplicateEntry {
        /// The name.
        path: String,
    },
    /// A file in the archive that the block map does not list.
    #[error("{path} is in the archive but not in the block map (added after signing)")]
    NotInBlockMap {
        /// The name.
        path: String,
    },
    /// A file the block map lists that the archive does not hold.
    #[error("{path} is in the block map but missing from the archive")]
    MissingFromArchive {
        /// The name.
        path: String,
    },
    /// An entry's size differs from the block map's.
    #[error("{path} is {archive} bytes in the archive but {block_map} in the block map")]
    SizeMismatch {
        /// The name.
        path: String,
        /// Size in the block map.
        block_map: u64,
        /// Size in the tar header.
        archive: u64,
    },
    /// An entry's mode differs from the block map's.
    #[error("{path} has mode {archive:o} in the archive but {block_map:o} in the block map")]
    ModeMismatch {
        /// The name.
        path: String,
        /// Mode in the block map.
        block_map: u32,
        /// Mode in the tar header.
        archive: u32,
    },
    /// An entry's content does not hash to the block map's SHA-256.
    #[error("{path}: hash mismatch: its content is not what the block map signed")]
    HashMismatch {
        /// The name.
        path: String,
    },
    /// The sink the caller gave failed on an entry.
    #[error("extracting {path}: {source}")]
    Sink {
        /// The entry being extracted.
        path: String,
        /// The sink's error.
        source: io::Error,
    },
    /// Writing: a file source gave other bytes the second time it was read.
    #[error("{path} changed while it was being packed")]
    SourceChanged {
        /// The file.
        path: String,
    },
    /// Writing: a file source could not be read.
    #[error("reading {path}: {source}")]
    Source {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// The signing key speaks for another publisher than the manifest names.
    #[error(
        "publisher mismatch: the package is signed by a key for {key_publisher:?} but its \
         manifest names {manifest_publisher:?} (they must be equal, character for character)"
    )]
    PublisherMismatch {
        /// The key's publisher.
        key_publisher: String,
        /// The manifest's `Identity@Publisher`.
        manifest_publisher: String,
    },
    /// The signing key is not in the user's trust store for its publisher.
    #[error(
        "untrusted key: the package is signed by key {key_id} for {publisher:?}, which is not \
         in the trust store for that publisher"
    )]
    UntrustedKey {
        /// The key's id.
        key_id: KeyId,
        /// The publisher it speaks for.
        publisher: String,
    },
}
