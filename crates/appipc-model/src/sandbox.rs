//! The app container *plan*: what a confined process of a package may see and touch, computed
//! from the manifest and a few facts about the host, as data. `appipc-sys` carries it out
//! (namespaces, binds, Landlock, seccomp); nothing here touches the system.
//!
//! The root is a read-only tmpfs (`ro,nosuid,nodev`) holding only:
//!
//! | inside | from | mount options | Landlock |
//! |---|---|---|---|
//! | `/usr`, and `/bin`, `/sbin`, `/lib*` (as the host has them: links into `/usr` or folders) | host | `ro,nosuid,nodev` | read, execute |
//! | a few files and folders of `/etc` (dynamic linker, users, time zone, certificates, alternatives) | host | `ro,nosuid,nodev` | read |
//! | the package's install folder, at its real path | store | `ro,nosuid,nodev` | read, execute |
//! | the package's app data folder (`LocalState`, …), at its real path | store | `rw,nosuid,nodev,noexec` | read, write |
//! | `/tmp` (also `$TMPDIR`) | the package's `TempState` | `rw,nosuid,nodev,noexec` | read, write |
//! | `/dev/shm` | a per-package folder in the runtime directory | `rw,nosuid,nodev,noexec` | read, write |
//! | the publisher cache folders it declares, at their real paths | cache | `rw,nosuid,nodev,noexec` | read, write |
//! | `/dev` | a tmpfs (mode 0755) | `rw,nosuid,nodev,noexec` | read |
//! | `/dev/null`, `zero`, `full`, `random`, `urandom`, `tty` | host devices | `ro,nosuid,noexec` | read, write |
//! | `/proc` | a new procfs of the package's own pid namespace | `rw,nosuid,nodev,noexec` | read |
//! | with `broadFileSystemAccess`: the user's home, at its real path, minus appipc's own state and runtime folders | host | `rw,nosuid,nodev,noexec` | read, write |
//!
//! Nothing else of the host exists inside: not the home (without the capability), not `/run`,
//! not the broker's socket, not other packages' folders.
//!
//! Every writable mount is `noexec` and its Landlock rule grants no execute right: code runs
//! only from the system folders and the package's own install folder, as in a Windows app
//! container, whose app data is not a place to run programs from. A JIT or an interpreter
//! still works (anonymous `PROT_EXEC` memory is allowed); plugins ship in the package. Device
//! binds are read-only mounts: the device can be read and written, but its owner, mode and
//! times (host objects) cannot change.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// The uid (and gid) a confined process has inside its user namespace. It maps to the
/// broker's uid under an unprivileged broker, to the package's own uid under a root broker.
pub const INSIDE_ID: u32 = 1000;

/// The gid, inside, of the package's publisher group (root broker only; see
/// [`PUBLISHER_GIDS`]).
pub const INSIDE_PUBLISHER_GID: u32 = 1001;

/// Under a root broker, each package runs as its own host uid (and gid of the same number) from
/// this range: 65536 ids from `0x7A000000` (2046820352), in the range systemd's
/// `UIDS-GIDS.md` lists as unused (above the container range 524288–1879048191 that
/// `systemd-nspawn` allocates from, below the signed-32-bit limit and systemd's foreign range).
/// Not the `DynamicUser` range 61184–65519: systemd allocates there itself, checking only
/// NSS and its own lock files, so it would not see appipc's ids. Every id appipc takes is
/// checked against NSS first, as systemd recommends container managers do.
pub const PACKAGE_IDS: RangeInclusive<u32> = 0x7A00_0000..=0x7A00_FFFF;

/// Under a root broker, each publisher with a publisher cache folder has a host group from this
/// range (the 65536 ids after [`PACKAGE_IDS`]); its packages' processes are members, its cache
/// folders belong to it.
pub const PUBLISHER_GIDS: RangeInclusive<u32> = 0x7A01_0000..=0x7A01_FFFF;

/// How a host path is bound (the mount options in the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `ro,nosuid,nodev`.
    ReadOnly,
    /// `rw,nosuid,nodev,noexec`.
    ReadWrite,
    /// A device node: `ro,nosuid,noexec` (usable, its metadata unchangeable).
    Device,
}

/// The host ids to try, in order, for a package family name or a publisher id `name` in
/// `range`: the first comes from a hash of the name (FNV-1a of its lower-case form, so one name
/// gets the same id again on any machine that has it free), then every other id of the range
/// once. The caller takes the first that nothing else uses.
pub fn id_candidates(name: &str, range: RangeInclusive<u32>) -> impl Iterator<Item = u32> {
    let mut hash: u32 = 0x811c_9dc5;
    for b in name.to_ascii_lowercase().bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    let (start, size) = (*range.start(), u64::from(*range.end() - *range.start()) + 1);
    let first = u64::from(hash) % size;
    (0..size).map(move |i| start + u32::try_from((first + i) % size).expect("within the range"))
}

/// One step of building the sandbox's file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// Bind a host path at `target`, with `access`. Missing sources are skipped.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Path inside.
        target: PathBuf,
        /// How.
        access: Access,
    },
    /// A symbolic link at `link` pointing to `target`.
    Symlink {
        /// Link contents.
        target: PathBuf,
        /// Where the link is.
        link: PathBuf,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Where.
        target: PathBuf,
    },
    /// A fresh procfs.
    Proc {
        /// Where.
        target: PathBuf,
    },
}

impl Mount {
    /// Where it appears inside.
    pub fn target(&self) -> &Path {
        match self {
            Mount::Bind { target, .. } | Mount::Tmpfs { target } | Mount::Proc { target } => target,
            Mount::Symlink { link, .. } => link,
        }
    }
}

/// How a top-level host path exists (Debian has `/bin` → `usr/bin`; older systems a folder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    /// A symbolic link with this target.
    Link(PathBuf),
    /// A folder.
    Dir,
    /// Absent.
    Missing,
}

/// The facts the plan needs.
#[derive(Debug, Clone)]
pub struct PlanInput<'a> {
    /// The package's installed files.
    pub install_dir: &'a Path,
    /// The package's app data root (holding `LocalState`, `TempState`, …).
    pub data_dir: &'a Path,
    /// The folder to use as `/dev/shm`.
    pub shm_dir: &'a Path,
    /// How `/bin`, `/sbin`, `/lib`, `/lib32`, `/lib64`, `/libx32` exist on the host.
    pub top_level: &'a [(PathBuf, HostEntry)],
    /// The user's home (granted with `broadFileSystemAccess`).
    pub user_home: Option<&'a Path>,
    /// Folders that must never be visible even inside a granted home: appipc's state and
    /// runtime folders.
    pub hidden: &'a [PathBuf],
    /// The package declares `broadFileSystemAccess`.
    pub broad_file_system_access: bool,
    /// The host folders of the publisher cache folders the package declares (bound read-write
    /// at their real paths).
    pub publisher_cache: &'a [PathBuf],
}

/// The confinement of one process, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPlan {
    /// Build steps, in order.
    pub mounts: Vec<Mount>,
    /// Landlock: host paths whose trees may be read and executed.
    pub read_exec: Vec<PathBuf>,
    /// Landlock: host paths whose trees may be read and written, not executed from (nor may
    /// devices be made there).
    pub read_write: Vec<PathBuf>,
    /// Landlock: host files (devices) that may be read and written.
    pub read_write_files: Vec<PathBuf>,
    /// Landlock scopes: no connecting to abstract unix sockets or signalling outside.
    pub scoped: bool,
    /// Landlock: TCP bind and connect denied. False for app containers: the package's own
    /// network namespace (only `lo`) and the loopback data path (`docs/loopback.md`) are the
    /// boundary, and a package's processes must reach each other; Landlock's TCP rules match
    /// ports only, so they cannot say "this package's loopback".
    pub deny_tcp: bool,
    /// Working directory inside.
    pub cwd: PathBuf,
    /// `HOME` inside.
    pub home: PathBuf,
    /// `TMPDIR` inside.
    pub tmpdir: PathBuf,
    /// Host name inside.
    pub hostname: String,
}

/// Files and folders of `/etc` a program needs to run and to resolve names and certificates.
pub const ETC_ENTRIES: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/group",
    "/etc/localtime",
    "/etc/hosts",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/os-release",
];

/// Device files bound into `/dev`.
pub const DEVICES: &[&str] =
    &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"];

/// The top-level host paths whose shape the plan mirrors.
pub const TOP_LEVEL: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

fn bind(source: &Path, access: Access) -> Mount {
    Mount::Bind { source: source.to_path_buf(), target: source.to_path_buf(), access }
}

/// Computes the plan.
pub fn plan(input: &PlanInput<'_>) -> SandboxPlan {
    let mut mounts = vec![bind(Path::new("/usr"), Access::ReadOnly)];
    let mut read_exec = vec![PathBuf::from("/usr")];
    for (path, entry) in input.top_level {
        match entry {
            HostEntry::Link(target) => {
                mounts.push(Mount::Symlink { target: target.clone(), link: path.clone() })
            }
            HostEntry::Dir => {
                mounts.push(bind(path, Access::ReadOnly));
                read_exec.push(path.clone());
            }
            HostEntry::Missing => {}
        }
    }
    for e in ETC_ENTRIES {
        mounts.push(bind(Path::new(e), Access::ReadOnly));
        read_exec.push(PathBuf::from(e));
    }
    let mut read_write = Vec::new();
    if input.broad_file_system_access
        && let Some(home) = input.user_home
    {
        mounts.push(bind(home, Access::ReadWrite));
        read_write.push(home.to_path_buf());
        for h in input.hidden {
            if h.starts_with(home) {
                mounts.push(Mount::Tmpfs { target: h.clone() });
            }
        }
    }
    mounts.push(bind(input.install_dir, Access::ReadOnly));
    read_exec.push(input.install_dir.to_path_buf());
    mounts.push(bind(input.data_dir, Access::ReadWrite));
    read_write.push(input.data_dir.to_path_buf());
    for folder in input.publisher_cache {
        mounts.push(bind(folder, Access::ReadWrite));
        read_write.push(folder.clone());
    }
    let temp = input.data_dir.join("TempState");
    mounts.push(Mount::Bind {
        source: temp.clone(),
        target: PathBuf::from("/tmp"),
        access: Access::ReadWrite,
    });
    // Landlock walks up from a file through the mounts as the process sees them: from /tmp it
    // reaches the TempState folder (the root of that mount) and then the root tmpfs, never the
    // data folder above TempState on the host. So TempState needs a rule of its own.
    read_write.push(temp);
    mounts.push(Mount::Tmpfs { target: PathBuf::from("/dev") });
    let mut read_write_files = Vec::new();
    for d in DEVICES {
        mounts.push(bind(Path::new(d), Access::Device));
        read_write_files.push(PathBuf::from(d));
    }
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        mounts.push(Mount::Symlink { target: PathBuf::from(target), link: PathBuf::from(link) });
    }
    mounts.push(Mount::Bind {
        source: input.shm_dir.to_path_buf(),
        target: PathBuf::from("/dev/shm"),
        access: Access::ReadWrite,
    });
    read_write.push(input.shm_dir.to_path_buf());
    mounts.push(Mount::Proc { target: PathBuf::from("/proc") });
    // A mount must come before the mounts beneath it, or it would hide them (appipc's home may
    // itself live under /tmp or the user's home). Stable: equal depths keep their order.
    mounts.sort_by_key(|m| m.target().components().count());
    SandboxPlan {
        mounts,
        read_exec,
        read_write,
        read_write_files,
        scoped: true,
        deny_tcp: false,
        cwd: input.install_dir.to_path_buf(),
        home: input.data_dir.join("LocalState"),
        tmpdir: PathBuf::from("/tmp"),
        hostname: "appcontainer".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        top: &'a [(PathBuf, HostEntry)],
        hidden: &'a [PathBuf],
        broad: bool,
    ) -> PlanInput<'a> {
        PlanInput {
            install_dir: Path::new("/home/u/.local/share/appipc/packages/P_1"),
            data_dir: Path::new("/home/u/.local/share/appipc/data/P_x"),
            shm_dir: Path::new("/run/user/1/appipc/shm/P_x"),
            top_level: top,
            user_home: Some(Path::new("/home/u")),
            hidden,
            broad_file_system_access: broad,
            publisher_cache: &[],
        }
    }

    fn targets(p: &SandboxPlan) -> Vec<PathBuf> {
        p.mounts.iter().map(|m| m.target().to_path_buf()).collect()
    }

    #[test]
    fn parents_are_mounted_before_what_lies_beneath() {
        // appipc's home under /tmp (as in tests): /tmp must not hide the package's folders.
        let top = vec![];
        let mut i = input(&top, &[], false);
        i.install_dir = Path::new("/tmp/t/home/packages/P_1");
        i.data_dir = Path::new("/tmp/t/home/data/P_x");
        let t = targets(&plan(&i));
        let tmp = t.iter().position(|x| x == Path::new("/tmp")).unwrap();
        let inst = t.iter().position(|x| x == Path::new("/tmp/t/home/packages/P_1")).unwrap();
        assert!(tmp < inst);
        let dev = t.iter().position(|x| x == Path::new("/dev")).unwrap();
        let null = t.iter().position(|x| x == Path::new("/dev/null")).unwrap();
        assert!(dev < null);
    }

    #[test]
    fn minimal_root_without_home() {
        let top = vec![
            (PathBuf::from("/bin"), HostEntry::Link("usr/bin".into())),
            (PathBuf::from("/lib32"), HostEntry::Missing),
        ];
        let p = plan(&input(&top, &[], false));
        let t = targets(&p);
        assert!(t.contains(&PathBuf::from("/usr")));
        assert!(t.contains(&PathBuf::from("/bin")));
        assert!(!t.contains(&PathBuf::from("/lib32")));
        assert!(!t.iter().any(|x| x == Path::new("/home/u")), "no home without the capability");
        assert!(
            !t.iter().any(|x| x.starts_with("/run") && x != Path::new("/dev/shm")),
            "nothing of /run"
        );
        // Read-only install folder, read-write own data.
        assert!(p.mounts.contains(&Mount::Bind {
            source: "/home/u/.local/share/appipc/packages/P_1".into(),
            target: "/home/u/.local/share/appipc/packages/P_1".into(),
            access: Access::ReadOnly
        }));
        // /tmp is TempState, and Landlock needs a rule on that mount's root itself.
        assert!(p.mounts.contains(&Mount::Bind {
            source: "/home/u/.local/share/appipc/data/P_x/TempState".into(),
            target: "/tmp".into(),
            access: Access::ReadWrite
        }));
        assert!(
            p.read_write.contains(&PathBuf::from("/home/u/.local/share/appipc/data/P_x/TempState"))
        );
        // Every writable bind is of the app's own (or granted) folders; devices are devices.
        for m in &p.mounts {
            if let Mount::Bind { source, access, .. } = m {
                match access {
                    Access::ReadWrite => assert!(
                        p.read_write.contains(source)
                            || source.starts_with("/home/u/.local/share/appipc/data/P_x"),
                        "{m:?}"
                    ),
                    Access::Device => assert!(source.starts_with("/dev/"), "{m:?}"),
                    Access::ReadOnly => assert!(!p.read_write.contains(source), "{m:?}"),
                }
            }
        }
        assert!(p.read_write.contains(&PathBuf::from("/home/u/.local/share/appipc/data/P_x")));
        assert!(!p.read_write.iter().any(|x| x.starts_with("/usr")));
        assert_eq!(p.home, Path::new("/home/u/.local/share/appipc/data/P_x/LocalState"));
        assert!(p.scoped && !p.deny_tcp);
    }

    #[test]
    fn id_candidates_cover_the_range_once_from_a_stable_start() {
        let a: Vec<u32> = id_candidates("Contoso.Hello_x1", 10..=19).collect();
        assert_eq!(a.len(), 10);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (10..=19).collect::<Vec<_>>());
        assert_eq!(id_candidates("contoso.hello_X1", 10..=19).next(), Some(a[0]), "case-blind");
        let first = id_candidates("Contoso.Hello_x1", PACKAGE_IDS).next().unwrap();
        assert!(PACKAGE_IDS.contains(&first));
        assert_eq!(first, id_candidates("Contoso.Hello_x1", PACKAGE_IDS).next().unwrap());
        assert_ne!(first, id_candidates("Fabrikam.Tools_x2", PACKAGE_IDS).next().unwrap());
        assert!(!PACKAGE_IDS.contains(PUBLISHER_GIDS.start()), "the ranges are apart");
        assert!(*PUBLISHER_GIDS.end() < 0x8000_0000, "below the signed 32-bit limit");
    }

    #[test]
    fn broad_access_grants_home_but_hides_appipc() {
        let hidden =
            vec![PathBuf::from("/home/u/.local/share/appipc"), PathBuf::from("/run/user/1/appipc")];
        let p = plan(&input(&[], &hidden, true));
        let t = targets(&p);
        let home = t.iter().position(|x| x == Path::new("/home/u")).expect("home bound");
        let hide = t
            .iter()
            .position(|x| x == Path::new("/home/u/.local/share/appipc"))
            .expect("state hidden");
        let own = t
            .iter()
            .position(|x| x == Path::new("/home/u/.local/share/appipc/data/P_x"))
            .expect("own data");
        assert!(home < hide && hide < own, "home, then the hiding tmpfs, then own data on top");
        assert!(
            !t.contains(&PathBuf::from("/run/user/1/appipc")),
            "not under home: never bound at all"
        );
        assert!(p.read_write.contains(&PathBuf::from("/home/u")));
    }
}
