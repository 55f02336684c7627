//! Both ends of the typed RPC tests (crates/appipc-cli/tests/rpc_typed.rs), run confined or
//! unpackaged:
//!
//! ```text
//! rpc-probe serve NAME SDDL   register endpoint NAME (SDDL, or - for the default), print
//!                             "serving NAME", serve the Probe interface until killed
//! rpc-probe call NAME         connect, print "whoami => …" and "guarded => …" (or the error
//!                             code)
//! rpc-probe hold NAME         connect, take a counter object, print "holding", wait forever
//! ```
use std::io::Write;
use std::sync::Arc;

use appipc::Session;
use appipc::rpc::{Interfaces, RpcServer};
use appipc_testkit::rpc_probe::{Probe, ProbeClient, ProbeServer};

fn code(e: &appipc::Error) -> String {
    match e.win32_code() {
        Some(c) => format!("error {c}"),
        None => format!("error {e}"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (verb, name) = match args.as_slice() {
        [verb, name, ..] => (verb.as_str(), name.as_str()),
        _ => {
            eprintln!("usage: rpc-probe serve NAME SDDL | call NAME | hold NAME");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let session = Session::connect().await.expect("connecting to the broker");
        match verb {
            "serve" => {
                let sddl = args.get(2).filter(|s| *s != "-").map(String::as_str);
                let server = match RpcServer::register(&session, name, sddl).await {
                    Ok(s) => s,
                    Err(e) => {
                        say(&format!("serve {name} => {}", code(&e)));
                        std::process::exit(1);
                    }
                };
                say(&format!("serving {name}"));
                server
                    .serve(Interfaces::new().with::<dyn Probe>(Arc::new(ProbeServer::default())))
                    .await;
            }
            "call" => match ProbeClient::connect(&session, name, None).await {
                Err(e) => say(&format!("connect => {}", code(&e))),
                Ok(c) => {
                    match c.whoami().await {
                        Ok(w) => say(&format!("whoami => {w}")),
                        Err(e) => say(&format!("whoami => {}", code(&e))),
                    }
                    match c.guarded().await {
                        Ok(w) => say(&format!("guarded => {w}")),
                        Err(e) => say(&format!("guarded => {}", code(&e))),
                    }
                }
            },
            "hold" => {
                let c = ProbeClient::connect(&session, name, None).await.expect("connect");
                let counter = c.counter(0).await.expect("counter").client().expect("client");
                counter.next().await.expect("next");
                say("holding");
                std::future::pending::<()>().await;
            }
            other => {
                eprintln!("rpc-probe: unknown verb {other:?}");
                std::process::exit(2);
            }
        }
    });
}
