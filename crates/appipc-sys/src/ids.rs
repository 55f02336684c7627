//! Host ids for app containers under a root broker: whether an id is known to the user
//! database (NSS), and giving a folder tree to an id without following links.
//!
//! The allocation policy (which range, which id for which package) is the broker's; this
//! module only answers and acts.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::process::{Gid, Uid};

/// How deep [`give_tree`] descends; deeper entries are left as they are.
const MAX_DEPTH: usize = 128;

/// Whether NSS knows a user with this uid (`getpwuid_r`), so that it must not be handed out.
pub fn user_exists(uid: u32) -> io::Result<bool> {
    passwd_of(uid, |_| ())
}

/// The account name NSS gives this uid (`getpwuid_r`'s `pw_name`), `None` if it knows none.
pub fn user_name(uid: u32) -> io::Result<Option<String>> {
    let mut name = None;
    passwd_of(uid, |pw| {
        if !pw.pw_name.is_null() {
            // SAFETY: on success `pw_name` points at a NUL-terminated string inside the
            // lookup's buffer, which is alive while `passwd_of` runs this closure.
            name = Some(unsafe { CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned());
        }
    })?;
    Ok(name)
}

/// Looks `uid` up (`getpwuid_r`) and, if NSS knows it, shows `found` the entry (whose
/// strings live in the lookup's buffer only while `found` runs); whether it was known.
fn passwd_of(uid: u32, mut found: impl FnMut(&libc::passwd)) -> io::Result<bool> {
    lookup(|buf, out| {
        let mut pw: libc::passwd = unsafe_zeroed();
        // SAFETY: `pw`, `buf` and `out` are valid for the call and outlive it; `buf.len()` is
        // the buffer's true size; getpwuid_r writes only into them.
        let rc = unsafe {
            libc::getpwuid_r(
                uid,
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                out.cast::<*mut libc::passwd>(),
            )
        };
        // SAFETY: `out` points at the result pointer, a live local of `lookup`.
        let known = !unsafe { *out }.is_null();
        if rc == 0 && known {
            found(&pw);
        }
        (rc, known)
    })
}

/// Whether NSS knows a group with this gid (`getgrgid_r`).
pub fn group_exists(gid: u32) -> io::Result<bool> {
    lookup(|buf, out| {
        let mut gr: libc::group = unsafe_zeroed();
        // SAFETY: as in `passwd_of`, with getgrgid_r.
        let rc = unsafe {
            libc::getgrgid_r(
                gid,
                &mut gr,
                buf.as_mut_ptr().cast(),
                buf.len(),
                out.cast::<*mut libc::group>(),
            )
        };
        // SAFETY: as above.
        (rc, !unsafe { *out }.is_null())
    })
}

fn unsafe_zeroed<T: Copy>() -> T {
    // SAFETY: only used for libc's passwd and group structs, plain C structs of integers and
    // pointers for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// Runs a `get*_r` call with a growing buffer. `call(buf, out)` gets a pointer to the result
/// pointer and returns the call's result code and whether it found an entry.
fn lookup(
    mut call: impl FnMut(&mut Vec<u8>, *mut *mut libc::c_void) -> (i32, bool),
) -> io::Result<bool> {
    let mut buf = vec![0u8; 1024];
    loop {
        let mut out: *mut libc::c_void = std::ptr::null_mut();
        let (rc, found) = call(&mut buf, &raw mut out);
        match rc {
            0 => return Ok(found),
            libc::ERANGE if buf.len() < (1 << 20) => buf.resize(buf.len() * 2, 0),
            libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => return Ok(false),
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}

/// What [`give_tree`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GiveReport {
    /// Entries whose owner was set.
    pub changed: u64,
    /// Entries left alone: device nodes, files with more than one link (one could be a host
    /// file), entries below [`MAX_DEPTH`], entries that changed under the walk.
    pub skipped: u64,
}

/// Sets the owner and/or group of `dir` and of everything beneath it, never following a link:
/// each step opens its entry relative to the folder's fd with `O_NOFOLLOW` (`O_PATH` for what
/// is not a folder) and changes the opened inode, so an entry swapped for a link meanwhile is
/// skipped, never followed. Symbolic links themselves get the new owner; device nodes and
/// files with several hard links are skipped.
pub fn give_tree(dir: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<GiveReport> {
    let (uid, gid) = (uid.map(Uid::from_raw), gid.map(Gid::from_raw));
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fchown(&root, uid, gid)?;
    let mut report = GiveReport { changed: 1, skipped: 0 };
    let mut stack: Vec<(OwnedFd, usize)> = vec![(root, 0)];
    while let Some((fd, depth)) = stack.pop() {
        let names: Vec<std::ffi::CString> = {
            let mut d = rustix::fs::Dir::read_from(&fd)?;
            let mut names = Vec::new();
            while let Some(entry) = d.read() {
                let entry = entry?;
                let name = entry.file_name();
                if name != c"." && name != c".." {
                    names.push(name.to_owned());
                }
            }
            names
        };
        for name in names {
            match give_entry(fd.as_fd(), &name, uid, gid, depth)? {
                Entry::Dir(sub) => {
                    report.changed += 1;
                    stack.push((sub, depth + 1));
                }
                Entry::Changed => report.changed += 1,
                Entry::Skipped => report.skipped += 1,
            }
        }
    }
    Ok(report)
}

enum Entry {
    Dir(OwnedFd),
    Changed,
    Skipped,
}

fn give_entry(
    parent: std::os::fd::BorrowedFd<'_>,
    name: &CStr,
    uid: Option<Uid>,
    gid: Option<Gid>,
    depth: usize,
) -> io::Result<Entry> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::openat(parent, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Entry::Skipped),
        Err(e) => return Err(e.into()),
    };
    let st = rustix::fs::fstat(&fd)?;
    let kind = FileType::from_raw_mode(st.st_mode);
    match kind {
        FileType::Directory => {
            if depth + 1 >= MAX_DEPTH {
                return Ok(Entry::Skipped);
            }
            let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let dir = match rustix::fs::openat(parent, name, dir_flags, Mode::empty()) {
                Ok(d) => d,
                // Replaced by something else between the two opens.
                Err(
                    rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP | rustix::io::Errno::NOENT,
                ) => {
                    return Ok(Entry::Skipped);
                }
                Err(e) => return Err(e.into()),
            };
            if rustix::fs::fstat(&dir)?.st_ino != st.st_ino {
                return Ok(Entry::Skipped);
            }
            rustix::fs::fchown(&dir, uid, gid)?;
            Ok(Entry::Dir(dir))
        }
        FileType::CharacterDevice | FileType::BlockDevice => Ok(Entry::Skipped),
        FileType::RegularFile if st.st_nlink > 1 => Ok(Entry::Skipped),
        _ => {
            rustix::fs::chownat(
                &fd,
                c"",
                uid,
                gid,
                AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
            )?;
            Ok(Entry::Changed)
        }
    }
}

/// Sets owner, group and mode of the folder `dir` itself (not following a link at `dir`).
pub fn set_owner_and_mode(
    dir: &Path,
    uid: Option<u32>,
    gid: Option<u32>,
    mode: u32,
) -> io::Result<()> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fchown(&fd, uid.map(Uid::from_raw), gid.map(Gid::from_raw))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn nss_knows_root_and_not_a_far_id() {
        assert!(user_exists(0).unwrap());
        assert!(group_exists(0).unwrap());
        assert!(!user_exists(0x7A00_1234).unwrap());
        assert!(!group_exists(0x7A01_1234).unwrap());
        assert_eq!(user_name(0).unwrap().as_deref(), Some("root"));
        assert_eq!(user_name(0x7A00_1234).unwrap(), None);
    }

    #[test]
    fn give_tree_follows_no_link_and_skips_hard_links() {
        if !rustix::process::geteuid().is_root() {
            eprintln!(
                "SKIPPED give_tree_follows_no_link_and_skips_hard_links: needs root to chown"
            );
            return;
        }
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "host file").unwrap();
        let t = d.path().join("tree");
        std::fs::create_dir_all(t.join("a/b")).unwrap();
        std::fs::write(t.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), t.join("link-to-dir")).unwrap();
        std::os::unix::fs::symlink(&victim, t.join("link-to-file")).unwrap();
        std::fs::write(outside.path().join("h"), "y").unwrap();
        std::fs::hard_link(outside.path().join("h"), t.join("hard")).unwrap();
        let r = give_tree(&t, Some(54321), Some(54322)).unwrap();
        for p in ["", "a", "a/b", "a/b/f"] {
            let m = std::fs::metadata(t.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (54321, 54322), "{p}");
        }
        let l = std::fs::symlink_metadata(t.join("link-to-file")).unwrap();
        assert_eq!(l.uid(), 54321, "the link itself is given");
        for host in [victim.as_path(), outside.path(), &outside.path().join("h")] {
            assert_eq!(std::fs::metadata(host).unwrap().uid(), 0, "{}", host.display());
        }
        assert_eq!(r.skipped, 1, "the hard link: {r:?}");
        // A link as the root itself is refused.
        assert!(give_tree(&t.join("link-to-dir"), Some(1), None).is_err());
    }
}
