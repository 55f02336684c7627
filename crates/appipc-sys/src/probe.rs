//! Escape probes: each function attempts one way out of a sandbox with one syscall and reports
//! the errno the kernel (or a seccomp filter, or Landlock) gave.
//!
//! For escape tests only (the in-sandbox checker of `appipc-testkit` and the tests of
//! [`crate::seccomp`] and [`crate::landlock`]); nothing in the broker or the SDK calls them.
//! Every function here is async-signal-safe: it allocates nothing and takes no lock, so a test
//! may call it between `fork` and `exec` (in a `pre_exec` hook) right after confining the
//! child, and an error is `io::Error::last_os_error()` (an errno, no allocation).
//!
//! Where a successful attempt would leave lasting damage, the probe is shaped so that the
//! permission check is what is tested and nothing persists: [`ptrace_seize`] does not stop the
//! target, [`clone_new_user_namespace`] and [`clone3`] pass arguments the kernel rejects
//! *after* the filter has had its say, [`tiocsti`] targets no terminal.

use std::ffi::CStr;
use std::io;

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

fn check_int(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn raw_pid(pid: u32) -> io::Result<libc::pid_t> {
    match libc::pid_t::try_from(pid) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

/// For escape tests: `kill(pid, signal)`; `signal` 0 only checks that the process exists and
/// may be signalled.
pub fn kill(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid = raw_pid(pid)?;
    // SAFETY: kill takes two integers and touches no memory of this process.
    check_int(unsafe { libc::kill(pid, signal) })
}

/// For escape tests: `ptrace(PTRACE_SEIZE, pid)`. It goes through the same access checks as
/// `PTRACE_ATTACH` (`PTRACE_MODE_ATTACH_REALCREDS`, the LSM hooks, seccomp) but does not stop
/// the target; if it succeeds the target is detached when this process exits.
pub fn ptrace_seize(pid: u32) -> io::Result<()> {
    let pid = raw_pid(pid)?;
    // SAFETY: PTRACE_SEIZE reads no memory through its addr/data arguments (both null/zero:
    // no options); it only changes the tracing relationship.
    check(unsafe {
        libc::ptrace(
            libc::PTRACE_SEIZE,
            pid,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    })
    .map(drop)
}

/// For escape tests: `process_vm_readv` of one byte at `remote_addr` in `pid`. `EFAULT` means
/// the access check passed and only the address was wrong.
pub fn process_vm_readv(pid: u32, remote_addr: usize) -> io::Result<()> {
    let pid = raw_pid(pid)?;
    let mut byte = 0u8;
    let local = libc::iovec { iov_base: (&raw mut byte).cast(), iov_len: 1 };
    let remote = libc::iovec { iov_base: remote_addr as *mut libc::c_void, iov_len: 1 };
    // SAFETY: `local` describes one writable byte on this stack frame that outlives the call;
    // `remote` describes memory of the other process, which the kernel checks itself. Both
    // iovec arrays have exactly one element, as the counts say.
    check(unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) } as libc::c_long)
        .map(drop)
}

/// For escape tests: mount a fresh tmpfs on `target`. Undo a success with [`umount`].
pub fn mount_tmpfs(target: &CStr) -> io::Result<()> {
    // SAFETY: every pointer is a NUL-terminated string that lives for the call (`target` is
    // borrowed, the others are literals); the data argument is null (no options).
    check_int(unsafe {
        libc::mount(c"none".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null())
    })
}

/// For escape tests: `umount2(target, MNT_DETACH)`, to clean up after a [`mount_tmpfs`] that
/// should have failed.
pub fn umount(target: &CStr) -> io::Result<()> {
    // SAFETY: `target` is a NUL-terminated string borrowed for the call.
    check_int(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) })
}

/// For escape tests: `unshare(flags)` (for example `libc::CLONE_NEWUSER`). A success changes
/// this process's namespaces for good, so call it last.
pub fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare takes an integer; it touches no memory of this process.
    check_int(unsafe { libc::unshare(flags) })
}

/// For escape tests: `clone(CLONE_NEWUSER | CLONE_FS)`. The kernel refuses that combination
/// with `EINVAL` after any seccomp filter has looked at the flags, so no process is created:
/// `EPERM` means the filter caught the namespace flag, `EINVAL` that it let it through.
pub fn clone_new_user_namespace() -> io::Result<()> {
    let flags = (libc::CLONE_NEWUSER | libc::CLONE_FS) as libc::c_ulong;
    // SAFETY: the kernel rejects CLONE_NEWUSER together with CLONE_FS before creating any
    // task (copy_process), so this never returns twice; the pointer arguments are null and
    // are not used on that path. If it ever did succeed, the child exits at once below.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if rc == 0 {
        // SAFETY: we are an unexpected child; _exit ends it without running any code of the
        // parent's (no destructors, no atexit handlers).
        unsafe { libc::_exit(127) }
    }
    check(rc).map(drop)
}

/// For escape tests: `clone3` with a zero-sized argument. The kernel answers `EINVAL` when it
/// gets to look at it; a filter that hides `clone3` answers `ENOSYS`. No process is created.
pub fn clone3() -> io::Result<()> {
    // SAFETY: a null pointer with size 0 is rejected by the kernel (EINVAL) before anything is
    // read or any task created.
    check(unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) }).map(drop)
}

/// For escape tests: `personality(persona)` (`0xffffffff` only queries). A success changes
/// this process's execution domain.
pub fn personality(persona: libc::c_ulong) -> io::Result<()> {
    // SAFETY: personality takes an integer and touches no memory of this process.
    check(unsafe { libc::syscall(libc::SYS_personality, persona) }).map(drop)
}

/// For escape tests: `ioctl(-1, cmd)` with `cmd` in the full 64-bit register, for example
/// `TIOCSTI` with high bits set. Without a filter the kernel answers `EBADF`; a filter that
/// denies the command answers first.
pub fn ioctl_bad_fd(cmd: u64) -> io::Result<()> {
    // SAFETY: fd -1 is invalid, so the kernel returns EBADF before interpreting the command
    // or reading the (null) argument pointer.
    check(unsafe { libc::syscall(libc::SYS_ioctl, -1 as libc::c_int, cmd, 0usize) }).map(drop)
}

/// For escape tests: [`ioctl_bad_fd`] with `TIOCSTI` (push a byte into a terminal's input,
/// the classic way out of a sandbox that shares the terminal).
pub fn tiocsti() -> io::Result<()> {
    ioctl_bad_fd(crate::seccomp::TIOCSTI)
}

/// A `bpf_insn`.
#[repr(C)]
struct BpfInsn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

/// The leading fields of `union bpf_attr` used by `BPF_PROG_LOAD` (the kernel treats the
/// missing tail as zero).
#[repr(C)]
struct BpfProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
}

/// For escape tests: `bpf(BPF_PROG_LOAD)` of a two-instruction socket filter (`r0 = 0; exit`).
/// A loaded program is closed at once.
pub fn bpf_prog_load() -> io::Result<()> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_TYPE_SOCKET_FILTER: u32 = 1;
    // BPF_ALU64 | BPF_MOV | BPF_K, dst r0, imm 0; then BPF_JMP | BPF_EXIT.
    let insns = [
        BpfInsn { code: 0xb7, regs: 0, off: 0, imm: 0 },
        BpfInsn { code: 0x95, regs: 0, off: 0, imm: 0 },
    ];
    let license = c"GPL";
    let attr = BpfProgLoadAttr {
        prog_type: BPF_PROG_TYPE_SOCKET_FILTER,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
    };
    // SAFETY: `attr` is a properly laid out prefix of `union bpf_attr` whose size is passed;
    // it points at `insns` (two instructions, as `insn_cnt` says) and a NUL-terminated
    // license, all on this stack frame or static and alive for the call. The kernel only reads
    // them.
    let fd = check(unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &raw const attr,
            std::mem::size_of::<BpfProgLoadAttr>() as libc::c_uint,
        )
    })?;
    // SAFETY: `fd` was just returned by bpf() and is owned by nobody else; closing it once.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// For escape tests: connect a fresh `SOCK_STREAM` unix socket to the abstract address `name`
/// (without the leading NUL).
pub fn connect_abstract(name: &[u8]) -> io::Result<()> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new_abstract_name(name)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::connect(&fd, &addr)?;
    Ok(())
}

/// For escape tests: connect a fresh TCP socket to `127.0.0.1:port` (blocking; a listener
/// that exists answers at once, a missing one refuses at once).
pub fn connect_tcp_loopback(port: u16) -> io::Result<()> {
    use rustix::net::{AddressFamily, SocketAddrV4, SocketFlags, SocketType, ipproto};
    let fd = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        Some(ipproto::TCP),
    )?;
    rustix::net::connect(&fd, &SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port))?;
    Ok(())
}

/// For escape tests: `open(path, O_RDONLY)` (closed at once).
pub fn open_read(path: &CStr) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    drop(fd);
    Ok(())
}

/// For escape tests: `open(path, O_WRONLY | O_CREAT | O_EXCL, 0600)`; a created file is left
/// in place (closed).
pub fn create_file(path: &CStr) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    drop(fd);
    Ok(())
}

/// For escape tests: `socket(domain, ty, protocol)` (closed at once).
pub fn socket(domain: i32, ty: i32, protocol: i32) -> io::Result<()> {
    // SAFETY: socket takes three integers and touches no memory of this process; a returned fd
    // is new and owned by nobody else, and is closed right here.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    check_int(fd)?;
    // SAFETY: `fd` was just returned by socket() and is closed once.
    unsafe { libc::close(fd) };
    Ok(())
}

/// For escape tests: an unprivileged `fanotify_init` (`FAN_CLASS_NOTIF | FAN_REPORT_FID`, the
/// form Linux 5.13+ allows without `CAP_SYS_ADMIN`), closed at once.
pub fn fanotify_init() -> io::Result<()> {
    const FAN_CLASS_NOTIF: libc::c_uint = 0;
    const FAN_REPORT_FID: libc::c_uint = 0x200;
    // SAFETY: fanotify_init takes two integers; a returned fd is new and closed right here.
    let fd = unsafe {
        libc::fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_FID, libc::O_RDONLY as libc::c_uint)
    };
    check_int(fd)?;
    // SAFETY: `fd` was just returned and is closed once.
    unsafe { libc::close(fd) };
    Ok(())
}

/// For escape tests: `inotify_init1`, then a watch for opens on `path` (closed at once).
pub fn inotify_watch(path: &CStr) -> io::Result<()> {
    use rustix::fs::inotify;
    let fd = inotify::init(inotify::CreateFlags::CLOEXEC)?;
    inotify::add_watch(&fd, path, inotify::WatchFlags::OPEN)?;
    Ok(())
}

/// For escape tests: `chmod(path, mode)`.
pub fn chmod(path: &CStr, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::chmod(path, rustix::fs::Mode::from_raw_mode(mode))?)
}

/// For escape tests: `chmod` of `path` to the mode it already has (the permission check is
/// what is tested; a success changes only the inode's change time).
pub fn chmod_same(path: &CStr) -> io::Result<()> {
    let st = rustix::fs::stat(path)?;
    chmod(path, st.st_mode & 0o7777)
}

/// For escape tests: `fchmod(fd, mode)`.
pub fn fchmod(fd: std::os::fd::BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    Ok(rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode(mode))?)
}

/// For escape tests: glibc's `fchmodat(AT_FDCWD, path, mode, AT_SYMLINK_NOFOLLOW)` (what
/// `lchmod` and Python's `chmod(follow_symlinks=False)` call; glibc may carry it out as a
/// `chmod` of `/proc/self/fd/N` of an `O_PATH` fd).
pub fn lchmod(path: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated and borrowed for the call; the others are integers.
    check_int(unsafe {
        libc::fchmodat(
            libc::AT_FDCWD,
            path.as_ptr(),
            mode as libc::mode_t,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
}

/// For escape tests: `setxattr(path, name, value, 0)`.
pub fn setxattr(path: &CStr, name: &CStr, value: &[u8]) -> io::Result<()> {
    Ok(rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty())?)
}

/// For escape tests: `utimensat(path, UTIME_NOW)`, which anyone who may write a file may do.
pub fn touch(path: &CStr) -> io::Result<()> {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_NOW};
    let now = Timespec { tv_sec: 0, tv_nsec: UTIME_NOW };
    let times = Timestamps { last_access: now, last_modification: now };
    Ok(rustix::fs::utimensat(CWD, path, &times, AtFlags::empty())?)
}

/// For escape tests: `chown(path, -1, -1)`: changes no owner, but goes through the same
/// checks (and a success changes the inode's change time).
pub fn chown_nothing(path: &CStr) -> io::Result<()> {
    Ok(rustix::fs::chown(path, None, None)?)
}

/// For escape tests: creates `path` with `open(O_CREAT | O_EXCL, mode)` and returns the mode
/// the file got (what the kernel kept of `mode`).
pub fn create_with_mode(path: &CStr, mode: u32) -> io::Result<u32> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    Ok(rustix::fs::fstat(&fd)?.st_mode & 0o7777)
}

/// For escape tests: `mknod(path, kind | mode, dev)` (`kind` is `S_IFREG`, `S_IFCHR`, …).
pub fn mknod(path: &CStr, kind: u32, mode: u32, dev: u64) -> io::Result<()> {
    use rustix::fs::{CWD, FileType, Mode};
    let ty = FileType::from_raw_mode(kind);
    Ok(rustix::fs::mknodat(CWD, path, ty, Mode::from_raw_mode(mode), dev)?)
}

/// For escape tests: maps the file at `path` with `PROT_READ | PROT_EXEC` (what the dynamic
/// linker does to load a library), unmapped at once.
pub fn mmap_exec_file(path: &CStr) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    use rustix::mm::{MapFlags, ProtFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    // SAFETY: a fresh private mapping of one page chosen by the kernel (null address), of a file
    // we opened; nothing else refers to it and it is unmapped before return.
    unsafe {
        let p = rustix::mm::mmap(
            std::ptr::null_mut(),
            4096,
            ProtFlags::READ | ProtFlags::EXEC,
            MapFlags::PRIVATE,
            &fd,
            0,
        )?;
        rustix::mm::munmap(p, 4096)?;
    }
    Ok(())
}

/// For escape tests: an anonymous `PROT_READ | PROT_WRITE | PROT_EXEC` mapping (what a JIT
/// does), unmapped at once.
pub fn mmap_exec_anonymous() -> io::Result<()> {
    use rustix::mm::{MapFlags, ProtFlags};
    // SAFETY: a fresh anonymous private mapping of one page chosen by the kernel; nothing else
    // refers to it and it is unmapped before return.
    unsafe {
        let p = rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            4096,
            ProtFlags::READ | ProtFlags::WRITE | ProtFlags::EXEC,
            MapFlags::PRIVATE,
        )?;
        rustix::mm::munmap(p, 4096)?;
    }
    Ok(())
}

/// For escape tests: blocks `signal` in the calling thread, so that [`wait_signal`] can take
/// it without a handler (and none arriving meanwhile is lost).
pub fn block_signal(signal: i32) -> io::Result<()> {
    // SAFETY: sigemptyset/sigaddset write the set on this stack frame; pthread_sigmask only
    // changes this thread's mask.
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 { Err(io::Error::from_raw_os_error(rc)) } else { Ok(()) }
}

/// For escape tests: waits until `signal` (blocked with [`block_signal`]) arrives.
pub fn wait_signal(signal: i32) -> io::Result<()> {
    // SAFETY: as in block_signal; sigwaitinfo writes nothing (null info).
    let rc = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        loop {
            let r = libc::sigwaitinfo(&set, std::ptr::null_mut());
            if r >= 0 || *libc::__errno_location() != libc::EINTR {
                break r;
            }
        }
    };
    check_int(rc)
}

/// Test support: runs `program args` with `hook` called in the child between `fork` and
/// `exec`; the hook's error (an errno) comes back as the error of the spawn. Only for tests
/// whose hook is async-signal-safe (the functions of this module, `apply`/`restrict_self`).
#[cfg(test)]
pub(crate) fn run_with_hook(
    program: &str,
    args: &[&str],
    hook: impl FnMut() -> io::Result<()> + Send + Sync + 'static,
) -> io::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).stdin(std::process::Stdio::null());
    // SAFETY: `hook` runs in the forked child before exec; the callers pass hooks that only
    // make raw syscalls on data prepared before the fork (no allocation, no locks).
    unsafe {
        cmd.pre_exec(hook);
    }
    cmd.output()
}

/// Test support: the errno of `hook` run in a forked child (after whatever confinement the
/// hook applies first), or `None` if it succeeded (the child then runs `/bin/true`).
#[cfg(test)]
pub(crate) fn errno_in_child(
    hook: impl FnMut() -> io::Result<()> + Send + Sync + 'static,
) -> Option<i32> {
    match run_with_hook("/bin/true", &[], hook) {
        Ok(out) => {
            assert!(out.status.success(), "/bin/true failed: {out:?}");
            None
        }
        Err(e) => Some(e.raw_os_error().unwrap_or_else(|| panic!("not an errno: {e}"))),
    }
}
