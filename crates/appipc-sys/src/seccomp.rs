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
//! Beyond the per-syscall rules, the program starts with two checks of its own:
//! * a syscall made with another architecture's convention (for example `int 0x80` on x86_64)
//!   kills the process (`seccompiler`'s architecture check): its numbers mean other syscalls;
//! * on x86_64, syscall numbers with the x32 bit (`0x40000000`) fail with `ENOSYS`, so an x32
//!   alias of a denied syscall cannot slip past the numbered rules on kernels built with x32.
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
    }
    #[cfg(target_arch = "x86_64")]
    nrs! {
        iopl => SYS_iopl,
        ioperm => SYS_ioperm,
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
];

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
/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

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

/// Our own first instructions: `clone3` → `ENOSYS`, x32 numbers → `ENOSYS`. A syscall of
/// another architecture jumps straight to seccompiler's program, whose architecture check
/// kills the process.
fn prologue() -> Vec<libc::sock_filter> {
    let mut body = vec![stmt(BPF_LD_W_ABS, DATA_NR)];
    #[cfg(target_arch = "x86_64")]
    {
        body.push(jump(BPF_JMP_JGE_K, 0x4000_0000, 0, 1));
        body.push(stmt(BPF_RET_K, errno(libc::ENOSYS)));
    }
    body.push(jump(BPF_JMP_JEQ_K, libc::SYS_clone3 as u32, 0, 1));
    body.push(stmt(BPF_RET_K, errno(libc::ENOSYS)));
    let skip = u8::try_from(body.len()).expect("short prologue");
    let mut program = vec![
        stmt(BPF_LD_W_ABS, DATA_ARCH),
        // Not the native architecture: skip our checks (the numbers mean other syscalls).
        jump(BPF_JMP_JEQ_K, NATIVE.1, 0, skip),
    ];
    program.extend(body);
    program
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
            let args = match d.when {
                DenyWhen::Always => [0; 6],
                DenyWhen::NewNamespace => [libc::CLONE_NEWUSER as u64, 0, 0, 0, 0, 0],
                DenyWhen::NonDefaultPersona => [libc::ADDR_NO_RANDOMIZE as u64, 0, 0, 0, 0, 0],
                DenyWhen::TerminalInjection => [0, TIOCSTI, 0, 0, 0, 0],
            };
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
