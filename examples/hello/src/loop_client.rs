//! `Fabrikam.LoopClient`'s app: `loop-client PORT` connects to 127.0.0.1:PORT, says who it is
//! and prints the answer, or why the connect failed.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

fn main() -> std::process::ExitCode {
    let port: u16 = std::env::args().nth(1).and_then(|p| p.parse().ok()).unwrap_or(8080);
    let me = std::env::var("APPIPC_PACKAGE_FAMILY_NAME").unwrap_or_else(|_| "a client".into());
    match TcpStream::connect(("127.0.0.1", port)) {
        Ok(mut s) => {
            let _ = s.write_all(format!("{me}\n").as_bytes());
            let mut line = String::new();
            let _ = BufReader::new(&s).read_line(&mut line);
            println!("loop-client: connected to 127.0.0.1:{port}: {}", line.trim());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            println!("loop-client: connect to 127.0.0.1:{port} failed: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
