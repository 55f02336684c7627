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

#[cfg(test)]
mod tests {
    use super::*;

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
