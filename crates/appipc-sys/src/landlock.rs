//! Landlock for the app container: filesystem rules, scopes for abstract unix sockets and
//! signals, TCP bind/connect rules.
//!
//! Prepared in the parent, applied in the forked child:
//! * [`prepare_with`] asks the kernel for its Landlock ABI, decides which rights to handle
//!   ([`Strictness::Required`] refuses when the kernel lacks something the plan relies on,
//!   [`Strictness::BestEffort`] takes what there is and says what is missing), creates the
//!   ruleset and adds one rule per existing path (opened `O_PATH`; missing paths are skipped
//!   and listed in the [`Report`]);
//! * [`PreparedLandlock::restrict_self`] runs in the child before `exec`: `no_new_privs` and
//!   `landlock_restrict_self` on the prepared fd, two raw syscalls, no allocation, no lock.
//!
//! Rules bind to inodes, not to path names: a ruleset built from host paths keeps working
//! after the child bind-mounts those directories into a new root and pivots into it. Mounts
//! the child creates itself (a fresh `/proc`, a tmpfs `/tmp`) have new inodes that no host
//! path reaches; name them (as seen from inside the new root) with
//! [`PreparedLandlock::allow_in_child`] in the parent, and `restrict_self` adds their rules in
//! the child just before restricting. A Landlock domain forbids `mount` and `pivot_root`, so
//! the order in the child is: namespaces and mounts, then [`PreparedLandlock::restrict_self`],
//! then the seccomp filter, then `exec`. Both implement [`ChildStep`] for the launcher.
//!
//! The three Landlock syscalls are called directly (they are small and stable), rather than
//! through the `landlock` crate: the report needs the kernel's ABI version, which that crate
//! deliberately keeps to itself, and the child-side steps must be raw syscalls anyway.
//!
//! What Landlock does not do here (ABI 7): it does not stop `connect()` to a *pathname* unix
//! socket (the mount namespace must hide those), and its TCP rules match ports, not
//! addresses, and do not cover UDP (the per-package network namespace is the real barrier).

use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

use crate::sandbox::ChildStep;

/// What a sandboxed process may do below some paths, and which scopes apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LandlockRules {
    /// Read and execute below these paths (directories or single files): system folders,
    /// the package's install folder, the bits of `/etc` it needs.
    pub read_exec: Vec<PathBuf>,
    /// Everything below these paths but execute and making character or block devices
    /// (directories or single files such as `/dev/null`): the app's own data folders. On a
    /// file this is read, write, truncate and device ioctls.
    pub read_write: Vec<PathBuf>,
    /// Forbid connecting to abstract unix sockets created outside the sandbox (ABI 6).
    pub scope_abstract_unix: bool,
    /// Forbid signalling processes outside the sandbox (ABI 6).
    pub scope_signal: bool,
    /// Deny TCP bind and connect, except to the ports listed below (ABI 4).
    pub restrict_tcp: bool,
    /// With `restrict_tcp`: ports the process may bind.
    pub tcp_bind: Vec<u16>,
    /// With `restrict_tcp`: ports the process may connect to (any address).
    pub tcp_connect: Vec<u16>,
}

/// Whether a kernel lacking part of the plan refuses the launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strictness {
    /// Refuse unless the kernel enforces filesystem rights of ABI 1–3 and, when asked for,
    /// the scopes (ABI 6) and TCP rules (ABI 4). Device ioctl control (ABI 5) is always best
    /// effort, and reported.
    Required,
    /// Enforce what the kernel supports (possibly nothing) and report the rest. For an
    /// explicit, loudly logged weak-sandbox opt-in only.
    BestEffort,
}

/// One Landlock feature the plan may rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Feature {
    /// Filesystem access control at all (ABI 1).
    Filesystem,
    /// Control of cross-directory renames and links (ABI 2).
    Refer,
    /// Control of truncation (ABI 3).
    Truncate,
    /// TCP bind and connect rules (ABI 4).
    Tcp,
    /// Control of ioctls on devices (ABI 5).
    IoctlDev,
    /// Scoping of abstract unix sockets (ABI 6).
    ScopeAbstractUnix,
    /// Scoping of signals (ABI 6).
    ScopeSignal,
}

impl Feature {
    /// The first Landlock ABI version that has it.
    pub fn min_abi(self) -> u32 {
        match self {
            Feature::Filesystem => 1,
            Feature::Refer => 2,
            Feature::Truncate => 3,
            Feature::Tcp => 4,
            Feature::IoctlDev => 5,
            Feature::ScopeAbstractUnix | Feature::ScopeSignal => 6,
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Feature::Filesystem => "filesystem access control",
            Feature::Refer => "rename/link control (refer)",
            Feature::Truncate => "truncate control",
            Feature::Tcp => "tcp bind/connect rules",
            Feature::IoctlDev => "device ioctl control",
            Feature::ScopeAbstractUnix => "abstract unix socket scoping",
            Feature::ScopeSignal => "signal scoping",
        };
        write!(f, "{name} (landlock abi {})", self.min_abi())
    }
}

/// Why Landlock could not be prepared.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LandlockError {
    /// The kernel lacks a feature the plan requires.
    #[error("landlock: the kernel lacks {feature}; it has abi {abi}")]
    Unsupported {
        /// The first missing feature.
        feature: Feature,
        /// The kernel's ABI version (0: Landlock absent or disabled).
        abi: u32,
    },
    /// `landlock_create_ruleset` failed.
    #[error("landlock: create_ruleset failed: {0}")]
    CreateRuleset(#[source] io::Error),
    /// Opening a rule's path failed for a reason other than its absence.
    #[error("landlock: opening {path} for a rule failed: {source}")]
    OpenPath {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `landlock_add_rule` for a path failed.
    #[error("landlock: add_rule for {path} failed: {source}")]
    AddPathRule {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// `landlock_add_rule` for a TCP port failed.
    #[error("landlock: add_rule for tcp port {port} failed: {source}")]
    AddPortRule {
        /// The port.
        port: u16,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A set of Landlock filesystem access rights (`LANDLOCK_ACCESS_FS_*`).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct FsRights(u64);

const FS_NAMES: [&str; 16] = [
    "execute",
    "write_file",
    "read_file",
    "read_dir",
    "remove_dir",
    "remove_file",
    "make_char",
    "make_dir",
    "make_reg",
    "make_sock",
    "make_fifo",
    "make_block",
    "make_sym",
    "refer",
    "truncate",
    "ioctl_dev",
];

impl FsRights {
    /// The raw bits.
    pub fn bits(self) -> u64 {
        self.0
    }

    /// The rights' names (`read_file`, `truncate`, …).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        FS_NAMES.iter().enumerate().filter(move |(i, _)| self.0 & (1 << i) != 0).map(|(_, n)| *n)
    }
}

impl fmt::Debug for FsRights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

impl fmt::Display for FsRights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.names().enumerate() {
            if i > 0 {
                f.write_str("|")?;
            }
            f.write_str(n)?;
        }
        Ok(())
    }
}

/// What the kernel enforces for a prepared ruleset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The kernel's Landlock ABI version (0: absent or disabled).
    pub abi: u32,
    /// The filesystem rights the ruleset handles (denied unless a rule grants them).
    pub handled_fs: FsRights,
    /// Abstract unix sockets are scoped.
    pub scope_abstract_unix: bool,
    /// Signals are scoped.
    pub scope_signal: bool,
    /// TCP bind/connect are handled.
    pub tcp_restricted: bool,
    /// Features the rules asked for (or that would tighten them) that the kernel lacks.
    pub not_enforced: Vec<Feature>,
    /// Rule paths that did not exist (no rule was added for them).
    pub skipped_paths: Vec<PathBuf>,
}

impl Report {
    /// Whether Landlock restricts anything at all.
    pub fn enforced(&self) -> bool {
        self.abi > 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.enforced() {
            return f.write_str("landlock: not enforced (absent from the kernel)");
        }
        write!(f, "landlock abi {}: fs {}", self.abi, self.handled_fs)?;
        let mut scopes = Vec::new();
        if self.scope_abstract_unix {
            scopes.push("abstract-unix");
        }
        if self.scope_signal {
            scopes.push("signal");
        }
        if !scopes.is_empty() {
            write!(f, "; scoped {}", scopes.join(","))?;
        }
        if self.tcp_restricted {
            f.write_str("; tcp bind/connect restricted")?;
        }
        if !self.not_enforced.is_empty() {
            let missing: Vec<String> = self.not_enforced.iter().map(|m| m.to_string()).collect();
            write!(f, "; not enforced: {}", missing.join(", "))?;
        }
        Ok(())
    }
}

/// How a path is opened up, for [`PreparedLandlock::allow_in_child`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathAccess {
    /// As [`LandlockRules::read_exec`].
    ReadExec,
    /// As [`LandlockRules::read_write`].
    ReadWrite,
}

// The uapi (include/uapi/linux/landlock.h).
const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;
const RULE_NET_PORT: u32 = 2;
const FS_EXECUTE: u64 = 1 << 0;
const FS_WRITE_FILE: u64 = 1 << 1;
const FS_READ_FILE: u64 = 1 << 2;
const FS_READ_DIR: u64 = 1 << 3;
const FS_MAKE_CHAR: u64 = 1 << 6;
const FS_MAKE_BLOCK: u64 = 1 << 11;
const FS_REFER: u64 = 1 << 13;
const FS_TRUNCATE: u64 = 1 << 14;
const FS_IOCTL_DEV: u64 = 1 << 15;
/// The rights of ABI 1 (execute … make_sym).
const FS_ABI1: u64 = (1 << 13) - 1;
/// The rights that apply to a file (the others only make sense on a directory).
const FS_FILE: u64 = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV;
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

/// The kernel's Landlock ABI version; 0 when Landlock is not built in or not enabled.
pub fn abi_version() -> u32 {
    // SAFETY: with a null attr, size 0 and LANDLOCK_CREATE_RULESET_VERSION the kernel reads
    // no memory and returns the ABI version (or an error: ENOSYS/EOPNOTSUPP without Landlock).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(rc).unwrap_or(0)
}

/// What to ask the kernel for, decided from the rules and its ABI (pure).
#[derive(Debug, PartialEq, Eq)]
struct Negotiated {
    fs: u64,
    net: u64,
    scoped: u64,
    not_enforced: Vec<Feature>,
}

fn negotiate(
    rules: &LandlockRules,
    abi: u32,
    strictness: Strictness,
) -> Result<Negotiated, LandlockError> {
    let mut n = Negotiated { fs: 0, net: 0, scoped: 0, not_enforced: Vec::new() };
    let want = |feature: Feature, required: bool, n: &mut Negotiated| {
        if abi >= feature.min_abi() {
            Ok(true)
        } else if required && strictness == Strictness::Required {
            Err(LandlockError::Unsupported { feature, abi })
        } else {
            n.not_enforced.push(feature);
            Ok(false)
        }
    };
    if want(Feature::Filesystem, true, &mut n)? {
        n.fs |= FS_ABI1;
    }
    if want(Feature::Refer, true, &mut n)? {
        n.fs |= FS_REFER;
    }
    if want(Feature::Truncate, true, &mut n)? {
        n.fs |= FS_TRUNCATE;
    }
    if want(Feature::IoctlDev, false, &mut n)? {
        n.fs |= FS_IOCTL_DEV;
    }
    if rules.restrict_tcp && want(Feature::Tcp, true, &mut n)? {
        n.net = NET_BIND_TCP | NET_CONNECT_TCP;
    }
    if rules.scope_abstract_unix && want(Feature::ScopeAbstractUnix, true, &mut n)? {
        n.scoped |= SCOPE_ABSTRACT_UNIX;
    }
    if rules.scope_signal && want(Feature::ScopeSignal, true, &mut n)? {
        n.scoped |= SCOPE_SIGNAL;
    }
    Ok(n)
}

/// The rights a rule grants on a directory (`is_dir`) or a file, within what is handled.
/// Read-write grants every right but execute and making character or block devices: an app
/// container does not run code from its own writable folders, nor make devices there.
fn rights_for(access: PathAccess, is_dir: bool, handled: u64) -> u64 {
    let wanted = match access {
        PathAccess::ReadExec => FS_EXECUTE | FS_READ_FILE | FS_READ_DIR,
        PathAccess::ReadWrite => !(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK),
    };
    let applicable = if is_dir { u64::MAX } else { FS_FILE };
    wanted & applicable & handled
}

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(rc) }
}

/// `landlock_add_rule(ruleset, LANDLOCK_RULE_PATH_BENEATH, …)`. Async-signal-safe.
fn add_path_rule(ruleset: libc::c_int, parent: libc::c_int, allowed: u64) -> io::Result<()> {
    let attr = PathBeneathAttr { allowed_access: allowed, parent_fd: parent };
    // SAFETY: `attr` is a packed landlock_path_beneath_attr on this stack frame, alive for the
    // call; the kernel only reads it. `ruleset` and `parent` are open fds of this process
    // (the kernel checks them).
    check(unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset,
            RULE_PATH_BENEATH,
            &raw const attr,
            0 as libc::c_uint,
        )
    })
    .map(drop)
}

/// A ruleset ready to be enforced in a child, and what it enforces.
///
/// Prepare one per launch: the child-side rules of [`allow_in_child`](Self::allow_in_child)
/// are added to the ruleset object shared with the parent (fork shares the open file
/// description), so a ruleset reused for a second child would carry the first child's
/// additions.
#[derive(Debug)]
pub struct PreparedLandlock {
    fd: Option<OwnedFd>,
    handled_fs: u64,
    report: Report,
    in_child: Vec<(CString, PathAccess)>,
}

/// [`prepare_with`] with [`Strictness::Required`].
pub fn prepare(rules: &LandlockRules) -> Result<PreparedLandlock, LandlockError> {
    prepare_with(rules, Strictness::Required)
}

/// Builds the ruleset for `rules` in the calling (parent) process. Paths that do not exist are
/// skipped and listed in the report; symlinks are followed (a rule binds to the target).
pub fn prepare_with(
    rules: &LandlockRules,
    strictness: Strictness,
) -> Result<PreparedLandlock, LandlockError> {
    let abi = abi_version();
    let n = negotiate(rules, abi, strictness)?;
    let mut report = Report {
        abi,
        handled_fs: FsRights(n.fs),
        scope_abstract_unix: n.scoped & SCOPE_ABSTRACT_UNIX != 0,
        scope_signal: n.scoped & SCOPE_SIGNAL != 0,
        tcp_restricted: n.net != 0,
        not_enforced: n.not_enforced,
        skipped_paths: Vec::new(),
    };
    if abi == 0 {
        // Only reachable with BestEffort: nothing to create.
        return Ok(PreparedLandlock { fd: None, handled_fs: 0, report, in_child: Vec::new() });
    }
    let attr = RulesetAttr { handled_access_fs: n.fs, handled_access_net: n.net, scoped: n.scoped };
    // SAFETY: `attr` is a landlock_ruleset_attr alive for the call and its size is passed
    // (older kernels accept the larger struct as long as the fields they lack are zero, which
    // negotiate() guarantees). On success the kernel returns a new close-on-exec fd that
    // nothing else owns.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &raw const attr,
            std::mem::size_of::<RulesetAttr>(),
            0 as libc::c_uint,
        )
    };
    let raw = check(rc).map_err(LandlockError::CreateRuleset)?;
    // SAFETY: `raw` is the fresh fd returned just above; ownership moves to the OwnedFd.
    let fd = unsafe { OwnedFd::from_raw_fd(raw as libc::c_int) };

    let paths = rules
        .read_exec
        .iter()
        .map(|p| (p, PathAccess::ReadExec))
        .chain(rules.read_write.iter().map(|p| (p, PathAccess::ReadWrite)));
    for (path, access) in paths {
        let opened = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty());
        let parent = match opened {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                report.skipped_paths.push(path.clone());
                continue;
            }
            Err(e) => return Err(LandlockError::OpenPath { path: path.clone(), source: e.into() }),
        };
        let stat = rustix::fs::fstat(&parent)
            .map_err(|e| LandlockError::OpenPath { path: path.clone(), source: e.into() })?;
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        let allowed = rights_for(access, is_dir, n.fs);
        add_path_rule(fd.as_raw_fd(), parent.as_raw_fd(), allowed)
            .map_err(|source| LandlockError::AddPathRule { path: path.clone(), source })?;
    }
    if n.net != 0 {
        let ports = rules
            .tcp_bind
            .iter()
            .map(|p| (*p, NET_BIND_TCP))
            .chain(rules.tcp_connect.iter().map(|p| (*p, NET_CONNECT_TCP)));
        for (port, allowed) in ports {
            let attr = NetPortAttr { allowed_access: allowed, port: u64::from(port) };
            // SAFETY: `attr` is a landlock_net_port_attr alive for the call, only read by the
            // kernel; `fd` is the ruleset fd owned above.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_landlock_add_rule,
                    fd.as_raw_fd(),
                    RULE_NET_PORT,
                    &raw const attr,
                    0 as libc::c_uint,
                )
            };
            check(rc).map_err(|source| LandlockError::AddPortRule { port, source })?;
        }
    }
    Ok(PreparedLandlock { fd: Some(fd), handled_fs: n.fs, report, in_child: Vec::new() })
}

impl PreparedLandlock {
    /// What the kernel will enforce.
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Names a path whose rule the child adds itself, right before restricting: for mounts
    /// the child makes (a fresh `/proc`, a tmpfs `/tmp`), whose inodes no host path reaches.
    /// `path` is as the child sees it then (inside its new root). If it does not exist in the
    /// child, [`restrict_self`](Self::restrict_self) fails (`ENOENT`): the launch fails closed.
    pub fn allow_in_child(&mut self, path: &Path, access: PathAccess) -> Result<(), LandlockError> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| LandlockError::OpenPath {
            path: path.to_path_buf(),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
        self.in_child.push((c, access));
        Ok(())
    }

    /// Opens `path` (`O_PATH`, following symlinks) and adds a rule for it. Async-signal-safe:
    /// `open`, `fstat`, `landlock_add_rule`, `close`; no allocation.
    fn add_path_in_child(&self, path: &CStr, access: PathAccess) -> io::Result<()> {
        let Some(ruleset) = &self.fd else { return Ok(()) };
        let parent = rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
        let stat = rustix::fs::fstat(&parent)?;
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        add_path_rule(
            ruleset.as_raw_fd(),
            parent.as_raw_fd(),
            rights_for(access, is_dir, self.handled_fs),
        )
    }

    /// In the child, before `exec`: adds the rules of [`allow_in_child`](Self::allow_in_child),
    /// sets `no_new_privs` (idempotent) and enforces the ruleset on the calling thread, hence
    /// on the program it execs and every descendant. Async-signal-safe: raw syscalls over data
    /// prepared in the parent, no allocation. Without Landlock (best effort on an old kernel)
    /// only `no_new_privs` is set.
    pub fn restrict_self(&self) -> io::Result<()> {
        for (path, access) in &self.in_child {
            self.add_path_in_child(path, *access)?;
        }
        crate::seccomp::set_no_new_privs()?;
        let Some(fd) = &self.fd else { return Ok(()) };
        // SAFETY: `fd` is the ruleset fd owned by `self`, open for the call; flags 0. The
        // call reads no memory of this process.
        let rc = unsafe {
            libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0 as libc::c_uint)
        };
        check(rc).map(drop)
    }
}

impl ChildStep for PreparedLandlock {
    /// [`PreparedLandlock::restrict_self`].
    fn apply(&self) -> io::Result<()> {
        self.restrict_self()
    }

    fn name(&self) -> &'static str {
        "landlock: restrict_self"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe;
    use std::ffi::CString;
    use std::path::Path;

    fn cstr(p: &Path) -> CString {
        CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
    }

    #[test]
    fn negotiation_follows_the_abi_and_strictness() {
        let rules = LandlockRules {
            scope_abstract_unix: true,
            scope_signal: true,
            restrict_tcp: true,
            ..LandlockRules::default()
        };
        let req = Strictness::Required;
        for (abi, missing) in [
            (0, Feature::Filesystem),
            (1, Feature::Refer),
            (2, Feature::Truncate),
            (3, Feature::Tcp),
            (4, Feature::ScopeAbstractUnix),
            (5, Feature::ScopeAbstractUnix),
        ] {
            match negotiate(&rules, abi, req) {
                Err(LandlockError::Unsupported { feature, abi: a }) => {
                    assert_eq!((feature, a), (missing, abi));
                    let msg = LandlockError::Unsupported { feature, abi: a }.to_string();
                    assert!(msg.contains("landlock abi"), "{msg}");
                }
                other => panic!("abi {abi}: {other:?}"),
            }
        }
        let n = negotiate(&rules, 7, req).unwrap();
        assert_eq!(n.fs, (1 << 16) - 1);
        assert_eq!(n.net, NET_BIND_TCP | NET_CONNECT_TCP);
        assert_eq!(n.scoped, SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL);
        assert!(n.not_enforced.is_empty());

        // Without scopes and TCP, ABI 3 is enough; ioctl control is reported missing.
        let n = negotiate(&LandlockRules::default(), 3, req).unwrap();
        assert_eq!((n.net, n.scoped), (0, 0));
        assert_eq!(n.not_enforced, vec![Feature::IoctlDev]);

        // Best effort takes what there is.
        let n = negotiate(&rules, 4, Strictness::BestEffort).unwrap();
        assert_eq!(n.fs, (1 << 15) - 1);
        assert_eq!(n.net, NET_BIND_TCP | NET_CONNECT_TCP);
        assert_eq!(
            n.not_enforced,
            vec![Feature::IoctlDev, Feature::ScopeAbstractUnix, Feature::ScopeSignal]
        );
        let n = negotiate(&rules, 0, Strictness::BestEffort).unwrap();
        assert_eq!((n.fs, n.net, n.scoped), (0, 0, 0));
        assert_eq!(n.not_enforced.len(), 7);
    }

    #[test]
    fn file_rules_get_only_file_rights() {
        let all = (1 << 16) - 1;
        assert_eq!(
            rights_for(PathAccess::ReadWrite, false, all),
            FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV
        );
        assert_eq!(rights_for(PathAccess::ReadExec, false, all), FS_READ_FILE | FS_EXECUTE);
        let no_exec_no_dev = !(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK);
        assert_eq!(rights_for(PathAccess::ReadWrite, true, all), all & no_exec_no_dev);
        assert_eq!(rights_for(PathAccess::ReadWrite, true, FS_ABI1), FS_ABI1 & no_exec_no_dev);
        assert_eq!(FsRights(FS_MAKE_CHAR | FS_MAKE_BLOCK).to_string(), "make_char|make_block");
    }

    fn landlock_or_skip() -> bool {
        let abi = abi_version();
        if abi < 6 {
            eprintln!("skipping: this kernel has landlock abi {abi}, the test needs 6");
            return false;
        }
        true
    }

    struct Fixture {
        dir: tempfile::TempDir,
        rules: LandlockRules,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            std::fs::create_dir(d.join("allowed")).unwrap();
            std::fs::write(d.join("allowed/f.txt"), "allowed content").unwrap();
            std::fs::create_dir(d.join("rw")).unwrap();
            std::fs::write(d.join("secret.txt"), "secret").unwrap();
            let sys = ["/usr", "/bin", "/lib", "/lib64", "/etc", "/nonexistent-appipc"];
            let mut read_exec: Vec<PathBuf> = sys.iter().map(PathBuf::from).collect();
            read_exec.push(d.join("allowed"));
            let rules = LandlockRules {
                read_exec,
                read_write: vec![d.join("rw"), PathBuf::from("/dev/null")],
                scope_abstract_unix: true,
                scope_signal: true,
                restrict_tcp: true,
                tcp_bind: vec![],
                tcp_connect: vec![],
            };
            Fixture { dir, rules }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        /// The errno of `probe` in a child confined by these rules.
        fn errno(
            &self,
            mut probe: impl FnMut() -> io::Result<()> + Send + Sync + 'static,
        ) -> Option<i32> {
            let prepared = prepare(&self.rules).unwrap();
            probe::errno_in_child(move || {
                prepared.restrict_self()?;
                probe()
            })
        }

        fn sh(&self, script: &str) -> std::process::Output {
            let prepared = prepare(&self.rules).unwrap();
            probe::run_with_hook("/bin/sh", &["-c", script], move || prepared.restrict_self())
                .unwrap()
        }
    }

    #[test]
    fn report_says_what_the_kernel_enforces() {
        if !landlock_or_skip() {
            return;
        }
        let fx = Fixture::new();
        let p = prepare(&fx.rules).unwrap();
        let r = p.report();
        assert!(r.abi >= 6 && r.enforced());
        assert!(r.scope_abstract_unix && r.scope_signal && r.tcp_restricted);
        assert!(r.handled_fs.names().any(|n| n == "truncate"));
        assert_eq!(r.skipped_paths, vec![PathBuf::from("/nonexistent-appipc")]);
        let text = r.to_string();
        assert!(text.contains("scoped abstract-unix,signal"), "{text}");
        eprintln!("{text}");
    }

    #[test]
    fn filesystem_rules_are_enforced_in_a_real_child() {
        if !landlock_or_skip() {
            return;
        }
        let fx = Fixture::new();
        let allowed = cstr(&fx.path("allowed/f.txt"));
        assert_eq!(fx.errno(move || probe::open_read(&allowed)), None);
        let secret = cstr(&fx.path("secret.txt"));
        assert_eq!(fx.errno(move || probe::open_read(&secret)), Some(libc::EACCES));
        let in_ro = cstr(&fx.path("allowed/new.txt"));
        assert_eq!(fx.errno(move || probe::create_file(&in_ro)), Some(libc::EACCES));
        let in_rw = cstr(&fx.path("rw/new.txt"));
        assert_eq!(fx.errno(move || probe::create_file(&in_rw)), None);
        assert!(fx.path("rw/new.txt").exists());

        // The same through ordinary programs.
        let a = fx.path("allowed");
        let out = fx.sh(&format!("cat {0}/f.txt && ls {0} && echo hi > /dev/null", a.display()));
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("allowed content"));
        let out = fx.sh(&format!("cat {}", fx.path("secret.txt").display()));
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{out:?}");
        let out = fx.sh(&format!("ls {}", fx.dir.path().display()));
        assert!(!out.status.success(), "listing the parent must fail: {out:?}");
        let out = fx.sh(&format!("echo x > {}/y", a.display()));
        assert!(!out.status.success(), "{out:?}");
        let out = fx.sh(&format!("echo x > {0}/y && cat {0}/y", fx.path("rw").display()));
        assert!(out.status.success(), "{out:?}");

        // Read-write is not execute: a program copied there does not run (it does from /usr).
        let prog = fx.path("rw/true");
        std::fs::copy("/bin/true", &prog).unwrap();
        let out = fx.sh(&format!("{} && echo ran", prog.display()));
        assert!(!String::from_utf8_lossy(&out.stdout).contains("ran"), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{out:?}");
        let out = fx.sh("/bin/true && echo ran");
        assert!(String::from_utf8_lossy(&out.stdout).contains("ran"), "{out:?}");
    }

    #[test]
    fn scopes_and_tcp_are_enforced_in_a_real_child() {
        if !landlock_or_skip() {
            return;
        }
        let fx = Fixture::new();

        // An abstract unix listener made outside the sandbox.
        use std::os::linux::net::SocketAddrExt;
        let name = format!("appipc-landlock-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        let n = name.clone().into_bytes();
        assert_eq!(probe::errno_in_child(move || probe::connect_abstract(&n)), None);
        let n = name.into_bytes();
        assert_eq!(fx.errno(move || probe::connect_abstract(&n)), Some(libc::EPERM));

        // Signals and ptrace to a process outside.
        let mut outside = std::process::Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let pid = outside.id();
        assert_eq!(fx.errno(move || probe::kill(pid, 0)), Some(libc::EPERM));
        assert_eq!(fx.errno(move || probe::kill(pid, libc::SIGCONT)), Some(libc::EPERM));
        assert_eq!(fx.errno(move || probe::ptrace_seize(pid)), Some(libc::EPERM));
        // Signalling itself (inside the domain) still works.
        assert_eq!(fx.errno(|| probe::kill(std::process::id(), 0)), None);
        let out = fx.sh(&format!("kill -0 {pid}"));
        assert!(!out.status.success(), "{out:?}");
        let out = fx.sh("/bin/sleep 30 & kill $!; wait $!; echo status=$?");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("status=143"), "signalling inside the sandbox: {out:?}");
        outside.kill().unwrap();
        outside.wait().unwrap();

        // TCP to a listener on the host's loopback.
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        assert_eq!(probe::errno_in_child(move || probe::connect_tcp_loopback(port)), None);
        assert_eq!(fx.errno(move || probe::connect_tcp_loopback(port)), Some(libc::EACCES));
        // An allowed port is reachable.
        let mut open = Fixture::new();
        open.rules.tcp_connect = vec![port];
        assert_eq!(open.errno(move || probe::connect_tcp_loopback(port)), None);
    }

    #[test]
    fn rules_follow_inodes_through_bind_mounts_and_child_added_paths() {
        if !landlock_or_skip() {
            return;
        }
        let fx = Fixture::new();
        let mut prepared = prepare(&fx.rules).unwrap();
        // Bind-mount the allowed folder and the secret file's folder elsewhere in a private
        // mount namespace (as the launcher does when building the app's root).
        std::fs::create_dir(fx.path("mnt")).unwrap();
        std::fs::create_dir(fx.path("mnt2")).unwrap();
        // Made after prepare(): the child adds it itself.
        std::fs::create_dir(fx.path("late")).unwrap();
        std::fs::write(fx.path("late/f.txt"), "late").unwrap();
        let (src, mnt) = (cstr(&fx.path("allowed")), cstr(&fx.path("mnt")));
        let (root, mnt2) = (cstr(fx.dir.path()), cstr(&fx.path("mnt2")));
        let via_mnt = cstr(&fx.path("mnt/f.txt"));
        let secret_via_mnt2 = cstr(&fx.path("mnt2/secret.txt"));
        prepared.allow_in_child(&fx.path("late"), PathAccess::ReadExec).unwrap();
        let late_file = cstr(&fx.path("late/f.txt"));
        let errno = probe::errno_in_child(move || {
            probe::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)?;
            // SAFETY: every pointer is a NUL-terminated string
            // alive for the call (prepared before the fork or a literal); data is null.
            let rc = unsafe {
                libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            for (from, to) in [(&src, &mnt), (&root, &mnt2)] {
                // SAFETY: as above.
                let rc = unsafe {
                    libc::mount(
                        from.as_ptr(),
                        to.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    )
                };
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            prepared.restrict_self()?;
            probe::open_read(&via_mnt)?;
            probe::open_read(&late_file)?;
            match probe::open_read(&secret_via_mnt2) {
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => Ok(()),
                Err(e) => Err(e),
                Ok(()) => Err(io::Error::from_raw_os_error(libc::ENOTRECOVERABLE)),
            }
        });
        assert_eq!(errno, None, "errno {errno:?}");
        // And mounting is refused once restricted.
        let mnt = cstr(&fx.path("mnt"));
        assert_eq!(
            fx.errno(move || {
                probe::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)?;
                probe::mount_tmpfs(&mnt)
            }),
            Some(libc::EPERM)
        );
    }
}
