//! The `ValueSet` decoder (`ValueSet::from_cbor`, and `minicbor::Decode` for `ValueSet` and
//! `PropertyValue` as frames embed them): app-service messages, sent by any app.
//!
//! Checks, beyond "never panics, never aborts on allocation":
//! * the top-level decoder and the embedded (`minicbor::Decode`) one agree;
//! * whatever decodes re-encodes to exactly `encoded_len()` bytes, which decode again to
//!   the same set (compared through its deterministic encoding, so NaNs compare bitwise);
//! * the limits hold: with a depth limit of 1 to 4 (picked by the last input byte) a set
//!   decodes only if it is that shallow and then equals the set the default limits give, and
//!   an input longer than `max_bytes` is refused.
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

    if let Ok(set) = &top {
        let bytes = set.to_cbor();
        assert_eq!(bytes.len(), set.encoded_len());
        let again = ValueSet::from_cbor(&bytes, &limits).expect("own encoding decodes");
        assert_eq!(again.to_cbor(), bytes);
        assert!(set.depth() <= limits.max_depth);
    }

    if let Some(&last) = data.last() {
        let max_depth = usize::from(last % 4) + 1;
        let small = DecodeLimits::new(max_depth, data.len().max(1) - usize::from(last & 0x80 != 0));
        match ValueSet::from_cbor(data, &small) {
            Ok(set) => {
                assert!(set.depth() <= max_depth);
                assert!(data.len() <= small.max_bytes);
                let full = top.as_ref().expect("what small limits accept, the default ones do");
                assert_eq!(set.to_cbor(), full.to_cbor());
            }
            Err(e) => {
                if data.len() > small.max_bytes {
                    assert!(matches!(e.kind(), DecodeErrorKind::InputTooLarge { .. }), "{e}");
                }
            }
        }
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
