//! Loopback between packages from inside an app container (see
//! `crates/appipc-cli/tests/loopback.rs`). One line of output per result:
//!
//! * `serve PORT [v6] [SECONDS]`: listens on 127.0.0.1 (or ::1), prints `listening PORT`,
//!   answers each connection (`echo:` + what came, or a small HTTP reply to a `GET`).
//! * `connect PORT [v6]`: `connected: REPLY` or `failed: errno N`; `later PORT SECONDS`: the
//!   same after a while; `again PORT`: two connects on one socket; `behind DEAD N LIVE`: N
//!   refused connects, then a connect to LIVE retried for up to 60 s; `orphan SECS`: leaves a
//!   `sleep SECS` running and exits.
//! * `pingpong PORT N`, `connects PORT N`: timings for `appipc-bench loopback`;
//!   `unix-connects N`: the same for connects to a local (`AF_UNIX`) listener of its own.
//! * `session PORT ROUNDS DELAY_MS`: one connection, a message each round (`round N ok`).
//! * `bind PORT`: `bound` or `bind: errno N`.
//! * `udp-recv PORT SECONDS` / `udp-send PORT`: UDP.
//! * `storm PORT N`: N connects while another thread signals this one without `SA_RESTART`,
//!   each interrupted connect retried on its socket: `storm ok=.. eintr=.. eisconn=.. other=..`.
//! * `python PORT blocking|asyncio`, `curl PORT`, `tokio PORT`: other clients.
//! * `fds`: the sockets this process holds besides its session (fd 3).
//! * `reuse PORT OTHER`: connects one socket to PORT, then tries to reuse it elsewhere (an
//!   `AF_UNSPEC` disconnect, a connect to OTHER and to a non-loopback address, `sendto` with
//!   `MSG_FASTOPEN` to OTHER, a bind): one `STEP: ok` or `STEP: errno N` line each.
//! * `unspec-bind PORT`: binds `AF_UNSPEC` addresses (the kernel's wildcard spelling, and one
//!   with 127.0.0.1): `unspec-any: ...`, `unspec-loopback: ...`.
//! * `drain PORT [SECONDS]`, `greet PORT [SECONDS]`, `flood PORT [SECONDS]`: listeners for
//!   the half-close and back-pressure tests of `serve-inbound` (`tests/loopback_inbound.rs`),
//!   each printing `listening PORT` first. `drain` reads each connection to its end, then
//!   answers `drained N` (the bytes it got) and closes; `greet` sends `hello`, shuts down its
//!   sending side, reads to the end and prints `greet got: TEXT`; `flood` writes until a write
//!   makes no progress for 2 s (`flood stalled after N`, then closes) or 1 GiB went
//!   (`flood unbounded after N`).
//! * `bind-listen PORT|none DELAY [SECONDS]`: binds 127.0.0.1:PORT (0: an ephemeral port;
//!   `none`: no bind, the listen picks the port), prints `bound N`, listens DELAY seconds later
//!   and prints `listening N` (or `bind failed: errno N`, `listen failed: errno N`), then serves
//!   as `serve` does.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn addr(port: u16, v6: bool) -> SocketAddr {
    if v6 {
        SocketAddr::from((Ipv6Addr::LOCALHOST, port))
    } else {
        SocketAddr::from((Ipv4Addr::LOCALHOST, port))
    }
}

fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(-1)
}

/// Answers each message with `echo:` + it, until the end of the stream (one HTTP reply to a
/// `GET`).
fn answer(mut c: TcpStream) {
    let mut buf = [0u8; 1024];
    loop {
        let n = c.read(&mut buf).unwrap_or(0);
        let got = &buf[..n];
        if n == 0 {
            return;
        }
        if got.starts_with(b"GET ") {
            let _ = c.write_all(
                b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            );
            return;
        }
        if c.write_all(&[b"echo:", got].concat()).is_err() {
            return;
        }
    }
}

fn serve(port: u16, v6: bool, seconds: u64) -> ExitCode {
    let l = match TcpListener::bind(addr(port, v6)) {
        Ok(l) => l,
        Err(e) => {
            println!("listen failed: errno {}", errno(&e));
            return ExitCode::FAILURE;
        }
    };
    println!("listening {port}");
    serve_on(l, seconds)
}

fn serve_on(l: TcpListener, seconds: u64) -> ExitCode {
    let _ = std::io::stdout().flush();
    l.set_nonblocking(true).unwrap();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        match l.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false).unwrap();
                std::thread::spawn(move || answer(c));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    ExitCode::SUCCESS
}

fn connect(port: u16, v6: bool) -> ExitCode {
    match TcpStream::connect(addr(port, v6)) {
        Ok(mut s) => {
            let _ = s.write_all(b"ping");
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            println!("connected: {reply}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("failed: errno {}", errno(&e));
            ExitCode::FAILURE
        }
    }
}

/// One connection, `rounds` messages `delay_ms` apart, each answer checked.
fn session(port: u16, rounds: u32, delay_ms: u64) -> ExitCode {
    let mut s = match TcpStream::connect(addr(port, false)) {
        Ok(s) => s,
        Err(e) => {
            println!("failed: errno {}", errno(&e));
            return ExitCode::FAILURE;
        }
    };
    println!("session connected");
    let _ = std::io::stdout().flush();
    let mut failed = false;
    for i in 0..rounds {
        let msg = format!("r{i}");
        let mut buf = [0u8; 64];
        let ok = s.write_all(msg.as_bytes()).is_ok()
            && s.read(&mut buf).is_ok_and(|n| buf[..n] == *format!("echo:{msg}").as_bytes());
        println!("round {i} {}", if ok { "ok" } else { "failed" });
        let _ = std::io::stdout().flush();
        failed |= !ok;
        std::thread::sleep(Duration::from_millis(delay_ms));
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Microseconds at the 50th and 99th percentile.
fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

/// `n` round trips of 8 bytes on one connection (`TCP_NODELAY`): `pingpong median_us=..`.
fn pingpong(port: u16, n: usize) -> ExitCode {
    let Ok(mut s) = TcpStream::connect(addr(port, false)) else {
        println!("failed: connect");
        return ExitCode::FAILURE;
    };
    s.set_nodelay(true).unwrap();
    let mut times = Vec::with_capacity(n);
    let mut buf = [0u8; 64];
    for _ in 0..n {
        let t = Instant::now();
        s.write_all(b"pingpong").unwrap();
        let mut got = 0;
        while got < 13 {
            let k = s.read(&mut buf[got..]).unwrap();
            assert!(k > 0, "closed");
            got += k;
        }
        times.push(t.elapsed());
    }
    let (median, p99) = percentiles(times);
    println!("pingpong median_us={median:.2} p99_us={p99:.2} n={n}");
    ExitCode::SUCCESS
}

/// `n` connects (each closed at once): `connects median_us=.. failed=..`.
fn connects(port: u16, n: usize) -> ExitCode {
    let mut times = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = TcpStream::connect(addr(port, false));
        times.push(t.elapsed());
        failed += usize::from(r.is_err());
    }
    let (median, p99) = percentiles(times);
    println!("connects median_us={median:.2} p99_us={p99:.2} failed={failed} n={n}");
    ExitCode::SUCCESS
}

/// `behind DEAD N LIVE`: after 1 s, `n` connects to port DEAD (nothing listens), then
/// `dead connects done failed=F`; then a connect to LIVE every 200 ms for up to 60 s:
/// `live connected after K tries: REPLY` or `live never connected`.
fn behind(args: &[String]) -> ExitCode {
    let num = |i: usize| args.get(i).and_then(|a| a.parse::<u64>().ok()).expect("a number");
    let (dead, n, live) = (num(1) as u16, num(2), num(3) as u16);
    std::thread::sleep(Duration::from_secs(1));
    let failed = (0..n).filter(|_| TcpStream::connect(addr(dead, false)).is_err()).count();
    println!("dead connects done failed={failed}");
    let _ = std::io::stdout().flush();
    for k in 1..=300 {
        if let Ok(mut s) = TcpStream::connect(addr(live, false)) {
            let _ = s.write_all(b"ping");
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            println!("live connected after {k} tries: {reply}");
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("live never connected");
    ExitCode::FAILURE
}

/// `n` connects to a local (`AF_UNIX`) listener of this process, in a temporary folder:
/// `unix-connects median_us=.. failed=..`.
fn unix_connects(n: usize) -> ExitCode {
    use std::os::unix::net::{UnixListener, UnixStream};
    let dir = std::env::temp_dir().join(format!("loop-probe-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("s");
    let _ = std::fs::remove_file(&path);
    let Ok(l) = UnixListener::bind(&path) else {
        println!("failed: bind {}", path.display());
        return ExitCode::FAILURE;
    };
    let mut times = Vec::with_capacity(n);
    let mut failed = 0;
    for _ in 0..n {
        let t = Instant::now();
        let r = UnixStream::connect(&path);
        times.push(t.elapsed());
        failed += usize::from(r.is_err());
        drop(l.accept());
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (median, p99) = percentiles(times);
    println!("unix-connects median_us={median:.2} p99_us={p99:.2} failed={failed} n={n}");
    ExitCode::SUCCESS
}

/// `connect` twice on one socket: `again: first=E second=E`.
fn again(port: u16) -> ExitCode {
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    // SAFETY: a new socket connected twice with `sa` (on this frame), then closed.
    let (first, second) = unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        let mut r = [0; 2];
        for v in &mut r {
            let rc = libc::connect(s, (&raw const sa).cast(), size_of_val(&sa) as u32);
            *v = if rc == 0 { 0 } else { *libc::__errno_location() };
        }
        libc::close(s);
        (r[0], r[1])
    };
    println!("again: first={first} second={second}");
    ExitCode::SUCCESS
}

extern "C" fn on_signal(_: libc::c_int) {}

/// `connect` of a raw socket, retried on `EINTR` as a C program does.
fn storm(port: u16, n: u32) -> ExitCode {
    // SAFETY: installs a handler that does nothing, without SA_RESTART, for SIGUSR1.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    // SAFETY: pthread_self takes nothing.
    let me = unsafe { libc::pthread_self() } as usize;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let storm = std::thread::spawn(move || {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            // SAFETY: signals a thread of this process that outlives this loop (joined below).
            unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGUSR1) };
            std::thread::yield_now();
        }
    });
    let sa = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
        sin_zero: [0; 8],
    };
    let (mut ok, mut eintr, mut eisconn, mut other) = (0, 0, 0, 0);
    for _ in 0..n {
        // SAFETY: a new socket, connected with `sa` (on this frame) and closed here.
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            loop {
                let rc = libc::connect(s, (&raw const sa).cast(), size_of_val(&sa) as u32);
                let e = if rc == 0 { 0 } else { *libc::__errno_location() };
                match e {
                    0 => ok += 1,
                    libc::EINTR => {
                        eintr += 1;
                        continue;
                    }
                    libc::EISCONN => eisconn += 1,
                    _ => other += 1,
                }
                break;
            }
            libc::close(s);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    storm.join().unwrap();
    println!("storm ok={ok} eintr={eintr} eisconn={eisconn} other={other}");
    ExitCode::SUCCESS
}

const PYTHON_BLOCKING: &str = r#"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"ping")
s.shutdown(socket.SHUT_WR)
reply = b""
while True:
    chunk = s.recv(100)
    if not chunk:
        break
    reply += chunk
print("connected: " + reply.decode())
"#;

const PYTHON_ASYNCIO: &str = r#"
import asyncio, sys
async def main():
    r, w = await asyncio.open_connection("127.0.0.1", int(sys.argv[1]))
    w.write(b"ping")
    await w.drain()
    w.write_eof()
    print("connected: " + (await r.read()).decode())
    w.close()
asyncio.run(main())
"#;

fn run_tool(program: &str, args: &[&str]) -> ExitCode {
    if !std::path::Path::new(program).exists() {
        println!("absent: {program}");
        return ExitCode::SUCCESS;
    }
    match std::process::Command::new(program).args(args).output() {
        Ok(out) => {
            print!("{}", String::from_utf8_lossy(&out.stdout));
            let err = String::from_utf8_lossy(&out.stderr);
            if !out.status.success() {
                println!("failed: {} {}", out.status, err.trim());
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("failed: cannot run {program}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn tokio_connect(port: u16) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        match tokio::net::TcpStream::connect(addr(port, false)).await {
            Ok(mut s) => {
                let _ = s.write_all(b"ping").await;
                let _ = s.shutdown().await;
                let mut reply = Vec::new();
                let _ = s.read_to_end(&mut reply).await;
                println!("connected: {}", String::from_utf8_lossy(&reply));
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("failed: errno {}", errno(&e));
                ExitCode::FAILURE
            }
        }
    })
}

fn sockets_held() -> ExitCode {
    let mut n = 0;
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let fd: i32 = e.file_name().to_string_lossy().parse().unwrap_or(-1);
        let link = std::fs::read_link(e.path()).map(|l| l.display().to_string());
        if fd != 3 && link.is_ok_and(|l| l.starts_with("socket:")) {
            n += 1;
        }
    }
    println!("other sockets: {n}");
    ExitCode::SUCCESS
}

fn sockaddr(ip: Ipv4Addr, port: u16, family: i32) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: family as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    }
}

/// One raw socket call's outcome, printed as `STEP: ok` / `STEP: errno N`.
fn say(step: &str, rc: isize) {
    if rc >= 0 {
        println!("{step}: ok");
    } else {
        println!("{step}: errno {}", errno(&std::io::Error::last_os_error()));
    }
}

fn reuse(port: u16, other: u16) -> ExitCode {
    let size = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    let first = sockaddr(Ipv4Addr::LOCALHOST, port, libc::AF_INET);
    let again = sockaddr(Ipv4Addr::LOCALHOST, other, libc::AF_INET);
    let far = sockaddr(Ipv4Addr::new(192, 0, 2, 1), other, libc::AF_INET);
    let unspec = sockaddr(Ipv4Addr::UNSPECIFIED, 0, libc::AF_UNSPEC);
    let bind_to = sockaddr(Ipv4Addr::UNSPECIFIED, other, libc::AF_INET);
    let timeout = libc::timeval { tv_sec: 3, tv_usec: 0 };
    // SAFETY: a new socket of this process, used with addresses on this frame and closed here.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        // A connect that would go out for real gives up after 3 s instead of minutes.
        libc::setsockopt(
            s,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        );
        say("connect", libc::connect(s, (&raw const first).cast(), size) as isize);
        say("restart", libc::connect(s, (&raw const first).cast(), size) as isize);
        say("unspec", libc::connect(s, (&raw const unspec).cast(), size) as isize);
        say("reconnect", libc::connect(s, (&raw const again).cast(), size) as isize);
        say("elsewhere", libc::connect(s, (&raw const far).cast(), size) as isize);
        let rc = libc::sendto(
            s,
            b"x".as_ptr().cast(),
            1,
            libc::MSG_FASTOPEN,
            (&raw const again).cast(),
            size,
        );
        say("fastopen", rc);
        say("bind", libc::bind(s, (&raw const bind_to).cast(), size) as isize);
        libc::close(s);
    }
    ExitCode::SUCCESS
}

fn unspec_bind(port: u16) -> ExitCode {
    let size = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    for (step, ip) in
        [("unspec-any", Ipv4Addr::UNSPECIFIED), ("unspec-loopback", Ipv4Addr::LOCALHOST)]
    {
        let a = sockaddr(ip, port, libc::AF_UNSPEC);
        // SAFETY: a new socket, bound with `a` (on this frame) and closed here.
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            say(step, libc::bind(s, (&raw const a).cast(), size) as isize);
            libc::close(s);
        }
    }
    ExitCode::SUCCESS
}

/// Listens on 127.0.0.1:`port` for `seconds`, each connection handled by `each` on a thread.
fn listen_each(port: u16, seconds: u64, each: fn(TcpStream)) -> ExitCode {
    let l = match TcpListener::bind(addr(port, false)) {
        Ok(l) => l,
        Err(e) => {
            println!("listen failed: errno {}", errno(&e));
            return ExitCode::FAILURE;
        }
    };
    println!("listening {port}");
    let _ = std::io::stdout().flush();
    l.set_nonblocking(true).unwrap();
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        match l.accept() {
            Ok((c, _)) => {
                c.set_nonblocking(false).unwrap();
                std::thread::spawn(move || each(c));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    ExitCode::SUCCESS
}

/// Reads to the end of the stream, then answers how much came.
fn drain(mut c: TcpStream) {
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got);
    let _ = c.write_all(format!("drained {}", got.len()).as_bytes());
}

/// Speaks first and half-closes, then listens to the end.
fn greet(mut c: TcpStream) {
    let _ = c.write_all(b"hello");
    let _ = c.shutdown(std::net::Shutdown::Write);
    let mut got = String::new();
    let _ = c.read_to_string(&mut got);
    println!("greet got: {got}");
    let _ = std::io::stdout().flush();
}

/// Writes until the other end stops taking data (or 1 GiB went), then closes.
fn flood(mut c: TcpStream) {
    c.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut sent: u64 = 0;
    let how = loop {
        if sent >= 1 << 30 {
            break "unbounded";
        }
        match c.write(&chunk) {
            Ok(n) => sent += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break "stalled",
            Err(e) => {
                println!("flood failed after {sent}: errno {}", errno(&e));
                return;
            }
        }
    };
    println!("flood {how} after {sent}");
    let _ = std::io::stdout().flush();
}

fn bind_listen(port: Option<u16>, delay: u64, seconds: u64) -> ExitCode {
    use std::os::fd::FromRawFd;
    // SAFETY: a new socket of this process, bound with an address on this frame; then owned by
    // the listener made of it (or closed here).
    let s = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    // SAFETY: `s` is a new fd owned by nothing else.
    let l = unsafe { TcpListener::from_raw_fd(s) };
    if let Some(p) = port {
        let a = sockaddr(Ipv4Addr::LOCALHOST, p, libc::AF_INET);
        let size = size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: bind reads `size` bytes of `a`, on this frame.
        if unsafe { libc::bind(s, (&raw const a).cast(), size) } < 0 {
            println!("bind failed: errno {}", errno(&std::io::Error::last_os_error()));
            return ExitCode::FAILURE;
        }
        println!("bound {}", l.local_addr().map(|a| a.port()).unwrap_or(0));
        let _ = std::io::stdout().flush();
    }
    std::thread::sleep(Duration::from_secs(delay));
    // SAFETY: listen takes integers; `s` is owned by `l`, alive here.
    if unsafe { libc::listen(s, 128) } < 0 {
        println!("listen failed: errno {}", errno(&std::io::Error::last_os_error()));
        return ExitCode::FAILURE;
    }
    println!("listening {}", l.local_addr().map(|a| a.port()).unwrap_or(0));
    serve_on(l, seconds)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = || args.get(1).and_then(|p| p.parse::<u16>().ok()).expect("a port");
    let v6 = args.iter().any(|a| a == "v6");
    match args.first().map(String::as_str) {
        Some("serve") => {
            let secs = args.iter().skip(2).find_map(|a| a.parse().ok()).unwrap_or(60);
            serve(port(), v6, secs)
        }
        Some("connect") => connect(port(), v6),
        Some("later") => {
            let secs = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
            std::thread::sleep(Duration::from_secs(secs));
            connect(port(), false)
        }
        Some("session") => {
            let rounds = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
            session(port(), rounds, args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100))
        }
        Some("again") => again(port()),
        Some("behind") => behind(&args),
        Some("orphan") => {
            // A child that outlives this process (`sleep SECS`), not waited for.
            let secs = args.get(1).map_or("60", String::as_str);
            match std::process::Command::new("sleep").arg(secs).spawn() {
                Ok(c) => println!("orphaned {}", c.id()),
                Err(e) => println!("failed: {e}"),
            }
            ExitCode::SUCCESS
        }
        Some("pingpong") => {
            pingpong(port(), args.get(2).and_then(|a| a.parse().ok()).unwrap_or(20000))
        }
        Some("connects") => {
            connects(port(), args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000))
        }
        Some("unix-connects") => {
            unix_connects(args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1000))
        }
        Some("bind") => match TcpListener::bind(addr(port(), false)) {
            Ok(_) => {
                println!("bound");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("bind: errno {}", errno(&e));
                ExitCode::FAILURE
            }
        },
        Some("udp-recv") => {
            let s = UdpSocket::bind(addr(port(), false)).unwrap();
            println!("udp listening");
            let _ = std::io::stdout().flush();
            let secs = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(5);
            s.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
            let mut buf = [0u8; 64];
            match s.recv(&mut buf) {
                Ok(n) => println!("udp got {n}"),
                Err(_) => println!("udp got nothing"),
            }
            ExitCode::SUCCESS
        }
        Some("udp-send") => {
            let s = UdpSocket::bind(addr(0, false)).unwrap();
            match s.send_to(b"datagram", addr(port(), false)) {
                Ok(_) => println!("udp sent"),
                Err(e) => println!("udp send: errno {}", errno(&e)),
            }
            ExitCode::SUCCESS
        }
        Some("storm") => storm(port(), args.get(2).and_then(|a| a.parse().ok()).unwrap_or(200)),
        Some("python") => {
            let script = if args.get(2).is_some_and(|m| m == "asyncio") {
                PYTHON_ASYNCIO
            } else {
                PYTHON_BLOCKING
            };
            run_tool("/usr/bin/python3", &["-c", script, &port().to_string()])
        }
        Some("curl") => {
            let url = format!("http://127.0.0.1:{}/", port());
            let out = run_tool("/usr/bin/curl", &["-sS", "--max-time", "10", &url]);
            println!();
            out
        }
        Some("tokio") => tokio_connect(port()),
        Some("fds") => sockets_held(),
        Some("reuse") => {
            let other = args.get(2).and_then(|a| a.parse().ok()).expect("a second port");
            reuse(port(), other)
        }
        Some("unspec-bind") => unspec_bind(port()),
        Some(mode @ ("drain" | "greet" | "flood")) => {
            let secs = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(60);
            let each: fn(TcpStream) = match mode {
                "drain" => drain,
                "greet" => greet,
                _ => flood,
            };
            listen_each(port(), secs, each)
        }
        Some("bind-listen") => {
            let p = args.get(1).and_then(|p| p.parse::<u16>().ok());
            let delay = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(0);
            bind_listen(p, delay, args.get(3).and_then(|a| a.parse().ok()).unwrap_or(60))
        }
        _ => {
            eprintln!(
                "usage: loop-probe serve|connect|bind|udp-recv|udp-send|storm|python|curl|tokio|fds|reuse|unspec-bind|drain|greet|flood|bind-listen PORT"
            );
            ExitCode::from(2)
        }
    }
}
