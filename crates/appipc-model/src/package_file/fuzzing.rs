//! Entry points of the fuzz targets `package_file` and `package_signed` (`fuzz/`,
//! docs/reliability.md): the reader on any bytes, and the reader behind the signature.

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Mutex, OnceLock, PoisonError};

use sha2::{Digest, Sha256};

use crate::manifest;

use super::reader::{SignedPackage, VerifiedPackage, open};
use super::signature::PackageSignature;
use super::tar_stream::{TarStream, padding_of};
use super::{
    BLOCK_MAP_FILE, BlockMap, Limits, PackageFileError, PublicKey, SIGNATURE_FILE, SecretKey,
    authorize_signer, writer,
};

/// The limits of the fuzz targets: small enough that no input can make a read long.
const FUZZ_LIMITS: Limits =
    Limits { max_files: 1000, max_total_size: 16 * 1024 * 1024, max_block_map_size: 1 << 20 };

/// The publisher of [`fuzz_read_resigned`]'s key.
pub const FUZZ_SIGNER: &str = "CN=appipc fuzzing";

/// Extracts `signed` into a sink that discards what it gets, checking that every entry reader
/// gives exactly its entry's bytes and that an accepted package sent every listed file to the
/// sink.
fn extract_checked<R: Read>(signed: SignedPackage<R>) -> Result<VerifiedPackage, PackageFileError> {
    let mut sunk = 0usize;
    let result = signed.extract(|entry, data| {
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
    if let Ok(signed) = open(bytes, &FUZZ_LIMITS) {
        let _ = extract_checked(signed);
    }
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
pub(super) fn resign(bytes: &[u8]) -> Option<Vec<u8>> {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    static SIGNED: Mutex<Option<HashMap<[u8; 32], Vec<u8>>>> = Mutex::new(None);

    let mut stream = TarStream::new(bytes);
    let first = stream.next_entry().ok()??;
    if first.name != BLOCK_MAP_FILE.as_bytes() || first.size > FUZZ_LIMITS.max_block_map_size {
        return None;
    }
    let block_map = stream.read_data_to_vec().ok()?;
    // The signature entry (with any long-name entry before it) starts after the padding.
    let start = usize::try_from(stream.offset() + padding_of(first.size)).ok()?;
    let second = stream.next_entry().ok()??;
    if second.name != SIGNATURE_FILE.as_bytes() {
        return None;
    }
    let end = stream
        .offset()
        .checked_add(second.size)?
        .checked_add(padding_of(second.size))
        .and_then(|end| usize::try_from(end).ok())
        .filter(|&end| end <= bytes.len())?;

    let digest: [u8; 32] = Sha256::digest(&block_map).into();
    let mut signed = SIGNED.lock().unwrap_or_else(PoisonError::into_inner);
    let signed = signed.get_or_insert_with(HashMap::new);
    if signed.len() >= 4096 {
        signed.clear();
    }
    let entry = signed.entry(digest).or_insert_with(|| {
        let key = KEY.get_or_init(|| SecretKey::from_seed(FUZZ_SIGNER, [0x5a; 32]).expect("valid"));
        let signature = PackageSignature::sign(key, &block_map).to_bytes();
        writer::entry_bytes(SIGNATURE_FILE, 0o644, &signature).expect("a short name")
    });
    Some([&bytes[..start], entry.as_slice(), &bytes[end..]].concat())
}

/// A fuzz target for what the signature guards: `bytes` are read as a package file after
/// their signature entry is replaced by a valid signature of their block map (a fixed key of
/// [`FUZZ_SIGNER`]), so that mutations of the block map, the manifest entry and the files
/// after it reach the checks behind the signature, which a mutated input with its original
/// signature never passes. The re-signed file is read as the broker's install reads one:
/// [`open`], the manifest checked against the block map's files
/// ([`manifest::parse_with_files`] with [`BlockMap::lookup`]), then every file extracted (to a
/// sink, with [`fuzz_read`]'s checks). A manifest that passes with its files parses alone to
/// the same manifest, and its publisher is checked against the signer ([`authorize_signer`]).
///
/// Returns whether the broker would install the re-signed package (the manifest and every
/// file accepted); `None` if `bytes` do not begin with a block map entry and a signature
/// entry (nothing is read then).
pub fn fuzz_read_resigned(bytes: &[u8]) -> Option<bool> {
    let resigned = resign(bytes)?;
    let Ok(signed) = open(resigned.as_slice(), &FUZZ_LIMITS) else { return Some(false) };
    assert_eq!(signed.signer().publisher().as_str(), FUZZ_SIGNER);
    let manifest_ok = std::str::from_utf8(signed.manifest_bytes()).is_ok_and(|text| {
        let map = signed.block_map();
        let Ok(with_files) = manifest::parse_with_files(text, &|p| map.lookup(p)) else {
            return false;
        };
        let alone = manifest::parse(text).expect("a manifest valid with its files is valid");
        assert_eq!(alone, with_files);
        let _ =
            authorize_signer(signed.signer(), &with_files.identity.publisher, [signed.signer()]);
        true
    });
    let extracted = extract_checked(signed).is_ok();
    Some(manifest_ok && extracted)
}
