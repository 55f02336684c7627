//! Installs install what was checked (issue 10), tried as an attacker would: a package folder
//! whose manifest is swapped while it is copied, files swapped for symbolic links or FIFOs
//! between a check and an open, and manifests that are FIFOs, device nodes, links or 1 GiB
//! large, each while other installs go on. Real broker, real folders, real swapping threads;
//! the installs are folder installs (developer mode is on in a test broker).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use appipc::PackageManager;
use appipc_testkit::{TestBroker, unique};

const SCRIPT: &[u8] = b"#!/bin/sh\necho hello\n";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn manifest(name: &str) -> String {
    format!(
        "[package]\nname = \"{name}\"\npublisher = \"CN=Race Test\"\nversion = \"1.0.0.0\"\n\n\
         [[application]]\nid = \"App\"\nexecutable = \"bin/run\"\n"
    )
}

/// A package folder `root/<unique>` with `manifest` and an executable `bin/run`.
fn package(root: &Path, manifest: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = root.join(unique("pkg"));
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("appipc.toml"), manifest).unwrap();
    std::fs::write(dir.join("bin/run"), SCRIPT).unwrap();
    std::fs::set_permissions(dir.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Runs `swap` in a loop on another thread until the returned guard is dropped.
struct Swapper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Swapper {
    fn start(mut swap: impl FnMut() + Send + 'static) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(Ordering::Relaxed) {
                swap();
                n += 1;
            }
            n
        });
        Swapper { stop, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Replaces `target` atomically with a regular file holding `content` (written beside it in
/// `scratch`, on the same file system).
fn replace_with_file(scratch: &Path, target: &Path, content: &[u8]) {
    std::fs::write(scratch, content).unwrap();
    std::fs::rename(scratch, target).unwrap();
}

/// Every package the broker lists has, in its installed folder, the manifest of the family it
/// is listed as: the row and the files agree.
async fn rows_match_files(pm: &PackageManager) -> usize {
    let pkgs = pm.find_packages().await.unwrap();
    for p in &pkgs {
        let text =
            std::fs::read_to_string(Path::new(&p.install_location).join("appipc.toml")).unwrap();
        let m = appipc_model::manifest::parse(&text).unwrap();
        assert_eq!(
            m.identity.family_name().to_string(),
            p.family_name,
            "{} is recorded, but its installed files are those of {}",
            p.family_name,
            m.identity.family_name()
        );
    }
    pkgs.len()
}

#[test]
fn swapping_the_manifest_during_an_install_cannot_change_what_is_installed() {
    let mut b = TestBroker::start();
    let root = b.root.path().to_path_buf();
    let (a, c) = (manifest("Race.SwapA"), manifest("Race.SwapB"));
    let dir = package(&root, &a);
    // A large file, so that the copy takes a while and the swap lands in the middle of it.
    std::fs::write(dir.join("blob.bin"), vec![7u8; 16 << 20]).unwrap();
    let target = dir.join("appipc.toml");
    let scratch = root.join("swap-scratch");
    let swapper = Swapper::start(move || {
        replace_with_file(&scratch, &target, c.as_bytes());
        replace_with_file(&scratch, &target, a.as_bytes());
    });
    let (mut installed, mut refused) = (0, 0);
    rt().block_on(async {
        let pm = PackageManager::new(&b.session());
        for i in 0..24 {
            match pm.add_package(&dir).await {
                Ok(r) => {
                    installed += 1;
                    assert_eq!(rows_match_files(&pm).await, 1);
                    // Keep the last one, to look at it again after a restart.
                    if i < 23 {
                        pm.remove_package(&r.family_name).await.unwrap();
                    }
                }
                Err(e) => {
                    refused += 1;
                    eprintln!("refused: {e}");
                }
            }
        }
    });
    let swaps = swapper.finish();
    eprintln!("{installed} installed, {refused} refused, {swaps} swaps");
    assert!(installed > 0, "no install got through the swapping");
    b.stop();
    b.restart();
    rt().block_on(async {
        let pm = PackageManager::new(&b.session());
        rows_match_files(&pm).await;
    });
}

#[test]
fn a_file_swapped_for_a_symlink_is_never_followed_into_the_package() {
    let b = TestBroker::start();
    let root = b.root.path().to_path_buf();
    let secret = root.join("secret.txt");
    std::fs::write(&secret, "SECRET of the user").unwrap();
    let dir = package(&root, &manifest("Race.Links"));
    let target = dir.join("data.txt");
    std::fs::write(&target, "good").unwrap();
    // data.txt is a regular file half of the time and a link to the secret the other half,
    // each state replacing the other atomically (rename), as fast as it can.
    let (t, s, r) = (target.clone(), secret.clone(), root.clone());
    let swapper = Swapper::start(move || {
        let link = r.join("swap-link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&s, &link).unwrap();
        std::fs::rename(&link, &t).unwrap();
        replace_with_file(&r.join("swap-file"), &t, b"good");
    });
    let (mut installed, mut refused) = (0, 0);
    rt().block_on(async {
        let pm = PackageManager::new(&b.session());
        for _ in 0..200 {
            match pm.add_package(&dir).await {
                Ok(r) => {
                    installed += 1;
                    let p = pm.find_packages().await.unwrap().remove(0);
                    let f = Path::new(&p.install_location).join("data.txt");
                    let meta = std::fs::symlink_metadata(&f).unwrap();
                    assert!(meta.is_file(), "data.txt is installed as {:?}", meta.file_type());
                    assert_eq!(
                        std::fs::read_to_string(&f).unwrap(),
                        "good",
                        "a file outside the package was copied into it through a link"
                    );
                    pm.remove_package(&r.family_name).await.unwrap();
                }
                Err(e) => {
                    refused += 1;
                    assert!(e.to_string().contains("symbolic link"), "{e}");
                }
            }
        }
    });
    let swaps = swapper.finish();
    eprintln!("{installed} installed, {refused} refused as links, {swaps} swaps");
}

#[test]
fn a_file_swapped_for_a_fifo_cannot_hang_an_install() {
    let b = TestBroker::start();
    let root = b.root.path().to_path_buf();
    let dir = package(&root, &manifest("Race.Fifos"));
    let target = dir.join("data.txt");
    std::fs::write(&target, "good").unwrap();
    // data.txt is a regular file half of the time and a FIFO nobody writes to the other half.
    let (t, r) = (target.clone(), root.clone());
    let swapper = Swapper::start(move || {
        let fifo = r.join("swap-fifo");
        let _ = std::fs::remove_file(&fifo);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        std::fs::rename(&fifo, &t).unwrap();
        replace_with_file(&r.join("swap-file"), &t, b"good");
    });
    // The installs run on another thread; this one only watches that each returns. A FIFO
    // opened without O_NONBLOCK and with no writer blocks forever: that is the failure.
    let (tx, rx) = std::sync::mpsc::channel();
    let socket = b.socket();
    let installer = std::thread::spawn(move || {
        rt().block_on(async {
            let pm = PackageManager::new(&appipc::Session::connect_to(&socket).unwrap());
            for _ in 0..300 {
                let outcome = match pm.add_package(&dir).await {
                    Ok(r) => {
                        pm.remove_package(&r.family_name).await.unwrap();
                        Ok(())
                    }
                    Err(e) => Err(e.to_string()),
                };
                if tx.send(outcome).is_err() {
                    return;
                }
            }
        })
    });
    let (mut installed, mut refused) = (0, 0);
    for i in 0..300 {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(Ok(())) => installed += 1,
            Ok(Err(e)) => {
                refused += 1;
                assert!(e.contains("FIFO") || e.contains("not a regular file"), "{e}");
            }
            Err(_) => panic!(
                "install {i} did not return in 120 s: it hangs on a FIFO swapped into the \
                 package folder; broker log:\n{}",
                b.log()
            ),
        }
    }
    installer.join().unwrap();
    let swaps = swapper.finish();
    eprintln!("{installed} installed, {refused} refused, {swaps} swaps");
    // The broker still installs other packages.
    let other = package(&root, &manifest("Race.Afterwards"));
    rt().block_on(async {
        PackageManager::new(&b.session()).add_package(&other).await.unwrap();
    });
}

/// The broker's peak resident memory, from `/proc/PID/status` (`VmHWM`, kB).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn hostile_manifests_are_refused_while_a_normal_install_succeeds() {
    let b = TestBroker::start();
    let root = b.root.path().to_path_buf();
    let mut hostile: Vec<(PathBuf, &str)> = Vec::new();
    for _ in 0..2 {
        // A FIFO nobody writes to.
        let dir = package(&root, "");
        std::fs::remove_file(dir.join("appipc.toml")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("appipc.toml"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        hostile.push((dir, "FIFO"));
        // 1 GiB (sparse: it costs no disk here).
        let dir = package(&root, "");
        let f = std::fs::File::create(dir.join("appipc.toml")).unwrap();
        f.set_len(1 << 30).unwrap();
        hostile.push((dir, "1073741824 bytes; at most 1048576"));
        // A link to a valid manifest elsewhere.
        let dir = package(&root, "");
        let elsewhere = package(&root, &manifest("Race.Elsewhere"));
        std::fs::remove_file(dir.join("appipc.toml")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("appipc.toml"), dir.join("appipc.toml")).unwrap();
        hostile.push((dir, "symbolic link"));
        // A device node (/dev/null's numbers); creating one needs CAP_MKNOD.
        let dir = package(&root, "");
        std::fs::remove_file(dir.join("appipc.toml")).unwrap();
        match rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("appipc.toml"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        ) {
            Ok(()) => hostile.push((dir, "character device")),
            Err(e) => eprintln!("skipping the device-node manifest: mknod needs root ({e})"),
        }
    }
    let normal = package(&root, &manifest("Race.Normal"));
    let socket = b.socket();
    let outcomes = rt().block_on(async {
        let mut tasks = Vec::new();
        for (dir, want) in hostile {
            let socket = socket.clone();
            tasks.push(tokio::spawn(async move {
                let pm = PackageManager::new(&appipc::Session::connect_to(&socket).unwrap());
                (want, pm.add_package(&dir).await.map(|r| r.full_name).map_err(|e| e.to_string()))
            }));
        }
        let pm = PackageManager::new(&b.session());
        let r = pm.add_package(&normal).await.expect("the normal install");
        assert!(r.full_name.starts_with("Race.Normal_"), "{}", r.full_name);
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        outcomes
    });
    let peak = peak_rss_kib(b.pid());
    eprintln!("broker peak RSS {peak} kB");
    assert!(peak < 256 * 1024, "the broker's memory peaked at {peak} kB reading hostile manifests");
    for (want, outcome) in outcomes {
        match outcome {
            Ok(full) => panic!("a hostile manifest ({want}) installed as {full}"),
            Err(e) => assert!(e.contains(want), "{want:?} not in: {e}"),
        }
    }
    let left: Vec<_> = std::fs::read_dir(b.home.join("packages"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".staging-"))
        .collect();
    assert!(left.is_empty(), "staging folders left: {left:?}");
}
