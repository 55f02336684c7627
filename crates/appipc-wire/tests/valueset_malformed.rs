//! Each way an input can be wrong gives its own `DecodeErrorKind`, at the right byte,
//! under the right keys; the lenient-but-valid CBOR forms are accepted.

use appipc_wire::valueset::{
    DecodeError, DecodeErrorKind as K, DecodeLimits, PathSegment, PropertyType as T, PropertyValue,
    ValueSet,
};

/// Bytes from hex, spaces ignored.
fn h(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn decode(hex: &str) -> Result<ValueSet, DecodeError> {
    ValueSet::from_cbor(&h(hex), &DecodeLimits::default())
}

fn key(k: &str) -> PathSegment {
    PathSegment::Key(k.to_owned())
}

#[track_caller]
fn fails(hex: &str, kind: K, offset: usize, path: &[PathSegment]) {
    match decode(hex) {
        Ok(set) => panic!("{hex} decoded to {set:?}, expected {kind:?}"),
        Err(e) => {
            assert_eq!(e.kind(), &kind, "{hex}: {e}");
            assert_eq!(e.offset(), offset, "{hex}: {e}");
            assert_eq!(e.path(), path, "{hex}: {e}");
        }
    }
}

/// `{"a": <value>}` fails with `kind` at `offset`, under `["a"]`.
#[track_caller]
fn value_fails(value_hex: &str, kind: K, offset: usize) {
    fails(&format!("a1 61 61 {value_hex}"), kind, offset, &[key("a")]);
}

#[track_caller]
fn decodes(hex: &str) -> ValueSet {
    decode(hex).unwrap_or_else(|e| panic!("{hex}: {e}"))
}

#[test]
fn outer_structure() {
    fails("", K::UnexpectedEnd, 0, &[]);
    fails("80", K::UnexpectedType { expected: "map", found: "array" }, 0, &[]);
    fails("a0 00", K::TrailingBytes { count: 1 }, 1, &[]);
    fails("a0 a0 a0", K::TrailingBytes { count: 2 }, 1, &[]);
    // The self-described CBOR tag 55799 is a tag like any other: refused.
    fails("d9 d9 f7 a0", K::UnexpectedType { expected: "map", found: "tag" }, 0, &[]);
    let err = ValueSet::from_cbor(&h("a1 60 82 00 f6"), &DecodeLimits::new(32, 4)).unwrap_err();
    assert_eq!(err.kind(), &K::InputTooLarge { len: 5, max: 4 });
    assert!(ValueSet::from_cbor(&h("a1 60 82 00 f6"), &DecodeLimits::new(32, 5)).is_ok());
}

#[test]
fn type_codes() {
    value_fails("82 15 f6", K::UnknownTypeCode { code: 21 }, 4);
    value_fails("82 19 04 00 80", K::UnknownTypeCode { code: 1024 }, 4);
    value_fails("82 19 04 15 80", K::UnknownTypeCode { code: 1045 }, 4);
    value_fails("82 19 80 01 a0", K::UnknownTypeCode { code: 0x8001 }, 4);
    value_fails("82 1a 00 01 00 00 f6", K::UnknownTypeCode { code: 0x1_0000 }, 4);
    value_fails("82 20 f6", K::UnknownTypeCode { code: -1 }, 4);
    value_fails("82 61 31 f6", K::UnexpectedType { expected: "integer", found: "text string" }, 4);
    for (code, t) in [
        ("0d", T::Inspectable),
        ("14", T::OtherType),
        ("19 04 0d", T::InspectableArray),
        ("19 04 14", T::OtherTypeArray),
    ] {
        value_fails(&format!("82 {code} 80"), K::UnsupportedType { property_type: t }, 4);
    }
}

#[test]
fn value_shape() {
    value_fails("01", K::UnexpectedType { expected: "array", found: "unsigned integer" }, 3);
    value_fails("83 04 01 02", K::WrongLength { what: "value", expected: 2, found: 3 }, 3);
    value_fails("81 00", K::WrongLength { what: "value", expected: 2, found: 1 }, 3);
    value_fails(
        "9f 04 01 ff",
        K::InvalidCbor {
            reason: "a fixed-size array (value, point, size, rect) has indefinite length",
        },
        3,
    );
    value_fails("ff", K::UnexpectedType { expected: "array", found: "break stop code" }, 3);
}

#[test]
fn payload_shape() {
    let unexpected = |expected, found| K::UnexpectedType { expected, found };
    value_fails("82 01 61 78", unexpected("integer", "text string"), 5);
    value_fails("82 04 f5", unexpected("integer", "boolean"), 5);
    value_fails("82 04 fa 3f 80 00 00", unexpected("integer", "float32"), 5);
    value_fails("82 08 fb 3f f0 00 00 00 00 00 00", unexpected("float32", "float64"), 5);
    value_fails("82 08 f9 3c 00", unexpected("float32", "float16"), 5);
    value_fails("82 08 01", unexpected("float32", "unsigned integer"), 5);
    value_fails("82 09 fa 3f 80 00 00", unexpected("float64", "float32"), 5);
    value_fails("82 0b 01", unexpected("boolean", "unsigned integer"), 5);
    value_fails("82 0b f6", unexpected("boolean", "null"), 5);
    value_fails("82 00 f7", unexpected("null", "undefined"), 5);
    value_fails("82 00 80", unexpected("null", "array"), 5);
    value_fails("82 0c 41 78", unexpected("text string", "byte string"), 5);
    value_fails("82 0c c0 61 78", unexpected("text string", "tag"), 5);
    value_fails("82 10 50 00", K::LengthExceedsInput { claimed: 16, remaining: 1 }, 5);
    value_fails(
        "82 10 4f 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e",
        K::WrongLength { what: "guid", expected: 16, found: 15 },
        5,
    );
    value_fails(
        "82 10 51 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f 10",
        K::WrongLength { what: "guid", expected: 16, found: 17 },
        5,
    );
    value_fails(
        "82 11 83 fa 00000000 fa 00000000 fa 00000000",
        K::WrongLength { what: "point", expected: 2, found: 3 },
        5,
    );
    value_fails(
        "82 13 82 fa 00000000 fa 00000000",
        K::WrongLength { what: "rect", expected: 4, found: 2 },
        5,
    );
    // A Size member that is a float64: the path names the member.
    fails(
        "a1 61 61 82 12 82 fa 00000000 fb 0000000000000000",
        unexpected("float32", "float64"),
        11,
        &[key("a"), PathSegment::Index(1)],
    );
    value_fails("82 19 04 01 80", unexpected("byte string", "array"), 7);
    value_fails("82 19 04 04 40", unexpected("array", "byte string"), 7);
    value_fails("82 19 80 00 80", unexpected("map", "array"), 7);
    // An element of the wrong kind inside an array names its index.
    fails(
        "a1 61 61 82 19 04 0c 82 61 78 01",
        unexpected("text string", "unsigned integer"),
        10,
        &[key("a"), PathSegment::Index(1)],
    );
}

#[test]
fn integers_out_of_range_for_their_type() {
    let cases: &[(&str, &str, i128, T)] = &[
        ("01", "19 01 00", 256, T::UInt8),
        ("01", "20", -1, T::UInt8),
        ("02", "19 80 00", 32_768, T::Int16),
        ("02", "39 80 00", -32_769, T::Int16),
        ("03", "1a 00 01 00 00", 65_536, T::UInt16),
        ("03", "20", -1, T::UInt16),
        ("04", "1a 80 00 00 00", 1 << 31, T::Int32),
        ("04", "3a 80 00 00 00", -(1 << 31) - 1, T::Int32),
        ("05", "1b 00 00 00 01 00 00 00 00", 1 << 32, T::UInt32),
        ("05", "20", -1, T::UInt32),
        ("06", "1b 80 00 00 00 00 00 00 00", 1 << 63, T::Int64),
        ("06", "3b 80 00 00 00 00 00 00 00", -(1 << 63) - 1, T::Int64),
        ("07", "20", -1, T::UInt64),
        ("07", "3b ff ff ff ff ff ff ff ff", -(1 << 64), T::UInt64),
        ("0a", "1a 00 01 00 00", 65_536, T::Char16),
        ("0a", "20", -1, T::Char16),
        ("0e", "1b 80 00 00 00 00 00 00 00", 1 << 63, T::DateTime),
        ("0f", "3b ff ff ff ff ff ff ff ff", -(1 << 64), T::TimeSpan),
    ];
    for &(code, payload, value, property_type) in cases {
        value_fails(
            &format!("82 {code} {payload}"),
            K::IntegerOutOfRange { value, property_type },
            5,
        );
    }
    // The extremes that do fit decode.
    let set = decodes(
        "a4 61 61 82 06 3b 7f ff ff ff ff ff ff ff
            61 62 82 07 1b ff ff ff ff ff ff ff ff
            61 63 82 0a 19 ff ff
            61 64 82 02 39 7f ff",
    );
    assert_eq!(set["a"], PropertyValue::Int64(i64::MIN));
    assert_eq!(set["b"], PropertyValue::UInt64(u64::MAX));
    assert_eq!(set["c"], PropertyValue::Char16(0xffff));
    assert_eq!(set["d"], PropertyValue::Int16(i16::MIN));
}

#[test]
fn out_of_range_array_element_names_its_index() {
    // {"a": Int16Array [1, 40000]}
    let hex = "a1 61 61 82 19 04 02 82 01 19 9c 40";
    fails(
        hex,
        K::IntegerOutOfRange { value: 40_000, property_type: T::Int16 },
        9,
        &[key("a"), PathSegment::Index(1)],
    );
    assert_eq!(
        decode(hex).unwrap_err().to_string(),
        "invalid valueset: integer 40000 is out of range for Int16 at byte 9 under [\"a\"][1]"
    );
}

#[test]
fn duplicate_keys() {
    fails("a2 61 61 82 00 f6 61 61 82 00 f6", K::DuplicateKey { key: "a".into() }, 6, &[]);
    // Same key in an indefinite-length map.
    fails("bf 61 61 82 00 f6 61 61 82 00 f6 ff", K::DuplicateKey { key: "a".into() }, 6, &[]);
    // Inside a nested set: the path names the outer key.
    fails(
        "a1 61 6f 82 19 80 00 a2 61 6b 82 00 f6 61 6b 82 00 f6",
        K::DuplicateKey { key: "k".into() },
        13,
        &[key("o")],
    );
    // Keys differing only in case are different keys.
    let set = decodes("a2 61 61 82 00 f6 61 41 82 00 f6");
    assert_eq!(set.len(), 2);
    // A key spelled once definite, once indefinite is still the same key.
    fails("a2 61 61 82 00 f6 7f 61 61 ff 82 00 f6", K::DuplicateKey { key: "a".into() }, 6, &[]);
}

#[test]
fn long_keys_are_shortened_in_messages() {
    let long = "x".repeat(100);
    let mut bytes = h("a2 78 64");
    bytes.extend(long.as_bytes());
    bytes.extend(h("82 00 f6 78 64"));
    bytes.extend(long.as_bytes());
    bytes.extend(h("82 00 f6"));
    let err = ValueSet::from_cbor(&bytes, &DecodeLimits::default()).unwrap_err();
    assert_eq!(err.kind(), &K::DuplicateKey { key: long });
    let message = err.to_string();
    assert!(message.contains("… (100 bytes)"), "{message}");
    assert!(message.len() < 150, "{message}");
}

#[test]
fn invalid_utf8() {
    fails("a1 61 ff 82 00 f6", K::InvalidUtf8, 1, &[]);
    value_fails("82 0c 62 c3 28", K::InvalidUtf8, 5);
    // Each chunk of an indefinite string must be valid on its own: a code point split
    // across chunks is refused.
    value_fails("82 0c 7f 61 c3 61 a9 ff", K::InvalidUtf8, 6);
    fails(
        "a1 61 61 82 19 04 0c 82 61 61 61 ff",
        K::InvalidUtf8,
        10,
        &[key("a"), PathSegment::Index(1)],
    );
    // Lone surrogates encoded in UTF-8 (CESU) are not UTF-8.
    value_fails("82 0c 63 ed a0 80", K::InvalidUtf8, 5);
}

#[test]
fn nesting_depth() {
    fn nested(levels: usize) -> String {
        // `levels` sets in total: {"k": [0x8000, {"k": ... {}}]}
        "a1 61 6b 82 19 80 00 ".repeat(levels - 1) + "a0"
    }
    let limit = DecodeLimits::DEFAULT_MAX_DEPTH;
    let deepest_ok = decodes(&nested(limit));
    assert_eq!(deepest_ok.depth(), limit);
    let path: Vec<_> = (0..limit).map(|_| key("k")).collect();
    fails(&nested(limit + 1), K::TooDeep { max_depth: limit }, 7 * limit, &path);
    // Far deeper than the limit still fails at the limit (no deep recursion).
    fails(&nested(100_000), K::TooDeep { max_depth: limit }, 7 * limit, &path);

    let flat = DecodeLimits::new(1, 1024);
    assert!(ValueSet::from_cbor(&h("a1 61 6e 82 00 f6"), &flat).is_ok());
    let err = ValueSet::from_cbor(&h("a1 61 6e 82 19 80 00 a0"), &flat).unwrap_err();
    assert_eq!(err.kind(), &K::TooDeep { max_depth: 1 });
    assert_eq!(err.offset(), 7);
    assert_eq!(err.path(), [key("n")]);
}

#[test]
fn lengths_beyond_the_input() {
    // A map head claiming 2^60 entries, with no entries after it.
    fails(
        "bb 10 00 00 00 00 00 00 00",
        K::LengthExceedsInput { claimed: 1 << 60, remaining: 0 },
        0,
        &[],
    );
    // An Int32Array claiming 2^60 elements.
    value_fails(
        "82 19 04 04 9b 10 00 00 00 00 00 00 00 01",
        K::LengthExceedsInput { claimed: 1 << 60, remaining: 1 },
        7,
    );
    // A RectArray of 2 needs at least 42 bytes.
    value_fails(
        &format!("82 19 04 13 82 {}", "00".repeat(41)),
        K::LengthExceedsInput { claimed: 2, remaining: 41 },
        7,
    );
    // Every entry takes at least one byte.
    fails("a3 61 61", K::LengthExceedsInput { claimed: 3, remaining: 2 }, 0, &[]);
    fails("a1 6a 61", K::LengthExceedsInput { claimed: 10, remaining: 1 }, 1, &[]);
    value_fails(
        "82 19 04 01 5b ff ff ff ff ff ff ff ff",
        K::LengthExceedsInput { claimed: u64::MAX, remaining: 0 },
        7,
    );
}

#[test]
fn truncated_input() {
    value_fails("82 00", K::UnexpectedEnd, 5);
    // The offset of an unexpected end is where the input ends.
    value_fails("82 04 1a 00 00", K::UnexpectedEnd, 8);
    value_fails("82 09 fb 00 00 00", K::UnexpectedEnd, 9);
    fails("bf 61 61 82 00 f6", K::UnexpectedEnd, 6, &[]);
    value_fails("82 19 04 04 9f 01", K::UnexpectedEnd, 9);
    fails("a1 7f 61 61", K::UnexpectedEnd, 4, &[]);
}

#[test]
fn malformed_cbor() {
    let invalid = |reason| K::InvalidCbor { reason };
    let reserved = invalid("reserved additional information value (28-30)");
    value_fails("82 01 1c", reserved.clone(), 5);
    value_fails("82 01 3e", reserved.clone(), 5);
    fails("bc", reserved, 0, &[]);
    value_fails("82 01 1f", invalid("indefinite length on an integer or tag"), 5);
    value_fails("82 00 f8 10", invalid("two-byte simple value below 32"), 5);
    value_fails(
        "82 19 04 01 5f 61 78 ff",
        invalid("a chunk of an indefinite-length byte string is not a definite-length byte string"),
        8,
    );
    fails(
        "a1 7f 7f ff ff 82 00 f6",
        invalid("a chunk of an indefinite-length text string is not a definite-length text string"),
        2,
        &[],
    );
}

#[test]
fn lenient_forms_are_accepted() {
    let one = ValueSet::from([("a", 1_i32)]);
    // Indefinite-length map.
    assert_eq!(decodes("bf 61 61 82 04 01 ff"), one);
    // Indefinite-length key.
    assert_eq!(decodes("a1 7f 61 61 60 ff 82 04 01"), ValueSet::from([("a", 1_i32)]));
    assert_eq!(decodes("a1 7f 61 61 61 62 ff 82 04 01"), ValueSet::from([("ab", 1_i32)]));
    // Longer-than-needed integer heads, for the type code and the payload.
    assert_eq!(decodes("a1 61 61 82 18 04 1b 00 00 00 00 00 00 00 01"), one);
    assert_eq!(decodes("a1 78 01 61 82 04 01"), one);
    // Indefinite-length byte string and arrays.
    assert_eq!(
        decodes("a1 61 61 82 19 04 01 5f 41 01 42 02 03 40 ff")["a"],
        PropertyValue::UInt8Array(vec![1, 2, 3])
    );
    assert_eq!(
        decodes("a1 61 61 82 19 04 04 9f 01 20 ff")["a"],
        PropertyValue::Int32Array(vec![1, -1])
    );
    assert_eq!(
        decodes("a1 61 61 82 19 04 0c 9f 7f 61 78 ff 60 ff")["a"],
        PropertyValue::StringArray(vec!["x".into(), String::new()])
    );
    // Any key order.
    assert_eq!(
        decodes("a2 61 62 82 00 f6 61 61 82 00 f6"),
        ValueSet::from([("a", PropertyValue::Empty), ("b", PropertyValue::Empty)])
    );
}

#[test]
fn embedded_decode_reports_the_same_error() {
    // An array [7, <bad valueset>] decoded through minicbor's trait: our error is the source.
    let bytes = h("82 07 a1 61 61 82 01 19 01 00");
    let mut d = minicbor::Decoder::new(&bytes);
    assert_eq!(d.array().unwrap(), Some(2));
    assert_eq!(d.u8().unwrap(), 7);
    let err = d.decode::<ValueSet>().unwrap_err();
    assert_eq!(err.position(), Some(7));
    let source = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<DecodeError>())
        .expect("the DecodeError is the source");
    assert_eq!(source.kind(), &K::IntegerOutOfRange { value: 256, property_type: T::UInt8 });
    assert_eq!(source.path(), [key("a")]);
    assert!(err.to_string().contains("out of range for UInt8"), "{err}");

    // A good set inside a larger message leaves the decoder just after it.
    let bytes = h("83 a1 61 61 82 04 01 82 0b f5 07");
    let mut d = minicbor::Decoder::new(&bytes);
    d.array().unwrap();
    assert_eq!(d.decode::<ValueSet>().unwrap(), ValueSet::from([("a", 1_i32)]));
    assert_eq!(d.decode::<PropertyValue>().unwrap(), PropertyValue::Boolean(true));
    assert_eq!(d.u8().unwrap(), 7);
}

#[test]
fn error_messages_are_lowercase_and_say_where() {
    let err = decode("a1 61 61 82 0d f6").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid valueset: type Inspectable (13) cannot cross a process boundary at byte 4 under [\"a\"]"
    );
    let err = decode("a0 00").unwrap_err();
    assert_eq!(err.to_string(), "invalid valueset: 1 bytes follow the valueset at byte 1");
}
