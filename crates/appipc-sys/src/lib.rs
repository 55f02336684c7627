//! Every syscall and every `unsafe` block of appipc, behind safe, typed wrappers.
//!
//! The other crates of the workspace forbid `unsafe` code; whatever they need from the kernel
//! comes from here, built on [`rustix`] and the I/O-safe fd types (`OwnedFd`, `BorrowedFd`).
//! Raw `libc` is used only for what rustix lacks (`SO_PEERPIDFD`, `close_range`,
//! `mount_setattr`, signal masks and `sigwaitinfo`, a `fork` without atfork handlers in a
//! forked child, seccomp and Landlock syscalls, NSS lookups), each call with a `SAFETY:`
//! comment.
//!
//! * [`socket`]: `SOCK_SEQPACKET` unix sockets that carry fds with each message;
//! * [`cred`]: who is on the other end of a socket (`SO_PEERCRED`, `SO_PEERPIDFD`); giving
//!   up root for a helper that needs no privilege;
//! * [`process`]: spawning children with an exact fd table, pidfds, reaping;
//! * [`sandbox`]: the app container: namespace holders, the mount plan, the waiter / init /
//!   app processes of a confined launch and the error that names a failed set-up step;
//! * [`landlock`], [`seccomp`]: the restrictions a confined child applies last;
//! * [`loopback`]: what a `connect`/`bind` address names (loopback in every spelling), checked
//!   as the kernel checks it;
//! * [`seccomp_notify`]: the supervisor that carries out an app's `chmod` and `setxattr`
//!   calls, on files of its own mounts only (under an unprivileged broker);
//! * [`ids`]: host ids for app containers under a root broker (NSS checks, giving a folder
//!   tree to an id without following links);
//! * [`pty`]: pseudo-terminals and terminal modes, for the CLI's terminal relay;
//! * [`probe`]: single-syscall escape attempts, for the escape tests only;
//! * [`memfd`], [`ring`]: sealed memfds and the shared-memory ring of file mappings;
//! * [`fs`]: file-system helpers std lacks (advisory locks, reopening files);
//! * [`dirfd`]: opening, creating and walking files beneath a directory fd without following
//!   links (`openat2` `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), bounded reads;
//! * [`env`]: what a process inherits (the session fd, fds its parent placed for it, the
//!   runtime directory);
//! * [`malloc`]: glibc's arena limit and `malloc_trim`, so that a daemon gives memory back;
//! * [`aio`]: tokio wrappers for the above.
//!
//! ```
//! use appipc_sys::socket::{seqpacket_pair, send, recv, Blocking};
//! let (a, b) = seqpacket_pair().unwrap();
//! send(&a, b"ping", &[], Blocking::Yes).unwrap();
//! let p = recv(&b, 64, Blocking::Yes).unwrap().expect("not at end of stream");
//! assert_eq!(p.data, b"ping");
//! ```
//!
//! This crate makes no policy decisions: it does what it is asked, and reports each failing
//! syscall as its own error.

pub mod aio;
pub mod cred;
pub mod dirfd;
pub mod env;
pub mod fs;
pub mod ids;
pub mod landlock;
pub mod loopback;
pub mod malloc;
pub mod memfd;
pub mod probe;
pub mod process;
pub mod pty;
pub mod ring;
pub mod sandbox;
pub mod seccomp;
pub mod seccomp_notify;
pub mod socket;
pub mod systemd;
pub mod timer;
