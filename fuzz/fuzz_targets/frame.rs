//! Broker session frames (`appipc_wire::frame::Frame::from_cbor`): what the broker reads from
//! every client socket message, and the SDK from the broker. Decodes every request, reply and
//! event kind of every mechanism (the `mechanism!` tables).
//!
//! Property: whatever decodes re-encodes (`to_cbor`) to bytes no longer than the input, which
//! decode to an equal frame (NaNs aside) and re-encode to the same bytes; a decoded request's
//! name, mechanism and fd count are defined.
#![no_main]

use appipc_wire::frame::{Frame, MAX_FRAME_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::from_cbor(data) else { return };
    if let Some(r) = &frame.request {
        let _ = (r.name(), r.mechanism());
        assert!(r.fds() <= 3, "{} declares {} fds", r.name(), r.fds());
    }
    if let Some(e) = &frame.event {
        let _ = e.name();
    }
    let bytes = frame.to_cbor();
    assert!(bytes.len() <= data.len(), "re-encoding grew: {} > {} bytes", bytes.len(), data.len());
    assert!(bytes.len() <= MAX_FRAME_LEN);
    let again = Frame::from_cbor(&bytes).expect("a frame's own encoding decodes");
    // Equal, except that a NaN in a ValueSet (launcher requests carry ValueSets) is never equal
    // to itself: then the encodings, compared below, say it.
    assert!(again == frame || format!("{frame:?}").contains("NaN"), "{again:?} != {frame:?}");
    assert_eq!(again.to_cbor(), bytes, "encoding is stable");
});
