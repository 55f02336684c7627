//! Background load for the benchmarks (`--load idle|busy|bursty`), and CPU-time accounting.
//!
//! * `idle`: nothing else runs (besides whatever else the machine runs);
//! * `busy`: one process per core spinning all the time;
//! * `bursty`: one process per core, 1 ms spinning, 1 ms asleep, over and over (a desktop's
//!   background work).
//!
//! The load processes are this binary re-executed with the hidden subcommand `load-worker`.
//! They are started and stopped by the benchmark itself: [`Load`] kills them when dropped
//! (normal return, error, panic), and each worker gets `PR_SET_PDEATHSIG` = `SIGKILL` for the
//! main thread that spawned it, so it also dies when the benchmark is killed. A worker also
//! exits on its own once its parent is gone (it checks `getppid` every few milliseconds).

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appipc_sys::process::{SpawnRequest, Spawned};

/// Which load runs beside the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadKind {
    Idle,
    Busy,
    Bursty,
}

impl LoadKind {
    pub fn parse(s: &str) -> Result<LoadKind> {
        Ok(match s {
            "idle" => LoadKind::Idle,
            "busy" => LoadKind::Busy,
            "bursty" => LoadKind::Bursty,
            _ => bail!("unknown load {s:?} (idle, busy, bursty)"),
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            LoadKind::Idle => "idle",
            LoadKind::Busy => "busy",
            LoadKind::Bursty => "bursty",
        }
    }

    /// `--load KIND` from the arguments (default idle).
    pub fn from_args(args: &[String]) -> Result<LoadKind> {
        match args.iter().position(|a| a == "--load") {
            Some(i) => LoadKind::parse(args.get(i + 1).map(String::as_str).unwrap_or("")),
            None => Ok(LoadKind::Idle),
        }
    }
}

/// The running load processes; dropping it kills and reaps them.
pub struct Load {
    kind: LoadKind,
    workers: Vec<Spawned>,
}

impl Load {
    /// Starts one worker per core (none for `idle`). Call from the main thread: the workers'
    /// parent-death signal follows the spawning thread.
    pub fn start(kind: LoadKind) -> Result<Load> {
        let mut load = Load { kind, workers: Vec::new() };
        if kind == LoadKind::Idle {
            return Ok(load);
        }
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        for _ in 0..cores {
            let w = appipc_sys::process::spawn(SpawnRequest {
                program: std::env::current_exe()?,
                args: vec![
                    "load-worker".into(),
                    kind.name().into(),
                    std::process::id().to_string().into(),
                ],
                env: vec![],
                cwd: "/".into(),
                stderr: Some(std::io::stderr().as_fd().try_clone_to_owned()?),
                parent_death_signal: Some(rustix::process::Signal::KILL),
                ..Default::default()
            })?;
            load.workers.push(w);
        }
        // Let them get going before anything is measured.
        std::thread::sleep(Duration::from_millis(50));
        Ok(load)
    }

    pub fn kind(&self) -> LoadKind {
        self.kind
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        for w in &self.workers {
            let _ = appipc_sys::process::send_signal(&w.pidfd, rustix::process::Signal::KILL);
        }
        for w in &self.workers {
            crate::wait(&w.pidfd);
        }
    }
}

/// The hidden subcommand `load-worker busy|bursty PARENT`: runs until killed, or until its
/// parent is gone.
pub fn worker(args: &[String]) -> Result<()> {
    let kind = LoadKind::parse(args.first().map(String::as_str).unwrap_or(""))?;
    let parent: u32 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let orphaned = || std::os::unix::process::parent_id() != parent;
    if orphaned() {
        return Ok(()); // the parent died before the death signal was armed
    }
    let mut x = 0u64;
    loop {
        let burst = Instant::now();
        // busy: check on the parent every 5 ms; bursty: 1 ms of work, then 1 ms asleep.
        let len = if kind == LoadKind::Busy { 5 } else { 1 };
        while burst.elapsed() < Duration::from_millis(len) {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        if kind == LoadKind::Bursty {
            std::thread::sleep(Duration::from_millis(1));
        }
        if orphaned() {
            return Ok(());
        }
    }
}

/// CPU time (user + system) of every thread of process `pid`, in nanoseconds, from
/// `/proc/PID/task/*/schedstat` (the scheduler's own runtime counter, in ns; `/proc/PID/stat`
/// counts in 10 ms ticks, too coarse for a few thousand round trips). Threads that exited
/// meanwhile are not counted, so measure over spans in which the threads live.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// The CPU time of a set of processes, read before and after a span.
pub struct CpuMeter {
    pids: Vec<u32>,
    start: Vec<u64>,
}

impl CpuMeter {
    pub fn start(pids: &[u32]) -> CpuMeter {
        CpuMeter { pids: pids.to_vec(), start: pids.iter().map(|&p| cpu_ns(p)).collect() }
    }

    /// The CPU time each process used since `start`, in ns, in the order given.
    pub fn stop(&self) -> Vec<u64> {
        self.pids.iter().zip(&self.start).map(|(&p, &s)| cpu_ns(p).saturating_sub(s)).collect()
    }
}

/// The processes below `root` (children, their children, …) whose command name is `comm`.
pub fn descendants_named(root: u32, comm: &str) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((head, rest)) = stat.rsplit_once(')') else { continue };
            let name = head.split_once('(').map(|(_, n)| n).unwrap_or("");
            let ppid = rest.split_whitespace().nth(1).and_then(|v| v.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid, name == comm));
            }
        }
    }
    let below = |mut pid: u32| {
        for _ in 0..64 {
            match parent_of.iter().find(|(p, ..)| *p == pid) {
                Some((_, pp, _)) if *pp == root => return true,
                Some((_, pp, _)) if *pp > 1 => pid = *pp,
                _ => return false,
            }
        }
        false
    };
    parent_of.iter().filter(|(p, _, named)| *named && below(*p)).map(|(p, ..)| *p).collect()
}

/// The 1-minute load average.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}
