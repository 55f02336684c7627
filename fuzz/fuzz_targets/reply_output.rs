//! The success output of every request (`Reply::Ok(raw)` decoded as the request's
//! `Call::Output`, as the SDK's `Session::call` does), through
//! `appipc_wire::protocol::reencode_output`. The first two bytes pick the mechanism and the
//! request, modulo one more than there are mechanisms and than the largest mechanism has
//! requests (so one number past the known ones is an unknown kind); the rest is the output.
//!
//! Property: what decodes re-encodes to bytes no longer than the input that decode and
//! re-encode to themselves.
#![no_main]

use appipc_wire::protocol::{MECHANISMS, reencode_output};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mechanism, call, output @ ..] = data else { return };
    let calls = MECHANISMS.iter().map(|(_, m)| m.requests.len()).max().unwrap_or(0) + 1;
    let mechanism = u32::from(*mechanism) % (MECHANISMS.len() as u32 + 1);
    let call = u32::from(*call) % calls as u32;
    let Some(Some(bytes)) = reencode_output(mechanism, call, output) else { return };
    assert!(bytes.len() <= output.len(), "re-encoding grew: {} > {}", bytes.len(), output.len());
    let again = reencode_output(mechanism, call, &bytes)
        .expect("the request is known")
        .expect("an output's own encoding decodes");
    assert_eq!(again, bytes, "encoding is stable");
});
