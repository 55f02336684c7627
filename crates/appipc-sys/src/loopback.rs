//! The loopback data path's system half.
//!
//! * [`classify`]: what a `connect`/`bind` address names, read from the bytes a confined
//!   process passed (the supervisor copies them out of the caller's memory for a seccomp user
//!   notification, `crate::seccomp_notify`). Pure parsing: the bytes are the attacker's, so
//!   the length and family are checked as the kernel checks them, and a loopback destination
//!   is recognised in every spelling (`127.0.0.0/8`, `::1`, `::ffff:127.x.x.x`).
//! * [`Ask`] and [`Answer`]: the fixed-size messages between an app container's supervisor
//!   and the broker (a socket pair the broker made for that container; who asks is the
//!   channel, never a byte of the message).
//! * [`Listeners`]: which loopback TCP ports a network namespace listens on (`sock_diag`).
//! * [`SocketFactory`]: a small process in a package's network namespace that makes sockets
//!   there for the broker; [`copy_options`] and [`connect_within`] finish such a socket.

use std::net::{Ipv4Addr, Ipv6Addr};

pub(crate) mod diag;
mod factory;
mod sockets;

pub use diag::Listeners;
pub use diag::PortUse;
pub use factory::SocketFactory;
pub use sockets::{
    SocketInfo, connect_result, connect_start, connect_within, copy_options, host_socket,
    host_socket_as, socket_info,
};

/// `sizeof(struct sockaddr_storage)`: the kernel refuses a longer address (`EINVAL`).
pub const MAX_ADDR_LEN: usize = 128;
/// `sizeof(struct sockaddr_in)`.
const IN_LEN: usize = 16;
/// `SIN6_LEN_RFC2133`: the shortest `sockaddr_in6` the kernel takes.
const IN6_MIN_LEN: usize = 24;

/// What an address passed to `connect` or `bind` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A loopback address and port (IPv4, or IPv6 `::1` / `::ffff:127.x`).
    Loopback {
        /// The port (host order).
        port: u16,
        /// IPv6 (`AF_INET6`) rather than IPv4.
        v6: bool,
    },
    /// An IP address that is not loopback (not this mechanism's business).
    Other,
    /// Not an IP family (`AF_UNIX`, `AF_UNSPEC`, …): left to the kernel.
    NotIp,
}

/// Classifies `addr` (`addrlen` bytes, as the caller passed them); the kernel's `EINVAL` for a
/// length it would refuse.
pub fn classify(addr: &[u8]) -> Result<Target, i32> {
    if addr.len() > MAX_ADDR_LEN || addr.len() < 2 {
        return Err(libc::EINVAL);
    }
    let family = i32::from(u16::from_ne_bytes([addr[0], addr[1]]));
    let port = |a: &[u8]| u16::from_be_bytes([a[2], a[3]]);
    match family {
        libc::AF_INET => {
            if addr.len() < IN_LEN {
                return Err(libc::EINVAL);
            }
            let ip = Ipv4Addr::new(addr[4], addr[5], addr[6], addr[7]);
            Ok(if ip.is_loopback() {
                Target::Loopback { port: port(addr), v6: false }
            } else {
                Target::Other
            })
        }
        libc::AF_INET6 => {
            if addr.len() < IN6_MIN_LEN {
                return Err(libc::EINVAL);
            }
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addr[8..24]);
            let ip = Ipv6Addr::from(octets);
            let mapped = ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback());
            Ok(if ip.is_loopback() || mapped {
                Target::Loopback { port: port(addr), v6: true }
            } else {
                Target::Other
            })
        }
        _ => Ok(Target::NotIp),
    }
}

/// The port a `bind` of `addr` takes in the loopback port space shared by all packages: a
/// loopback or wildcard (`0.0.0.0`, `::`) address with a port other than 0; `None` otherwise
/// (pure).
pub fn bind_port(addr: &[u8]) -> Option<u16> {
    shared_space_port(addr).filter(|p| *p != 0)
}

/// The port of `addr` if it is a loopback or wildcard address (0 included: the kernel picks an
/// ephemeral port, which is in the shared space too); `None` otherwise (pure).
pub fn shared_space_port(addr: &[u8]) -> Option<u16> {
    match classify(addr) {
        Ok(Target::Loopback { port, .. }) => Some(port),
        Ok(Target::Other) => {
            let port = u16::from_be_bytes([addr[2], addr[3]]);
            let family = i32::from(u16::from_ne_bytes([addr[0], addr[1]]));
            let any = if family == libc::AF_INET {
                addr[4..8] == [0; 4]
            } else {
                addr[8..24] == [0; 16]
                    || addr[8..24] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]
            };
            any.then_some(port)
        }
        _ => None,
    }
}

/// What a supervisor asks the broker about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskOp {
    /// `connect` to a loopback address of another network namespace (perhaps).
    Connect = 1,
    /// `bind` of a loopback or wildcard address with a port (the one the kernel picked for an
    /// ephemeral bind), or `listen` on a socket bound to one: may the package hold it?
    Bind = 2,
}

/// One question of a supervisor to the broker; the app's socket (a duplicate) travels with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// What the app called.
    pub op: AskOp,
    /// The supervisor's sequence number, echoed by the answer (a late answer is ignored).
    pub seq: u32,
    /// The app's fd had `FD_CLOEXEC`.
    pub cloexec: bool,
    /// The address as the supervisor read it, once (`addr_len` bytes count).
    pub addr: [u8; MAX_ADDR_LEN],
    /// How many bytes of `addr` the app passed (2..=128).
    pub addr_len: u8,
}

/// The size of an encoded [`Ask`].
pub const ASK_LEN: usize = 8 + MAX_ADDR_LEN;

impl Ask {
    /// The message (pure).
    pub fn encode(&self) -> [u8; ASK_LEN] {
        let mut b = [0u8; ASK_LEN];
        b[0] = self.op as u8;
        b[1] = u8::from(self.cloexec);
        b[2] = self.addr_len;
        b[4..8].copy_from_slice(&self.seq.to_ne_bytes());
        b[8..].copy_from_slice(&self.addr);
        b
    }

    /// Reads a message; `None` for anything but a well-formed one of exactly [`ASK_LEN`] bytes.
    pub fn decode(b: &[u8]) -> Option<Ask> {
        if b.len() != ASK_LEN || b[3] != 0 || b[1] > 1 {
            return None;
        }
        let op = match b[0] {
            1 => AskOp::Connect,
            2 => AskOp::Bind,
            _ => return None,
        };
        let addr_len = b[2];
        if !(2..=MAX_ADDR_LEN).contains(&usize::from(addr_len)) {
            return None;
        }
        let mut addr = [0u8; MAX_ADDR_LEN];
        addr.copy_from_slice(&b[8..]);
        let seq = u32::from_ne_bytes(b[4..8].try_into().expect("4 bytes"));
        Some(Ask { op, seq, cloexec: b[1] == 1, addr, addr_len })
    }

    /// The address bytes the app passed.
    pub fn address(&self) -> &[u8] {
        &self.addr[..usize::from(self.addr_len)]
    }
}

/// The broker's answer to an [`Ask`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Let the kernel carry out the call in the app's own network namespace.
    Continue,
    /// Fail the call with this errno.
    Fail(i32),
    /// Succeed with 0 and change nothing (a connect restarted on the socket already installed).
    Done,
    /// Install the attached socket over the app's fd and succeed with 0.
    Install,
}

/// The size of an encoded [`Answer`] (with its sequence number).
pub const ANSWER_LEN: usize = 12;

impl Answer {
    /// The message (pure).
    pub fn encode(self, seq: u32) -> [u8; ANSWER_LEN] {
        let (kind, errno) = match self {
            Answer::Continue => (0u32, 0i32),
            Answer::Fail(e) => (1, e),
            Answer::Done => (2, 0),
            Answer::Install => (3, 0),
        };
        let mut b = [0u8; ANSWER_LEN];
        b[..4].copy_from_slice(&seq.to_ne_bytes());
        b[4..8].copy_from_slice(&kind.to_ne_bytes());
        b[8..].copy_from_slice(&errno.to_ne_bytes());
        b
    }

    /// Reads an answer and its sequence number; `None` for a malformed one (an errno outside
    /// 1..4096 is malformed).
    pub fn decode(b: &[u8]) -> Option<(u32, Answer)> {
        if b.len() != ANSWER_LEN {
            return None;
        }
        let word = |i: usize| u32::from_ne_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let errno = word(8) as i32;
        let a = match (word(4), errno) {
            (0, 0) => Answer::Continue,
            (1, 1..4096) => Answer::Fail(errno),
            (2, 0) => Answer::Done,
            (3, 0) => Answer::Install,
            _ => return None,
        };
        Some((word(0), a))
    }
}

/// `127.0.0.1:port` and `[::1]:port` as `sockaddr` bytes, with their families.
pub fn loopback_addresses(port: u16) -> [(i32, Vec<u8>); 2] {
    let mut v4 = vec![0u8; 16];
    v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    v4[2..4].copy_from_slice(&port.to_be_bytes());
    v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
    let mut v6 = vec![0u8; 28];
    v6[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    v6[2..4].copy_from_slice(&port.to_be_bytes());
    v6[23] = 1;
    [(libc::AF_INET, v4), (libc::AF_INET6, v6)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(ip: [u8; 4], port: u16, len: usize) -> Vec<u8> {
        let mut a = vec![0u8; len.max(8)];
        a[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        a[2..4].copy_from_slice(&port.to_be_bytes());
        a[4..8].copy_from_slice(&ip);
        a.truncate(len);
        a
    }

    fn v6(ip: Ipv6Addr, port: u16, len: usize) -> Vec<u8> {
        let mut a = vec![0u8; len.max(28)];
        a[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        a[2..4].copy_from_slice(&port.to_be_bytes());
        a[8..24].copy_from_slice(&ip.octets());
        a.truncate(len);
        a
    }

    #[test]
    fn every_loopback_spelling() {
        let lo = |port, v6| Ok(Target::Loopback { port, v6 });
        assert_eq!(classify(&v4([127, 0, 0, 1], 8080, 16)), lo(8080, false));
        assert_eq!(classify(&v4([127, 255, 3, 9], 1, 16)), lo(1, false));
        assert_eq!(classify(&v4([10, 0, 0, 1], 80, 16)), Ok(Target::Other));
        assert_eq!(classify(&v6(Ipv6Addr::LOCALHOST, 443, 28)), lo(443, true));
        let mapped = Ipv4Addr::new(127, 0, 0, 2).to_ipv6_mapped();
        assert_eq!(classify(&v6(mapped, 9, 28)), lo(9, true));
        let other = Ipv4Addr::new(192, 168, 0, 1).to_ipv6_mapped();
        assert_eq!(classify(&v6(other, 9, 28)), Ok(Target::Other));
        // The RFC 2133 length (no scope id) is still an IPv6 address.
        assert_eq!(classify(&v6(Ipv6Addr::LOCALHOST, 7, 24)), lo(7, true));
    }

    /// Hostile lengths and families: refused as the kernel refuses them, never read past.
    #[test]
    fn hostile_lengths_and_families() {
        assert_eq!(classify(&[]), Err(libc::EINVAL));
        assert_eq!(classify(&[2]), Err(libc::EINVAL));
        for len in 2..16 {
            assert_eq!(classify(&v4([127, 0, 0, 1], 80, len)), Err(libc::EINVAL), "len {len}");
        }
        for len in 2..24 {
            assert_eq!(classify(&v6(Ipv6Addr::LOCALHOST, 80, len)), Err(libc::EINVAL), "{len}");
        }
        let mut long = v4([127, 0, 0, 1], 80, 16);
        long.resize(MAX_ADDR_LEN, 0);
        assert!(matches!(classify(&long), Ok(Target::Loopback { .. })));
        long.push(0);
        assert_eq!(classify(&long), Err(libc::EINVAL));
        let mut unix = vec![0u8; 110];
        unix[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        assert_eq!(classify(&unix), Ok(Target::NotIp));
        assert_eq!(classify(&[0, 0]), Ok(Target::NotIp), "AF_UNSPEC");
        assert_eq!(classify(&[0xff, 0xff, 127, 0, 0, 1]), Ok(Target::NotIp));
    }

    #[test]
    fn bind_ports_are_loopback_and_wildcard_ones() {
        assert_eq!(bind_port(&v4([127, 0, 0, 1], 80, 16)), Some(80));
        assert_eq!(bind_port(&v4([0, 0, 0, 0], 81, 16)), Some(81));
        assert_eq!(bind_port(&v4([0, 0, 0, 0], 0, 16)), None, "an ephemeral port");
        assert_eq!(bind_port(&v4([10, 0, 0, 1], 80, 16)), None);
        assert_eq!(bind_port(&v6(Ipv6Addr::UNSPECIFIED, 82, 28)), Some(82));
        assert_eq!(bind_port(&v6(Ipv6Addr::LOCALHOST, 83, 28)), Some(83));
        assert_eq!(bind_port(&v4([127, 0, 0, 1], 80, 15)), None, "the kernel's EINVAL");
        assert_eq!(shared_space_port(&v4([0, 0, 0, 0], 0, 16)), Some(0), "ephemeral: shared too");
        assert_eq!(shared_space_port(&v4([127, 0, 0, 1], 0, 16)), Some(0));
        assert_eq!(shared_space_port(&v6(Ipv6Addr::UNSPECIFIED, 0, 28)), Some(0));
        assert_eq!(shared_space_port(&v4([10, 0, 0, 1], 0, 16)), None);
    }

    #[test]
    fn asks_and_answers_round_trip_and_hostile_ones_are_refused() {
        let mut addr = [0u8; MAX_ADDR_LEN];
        addr[..16].copy_from_slice(&v4([127, 0, 0, 1], 80, 16));
        let ask = Ask { op: AskOp::Connect, seq: 7, cloexec: true, addr, addr_len: 16 };
        let b = ask.encode();
        assert_eq!(Ask::decode(&b), Some(ask));
        assert_eq!(Ask::decode(&b).unwrap().address().len(), 16);
        for bad in [&b[..ASK_LEN - 1], &[0u8; ASK_LEN][..], &[]] {
            assert_eq!(Ask::decode(bad), None);
        }
        for (i, v) in [(0, 3u8), (1, 2), (2, 1), (2, 129), (3, 1)] {
            let mut m = b;
            m[i] = v;
            assert_eq!(Ask::decode(&m), None, "byte {i} = {v}");
        }
        for a in [Answer::Continue, Answer::Fail(libc::EADDRINUSE), Answer::Done, Answer::Install] {
            assert_eq!(Answer::decode(&a.encode(9)), Some((9, a)));
        }
        let mut m = Answer::Fail(1).encode(1);
        m[8..].copy_from_slice(&0i32.to_ne_bytes());
        assert_eq!(Answer::decode(&m), None, "Fail(0) would read as success");
        m[8..].copy_from_slice(&(-5i32).to_ne_bytes());
        assert_eq!(Answer::decode(&m), None);
        assert_eq!(Answer::decode(&m[..11]), None);
    }

    /// Property: no input makes the decoders panic, and whatever decodes encodes back to the
    /// very bytes (so nothing is read that the encoder would not write).
    #[test]
    fn any_bytes_decode_safely_and_round_trip() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..20_000 {
            let len = if i % 2 == 0 { ASK_LEN } else { (next() % 200) as usize };
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len == ASK_LEN && i % 4 == 0 {
                // Near-valid ones too: a known op, flags and length.
                b[0] = 1 + (next() % 2) as u8;
                b[1] = (next() % 2) as u8;
                b[2] = 2 + (next() % 127) as u8;
                b[3] = 0;
            }
            if let Some(a) = Ask::decode(&b) {
                assert_eq!(a.encode().as_slice(), b.as_slice());
            }
            let ans = &b[..b.len().min(ANSWER_LEN)];
            if let Some((seq, a)) = Answer::decode(ans) {
                assert_eq!(a.encode(seq).as_slice(), ans);
            }
        }
    }

    #[test]
    fn loopback_addresses_are_loopback() {
        for (_, a) in loopback_addresses(9) {
            assert_eq!(classify(&a), Ok(Target::Loopback { port: 9, v6: a.len() == 28 }));
        }
    }
}
