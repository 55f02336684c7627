//! Escape tests: a packaged app (`escape-check`, from appipc-testkit) tries every way out of
//! its app container from the inside; each attempt must fail and each allowed thing work. The
//! whole matrix runs with the broker as root and as an unprivileged user.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use appipc_testkit::{HELLO, TestBroker, assemble, assemble_manifest, bin_dir, unique};
use serde_json::Value;

const ESCAPE: &str = r#"
[package]
name = "AppIpc.EscapeCheck"
publisher = "CN=appipc tests"
version = "1.0.0.0"

[capabilities]
general = ["internetClient"]

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

fn readable_by_all(p: &Path) {
    for entry in walk(p) {
        let mode = if entry.is_dir() {
            0o755
        } else {
            0o644 | (std::fs::metadata(&entry).unwrap().permissions().mode() & 0o111)
        };
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

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
    for allowed in ["own_data_write_read", "install_dir_read", "usr_bin_env_read"] {
        assert!(ok(allowed), "{who}: {allowed} must work: {}", v[allowed]);
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
    ] {
        assert!(!ok(escape), "{who}: {escape} must fail: {}", v[escape]);
        assert!(
            v[escape]["errno"].as_i64().is_some(),
            "{who}: {escape} failed with an errno: {}",
            v[escape]
        );
    }
    // It ran as the packaged app, in a pid namespace of its own, with no capabilities.
    assert_eq!(v["identity"]["package_family_name"], escape.as_str(), "{out}");
    let status = v["status"]["detail"].as_str().unwrap_or_default().to_owned();
    for expected in ["NoNewPrivs: 1", "Seccomp: 2", "CapEff: 0000000000000000", "NSpid: "] {
        assert!(status.contains(expected), "{who}: {expected} in {status}");
    }
    let nspid = status.split("; ").find(|f| f.starts_with("NSpid:")).unwrap_or_default();
    // The /proc inside belongs to the new pid namespace, which sees the app as pid 1.
    assert_eq!(nspid, "NSpid: 1", "{who}: pid 1 of its own pid namespace");
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
