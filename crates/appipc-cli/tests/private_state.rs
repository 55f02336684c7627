//! Everything appipc keeps on disk is private to the user: its folders are 0700, the state
//! database (which holds bearer tokens) and the logs 0600, whatever the umask — checked as
//! another user, who can read nothing, with the broker as root and as an ordinary user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use appipc_testkit::{HELLO, TestBroker, assemble_manifest, bin_dir, unique};

/// The uid that plays "another local user".
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    appipc_sys::cred::current_uid() == 0
}

use appipc_testkit::test_user;

/// Every path under `root`.
fn walk(root: &Path, out: &mut Vec<PathBuf>) {
    out.push(root.to_path_buf());
    let Ok(meta) = std::fs::symlink_metadata(root) else { return };
    if meta.is_dir() {
        for e in std::fs::read_dir(root).unwrap().flatten() {
            walk(&e.path(), out);
        }
    }
}

fn exercise(b: &TestBroker) {
    // Packages, app data, a token, a publisher cache folder with a file in it, a refusal in
    // the decision log, an app's log.
    let dir =
        assemble_manifest(HELLO.manifest, &b.root.path().join(unique("pkg")), &bin_dir()).unwrap();
    let out = b.cli().args(["install", dir.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pfn = "Contoso.Hello_cvnpggrrsm18p";
    let out = b
        .cli()
        .args([
            "launch",
            "--wait",
            pfn,
            "--",
            "--cache-write",
            "Shared",
            "secret",
            "--try-install",
            "/x",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = b.root.path().join("shared.txt");
    std::fs::write(&file, "shared").unwrap();
    if let Some((uid, gid)) = b.user() {
        std::os::unix::fs::chown(&file, Some(uid), Some(gid)).unwrap();
    }
    let out = b.cli().args(["token", "add", file.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = b.cli().args(["launch", pfn]).output().unwrap();
    assert!(out.status.success());
}

fn check(b: &TestBroker) {
    let roots = [b.home.clone(), b.runtime_dir.clone()];
    let mut paths = Vec::new();
    for r in &roots {
        walk(r, &mut paths);
    }
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
    // The roots are the user's alone.
    for d in [&b.home, &b.runtime_dir, &b.home.join("cache"), &b.home.join("state")] {
        assert_eq!(mode(d) & 0o077, 0, "{} is {:o}", d.display(), mode(d));
    }
    for f in ["state.sqlite", "state.sqlite-wal"] {
        let p = b.home.join(f);
        if p.exists() {
            assert_eq!(mode(&p) & 0o077, 0, "{} is {:o}", p.display(), mode(&p));
        }
    }
    let log = b.home.join("state/decisions.log");
    assert!(log.exists(), "the refusal was logged");
    assert_eq!(mode(&log) & 0o077, 0, "{:o}", mode(&log));
    let cache = b.home.join("cache/publisher");
    assert!(cache.exists());
    // Another user reaches nothing: not the roots, not any file beneath them.
    for p in &paths {
        let meta = std::fs::symlink_metadata(p).unwrap();
        let (what, arg) = if meta.is_dir() { ("ls", p.clone()) } else { ("cat", p.clone()) };
        if meta.file_type().is_socket() || meta.file_type().is_fifo() {
            continue;
        }
        let out = Command::new(what).arg(&arg).uid(NOBODY).gid(NOBODY).output().unwrap();
        assert!(
            !out.status.success(),
            "uid {NOBODY} could {what} {}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(paths.len() > 20, "the broker wrote its state: {paths:?}");
}

use std::os::unix::fs::FileTypeExt;

#[test]
fn state_on_disk_is_private_to_the_user() {
    if !is_root() {
        println!("SKIP: checking as another uid needs root (run the suite as root, as CI does)");
        return;
    }
    // A root broker, with a world-searchable folder above its state so that only appipc's own
    // modes protect it.
    let b = TestBroker::start();
    std::fs::set_permissions(b.root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    exercise(&b);
    check(&b);
    drop(b);
    // A broker of an ordinary user.
    let Some((uid, gid)) = test_user() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs the user appipc-test (scripts/test.sh creates it)"
        );
        println!(
            "SKIP: no user appipc-test for the unprivileged half (scripts/test.sh creates it)"
        );
        return;
    };
    let b = TestBroker::start_as(uid, gid, &[]);
    std::fs::set_permissions(b.root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    exercise(&b);
    check(&b);
    let _ = std::fs::metadata(b.root.path()).map(|m| m.uid());
}
