//! `Contoso.LoopServer`'s app: `loop-server PORT [SECONDS]` answers each connection on
//! 127.0.0.1:PORT with one line, for SECONDS (60). Plain `std::net`: loopback between packages
//! needs nothing from the app (docs/loopback.md).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.first().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let seconds = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(60);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("listen");
    println!("loop-server: listening on 127.0.0.1:{port}");
    listener.set_nonblocking(true).expect("non-blocking");
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        let Ok((c, peer)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = c.set_nonblocking(false);
        let mut line = String::new();
        let _ = BufReader::new(&c).read_line(&mut line);
        let _ = (&c).write_all(format!("Contoso says hello to {}\n", line.trim()).as_bytes());
        println!("loop-server: answered {peer}");
    }
}
