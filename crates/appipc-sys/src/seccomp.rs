//! A seccomp filter against the escape hatches of an app container.
//!
//! The filter is a deny list: every syscall is allowed except the ones in [`denied_syscalls`],
//! which fail with `EPERM` (a few only with certain arguments), and `clone3`, which fails with
//! `ENOSYS` so that libc falls back to `clone`, whose flags a filter can inspect (`clone3`
//! passes them in memory, out of a filter's reach; Flatpak and bubblewrap do the same).
//! Namespaces, Landlock and the mount layout are the real walls; this filter takes away the
//! kernel interfaces that are too large to expose to untrusted code or that would let the app
//! rebuild its view of the system.
//!
//! Built in the parent with `seccompiler` ([`escape_hatch_filter`]), applied in the forked
//! child with [`SeccompFilter::apply`], which is two raw syscalls over the prepared program:
//! async-signal-safe, no allocation, no lock.
//!
//! Beyond the per-syscall rules, the program starts with checks of its own (hand-written BPF,
//! because their answers are not `EPERM`):
//! * a syscall made with another architecture's convention (for example `int 0x80` on x86_64)
//!   kills the process (`seccompiler`'s architecture check): its numbers mean other syscalls;
//! * on x86_64, syscall numbers with the x32 bit (`0x40000000`) fail with `ENOSYS`, so an x32
//!   alias of a denied syscall cannot slip past the numbered rules on kernels built with x32;
//! * `openat2` fails with `ENOSYS` (as `clone3`): its mode lives in memory, out of a filter's
//!   reach, and libc's `open` never uses it, so callers fall back to `openat`, whose mode the
//!   set-id rule below can see;
//! * `socket` refuses every address family but `AF_UNIX`, `AF_INET`, `AF_INET6` and
//!   `AF_NETLINK` with `EAFNOSUPPORT` (what a kernel without the family answers), `AF_NETLINK`
//!   with any protocol but `NETLINK_ROUTE`, and `IPPROTO_MPTCP` over inet, with
//!   `EPROTONOSUPPORT`; `socketpair` works for `AF_UNIX` only. The refused families are not
//!   confined by the package's network namespace (`AF_VSOCK` reaches the hypervisor and the
//!   host), or are kernel interfaces an app has no use for (packet, XDP, netlink audit,
//!   uevents, generic netlink, …); MPTCP is a second transport that Landlock's TCP rules do not
//!   see. See [`ALLOWED_SOCKET_FAMILIES`].
//!
//! Set-id bits: `chmod`, `fchmod`, `fchmodat`, `fchmodat2`, `mknod(at)`, `creat` and
//! `open(at)` with `O_CREAT`/`O_TMPFILE` fail with `EPERM` when the mode carries `S_ISUID` or
//! `S_ISGID`, so an app cannot leave a set-id program in its folders for a host user to run
//! (inside, every mount is `nosuid` and `no_new_privs` is set, so such a bit would mean nothing
//! there either).
//!
//! Order in the child: the mount namespace must be complete first (this filter denies
//! `mount`, `pivot_root`, `unshare`, …), then Landlock, then this filter, then `exec`.
//! [`SeccompFilter`] implements [`ChildStep`](crate::sandbox::ChildStep) for the launcher.

use std::collections::BTreeMap;
use std::fmt;
use std::io;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule,
    TargetArch,
};

/// When a listed syscall is denied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyWhen {
    /// Always.
    Always,
    /// When its flags (argument 0) ask for any new namespace (`CLONE_NEWNS`, `NEWUTS`,
    /// `NEWIPC`, `NEWUSER`, `NEWPID`, `NEWNET`, `NEWCGROUP`, `NEWTIME`).
    NewNamespace,
    /// When the persona (argument 0) is other than `PER_LINUX`, `PER_LINUX32` or the query
    /// value `0xffffffff`.
    NonDefaultPersona,
    /// When the request (argument 1, low 32 bits as the kernel reads it) is `TIOCSTI` or
    /// `TIOCLINUX`.
    TerminalInjection,
    /// When the mode (argument `mode`, 32 bits) has `S_ISUID` or `S_ISGID`.
    SetIdMode {
        /// Which argument is the mode.
        mode: u8,
    },
    /// When the flags (argument `flags`) create a file (`O_CREAT` or `O_TMPFILE`) and the mode
    /// (argument `mode`) has `S_ISUID` or `S_ISGID` (without `O_CREAT` the mode register holds
    /// whatever the caller left there, so it is not looked at).
    CreateSetIdMode {
        /// Which argument is the flags.
        flags: u8,
        /// Which argument is the mode.
        mode: u8,
    },
}

/// One entry of the deny list.
#[derive(Clone, Copy, Debug)]
pub struct DeniedSyscall {
    /// The syscall's name.
    pub name: &'static str,
    /// Its number on this architecture.
    pub nr: i64,
    /// When it is denied (with `EPERM`).
    pub when: DenyWhen,
    /// Why it is on the list.
    pub why: &'static str,
}

/// `open_tree_attr` (Linux 6.15), not yet in `libc`; the number is the same on every
/// architecture (unified syscall table).
const SYS_OPEN_TREE_ATTR: i64 = 467;

macro_rules! deny {
    ($name:ident, $when:ident, $why:literal) => {
        DeniedSyscall {
            name: stringify!($name),
            nr: paste_nr!($name),
            when: DenyWhen::$when,
            why: $why,
        }
    };
    ($name:ident, $when:expr, $why:literal) => {
        DeniedSyscall { name: stringify!($name), nr: paste_nr!($name), when: $when, why: $why }
    };
}

macro_rules! paste_nr {
    (open_tree_attr) => {
        SYS_OPEN_TREE_ATTR
    };
    ($name:ident) => {
        syscall_nr::$name
    };
}

/// The syscall numbers of the deny list, from `libc`, under their plain names.
#[allow(non_upper_case_globals)]
mod syscall_nr {
    macro_rules! nrs {
        ($($name:ident => $sys:ident),* $(,)?) => {
            $(pub const $name: i64 = libc::$sys as i64;)*
        };
    }
    nrs! {
        ptrace => SYS_ptrace,
        process_vm_readv => SYS_process_vm_readv,
        process_vm_writev => SYS_process_vm_writev,
        process_madvise => SYS_process_madvise,
        pidfd_getfd => SYS_pidfd_getfd,
        kcmp => SYS_kcmp,
        mount => SYS_mount,
        umount2 => SYS_umount2,
        pivot_root => SYS_pivot_root,
        chroot => SYS_chroot,
        move_mount => SYS_move_mount,
        open_tree => SYS_open_tree,
        fsopen => SYS_fsopen,
        fsconfig => SYS_fsconfig,
        fsmount => SYS_fsmount,
        fspick => SYS_fspick,
        mount_setattr => SYS_mount_setattr,
        unshare => SYS_unshare,
        setns => SYS_setns,
        clone => SYS_clone,
        bpf => SYS_bpf,
        keyctl => SYS_keyctl,
        add_key => SYS_add_key,
        request_key => SYS_request_key,
        perf_event_open => SYS_perf_event_open,
        userfaultfd => SYS_userfaultfd,
        io_uring_setup => SYS_io_uring_setup,
        io_uring_enter => SYS_io_uring_enter,
        io_uring_register => SYS_io_uring_register,
        init_module => SYS_init_module,
        finit_module => SYS_finit_module,
        delete_module => SYS_delete_module,
        kexec_load => SYS_kexec_load,
        kexec_file_load => SYS_kexec_file_load,
        open_by_handle_at => SYS_open_by_handle_at,
        name_to_handle_at => SYS_name_to_handle_at,
        swapon => SYS_swapon,
        swapoff => SYS_swapoff,
        reboot => SYS_reboot,
        acct => SYS_acct,
        quotactl => SYS_quotactl,
        quotactl_fd => SYS_quotactl_fd,
        settimeofday => SYS_settimeofday,
        clock_settime => SYS_clock_settime,
        clock_adjtime => SYS_clock_adjtime,
        adjtimex => SYS_adjtimex,
        lookup_dcookie => SYS_lookup_dcookie,
        vhangup => SYS_vhangup,
        syslog => SYS_syslog,
        personality => SYS_personality,
        ioctl => SYS_ioctl,
        fanotify_init => SYS_fanotify_init,
        inotify_init1 => SYS_inotify_init1,
        fchmod => SYS_fchmod,
        fchmodat => SYS_fchmodat,
        fchmodat2 => SYS_fchmodat2,
        mknodat => SYS_mknodat,
        openat => SYS_openat,
    }
    #[cfg(target_arch = "x86_64")]
    nrs! {
        iopl => SYS_iopl,
        ioperm => SYS_ioperm,
        inotify_init => SYS_inotify_init,
        chmod => SYS_chmod,
        mknod => SYS_mknod,
        creat => SYS_creat,
        open => SYS_open,
    }
}

/// The deny list, one line of reason each.
const DENIED: &[DeniedSyscall] = &[
    deny!(ptrace, Always, "reads and writes other processes' memory and registers"),
    deny!(process_vm_readv, Always, "reads another process's memory"),
    deny!(process_vm_writev, Always, "writes another process's memory"),
    deny!(process_madvise, Always, "acts on another process's memory"),
    deny!(pidfd_getfd, Always, "steals an open file from another process"),
    deny!(kcmp, Always, "compares other processes' kernel objects (an information leak)"),
    deny!(mount, Always, "changes the filesystem view the sandbox is built from"),
    deny!(umount2, Always, "uncovers what the sandbox's mounts hide"),
    deny!(pivot_root, Always, "changes the root the sandbox is built on"),
    deny!(chroot, Always, "changes the root; with an fd kept outside it, a classic way out"),
    deny!(move_mount, Always, "new mount API: attaches mounts"),
    deny!(open_tree, Always, "new mount API: clones mount trees"),
    deny!(open_tree_attr, Always, "new mount API: clones mount trees with new attributes"),
    deny!(fsopen, Always, "new mount API: creates filesystem instances"),
    deny!(fsconfig, Always, "new mount API: configures filesystem instances"),
    deny!(fsmount, Always, "new mount API: turns a filesystem instance into a mount"),
    deny!(fspick, Always, "new mount API: reconfigures existing mounts"),
    deny!(mount_setattr, Always, "changes mount attributes (read-only, idmapping)"),
    deny!(unshare, Always, "new namespaces: a fresh user namespace regains every capability"),
    deny!(setns, Always, "enters other namespaces through inherited or found fds"),
    deny!(clone, NewNamespace, "new namespaces at process creation, as unshare"),
    deny!(bpf, Always, "eBPF: a large kernel attack surface"),
    deny!(keyctl, Always, "kernel keyrings are shared outside the sandbox, not namespaced"),
    deny!(add_key, Always, "kernel keyrings, as keyctl"),
    deny!(request_key, Always, "kernel keyrings, as keyctl"),
    deny!(perf_event_open, Always, "profiling: side channels and a large attack surface"),
    deny!(userfaultfd, Always, "stalls kernel code at will, the usual exploit helper"),
    deny!(io_uring_setup, Always, "io_uring: large attack surface, bypasses syscall filtering"),
    deny!(io_uring_enter, Always, "io_uring, as io_uring_setup"),
    deny!(io_uring_register, Always, "io_uring, as io_uring_setup"),
    deny!(init_module, Always, "loads kernel code"),
    deny!(finit_module, Always, "loads kernel code"),
    deny!(delete_module, Always, "unloads kernel code"),
    deny!(kexec_load, Always, "replaces the running kernel"),
    deny!(kexec_file_load, Always, "replaces the running kernel"),
    deny!(open_by_handle_at, Always, "opens files by handle, around every path check"),
    deny!(name_to_handle_at, Always, "makes file handles for open_by_handle_at"),
    deny!(swapon, Always, "system administration"),
    deny!(swapoff, Always, "system administration"),
    deny!(reboot, Always, "system administration"),
    deny!(acct, Always, "system administration (process accounting)"),
    deny!(quotactl, Always, "system administration (disk quotas)"),
    deny!(quotactl_fd, Always, "system administration (disk quotas)"),
    deny!(settimeofday, Always, "sets the system clock"),
    deny!(clock_settime, Always, "sets the system clock"),
    deny!(clock_adjtime, Always, "adjusts the system clock"),
    deny!(adjtimex, Always, "adjusts the system clock"),
    #[cfg(target_arch = "x86_64")]
    deny!(iopl, Always, "raw I/O port access"),
    #[cfg(target_arch = "x86_64")]
    deny!(ioperm, Always, "raw I/O port access"),
    deny!(lookup_dcookie, Always, "profiling internals (removed in new kernels)"),
    deny!(vhangup, Always, "hangs up the terminal of other processes"),
    deny!(syslog, Always, "reads the kernel log (addresses, other users' events)"),
    deny!(personality, NonDefaultPersona, "turns off address randomization and other hardening"),
    deny!(ioctl, TerminalInjection, "TIOCSTI/TIOCLINUX push input into a shared terminal"),
    deny!(
        fanotify_init,
        Always,
        "watches file accesses of the whole host on the shared read-only system folders"
    ),
    deny!(
        inotify_init1,
        Always,
        "inotify on the shared read-only /usr and /etc reports what the host runs and reads"
    ),
    #[cfg(target_arch = "x86_64")]
    deny!(inotify_init, Always, "inotify, as inotify_init1"),
    deny!(fchmod, DenyWhen::SetIdMode { mode: 1 }, "would leave a set-id program behind"),
    deny!(fchmodat, DenyWhen::SetIdMode { mode: 2 }, "would leave a set-id program behind"),
    deny!(fchmodat2, DenyWhen::SetIdMode { mode: 2 }, "would leave a set-id program behind"),
    deny!(mknodat, DenyWhen::SetIdMode { mode: 2 }, "would create a set-id file"),
    deny!(openat, DenyWhen::CreateSetIdMode { flags: 2, mode: 3 }, "would create a set-id file"),
    #[cfg(target_arch = "x86_64")]
    deny!(chmod, DenyWhen::SetIdMode { mode: 1 }, "would leave a set-id program behind"),
    #[cfg(target_arch = "x86_64")]
    deny!(mknod, DenyWhen::SetIdMode { mode: 1 }, "would create a set-id file"),
    #[cfg(target_arch = "x86_64")]
    deny!(creat, DenyWhen::SetIdMode { mode: 1 }, "would create a set-id file"),
    #[cfg(target_arch = "x86_64")]
    deny!(open, DenyWhen::CreateSetIdMode { flags: 1, mode: 2 }, "would create a set-id file"),
];

/// The address families `socket` accepts inside an app container (see the module
/// documentation): `AF_UNIX`, `AF_INET`, `AF_INET6`, `AF_NETLINK` (`NETLINK_ROUTE` only).
pub const ALLOWED_SOCKET_FAMILIES: [i32; 4] =
    [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK];

/// `IPPROTO_MPTCP` (linux/in.h), refused over `AF_INET` and `AF_INET6`.
pub const IPPROTO_MPTCP: i32 = 262;

/// The syscalls the filter denies with `EPERM`, each with its reason. (`clone3` is not listed:
/// it fails with `ENOSYS`, see the module documentation.)
pub fn denied_syscalls() -> &'static [DeniedSyscall] {
    DENIED
}

/// Why the filter could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// seccompiler rejected a rule or the program.
    #[error("seccomp: compiling the escape-hatch filter failed: {0}")]
    Compile(#[source] seccompiler::BackendError),
    /// The program is longer than the kernel accepts (`BPF_MAXINSNS`).
    #[error("seccomp: the filter has {0} instructions, more than the kernel's 4096")]
    TooLong(usize),
}

/// A compiled seccomp program, built in the parent and applied in the child.
#[derive(Clone)]
pub struct SeccompFilter {
    program: Box<[libc::sock_filter]>,
}

impl fmt::Debug for SeccompFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeccompFilter").field("instructions", &self.program.len()).finish()
    }
}

/// `PER_LINUX` and `PER_LINUX32` (linux/personality.h), not in `libc`.
const PER_LINUX: u64 = 0;
/// `TIOCSTI` and `TIOCLINUX` (asm-generic/ioctls.h, the values of x86_64 and aarch64).
pub(crate) const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541c;
const PER_LINUX32: u64 = 0x0008;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JEQ_K: u16 = 0x15;
#[cfg(target_arch = "x86_64")]
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const BPF_JMP_JA: u16 = 0x05;
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARGS: u32 = 16;
/// `S_ISUID | S_ISGID`.
const SET_ID_BITS: [u64; 2] = [libc::S_ISUID as u64, libc::S_ISGID as u64];
/// `O_CREAT` and the bit of `O_TMPFILE` that is not `O_DIRECTORY`.
const CREATE_FLAGS: [u64; 2] =
    [libc::O_CREAT as u64, (libc::O_TMPFILE & !libc::O_DIRECTORY) as u64];

#[cfg(target_arch = "x86_64")]
const NATIVE: (TargetArch, u32) = (TargetArch::x86_64, 0xc000_003e); // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const NATIVE: (TargetArch, u32) = (TargetArch::aarch64, 0xc000_00b7); // AUDIT_ARCH_AARCH64

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn errno(e: i32) -> u32 {
    SECCOMP_RET_ERRNO | (e as u32 & 0xffff)
}

/// A jump target in [`Asm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    /// The first instruction after our own (seccompiler's program).
    End,
    Inet,
    Netlink,
    Socketpair,
    Socket,
}

/// A tiny BPF assembler with forward jumps to labels, for [`prologue`].
#[derive(Default)]
struct Asm {
    insns: Vec<libc::sock_filter>,
    /// (instruction index, label for jt, label for jf); `None`: fall through.
    jumps: Vec<(usize, Option<Label>, Option<Label>)>,
    labels: Vec<(Label, usize)>,
}

impl Asm {
    fn stmt(&mut self, code: u16, k: u32) {
        self.insns.push(stmt(code, k));
    }

    fn jeq(&mut self, k: u32, jt: Option<Label>, jf: Option<Label>) {
        self.jumps.push((self.insns.len(), jt, jf));
        self.insns.push(jump(BPF_JMP_JEQ_K, k, 0, 0));
    }

    fn goto(&mut self, to: Label) {
        self.jumps.push((self.insns.len(), Some(to), None));
        self.insns.push(stmt(BPF_JMP_JA, 0));
    }

    fn label(&mut self, l: Label) {
        self.labels.push((l, self.insns.len()));
    }

    fn ret_errno(&mut self, e: i32) {
        self.stmt(BPF_RET_K, errno(e));
    }

    fn load_arg_low(&mut self, arg: u32) {
        self.stmt(BPF_LD_W_ABS, data_arg_low(arg));
    }

    fn finish(mut self) -> Vec<libc::sock_filter> {
        self.label(Label::End);
        let at = |l: Label| self.labels.iter().find(|(x, _)| *x == l).expect("label placed").1;
        for &(i, jt, jf) in &self.jumps {
            let rel = |l: Option<Label>| -> u32 {
                l.map_or(0, |l| {
                    let to = at(l);
                    assert!(to > i, "forward jumps only");
                    u32::try_from(to - i - 1).expect("short program")
                })
            };
            if self.insns[i].code == BPF_JMP_JA {
                self.insns[i].k = rel(jt);
            } else {
                self.insns[i].jt = u8::try_from(rel(jt)).expect("jump within 255");
                self.insns[i].jf = u8::try_from(rel(jf)).expect("jump within 255");
            }
        }
        self.insns
    }
}

/// Offset of the low 32 bits of argument `arg` in `struct seccomp_data`.
const fn data_arg_low(arg: u32) -> u32 {
    let base = DATA_ARGS + 8 * arg;
    if cfg!(target_endian = "little") { base } else { base + 4 }
}

/// Our own first instructions: `clone3` and `openat2` → `ENOSYS`, x32 numbers → `ENOSYS`, the
/// socket family and protocol rules. A syscall of another architecture jumps straight to
/// seccompiler's program, whose architecture check kills the process.
fn prologue() -> Vec<libc::sock_filter> {
    use Label::*;
    let mut a = Asm::default();
    a.stmt(BPF_LD_W_ABS, DATA_ARCH);
    // Not the native architecture: skip our checks (the numbers mean other syscalls).
    a.jeq(NATIVE.1, None, Some(End));
    a.stmt(BPF_LD_W_ABS, DATA_NR);
    #[cfg(target_arch = "x86_64")]
    {
        a.insns.push(jump(BPF_JMP_JGE_K, 0x4000_0000, 0, 1));
        a.ret_errno(libc::ENOSYS);
    }
    for nr in [libc::SYS_clone3, libc::SYS_openat2] {
        a.insns.push(jump(BPF_JMP_JEQ_K, nr as u32, 0, 1));
        a.ret_errno(libc::ENOSYS);
    }
    a.jeq(libc::SYS_socket as u32, Some(Socket), None);
    a.jeq(libc::SYS_socketpair as u32, Some(Socketpair), None);
    a.goto(End);

    // socket(domain, type, protocol)
    a.label(Socket);
    a.load_arg_low(0);
    a.jeq(libc::AF_UNIX as u32, Some(End), None);
    a.jeq(libc::AF_INET as u32, Some(Inet), None);
    a.jeq(libc::AF_INET6 as u32, Some(Inet), None);
    a.jeq(libc::AF_NETLINK as u32, Some(Netlink), None);
    a.ret_errno(libc::EAFNOSUPPORT);
    a.label(Inet);
    a.load_arg_low(2);
    a.jeq(IPPROTO_MPTCP as u32, None, Some(End));
    a.ret_errno(libc::EPROTONOSUPPORT);
    a.label(Netlink);
    a.load_arg_low(2);
    a.jeq(libc::NETLINK_ROUTE as u32, Some(End), None);
    a.ret_errno(libc::EPROTONOSUPPORT);

    // socketpair(domain, …): only unix sockets come in pairs here.
    a.label(Socketpair);
    a.load_arg_low(0);
    a.jeq(libc::AF_UNIX as u32, Some(End), None);
    a.ret_errno(libc::EAFNOSUPPORT);
    a.finish()
}

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, len, op, value).expect("argument index below 6")
}

fn rules_for(when: DenyWhen) -> Result<Vec<SeccompRule>, seccompiler::BackendError> {
    use SeccompCmpArgLen::Dword;
    match when {
        DenyWhen::Always => Ok(Vec::new()),
        // The kernel reads clone's flags as `lower_32_bits(clone_flags)`: compare 32 bits.
        DenyWhen::NewNamespace => [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWTIME,
        ]
        .into_iter()
        .map(|flag| {
            let flag = u64::from(flag as u32);
            SeccompRule::new(vec![cond(0, Dword, SeccompCmpOp::MaskedEq(flag), flag)])
        })
        .collect(),
        // personality(unsigned int): any value but the defaults and the query.
        DenyWhen::NonDefaultPersona => Ok(vec![SeccompRule::new(vec![
            cond(0, Dword, SeccompCmpOp::Ne, PER_LINUX),
            cond(0, Dword, SeccompCmpOp::Ne, PER_LINUX32),
            cond(0, Dword, SeccompCmpOp::Ne, 0xffff_ffff),
        ])?]),
        // ioctl(int, unsigned int cmd, …): the kernel ignores the high half of the register,
        // so compare only the low 32 bits (a 64-bit compare is bypassed by setting high bits).
        DenyWhen::TerminalInjection => [TIOCSTI, TIOCLINUX]
            .into_iter()
            .map(|cmd| SeccompRule::new(vec![cond(1, Dword, SeccompCmpOp::Eq, cmd)]))
            .collect(),
        // mode_t is 32 bits; the kernel reads it as umode_t.
        DenyWhen::SetIdMode { mode } => SET_ID_BITS
            .into_iter()
            .map(|bit| SeccompRule::new(vec![cond(mode, Dword, SeccompCmpOp::MaskedEq(bit), bit)]))
            .collect(),
        DenyWhen::CreateSetIdMode { flags, mode } => {
            let mut rules = Vec::new();
            for create in CREATE_FLAGS {
                for bit in SET_ID_BITS {
                    rules.push(SeccompRule::new(vec![
                        cond(flags, Dword, SeccompCmpOp::MaskedEq(create), create),
                        cond(mode, Dword, SeccompCmpOp::MaskedEq(bit), bit),
                    ])?);
                }
            }
            Ok(rules)
        }
    }
}

/// Builds the escape-hatch filter for the native architecture (x86_64 or aarch64): every
/// syscall of [`denied_syscalls`] fails with `EPERM` (under its condition), `clone3` with
/// `ENOSYS`, everything else is allowed.
pub fn escape_hatch_filter() -> Result<SeccompFilter, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for d in DENIED {
        rules.insert(d.nr, rules_for(d.when).map_err(SeccompError::Compile)?);
    }
    let filter = seccompiler::SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        NATIVE.0,
    )
    .map_err(SeccompError::Compile)?;
    let compiled: BpfProgram = filter.try_into().map_err(SeccompError::Compile)?;
    let mut program = prologue();
    program.extend(compiled.iter().map(|i| libc::sock_filter {
        code: i.code,
        jt: i.jt,
        jf: i.jf,
        k: i.k,
    }));
    if program.len() > 4096 {
        return Err(SeccompError::TooLong(program.len()));
    }
    Ok(SeccompFilter { program: program.into_boxed_slice() })
}

/// Sets `no_new_privs` on the calling thread (idempotent; it cannot be unset). Required before
/// an unprivileged process installs a seccomp filter or a Landlock domain, and it makes
/// set-uid binaries powerless. Async-signal-safe.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) takes integers only and touches no
    // memory of this process.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl SeccompFilter {
    /// The number of BPF instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Always false: a filter has at least its prologue.
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// Sets `no_new_privs` and installs the filter on the calling thread (and so on whatever
    /// it execs). Meant for a forked child before `exec`: two raw syscalls over the prepared
    /// program, no allocation, no lock. The filter is inherited by every descendant and can
    /// never be removed.
    pub fn apply(&self) -> io::Result<()> {
        set_no_new_privs()?;
        let prog = libc::sock_fprog {
            // At most 4096, checked when built.
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: `prog` points at `self.program`, `len` instructions long, borrowed for the
        // call; the kernel copies the program (copy_from_user) and never writes through the
        // pointer, so casting away const is sound. Flags 0: only the calling thread, which in
        // a forked child is the only one.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
                0 as libc::c_ulong,
                &raw const prog,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl crate::sandbox::ChildStep for SeccompFilter {
    /// [`SeccompFilter::apply`].
    fn apply(&self) -> io::Result<()> {
        SeccompFilter::apply(self)
    }

    fn name(&self) -> &'static str {
        "seccomp: installing the filter"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe;

    /// A classic-BPF interpreter for the instructions a seccomp program uses, to check the
    /// filter's decisions without a process.
    fn run(program: &[libc::sock_filter], nr: i64, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::with_capacity(64);
        data.extend_from_slice(&(nr as i32).to_ne_bytes());
        data.extend_from_slice(&arch.to_ne_bytes());
        data.extend_from_slice(&0u64.to_ne_bytes()); // instruction pointer
        for a in args {
            data.extend_from_slice(&a.to_ne_bytes());
        }
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let i = program[pc];
            pc += 1;
            match i.code {
                0x20 => {
                    let o = i.k as usize;
                    acc = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
                }
                0x54 => acc &= i.k,         // ALU AND K
                0x05 => pc += i.k as usize, // JA
                0x15 | 0x25 | 0x35 | 0x45 => {
                    let taken = match i.code {
                        0x15 => acc == i.k,
                        0x25 => acc > i.k,
                        0x35 => acc >= i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
                0x06 => return i.k,
                other => panic!("instruction {other:#x} not handled by the test interpreter"),
            }
        }
    }

    fn decide(nr: i64, args: [u64; 6]) -> u32 {
        let f = escape_hatch_filter().unwrap();
        run(&f.program, nr, NATIVE.1, args)
    }

    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
    const EPERM: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

    #[test]
    fn every_listed_syscall_is_denied_and_the_rest_allowed() {
        let f = escape_hatch_filter().unwrap();
        assert!(f.len() < 4096 && !f.is_empty(), "{f:?}");
        for d in denied_syscalls() {
            assert!(!d.why.is_empty());
            let mut args = [0u64; 6];
            match d.when {
                DenyWhen::Always => {}
                DenyWhen::NewNamespace => args[0] = libc::CLONE_NEWUSER as u64,
                DenyWhen::NonDefaultPersona => args[0] = libc::ADDR_NO_RANDOMIZE as u64,
                DenyWhen::TerminalInjection => args[1] = TIOCSTI,
                DenyWhen::SetIdMode { mode } => args[usize::from(mode)] = 0o4755,
                DenyWhen::CreateSetIdMode { flags, mode } => {
                    args[usize::from(flags)] = libc::O_CREAT as u64;
                    args[usize::from(mode)] = 0o2755;
                }
            }
            assert_eq!(run(&f.program, d.nr, NATIVE.1, args), EPERM, "{}", d.name);
        }
        let mut nrs: Vec<i64> = denied_syscalls().iter().map(|d| d.nr).collect();
        nrs.sort();
        nrs.dedup();
        assert_eq!(nrs.len(), denied_syscalls().len(), "a syscall is listed twice");
        for nr in [libc::SYS_read, libc::SYS_write, libc::SYS_openat, libc::SYS_execve] {
            assert_eq!(decide(nr, [0; 6]), SECCOMP_RET_ALLOW, "syscall {nr}");
        }
    }

    #[test]
    fn arguments_decide_for_clone_personality_and_ioctl() {
        let clone = libc::SYS_clone;
        // A plain fork/thread creation is allowed; each namespace flag alone is denied.
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD) as u64;
        assert_eq!(decide(clone, [thread, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(decide(clone, [libc::SIGCHLD as u64, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        for ns in [
            libc::CLONE_NEWNS,
            libc::CLONE_NEWUTS,
            libc::CLONE_NEWIPC,
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWCGROUP,
            libc::CLONE_NEWTIME,
        ] {
            let flags = (ns | libc::SIGCHLD) as u64;
            assert_eq!(decide(clone, [flags, 0, 0, 0, 0, 0]), EPERM, "flag {ns:#x}");
        }
        assert_eq!(decide(libc::SYS_clone3, [0; 6]), ENOSYS);

        let pers = libc::SYS_personality;
        for ok in [PER_LINUX, PER_LINUX32, 0xffff_ffff] {
            assert_eq!(decide(pers, [ok, 0, 0, 0, 0, 0]), SECCOMP_RET_ALLOW, "{ok:#x}");
        }
        assert_eq!(decide(pers, [libc::ADDR_NO_RANDOMIZE as u64, 0, 0, 0, 0, 0]), EPERM);

        let ioctl = libc::SYS_ioctl;
        assert_eq!(decide(ioctl, [0, 0x5401 /* TCGETS */, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(decide(ioctl, [0, TIOCLINUX, 0, 0, 0, 0]), EPERM);
        // High bits in the register do not hide the command (the kernel drops them).
        let sneaky = (1u64 << 32) | TIOCSTI;
        assert_eq!(decide(ioctl, [0, sneaky, 0, 0, 0, 0]), EPERM);
    }

    const EAFNOSUPPORT: u32 = SECCOMP_RET_ERRNO | libc::EAFNOSUPPORT as u32;
    const EPROTONOSUPPORT: u32 = SECCOMP_RET_ERRNO | libc::EPROTONOSUPPORT as u32;

    #[test]
    fn socket_families_and_protocols() {
        let socket = libc::SYS_socket;
        let stream = libc::SOCK_STREAM as u64;
        for family in ALLOWED_SOCKET_FAMILIES {
            let f = family as u64;
            assert_eq!(decide(socket, [f, stream, 0, 0, 0, 0]), SECCOMP_RET_ALLOW, "{family}");
        }
        for family in 0..64u64 {
            if ALLOWED_SOCKET_FAMILIES.contains(&(family as i32)) {
                continue;
            }
            assert_eq!(decide(socket, [family, stream, 0, 0, 0, 0]), EAFNOSUPPORT, "{family}");
            // High bits do not hide a family (the kernel reads an int).
            let sneaky = (1u64 << 32) | family;
            assert_eq!(decide(socket, [sneaky, stream, 0, 0, 0, 0]), EAFNOSUPPORT, "{family}");
        }
        assert_eq!(decide(socket, [libc::AF_VSOCK as u64, stream, 0, 0, 0, 0]), EAFNOSUPPORT);
        for inet in [libc::AF_INET as u64, libc::AF_INET6 as u64] {
            let tcp = libc::IPPROTO_TCP as u64;
            assert_eq!(decide(socket, [inet, stream, tcp, 0, 0, 0]), SECCOMP_RET_ALLOW);
            let mptcp = IPPROTO_MPTCP as u64;
            assert_eq!(decide(socket, [inet, stream, mptcp, 0, 0, 0]), EPROTONOSUPPORT);
        }
        let netlink = libc::AF_NETLINK as u64;
        let raw = libc::SOCK_RAW as u64;
        assert_eq!(decide(socket, [netlink, raw, 0, 0, 0, 0]), SECCOMP_RET_ALLOW, "route");
        for proto in 1..32u64 {
            assert_eq!(decide(socket, [netlink, raw, proto, 0, 0, 0]), EPROTONOSUPPORT, "{proto}");
        }
        let pair = libc::SYS_socketpair;
        assert_eq!(decide(pair, [libc::AF_UNIX as u64, stream, 0, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(decide(pair, [libc::AF_INET as u64, stream, 0, 0, 0, 0]), EAFNOSUPPORT);
        // Other syscalls that take a family as first argument are not affected.
        assert_eq!(
            decide(libc::SYS_read, [libc::AF_VSOCK as u64, 0, 0, 0, 0, 0]),
            SECCOMP_RET_ALLOW
        );
    }

    #[test]
    fn set_id_modes_and_openat2() {
        assert_eq!(decide(libc::SYS_openat2, [0; 6]), ENOSYS);
        let fchmodat = libc::SYS_fchmodat;
        assert_eq!(decide(fchmodat, [0, 0, 0o755, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(decide(fchmodat, [0, 0, 0o1777, 0, 0, 0]), SECCOMP_RET_ALLOW, "sticky is fine");
        assert_eq!(decide(fchmodat, [0, 0, 0o4755, 0, 0, 0]), EPERM);
        assert_eq!(decide(fchmodat, [0, 0, 0o2755, 0, 0, 0]), EPERM);
        assert_eq!(decide(libc::SYS_fchmod, [0, 0o6000, 0, 0, 0, 0]), EPERM);
        let openat = libc::SYS_openat;
        let creat = libc::O_CREAT as u64 | libc::O_WRONLY as u64;
        assert_eq!(decide(openat, [0, 0, creat, 0o644, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(decide(openat, [0, 0, creat, 0o4755, 0, 0]), EPERM);
        let tmpfile = libc::O_TMPFILE as u64 | libc::O_RDWR as u64;
        assert_eq!(decide(openat, [0, 0, tmpfile, 0o2755, 0, 0]), EPERM);
        // Without O_CREAT the mode register is garbage and not looked at.
        assert_eq!(decide(openat, [0, 0, libc::O_RDONLY as u64, 0o7777, 0, 0]), SECCOMP_RET_ALLOW);
        let mknodat = libc::SYS_mknodat;
        let fifo = libc::S_IFIFO as u64 | 0o644;
        assert_eq!(decide(mknodat, [0, 0, fifo, 0, 0, 0]), SECCOMP_RET_ALLOW);
        assert_eq!(decide(mknodat, [0, 0, libc::S_IFREG as u64 | 0o4755, 0, 0, 0]), EPERM);
    }

    #[test]
    fn foreign_architectures_are_killed_and_x32_numbers_refused() {
        let f = escape_hatch_filter().unwrap();
        // AUDIT_ARCH_I386: the 32-bit compat entry point of x86_64.
        assert_eq!(run(&f.program, 21, 0x4000_0003, [0; 6]), SECCOMP_RET_KILL_PROCESS);
        #[cfg(target_arch = "x86_64")]
        {
            let x32_mount = 0x4000_0000 | libc::SYS_mount;
            assert_eq!(run(&f.program, x32_mount, NATIVE.1, [0; 6]), ENOSYS);
        }
    }

    fn confined(mut probe: impl FnMut() -> io::Result<()> + Send + Sync + 'static) -> Option<i32> {
        let filter = escape_hatch_filter().unwrap();
        probe::errno_in_child(move || {
            filter.apply()?;
            probe()
        })
    }

    #[test]
    fn applied_filter_denies_escape_hatches_in_a_real_child() {
        // A process outside the filter to aim at.
        let mut target = std::process::Command::new("/bin/sleep").arg("30").spawn().unwrap();
        let pid = target.id();

        assert_eq!(confined(|| probe::unshare(libc::CLONE_NEWUSER)), Some(libc::EPERM));
        assert_eq!(confined(|| probe::unshare(libc::CLONE_NEWNS)), Some(libc::EPERM));
        assert_eq!(confined(probe::clone_new_user_namespace), Some(libc::EPERM));
        assert_eq!(confined(probe::clone3), Some(libc::ENOSYS));
        assert_eq!(confined(move || probe::ptrace_seize(pid)), Some(libc::EPERM));
        assert_eq!(confined(move || probe::process_vm_readv(pid, 0x1000)), Some(libc::EPERM));
        assert_eq!(confined(probe::bpf_prog_load), Some(libc::EPERM));
        assert_eq!(confined(probe::tiocsti), Some(libc::EPERM));
        assert_eq!(
            confined(|| probe::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong)),
            Some(libc::EPERM)
        );
        assert_eq!(confined(|| probe::personality(0xffff_ffff)), None);
        // Plain fork + exec still works (the child execs /bin/true after the probe).
        assert_eq!(confined(|| Ok(())), None);

        let dir = tempfile::tempdir().unwrap();
        let target_dir = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
        let t = target_dir.clone();
        let got = confined(move || probe::mount_tmpfs(&t));
        if got.is_none() {
            let _ = probe::umount(&target_dir);
        }
        assert_eq!(got, Some(libc::EPERM));

        // Without the filter the same probes reach the kernel (so the test can fail): the
        // invalid clone and clone3 arguments give EINVAL, the bad ioctl fd EBADF.
        assert_eq!(probe::errno_in_child(probe::clone_new_user_namespace), Some(libc::EINVAL));
        assert_eq!(probe::errno_in_child(probe::clone3), Some(libc::EINVAL));
        assert_eq!(probe::errno_in_child(probe::tiocsti), Some(libc::EBADF));

        target.kill().unwrap();
        target.wait().unwrap();
    }

    fn sh_confined(script: &str) -> std::process::Output {
        let filter = escape_hatch_filter().unwrap();
        probe::run_with_hook("/bin/sh", &["-c", script], move || filter.apply()).unwrap()
    }

    #[test]
    fn ordinary_programs_run_and_tools_get_eperm() {
        let out = sh_confined("ls / && /bin/true && echo done");
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("usr") && stdout.contains("done"), "{stdout}");

        // Threads (clone without namespace flags, after clone3's ENOSYS) work: a pipeline
        // and a subshell fork.
        let out = sh_confined("echo a | (cat; echo b) | wc -l");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "2", "{out:?}");

        for tool in ["unshare -U true", "unshare -m true", "unshare -n true"] {
            let out = sh_confined(tool);
            assert!(!out.status.success(), "{tool}: {out:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("Operation not permitted"), "{tool}: {err}");
        }
        // setarch -R (personality ADDR_NO_RANDOMIZE) is refused, and works unconfined.
        let out = sh_confined("setarch -R true");
        assert!(!out.status.success(), "{out:?}");
        let free = std::process::Command::new("setarch").args(["-R", "true"]).output().unwrap();
        assert!(free.status.success(), "{free:?}");
        // mount(8) itself refuses non-root users before any syscall; the probe test above
        // covers mount(2) for everyone.
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let out = sh_confined(&format!("mount -t tmpfs none {}", dir.path().display()));
        if out.status.success() {
            let c = std::ffi::CString::new(dir.path().as_os_str().as_encoded_bytes()).unwrap();
            let _ = probe::umount(&c);
        }
        assert!(!out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ermission denied") || err.contains("not permitted"), "{err}");
    }
}
