//! `crash-probe`: a packaged app the crash-survival tests drive line by line on its stdin
//! (`appipc launch --wait` relays it), answering one line on stdout per command. It holds an
//! app-service connection, a pipe and a file mapping across a broker's death, and makes SDK
//! calls after it; as a full-trust app it also tries what such an app could against the
//! broker's keeper.
//!
//! ```text
//! whoami                 -> "whoami ok FAMILY APP TRUST PID" | "whoami err ..."
//! open PFN SERVICE       -> "open STATUS"                  (an app-service connection)
//! send N                 -> "send N ok" | "send N err STATUS"  (echo round trip on it)
//! pipe-serve NAME        -> "pipe-serve ok" then, later, "pipe-serve connected"
//! pipe-open NAME         -> "pipe-open ok" | "pipe-open err ..."
//! pipe-send TEXT         -> "pipe-send ok"                 (on the pipe this process holds)
//! pipe-recv              -> "pipe-recv TEXT"
//! map-create NAME        -> "map-create ok"                (4 KiB, writable, own package)
//! map-open NAME          -> "map-open ok"
//! map-write TEXT         -> "map-write ok"
//! map-read               -> "map-read TEXT"
//! signal PID             -> "signal ok" | "signal err ERRNO"   (SIGKILL to PID)
//! steal-fds PID          -> "steal-fds N" | "steal-fds err ERRNO" (pidfd_getfd of PID's fds)
//! forge-keeper SOCKET FULL_NAME
//!                        -> "forge-keeper refused" | "forge-keeper accepted": deposits a
//!                           session of its own as the first app of FULL_NAME, and asks for
//!                           everything the keeper holds
//! forged-whoami          -> "forged-whoami ok FAMILY" | "forged-whoami err ...": a WhoAmI
//!                           over the other end of the session it tried to deposit
//! exit CODE
//! ```
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use appipc::named_objects::FileMapping;
use appipc::named_pipes::{NamedPipeServer, PipeOptions};
use appipc::{AppServiceConnection, PropertyValue, Session, ValueSet};
use tokio::io::AsyncBufReadExt;

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

#[derive(Default)]
struct Held {
    conn: Option<AppServiceConnection>,
    pipe: Option<appipc::named_pipes::PipeStream>,
    map: Option<FileMapping>,
    forged: Option<OwnedFd>,
}

async fn whoami(session: &Session) -> String {
    match appipc::ProcessIdentity::query(session).await {
        Ok(me) => format!(
            "whoami ok {} {} {} {}",
            me.0.package_family_name.as_deref().unwrap_or("-"),
            me.0.app_id.as_deref().unwrap_or("-"),
            me.0.trust.as_str(),
            me.0.pid
        ),
        Err(e) => format!("whoami err {e}"),
    }
}

async fn send(held: &Held, n: u32) -> String {
    let Some(conn) = &held.conn else { return format!("send {n} err no connection") };
    let mut m = ValueSet::new();
    m.insert("i", n);
    let r = conn.send_message(m).await;
    match r.message.get("i") {
        Some(PropertyValue::UInt32(i)) if *i == n => format!("send {n} ok"),
        _ => format!("send {n} err {:?}", r.status),
    }
}

/// Deposits one end of a new socket pair with the keeper at `socket`, as a session of the
/// first application of `full_name`, then asks for everything the keeper holds.
fn forge_keeper(socket: &str, full_name: &str, held: &mut Held) -> String {
    use appipc_sys::socket::{Blocking, recv, send, seqpacket_connect, seqpacket_pair};
    let Ok(conn) = seqpacket_connect(std::path::Path::new(socket)) else {
        return "forge-keeper refused (connect)".into();
    };
    let Ok((ours, theirs)) = seqpacket_pair() else { return "forge-keeper err pair".into() };
    let put = serde_json::json!({
        "op": "put", "key": u64::MAX - 7,
        "record": { "kind": "packaged", "pid": std::process::id(), "uid": 0,
                    "full_name": full_name, "app_id": "App", "trust": "fulltrust",
                    "bootstrap": false },
    });
    let hello = serde_json::json!({ "op": "hello" });
    let a = send(&conn, put.to_string().as_bytes(), &[theirs.as_fd()], Blocking::Yes);
    let b = send(&conn, hello.to_string().as_bytes(), &[], Blocking::Yes);
    held.forged = Some(ours);
    // The keeper answers a broker's hello with its sessions; anyone else it hangs up on.
    let _ = rustix::net::sockopt::set_socket_timeout(
        &conn,
        rustix::net::sockopt::Timeout::Recv,
        Some(std::time::Duration::from_secs(3)),
    );
    match (a, b, recv(&conn, 65536, Blocking::Yes)) {
        (Ok(()), Ok(()), Ok(Some(p))) => {
            format!("forge-keeper accepted ({} bytes, {} fds)", p.data.len(), p.fds.len())
        }
        _ => "forge-keeper refused".into(),
    }
}

/// WhoAmI over the session this process tried to deposit with the keeper.
async fn forged_whoami(held: &Held) -> String {
    let Some(fd) = held.forged.as_ref().and_then(|f| f.try_clone().ok()) else {
        return "forged-whoami err nothing deposited".into();
    };
    let s = match Session::from_fd(fd) {
        Ok(s) => s,
        Err(e) => return format!("forged-whoami err {e}"),
    };
    match tokio::time::timeout(
        std::time::Duration::from_secs(3),
        appipc::ProcessIdentity::query(&s),
    )
    .await
    {
        Ok(Ok(me)) => {
            format!("forged-whoami ok {}", me.0.package_family_name.as_deref().unwrap_or("-"))
        }
        Ok(Err(e)) => format!("forged-whoami err {e}"),
        Err(_) => "forged-whoami err no answer".into(),
    }
}

fn steal_fds(pid: u32) -> String {
    let pidfd = match appipc_sys::process::pidfd_open(pid) {
        Ok(p) => p,
        Err(e) => return format!("steal-fds err {}", e.raw_os_error().unwrap_or(0)),
    };
    let mut got = 0;
    let mut last = 0;
    for fd in 3..64 {
        match rustix::process::pidfd_getfd(&pidfd, fd, rustix::process::PidfdGetfdFlags::empty()) {
            Ok(_) => got += 1,
            Err(e) => last = e.raw_os_error(),
        }
    }
    if got > 0 { format!("steal-fds {got}") } else { format!("steal-fds err {last}") }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let session = match Session::connect().await {
        Ok(s) => s,
        Err(e) => {
            say(format!("session err {e}"));
            std::process::exit(2);
        }
    };
    say("ready");
    let mut held = Held::default();
    let (pipe_tx, mut pipe_rx) =
        tokio::sync::mpsc::unbounded_channel::<appipc::named_pipes::PipeStream>();
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => match l {
                Ok(Some(l)) => l,
                _ => return,
            },
            Some(conn) = pipe_rx.recv() => {
                held.pipe = Some(conn);
                say("pipe-serve connected");
                continue;
            }
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| words.get(i).copied().unwrap_or("");
        let out = match arg(0) {
            "whoami" => whoami(&session).await,
            "open" => {
                let mut c = AppServiceConnection::new(arg(1), arg(2));
                let status = c.open(&session).await;
                held.conn = Some(c);
                format!("open {status:?}")
            }
            "send" => send(&held, arg(1).parse().unwrap_or(0)).await,
            "pipe-serve" => {
                let opts = PipeOptions { message_mode: true, ..Default::default() };
                match NamedPipeServer::create(&session, arg(1), &opts).await {
                    Ok(mut server) => {
                        let tx = pipe_tx.clone();
                        tokio::spawn(async move {
                            if let Ok(c) = server.connect().await {
                                let _ = tx.send(c.stream);
                            }
                            // The instance stays while this task waits.
                            std::future::pending::<()>().await;
                        });
                        "pipe-serve ok".into()
                    }
                    Err(e) => format!("pipe-serve err {e}"),
                }
            }
            "pipe-open" => {
                let access = appipc::named_pipes::GENERIC_READ | appipc::named_pipes::GENERIC_WRITE;
                match appipc::named_pipes::open(&session, arg(1), access).await {
                    Ok(s) => {
                        held.pipe = Some(s);
                        "pipe-open ok".into()
                    }
                    Err(e) => format!("pipe-open err {e}"),
                }
            }
            "pipe-send" => match held.pipe.as_mut().map(|p| p.write_all(arg(1).as_bytes())) {
                Some(Ok(())) => "pipe-send ok".into(),
                other => format!("pipe-send err {other:?}"),
            },
            "pipe-recv" => {
                let mut buf = [0u8; 256];
                match held.pipe.as_mut().map(|p| p.read(&mut buf)) {
                    Some(Ok(n)) => format!("pipe-recv {}", String::from_utf8_lossy(&buf[..n])),
                    other => format!("pipe-recv err {other:?}"),
                }
            }
            "map-create" => match FileMapping::create(&session, arg(1), 4096, true, None).await {
                Ok(c) => {
                    held.map = Some(c.object);
                    "map-create ok".into()
                }
                Err(e) => format!("map-create err {e}"),
            },
            "map-open" => {
                let rw =
                    appipc::named_objects::FILE_MAP_READ | appipc::named_objects::FILE_MAP_WRITE;
                match FileMapping::open(&session, arg(1), rw).await {
                    Ok(m) => {
                        held.map = Some(m);
                        "map-open ok".into()
                    }
                    Err(e) => format!("map-open err {e}"),
                }
            }
            "map-write" => {
                let view = held.map.as_ref().map(|m| m.map_view_writable());
                match view {
                    Some(Ok(mut v)) => match v.as_bytes_mut() {
                        Some(b) => {
                            let t = arg(1).as_bytes();
                            b[..t.len()].copy_from_slice(t);
                            b[t.len()] = 0;
                            "map-write ok".into()
                        }
                        None => "map-write err read-only".into(),
                    },
                    other => format!("map-write err {other:?}"),
                }
            }
            "map-read" => match held.map.as_ref().map(|m| m.map_view()) {
                Some(Ok(v)) => {
                    let t: String =
                        v.as_bytes().iter().take_while(|b| **b != 0).map(|b| *b as char).collect();
                    format!("map-read {t}")
                }
                other => format!("map-read err {other:?}"),
            },
            "signal" => {
                let pid = rustix::process::Pid::from_raw(arg(1).parse().unwrap_or(0));
                match pid.map(|p| rustix::process::kill_process(p, rustix::process::Signal::KILL)) {
                    Some(Ok(())) => "signal ok".into(),
                    Some(Err(e)) => format!("signal err {}", e.raw_os_error()),
                    None => "signal err bad pid".into(),
                }
            }
            "steal-fds" => steal_fds(arg(1).parse().unwrap_or(0)),
            "forge-keeper" => forge_keeper(arg(1), arg(2), &mut held),
            "forged-whoami" => forged_whoami(&held).await,
            "exit" => std::process::exit(arg(1).parse().unwrap_or(0)),
            other => format!("unknown {other}"),
        };
        say(out);
    }
}
