use super::*;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn path_cstr(p: &Path) -> std::ffi::CString {
    std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap()
}

fn open_dir(p: &Path) -> OwnedFd {
    rustix::fs::open(p, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).unwrap()
}

/// (device, inode) of what an fd refers to.
fn ino(fd: impl AsFd) -> (u64, u64) {
    let st = rustix::fs::fstat(fd).unwrap();
    (st.st_dev, st.st_ino)
}

fn ino_of(p: &Path) -> (u64, u64) {
    let st = rustix::fs::lstat(p).unwrap();
    (st.st_dev, st.st_ino)
}

fn no_ids() -> Result<(u32, u32)> {
    panic!("no procfs `self` on this path")
}

// ---------------------------------------------------------------------------------------------
// decode

#[test]
fn calls_are_decoded_as_the_kernel_reads_their_registers() {
    let fd = |v: i32| v as u32 as u64;
    assert_eq!(
        decode(libc::SYS_fchmod, [fd(7), 0o644, 0, 0, 0, 0]),
        Ok(Call::Chmod { at: At::Fd(7), mode: 0o644 })
    );
    // umode_t: the high bits of the register are not the mode.
    assert_eq!(
        decode(libc::SYS_fchmod, [fd(7), 0xffff_0000_0000_01ff, 0, 0, 0, 0]),
        Ok(Call::Chmod { at: At::Fd(7), mode: 0o777 })
    );
    assert_eq!(
        decode(libc::SYS_fchmodat, [fd(AT_FDCWD), 0x1000, 0o600, 0, 0, 0]),
        Ok(Call::Chmod {
            at: At::Path { dirfd: AT_FDCWD, path: 0x1000, follow: true, empty: false },
            mode: 0o600
        })
    );
    let nofollow = libc::AT_SYMLINK_NOFOLLOW as u64;
    let empty = libc::AT_EMPTY_PATH as u64;
    assert_eq!(
        decode(libc::SYS_fchmodat2, [fd(3), 0x1000, 0o600, nofollow | empty, 0, 0]),
        Ok(Call::Chmod {
            at: At::Path { dirfd: 3, path: 0x1000, follow: false, empty: true },
            mode: 0o600
        })
    );
    assert_eq!(
        decode(libc::SYS_fchmodat2, [fd(3), 0x1000, 0o600, 0x8000_0000, 0, 0]),
        Err(Errno::INVAL),
        "unknown flags"
    );
    for mode in [0o4755, 0o2755] {
        assert_eq!(decode(libc::SYS_fchmod, [3, mode, 0, 0, 0, 0]), Err(Errno::PERM), "{mode:o}");
    }
    assert_eq!(
        decode(libc::SYS_lsetxattr, [0x1000, 0x2000, 0x3000, 4, libc::XATTR_CREATE as u64, 0]),
        Ok(Call::SetXattr {
            at: At::Path { dirfd: AT_FDCWD, path: 0x1000, follow: false, empty: false },
            name: 0x2000,
            value: 0x3000,
            size: 4,
            flags: libc::XATTR_CREATE as u32,
        })
    );
    assert_eq!(decode(libc::SYS_fsetxattr, [3, 1, 2, 3, 0x10, 0]), Err(Errno::INVAL));
    assert_eq!(
        decode(SYS_SETXATTRAT, [fd(AT_FDCWD), 0x1000, nofollow, 0x2000, 0x3000, 16]),
        Ok(Call::SetXattrAt {
            at: At::Path { dirfd: AT_FDCWD, path: 0x1000, follow: false, empty: false },
            name: 0x2000,
            args: 0x3000,
            args_size: 16,
        })
    );
    assert_eq!(decode(libc::SYS_getpid, [0; 6]), Err(Errno::NOSYS));
}

#[test]
fn the_filter_sends_each_supervised_syscall_and_nothing_else() {
    let all: Vec<i64> = SUPERVISED.iter().map(|s| s.nr).collect();
    let p = program(&all);
    let compared: Vec<u32> = p.iter().filter(|i| i.code == 0x15).map(|i| i.k).collect();
    assert_eq!(compared[0], AUDIT_ARCH, "the architecture first");
    let mut nrs: Vec<u32> = SUPERVISED.iter().map(|s| s.nr as u32).collect();
    nrs.sort_unstable();
    let mut seen = compared[1..].to_vec();
    seen.sort_unstable();
    assert_eq!(seen, nrs);
    // Every compare jumps to the one notify instruction, at the end.
    let last = p.len() - 1;
    assert_eq!(p[last].k, libc::SECCOMP_RET_USER_NOTIF);
    for (i, insn) in p.iter().enumerate().filter(|(_, x)| x.code == 0x15).skip(1) {
        assert_eq!(i + 1 + usize::from(insn.jt), last, "instruction {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// the path walk

#[test]
fn a_remaining_path_takes_link_targets_in_front() {
    let mut r = Remaining::new(b"a//b/").unwrap();
    let mut name = [0u8; 256];
    assert_eq!(r.next(&mut name).unwrap(), Some((1, Follows::More)));
    assert_eq!(&name[..1], b"a");
    r.prepend(b"/x/y").unwrap();
    let mut got = Vec::new();
    while let Some((len, follows)) = r.next(&mut name).unwrap() {
        got.push((String::from_utf8(name[..len].to_vec()).unwrap(), follows));
    }
    assert_eq!(
        got,
        [
            ("x".to_owned(), Follows::More),
            ("y".to_owned(), Follows::More),
            ("b".to_owned(), Follows::Slash)
        ]
    );
    let mut long = Remaining::new(&[b'a'; PATH_MAX]).unwrap();
    assert_eq!(long.prepend(&[b'b'; PATH_MAX]), Err(Errno::NAMETOOLONG));
    let mut r = Remaining::new(&[b'c'; 256]).unwrap();
    assert_eq!(r.next(&mut name), Err(Errno::NAMETOOLONG), "a component over NAME_MAX");
}

/// A tree to resolve in, as if it were an app's root.
struct Tree {
    dir: tempfile::TempDir,
    root: OwnedFd,
}

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::fs::write(d.join("a/b/file"), "f").unwrap();
        std::os::unix::fs::symlink("/a/b", d.join("a/abs")).unwrap();
        std::os::unix::fs::symlink("../..", d.join("a/b/up")).unwrap();
        std::os::unix::fs::symlink("file", d.join("a/b/link")).unwrap();
        std::os::unix::fs::symlink("loop2", d.join("loop1")).unwrap();
        std::os::unix::fs::symlink("loop1", d.join("loop2")).unwrap();
        let root = open_dir(d);
        Tree { dir, root }
    }

    fn at(&self, base: &str, path: &str, follow: bool) -> Result<(u64, u64)> {
        let b = open_dir(&self.dir.path().join(base));
        resolve(self.root.as_fd(), b.as_fd(), path.as_bytes(), follow, &mut no_ids, None).map(ino)
    }

    fn ino(&self, rel: &str) -> (u64, u64) {
        ino_of(&self.dir.path().join(rel))
    }
}

#[test]
fn paths_resolve_in_the_apps_root_as_the_kernel_would() {
    let t = Tree::new();
    let file = t.ino("a/b/file");
    assert_eq!(t.at("", "/a/b/file", true), Ok(file));
    // An absolute link target starts again at the app's root, not the supervisor's.
    assert_eq!(t.at("", "/a/abs/file", true), Ok(file));
    assert_eq!(t.at("a", "abs/../b/file", true), Ok(file));
    // `..` stops at the root: from the path, from a link, from a relative start.
    assert_eq!(t.at("", "/../../a/b/file", true), Ok(file));
    assert_eq!(t.at("a/b", "up/../../a/b/file", true), Ok(file));
    assert_eq!(t.at("a/b", "../../../../a/b/file", true), Ok(file));
    assert_eq!(t.at("a", "./b/./file", true), Ok(file));
    // The last link: followed or not; a trailing slash follows it and wants a folder.
    assert_eq!(t.at("", "/a/b/link", true), Ok(file));
    assert_eq!(t.at("", "/a/b/link", false), Ok(t.ino("a/b/link")));
    assert_eq!(t.at("", "/a/b/link/", false), Err(Errno::NOTDIR));
    assert_eq!(t.at("", "/a/b/file/", true), Err(Errno::NOTDIR));
    assert_eq!(t.at("", "/a/b/file/x", true), Err(Errno::NOTDIR));
    assert_eq!(t.at("", "/a/abs/", false), Ok(t.ino("a/b")));
    assert_eq!(t.at("", "/a/nothing", true), Err(Errno::NOENT));
    assert_eq!(t.at("", "/loop1", true), Err(Errno::LOOP));
    assert_eq!(t.at("", "/loop1", false), Ok(t.ino("loop1")));
    assert_eq!(t.at("", "/", true), Ok(t.ino("")));
    assert_eq!(t.at("", "", true), Err(Errno::NOENT));
}

#[test]
fn proc_self_names_the_caller_and_magic_links_are_followed() {
    // A child whose fd 0 is a memfd: "self" must mean it, not this process.
    let memfd = rustix::fs::memfd_create("self-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .stdin(std::fs::File::from(memfd.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let pid = child.id();
    let root = open_dir(Path::new("/"));
    let mut ids = || Ok((pid, pid));
    let got = |path: &str, ids: &mut dyn FnMut() -> Result<(u32, u32)>| {
        resolve(root.as_fd(), root.as_fd(), path.as_bytes(), true, ids, None).map(ino)
    };
    assert_eq!(got("/proc/self/fd/0", &mut ids), Ok(ino(&memfd)));
    assert_eq!(got("/proc/thread-self/fd/0", &mut ids), Ok(ino(&memfd)));
    assert_eq!(got(&format!("/proc/{pid}/fd/0"), &mut ids), Ok(ino(&memfd)));
    // Through a link of the app's own, as /dev/fd is.
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/proc/self/fd", dir.path().join("fd")).unwrap();
    let via = format!("{}/fd/0", dir.path().display());
    assert_eq!(got(&via, &mut ids), Ok(ino(&memfd)));
    // The magic link itself when the last link is not followed.
    let link =
        resolve(root.as_fd(), root.as_fd(), b"/proc/self/fd/0", false, &mut ids, None).unwrap();
    assert_eq!(file_type(link.as_fd()), Ok(libc::S_IFLNK));
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn mountinfo_yields_every_mount_id() {
    let info =
        rustix::fs::open(c"/proc/self/mountinfo", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .unwrap();
    let m = Mounts::read(&info).unwrap();
    assert!(m.complete && m.len > 0);
    let file = tempfile::tempfile().unwrap();
    let st = rustix::fs::statx(&file, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID).unwrap();
    assert!(m.contains(st.stx_mnt_id), "the mount of a temporary file");
    let memfd = rustix::fs::memfd_create("m", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let st = rustix::fs::statx(&memfd, c"", AtFlags::EMPTY_PATH, StatxFlags::MNT_ID).unwrap();
    assert!(!m.contains(st.stx_mnt_id), "a memfd's mount is no one's");
    // Lines longer than the read buffer and more ids than fit.
    let fake = rustix::fs::memfd_create("fake", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let mut text = String::new();
    for i in 1..=1100 {
        text.push_str(&format!("{i} 1 0:1 / /m{i} rw {} - tmpfs x rw\n", "o".repeat(i % 7 * 900)));
    }
    rustix::io::write(&fake, text.as_bytes()).unwrap();
    let fake = rustix::fs::openat(
        rustix::fs::CWD,
        format!("/proc/self/fd/{}", fake.as_raw_fd()).as_str(),
        OFlags::RDONLY,
        Mode::empty(),
    )
    .unwrap();
    let m = Mounts::read(&fake).unwrap();
    assert_eq!(m.len, 1024);
    assert!(!m.complete);
    assert!(m.contains(1) && m.contains(1024) && !m.contains(1025));
}

// ---------------------------------------------------------------------------------------------
// the supervisor, end to end: a forked "app" under the filter, the real supervisor process

/// What the app child does: each entry's errno (0: success), in order.
fn app_calls(
    memfd: RawFd,
    file: RawFd,
    file_path: &CStr,
    link_path: &CStr,
    long: &CStr,
) -> [i32; 16] {
    let acl: [u8; 28] = {
        let mut v = [0u8; 28];
        v[..4].copy_from_slice(&2u32.to_le_bytes());
        for (i, tag) in [0x01u16, 0x04, 0x20].iter().enumerate() {
            let e = 4 + i * 8;
            v[e..e + 2].copy_from_slice(&tag.to_le_bytes());
            v[e + 2..e + 4].copy_from_slice(&6u16.to_le_bytes());
            v[e + 4..e + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        }
        v
    };
    let mut memfd_path = PathBuf::<64>::new();
    memfd_path.push(b"/proc/self/fd/").unwrap().push_u32(memfd as u32).unwrap();
    let mut file_proc_path = PathBuf::<64>::new();
    file_proc_path.push(b"/proc/self/fd/").unwrap().push_u32(file as u32).unwrap();
    let errno = |rc: libc::c_long| {
        if rc < 0 { io::Error::last_os_error().raw_os_error().unwrap_or(-1) } else { 0 }
    };
    // SAFETY: every pointer is a NUL-terminated string or a buffer that lives for its call;
    // the fds are this process's; nothing is written through any of them.
    unsafe {
        [
            errno(libc::syscall(libc::SYS_fchmod, memfd, 0o600)),
            errno(libc::syscall(libc::SYS_fchmod, file, 0o640)),
            errno(libc::syscall(libc::SYS_fchmodat, libc::AT_FDCWD, file_path.as_ptr(), 0o604)),
            errno(libc::syscall(
                libc::SYS_fchmodat,
                libc::AT_FDCWD,
                memfd_path.as_cstr().as_ptr(),
                0o666,
            )),
            errno(libc::syscall(
                libc::SYS_fchmodat,
                libc::AT_FDCWD,
                file_proc_path.as_cstr().as_ptr(),
                0o600,
            )),
            errno(libc::syscall(
                libc::SYS_fsetxattr,
                memfd,
                c"system.posix_acl_access".as_ptr(),
                acl.as_ptr(),
                acl.len(),
                0,
            )),
            errno(libc::syscall(
                libc::SYS_setxattr,
                memfd_path.as_cstr().as_ptr(),
                c"user.x".as_ptr(),
                c"v".as_ptr(),
                1usize,
                0,
            )),
            errno(libc::syscall(
                libc::SYS_fchmodat2,
                libc::AT_FDCWD,
                link_path.as_ptr(),
                0o600,
                libc::AT_SYMLINK_NOFOLLOW,
            )),
            errno(libc::syscall(
                libc::SYS_fchmodat2,
                libc::AT_FDCWD,
                file_path.as_ptr(),
                0o600,
                0x8000,
            )),
            errno(libc::syscall(libc::SYS_fchmod, file, 0o4755)),
            errno(libc::syscall(
                libc::SYS_fchmodat,
                libc::AT_FDCWD,
                std::ptr::null::<libc::c_char>(),
                0o600,
            )),
            errno(libc::syscall(libc::SYS_fchmodat, libc::AT_FDCWD, long.as_ptr(), 0o600)),
            errno(libc::syscall(libc::SYS_fchmod, 999, 0o600)),
            errno(libc::syscall(
                libc::SYS_fchmodat2,
                memfd,
                c"".as_ptr(),
                0o666,
                libc::AT_EMPTY_PATH,
            )),
            errno(libc::syscall(
                libc::SYS_setxattr,
                file_path.as_ptr(),
                c"user.appipc".as_ptr(),
                c"1".as_ptr(),
                1usize,
                0,
            )),
            errno(libc::syscall(
                libc::SYS_lsetxattr,
                link_path.as_ptr(),
                c"user.appipc".as_ptr(),
                c"1".as_ptr(),
                1usize,
                0,
            )),
        ]
    }
}

#[test]
fn the_supervisor_changes_the_apps_own_files_and_refuses_the_rest() {
    let (filter, supervisor) = supervised().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file_path = dir.path().join("own");
    std::fs::write(&file_path, "x").unwrap();
    let link_path = dir.path().join("link");
    std::os::unix::fs::symlink("own", &link_path).unwrap();
    let file = std::fs::File::options().read(true).write(true).open(&file_path).unwrap();
    let memfd = crate::memfd::create_fixed_size("supervised", 4096).unwrap();
    let (cfile, clink) = (path_cstr(&file_path), path_cstr(&link_path));
    let long = std::ffi::CString::new(vec![b'a'; 5000]).unwrap();
    // What the kernel itself answers for the link (no supervisor in between).
    // SAFETY: NUL-terminated path, integers.
    let kernel_nofollow = unsafe {
        libc::syscall(
            libc::SYS_fchmodat2,
            libc::AT_FDCWD,
            clink.as_ptr(),
            0o600,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    let kernel_nofollow =
        if kernel_nofollow < 0 { io::Error::last_os_error().raw_os_error().unwrap() } else { 0 };
    // And for extended attributes, on a file and a link of the same folder.
    let control = dir.path().join("control");
    std::fs::write(&control, "c").unwrap();
    std::os::unix::fs::symlink("control", dir.path().join("control-link")).unwrap();
    let kernel_xattr = |path: &Path, follow: bool| {
        let p = path_cstr(path);
        let r = if follow {
            rustix::fs::setxattr(
                p.as_c_str(),
                c"user.appipc",
                b"1",
                rustix::fs::XattrFlags::empty(),
            )
        } else {
            rustix::fs::lsetxattr(
                p.as_c_str(),
                c"user.appipc",
                b"1",
                rustix::fs::XattrFlags::empty(),
            )
        };
        r.err().map_or(0, |e| e.raw_os_error())
    };
    let kernel_file_xattr = kernel_xattr(&control, true);
    let kernel_link_xattr = kernel_xattr(&dir.path().join("control-link"), false);
    let (results_read, results_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();

    let supervisor_pid = supervisor.start().unwrap();
    drop(supervisor);
    // SAFETY: the child only makes async-signal-safe calls (raw syscalls on buffers prepared
    // above) and ends with _exit.
    let app = unsafe { crate::sandbox::raw_fork() }.unwrap();
    if app == 0 {
        let r = match filter.apply() {
            Ok(()) => app_calls(memfd.as_raw_fd(), file.as_raw_fd(), &cfile, &clink, &long),
            Err(e) => [e.raw_os_error().unwrap_or(-1); 16],
        };
        let mut bytes = [0u8; 64];
        for (i, v) in r.iter().enumerate() {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        let _ = rustix::io::write(&results_write, &bytes);
        exit_now(0);
    }
    drop(filter);
    drop(results_write);
    let mut bytes = [0u8; 64];
    let mut got = 0;
    while got < bytes.len() {
        let n = rustix::io::read(&results_read, &mut bytes[got..]).unwrap();
        assert!(n > 0, "the app child ended early");
        got += n;
    }
    let reap = |pid: i32| {
        rustix::process::waitpid(
            rustix::process::Pid::from_raw(pid),
            rustix::process::WaitOptions::empty(),
        )
    };
    reap(app).unwrap();
    // With no process left under the filter, the supervisor ends by itself.
    let status = reap(supervisor_pid as i32).unwrap().unwrap().1;
    assert_eq!(status.exit_status(), Some(0), "the supervisor's end");

    let r: Vec<i32> = bytes.chunks(4).map(|c| i32::from_ne_bytes(c.try_into().unwrap())).collect();
    let expected = [
        ("fchmod of the broker's memfd", libc::EPERM),
        ("fchmod of the app's own file", 0),
        ("chmod of the app's own file by path", 0),
        ("chmod of /proc/self/fd/<memfd>", libc::EPERM),
        ("chmod of /proc/self/fd/<own file>", 0),
        ("an ACL on the memfd", libc::EPERM),
        ("an attribute on /proc/self/fd/<memfd>", libc::EPERM),
        ("fchmodat2 AT_SYMLINK_NOFOLLOW of a link (as the kernel answers)", kernel_nofollow),
        ("fchmodat2 with an unknown flag", libc::EINVAL),
        ("fchmod to a set-uid mode", libc::EPERM),
        ("chmod of a null path", libc::EFAULT),
        ("chmod of a path over PATH_MAX", libc::ENAMETOOLONG),
        ("fchmod of an fd the app does not have", libc::EBADF),
        ("fchmodat2 AT_EMPTY_PATH of the memfd", libc::EPERM),
        ("an attribute on the app's own file (as the kernel answers)", kernel_file_xattr),
        ("an attribute on a link itself (as the kernel answers)", kernel_link_xattr),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .zip(&r)
        .filter(|((_, want), got)| *want != **got)
        .map(|((what, want), got)| format!("{what}: errno {got}, wanted {want}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file_path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600, "the app's own file got each mode in turn");
    assert_eq!(rustix::fs::fstat(&memfd).unwrap().st_mode & 0o7777, 0o400, "the memfd kept its");
}

/// Runs a classic BPF seccomp program (the instructions our programs use) on one syscall.
fn run_bpf(p: &[libc::sock_filter], arch: u32, nr: u32, arg1: u64) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&nr.to_ne_bytes());
    data[4..8].copy_from_slice(&arch.to_ne_bytes());
    data[24..32].copy_from_slice(&arg1.to_ne_bytes());
    let (mut acc, mut pc) = (0u32, 0usize);
    loop {
        let i = p[pc];
        pc += 1;
        match i.code {
            0x20 => {
                let k = i.k as usize;
                acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
            }
            0x15 => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
            0x45 => pc += usize::from(if acc & i.k != 0 { i.jt } else { i.jf }),
            0x05 => pc += i.k as usize,
            0x54 => acc &= i.k,
            0x06 => return i.k,
            c => panic!("instruction {c:#x} not interpreted"),
        }
    }
}

#[test]
fn the_full_trust_filter_hands_over_connect_bind_and_listen_only() {
    let p = full_trust_program();
    let (allow, notify) = (SECCOMP_RET_ALLOW, libc::SECCOMP_RET_USER_NOTIF);
    let native = |nr: i64| run_bpf(&p, AUDIT_ARCH, nr as u32, 0);
    assert_eq!(native(libc::SYS_connect), notify);
    assert_eq!(native(libc::SYS_bind), notify);
    assert_eq!(native(libc::SYS_listen), notify);
    for nr in [libc::SYS_read, libc::SYS_accept4, libc::SYS_sendto, libc::SYS_io_uring_setup] {
        assert_eq!(native(nr), allow, "{nr}");
    }
    #[cfg(target_arch = "x86_64")]
    assert_eq!(run_bpf(&p, AUDIT_ARCH, libc::SYS_read as u32 | 0x4000_0000, 0), allow, "x32");
    assert_eq!(run_bpf(&p, 0x4000_0003, 102, 0), allow, "another architecture");
}
