//! App services on the wire: the Windows status enumerations with their exact numeric values,
//! and the frames two peers exchange on an app-service connection.
//!
//! After the broker has connected a client and a provider it hands each one end of a
//! `SOCK_SEQPACKET` pair; from then on they exchange [`ChannelFrame`]s directly. A frame whose
//! message does not fit one socket message ([`INLINE_MESSAGE_MAX`]) carries it in a sealed
//! memfd attached to the same socket message, and says so with [`ChannelFrame::memfd_len`].

use minicbor::{Decode, Encode};

use crate::valueset::ValueSet;

macro_rules! windows_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode)]
        #[cbor(index_only)]
        #[repr(u32)]
        pub enum $name {
            $($(#[$vm])* #[n($value)] $variant = $value,)*
        }

        impl $name {
            /// The Windows numeric value.
            pub fn value(self) -> u32 {
                self as u32
            }

            /// The variant with this Windows numeric value.
            pub fn from_value(v: u32) -> Option<$name> {
                match v {
                    $($value => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// The Windows name of the value.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{} ({})", self.name(), self.value())
            }
        }
    };
}

windows_enum!(
    /// `AppServiceConnectionStatus`: the result of `OpenAsync`.
    AppServiceConnectionStatus {
        /// The connection is open.
        Success = 0,
        /// No package with that family name is installed.
        AppNotInstalled = 1,
        /// The package is installed but cannot be used now (being deployed, or its service
        /// host failed to start).
        AppUnavailable = 2,
        /// The package does not declare that app service.
        AppServiceUnavailable = 3,
        /// Some other failure.
        Unknown = 4,
        /// (Remote) the device is unreachable.
        RemoteSystemUnavailable = 5,
        /// (Remote) the service does not support remote systems.
        RemoteSystemNotSupportedByApp = 6,
        /// The caller is not authorized to connect.
        NotAuthorized = 7,
        /// Account authentication failed.
        AuthenticationError = 8,
        /// No network.
        NetworkNotAvailable = 9,
        /// Blocked by policy.
        DisabledByPolicy = 10,
        /// A web service the connection depends on is unavailable.
        WebServiceUnavailable = 11,
    }
);

windows_enum!(
    /// `AppServiceResponseStatus`: the result of `SendMessageAsync` / `SendResponseAsync`.
    AppServiceResponseStatus {
        /// Delivered and handled.
        Success = 0,
        /// The other side could not receive or handle it.
        Failure = 1,
        /// The service exited for lack of resources.
        ResourceLimitsExceeded = 2,
        /// Some other failure.
        Unknown = 3,
        /// (Remote) the device is unreachable.
        RemoteSystemUnavailable = 4,
        /// The message is larger than the service accepts.
        MessageSizeTooLarge = 5,
        /// The app failed to start.
        AppUnavailable = 6,
        /// Account authentication failed.
        AuthenticationError = 7,
        /// No network.
        NetworkNotAvailable = 8,
        /// Blocked by policy.
        DisabledByPolicy = 9,
        /// A web service is unavailable.
        WebServiceUnavailable = 10,
    }
);

windows_enum!(
    /// `AppServiceClosedStatus`: why `ServiceClosed` fired.
    AppServiceClosedStatus {
        /// Closed gracefully.
        Completed = 0,
        /// Closed by the other side or by the system.
        Canceled = 1,
        /// Closed for lack of resources.
        ResourceLimitsExceeded = 2,
        /// Closed for an unknown reason (the other side vanished).
        Unknown = 3,
    }
);

windows_enum!(
    /// `StatelessAppServiceResponseStatus`: the result of `SendStatelessMessageAsync`.
    StatelessAppServiceResponseStatus {
        /// Delivered and handled.
        Success = 0,
        /// Not installed.
        AppNotInstalled = 1,
        /// Installed but unusable now.
        AppUnavailable = 2,
        /// No such service.
        AppServiceUnavailable = 3,
        /// (Remote) unreachable.
        RemoteSystemUnavailable = 4,
        /// (Remote) not supported.
        RemoteSystemNotSupportedByApp = 5,
        /// Not authorized.
        NotAuthorized = 6,
        /// Resources exhausted.
        ResourceLimitsExceeded = 7,
        /// Message too large.
        MessageSizeTooLarge = 8,
        /// The other side failed.
        Failure = 9,
        /// Other failure.
        Unknown = 10,
        /// Authentication failed.
        AuthenticationError = 11,
        /// No network.
        NetworkNotAvailable = 12,
        /// Blocked by policy.
        DisabledByPolicy = 13,
        /// A web service is unavailable.
        WebServiceUnavailable = 14,
    }
);

windows_enum!(
    /// `BackgroundTaskCancellationReason`: why a provider host is being stopped.
    BackgroundTaskCancellationReason {
        /// Canceled by the application or for an unspecified reason.
        Abort = 0,
        /// The app is terminating.
        Terminating = 1,
        /// The user is logging off.
        LoggingOff = 2,
        /// The package is being updated.
        ServicingUpdate = 3,
        /// The task was active but doing no work (idle timeout).
        IdleTask = 4,
        /// The package is being uninstalled.
        Uninstall = 5,
        /// A condition of the task no longer holds.
        ConditionLoss = 6,
        /// System policy.
        SystemPolicy = 7,
        /// Quiet hours (obsolete).
        QuietHoursEntered = 8,
        /// The task ran out of time.
        ExecutionTimeExceeded = 9,
        /// Resources were revoked.
        ResourceRevocation = 10,
        /// Energy saver.
        EnergySaver = 11,
    }
);

windows_enum!(
    /// `FullTrustLaunchResult`: the result of `FullTrustProcessLauncher`'s `…WithArguments`
    /// calls (and the outcome of the others).
    FullTrustLaunchResult {
        /// The process was started.
        Success = 0,
        /// The caller may not launch it (no `runFullTrust`, or another package's executable).
        AccessDenied = 1,
        /// No such full-trust executable, application or parameter group.
        FileNotFound = 2,
        /// Something else failed.
        Unknown = 3,
    }
);

impl From<AppServiceConnectionStatus> for StatelessAppServiceResponseStatus {
    fn from(s: AppServiceConnectionStatus) -> Self {
        use AppServiceConnectionStatus as C;
        use StatelessAppServiceResponseStatus as S;
        match s {
            C::Success => S::Success,
            C::AppNotInstalled => S::AppNotInstalled,
            C::AppUnavailable => S::AppUnavailable,
            C::AppServiceUnavailable => S::AppServiceUnavailable,
            C::Unknown => S::Unknown,
            C::RemoteSystemUnavailable => S::RemoteSystemUnavailable,
            C::RemoteSystemNotSupportedByApp => S::RemoteSystemNotSupportedByApp,
            C::NotAuthorized => S::NotAuthorized,
            C::AuthenticationError => S::AuthenticationError,
            C::NetworkNotAvailable => S::NetworkNotAvailable,
            C::DisabledByPolicy => S::DisabledByPolicy,
            C::WebServiceUnavailable => S::WebServiceUnavailable,
        }
    }
}

impl From<AppServiceResponseStatus> for StatelessAppServiceResponseStatus {
    fn from(s: AppServiceResponseStatus) -> Self {
        use AppServiceResponseStatus as R;
        use StatelessAppServiceResponseStatus as S;
        match s {
            R::Success => S::Success,
            R::Failure => S::Failure,
            R::ResourceLimitsExceeded => S::ResourceLimitsExceeded,
            R::Unknown => S::Unknown,
            R::RemoteSystemUnavailable => S::RemoteSystemUnavailable,
            R::MessageSizeTooLarge => S::MessageSizeTooLarge,
            R::AppUnavailable => S::AppUnavailable,
            R::AuthenticationError => S::AuthenticationError,
            R::NetworkNotAvailable => S::NetworkNotAvailable,
            R::DisabledByPolicy => S::DisabledByPolicy,
            R::WebServiceUnavailable => S::WebServiceUnavailable,
        }
    }
}

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
    pub fn from_cbor(bytes: &[u8]) -> Result<ChannelFrame, crate::protocol::FrameError> {
        use crate::protocol::FrameError;
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
    fn numeric_values_are_windows() {
        assert_eq!(AppServiceConnectionStatus::NotAuthorized.value(), 7);
        assert_eq!(AppServiceConnectionStatus::DisabledByPolicy.value(), 10);
        assert_eq!(AppServiceConnectionStatus::NetworkNotAvailable.value(), 9);
        assert_eq!(AppServiceResponseStatus::MessageSizeTooLarge.value(), 5);
        assert_eq!(AppServiceResponseStatus::AppUnavailable.value(), 6);
        assert_eq!(AppServiceClosedStatus::Canceled.value(), 1);
        assert_eq!(StatelessAppServiceResponseStatus::Failure.value(), 9);
        assert_eq!(BackgroundTaskCancellationReason::IdleTask.value(), 4);
        assert_eq!(BackgroundTaskCancellationReason::EnergySaver.value(), 11);
        // On the wire the value is the Windows number itself.
        let bytes = minicbor::to_vec(AppServiceConnectionStatus::WebServiceUnavailable).unwrap();
        assert_eq!(bytes, [0x0b]);
        assert_eq!(
            AppServiceResponseStatus::from_value(5),
            Some(AppServiceResponseStatus::MessageSizeTooLarge)
        );
        assert_eq!(AppServiceResponseStatus::from_value(11), None);
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
