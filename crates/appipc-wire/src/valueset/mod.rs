//! [`ValueSet`], the property bag that packaged apps exchange (Windows'
//! `Windows.Foundation.Collections.ValueSet`), and its CBOR wire encoding.
//!
//! A `ValueSet` maps string keys to [`PropertyValue`]s: every Windows `PropertyValue`
//! kind that can cross a process boundary (integers of each width, `Single`/`Double`,
//! `Char16`, `Boolean`, `String`, [`DateTime`], [`TimeSpan`], [`Guid`], [`Point`],
//! [`Size`], [`Rect`] and a typed array of each), or a nested `ValueSet`. Each value keeps
//! its exact type across the wire, and [`PropertyValue::property_type`] reports it as
//! Windows' [`PropertyType`] number.
//!
//! ```
//! use appipc_wire::valueset::{DecodeLimits, PropertyType, PropertyValue, ValueSet};
//!
//! let mut request = ValueSet::new();
//! request.insert("Command", "Resize");
//! request.insert("Width", 640_i32);
//! request.insert("Thumbnail", vec![0x89_u8, b'P', b'N', b'G']);
//! assert!(request.insert("Width", 800_i32)); // true: replaced an existing key
//!
//! let bytes = request.to_cbor();
//! assert_eq!(bytes.len(), request.encoded_len());
//!
//! let received = ValueSet::from_cbor(&bytes, &DecodeLimits::default())?;
//! assert_eq!(received, request);
//! assert_eq!(received.lookup("Width"), Some(&PropertyValue::Int32(800)));
//! assert_eq!(received["Width"].property_type(), PropertyType::Int32);
//! assert_eq!(received.get("Command").and_then(PropertyValue::as_string), Some("Resize"));
//! # Ok::<(), appipc_wire::valueset::DecodeError>(())
//! ```
//!
//! # Differences from Windows
//!
//! * Keys compare by ordinal equality, as on Windows. Iteration (and the encoded map)
//!   is in ascending order of the keys' UTF-8 bytes, which is deterministic; Windows
//!   leaves the order unspecified.
//! * `Inspectable`, `InspectableArray`, `OtherType` and `OtherTypeArray` values cannot
//!   cross a process boundary and have no `PropertyValue` variant; the decoder refuses
//!   their type codes. Apps serialize rich objects themselves (JSON text, bytes).
//! * A nested `ValueSet` has the appipc type code [`PropertyType::ValueSet`] (`0x8000`),
//!   outside Windows' range; on Windows it is a plain `IInspectable` with no
//!   `PropertyType` of its own.
//! * `String` values and keys are Unicode text: a Windows string holding a lone UTF-16
//!   surrogate cannot be carried as a `String` (a `Char16Array` can carry it).
//! * There is no `MapChanged` event: a `ValueSet` here is plain data.
//! * [`ValueSet::lookup`] and [`ValueSet::remove`] return `None` for a missing key where
//!   Windows throws.
//!
//! # Encoding
//!
//! A `ValueSet` is a CBOR map of text keys to `[type_code, payload]` arrays; the format is
//! specified byte by byte in `docs/wire.md`. [`ValueSet::from_cbor`] is strict and
//! bounded by [`DecodeLimits`]: it never panics, refuses anything that is not exactly
//! this encoding with a [`DecodeError`] that says what, where and under which key, and
//! never allocates more than the input could actually fill. `ValueSet` and
//! `PropertyValue` implement `minicbor`'s `Encode`, `Decode` and `CborLen`, so messages
//! derived with `minicbor` can embed them.
//!
//! This module does no I/O and knows nothing of frames or sockets.

mod decode;
mod encode;
mod types;
mod value;

use std::collections::{BTreeMap, btree_map};
use std::iter::FusedIterator;

pub use decode::{DecodeError, DecodeErrorKind, DecodeLimits, PathSegment};
pub use types::{
    DateTime, Guid, ParseGuidError, Point, Rect, Size, TICKS_PER_SECOND, TimeConversionError,
    TimeSpan,
};
pub use value::{PropertyType, PropertyValue};

/// A map of string keys to typed values, as Windows' `ValueSet`: what app services,
/// protocol activation and `LaunchUriForResults` exchange.
///
/// Keys are unique and case-sensitive (ordinal comparison). Iteration is in ascending
/// order of the keys' UTF-8 bytes. Values are anything `Into<PropertyValue>`:
///
/// ```
/// use appipc_wire::valueset::{Guid, PropertyValue, ValueSet};
///
/// let mut inner = ValueSet::new();
/// inner.insert("Nested", true);
///
/// let mut set = ValueSet::new();
/// set.insert("Id", Guid::NULL);
/// set.insert("Names", vec!["a", "b"]);
/// set.insert("Code", PropertyValue::Char16(0xd83d)); // a lone surrogate is fine
/// set.insert("Child", inner);
/// set.insert("key", 1_u8);
/// set.insert("Key", 2_u8); // a different key
///
/// assert_eq!(set.len(), 6);
/// assert!(set.has_key("Key") && set.has_key("key") && !set.has_key("KEY"));
/// let keys: Vec<&str> = set.keys().collect();
/// assert_eq!(keys, ["Child", "Code", "Id", "Key", "Names", "key"]);
/// ```
#[derive(Clone, Default, PartialEq)]
pub struct ValueSet {
    map: BTreeMap<String, PropertyValue>,
}

impl ValueSet {
    /// An empty set.
    pub const fn new() -> Self {
        ValueSet { map: BTreeMap::new() }
    }

    pub(crate) fn from_map(map: BTreeMap<String, PropertyValue>) -> Self {
        ValueSet { map }
    }

    /// Sets `key` to `value`. Returns `true` when it replaced a value already under that
    /// key, as Windows' `Insert`.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<PropertyValue>) -> bool {
        self.map.insert(key.into(), value.into()).is_some()
    }

    /// The value under `key` (Windows `Lookup`; `None` where Windows throws).
    pub fn lookup(&self, key: &str) -> Option<&PropertyValue> {
        self.map.get(key)
    }

    /// The value under `key`; the same as [`ValueSet::lookup`].
    pub fn get(&self, key: &str) -> Option<&PropertyValue> {
        self.map.get(key)
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut PropertyValue> {
        self.map.get_mut(key)
    }

    /// Whether there is a value under `key` (Windows `HasKey`).
    pub fn has_key(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Removes the value under `key` and returns it (Windows `Remove`; `None` where
    /// Windows throws).
    pub fn remove(&mut self, key: &str) -> Option<PropertyValue> {
        self.map.remove(key)
    }

    /// Number of keys (Windows `Size`).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Removes every key (Windows `Clear`).
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The entries in ascending key order (Windows `First`).
    pub fn iter(&self) -> Iter<'_> {
        Iter { inner: self.map.iter() }
    }

    /// The keys in ascending order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator + '_ {
        self.map.keys().map(String::as_str)
    }

    /// The values in ascending key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &PropertyValue> + ExactSizeIterator {
        self.map.values()
    }

    /// How many `ValueSet`s are nested in this one, itself included: 1 for a set with no
    /// nested set. [`ValueSet::from_cbor`] refuses sets deeper than
    /// [`DecodeLimits::max_depth`], so a sender can check this first.
    pub fn depth(&self) -> usize {
        1 + self
            .values()
            .filter_map(PropertyValue::as_value_set)
            .map(ValueSet::depth)
            .max()
            .unwrap_or(0)
    }

    /// The CBOR encoding (`docs/wire.md`). Deterministic: equal sets give equal bytes.
    pub fn to_cbor(&self) -> Vec<u8> {
        encode::to_vec(self)
    }

    /// The length of [`ValueSet::to_cbor`]'s output, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        encode::encoded_len(self)
    }

    /// Decodes `bytes`, which must hold exactly one encoded `ValueSet` and nothing after
    /// it, within `limits`.
    ///
    /// Never panics; allocates at most what the input can fill (see
    /// [`DecodeLimits::max_bytes`]). Accepts the definite- and indefinite-length forms of
    /// maps, variable arrays and strings, and any (not only the shortest) integer width;
    /// refuses everything else this encoding does not allow, including CBOR tags,
    /// duplicate keys and integers outside their declared type.
    pub fn from_cbor(bytes: &[u8], limits: &DecodeLimits) -> Result<ValueSet, DecodeError> {
        decode::decode_value_set(bytes, limits)
    }
}

impl core::fmt::Debug for ValueSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.map.iter()).finish()
    }
}

/// The value under `key`.
///
/// # Panics
///
/// If there is no value under `key` (as Windows' `Lookup` throws). Use
/// [`ValueSet::get`] for data from a peer.
impl core::ops::Index<&str> for ValueSet {
    type Output = PropertyValue;

    fn index(&self, key: &str) -> &PropertyValue {
        match self.map.get(key) {
            Some(v) => v,
            None => panic!("no key {key:?} in the valueset"),
        }
    }
}

/// Iterator over the entries of a [`ValueSet`], in ascending key order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    inner: btree_map::Iter<'a, String, PropertyValue>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a PropertyValue);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(k, v)| (k.as_str(), v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back().map(|(k, v)| (k.as_str(), v))
    }
}

impl ExactSizeIterator for Iter<'_> {}
impl FusedIterator for Iter<'_> {}

/// Owning iterator over the entries of a [`ValueSet`], in ascending key order.
#[derive(Debug)]
pub struct IntoIter {
    inner: btree_map::IntoIter<String, PropertyValue>,
}

impl Iterator for IntoIter {
    type Item = (String, PropertyValue);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for IntoIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back()
    }
}

impl ExactSizeIterator for IntoIter {}
impl FusedIterator for IntoIter {}

impl<'a> IntoIterator for &'a ValueSet {
    type Item = (&'a str, &'a PropertyValue);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl IntoIterator for ValueSet {
    type Item = (String, PropertyValue);
    type IntoIter = IntoIter;

    fn into_iter(self) -> IntoIter {
        IntoIter { inner: self.map.into_iter() }
    }
}

/// Later entries replace earlier ones with the same key.
impl<K: Into<String>, V: Into<PropertyValue>> FromIterator<(K, V)> for ValueSet {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut set = ValueSet::new();
        set.extend(iter);
        set
    }
}

/// Later entries replace earlier ones with the same key.
impl<K: Into<String>, V: Into<PropertyValue>> Extend<(K, V)> for ValueSet {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// `ValueSet::from([("a", 1), ("b", 2)])`; later entries replace earlier ones with the
/// same key.
impl<K: Into<String>, V: Into<PropertyValue>, const N: usize> From<[(K, V); N]> for ValueSet {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<BTreeMap<String, PropertyValue>> for ValueSet {
    fn from(map: BTreeMap<String, PropertyValue>) -> Self {
        ValueSet { map }
    }
}

impl From<ValueSet> for BTreeMap<String, PropertyValue> {
    fn from(set: ValueSet) -> Self {
        set.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn insert_reports_replacement() {
        let mut set = ValueSet::new();
        assert!(!set.insert("a", 1_i32));
        assert!(set.insert("a", "now a string"));
        assert_eq!(set.len(), 1);
        assert_eq!(set["a"], PropertyValue::from("now a string"));
    }

    #[test]
    fn keys_are_case_sensitive_and_ordered() {
        let set: ValueSet =
            [("b", 1_u8), ("B", 2), ("a", 3), ("", 4), ("é", 5)].into_iter().collect();
        assert_eq!(set.keys().collect::<Vec<_>>(), ["", "B", "a", "b", "é"]);
        assert_eq!(set.lookup("B"), Some(&PropertyValue::UInt8(2)));
        assert_eq!(set.lookup("c"), None);
    }

    #[test]
    fn remove_clear_and_iterators() {
        let mut set = ValueSet::from([("x", 1_i64), ("y", 2)]);
        assert_eq!(set.remove("x"), Some(PropertyValue::Int64(1)));
        assert_eq!(set.remove("x"), None);
        assert!(!set.has_key("x"));
        if let Some(v) = set.get_mut("y") {
            *v = PropertyValue::Boolean(false);
        }
        assert_eq!(set.iter().collect::<Vec<_>>(), [("y", &PropertyValue::Boolean(false))]);
        assert_eq!(set.iter().len(), 1);
        assert_eq!(set.clone().into_iter().next_back().map(|(k, _)| k), Some("y".into()));
        set.clear();
        assert!(set.is_empty());
        assert_eq!(set.iter().next(), None);
    }

    #[test]
    fn depth_counts_nested_sets() {
        let mut set = ValueSet::new();
        assert_eq!(set.depth(), 1);
        let inner = ValueSet::from([("z", ValueSet::new())]);
        set.insert("a", inner);
        set.insert("b", ValueSet::new());
        assert_eq!(set.depth(), 3);
    }

    #[test]
    fn encodes_known_bytes() {
        // {"a": [4, 1]}
        let set = ValueSet::from([("a", 1_i32)]);
        assert_eq!(hex(&set.to_cbor()), "a16161820401");
        assert_eq!(hex(&ValueSet::new().to_cbor()), "a0");
        assert_eq!(hex(&ValueSet::from([("", PropertyValue::Empty)]).to_cbor()), "a1608200f6");
        assert_eq!(hex(&ValueSet::from([("n", ValueSet::new())]).to_cbor()), "a1616e82198000a0");
    }

    #[test]
    fn debug_is_a_map() {
        let set = ValueSet::from([("a", 1_u8)]);
        assert_eq!(format!("{set:?}"), "{\"a\": UInt8(1)}");
    }

    #[test]
    fn btreemap_conversions() {
        let set = ValueSet::from([("k", 0.5_f64)]);
        let map: BTreeMap<String, PropertyValue> = set.clone().into();
        assert_eq!(ValueSet::from(map), set);
    }
}
