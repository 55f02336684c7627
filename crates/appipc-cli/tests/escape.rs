//! Escape tests: a packaged app (`escape-check`, from appipc-testkit) tries every way out of
//! its app container from the inside; each attempt must fail and each allowed thing work. The
//! whole matrix runs with the broker as root and as an unprivileged user.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use appipc_testkit::{
    HELLO, TestBroker, assemble, assemble_manifest, bin_dir, readable_by_all, unique,
};
use serde_json::Value;

const ESCAPE: &str = r#"
[package]
name = "AppIpc.EscapeCheck"
publisher = "CN=appipc tests"
version = "1.0.0.0"

[capabilities]
general = ["internetClient"]

[publisher-cache]
folders = ["Shared"]

[[application]]
id = "App"
executable = "bin/escape-check"
"#;

const UNPRIVILEGED_USER: &str = "appipc-test";

fn run(b: &TestBroker, args: &[&str]) -> (i32, String, String) {
    let out = b.cli().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn install(b: &TestBroker, dir: &Path) -> String {
    let (code, out, err) = run(b, &["install", "--yes", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let full = out.trim().rsplit(' ').next().unwrap().to_owned();
    let parts: Vec<&str> = full.split('_').collect();
    format!("{}_{}", parts[0], parts[4])
}

/// Every path under `p`, `p` first.
fn walk(p: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

/// Runs the matrix against a broker; `user` is the unprivileged (uid, gid) or None for root.
fn matrix(user: Option<(u32, u32)>) {
    // The user's home, with a secret in it.
    let home = tempfile::Builder::new().prefix("appipc-escape-home-").tempdir().unwrap();
    let secret = home.path().join("secret.txt");
    std::fs::write(&secret, "secret").unwrap();
    // A file in the host's /tmp.
    let mut host_tmp =
        tempfile::Builder::new().prefix("appipc-escape-").tempfile_in("/tmp").unwrap();
    host_tmp.write_all(b"host tmp").unwrap();
    if let Some((uid, gid)) = user {
        for p in [home.path(), secret.as_path(), host_tmp.path()] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
        }
    }
    let env = [("HOME", home.path().to_str().unwrap())];
    let b = match user {
        Some((uid, gid)) => TestBroker::start_as(uid, gid, &env),
        None => TestBroker::start_with_env(&env),
    };
    // Another package with data of its own.
    let hello_dir = assemble(&HELLO, &b.root.path().join(unique("hello"))).unwrap();
    let esc_dir =
        assemble_manifest(ESCAPE, &b.root.path().join(unique("escape")), &bin_dir()).unwrap();
    readable_by_all(&hello_dir);
    readable_by_all(&esc_dir);
    let hello = install(&b, &hello_dir);
    let escape = install(&b, &esc_dir);
    let other_data = b.home.join("data").join(&hello).join("LocalState").join("private.txt");
    std::fs::write(&other_data, "other app's data").unwrap();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&other_data, Some(uid), Some(gid)).unwrap();
    }
    // An abstract socket and a TCP listener outside, and this (host) process to signal.
    let abstract_name = unique("appipc-escape-");
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(
            abstract_name.as_bytes(),
        )
        .unwrap();
    let _abstract = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port().to_string();
    let host_pid = std::process::id().to_string();
    let own_data = b.home.join("data").join(&escape).join("LocalState");
    let publisher_id = escape.rsplit('_').next().unwrap().to_owned();
    let shared = b.home.join("cache/publisher").join(&publisher_id).join("Shared");
    let install_dir = walk(&b.home.join("packages"))
        .into_iter()
        .find(|p| {
            p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("AppIpc.EscapeCheck_"))
        })
        .unwrap();

    let (code, out, err) = run(
        &b,
        &[
            "launch",
            "--wait",
            &escape,
            "--",
            "--home-file",
            secret.to_str().unwrap(),
            "--host-tmp-file",
            host_tmp.path().to_str().unwrap(),
            "--other-app-data",
            other_data.to_str().unwrap(),
            "--broker-socket",
            b.socket().to_str().unwrap(),
            "--abstract",
            &abstract_name,
            "--host-pid",
            &host_pid,
            "--tcp",
            &port,
            "--own-data",
            own_data.to_str().unwrap(),
            "--install-dir",
            install_dir.to_str().unwrap(),
            "--writable",
            own_data.to_str().unwrap(),
            "--writable",
            shared.to_str().unwrap(),
        ],
    );
    let who = if user.is_some() { "unprivileged broker" } else { "root broker" };
    assert_eq!(code, 0, "{who}: {err}\n{}", b.log());
    let v: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{who}: {e}: {out}"));
    let ok = |k: &str| -> bool {
        v.get(k)
            .and_then(|c| c.get("ok"))
            .and_then(Value::as_bool)
            .unwrap_or_else(|| panic!("{who}: no check {k}: {out}"))
    };
    let writable_dirs: Vec<String> = v
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|k| k.strip_prefix("writable:").map(str::to_owned))
        .collect();
    for dir in ["/tmp", "/dev/shm", own_data.to_str().unwrap(), shared.to_str().unwrap()] {
        assert!(writable_dirs.iter().any(|d| d == dir), "{who}: {dir} not checked: {out}");
    }
    assert!(writable_dirs.iter().any(|d| d == "$TMPDIR"), "{who}: $TMPDIR checked: {out}");
    let mut allowed: Vec<String> = [
        "own_data_write_read",
        "install_dir_read",
        "usr_bin_env_read",
        "sockets_allowed",
        "device_write_null",
        "device_write_full",
        "device_read:/dev/zero",
        "device_read:/dev/urandom",
        "mmap_exec_anonymous",
        "marker",
        "id_maps",
        // Mode changes of its own files, as programs make them (supervised under an
        // unprivileged broker, seccomp_notify).
        "chmod_path",
        "chmod_fd",
        "chmod_nofollow",
        "chmod_proc_self_fd",
        "chmod_through_link",
        "cp_p",
        "python_copy2",
        "tar_p",
        "chmod_cost",
    ]
    .map(str::to_owned)
    .to_vec();
    allowed.extend(writable_dirs.iter().map(|d| format!("writable:{d}")));
    allowed.extend(writable_dirs.iter().map(|d| format!("unix_bind:{d}")));
    // Every check is judged before the test fails, so that one run shows all that got through.
    let mut problems = Vec::new();
    for allowed in &allowed {
        if !ok(allowed) {
            problems.push(format!("{allowed} must work: {}", v[allowed]));
        }
    }
    for escape in [
        "home_file_read",
        "home_dir_list",
        "host_tmp_file_read",
        "host_tmp_dir_list",
        "other_app_data_read",
        "other_app_data_list",
        "broker_socket_connect",
        "abstract_connect",
        "signal_host_cont",
        "ptrace_host",
        "process_vm_readv_host",
        "proc_host_pid",
        "tcp_connect_host",
        "install_dir_create",
        "mount_tmpfs",
        "unshare_user",
        "bpf_prog_load",
        "device_chmod",
        "device_touch",
        "device_chown",
        "mknod_char",
        "setuid_chmod",
        "setgid_chmod",
        "setuid_create",
        "setuid_mknod",
        "fanotify_init",
        "inotify_usr",
        "signal_init",
        // Its stderr is not a file of its own mounts.
        "stderr_chmod",
        // Socket files outside its writable folders (the supervisor makes them for it).
        "unix_bind_dev",
        "unix_bind_root",
        "unix_bind_install_dir",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(writable_dirs.iter().flat_map(|d| [format!("exec:{d}"), format!("mmap_exec:{d}")]))
    {
        let escape = escape.as_str();
        if ok(escape) {
            problems.push(format!("{escape} must fail: {}", v[escape]));
        } else if v[escape]["errno"].as_i64().is_none() {
            problems.push(format!("{escape} must fail with an errno: {}", v[escape]));
        }
    }
    // Extended attributes where the file system has them.
    if !ok("user_xattr") && v["user_xattr"]["errno"].as_i64() != Some(i64::from(libc::EOPNOTSUPP)) {
        problems.push(format!(
            "user_xattr must work where the file system has them: {}",
            v["user_xattr"]
        ));
    }
    // A memfd of its own: its own to change under a root broker (uid of its own); under an
    // unprivileged one every memfd of the broker's uid is the app's too, so none may change.
    let memfd_ok = user.is_none() && rustix::process::getuid().is_root();
    if ok("own_memfd_chmod") != memfd_ok
        || (!memfd_ok && v["own_memfd_chmod"]["errno"].as_i64() != Some(i64::from(libc::EPERM)))
    {
        problems.push(format!(
            "own_memfd_chmod must {}: {}",
            if memfd_ok { "work" } else { "fail with EPERM" },
            v["own_memfd_chmod"]
        ));
    }
    eprintln!("{who}: a chmod inside costs {}", v["chmod_cost"]["detail"]);
    sockets_are_refused(who, &v, &mut problems);
    assert!(problems.is_empty(), "{who}: {} problems:\n{}", problems.len(), problems.join("\n"));
    // It ran as the packaged app, in a pid namespace of its own, with no capabilities.
    assert_eq!(v["identity"]["package_family_name"], escape.as_str(), "{out}");
    let status = v["status"]["detail"].as_str().unwrap_or_default().to_owned();
    for expected in ["NoNewPrivs: 1", "Seccomp: 2", "CapEff: 0000000000000000", "NSpid: "] {
        assert!(status.contains(expected), "{who}: {expected} in {status}");
    }
    let nspid = status.split("; ").find(|f| f.starts_with("NSpid:")).unwrap_or_default();
    // The /proc inside belongs to the new pid namespace: pid 1 is appipc's init, the app 2.
    assert_eq!(nspid, "NSpid: 2", "{who}: pid 2 of its own pid namespace");
    uid_model(who, user, &v, &b, &escape, &own_data, &shared);
}

/// Socket families other than unix/inet/inet6/netlink, netlink protocols other than route and
/// MPTCP are refused inside. Only what the host kernel has can tell (an absent family gives
/// the same error): those are checked, the others skipped with a note.
fn sockets_are_refused(who: &str, v: &Value, problems: &mut Vec<String>) {
    let errnos = |k: &str| -> Vec<i64> {
        v[k]["errnos"]
            .as_array()
            .unwrap_or_else(|| panic!("{who}: no check {k}: {v}"))
            .iter()
            .map(|e| e.as_i64().unwrap())
            .collect()
    };
    let types = [libc::SOCK_STREAM, libc::SOCK_DGRAM, libc::SOCK_SEQPACKET, libc::SOCK_RAW];
    let mut checked = Vec::new();
    let mut absent = Vec::new();
    for family in 0..50 {
        if appipc_sys::seccomp::ALLOWED_SOCKET_FAMILIES.contains(&family) {
            continue;
        }
        let on_host = types.iter().any(|ty| {
            appipc_sys::probe::socket(family, *ty, 0).err().and_then(|e| e.raw_os_error())
                != Some(libc::EAFNOSUPPORT)
        });
        let key = format!("socket_family_{family}");
        if !on_host {
            absent.push(family);
            continue;
        }
        checked.push(family);
        if !errnos(&key).iter().all(|e| *e == i64::from(libc::EAFNOSUPPORT)) {
            problems.push(format!(
                "address family {family} must be refused (EAFNOSUPPORT): {}",
                v[&key]
            ));
        }
    }
    assert!(checked.contains(&libc::AF_VSOCK) || absent.contains(&libc::AF_VSOCK));
    eprintln!(
        "{who}: families refused inside: {checked:?}; absent from this kernel (skipped): {absent:?}"
    );
    let mut absent = Vec::new();
    for protocol in 1..32 {
        let key = format!("netlink_{protocol}");
        let on_host = appipc_sys::probe::socket(libc::AF_NETLINK, libc::SOCK_RAW, protocol)
            .err()
            .and_then(|e| e.raw_os_error())
            != Some(libc::EPROTONOSUPPORT);
        if !on_host {
            absent.push(protocol);
            continue;
        }
        if !errnos(&key).iter().all(|e| *e == i64::from(libc::EPROTONOSUPPORT)) {
            problems.push(format!(
                "netlink protocol {protocol} must be refused (EPROTONOSUPPORT): {}",
                v[&key]
            ));
        }
    }
    eprintln!("{who}: netlink protocols absent from this kernel (skipped): {absent:?}");
    let mptcp = appipc_sys::seccomp::IPPROTO_MPTCP;
    for (family, key) in [(libc::AF_INET, "mptcp_inet"), (libc::AF_INET6, "mptcp_inet6")] {
        if appipc_sys::probe::socket(family, libc::SOCK_STREAM, mptcp).is_err() {
            eprintln!("{who}: SKIPPED {key}: MPTCP does not work on this host");
            continue;
        }
        if v[key]["errno"].as_i64() != Some(i64::from(libc::EPROTONOSUPPORT)) {
            problems.push(format!("{key}: MPTCP must be refused (EPROTONOSUPPORT): {}", v[key]));
        }
    }
}

/// The app runs as uid 1000 inside, which is the package's own host uid under a root broker
/// and the broker's under an unprivileged one; its files belong to that uid; the broker can
/// still clear and remove them.
fn uid_model(
    who: &str,
    user: Option<(u32, u32)>,
    v: &Value,
    b: &TestBroker,
    pfn: &str,
    own_data: &Path,
    shared: &Path,
) {
    use std::os::unix::fs::MetadataExt;
    let status = v["status"]["detail"].as_str().unwrap_or_default();
    assert!(status.contains("Uid: 1000 1000 1000 1000"), "{who}: {status}");
    assert!(status.contains("Gid: 1000 1000 1000 1000"), "{who}: {status}");
    let maps = v["id_maps"]["detail"].as_str().unwrap_or_default();
    let host_uid: u32 = maps
        .strip_prefix("uid_map: 1000 ")
        .and_then(|r| r.split(' ').next())
        .and_then(|u| u.parse().ok())
        .unwrap_or_else(|| panic!("{who}: one mapped uid, 1000 inside: {maps}"));
    assert_ne!(host_uid, 0, "{who}: the app must not be host root: {maps}");
    match user {
        Some((uid, _)) => assert_eq!(host_uid, uid, "{who}: the broker's uid: {maps}"),
        None => assert!(
            appipc_model::sandbox::PACKAGE_IDS.contains(&host_uid),
            "{who}: a package uid from the documented range: {maps}"
        ),
    }
    // What the app left in its folders is its own, on the host too.
    let marker = std::fs::metadata(own_data.join("escape-check.marker")).unwrap();
    assert_eq!(marker.uid(), host_uid, "{who}: the app's file belongs to its uid");
    let data_dir = own_data.parent().unwrap();
    assert_eq!(
        std::fs::metadata(data_dir).unwrap().uid(),
        host_uid,
        "{who}: {}",
        data_dir.display()
    );
    // The broker still manages them.
    std::fs::write(shared.join("left-by-test"), "x").unwrap();
    let publisher_id = pfn.rsplit('_').next().unwrap();
    let (code, _, err) = run(b, &["publisher-cache", "clear", publisher_id, "Shared"]);
    assert_eq!(code, 0, "{who}: clearing the publisher cache: {err}");
    assert_eq!(std::fs::read_dir(shared).unwrap().count(), 0, "{who}: cleared");
    let (code, _, err) = run(b, &["remove", pfn]);
    assert_eq!(code, 0, "{who}: removing the package: {err}");
    assert!(!data_dir.exists(), "{who}: app data removed: {}", data_dir.display());
}

#[test]
fn escapes_fail_with_a_root_broker() {
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!(
            "SKIPPED escapes_fail_with_a_root_broker: not root (the unprivileged case runs as the current user below)"
        );
        return;
    }
    matrix(None);
}

#[test]
fn escapes_fail_with_an_unprivileged_broker() {
    if rustix::process::getuid().as_raw() != 0 {
        // Already unprivileged: the plain broker is the unprivileged case.
        matrix(None);
        return;
    }
    let Some((uid, gid)) = lookup_user(UNPRIVILEGED_USER) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must create the user {UNPRIVILEGED_USER} (.ci/run does)"
        );
        eprintln!(
            "SKIPPED escapes_fail_with_an_unprivileged_broker: no user {UNPRIVILEGED_USER} (useradd {UNPRIVILEGED_USER})"
        );
        return;
    };
    matrix(Some((uid, gid)));
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
            .flatten()
    })
}

#[test]
fn broad_file_system_access_grants_the_home_but_not_appipc_or_other_apps() {
    let b = TestBroker::start_with_home_inside();
    let secret = b.root.path().join("secret.txt");
    std::fs::write(&secret, "in the home").unwrap();
    let broad = ESCAPE
        .replace("AppIpc.EscapeCheck", "AppIpc.BroadCheck")
        .replace("[capabilities]", "[capabilities]\nrestricted = [\"broadFileSystemAccess\"]");
    let hello = install(&b, &assemble(&HELLO, &b.root.path().join(unique("hello"))).unwrap());
    let pfn = install(
        &b,
        &assemble_manifest(&broad, &b.root.path().join(unique("broad")), &bin_dir()).unwrap(),
    );
    let other = b.home.join("data").join(&hello).join("LocalState").join("private.txt");
    std::fs::write(&other, "other").unwrap();
    let own = b.home.join("data").join(&pfn).join("LocalState");
    let (code, out, err) = run(
        &b,
        &[
            "launch",
            "--wait",
            &pfn,
            "--",
            "--home-file",
            secret.to_str().unwrap(),
            "--other-app-data",
            other.to_str().unwrap(),
            "--broker-socket",
            b.socket().to_str().unwrap(),
            "--own-data",
            own.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    let ok = |k: &str| v[k]["ok"].as_bool().unwrap_or_else(|| panic!("no {k}: {out}"));
    assert!(ok("home_file_read") && ok("home_dir_list"), "the home is granted: {out}");
    assert!(ok("own_data_write_read"), "{out}");
    assert!(
        !ok("other_app_data_read") && !ok("other_app_data_list"),
        "other apps' data stays hidden: {out}"
    );
    assert!(!ok("broker_socket_connect"), "the broker's socket stays hidden: {out}");
    // The same check without the capability, in the same setup: no home.
    let plain = install(
        &b,
        &assemble_manifest(ESCAPE, &b.root.path().join(unique("plain")), &bin_dir()).unwrap(),
    );
    let (_, out, _) =
        run(&b, &["launch", "--wait", &plain, "--", "--home-file", secret.to_str().unwrap()]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["home_file_read"]["ok"], false, "{out}");
}

/// Output read from a pty master in the background.
struct Screen {
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Screen {
    fn new(master: std::os::fd::OwnedFd) -> Screen {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::File::from(master);
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut f, &mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Screen { seen }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    /// Waits until `what` was printed; false if it was not within a minute (a liveness bound:
    /// the step is stuck, not slow).
    fn wait_for(&self, what: &str) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if self.text().contains(what) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }
}

/// `launch --wait` run in a terminal: the app gets a pty of the CLI's, never the terminal; its
/// terminal-mode changes do not outlive it; window-size changes and signals reach it.
fn terminal(user: Option<(u32, u32)>) {
    use appipc_sys::pty::{self, TerminalMode, WindowSize};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let who = if user.is_some() { "unprivileged broker" } else { "root broker" };
    let b = match user {
        Some((uid, gid)) => TestBroker::start_as(uid, gid, &[]),
        None => TestBroker::start(),
    };
    let dir = assemble_manifest(ESCAPE, &b.root.path().join(unique("escape")), &bin_dir()).unwrap();
    readable_by_all(&dir);
    let pfn = install(&b, &dir);

    // The user's terminal.
    let term = pty::open().unwrap();
    pty::set_window_size(&term.master, WindowSize { rows: 33, cols: 77, x_pixels: 0, y_pixels: 0 })
        .unwrap();
    let tty_path = std::fs::read_link(format!("/proc/self/fd/{}", term.slave.as_raw_fd())).unwrap();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&tty_path, Some(uid), Some(gid)).unwrap();
    }
    let mode_before = std::fs::metadata(&tty_path).unwrap().mode();
    let termios_before = TerminalMode::get(&term.slave).unwrap();
    let rdev = pty::device_of(&term.slave).unwrap().to_string();

    let mut cmd = b.cli();
    cmd.args(["launch", "--wait", &pfn, "--", "--tty-check", &rdev]);
    cmd.stdin(term.slave.try_clone().unwrap())
        .stdout(term.slave.try_clone().unwrap())
        .stderr(term.slave.try_clone().unwrap());
    pty::spawn_in_terminal(&mut cmd);
    let mut cli = cmd.spawn().unwrap();
    let screen = Screen::new(term.master.try_clone().unwrap());

    let mut problems = Vec::new();
    let ready = screen.wait_for("ready");
    let json = screen.text().lines().find(|l| l.starts_with('{')).map(str::to_owned);
    let v: Value = json.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or_default();
    if !ready || v.is_null() {
        problems.push(format!("the app did not start in the terminal: {:?}", screen.text()));
    }
    if v["host_tty_fd"]["ok"] != false {
        problems.push(format!("the app got the terminal itself: {}", v["host_tty_fd"]));
    }
    for (i, fd) in v["tty_fds"].as_array().cloned().unwrap_or_default().iter().enumerate() {
        if fd["terminal"] != true {
            problems.push(format!("fd {i} is not a terminal for the app: {fd}"));
        }
    }
    if v["tty_winsize"]["detail"] != "33x77" {
        problems.push(format!("the window size was not passed on: {}", v["tty_winsize"]));
    }
    if v["ctty"]["ok"] != true {
        problems.push(format!("the app has no controlling terminal: {}", v["ctty"]));
    }
    if ready {
        // A new size: the kernel tells the CLI (SIGWINCH), the CLI must tell the app.
        let size = WindowSize { rows: 40, cols: 100, x_pixels: 0, y_pixels: 0 };
        pty::set_window_size(&term.master, size).unwrap();
        if !screen.wait_for("winsize 40x100") {
            problems
                .push(format!("the new window size did not reach the app: {:?}", screen.text()));
        }
        rustix::io::write(&term.master, b"hello\r").unwrap();
        if !screen.wait_for("got:hello") {
            problems.push(format!("typed input did not reach the app: {:?}", screen.text()));
        }
    }
    // SIGTERM to the CLI ends the app (forwarded), and the CLI ends as the app did.
    let pidfd = appipc_sys::process::pidfd_open(cli.id()).unwrap();
    appipc_sys::process::send_signal(&pidfd, appipc_sys::process::ProcessSignal::TERM).unwrap();
    let status = cli.wait().unwrap();
    if status.code() != Some(128 + 15) {
        problems.push(format!("the CLI must end as the app did (SIGTERM, 143): {status}"));
    }
    if TerminalMode::get(&term.slave).unwrap() != termios_before {
        problems.push("the terminal's modes were not restored (the app's no-echo stuck)".into());
    }
    if v["tty_chmod"]["ok"] != false {
        problems.push(format!("the app changed the mode of its terminal: {}", v["tty_chmod"]));
    }
    let mode_after = std::fs::metadata(&tty_path).unwrap().mode();
    if mode_after != mode_before {
        problems.push(format!(
            "the terminal's mode changed from {mode_before:o} to {mode_after:o} ({})",
            v["tty_chmod"]
        ));
    }
    assert!(
        problems.is_empty(),
        "{who}: {} problems:\n{}\nscreen: {:?}\n{}",
        problems.len(),
        problems.join("\n"),
        screen.text(),
        b.log()
    );
}

#[test]
fn the_terminal_is_relayed_with_a_root_broker() {
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!("SKIPPED the_terminal_is_relayed_with_a_root_broker: not root");
        return;
    }
    terminal(None);
}

#[test]
fn the_terminal_is_relayed_with_an_unprivileged_broker() {
    if rustix::process::getuid().as_raw() != 0 {
        terminal(None);
        return;
    }
    let Some(user) = lookup_user(UNPRIVILEGED_USER) else {
        assert!(std::env::var_os("CI").is_none(), "CI must create the user {UNPRIVILEGED_USER}");
        eprintln!(
            "SKIPPED the_terminal_is_relayed_with_an_unprivileged_broker: no user {UNPRIVILEGED_USER}"
        );
        return;
    };
    terminal(Some(user));
}

/// `launch --wait` with its output redirected to a file and its input from a pipe: the app
/// gets pipes of the CLI's, not the file (whose mode it could change) nor the pipe; input
/// reaches it and SIGTERM to the CLI ends it.
fn redirected(user: Option<(u32, u32)>) {
    use std::os::unix::fs::MetadataExt;
    let who = if user.is_some() { "unprivileged broker" } else { "root broker" };
    let b = match user {
        Some((uid, gid)) => TestBroker::start_as(uid, gid, &[]),
        None => TestBroker::start(),
    };
    let dir = assemble_manifest(ESCAPE, &b.root.path().join(unique("escape")), &bin_dir()).unwrap();
    readable_by_all(&dir);
    let pfn = install(&b, &dir);
    let out_path = b.root.path().join(unique("out-"));
    let out = std::fs::File::create(&out_path).unwrap();
    std::fs::set_permissions(&out_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&out_path, Some(uid), Some(gid)).unwrap();
    }
    let m = std::fs::metadata(&out_path).unwrap();
    let id = format!("{}:{}", m.dev(), m.ino());
    let mut cli = b
        .cli()
        .args(["launch", "--wait", &pfn, "--", "--fd-check", &id])
        .stdin(std::process::Stdio::piped())
        .stdout(out)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let written = |what: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::time::Instant::now() < deadline {
            if std::fs::read_to_string(&out_path).unwrap_or_default().contains(what) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    };
    let mut problems = Vec::new();
    // Kept open until the CLI has ended (wait() would close it: an end of input, not a signal).
    let mut input = cli.stdin.take().unwrap();
    if written("ready") {
        input.write_all(b"hello\n").unwrap();
        if !written("got:hello") {
            problems.push("input from the pipe did not reach the app".to_owned());
        }
    } else {
        problems.push("the app did not start".to_owned());
    }
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let v: Value = text
        .lines()
        .find(|l| l.starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    if v["host_fd"]["ok"] != false {
        problems.push(format!("the app got the CLI's own file: {}", v["host_fd"]));
    }
    let pidfd = appipc_sys::process::pidfd_open(cli.id()).unwrap();
    appipc_sys::process::send_signal(&pidfd, appipc_sys::process::ProcessSignal::TERM).unwrap();
    let status = cli.wait().unwrap();
    drop(input);
    if status.code() != Some(128 + 15) {
        problems.push(format!("SIGTERM must reach the app and the CLI end with 143: {status}"));
    }
    let mode = std::fs::metadata(&out_path).unwrap().mode() & 0o7777;
    if mode != 0o600 {
        problems.push(format!("the file's mode changed to {mode:o} ({})", v["fd_chmod"]));
    }
    assert!(problems.is_empty(), "{who}: {}\noutput: {text}\n{}", problems.join("\n"), b.log());
}

#[test]
fn redirected_stdio_is_relayed_with_a_root_broker() {
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!("SKIPPED redirected_stdio_is_relayed_with_a_root_broker: not root");
        return;
    }
    redirected(None);
}

#[test]
fn redirected_stdio_is_relayed_with_an_unprivileged_broker() {
    if rustix::process::getuid().as_raw() != 0 {
        redirected(None);
        return;
    }
    let Some(user) = lookup_user(UNPRIVILEGED_USER) else {
        assert!(std::env::var_os("CI").is_none(), "CI must create the user {UNPRIVILEGED_USER}");
        eprintln!(
            "SKIPPED redirected_stdio_is_relayed_with_an_unprivileged_broker: no user {UNPRIVILEGED_USER}"
        );
        return;
    };
    redirected(Some(user));
}
