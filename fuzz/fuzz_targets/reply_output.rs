//! The success output of every request (`Reply::Ok(raw)` decoded as the request's
//! `Call::Output`, as the SDK's `Session::call` does), through
//! `appipc_wire::protocol::reencode_output`. The first two bytes pick the mechanism and the
//! request (a few numbers past the known ones are unknown kinds); the rest is the output.
//!
//! Property: what decodes re-encodes to bytes no longer than the input that decode and
//! re-encode to themselves.
#![no_main]

use appipc_wire::protocol::reencode_output;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [mechanism, call, output @ ..] = data else { return };
    let (mechanism, call) = (u32::from(mechanism % 10), u32::from(call % 8));
    let Some(Some(bytes)) = reencode_output(mechanism, call, output) else { return };
    assert!(bytes.len() <= output.len(), "re-encoding grew: {} > {}", bytes.len(), output.len());
    let again = reencode_output(mechanism, call, &bytes)
        .expect("the request is known")
        .expect("an output's own encoding decodes");
    assert_eq!(again, bytes, "encoding is stable");
});
