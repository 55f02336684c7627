//! The loopback channel between an app container's supervisor and the broker
//! (`appipc_sys::loopback::{Ask, Answer}`): the broker reads `Ask`s from a supervisor that runs
//! inside the package's container, the supervisor reads `Answer`s. The first input byte picks
//! which decoder reads the rest.
//!
//! Property: no input panics, and what decodes encodes back to the very bytes (nothing is read
//! that the encoder would not write).
#![no_main]

use appipc_sys::loopback::{Answer, Ask};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, msg)) = data.split_first() else { return };
    if which % 2 == 0 {
        if let Some(ask) = Ask::decode(msg) {
            assert_eq!(ask.encode().as_slice(), msg, "an ask re-encodes to its bytes");
            assert!((2..=msg.len()).contains(&ask.address().len()));
        }
    } else if let Some((seq, answer)) = Answer::decode(msg) {
        assert_eq!(answer.encode(seq).as_slice(), msg, "an answer re-encodes to its bytes");
    }
});
