//! Spawning children with an exact fd table, pidfds, signals and reaping.
//!
//! Note on `PR_SET_PDEATHSIG`: the signal is sent when the *thread* that forked the child
//! exits, not the process. Callers that use [`SpawnRequest::parent_death_signal`] must spawn
//! from a thread that lives as long as the children should (the broker has one launcher
//! thread for this).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

/// The highest fd number a child may receive an fd at (exclusive).
pub const MAX_TARGET_FD: u32 = 64;

/// What to start and with which fds.
#[derive(Debug, Default)]
pub struct SpawnRequest {
    /// The executable (an absolute path; no `PATH` search).
    pub program: PathBuf,
    /// Arguments after `argv[0]` (`argv[0]` is the program path).
    pub args: Vec<OsString>,
    /// The child's whole environment; nothing of the parent's is inherited.
    pub env: Vec<(OsString, OsString)>,
    /// Working directory.
    pub cwd: PathBuf,
    /// fd 0; `None` gives `/dev/null`.
    pub stdin: Option<OwnedFd>,
    /// fd 1; `None` gives `/dev/null`.
    pub stdout: Option<OwnedFd>,
    /// fd 2; `None` gives `/dev/null`.
    pub stderr: Option<OwnedFd>,
    /// Further fds, each placed at the given number (3 ..`MAX_TARGET_FD`). Every other fd is
    /// closed at exec.
    pub fds: Vec<(u32, OwnedFd)>,
    /// Signal the child receives when the spawning thread dies (`PR_SET_PDEATHSIG`).
    pub parent_death_signal: Option<Signal>,
    /// Start the child in a new session (`setsid`), detached from the caller's terminal.
    pub new_session: bool,
    /// Confine the child in an app container (see [`crate::sandbox`]). The pid reported is
    /// then that of a waiter outside the container's pid namespace, which ends as the app
    /// ends, and forwards `SIGHUP`, `SIGINT`, `SIGQUIT`, `SIGTERM`, `SIGUSR1` and `SIGUSR2` to
    /// it; killing it (`SIGKILL`) kills the app.
    pub confinement: Option<std::sync::Arc<crate::sandbox::Confinement>>,
    /// A seccomp filter an unconfined child installs last, just before `exec` (a packaged
    /// full-trust process's `connect` supervision,
    /// [`crate::seccomp_notify::supervised_full_trust`]), and the pid of its supervisor, which
    /// the child declares its ptracer (`PR_SET_PTRACER`, for Yama's `ptrace_scope` 1: the
    /// supervisor reads the child's connect addresses and duplicates its sockets).
    pub notify: Option<(crate::seccomp_notify::NotifyFilter, u32)>,
}

/// A started child.
#[derive(Debug)]
pub struct Spawned {
    /// Its process id.
    pub pid: u32,
    /// A pidfd for it; the child stays a zombie until [`try_reap`] collects it.
    pub pidfd: OwnedFd,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Terminating signal, if it was killed.
    pub signal: Option<i32>,
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            (None, None) => f.write_str("unknown status"),
        }
    }
}

/// Why a spawn failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// An fd target outside 3..`MAX_TARGET_FD` or given twice.
    #[error("fd target {0} is invalid (must be unique, 3 to {MAX_TARGET_FD})")]
    BadTarget(u32),
    /// Moving an fd out of the way before the fork failed.
    #[error("spawn: duplicating fd failed: {0}")]
    Dup(#[source] io::Error),
    /// fork or exec failed (for example the program does not exist or is not executable).
    #[error("spawn: starting {program} failed: {source}")]
    Exec {
        /// The program.
        program: String,
        /// The error from fork/exec.
        #[source]
        source: io::Error,
    },
    /// `pidfd_open` on the new child failed.
    #[error("spawn: pidfd_open failed: {0}")]
    Pidfd(#[source] io::Error),
    /// A step of the app container's set-up failed in the child (which step, and its errno).
    #[error(transparent)]
    Confinement(#[from] crate::sandbox::ConfinementError),
}

/// Starts a child process as described. The child gets exactly fds 0, 1, 2 and the requested
/// extra fds; everything else is closed at exec.
pub fn spawn(req: SpawnRequest) -> Result<Spawned, SpawnError> {
    let mut seen = [false; MAX_TARGET_FD as usize];
    // Move every extra fd above the target range first, so that placing one at its target
    // in the child can never overwrite another that has not been placed yet.
    let mut moved: Vec<(OwnedFd, RawFd)> = Vec::with_capacity(req.fds.len());
    for (target, fd) in &req.fds {
        if *target < 3 || *target >= MAX_TARGET_FD || seen[*target as usize] {
            return Err(SpawnError::BadTarget(*target));
        }
        seen[*target as usize] = true;
        let high = rustix::io::fcntl_dupfd_cloexec(fd, MAX_TARGET_FD as RawFd)
            .map_err(|e| SpawnError::Dup(e.into()))?;
        moved.push((high, *target as RawFd));
    }
    let plan: Vec<(RawFd, RawFd)> = moved.iter().map(|(fd, t)| (fd.as_raw_fd(), *t)).collect();
    // A confined child reports the step that failed through this pipe (its write end placed
    // above every target, close-on-exec, so the app never sees it).
    let report_pipe = match &req.confinement {
        Some(_) => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| SpawnError::Dup(e.into()))?;
            let w = rustix::io::fcntl_dupfd_cloexec(&w, MAX_TARGET_FD as RawFd)
                .map_err(|e| SpawnError::Dup(e.into()))?;
            Some((r, w))
        }
        None => None,
    };
    let report = report_pipe.as_ref().map(|(_, w)| crate::sandbox::Report(w.as_raw_fd()));
    let first_free = plan.iter().map(|(_, t)| *t + 1).max().unwrap_or(3).max(3) as libc::c_uint;
    let death_signal = req.parent_death_signal.map(|s| s.as_raw());
    let parent = rustix::process::getpid().as_raw_nonzero().get();
    let new_session = req.new_session;
    let confinement = req.confinement.clone();
    let notify = req.notify;

    let mut cmd = Command::new(&req.program);
    cmd.args(&req.args).env_clear().envs(req.env.iter().map(|(k, v)| (k, v))).current_dir(&req.cwd);
    cmd.stdin(req.stdin.map(Stdio::from).unwrap_or_else(Stdio::null));
    cmd.stdout(req.stdout.map(Stdio::from).unwrap_or_else(Stdio::null));
    cmd.stderr(req.stderr.map(Stdio::from).unwrap_or_else(Stdio::null));
    let hook = move || -> io::Result<()> {
        // Runs in the forked child before exec: only async-signal-safe raw syscalls, no
        // allocation (`plan` was built before the fork and is only read).
        for &(from, to) in &plan {
            // SAFETY: `from` is an fd this process owns (a close-on-exec duplicate made above
            // and still open, since `moved` lives until after the spawn); `to` is a number
            // below MAX_TARGET_FD. dup2 replaces whatever `to` held, which is intended: the
            // child's fd table is being laid out. The result has no close-on-exec flag.
            if unsafe { libc::dup2(from, to) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on fds in the range;
        // it touches no memory. Every fd above the placed ones is closed at exec.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                first_free,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if let Some(sig) = death_signal {
            // SAFETY: prctl(PR_SET_PDEATHSIG, sig) takes plain integers and touches no memory.
            if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) } < 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody will signal us.
            // SAFETY: getppid has no preconditions.
            if unsafe { libc::getppid() } != parent {
                return Err(io::Error::other("parent exited during spawn"));
            }
        }
        if new_session {
            // SAFETY: setsid has no memory arguments; the child is not a group leader.
            if unsafe { libc::setsid() } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let (Some(c), Some(report)) = (&confinement, report) {
            c.enter(report)?;
        }
        if let Some((filter, supervisor)) = &notify {
            // SAFETY: prctl(PR_SET_PTRACER, pid) takes plain integers and touches no memory;
            // without Yama it fails (EINVAL), which changes nothing.
            unsafe { libc::prctl(libc::PR_SET_PTRACER, *supervisor as libc::c_ulong, 0, 0, 0) };
            filter.apply()?;
        }
        Ok(())
    };
    // SAFETY: the hook runs between fork and exec in the child. It calls only
    // async-signal-safe functions (dup2, close_range, prctl, getppid, setsid, and the
    // seccomp filter's raw syscalls), allocates nothing and takes no locks; see the comments
    // inside.
    unsafe {
        cmd.pre_exec(hook);
    }
    let spawned = cmd.spawn();
    drop(moved);
    let child = match (spawned, report_pipe) {
        (Ok(child), _) => child,
        (Err(source), Some((read_end, write_end))) => {
            drop(write_end);
            // The failed children have exited (std reaped the first): what they wrote is there.
            let conf = req.confinement.as_deref().expect("a report pipe means a confinement");
            return Err(match crate::sandbox::Report::read(&read_end, conf) {
                Some(e) => SpawnError::Confinement(e),
                None => SpawnError::Exec { program: req.program.display().to_string(), source },
            });
        }
        (Err(source), None) => {
            return Err(SpawnError::Exec { program: req.program.display().to_string(), source });
        }
    };
    let pid = child.id();
    // The child is ours and not yet reaped, so its pid cannot have been reused.
    let pidfd = pidfd_open(pid).map_err(SpawnError::Pidfd)?;
    // `Child` neither kills nor reaps on drop; reaping goes through the pidfd.
    drop(child);
    Ok(Spawned { pid, pidfd })
}

/// `pidfd_open(pid)`.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid =
        Pid::from_raw(pid as i32).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?)
}

/// The pid a pidfd refers to, from `/proc/self/fdinfo` (`-1` there means it has exited and
/// been reaped).
pub fn pidfd_pid(pidfd: impl AsFd) -> io::Result<u32> {
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_fd().as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|p| *p > 0)
        .map(|p| p as u32)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "process has exited"))
}

/// Sends a signal through a pidfd (no pid-reuse race).
pub fn send_signal(pidfd: impl AsFd, signal: Signal) -> io::Result<()> {
    Ok(rustix::process::pidfd_send_signal(pidfd, signal)?)
}

/// Reaps a child through its pidfd if it has exited; `Ok(None)` while it still runs.
/// Only works for children of this process.
pub fn try_reap(pidfd: impl AsFd) -> io::Result<Option<ExitStatus>> {
    let status = rustix::process::waitid(
        WaitId::PidFd(pidfd.as_fd()),
        WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
    )?;
    Ok(status.map(|s| ExitStatus { code: s.exit_status(), signal: s.terminating_signal() }))
}

/// Who a process is beyond its pid, which the kernel reuses: what a broker records of each
/// process it starts, to find that very process again after a restart (see [`adopt`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessIdentity {
    /// Its process id.
    pub pid: u32,
    /// When it started, in clock ticks after boot (`/proc/<pid>/stat`, field 22).
    pub start_time: u64,
    /// The boot it started in (`/proc/sys/kernel/random/boot_id`): start times count from it.
    pub boot_id: String,
    /// The inode number of its pidfds on pidfs (Linux 6.9+), unique among the processes of
    /// one boot; `None` where pidfds are anonymous inodes.
    pub pidfs_inode: Option<u64>,
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?.trim().to_owned())
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks after boot.
pub fn start_time(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    stat_start_time(&stat).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}/stat: no start time"))
    })
}

/// Field 22 of a `/proc/<pid>/stat` line.
fn stat_start_time(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold anything, spaces and ')'
    // included: count fields after its last ')'. Fields 3.. follow; 22 is the 20th of them.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// The pidfs inode number of a pidfd, where pidfds live on pidfs (Linux 6.9+).
pub fn pidfs_inode(pidfd: impl AsFd) -> Option<u64> {
    const PID_FS_MAGIC: u64 = 0x5049_4446;
    let fs = rustix::fs::fstatfs(&pidfd).ok()?;
    #[allow(clippy::unnecessary_cast)]
    if fs.f_type as u64 != PID_FS_MAGIC {
        return None;
    }
    rustix::fs::fstat(&pidfd).ok().map(|st| st.st_ino)
}

/// Whether the process behind a pidfd has exited (its pidfd is readable), without waiting.
pub fn has_exited(pidfd: impl AsFd) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    matches!(poll(&mut fds, Some(&Timespec { tv_sec: 0, tv_nsec: 0 })), Ok(n) if n > 0)
}

/// The identity of the live process behind `pidfd`, whose pid is `pid` (for a child just
/// spawned, or a pidfd just opened). Fails if it has exited meanwhile: the start time read
/// from `/proc/<pid>/stat` then might be another process's.
pub fn identify(pidfd: impl AsFd, pid: u32) -> io::Result<ProcessIdentity> {
    let start_time = start_time(pid)?;
    // The pidfd still names a live process after the read, so /proc/<pid> was that process
    // while we read it (a pid is reused only after its process was reaped).
    if has_exited(&pidfd) {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("process {pid} has exited")));
    }
    Ok(ProcessIdentity { pid, start_time, boot_id: boot_id()?, pidfs_inode: pidfs_inode(&pidfd) })
}

/// A pidfd for the process `recorded` describes, if that very process still runs: the
/// process now holding its pid must have started at the same time in the same boot (and have
/// the same pidfs inode, where both are known). A pid reused by another process, or a process
/// that has exited (a zombie too), gives `None`.
pub fn adopt(recorded: &ProcessIdentity) -> io::Result<Option<OwnedFd>> {
    if boot_id()? != recorded.boot_id {
        return Ok(None);
    }
    let pidfd = match pidfd_open(recorded.pid) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(None),
        Err(e) => return Err(e),
    };
    let now = match identify(&pidfd, recorded.pid) {
        Ok(now) => now,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let same_inode = match (now.pidfs_inode, recorded.pidfs_inode) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    Ok((now.start_time == recorded.start_time && same_inode).then_some(pidfd))
}

/// `struct pidfd_info` as of Linux 6.15 (`PIDFD_INFO_SIZE_VER0`, 64 bytes).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

/// How a process that is not our child ended, from its pidfd (`PIDFD_GET_INFO` with
/// `PIDFD_INFO_EXIT`, Linux 6.15+). The kernel records it when the process is reaped by its
/// parent (for an orphan, the nearest subreaper or init): `Ok(None)` while it is not reaped,
/// or when the kernel does not know the ioctl.
pub fn exit_info(pidfd: impl AsFd) -> io::Result<Option<ExitStatus>> {
    const PIDFD_INFO_EXIT: u64 = 1 << 3;
    // _IOWR(PIDFS_IOCTL_MAGIC 0xFF, 11, struct pidfd_info)
    const PIDFD_GET_INFO: libc::c_ulong =
        (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as libc::c_ulong) << 16) | (0xFF << 8) | 11;
    let mut info = PidfdInfo { mask: PIDFD_INFO_EXIT, ..Default::default() };
    // SAFETY: the fd is borrowed for the call; `info` is a live, initialized, repr(C) value
    // whose size is the one encoded in the request number, so the kernel reads and writes at
    // most that many bytes of it.
    let rc = unsafe {
        libc::ioctl(pidfd.as_fd().as_raw_fd(), PIDFD_GET_INFO as _, &mut info as *mut PidfdInfo)
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            // Not a kernel with PIDFD_GET_INFO, or the process is gone without exit info.
            Some(libc::ENOTTY | libc::EINVAL | libc::ESRCH) => Ok(None),
            _ => Err(e),
        };
    }
    if info.mask & PIDFD_INFO_EXIT == 0 {
        return Ok(None);
    }
    let w = info.exit_code;
    Ok(Some(if libc::WIFSIGNALED(w) {
        ExitStatus { code: None, signal: Some(libc::WTERMSIG(w)) }
    } else {
        ExitStatus { code: Some(libc::WEXITSTATUS(w)), signal: None }
    }))
}

/// Closes every fd above 2 this process inherited (for a helper that must hold nothing of
/// its parent's, whatever flags the parent's fds had).
pub fn close_inherited_fds() -> io::Result<()> {
    // SAFETY: close_range takes integers; the fds closed belong to this process and, by the
    // caller's contract (a process that has just started), nothing in it owns or uses them.
    let rc =
        unsafe { libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, 0) };
    if rc < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Makes this process a subreaper (`PR_SET_CHILD_SUBREAPER`): orphaned descendants become its
/// children instead of init's, as under a service manager.
pub fn become_child_subreaper() -> io::Result<()> {
    Ok(rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?)
}

/// Reaps any one child that has exited, without waiting: its pid and status, or `None`.
pub fn reap_any() -> io::Result<Option<(u32, ExitStatus)>> {
    use rustix::process::WaitOptions;
    match rustix::process::wait(WaitOptions::NOHANG) {
        Ok(Some((pid, s))) => Ok(Some((
            pid.as_raw_nonzero().get() as u32,
            ExitStatus { code: s.exit_status(), signal: s.terminating_signal() },
        ))),
        Ok(None) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub use rustix::process::Signal as ProcessSignal;

/// Raises this process's soft limit of open files to its hard limit (at most 2^20) and returns
/// the new soft limit: a broker holds an fd per named object, token and session, and the
/// default soft limit (often 1024) would let a few busy clients exhaust it.
pub fn raise_open_file_limit() -> io::Result<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let want = now.maximum.unwrap_or(1 << 20).min(1 << 20);
    if now.current.is_some_and(|c| c >= want) {
        return Ok(now.current.unwrap_or(want));
    }
    setrlimit(Resource::Nofile, Rlimit { current: Some(want), maximum: now.maximum })?;
    Ok(want)
}

/// Sets the calling thread's nice value (Linux gives each thread its own: the process's other
/// threads keep theirs). Raising it needs no privilege; lowering it needs `CAP_SYS_NICE`.
pub fn set_thread_nice(nice: i32) -> io::Result<()> {
    rustix::process::setpriority_process(None, nice).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> SpawnRequest {
        SpawnRequest {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            cwd: "/".into(),
            ..Default::default()
        }
    }

    fn wait(pidfd: &OwnedFd) -> ExitStatus {
        loop {
            if let Some(s) = try_reap(pidfd).unwrap() {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn exit_code_and_fd_placement() {
        let (a, b) = crate::socket::stream_pair().unwrap();
        let mut req = sh("printf hello >&5; ls /proc/self/fd | wc -l >&5; exit 7");
        req.fds.push((5, b));
        let child = spawn(req).unwrap();
        assert_eq!(wait(&child.pidfd), ExitStatus { code: Some(7), signal: None });
        let mut out = String::new();
        use std::io::Read;
        std::fs::File::from(a).read_to_string(&mut out).unwrap();
        // fds 0,1,2,5 plus the one `ls` opens for /proc/self/fd.
        assert_eq!(out, "hello5\n");
    }

    #[test]
    fn signal_through_pidfd() {
        let child = spawn(sh("sleep 30")).unwrap();
        send_signal(&child.pidfd, Signal::KILL).unwrap();
        assert_eq!(wait(&child.pidfd).signal, Some(9));
    }

    #[test]
    fn a_process_is_found_again_by_its_identity_not_its_pid() {
        let child = spawn(sh("sleep 30")).unwrap();
        let id = identify(&child.pidfd, child.pid).unwrap();
        assert!(id.start_time > 0 && !id.boot_id.is_empty());
        assert!(adopt(&id).unwrap().is_some(), "the same process");
        // The same pid with another start time is another process (a reused pid).
        let reused = ProcessIdentity { start_time: id.start_time + 1, ..id.clone() };
        assert!(adopt(&reused).unwrap().is_none());
        let other_boot = ProcessIdentity { boot_id: "another boot".into(), ..id.clone() };
        assert!(adopt(&other_boot).unwrap().is_none());
        send_signal(&child.pidfd, Signal::KILL).unwrap();
        // A zombie has exited: not adopted either.
        while !has_exited(&child.pidfd) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(adopt(&id).unwrap().is_none());
        let status = wait(&child.pidfd);
        assert_eq!(status.signal, Some(9));
        assert!(adopt(&id).unwrap().is_none());
        // Reaped: where the kernel records it, the status can be read from the pidfd.
        match exit_info(&child.pidfd).unwrap() {
            Some(s) => assert_eq!(s, status),
            None => eprintln!("this kernel does not report exit status through pidfds"),
        }
    }

    #[test]
    fn start_time_survives_odd_command_names() {
        let line = "77 (a) b (c) d) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 \
                    1000 10 18446744073709551615";
        assert_eq!(stat_start_time(line), Some(123456));
        assert_eq!(stat_start_time("77 (x"), None);
        assert!(start_time(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn missing_program() {
        let mut req = sh("");
        req.program = "/nonexistent/program".into();
        assert!(matches!(spawn(req), Err(SpawnError::Exec { .. })));
    }

    #[test]
    fn bad_target() {
        let (_a, b) = crate::socket::stream_pair().unwrap();
        let mut req = sh("");
        req.fds.push((2, b));
        assert!(matches!(spawn(req), Err(SpawnError::BadTarget(2))));
    }
}
