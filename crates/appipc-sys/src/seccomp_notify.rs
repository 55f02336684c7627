//! The app container's seccomp supervisor: the changes of a file's mode and extended
//! attributes an app makes (`chmod`, `fchmod`, `fchmodat`, `fchmodat2`, `setxattr`,
//! `lsetxattr`, `fsetxattr`, `setxattrat`) are carried out by a process outside the app, and
//! only on files of the app's own mounts.
//!
//! # Why
//!
//! Under an unprivileged broker the app's uid inside (1000) *is* the broker's uid, so the app
//! owns every file the broker makes, and a file's owner may always change its mode and its
//! POSIX ACL. The broker's memfds (the named file mappings) are mode 0400, so that a
//! `FILE_MAP_READ` handle — the memfd reopened read-only — cannot be reopened read-write
//! through `/proc/self/fd/N`, which Landlock does not govern for memfds (they live on the
//! kernel's internal shm mount, not under any path). Their owner could set 0600 back
//! (`fchmod`, `chmod("/proc/self/fd/N")`, a symbolic link that leads there, an ACL) and then
//! reopen and write into another package's mapping. The same goes for the other files an app
//! holds that are not its own: the log file that is its stderr, a terminal or pipe it was
//! given. No filter can tell those calls from an app changing the mode of its own files
//! (the fd's file and the path are out of a BPF program's reach), and refusing `chmod`
//! outright breaks `cp -p`, `tar`, Python's `shutil.copy2`. So the calls go to a supervisor.
//!
//! # What it does
//!
//! [`supervised`] makes the two halves, joined by a socket pair: a [`NotifyFilter`], the last
//! restriction the app applies (a seccomp filter that answers the calls above with
//! `SECCOMP_RET_USER_NOTIF`; the app sends the listener fd over the socket and closes it
//! before `exec`), and a [`Supervisor`], which the container's first process forks before it
//! creates the app's namespaces, so the supervisor lives outside the app's pid and mount
//! namespaces (the app cannot see or signal it), in the package's user namespace, as the
//! waiter's child (`PR_SET_PDEATHSIG`: it dies with the waiter, and so survives whatever the
//! app container survives). It keeps only `CAP_SYS_PTRACE` (to reach into app processes that
//! made themselves undumpable), effective only while it reads a call's arguments, and
//! otherwise acts with the app's own uid, gids and no capabilities, so the kernel applies to
//! the operation every check it applies to the app. (Under a root broker the supervisor is
//! root, and takes on the app's credentials for each call that needs them — the loopback
//! half's `as_app` — with `CAP_SETUID` and `CAP_SETGID` kept permitted for that alone.)
//!
//! For each notification it:
//! 1. reads what the call names, never following it in the app: an fd is duplicated with
//!    `pidfd_getfd`, a path, an extended attribute's name and value are copied out of the
//!    app's memory (`process_vm_readv`, at most `PATH_MAX`, 255 bytes and 64 KiB, with the
//!    errors the kernel would give: `EFAULT`, `ENAMETOOLONG`, `ERANGE`, `E2BIG`, `EINVAL` for
//!    unknown flags), the working directory comes from `/proc/<tid>/cwd`, a directory fd by
//!    `pidfd_getfd`; then checks that the notification is still pending
//!    (`SECCOMP_IOCTL_NOTIF_ID_VALID`), so that the tid still names the caller;
//! 2. resolves a path itself, as the kernel would have for the app: in the app's root (its
//!    `/proc/<tid>/root`), `..` stopping there, symbolic links followed (40 at most),
//!    procfs's `self` and `thread-self` meaning the *caller's* tgid and tid in its own pid
//!    namespace, magic links (`/proc/N/fd/M`, `cwd`, `root`) followed by the kernel itself; to
//!    one `O_PATH` fd (`openat2` with `RESOLVE_IN_ROOT`/`RESOLVE_BENEATH`, and the walk one
//!    component at a time where that cannot say);
//! 3. refuses with `EPERM` unless that file is on one of the app's own mounts (its mount id
//!    is in the app's `/proc/<tid>/mountinfo`): a memfd, pipe, socket, the log file or
//!    terminal it was handed are not; and refuses set-id modes with `EPERM` as the escape-hatch
//!    filter does;
//! 4. performs the call on that very file (`fchmod` or `fsetxattr` of the duplicate,
//!    `fchmodat2(AT_EMPTY_PATH)` or `setxattr` of `/proc/self/fd/N` of the resolved `O_PATH`
//!    fd) and answers with its result.
//!
//! It never answers `SECCOMP_USER_NOTIF_FLAG_CONTINUE`: the kernel would read the path again,
//! after the app had every chance to change it or the links along it. What is checked is what
//! is changed.
//!
//! Removing an extended attribute (`removexattr`, …) is not supervised: it can only take
//! access away. A root broker needs no supervisor: its memfds belong to root and its apps run
//! as uids of their own, which may change neither mode nor ACL of a file they do not own.
//!
//! # Loopback between packages
//!
//! Made with a broker channel ([`supervised_with`]), the filter also hands `connect`, `bind`
//! and `listen` to the supervisor (under root and unprivileged brokers alike), which is the
//! data path of loopback between packages (`docs/loopback.md`; the `loopback` submodule). The
//! supervisor asks the broker about a TCP connect to a loopback address and port that the
//! app's own namespace does not answer, and installs the socket the broker made in the
//! listener's namespace over the app's fd (`SECCOMP_IOCTL_NOTIF_ADDFD` with
//! `SECCOMP_ADDFD_FLAG_SETFD`), answering 0. Since an installed socket (of another namespace)
//! may then be at any fd number, the supervisor of a container never lets one of these calls
//! through (`SECCOMP_USER_NOTIF_FLAG_CONTINUE` would have the kernel look the fd number up and
//! read the address again, after the checks): it carries out every one itself, on the socket
//! it looked at, with the address it read — a socket of another namespace is `EISCONN` on
//! connect (but a restarted one, answered 0) and `EINVAL` on bind and listen; the app's own
//! sockets are connected, bound and made to listen as the kernel would for the app (pathname
//! `AF_UNIX` ones resolved in its root, with its credentials, umask and Landlock's `make_sock`
//! rule: [`Supervisor::allow_sockets_below`]), a TCP bind and listen after the broker checked
//! the port in the shared port space. Only a kernel that cannot tell namespaces apart (before
//! Linux 5.14), where nothing is ever installed, gets its calls let through.
//!
//! A packaged full-trust process (not in an app container: the host's namespaces, the user's
//! uid) gets a filter of `connect` only ([`supervised_full_trust`]) and a supervisor forked
//! detached by the broker ([`Supervisor::start_detached`]), which lets everything through but a
//! TCP connect to a loopback port that no listener of the host reaches, which the broker
//! decides (an app container's listener, by its package's `in` rule); an installed socket is
//! guarded as above.
//!
//! If the supervisor is gone, a supervised call fails with `ENOSYS` (the kernel's answer when
//! a listener is closed): refused, never let through.
//!
//! Between `fork` and `exec`, and in the supervisor (a forked child of a multithreaded
//! process that never execs), everything here is async-signal-safe: raw syscalls, buffers on
//! the stack, no allocation, no lock.

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, StatxFlags};
use rustix::io::Errno;

mod loopback;
pub use loopback::set_answer_wait as set_loopback_answer_wait;

type Result<T, E = Errno> = std::result::Result<T, E>;

/// One syscall the supervisor carries out.
#[derive(Clone, Copy, Debug)]
pub struct SupervisedSyscall {
    /// The syscall's name.
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: i64,
}

/// `setxattrat` (Linux 6.13), not yet in `libc`; the same number on every architecture.
const SYS_SETXATTRAT: i64 = 463;

/// The syscalls the app's filter hands to the supervisor.
pub const SUPERVISED: &[SupervisedSyscall] = &[
    SupervisedSyscall { name: "fchmod", nr: libc::SYS_fchmod },
    SupervisedSyscall { name: "fchmodat", nr: libc::SYS_fchmodat },
    SupervisedSyscall { name: "fchmodat2", nr: libc::SYS_fchmodat2 },
    #[cfg(target_arch = "x86_64")]
    SupervisedSyscall { name: "chmod", nr: libc::SYS_chmod },
    SupervisedSyscall { name: "setxattr", nr: libc::SYS_setxattr },
    SupervisedSyscall { name: "lsetxattr", nr: libc::SYS_lsetxattr },
    SupervisedSyscall { name: "fsetxattr", nr: libc::SYS_fsetxattr },
    SupervisedSyscall { name: "setxattrat", nr: SYS_SETXATTRAT },
];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

const PATH_MAX: usize = libc::PATH_MAX as usize;
const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;
/// `struct xattr_args` of `setxattrat`: `{ __u64 value; __u32 size; __u32 flags; }`.
const XATTR_ARGS_SIZE: usize = 16;
const MAXSYMLINKS: u32 = 40;
/// procfs's root directory inode (`PROC_ROOT_INO`).
const PROC_ROOT_INO: u64 = 1;
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 1 << 5;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;

/// The syscalls of the loopback data path.
pub const SUPERVISED_LOOPBACK: &[SupervisedSyscall] = &[
    SupervisedSyscall { name: "connect", nr: libc::SYS_connect },
    SupervisedSyscall { name: "bind", nr: libc::SYS_bind },
    SupervisedSyscall { name: "listen", nr: libc::SYS_listen },
];

// ---------------------------------------------------------------------------------------------
// The filter, the app's half.

/// The seccomp filter an app installs last: the [`SUPERVISED`] syscalls go to the supervisor.
/// Applying it ([`crate::sandbox::ChildStep`]) also hands the listener to the supervisor.
pub struct NotifyFilter {
    program: Box<[libc::sock_filter]>,
    /// The app's end of the channel to the supervisor.
    channel: OwnedFd,
}

impl fmt::Debug for NotifyFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotifyFilter").field("instructions", &self.program.len()).finish()
    }
}

/// The supervisor's half: started by the container's first process ([`Supervisor::start`]).
#[derive(Debug)]
pub struct Supervisor {
    /// The supervisor's end of the channel from the app.
    channel: OwnedFd,
    /// The supervisor's end of the channel to the broker (loopback), if any.
    broker: Option<OwnedFd>,
    /// Of a packaged full-trust process ([`supervised_full_trust`]): `connect` only, in the
    /// host's network namespace.
    full_trust: bool,
    /// The directories below which the app may make a socket file ([`Supervisor::allow_sockets_below`]).
    socket_dirs: SocketDirs,
}

/// How many directories [`Supervisor::allow_sockets_below`] takes (the rest are ignored: no
/// socket file is made below them).
const SOCKET_DIRS: usize = 64;

/// The identities (device, inode) of the directories below which the app may make a socket
/// file: those its Landlock domain gives `make_sock` (its writable folders). Fixed-size, so
/// the forked supervisor never allocates.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SocketDirs {
    ids: [(u32, u32, u64); SOCKET_DIRS],
    len: usize,
}

impl SocketDirs {
    const NONE: SocketDirs = SocketDirs { ids: [(0, 0, 0); SOCKET_DIRS], len: 0 };

    fn contains(&self, id: (u32, u32, u64)) -> bool {
        self.ids[..self.len].contains(&id)
    }
}

/// Makes a filter and its supervisor, joined by a new socket pair (both ends close-on-exec):
/// mode and attribute changes only.
pub fn supervised() -> io::Result<(NotifyFilter, Supervisor)> {
    supervised_with(true, None)
}

/// Makes a filter and its supervisor: mode and attribute changes if `modes`, and loopback's
/// `connect`, `bind` and `listen` if `broker` (the supervisor's end of the container's channel to the
/// broker) is given.
pub fn supervised_with(
    modes: bool,
    broker: Option<OwnedFd>,
) -> io::Result<(NotifyFilter, Supervisor)> {
    let (app, supervisor) = crate::socket::seqpacket_pair()?;
    let mut nrs: Vec<i64> = Vec::new();
    if modes {
        nrs.extend(SUPERVISED.iter().map(|s| s.nr));
    }
    if broker.is_some() {
        nrs.extend(SUPERVISED_LOOPBACK.iter().map(|s| s.nr));
    }
    Ok((
        NotifyFilter { program: program(&nrs), channel: app },
        Supervisor {
            channel: supervisor,
            broker,
            full_trust: false,
            socket_dirs: SocketDirs::NONE,
        },
    ))
}

/// Makes the filter and supervisor of a packaged full-trust process: its `connect` calls only
/// (`broker`: the supervisor's end of the process's loopback channel to the broker). The
/// process is not in an app container: it runs in the host's network namespace, as the user,
/// and everything it does is let through as before, except a TCP connect to a loopback port
/// that no listener of the host reaches — one an app container's listener may own — which the
/// broker decides (`loopback` submodule, [`Supervisor::start_detached`]).
pub fn supervised_full_trust(broker: OwnedFd) -> io::Result<(NotifyFilter, Supervisor)> {
    let (app, supervisor) = crate::socket::seqpacket_pair()?;
    Ok((
        NotifyFilter { program: full_trust_program(), channel: app },
        Supervisor {
            channel: supervisor,
            broker: Some(broker),
            full_trust: true,
            socket_dirs: SocketDirs::NONE,
        },
    ))
}

/// The filter program of a packaged full-trust process: native `connect`, `bind` and `listen`
/// go to the supervisor, everything else is let through. (Nothing is refused: a full-trust
/// process is the user's, not confined; see `docs/loopback.md`.)
fn full_trust_program() -> Box<[libc::sock_filter]> {
    program(&[libc::SYS_connect, libc::SYS_bind, libc::SYS_listen])
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

/// The filter program (pure): a syscall of another architecture, or with the x32 bit, is let
/// through (the escape-hatch filter refuses those), a supervised one goes to the listener,
/// everything else is let through.
fn program(nrs: &[i64]) -> Box<[libc::sock_filter]> {
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let n = nrs.len();
    let mut p = vec![
        stmt(LD_W_ABS, 4), // arch
        libc::sock_filter { code: JEQ_K, jt: 1, jf: 0, k: AUDIT_ARCH },
        stmt(RET_K, SECCOMP_RET_ALLOW),
        stmt(LD_W_ABS, 0), // nr
    ];
    for (i, nr) in nrs.iter().enumerate() {
        // Jump to the notify instruction, which follows the allow after the last compare.
        let to_notify = u8::try_from(n - i).expect("a short list");
        p.push(libc::sock_filter { code: JEQ_K, jt: to_notify, jf: 0, k: *nr as u32 });
    }
    p.push(stmt(RET_K, SECCOMP_RET_ALLOW));
    p.push(stmt(RET_K, libc::SECCOMP_RET_USER_NOTIF));
    p.into_boxed_slice()
}

/// Installs `program` with a new listener, on the calling thread; the listener's fd.
fn install(program: &[libc::sock_filter], flags: libc::c_ulong) -> io::Result<OwnedFd> {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, `len` instructions long, borrowed for the call; the
    // kernel copies the program and never writes through the pointer. On success the return
    // value is a new fd that this process owns and nothing else refers to.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | flags,
            &raw const prog,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above: a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as RawFd) })
}

impl NotifyFilter {
    /// Sets `no_new_privs`, installs the filter with a new listener (waiting killably once the
    /// supervisor has the call, where the kernel has that, so a signal never makes a call the
    /// supervisor carried out look unfinished) and sends the listener to the supervisor, then
    /// closes both. Async-signal-safe.
    pub fn apply(&self) -> io::Result<()> {
        crate::seccomp::set_no_new_privs()?;
        let listener = match install(&self.program, SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => install(&self.program, 0)?,
            other => other?,
        };
        let sent = crate::socket::send(
            &self.channel,
            b"l",
            &[listener.as_fd()],
            crate::socket::Blocking::Yes,
        );
        drop(listener);
        // SAFETY: this forked child execs next; the channel's fd is not used again here (its
        // owner is never dropped in this process), so closing it now leaves no dangling user.
        unsafe { libc::close(self.channel.as_raw_fd()) };
        sent
    }

    /// The number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }
}

impl crate::sandbox::ChildStep for NotifyFilter {
    fn apply(&self) -> io::Result<()> {
        NotifyFilter::apply(self)
    }

    fn name(&self) -> &'static str {
        "seccomp: installing the supervised filter and handing its listener to the supervisor"
    }
}

// ---------------------------------------------------------------------------------------------
// The supervisor process.

impl Supervisor {
    /// Lets the app make socket files (a pathname `AF_UNIX` `bind`, which a container's
    /// supervisor carries out: see the `loopback` submodule) below `dirs` (as the broker sees
    /// them; a bind mount of one is the same directory), as its Landlock domain's `make_sock`
    /// right would: the directories its rules make writable. Missing ones are skipped; past
    /// 64, the rest are ignored. Without this call, no pathname bind succeeds (`EACCES`).
    pub fn allow_sockets_below(&mut self, dirs: &[std::path::PathBuf]) {
        for d in dirs {
            if self.socket_dirs.len == SOCKET_DIRS {
                break;
            }
            let Ok(st) = rustix::fs::statx(
                rustix::fs::CWD,
                d.as_path(),
                AtFlags::empty(),
                StatxFlags::INO | StatxFlags::TYPE,
            ) else {
                continue;
            };
            if u32::from(st.stx_mode) & libc::S_IFMT != libc::S_IFDIR {
                continue;
            }
            let id = (st.stx_dev_major, st.stx_dev_minor, st.stx_ino);
            if !self.socket_dirs.contains(id) {
                self.socket_dirs.ids[self.socket_dirs.len] = id;
                self.socket_dirs.len += 1;
            }
        }
    }

    /// Forks the supervisor, which never returns; this process goes on with its pid. The
    /// container's first process calls it after it joined the package's user namespace and
    /// before it creates the app's namespaces (so the supervisor is in neither the app's pid
    /// nor its mount namespace); a test may call it from any process.
    pub fn start(&self) -> io::Result<u32> {
        let parent = rustix::process::getpid();
        // SAFETY: the child makes only async-signal-safe calls (`run` never returns), which
        // is all a child of a multithreaded process may do; the parent goes on as it was.
        let pid = unsafe { crate::sandbox::raw_fork() }?;
        if pid > 0 {
            return Ok(pid as u32);
        }
        let broker = self.broker.as_ref().map_or(-1, |b| b.as_raw_fd());
        run(self.channel.as_raw_fd(), broker, parent, self.socket_dirs)
    }
}

impl Supervisor {
    /// Forks the supervisor of a packaged full-trust process ([`supervised_full_trust`]),
    /// detached: through a child that forks it and exits at once, so that it is nobody's
    /// child (the nearest subreaper, or init, reaps it) — not the broker's, which it outlives
    /// as the process does, and not the app's, whose `wait` must never see it. It has no
    /// parent-death signal and a session of its own; it serves until no process of the filter
    /// is left (or exits at once if the app never hands it the listener). Its pid.
    pub fn start_detached(&self) -> io::Result<u32> {
        if !self.full_trust {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "only a full-trust process's supervisor starts detached",
            ));
        }
        let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        // SAFETY: both children make only async-signal-safe calls (the grandchild's `run_full_trust`
        // never returns, the child only forks, writes a pid and exits), which is all a child
        // of a multithreaded process may do; this process goes on as it was.
        let child = unsafe { crate::sandbox::raw_fork() }?;
        if child == 0 {
            // SAFETY: as above.
            let pid = match unsafe { crate::sandbox::raw_fork() } {
                Ok(0) => {
                    let broker = self.broker.as_ref().map_or(-1, |b| b.as_raw_fd());
                    run_full_trust(self.channel.as_raw_fd(), broker)
                }
                Ok(pid) => pid,
                Err(_) => exit_now(1),
            };
            let _ = rustix::io::write(&w, &pid.to_ne_bytes());
            exit_now(0);
        }
        drop(w);
        let pid = rustix::process::Pid::from_raw(child).ok_or(Errno::SRCH)?;
        loop {
            match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
                Err(Errno::INTR) => continue,
                r => break r.map(|_| ())?,
            }
        }
        let mut buf = [0u8; 4];
        match rustix::io::read(&r, &mut buf)? {
            4 => Ok(i32::from_ne_bytes(buf) as u32),
            _ => Err(io::Error::other("the full-trust supervisor could not be forked")),
        }
    }
}

/// Closes every fd but `a` and `b` (`-1`: none). Async-signal-safe.
fn close_all_but(a: RawFd, b: RawFd) {
    let (lo, hi) = if b < 0 || a == b { (a, a) } else { (a.min(b), a.max(b)) };
    let close = |from: libc::c_uint, to: libc::c_uint| {
        if from <= to {
            // SAFETY: close_range takes integers; the fds closed belong to this forked process
            // and nothing in it uses them afterwards.
            unsafe { libc::syscall(libc::SYS_close_range, from, to, 0 as libc::c_uint) };
        }
    };
    let (lo, hi) = (lo as libc::c_uint, hi as libc::c_uint);
    if lo > 0 {
        close(0, lo - 1);
    }
    if hi > lo + 1 {
        close(lo + 1, hi - 1);
    }
    if hi < libc::c_uint::MAX {
        close(hi + 1, libc::c_uint::MAX);
    }
}

fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit takes an integer and never returns; no destructor or handler runs.
    unsafe { libc::_exit(code) }
}

/// The supervisor's whole life: set itself up, take the listener, serve until no app
/// process is left.
fn run(channel: RawFd, broker: RawFd, parent: rustix::process::Pid, socket_dirs: SocketDirs) -> ! {
    let _ = rustix::thread::set_name(c"appipc-supervise");
    if rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .is_err()
        || rustix::process::getppid() != Some(parent)
    {
        exit_now(1);
    }
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let (listener, proc, broker) = take_listener(channel, broker);
    if !sizes_match() || Caps::keep_only_ptrace().is_err() {
        exit_now(1);
    }
    let mut ctx = Context::new(proc, Caps::Toggle);
    ctx.parent = Some(parent);
    ctx.broker = broker.map(loopback::BrokerLink::new);
    ctx.socket_dirs = socket_dirs;
    serve(&listener, &mut ctx)
}

/// What both supervisors do first: reset the signals, close every fd but `channel` and
/// `broker`, receive the filter's listener on `channel` (exits 0 if it never comes), open
/// `/proc`. Returns the listener, `/proc` and the broker link's fd.
fn take_listener(channel: RawFd, broker: RawFd) -> (OwnedFd, OwnedFd, Option<OwnedFd>) {
    reset_signals();
    close_all_but(channel, broker);
    // SAFETY: `channel` is open in this process and is not closed until `recv_listener`
    // returns (which consumes it).
    let channel = unsafe { OwnedFd::from_raw_fd(channel) };
    // SAFETY: `broker`, when given, is open in this process and owned by nothing else here.
    let broker = (broker >= 0).then(|| unsafe { OwnedFd::from_raw_fd(broker) });
    let Ok(Some(listener)) = recv_listener(&channel) else { exit_now(0) };
    drop(channel);
    let Ok(proc) = rustix::fs::open(
        c"/proc",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        exit_now(1)
    };
    (listener, proc, broker)
}

/// Resets the signal dispositions inherited from the broker (whose handlers must not run in
/// a supervisor) and empties the signal mask. Async-signal-safe.
fn reset_signals() {
    // SAFETY: resets this process's own signal state with a set on this stack frame.
    unsafe {
        for s in 1..libc::SIGRTMIN() {
            if s != libc::SIGKILL && s != libc::SIGSTOP {
                libc::signal(s, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// The whole life of a full-trust process's supervisor ([`Supervisor::start_detached`]): in
/// the host's namespaces with the broker's uid, so it needs and changes no capability.
fn run_full_trust(channel: RawFd, broker: RawFd) -> ! {
    let _ = rustix::thread::set_name(c"appipc-supervise");
    let _ = rustix::process::setsid();
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let (listener, proc, broker) = take_listener(channel, broker);
    if !sizes_match() {
        exit_now(1);
    }
    let mut ctx = Context::new(proc, Caps::Keep);
    ctx.broker = broker.map(loopback::BrokerLink::full_trust);
    serve(&listener, &mut ctx)
}

/// Receives the listener fd; `None` at the end of the stream (the app never sent it).
fn recv_listener(channel: &OwnedFd) -> io::Result<Option<OwnedFd>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        channel,
        &mut [io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut got = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            got = got.or_else(|| fds.next());
        }
    }
    Ok(got)
}

/// Whether the kernel's notification structures are the ones this code was built with.
fn sizes_match() -> bool {
    // SAFETY: an all-zero seccomp_notif_sizes is a valid value (plain integers).
    let mut sizes: libc::seccomp_notif_sizes = unsafe { std::mem::zeroed() };
    // SAFETY: SECCOMP_GET_NOTIF_SIZES writes the three sizes into `sizes`, which lives on
    // this stack frame for the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES as libc::c_ulong,
            0 as libc::c_ulong,
            &raw mut sizes,
        )
    };
    rc == 0
        && usize::from(sizes.seccomp_notif) == size_of::<libc::seccomp_notif>()
        && usize::from(sizes.seccomp_notif_resp) == size_of::<libc::seccomp_notif_resp>()
        && usize::from(sizes.seccomp_data) == size_of::<libc::seccomp_data>()
}

/// Serves notifications until every process of the filter is gone (the listener then polls
/// `POLLHUP`). Never returns.
fn serve(listener: &OwnedFd, ctx: &mut Context) -> ! {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let mut fds = [PollFd::new(listener, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(_) => exit_now(1),
        }
        let ready = fds[0].revents();
        if !ready.contains(PollFlags::IN) {
            if ready.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                exit_now(0);
            }
            continue;
        }
        match serve_one(listener.as_fd(), ctx) {
            Ok(()) | Err(Errno::INTR | Errno::NOENT) => {}
            Err(_) => exit_now(1),
        }
    }
}

/// Receives one notification, carries it out and answers it. `ENOENT` from the kernel: the
/// caller went away meanwhile (nothing to answer).
pub(crate) fn serve_one(listener: BorrowedFd<'_>, ctx: &mut Context) -> Result<()> {
    // SAFETY: an all-zero seccomp_notif is a valid value (plain integers), and the kernel
    // requires the buffer zeroed.
    let mut n: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: SECCOMP_IOCTL_NOTIF_RECV writes one seccomp_notif (the size the ioctl number
    // encodes, checked against the kernel's at start) into `n`, on this stack frame.
    let rc =
        unsafe { libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_RECV, &raw mut n) };
    if rc < 0 {
        return Err(Errno::from_raw_os_error(
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    let call = Caller { listener, id: n.id, tid: n.pid };
    let answer = if n.data.arch == AUDIT_ARCH {
        decode(i64::from(n.data.nr), n.data.args).and_then(|c| ctx.carry_out(&call, c))
    } else {
        Err(Errno::NOSYS)
    };
    let (error, flags) = match answer {
        Ok(Reply::Done) => (0, 0),
        Ok(Reply::Continue) => (0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        Err(e) => (-e.raw_os_error(), 0),
    };
    // Never the fd number as the value: with `SETFD` the call's result is 0 (CPython raises
    // `OSError [Errno 0]` for a connect that returns anything else).
    let resp = libc::seccomp_notif_resp { id: n.id, val: 0, error, flags };
    // SAFETY: SECCOMP_IOCTL_NOTIF_SEND reads one seccomp_notif_resp from `resp`, on this
    // stack frame.
    let rc = unsafe {
        libc::ioctl(listener.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SEND, &raw const resp)
    };
    if rc < 0 {
        return Err(Errno::from_raw_os_error(
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What a call asks for (pure).

/// The file a call names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum At {
    /// An open fd of the caller.
    Fd(i32),
    /// A path (a pointer in the caller's memory) relative to `dirfd` (`AT_FDCWD`: the working
    /// directory).
    Path {
        dirfd: i32,
        path: u64,
        /// Follow a symbolic link in the last component.
        follow: bool,
        /// `AT_EMPTY_PATH`: an empty path names `dirfd` itself.
        empty: bool,
    },
}

/// How a call is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Carried out: the call returns 0.
    Done,
    /// Let the kernel carry it out itself (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`).
    Continue,
}

/// A supervised call, its arguments as the kernel reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Call {
    /// `connect(fd, addr, len)` (`bind` if `bind`).
    Socket { bind: bool, fd: i32, addr: u64, len: u64 },
    /// `listen(fd, backlog)`.
    Listen { fd: i32, backlog: i32 },
    /// `chmod` and its relatives.
    Chmod { at: At, mode: u32 },
    /// `setxattr` and its relatives; `value`/`size` are in the caller's memory (`args`:
    /// `setxattrat`'s `struct xattr_args` of `args_size` bytes, which holds them and the
    /// flags).
    SetXattr { at: At, name: u64, value: u64, size: u64, flags: u32 },
    /// `setxattrat`: value, size and flags in a `struct xattr_args` in the caller's memory.
    SetXattrAt { at: At, name: u64, args: u64, args_size: u64 },
}

const AT_FDCWD: i32 = libc::AT_FDCWD;

fn at_flags(flags: u64) -> Result<(bool, bool)> {
    let flags = flags as u32;
    let known = (libc::AT_SYMLINK_NOFOLLOW | libc::AT_EMPTY_PATH) as u32;
    if flags & !known != 0 {
        return Err(Errno::INVAL);
    }
    Ok((flags & libc::AT_SYMLINK_NOFOLLOW as u32 == 0, flags & libc::AT_EMPTY_PATH as u32 != 0))
}

/// What a supervised syscall asks for, from its number and argument registers (pure). The
/// errors are the kernel's for bad flags; set-id modes are refused (`EPERM`), as the
/// escape-hatch filter refuses them before a call ever reaches the supervisor.
pub(crate) fn decode(nr: i64, a: [u64; 6]) -> Result<Call> {
    let int = |v: u64| v as u32 as i32;
    // umode_t: the kernel keeps 16 bits of the register.
    let mode = |v: u64| -> Result<u32> {
        let m = v as u16 as u32;
        if m & (libc::S_ISUID | libc::S_ISGID) != 0 { Err(Errno::PERM) } else { Ok(m) }
    };
    let path = |dirfd, path, follow, empty| At::Path { dirfd, path, follow, empty };
    Ok(match nr {
        libc::SYS_fchmod => Call::Chmod { at: At::Fd(int(a[0])), mode: mode(a[1])? },
        libc::SYS_fchmodat => {
            Call::Chmod { at: path(int(a[0]), a[1], true, false), mode: mode(a[2])? }
        }
        libc::SYS_fchmodat2 => {
            let (follow, empty) = at_flags(a[3])?;
            Call::Chmod { at: path(int(a[0]), a[1], follow, empty), mode: mode(a[2])? }
        }
        #[cfg(target_arch = "x86_64")]
        libc::SYS_chmod => Call::Chmod { at: path(AT_FDCWD, a[0], true, false), mode: mode(a[1])? },
        libc::SYS_setxattr | libc::SYS_lsetxattr => Call::SetXattr {
            at: path(AT_FDCWD, a[0], nr == libc::SYS_setxattr, false),
            name: a[1],
            value: a[2],
            size: a[3],
            flags: xattr_flags(a[4])?,
        },
        libc::SYS_fsetxattr => Call::SetXattr {
            at: At::Fd(int(a[0])),
            name: a[1],
            value: a[2],
            size: a[3],
            flags: xattr_flags(a[4])?,
        },
        SYS_SETXATTRAT => {
            let (follow, empty) = at_flags(a[2])?;
            Call::SetXattrAt {
                at: path(int(a[0]), a[1], follow, empty),
                name: a[3],
                args: a[4],
                args_size: a[5],
            }
        }
        libc::SYS_connect | libc::SYS_bind => {
            Call::Socket { bind: nr == libc::SYS_bind, fd: int(a[0]), addr: a[1], len: a[2] }
        }
        libc::SYS_listen => Call::Listen { fd: int(a[0]), backlog: int(a[1]) },
        _ => return Err(Errno::NOSYS),
    })
}

fn xattr_flags(v: u64) -> Result<u32> {
    let f = v as u32;
    if f & !((libc::XATTR_CREATE | libc::XATTR_REPLACE) as u32) != 0 {
        Err(Errno::INVAL)
    } else {
        Ok(f)
    }
}

// ---------------------------------------------------------------------------------------------
// Carrying it out.

/// Who made the call.
pub(crate) struct Caller<'a> {
    listener: BorrowedFd<'a>,
    id: u64,
    /// The calling thread, as the supervisor's pid namespace numbers it.
    tid: u32,
}

impl Caller<'_> {
    /// Whether the call is still waiting for its answer (so `tid` still names the caller);
    /// `ENOENT` otherwise.
    fn still_waiting(&self) -> Result<()> {
        let id = self.id;
        // SAFETY: SECCOMP_IOCTL_NOTIF_ID_VALID reads one u64 from `id`, on this stack frame.
        let rc = unsafe {
            libc::ioctl(
                self.listener.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID,
                &raw const id,
            )
        };
        if rc < 0 { Err(Errno::NOENT) } else { Ok(()) }
    }
}

/// How the supervisor holds `CAP_SYS_PTRACE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caps {
    /// Effective only while it reaches into the caller (the supervisor process).
    Toggle,
    /// As they are: a full-trust process's supervisor, which has the app's own uid on the
    /// host (and, under a root broker, root's capabilities, as the app has).
    Keep,
}

/// Whether the supervisor kept `CAP_SETUID` and `CAP_SETGID` (permitted, never effective but
/// in [`Context::as_app`]): under a root broker, where it is not the app's uid.
static KEEPS_SETID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Caps {
    fn set_effective(effective: rustix::thread::CapabilitySet) -> Result<()> {
        use rustix::thread::{CapabilitySet, CapabilitySets, set_capabilities};
        let mut permitted = CapabilitySet::SYS_PTRACE;
        if KEEPS_SETID.load(std::sync::atomic::Ordering::Relaxed) {
            permitted |= CapabilitySet::SETUID | CapabilitySet::SETGID;
        }
        let sets = CapabilitySets {
            effective: effective & permitted,
            permitted,
            inheritable: CapabilitySet::empty(),
        };
        set_capabilities(None, sets)
    }

    fn set(effective: bool) -> Result<()> {
        use rustix::thread::CapabilitySet;
        Caps::set_effective(if effective {
            CapabilitySet::SYS_PTRACE
        } else {
            CapabilitySet::empty()
        })
    }

    /// Keeps only `CAP_SYS_PTRACE` (and, when not the app's own uid, `CAP_SETUID` and
    /// `CAP_SETGID`, which [`Context::as_app`] needs), permitted and not effective.
    fn keep_only_ptrace() -> Result<()> {
        use rustix::thread::CapabilitySet;
        let setid = CapabilitySet::SETUID | CapabilitySet::SETGID;
        let has = rustix::thread::capabilities(None).is_ok_and(|c| c.permitted.contains(setid));
        // SAFETY: getuid takes nothing and cannot fail.
        let root = unsafe { libc::getuid() } == 0;
        KEEPS_SETID.store(has && root, std::sync::atomic::Ordering::Relaxed);
        Caps::set(false)
    }

    /// Runs `f` with `CAP_SYS_PTRACE` effective.
    fn reaching<T>(self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if self == Caps::Keep {
            return f();
        }
        Caps::set(true).map_err(|_| Errno::PERM)?;
        let r = f();
        Caps::set(false).map_err(|_| Errno::PERM)?;
        r
    }
}

/// The app's mount ids (from its `mountinfo`), which never change: an app cannot mount.
struct Mounts {
    ids: [u64; 1024],
    len: usize,
    /// Every line fit; otherwise an unknown id is refused.
    complete: bool,
}

impl Mounts {
    fn contains(&self, id: u64) -> bool {
        self.ids[..self.len].contains(&id)
    }

    /// Parses `mountinfo` read through `fd` (the first number of each line).
    fn read(fd: &OwnedFd) -> Result<Mounts> {
        let mut m = Mounts { ids: [0; 1024], len: 0, complete: true };
        let mut buf = [0u8; 4096];
        let (mut at_line_start, mut number, mut in_number) = (true, 0u64, false);
        loop {
            let n = rustix::io::read(fd, &mut buf)?;
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if at_line_start || in_number {
                    if b.is_ascii_digit() {
                        number = number * 10 + u64::from(b - b'0');
                        in_number = true;
                        at_line_start = false;
                        continue;
                    }
                    if in_number {
                        if m.len < m.ids.len() {
                            m.ids[m.len] = number;
                            m.len += 1;
                        } else {
                            m.complete = false;
                        }
                    }
                    in_number = false;
                    number = 0;
                    at_line_start = false;
                }
                if b == b'\n' {
                    at_line_start = true;
                }
            }
        }
        Ok(m)
    }
}

/// A path built on the stack, NUL-terminated.
struct PathBuf<const N: usize> {
    b: [u8; N],
    len: usize,
}

impl<const N: usize> PathBuf<N> {
    fn new() -> Self {
        PathBuf { b: [0; N], len: 0 }
    }

    fn push(&mut self, bytes: &[u8]) -> Result<&mut Self> {
        if self.len + bytes.len() + 1 > N {
            return Err(Errno::NAMETOOLONG);
        }
        self.b[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self.b[self.len] = 0;
        Ok(self)
    }

    fn push_u32(&mut self, mut v: u32) -> Result<&mut Self> {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_with_nul(&self.b[..=self.len]).expect("one NUL, at the end")
    }
}

/// What the supervisor keeps between calls.
pub(crate) struct Context {
    /// The supervisor's own `/proc` (its pid namespace numbers the callers' tids).
    proc: OwnedFd,
    caps: Caps,
    /// The app's root (its first caller's `/proc/<tid>/root`; an app cannot change it).
    root: Option<OwnedFd>,
    mounts: Option<Mounts>,
    /// The channel to the broker (loopback), if the supervisor has one.
    broker: Option<loopback::BrokerLink>,
    /// Below which directories a socket file may be made.
    socket_dirs: SocketDirs,
    /// The supervisor's own credentials, as it started (`None` if they could not be read:
    /// then it never takes on a caller's).
    own_creds: Option<loopback::Creds>,
    /// The process the supervisor dies with (its parent-death signal is armed again after each
    /// change of credentials, which clears it); `None` for a detached one.
    parent: Option<rustix::process::Pid>,
}

/// Identity of a directory for `..` at the root: (mount id, device, inode).
fn identity(fd: BorrowedFd<'_>) -> Result<(u64, u32, u32, u64)> {
    let st = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::INO | StatxFlags::MNT_ID)?;
    Ok((st.stx_mnt_id, st.stx_dev_major, st.stx_dev_minor, st.stx_ino))
}

fn file_type(fd: BorrowedFd<'_>) -> Result<u32> {
    let st = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::TYPE)?;
    Ok(u32::from(st.stx_mode) & libc::S_IFMT)
}

fn opath(dirfd: BorrowedFd<'_>, name: &CStr, follow: bool) -> Result<OwnedFd> {
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat(dirfd, name, flags, Mode::empty())
}

fn is_opath(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fcntl_getfl(fd).is_ok_and(|f| f.contains(OFlags::PATH))
}

impl Context {
    pub(crate) fn new(proc: OwnedFd, caps: Caps) -> Context {
        Context {
            proc,
            caps,
            root: None,
            mounts: None,
            broker: None,
            socket_dirs: SocketDirs::NONE,
            own_creds: loopback::own_creds().ok(),
            parent: None,
        }
    }

    /// `/proc/<tid>/<what>` as the supervisor's procfs has it, opened with `flags`.
    fn proc_of(&self, tid: u32, what: &CStr, flags: OFlags) -> Result<OwnedFd> {
        let mut p = PathBuf::<64>::new();
        p.push_u32(tid)?.push(b"/")?.push(what.to_bytes())?;
        rustix::fs::openat(&self.proc, p.as_cstr(), flags | OFlags::CLOEXEC, Mode::empty())
    }

    fn root(&mut self, c: &Caller<'_>) -> Result<BorrowedFd<'_>> {
        if self.root.is_none() {
            let root = self
                .caps
                .reaching(|| self.proc_of(c.tid, c"root", OFlags::PATH | OFlags::DIRECTORY))?;
            c.still_waiting()?;
            self.root = Some(root);
        }
        Ok(self.root.as_ref().expect("set above").as_fd())
    }

    /// `EPERM` unless `fd`'s file is on one of the app's mounts.
    fn check_own(&mut self, c: &Caller<'_>, fd: BorrowedFd<'_>) -> Result<()> {
        if self.mounts.is_none() {
            let info = self.caps.reaching(|| self.proc_of(c.tid, c"mountinfo", OFlags::RDONLY))?;
            c.still_waiting()?;
            self.mounts = Some(Mounts::read(&info)?);
        }
        let mounts = self.mounts.as_ref().expect("set above");
        let st = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID)?;
        if st.stx_mask & StatxFlags::MNT_ID.bits() != 0 && mounts.contains(st.stx_mnt_id) {
            Ok(())
        } else {
            Err(Errno::PERM)
        }
    }

    /// A duplicate of the caller's fd `fd` (`EBADF` if it has none).
    fn their_fd(&self, c: &Caller<'_>, fd: i32) -> Result<OwnedFd> {
        self.caps.reaching(|| {
            let pid = |p: u32| rustix::process::Pid::from_raw(p as i32).ok_or(Errno::SRCH);
            let pidfd = match rustix::process::pidfd_open(pid(c.tid)?, pidfd_thread()) {
                // No thread pidfds (before Linux 6.9): the thread group's, whose fd table a
                // thread shares.
                Err(Errno::INVAL) => {
                    let (tgid, _, _) = self.their_ids(c)?;
                    rustix::process::pidfd_open(pid(tgid)?, rustix::process::PidfdFlags::empty())?
                }
                other => other?,
            };
            // The pidfd names the caller only if the call still waits: check before using it.
            c.still_waiting()?;
            if fd < 0 {
                return Err(Errno::BADF);
            }
            rustix::process::pidfd_getfd(&pidfd, fd, rustix::process::PidfdGetfdFlags::empty())
                .map_err(|e| if e == Errno::PERM { Errno::PERM } else { Errno::BADF })
        })
    }

    /// Copies a NUL-terminated string of at most `buf.len() - 1` bytes from the caller's
    /// memory; its length. `EFAULT` for an unreadable address, `too_long` without a NUL.
    fn their_string(
        &self,
        c: &Caller<'_>,
        addr: u64,
        buf: &mut [u8],
        too_long: Errno,
    ) -> Result<usize> {
        let mut got = 0usize;
        while got < buf.len() {
            let at = addr.checked_add(got as u64).ok_or(Errno::FAULT)?;
            let page_left = 4096 - (at % 4096) as usize;
            let want = page_left.min(buf.len() - got);
            let n = self.caps.reaching(|| read_memory(c.tid, at, &mut buf[got..got + want]))?;
            if let Some(nul) = buf[got..got + n].iter().position(|&b| b == 0) {
                return Ok(got + nul);
            }
            if n < want {
                return Err(Errno::FAULT);
            }
            got += n;
        }
        Err(too_long)
    }

    fn their_bytes(&self, c: &Caller<'_>, addr: u64, buf: &mut [u8]) -> Result<()> {
        let n = self.caps.reaching(|| read_memory(c.tid, addr, buf))?;
        if n == buf.len() { Ok(()) } else { Err(Errno::FAULT) }
    }

    /// The caller's `/proc/<tid>/status` (its first 4 KiB) into `buf`; its length.
    fn their_status(&self, c: &Caller<'_>, buf: &mut [u8; 4096]) -> Result<usize> {
        let status = self.caps.reaching(|| self.proc_of(c.tid, c"status", OFlags::RDONLY))?;
        let mut len = 0;
        while len < buf.len() {
            let n = rustix::io::read(&status, &mut buf[len..])?;
            if n == 0 {
                break;
            }
            len += n;
        }
        c.still_waiting()?;
        Ok(len)
    }

    /// From the caller's `status`: its tgid as the supervisor's pid namespace numbers it, and
    /// its tgid and tid in its own pid namespace (what its procfs's `self` and `thread-self`
    /// name).
    fn their_ids(&self, c: &Caller<'_>) -> Result<(u32, u32, u32)> {
        let mut buf = [0u8; 4096];
        let len = self.their_status(c, &mut buf)?;
        let field = |key: &[u8], last: bool| -> Option<u32> {
            let text = &buf[..len];
            let start = text.windows(key.len()).position(|w| w == key)? + key.len();
            let line = text[start..].split(|&b| b == b'\n').next()?;
            let mut words = line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty());
            let word = if last { words.next_back()? } else { words.next()? };
            std::str::from_utf8(word).ok()?.parse().ok()
        };
        match (field(b"\nTgid:", false), field(b"\nNStgid:", true), field(b"\nNSpid:", true)) {
            (Some(tgid), Some(ns_tgid), Some(ns_tid)) => Ok((tgid, ns_tgid, ns_tid)),
            _ => Err(Errno::NOENT),
        }
    }

    /// Carries out one call for `c`.
    pub(crate) fn carry_out(&mut self, c: &Caller<'_>, call: Call) -> Result<Reply> {
        if let Call::Socket { bind, fd, addr, len } = call {
            return loopback::socket_call(self, c, bind, fd, addr, len);
        }
        if let Call::Listen { fd, backlog } = call {
            return loopback::listen_call(self, c, fd, backlog);
        }
        self.carry_out_file(c, call).map(|()| Reply::Done)
    }

    /// Carries out a mode or attribute change for `c`.
    fn carry_out_file(&mut self, c: &Caller<'_>, call: Call) -> Result<()> {
        match call {
            Call::Socket { .. } | Call::Listen { .. } => Err(Errno::NOSYS),
            Call::Chmod { at: At::Fd(fd), mode } => {
                let file = self.their_fd(c, fd)?;
                if is_opath(file.as_fd()) {
                    return Err(Errno::BADF);
                }
                self.check_own(c, file.as_fd())?;
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
            }
            Call::Chmod { at, mode } => {
                let (file, follow) = self.resolve_at(c, at)?;
                self.check_own(c, file.as_fd())?;
                fchmodat2_empty(file.as_fd(), mode, follow)
            }
            Call::SetXattr { at, name, value, size, flags } => {
                let mut name_buf = [0u8; XATTR_NAME_MAX + 1];
                let mut value_buf = [0u8; XATTR_SIZE_MAX];
                let (name, value) =
                    self.xattr_args(c, name, value, size, &mut name_buf, &mut value_buf)?;
                self.setxattr(c, at, name, value, flags)
            }
            Call::SetXattrAt { at, name, args, args_size } => {
                let args_size = usize::try_from(args_size).map_err(|_| Errno::TOOBIG)?;
                if args_size < XATTR_ARGS_SIZE {
                    return Err(Errno::INVAL);
                }
                if args_size > 4096 {
                    return Err(Errno::TOOBIG);
                }
                let mut raw = [0u8; 4096];
                self.their_bytes(c, args, &mut raw[..args_size])?;
                if raw[XATTR_ARGS_SIZE..args_size].iter().any(|&b| b != 0) {
                    return Err(Errno::TOOBIG);
                }
                let word =
                    |i: usize| u32::from_ne_bytes(raw[i..i + 4].try_into().expect("4 bytes"));
                let value = u64::from_ne_bytes(raw[..8].try_into().expect("8 bytes"));
                let flags = xattr_flags(u64::from(word(12)))?;
                let mut name_buf = [0u8; XATTR_NAME_MAX + 1];
                let mut value_buf = [0u8; XATTR_SIZE_MAX];
                let (name, value) = self.xattr_args(
                    c,
                    name,
                    value,
                    u64::from(word(8)),
                    &mut name_buf,
                    &mut value_buf,
                )?;
                self.setxattr(c, at, name, value, flags)
            }
        }
    }

    /// The name and value of an extended attribute, copied from the caller.
    fn xattr_args<'b>(
        &self,
        c: &Caller<'_>,
        name: u64,
        value: u64,
        size: u64,
        name_buf: &'b mut [u8; XATTR_NAME_MAX + 1],
        value_buf: &'b mut [u8; XATTR_SIZE_MAX],
    ) -> Result<(&'b CStr, &'b [u8])> {
        let len = self.their_string(c, name, &mut name_buf[..], Errno::RANGE)?;
        if len == 0 {
            return Err(Errno::RANGE);
        }
        let size = usize::try_from(size).map_err(|_| Errno::TOOBIG)?;
        if size > XATTR_SIZE_MAX {
            return Err(Errno::TOOBIG);
        }
        if size > 0 {
            self.their_bytes(c, value, &mut value_buf[..size])?;
        }
        let name = CStr::from_bytes_with_nul(&name_buf[..=len]).map_err(|_| Errno::RANGE)?;
        Ok((name, &value_buf[..size]))
    }

    fn setxattr(
        &mut self,
        c: &Caller<'_>,
        at: At,
        name: &CStr,
        value: &[u8],
        flags: u32,
    ) -> Result<()> {
        let flags = rustix::fs::XattrFlags::from_bits_retain(flags as _);
        match at {
            At::Fd(fd) => {
                let file = self.their_fd(c, fd)?;
                if is_opath(file.as_fd()) {
                    return Err(Errno::BADF);
                }
                self.check_own(c, file.as_fd())?;
                rustix::fs::fsetxattr(&file, name, value, flags)
            }
            at => {
                let (file, follow) = self.resolve_at(c, at)?;
                self.check_own(c, file.as_fd())?;
                setxattr_of(file.as_fd(), follow, name, value, flags.bits())
            }
        }
    }

    /// The file a path form names, resolved as the kernel would have for the caller; and
    /// whether the last component's link was to be followed.
    fn resolve_at(&mut self, c: &Caller<'_>, at: At) -> Result<(OwnedFd, bool)> {
        let At::Path { dirfd, path, follow, empty } = at else {
            unreachable!("fd forms are handled apart")
        };
        let mut buf = [0u8; PATH_MAX];
        let len = self.their_string(c, path, &mut buf, Errno::NAMETOOLONG)?;
        let file = self.resolve_bytes(c, dirfd, &buf[..len], follow, empty)?;
        Ok((file, follow))
    }

    /// The file `path` (relative to the caller's `dirfd`, `AT_FDCWD` its working directory)
    /// names, resolved as the kernel would have for the caller (`empty`: `AT_EMPTY_PATH`).
    fn resolve_bytes(
        &mut self,
        c: &Caller<'_>,
        dirfd: i32,
        path: &[u8],
        follow: bool,
        empty: bool,
    ) -> Result<OwnedFd> {
        let base = if path.first() == Some(&b'/') {
            None
        } else if dirfd == AT_FDCWD {
            Some(self.caps.reaching(|| self.proc_of(c.tid, c"cwd", OFlags::PATH))?)
        } else {
            Some(self.their_fd(c, dirfd)?)
        };
        c.still_waiting()?;
        if path.is_empty() {
            return match (empty, base) {
                (true, Some(base)) => Ok(base),
                _ => Err(Errno::NOENT),
            };
        }
        // Resolution needs the caller's own ids only for procfs's `self`; look them up then.
        let mut ids = None;
        let caps = self.caps;
        let root = self.root(c)?.try_clone_to_owned().map_err(|_| Errno::MFILE)?;
        let mut their_ids = || -> Result<(u32, u32)> {
            if ids.is_none() {
                let (_, tgid, tid) = self.their_ids(c)?;
                ids = Some((tgid, tid));
            }
            Ok(ids.expect("set above"))
        };
        let base = base.as_ref().map_or(root.as_fd(), |b| b.as_fd());
        resolve(root.as_fd(), base, path, follow, &mut their_ids, Some(caps))
    }
}

fn pidfd_thread() -> rustix::process::PidfdFlags {
    rustix::process::PidfdFlags::from_bits_retain(libc::PIDFD_THREAD as _)
}

/// Reads `buf.len()` bytes at `addr` of the process `tid`; how many it could.
fn read_memory(tid: u32, addr: u64, buf: &mut [u8]) -> Result<usize> {
    let local = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let remote = libc::iovec { iov_base: addr as usize as *mut libc::c_void, iov_len: buf.len() };
    // SAFETY: `local` describes `buf`, writable and borrowed for the call; `remote` describes
    // memory of the other process, which the kernel checks itself; one element each.
    let n = unsafe { libc::process_vm_readv(tid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if n < 0 {
        let e = io::Error::last_os_error().raw_os_error().unwrap_or(libc::EFAULT);
        return Err(if e == libc::EPERM || e == libc::ESRCH {
            Errno::from_raw_os_error(e)
        } else {
            Errno::FAULT
        });
    }
    Ok(n as usize)
}

/// `fchmodat2(fd, "", mode, AT_EMPTY_PATH [| AT_SYMLINK_NOFOLLOW])`; without `fchmodat2`
/// (before Linux 6.6), `chmod` of `/proc/self/fd/N`.
fn fchmodat2_empty(fd: BorrowedFd<'_>, mode: u32, follow: bool) -> Result<()> {
    let mut flags = libc::AT_EMPTY_PATH;
    if !follow {
        flags |= libc::AT_SYMLINK_NOFOLLOW;
    }
    // SAFETY: the path is a NUL-terminated literal; the other arguments are integers and an fd
    // borrowed for the call.
    let rc =
        unsafe { libc::syscall(libc::SYS_fchmodat2, fd.as_raw_fd(), c"".as_ptr(), mode, flags) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if e != libc::ENOSYS {
        return Err(Errno::from_raw_os_error(e));
    }
    if file_type(fd)? == libc::S_IFLNK {
        return Err(Errno::OPNOTSUPP);
    }
    let mut p = PathBuf::<64>::new();
    p.push(b"/proc/self/fd/")?.push_u32(fd.as_raw_fd() as u32)?;
    rustix::fs::chmod(p.as_cstr(), Mode::from_raw_mode(mode))
}

/// `setxattr` of the file `fd` (an `O_PATH` fd) names, through `/proc/self/fd/N` (neither
/// `fsetxattr` nor `setxattrat(AT_EMPTY_PATH)` take an `O_PATH` fd, and opening the file could
/// need a right that setting an attribute does not). A link itself (`follow` false) takes no
/// attribute an app may set: `EOPNOTSUPP` for `system.` names (ACLs), `EPERM` for the others,
/// as the kernel answers for a link.
fn setxattr_of(
    fd: BorrowedFd<'_>,
    follow: bool,
    name: &CStr,
    value: &[u8],
    flags: u32,
) -> Result<()> {
    if !follow && file_type(fd)? == libc::S_IFLNK {
        return Err(if name.to_bytes().starts_with(b"system.") {
            Errno::OPNOTSUPP
        } else {
            Errno::PERM
        });
    }
    let mut p = PathBuf::<64>::new();
    p.push(b"/proc/self/fd/")?.push_u32(fd.as_raw_fd() as u32)?;
    rustix::fs::setxattr(
        p.as_cstr(),
        name,
        value,
        rustix::fs::XattrFlags::from_bits_retain(flags as _),
    )
}

// ---------------------------------------------------------------------------------------------
// Resolving a path as the kernel would for the app.

/// The rest of a path being resolved, with room to put a link's target in front of it.
struct Remaining {
    b: [u8; 2 * PATH_MAX],
    start: usize,
    end: usize,
}

impl Remaining {
    fn new(path: &[u8]) -> Result<Remaining> {
        let mut r = Remaining { b: [0; 2 * PATH_MAX], start: 0, end: 0 };
        r.prepend(path)?;
        Ok(r)
    }

    /// Puts `front` (and a `/` if anything follows) before the rest.
    fn prepend(&mut self, front: &[u8]) -> Result<()> {
        let rest_len = self.end - self.start;
        let sep = usize::from(rest_len > 0);
        let total = front.len() + sep + rest_len;
        if total > self.b.len() {
            return Err(Errno::NAMETOOLONG);
        }
        let cap = self.b.len();
        let new_start = cap - total;
        self.b.copy_within(self.start..self.end, cap - rest_len);
        self.b[new_start..new_start + front.len()].copy_from_slice(front);
        if sep == 1 {
            self.b[new_start + front.len()] = b'/';
        }
        self.start = new_start;
        self.end = cap;
        Ok(())
    }

    /// The next component (slashes before it skipped), and what follows it: `Last` (nothing),
    /// `Slash` (only slashes: it must be a directory, and a link there is followed) or `More`.
    fn next(&mut self, out: &mut [u8; 256]) -> Result<Option<(usize, Follows)>> {
        while self.start < self.end && self.b[self.start] == b'/' {
            self.start += 1;
        }
        if self.start == self.end {
            return Ok(None);
        }
        let len = self.b[self.start..self.end]
            .iter()
            .position(|&b| b == b'/')
            .unwrap_or(self.end - self.start);
        if len > 255 {
            return Err(Errno::NAMETOOLONG);
        }
        out[..len].copy_from_slice(&self.b[self.start..self.start + len]);
        out[len] = 0;
        self.start += len;
        let follows = if self.start == self.end {
            Follows::Last
        } else if self.b[self.start..self.end].iter().all(|&b| b == b'/') {
            Follows::Slash
        } else {
            Follows::More
        };
        Ok(Some((len, follows)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Follows {
    Last,
    Slash,
    More,
}

fn is_procfs(fd: BorrowedFd<'_>) -> bool {
    rustix::fs::fstatfs(fd).is_ok_and(|s| s.f_type == rustix::fs::PROC_SUPER_MAGIC)
}

/// Resolves `path` (relative to `base`, or to `root` when absolute) to an `O_PATH` fd of
/// what it names, as the kernel resolves a path for a process whose root is `root`: `..`
/// stops at `root`, an absolute link target starts again at `root`, links are followed (the
/// last one only if `follow`, or if slashes follow it) up to 40, procfs's `self` and
/// `thread-self` are `ids()`' tgid and `tgid/task/tid`, magic links are followed by the
/// kernel. Errors are the kernel's (`ENOENT`, `ENOTDIR`, `EACCES`, `ELOOP`, `ENAMETOOLONG`).
pub(crate) fn resolve(
    root: BorrowedFd<'_>,
    base: BorrowedFd<'_>,
    path: &[u8],
    follow: bool,
    ids: &mut dyn FnMut() -> Result<(u32, u32)>,
    caps: Option<Caps>,
) -> Result<OwnedFd> {
    if path.is_empty() {
        return Err(Errno::NOENT);
    }
    // The kernel itself, where it can answer exactly whatever the supervisor's own place: no
    // link at all (procfs's `self` is one, and it would name the supervisor), nothing above
    // `base` for a relative path.
    let absolute = path[0] == b'/';
    let mut c = PathBuf::<{ PATH_MAX + 1 }>::new();
    c.push(path)?;
    let mut flags = OFlags::PATH | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    let (start, how) =
        if absolute { (root, ResolveFlags::IN_ROOT) } else { (base, ResolveFlags::BENEATH) };
    match rustix::fs::openat2(
        start,
        c.as_cstr(),
        flags,
        Mode::empty(),
        how | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT | Errno::LOOP | Errno::XDEV | Errno::AGAIN | Errno::NOSYS) => {}
        Err(e) => return Err(e),
    }
    walk(root, base, path, follow, ids, caps)
}

/// [`resolve`] one component at a time.
fn walk(
    root: BorrowedFd<'_>,
    base: BorrowedFd<'_>,
    path: &[u8],
    follow: bool,
    ids: &mut dyn FnMut() -> Result<(u32, u32)>,
    caps: Option<Caps>,
) -> Result<OwnedFd> {
    let dup = |fd: BorrowedFd<'_>| rustix::io::fcntl_dupfd_cloexec(fd, 0);
    // Inside the caller's own `/proc/<tgid>`, where the kernel lets a process follow its own
    // magic links whoever may otherwise look (`same_thread_group`): the supervisor may follow
    // them with `CAP_SYS_PTRACE`, and only there.
    let mut own = false;
    let root_id = identity(root)?;
    let mut rest = Remaining::new(path)?;
    let mut cur = if path[0] == b'/' { dup(root)? } else { dup(base)? };
    let mut cur_is_dir = file_type(cur.as_fd())? == libc::S_IFDIR;
    let mut links = 0u32;
    let mut name = [0u8; 256];
    let mut target = [0u8; PATH_MAX];
    loop {
        let Some((len, follows)) = rest.next(&mut name)? else {
            return Ok(cur);
        };
        let comp = &name[..len];
        let cname = CStr::from_bytes_with_nul(&name[..=len]).map_err(|_| Errno::INVAL)?;
        if !cur_is_dir {
            return Err(Errno::NOTDIR);
        }
        if comp == b"." {
            continue;
        }
        if comp == b".." {
            own = false;
            if identity(cur.as_fd())? != root_id {
                cur = rustix::fs::openat(
                    &cur,
                    c"..",
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
            }
            continue;
        }
        if (comp == b"self" || comp == b"thread-self")
            && is_procfs(cur.as_fd())
            && identity(cur.as_fd())?.3 == PROC_ROOT_INO
        {
            links += 1;
            if links > MAXSYMLINKS {
                return Err(Errno::LOOP);
            }
            let (tgid, tid) = ids()?;
            own = true;
            let mut t = PathBuf::<64>::new();
            t.push_u32(tgid)?;
            if comp == b"thread-self" {
                t.push(b"/task/")?.push_u32(tid)?;
            }
            rest.prepend(&t.b[..t.len])?;
            continue;
        }
        if comp.iter().all(u8::is_ascii_digit)
            && is_procfs(cur.as_fd())
            && identity(cur.as_fd())?.3 == PROC_ROOT_INO
        {
            let n = std::str::from_utf8(comp).ok().and_then(|t| t.parse::<u32>().ok());
            own = n.is_some() && ids().ok().map(|(tgid, _)| tgid) == n;
        }
        let next = opath(cur.as_fd(), cname, false)?;
        let ty = file_type(next.as_fd())?;
        let follow_this = follows != Follows::Last || follow;
        if ty == libc::S_IFLNK && follow_this {
            links += 1;
            if links > MAXSYMLINKS {
                return Err(Errno::LOOP);
            }
            if is_procfs(cur.as_fd()) {
                // Following it with magic links refused tells a magic link (ELOOP) from a
                // plain one (whose text is spliced in below, so that `self` is the caller).
                let probe = || {
                    rustix::fs::openat2(
                        &cur,
                        cname,
                        OFlags::PATH | OFlags::CLOEXEC,
                        Mode::empty(),
                        ResolveFlags::NO_MAGICLINKS,
                    )
                };
                let plain = match caps {
                    Some(c) if own => c.reaching(probe),
                    _ => probe(),
                };
                if matches!(plain, Err(Errno::LOOP)) {
                    // A magic link (`/proc/N/fd/M`, `cwd`, `root`, `exe`): the kernel jumps.
                    let jump = || opath(cur.as_fd(), cname, true);
                    cur = match caps {
                        Some(c) if own => c.reaching(jump)?,
                        _ => jump()?,
                    };
                    own = false;
                    cur_is_dir = file_type(cur.as_fd())? == libc::S_IFDIR;
                    if follows == Follows::Slash && !cur_is_dir {
                        return Err(Errno::NOTDIR);
                    }
                    continue;
                }
            }
            let n = rustix::fs::readlinkat_raw(&next, c"", &mut target[..])?;
            if n == 0 || n >= target.len() {
                return Err(if n == 0 { Errno::NOENT } else { Errno::NAMETOOLONG });
            }
            rest.prepend(&target[..n])?;
            if target[0] == b'/' {
                cur = dup(root)?;
                cur_is_dir = true;
                own = false;
            }
            continue;
        }
        cur = next;
        cur_is_dir = ty == libc::S_IFDIR;
        if follows == Follows::Slash && !cur_is_dir {
            return Err(Errno::NOTDIR);
        }
    }
}

#[cfg(test)]
mod tests;
