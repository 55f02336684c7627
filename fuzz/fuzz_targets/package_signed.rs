//! The `.appipc` package file reader behind the signature, as the broker's install reads a
//! package file (`appipc_model::package_file::fuzz_read_resigned`): the input is a package file
//! whose signature entry the target replaces by a valid signature of its block map (a fixed
//! key), so that mutated block maps, manifest entries and files reach the checks a mutated
//! input never passes with its original signature: the block map's parser as the reader runs
//! it, the manifest's size, mode and hash, the manifest against the block map's files
//! (`manifest::parse_with_files` with `BlockMap::lookup`), every file's header against its
//! block map entry, long-name entries, missing, extra and duplicate files, the end of the
//! archive.
//!
//! Properties: those of `package_file` (no unbounded read, an accepted archive sent every
//! listed file to the sink with exactly its size); an accepted package's signer is the fixed
//! key; a manifest valid with its files parses alone to the same manifest. (That re-signing
//! changes only the signature is a unit test:
//! `package_file::tests::resigning_replaces_only_the_signature_entry`.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = appipc_model::package_file::fuzz_read_resigned(data);
});
