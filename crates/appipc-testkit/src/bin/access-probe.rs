//! `access-probe`: opens named objects and pipes with given rights, straight through the
//! protocol, and reports what the fd it was handed can really do — the attacker's view, not
//! the SDK's. Runs as a packaged app (launched by the broker) or unpackaged.
//!
//! ```text
//! access-probe STEP...
//!   map NAME ACCESS          OpenFileMapping; then mmap read-only and read-write
//!   event NAME ACCESS        OpenEvent; then write to the fd (signal) and poll it
//!   sem NAME ACCESS          OpenSemaphore; the same
//!   set NAME ACCESS          OpenEvent, then SetEvent as the SDK does it (broker if no fd)
//!   pipe NAME ACCESS         CreateFile on a pipe; then write to and read from the end
//!   create-map NAME SIZE     CreateFileMapping (default descriptor), kept open
//!   create-event NAME        CreateEvent (auto reset, default descriptor), kept open
//!   hoard-sessions N         OpenSession up to N times, keeping them; prints how many it got
//!   hoard-pipes N            CreatePipe instances of new names up to N times, kept
//!   hoard-events N           CreateEvent of new names up to N times, handles kept
//!   hoard-endpoints N        register RPC endpoints of new names up to N times, kept, over a
//!                            new session (OpenSession) every 64 (the per-session limit)
//!   rpc NAME SID             connect to RPC endpoint NAME (SID: the server it must be, or -),
//!                            send "ping", print the server's answer
//!   rpc-serve NAME SDDL      register RPC endpoint NAME (SDDL, or - for the default) and answer
//!                            each message with who sent it, as long as this process runs
//!   sleep MS                 wait (to keep what it serves up)
//! ```
//!
//! ACCESS is a number (`0x4`, `0`). Each step prints one line, `STEP => RESULT`, where RESULT is
//! `error CODE` or `fd KIND` followed by `read`/`no-read`, `write`/`no-write` (mappings, pipes) or
//! `signal`/`no-signal`, `poll`/`no-poll` (events, semaphores), or `set ok`/`set error CODE`.
//! Exit status 0 whatever the results (2 on bad arguments).
#![forbid(unsafe_code)]

use std::os::fd::{AsFd, OwnedFd};

use appipc::Session;
use appipc_sys::socket::{self, Blocking};
use appipc_wire::protocol::named_objects::{self as no, HandleFd, NamedObjectKind, ObjectType};
use appipc_wire::protocol::pipes;

fn parse_access(s: &str) -> u32 {
    match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).expect("hex access"),
        None => s.parse().expect("access"),
    }
}

fn code(e: &appipc::Error) -> String {
    match e.windows_code() {
        appipc::WindowsCode::Win32(c) => format!("error {c}"),
        other => format!("error {other}: {e}"),
    }
}

async fn open(
    session: &Session,
    ty: ObjectType,
    name: &str,
    access: u32,
) -> Result<(no::NamedObjectHandle, Option<OwnedFd>), appipc::Error> {
    let request = no::Open { object_type: ty, name: name.to_owned(), desired_access: access };
    let (h, mut fds) = session.call_with_fds(request, &[]).await?;
    Ok((h, fds.pop()))
}

fn kind(k: HandleFd) -> &'static str {
    match k {
        HandleFd::None => "none",
        HandleFd::Object => "object",
        HandleFd::ReadOnly => "read-only",
        HandleFd::Readiness => "readiness",
    }
}

fn yes(ok: bool, what: &str) -> String {
    if ok { what.to_owned() } else { format!("no-{what}") }
}

/// What a mapping fd allows: a read-only view, and a writable one.
fn map_rights(fd: Option<&OwnedFd>, size: u64) -> String {
    let len = usize::try_from(size).unwrap_or(4096);
    let read = fd.is_some_and(|f| appipc_sys::memfd::SharedView::map(f, len, false).is_ok());
    let write = fd.is_some_and(|f| appipc_sys::memfd::SharedView::map(f, len, true).is_ok());
    format!("{} {}", yes(read, "read"), yes(write, "write"))
}

/// What an event or semaphore fd allows: writing a signal into it, and polling it.
fn sync_rights(fd: Option<&OwnedFd>) -> String {
    let signal = fd.is_some_and(|f| appipc_sys::aio::eventfd_add(f, 1).is_ok());
    let poll = fd.is_some_and(|f| appipc_sys::aio::is_readable(f).is_ok());
    format!("{} {}", yes(signal, "signal"), yes(poll, "poll"))
}

/// What a pipe end allows: sending a byte, and reading (no data yet is "read": the half is
/// open; an end of stream right away means the half is shut).
fn pipe_rights(fd: &OwnedFd) -> String {
    let write = socket::send(fd.as_fd(), b"x", &[], Blocking::No).is_ok();
    let read = match socket::recv(fd.as_fd(), 16, Blocking::No) {
        Ok(Some(p)) => !p.data.is_empty(),
        Ok(None) => false,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    };
    format!("{} {}", yes(read, "read"), yes(write, "write"))
}

async fn step(
    session: &Session,
    kept: &mut Vec<Box<dyn std::any::Any>>,
    args: &[String],
) -> String {
    let name = args[1].as_str();
    match args[0].as_str() {
        "map" | "event" | "sem" => {
            let ty = match args[0].as_str() {
                "map" => ObjectType::FileMapping,
                "event" => ObjectType::Event,
                _ => ObjectType::Semaphore,
            };
            match open(session, ty, name, parse_access(&args[2])).await {
                Err(e) => code(&e),
                Ok((h, fd)) => {
                    let rights = if ty == ObjectType::FileMapping {
                        map_rights(fd.as_ref(), h.size)
                    } else {
                        sync_rights(fd.as_ref())
                    };
                    let out = format!("fd {} {rights}", kind(h.fd));
                    kept.push(Box::new((h, fd)));
                    out
                }
            }
        }
        "set" => {
            match appipc::named_objects::Event::open(session, name, parse_access(&args[2])).await {
                Err(e) => code(&e),
                Ok(ev) => match ev.set().await {
                    Ok(()) => "set ok".into(),
                    Err(e) => format!("set {}", code(&e)),
                },
            }
        }
        "pipe" => {
            let request =
                pipes::Open { name: name.to_owned(), desired_access: parse_access(&args[2]) };
            match session.call_with_fds(request, &[]).await {
                Err(e) => code(&e),
                Ok((_, mut fds)) => match fds.pop() {
                    Some(fd) => {
                        let r = format!("fd object {}", pipe_rights(&fd));
                        kept.push(Box::new(fd));
                        r
                    }
                    None => "no fd".into(),
                },
            }
        }
        "create-map" | "create-event" => {
            let kind = if args[0] == "create-map" {
                NamedObjectKind::FileMapping {
                    size: args[2].parse().expect("size"),
                    writable: true,
                }
            } else {
                NamedObjectKind::Event { manual_reset: false, initial_state: false }
            };
            let request = no::Create { kind, name: name.to_owned(), sddl: None };
            match session.call_with_fds(request, &[]).await {
                Err(e) => code(&e),
                Ok(h) => {
                    kept.push(Box::new(h));
                    "created".into()
                }
            }
        }
        "hoard-endpoints" => {
            let n: usize = name.parse().expect("a count");
            let mut sessions = vec![session.clone()];
            let mut got = 0;
            let mut last = String::from("none");
            for i in 0..n {
                if i > 0 && i % 64 == 0 {
                    let fd = match session
                        .call_with_fds(appipc_wire::protocol::broker::OpenSession {}, &[])
                        .await
                    {
                        Ok((_, mut fds)) => fds.pop().expect("the session's fd"),
                        Err(e) => {
                            last = code(&e);
                            break;
                        }
                    };
                    sessions.push(Session::from_fd(fd).expect("a session"));
                }
                let s = sessions.last().expect("one at least");
                let name = format!("hoard.{}.{i}", std::process::id());
                match appipc::rpc::RpcServer::register(s, &name, None).await {
                    Ok(server) => {
                        kept.push(Box::new(server));
                        got += 1;
                    }
                    Err(e) => {
                        last = code(&e);
                        break;
                    }
                }
            }
            kept.push(Box::new(sessions));
            format!("got {got} then {last}")
        }
        "hoard-sessions" | "hoard-pipes" | "hoard-events" => {
            let n: usize = name.parse().expect("a count");
            let mut got = 0;
            let mut last = String::from("none");
            for i in 0..n {
                let r = if args[0] == "hoard-sessions" {
                    session
                        .call_with_fds(appipc_wire::protocol::broker::OpenSession {}, &[])
                        .await
                        .map(|(_, fds)| kept.push(Box::new(fds)))
                } else if args[0] == "hoard-events" {
                    let kind = NamedObjectKind::Event { manual_reset: false, initial_state: false };
                    let request = no::Create { kind, name: format!(r"Local\hoard{i}"), sddl: None };
                    session.call_with_fds(request, &[]).await.map(|h| kept.push(Box::new(h)))
                } else {
                    let options = appipc::named_pipes::PipeOptions::default();
                    appipc::named_pipes::NamedPipeServer::create(
                        session,
                        &format!(r"\\.\pipe\LOCAL\hoard{i}"),
                        &options,
                    )
                    .await
                    .map(|p| kept.push(Box::new(p)))
                };
                match r {
                    Ok(()) => got += 1,
                    Err(e) => {
                        last = code(&e);
                        break;
                    }
                }
            }
            format!("got {got} then {last}")
        }
        "rpc" => {
            let sid = (args[2] != "-").then_some(args[2].as_str());
            match appipc::rpc::connect(session, name, sid).await {
                Err(e) => code(&e),
                Ok(c) => {
                    let answer = match c.channel.send(b"ping", &[]).await {
                        Err(e) => code(&e),
                        Ok(()) => match c.channel.recv().await {
                            Ok(Some((m, _))) => String::from_utf8_lossy(&m).into_owned(),
                            Ok(None) => "closed".into(),
                            Err(e) => code(&e),
                        },
                    };
                    let server = &c.server.server_package_family_name;
                    format!(
                        "connected to {} answer {answer}",
                        if server.is_empty() { "-" } else { server }
                    )
                }
            }
        }
        "rpc-serve" => {
            let sddl = (args[2] != "-").then_some(args[2].as_str());
            match appipc::rpc::RpcServer::register(session, name, sddl).await {
                Err(e) => code(&e),
                Ok(mut server) => {
                    tokio::spawn(async move {
                        while let Some(conn) = server.accept().await {
                            tokio::spawn(async move {
                                let c = conn.caller();
                                let who = format!(
                                    "caller {} container {} caps {}",
                                    if c.package_family_name.is_empty() {
                                        "-"
                                    } else {
                                        &c.package_family_name
                                    },
                                    c.app_container,
                                    c.capability_sids.len()
                                );
                                while let Ok(Some(_)) = conn.channel().recv().await {
                                    if conn.channel().send(who.as_bytes(), &[]).await.is_err() {
                                        break;
                                    }
                                }
                            });
                        }
                    });
                    "registered".into()
                }
            }
        }
        "sleep" => {
            tokio::time::sleep(std::time::Duration::from_millis(name.parse().expect("ms"))).await;
            "slept".into()
        }
        other => {
            eprintln!("access-probe: unknown step {other:?}");
            std::process::exit(2);
        }
    }
}

fn arity(verb: &str) -> usize {
    match verb {
        "create-event" | "hoard-sessions" | "hoard-pipes" | "hoard-events" | "hoard-endpoints"
        | "sleep" => 2,
        _ => 3,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let session = Session::connect().await.expect("connecting to the broker");
        let mut kept = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let n = arity(&args[i]);
            if i + n > args.len() {
                eprintln!("access-probe: step {:?} needs {n} words", args[i]);
                std::process::exit(2);
            }
            let words = &args[i..i + n];
            let result = step(&session, &mut kept, words).await;
            println!("{} => {result}", words.join(" "));
            i += n;
        }
    });
}
