//! The `.appipc` package file: a package folder as one signed tar archive, read without
//! trusting it.
//!
//! A package file is a tar archive (GNU or ustar headers, no compression) whose entries are,
//! in this order:
//!
//! 1. `appipc.blockmap`: every package file's SHA-256, mode and size, in a canonical text form
//!    ([`BlockMap`]; appipc's `AppxBlockMap.xml`);
//! 2. `appipc.signature`: the signer's public key and its ed25519 signature over the exact
//!    bytes of `appipc.blockmap` (appipc's `AppxSignature.p7x`);
//! 3. `appipc.toml`: the manifest, itself listed in the block map, so its bytes are signed;
//! 4. the other files the block map lists, each once, regular files only.
//!
//! `docs/packaging.md` specifies the format byte for byte. [`PackageWriter`] writes it
//! deterministically; [`open`] and [`SignedPackage::extract`] read it from any [`Read`] in one
//! pass, refusing links, devices, FIFOs, folders entries, `..`, absolute and duplicate names,
//! files missing from or added to the block map, size, mode and hash mismatches, and anything
//! beyond the [`Limits`]; no read is unbounded. Whether the signer may install the package is
//! [`authorize_signer`]'s rule, with the trust store passed in.
//!
//! ```
//! use appipc_model::package_file::{self, authorize_signer, FileMode, Limits, PackageWriter, SecretKey};
//! let key = SecretKey::from_seed("CN=Contoso", [1; 32]).unwrap();
//! let manifest = "[package]\nname = \"Contoso.Hello\"\npublisher = \"CN=Contoso\"\n\
//!     version = \"1.0.0.0\"\n\n[[application]]\nid = \"App\"\nexecutable = \"hello\"\n";
//! let mut w = PackageWriter::new(manifest);
//! w.add_bytes("hello".parse().unwrap(), FileMode::Executable, b"#!/bin/sh\n");
//! let mut file = Vec::new();
//! w.write(&key, &mut file).unwrap();
//!
//! let signed = package_file::open(file.as_slice(), &Limits::default()).unwrap();
//! let publisher = signed.manifest().unwrap().identity.publisher;
//! authorize_signer(signed.signer(), &publisher, [&key.public_key()]).unwrap();
//! signed.extract(|_entry, data| std::io::copy(data, &mut std::io::sink()).map(drop)).unwrap();
//! ```
//!
//! This module does no file-system I/O: the caller supplies the reader and the sink, and
//! `appipc-sys` has the primitives to write a sink's files beneath a staging directory.

mod block_map;
mod error;
mod keys;
mod reader;
mod signature;
mod tar_stream;
mod trust;
mod writer;

#[cfg(test)]
mod tests;

use std::io::Read;

pub use block_map::{BLOCK_MAP_HEADER, BlockMap, BlockMapEntry, FileMode};
pub use error::{EntryKind, KeyError, PackageFileError};
pub use keys::{
    KeyId, MAX_KEY_FILE_SIZE, PUBLIC_KEY_FORMAT, PublicKey, SECRET_KEY_FORMAT, SecretKey,
};
pub use reader::{SignedPackage, VerifiedPackage, open, read_package};
pub use signature::SIGNATURE_FORMAT;
pub use trust::{authorize_publisher, authorize_signer};
pub use writer::PackageWriter;

/// The file name extension of package files.
pub const EXTENSION: &str = "appipc";
/// The first entry: the block map.
pub const BLOCK_MAP_FILE: &str = "appipc.blockmap";
/// The second entry: the signature.
pub const SIGNATURE_FILE: &str = "appipc.signature";
/// The largest manifest a package may have (1 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 1024 * 1024;

/// Bounds on what a package file may hold; reading refuses anything beyond them before reading
/// it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most files, the manifest included (default 100 000).
    pub max_files: u64,
    /// Most bytes all files may add up to (default 8 GiB).
    pub max_total_size: u64,
    /// Largest block map in bytes (default 32 MiB: 100 000 lines of ~330 bytes).
    pub max_block_map_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 100_000,
            max_total_size: 8 * 1024 * 1024 * 1024,
            max_block_map_size: 32 * 1024 * 1024,
        }
    }
}

/// The limits of the fuzz targets: small enough that no input can make a read long.
const FUZZ_LIMITS: Limits =
    Limits { max_files: 1000, max_total_size: 16 * 1024 * 1024, max_block_map_size: 1 << 20 };

/// The publisher of [`fuzz_read_resigned`]'s key.
pub const FUZZ_SIGNER: &str = "CN=appipc fuzzing";

/// Reads `bytes` as a package file with [`FUZZ_LIMITS`] and a sink that discards what it gets,
/// checking that every entry reader gives exactly its entry's bytes and that an accepted
/// package sent every listed file to the sink.
fn fuzz_read_package(bytes: &[u8]) -> Result<VerifiedPackage, PackageFileError> {
    let mut sunk = 0usize;
    let result = read_package(bytes, &FUZZ_LIMITS, |entry, data| {
        sunk += 1;
        let n = std::io::copy(&mut data.take(entry.size + 1), &mut std::io::sink())?;
        assert_eq!(n, entry.size, "an entry reader gives exactly the entry's bytes");
        Ok(())
    });
    if let Ok(verified) = &result {
        assert_eq!(sunk, verified.block_map.len(), "every listed file went to the sink");
    }
    result
}

/// A fuzz target: reads `bytes` as a package file with small limits and a sink that discards
/// what it gets. It must never panic, whatever the bytes; a successful read must have checked
/// every file. Also feeds the bytes to the block map and key file parsers.
pub fn fuzz_read(bytes: &[u8]) {
    let _ = fuzz_read_package(bytes);
    if let Ok(map) = BlockMap::parse(bytes, &FUZZ_LIMITS) {
        assert_eq!(map.to_bytes(), bytes, "the block map has one spelling");
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(k) = PublicKey::from_file_text(text) {
            assert_eq!(PublicKey::from_file_text(&k.to_file_text()).ok(), Some(k));
        }
        let _ = SecretKey::from_file_text(text);
    }
}

/// `bytes` with its signature entry replaced by a valid signature of its block map entry's
/// bytes, made with a fixed key of [`FUZZ_SIGNER`]; `None` unless `bytes` begin with a block
/// map entry (within [`FUZZ_LIMITS`]) and a signature entry, both complete.
///
/// Signatures are kept (at most 4096, by the block map's SHA-256): most mutations leave the
/// block map as it was, and signing is the costliest step of a run.
fn resign(bytes: &[u8]) -> Option<Vec<u8>> {
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    static SIGNED: Mutex<Option<HashMap<[u8; 32], Vec<u8>>>> = Mutex::new(None);

    let mut stream = tar_stream::TarStream::new(bytes);
    let first = stream.next_entry().ok()??;
    if first.name != BLOCK_MAP_FILE.as_bytes() || first.size > FUZZ_LIMITS.max_block_map_size {
        return None;
    }
    let block_map = stream.read_data_to_vec().ok()?;
    // The signature entry (with any long-name entry before it) starts after the padding.
    let start = usize::try_from(stream.offset() + tar_stream::padding_of(first.size)).ok()?;
    let second = stream.next_entry().ok()??;
    if second.name != SIGNATURE_FILE.as_bytes() {
        return None;
    }
    let end = stream
        .offset()
        .checked_add(second.size)?
        .checked_add(tar_stream::padding_of(second.size))
        .and_then(|end| usize::try_from(end).ok())
        .filter(|&end| end <= bytes.len())?;

    let digest: [u8; 32] = Sha256::digest(&block_map).into();
    let mut signed = SIGNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let signed = signed.get_or_insert_with(HashMap::new);
    if signed.len() >= 4096 {
        signed.clear();
    }
    let entry = signed.entry(digest).or_insert_with(|| {
        let key = KEY.get_or_init(|| SecretKey::from_seed(FUZZ_SIGNER, [0x5a; 32]).expect("valid"));
        let signature = signature::PackageSignature::sign(key, &block_map).to_bytes();
        writer::entry_bytes(SIGNATURE_FILE, 0o644, &signature).expect("a short name")
    });
    Some([&bytes[..start], entry.as_slice(), &bytes[end..]].concat())
}

/// A fuzz target for what the signature guards: `bytes` are read as a package file after
/// their signature entry is replaced by a valid signature of their block map (a fixed key of
/// [`FUZZ_SIGNER`]), so that mutations of the block map, the manifest entry and the files
/// after it reach the checks behind the signature, which a mutated input with its original
/// signature never passes. The same checks as [`fuzz_read`]'s package read; an accepted
/// package's manifest is parsed and its publisher checked against the signer
/// ([`authorize_signer`]).
///
/// Returns whether the re-signed package was accepted; `None` if `bytes` do not begin with a
/// block map entry and a signature entry (nothing is read then).
pub fn fuzz_read_resigned(bytes: &[u8]) -> Option<bool> {
    let resigned = resign(bytes)?;
    let Ok(verified) = fuzz_read_package(&resigned) else { return Some(false) };
    assert_eq!(verified.signer.publisher().as_str(), FUZZ_SIGNER);
    if let Ok(manifest) = std::str::from_utf8(&verified.manifest).map(crate::manifest::parse)
        && let Ok(manifest) = manifest
    {
        let _ =
            authorize_signer(&verified.signer, &manifest.identity.publisher, [&verified.signer]);
    }
    Some(true)
}
