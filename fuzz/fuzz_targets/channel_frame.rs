//! App-service connection frames (`appipc_wire::app_service::ChannelFrame::from_cbor`): what
//! one app reads from its peer on a connection the broker set up, the message `ValueSet`
//! inline included.
//!
//! Property: what decodes re-encodes to bytes that decode and re-encode to the same bytes
//! (compared as bytes, so NaN payloads in the message compare bitwise).
#![no_main]

use appipc_wire::app_service::ChannelFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = ChannelFrame::from_cbor(data) else { return };
    let bytes = frame.to_cbor();
    let again = ChannelFrame::from_cbor(&bytes).expect("a frame's own encoding decodes");
    assert_eq!(again.to_cbor(), bytes, "encoding is stable");
    assert_eq!(
        (again.id, again.kind, again.status, again.memfd_len),
        (frame.id, frame.kind, frame.status, frame.memfd_len)
    );
});
