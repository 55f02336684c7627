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
//!              [--own-data DIR] [--install-dir DIR] [--writable DIR]...
//! ```
//!
//! Always checked: the socket families and protocols (`socket_family_<n>`, `netlink_<n>`,
//! `mptcp_inet`, `mptcp_inet6`: each with the errno of every socket type tried in `detail`;
//! `sockets_allowed`), fanotify and inotify, metadata changes of the bound devices and their
//! ordinary use, device creation, signalling pid 1, the uid maps (`id_maps`), and for `/tmp`,
//! `$TMPDIR`, `/dev/shm` and every `--writable` folder: create, write, read and delete a file
//! (`writable:<dir>`), run a program copied there (`exec:<dir>`) and map a file there
//! executable (`mmap_exec:<dir>`). In the first writable folder: set-id bits by `chmod`,
//! `open` and `mknod` (`setuid_chmod`, `setgid_chmod`, `setuid_create`, `setuid_mknod`); mode
//! and attribute changes of a file of its own, as programs make them (`chmod_path`,
//! `chmod_fd`, `chmod_nofollow` (glibc's `fchmodat(AT_SYMLINK_NOFOLLOW)`),
//! `chmod_proc_self_fd`, `chmod_through_link`, `cp_p`, `python_copy2`, `tar_p`, `user_xattr`),
//! of files it holds that are not on its mounts (`own_memfd_chmod`, `stderr_chmod`), and what
//! a `chmod` costs (`chmod_cost`: the median of 500, in `median_ns`); and a file
//! `escape-check.marker` is left behind for the caller to inspect.
//!
//! The checks that change this process for good (`mount`, `unshare`) run last. Exit status 0
//! whatever the results (2 on bad arguments): the caller judges.
//!
//! `escape-check --tty-check RDEV` checks the terminal instead, for a caller that runs
//! `appipc launch --wait` in a terminal whose device number is `RDEV`: it prints one JSON
//! object (`tty_fds`: whether fds 0–2 are terminals; `host_tty_fd`: whether one of them *is*
//! that terminal; `tty_chmod`: `fchmod(0, 0666)`; `tty_winsize`; `ctty`: whether `/dev/tty`
//! opens; `tty_mess`: turning echo and line editing off and leaving them so), then `ready`,
//! then waits for `SIGWINCH` and prints `winsize <rows>x<cols>`, then reads a line and prints
//! `got:<line>`, then reads again until the end of input or a signal ends it.
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
    writable: Vec<PathBuf>,
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
            "--writable" => args.writable.push(value.into()),
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

/// Whether the folder of `p` can be listed and shows `p` (the host's folder).
fn host_dir_shows(p: &Path) -> Value {
    let parent = p.parent().unwrap_or(Path::new("/"));
    let name = p.file_name().unwrap_or_default();
    match std::fs::read_dir(parent) {
        Ok(rd) => {
            if rd.flatten().any(|e| e.file_name() == name) {
                outcome(true, None, format!("{} is listed in {}", p.display(), parent.display()))
            } else {
                let note =
                    format!("{} is listed but does not show {}", parent.display(), p.display());
                outcome(false, Some(libc::ENOENT), note)
            }
        }
        Err(e) => outcome(false, e.raw_os_error(), format!("{}: {e}", parent.display())),
    }
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
        // Inside, /tmp is the app's own TempState: listing it is fine, seeing the host's
        // file in it is not.
        put("host_tmp_dir_list", host_dir_shows(p));
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

    sockets(&mut put);
    put("fanotify_init", attempt(probe::fanotify_init().map(|()| "fanotify group".into())));
    put(
        "inotify_usr",
        attempt(
            probe::inotify_watch(c"/usr/bin").map(|()| "watching opens in /usr/bin".to_string()),
        ),
    );
    devices(&mut put);
    put("signal_init", attempt(probe::kill(1, 0).map(|()| "pid 1 may be signalled".into())));
    put("id_maps", id_maps());
    let mut dirs: Vec<(String, PathBuf)> =
        ["/tmp", "/dev/shm"].iter().map(|d| ((*d).to_owned(), PathBuf::from(d))).collect();
    if let Some(t) = std::env::var_os("TMPDIR") {
        dirs.push(("$TMPDIR".to_owned(), PathBuf::from(t)));
    }
    dirs.extend(args.writable.iter().map(|d| (d.display().to_string(), d.clone())));
    for (d, dir) in &dirs {
        put(&format!("writable:{d}"), writable(dir));
        put(&format!("unix_bind:{d}"), unix_bind(dir));
        put(&format!("exec:{d}"), exec_from(dir));
        put(
            &format!("mmap_exec:{d}"),
            attempt(copy_true(dir, "mmap").and_then(|p| cpath(&p).map(|c| (p, c))).and_then(
                |(p, c)| {
                    let r = probe::mmap_exec_file(&c);
                    let _ = std::fs::remove_file(&p);
                    r.map(|()| format!("mapped {} executable", p.display()))
                },
            )),
        );
    }
    // Socket files where Landlock gives no `make_sock` (the supervisor makes them for the app).
    put("unix_bind_dev", unix_bind(Path::new("/dev")));
    put("unix_bind_root", unix_bind(Path::new("/")));
    if let Some(dir) = &args.install_dir {
        put("unix_bind_install_dir", unix_bind(dir));
    }
    put(
        "mmap_exec_anonymous",
        attempt(probe::mmap_exec_anonymous().map(|()| "anonymous PROT_EXEC page".into())),
    );
    if let Some(dir) = args.writable.first() {
        set_id(dir, &mut put);
        modes(dir, &mut put);
        let marker = dir.join("escape-check.marker");
        put(
            "marker",
            attempt(
                std::fs::write(&marker, "left by escape-check")
                    .map(|()| format!("left {}", marker.display())),
            ),
        );
    }

    // Last: these change this process for good if they succeed.
    put("mount_tmpfs", mount_tmpfs(args.own_data.as_deref()));
    put(
        "unshare_user",
        attempt(probe::unshare(libc::CLONE_NEWUSER).map(|()| "new user namespace".to_string())),
    );
    out
}

/// The socket families other than the four allowed, netlink protocols other than route, MPTCP,
/// and the ordinary sockets that must work.
fn sockets(put: &mut impl FnMut(&str, Value)) {
    let types = [libc::SOCK_STREAM, libc::SOCK_DGRAM, libc::SOCK_SEQPACKET, libc::SOCK_RAW];
    let try_all = |domain: i32, protocol: i32| -> Value {
        let results: Vec<Option<i32>> = types
            .iter()
            .map(|ty| {
                probe::socket(domain, *ty, protocol).err().map(|e| e.raw_os_error().unwrap_or(-1))
            })
            .collect();
        let ok = results.iter().any(Option::is_none);
        let errno = results.iter().flatten().next().copied();
        let errnos: Vec<i32> = results.iter().map(|r| r.unwrap_or(0)).collect();
        let mut v =
            outcome(ok, errno, format!("errnos by type stream,dgram,seqpacket,raw: {errnos:?}"));
        v["errnos"] = json!(errnos);
        v
    };
    // AF_MAX is 46 on Linux 6.18 (AF_MCTP is 45); a few more for newer kernels.
    for family in 0..50 {
        if appipc_sys::seccomp::ALLOWED_SOCKET_FAMILIES.contains(&family) {
            continue;
        }
        put(&format!("socket_family_{family}"), try_all(family, 0));
    }
    for protocol in 1..32 {
        put(&format!("netlink_{protocol}"), try_all(libc::AF_NETLINK, protocol));
    }
    let mptcp = appipc_sys::seccomp::IPPROTO_MPTCP;
    put(
        "mptcp_inet",
        attempt(
            probe::socket(libc::AF_INET, libc::SOCK_STREAM, mptcp).map(|()| "mptcp socket".into()),
        ),
    );
    put(
        "mptcp_inet6",
        attempt(
            probe::socket(libc::AF_INET6, libc::SOCK_STREAM, mptcp).map(|()| "mptcp socket".into()),
        ),
    );
    let allowed = [
        (libc::AF_UNIX, libc::SOCK_STREAM, 0),
        (libc::AF_UNIX, libc::SOCK_DGRAM, 0),
        (libc::AF_UNIX, libc::SOCK_SEQPACKET, 0),
        (libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_TCP),
        (libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        (libc::AF_INET6, libc::SOCK_STREAM, 0),
        (libc::AF_INET6, libc::SOCK_DGRAM, 0),
        (libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE),
    ];
    let r = allowed.iter().try_for_each(|&(d, t, p)| {
        probe::socket(d, t, p).map_err(|e| io::Error::new(e.kind(), format!("{d}/{t}/{p}: {e}")))
    });
    put("sockets_allowed", attempt(r.map(|()| "unix, inet, inet6, netlink route".into())));
}

/// Metadata changes of the bound host devices (must fail) and their ordinary use (must work).
fn devices(put: &mut impl FnMut(&str, Value)) {
    put(
        "device_chmod",
        attempt(probe::chmod_same(c"/dev/full").map(|()| "chmod /dev/full".into())),
    );
    put("device_touch", attempt(probe::touch(c"/dev/null").map(|()| "touched /dev/null".into())));
    put(
        "device_chown",
        attempt(probe::chown_nothing(c"/dev/null").map(|()| "chown /dev/null".into())),
    );
    put(
        "device_write_null",
        attempt(std::fs::write("/dev/null", b"x").map(|()| "wrote /dev/null".into())),
    );
    put(
        "device_write_full",
        match std::fs::write("/dev/full", b"x") {
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                outcome(true, Some(libc::ENOSPC), "/dev/full is full, as it should be")
            }
            r => attempt(r.map(|()| "wrote /dev/full".into())),
        },
    );
    for dev in ["/dev/zero", "/dev/urandom"] {
        let r = std::fs::File::open(dev).and_then(|mut f| {
            let mut b = [0u8; 16];
            io::Read::read_exact(&mut f, &mut b).map(|()| format!("read {dev}"))
        });
        put(&format!("device_read:{dev}"), attempt(r));
    }
    // /tmp is the app's own: a device created there would be one it made.
    put(
        "mknod_char",
        attempt(
            probe::mknod(c"/tmp/escape-check-null", libc::S_IFCHR, 0o666, libc::makedev(1, 3)).map(
                |()| {
                    let _ = std::fs::remove_file("/tmp/escape-check-null");
                    "made a character device".into()
                },
            ),
        ),
    );
}

/// `/proc/self/uid_map` and `gid_map`: the host ids behind this process's.
fn id_maps() -> Value {
    let read = |p: &str| {
        std::fs::read_to_string(p).map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
    };
    match (read("/proc/self/uid_map"), read("/proc/self/gid_map")) {
        (Ok(u), Ok(g)) => outcome(true, None, format!("uid_map: {u}; gid_map: {g}")),
        (Err(e), _) | (_, Err(e)) => outcome(false, e.raw_os_error(), e.to_string()),
    }
}

/// Create, write, read back and delete a file in `dir`.
fn writable(dir: &Path) -> Value {
    let p = dir.join(format!("escape-check-{}.txt", std::process::id()));
    let r = std::fs::write(&p, "x").and_then(|()| std::fs::read_to_string(&p)).and_then(|back| {
        std::fs::remove_file(&p)?;
        Ok(format!("created, wrote, read back {back:?} and deleted {}", p.display()))
    });
    attempt(r)
}

/// A pathname unix socket made (bound, connected to, then removed) in `dir`; it must be this
/// process's own file (its uid), and both ends must read this process's uid and gid as their
/// peer's (`SO_PEERCRED`: the supervisor carries the bind, listen and connect out).
fn unix_bind(dir: &Path) -> Value {
    use std::os::unix::fs::MetadataExt;
    let path = dir.join(format!("escape-check-{}.sock", std::process::id()));
    let r = std::os::unix::net::UnixListener::bind(&path).and_then(|listener| {
        let owner = std::fs::symlink_metadata(&path)?.uid();
        let connected = std::os::unix::net::UnixStream::connect(&path);
        let _ = std::fs::remove_file(&path);
        let client = connected.map_err(|e| io::Error::new(e.kind(), format!("connect: {e}")))?;
        let (server, _) =
            listener.accept().map_err(|e| io::Error::new(e.kind(), format!("accept: {e}")))?;
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        if owner != uid {
            return Err(io::Error::other(format!("made, owned by uid {owner}, not {uid}")));
        }
        for (end, fd) in [("connector", &server), ("listener", &client)] {
            // The pid is the supervisor's: 0 here, outside this pid namespace.
            let c = appipc_sys::cred::peer_credentials(fd)
                .map_err(|e| io::Error::new(e.kind(), format!("SO_PEERCRED of the {end}: {e}")))?;
            let (u, g) = (c.uid, c.gid);
            if (u, g) != (uid, gid) {
                return Err(io::Error::other(format!(
                    "the {end} reads as uid {u} gid {g}, not {uid} {gid}"
                )));
            }
        }
        Ok(format!("made {}, connected to it as uid {uid} gid {gid}", path.display()))
    });
    attempt(r)
}

/// Copies `/usr/bin/true` into `dir` under `name`, executable.
fn copy_true(dir: &Path, name: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(format!("escape-check-{name}-{}", std::process::id()));
    std::fs::copy("/usr/bin/true", &p)?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
    Ok(p)
}

/// Runs a program copied into `dir`.
fn exec_from(dir: &Path) -> Value {
    let r = copy_true(dir, "exec").and_then(|p| {
        let status = std::process::Command::new(&p).status();
        let _ = std::fs::remove_file(&p);
        let status = status?;
        Ok(format!("ran {} ({status})", p.display()))
    });
    attempt(r)
}

/// Set-id bits on a file of our own in `dir`.
fn set_id(dir: &Path, put: &mut impl FnMut(&str, Value)) {
    let base = dir.join(format!("escape-check-setid-{}", std::process::id()));
    for (name, mode) in [("setuid_chmod", 0o4755), ("setgid_chmod", 0o2755)] {
        let r = copy_true(dir, name).and_then(|p| {
            let r = cpath(&p).and_then(|c| probe::chmod(&c, mode));
            let kept = std::fs::metadata(&p).map(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.permissions().mode() & 0o7777
            });
            let _ = std::fs::remove_file(&p);
            r?;
            Ok(format!("{} has mode {:o}", p.display(), kept?))
        });
        put(name, attempt(r));
    }
    let r = cpath(&base).and_then(|c| {
        let mode = probe::create_with_mode(&c, 0o4755);
        let _ = std::fs::remove_file(&base);
        match mode? {
            m if m & 0o6000 != 0 => Ok(format!("created with mode {m:o}")),
            m => Err(io::Error::other(format!("created, but the kernel kept mode {m:o}"))),
        }
    });
    put("setuid_create", attempt(r));
    let r = cpath(&base).and_then(|c| {
        let made = probe::mknod(&c, libc::S_IFREG, 0o4755, 0);
        let _ = std::fs::remove_file(&base);
        made.map(|()| "made a set-uid file with mknod".to_string())
    });
    put("setuid_mknod", attempt(r));
}

fn mode_of(p: &Path) -> io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::symlink_metadata(p)?.permissions().mode() & 0o7777)
}

/// Ok when `p` has mode `want` now.
fn has_mode(p: &Path, want: u32, how: &str) -> io::Result<String> {
    match mode_of(p)? {
        m if m == want => Ok(format!("{how}: {} is {m:o}", p.display())),
        m => Err(io::Error::other(format!("{how}: {} is {m:o}, not {want:o}", p.display()))),
    }
}

/// Runs `program` with `args`; Ok with its output when it succeeds.
fn run(program: &str, args: &[&str]) -> io::Result<String> {
    let out = std::process::Command::new(program).args(args).output()?;
    let text = format!(
        "{program} {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    if out.status.success() { Ok(text) } else { Err(io::Error::other(text)) }
}

/// Mode and attribute changes of the app's own files, as programs make them (`chmod_*`,
/// `cp_p`, `python_copy2`, `tar_p`, `user_xattr`), and of files it holds that are not its
/// own (`own_memfd_chmod`, `stderr_chmod`); `chmod_cost` measures a `chmod`.
fn modes(dir: &Path, put: &mut impl FnMut(&str, Value)) {
    use std::os::fd::{AsFd, AsRawFd};
    use std::os::unix::fs::PermissionsExt;
    let base = dir.join(format!("escape-check-modes-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    if let Err(e) = std::fs::create_dir_all(&base) {
        put("chmod_path", attempt(Err(e)));
        return;
    }
    let file = base.join("file");
    let _ = std::fs::write(&file, "mode");
    let set = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    put("chmod_path", attempt(set(&file, 0o640).and_then(|()| has_mode(&file, 0o640, "chmod"))));
    put(
        "chmod_fd",
        attempt(std::fs::File::open(&file).and_then(|f| {
            f.set_permissions(std::fs::Permissions::from_mode(0o604))?;
            has_mode(&file, 0o604, "fchmod")
        })),
    );
    put(
        "chmod_nofollow",
        attempt(
            cpath(&file)
                .and_then(|c| probe::lchmod(&c, 0o600))
                .and_then(|()| has_mode(&file, 0o600, "fchmodat AT_SYMLINK_NOFOLLOW")),
        ),
    );
    put(
        "chmod_proc_self_fd",
        attempt(std::fs::File::open(&file).and_then(|f| {
            let via = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
            set(&via, 0o644)?;
            has_mode(&file, 0o644, "chmod /proc/self/fd/N")
        })),
    );
    let link = base.join("link");
    put(
        "chmod_through_link",
        attempt(std::os::unix::fs::symlink("file", &link).and_then(|()| {
            set(&link, 0o640)?;
            has_mode(&file, 0o640, "chmod of a link to it")
        })),
    );
    let copy = |name: &str| base.join(name);
    let f = file.display().to_string();
    let cp = copy("cp-p").display().to_string();
    put(
        "cp_p",
        attempt(run("cp", &["-p", &f, &cp]).and_then(|_| has_mode(&copy("cp-p"), 0o640, "cp -p"))),
    );
    let py = copy("copy2").display().to_string();
    put(
        "python_copy2",
        attempt(
            run(
                "python3",
                &["-c", "import shutil, sys; shutil.copy2(sys.argv[1], sys.argv[2])", &f, &py],
            )
            .and_then(|_| has_mode(&copy("copy2"), 0o640, "shutil.copy2")),
        ),
    );
    let tree = base.join("tree");
    let tar_p = || -> io::Result<String> {
        std::fs::create_dir_all(tree.join("d"))?;
        std::fs::write(tree.join("d/x"), "x")?;
        set(&tree.join("d/x"), 0o604)?;
        set(&tree.join("d"), 0o750)?;
        let archive = base.join("t.tar").display().to_string();
        run("tar", &["-C", &tree.display().to_string(), "-cf", &archive, "d"])?;
        let out = base.join("out");
        std::fs::create_dir_all(&out)?;
        run("tar", &["-C", &out.display().to_string(), "-xpf", &archive])?;
        has_mode(&out.join("d/x"), 0o604, "tar -xp")?;
        has_mode(&out.join("d"), 0o750, "tar -xp")
    };
    put("tar_p", attempt(tar_p()));
    put(
        "user_xattr",
        attempt(
            cpath(&file)
                .and_then(|c| probe::setxattr(&c, c"user.appipc", b"1"))
                .map(|()| "setxattr user.appipc".to_string()),
        ),
    );
    // Files the app holds that are not on its mounts.
    put(
        "own_memfd_chmod",
        attempt(
            rustix::fs::memfd_create("escape-check", rustix::fs::MemfdFlags::CLOEXEC)
                .map_err(io::Error::from)
                .and_then(|m| probe::fchmod(m.as_fd(), 0o600))
                .map(|()| "fchmod of a memfd of its own".to_string()),
        ),
    );
    let mode_before = std::fs::metadata("/proc/self/fd/2").map(|m| m.permissions().mode()).ok();
    put(
        "stderr_chmod",
        attempt(probe::fchmod(std::io::stderr().as_fd(), 0o666).map(|()| {
            format!("fchmod of fd 2, which was {:o}", mode_before.unwrap_or(0) & 0o7777)
        })),
    );
    if let Some(m) = mode_before {
        let _ = probe::fchmod(std::io::stderr().as_fd(), m & 0o7777);
    }
    // What a chmod costs (the median of 500), supervised or not.
    let mut took: Vec<u128> = Vec::with_capacity(500);
    let c = cpath(&file).unwrap_or_default();
    for i in 0..500u32 {
        let t = std::time::Instant::now();
        let r = probe::chmod(&c, if i.is_multiple_of(2) { 0o600 } else { 0o640 });
        took.push(t.elapsed().as_nanos());
        if let Err(e) = r {
            took.clear();
            put("chmod_cost", attempt(Err(e)));
            break;
        }
    }
    if !took.is_empty() {
        took.sort_unstable();
        let median = took[took.len() / 2];
        let mut v =
            outcome(true, None, format!("median {:.1} µs over 500 chmods", median as f64 / 1000.0));
        v["median_ns"] = json!(median);
        put("chmod_cost", v);
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// `NoNewPrivs`, `Seccomp`, `Seccomp_filters` and `CapEff` from `/proc/self/status`.
fn self_status() -> Value {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => {
            let keep = [
                "NoNewPrivs",
                "Seccomp",
                "Seccomp_filters",
                "CapEff",
                "NSpid",
                "Uid",
                "Gid",
                "Groups",
            ];
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

/// The terminal checks (see the module documentation).
fn tty_check(host_rdev: u64) -> ! {
    use appipc_sys::pty;
    use std::io::{BufRead, Write};
    use std::os::fd::AsFd;
    // Blocked before saying ready, so that a SIGWINCH sent right after is not lost.
    let blocked = probe::block_signal(libc::SIGWINCH);
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let fds = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let mut out = Map::new();
    let infos: Vec<Value> = fds
        .iter()
        .map(|fd| json!({ "terminal": pty::is_terminal(fd), "rdev": pty::device_of(fd).ok() }))
        .collect();
    let host = fds.iter().position(|fd| pty::device_of(fd).ok() == Some(host_rdev));
    out.insert("tty_fds".into(), Value::Array(infos));
    out.insert(
        "host_tty_fd".into(),
        match host {
            Some(i) => outcome(true, None, format!("fd {i} is the terminal of the caller")),
            None => outcome(false, Some(libc::ENOENT), "no fd is the caller's terminal"),
        },
    );
    let r = probe::fchmod(fds[0], 0o666).map(|()| "fchmod 0666 of fd 0".into());
    out.insert("tty_chmod".into(), attempt(r));
    let size = pty::window_size(fds[0]).map(|w| format!("{}x{}", w.rows, w.cols));
    out.insert("tty_winsize".into(), attempt(size));
    let ctty = std::fs::File::open("/dev/tty").map(|_| "/dev/tty opens".into());
    out.insert("ctty".into(), attempt(ctty));
    let mess = pty::TerminalMode::get(fds[0])
        .and_then(|m| m.without_echo().set(fds[0]))
        .map(|()| "echo and line editing off".into());
    out.insert("tty_mess".into(), attempt(mess));
    out.insert("signal_block".into(), attempt(blocked.map(|()| "SIGWINCH blocked".into())));
    let mut o = io::stdout().lock();
    let _ = writeln!(o, "{}", Value::Object(out));
    let _ = writeln!(o, "ready");
    let _ = o.flush();
    drop(o);
    if probe::wait_signal(libc::SIGWINCH).is_ok() {
        let size = pty::window_size(fds[0]).map(|w| format!("{}x{}", w.rows, w.cols));
        println!("winsize {}", size.unwrap_or_else(|e| e.to_string()));
    }
    let mut line = String::new();
    let mut input = stdin.lock();
    let _ = input.read_line(&mut line);
    println!("got:{}", line.trim_end());
    // Until a signal (or the end of input) ends it.
    line.clear();
    let _ = input.read_line(&mut line);
    std::process::exit(0)
}

/// The redirected-file checks (see the module documentation).
fn fd_check(dev: u64, ino: u64) -> ! {
    use std::io::{BufRead, Write};
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let fds = [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let same = fds.iter().position(|fd| {
        fd.try_clone_to_owned()
            .map(std::fs::File::from)
            .and_then(|f| f.metadata())
            .is_ok_and(|m| (m.dev(), m.ino()) == (dev, ino))
    });
    let mut out = Map::new();
    out.insert(
        "host_fd".into(),
        match same {
            Some(i) => outcome(true, None, format!("fd {i} is the caller's file")),
            None => outcome(false, Some(libc::ENOENT), "no fd is the caller's file"),
        },
    );
    let r = probe::fchmod(fds[1], 0o666).map(|()| "fchmod 0666 of fd 1".into());
    out.insert("fd_chmod".into(), attempt(r));
    let mut o = io::stdout().lock();
    let _ = writeln!(o, "{}", Value::Object(out));
    let _ = writeln!(o, "ready");
    let _ = o.flush();
    drop(o);
    let mut line = String::new();
    let mut input = stdin.lock();
    let _ = input.read_line(&mut line);
    println!("got:{}", line.trim_end());
    line.clear();
    let _ = input.read_line(&mut line);
    std::process::exit(0)
}

fn main() {
    let mut raw = std::env::args().skip(1);
    match raw.next().as_deref() {
        Some("--tty-check") => match raw.next().and_then(|r| r.parse().ok()) {
            Some(rdev) => tty_check(rdev),
            None => {
                eprintln!("escape-check: --tty-check needs a device number");
                std::process::exit(2);
            }
        },
        Some("--fd-check") => {
            let pair = raw.next().and_then(|r| {
                let (d, i) = r.split_once(':')?;
                Some((d.parse().ok()?, i.parse().ok()?))
            });
            match pair {
                Some((dev, ino)) => fd_check(dev, ino),
                None => {
                    eprintln!("escape-check: --fd-check needs DEV:INO");
                    std::process::exit(2);
                }
            }
        }
        _ => {}
    }
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
