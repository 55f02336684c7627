//! `escape-check`: runs inside an app container (launched by the broker as a packaged app)
//! and tries every way out, printing one JSON object on stdout:
//!
//! ```text
//! {"home_file_read": {"ok": false, "errno": 2, "detail": "..."}, ..., "identity": {...}}
//! ```
//!
//! `ok` says whether the attempt *succeeded*: escapes must report `false`, the things a
//! packaged app may do (its own data, its install folder, `/usr`) `true`. `errno` is the
//! error the kernel gave (or `null`). A check whose input was not given is left out.
//!
//! ```text
//! escape-check [--home-file PATH] [--host-tmp-file PATH] [--other-app-data PATH]
//!              [--broker-socket PATH] [--abstract NAME] [--host-pid PID] [--tcp PORT]
//!              [--own-data DIR] [--install-dir DIR]
//! ```
//!
//! The checks that change this process for good (`mount`, `unshare`) run last. Exit status 0
//! whatever the results (2 on bad arguments): the caller judges.
#![forbid(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use appipc_sys::probe;
use serde_json::{Map, Value, json};

#[derive(Debug, Default)]
struct Args {
    home_file: Option<PathBuf>,
    host_tmp_file: Option<PathBuf>,
    other_app_data: Option<PathBuf>,
    broker_socket: Option<PathBuf>,
    abstract_name: Option<String>,
    host_pid: Option<u32>,
    tcp: Option<u16>,
    own_data: Option<PathBuf>,
    install_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args_os().skip(1);
    while let Some(flag) = it.next() {
        let flag = flag.to_string_lossy().into_owned();
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let text = || value.to_string_lossy().into_owned();
        match flag.as_str() {
            "--home-file" => args.home_file = Some(value.into()),
            "--host-tmp-file" => args.host_tmp_file = Some(value.into()),
            "--other-app-data" => args.other_app_data = Some(value.into()),
            "--broker-socket" => args.broker_socket = Some(value.into()),
            "--abstract" => args.abstract_name = Some(text()),
            "--host-pid" => {
                args.host_pid = Some(text().parse().map_err(|e| format!("--host-pid: {e}"))?)
            }
            "--tcp" => args.tcp = Some(text().parse().map_err(|e| format!("--tcp: {e}"))?),
            "--own-data" => args.own_data = Some(value.into()),
            "--install-dir" => args.install_dir = Some(value.into()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// One result.
fn outcome(ok: bool, errno: Option<i32>, detail: impl Into<String>) -> Value {
    json!({ "ok": ok, "errno": errno, "detail": detail.into() })
}

/// The result of an attempt that should be judged by whether it succeeded.
fn attempt(r: io::Result<String>) -> Value {
    match r {
        Ok(detail) => outcome(true, None, detail),
        Err(e) => outcome(false, e.raw_os_error(), e.to_string()),
    }
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn read_file(p: &Path) -> io::Result<String> {
    std::fs::read(p).map(|b| format!("read {} bytes from {}", b.len(), p.display()))
}

fn list_dir(p: &Path) -> io::Result<String> {
    let n = std::fs::read_dir(p)?.count();
    Ok(format!("listed {n} entries in {}", p.display()))
}

fn list_parent(p: &Path) -> io::Result<String> {
    list_dir(p.parent().unwrap_or(Path::new("/")))
}

/// Reads `p` if it is a file, else the first regular file found below it.
fn read_file_or_first_in(p: &Path) -> io::Result<String> {
    if !p.is_dir() {
        return read_file(p);
    }
    let mut stack = vec![p.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            if ty.is_file() {
                return read_file(&entry.path());
            }
            if ty.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Err(io::Error::new(io::ErrorKind::NotFound, format!("no file below {}", p.display())))
}

fn checks(args: &Args) -> Map<String, Value> {
    let mut out = Map::new();
    let mut put = |name: &str, v: Value| {
        out.insert(name.to_string(), v);
    };

    put("status", self_status());

    if let Some(p) = &args.home_file {
        put("home_file_read", attempt(read_file(p)));
        put("home_dir_list", attempt(list_parent(p)));
    }
    if let Some(p) = &args.host_tmp_file {
        put("host_tmp_file_read", attempt(read_file(p)));
        put("host_tmp_dir_list", attempt(list_parent(p)));
    }
    if let Some(p) = &args.other_app_data {
        put("other_app_data_read", attempt(read_file_or_first_in(p)));
        put("other_app_data_list", attempt(if p.is_dir() { list_dir(p) } else { list_parent(p) }));
    }
    if let Some(p) = &args.broker_socket {
        let r = appipc_sys::socket::seqpacket_connect(p)
            .map(|_| format!("connected to {}", p.display()));
        put("broker_socket_connect", attempt(r));
    }
    if let Some(name) = &args.abstract_name {
        let r = probe::connect_abstract(name.as_bytes()).map(|()| format!("connected to @{name}"));
        put("abstract_connect", attempt(r));
    }
    if let Some(pid) = args.host_pid {
        let pid_note = format!("pid {pid} as numbered in this pid namespace");
        let note = |r: io::Result<()>| attempt(r.map(|()| pid_note.clone()));
        put("signal_host_0", note(probe::kill(pid, 0)));
        put("signal_host_cont", note(probe::kill(pid, libc::SIGCONT)));
        put("ptrace_host", note(probe::ptrace_seize(pid)));
        // EFAULT means the access check passed and only the (guessed) address was wrong.
        put(
            "process_vm_readv_host",
            match probe::process_vm_readv(pid, 0x10000) {
                Err(e) if e.raw_os_error() == Some(libc::EFAULT) => {
                    outcome(true, Some(libc::EFAULT), "access granted (bad address only)")
                }
                r => note(r),
            },
        );
        put("proc_host_pid", proc_host_pid(pid));
    }
    put("proc_list", proc_list());
    if let Some(port) = args.tcp {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let r = TcpStream::connect_timeout(&addr, Duration::from_secs(1))
            .map(|_| format!("connected to {addr}"));
        put("tcp_connect_host", attempt(r));
    }
    put("bpf_prog_load", attempt(probe::bpf_prog_load().map(|()| "loaded".to_string())));
    if let Some(dir) = &args.own_data {
        put("own_data_write_read", own_data(dir));
    }
    put("usr_bin_env_read", attempt(read_file(Path::new("/usr/bin/env"))));
    if let Some(dir) = &args.install_dir {
        put("install_dir_read", attempt(read_file_or_first_in(dir)));
        put("install_dir_create", install_dir_create(dir));
    }

    // Last: these change this process for good if they succeed.
    put("mount_tmpfs", mount_tmpfs(args.own_data.as_deref()));
    put(
        "unshare_user",
        attempt(probe::unshare(libc::CLONE_NEWUSER).map(|()| "new user namespace".to_string())),
    );
    out
}

/// `NoNewPrivs`, `Seccomp`, `Seccomp_filters` and `CapEff` from `/proc/self/status`.
fn self_status() -> Value {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => {
            let keep = ["NoNewPrivs", "Seccomp", "Seccomp_filters", "CapEff", "NSpid"];
            let fields: Vec<String> = s
                .lines()
                .filter(|l| keep.iter().any(|k| l.split(':').next() == Some(k)))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            outcome(true, None, fields.join("; "))
        }
        Err(e) => outcome(false, e.raw_os_error(), e.to_string()),
    }
}

/// Whether `/proc/<pid>` of the host pid is visible (it must not be).
fn proc_host_pid(pid: u32) -> Value {
    let p = PathBuf::from(format!("/proc/{pid}"));
    match std::fs::metadata(&p) {
        Ok(_) => {
            let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
            outcome(true, None, format!("{} is visible (comm {:?})", p.display(), comm.trim()))
        }
        Err(e) => outcome(false, e.raw_os_error(), format!("{}: {e}", p.display())),
    }
}

/// The numeric entries of `/proc`: how many processes this sandbox can see.
fn proc_list() -> Value {
    match std::fs::read_dir("/proc") {
        Ok(rd) => {
            let mut pids: Vec<u32> =
                rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
            pids.sort_unstable();
            outcome(true, None, format!("{} processes visible: {pids:?}", pids.len()))
        }
        Err(e) => outcome(false, e.raw_os_error(), e.to_string()),
    }
}

fn own_data(dir: &Path) -> Value {
    let p = dir.join("escape-check.txt");
    let content = format!("escape-check {}", std::process::id());
    let r = std::fs::write(&p, &content).and_then(|()| std::fs::read_to_string(&p));
    match r {
        Ok(back) if back == content => {
            let _ = std::fs::remove_file(&p);
            outcome(true, None, format!("wrote and read back {}", p.display()))
        }
        Ok(back) => outcome(false, None, format!("read back {back:?}, wrote {content:?}")),
        Err(e) => outcome(false, e.raw_os_error(), format!("{}: {e}", p.display())),
    }
}

fn install_dir_create(dir: &Path) -> Value {
    let p = dir.join(format!("escape-check-{}", std::process::id()));
    let r = cpath(&p).and_then(|c| probe::create_file(&c));
    if r.is_ok() {
        let _ = std::fs::remove_file(&p);
    }
    attempt(r.map(|()| format!("created {}", p.display())))
}

fn mount_tmpfs(own_data: Option<&Path>) -> Value {
    // A folder of our own if we have one (so a success hides nothing of the app), else /tmp.
    let target = match own_data {
        Some(d) => {
            let t = d.join("escape-check-mnt");
            let _ = std::fs::create_dir(&t);
            t
        }
        None => PathBuf::from("/tmp"),
    };
    let r = cpath(&target).and_then(|c| {
        probe::mount_tmpfs(&c)?;
        let _ = probe::umount(&c);
        Ok(format!("mounted a tmpfs on {}", target.display()))
    });
    if own_data.is_some() {
        let _ = std::fs::remove_dir(&target);
    }
    attempt(r)
}

/// What the broker attests about this process, through the inherited session.
fn identity() -> Value {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return json!({ "error": format!("tokio runtime: {e}") }),
    };
    let r = rt.block_on(async {
        let session = appipc::Session::connect().await?;
        appipc::ProcessIdentity::query(&session).await
    });
    match r {
        Ok(id) => {
            let i = id.0;
            json!({
                "pid": i.pid,
                "uid": i.uid,
                "package_full_name": i.package_full_name,
                "package_family_name": i.package_family_name,
                "app_id": i.app_id,
                "trust": format!("{:?}", i.trust),
                "capabilities": i.capabilities,
                "package_sid": i.package_sid,
            })
        }
        Err(e) => json!({ "error": e.to_string() }),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("escape-check: {e}");
            std::process::exit(2);
        }
    };
    // Identity first: the later checks may leave this process in a new user namespace.
    let identity = identity();
    let mut out = checks(&args);
    out.insert("identity".to_string(), identity);
    println!("{}", Value::Object(out));
}
