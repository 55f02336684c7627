//! Hostile lengths fail fast, before any allocation they ask for.
//!
//! This test binary counts every heap allocation (the `cap` allocator), so it holds a
//! single `#[test]` to keep other tests' allocations out of the count.
//! It also pins the memory a decoded set may hold per input byte.

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
fn allocation_is_bounded_by_the_input() {
    claimed_lengths_never_drive_allocation();
    decoded_sets_hold_at_most_50_times_their_input();
}

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

/// Heap bytes held by the decoded set, per input byte.
fn held_per_input_byte(bytes: &[u8]) -> usize {
    let before = ALLOCATOR.allocated();
    let set = ValueSet::from_cbor(bytes, &DecodeLimits::new(32, usize::MAX)).expect("valid");
    let held = ALLOCATOR.allocated() - before;
    drop(set);
    held.div_ceil(bytes.len())
}

/// The bound `DecodeLimits::max_bytes` documents, on the worst inputs known: values that
/// take one byte on the wire and a `String` (24 bytes) in memory, in an indefinite-length
/// array that just outgrew a power of two (so its `Vec` doubled to twice its length).
fn decoded_sets_hold_at_most_50_times_their_input() {
    let n = 65_537;
    // {"": [1036, [_ "", "", ...]]}
    let mut strings = vec![0xa1, 0x60, 0x82, 0x19, 0x04, 0x0c, 0x9f];
    strings.extend(std::iter::repeat_n(0x60, n));
    strings.push(0xff);
    let worst = held_per_input_byte(&strings);
    assert!(worst <= 50, "{worst} bytes held per input byte");
    assert!(worst >= 40, "{worst}: not the worst case this test means to pin");

    // {_ "0": [0, null], "1": [0, null], ...}: many small entries.
    let mut entries = vec![0xbf];
    for i in 0..n {
        let key = format!("{i:x}");
        entries.push(0x60 + u8::try_from(key.len()).expect("short key"));
        entries.extend(key.as_bytes());
        entries.extend([0x82, 0x00, 0xf6]);
    }
    entries.push(0xff);
    let held = held_per_input_byte(&entries);
    assert!(held <= 50, "{held} bytes held per input byte");
}
