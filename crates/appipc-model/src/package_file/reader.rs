//! Reading and verifying a package file, streaming, in two steps: [`open`] reads and checks the
//! block map, the signature and the manifest; [`SignedPackage::extract`] streams the files.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use crate::manifest::{self, MANIFEST_FILE, Manifest, PackagePath};

use super::block_map::{BlockMap, BlockMapEntry};
use super::error::PackageFileError;
use super::keys::{MAX_KEY_FILE_SIZE, PublicKey};
use super::signature::PackageSignature;
use super::tar_stream::{RawEntry, TarStream};
use super::{BLOCK_MAP_FILE, Limits, SIGNATURE_FILE};

/// A package file whose block map, signature and manifest have been read and checked, and
/// whose other files have not been read yet.
///
/// The signature verifies with [`signer`](Self::signer); whether that key is trusted for the
/// manifest's publisher is the caller's decision ([`authorize_signer`](super::authorize_signer)).
#[derive(Debug)]
pub struct SignedPackage<R> {
    signer: PublicKey,
    block_map: BlockMap,
    manifest: Vec<u8>,
    stream: TarStream<R>,
}

/// A package file read to its end: every file matched its block map entry.
#[derive(Debug, Clone)]
pub struct VerifiedPackage {
    /// The key the signature verifies with.
    pub signer: PublicKey,
    /// The signed block map.
    pub block_map: BlockMap,
    /// The manifest's bytes (also given to the sink as `appipc.toml`).
    pub manifest: Vec<u8>,
}

/// Reads the first three entries of a package file from `source`: the block map, the
/// signature (which must verify over the block map's exact bytes with the key it carries) and
/// the manifest (which must match its block map entry). Nothing is read beyond the manifest.
///
/// `source` is read in order, once, without seeking; every read is bounded by `limits`.
pub fn open<R: Read>(source: R, limits: &Limits) -> Result<SignedPackage<R>, PackageFileError> {
    let mut stream = TarStream::new(source);

    let first = stream.next_entry()?;
    let block_map_bytes = match first {
        Some(e) if e.name == BLOCK_MAP_FILE.as_bytes() => {
            check_metadata_size(BLOCK_MAP_FILE, &e, limits.max_block_map_size)?;
            stream.read_data_to_vec()?
        }
        other => {
            return Err(PackageFileError::MissingBlockMap { found: other.map(|e| e.lossy_name()) });
        }
    };

    let second = stream.next_entry()?;
    let signature = match second {
        Some(e) if e.name == SIGNATURE_FILE.as_bytes() => {
            check_metadata_size(SIGNATURE_FILE, &e, MAX_KEY_FILE_SIZE)?;
            let bytes = stream.read_data_to_vec()?;
            PackageSignature::parse(&bytes).map_err(PackageFileError::BadSignatureFile)?
        }
        other => {
            return Err(PackageFileError::Unsigned { found: other.map(|e| e.lossy_name()) });
        }
    };
    if !signature.verifies(&block_map_bytes) {
        return Err(PackageFileError::BadSignature {
            key_id: signature.signer.id(),
            publisher: signature.signer.publisher().as_str().to_owned(),
        });
    }
    // Signed is not trusted: the block map is parsed as strictly as any other input.
    let block_map = BlockMap::parse(&block_map_bytes, limits)?;
    drop(block_map_bytes);

    let third = stream.next_entry()?;
    let manifest = match third {
        Some(e) if e.name == MANIFEST_FILE.as_bytes() => {
            let expected = block_map.manifest();
            check_entry(expected, &e)?;
            let bytes = stream.read_data_to_vec()?;
            if <[u8; 32]>::from(Sha256::digest(&bytes)) != expected.sha256 {
                return Err(PackageFileError::HashMismatch { path: MANIFEST_FILE.to_owned() });
            }
            bytes
        }
        other => {
            return Err(PackageFileError::ManifestNotThird {
                found: other.map(|e| e.lossy_name()),
            });
        }
    };

    Ok(SignedPackage { signer: signature.signer, block_map, manifest, stream })
}

/// [`open`], then [`SignedPackage::extract`].
pub fn read_package<R, F>(
    source: R,
    limits: &Limits,
    sink: F,
) -> Result<VerifiedPackage, PackageFileError>
where
    R: Read,
    F: FnMut(&BlockMapEntry, &mut dyn Read) -> io::Result<()>,
{
    open(source, limits)?.extract(sink)
}

fn check_metadata_size(
    file: &'static str,
    e: &RawEntry,
    limit: u64,
) -> Result<(), PackageFileError> {
    if e.size > limit {
        return Err(PackageFileError::MetadataTooLarge { file, size: e.size, limit });
    }
    Ok(())
}

/// The header's size and mode against the block map's.
fn check_entry(expected: &BlockMapEntry, e: &RawEntry) -> Result<(), PackageFileError> {
    let path = || expected.path.as_str().to_owned();
    if e.size != expected.size {
        return Err(PackageFileError::SizeMismatch {
            path: path(),
            block_map: expected.size,
            archive: e.size,
        });
    }
    if super::block_map::mode_from_bits(e.mode) != Some(expected.mode) {
        return Err(PackageFileError::ModeMismatch {
            path: path(),
            block_map: expected.mode.bits(),
            archive: e.mode,
        });
    }
    Ok(())
}

impl<R: Read> SignedPackage<R> {
    /// The key the signature verifies with.
    pub fn signer(&self) -> &PublicKey {
        &self.signer
    }

    /// The signed block map.
    pub fn block_map(&self) -> &BlockMap {
        &self.block_map
    }

    /// The manifest's bytes, as signed.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest
    }

    /// The manifest, parsed and validated ([`manifest::parse`]).
    pub fn manifest(&self) -> Result<Manifest, PackageFileError> {
        let text = std::str::from_utf8(&self.manifest)
            .map_err(|e| PackageFileError::ManifestNotUtf8 { offset: e.valid_up_to() })?;
        manifest::parse(text).map_err(PackageFileError::InvalidManifest)
    }

    /// Streams every file to `sink`, the manifest first, then the others in archive order;
    /// checks each against its block map entry and the archive against the whole block map.
    ///
    /// `sink` gets the entry (path, mode, size, expected hash) and a reader of exactly its
    /// bytes. It may stop reading early; the rest is read and hashed anyway. The hash is
    /// compared once the sink returns, so **a sink receives bytes before they are known to be
    /// good**: write them to a private staging place and discard all of it unless this returns
    /// `Ok`.
    pub fn extract<F>(mut self, mut sink: F) -> Result<VerifiedPackage, PackageFileError>
    where
        F: FnMut(&BlockMapEntry, &mut dyn Read) -> io::Result<()>,
    {
        let mut seen = vec![false; self.block_map.len()];
        let manifest_at = self.block_map.position(MANIFEST_FILE).expect("checked by BlockMap");
        seen[manifest_at] = true;
        sink(self.block_map.manifest(), &mut self.manifest.as_slice())
            .map_err(|source| PackageFileError::Sink { path: MANIFEST_FILE.to_owned(), source })?;

        while let Some(raw) = self.stream.next_entry()? {
            let name = std::str::from_utf8(&raw.name).map_err(|_| PackageFileError::BadPath {
                path: raw.lossy_name(),
                reason: "not UTF-8".into(),
            })?;
            if name == BLOCK_MAP_FILE || name == SIGNATURE_FILE || name == MANIFEST_FILE {
                return Err(PackageFileError::DuplicateEntry { path: name.to_owned() });
            }
            let path: PackagePath = name.parse().map_err(|e: manifest::NameError| {
                PackageFileError::BadPath { path: name.to_owned(), reason: e.rule }
            })?;
            let Some(i) = self.block_map.position(path.as_str()) else {
                return Err(PackageFileError::NotInBlockMap { path: name.to_owned() });
            };
            if seen[i] {
                return Err(PackageFileError::DuplicateEntry { path: name.to_owned() });
            }
            seen[i] = true;
            let expected = &self.block_map.entries()[i];
            check_entry(expected, &raw)?;

            let mut reader =
                EntryReader { stream: &mut self.stream, hasher: Sha256::new(), error: None };
            let sunk = sink(expected, &mut reader);
            if let Some(e) = reader.error.take() {
                return Err(e);
            }
            sunk.map_err(|source| PackageFileError::Sink { path: name.to_owned(), source })?;
            // Whatever the sink left unread still counts.
            let mut buf = [0u8; 8192];
            while reader.read_counted(&mut buf)? != 0 {}
            if <[u8; 32]>::from(reader.hasher.finalize()) != expected.sha256 {
                return Err(PackageFileError::HashMismatch { path: name.to_owned() });
            }
        }

        if let Some(i) = seen.iter().position(|s| !s) {
            return Err(PackageFileError::MissingFromArchive {
                path: self.block_map.entries()[i].path.as_str().to_owned(),
            });
        }
        Ok(VerifiedPackage {
            signer: self.signer,
            block_map: self.block_map,
            manifest: self.manifest,
        })
    }
}

/// The sink's view of one entry: exactly its bytes, hashed as they pass.
struct EntryReader<'a, R> {
    stream: &'a mut TarStream<R>,
    hasher: Sha256,
    /// A failure of the package file itself (as opposed to the sink's), kept so that it is
    /// reported as such even if the sink turns it into its own error.
    error: Option<PackageFileError>,
}

impl<R: Read> EntryReader<'_, R> {
    fn read_counted(&mut self, buf: &mut [u8]) -> Result<usize, PackageFileError> {
        let n = self.stream.read_data(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> Read for EntryReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Err(io::Error::other("the package file failed earlier"));
        }
        self.read_counted(buf).map_err(|e| {
            let message = e.to_string();
            self.error = Some(e);
            io::Error::other(message)
        })
    }
}
