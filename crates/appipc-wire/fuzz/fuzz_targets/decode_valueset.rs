//! Feeds arbitrary bytes to the `ValueSet` decoder.
//!
//! Checks, beyond "never panics, never aborts on allocation":
//! * the top-level decoder and the embedded (`minicbor::Decode`) one agree;
//! * whatever decodes re-encodes to exactly `encoded_len()` bytes, which decode again to
//!   the same set (compared through its deterministic encoding, so NaNs compare bitwise).
#![no_main]

use appipc_wire::valueset::{DecodeErrorKind, DecodeLimits, PropertyValue, ValueSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits::default();
    let top = ValueSet::from_cbor(data, &limits);

    let mut d = minicbor::Decoder::new(data);
    let embedded = d.decode::<ValueSet>();
    match (&top, &embedded) {
        (Ok(a), Ok(b)) => {
            assert_eq!(d.position(), data.len());
            assert_eq!(a.to_cbor(), b.to_cbor());
        }
        (Ok(_), Err(e)) => panic!("from_cbor accepted what Decode refused: {e}"),
        (Err(e), Ok(_)) => assert!(
            matches!(
                e.kind(),
                DecodeErrorKind::TrailingBytes { .. } | DecodeErrorKind::InputTooLarge { .. }
            ),
            "Decode accepted what from_cbor refused: {e}"
        ),
        (Err(a), Err(b)) => {
            // The embedded error carries the same offset.
            assert_eq!(Some(a.offset()), b.position(), "{a} / {b}");
        }
    }

    if let Ok(set) = top {
        let bytes = set.to_cbor();
        assert_eq!(bytes.len(), set.encoded_len());
        let again = ValueSet::from_cbor(&bytes, &limits).expect("own encoding decodes");
        assert_eq!(again.to_cbor(), bytes);
        assert!(set.depth() <= limits.max_depth);
    }

    // A lone value, as other messages embed it.
    let mut d = minicbor::Decoder::new(data);
    if let Ok(value) = d.decode::<PropertyValue>() {
        let bytes = minicbor::to_vec(&value).expect("encode to vec");
        assert_eq!(bytes.len(), minicbor::len(&value));
        let back: PropertyValue = minicbor::decode(&bytes).expect("own encoding decodes");
        assert_eq!(minicbor::to_vec(&back).expect("encode to vec"), bytes);
    }
});
