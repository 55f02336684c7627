//! The app container's namespaces and file system: a per-package *namespace holder* (user +
//! network namespace, only `lo`, up), and the steps a confined child takes between `fork` and
//! `exec`: join the holder's namespaces, unshare mount/pid/ipc/uts, become pid 1 of a new pid
//! namespace, build a minimal root from binds (bubblewrap's method: pivot into a tmpfs with the
//! old root under it, bind what the plan names, pivot again, detach the old root), then apply
//! the prepared Landlock ruleset and seccomp filter.
//!
//! Everything the child needs is computed in the parent ([`PreparedMounts`], C strings, mount
//! flags): between `fork` and `exec` a child of a multithreaded process may only make
//! async-signal-safe calls, so it allocates nothing and takes no locks.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The uid and gid a confined process has inside its user namespace (mapped to the broker's).
pub const INSIDE_ID: u32 = 1000;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn check_long(rc: libc::c_long) -> io::Result<()> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// One step of the file-system plan, in host terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountEntry {
    /// Bind `source` (a host path) at `target` inside; read-only unless `writable`. A missing
    /// source is skipped.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Path inside the sandbox.
        target: PathBuf,
        /// Read-write.
        writable: bool,
    },
    /// A symbolic link `link` → `target` inside.
    Symlink {
        /// What the link points to.
        target: PathBuf,
        /// Where the link is.
        link: PathBuf,
    },
    /// A fresh tmpfs at `target`.
    Tmpfs {
        /// Where.
        target: PathBuf,
    },
    /// A fresh procfs (of the new pid namespace) at `target`.
    Proc {
        /// Where.
        target: PathBuf,
    },
    /// An empty directory at `target` (in the read-only root).
    Dir {
        /// Where.
        target: PathBuf,
    },
}

#[derive(Debug)]
enum Op {
    Mkdir(CString),
    Touch(CString),
    Bind { src: CString, dst: CString, remount: Option<libc::c_ulong> },
    Symlink { target: CString, link: CString },
    Tmpfs(CString),
    Proc(CString),
}

/// A mount plan turned into the exact system calls the child makes.
#[derive(Debug)]
pub struct PreparedMounts {
    ops: Vec<Op>,
    /// What was left out (missing sources), for the launch report.
    pub skipped: Vec<PathBuf>,
}

const NEWROOT: &str = "/newroot";
const OLDROOT: &str = "/oldroot";

/// The mount flags a read-only bind must keep: in a user namespace, the flags of a mount that
/// came from a more privileged namespace are locked and a remount without them fails.
fn locked_flags(path: &Path) -> io::Result<libc::c_ulong> {
    use rustix::fs::StatVfsMountFlags as F;
    let f = rustix::fs::statvfs(path)?.f_flag;
    let mut out: libc::c_ulong = 0;
    for (st, ms) in [
        (F::NOSUID, libc::MS_NOSUID),
        (F::NODEV, libc::MS_NODEV),
        (F::NOEXEC, libc::MS_NOEXEC),
        (F::NOATIME, libc::MS_NOATIME),
        (F::NODIRATIME, libc::MS_NODIRATIME),
        (F::RELATIME, libc::MS_RELATIME),
    ] {
        if f.contains(st) {
            out |= ms;
        }
    }
    Ok(out)
}

fn inside(base: &str, p: &Path) -> PathBuf {
    let rel: PathBuf = p.components().filter(|c| matches!(c, Component::Normal(_))).collect();
    Path::new(base).join(rel)
}

impl PreparedMounts {
    /// Computes the calls for `entries`, checking sources on the host now.
    pub fn prepare(entries: &[MountEntry]) -> io::Result<PreparedMounts> {
        let mut ops = Vec::new();
        let mut skipped = Vec::new();
        let mut made: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
        let mut mkdir_p = |ops: &mut Vec<Op>, dir: &Path| -> io::Result<()> {
            let mut cur = PathBuf::from(NEWROOT);
            for c in dir.components() {
                if let Component::Normal(n) = c {
                    cur.push(n);
                    if made.insert(cur.clone()) {
                        ops.push(Op::Mkdir(cstr(&cur)?));
                    }
                }
            }
            Ok(())
        };
        for e in entries {
            match e {
                MountEntry::Bind { source, target, writable } => {
                    // Resolve links on the host now: in the child the source is reached under
                    // /oldroot, where an absolute link (/etc/localtime → /usr/share/…) would
                    // point into the wrong tree.
                    let (source, meta) = match std::fs::canonicalize(source).and_then(|s| {
                        let m = std::fs::metadata(&s)?;
                        Ok((s, m))
                    }) {
                        Ok(x) => x,
                        Err(_) => {
                            skipped.push(source.clone());
                            continue;
                        }
                    };
                    let source = &source;
                    let dst = inside(NEWROOT, target);
                    if meta.is_dir() {
                        mkdir_p(&mut ops, target)?;
                    } else {
                        if let Some(parent) = target.parent() {
                            mkdir_p(&mut ops, parent)?;
                        }
                        ops.push(Op::Touch(cstr(&dst)?));
                    }
                    let remount = if *writable {
                        None
                    } else {
                        Some(
                            libc::MS_BIND
                                | libc::MS_REMOUNT
                                | libc::MS_RDONLY
                                | locked_flags(source)?,
                        )
                    };
                    ops.push(Op::Bind {
                        src: cstr(&inside(OLDROOT, source))?,
                        dst: cstr(&dst)?,
                        remount,
                    });
                }
                MountEntry::Symlink { target, link } => {
                    if let Some(parent) = link.parent() {
                        mkdir_p(&mut ops, parent)?;
                    }
                    ops.push(Op::Symlink {
                        target: cstr(target)?,
                        link: cstr(&inside(NEWROOT, link))?,
                    });
                }
                MountEntry::Tmpfs { target } => {
                    mkdir_p(&mut ops, target)?;
                    ops.push(Op::Tmpfs(cstr(&inside(NEWROOT, target))?));
                }
                MountEntry::Proc { target } => {
                    mkdir_p(&mut ops, target)?;
                    ops.push(Op::Proc(cstr(&inside(NEWROOT, target))?));
                }
                MountEntry::Dir { target } => mkdir_p(&mut ops, target)?,
            }
        }
        Ok(PreparedMounts { ops, skipped })
    }

    /// In the child: carries out the plan and pivots into the new root.
    fn apply(&self) -> io::Result<()> {
        const NONE: *const libc::c_char = std::ptr::null();
        let c = |s: &'static [u8]| s.as_ptr().cast::<libc::c_char>();
        // SAFETY: for every libc call below, all pointers are NUL-terminated strings that live for
        // the whole call (static literals or CStrings owned by `self`), or null where the
        // kernel accepts null; no call writes to memory we pass.
        unsafe {
            check(libc::mount(
                NONE,
                c(b"/\0"),
                NONE,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                c(b"tmpfs\0"),
                c(b"/tmp\0"),
                c(b"tmpfs\0"),
                libc::MS_NOSUID | libc::MS_NODEV,
                c(b"mode=0755\0").cast(),
            ))?;
            check(libc::mkdir(c(b"/tmp/newroot\0"), 0o755))?;
            check(libc::mkdir(c(b"/tmp/oldroot\0"), 0o755))?;
            check(libc::mount(
                c(b"tmpfs\0"),
                c(b"/tmp/newroot\0"),
                c(b"tmpfs\0"),
                libc::MS_NOSUID | libc::MS_NODEV,
                c(b"mode=0755\0").cast(),
            ))?;
            check_long(libc::syscall(libc::SYS_pivot_root, c(b"/tmp\0"), c(b"/tmp/oldroot\0")))?;
            check(libc::chdir(c(b"/\0")))?;
            for op in &self.ops {
                match op {
                    Op::Mkdir(p) => {
                        if libc::mkdir(p.as_ptr(), 0o755) < 0
                            && *libc::__errno_location() != libc::EEXIST
                        {
                            return Err(io::Error::last_os_error());
                        }
                    }
                    Op::Touch(p) => {
                        let fd = libc::open(
                            p.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd < 0 {
                            return Err(io::Error::last_os_error());
                        }
                        libc::close(fd);
                    }
                    Op::Bind { src, dst, remount } => {
                        check(libc::mount(
                            src.as_ptr(),
                            dst.as_ptr(),
                            NONE,
                            libc::MS_BIND | libc::MS_REC,
                            std::ptr::null(),
                        ))?;
                        if let Some(flags) = remount {
                            check(libc::mount(NONE, dst.as_ptr(), NONE, *flags, std::ptr::null()))?;
                        }
                    }
                    Op::Symlink { target, link } => {
                        check(libc::symlink(target.as_ptr(), link.as_ptr()))?
                    }
                    Op::Tmpfs(p) => check(libc::mount(
                        c(b"tmpfs\0"),
                        p.as_ptr(),
                        c(b"tmpfs\0"),
                        libc::MS_NOSUID | libc::MS_NODEV,
                        c(b"mode=1777\0").cast(),
                    ))?,
                    Op::Proc(p) => check(libc::mount(
                        c(b"proc\0"),
                        p.as_ptr(),
                        c(b"proc\0"),
                        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    ))?,
                }
            }
            check(libc::umount2(c(b"/oldroot\0"), libc::MNT_DETACH))?;
            check(libc::chdir(c(b"/newroot\0")))?;
            check_long(libc::syscall(libc::SYS_pivot_root, c(b".\0"), c(b".\0")))?;
            check(libc::umount2(c(b".\0"), libc::MNT_DETACH))?;
            check(libc::chdir(c(b"/\0")))?;
            check(libc::mount(
                NONE,
                c(b"/\0"),
                NONE,
                libc::MS_REMOUNT
                    | libc::MS_BIND
                    | libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV,
                std::ptr::null(),
            ))?;
        }
        Ok(())
    }
}

/// A process that owns a package's user and network namespaces (only `lo`, up) for as long as
/// the broker keeps it; confined processes of the package join them.
#[derive(Debug)]
pub struct NamespaceHolder {
    /// The holder's pid.
    pub pid: u32,
    /// pidfd of the holder (kill it to drop the namespaces).
    pub pidfd: OwnedFd,
    /// `/proc/<pid>/ns/user`.
    pub userns: OwnedFd,
    /// `/proc/<pid>/ns/net`.
    pub netns: OwnedFd,
}

fn sleeper() -> io::Result<PathBuf> {
    ["/usr/bin/sleep", "/bin/sleep"].iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(
        || io::Error::new(io::ErrorKind::NotFound, "no sleep(1) to keep the namespaces alive"),
    )
}

/// Writes `bytes` to the file at `path` with raw calls (child side).
///
/// # Safety
/// Only async-signal-safe calls; `path` must be NUL-terminated.
unsafe fn write_file(path: &[u8], bytes: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated (caller), `bytes` is valid for its length; the fd is
    // ours and closed here.
    unsafe {
        let fd = libc::open(path.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
        let err = io::Error::last_os_error();
        libc::close(fd);
        if n != bytes.len() as isize {
            return Err(err);
        }
    }
    Ok(())
}

/// Brings `lo` up in the current network namespace (child side).
fn loopback_up() -> io::Result<()> {
    // SAFETY: `ifr` is a zeroed ifreq on the stack, valid for both ioctls; the socket is ours
    // and closed here.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, b) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *b as libc::c_char;
        }
        let mut rc = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
        if rc == 0 {
            ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        }
        let err = io::Error::last_os_error();
        libc::close(s);
        if rc < 0 {
            return Err(err);
        }
    }
    Ok(())
}

impl NamespaceHolder {
    /// Starts a holder: a new user namespace where the caller's uid and gid appear as
    /// [`INSIDE_ID`], and a new network namespace with `lo` up. It is killed if the thread
    /// that spawned it exits (spawn it from a long-lived thread).
    pub fn start() -> io::Result<NamespaceHolder> {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let uid_map = format!("{INSIDE_ID} {uid} 1\n").into_bytes();
        let gid_map = format!("{INSIDE_ID} {gid} 1\n").into_bytes();
        let mut cmd = std::process::Command::new(sleeper()?);
        cmd.arg("infinity")
            .env_clear()
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let hook = move || -> io::Result<()> {
            // SAFETY: raw async-signal-safe calls on integers and on byte strings prepared
            // before the fork (NUL-terminated literals, `uid_map`/`gid_map` owned by the
            // closure).
            unsafe {
                check(libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ))?;
                check(libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET))?;
                write_file(b"/proc/self/setgroups\0", b"deny")?;
                write_file(b"/proc/self/uid_map\0", &uid_map)?;
                write_file(b"/proc/self/gid_map\0", &gid_map)?;
            }
            loopback_up()
        };
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook only makes async-signal-safe calls and allocates nothing (see
        // inside); it runs in the child between fork and exec.
        unsafe {
            cmd.pre_exec(hook);
        }
        let child = cmd.spawn()?;
        let pid = child.id();
        let pidfd = crate::process::pidfd_open(pid)?;
        drop(child);
        let open_ns = |kind: &str| -> io::Result<OwnedFd> {
            let f = std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))?;
            Ok(f.into())
        };
        Ok(NamespaceHolder { pid, userns: open_ns("user")?, netns: open_ns("net")?, pidfd })
    }
}

impl Drop for NamespaceHolder {
    fn drop(&mut self) {
        let _ = crate::process::send_signal(&self.pidfd, rustix::process::Signal::KILL);
        let _ = rustix::process::waitid(
            rustix::process::WaitId::PidFd(std::os::fd::AsFd::as_fd(&self.pidfd)),
            rustix::process::WaitIdOptions::EXITED,
        );
    }
}

/// Everything a confined child applies between `fork` and `exec`, prepared in the parent.
#[derive(Debug)]
pub struct Confinement {
    /// The package's user namespace (a duplicate of its holder's).
    pub userns: OwnedFd,
    /// The package's network namespace (a duplicate of its holder's).
    pub netns: OwnedFd,
    /// The file system.
    pub mounts: PreparedMounts,
    /// Working directory inside (NUL-terminated).
    pub cwd: CString,
    /// Host name inside.
    pub hostname: CString,
    /// Restrictions applied in order after the file system is built, right before exec
    /// (Landlock, then seccomp).
    pub restrictions: Vec<Box<dyn ChildStep>>,
}

/// A restriction prepared in the parent and applied by the child with async-signal-safe calls
/// only (no allocation, no locks).
pub trait ChildStep: std::fmt::Debug + Send + Sync {
    /// Applies it to the calling (child) process.
    fn apply(&self) -> io::Result<()>;
}

impl Confinement {
    /// A working directory and host name as C strings.
    pub fn names(cwd: &Path, hostname: &str) -> io::Result<(CString, CString)> {
        Ok((
            cstr(cwd)?,
            CString::new(OsStr::new(hostname).as_bytes())
                .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        ))
    }

    /// Child side: join, unshare, fork into the new pid namespace (the first child stays
    /// behind as a waiter and never returns), build the root, restrict.
    pub(crate) fn enter(&self) -> io::Result<()> {
        // SAFETY: async-signal-safe calls on integers and on C strings owned by `self`.
        unsafe {
            check(libc::setns(self.userns.as_raw_fd(), libc::CLONE_NEWUSER))?;
            check(libc::setns(self.netns.as_raw_fd(), libc::CLONE_NEWNET))?;
            check(libc::unshare(
                libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS,
            ))?;
            let pid = libc::fork();
            if pid < 0 {
                return Err(io::Error::last_os_error());
            }
            if pid > 0 {
                // The waiter keeps nothing open: in particular not the pipe through which
                // the spawning parent learns that the exec happened.
                libc::syscall(
                    libc::SYS_close_range,
                    3 as libc::c_uint,
                    libc::c_uint::MAX,
                    0 as libc::c_uint,
                );
                wait_and_mirror(pid);
            }
            // Pid 1 of the new namespace. Die with the waiter (and so with whatever kills it).
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0))?;
            check(libc::sethostname(self.hostname.as_ptr(), self.hostname.as_bytes().len()))?;
        }
        self.mounts.apply()?;
        // SAFETY: `cwd` is a NUL-terminated string owned by `self`.
        unsafe {
            check(libc::chdir(self.cwd.as_ptr()))?;
        }
        for step in &self.restrictions {
            step.apply()?;
        }
        Ok(())
    }
}

/// The waiter outside the new pid namespace: waits for pid 1 and ends the same way, so that
/// the broker's pidfd (which names the waiter) reports the app's own exit status.
///
/// # Safety
/// Called in a forked child; never returns.
unsafe fn wait_and_mirror(child: libc::pid_t) -> ! {
    // SAFETY: waitpid writes only `status`, a live local; the rest are calls on integers.
    unsafe {
        let mut status: libc::c_int = 0;
        loop {
            let r = libc::waitpid(child, &mut status, 0);
            if r == child {
                break;
            }
            if r < 0 && *libc::__errno_location() != libc::EINTR {
                libc::_exit(127);
            }
        }
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
            libc::kill(libc::getpid(), sig);
        }
        libc::_exit(libc::WEXITSTATUS(status));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    pub(super) fn run_confined_pub(script: &str, extra: &[MountEntry]) -> (Option<i32>, String) {
        run_confined(script, extra)
    }

    fn run_confined(script: &str, extra: &[MountEntry]) -> (Option<i32>, String) {
        run_confined_with(script, extra, |_| ())
    }

    fn run_confined_with(
        script: &str,
        extra: &[MountEntry],
        meanwhile: impl FnOnce(&crate::process::Spawned),
    ) -> (Option<i32>, String) {
        let holder = NamespaceHolder::start().expect("namespace holder");
        let mut entries = vec![MountEntry::Bind {
            source: "/usr".into(),
            target: "/usr".into(),
            writable: false,
        }];
        for top in ["/bin", "/sbin", "/lib", "/lib64"] {
            match std::fs::read_link(top) {
                Ok(t) => entries.push(MountEntry::Symlink { target: t, link: top.into() }),
                Err(_) => entries.push(MountEntry::Bind {
                    source: top.into(),
                    target: top.into(),
                    writable: false,
                }),
            }
        }
        entries.push(MountEntry::Bind {
            source: "/etc/ld.so.cache".into(),
            target: "/etc/ld.so.cache".into(),
            writable: false,
        });
        if !extra
            .iter()
            .any(|e| matches!(e, MountEntry::Bind { target, .. } if target == Path::new("/tmp")))
        {
            entries.push(MountEntry::Tmpfs { target: "/tmp".into() });
        }
        entries.push(MountEntry::Proc { target: "/proc".into() });
        entries.extend_from_slice(extra);
        let (cwd, hostname) = Confinement::names(Path::new("/"), "appcontainer").unwrap();
        let conf = Confinement {
            userns: holder.userns.try_clone().unwrap(),
            netns: holder.netns.try_clone().unwrap(),
            mounts: PreparedMounts::prepare(&entries).unwrap(),
            cwd,
            hostname,
            restrictions: Vec::new(),
        };
        let (r, w) = crate::socket::stream_pair().unwrap();
        let child = crate::process::spawn(crate::process::SpawnRequest {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/".into(),
            stdout: Some(w.try_clone().unwrap()),
            stderr: Some(w),
            confinement: Some(std::sync::Arc::new(conf)),
            ..Default::default()
        })
        .expect("spawn confined");
        meanwhile(&child);
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        let status = loop {
            if let Some(s) = crate::process::try_reap(&child.pidfd).unwrap() {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        (status.signal.map(|s| -s).or(status.code), out)
    }

    #[test]
    fn confined_child_sees_a_minimal_root() {
        let (code, out) = run_confined(
            "echo uid=$(id -u); hostname; ls /; ls /proc | grep -c '^[0-9]'; echo pid=$$; \
             touch /usr/x 2>&1 || echo usr-readonly; touch /tmp/ok && echo tmp-writable; \
             cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo no-sys; exit 3",
            &[],
        );
        assert_eq!(code, Some(3), "exit status mirrored: {out}");
        assert!(out.contains("uid=1000"), "{out}");
        assert!(out.contains("appcontainer"), "{out}");
        let root: Vec<&str> = out
            .lines()
            .skip_while(|l| *l != "appcontainer")
            .skip(1)
            .take_while(|l| !l.chars().all(|c| c.is_ascii_digit()))
            .collect();
        for unexpected in ["home", "root", "run", "var", "sys", "srv", "opt", "mnt", "work"] {
            assert!(!root.contains(&unexpected), "/{unexpected} must not exist inside: {root:?}");
        }
        assert!(out.contains("pid=1"), "pid 1 of its own namespace: {out}");
        assert!(out.contains("usr-readonly"), "{out}");
        assert!(out.contains("tmp-writable"), "{out}");
        assert!(out.contains("no-sys"), "{out}");
    }

    #[test]
    fn killing_the_waiter_kills_the_app_and_reports_the_signal() {
        let (code, out) = run_confined_with("echo started; exec sleep 30", &[], |child| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            crate::process::send_signal(&child.pidfd, rustix::process::Signal::KILL).unwrap();
        });
        // Reading stdout ended: every writer, the app included, is gone.
        assert_eq!(code, Some(-9), "{out}");
        assert!(out.contains("started"), "{out}");
    }
}

#[cfg(test)]
mod nested_binds {
    #[test]
    fn binds_under_tmp_survive_a_tmp_bind() {
        let base = tempfile::tempdir().unwrap();
        let data = base.path().join("data");
        let inst = base.path().join("inst");
        std::fs::create_dir_all(data.join("TempState")).unwrap();
        std::fs::create_dir_all(&inst).unwrap();
        std::fs::write(inst.join("marker"), "hi").unwrap();
        let extra = vec![
            super::MountEntry::Bind {
                source: data.join("TempState"),
                target: "/tmp".into(),
                writable: true,
            },
            super::MountEntry::Bind { source: inst.clone(), target: inst.clone(), writable: false },
        ];
        let script =
            format!("cat {}/marker; ls -la /tmp; ls -la {}", inst.display(), base.path().display());
        let (code, out) = super::tests::run_confined_pub(&script, &extra);
        assert_eq!(code, Some(0), "{out}");
    }
}
