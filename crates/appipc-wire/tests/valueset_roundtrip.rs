//! Property tests: every `ValueSet` of every kind of value survives encode → decode with
//! its exact types and bit patterns, `encoded_len` is exact, and the minicbor trait impls
//! agree with the top-level functions.

use appipc_wire::valueset::{
    DateTime, DecodeLimits, Guid, Point, PropertyType, PropertyValue, Rect, Size, TimeSpan,
    ValueSet,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::strategy::Union;

type V = PropertyValue;

fn f32_bits() -> impl Strategy<Value = f32> + Clone {
    // All bit patterns: NaNs with payloads, signed zeros, infinities, subnormals.
    any::<u32>().prop_map(f32::from_bits)
}

fn f64_bits() -> impl Strategy<Value = f64> + Clone {
    any::<u64>().prop_map(f64::from_bits)
}

fn point() -> impl Strategy<Value = Point> + Clone {
    (f32_bits(), f32_bits()).prop_map(|(x, y)| Point::new(x, y))
}

fn size() -> impl Strategy<Value = Size> + Clone {
    (f32_bits(), f32_bits()).prop_map(|(w, h)| Size::new(w, h))
}

fn rect() -> impl Strategy<Value = Rect> + Clone {
    (f32_bits(), f32_bits(), f32_bits(), f32_bits()).prop_map(|(x, y, w, h)| Rect::new(x, y, w, h))
}

fn guid() -> impl Strategy<Value = Guid> + Clone {
    any::<[u8; 16]>().prop_map(Guid::from_bytes)
}

fn date_time() -> impl Strategy<Value = DateTime> + Clone {
    any::<i64>().prop_map(DateTime::from_universal_time)
}

fn time_span() -> impl Strategy<Value = TimeSpan> + Clone {
    any::<i64>().prop_map(TimeSpan::from_ticks)
}

/// Every kind of value except a nested set.
fn leaf() -> BoxedStrategy<PropertyValue> {
    const N: std::ops::Range<usize> = 0..8;
    Union::new([
        Just(V::Empty).boxed(),
        any::<u8>().prop_map(V::UInt8).boxed(),
        any::<i16>().prop_map(V::Int16).boxed(),
        any::<u16>().prop_map(V::UInt16).boxed(),
        any::<i32>().prop_map(V::Int32).boxed(),
        any::<u32>().prop_map(V::UInt32).boxed(),
        any::<i64>().prop_map(V::Int64).boxed(),
        any::<u64>().prop_map(V::UInt64).boxed(),
        f32_bits().prop_map(V::Single).boxed(),
        f64_bits().prop_map(V::Double).boxed(),
        any::<u16>().prop_map(V::Char16).boxed(),
        any::<bool>().prop_map(V::Boolean).boxed(),
        any::<String>().prop_map(V::String).boxed(),
        date_time().prop_map(V::DateTime).boxed(),
        time_span().prop_map(V::TimeSpan).boxed(),
        guid().prop_map(V::Guid).boxed(),
        point().prop_map(V::Point).boxed(),
        size().prop_map(V::Size).boxed(),
        rect().prop_map(V::Rect).boxed(),
        vec(any::<u8>(), 0..64).prop_map(V::UInt8Array).boxed(),
        vec(any::<i16>(), N).prop_map(V::Int16Array).boxed(),
        vec(any::<u16>(), N).prop_map(V::UInt16Array).boxed(),
        vec(any::<i32>(), N).prop_map(V::Int32Array).boxed(),
        vec(any::<u32>(), N).prop_map(V::UInt32Array).boxed(),
        vec(any::<i64>(), N).prop_map(V::Int64Array).boxed(),
        vec(any::<u64>(), N).prop_map(V::UInt64Array).boxed(),
        vec(f32_bits(), N).prop_map(V::SingleArray).boxed(),
        vec(f64_bits(), N).prop_map(V::DoubleArray).boxed(),
        vec(any::<u16>(), N).prop_map(V::Char16Array).boxed(),
        vec(any::<bool>(), N).prop_map(V::BooleanArray).boxed(),
        vec(any::<String>(), N).prop_map(V::StringArray).boxed(),
        vec(date_time(), N).prop_map(V::DateTimeArray).boxed(),
        vec(time_span(), N).prop_map(V::TimeSpanArray).boxed(),
        vec(guid(), N).prop_map(V::GuidArray).boxed(),
        vec(point(), N).prop_map(V::PointArray).boxed(),
        vec(size(), N).prop_map(V::SizeArray).boxed(),
        vec(rect(), N).prop_map(V::RectArray).boxed(),
    ])
    .boxed()
}

fn key() -> impl Strategy<Value = String> {
    // Mostly short keys so that sets share keys across levels; sometimes any text.
    prop_oneof![3 => "[a-cA-C]{0,3}", 1 => any::<String>()]
}

fn value() -> impl Strategy<Value = PropertyValue> {
    leaf().prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            1 => inner.clone(),
            1 => btree_map(key(), inner, 0..6).prop_map(|m| V::ValueSet(ValueSet::from(m))),
        ]
    })
}

fn value_set() -> impl Strategy<Value = ValueSet> {
    btree_map(key(), value(), 0..8).prop_map(ValueSet::from)
}

/// Exact equality: same kinds, same integers and text, floats equal bit for bit.
fn same(a: &PropertyValue, b: &PropertyValue) -> bool {
    fn all<T>(x: &[T], y: &[T], eq: impl Fn(&T, &T) -> bool) -> bool {
        x.len() == y.len() && x.iter().zip(y).all(|(a, b)| eq(a, b))
    }
    let f = |x: &f32, y: &f32| x.to_bits() == y.to_bits();
    let d = |x: &f64, y: &f64| x.to_bits() == y.to_bits();
    let p = |x: &Point, y: &Point| f(&x.x, &y.x) && f(&x.y, &y.y);
    let s = |x: &Size, y: &Size| f(&x.width, &y.width) && f(&x.height, &y.height);
    let r = |x: &Rect, y: &Rect| {
        f(&x.x, &y.x) && f(&x.y, &y.y) && f(&x.width, &y.width) && f(&x.height, &y.height)
    };
    match (a, b) {
        (V::Single(x), V::Single(y)) => f(x, y),
        (V::Double(x), V::Double(y)) => d(x, y),
        (V::Point(x), V::Point(y)) => p(x, y),
        (V::Size(x), V::Size(y)) => s(x, y),
        (V::Rect(x), V::Rect(y)) => r(x, y),
        (V::SingleArray(x), V::SingleArray(y)) => all(x, y, f),
        (V::DoubleArray(x), V::DoubleArray(y)) => all(x, y, d),
        (V::PointArray(x), V::PointArray(y)) => all(x, y, p),
        (V::SizeArray(x), V::SizeArray(y)) => all(x, y, s),
        (V::RectArray(x), V::RectArray(y)) => all(x, y, r),
        (V::ValueSet(x), V::ValueSet(y)) => same_set(x, y),
        // Every other kind holds no float: derived equality is exact.
        _ => a.property_type() == b.property_type() && a == b,
    }
}

fn same_set(a: &ValueSet, b: &ValueSet) -> bool {
    a.len() == b.len()
        && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
}

#[derive(Debug, minicbor::Encode, minicbor::Decode, minicbor::CborLen)]
struct Envelope {
    #[n(0)]
    id: u32,
    #[n(1)]
    body: ValueSet,
    #[n(2)]
    single: PropertyValue,
    #[n(3)]
    trailer: String,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_value_set_round_trips_exactly(set in value_set()) {
        let bytes = set.to_cbor();
        prop_assert_eq!(bytes.len(), set.encoded_len());
        let back = ValueSet::from_cbor(&bytes, &DecodeLimits::default())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(same_set(&set, &back), "{:?}\n!=\n{:?}", set, back);
        // Deterministic: the decoded set encodes to the same bytes.
        prop_assert_eq!(back.to_cbor(), bytes);
    }

    #[test]
    fn embedded_in_a_derived_message(set in value_set(), single in value(), id in any::<u32>()) {
        let msg = Envelope { id, body: set, single, trailer: "end".into() };
        let bytes = minicbor::to_vec(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(bytes.len(), minicbor::len(&msg));
        let back: Envelope = minicbor::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back.id, id);
        prop_assert!(same_set(&msg.body, &back.body));
        prop_assert!(same(&msg.single, &back.single));
        prop_assert_eq!(back.trailer, "end");
    }

    #[test]
    fn property_value_encoded_len_is_exact(v in value()) {
        let bytes = minicbor::to_vec(&v).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(bytes.len(), minicbor::len(&v));
        let back: PropertyValue = minicbor::decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(same(&v, &back));
        prop_assert_eq!(back.property_type(), v.property_type());
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic(set in value_set()) {
        let bytes = set.to_cbor();
        for end in 0..bytes.len() {
            prop_assert!(ValueSet::from_cbor(&bytes[..end], &DecodeLimits::default()).is_err());
        }
    }

    #[test]
    fn flipped_bytes_never_panic(set in value_set(), flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = set.to_cbor();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        if let Ok(decoded) = ValueSet::from_cbor(&bytes, &DecodeLimits::default()) {
            // Whatever decodes re-encodes to something that decodes to the same set.
            let again = ValueSet::from_cbor(&decoded.to_cbor(), &DecodeLimits::default())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(same_set(&decoded, &again));
        }
    }
}

#[test]
fn every_kind_is_generated() {
    // Guards the strategies above: a kind missing from them would silently go untested.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut seen = std::collections::BTreeSet::new();
    let leaves = leaf();
    for _ in 0..2_000 {
        seen.insert(leaves.new_tree(&mut runner).unwrap().current().property_type());
    }
    let values = value();
    for _ in 0..200 {
        seen.insert(values.new_tree(&mut runner).unwrap().current().property_type());
    }
    let expected: std::collections::BTreeSet<_> =
        PropertyType::ALL.iter().copied().filter(|t| t.can_cross_process()).collect();
    assert_eq!(seen, expected);
}
