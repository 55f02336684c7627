//! The `.appipc` package file reader (`appipc_model::package_file::fuzz_read`): the tar
//! stream, the block map, the signature, the manifest inside, and the key file parsers. It must
//! never panic, never read or allocate without a bound, and accept only archives whose every
//! file matched the signed block map; a block map that parses has one spelling, a public key
//! file round-trips. The corpus starts from a valid signed package, so that mutations reach
//! past the signature check.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    appipc_model::package_file::fuzz_read(data);
});
