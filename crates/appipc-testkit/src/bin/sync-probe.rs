//! `sync-probe`: named mutexes, semaphores, timers and waits, driven by its arguments, from
//! inside an app container (or unpackaged); and the attack of a holder on the raw fd the broker
//! handed it. Used by `crates/appipc-cli/tests/sync_objects.rs`.
//!
//! ```text
//! sync-probe STEP...
//!   attack TYPE NAME ACCESS     open TYPE (event|semaphore|mutex|timer) with ACCESS straight
//!                               through the protocol; write a signal into the fd it got; ask
//!                               the broker to signal it (SetEvent, ReleaseSemaphore(1),
//!                               ReleaseMutex, SetWaitableTimer)
//!   sem-release NAME COUNT      OpenSemaphore(SYNCHRONIZE|SEMAPHORE_MODIFY_STATE), ReleaseSemaphore
//!   mutex-create NAME OWNER     CreateMutex(OWNER 0|1), handle kept under NAME
//!   mutex-open NAME             OpenMutex(SYNCHRONIZE), handle kept under NAME
//!   mutex-wait NAME MS          WaitForSingleObject on the kept mutex
//!   mutex-release NAME          ReleaseMutex on the kept mutex
//!   event-create NAME           CreateEvent(auto reset), kept
//!   event-set NAME              OpenEvent(EVENT_MODIFY_STATE), SetEvent
//!   event-wait NAME MS          WaitForSingleObject on the kept event
//!   wait TYPE NAME MS           Open TYPE with SYNCHRONIZE, WaitForSingleObject
//!   die                         abort (the process ends holding what it holds)
//! ```
//!
//! ACCESS is a number (`0x100000`). MS is milliseconds or `INFINITE`. Each step prints one line,
//! `STEP => RESULT`; RESULT is `error CODE`, a wait's `object I`/`abandoned I`/`timeout`, or as
//! described. Exit status 0 whatever the results (2 on bad arguments).
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use appipc::Session;
use appipc::named_objects::{
    Event, INFINITE, Mutex, SEMAPHORE_MODIFY_STATE, SYNCHRONIZE, Semaphore, WaitHandle, WaitResult,
    WaitableTimer, wait_for_single_object,
};
use appipc_wire::protocol::named_objects::{self as no, HandleFd, ObjectType, SignalOp};

fn parse_u32(s: &str) -> u32 {
    if s == "INFINITE" {
        return INFINITE;
    }
    match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).expect("hex number"),
        None => s.parse().expect("number"),
    }
}

fn code(e: &appipc::Error) -> String {
    match e.windows_code() {
        appipc::WindowsCode::Win32(c) => format!("error {c}"),
        other => format!("error {other}: {e}"),
    }
}

fn waited(r: appipc::Result<WaitResult>) -> String {
    match r {
        Ok(WaitResult::Object(i)) => format!("object {i}"),
        Ok(WaitResult::Abandoned(i)) => format!("abandoned {i}"),
        Ok(WaitResult::Timeout) => "timeout".into(),
        Err(e) => code(&e),
    }
}

fn object_type(s: &str) -> ObjectType {
    match s {
        "event" => ObjectType::Event,
        "semaphore" => ObjectType::Semaphore,
        "mutex" => ObjectType::Mutex,
        "timer" => ObjectType::WaitableTimer,
        other => {
            eprintln!("sync-probe: unknown type {other:?}");
            std::process::exit(2);
        }
    }
}

fn kind(k: HandleFd) -> &'static str {
    match k {
        HandleFd::None => "none",
        HandleFd::Object => "object",
        HandleFd::ReadOnly => "read-only",
        HandleFd::Readiness => "readiness",
    }
}

#[derive(Default)]
struct Kept {
    mutexes: HashMap<String, Mutex>,
    events: HashMap<String, Event>,
    raw: Vec<(no::NamedObjectHandle, Option<OwnedFd>)>,
}

async fn open_any(
    session: &Session,
    ty: ObjectType,
    name: &str,
) -> appipc::Result<Box<dyn WaitHandle>> {
    Ok(match ty {
        ObjectType::Event => Box::new(Event::open(session, name, SYNCHRONIZE).await?),
        ObjectType::Semaphore => Box::new(Semaphore::open(session, name, SYNCHRONIZE).await?),
        ObjectType::Mutex => Box::new(Mutex::open(session, name, SYNCHRONIZE).await?),
        _ => Box::new(WaitableTimer::open(session, name, SYNCHRONIZE).await?),
    })
}

async fn step(session: &Session, kept: &mut Kept, args: &[String]) -> String {
    match args[0].as_str() {
        "attack" => {
            let ty = object_type(&args[1]);
            let request = no::Open {
                object_type: ty,
                name: args[2].clone(),
                desired_access: parse_u32(&args[3]),
            };
            let (h, fd) = match session.call_with_fds(request, &[]).await {
                Ok((h, mut fds)) => (h, fds.pop()),
                Err(e) => return code(&e),
            };
            // The attacker's own fd: write a signal into it as if it were the eventfd.
            let write = match &fd {
                None => "no-fd".to_owned(),
                Some(f) => match appipc_sys::aio::eventfd_add(f, 5) {
                    Ok(()) => "write-ok".into(),
                    Err(_) => "write-refused".into(),
                },
            };
            let op = match ty {
                ObjectType::Event => SignalOp::Set,
                ObjectType::Semaphore => SignalOp::Release { count: 1 },
                ObjectType::Mutex => SignalOp::ReleaseMutex,
                _ => SignalOp::SetTimer { due_time: -1, period_ms: 0 },
            };
            let signal = match session.call(no::Signal { handle: h.handle, op }).await {
                Ok(_) => "signal-ok".to_owned(),
                Err(e) => format!("signal-{}", code(&e).replace(' ', "-")),
            };
            let out = format!("fd {} {write} {signal}", kind(h.fd));
            kept.raw.push((h, fd));
            out
        }
        "sem-release" => {
            let access = SYNCHRONIZE | SEMAPHORE_MODIFY_STATE;
            match Semaphore::open(session, &args[1], access).await {
                Err(e) => code(&e),
                Ok(s) => match s.release_count(parse_u32(&args[2])).await {
                    Ok(previous) => format!("previous {previous}"),
                    Err(e) => code(&e),
                },
            }
        }
        "mutex-create" => match Mutex::create(session, &args[1], args[2] == "1", None).await {
            Err(e) => code(&e),
            Ok(c) => {
                kept.mutexes.insert(args[1].clone(), c.object);
                if c.already_exists { "exists 183".into() } else { "created".into() }
            }
        },
        "mutex-open" => match Mutex::open(session, &args[1], SYNCHRONIZE).await {
            Err(e) => code(&e),
            Ok(m) => {
                kept.mutexes.insert(args[1].clone(), m);
                "opened".into()
            }
        },
        "mutex-wait" => match kept.mutexes.get(&args[1]) {
            None => "no such mutex kept".into(),
            Some(m) => waited(m.wait(parse_u32(&args[2])).await),
        },
        "mutex-release" => match kept.mutexes.get(&args[1]) {
            None => "no such mutex kept".into(),
            Some(m) => match m.release().await {
                Ok(()) => "released".into(),
                Err(e) => code(&e),
            },
        },
        "event-create" => match Event::create(session, &args[1], false, false, None).await {
            Err(e) => code(&e),
            Ok(c) => {
                kept.events.insert(args[1].clone(), c.object);
                "created".into()
            }
        },
        "event-set" => {
            let access = appipc::named_objects::EVENT_MODIFY_STATE;
            match Event::open(session, &args[1], access).await {
                Err(e) => code(&e),
                Ok(ev) => match ev.set().await {
                    Ok(()) => "set".into(),
                    Err(e) => code(&e),
                },
            }
        }
        "event-wait" => match kept.events.get(&args[1]) {
            None => "no such event kept".into(),
            Some(ev) => waited(ev.wait_timeout(parse_u32(&args[2])).await),
        },
        "wait" => match open_any(session, object_type(&args[1]), &args[2]).await {
            Err(e) => code(&e),
            Ok(h) => waited(wait_for_single_object(h.as_ref(), parse_u32(&args[3])).await),
        },
        "die" => std::process::abort(),
        other => {
            eprintln!("sync-probe: unknown step {other:?}");
            std::process::exit(2);
        }
    }
}

fn arity(verb: &str) -> usize {
    match verb {
        "die" => 1,
        "mutex-open" | "mutex-release" | "event-create" | "event-set" => 2,
        "sem-release" | "mutex-create" | "mutex-wait" | "event-wait" => 3,
        "wait" | "attack" => 4,
        other => {
            eprintln!("sync-probe: unknown step {other:?}");
            std::process::exit(2);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let session = Session::connect().await.expect("connecting to the broker");
        let mut kept = Kept::default();
        let mut i = 0;
        while i < args.len() {
            let n = arity(&args[i]);
            if i + n > args.len() {
                eprintln!("sync-probe: step {:?} needs {n} words", args[i]);
                std::process::exit(2);
            }
            let words = &args[i..i + n];
            if words[0] == "die" {
                println!("die => dying");
            }
            let result = step(&session, &mut kept, words).await;
            println!("{} => {result}", words.join(" "));
            i += n;
        }
    });
}
