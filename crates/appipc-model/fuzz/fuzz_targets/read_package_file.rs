//! Feeds arbitrary bytes to the package file reader (`appipc_model::package_file::fuzz_read`):
//! it must never panic, never read or allocate without a bound, and accept only archives
//! whose every file matched the signed block map. Start from `seeds/read_package_file`
//! (a valid signed package) so that mutations reach past the signature check:
//!
//! ```sh
//! cargo +nightly fuzz run read_package_file seeds/read_package_file
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    appipc_model::package_file::fuzz_read(data);
});
