//! `test-reaper`: what a service manager (systemd's user manager) is to a broker, for the
//! tests. It is a subreaper, so the processes a broker started become its children when the
//! broker dies, and it reaps them, as the user manager does (the kernel then reports their exit
//! status to a restarted broker through their pidfds); when the test is over it ends every one
//! of them, as stopping a user's service ends its cgroup.
//!
//! ```text
//! test-reaper PROGRAM [ARGS...]
//!   stdin:  {"log": LOG, "env": [[K, V], ...]}   start PROGRAM with these variables set (over
//!           the reaper's own), its stdout and stderr appended to LOG
//!   stdout: "started PID", and "exited PID CODE SIGNAL" when such a started program ends
//!   end of stdin: kill every child (and every orphan that becomes one), reap, exit
//! ```
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

fn children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let after = stat.rfind(')').map(|i| &stat[i + 1..]).unwrap_or("");
            after.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) == Some(me)
        })
        .collect()
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: test-reaper PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    appipc_sys::process::become_child_subreaper().expect("PR_SET_CHILD_SUBREAPER");
    let started: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let started = started.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            loop {
                match appipc_sys::process::reap_any() {
                    Ok(Some((pid, status))) => {
                        if started.lock().unwrap().remove(&pid) {
                            let code = status.code.map(|c| c.to_string()).unwrap_or("-".into());
                            let sig = status.signal.map(|s| s.to_string()).unwrap_or("-".into());
                            say(format!("exited {pid} {code} {sig}"));
                        }
                    }
                    Ok(None) | Err(_) => {
                        if done.load(std::sync::atomic::Ordering::SeqCst) && children().is_empty() {
                            std::process::exit(0);
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
            }
        });
    }
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Ok(start) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
        let Some(log) = start["log"].as_str() else { continue };
        let env: Vec<(String, String)> = start["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|kv| Some((kv[0].as_str()?.to_owned(), kv[1].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log");
        // Reaped by this subreaper's wait loop (it reaps every child and orphan), not here.
        #[allow(clippy::zombie_processes)]
        let child = std::process::Command::new(program)
            .args(rest)
            .envs(env)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("starting the program");
        started.lock().unwrap().insert(child.id());
        say(format!("started {}", child.id()));
    }
    // The test is over: everything still here goes (orphans keep arriving while their parents
    // die, so until nothing is left).
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    loop {
        for pid in children() {
            // Our child, not reaped yet: its pid names it.
            if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
