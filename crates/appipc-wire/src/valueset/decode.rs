//! The strict, bounded CBOR decoder for [`ValueSet`] and [`PropertyValue`].
//!
//! It reads CBOR heads itself (rather than through `minicbor::Decoder`'s typed helpers) so
//! that it can say exactly what was wrong, where, and under which key, and so that it checks
//! every length the input claims against the bytes that remain before allocating.

use core::fmt;
use std::collections::BTreeMap;

use super::ValueSet;
use super::types::{DateTime, Guid, Point, Rect, Size, TimeSpan};
use super::value::{PropertyType, PropertyValue};

/// Limits that bound the work and memory of decoding untrusted bytes.
///
/// ```
/// use appipc_wire::valueset::DecodeLimits;
///
/// let mut limits = DecodeLimits::default();
/// assert_eq!(limits.max_depth, 32);
/// limits.max_bytes = 64 * 1024;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecodeLimits {
    /// How many `ValueSet`s may be nested inside one another, the outermost counting as 1
    /// (so 1 allows no nested set). Decoding recurses once per level, so keep this small.
    pub max_depth: usize,
    /// The longest input [`ValueSet::from_cbor`] accepts, in bytes. A decoded set holds
    /// at most about 50 bytes of memory per input byte (the worst case is a `StringArray`
    /// of empty strings in an indefinite-length array: 1 byte each on the wire, a 24-byte
    /// `String` each in memory, in a `Vec` that grew by doubling); typical data holds
    /// 1-15 bytes per input byte.
    pub max_bytes: usize,
}

impl DecodeLimits {
    /// Default for [`DecodeLimits::max_depth`].
    pub const DEFAULT_MAX_DEPTH: usize = 32;
    /// Default for [`DecodeLimits::max_bytes`]: 4 MiB.
    pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;

    /// Limits of `max_depth` nested sets and `max_bytes` of input.
    pub const fn new(max_depth: usize, max_bytes: usize) -> Self {
        DecodeLimits { max_depth, max_bytes }
    }
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits::new(Self::DEFAULT_MAX_DEPTH, Self::DEFAULT_MAX_BYTES)
    }
}

/// One step on the way from the outermost `ValueSet` to the place a [`DecodeError`]
/// happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// The value under this key of a `ValueSet`.
    Key(String),
    /// The element at this index of an array value.
    Index(u64),
}

/// Bytes given to the `ValueSet` decoder are not a valid encoding: what was wrong
/// ([`DecodeError::kind`]), at which byte ([`DecodeError::offset`]) and under which keys
/// ([`DecodeError::path`]).
///
/// ```
/// use appipc_wire::valueset::{DecodeErrorKind, DecodeLimits, ValueSet};
///
/// // {"a": [1, 300]}: UInt8 (code 1) with payload 300.
/// let err = ValueSet::from_cbor(&[0xa1, 0x61, b'a', 0x82, 0x01, 0x19, 0x01, 0x2c],
///                               &DecodeLimits::default()).unwrap_err();
/// assert!(matches!(err.kind(), DecodeErrorKind::IntegerOutOfRange { value: 300, .. }));
/// assert_eq!(err.offset(), 5);
/// assert_eq!(err.to_string(),
///            "invalid valueset: integer 300 is out of range for UInt8 at byte 5 under [\"a\"]");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid valueset: {kind} at byte {offset}{}", DisplayPath(&self.path))]
pub struct DecodeError {
    kind: DecodeErrorKind,
    offset: usize,
    path: Vec<PathSegment>,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        DecodeError { kind, offset, path: Vec::new() }
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// Offset in the input, in bytes, of the item that was wrong, or for
    /// [`DecodeErrorKind::UnexpectedEnd`] of the end of the input. For a value embedded in
    /// a larger message, the offset in that message.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Keys and array indices from the outermost set to the item that was wrong; empty
    /// when it is the outermost set itself.
    pub fn path(&self) -> &[PathSegment] {
        &self.path
    }

    fn under(mut self, segment: PathSegment) -> Self {
        // Errors bubble up from the innermost item, so each level goes in front.
        self.path.insert(0, segment);
        self
    }
}

struct DisplayPath<'a>(&'a [PathSegment]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        f.write_str(" under ")?;
        for segment in self.0 {
            match segment {
                PathSegment::Key(key) => write!(f, "[{:?}]", Shortened(key))?,
                PathSegment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// A peer-chosen string in a message, cut to a readable length.
struct Shortened<'a>(&'a str);

impl Shortened<'_> {
    const MAX_CHARS: usize = 64;
}

impl fmt::Debug for Shortened<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(Self::MAX_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => {
                let head = self.0.get(..cut).unwrap_or_default();
                write!(f, "{head:?}… ({} bytes)", self.0.len())
            }
        }
    }
}

/// What was wrong with the bytes given to the `ValueSet` decoder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The input is longer than [`DecodeLimits::max_bytes`].
    #[error("input of {len} bytes is longer than the limit of {max}")]
    InputTooLarge {
        /// Input length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `ValueSet`s are nested deeper than [`DecodeLimits::max_depth`].
    #[error("valuesets are nested deeper than the limit of {max_depth}")]
    TooDeep {
        /// The limit.
        max_depth: usize,
    },
    /// Bytes follow the outermost `ValueSet`.
    #[error("{count} bytes follow the valueset")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The input ends inside an item.
    #[error("input ends in the middle of an item")]
    UnexpectedEnd,
    /// A string, array or map claims more bytes or items than the rest of the input can
    /// hold.
    #[error("length {claimed} is more than the {remaining} remaining bytes can hold")]
    LengthExceedsInput {
        /// The length the item claims (bytes for a string, items for an array or map).
        claimed: u64,
        /// Bytes left in the input after the item's head.
        remaining: usize,
    },
    /// The bytes are not well-formed CBOR (RFC 8949), or use a form this encoding
    /// forbids.
    #[error("malformed cbor: {reason}")]
    InvalidCbor {
        /// Which rule was broken.
        reason: &'static str,
    },
    /// A CBOR item of the wrong type for its place.
    #[error("expected {expected}, found {found}")]
    UnexpectedType {
        /// What the encoding requires here.
        expected: &'static str,
        /// The CBOR type found.
        found: &'static str,
    },
    /// A value's type code is not a `PropertyType` number.
    #[error("unknown type code {code}")]
    UnknownTypeCode {
        /// The code found.
        code: i128,
    },
    /// A value's type code names a `PropertyType` that cannot cross a process boundary
    /// (`Inspectable`, `OtherType`, `InspectableArray`, `OtherTypeArray`).
    #[error("type {property_type} ({}) cannot cross a process boundary", property_type.as_u16())]
    UnsupportedType {
        /// The type named.
        property_type: PropertyType,
    },
    /// An integer does not fit the type its value declares (for example 256 as a
    /// `UInt8`, -1 as a `UInt64`, 65536 as a `Char16`).
    #[error("integer {value} is out of range for {property_type}")]
    IntegerOutOfRange {
        /// The integer found.
        value: i128,
        /// The type it was to have (the element type, inside an array).
        property_type: PropertyType,
    },
    /// A fixed-size item (a value's `[code, payload]` pair, a `Point`, `Size`, `Rect` or
    /// `Guid`) has the wrong number of items or bytes.
    #[error("{what} has length {found}, expected {expected}")]
    WrongLength {
        /// The item.
        what: &'static str,
        /// The length it must have.
        expected: u64,
        /// The length found.
        found: u64,
    },
    /// A text string (a key or a `String` value) is not valid UTF-8.
    #[error("text string is not valid utf-8")]
    InvalidUtf8,
    /// A key occurs twice in one `ValueSet`.
    #[error("duplicate key {:?}", Shortened(key))]
    DuplicateKey {
        /// The key.
        key: String,
    },
}

type Result<T> = core::result::Result<T, DecodeError>;

#[derive(Clone, Copy, Debug)]
enum Len {
    Definite(u64),
    Indefinite,
}

#[derive(Clone, Copy, Debug)]
enum Head {
    Unsigned(u64),
    /// A negative integer `-1 - n`.
    Negative(u64),
    Bytes(Len),
    Text(Len),
    Array(Len),
    Map(Len),
    Tag,
    Simple,
    False,
    True,
    Null,
    Undefined,
    F16,
    F32(f32),
    F64(f64),
    Break,
}

impl Head {
    fn describe(self) -> &'static str {
        match self {
            Head::Unsigned(_) => "unsigned integer",
            Head::Negative(_) => "negative integer",
            Head::Bytes(_) => "byte string",
            Head::Text(_) => "text string",
            Head::Array(_) => "array",
            Head::Map(_) => "map",
            Head::Tag => "tag",
            Head::Simple => "simple value",
            Head::False | Head::True => "boolean",
            Head::Null => "null",
            Head::Undefined => "undefined",
            Head::F16 => "float16",
            Head::F32(_) => "float32",
            Head::F64(_) => "float64",
            Head::Break => "break stop code",
        }
    }
}

const BREAK: u8 = 0xff;

/// A cursor over the input that decodes the `ValueSet` encoding.
pub(crate) struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
    max_depth: usize,
}

impl<'b> Reader<'b> {
    pub(crate) fn new(buf: &'b [u8], pos: usize, max_depth: usize) -> Self {
        Reader { buf, pos, max_depth }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn fail<T>(&self, at: usize, kind: DecodeErrorKind) -> Result<T> {
        Err(DecodeError::new(kind, at))
    }

    fn take(&mut self, n: usize) -> Result<&'b [u8]> {
        match self.pos.checked_add(n).and_then(|end| self.buf.get(self.pos..end)) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => self.fail(self.buf.len(), DecodeErrorKind::UnexpectedEnd),
        }
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take_array::<1>()?[0])
    }

    /// The argument of a head whose additional information is `ai`: `None` for 31
    /// (indefinite length / break).
    fn argument(&mut self, start: usize, ai: u8) -> Result<Option<u64>> {
        Ok(Some(match ai {
            0..=23 => u64::from(ai),
            24 => u64::from(self.byte()?),
            25 => u64::from(u16::from_be_bytes(self.take_array()?)),
            26 => u64::from(u32::from_be_bytes(self.take_array()?)),
            27 => u64::from_be_bytes(self.take_array()?),
            31 => return Ok(None),
            _ => {
                return self.fail(
                    start,
                    DecodeErrorKind::InvalidCbor {
                        reason: "reserved additional information value (28-30)",
                    },
                );
            }
        }))
    }

    /// Reads one CBOR head; returns where it started and what it is.
    fn head(&mut self) -> Result<(usize, Head)> {
        let start = self.pos;
        let initial = self.byte()?;
        let (major, ai) = (initial >> 5, initial & 0x1f);
        let arg = self.argument(start, ai)?;
        let len = |arg: Option<u64>| arg.map_or(Len::Indefinite, Len::Definite);
        let no_indefinite =
            || DecodeErrorKind::InvalidCbor { reason: "indefinite length on an integer or tag" };
        let head = match major {
            0 => Head::Unsigned(arg.ok_or_else(no_indefinite).or_else(|k| self.fail(start, k))?),
            1 => Head::Negative(arg.ok_or_else(no_indefinite).or_else(|k| self.fail(start, k))?),
            2 => Head::Bytes(len(arg)),
            3 => Head::Text(len(arg)),
            4 => Head::Array(len(arg)),
            5 => Head::Map(len(arg)),
            6 => {
                arg.ok_or_else(no_indefinite).or_else(|k| self.fail(start, k))?;
                Head::Tag
            }
            _ => match (ai, arg) {
                (20, _) => Head::False,
                (21, _) => Head::True,
                (22, _) => Head::Null,
                (23, _) => Head::Undefined,
                (0..=19, _) => Head::Simple,
                (24, Some(v)) if v < 32 => {
                    return self.fail(
                        start,
                        DecodeErrorKind::InvalidCbor { reason: "two-byte simple value below 32" },
                    );
                }
                (24, _) => Head::Simple,
                (25, _) => Head::F16,
                (26, Some(v)) => Head::F32(f32::from_bits(u32::try_from(v).unwrap_or_default())),
                (27, Some(v)) => Head::F64(f64::from_bits(v)),
                _ => Head::Break,
            },
        };
        Ok((start, head))
    }

    fn unexpected<T>(&self, start: usize, expected: &'static str, found: Head) -> Result<T> {
        self.fail(start, DecodeErrorKind::UnexpectedType { expected, found: found.describe() })
    }

    /// Checks that `n` items of at least `min_len` bytes each can fit in the rest of the
    /// input, and returns `n` as a safe capacity.
    fn fits(&self, start: usize, n: u64, min_len: usize) -> Result<usize> {
        let remaining = self.remaining();
        let can_hold = remaining / min_len.max(1);
        match usize::try_from(n) {
            Ok(n) if n <= can_hold => Ok(n),
            _ => self.fail(start, DecodeErrorKind::LengthExceedsInput { claimed: n, remaining }),
        }
    }

    /// Advances over a sequence; `left` is `Some(count)` for definite length, `None` for
    /// indefinite. Returns whether another item follows.
    fn next_item(&mut self, left: &mut Option<u64>) -> Result<bool> {
        match left {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None => match self.buf.get(self.pos) {
                Some(&BREAK) => {
                    self.pos += 1;
                    Ok(false)
                }
                Some(_) => Ok(true),
                None => self.fail(self.pos, DecodeErrorKind::UnexpectedEnd),
            },
        }
    }

    fn integer(&mut self) -> Result<(usize, i128)> {
        match self.head()? {
            (start, Head::Unsigned(n)) => Ok((start, i128::from(n))),
            (start, Head::Negative(n)) => Ok((start, -1 - i128::from(n))),
            (start, other) => self.unexpected(start, "integer", other),
        }
    }

    fn int_of<T: TryFrom<i128>>(&mut self, property_type: PropertyType) -> Result<T> {
        let (start, value) = self.integer()?;
        T::try_from(value).or_else(|_| {
            self.fail(start, DecodeErrorKind::IntegerOutOfRange { value, property_type })
        })
    }

    fn f32(&mut self) -> Result<f32> {
        match self.head()? {
            (_, Head::F32(x)) => Ok(x),
            (start, other) => self.unexpected(start, "float32", other),
        }
    }

    fn f64(&mut self) -> Result<f64> {
        match self.head()? {
            (_, Head::F64(x)) => Ok(x),
            (start, other) => self.unexpected(start, "float64", other),
        }
    }

    fn boolean(&mut self) -> Result<bool> {
        match self.head()? {
            (_, Head::False) => Ok(false),
            (_, Head::True) => Ok(true),
            (start, other) => self.unexpected(start, "boolean", other),
        }
    }

    fn null(&mut self) -> Result<()> {
        match self.head()? {
            (_, Head::Null) => Ok(()),
            (start, other) => self.unexpected(start, "null", other),
        }
    }

    /// The body of a definite-length string of `n` bytes whose head started at `start`.
    fn string_body(&mut self, start: usize, n: u64) -> Result<&'b [u8]> {
        let n = self.fits(start, n, 1)?;
        self.take(n)
    }

    fn text(&mut self) -> Result<(usize, String)> {
        let to_str = |r: &Self, at: usize, b: &'b [u8]| {
            core::str::from_utf8(b).or_else(|_| r.fail(at, DecodeErrorKind::InvalidUtf8))
        };
        match self.head()? {
            (start, Head::Text(Len::Definite(n))) => {
                let body = self.string_body(start, n)?;
                Ok((start, to_str(self, start, body)?.to_owned()))
            }
            (start, Head::Text(Len::Indefinite)) => {
                let mut s = String::new();
                let mut left = None;
                while self.next_item(&mut left)? {
                    match self.head()? {
                        (chunk, Head::Text(Len::Definite(n))) => {
                            let body = self.string_body(chunk, n)?;
                            s.push_str(to_str(self, chunk, body)?);
                        }
                        (chunk, _) => {
                            return self.fail(
                                chunk,
                                DecodeErrorKind::InvalidCbor {
                                    reason: "a chunk of an indefinite-length text string is not a definite-length text string",
                                },
                            );
                        }
                    }
                }
                Ok((start, s))
            }
            (start, other) => self.unexpected(start, "text string", other),
        }
    }

    /// A byte string: `(start, Some(bytes))` for definite length (borrowed, no copy), or
    /// the concatenated chunks of an indefinite one.
    fn bytes(&mut self) -> Result<(usize, std::borrow::Cow<'b, [u8]>)> {
        match self.head()? {
            (start, Head::Bytes(Len::Definite(n))) => {
                Ok((start, self.string_body(start, n)?.into()))
            }
            (start, Head::Bytes(Len::Indefinite)) => {
                let mut v = Vec::new();
                let mut left = None;
                while self.next_item(&mut left)? {
                    match self.head()? {
                        (chunk, Head::Bytes(Len::Definite(n))) => {
                            v.extend_from_slice(self.string_body(chunk, n)?);
                        }
                        (chunk, _) => {
                            return self.fail(
                                chunk,
                                DecodeErrorKind::InvalidCbor {
                                    reason: "a chunk of an indefinite-length byte string is not a definite-length byte string",
                                },
                            );
                        }
                    }
                }
                Ok((start, v.into()))
            }
            (start, other) => self.unexpected(start, "byte string", other),
        }
    }

    fn guid(&mut self) -> Result<Guid> {
        let (start, b) = self.bytes()?;
        match <[u8; 16]>::try_from(&*b) {
            Ok(b) => Ok(Guid::from_bytes(b)),
            Err(_) => self.fail(
                start,
                DecodeErrorKind::WrongLength { what: "guid", expected: 16, found: b.len() as u64 },
            ),
        }
    }

    /// A definite-length array of exactly `N` float32 (`Point`, `Size`, `Rect`).
    fn floats<const N: usize>(&mut self, what: &'static str) -> Result<[f32; N]> {
        self.fixed_array(what, N as u64)?;
        let mut a = [0.0; N];
        for (i, x) in a.iter_mut().enumerate() {
            *x = self.f32().map_err(|e| e.under(PathSegment::Index(i as u64)))?;
        }
        Ok(a)
    }

    /// The head of a definite-length array of exactly `n` items.
    fn fixed_array(&mut self, what: &'static str, n: u64) -> Result<()> {
        match self.head()? {
            (_, Head::Array(Len::Definite(found))) if found == n => Ok(()),
            (start, Head::Array(Len::Definite(found))) => {
                self.fail(start, DecodeErrorKind::WrongLength { what, expected: n, found })
            }
            (start, Head::Array(Len::Indefinite)) => self.fail(
                start,
                DecodeErrorKind::InvalidCbor {
                    reason: "a fixed-size array (value, point, size, rect) has indefinite length",
                },
            ),
            (start, other) => self.unexpected(start, "array", other),
        }
    }

    /// An array value's elements, each at least `min_len` bytes on the wire.
    fn array_of<T>(
        &mut self,
        min_len: usize,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let (start, len) = match self.head()? {
            (start, Head::Array(len)) => (start, len),
            (start, other) => return self.unexpected(start, "array", other),
        };
        let (capacity, mut left) = match len {
            Len::Definite(n) => (self.fits(start, n, min_len)?, Some(n)),
            Len::Indefinite => (0, None),
        };
        let mut v = Vec::with_capacity(capacity);
        let mut index = 0_u64;
        while self.next_item(&mut left)? {
            v.push(item(self).map_err(|e| e.under(PathSegment::Index(index)))?);
            index += 1;
        }
        Ok(v)
    }

    /// A `ValueSet` at nesting level `depth` (the outermost set is level 1).
    pub(crate) fn value_set(&mut self, depth: usize) -> Result<ValueSet> {
        let (start, len) = match self.head()? {
            (start, Head::Map(len)) => (start, len),
            (start, other) => return self.unexpected(start, "map", other),
        };
        if depth > self.max_depth {
            return self.fail(start, DecodeErrorKind::TooDeep { max_depth: self.max_depth });
        }
        let mut left = match len {
            Len::Definite(n) => {
                self.fits(start, n, 1)?;
                Some(n)
            }
            Len::Indefinite => None,
        };
        let mut map = BTreeMap::new();
        while self.next_item(&mut left)? {
            let (key_start, key) = self.text()?;
            if map.contains_key(&key) {
                return self.fail(key_start, DecodeErrorKind::DuplicateKey { key });
            }
            match self.value(depth) {
                Ok(value) => {
                    map.insert(key, value);
                }
                Err(e) => return Err(e.under(PathSegment::Key(key))),
            }
        }
        Ok(ValueSet::from_map(map))
    }

    /// One `[code, payload]` value inside a set at level `depth`.
    pub(crate) fn value(&mut self, depth: usize) -> Result<PropertyValue> {
        use PropertyType as T;
        use PropertyValue as V;

        self.fixed_array("value", 2)?;
        let (code_start, code) = self.integer()?;
        let Some(ty) = u16::try_from(code).ok().and_then(PropertyType::from_u16) else {
            return self.fail(code_start, DecodeErrorKind::UnknownTypeCode { code });
        };
        Ok(match ty {
            T::Empty => {
                self.null()?;
                V::Empty
            }
            T::UInt8 => V::UInt8(self.int_of(ty)?),
            T::Int16 => V::Int16(self.int_of(ty)?),
            T::UInt16 => V::UInt16(self.int_of(ty)?),
            T::Int32 => V::Int32(self.int_of(ty)?),
            T::UInt32 => V::UInt32(self.int_of(ty)?),
            T::Int64 => V::Int64(self.int_of(ty)?),
            T::UInt64 => V::UInt64(self.int_of(ty)?),
            T::Single => V::Single(self.f32()?),
            T::Double => V::Double(self.f64()?),
            T::Char16 => V::Char16(self.int_of(ty)?),
            T::Boolean => V::Boolean(self.boolean()?),
            T::String => V::String(self.text()?.1),
            T::DateTime => V::DateTime(DateTime::from_universal_time(self.int_of(ty)?)),
            T::TimeSpan => V::TimeSpan(TimeSpan::from_ticks(self.int_of(ty)?)),
            T::Guid => V::Guid(self.guid()?),
            T::Point => {
                let [x, y] = self.floats("point")?;
                V::Point(Point::new(x, y))
            }
            T::Size => {
                let [w, h] = self.floats("size")?;
                V::Size(Size::new(w, h))
            }
            T::Rect => {
                let [x, y, w, h] = self.floats("rect")?;
                V::Rect(Rect::new(x, y, w, h))
            }
            T::UInt8Array => V::UInt8Array(self.bytes()?.1.into_owned()),
            T::Int16Array => V::Int16Array(self.array_of(1, |r| r.int_of(T::Int16))?),
            T::UInt16Array => V::UInt16Array(self.array_of(1, |r| r.int_of(T::UInt16))?),
            T::Int32Array => V::Int32Array(self.array_of(1, |r| r.int_of(T::Int32))?),
            T::UInt32Array => V::UInt32Array(self.array_of(1, |r| r.int_of(T::UInt32))?),
            T::Int64Array => V::Int64Array(self.array_of(1, |r| r.int_of(T::Int64))?),
            T::UInt64Array => V::UInt64Array(self.array_of(1, |r| r.int_of(T::UInt64))?),
            T::SingleArray => V::SingleArray(self.array_of(5, Self::f32)?),
            T::DoubleArray => V::DoubleArray(self.array_of(9, Self::f64)?),
            T::Char16Array => V::Char16Array(self.array_of(1, |r| r.int_of(T::Char16))?),
            T::BooleanArray => V::BooleanArray(self.array_of(1, Self::boolean)?),
            T::StringArray => V::StringArray(self.array_of(1, |r| Ok(r.text()?.1))?),
            T::DateTimeArray => V::DateTimeArray(
                self.array_of(1, |r| Ok(DateTime::from_universal_time(r.int_of(T::DateTime)?)))?,
            ),
            T::TimeSpanArray => V::TimeSpanArray(
                self.array_of(1, |r| Ok(TimeSpan::from_ticks(r.int_of(T::TimeSpan)?)))?,
            ),
            T::GuidArray => V::GuidArray(self.array_of(17, Self::guid)?),
            T::PointArray => V::PointArray(self.array_of(11, |r| {
                let [x, y] = r.floats("point")?;
                Ok(Point::new(x, y))
            })?),
            T::SizeArray => V::SizeArray(self.array_of(11, |r| {
                let [w, h] = r.floats("size")?;
                Ok(Size::new(w, h))
            })?),
            T::RectArray => V::RectArray(self.array_of(21, |r| {
                let [x, y, w, h] = r.floats("rect")?;
                Ok(Rect::new(x, y, w, h))
            })?),
            T::ValueSet => V::ValueSet(self.value_set(depth + 1)?),
            T::Inspectable | T::OtherType | T::InspectableArray | T::OtherTypeArray => {
                return self
                    .fail(code_start, DecodeErrorKind::UnsupportedType { property_type: ty });
            }
        })
    }
}

/// Decodes a whole input that must hold exactly one `ValueSet`.
pub(crate) fn decode_value_set(bytes: &[u8], limits: &DecodeLimits) -> Result<ValueSet> {
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::new(
            DecodeErrorKind::InputTooLarge { len: bytes.len(), max: limits.max_bytes },
            0,
        ));
    }
    let mut r = Reader::new(bytes, 0, limits.max_depth);
    let set = r.value_set(1)?;
    match r.remaining() {
        0 => Ok(set),
        count => Err(DecodeError::new(DecodeErrorKind::TrailingBytes { count }, r.position())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(bytes: &[u8]) -> core::result::Result<Head, DecodeErrorKind> {
        let mut r = Reader::new(bytes, 0, 32);
        r.head().map(|(_, h)| h).map_err(|e| e.kind().clone())
    }

    #[test]
    fn heads_of_every_width() {
        assert!(matches!(head_of(&[0x17]), Ok(Head::Unsigned(23))));
        assert!(matches!(head_of(&[0x18, 0xff]), Ok(Head::Unsigned(255))));
        assert!(matches!(head_of(&[0x19, 0x01, 0x00]), Ok(Head::Unsigned(256))));
        assert!(matches!(head_of(&[0x1a, 0, 1, 0, 0]), Ok(Head::Unsigned(65_536))));
        assert!(matches!(
            head_of(&[0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Ok(Head::Unsigned(u64::MAX))
        ));
        assert!(matches!(
            head_of(&[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Ok(Head::Negative(u64::MAX))
        ));
        assert!(matches!(head_of(&[0x5f]), Ok(Head::Bytes(Len::Indefinite))));
        assert!(matches!(head_of(&[0x78, 3]), Ok(Head::Text(Len::Definite(3)))));
        assert!(matches!(head_of(&[0xc1, 0x00]), Ok(Head::Tag)));
        assert!(matches!(head_of(&[0xf8, 0x20]), Ok(Head::Simple)));
        assert!(matches!(head_of(&[0xf9, 0, 0]), Ok(Head::F16)));
        assert!(matches!(head_of(&[0xff]), Ok(Head::Break)));
        let f = head_of(&[0xfa, 0x7f, 0xc0, 0x12, 0x34]);
        assert!(matches!(f, Ok(Head::F32(x)) if x.to_bits() == 0x7fc0_1234));
    }

    #[test]
    fn malformed_heads() {
        assert!(matches!(head_of(&[]), Err(DecodeErrorKind::UnexpectedEnd)));
        assert!(matches!(head_of(&[0x19, 0x01]), Err(DecodeErrorKind::UnexpectedEnd)));
        for b in [0x1c, 0x3d, 0x5e, 0x7c, 0x9d, 0xbe, 0xdc, 0xfc] {
            assert!(matches!(head_of(&[b]), Err(DecodeErrorKind::InvalidCbor { .. })), "{b:#x}");
        }
        for b in [0x1f, 0x3f, 0xdf] {
            assert!(matches!(head_of(&[b]), Err(DecodeErrorKind::InvalidCbor { .. })), "{b:#x}");
        }
    }

    #[test]
    fn fits_never_overflows() {
        let r = Reader::new(&[0; 10], 0, 32);
        assert_eq!(r.fits(0, 10, 1), Ok(10));
        assert_eq!(r.fits(0, 5, 2), Ok(5));
        assert!(r.fits(0, 6, 2).is_err());
        assert!(r.fits(0, u64::MAX, 1).is_err());
        assert!(r.fits(0, 0, 0).is_ok());
    }

    #[test]
    fn paths_render_keys_escaped_and_short() {
        let e = DecodeError::new(DecodeErrorKind::InvalidUtf8, 3)
            .under(PathSegment::Index(2))
            .under(PathSegment::Key("a\"\n".into()));
        assert_eq!(e.path(), [PathSegment::Key("a\"\n".into()), PathSegment::Index(2)]);
        assert_eq!(
            e.to_string(),
            "invalid valueset: text string is not valid utf-8 at byte 3 under [\"a\\\"\\n\"][2]"
        );
        let long = "é".repeat(70);
        let shown = format!("{:?}", Shortened(&long));
        assert_eq!(shown, format!("{:?}… (140 bytes)", "é".repeat(64)));
    }
}
