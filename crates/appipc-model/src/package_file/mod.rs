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
mod fuzzing;
mod keys;
mod reader;
mod signature;
mod tar_stream;
mod trust;
mod writer;

#[cfg(test)]
mod tests;

pub use block_map::{BLOCK_MAP_HEADER, BlockMap, BlockMapEntry, FileMode};
pub use error::{EntryKind, KeyError, PackageFileError};
pub use fuzzing::{FUZZ_SIGNER, fuzz_read, fuzz_read_resigned};
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
