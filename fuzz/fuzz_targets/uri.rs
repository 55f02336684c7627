//! The URIs of protocol activation (`appipc_wire::uri::Uri`, what `launcher.LaunchUri` and
//! `QueryUriSupport` parse from a client).
//!
//! Properties: a parsed URI has a lower-case RFC 3986 scheme, holds no control character,
//! space or DEL, is at most `MAX_URI_LEN` bytes, keeps what follows the scheme as written,
//! prints as the input with the scheme lower-cased, and its printed form parses to the same
//! URI; anything refused is refused again with its scheme lower-cased (case never decides).
#![no_main]

use appipc_wire::uri::{MAX_URI_LEN, Uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match Uri::parse(s) {
        Ok(u) => {
            assert!(s.len() <= MAX_URI_LEN);
            assert!(!s.bytes().any(|b| b <= b' ' || b == 0x7f), "{s:?}");
            let scheme = u.scheme();
            assert!(scheme.bytes().next().is_some_and(|b| b.is_ascii_lowercase()), "{scheme:?}");
            assert!(scheme.bytes().all(|b| b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || matches!(b, b'+' | b'-' | b'.')));
            let (scheme_in, rest_in) = s.split_once(':').expect("a parsed URI has a colon");
            assert_eq!(u.rest(), rest_in);
            let printed = u.to_string();
            assert_eq!(printed, format!("{}:{rest_in}", scheme_in.to_ascii_lowercase()));
            assert_eq!(Uri::parse(&printed).as_ref(), Ok(&u));
        }
        Err(e) => {
            let _ = e.to_string();
            if let Some((scheme, rest)) = s.split_once(':') {
                let lower = format!("{}:{rest}", scheme.to_ascii_lowercase());
                assert!(Uri::parse(&lower).is_err(), "{s:?} refused, {lower:?} not");
            }
        }
    }
});
