//! The frame layout of a broker session: one CBOR-encoded [`Frame`] per socket message.
//!
//! A session is a `SOCK_SEQPACKET` unix socket; every socket message is exactly one
//! [`Frame`], at most [`MAX_FRAME_LEN`] bytes, with any fds it carries attached to that same
//! socket message (`SCM_RIGHTS`). A client sends requests, each with an id of its choosing;
//! the broker answers each with one [`Reply`] carrying the same id, in any order, and may send
//! events (id 0) at any time. See `docs/wire.md`.

use minicbor::{Decode, Encode};

use crate::protocol::{Event, Request};
use crate::status::ErrorReply;

/// Version of this protocol; the broker reports it in `broker.Ping`.
pub const PROTOCOL_VERSION: u32 = 2;

/// The largest frame either side sends or accepts on a broker session. A larger one closes
/// the connection.
pub const MAX_FRAME_LEN: usize = 128 * 1024;

/// One socket message. Exactly one of `request`, `reply` or `event` is present.
///
/// A request of a kind this broker does not know decodes as [`Request::Unknown`] and is
/// answered with [`ErrorKind::Unsupported`](crate::status::ErrorKind::Unsupported) instead of
/// tearing down the session.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Frame {
    /// Request id, chosen by the client (non-zero); echoed in the reply; 0 for events.
    #[n(0)]
    pub id: u64,
    /// A request (client → broker).
    #[n(1)]
    pub request: Option<Request>,
    /// A reply (broker → client).
    #[n(2)]
    pub reply: Option<Reply>,
    /// An event (broker → client).
    #[n(3)]
    pub event: Option<Event>,
}

/// Why bytes could not be read as a frame (or a reply as the type its request returns).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Longer than [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_LEN}")]
    TooLarge(usize),
    /// Not a CBOR frame of this protocol.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// Bytes left after the frame.
    #[error("malformed frame: {0} trailing bytes")]
    Trailing(usize),
}

impl Frame {
    /// A request frame.
    pub fn request(id: u64, request: impl Into<Request>) -> Frame {
        Frame { id, request: Some(request.into()), reply: None, event: None }
    }

    /// A reply frame.
    pub fn reply(id: u64, reply: Reply) -> Frame {
        Frame { id, request: None, reply: Some(reply), event: None }
    }

    /// An event frame.
    pub fn event(event: impl Into<Event>) -> Frame {
        Frame { id: 0, request: None, reply: None, event: Some(event.into()) }
    }

    /// Encodes the frame.
    pub fn to_cbor(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Decodes a frame, refusing oversized input and trailing bytes.
    pub fn from_cbor(bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge(bytes.len()));
        }
        definite_lengths_only(bytes)?;
        decode_exact(bytes)
    }
}

/// Refuses indefinite-length strings, arrays and maps anywhere in a frame (RFC 8949 §4.2.1,
/// preferred serialization: what the SDK and every documented client send). Accepting them
/// would let a frame's re-encoding be longer than the frame (a `0x9f … 0xff` array of 256 or more
/// items re-encodes with a 3-byte head), so a size checked on the bytes received would not bound
/// what the broker passes on. One pass over the heads; every item is at least a byte, so
/// the walk ends within `bytes.len()` steps.
pub(crate) fn definite_lengths_only(bytes: &[u8]) -> Result<(), FrameError> {
    let malformed = |at: usize, what: &str| FrameError::Malformed(format!("{what} at byte {at}"));
    let (mut pos, mut pending) = (0usize, 1u64);
    while pending > 0 {
        let at = pos;
        let ib = *bytes.get(pos).ok_or_else(|| malformed(at, "unexpected end"))?;
        pos += 1;
        let (major, info) = (ib >> 5, ib & 0x1f);
        if info == 31 {
            return Err(malformed(at, "indefinite-length item (frames use definite lengths only)"));
        }
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let n = 1usize << (info - 24);
                let b = bytes.get(pos..pos + n).ok_or_else(|| malformed(at, "unexpected end"))?;
                pos += n;
                b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x))
            }
            _ => return Err(malformed(at, "reserved additional information")),
        };
        pending -= 1;
        let more = match major {
            2 | 3 => {
                let len = usize::try_from(arg).map_err(|_| malformed(at, "string too long"))?;
                pos = pos
                    .checked_add(len)
                    .filter(|p| *p <= bytes.len())
                    .ok_or_else(|| malformed(at, "unexpected end"))?;
                0
            }
            4 => arg,
            5 => arg.checked_mul(2).ok_or_else(|| malformed(at, "map too long"))?,
            6 => 1,
            _ => 0,
        };
        pending = pending.checked_add(more).ok_or_else(|| malformed(at, "too many items"))?;
        if pending > (bytes.len() - pos) as u64 {
            return Err(malformed(at, "more items than bytes left"));
        }
    }
    Ok(())
}

/// Decodes exactly one item of `T` from `bytes`.
pub(crate) fn decode_exact<'b, T: Decode<'b, ()>>(bytes: &'b [u8]) -> Result<T, FrameError> {
    let mut d = minicbor::Decoder::new(bytes);
    let v: T = d.decode().map_err(|e| FrameError::Malformed(e.to_string()))?;
    let rest = bytes.len() - d.position();
    if rest != 0 {
        return Err(FrameError::Trailing(rest));
    }
    Ok(v)
}

/// One CBOR data item kept as its bytes: a reply's output, decoded only by the side that
/// knows which type its request returns.
#[derive(Clone, PartialEq, Eq)]
pub struct Raw(Vec<u8>);

impl std::fmt::Debug for Raw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Raw(")?;
        for b in self.0.iter().take(32) {
            write!(f, "{b:02x}")?;
        }
        if self.0.len() > 32 {
            write!(f, "…+{}", self.0.len() - 32)?;
        }
        write!(f, ")")
    }
}

impl Raw {
    /// Encodes `value` as one item.
    pub fn encode<T: Encode<()>>(value: &T) -> Raw {
        Raw(minicbor::to_vec(value).expect("encoding into a Vec cannot fail"))
    }

    /// Decodes the item as `T`.
    pub fn decode<'b, T: Decode<'b, ()>>(&'b self) -> Result<T, FrameError> {
        decode_exact(&self.0)
    }

    /// The item's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl<C> Encode<C> for Raw {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut minicbor::Encoder<W>,
        _: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.writer_mut().write_all(&self.0).map_err(minicbor::encode::Error::write)
    }
}

impl<'b, C> Decode<'b, C> for Raw {
    fn decode(d: &mut minicbor::Decoder<'b>, _: &mut C) -> Result<Self, minicbor::decode::Error> {
        let start = d.position();
        d.skip()?;
        Ok(Raw(d.input()[start..d.position()].to_vec()))
    }
}

/// The broker's answer to one request: `[0, output]` with the output of the request's type, or
/// `[1, ErrorReply]`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Success: the output, encoded as the request's [`Call::Output`](crate::protocol::Call).
    Ok(Raw),
    /// The request failed.
    Err(ErrorReply),
}

impl<C> Encode<C> for Reply {
    fn encode<W: minicbor::encode::Write>(
        &self,
        e: &mut minicbor::Encoder<W>,
        ctx: &mut C,
    ) -> Result<(), minicbor::encode::Error<W::Error>> {
        e.array(2)?;
        match self {
            Reply::Ok(raw) => e.u8(0)?.encode_with(raw, ctx)?.ok(),
            Reply::Err(err) => e.u8(1)?.encode(err)?.ok(),
        }
    }
}

impl<'b, C> Decode<'b, C> for Reply {
    fn decode(d: &mut minicbor::Decoder<'b>, ctx: &mut C) -> Result<Self, minicbor::decode::Error> {
        if d.array()? != Some(2) {
            return Err(minicbor::decode::Error::message("a reply is [kind, body]"));
        }
        match d.u8()? {
            0 => Ok(Reply::Ok(d.decode_with(ctx)?)),
            1 => Ok(Reply::Err(d.decode()?)),
            k => Err(minicbor::decode::Error::message(format!("reply kind {k}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::broker::Resync;

    /// Found by the `frame` fuzz target: an indefinite-length array of 256 or more items
    /// decoded, and its re-encoding was a byte longer than the frame.
    #[test]
    fn indefinite_lengths_are_refused_where_the_definite_form_decodes() {
        let definite = Frame::request(7, Resync { sent: vec![0; 300] }).to_cbor();
        let head = definite.windows(3).position(|w| w == [0x99, 0x01, 0x2c]).expect("array head");
        let mut indefinite = definite[..head].to_vec();
        indefinite.push(0x9f);
        indefinite.extend_from_slice(&definite[head + 3..head + 3 + 300]);
        indefinite.push(0xff);
        indefinite.extend_from_slice(&definite[head + 3 + 300..]);
        assert!(Frame::from_cbor(&definite).is_ok());
        let e = Frame::from_cbor(&indefinite).unwrap_err().to_string();
        assert!(e.contains("indefinite-length item") && e.contains(&format!("byte {head}")), "{e}");
    }

    #[test]
    fn the_walk_refuses_truncated_and_overlong_heads() {
        for bad in [
            &[0x82, 0x01][..],
            &[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x5a, 0, 0, 0, 9, 1],
            &[0x1c],
        ] {
            assert!(matches!(Frame::from_cbor(bad), Err(FrameError::Malformed(_))), "{bad:02x?}");
        }
    }
}
