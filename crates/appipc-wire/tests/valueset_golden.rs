//! Known encodings of every kind of value: the test vectors of `docs/wire.md`. These pin
//! the format itself, so an encoder and decoder that changed together would still fail.

use appipc_wire::valueset::{
    DateTime, DecodeLimits, Guid, Point, PropertyValue as V, Rect, Size, TimeSpan, ValueSet,
};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn vectors() -> Vec<(V, &'static str)> {
    let guid: Guid = "00112233-4455-6677-8899-aabbccddeeff".parse().unwrap();
    vec![
        (V::Empty, "82 00 f6"),
        (V::UInt8(200), "82 01 18 c8"),
        (V::Int16(-300), "82 02 39 01 2b"),
        (V::UInt16(1000), "82 03 19 03 e8"),
        (V::Int32(-1), "82 04 20"),
        (V::UInt32(u32::MAX), "82 05 1a ff ff ff ff"),
        (V::Int64(i64::MIN), "82 06 3b 7f ff ff ff ff ff ff ff"),
        (V::UInt64(u64::MAX), "82 07 1b ff ff ff ff ff ff ff ff"),
        (V::Single(1.5), "82 08 fa 3f c0 00 00"),
        (V::Double(-0.1), "82 09 fb bf b9 99 99 99 99 99 9a"),
        (V::Char16(0xd83d), "82 0a 19 d8 3d"),
        (V::Boolean(true), "82 0b f5"),
        (V::String("hé".into()), "82 0c 63 68 c3 a9"),
        (V::DateTime(DateTime::UNIX_EPOCH), "82 0e 1b 01 9d b1 de d5 3e 80 00"),
        (V::TimeSpan(TimeSpan::from_ticks(-10_000_000)), "82 0f 3a 00 98 96 7f"),
        (V::Guid(guid), "82 10 50 00 11 22 33 44 55 66 77 88 99 aa bb cc dd ee ff"),
        (V::Point(Point::new(1.0, 2.0)), "82 11 82 fa 3f 80 00 00 fa 40 00 00 00"),
        (V::Size(Size::new(0.5, 4.0)), "82 12 82 fa 3f 00 00 00 fa 40 80 00 00"),
        (
            V::Rect(Rect::new(0.0, -1.0, 10.0, 20.0)),
            "82 13 84 fa 00 00 00 00 fa bf 80 00 00 fa 41 20 00 00 fa 41 a0 00 00",
        ),
        (V::UInt8Array(vec![1, 2, 3]), "82 19 04 01 43 01 02 03"),
        (V::Int16Array(vec![1, -2]), "82 19 04 02 82 01 21"),
        (V::UInt16Array(vec![65535]), "82 19 04 03 81 19 ff ff"),
        (V::Int32Array(vec![]), "82 19 04 04 80"),
        (V::UInt32Array(vec![7]), "82 19 04 05 81 07"),
        (V::Int64Array(vec![-1]), "82 19 04 06 81 20"),
        (V::UInt64Array(vec![24]), "82 19 04 07 81 18 18"),
        (V::SingleArray(vec![0.0]), "82 19 04 08 81 fa 00 00 00 00"),
        (V::DoubleArray(vec![1.0]), "82 19 04 09 81 fb 3f f0 00 00 00 00 00 00"),
        (V::Char16Array(vec![0x48, 0x69]), "82 19 04 0a 82 18 48 18 69"),
        (V::BooleanArray(vec![false, true]), "82 19 04 0b 82 f4 f5"),
        (V::StringArray(vec!["a".into(), String::new()]), "82 19 04 0c 82 61 61 60"),
        (V::DateTimeArray(vec![DateTime::from_universal_time(0)]), "82 19 04 0e 81 00"),
        (V::TimeSpanArray(vec![TimeSpan::from_ticks(1)]), "82 19 04 0f 81 01"),
        (
            V::GuidArray(vec![Guid::NULL]),
            "82 19 04 10 81 50 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
        ),
        (
            V::PointArray(vec![Point::new(0.0, 0.0)]),
            "82 19 04 11 81 82 fa 00 00 00 00 fa 00 00 00 00",
        ),
        (V::SizeArray(vec![]), "82 19 04 12 80"),
        (
            V::RectArray(vec![Rect::new(0.0, 0.0, 0.0, 0.0)]),
            "82 19 04 13 81 84 fa 00 00 00 00 fa 00 00 00 00 fa 00 00 00 00 fa 00 00 00 00",
        ),
        (V::ValueSet(ValueSet::new()), "82 19 80 00 a0"),
    ]
}

#[test]
fn every_kind_has_its_documented_encoding() {
    let vectors = vectors();
    let mut kinds: Vec<_> = vectors.iter().map(|(v, _)| v.property_type()).collect();
    kinds.dedup();
    assert_eq!(kinds.len(), 38, "one vector per kind that can cross a process");
    for (value, expected) in vectors {
        let bytes = minicbor::to_vec(&value).unwrap();
        assert_eq!(hex(&bytes), expected, "{value:?}");
        let back: V = minicbor::decode(&bytes).unwrap();
        assert_eq!(back, value);
        assert_eq!(back.property_type(), value.property_type());

        // And inside a set: {"": value}.
        let set = ValueSet::from([("", value.clone())]);
        let mut framed = unhex("a1 60");
        framed.extend(&bytes);
        assert_eq!(set.to_cbor(), framed);
        assert_eq!(ValueSet::from_cbor(&framed, &DecodeLimits::default()).unwrap(), set);
    }
}

/// The example of `docs/wire.md`, byte for byte.
#[test]
fn documented_example() {
    let mut options = ValueSet::new();
    options.insert("Fast", true);
    let mut set = ValueSet::new();
    set.insert("Command", "Resize");
    set.insert("Width", 640_i32);
    set.insert("Thumb", vec![0x89_u8, 0x50]);
    set.insert("Options", options);

    let expected = "a4 \
        67 43 6f 6d 6d 61 6e 64 82 0c 66 52 65 73 69 7a 65 \
        67 4f 70 74 69 6f 6e 73 82 19 80 00 a1 64 46 61 73 74 82 0b f5 \
        65 54 68 75 6d 62 82 19 04 01 42 89 50 \
        65 57 69 64 74 68 82 04 19 02 80";
    let bytes = set.to_cbor();
    assert_eq!(
        hex(&bytes),
        unhex(expected).iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
    );
    assert_eq!(bytes.len(), 63);
    assert_eq!(set.encoded_len(), 63);
    assert_eq!(ValueSet::from_cbor(&bytes, &DecodeLimits::default()).unwrap(), set);
}

#[test]
fn nan_payloads_and_signed_zero_survive() {
    let quiet_with_payload = f32::from_bits(0x7fc0_1234);
    let signalling = f64::from_bits(0x7ff0_0000_0000_0001);
    let set = ValueSet::from([
        ("a", V::Single(quiet_with_payload)),
        ("b", V::Double(signalling)),
        ("c", V::Double(-0.0)),
        (
            "d",
            V::Rect(Rect::new(f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY)),
        ),
    ]);
    let back = ValueSet::from_cbor(&set.to_cbor(), &DecodeLimits::default()).unwrap();
    assert_eq!(back["a"].as_single().map(f32::to_bits), Some(0x7fc0_1234));
    assert_eq!(back["b"].as_double().map(f64::to_bits), Some(0x7ff0_0000_0000_0001));
    assert_eq!(back["c"].as_double().map(f64::to_bits), Some((-0.0_f64).to_bits()));
    assert_eq!(back["d"], set["d"]);
}

/// `docs/wire.md` shows the same bytes as these tests, so the spec cannot drift.
#[test]
fn docs_show_these_vectors() {
    let doc = include_str!("../../../docs/wire.md");
    for (value, expected) in vectors() {
        let shown = match value {
            // Shown with a repetition ("+ 16 × `00`"): check the part before it.
            V::GuidArray(_) => "`82 19 04 10 81 50` + 16 × `00`".to_owned(),
            V::RectArray(_) => "`82 19 04 13 81 84` + 4 × `fa 00 00 00 00`".to_owned(),
            _ => format!("| `{expected}` |"),
        };
        assert!(doc.contains(&shown), "docs/wire.md lacks {shown} for {value:?}");
    }
    let example = "a4 67 43 6f 6d 6d 61 6e 64 82 0c 66 52 65 73 69 7a 65 67 4f 70 74 69 6f 6e 73 \
        82 19 80 00\na1 64 46 61 73 74 82 0b f5 65 54 68 75 6d 62 82 19 04 01 42 89 50 65 57 69 \
        64 74 68 82 04\n19 02 80";
    assert!(doc.contains(example), "docs/wire.md lacks the example bytes");
}
