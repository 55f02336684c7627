//! App-service connections on the wire: the frames two peers exchange once the broker has
//! connected them. (The Windows status enumerations they carry live in [`crate::status`] and are
//! re-exported here.)
//!
//! After the broker has connected a client and a provider it hands each one end of a
//! `SOCK_SEQPACKET` pair; from then on they exchange [`ChannelFrame`]s directly. A frame whose
//! message does not fit one socket message ([`INLINE_MESSAGE_MAX`]) carries it in a sealed
//! memfd attached to the same socket message, and says so with [`ChannelFrame::memfd_len`].

use minicbor::{Decode, Encode};

pub use crate::status::{
    AppServiceClosedStatus, AppServiceConnectionStatus, AppServiceResponseStatus,
    BackgroundTaskCancellationReason, FullTrustLaunchResult, StatelessAppServiceResponseStatus,
};
use crate::valueset::ValueSet;

/// The largest frame sent inline in one socket message; a larger message travels in a sealed
/// memfd. (A `SOCK_SEQPACKET` message must fit the socket's send buffer, about 208 KiB by
/// default; 64 KiB leaves room and keeps the receive buffer small.)
pub const INLINE_MESSAGE_MAX: usize = 64 * 1024;

/// The default largest message a service accepts when its manifest does not say
/// (`max-message-size`): 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 16 * 1024 * 1024;

/// What a [`ChannelFrame`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[cbor(index_only)]
pub enum ChannelKind {
    /// A request (`SendMessageAsync`); either side may send one.
    #[n(0)]
    Request,
    /// The response to the request with the same id, sent when the receiver's handler (and
    /// every deferral it took) completed.
    #[n(1)]
    Response,
    /// The sender is closing the connection (`Close()`); `status` is the
    /// [`AppServiceClosedStatus`] the other side reports.
    #[n(2)]
    Close,
}

/// One message on an app-service connection.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct ChannelFrame {
    /// Request id chosen by the requester (non-zero); the response repeats it; 0 for close.
    #[n(0)]
    pub id: u64,
    /// Request, response or close.
    #[n(1)]
    pub kind: ChannelKind,
    /// For a response: an [`AppServiceResponseStatus`] value; for a close: an
    /// [`AppServiceClosedStatus`] value; 0 otherwise.
    #[n(2)]
    pub status: u32,
    /// The message, when it is sent inline.
    #[n(3)]
    pub message: Option<ValueSet>,
    /// The message is in the sealed memfd attached to this socket message, this many bytes
    /// of CBOR (a `ValueSet` as `ValueSet::to_cbor` writes it).
    #[n(4)]
    pub memfd_len: Option<u64>,
}

impl ChannelFrame {
    /// Encodes the frame.
    pub fn to_cbor(&self) -> Vec<u8> {
        minicbor::to_vec(self).expect("encoding into a Vec cannot fail")
    }

    /// Encodes a frame of these fields without building one (the message is borrowed, not
    /// cloned): the same bytes as [`ChannelFrame::to_cbor`], in one allocation when
    /// `message_len` is the message's encoded length.
    pub fn encode_parts(
        id: u64,
        kind: ChannelKind,
        status: u32,
        message: Option<&ValueSet>,
        message_len: usize,
        memfd_len: Option<u64>,
    ) -> Vec<u8> {
        let f = ChannelFrameRef { id, kind, status, message, memfd_len };
        let mut out = Vec::with_capacity(message_len + 32);
        minicbor::encode(&f, &mut out).expect("encoding into a Vec cannot fail");
        out
    }

    /// Decodes one frame; refuses trailing bytes.
    pub fn from_cbor(bytes: &[u8]) -> Result<ChannelFrame, crate::frame::FrameError> {
        use crate::frame::FrameError;
        let mut d = minicbor::Decoder::new(bytes);
        let frame: ChannelFrame = d.decode().map_err(|e| FrameError::Malformed(e.to_string()))?;
        let rest = bytes.len() - d.position();
        if rest != 0 {
            return Err(FrameError::Trailing(rest));
        }
        Ok(frame)
    }
}

/// [`ChannelFrame`] with its message borrowed, for encoding (same indices, same bytes).
#[derive(Encode)]
struct ChannelFrameRef<'a> {
    #[n(0)]
    id: u64,
    #[n(1)]
    kind: ChannelKind,
    #[n(2)]
    status: u32,
    #[n(3)]
    message: Option<&'a ValueSet>,
    #[n(4)]
    memfd_len: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_parts_writes_the_frames_bytes() {
        let mut vs = ValueSet::new();
        vs.insert("Command", "Ping");
        vs.insert("Id", 7i32);
        vs.insert("Value", 1.5f64);
        for (message, memfd_len) in [(Some(vs.clone()), None), (None, Some(99)), (None, None)] {
            for kind in [ChannelKind::Request, ChannelKind::Response, ChannelKind::Close] {
                let f =
                    ChannelFrame { id: 41, kind, status: 3, message: message.clone(), memfd_len };
                let len = message.as_ref().map_or(0, ValueSet::encoded_len);
                let parts =
                    ChannelFrame::encode_parts(41, kind, 3, message.as_ref(), len, memfd_len);
                assert_eq!(parts, f.to_cbor(), "{kind:?} {memfd_len:?}");
            }
        }
    }

    #[test]
    fn frame_round_trip() {
        let mut vs = ValueSet::new();
        vs.insert("a", 1i32);
        let f = ChannelFrame {
            id: 3,
            kind: ChannelKind::Request,
            status: 0,
            message: Some(vs),
            memfd_len: None,
        };
        assert_eq!(ChannelFrame::from_cbor(&f.to_cbor()).unwrap(), f);
        assert!(ChannelFrame::from_cbor(b"\xff").is_err());
    }
}
