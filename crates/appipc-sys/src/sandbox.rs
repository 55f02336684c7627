//! The app container's namespaces and file system: a per-package *namespace holder* (user +
//! network namespace, only `lo`, up), and the steps a confined child takes between `fork` and
//! `exec`.
//!
//! # The processes of one confined launch
//!
//! ```text
//! broker ─fork─▶ waiter (outside the new pid namespace; the pid the broker tracks)
//!                  ├─fork─▶ supervisor (connect, bind, listen; chmod and setxattr under an unprivileged broker: seccomp_notify)
//!                  └─fork─▶ init (pid 1 inside: builds the root, reaps, forwards signals)
//!                             └─fork─▶ app (pid 2: uid 1000, Landlock, seccomp, exec)
//! ```
//!
//! * The **waiter** joins the package's network namespace, unshares mount, pid, ipc and uts
//!   namespaces and forks *init*. It then forwards `SIGHUP`, `SIGINT`, `SIGQUIT`, `SIGTERM`,
//!   `SIGUSR1` and `SIGUSR2` to init and, when init ends, ends the same way as the app did
//!   (same exit code, or killed by the same signal), so the broker's pidfd reports the app's
//!   own status. Killing the waiter kills everything (parent-death signals).
//! * **init** builds the root from binds (bubblewrap's method: pivot into a tmpfs with the old
//!   root under it, bind what the plan names, pivot again, detach the old root), takes the
//!   app's ids (uid and gid [`INSIDE_ID`], the groups asked for), drops its capabilities,
//!   forks the app and then only reaps and forwards signals to it; it ends when the app ends
//!   (which ends the pid namespace). The app is not pid 1 so that signals with default
//!   dispositions (`^C`, `SIGTERM`) act on it as on any process: the kernel ignores them for
//!   a namespace's init.
//! * The **app** starts a session of its own (with the first terminal among fds 0–2 as its
//!   controlling terminal, so `^C` and window-size changes reach it), sets its umask,
//!   restores an empty signal mask, changes to its working directory, applies the prepared
//!   Landlock ruleset and seccomp filter, and `std` execs the program.
//!
//! # Who owns what (the uid model)
//!
//! Under an **unprivileged broker** the holder's user namespace maps the broker's uid and gid
//! to [`INSIDE_ID`]; the waiter joins it first and every namespace after it is created there.
//! Under a **root broker** the holder's namespace maps [`INSIDE_ID`] to the *package's own*
//! host uid and gid (and optionally a second gid, the publisher's group); the waiter and init
//! stay host root in the initial user namespace while the mount, pid, ipc and uts namespaces
//! are created and the root is built (host root can read the broker's own 0700 folders and
//! create files in the new tmpfs; the namespaces then belong to the initial user namespace, so
//! nothing inside can ever change them), and only then does init join the package's user
//! namespace and become uid 1000, which is an unprivileged host uid. [`Mode`] says which.
//!
//! Everything the child needs is computed in the parent ([`PreparedMounts`], C strings, mount
//! flags): between `fork` and `exec` a child of a multithreaded process may only make
//! async-signal-safe calls, so it allocates nothing and takes no locks. Each step that can
//! fail is a [`Step`]; the child writes the failing step and its errno into a pipe before it
//! fails, and [`crate::process::spawn`] turns it into a [`ConfinementError`] that names it
//! ("app container: pivot_root into the new root failed: EINVAL (Invalid argument)").

use std::ffi::{CStr, CString, OsStr};
use std::fmt;
use std::io;
use std::os::fd::{AsFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

/// The uid and gid a confined process has inside its user namespace.
pub const INSIDE_ID: u32 = 1000;

/// The inside gid of the second group a root broker may map (the publisher's group).
pub const INSIDE_SECOND_GID: u32 = 1001;

fn cstr(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))
}

/// How a bind is mounted. Every bind is `nosuid`; beyond that:
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindAccess {
    /// `ro,nosuid,nodev`: system folders and the install folder (programs run from here).
    ReadOnly,
    /// `rw,nosuid,nodev,noexec`: the app's own folders. Nothing written there can run, be a
    /// device or carry a set-id bit that means anything inside.
    ReadWrite,
    /// `ro,nosuid,noexec` for a device node: it can be opened, read and written (a read-only
    /// mount does not stop writes to a device), but its owner, mode and times cannot change.
    Device,
}

impl BindAccess {
    /// The `MOUNT_ATTR_*` bits set (recursively) on the bind.
    fn attributes(self) -> u64 {
        use libc::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};
        match self {
            BindAccess::ReadOnly => MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
            BindAccess::ReadWrite => MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
            BindAccess::Device => MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC,
        }
    }

    /// The mount options, as `mount(8)` prints them.
    pub fn options(self) -> &'static str {
        match self {
            BindAccess::ReadOnly => "ro,nosuid,nodev",
            BindAccess::ReadWrite => "rw,nosuid,nodev,noexec",
            BindAccess::Device => "ro,nosuid,noexec",
        }
    }
}

/// One step of the file-system plan, in host terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountEntry {
    /// Bind `source` (a host path, with what is mounted beneath it) at `target` inside, with
    /// `access` applied to the whole bound tree. A missing source is skipped.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Path inside the sandbox.
        target: PathBuf,
        /// Flags of the bind.
        access: BindAccess,
    },
    /// A symbolic link `link` → `target` inside.
    Symlink {
        /// What the link points to.
        target: PathBuf,
        /// Where the link is.
        link: PathBuf,
    },
    /// A fresh tmpfs at `target` (`nosuid,nodev,noexec`, mode 0755).
    Tmpfs {
        /// Where.
        target: PathBuf,
    },
    /// A fresh procfs (of the new pid namespace) at `target` (`nosuid,nodev,noexec`).
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
    Bind { src: CString, dst: CString },
    SetAttributes { dst: CString, attributes: u64 },
    Symlink { target: CString, link: CString },
    Tmpfs(CString),
    Proc(CString),
}

/// A mount plan turned into the exact system calls the child makes.
#[derive(Debug)]
pub struct PreparedMounts {
    ops: Vec<Op>,
    /// What each op does, for the error that names a failed one.
    what: Vec<String>,
    /// What was left out (missing sources), for the launch report.
    pub skipped: Vec<PathBuf>,
}

const NEWROOT: &str = "/newroot";
const OLDROOT: &str = "/oldroot";

fn inside(base: &str, p: &Path) -> PathBuf {
    let rel: PathBuf = p.components().filter(|c| matches!(c, Component::Normal(_))).collect();
    Path::new(base).join(rel)
}

/// The `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(AT_FDCWD, path, AT_RECURSIVE, {attr_set: attributes})`: sets flags on a
/// mount and every mount beneath it, clearing none (so flags a less privileged namespace may
/// not clear stay as they are). Async-signal-safe.
fn set_attributes_recursively(path: &CStr, attributes: u64) -> io::Result<()> {
    let attr = MountAttr { attr_set: attributes, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: `path` is NUL-terminated and borrowed for the call; `attr` is a mount_attr on
    // this stack frame whose size is passed; the kernel only reads both.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &raw const attr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn shown(p: &CStr) -> String {
    let s = p.to_string_lossy();
    s.strip_prefix(NEWROOT).map(str::to_owned).unwrap_or_else(|| s.into_owned())
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
                MountEntry::Bind { source, target, access } => {
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
                    let dst = cstr(&inside(NEWROOT, target))?;
                    if meta.is_dir() {
                        mkdir_p(&mut ops, target)?;
                    } else {
                        if let Some(parent) = target.parent() {
                            mkdir_p(&mut ops, parent)?;
                        }
                        ops.push(Op::Touch(dst.clone()));
                    }
                    ops.push(Op::Bind { src: cstr(&inside(OLDROOT, &source))?, dst: dst.clone() });
                    ops.push(Op::SetAttributes { dst, attributes: access.attributes() });
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
        let what = ops
            .iter()
            .map(|op| match op {
                Op::Mkdir(p) => format!("creating the folder {}", shown(p)),
                Op::Touch(p) => format!("creating the mount point {}", shown(p)),
                Op::Bind { src, dst } => format!(
                    "binding {} at {}",
                    src.to_string_lossy().strip_prefix(OLDROOT).unwrap_or_default(),
                    shown(dst)
                ),
                Op::SetAttributes { dst, attributes } => {
                    let access = [BindAccess::ReadOnly, BindAccess::ReadWrite, BindAccess::Device]
                        .into_iter()
                        .find(|a| a.attributes() == *attributes)
                        .map_or("", BindAccess::options);
                    format!("making {} {access}", shown(dst))
                }
                Op::Symlink { target, link } => {
                    format!("creating the link {} -> {}", shown(link), target.to_string_lossy())
                }
                Op::Tmpfs(p) => format!("mounting a tmpfs at {}", shown(p)),
                Op::Proc(p) => format!("mounting proc at {}", shown(p)),
            })
            .collect();
        Ok(PreparedMounts { ops, what, skipped })
    }

    /// In the child: carries out the plan and pivots into the new root. Async-signal-safe.
    fn apply(&self, report: Report) -> io::Result<()> {
        use rustix::fs::mkdir;
        use rustix::mount::{mount, mount_bind_recursive, mount_change, mount_remount, unmount};
        use rustix::process::{chdir, pivot_root};
        let tmpfs = MountFlags::NOSUID | MountFlags::NODEV;
        let locked = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        let r = report;
        r.at(
            Step::MakeMountsPrivate,
            mount_change(c"/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE),
        )?;
        r.at(Step::ScratchTmpfs, mount(c"tmpfs", c"/tmp", c"tmpfs", tmpfs, c"mode=0755"))?;
        r.at(Step::ScratchDirs, mkdir(c"/tmp/newroot", Mode::from_raw_mode(0o755)))?;
        r.at(Step::ScratchDirs, mkdir(c"/tmp/oldroot", Mode::from_raw_mode(0o755)))?;
        r.at(Step::NewRootTmpfs, mount(c"tmpfs", c"/tmp/newroot", c"tmpfs", tmpfs, c"mode=0755"))?;
        r.at(Step::PivotIntoScratch, pivot_root(c"/tmp", c"/tmp/oldroot"))?;
        r.at(Step::PivotIntoScratch, chdir(c"/"))?;
        for (i, op) in self.ops.iter().enumerate() {
            let step = Step::Mount(i);
            match op {
                Op::Mkdir(p) => match mkdir(p.as_c_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(r.fail(step, e.into())),
                },
                Op::Touch(p) => {
                    let flags = OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC;
                    r.at(step, rustix::fs::open(p.as_c_str(), flags, Mode::from_raw_mode(0o644)))?;
                }
                Op::Bind { src, dst } => {
                    r.at(step, mount_bind_recursive(src.as_c_str(), dst.as_c_str()))?
                }
                Op::SetAttributes { dst, attributes } => {
                    r.at(step, set_attributes_recursively(dst, *attributes))?
                }
                Op::Symlink { target, link } => {
                    r.at(step, rustix::fs::symlink(target.as_c_str(), link.as_c_str()))?
                }
                Op::Tmpfs(p) => {
                    r.at(step, mount(c"tmpfs", p.as_c_str(), c"tmpfs", locked, c"mode=0755"))?
                }
                Op::Proc(p) => {
                    r.at(step, mount(c"proc", p.as_c_str(), c"proc", locked, None::<&CStr>))?
                }
            }
        }
        r.at(Step::DetachOldRoot, unmount(c"/oldroot", UnmountFlags::DETACH))?;
        r.at(Step::PivotIntoNewRoot, chdir(c"/newroot"))?;
        r.at(Step::PivotIntoNewRoot, pivot_root(c".", c"."))?;
        r.at(Step::DetachScratch, unmount(c".", UnmountFlags::DETACH))?;
        r.at(Step::DetachScratch, chdir(c"/"))?;
        let ro = MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV;
        r.at(Step::RemountRootReadOnly, mount_remount(c"/", ro, c""))?;
        Ok(())
    }
}

/// One step of a confined child's set-up, as named in a [`ConfinementError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// `setns` into the package's user namespace.
    JoinUserNamespace,
    /// `setns` into the package's network namespace.
    JoinNetworkNamespace,
    /// `unshare` of the mount, pid, ipc and uts namespaces.
    Unshare,
    /// Blocking the forwarded signals (waiter and init wait for them).
    SignalMask,
    /// The pipe through which init hands the app's exit status to the waiter.
    StatusPipe,
    /// `fork` of init, pid 1 of the new pid namespace.
    ForkInit,
    /// `PR_SET_PDEATHSIG` in init.
    ParentDeathSignal,
    /// `sethostname`.
    Hostname,
    /// Making the inherited mount tree private.
    MakeMountsPrivate,
    /// The scratch tmpfs the old and new roots are placed on.
    ScratchTmpfs,
    /// Its two folders.
    ScratchDirs,
    /// The tmpfs of the new root.
    NewRootTmpfs,
    /// `pivot_root` into the scratch tmpfs.
    PivotIntoScratch,
    /// One operation of the mount plan (its index).
    Mount(usize),
    /// Detaching the old root.
    DetachOldRoot,
    /// `pivot_root` into the new root.
    PivotIntoNewRoot,
    /// Detaching the scratch tmpfs.
    DetachScratch,
    /// Making the new root read-only.
    RemountRootReadOnly,
    /// `setgroups`.
    SetGroups,
    /// `setresgid`.
    SetGid,
    /// `setresuid`.
    SetUid,
    /// Dropping every capability in the package's user namespace.
    DropCapabilities,
    /// `PR_SET_DUMPABLE` 0 on init.
    NotDumpable,
    /// `fork` of the app.
    ForkApp,
    /// `setsid` for the app.
    NewSession,
    /// Resetting the app's signal mask and dispositions.
    AppSignals,
    /// `chdir` to the working directory.
    WorkingDirectory,
    /// One restriction (its index in [`Confinement::restrictions`]).
    Restriction(usize),
    /// Forking the seccomp supervisor ([`Confinement::supervisor`]).
    StartSupervisor,
}

impl Step {
    fn encode(self) -> (u32, u32) {
        let index = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
        match self {
            Step::JoinUserNamespace => (1, 0),
            Step::JoinNetworkNamespace => (2, 0),
            Step::Unshare => (3, 0),
            Step::SignalMask => (4, 0),
            Step::StatusPipe => (5, 0),
            Step::ForkInit => (6, 0),
            Step::ParentDeathSignal => (7, 0),
            Step::Hostname => (8, 0),
            Step::MakeMountsPrivate => (9, 0),
            Step::ScratchTmpfs => (10, 0),
            Step::ScratchDirs => (11, 0),
            Step::NewRootTmpfs => (12, 0),
            Step::PivotIntoScratch => (13, 0),
            Step::Mount(i) => (14, index(i)),
            Step::DetachOldRoot => (15, 0),
            Step::PivotIntoNewRoot => (16, 0),
            Step::DetachScratch => (17, 0),
            Step::RemountRootReadOnly => (18, 0),
            Step::SetGroups => (19, 0),
            Step::SetGid => (20, 0),
            Step::SetUid => (21, 0),
            Step::DropCapabilities => (22, 0),
            Step::NotDumpable => (23, 0),
            Step::ForkApp => (24, 0),
            Step::NewSession => (25, 0),
            Step::AppSignals => (26, 0),
            Step::WorkingDirectory => (27, 0),
            Step::Restriction(i) => (28, index(i)),
            Step::StartSupervisor => (29, 0),
        }
    }

    fn decode(code: u32, index: u32) -> Option<Step> {
        let i = index as usize;
        Some(match code {
            1 => Step::JoinUserNamespace,
            2 => Step::JoinNetworkNamespace,
            3 => Step::Unshare,
            4 => Step::SignalMask,
            5 => Step::StatusPipe,
            6 => Step::ForkInit,
            7 => Step::ParentDeathSignal,
            8 => Step::Hostname,
            9 => Step::MakeMountsPrivate,
            10 => Step::ScratchTmpfs,
            11 => Step::ScratchDirs,
            12 => Step::NewRootTmpfs,
            13 => Step::PivotIntoScratch,
            14 => Step::Mount(i),
            15 => Step::DetachOldRoot,
            16 => Step::PivotIntoNewRoot,
            17 => Step::DetachScratch,
            18 => Step::RemountRootReadOnly,
            19 => Step::SetGroups,
            20 => Step::SetGid,
            21 => Step::SetUid,
            22 => Step::DropCapabilities,
            23 => Step::NotDumpable,
            24 => Step::ForkApp,
            25 => Step::NewSession,
            26 => Step::AppSignals,
            27 => Step::WorkingDirectory,
            28 => Step::Restriction(i),
            29 => Step::StartSupervisor,
            _ => return None,
        })
    }

    /// What the step does, in words, for `conf`.
    fn describe(self, conf: &Confinement) -> String {
        match self {
            Step::JoinUserNamespace => "joining the package's user namespace".into(),
            Step::JoinNetworkNamespace => "joining the package's network namespace".into(),
            Step::Unshare => "unsharing the mount, pid, ipc and uts namespaces".into(),
            Step::SignalMask => "blocking the forwarded signals".into(),
            Step::StatusPipe => "creating the exit-status pipe".into(),
            Step::ForkInit => "forking pid 1 of the new pid namespace".into(),
            Step::ParentDeathSignal => "setting the parent-death signal".into(),
            Step::Hostname => format!("setting the host name {:?}", conf.hostname),
            Step::MakeMountsPrivate => "making the mount tree private".into(),
            Step::ScratchTmpfs => "mounting the scratch tmpfs".into(),
            Step::ScratchDirs => "creating the scratch folders".into(),
            Step::NewRootTmpfs => "mounting the tmpfs of the new root".into(),
            Step::PivotIntoScratch => "pivot_root into the scratch tmpfs".into(),
            Step::Mount(i) => {
                conf.mounts.what.get(i).cloned().unwrap_or_else(|| format!("mount operation {i}"))
            }
            Step::DetachOldRoot => "detaching the old root".into(),
            Step::PivotIntoNewRoot => "pivot_root into the new root".into(),
            Step::DetachScratch => "detaching the scratch tmpfs".into(),
            Step::RemountRootReadOnly => "remounting the new root read-only".into(),
            Step::SetGroups => "setgroups".into(),
            Step::SetGid => format!("setresgid to {INSIDE_ID}"),
            Step::SetUid => format!("setresuid to {INSIDE_ID}"),
            Step::DropCapabilities => "dropping capabilities".into(),
            Step::NotDumpable => "making init not dumpable".into(),
            Step::ForkApp => "forking the app".into(),
            Step::NewSession => "starting the app's session".into(),
            Step::AppSignals => "resetting the app's signals".into(),
            Step::WorkingDirectory => format!("changing to {:?}", conf.cwd),
            Step::StartSupervisor => "starting the seccomp supervisor".into(),
            Step::Restriction(i) => conf
                .restrictions
                .get(i)
                .map(|r| r.name().to_owned())
                .unwrap_or_else(|| format!("restriction {i}")),
        }
    }
}

/// The name of an errno (`EINVAL`), for the common ones.
pub fn errno_name(errno: i32) -> Option<&'static str> {
    use libc::*;
    Some(match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        ESRCH => "ESRCH",
        EINTR => "EINTR",
        EIO => "EIO",
        E2BIG => "E2BIG",
        ENOEXEC => "ENOEXEC",
        EBADF => "EBADF",
        ECHILD => "ECHILD",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        EXDEV => "EXDEV",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        ENFILE => "ENFILE",
        EMFILE => "EMFILE",
        ENOTTY => "ENOTTY",
        ETXTBSY => "ETXTBSY",
        ENOSPC => "ENOSPC",
        EROFS => "EROFS",
        EMLINK => "EMLINK",
        ENAMETOOLONG => "ENAMETOOLONG",
        ENOSYS => "ENOSYS",
        ELOOP => "ELOOP",
        EOVERFLOW => "EOVERFLOW",
        EOPNOTSUPP => "EOPNOTSUPP",
        EAFNOSUPPORT => "EAFNOSUPPORT",
        EPROTONOSUPPORT => "EPROTONOSUPPORT",
        _ => return None,
    })
}

/// Why a confined child could not be set up: the step, in words, and the errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app container: {what} failed: {}", describe_errno(*errno))]
pub struct ConfinementError {
    /// The step that failed.
    pub step: Step,
    /// The step in words ("pivot_root into the new root").
    pub what: String,
    /// The errno it failed with.
    pub errno: i32,
}

fn describe_errno(errno: i32) -> String {
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = text.split(" (os error").next().unwrap_or_default().to_owned();
    match errno_name(errno) {
        Some(name) => format!("{name} ({text})"),
        None => format!("errno {errno} ({text})"),
    }
}

/// Where the child writes the step that failed (the write end of a pipe the parent reads).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Report(pub(crate) RawFd);

impl Report {
    /// Writes `step` and the errno of `e` (best effort: the child fails either way).
    fn fail(self, step: Step, e: io::Error) -> io::Error {
        let (code, index) = step.encode();
        let errno = e.raw_os_error().unwrap_or(libc::EINVAL);
        let mut rec = [0u8; 12];
        rec[..4].copy_from_slice(&code.to_ne_bytes());
        rec[4..8].copy_from_slice(&index.to_ne_bytes());
        rec[8..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: `self.0` is the write end of the report pipe, open in this child (placed above
        // every target fd by `spawn`); `rec` is a 12-byte array on this stack frame, and 12
        // bytes are below PIPE_BUF, so the write is atomic.
        unsafe { libc::write(self.0, rec.as_ptr().cast(), rec.len()) };
        e
    }

    fn at<T, E: Into<io::Error>>(self, step: Step, r: Result<T, E>) -> io::Result<T> {
        r.map_err(|e| self.fail(step, e.into()))
    }

    /// Parent side: reads the record a failed child left, if any.
    pub(crate) fn read(read_end: &OwnedFd, conf: &Confinement) -> Option<ConfinementError> {
        let mut rec = [0u8; 12];
        let n = rustix::io::read(read_end, &mut rec).ok()?;
        if n != rec.len() {
            return None;
        }
        let word = |i: usize| u32::from_ne_bytes(rec[i..i + 4].try_into().expect("4 bytes"));
        let step = Step::decode(word(0), word(4))?;
        let errno = i32::from_ne_bytes(rec[8..].try_into().expect("4 bytes"));
        Some(ConfinementError { step, what: step.describe(conf), errno })
    }
}

/// The host ids behind the app's uid and gid [`INSIDE_ID`] (and gid [`INSIDE_SECOND_GID`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIds {
    /// Host uid of uid 1000.
    pub uid: u32,
    /// Host gid of gid 1000.
    pub gid: u32,
    /// Host gid of gid 1001, if any (root broker only: an unprivileged one may map one id).
    pub second_gid: Option<u32>,
}

impl HostIds {
    /// The calling process's own uid and gid (the unprivileged broker's mapping).
    pub fn own() -> HostIds {
        HostIds {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            second_gid: None,
        }
    }
}

/// A process that owns a package's user and network namespaces (only `lo`, up) for as long as
/// the broker keeps it; confined processes of the package join them.
///
/// A holder outlives the broker that started it (it has no parent-death signal), so that a
/// restarted broker finds the namespaces of the package's running processes again
/// ([`NamespaceHolder::adopt`]). Dropping the value kills the holder unless
/// [`NamespaceHolder::keep_on_drop`] was called; [`NamespaceHolder::end`] always does.
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
    /// Who uid 1000 is on the host.
    pub ids: HostIds,
    /// Started by this process (so it can reap it), not adopted.
    child: bool,
    /// Kill it when this value is dropped.
    end_on_drop: bool,
}

fn sleeper() -> io::Result<PathBuf> {
    ["/usr/bin/sleep", "/bin/sleep"].iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(
        || io::Error::new(io::ErrorKind::NotFound, "no sleep(1) to keep the namespaces alive"),
    )
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
    /// Starts a holder: a new user namespace where uid and gid [`INSIDE_ID`] are `ids` on the
    /// host (and gid [`INSIDE_SECOND_GID`] is `ids.second_gid`), and a new network namespace
    /// with `lo` up. The maps are written by the caller, which is what lets a root broker map
    /// ids other than its own (and an unprivileged one map exactly its own, with `setgroups`
    /// denied). It has no parent-death signal: it lives until it is killed.
    pub fn start(ids: &HostIds) -> io::Result<NamespaceHolder> {
        let mut cmd = std::process::Command::new(sleeper()?);
        cmd.arg("infinity")
            .env_clear()
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let hook = move || -> io::Result<()> {
            // A session of its own: no terminal signal of the broker's reaches it.
            rustix::process::setsid()?;
            // SAFETY: no CLONE_FILES: this single-threaded child keeps its one fd table.
            unsafe {
                rustix::thread::unshare_unsafe(UnshareFlags::NEWUSER | UnshareFlags::NEWNET)
            }?;
            loopback_up()
        };
        use std::os::unix::process::CommandExt;
        // SAFETY: the hook only makes async-signal-safe calls and allocates nothing (raw
        // syscalls through rustix and libc); it runs in the child between fork and exec.
        unsafe {
            cmd.pre_exec(hook);
        }
        let child = cmd.spawn()?;
        let pid = child.id();
        let pidfd = crate::process::pidfd_open(pid)?;
        drop(child);
        let write = |file: &str, text: String| -> io::Result<()> {
            std::fs::write(format!("/proc/{pid}/{file}"), text)
                .map_err(|e| io::Error::new(e.kind(), format!("writing /proc/{pid}/{file}: {e}")))
        };
        let open_ns = |kind: &str| -> io::Result<OwnedFd> {
            Ok(std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))?.into())
        };
        let set_up = || -> io::Result<(OwnedFd, OwnedFd)> {
            if !rustix::process::geteuid().is_root() {
                write("setgroups", "deny".into())?;
            }
            write("uid_map", format!("{INSIDE_ID} {} 1\n", ids.uid))?;
            let mut gid_map = format!("{INSIDE_ID} {} 1\n", ids.gid);
            if let Some(g) = ids.second_gid {
                gid_map.push_str(&format!("{INSIDE_SECOND_GID} {g} 1\n"));
            }
            write("gid_map", gid_map)?;
            Ok((open_ns("user")?, open_ns("net")?))
        };
        match set_up() {
            Ok((userns, netns)) => Ok(NamespaceHolder {
                pid,
                pidfd,
                userns,
                netns,
                ids: ids.clone(),
                child: true,
                end_on_drop: true,
            }),
            Err(e) => {
                let _ = crate::process::send_signal(&pidfd, rustix::process::Signal::KILL);
                let _ = rustix::process::waitid(
                    rustix::process::WaitId::PidFd(pidfd.as_fd()),
                    rustix::process::WaitIdOptions::EXITED,
                );
                Err(e)
            }
        }
    }
}

impl NamespaceHolder {
    /// A holder a previous broker started, found again: `pidfd` must already have been checked
    /// to be that very process ([`crate::process::adopt`]). Opens its namespaces again.
    pub fn adopt(pidfd: OwnedFd, pid: u32, ids: HostIds) -> io::Result<NamespaceHolder> {
        let open_ns = |kind: &str| -> io::Result<OwnedFd> {
            Ok(std::fs::File::open(format!("/proc/{pid}/ns/{kind}"))?.into())
        };
        let (userns, netns) = (open_ns("user")?, open_ns("net")?);
        // Opened through /proc/<pid>: still the same process afterwards?
        if crate::process::has_exited(&pidfd) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "the holder has exited"));
        }
        Ok(NamespaceHolder { pid, pidfd, userns, netns, ids, child: false, end_on_drop: false })
    }

    /// Lets the holder live on when this value is dropped (when the broker stops: the
    /// package's processes keep their namespaces, and the next broker adopts the holder).
    pub fn keep_on_drop(mut self) -> NamespaceHolder {
        self.end_on_drop = false;
        self
    }

    /// Kills the holder (and reaps it, if it is our child): the namespaces go with the last
    /// process in them.
    pub fn end(&self) {
        let _ = crate::process::send_signal(&self.pidfd, rustix::process::Signal::KILL);
        if self.child {
            let _ = rustix::process::waitid(
                rustix::process::WaitId::PidFd(self.pidfd.as_fd()),
                rustix::process::WaitIdOptions::EXITED,
            );
        }
    }
}

impl Drop for NamespaceHolder {
    fn drop(&mut self) {
        if self.end_on_drop {
            self.end();
        }
    }
}

/// Whether the broker is root, and so in which order the child builds its container (see the
/// module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Privilege {
    /// The broker is an ordinary user: join the package's user namespace first (uid 1000 is
    /// the broker's uid there), then create every other namespace in it.
    Unprivileged,
    /// The broker is root: create the namespaces and build the root as host root, then join
    /// the package's user namespace, where uid 1000 is the package's own host uid, and set
    /// these supplementary groups (inside gids).
    Root {
        /// `setgroups` list, as inside gids (empty: none).
        groups: Vec<rustix::process::Gid>,
    },
}

/// Everything a confined child applies between `fork` and `exec`, prepared in the parent.
#[derive(Debug)]
pub struct Confinement {
    /// The package's user namespace (a duplicate of its holder's).
    pub userns: OwnedFd,
    /// The package's network namespace (a duplicate of its holder's).
    pub netns: OwnedFd,
    /// Root or unprivileged broker.
    pub privilege: Privilege,
    /// The file system.
    pub mounts: PreparedMounts,
    /// Working directory inside (NUL-terminated).
    pub cwd: CString,
    /// Host name inside.
    pub hostname: CString,
    /// The app's umask.
    pub umask: u32,
    /// Restrictions applied in order after the file system is built, right before exec
    /// (Landlock, then seccomp).
    pub restrictions: Vec<Box<dyn ChildStep>>,
    /// The supervisor of the app's mode and attribute changes, started by the waiter before
    /// it creates the app's namespaces (the app's half is among the restrictions).
    pub supervisor: Option<crate::seccomp_notify::Supervisor>,
}

/// A restriction prepared in the parent and applied by the child with async-signal-safe calls
/// only (no allocation, no locks).
pub trait ChildStep: std::fmt::Debug + Send + Sync {
    /// Applies it to the calling (child) process.
    fn apply(&self) -> io::Result<()>;

    /// What it is, for the error that names it ("landlock: restrict_self").
    fn name(&self) -> &'static str;
}

/// The signals the waiter and init forward to the app.
pub const FORWARDED_SIGNALS: [libc::c_int; 6] =
    [libc::SIGHUP, libc::SIGINT, libc::SIGQUIT, libc::SIGTERM, libc::SIGUSR1, libc::SIGUSR2];

/// The forwarded signals and `SIGCHLD`, as a sigset (pure).
fn waited_signals() -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset only write the sigset on this stack frame, which is
    // fully initialized by sigemptyset before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED_SIGNALS.iter().chain(&[libc::SIGCHLD]) {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// `fork` without glibc's atfork handlers (`clone(SIGCHLD)`), which a child of a multithreaded
/// process may call.
///
/// # Safety
/// The caller is a single-threaded child between `fork` and `exec` and calls only
/// async-signal-safe functions in both processes afterwards.
pub(crate) unsafe fn raw_fork() -> io::Result<libc::pid_t> {
    // SAFETY: clone with only SIGCHLD and no new stack behaves as fork: the child gets a copy of
    // the address space; the pointer arguments are null and unused.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc as libc::pid_t) }
}

/// Closes every fd but `keep`. Async-signal-safe.
fn close_all_but(keep: RawFd) {
    let keep = keep as libc::c_uint;
    // SAFETY: close_range takes integers; the fds closed belong to this (forked) process, and
    // nothing in it uses them afterwards (the callers go on with `keep` only).
    unsafe {
        if keep > 0 {
            libc::syscall(libc::SYS_close_range, 0 as libc::c_uint, keep - 1, 0 as libc::c_uint);
        }
        libc::syscall(libc::SYS_close_range, keep + 1, libc::c_uint::MAX, 0 as libc::c_uint);
    }
}

/// Whether the only reader of the pipe whose write end is `fd` (the waiter) is gone.
fn waiter_gone(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: 0, revents: 0 };
    // SAFETY: poll reads and writes the one pollfd on this stack frame; timeout 0.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n == 1 && p.revents & libc::POLLERR != 0
}

fn join(fd: &OwnedFd, kind: LinkNameSpaceType) -> io::Result<()> {
    Ok(rustix::thread::move_into_link_name_space(fd.as_fd(), Some(kind))?)
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

    /// Child side (see the module documentation): join, unshare, fork init (this process stays
    /// behind as the waiter and never returns), build the root, take the app's ids, fork the
    /// app (init stays behind and never returns), restrict. Only the app returns, to exec.
    pub(crate) fn enter(&self, report: Report) -> io::Result<()> {
        let r = report;
        let root = matches!(self.privilege, Privilege::Root { .. });
        // A change of credentials the kernel does not see as a lesser one (setresuid) clears
        // the parent-death signal: each process re-arms it after its last change.
        let parent = rustix::process::getppid();
        let death_signal = rustix::process::parent_process_death_signal().ok().flatten();
        if !root {
            r.at(Step::JoinUserNamespace, join(&self.userns, LinkNameSpaceType::User))?;
        }
        r.at(Step::JoinNetworkNamespace, join(&self.netns, LinkNameSpaceType::Network))?;
        if let Some(supervisor) = &self.supervisor {
            // Outside the app's pid and mount namespaces, a child of the waiter.
            r.at(Step::StartSupervisor, supervisor.start())?;
        }
        let flags = UnshareFlags::NEWNS
            | UnshareFlags::NEWPID
            | UnshareFlags::NEWIPC
            | UnshareFlags::NEWUTS;
        // SAFETY: no CLONE_FILES: this single-threaded child keeps its one fd table.
        r.at(Step::Unshare, unsafe { rustix::thread::unshare_unsafe(flags) })?;
        let waited = waited_signals();
        // SAFETY: signal() and pthread_sigmask only change this process's signal state; the
        // sigset lives on this stack frame. SIGCHLD must not be ignored (that would reap
        // children behind the waiters' backs).
        let rc = unsafe {
            libc::signal(libc::SIGCHLD, libc::SIG_DFL);
            libc::pthread_sigmask(libc::SIG_BLOCK, &waited, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(r.fail(Step::SignalMask, io::Error::from_raw_os_error(rc)));
        }
        let (status_read, status_write) =
            r.at(Step::StatusPipe, rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC))?;
        let (status_read, status_write) = (status_read.into_raw_fd(), status_write.into_raw_fd());
        // SAFETY: this is a single-threaded forked child that goes on with async-signal-safe
        // calls only, in both processes.
        let init = r.at(Step::ForkInit, unsafe { raw_fork() })?;
        if init > 0 {
            if root {
                // Give up host root: the waiter only waits and forwards signals, which it may
                // still do in the package's namespace. Best effort (init is running already).
                let _ = join(&self.userns, LinkNameSpaceType::User);
            }
            if let Some(sig) = death_signal {
                let _ = rustix::process::set_parent_process_death_signal(Some(sig));
                if rustix::process::getppid() != parent {
                    // The broker went away meanwhile: nobody would signal us.
                    let _ = rustix::process::kill_process(
                        rustix::process::Pid::from_raw(init).expect("a positive pid"),
                        rustix::process::Signal::KILL,
                    );
                    // SAFETY: ends this forked child without running any of the parent's code.
                    unsafe { libc::_exit(1) };
                }
            }
            let _ = rustix::thread::set_name(c"appipc-waiter");
            close_all_but(status_read);
            // SAFETY: a forked child, single-threaded, never returning; see the function.
            unsafe { wait_and_mirror(init, status_read, &waited) }
        }
        // Pid 1 of the new namespace. It dies with the waiter (the signal is armed below, after
        // the last change of credentials).
        // SAFETY: closing our copy of the read end, which this process never uses.
        unsafe { libc::close(status_read) };
        let _ = rustix::thread::set_name(c"appipc-init");
        r.at(Step::Hostname, rustix::system::sethostname(self.hostname.as_bytes()))?;
        self.mounts.apply(r)?;
        if let Privilege::Root { groups } = &self.privilege {
            r.at(Step::JoinUserNamespace, join(&self.userns, LinkNameSpaceType::User))?;
            r.at(Step::SetGroups, rustix::thread::set_thread_groups(groups))?;
        }
        let uid = rustix::process::Uid::from_raw(INSIDE_ID);
        let gid = rustix::process::Gid::from_raw(INSIDE_ID);
        r.at(Step::SetGid, rustix::thread::set_thread_res_gid(gid, gid, gid))?;
        r.at(Step::SetUid, rustix::thread::set_thread_res_uid(uid, uid, uid))?;
        let none = rustix::thread::CapabilitySet::empty();
        let caps =
            rustix::thread::CapabilitySets { effective: none, permitted: none, inheritable: none };
        r.at(Step::DropCapabilities, rustix::thread::set_capabilities(None, caps))?;
        r.at(
            Step::NotDumpable,
            rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable),
        )?;
        r.at(
            Step::ParentDeathSignal,
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL)),
        )?;
        // The waiter may have died before that: then the read end of the status pipe is closed.
        if waiter_gone(status_write) {
            return Err(r.fail(Step::ParentDeathSignal, io::Error::from_raw_os_error(libc::ESRCH)));
        }
        // SAFETY: as for the first fork.
        let app = r.at(Step::ForkApp, unsafe { raw_fork() })?;
        if app > 0 {
            close_all_but(status_write);
            // SAFETY: a forked child, single-threaded, never returning; see the function.
            unsafe { init_loop(app, status_write, &waited) }
        }
        // The app, pid 2.
        // SAFETY: closing our copy of the write end, which the app never uses.
        unsafe { libc::close(status_write) };
        r.at(Step::NewSession, rustix::process::setsid())?;
        for fd in 0..3 {
            // SAFETY: fds 0–2 are the app's stdio, open for the whole call; borrowing them
            // briefly does not close or move them.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            if rustix::termios::isatty(fd) {
                // A terminal that is another session's already (the user's own, handed in by
                // some client) is refused with EPERM: the app then simply has none.
                let _ = rustix::process::ioctl_tiocsctty(fd);
                break;
            }
        }
        rustix::process::umask(Mode::from_raw_mode(self.umask));
        let empty = {
            // SAFETY: sigemptyset initializes the set on this stack frame.
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                set
            }
        };
        // SAFETY: the app starts with default dispositions for the forwarded signals (an
        // ignored one would stay ignored across exec) and an empty mask.
        let rc = unsafe {
            for s in FORWARDED_SIGNALS {
                libc::signal(s, libc::SIG_DFL);
            }
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(r.fail(Step::AppSignals, io::Error::from_raw_os_error(rc)));
        }
        r.at(Step::WorkingDirectory, rustix::process::chdir(self.cwd.as_c_str()))?;
        for (i, step) in self.restrictions.iter().enumerate() {
            r.at(Step::Restriction(i), step.apply())?;
        }
        Ok(())
    }
}

/// Exits as `status` (a `waitpid` status) says: with its code, or killed by its signal.
///
/// # Safety
/// Called in a forked child; never returns.
unsafe fn mirror(status: libc::c_int) -> ! {
    // SAFETY: calls on integers only.
    unsafe {
        if libc::WIFSIGNALED(status) {
            let sig = libc::WTERMSIG(status);
            libc::signal(sig, libc::SIG_DFL);
            libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, sig);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::kill(libc::getpid(), sig);
            libc::_exit(128 + sig);
        }
        libc::_exit(libc::WEXITSTATUS(status));
    }
}

/// The next of the blocked `waited` signals (0 when interrupted). Async-signal-safe.
fn next_signal(waited: &libc::sigset_t) -> libc::c_int {
    // SAFETY: sigwaitinfo reads the set, borrowed for the call, and writes nothing (null info).
    unsafe { libc::sigwaitinfo(waited, std::ptr::null_mut()) }.max(0)
}

/// Sends `sig` to `to` (best effort: it may have just exited). Async-signal-safe.
fn forward(to: rustix::process::Pid, sig: libc::c_int) {
    if let Some(sig) = rustix::process::Signal::from_named_raw(sig) {
        let _ = rustix::process::kill_process(to, sig);
    }
}

/// Ends this forked child at once, running none of the parent's code.
fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit takes an integer and never returns; no destructor or atexit handler runs.
    unsafe { libc::_exit(code) }
}

/// The waiter outside the new pid namespace: forwards signals to init, waits for it, and ends
/// as the app ended (the status init passes through `status_read`), or as init did.
///
/// # Safety
/// Called in a forked child with `waited` blocked, `status_read` an open fd of this process;
/// never returns.
unsafe fn wait_and_mirror(init: libc::pid_t, status_read: RawFd, waited: &libc::sigset_t) -> ! {
    use rustix::process::{Pid, WaitOptions, waitpid};
    let Some(init) = Pid::from_raw(init) else { exit_now(127) };
    let mut status;
    loop {
        match next_signal(waited) {
            libc::SIGCHLD => match waitpid(Some(init), WaitOptions::NOHANG) {
                Ok(Some((_, s))) => {
                    status = s.as_raw();
                    break;
                }
                Ok(None) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => exit_now(127),
            },
            0 => {}
            sig => forward(init, sig),
        }
    }
    // SAFETY: `status_read` is open in this process (the caller's contract) and stays open
    // for the borrow.
    let read_end = unsafe { std::os::fd::BorrowedFd::borrow_raw(status_read) };
    let mut buf = [0u8; 4];
    if rustix::io::read(read_end, &mut buf) == Ok(4) {
        status = libc::c_int::from_ne_bytes(buf);
    }
    // SAFETY: a forked child, never returning (the caller's contract).
    unsafe { mirror(status) }
}

/// Init (pid 1): forwards signals to the app, reaps every child, and when the app has ended
/// hands its status to the waiter and exits (which ends the namespace).
///
/// # Safety
/// Called in a forked child with `waited` blocked, `status_write` an open fd of this process;
/// never returns.
unsafe fn init_loop(app: libc::pid_t, status_write: RawFd, waited: &libc::sigset_t) -> ! {
    use rustix::process::{Pid, WaitOptions, wait};
    let Some(app) = Pid::from_raw(app) else { exit_now(127) };
    // SAFETY: `status_write` is open in this process (the caller's contract).
    let write_end = unsafe { std::os::fd::BorrowedFd::borrow_raw(status_write) };
    loop {
        match next_signal(waited) {
            // Any child (`wait`, pid -1: the app has a session and process group of its own).
            libc::SIGCHLD => loop {
                match wait(WaitOptions::NOHANG) {
                    Ok(Some((pid, status))) if pid == app => {
                        let _ = rustix::io::write(write_end, &status.as_raw().to_ne_bytes());
                        exit_now(0);
                    }
                    Ok(Some(_)) | Err(rustix::io::Errno::INTR) => {}
                    Ok(None) => break,
                    // No child at all: the app is gone unseen; end with no status to pass on.
                    Err(_) => exit_now(127),
                }
            },
            0 => {}
            sig => forward(app, sig),
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Privilege::Unprivileged => f.write_str("unprivileged broker"),
            Privilege::Root { .. } => f.write_str("root broker"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// The host ids the test containers map uid 1000 to: as root, `nobody` (the point of the
    /// root model is that the app is not root); otherwise our own.
    fn test_ids() -> HostIds {
        if rustix::process::geteuid().is_root() {
            HostIds { uid: 65534, gid: 65534, second_gid: None }
        } else {
            HostIds::own()
        }
    }

    fn privilege() -> Privilege {
        if rustix::process::geteuid().is_root() {
            Privilege::Root { groups: Vec::new() }
        } else {
            Privilege::Unprivileged
        }
    }

    /// A folder the app may write to (owned by its host uid).
    pub(super) fn own_folder() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        let ids = test_ids();
        std::os::unix::fs::chown(d.path(), Some(ids.uid), Some(ids.gid)).unwrap();
        d
    }

    fn bind(source: &Path, target: &Path, access: BindAccess) -> MountEntry {
        MountEntry::Bind { source: source.into(), target: target.into(), access }
    }

    fn base_entries(tmp: &Path) -> Vec<MountEntry> {
        let mut entries = system_entries();
        entries.push(bind(tmp, Path::new("/tmp"), BindAccess::ReadWrite));
        entries.push(MountEntry::Tmpfs { target: "/dev".into() });
        for d in ["/dev/null", "/dev/full"] {
            entries.push(bind(Path::new(d), Path::new(d), BindAccess::Device));
        }
        entries.push(MountEntry::Proc { target: "/proc".into() });
        entries
    }

    /// `/usr`, the top-level links and the dynamic linker's cache.
    pub(super) fn system_entries() -> Vec<MountEntry> {
        let mut entries = vec![bind(Path::new("/usr"), Path::new("/usr"), BindAccess::ReadOnly)];
        for top in ["/bin", "/sbin", "/lib", "/lib64"] {
            match std::fs::read_link(top) {
                Ok(t) => entries.push(MountEntry::Symlink { target: t, link: top.into() }),
                Err(_) => entries.push(bind(Path::new(top), Path::new(top), BindAccess::ReadOnly)),
            }
        }
        let cache = Path::new("/etc/ld.so.cache");
        entries.push(bind(cache, cache, BindAccess::ReadOnly));
        entries
    }

    pub(super) fn run_confined_pub(
        script: &str,
        entries: Vec<MountEntry>,
    ) -> (Option<i32>, String) {
        run_confined_with(script, entries, |_| ())
    }

    fn run_confined(script: &str) -> (Option<i32>, String) {
        let tmp = own_folder();
        run_confined_with(script, base_entries(tmp.path()), |_| ())
    }

    fn confinement(entries: &[MountEntry], holder: &NamespaceHolder) -> Confinement {
        let (cwd, hostname) = Confinement::names(Path::new("/"), "appcontainer").unwrap();
        Confinement {
            userns: holder.userns.try_clone().unwrap(),
            netns: holder.netns.try_clone().unwrap(),
            privilege: privilege(),
            mounts: PreparedMounts::prepare(entries).unwrap(),
            cwd,
            hostname,
            umask: 0o077,
            restrictions: Vec::new(),
            supervisor: None,
        }
    }

    fn run_confined_with(
        script: &str,
        entries: Vec<MountEntry>,
        meanwhile: impl FnOnce(&crate::process::Spawned),
    ) -> (Option<i32>, String) {
        let holder = NamespaceHolder::start(&test_ids()).expect("namespace holder");
        let conf = confinement(&entries, &holder);
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
            "echo uid=$(id -u); hostname; ls /; ls /proc | grep -c '^[0-9]'; echo pid=$$ ppid=$PPID; \
             cat /proc/1/comm; touch /usr/x 2>&1 || echo usr-readonly; \
             touch /tmp/ok && echo tmp-writable; echo hi > /dev/null && echo null-writable; \
             touch /dev/null 2>&1 || echo null-times-fixed; \
             cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo no-sys; \
             grep -E ' /(usr|tmp|dev/null) ' /proc/self/mounts; exit 3",
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
        assert!(out.contains("pid=2 ppid=1"), "pid 2 of its own namespace, under init: {out}");
        assert!(out.contains("appipc-init"), "{out}");
        for expected in
            ["usr-readonly", "tmp-writable", "null-writable", "null-times-fixed", "no-sys"]
        {
            assert!(out.contains(expected), "{expected}: {out}");
        }
        let mounts: Vec<&str> = out.lines().filter(|l| l.contains(" /")).collect();
        let opts = |target: &str| -> String {
            let line = mounts.iter().find(|l| l.split(' ').nth(1) == Some(target));
            line.and_then(|l| l.split(' ').nth(3)).unwrap_or_default().to_owned()
        };
        let has = |target: &str, flags: &[&str]| {
            let o = opts(target);
            let set: Vec<&str> = o.split(',').collect();
            flags.iter().all(|f| set.contains(f))
        };
        assert!(has("/usr", &["ro", "nosuid", "nodev"]), "{out}");
        assert!(has("/tmp", &["rw", "nosuid", "nodev", "noexec"]), "{out}");
        assert!(has("/dev/null", &["ro", "nosuid", "noexec"]), "{out}");
        assert!(!opts("/dev/null").split(',').any(|f| f == "nodev"), "{out}");
    }

    /// The host pids of the children of `pid`.
    fn children(pid: u32) -> Vec<u32> {
        let path = format!("/proc/{pid}/task/{pid}/children");
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.split_whitespace().filter_map(|p| p.parse().ok()).collect()
    }

    #[test]
    fn killing_the_waiter_kills_the_app_and_reports_the_signal() {
        let tmp = own_folder();
        let entries = base_entries(tmp.path());
        let ready = tmp.path().join("ready");
        let mut app_pidfd = None;
        let script = "echo started; touch /tmp/ready; exec sleep 3600";
        let (code, out) = run_confined_with(script, entries, |child| {
            while !ready.exists() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let init = children(child.pid);
            let app = init.first().map(|i| children(*i)).unwrap_or_default();
            assert_eq!((init.len(), app.len()), (1, 1), "waiter -> init -> app");
            app_pidfd = Some(crate::process::pidfd_open(app[0]).unwrap());
            crate::process::send_signal(&child.pidfd, rustix::process::Signal::KILL).unwrap();
        });
        // Reading stdout ended: every writer, the app included, is gone (else this test would
        // wait for the hour of the sleep).
        assert_eq!(code, Some(-9), "{out}");
        assert!(out.contains("started"), "{out}");
        let app = app_pidfd.unwrap();
        let mut p = [rustix::event::PollFd::new(&app, rustix::event::PollFlags::IN)];
        assert_eq!(rustix::event::poll(&mut p, None).unwrap(), 1, "the app has exited");
    }

    #[test]
    fn signals_to_the_waiter_reach_the_app() {
        // The app is not pid 1, so SIGTERM with its default disposition ends it, and the
        // waiter ends the same way.
        let tmp = own_folder();
        let entries = base_entries(tmp.path());
        let ready = tmp.path().join("ready");
        let (code, out) = run_confined_with("touch /tmp/ready; exec sleep 30", entries, |child| {
            while !ready.exists() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            crate::process::send_signal(&child.pidfd, rustix::process::Signal::TERM).unwrap();
        });
        assert_eq!(code, Some(-15), "{out}");
    }

    #[test]
    fn a_failing_step_is_named() {
        let tmp = own_folder();
        let mut entries = base_entries(tmp.path());
        // A bind onto a path inside a read-only bind cannot get its mount point.
        entries.push(bind(
            Path::new("/etc/hostname"),
            Path::new("/usr/appipc-x/y"),
            BindAccess::ReadOnly,
        ));
        let holder = NamespaceHolder::start(&test_ids()).expect("namespace holder");
        let conf = confinement(&entries, &holder);
        let err = crate::process::spawn(crate::process::SpawnRequest {
            program: "/bin/true".into(),
            cwd: "/".into(),
            confinement: Some(std::sync::Arc::new(conf)),
            ..Default::default()
        })
        .expect_err("the mount point cannot be made");
        let text = err.to_string();
        assert!(
            text.starts_with("app container: creating the folder /usr/appipc-x failed: EROFS"),
            "{text}"
        );
        assert!(matches!(err, crate::process::SpawnError::Confinement(_)), "{err:?}");

        // A working directory that does not exist inside.
        let entries = base_entries(tmp.path());
        let mut conf = confinement(&entries, &holder);
        conf.cwd = c"/nonexistent-appipc".into();
        let err = crate::process::spawn(crate::process::SpawnRequest {
            program: "/bin/true".into(),
            cwd: "/".into(),
            confinement: Some(std::sync::Arc::new(conf)),
            ..Default::default()
        })
        .expect_err("no such folder");
        assert_eq!(
            err.to_string(),
            "app container: changing to \"/nonexistent-appipc\" failed: ENOENT (No such file or directory)"
        );
    }
}

#[cfg(test)]
mod nested_binds {
    use super::{BindAccess, MountEntry};

    #[test]
    fn binds_under_tmp_survive_a_tmp_bind() {
        let base = super::tests::own_folder();
        let data = base.path().join("data");
        let inst = base.path().join("inst");
        std::fs::create_dir_all(data.join("TempState")).unwrap();
        std::fs::create_dir_all(&inst).unwrap();
        std::fs::write(inst.join("marker"), "hi").unwrap();
        let mut extra = super::tests::system_entries();
        extra.push(MountEntry::Bind {
            source: data.join("TempState"),
            target: "/tmp".into(),
            access: BindAccess::ReadWrite,
        });
        extra.push(MountEntry::Bind {
            source: inst.clone(),
            target: inst.clone(),
            access: BindAccess::ReadOnly,
        });
        let script = format!("cat {}/marker", inst.display());
        let (code, out) = super::tests::run_confined_pub(&script, extra);
        assert_eq!(code, Some(0), "{out}");
        assert_eq!(out, "hi");
    }
}
