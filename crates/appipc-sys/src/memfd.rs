//! Sealed memfds: immutable byte buffers passed between processes by fd.
//!
//! A writer fills a memfd and seals it (`F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW |
//! F_SEAL_SEAL`); a reader checks those seals before mapping it, so the bytes cannot change
//! under the reader's feet however the writer behaves.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{MapFlags, ProtFlags};

const REQUIRED_SEALS: SealFlags =
    SealFlags::WRITE.union(SealFlags::SHRINK).union(SealFlags::GROW).union(SealFlags::SEAL);

/// Creates a sealed memfd of exactly `len` bytes whose content `fill` writes into a mapping
/// (no intermediate copy). `fill` gets a zeroed buffer of `len` bytes.
pub fn create_sealed(name: &str, len: usize, fill: impl FnOnce(&mut [u8])) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, len as u64)?;
    if len > 0 {
        let map = Mapping::new(fd.as_fd(), len, true)?;
        // SAFETY: `map` is a fresh shared read-write mapping of `len` bytes of a memfd only this
        // function holds, so no one else can alias it while `fill` runs; the slice does not
        // outlive `map`.
        let buf = unsafe { std::slice::from_raw_parts_mut(map.ptr.as_ptr(), len) };
        fill(buf);
        drop(map); // F_SEAL_WRITE refuses while a writable shared mapping exists.
    }
    rustix::fs::fcntl_add_seals(&fd, REQUIRED_SEALS)?;
    Ok(fd)
}

/// A memfd of a fixed size (sealed against growing and shrinking, contents writable through
/// the returned fd): the backing of a named file mapping.
///
/// Its mode is 0400 (a memfd starts as 0777): reopening it read-write through
/// `/proc/self/fd/N` — which Landlock does not govern for memfds, since they live on the
/// kernel's internal shm mount — is refused to everyone without `CAP_DAC_OVERRIDE` over it,
/// including its owner. Whoever may change that mode back (the owner, `CAP_FOWNER`) can still
/// make it writable; an unprivileged broker's apps own it, which is what the seccomp
/// supervisor ([`crate::seccomp_notify`]) is for. Hand out writable handles as duplicates of
/// the returned fd.
pub fn create_fixed_size(name: &str, size: u64) -> io::Result<OwnedFd> {
    let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
    rustix::fs::ftruncate(&fd, size)?;
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
    rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o400))?;
    Ok(fd)
}

/// `STATX_MNT_ID_UNIQUE` (Linux 6.8), not yet in rustix.
const STATX_MNT_ID_UNIQUE: u32 = 0x4000;

/// The mount id of the file behind `fd` (the unique 64-bit id where the kernel has one, else
/// the old one), and whether it is the unique kind.
fn mount_id(fd: impl AsFd) -> io::Result<(u64, bool)> {
    use rustix::fs::{AtFlags, StatxFlags};
    let mask = StatxFlags::from_bits_retain(STATX_MNT_ID_UNIQUE) | StatxFlags::MNT_ID;
    let st = rustix::fs::statx(fd, c"", AtFlags::EMPTY_PATH, mask)?;
    let unique = st.stx_mask & STATX_MNT_ID_UNIQUE != 0;
    if !unique && st.stx_mask & StatxFlags::MNT_ID.bits() == 0 {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "statx reports no mount id"));
    }
    Ok((st.stx_mnt_id, unique))
}

/// Whether `fd` is a file of the kernel's internal memory mounts — a memfd (the shm mount
/// every memfd lives on) or a file of hugetlbfs — rather than a file some path names.
/// Reopening such a file through `/proc/self/fd` is governed by its mode alone (Landlock lets
/// it through), and its mode is its owner's to change.
pub fn is_anonymous_memory(fd: impl AsFd) -> io::Result<bool> {
    let fd = fd.as_fd();
    if rustix::fs::fstatfs(fd)?.f_type as u32 == HUGETLBFS_MAGIC {
        return Ok(true);
    }
    let probe = rustix::fs::memfd_create("appipc-probe", MemfdFlags::CLOEXEC)?;
    Ok(mount_id(fd)? == mount_id(&probe)?)
}

/// `HUGETLBFS_MAGIC` (linux/magic.h).
const HUGETLBFS_MAGIC: u32 = 0x9584_58f6;

/// A shared mapping of a whole fd (a file mapping's view).
#[derive(Debug)]
pub struct SharedView {
    map: Option<Mapping>,
    writable: bool,
}

impl SharedView {
    /// Maps `len` bytes of `fd` shared, writable or read-only. A read-only view of an fd opened
    /// read-only cannot be made writable (the kernel refuses), and writing to it faults.
    pub fn map(fd: impl AsFd, len: usize, writable: bool) -> io::Result<SharedView> {
        let map = if len == 0 {
            None
        } else {
            let prot = if writable { ProtFlags::READ | ProtFlags::WRITE } else { ProtFlags::READ };
            // SAFETY: a fresh shared mapping at a kernel-chosen address cannot overlap a Rust
            // object; `len` is non-zero; the fd is valid for the call.
            let ptr = unsafe {
                rustix::mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, fd.as_fd(), 0)?
            };
            let ptr = NonNull::new(ptr.cast::<u8>())
                .ok_or_else(|| io::Error::other("mmap returned null"))?;
            Some(Mapping { ptr, len })
        };
        Ok(SharedView { map, writable })
    }

    /// The bytes. Other processes may change them at any time: read with care.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.map {
            None => &[],
            // SAFETY: `len` mapped bytes alive as long as `self`; the memfd cannot shrink (sealed)
            // so no access faults. Concurrent writers elsewhere can change the bytes; they are
            // plain bytes with no invariants, which is the contract of shared memory.
            Some(m) => unsafe { std::slice::from_raw_parts(m.ptr.as_ptr(), m.len) },
        }
    }

    /// The bytes, writable; `None` for a read-only view.
    pub fn as_bytes_mut(&mut self) -> Option<&mut [u8]> {
        match (&self.map, self.writable) {
            (Some(m), true) => {
                // SAFETY: as in `as_bytes`; the mapping is writable and `&mut self` keeps other
                // views of this value from aliasing it within this process.
                Some(unsafe { std::slice::from_raw_parts_mut(m.ptr.as_ptr(), m.len) })
            }
            _ => None,
        }
    }

    /// Writes `bytes` at `offset` through the mapping even if it is read-only: for tests that
    /// show a read-only view faults (the process is killed with SIGSEGV).
    pub fn write_through_anyway(&self, offset: usize, bytes: &[u8]) {
        if let Some(m) = &self.map {
            let n = bytes.len().min(m.len.saturating_sub(offset));
            // SAFETY: the destination is inside the mapping (bounds clamped); if the mapping is
            // read-only the kernel delivers SIGSEGV, which is exactly what this demonstrates;
            // no Rust reference to the bytes exists during the copy.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), m.ptr.as_ptr().add(offset), n) };
        }
    }
}

/// A read-only view of a sealed memfd.
#[derive(Debug)]
pub struct SealedView {
    map: Option<Mapping>,
}

impl SealedView {
    /// Maps a memfd received from another process after checking that it is sealed against
    /// writing, shrinking and growing, and that its size is `expected_len` (at most
    /// `max_len`).
    pub fn open(fd: impl AsFd, expected_len: u64, max_len: u64) -> io::Result<SealedView> {
        let fd = fd.as_fd();
        if expected_len > max_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("memfd of {expected_len} bytes exceeds the limit of {max_len}"),
            ));
        }
        let seals = rustix::fs::fcntl_get_seals(fd).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("not a sealable memfd: {e}"))
        })?;
        if !seals.contains(SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "memfd is not sealed against change",
            ));
        }
        let size = rustix::fs::fstat(fd)?.st_size as u64;
        if size != expected_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("memfd holds {size} bytes, the frame says {expected_len}"),
            ));
        }
        let len = usize::try_from(size).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let map = if len == 0 { None } else { Some(Mapping::new(fd, len, false)?) };
        Ok(SealedView { map })
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.map {
            None => &[],
            // SAFETY: the mapping is `len` readable bytes, alive as long as `self`; the memfd is
            // sealed against writes, shrinking and growing, so the bytes neither change nor
            // disappear (no SIGBUS) while the slice lives.
            Some(m) => unsafe { std::slice::from_raw_parts(m.ptr.as_ptr(), m.len) },
        }
    }
}

#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Mapping is plain memory owned by this value; it has no thread affinity.
unsafe impl Send for Mapping {}
// SAFETY: shared access only hands out `&[u8]` (read-only) views.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(fd: std::os::fd::BorrowedFd<'_>, len: usize, writable: bool) -> io::Result<Mapping> {
        let prot = if writable { ProtFlags::READ | ProtFlags::WRITE } else { ProtFlags::READ };
        let flags = if writable { MapFlags::SHARED } else { MapFlags::PRIVATE };
        // SAFETY: a new mapping at an address the kernel chooses (null hint) cannot overlap
        // any Rust object; `len` is non-zero and the fd is valid for the call.
        let ptr = unsafe { rustix::mm::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0)? };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned, and every slice derived from this
        // mapping borrows `self`, so none outlives this unmap.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_seals() {
        let fd = create_sealed("t", 5, |b| b.copy_from_slice(b"hello")).unwrap();
        let v = SealedView::open(&fd, 5, 100).unwrap();
        assert_eq!(v.as_bytes(), b"hello");
        // Cannot be written any more.
        assert!(rustix::io::write(&fd, b"x").is_err());
        assert!(SealedView::open(&fd, 4, 100).is_err(), "length mismatch refused");
        assert!(SealedView::open(&fd, 5, 4).is_err(), "over the limit refused");
    }

    #[test]
    fn a_fixed_size_memfd_keeps_its_size_and_takes_writes() {
        let fd = create_fixed_size("f", 8192).unwrap();
        assert!(rustix::fs::ftruncate(&fd, 4096).is_err(), "cannot shrink");
        assert!(rustix::fs::ftruncate(&fd, 16384).is_err(), "cannot grow");
        assert!(
            rustix::fs::fcntl_add_seals(&fd, SealFlags::WRITE).is_err(),
            "the seals are sealed"
        );
        assert_eq!(rustix::io::pwrite(&fd, b"data", 100).unwrap(), 4, "contents writable");
        assert_eq!(rustix::fs::fstat(&fd).unwrap().st_size, 8192);
    }

    #[test]
    fn a_fixed_size_memfd_cannot_be_reopened_for_writing_without_capabilities() {
        use std::os::fd::AsRawFd;
        let fd = create_fixed_size("m", 4096).unwrap();
        let st = rustix::fs::fstat(&fd).unwrap();
        assert_eq!(st.st_mode & 0o7777, 0o400, "owner read only");
        // Without CAP_DAC_OVERRIDE (dropped in a thread of its own: capabilities are per
        // thread), the owner itself may reopen it for reading only.
        let raw = fd.as_raw_fd();
        let (ro, rw) = std::thread::spawn(move || {
            let none = rustix::thread::CapabilitySet::empty();
            let sets = rustix::thread::CapabilitySets {
                effective: none,
                permitted: none,
                inheritable: none,
            };
            rustix::thread::set_capabilities(None, sets).unwrap();
            let path = format!("/proc/self/fd/{raw}");
            let open = |flags| rustix::fs::open(path.as_str(), flags, rustix::fs::Mode::empty());
            (open(rustix::fs::OFlags::RDONLY).map(drop), open(rustix::fs::OFlags::RDWR).map(drop))
        })
        .join()
        .unwrap();
        assert_eq!(ro, Ok(()), "read-only reopen");
        assert_eq!(rw, Err(rustix::io::Errno::ACCESS), "read-write reopen refused");
        // The fd it returned still writes.
        assert_eq!(rustix::io::pwrite(&fd, b"w", 0).unwrap(), 1);
    }

    #[test]
    fn memfds_are_told_apart_from_files() {
        let memfd = rustix::fs::memfd_create("t", MemfdFlags::CLOEXEC).unwrap();
        assert!(is_anonymous_memory(&memfd).unwrap());
        assert!(is_anonymous_memory(create_fixed_size("f", 4096).unwrap()).unwrap());
        let file = tempfile::tempfile().unwrap();
        assert!(!is_anonymous_memory(&file).unwrap(), "a file of a mounted file system");
        let dev_shm = tempfile::tempfile_in("/dev/shm").unwrap();
        assert!(!is_anonymous_memory(&dev_shm).unwrap(), "a tmpfs file some path names");
    }

    #[test]
    fn unsealed_memfd_is_refused() {
        let fd =
            rustix::fs::memfd_create("u", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::fs::ftruncate(&fd, 3).unwrap();
        assert!(SealedView::open(&fd, 3, 10).is_err());
        let (a, _b) = crate::socket::stream_pair().unwrap();
        assert!(SealedView::open(&a, 0, 10).is_err(), "a socket is not a memfd");
    }
}
