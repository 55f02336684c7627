//! `SOCK_SEQPACKET` unix sockets: message boundaries kept, fds travel with the message they
//! belong to (`SCM_RIGHTS`).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

/// The most fds one message may carry, in either direction. A message carrying more is
/// refused on send and reported as [`Packet::fds_truncated`] on receive.
pub const MAX_FDS_PER_MESSAGE: usize = 16;

/// Whether a call may block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocking {
    /// Wait until the call can complete.
    Yes,
    /// Return `ErrorKind::WouldBlock` instead of waiting.
    No,
}

/// One received message.
#[derive(Debug)]
pub struct Packet {
    /// The bytes received (at most the `max` given to [`recv`]).
    pub data: Vec<u8>,
    /// The message was longer than `max`; `data` holds its beginning only and the rest is lost.
    pub truncated: bool,
    /// The full length of the message as the kernel reported it.
    pub full_len: usize,
    /// The fds that came with the message (close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// More fds came than [`MAX_FDS_PER_MESSAGE`]; the kernel closed the rest.
    pub fds_truncated: bool,
}

/// Whether `fd` is a unix `SOCK_SEQPACKET` socket (what an fd received as an RPC object
/// reference must be before it is used as one).
pub fn is_unix_seqpacket(fd: impl AsFd) -> bool {
    let fd = fd.as_fd();
    net::sockopt::socket_type(fd).is_ok_and(|t| t == SocketType::SEQPACKET)
        && net::sockopt::socket_domain(fd).is_ok_and(|d| d == AddressFamily::UNIX)
}

/// A connected pair of `SOCK_SEQPACKET` sockets, close-on-exec, blocking.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?)
}

/// A `SOCK_STREAM` socket pair (byte streams), close-on-exec, blocking.
pub fn stream_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(net::socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None)?)
}

/// Binds a listening `SOCK_SEQPACKET` socket at `path` (which must not exist), readable and
/// writable by its owner only, non-blocking, close-on-exec.
pub fn seqpacket_listen(path: &Path, backlog: i32) -> io::Result<OwnedFd> {
    let fd = net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let addr = net::SocketAddrUnix::new(path)?;
    // Create the socket file owner-only: the permission check on connect() then refuses
    // other users before the broker even sees them (the broker checks the uid as well).
    let old = rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o177));
    let bound = net::bind(&fd, &addr);
    rustix::process::umask(old);
    bound?;
    net::listen(&fd, backlog)?;
    Ok(fd)
}

/// Connects a blocking, close-on-exec `SOCK_SEQPACKET` socket to `path`.
pub fn seqpacket_connect(path: &Path) -> io::Result<OwnedFd> {
    let fd =
        net::socket_with(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)?;
    let addr = net::SocketAddrUnix::new(path)?;
    net::connect(&fd, &addr)?;
    Ok(fd)
}

/// Accepts one connection; the new socket is blocking and close-on-exec.
pub fn accept(listener: impl AsFd) -> io::Result<OwnedFd> {
    Ok(net::accept_with(listener, SocketFlags::CLOEXEC)?)
}

/// Sets or clears `O_NONBLOCK`.
pub fn set_nonblocking(fd: impl AsFd, nonblocking: bool) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut flags = rustix::fs::fcntl_getfl(fd)?;
    flags.set(rustix::fs::OFlags::NONBLOCK, nonblocking);
    rustix::fs::fcntl_setfl(fd, flags)?;
    Ok(())
}

/// Sends one message with the given fds attached. Never raises `SIGPIPE`: a closed peer gives
/// `ErrorKind::BrokenPipe`. A message too large for the socket gives `EMSGSIZE`.
pub fn send(
    sock: impl AsFd,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
    blocking: Blocking,
) -> io::Result<()> {
    if fds.len() > MAX_FDS_PER_MESSAGE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} fds in one message, at most {MAX_FDS_PER_MESSAGE}", fds.len()),
        ));
    }
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("control buffer too small for the fds"));
    }
    let mut flags = SendFlags::NOSIGNAL;
    if blocking == Blocking::No {
        flags |= SendFlags::DONTWAIT;
    }
    let sent = net::sendmsg(sock, &[IoSlice::new(data)], &mut control, flags)?;
    if sent != data.len() {
        // Cannot happen for SOCK_SEQPACKET (all or nothing), but never report a torn message
        // as success.
        return Err(io::Error::new(io::ErrorKind::WriteZero, "message sent partially"));
    }
    Ok(())
}

/// One message received into a caller's buffer by [`recv_into`].
#[derive(Debug)]
pub struct Received {
    /// Bytes written into the buffer.
    pub len: usize,
    /// The message was longer than the buffer; its tail is lost.
    pub truncated: bool,
    /// The full length of the message as the kernel reported it.
    pub full_len: usize,
    /// The fds that came with the message (close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// More fds came than [`MAX_FDS_PER_MESSAGE`]; the kernel closed the rest.
    pub fds_truncated: bool,
}

/// Receives one message into `buf` (reused across calls: no allocation on the hot path).
/// `Ok(None)` is the end of the stream.
pub fn recv_into(
    sock: impl AsFd,
    buf: &mut [u8],
    blocking: Blocking,
) -> io::Result<Option<Received>> {
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_MESSAGE))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut flags = RecvFlags::CMSG_CLOEXEC | RecvFlags::TRUNC;
    if blocking == Blocking::No {
        flags |= RecvFlags::DONTWAIT;
    }
    let max = buf.len();
    let msg = net::recvmsg(&sock, &mut [IoSliceMut::new(buf)], &mut control, flags)?;
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if msg.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    Ok(Some(Received {
        len: msg.bytes.min(max),
        truncated: msg.flags.contains(ReturnFlags::TRUNC) || msg.bytes > max,
        full_len: msg.bytes,
        fds,
        fds_truncated: msg.flags.contains(ReturnFlags::CTRUNC),
    }))
}

/// The largest `max` for which [`recv`] receives through its thread's scratch buffer.
pub const SCRATCH_MAX: usize = 256 * 1024;

/// Receives one message of at most `max` bytes into a new buffer. `Ok(None)` is the end of
/// the stream (the peer closed). A longer message is reported with `truncated` set.
///
/// Up to [`SCRATCH_MAX`] bytes, the message is received into a buffer the calling thread
/// keeps for this and copied out: a small message costs a small allocation, not `max` bytes
/// zeroed (which a server receiving many small frames would pay on every one).
pub fn recv(sock: impl AsFd, max: usize, blocking: Blocking) -> io::Result<Option<Packet>> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if max <= SCRATCH_MAX
        && let Some(r) = SCRATCH.with(|scratch| {
            // Not reentrant: a nested call (none today) takes the allocating path below.
            let mut buf = scratch.try_borrow_mut().ok()?;
            if buf.len() < max {
                buf.resize(max, 0);
            }
            Some(recv_into(&sock, &mut buf[..max], blocking).map(|r| {
                r.map(|r| Packet {
                    data: buf[..r.len].to_vec(),
                    truncated: r.truncated,
                    full_len: r.full_len,
                    fds: r.fds,
                    fds_truncated: r.fds_truncated,
                })
            }))
        })
    {
        return r;
    }
    let mut data = vec![0u8; max];
    let Some(r) = recv_into(sock, &mut data, blocking)? else {
        return Ok(None);
    };
    data.truncate(r.len);
    Ok(Some(Packet {
        data,
        truncated: r.truncated,
        full_len: r.full_len,
        fds: r.fds,
        fds_truncated: r.fds_truncated,
    }))
}

/// Whether the peer of a connected socket has closed its end (or shut down its writing),
/// even with messages of it still queued here: a zero-timeout poll for `POLLRDHUP`/`POLLHUP`.
pub fn peer_hung_up(sock: impl AsFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(&sock, PollFlags::RDHUP)];
    matches!(poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(n) if n > 0)
        && fds[0].revents().intersects(PollFlags::RDHUP | PollFlags::HUP)
}

/// Waits until `sock` is readable (a message, or its end), at most `timeout`; whether it is.
pub fn wait_readable(sock: impl AsFd, timeout: std::time::Duration) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(&sock, PollFlags::IN)];
    let t = Timespec {
        tv_sec: i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    loop {
        match poll(&mut fds, Some(&t)) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Shuts down one direction of a socket: no more reading, or no more writing (the peer sees
/// the end of the stream).
pub fn shutdown_direction(sock: impl AsFd, read: bool) -> io::Result<()> {
    Ok(net::shutdown(sock, if read { net::Shutdown::Read } else { net::Shutdown::Write })?)
}

/// Shuts down both directions of a socket (the peer sees the end of the stream), even while
/// other fds of it stay open elsewhere.
pub fn shutdown(sock: impl AsFd) -> io::Result<()> {
    Ok(net::shutdown(sock, net::Shutdown::Both)?)
}

/// Reads what a stream socket holds now into `buf`, without waiting: `Ok(None)` if nothing is
/// there yet, `Ok(Some(0))` at the end of the stream. With `peek`, the bytes stay queued.
pub fn recv_now(sock: impl AsFd, buf: &mut [u8], peek: bool) -> io::Result<Option<usize>> {
    let mut flags = RecvFlags::DONTWAIT;
    if peek {
        flags |= RecvFlags::PEEK;
    }
    loop {
        match net::recv(&sock, &mut *buf, flags) {
            Ok((_, n)) => return Ok(Some(n.min(buf.len()))),
            Err(rustix::io::Errno::AGAIN) => return Ok(None),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Bytes queued for reading on a socket (`FIONREAD`).
pub fn queued_bytes(sock: impl AsFd) -> io::Result<u64> {
    Ok(rustix::io::ioctl_fionread(sock)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Waits (10 s at most) until `closed` says an end of a pair dropped is seen as closed: a
    /// child another test of this binary forks holds a copy of every fd until it execs (the
    /// copies are CLOEXEC), so the last close can come moments after the drop.
    fn until_closed(mut closed: impl FnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !closed() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn recv_now_peeks_takes_and_never_waits() {
        let (a, b) = stream_pair().unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(recv_now(&b, &mut buf, false).unwrap(), None, "nothing there: no wait");
        rustix::io::write(&a, b"abc").unwrap();
        assert_eq!(queued_bytes(&b).unwrap(), 3);
        assert_eq!(recv_now(&b, &mut buf, true).unwrap(), Some(3));
        assert_eq!(queued_bytes(&b).unwrap(), 3, "a peek takes nothing");
        assert_eq!(recv_now(&b, &mut buf[..2], false).unwrap(), Some(2));
        assert_eq!(queued_bytes(&b).unwrap(), 1);
        drop(a);
        assert_eq!(recv_now(&b, &mut buf, false).unwrap(), Some(1));
        // (A child another test forks may hold `a` until it execs: the end comes moments later.)
        let end = until_closed(|| recv_now(&b, &mut buf, false).unwrap() == Some(0));
        assert!(end, "the end of the stream");
    }

    #[test]
    fn a_closed_peer_is_seen_with_its_messages_still_queued() {
        let (a, b) = seqpacket_pair().unwrap();
        send(&a, b"queued", &[], Blocking::Yes).unwrap();
        assert!(!peer_hung_up(&b));
        drop(a);
        assert!(until_closed(|| peer_hung_up(&b)), "the peer is gone");
        let p = recv(&b, 64, Blocking::Yes).unwrap().unwrap();
        assert_eq!(p.data, b"queued", "its message is still there");
    }

    #[test]
    fn boundaries_and_fds() {
        let (a, b) = seqpacket_pair().unwrap();
        let (p, _q) = stream_pair().unwrap();
        send(&a, b"one", &[p.as_fd()], Blocking::Yes).unwrap();
        send(&a, b"two-two", &[], Blocking::Yes).unwrap();
        let m1 = recv(&b, 100, Blocking::Yes).unwrap().unwrap();
        assert_eq!(m1.data, b"one");
        assert_eq!(m1.fds.len(), 1);
        let m2 = recv(&b, 3, Blocking::Yes).unwrap().unwrap();
        assert!(m2.truncated);
        assert_eq!(m2.full_len, 7);
        assert_eq!(m2.data, b"two");
        assert!(matches!(
            recv(&b, 10, Blocking::No).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        ));
        drop(a);
        assert!(recv(&b, 10, Blocking::Yes).unwrap().is_none());
    }

    #[test]
    fn send_to_closed_peer_is_broken_pipe() {
        let (a, b) = seqpacket_pair().unwrap();
        drop(b);
        let mut error = None;
        until_closed(|| {
            // Queued (or the queue full) while a forked copy of `b` lives: not yet.
            error = send(&a, b"x", &[], Blocking::No)
                .err()
                .filter(|e| e.kind() != io::ErrorKind::WouldBlock);
            error.is_some()
        });
        assert_eq!(error.map(|e| e.kind()), Some(io::ErrorKind::BrokenPipe));
    }

    #[test]
    fn listen_connect_accept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = seqpacket_listen(&path, 8).unwrap();
        let mode = std::fs::metadata(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
        let c = seqpacket_connect(&path).unwrap();
        let s = accept(&l).unwrap();
        send(&c, b"hi", &[], Blocking::Yes).unwrap();
        assert_eq!(recv(&s, 8, Blocking::Yes).unwrap().unwrap().data, b"hi");
    }
}
