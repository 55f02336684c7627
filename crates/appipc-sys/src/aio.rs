//! tokio wrappers: an async `SOCK_SEQPACKET` socket and waiting on pidfds.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::socket::{self, Blocking, Packet};

fn register(fd: OwnedFd, interest: Interest) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the `AsyncFd` takes ownership of the `OwnedFd`, so the descriptor stays open
    // and refers to the same open file description until the `AsyncFd` is dropped or
    // `into_inner` gives it back; `OwnedFd::as_raw_fd` always returns that same number.
    unsafe { AsyncFd::register_with_interest(fd, interest) }.map_err(|e| e.into_parts().1)
}

/// A non-blocking `SOCK_SEQPACKET` socket registered with the tokio reactor. `send` and `recv`
/// take `&self`, so one socket can be shared by a reader task and several writers: every
/// message is sent whole by the kernel.
#[derive(Debug)]
pub struct AsyncSeqPacket {
    inner: AsyncFd<OwnedFd>,
    /// Registered for writability too (else a blocked send waits on a dup of its own).
    writable: bool,
}

impl AsyncSeqPacket {
    /// Takes ownership of a connected socket and makes it non-blocking, registered for
    /// readability and writability. Must be called from inside a tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        socket::set_nonblocking(&fd, true)?;
        let inner = register(fd, Interest::READABLE | Interest::WRITABLE)?;
        Ok(AsyncSeqPacket { inner, writable: true })
    }

    /// Like [`AsyncSeqPacket::new`], but registered for readability only: for a socket that
    /// is mostly read and whose sends rarely wait (a request/response connection). A socket
    /// registered for writability wakes its reactor each time the peer reads a message (room
    /// appeared), that is once per round trip for nothing; here a send that finds the socket
    /// full waits on a registration of a duplicate of its own, for the length of that wait.
    pub fn new_reading(fd: OwnedFd) -> io::Result<Self> {
        socket::set_nonblocking(&fd, true)?;
        Ok(AsyncSeqPacket { inner: register(fd, Interest::READABLE)?, writable: false })
    }

    /// Sends one message with fds attached.
    pub async fn send(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        if !self.writable {
            loop {
                match socket::send(self.inner.get_ref(), data, fds, Blocking::No) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        writable(self.inner.get_ref().as_fd()).await?;
                    }
                    r => return r,
                }
            }
        }
        loop {
            let mut guard = self.inner.writable().await?;
            match guard.try_io(|fd| socket::send(fd, data, fds, Blocking::No)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Receives one message of at most `max` bytes; `Ok(None)` at the end of the stream.
    pub async fn recv(&self, max: usize) -> io::Result<Option<Packet>> {
        loop {
            let mut guard = self.inner.readable().await?;
            match guard.try_io(|fd| socket::recv(fd, max, Blocking::No)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Waits until a message (or the end of the stream) can be received, without receiving
    /// it. The readiness may be stale (the reactor's, not the kernel's): a `recv` after it can
    /// still find nothing and wait.
    pub async fn readable(&self) -> io::Result<()> {
        self.inner.readable().await.map(|_guard| ())
    }

    /// Receives one message into a reused buffer; `Ok(None)` at the end of the stream.
    pub async fn recv_into(&self, buf: &mut [u8]) -> io::Result<Option<socket::Received>> {
        loop {
            let mut guard = self.inner.readable().await?;
            match guard.try_io(|fd| socket::recv_into(fd, buf, Blocking::No)) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Gives the socket back, deregistered and still non-blocking.
    pub fn into_inner(self) -> OwnedFd {
        self.inner.into_inner()
    }
}

impl AsFd for AsyncSeqPacket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.get_ref().as_fd()
    }
}

/// A listening `SOCK_SEQPACKET` socket registered with the tokio reactor.
#[derive(Debug)]
pub struct AsyncListener {
    inner: AsyncFd<OwnedFd>,
}

impl AsyncListener {
    /// Takes ownership of a listening socket (made non-blocking).
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        socket::set_nonblocking(&fd, true)?;
        Ok(AsyncListener { inner: register(fd, Interest::READABLE)? })
    }

    /// Accepts one connection (blocking, close-on-exec socket).
    pub async fn accept(&self) -> io::Result<OwnedFd> {
        loop {
            let mut guard = self.inner.readable().await?;
            match guard.try_io(socket::accept) {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// An eventfd registered with the tokio reactor (named events and semaphores).
#[derive(Debug)]
pub struct EventFd {
    inner: AsyncFd<OwnedFd>,
}

impl EventFd {
    /// Takes ownership of an eventfd or a [`readiness_fd`] (made non-blocking).
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        socket::set_nonblocking(&fd, true)?;
        Ok(EventFd { inner: register(fd, Interest::READABLE)? })
    }

    /// Waits until the counter is non-zero and takes one signal from it.
    pub async fn wait(&self) -> io::Result<()> {
        loop {
            let mut guard = self.inner.readable().await?;
            let r = guard.try_io(|fd| {
                let mut buf = [0u8; 8];
                rustix::io::read(fd, &mut buf).map(|_| ()).map_err(io::Error::from)
            });
            match r {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

impl EventFd {
    /// Waits until the fd is readable, without reading from it: a manual-reset event's
    /// eventfd, or a [`readiness_fd`].
    pub async fn wait_signalled(&self) -> io::Result<()> {
        loop {
            let mut guard = self.inner.readable().await?;
            if is_readable(self.inner.get_ref())? {
                return Ok(());
            }
            guard.clear_ready();
        }
    }
}

/// A new non-blocking eventfd (close-on-exec) counting from `initial`; with `semaphore`, each
/// read takes one from the counter instead of all of it (a named semaphore rather than an
/// event). Non-blocking, so that no reader (the broker included) ever blocks on it: the flag
/// belongs to the open file, which every handle to the object shares.
pub fn eventfd_new(initial: u32, semaphore: bool) -> io::Result<OwnedFd> {
    use rustix::event::EventfdFlags;
    let flags = if semaphore {
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK | EventfdFlags::SEMAPHORE
    } else {
        EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK
    };
    Ok(rustix::event::eventfd(initial, flags)?)
}

/// Takes one signal from a non-blocking eventfd: all of an event's counter, or one of a
/// semaphore's. `false` if the counter was zero.
pub fn eventfd_try_take(fd: impl AsFd) -> io::Result<bool> {
    let mut buf = [0u8; 8];
    match rustix::io::read(fd, &mut buf) {
        Ok(_) => Ok(true),
        Err(rustix::io::Errno::AGAIN) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Adds `n` to an eventfd's counter (`ReleaseSemaphore(n)`).
pub fn eventfd_add(fd: impl AsFd, n: u64) -> io::Result<()> {
    rustix::io::write(fd, &n.to_ne_bytes())?;
    Ok(())
}

/// A new epoll fd (close-on-exec) that is readable exactly while `fd` is: a way to hand out
/// "wait on this" without handing out `fd` itself (its holder can poll it, but cannot read or
/// write the object through it).
pub fn readiness_fd(fd: impl AsFd) -> io::Result<OwnedFd> {
    use rustix::event::epoll;
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    epoll::add(&ep, fd, epoll::EventData::new_u64(0), epoll::EventFlags::IN)?;
    Ok(ep)
}

/// Whether a pollable fd is readable now (a zero-timeout poll; nothing is read). For an
/// eventfd: its counter is non-zero; for a [`readiness_fd`]: the fd it watches is readable.
pub fn is_readable(fd: impl AsFd) -> io::Result<bool> {
    eventfd_is_set(fd)
}

/// Whether an eventfd's counter is non-zero (a zero-timeout poll; nothing is taken).
pub fn eventfd_is_set(fd: impl AsFd) -> io::Result<bool> {
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    let n =
        rustix::event::poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 }))?;
    Ok(n > 0 && fds[0].revents().contains(rustix::event::PollFlags::IN))
}

/// Blocks the calling thread until `fd` is readable or `timeout` passes (`None`: no limit);
/// `false` when it passed. A signal restarts the wait with the time left. Nothing is read.
pub fn wait_readable_for(fd: impl AsFd, timeout: Option<std::time::Duration>) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let deadline = timeout.map(|t| std::time::Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        let ts = left.map(|l| Timespec {
            tv_sec: i64::try_from(l.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(l.subsec_nanos()),
        });
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, ts.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sets a (non-blocking) eventfd's counter to zero (`ResetEvent`).
pub fn eventfd_drain(fd: impl AsFd) -> io::Result<()> {
    eventfd_try_take(fd).map(|_| ())
}

/// Adds one to an eventfd's counter (`SetEvent`, `ReleaseSemaphore(1)`).
pub fn eventfd_signal(fd: impl AsFd) -> io::Result<()> {
    rustix::io::write(fd, &1u64.to_ne_bytes())?;
    Ok(())
}

/// Waits until the process behind `pidfd` has exited (the pidfd becomes readable). Does not
/// reap it: for a child, follow with [`crate::process::try_reap`].
pub async fn pidfd_exited(pidfd: &OwnedFd) -> io::Result<()> {
    let dup = pidfd.try_clone()?;
    let afd = register(dup, Interest::READABLE)?;
    let _guard = afd.readable().await?;
    Ok(())
}

/// Waits, without blocking a thread, until `fd` (non-blocking) is writable: e.g. a socket whose
/// connect is going on ([`crate::loopback::connect_start`]).
pub async fn writable(fd: BorrowedFd<'_>) -> io::Result<()> {
    let afd = register(fd.try_clone_to_owned()?, Interest::WRITABLE)?;
    let _ready = afd.writable().await?;
    Ok(())
}
