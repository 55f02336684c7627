//! The supervisor's half of the loopback data path: `connect`, `bind` and `listen` of an app
//! container.
//!
//! First, whose socket it is (`SO_NETNS_COOKIE` against the supervisor's own namespace, which
//! is the app's): a socket of *another* namespace — one the broker installed, or one a process
//! handed over — is never let through (a disconnect and a new connect there would reach
//! whatever that namespace reaches); see [`foreign_call`]. A kernel that cannot tell (before
//! Linux 5.14) gets no installs at all: every call is let through, in the app's own namespace.
//!
//! Then, for the app's own sockets, the address is read once from the caller's memory. A
//! `bind` of a TCP socket is carried out by the supervisor on that copy, after the broker has
//! checked the port ([`own_bind`]), never let through; an ephemeral one (port 0) takes a port
//! the broker accepted as free in the shared port space ([`ephemeral_bind`]), and so does a
//! `listen` on a socket not bound yet, which is carried out by the supervisor too
//! ([`listen_call`]). A `connect` that is not on a loopback
//! address with a port is let through (the kernel then reads the address again and connects in
//! the app's own network namespace, which is the isolation: no escape whatever it reads), as
//! is everything when anything goes wrong on the way (an unreadable address, an fd that is no
//! socket: the kernel then gives its own error), and everything when the broker does not answer
//! (gone, restarting, stopped for longer than the answer wait, see [`set_answer_wait`]): then
//! the app has exactly the isolation it would have without this path. For the rest the broker decides, on the
//! supervisor's copy of the address, and its answer is carried out: an errno, success, or a
//! socket it made (in the listener's namespace, connected) installed over the app's fd.
//!
//! A packaged full-trust process's supervisor (in the host's namespace) sees only `connect`,
//! and asks about far less: [`full_trust_connect`].

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use rustix::io::Errno;

use super::{Caller, Context, Reply, Result};
use crate::loopback::{ANSWER_LEN, Answer, Ask, AskOp, MAX_ADDR_LEN, Target, classify};

/// How long a supervisor waits for the broker's answer to one question before it lets the call
/// through, in milliseconds (20 s unless [`set_answer_wait`] said otherwise).
static ANSWER_WAIT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(20_000);

/// Sets how long the supervisors forked after this call wait for an answer to a question
/// (the broker sets it at start from `APPIPC_LOOPBACK_ANSWER_MS`; at least 1 ms).
pub fn set_answer_wait(wait: std::time::Duration) {
    let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
    ANSWER_WAIT_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

/// Milliseconds on the monotonic clock (async-signal-safe: the supervisor is a fork).
fn now_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64).saturating_mul(1000).saturating_add(t.tv_nsec as u64 / 1_000_000)
}

/// How many namespaces a full-trust supervisor tells apart among the sockets it installed.
const INSTALLED_NS: usize = 64;

/// The supervisor's channel to the broker.
pub(crate) struct BrokerLink {
    fd: OwnedFd,
    seq: u32,
    /// The broker stopped answering (closed, or a malformed answer): let everything through.
    gone: bool,
    /// A question went unanswered in time (a stopped or stalled broker; the channel is still
    /// open, e.g. held by the session keeper): calls are let through at once, without asking,
    /// until an answer (a late one) shows the broker is back. Without this, each call would
    /// wait out the whole answer wait again, and the unanswered questions (each holding a copy
    /// of an app socket) would fill the channel.
    behind: bool,
    /// A `sock_diag` socket of the supervisor's (the app's) network namespace, made on first
    /// use: a connect to a port the app's own namespace listens on needs no broker.
    diag: Option<OwnedFd>,
    /// The cookie of the supervisor's (the app's) network namespace (`SO_NETNS_COOKIE`), to
    /// tell the app's own sockets from the ones installed from other namespaces; `None` where
    /// the kernel cannot say (before Linux 5.14): then nothing is installed.
    own_netns: Option<u64>,
    /// The supervisor of a packaged full-trust process (in the host's namespace):
    /// [`full_trust_connect`].
    full_trust: bool,
    /// A socket was installed here (so one of another namespace may be any fd now).
    installed: bool,
    /// The namespaces (cookies) of the sockets installed here: of a full-trust process, only
    /// sockets of these are guarded ([`foreign_call`], [`full_trust_guard`]); the process's
    /// own sandboxes (a namespace it made, e.g. with `bwrap --unshare-net`) are its own
    /// business. Past `INSTALLED_NS` namespaces, every namespace but its own is guarded.
    installed_ns: [u64; INSTALLED_NS],
    installed_ns_len: usize,
}

impl BrokerLink {
    pub(crate) fn new(fd: OwnedFd) -> BrokerLink {
        BrokerLink {
            fd,
            seq: 0,
            gone: false,
            behind: false,
            diag: None,
            own_netns: own_netns_cookie(),
            full_trust: false,
            installed: false,
            installed_ns: [0; INSTALLED_NS],
            installed_ns_len: 0,
        }
    }

    /// The link of a packaged full-trust process's supervisor.
    pub(crate) fn full_trust(fd: OwnedFd) -> BrokerLink {
        BrokerLink { full_trust: true, ..BrokerLink::new(fd) }
    }

    /// Notes that a socket of namespace `cookie` was installed here.
    fn note_installed(&mut self, cookie: Option<u64>) {
        self.installed = true;
        let known = &self.installed_ns[..self.installed_ns_len.min(INSTALLED_NS)];
        match cookie {
            Some(c) if known.contains(&c) => {}
            Some(c) if self.installed_ns_len < INSTALLED_NS => {
                self.installed_ns[self.installed_ns_len] = c;
                self.installed_ns_len += 1;
            }
            // Unknown, or too many: every other namespace is guarded from now on.
            _ => self.installed_ns_len = INSTALLED_NS + 1,
        }
    }

    /// Whether sockets of namespace `cookie` (not the supervisor's own) are guarded: one was
    /// installed from there.
    fn installed_from(&self, cookie: u64) -> bool {
        self.installed_ns_len > INSTALLED_NS
            || self.installed_ns[..self.installed_ns_len].contains(&cookie)
    }

    /// Whether a connect to `addr` reaches a listener of the app's own namespace (false when
    /// that cannot be told: the broker then decides, and it looks there first too).
    fn own_namespace_reaches(&mut self, addr: &[u8]) -> bool {
        if self.diag.is_none() {
            self.diag = crate::loopback::diag::diag_socket().ok();
        }
        let Some(sock) = &self.diag else { return false };
        let mut buf = [0u8; 1024];
        crate::loopback::diag::reaches_with(sock.as_fd(), addr, &mut buf).unwrap_or(false)
    }

    /// Asks the broker, with the app's socket attached; `Continue` when it does not answer.
    fn ask(&mut self, mut ask: Ask, socket: &OwnedFd) -> (Answer, Option<OwnedFd>) {
        if self.gone {
            return (Answer::Continue, None);
        }
        if self.behind {
            // Back only when an answer (to an earlier question) has come in since.
            match self.wait_answer(0) {
                Ok(Some(_)) => self.behind = false,
                Ok(None) => return (Answer::Continue, None),
                Err(()) => {
                    self.gone = true;
                    return (Answer::Continue, None);
                }
            }
        }
        self.seq = self.seq.wrapping_add(1);
        ask.seq = self.seq;
        // Never blocks: a channel the broker does not read is full, and the call goes on.
        let sent = crate::socket::send(
            &self.fd,
            &ask.encode(),
            &[socket.as_fd()],
            crate::socket::Blocking::No,
        );
        match sent {
            Ok(()) => {}
            // The broker's end is closed: it will not answer again.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN)
                ) =>
            {
                self.gone = true;
                return (Answer::Continue, None);
            }
            // Anything passing (`ETOOMANYREFS`, `ENOBUFS`, which the app's uid can bring
            // about): not asked this time, asked again next time.
            Err(_) => return (Answer::Continue, None),
        }
        // One deadline for the question, however many late answers come before its own.
        let deadline =
            now_ms().saturating_add(ANSWER_WAIT_MS.load(std::sync::atomic::Ordering::Relaxed));
        loop {
            let left = deadline.saturating_sub(now_ms());
            match self.wait_answer(left) {
                Ok(Some((seq, answer, fd))) if seq == self.seq => return (answer, fd),
                // A late answer to an earlier question (already let through): skip it.
                Ok(Some(_)) if left > 0 => continue,
                Ok(_) => {
                    self.behind = true;
                    return (Answer::Continue, None);
                }
                Err(()) => {
                    self.gone = true;
                    return (Answer::Continue, None);
                }
            }
        }
    }

    /// The next answer within `wait_ms` (0: only one already there); `Ok(None)` when none came
    /// in time, `Err` when the channel is broken.
    #[allow(clippy::type_complexity)]
    fn wait_answer(
        &self,
        wait_ms: u64,
    ) -> std::result::Result<Option<(u32, Answer, Option<OwnedFd>)>, ()> {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let timeout = Timespec {
            tv_sec: (wait_ms / 1000) as i64,
            tv_nsec: ((wait_ms % 1000) * 1_000_000) as i64,
        };
        loop {
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&timeout)) {
                Ok(0) => return Ok(None),
                Ok(_) => break,
                Err(Errno::INTR) => continue,
                Err(_) => return Err(()),
            }
        }
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; ANSWER_LEN + 1];
        let r = rustix::net::recvmsg(
            &self.fd,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT,
        );
        let n = match r {
            Ok(r) => r.bytes,
            Err(Errno::AGAIN | Errno::INTR) => return Ok(None),
            Err(_) => return Err(()),
        };
        let mut fd = None;
        for m in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = m {
                for f in fds {
                    fd = fd.or(Some(f));
                }
            }
        }
        if n == 0 {
            return Err(());
        }
        let (seq, answer) = Answer::decode(&buf[..n]).ok_or(())?;
        if (answer == Answer::Install) != fd.is_some() {
            return Err(());
        }
        Ok(Some((seq, answer, fd)))
    }
}

/// The network namespace a socket belongs to (`SO_NETNS_COOKIE`, Linux 5.14); `None` for an fd
/// that is not a socket, or a kernel that cannot say.
fn netns_cookie(fd: &OwnedFd) -> Option<u64> {
    let mut v: u64 = 0;
    let mut len = size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` (8) bytes into `v`, on this stack frame.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_NETNS_COOKIE,
            (&raw mut v).cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize == size_of::<u64>()).then_some(v)
}

/// The cookie of the calling process's network namespace (that of a socket it makes).
fn own_netns_cookie() -> Option<u64> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let s = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .ok()?;
    netns_cookie(&s)
}

/// `connect` or `bind` on a socket of *another* network namespace (one the broker installed,
/// or one another process handed over): never let through, or the kernel would carry it out
/// there — a disconnect (`AF_UNSPEC`) and then a connect to anything that namespace reaches.
/// A connect restarted after its socket was installed (the same loopback port it is connected
/// to) succeeds; any other connect is `EISCONN` (an `AF_UNSPEC` disconnect included, so the
/// socket stays connected to what the broker connected it to, and `sendto(MSG_FASTOPEN)` on it
/// cannot connect it anew), any bind `EINVAL` (what the kernel says of a bound socket).
fn foreign_call(
    ctx: &Context,
    c: &Caller<'_>,
    bind: bool,
    socket: &OwnedFd,
    addr: u64,
    len: u64,
) -> Result<Reply> {
    if bind {
        return Err(Errno::INVAL);
    }
    let len = len as u32 as i32;
    if !(2..=MAX_ADDR_LEN as i32).contains(&len) {
        return Err(Errno::INVAL);
    }
    let mut bytes = [0u8; MAX_ADDR_LEN];
    let len = len as usize;
    ctx.their_bytes(c, addr, &mut bytes[..len]).map_err(|_| Errno::FAULT)?;
    let asked = match classify(&bytes[..len]) {
        Ok(Target::Loopback { port, .. }) => port,
        _ => return Err(Errno::ISCONN),
    };
    let mut peer = [0u8; MAX_ADDR_LEN];
    let mut peer_len = MAX_ADDR_LEN as libc::socklen_t;
    // SAFETY: getpeername writes at most `peer_len` bytes into `peer`, on this stack frame.
    let rc = unsafe {
        libc::getpeername(socket.as_raw_fd(), peer.as_mut_ptr().cast(), &raw mut peer_len)
    };
    let connected_to =
        (rc == 0).then(|| classify(&peer[..(peer_len as usize).min(MAX_ADDR_LEN)]).ok()).flatten();
    match connected_to {
        Some(Target::Loopback { port, .. }) if port == asked => Ok(Reply::Done),
        _ => Err(Errno::ISCONN),
    }
}

fn get_opt(fd: &OwnedFd, level: i32, name: i32) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, on this stack frame.
    let rc =
        unsafe { libc::getsockopt(fd.as_raw_fd(), level, name, (&raw mut v).cast(), &mut len) };
    if rc < 0 { Err(Errno::NOTSOCK) } else { Ok(v) }
}

fn set_opt(fd: &OwnedFd, level: i32, name: i32, v: i32) {
    // SAFETY: setsockopt reads one int from `v`, on this stack frame.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const v).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn get_int(fd: &OwnedFd, name: i32) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `v`, on this stack frame.
    let rc = unsafe {
        libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, name, (&raw mut v).cast(), &mut len)
    };
    if rc < 0 { Err(Errno::NOTSOCK) } else { Ok(v) }
}

/// `connect` or `bind` of the caller: see the module documentation.
pub(super) fn socket_call(
    ctx: &mut Context,
    c: &Caller<'_>,
    bind: bool,
    fd: i32,
    addr: u64,
    len: u64,
) -> Result<Reply> {
    if ctx.broker.as_ref().is_some_and(|b| b.full_trust) {
        return if bind {
            full_trust_guard(ctx, c, fd)
        } else {
            full_trust_connect(ctx, c, fd, addr, len)
        };
    }
    // First: whose socket is it? One of another namespace is never let through, whatever the
    // address and whether the broker answers or not.
    let Some(own) = ctx.broker.as_ref().and_then(|b| b.own_netns) else {
        // No broker link, or a kernel that cannot tell namespaces apart: nothing was ever
        // installed here, every socket is the app's own.
        return Ok(Reply::Continue);
    };
    let socket = match ctx.their_fd(c, fd) {
        Ok(s) => s,
        // Not an fd of the caller's (or gone with it): the kernel says what it says.
        Err(_) => return Ok(Reply::Continue),
    };
    if let Some(cookie) = netns_cookie(&socket)
        && cookie != own
    {
        return foreign_call(ctx, c, bind, &socket, addr, len);
    }
    if bind {
        return own_bind(ctx, c, socket, fd, addr, len);
    }
    if let Some(r) = own_disconnect(ctx, c, &socket, addr, len) {
        return r;
    }
    if ctx.broker.as_ref().is_none_or(|b| b.gone) {
        return Ok(Reply::Continue);
    }
    // The kernel takes the length as an int; anything it would refuse it refuses itself.
    let len = len as u32 as i32;
    if !(2..=MAX_ADDR_LEN as i32).contains(&len) {
        return Ok(Reply::Continue);
    }
    let mut bytes = [0u8; MAX_ADDR_LEN];
    let len = len as usize;
    if ctx.their_bytes(c, addr, &mut bytes[..len]).is_err() {
        return Ok(Reply::Continue);
    }
    let relevant = match classify(&bytes[..len]) {
        // The same package always reaches itself: its own listener needs no broker.
        Ok(Target::Loopback { port, .. }) if port != 0 => {
            !ctx.broker.as_mut().is_some_and(|b| b.own_namespace_reaches(&bytes[..len]))
        }
        _ => false,
    };
    if !relevant {
        return Ok(Reply::Continue);
    }
    ask_connect(ctx, c, socket, fd, bytes, len)
}

/// A disconnect (`connect` with `AF_UNSPEC`) of the app's own `socket`: carried out here, on the
/// very socket the check looked at (its duplicate), never let through. Let through, the kernel
/// would look the fd number up again, and another thread of the app could have put an
/// installed socket (of another namespace) there meanwhile (`dup2`): disconnected, it could be
/// connected anew in that namespace (`sendto` with `MSG_FASTOPEN` is not intercepted). `None`
/// for any other address.
fn own_disconnect(
    ctx: &Context,
    c: &Caller<'_>,
    socket: &OwnedFd,
    addr: u64,
    len: u64,
) -> Option<Result<Reply>> {
    let len = len as u32 as i32;
    if !(2..=size_of::<libc::sockaddr_storage>() as i32).contains(&len) {
        return None;
    }
    // Only the family counts for a disconnect: the rest is given as zeros, at most
    // MAX_ADDR_LEN bytes of it.
    let mut bytes = [0u8; MAX_ADDR_LEN];
    ctx.their_bytes(c, addr, &mut bytes[..2]).ok()?;
    if i32::from(u16::from_ne_bytes([bytes[0], bytes[1]])) != libc::AF_UNSPEC {
        return None;
    }
    let len = (len as usize).min(MAX_ADDR_LEN);
    if let Err(e) = c.still_waiting() {
        return Some(Err(e));
    }
    // SAFETY: connect reads `len` (≤ MAX_ADDR_LEN) bytes of `bytes`, on this stack frame; the
    // socket is the app's, duplicated into this process.
    let rc = unsafe { libc::connect(socket.as_raw_fd(), bytes.as_ptr().cast(), len as u32) };
    if rc < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        return Some(Err(Errno::from_raw_os_error(e)));
    }
    Some(Ok(Reply::Done))
}

/// Asks the broker about a TCP connect of the app's `socket` (its `fd`) to the loopback address
/// `bytes[..len]`, and carries out its answer (other sockets are let through).
fn ask_connect(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: OwnedFd,
    fd: i32,
    bytes: [u8; MAX_ADDR_LEN],
    len: usize,
) -> Result<Reply> {
    let stream = get_int(&socket, libc::SO_TYPE).is_ok_and(|t| t == libc::SOCK_STREAM);
    let ip =
        get_int(&socket, libc::SO_DOMAIN).is_ok_and(|d| d == libc::AF_INET || d == libc::AF_INET6);
    if !stream || !ip {
        return Ok(Reply::Continue);
    }
    let cloexec = ctx.fd_cloexec(c, fd);
    c.still_waiting()?;
    let ask = Ask { op: AskOp::Connect, seq: 0, cloexec, addr: bytes, addr_len: len as u8 };
    let Some(link) = ctx.broker.as_mut() else { return Ok(Reply::Continue) };
    let (answer, installed) = link.ask(ask, &socket);
    drop(socket);
    match (answer, installed) {
        (Answer::Continue, _) => Ok(Reply::Continue),
        (Answer::Fail(e), _) => Err(Errno::from_raw_os_error(e)),
        (Answer::Done, _) => Ok(Reply::Done),
        (Answer::Install, Some(new)) => {
            link.note_installed(netns_cookie(&new));
            install(c, &new, fd, cloexec)?;
            Ok(Reply::Done)
        }
        (Answer::Install, None) => Ok(Reply::Continue),
    }
}

/// The longest address a full-trust connect is read for (`sizeof(struct sockaddr_in6)`): what
/// a loopback address takes; of a longer one (`AF_UNIX`) only its family matters.
const FULL_TRUST_READ: usize = 28;

/// `bind` or `listen` of a packaged full-trust process: carried out by the kernel (in the host's
/// namespace, outside the packages' port space), except on a socket of another namespace once
/// one was installed here: `EINVAL`, what the kernel says of a connected socket. An installed
/// socket whose connection has ended (`TCP_CLOSE` releases its port) could otherwise be bound
/// and made a listener inside the server's namespace, where the server's own processes, and
/// the clients the broker sends there, would reach it.
fn full_trust_guard(ctx: &mut Context, c: &Caller<'_>, fd: i32) -> Result<Reply> {
    let Some(link) = ctx.broker.as_ref().filter(|b| b.installed) else {
        return Ok(Reply::Continue);
    };
    let Some(own) = link.own_netns else { return Ok(Reply::Continue) };
    let Ok(s) = ctx.their_fd(c, fd) else { return Ok(Reply::Continue) };
    match (netns_cookie(&s), ctx.broker.as_ref()) {
        (Some(cookie), Some(link)) if cookie != own && link.installed_from(cookie) => {
            Err(Errno::INVAL)
        }
        _ => Ok(Reply::Continue),
    }
}

/// `connect` of a packaged full-trust process, which runs in the host's network namespace:
/// everything goes on as without the supervisor (`CONTINUE`), at the cost of one read of the
/// address, except a TCP connect to a loopback port that no listener of the host reaches —
/// where the kernel could only refuse, and where an app container's listener may be — which
/// the broker decides (`LoopbackConnect`: the server's `in` rule naming the client, or its
/// own package); an allowed one gets a socket of the listener's namespace installed. A host
/// listener is reached as before, without the broker. Sockets of another namespace (installed
/// ones; the fd is looked at for every connect once one was installed here, and for every
/// `AF_UNSPEC` disconnect) are never let through: [`foreign_call`].
fn full_trust_connect(
    ctx: &mut Context,
    c: &Caller<'_>,
    fd: i32,
    addr: u64,
    len: u64,
) -> Result<Reply> {
    let Some(own) = ctx.broker.as_ref().and_then(|b| b.own_netns) else {
        return Ok(Reply::Continue);
    };
    let installed = ctx.broker.as_ref().is_some_and(|b| b.installed);
    let len = len as u32 as i32;
    if !(0..=size_of::<libc::sockaddr_storage>() as i32).contains(&len) {
        // What the kernel refuses (EINVAL) whatever the address: its answer.
        return Ok(Reply::Continue);
    }
    let mut bytes = [0u8; MAX_ADDR_LEN];
    let read = usize::try_from(len).map_or(0, |l| l.min(FULL_TRUST_READ));
    let read = read >= 2 && ctx.their_bytes(c, addr, &mut bytes[..read]).is_ok();
    let unspec = read && i32::from(u16::from_ne_bytes([bytes[0], bytes[1]])) == libc::AF_UNSPEC;
    let mut socket = None;
    if installed || unspec {
        let Ok(s) = ctx.their_fd(c, fd) else { return Ok(Reply::Continue) };
        if let Some(cookie) = netns_cookie(&s).filter(|cookie| *cookie != own) {
            // Guarded: a socket installed here, or a disconnect of any socket of another
            // namespace (one handed over). Else a socket of a namespace of the process's own
            // (a sandbox it made): the kernel connects it there.
            let guarded = unspec || ctx.broker.as_ref().is_some_and(|b| b.installed_from(cookie));
            return if guarded {
                foreign_call(ctx, c, false, &s, addr, len as u64)
            } else {
                Ok(Reply::Continue)
            };
        }
        if unspec {
            // Carried out on the socket looked at, not let through (see `own_disconnect`).
            return own_disconnect(ctx, c, &s, addr, len as u64).unwrap_or(Ok(Reply::Continue));
        }
        socket = Some(s);
    }
    let len = (len as usize).min(FULL_TRUST_READ);
    let loopback =
        read && matches!(classify(&bytes[..len]), Ok(Target::Loopback { port, .. }) if port != 0);
    let Some(link) = ctx.broker.as_mut() else { return Ok(Reply::Continue) };
    if !loopback || link.gone || link.own_namespace_reaches(&bytes[..len]) {
        return Ok(Reply::Continue);
    }
    let socket = match socket {
        Some(s) => s,
        None => match ctx.their_fd(c, fd) {
            // A socket of another namespace, none installed here yet (a sandbox of the
            // process's own, or one handed over): the kernel connects it in its namespace.
            Ok(s) if netns_cookie(&s).is_some_and(|cookie| cookie != own) => {
                return Ok(Reply::Continue);
            }
            Ok(s) => s,
            Err(_) => return Ok(Reply::Continue),
        },
    };
    ask_connect(ctx, c, socket, fd, bytes, len)
}

/// `bind` of a TCP socket of the app's own namespace: the address is read once and the bind is
/// carried out by the supervisor on the app's very socket (its duplicate), with that copy —
/// never let through, since the kernel would read the address again after the broker checked
/// the port (a thread of the app could change it meanwhile). The supervisor acts with the
/// app's uid and no capability, so the kernel's checks (privileged ports) are the app's.
/// `AF_UNSPEC` is what the kernel makes of it on an `AF_INET` socket: the wildcard address if
/// the address is `INADDR_ANY`, `EAFNOSUPPORT` otherwise. Other sockets are let through: UDP
/// and local sockets are not in the shared port space.
fn own_bind(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: OwnedFd,
    fd: i32,
    addr: u64,
    len: u64,
) -> Result<Reply> {
    let stream = get_int(&socket, libc::SO_TYPE).is_ok_and(|t| t == libc::SOCK_STREAM);
    let domain = get_int(&socket, libc::SO_DOMAIN).unwrap_or(-1);
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Ok(Reply::Continue);
    }
    let len = len as u32 as i32;
    if !(2..=MAX_ADDR_LEN as i32).contains(&len) {
        return Err(Errno::INVAL);
    }
    let len = len as usize;
    let mut bytes = [0u8; MAX_ADDR_LEN];
    ctx.their_bytes(c, addr, &mut bytes[..len]).map_err(|_| Errno::FAULT)?;
    if !stream {
        // UDP and raw: not in the shared port space, but bound here too, on the socket the
        // check looked at (let through, the kernel would look the fd number up again: an
        // installed socket put there meanwhile could be bound in its namespace).
        c.still_waiting()?;
        raw_bind(&socket, &bytes[..len])?;
        return Ok(Reply::Done);
    }
    if i32::from(u16::from_ne_bytes([bytes[0], bytes[1]])) == libc::AF_UNSPEC && len >= 16 {
        if domain != libc::AF_INET || bytes[4..8] != [0; 4] {
            return Err(Errno::AFNOSUPPORT);
        }
        bytes[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    }
    let asks = ctx.broker.as_ref().is_some_and(|b| !b.gone);
    match crate::loopback::shared_space_port(&bytes[..len]) {
        Some(0) if asks => {
            c.still_waiting()?;
            ephemeral_bind(ctx, c, &socket, fd, &mut bytes, len, domain)?;
            return Ok(Reply::Done);
        }
        Some(_) if asks => {
            ask_bind(ctx, c, &socket, fd, bytes, len)?;
        }
        _ => {}
    }
    c.still_waiting()?;
    raw_bind(&socket, &bytes[..len])?;
    Ok(Reply::Done)
}

/// `bind(socket, addr)`, the kernel's errno if it fails.
fn raw_bind(socket: &OwnedFd, addr: &[u8]) -> Result<()> {
    // SAFETY: bind reads `addr.len()` (≤ MAX_ADDR_LEN) bytes of `addr`, borrowed for the call;
    // the socket is the app's, duplicated into this process.
    let rc = unsafe {
        libc::bind(socket.as_raw_fd(), addr.as_ptr().cast(), addr.len() as libc::socklen_t)
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        return Err(Errno::from_raw_os_error(e));
    }
    Ok(())
}

/// How many ports the kernel offers for one ephemeral bind before the supervisor gives up
/// (`EADDRINUSE`): each one the broker refuses is another package's.
const EPHEMERAL_TRIES: usize = 16;

/// Asks the broker whether the app's `socket` (its `fd`) may bind the shared-space address
/// `bytes[..len]`; `Err` with the broker's refusal (`EADDRINUSE`, ...).
fn ask_bind(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: &OwnedFd,
    fd: i32,
    bytes: [u8; MAX_ADDR_LEN],
    len: usize,
) -> Result<()> {
    let cloexec = ctx.fd_cloexec(c, fd);
    c.still_waiting()?;
    let ask = Ask { op: AskOp::Bind, seq: 0, cloexec, addr: bytes, addr_len: len as u8 };
    if let Some(link) = ctx.broker.as_mut()
        && let (Answer::Fail(e), _) = link.ask(ask, socket)
    {
        return Err(Errno::from_raw_os_error(e));
    }
    Ok(())
}

/// A bind of port 0 (an ephemeral port), or the implicit one of a `listen` on an unbound
/// socket: the port must be free in the shared space, not only in the app's namespace (else two
/// namespaces could listen on one port). A probe socket of the app's namespace, bound to the
/// same address and port 0, gets a port from the kernel; the broker is asked about it (and
/// reserves it); if another package holds it the probe is kept (so the kernel offers another)
/// and the next is asked about; an accepted port is bound on the app's socket.
fn ephemeral_bind(
    ctx: &mut Context,
    c: &Caller<'_>,
    socket: &OwnedFd,
    fd: i32,
    bytes: &mut [u8; MAX_ADDR_LEN],
    len: usize,
    domain: i32,
) -> Result<()> {
    let mut held: [Option<OwnedFd>; EPHEMERAL_TRIES] = Default::default();
    let v6only = (domain == libc::AF_INET6)
        .then(|| get_opt(socket, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY).unwrap_or(0));
    let cloexec = ctx.fd_cloexec(c, fd);
    for slot in &mut held {
        // SAFETY: socket takes integers; the fd returned is new and owned here.
        let probe = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
        if probe < 0 {
            return Err(Errno::from_raw_os_error(
                std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOBUFS),
            ));
        }
        // SAFETY: see above.
        let probe = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(probe) };
        if let Some(v) = v6only {
            set_opt(&probe, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, v);
        }
        bytes[2..4].copy_from_slice(&0u16.to_be_bytes());
        raw_bind(&probe, &bytes[..len])?;
        let port = local_port(&probe).ok_or(Errno::ADDRINUSE)?;
        bytes[2..4].copy_from_slice(&port.to_be_bytes());
        c.still_waiting()?;
        let ask = Ask { op: AskOp::Bind, seq: 0, cloexec, addr: *bytes, addr_len: len as u8 };
        let answer = match ctx.broker.as_mut() {
            Some(link) => link.ask(ask, socket).0,
            None => Answer::Continue,
        };
        match answer {
            Answer::Fail(libc::EADDRINUSE) => {
                *slot = Some(probe);
                continue;
            }
            Answer::Fail(e) => return Err(Errno::from_raw_os_error(e)),
            _ => {}
        }
        drop(probe);
        c.still_waiting()?;
        match raw_bind(socket, &bytes[..len]) {
            // Taken meanwhile in the app's own namespace (another of its threads): again.
            Err(Errno::ADDRINUSE) => continue,
            r => return r,
        }
    }
    Err(Errno::ADDRINUSE)
}

/// The local port of a bound socket.
fn local_port(socket: &OwnedFd) -> Option<u16> {
    let mut a = [0u8; MAX_ADDR_LEN];
    let mut n = MAX_ADDR_LEN as libc::socklen_t;
    // SAFETY: getsockname writes at most `n` bytes into `a`, on this stack frame.
    let rc = unsafe { libc::getsockname(socket.as_raw_fd(), a.as_mut_ptr().cast(), &raw mut n) };
    (rc == 0 && n >= 4).then(|| u16::from_be_bytes([a[2], a[3]]))
}

/// `listen` of the caller: on a TCP socket of the app's own namespace it is carried out by the
/// supervisor (never let through: the app could put another socket at that fd meanwhile),
/// after the broker checked the port — the one the socket is bound to (another package may
/// have come to hold it since), or for a socket not bound yet (the kernel would pick a port
/// itself) an ephemeral one free in the shared space ([`ephemeral_bind`]). A socket of
/// another namespace is `EINVAL` (an installed socket is connected: what the kernel says).
/// Anything else, and everything when the broker does not answer, is let through.
pub(super) fn listen_call(
    ctx: &mut Context,
    c: &Caller<'_>,
    fd: i32,
    backlog: i32,
) -> Result<Reply> {
    if ctx.broker.as_ref().is_some_and(|b| b.full_trust) {
        return full_trust_guard(ctx, c, fd);
    }
    let Some(own) = ctx.broker.as_ref().and_then(|b| b.own_netns) else {
        return Ok(Reply::Continue);
    };
    let Ok(socket) = ctx.their_fd(c, fd) else { return Ok(Reply::Continue) };
    if netns_cookie(&socket).is_some_and(|cookie| cookie != own) {
        return Err(Errno::INVAL);
    }
    let stream = get_int(&socket, libc::SO_TYPE).is_ok_and(|t| t == libc::SOCK_STREAM);
    let protocol = get_int(&socket, libc::SO_PROTOCOL).unwrap_or(-1);
    let domain = get_int(&socket, libc::SO_DOMAIN).unwrap_or(-1);
    let tcp = protocol == 0 || protocol == libc::IPPROTO_TCP;
    if !stream || !tcp || (domain != libc::AF_INET && domain != libc::AF_INET6) {
        return Ok(Reply::Continue);
    }
    if ctx.broker.as_ref().is_none_or(|b| b.gone) {
        return Ok(Reply::Continue);
    }
    let mut bytes = [0u8; MAX_ADDR_LEN];
    let mut n = MAX_ADDR_LEN as libc::socklen_t;
    // SAFETY: getsockname writes at most `n` bytes into `bytes`, on this stack frame.
    let rc =
        unsafe { libc::getsockname(socket.as_raw_fd(), bytes.as_mut_ptr().cast(), &raw mut n) };
    if rc < 0 || (n as usize) < 4 {
        return Ok(Reply::Continue);
    }
    let len = (n as usize).min(MAX_ADDR_LEN);
    match crate::loopback::shared_space_port(&bytes[..len]) {
        Some(0) => {
            c.still_waiting()?;
            ephemeral_bind(ctx, c, &socket, fd, &mut bytes, len, domain)?;
        }
        Some(_) => {
            ask_bind(ctx, c, &socket, fd, bytes, len)?;
        }
        None => {}
    }
    c.still_waiting()?;
    // SAFETY: listen takes an fd (the app's socket, duplicated into this process) and an int.
    if unsafe { libc::listen(socket.as_raw_fd(), backlog) } < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL);
        return Err(Errno::from_raw_os_error(e));
    }
    Ok(Reply::Done)
}

/// Installs `new` over the caller's fd `fd` (`SECCOMP_ADDFD_FLAG_SETFD`).
fn install(c: &Caller<'_>, new: &OwnedFd, fd: i32, cloexec: bool) -> Result<()> {
    let addfd = libc::seccomp_notif_addfd {
        id: c.id,
        flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
        srcfd: new.as_raw_fd() as u32,
        newfd: fd as u32,
        newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
    };
    // SAFETY: SECCOMP_IOCTL_NOTIF_ADDFD reads one seccomp_notif_addfd from `addfd`, on this
    // stack frame; the kernel duplicates `srcfd` into the caller at `newfd`, atomically
    // replacing what was there, only while the notification is pending.
    let rc = unsafe {
        libc::ioctl(c.listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_ADDFD, &raw const addfd)
    };
    if rc < 0 {
        let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOENT);
        return Err(Errno::from_raw_os_error(e));
    }
    Ok(())
}

impl Context {
    /// Whether the caller's fd `fd` has `FD_CLOEXEC` (its `/proc/<tid>/fdinfo/<fd>` flags);
    /// false when that cannot be read.
    fn fd_cloexec(&self, c: &Caller<'_>, fd: i32) -> bool {
        let mut p = super::PathBuf::<64>::new();
        let built = p.push(b"fdinfo/").and_then(|p| p.push_u32(fd as u32)).is_ok();
        if !built || fd < 0 {
            return false;
        }
        let Ok(info) =
            self.caps.reaching(|| self.proc_of(c.tid, p.as_cstr(), rustix::fs::OFlags::RDONLY))
        else {
            return false;
        };
        let mut buf = [0u8; 512];
        let n = rustix::io::read(&info, &mut buf).unwrap_or(0);
        let text = &buf[..n];
        let Some(at) = text.windows(6).position(|w| w == b"flags:") else { return false };
        let mut flags = 0u32;
        for &b in text[at + 6..].iter().skip_while(|b| b.is_ascii_whitespace()) {
            if !(b'0'..=b'7').contains(&b) {
                break;
            }
            flags = flags.wrapping_mul(8).wrapping_add(u32::from(b - b'0'));
        }
        flags & libc::O_CLOEXEC as u32 != 0
    }
}

#[cfg(test)]
#[path = "loopback_tests.rs"]
mod tests;
