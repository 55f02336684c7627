//! The broker protocol: every request a client may send, what it returns, and the events the
//! broker sends, one module per mechanism.
//!
//! Each request is a struct that implements [`Call`]: its [`Call::Output`] is what the broker
//! answers on success, and [`Call::fds`] says how many fds travel with it. On the wire a
//! request is `[mechanism, call, args]` (the struct's fields as a CBOR array), an event
//! `[mechanism, event, args]`, and a reply `[0, output]` or `[1, ErrorReply]`
//! ([`Reply`](crate::frame::Reply)). The tables in `docs/wire.md` are generated from
//! [`MECHANISMS`] and checked by a test, so they cannot go stale.
//!
//! Adding a request to a mechanism is one entry in its module here, its handler in the
//! broker's `mech/<mechanism>.rs`, and its call in the SDK. Adding a mechanism is one module
//! here and one line in [`mechanisms!`] below.
//!
//! Every type here is plain data (strings, numbers): validation into the typed identities of
//! `appipc-model` happens in the broker, at the boundary.

use minicbor::{Decode, Encode};

/// A request, and what the broker answers when it succeeds.
pub trait Call: Into<Request> + Clone + std::fmt::Debug {
    /// The success reply.
    type Output: Encode<()> + for<'b> Decode<'b, ()> + std::fmt::Debug;
    /// The mechanism it belongs to.
    const MECHANISM: Mechanism;
    /// Its number inside the mechanism.
    const INDEX: u32;
    /// Its name (as in `docs/wire.md`).
    const NAME: &'static str;
    /// How many fds travel with it (attached to the same socket message).
    fn fds(&self) -> usize;
}

/// One field of a request, reply or event, for the generated documentation.
#[derive(Debug, Clone, Copy)]
pub struct FieldSchema {
    /// Position in the CBOR array.
    pub index: u32,
    /// Name.
    pub name: &'static str,
    /// Rust type.
    pub ty: &'static str,
    /// Documentation.
    pub doc: &'static str,
}

/// One request, for the generated documentation.
#[derive(Debug, Clone, Copy)]
pub struct CallSchema {
    /// Number inside its mechanism.
    pub index: u32,
    /// Name.
    pub name: &'static str,
    /// Documentation (what it does, who may, which Windows codes its errors carry).
    pub doc: &'static str,
    /// Its arguments.
    pub fields: &'static [FieldSchema],
    /// The success output's type.
    pub output: &'static str,
    /// How many fds the request carries.
    pub fds: &'static str,
    /// How many fds the success reply carries.
    pub reply_fds: &'static str,
}

/// One event, for the generated documentation.
#[derive(Debug, Clone, Copy)]
pub struct EventSchema {
    /// Number inside its mechanism.
    pub index: u32,
    /// Name.
    pub name: &'static str,
    /// Documentation.
    pub doc: &'static str,
    /// Its fields.
    pub fields: &'static [FieldSchema],
    /// How many fds travel with it.
    pub fds: &'static str,
}

/// One mechanism's requests and events, for the generated documentation.
#[derive(Debug, Clone, Copy)]
pub struct MechanismSchema {
    /// Its module name (`storage`, …).
    pub module: &'static str,
    /// Documentation.
    pub doc: &'static str,
    /// Requests.
    pub requests: &'static [CallSchema],
    /// Events.
    pub events: &'static [EventSchema],
}

#[doc(hidden)]
#[macro_export]
macro_rules! __appipc_fds {
    ($s:ident, $n:literal) => {
        $n
    };
    ($s:ident, |$r:ident| $e:expr) => {{
        let $r = $s;
        $e
    }};
}

/// Declares one mechanism's requests and events: the structs, their [`Call`] impls, the
/// mechanism's `Request` and `Event` enums, and its [`MechanismSchema`].
macro_rules! mechanism {
    (
        $(#[doc = $mdoc:literal])*
        mechanism $mech:ident;
        requests {
            $(
                $(#[doc = $rdoc:literal])*
                $rindex:literal $rname:ident {
                    $( $(#[doc = $fdoc:literal])* $findex:literal $fname:ident : $fty:ty ),* $(,)?
                } fds($($fds:tt)*) -> $out:ty, reply fds $rfds:literal;
            )*
        }
        events {
            $(
                $(#[doc = $edoc:literal])*
                $eindex:literal $ename:ident {
                    $( $(#[doc = $efdoc:literal])* $efindex:literal $efname:ident : $efty:ty ),* $(,)?
                } fds $efds:literal;
            )*
        }
    ) => {
        $(
            $(#[doc = $rdoc])*
            #[derive(Debug, Clone, PartialEq, ::minicbor::Encode, ::minicbor::Decode)]
            pub struct $rname {
                $( $(#[doc = $fdoc])* #[n($findex)] pub $fname: $fty, )*
            }

            impl $crate::protocol::Call for $rname {
                type Output = $out;
                const MECHANISM: $crate::protocol::Mechanism = $crate::protocol::Mechanism::$mech;
                const INDEX: u32 = $rindex;
                const NAME: &'static str = stringify!($rname);
                fn fds(&self) -> usize {
                    $crate::__appipc_fds!(self, $($fds)*)
                }
            }

            impl From<$rname> for Request {
                fn from(r: $rname) -> Request {
                    Request::$rname(r)
                }
            }

            impl From<$rname> for $crate::protocol::Request {
                fn from(r: $rname) -> $crate::protocol::Request {
                    $crate::protocol::Request::$mech(Request::$rname(r))
                }
            }
        )*

        $(
            $(#[doc = $edoc])*
            #[derive(Debug, Clone, PartialEq, ::minicbor::Encode, ::minicbor::Decode)]
            pub struct $ename {
                $( $(#[doc = $efdoc])* #[n($efindex)] pub $efname: $efty, )*
            }

            impl From<$ename> for Event {
                fn from(e: $ename) -> Event {
                    Event::$ename(e)
                }
            }

            impl From<$ename> for $crate::protocol::Event {
                fn from(e: $ename) -> $crate::protocol::Event {
                    $crate::protocol::Event::$mech(Event::$ename(e))
                }
            }
        )*

        /// A request of this mechanism.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $( $(#[doc = $rdoc])* $rname($rname), )*
        }

        impl Request {
            /// The request's name.
            pub fn name(&self) -> &'static str {
                match *self {
                    $( Request::$rname(_) => stringify!($rname), )*
                }
            }

            /// How many fds travel with it.
            pub fn fds(&self) -> usize {
                match *self {
                    $( Request::$rname(ref r) => $crate::protocol::Call::fds(r), )*
                }
            }

            pub(crate) fn index(&self) -> u32 {
                match *self {
                    $( Request::$rname(_) => $rindex, )*
                }
            }

            pub(crate) fn encode_args<W: ::minicbor::encode::Write>(
                &self,
                e: &mut ::minicbor::Encoder<W>,
            ) -> Result<(), ::minicbor::encode::Error<W::Error>> {
                match *self {
                    $( Request::$rname(ref r) => { e.encode(r)?; } )*
                }
                Ok(())
            }

            /// See [`reencode_output`](crate::protocol::reencode_output).
            pub(crate) fn reencode_output(call: u32, bytes: &[u8]) -> Option<Option<Vec<u8>>> {
                match call {
                    $( $rindex => Some($crate::protocol::reencode::<$out>(bytes)), )*
                    _ => None,
                }
            }

            pub(crate) fn decode_args(
                call: u32,
                d: &mut ::minicbor::Decoder<'_>,
            ) -> Result<Option<Request>, ::minicbor::decode::Error> {
                Ok(Some(match call {
                    $( $rindex => Request::$rname(d.decode()?), )*
                    _ => {
                        d.skip()?;
                        return Ok(None);
                    }
                }))
            }
        }

        /// An event of this mechanism.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $( $(#[doc = $edoc])* $ename($ename), )*
        }

        impl Event {
            /// The event's name.
            pub fn name(&self) -> &'static str {
                match *self {
                    $( Event::$ename(_) => stringify!($ename), )*
                }
            }

            pub(crate) fn index(&self) -> u32 {
                match *self {
                    $( Event::$ename(_) => $eindex, )*
                }
            }

            #[allow(unreachable_code, unused_variables)] // a mechanism without events
            pub(crate) fn encode_args<W: ::minicbor::encode::Write>(
                &self,
                e: &mut ::minicbor::Encoder<W>,
            ) -> Result<(), ::minicbor::encode::Error<W::Error>> {
                match *self {
                    $( Event::$ename(ref v) => { e.encode(v)?; } )*
                }
                Ok(())
            }

            #[allow(unreachable_code)] // a mechanism without events
            pub(crate) fn decode_args(
                event: u32,
                d: &mut ::minicbor::Decoder<'_>,
            ) -> Result<Option<Event>, ::minicbor::decode::Error> {
                Ok(Some(match event {
                    $( $eindex => Event::$ename(d.decode()?), )*
                    _ => {
                        d.skip()?;
                        return Ok(None);
                    }
                }))
            }
        }

        /// This mechanism's requests and events, for the generated documentation.
        pub const SCHEMA: $crate::protocol::MechanismSchema = $crate::protocol::MechanismSchema {
            module: module_path!(),
            doc: concat!($($mdoc, "\n",)*),
            requests: &[$(
                $crate::protocol::CallSchema {
                    index: $rindex,
                    name: stringify!($rname),
                    doc: concat!($($rdoc, "\n",)*),
                    fields: &[$(
                        $crate::protocol::FieldSchema {
                            index: $findex,
                            name: stringify!($fname),
                            ty: stringify!($fty),
                            doc: concat!($($fdoc, "\n",)*),
                        },
                    )*],
                    output: stringify!($out),
                    fds: stringify!($($fds)*),
                    reply_fds: $rfds,
                },
            )*],
            events: &[$(
                $crate::protocol::EventSchema {
                    index: $eindex,
                    name: stringify!($ename),
                    doc: concat!($($edoc, "\n",)*),
                    fields: &[$(
                        $crate::protocol::FieldSchema {
                            index: $efindex,
                            name: stringify!($efname),
                            ty: stringify!($efty),
                            doc: concat!($($efdoc, "\n",)*),
                        },
                    )*],
                    fds: $efds,
                },
            )*],
        };
    };
}

pub(crate) use mechanism;

/// Decodes one `T` exactly as a reply's output is decoded, and encodes it again. An output
/// arrives inside a frame, whose bytes were checked for definite lengths only
/// ([`Frame::from_cbor`](crate::frame::Frame::from_cbor)); so are these.
pub(crate) fn reencode<T: Encode<()> + for<'b> Decode<'b, ()>>(bytes: &[u8]) -> Option<Vec<u8>> {
    crate::frame::definite_lengths_only(bytes).ok()?;
    let value = crate::frame::decode_exact::<T>(bytes).ok()?;
    Some(minicbor::to_vec(&value).expect("encoding into a Vec cannot fail"))
}

pub mod doc;
pub mod schema;

/// Registers the mechanisms: their numbers, the top-level [`Request`] and [`Event`] enums and
/// their encoding, and [`MECHANISMS`].
macro_rules! mechanisms {
    ($( $(#[doc = $doc:literal])* $mech:ident = $index:tt => $module:ident, )*) => {
        $( pub mod $module; )*

        /// The mechanisms, by number.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum Mechanism {
            $( $(#[doc = $doc])* $mech = $index, )*
        }

        impl Mechanism {
            /// Its module name (`storage`, …).
            pub fn name(self) -> &'static str {
                match self {
                    $( Mechanism::$mech => stringify!($module), )*
                }
            }
        }

        /// Any request a client may send.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Request {
            $( $(#[doc = $doc])* $mech($module::Request), )*
            /// A request this version does not know (answered `Unsupported`).
            Unknown {
                /// The mechanism number.
                mechanism: u32,
                /// The request number.
                call: u32,
            },
        }

        /// Any event the broker may send.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Event {
            $( $(#[doc = $doc])* $mech($module::Event), )*
            /// An event this version does not know (ignored).
            Unknown {
                /// The mechanism number.
                mechanism: u32,
                /// The event number.
                event: u32,
            },
        }

        impl Request {
            /// `mechanism.Name`, for logs.
            pub fn name(&self) -> String {
                match self {
                    $( Request::$mech(r) => format!("{}.{}", stringify!($module), r.name()), )*
                    Request::Unknown { mechanism, call } => format!("unknown.{mechanism}.{call}"),
                }
            }

            /// Its name inside its mechanism (`Ping`, …), without allocating.
            pub fn call_name(&self) -> &'static str {
                match self {
                    $( Request::$mech(r) => r.name(), )*
                    Request::Unknown { .. } => "unknown",
                }
            }

            /// The mechanism it belongs to (`None` for an unknown one).
            pub fn mechanism(&self) -> Option<Mechanism> {
                match self {
                    $( Request::$mech(_) => Some(Mechanism::$mech), )*
                    Request::Unknown { .. } => None,
                }
            }

            /// How many fds travel with it.
            pub fn fds(&self) -> usize {
                match self {
                    $( Request::$mech(r) => r.fds(), )*
                    Request::Unknown { .. } => 0,
                }
            }
        }

        impl Event {
            /// `mechanism.Name`, for logs.
            pub fn name(&self) -> String {
                match self {
                    $( Event::$mech(e) => format!("{}.{}", stringify!($module), e.name()), )*
                    Event::Unknown { mechanism, event } => format!("unknown.{mechanism}.{event}"),
                }
            }
        }

        impl<C> Encode<C> for Request {
            fn encode<W: minicbor::encode::Write>(
                &self,
                e: &mut minicbor::Encoder<W>,
                _: &mut C,
            ) -> Result<(), minicbor::encode::Error<W::Error>> {
                e.array(3)?;
                match self {
                    $( Request::$mech(r) => {
                        e.u32($index)?.u32(r.index())?;
                        r.encode_args(e)
                    } )*
                    Request::Unknown { mechanism, call } => {
                        e.u32(*mechanism)?.u32(*call)?.array(0)?.ok()
                    }
                }
            }
        }

        impl<'b, C> Decode<'b, C> for Request {
            fn decode(
                d: &mut minicbor::Decoder<'b>,
                _: &mut C,
            ) -> Result<Self, minicbor::decode::Error> {
                if d.array()? != Some(3) {
                    return Err(minicbor::decode::Error::message(
                        "a request is [mechanism, call, args]",
                    ));
                }
                let (mechanism, call) = (d.u32()?, d.u32()?);
                let known = match mechanism {
                    $( $index => $module::Request::decode_args(call, d)?.map(Request::$mech), )*
                    _ => {
                        d.skip()?;
                        None
                    }
                };
                Ok(known.unwrap_or(Request::Unknown { mechanism, call }))
            }
        }

        impl<C> Encode<C> for Event {
            fn encode<W: minicbor::encode::Write>(
                &self,
                e: &mut minicbor::Encoder<W>,
                _: &mut C,
            ) -> Result<(), minicbor::encode::Error<W::Error>> {
                e.array(3)?;
                match self {
                    $( Event::$mech(v) => {
                        e.u32($index)?.u32(v.index())?;
                        v.encode_args(e)
                    } )*
                    Event::Unknown { mechanism, event } => {
                        e.u32(*mechanism)?.u32(*event)?.array(0)?.ok()
                    }
                }
            }
        }

        impl<'b, C> Decode<'b, C> for Event {
            fn decode(
                d: &mut minicbor::Decoder<'b>,
                _: &mut C,
            ) -> Result<Self, minicbor::decode::Error> {
                if d.array()? != Some(3) {
                    return Err(minicbor::decode::Error::message(
                        "an event is [mechanism, event, args]",
                    ));
                }
                let (mechanism, event) = (d.u32()?, d.u32()?);
                let known = match mechanism {
                    $( $index => $module::Event::decode_args(event, d)?.map(Event::$mech), )*
                    _ => {
                        d.skip()?;
                        None
                    }
                };
                Ok(known.unwrap_or(Event::Unknown { mechanism, event }))
            }
        }

        /// Decodes `bytes` as the success output of request `call` of mechanism `mechanism`,
        /// as a client reads a reply ([`Raw::decode`](crate::frame::Raw::decode) of the
        /// request's [`Call::Output`]), and encodes what decoded again. `None`: there is no such
        /// request; `Some(None)`: the bytes are not such an output.
        ///
        /// For the fuzz targets (`fuzz/`), which check that a re-encoding decodes to itself;
        /// not part of the API.
        #[doc(hidden)]
        pub fn reencode_output(mechanism: u32, call: u32, bytes: &[u8]) -> Option<Option<Vec<u8>>> {
            match mechanism {
                $( $index => $module::Request::reencode_output(call, bytes), )*
                _ => None,
            }
        }

        /// Every mechanism, with its number, requests and events.
        pub const MECHANISMS: &[(u32, MechanismSchema)] = &[$( ($index, $module::SCHEMA), )*];
    };
}

mechanisms! {
    /// The session itself: liveness, identity, more sessions, stopping the broker.
    Broker = 0 => broker,
    /// Installing, listing and removing packages.
    Packages = 1 => packages,
    /// Starting applications and watching them.
    Launch = 2 => launch,
    /// App services (`Windows.ApplicationModel.AppService`).
    AppService = 3 => app_service,
    /// `FullTrustProcessLauncher`.
    FullTrust = 4 => full_trust,
    /// Publisher cache folders and file tokens.
    Storage = 5 => storage,
    /// Named objects: events, semaphores, mutexes, waitable timers, file mappings.
    NamedObjects = 6 => named_objects,
    /// Named pipes.
    Pipes = 7 => pipes,
    /// The broker's decisions (`appipc why`).
    Diagnostics = 8 => diagnostics,
    /// Protocol activation and `LaunchUriForResultsAsync` (`Windows.System.Launcher`).
    Launcher = 9 => launcher,
    /// Loopback rules and exemptions (`CheckNetIsolation LoopbackExempt`).
    Loopback = 10 => loopback,
    /// The registry, virtualized per package (`RegCreateKeyEx`, `RegNotifyChangeKeyValue`, …).
    Registry = 11 => registry,
    /// RPC endpoints guarded by security descriptors (`RpcServerUseProtseqEp` over `ncalrpc`).
    Rpc = 12 => rpc,
    /// Packaged COM: out-of-process servers activated by class id (`CoCreateInstance`).
    Com = 13 => com,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Frame, FrameError, Raw, Reply};
    use crate::status::{ErrorKind, ErrorReply, WindowsCode};

    /// Found by the `reply_output` fuzz target (long run at 5cbba9d): `broker.Resync`'s output
    /// (a list of ids) as an indefinite-length array of 270 items re-encoded 1 byte longer
    /// than it was. Outputs come inside frames, which refuse indefinite lengths; so does this.
    #[test]
    fn an_indefinite_length_output_is_refused_as_in_a_frame() {
        let mut indefinite = vec![0x9f];
        indefinite.extend(std::iter::repeat_n(0u8, 270));
        indefinite.push(0xff);
        assert_eq!(reencode_output(0, 4, &indefinite), Some(None));
        let mut definite = vec![0x99, 0x01, 0x0e];
        definite.extend(std::iter::repeat_n(0u8, 270));
        assert_eq!(reencode_output(0, 4, &definite), Some(Some(definite.clone())));
    }

    #[test]
    fn frame_round_trip() {
        let f = Frame::request(
            7,
            launch::Launch {
                target: "A_8wekyb3d8bbwe!App".into(),
                args: vec!["x".into()],
                stdio: true,
                notify_exit: false,
            },
        );
        assert_eq!(Frame::from_cbor(&f.to_cbor()).unwrap(), f);
        let r = Frame::reply(
            7,
            Reply::Err(ErrorReply {
                kind: ErrorKind::Downgrade,
                code: WindowsCode::None,
                message: "m".into(),
            }),
        );
        assert_eq!(Frame::from_cbor(&r.to_cbor()).unwrap(), r);
        let ok = Frame::reply(8, Reply::Ok(Raw::encode(&"path".to_owned())));
        let back = Frame::from_cbor(&ok.to_cbor()).unwrap();
        match back.reply {
            Some(Reply::Ok(raw)) => assert_eq!(raw.decode::<String>().unwrap(), "path"),
            other => panic!("{other:?}"),
        }
        let ev = Frame::event(launch::ProcessExited { pid: 3, code: Some(0), signal: None });
        assert_eq!(Frame::from_cbor(&ev.to_cbor()).unwrap(), ev);
    }

    #[test]
    fn request_layout_is_mechanism_call_args() {
        // broker.Ping with id 5: [5, [0, 0, []]] (absent trailing fields omitted).
        assert_eq!(
            Frame::request(5, broker::Ping {}).to_cbor(),
            [0x82, 0x05, 0x83, 0x00, 0x00, 0x80]
        );
        let f = Frame::request(5, storage::GetPublisherCacheFolder { name: "x".into() });
        assert_eq!(f.to_cbor(), [0x82, 0x05, 0x83, 0x05, 0x00, 0x81, 0x61, b'x']);
        // The reply of docs/wire.md's example.
        let r = Frame::reply(5, Reply::Ok(Raw::encode(&"path".to_owned())));
        assert_eq!(r.to_cbor(), [0x83, 0x05, 0xf6, 0x82, 0x00, 0x64, b'p', b'a', b't', b'h']);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b""[..], b"\xff", b"\x9f\x9f\x9f", b"\xbb\xff\xff\xff\xff\xff\xff\xff\xff"] {
            assert!(Frame::from_cbor(bytes).is_err());
        }
        let mut ok = Frame::request(1, broker::Ping {}).to_cbor();
        ok.push(0);
        assert!(matches!(Frame::from_cbor(&ok), Err(FrameError::Trailing(1))));
    }

    #[test]
    fn unknown_requests_decode_as_unknown() {
        // Mechanism 99, and a known mechanism's call 99, each with arguments to skip.
        for (m, c) in [(0x18u8, 0x63u8), (0x05, 0x63)] {
            let bytes = if m == 0x18 {
                vec![0x82, 0x05, 0x83, 0x18, 0x63, 0x00, 0x81, 0x01]
            } else {
                vec![0x82, 0x05, 0x83, m, 0x18, c, 0x81, 0x01]
            };
            let f = Frame::from_cbor(&bytes).unwrap();
            assert!(matches!(f.request, Some(Request::Unknown { .. })), "{f:?}");
        }
    }

    #[test]
    fn every_request_has_an_output_decoder() {
        for (index, m) in MECHANISMS {
            for r in m.requests {
                // Garbage is no output of any request, but the request is known.
                assert_eq!(reencode_output(*index, r.index, &[0xff]), Some(None), "{}", r.name);
            }
            assert_eq!(reencode_output(*index, 999, &[0x80]), None);
        }
        assert_eq!(reencode_output(999, 0, &[0x80]), None);
        let pong = Raw::encode(&broker::Pong { protocol: 2, broker_pid: 7, version: "v".into() });
        assert_eq!(reencode_output(0, 0, pong.as_bytes()), Some(Some(pong.as_bytes().to_vec())));
    }

    #[test]
    fn every_request_is_named_and_numbered_once() {
        let mut seen = std::collections::HashSet::new();
        for (index, m) in MECHANISMS {
            assert!(seen.insert(*index), "mechanism number {index} twice");
            let mut calls = std::collections::HashSet::new();
            for r in m.requests {
                assert!(calls.insert(r.index), "{}: request number {} twice", m.module, r.index);
                assert!(!r.doc.trim().is_empty(), "{}.{} has no documentation", m.module, r.name);
            }
            let mut events = std::collections::HashSet::new();
            for e in m.events {
                assert!(events.insert(e.index), "{}: event number {} twice", m.module, e.index);
            }
        }
    }
}
