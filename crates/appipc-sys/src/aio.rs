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
}

impl AsyncSeqPacket {
    /// Takes ownership of a connected socket and makes it non-blocking. Must be called from
    /// inside a tokio runtime.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        socket::set_nonblocking(&fd, true)?;
        Ok(AsyncSeqPacket { inner: register(fd, Interest::READABLE | Interest::WRITABLE)? })
    }

    /// Sends one message with fds attached.
    pub async fn send(&self, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
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

    /// Like [`recv_into`](Self::recv_into), but first polls the socket without sleeping for
    /// up to `spin`: when messages come back to back (a request/response ping-pong), this
    /// skips the cost of parking in epoll and waking up again, which dominates a round trip
    /// on small machines. Spinning holds the runtime thread, so keep `spin` in microseconds.
    pub async fn recv_into_spinning(
        &self,
        buf: &mut [u8],
        spin: std::time::Duration,
    ) -> io::Result<Option<socket::Received>> {
        if !spin.is_zero() {
            let start = std::time::Instant::now();
            loop {
                match socket::recv_into(self.inner.get_ref(), buf, Blocking::No) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    other => return other,
                }
                if start.elapsed() >= spin {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        self.recv_into(buf).await
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
    /// Takes ownership of an eventfd (made non-blocking).
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
    /// Waits until the counter is non-zero, without taking from it (manual-reset events).
    pub async fn wait_signalled(&self) -> io::Result<()> {
        loop {
            let mut guard = self.inner.readable().await?;
            if eventfd_is_set(self.inner.get_ref())? {
                return Ok(());
            }
            guard.clear_ready();
        }
    }
}

/// A new eventfd (close-on-exec) counting from `initial`; with `semaphore`, each read takes
/// one from the counter instead of all of it (a named semaphore rather than an event).
pub fn eventfd_new(initial: u32, semaphore: bool) -> io::Result<OwnedFd> {
    use rustix::event::EventfdFlags;
    let flags = if semaphore {
        EventfdFlags::CLOEXEC | EventfdFlags::SEMAPHORE
    } else {
        EventfdFlags::CLOEXEC
    };
    Ok(rustix::event::eventfd(initial, flags)?)
}

/// Whether an eventfd's counter is non-zero (a zero-timeout poll; nothing is taken).
pub fn eventfd_is_set(fd: impl AsFd) -> io::Result<bool> {
    let mut fds = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
    let n =
        rustix::event::poll(&mut fds, Some(&rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 }))?;
    Ok(n > 0 && fds[0].revents().contains(rustix::event::PollFlags::IN))
}

/// Sets an eventfd's counter to zero (`ResetEvent`).
pub fn eventfd_drain(fd: impl AsFd) -> io::Result<()> {
    let fd = fd.as_fd();
    if eventfd_is_set(fd)? {
        let mut buf = [0u8; 8];
        rustix::io::read(fd, &mut buf)?;
    }
    Ok(())
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
