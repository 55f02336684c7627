//! `pipe-probe`: a named-pipe server or client run as a packaged app (confined) or unpackaged,
//! through the SDK, for `crates/appipc-cli/tests/named_pipes.rs`.
//!
//! ```text
//! pipe-probe serve NAME SDDL CLIENTS BUF
//!     CreateNamedPipe (message type and read mode) with SDDL; for each of CLIENTS clients:
//!     read one message with BUF-byte reads, answer it with the same bytes, read until the
//!     client closes, DisconnectNamedPipe. Prints `listening`, then per client
//!     `client PID PFN got BYTES in READS reads, MORE more-data` and `echoed BYTES`.
//! pipe-probe call NAME BYTES BUF
//!     CreateFile (read and write), message-read mode, write a BYTES-byte message, read the
//!     answer with BUF-byte reads. Prints `call server-pid PID got BYTES in READS reads, MORE
//!     more-data, same|different` or `call error CODE`.
//! ```
//! Exit status 0 after its output (2 on bad arguments).
#![forbid(unsafe_code)]

use appipc::Session;
use appipc::named_pipes::{
    self, GENERIC_READ, GENERIC_WRITE, NamedPipeServer, PipeOptions, PipeReadMode, PipeStream,
};

fn code(e: &appipc::Error) -> String {
    match e.windows_code() {
        appipc::WindowsCode::Win32(c) => format!("error {c}"),
        other => format!("error {other}: {e}"),
    }
}

/// The test pattern: byte `i` of a message is `i * 7 + 3` (mod 256).
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(7).wrapping_add(3)) as u8).collect()
}

/// Reads one message with `buf`-byte reads: (bytes, reads, reads that said more data).
fn read_message(s: &PipeStream, buf: usize) -> appipc::Result<(Vec<u8>, usize, usize)> {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; buf];
    let (mut reads, mut more) = (0, 0);
    loop {
        let r = s.read_file(&mut chunk)?;
        reads += 1;
        out.extend_from_slice(&chunk[..r.bytes_read]);
        if !r.more_data {
            return Ok((out, reads, more));
        }
        more += 1;
    }
}

fn arg(args: &[String], i: usize) -> &str {
    args.get(i).map(String::as_str).unwrap_or_else(|| {
        eprintln!("pipe-probe: missing argument {i}");
        std::process::exit(2)
    })
}

fn number(args: &[String], i: usize) -> usize {
    arg(args, i).parse().unwrap_or_else(|_| {
        eprintln!("pipe-probe: argument {i} is not a number");
        std::process::exit(2)
    })
}

async fn serve(session: &Session, args: &[String]) -> String {
    let (name, sddl, clients, buf) = (arg(args, 1), arg(args, 2), number(args, 3), number(args, 4));
    let options =
        PipeOptions { message_mode: true, sddl: Some(sddl.to_owned()), ..Default::default() };
    let mut server = match NamedPipeServer::create(session, name, &options).await {
        Ok(s) => s,
        Err(e) => return format!("create {}", code(&e)),
    };
    println!("listening");
    for _ in 0..clients {
        let conn = match server.connect().await {
            Ok(c) => c,
            Err(e) => return format!("connect {}", code(&e)),
        };
        let line = tokio::task::spawn_blocking(move || {
            let s = &conn.stream;
            let (got, reads, more) = match read_message(s, buf) {
                Ok(m) => m,
                Err(e) => return format!("read {}", code(&e)),
            };
            let pfn = if conn.client_package_family_name.is_empty() {
                "-"
            } else {
                &conn.client_package_family_name
            };
            println!(
                "client {} {pfn} got {} in {reads} reads, {more} more-data",
                conn.client_pid,
                got.len()
            );
            if let Err(e) = s.write_file(&got) {
                return format!("write {}", code(&e));
            }
            // Until the client closes.
            let mut rest = [0u8; 16];
            while s.read_file(&mut rest).is_ok() {}
            format!("echoed {}", got.len())
        })
        .await
        .expect("serving thread");
        println!("{line}");
        if let Err(e) = server.disconnect().await {
            return format!("disconnect {}", code(&e));
        }
    }
    "done".into()
}

async fn call(session: &Session, args: &[String]) -> String {
    let (name, bytes, buf) = (arg(args, 1), number(args, 2), number(args, 3));
    let s = match named_pipes::open(session, name, GENERIC_READ | GENERIC_WRITE).await {
        Ok(s) => s,
        Err(e) => return format!("call {}", code(&e)),
    };
    if let Err(e) = s.set_read_mode(PipeReadMode::Message) {
        return format!("call {}", code(&e));
    }
    tokio::task::spawn_blocking(move || {
        let sent = pattern(bytes);
        if let Err(e) = s.write_file(&sent) {
            return format!("call write {}", code(&e));
        }
        match read_message(&s, buf) {
            Ok((got, reads, more)) => format!(
                "call server-pid {} got {} in {reads} reads, {more} more-data, {}",
                s.server_process_id(),
                got.len(),
                if got == sent { "same" } else { "different" }
            ),
            Err(e) => format!("call read {}", code(&e)),
        }
    })
    .await
    .expect("calling thread")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let session = Session::connect().await.expect("connecting to the broker");
        let out = match args.first().map(String::as_str) {
            Some("serve") => serve(&session, &args).await,
            Some("call") => call(&session, &args).await,
            other => {
                eprintln!("pipe-probe: unknown step {other:?}");
                std::process::exit(2);
            }
        };
        println!("{out}");
    });
}
