//! Hostile lengths fail fast, before any allocation they ask for.
//!
//! This test binary counts every heap allocation (the `cap` allocator), so it holds a
//! single `#[test]` to keep other tests' allocations out of the count.

use std::alloc::System;

use appipc_wire::valueset::{DecodeErrorKind, DecodeLimits, ValueSet};
use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Decodes `bytes` under an allocation cap of `budget` bytes more than what is allocated
/// now, and returns the result's error kind (the decode must fail).
fn decode_within(bytes: &[u8], budget: usize) -> DecodeErrorKind {
    let limits = DecodeLimits::default();
    let before = ALLOCATOR.allocated();
    // An allocation beyond the cap fails, which aborts this test binary.
    ALLOCATOR.set_limit(before + budget).expect("limit above current use");
    let result = ValueSet::from_cbor(bytes, &limits);
    ALLOCATOR.set_limit(usize::MAX).expect("no limit");
    match result {
        Ok(set) => {
            panic!("{:02x?}… decoded to a set of {} keys", &bytes[..bytes.len().min(16)], set.len())
        }
        Err(e) => e.kind().clone(),
    }
}

#[test]
fn claimed_lengths_never_drive_allocation() {
    const HUGE: u64 = 1 << 60;
    let exceeds = |remaining| DecodeErrorKind::LengthExceedsInput { claimed: HUGE, remaining };

    // A map of 2^60 entries: 9 bytes of head, nothing after.
    let map = [0xbb, 0x10, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(decode_within(&map, 1024), exceeds(0));

    // {"a": [<code>, <array of 2^60 elements>, 1 byte]} for every array kind but bytes.
    let mut array_kinds = 0;
    for code in 1026_u16..=1043 {
        if code == 1037 {
            continue; // InspectableArray is refused before its payload is read.
        }
        array_kinds += 1;
        let mut bytes = vec![0xa1, 0x61, b'a', 0x82, 0x19];
        bytes.extend(code.to_be_bytes());
        bytes.extend([0x9b, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x01]);
        assert_eq!(decode_within(&bytes, 1024), exceeds(1), "type code {code}");
    }
    assert_eq!(array_kinds, 17);

    // A byte string and a text string of 2^60 bytes.
    for bytes in [
        vec![0xa1, 0x61, b'a', 0x82, 0x19, 0x04, 0x01, 0x5b, 0x10, 0, 0, 0, 0, 0, 0, 0],
        vec![0xa1, 0x61, b'a', 0x82, 0x0c, 0x7b, 0x10, 0, 0, 0, 0, 0, 0, 0],
        vec![0xa1, 0x7b, 0x10, 0, 0, 0, 0, 0, 0, 0],
    ] {
        assert_eq!(decode_within(&bytes, 1024), exceeds(0));
    }

    // A 64 KiB input of a million-element claim with a small real body: the allocation
    // is bounded by the input (elements the remaining bytes can hold), not the claim.
    let mut bytes = vec![0xa1, 0x61, b'a', 0x82, 0x19, 0x04, 0x06, 0x9a];
    bytes.extend(1_000_000_u32.to_be_bytes());
    bytes.resize(64 * 1024, 0x00);
    let remaining = 64 * 1024 - 12;
    assert_eq!(
        decode_within(&bytes, 1024),
        DecodeErrorKind::LengthExceedsInput { claimed: 1_000_000, remaining }
    );
    // A claim of as many Int64s as there are bytes left passes that check, so the decoder
    // reserves that many (8 bytes each), then finds the input ends: each element here
    // takes 2 bytes (`18 18`, the integer 24).
    let mut bytes = vec![0xa1, 0x61, b'a', 0x82, 0x19, 0x04, 0x06, 0x9a];
    bytes.extend(u32::try_from(remaining).unwrap().to_be_bytes());
    bytes.resize(64 * 1024, 0x18);
    assert_eq!(decode_within(&bytes, 8 * remaining + 1024), DecodeErrorKind::UnexpectedEnd);
}
