//! What a `connect`/`bind` address names, read from the bytes a confined process passed (the
//! first step of the loopback data path, which will read them out of the caller's memory for a
//! seccomp user notification). Pure parsing, no syscall: the bytes are the attacker's, so the
//! length and family are checked as the kernel checks them, and a loopback destination is
//! recognised in every spelling (`127.0.0.0/8`, `::1`, `::ffff:127.x.x.x`).

use std::net::{Ipv4Addr, Ipv6Addr};

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
}
