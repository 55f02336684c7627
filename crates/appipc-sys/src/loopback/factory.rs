//! [`SocketFactory`]: a process in a package's network namespace that makes sockets there.
//!
//! A socket belongs for life to the network namespace it was made in, and connecting it
//! reaches that namespace's listeners. The broker cannot enter another package's namespace
//! itself (a multithreaded process cannot join a user namespace, and an unprivileged broker
//! has no capability in a network namespace it did not join through its user namespace), so it
//! forks a single-threaded child that joins the package's user namespace (an unprivileged
//! broker's uid owns it; a root broker needs not) and then its network namespace, and from
//! then on only makes sockets: it reads `(domain, type, protocol)` from a socket pair and
//! answers with the new socket's fd (`SCM_RIGHTS`) or an errno. It dies with the thread that
//! forked it (`PR_SET_PDEATHSIG`) and when its channel closes; it keeps the namespace alive,
//! so the broker ends it with the package's namespace holder.
//!
//! Between `fork` and its end the child is a forked child of a multithreaded process: raw
//! syscalls, buffers on the stack, no allocation, no lock.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

use crate::socket::{Blocking, send};

/// A socket maker inside one network namespace (see the module documentation).
#[derive(Debug)]
pub struct SocketFactory {
    /// The child's pid.
    pub pid: u32,
    pidfd: OwnedFd,
    channel: Mutex<OwnedFd>,
}

fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit takes an integer and never returns; no destructor or handler runs.
    unsafe { libc::_exit(code) }
}

/// Closes every fd but `keep`. Async-signal-safe.
fn close_all_but(keep: RawFd) {
    let keep = keep as libc::c_uint;
    // SAFETY: close_range takes integers; the fds closed belong to this forked process and
    // nothing in it uses them afterwards.
    unsafe {
        if keep > 0 {
            libc::syscall(libc::SYS_close_range, 0 as libc::c_uint, keep - 1, 0 as libc::c_uint);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, libc::c_uint::MAX, 0 as libc::c_uint);
    }
}

impl SocketFactory {
    /// Forks the factory: it joins `userns` (if `join_userns`) and then `netns`. Call it on a
    /// thread that lives as long as the factory should (its parent-death signal is that
    /// thread's end).
    pub fn start(
        userns: BorrowedFd<'_>,
        netns: BorrowedFd<'_>,
        join_userns: bool,
    ) -> io::Result<SocketFactory> {
        let (ours, theirs) = crate::socket::seqpacket_pair()?;
        let parent = rustix::process::getpid();
        // SAFETY: the child makes only async-signal-safe calls (`serve` never returns), which
        // is all a child of a multithreaded process may do; the parent goes on as it was.
        let pid = unsafe { crate::sandbox::raw_fork() }?;
        if pid == 0 {
            serve(theirs.as_raw_fd(), userns.as_raw_fd(), netns.as_raw_fd(), join_userns, parent)
        }
        drop(theirs);
        let pidfd = crate::process::pidfd_open(pid as u32)?;
        Ok(SocketFactory { pid: pid as u32, pidfd, channel: Mutex::new(ours) })
    }

    /// A new socket of the factory's network namespace (close-on-exec). Blocking, brief.
    pub fn socket(&self, domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
        let channel = self.channel.lock().map_err(|_| io::Error::other("factory poisoned"))?;
        let mut req = [0u8; 12];
        req[..4].copy_from_slice(&domain.to_ne_bytes());
        req[4..8].copy_from_slice(&ty.to_ne_bytes());
        req[8..].copy_from_slice(&protocol.to_ne_bytes());
        send(&*channel, &req, &[], Blocking::Yes)?;
        let Some(mut p) = crate::socket::recv(&*channel, 4, Blocking::Yes)? else {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the socket factory is gone"));
        };
        let errno = p
            .data
            .get(..4)
            .map_or(libc::EIO, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
        match (errno, p.fds.pop()) {
            (0, Some(fd)) if p.fds.is_empty() => Ok(fd),
            (0, _) => Err(io::Error::other("the socket factory sent no socket")),
            (e, _) => Err(io::Error::from_raw_os_error(e)),
        }
    }

    /// A [`super::Listeners`] of the factory's namespace.
    pub fn listeners(&self) -> io::Result<super::Listeners> {
        let s = self.socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_SOCK_DIAG)?;
        Ok(super::Listeners::from_socket(s))
    }

    /// Whether the factory is still running.
    pub fn is_alive(&self) -> bool {
        !crate::process::has_exited(&self.pidfd)
    }
}

impl Drop for SocketFactory {
    fn drop(&mut self) {
        let _ = crate::process::send_signal(&self.pidfd, rustix::process::Signal::KILL);
        let _ = rustix::process::waitid(
            rustix::process::WaitId::PidFd(self.pidfd.as_fd()),
            rustix::process::WaitIdOptions::EXITED,
        );
    }
}

/// The factory's life. Never returns.
fn serve(
    channel: RawFd,
    userns: RawFd,
    netns: RawFd,
    join_userns: bool,
    parent: rustix::process::Pid,
) -> ! {
    let _ = rustix::thread::set_name(c"appipc-sockets");
    if rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .is_err()
        || rustix::process::getppid() != Some(parent)
    {
        exit_now(1);
    }
    // SAFETY: resets this process's own signal state (the broker's handlers must not run
    // here) with a set on this stack frame; setns takes fds open in this process and an
    // integer.
    let joined = unsafe {
        for s in 1..libc::SIGRTMIN() {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        (!join_userns || libc::setns(userns, libc::CLONE_NEWUSER) == 0)
            && libc::setns(netns, libc::CLONE_NEWNET) == 0
    };
    if !joined {
        exit_now(2);
    }
    close_all_but(channel);
    // SAFETY: `channel` is open in this process, owned by nothing else here.
    let channel = unsafe { OwnedFd::from_raw_fd(channel) };
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let none = rustix::thread::CapabilitySet::empty();
    let caps =
        rustix::thread::CapabilitySets { effective: none, permitted: none, inheritable: none };
    if rustix::thread::set_capabilities(None, caps).is_err() {
        exit_now(3);
    }
    loop {
        let mut req = [0u8; 12];
        let n = match rustix::io::read(&channel, &mut req) {
            Ok(0) => exit_now(0),
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => exit_now(1),
        };
        let word = |i: usize| i32::from_ne_bytes(req[i..i + 4].try_into().expect("4 bytes"));
        let reply = if n != req.len() {
            Err(libc::EINVAL)
        } else {
            // SAFETY: socket takes integers; the fd returned is new and owned here.
            let fd = unsafe { libc::socket(word(0), word(4) | libc::SOCK_CLOEXEC, word(8)) };
            if fd < 0 {
                Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
            } else {
                // SAFETY: see above.
                Ok(unsafe { OwnedFd::from_raw_fd(fd) })
            }
        };
        let sent = match &reply {
            Ok(fd) => send(&channel, &0i32.to_ne_bytes(), &[fd.as_fd()], Blocking::Yes),
            Err(e) => send(&channel, &e.to_ne_bytes(), &[], Blocking::Yes),
        };
        drop(reply);
        if sent.is_err() {
            exit_now(0);
        }
    }
}
