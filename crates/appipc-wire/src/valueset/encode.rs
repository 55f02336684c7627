//! The CBOR encoder for [`ValueSet`] and [`PropertyValue`], their exact encoded length,
//! and the `minicbor` trait impls that let other messages embed them.

use minicbor::decode::{Decode, Decoder};
use minicbor::encode::{CborLen, Encode, Encoder, Error, Write};

use super::ValueSet;
use super::decode::{DecodeError, DecodeLimits, Reader};
use super::types::{DateTime, Guid, TimeSpan};
use super::value::PropertyValue;

/// Encoded length of a CBOR head with argument `n` (shortest form).
pub(crate) const fn head_len(n: u64) -> usize {
    match n {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

fn int_len(i: i64) -> usize {
    // A negative integer `i` is encoded as major type 1 with argument `-1 - i` = `!i`.
    head_len(if i < 0 { !i as u64 } else { i as u64 })
}

fn seq_len<T>(items: &[T], item_len: impl Fn(&T) -> usize) -> usize {
    head_len(items.len() as u64) + items.iter().map(item_len).sum::<usize>()
}

fn str_len(s: &str) -> usize {
    head_len(s.len() as u64) + s.len()
}

const GUID_LEN: usize = 17;
const F32_LEN: usize = 5;
const F64_LEN: usize = 9;

fn value_set_len(set: &ValueSet) -> usize {
    head_len(set.len() as u64) + set.iter().map(|(k, v)| str_len(k) + value_len(v)).sum::<usize>()
}

fn value_len(value: &PropertyValue) -> usize {
    use PropertyValue as V;
    let payload = match value {
        V::Empty | V::Boolean(_) => 1,
        V::UInt8(x) => head_len(u64::from(*x)),
        V::Int16(x) => int_len(i64::from(*x)),
        V::UInt16(x) | V::Char16(x) => head_len(u64::from(*x)),
        V::Int32(x) => int_len(i64::from(*x)),
        V::UInt32(x) => head_len(u64::from(*x)),
        V::Int64(x) => int_len(*x),
        V::UInt64(x) => head_len(*x),
        V::Single(_) => F32_LEN,
        V::Double(_) => F64_LEN,
        V::String(s) => str_len(s),
        V::DateTime(d) => int_len(d.universal_time),
        V::TimeSpan(t) => int_len(t.duration),
        V::Guid(_) => GUID_LEN,
        V::Point(_) | V::Size(_) => 1 + 2 * F32_LEN,
        V::Rect(_) => 1 + 4 * F32_LEN,
        V::UInt8Array(b) => head_len(b.len() as u64) + b.len(),
        V::Int16Array(a) => seq_len(a, |x| int_len(i64::from(*x))),
        V::UInt16Array(a) | V::Char16Array(a) => seq_len(a, |x| head_len(u64::from(*x))),
        V::Int32Array(a) => seq_len(a, |x| int_len(i64::from(*x))),
        V::UInt32Array(a) => seq_len(a, |x| head_len(u64::from(*x))),
        V::Int64Array(a) => seq_len(a, |x| int_len(*x)),
        V::UInt64Array(a) => seq_len(a, |x| head_len(*x)),
        V::SingleArray(a) => seq_len(a, |_| F32_LEN),
        V::DoubleArray(a) => seq_len(a, |_| F64_LEN),
        V::BooleanArray(a) => seq_len(a, |_| 1),
        V::StringArray(a) => seq_len(a, |s| str_len(s)),
        V::DateTimeArray(a) => seq_len(a, |d| int_len(d.universal_time)),
        V::TimeSpanArray(a) => seq_len(a, |t| int_len(t.duration)),
        V::GuidArray(a) => seq_len(a, |_| GUID_LEN),
        V::PointArray(a) => seq_len(a, |_| 1 + 2 * F32_LEN),
        V::SizeArray(a) => seq_len(a, |_| 1 + 2 * F32_LEN),
        V::RectArray(a) => seq_len(a, |_| 1 + 4 * F32_LEN),
        V::ValueSet(set) => value_set_len(set),
    };
    1 + head_len(u64::from(value.property_type().as_u16())) + payload
}

pub(crate) fn encoded_len(set: &ValueSet) -> usize {
    value_set_len(set)
}

fn encode_value_set<W: Write>(set: &ValueSet, e: &mut Encoder<W>) -> Result<(), Error<W::Error>> {
    e.map(set.len() as u64)?;
    for (key, value) in set {
        e.str(key)?;
        encode_value(value, e)?;
    }
    Ok(())
}

macro_rules! encode_array {
    ($e:expr, $items:expr, |$x:ident| $body:expr) => {{
        $e.array($items.len() as u64)?;
        for $x in $items.iter() {
            $body;
        }
    }};
}

fn encode_value<W: Write>(
    value: &PropertyValue,
    e: &mut Encoder<W>,
) -> Result<(), Error<W::Error>> {
    use PropertyValue as V;
    e.array(2)?.u16(value.property_type().as_u16())?;
    match value {
        V::Empty => {
            e.null()?;
        }
        V::UInt8(x) => {
            e.u8(*x)?;
        }
        V::Int16(x) => {
            e.i16(*x)?;
        }
        V::UInt16(x) | V::Char16(x) => {
            e.u16(*x)?;
        }
        V::Int32(x) => {
            e.i32(*x)?;
        }
        V::UInt32(x) => {
            e.u32(*x)?;
        }
        V::Int64(x) => {
            e.i64(*x)?;
        }
        V::UInt64(x) => {
            e.u64(*x)?;
        }
        V::Single(x) => {
            e.f32(*x)?;
        }
        V::Double(x) => {
            e.f64(*x)?;
        }
        V::Boolean(x) => {
            e.bool(*x)?;
        }
        V::String(s) => {
            e.str(s)?;
        }
        V::DateTime(d) => {
            e.i64(d.universal_time)?;
        }
        V::TimeSpan(t) => {
            e.i64(t.duration)?;
        }
        V::Guid(g) => {
            e.bytes(&g.to_bytes())?;
        }
        V::Point(p) => {
            e.array(2)?.f32(p.x)?.f32(p.y)?;
        }
        V::Size(s) => {
            e.array(2)?.f32(s.width)?.f32(s.height)?;
        }
        V::Rect(r) => {
            e.array(4)?.f32(r.x)?.f32(r.y)?.f32(r.width)?.f32(r.height)?;
        }
        V::UInt8Array(b) => {
            e.bytes(b)?;
        }
        V::Int16Array(a) => encode_array!(e, a, |x| e.i16(*x)?),
        V::UInt16Array(a) | V::Char16Array(a) => encode_array!(e, a, |x| e.u16(*x)?),
        V::Int32Array(a) => encode_array!(e, a, |x| e.i32(*x)?),
        V::UInt32Array(a) => encode_array!(e, a, |x| e.u32(*x)?),
        V::Int64Array(a) => encode_array!(e, a, |x| e.i64(*x)?),
        V::UInt64Array(a) => encode_array!(e, a, |x| e.u64(*x)?),
        V::SingleArray(a) => encode_array!(e, a, |x| e.f32(*x)?),
        V::DoubleArray(a) => encode_array!(e, a, |x| e.f64(*x)?),
        V::BooleanArray(a) => encode_array!(e, a, |x| e.bool(*x)?),
        V::StringArray(a) => encode_array!(e, a, |x| e.str(x)?),
        V::DateTimeArray(a) => encode_array!(e, a, |x| e.i64(x.universal_time)?),
        V::TimeSpanArray(a) => encode_array!(e, a, |x| e.i64(x.duration)?),
        V::GuidArray(a) => encode_array!(e, a, |x| e.bytes(&x.to_bytes())?),
        V::PointArray(a) => encode_array!(e, a, |p| e.array(2)?.f32(p.x)?.f32(p.y)?),
        V::SizeArray(a) => {
            encode_array!(e, a, |s| e.array(2)?.f32(s.width)?.f32(s.height)?)
        }
        V::RectArray(a) => {
            encode_array!(e, a, |r| e.array(4)?.f32(r.x)?.f32(r.y)?.f32(r.width)?.f32(r.height)?)
        }
        V::ValueSet(set) => encode_value_set(set, e)?,
    }
    Ok(())
}

pub(crate) fn to_vec(set: &ValueSet) -> Vec<u8> {
    let mut buf = Vec::with_capacity(encoded_len(set));
    // Writing to a Vec cannot fail and the encoder raises no errors of its own.
    if let Err(e) = encode_value_set(set, &mut Encoder::new(&mut buf)) {
        match e.into_write() {
            Some(never) => match never {},
            None => unreachable!("encoding a valueset raises no encoder errors"),
        }
    }
    buf
}

/// Turns a decoder error into minicbor's, keeping ours as its source.
fn to_minicbor(err: DecodeError) -> minicbor::decode::Error {
    let offset = err.offset();
    let message = err.to_string();
    minicbor::decode::Error::custom(err).with_message(message).at(offset)
}

/// Encodes as the CBOR map of the `ValueSet` encoding (`docs/wire.md`).
impl<C> Encode<C> for ValueSet {
    fn encode<W: Write>(&self, e: &mut Encoder<W>, _: &mut C) -> Result<(), Error<W::Error>> {
        encode_value_set(self, e)
    }
}

impl<C> CborLen<C> for ValueSet {
    fn cbor_len(&self, _: &mut C) -> usize {
        value_set_len(self)
    }
}

/// Decodes with the strict `ValueSet` decoder and [`DecodeLimits::DEFAULT_MAX_DEPTH`].
/// The enclosing message's length bounds the input; on failure the error's
/// `source()` is the [`DecodeError`].
impl<'b, C> Decode<'b, C> for ValueSet {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let mut r = Reader::new(d.input(), d.position(), DecodeLimits::DEFAULT_MAX_DEPTH);
        let set = r.value_set(1).map_err(to_minicbor)?;
        d.set_position(r.position());
        Ok(set)
    }
}

/// Encodes as one `[type_code, payload]` value of the `ValueSet` encoding.
impl<C> Encode<C> for PropertyValue {
    fn encode<W: Write>(&self, e: &mut Encoder<W>, _: &mut C) -> Result<(), Error<W::Error>> {
        encode_value(self, e)
    }
}

impl<C> CborLen<C> for PropertyValue {
    fn cbor_len(&self, _: &mut C) -> usize {
        value_len(self)
    }
}

/// Decodes one `[type_code, payload]` value; a nested set in it counts as level 1 of
/// [`DecodeLimits::DEFAULT_MAX_DEPTH`].
impl<'b, C> Decode<'b, C> for PropertyValue {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let mut r = Reader::new(d.input(), d.position(), DecodeLimits::DEFAULT_MAX_DEPTH);
        let value = r.value(0).map_err(to_minicbor)?;
        d.set_position(r.position());
        Ok(value)
    }
}

/// Encodes as a 16-byte byte string in text (RFC 9562) order.
impl<C> Encode<C> for Guid {
    fn encode<W: Write>(&self, e: &mut Encoder<W>, _: &mut C) -> Result<(), Error<W::Error>> {
        e.bytes(&self.to_bytes())?.ok()
    }
}

impl<C> CborLen<C> for Guid {
    fn cbor_len(&self, _: &mut C) -> usize {
        GUID_LEN
    }
}

/// Decodes a 16-byte byte string in text (RFC 9562) order.
impl<'b, C> Decode<'b, C> for Guid {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let p = d.position();
        let b = d.bytes()?;
        <[u8; 16]>::try_from(b)
            .map(Guid::from_bytes)
            .map_err(|_| minicbor::decode::Error::message("a guid must be 16 bytes").at(p))
    }
}

/// Encodes the tick count as a CBOR integer.
impl<C> Encode<C> for DateTime {
    fn encode<W: Write>(&self, e: &mut Encoder<W>, _: &mut C) -> Result<(), Error<W::Error>> {
        e.i64(self.universal_time)?.ok()
    }
}

impl<C> CborLen<C> for DateTime {
    fn cbor_len(&self, _: &mut C) -> usize {
        int_len(self.universal_time)
    }
}

/// Decodes a tick count from a CBOR integer.
impl<'b, C> Decode<'b, C> for DateTime {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        d.i64().map(DateTime::from_universal_time)
    }
}

/// Encodes the tick count as a CBOR integer.
impl<C> Encode<C> for TimeSpan {
    fn encode<W: Write>(&self, e: &mut Encoder<W>, _: &mut C) -> Result<(), Error<W::Error>> {
        e.i64(self.duration)?.ok()
    }
}

impl<C> CborLen<C> for TimeSpan {
    fn cbor_len(&self, _: &mut C) -> usize {
        int_len(self.duration)
    }
}

/// Decodes a tick count from a CBOR integer.
impl<'b, C> Decode<'b, C> for TimeSpan {
    fn decode(d: &mut Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        d.i64().map(TimeSpan::from_ticks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_lengths_match_minicbor() {
        for n in [0, 23, 24, 255, 256, 65_535, 65_536, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            assert_eq!(head_len(n), minicbor::to_vec(n).unwrap().len(), "{n}");
        }
        for i in [0, -1, -24, -25, -256, -257, i64::MIN, i64::MAX] {
            assert_eq!(int_len(i), minicbor::to_vec(i).unwrap().len(), "{i}");
        }
    }

    #[test]
    fn standalone_guid_and_times() {
        let g = Guid::from_u128(0x00112233_4455_6677_8899_aabbccddeeff);
        let bytes = minicbor::to_vec(g).unwrap();
        assert_eq!(bytes.len(), minicbor::len(g));
        assert_eq!(minicbor::decode::<Guid>(&bytes).unwrap(), g);
        assert!(minicbor::decode::<Guid>(&[0x41, 0x00]).is_err());

        let t = DateTime::UNIX_EPOCH;
        let bytes = minicbor::to_vec(t).unwrap();
        assert_eq!(bytes.len(), minicbor::len(t));
        assert_eq!(minicbor::decode::<DateTime>(&bytes).unwrap(), t);

        let s = TimeSpan::from_ticks(-5);
        let bytes = minicbor::to_vec(s).unwrap();
        assert_eq!(bytes, [0x24]);
        assert_eq!(minicbor::len(s), 1);
        assert_eq!(minicbor::decode::<TimeSpan>(&bytes).unwrap(), s);
    }
}
