//! Named pipes as Windows has them (issue 16, items 6 and 7), end to end through a real broker:
//! message-type pipes that lose nothing (`ERROR_MORE_DATA`, messages larger than a socket
//! buffer, a read mode per handle), `WaitNamedPipe`'s special time-outs,
//! `FILE_FLAG_FIRST_PIPE_INSTANCE`, a `DisconnectNamedPipe` that cuts the client off,
//! `PeekNamedPipe`, `TransactNamedPipe`, `CallNamedPipe` and the process ids — between two
//! sessions of this process, and between confined apps of two packages.

use std::process::Stdio;
use std::time::Duration;

use appipc::named_pipes::{
    self, GENERIC_READ, GENERIC_WRITE, NMPWAIT_NOWAIT, NMPWAIT_USE_DEFAULT_WAIT,
    NMPWAIT_WAIT_FOREVER, NamedPipeServer, PipeDirection, PipeOptions, PipeRead, PipeReadMode,
    PipeStream,
};
use appipc_testkit::{TestBroker, unique};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn code(e: &appipc::Error) -> u32 {
    match e.windows_code() {
        appipc::WindowsCode::Win32(c) => c,
        other => panic!("no Win32 code: {other:?} ({e})"),
    }
}

fn pipe_name(tag: &str) -> String {
    format!(r"\\.\pipe\LOCAL\{}", unique(tag))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(7).wrapping_add(3)) as u8).collect()
}

/// Reads one message with `buf`-byte reads: the bytes and every read's result.
fn read_message(s: &PipeStream, buf: usize) -> (Vec<u8>, Vec<PipeRead>) {
    let mut out = Vec::new();
    let mut chunk = vec![0u8; buf];
    let mut reads = Vec::new();
    loop {
        let r = s.read_file(&mut chunk).unwrap();
        out.extend_from_slice(&chunk[..r.bytes_read]);
        reads.push(r);
        if !r.more_data {
            return (out, reads);
        }
    }
}

/// A server and a connected client of a fresh pipe (two sessions of this process).
async fn connected(
    server_s: &appipc::Session,
    client_s: &appipc::Session,
    options: &PipeOptions,
    access: u32,
) -> (NamedPipeServer, named_pipes::ServerConnection, PipeStream, String) {
    let name = pipe_name("p");
    let mut server = NamedPipeServer::create(server_s, &name, options).await.unwrap();
    let client = named_pipes::open(client_s, &name, access).await.unwrap();
    let conn = server.connect().await.unwrap();
    (server, conn, client, name)
}

#[test]
fn message_pipes_lose_nothing_and_each_handle_has_its_read_mode() {
    let b = TestBroker::start();
    rt().block_on(async {
        let (ss, cs) = (b.session(), b.session());
        let message = PipeOptions { message_mode: true, ..Default::default() };
        let (_server, conn, client, _) =
            connected(&ss, &cs, &message, GENERIC_READ | GENERIC_WRITE).await;
        let server = &conn.stream;
        assert_eq!(server.read_mode(), PipeReadMode::Message, "the server's mode as created");
        assert_eq!(client.read_mode(), PipeReadMode::Byte, "CreateFile gives byte-read mode");

        // A short read: the first part and ERROR_MORE_DATA; the rest with the next reads.
        client.write_file(b"hello world").unwrap();
        let mut buf = [0u8; 4];
        let r = server.read_file(&mut buf).unwrap();
        assert_eq!((r.bytes_read, r.more_data, r.status(), &buf[..]), (4, true, 234, &b"hell"[..]));
        let r = server.read_file(&mut buf).unwrap();
        assert_eq!((r.bytes_read, r.more_data, &buf[..]), (4, true, &b"o wo"[..]));
        let r = server.read_file(&mut buf).unwrap();
        assert_eq!((r.bytes_read, r.more_data, r.status(), &buf[..3]), (3, false, 0, &b"rld"[..]));

        // A 0-byte write is a 0-byte message.
        client.write_file(b"").unwrap();
        client.write_file(b"next").unwrap();
        let mut big = [0u8; 64];
        assert_eq!(
            server.read_file(&mut big).unwrap(),
            PipeRead { bytes_read: 0, more_data: false }
        );
        assert_eq!(server.read_file(&mut big).unwrap().bytes_read, 4);

        // Messages larger than a socket buffer (~208 KiB), read whole and in parts.
        let sent = pattern(1 << 20);
        let writer = client.try_clone().unwrap();
        let to_write = sent.clone();
        let t = std::thread::spawn(move || {
            writer.write_file(&to_write).unwrap();
            writer.write_file(&to_write).unwrap();
        });
        let (got, reads) = read_message(server, 2 << 20);
        assert_eq!((got.len(), reads.len()), (sent.len(), 1));
        assert!(got == sent, "a 1 MiB message read in one read came back changed");
        let (got, reads) = read_message(server, 64 * 1024);
        assert_eq!(reads.len(), 16, "16 reads of 64 KiB, 15 of them ERROR_MORE_DATA");
        assert!(reads[..15].iter().all(|r| r.more_data && r.bytes_read == 64 * 1024));
        assert!(got == sent, "a 1 MiB message read in parts came back changed");
        t.join().unwrap();

        // The client reads in byte-read mode: across message boundaries.
        server.write_file(b"ab").unwrap();
        server.write_file(b"cd").unwrap();
        let r = client.read_file(&mut big).unwrap();
        assert_eq!(&big[..r.bytes_read], b"abcd", "byte-read mode ignores boundaries");
        // SetNamedPipeHandleState: message-read mode, one message per read.
        client.set_read_mode(PipeReadMode::Message).unwrap();
        server.write_file(b"ab").unwrap();
        server.write_file(b"cd").unwrap();
        assert_eq!(client.read_file(&mut big).unwrap().bytes_read, 2);
        assert_eq!(&big[..2], b"ab");
        assert_eq!(client.read_file(&mut big).unwrap().bytes_read, 2);
        assert_eq!(&big[..2], b"cd");

        // std::io::Read in message-read mode: a long message goes on with the next read.
        use std::io::Read;
        client.write_file(b"xyz").unwrap();
        let mut two = [0u8; 2];
        assert_eq!((&conn.stream).read(&mut two).unwrap(), 2);
        assert_eq!((&conn.stream).read(&mut two).unwrap(), 1);
        assert_eq!(two[0], b'z');

        // PeekNamedPipe reads the next message without taking it, whatever the read mode.
        server.write_file(b"12345678").unwrap();
        client.set_read_mode(PipeReadMode::Byte).unwrap();
        let mut three = [0u8; 3];
        let p = client.peek(&mut three).unwrap();
        assert_eq!(
            (p.bytes_read, p.total_bytes_avail, p.bytes_left_this_message, &three[..]),
            (3, 8, 5, &b"123"[..])
        );
        let r = client.read_file(&mut big).unwrap();
        assert_eq!(&big[..r.bytes_read], b"12345678", "peeking took nothing");
        let p = client.peek(&mut three).unwrap();
        assert_eq!((p.bytes_read, p.total_bytes_avail), (0, 0), "nothing left");

        // TransactNamedPipe needs message-read mode.
        let e = client.transact(b"ping", &mut big).unwrap_err();
        assert_eq!(code(&e), 230, "{e}");
        client.set_read_mode(PipeReadMode::Message).unwrap();
        let answer = conn.stream.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            let mut q = [0u8; 16];
            let r = answer.read_file(&mut q).unwrap();
            assert_eq!(&q[..r.bytes_read], b"ping");
            answer.write_file(b"pong").unwrap();
        });
        let r = client.transact(b"ping", &mut two).unwrap();
        assert_eq!((r.bytes_read, r.more_data, &two[..]), (2, true, &b"po"[..]));
        let r = client.read_file(&mut big).unwrap();
        assert_eq!(&big[..r.bytes_read], b"ng", "the rest of the answer");
        t.join().unwrap();

        // PIPE_TYPE_BYTE with PIPE_READMODE_MESSAGE is a bad parameter, at creation and after.
        let bad = PipeOptions { read_mode: Some(PipeReadMode::Message), ..Default::default() };
        let e = NamedPipeServer::create(&ss, &pipe_name("bad"), &bad).await.unwrap_err();
        assert_eq!(code(&e), 87, "{e}");
        let (_s2, byte_conn, byte_client, _) =
            connected(&ss, &cs, &PipeOptions::default(), GENERIC_READ | GENERIC_WRITE).await;
        let e = byte_client.set_read_mode(PipeReadMode::Message).unwrap_err();
        assert_eq!(code(&e), 87, "{e}");
        // A byte-type pipe's peek: what is queued, no messages.
        byte_conn.stream.write_file(b"bytes").unwrap();
        let p = byte_client.peek(&mut three).unwrap();
        assert_eq!((p.bytes_read, p.total_bytes_avail, p.bytes_left_this_message), (3, 5, 0));

        // The process ids: both ends are this process.
        assert_eq!(client.server_process_id(), std::process::id());
        assert_eq!(conn.stream.client_process_id(), std::process::id());
        assert_eq!(conn.client_pid, std::process::id());
    });
}

#[test]
fn wait_named_pipe_knows_the_default_and_forever_and_first_instance_is_kept() {
    let b = TestBroker::start();
    rt().block_on(async {
        let (ss, cs) = (b.session(), b.session());
        let name = pipe_name("wait");
        // One instance, a long default time-out.
        let opts =
            PipeOptions { max_instances: 1, default_timeout_ms: 600_000, ..Default::default() };
        let server = NamedPipeServer::create(&ss, &name, &opts).await.unwrap();
        let mut held = vec![named_pipes::open(&cs, &name, GENERIC_READ).await.unwrap()];
        // Every instance gives the same default time-out (else 5).
        let other = PipeOptions { default_timeout_ms: 10, ..opts.clone() };
        let e = NamedPipeServer::create(&ss, &name, &other).await.unwrap_err();
        assert_eq!(code(&e), 5, "{e}");

        // NMPWAIT_USE_DEFAULT_WAIT waits the server's default (here long: it sees the instance
        // freed), where 0 meant "do not wait" before.
        for timeout in [NMPWAIT_USE_DEFAULT_WAIT, NMPWAIT_WAIT_FOREVER] {
            let (cs2, name2) = (cs.clone(), name.clone());
            let waiter =
                tokio::spawn(
                    async move { named_pipes::wait_named_pipe(&cs2, &name2, timeout).await },
                );
            // Let the wait begin before the instance is freed (the test holds either way).
            tokio::time::sleep(Duration::from_millis(300)).await;
            server.disconnect().await.unwrap();
            waiter.await.unwrap().unwrap_or_else(|e| panic!("wait {timeout:#x}: {e}"));
            // Busy again.
            held.push(named_pipes::open(&cs, &name, GENERIC_READ).await.unwrap());
        }
        drop(held);

        // 0 given at creation: 50 ms, and then ERROR_SEM_TIMEOUT (121).
        let short = pipe_name("short");
        let one = PipeOptions { max_instances: 1, ..Default::default() };
        let _s = NamedPipeServer::create(&ss, &short, &one).await.unwrap();
        let _c = named_pipes::open(&cs, &short, GENERIC_READ).await.unwrap();
        let e =
            named_pipes::wait_named_pipe(&cs, &short, NMPWAIT_USE_DEFAULT_WAIT).await.unwrap_err();
        assert_eq!(code(&e), 121, "{e}");
        // No such pipe: at once, even waiting forever.
        let e = named_pipes::wait_named_pipe(&cs, &pipe_name("none"), NMPWAIT_WAIT_FOREVER)
            .await
            .unwrap_err();
        assert_eq!(code(&e), 2, "{e}");

        // FILE_FLAG_FIRST_PIPE_INSTANCE: only while the name is new.
        let first = pipe_name("first");
        let flag = PipeOptions { first_instance: true, ..Default::default() };
        let _f = NamedPipeServer::create(&ss, &first, &flag).await.unwrap();
        let e = NamedPipeServer::create(&ss, &first, &flag).await.unwrap_err();
        assert_eq!(code(&e), 5, "{e}");
        let _f2 = NamedPipeServer::create(&ss, &first, &PipeOptions::default()).await.unwrap();

        // Access must fit the direction: an inbound pipe is written by its client, an outbound
        // one read.
        let inbound = pipe_name("in");
        let opts = PipeOptions { direction: PipeDirection::Inbound, ..Default::default() };
        let _i = NamedPipeServer::create(&ss, &inbound, &opts).await.unwrap();
        for access in [GENERIC_READ, GENERIC_READ | GENERIC_WRITE] {
            let e = named_pipes::open(&cs, &inbound, access).await.unwrap_err();
            assert_eq!(code(&e), 5, "inbound, access {access:#x}: {e}");
        }
        let w = named_pipes::open(&cs, &inbound, GENERIC_WRITE).await.unwrap();
        let e = w.read_file(&mut [0u8; 4]).unwrap_err();
        assert_eq!(code(&e), 5, "a write-only handle reads nothing: {e}");
        let outbound = pipe_name("out");
        let opts = PipeOptions { direction: PipeDirection::Outbound, ..Default::default() };
        let _o = NamedPipeServer::create(&ss, &outbound, &opts).await.unwrap();
        let e = named_pipes::open(&cs, &outbound, GENERIC_WRITE).await.unwrap_err();
        assert_eq!(code(&e), 5, "outbound, write: {e}");
    });
}

#[test]
fn disconnect_cuts_the_client_off_and_call_named_pipe_transacts() {
    let b = TestBroker::start();
    rt().block_on(async {
        let (ss, cs) = (b.session(), b.session());
        for message_mode in [false, true] {
            let name = pipe_name("cut");
            let opts = PipeOptions { max_instances: 1, message_mode, ..Default::default() };
            let mut server = NamedPipeServer::create(&ss, &name, &opts).await.unwrap();
            let client = named_pipes::open(&cs, &name, GENERIC_READ | GENERIC_WRITE).await.unwrap();
            let conn = server.connect().await.unwrap();
            client.write_file(b"before").unwrap();
            let mut buf = [0u8; 16];
            assert_eq!(conn.stream.read_file(&mut buf).unwrap().bytes_read, 6);
            // The server keeps its connection object, and still the client is cut off.
            server.disconnect().await.unwrap();
            let e = client.write_file(b"after").unwrap_err();
            assert_eq!(code(&e), 232, "message {message_mode}: {e}");
            let e = client.read_file(&mut buf).unwrap_err();
            assert_eq!(code(&e), 109, "message {message_mode}: {e}");
            let e = conn.stream.read_file(&mut buf).unwrap_err();
            assert_eq!(code(&e), 109, "the old connection, server side: {e}");
            // The same instance (the only one) takes the next client.
            let next = named_pipes::open(&cs, &name, GENERIC_READ | GENERIC_WRITE).await.unwrap();
            let conn2 = server.connect().await.unwrap();
            next.write_file(b"again").unwrap();
            assert_eq!(conn2.stream.read_file(&mut buf).unwrap().bytes_read, 5);
            assert_eq!(&buf[..5], b"again");
        }

        // CallNamedPipe: open (waiting), message-read mode, write, read, close.
        let name = pipe_name("call");
        let opts = PipeOptions { message_mode: true, max_instances: 1, ..Default::default() };
        let mut server = NamedPipeServer::create(&ss, &name, &opts).await.unwrap();
        let serving = tokio::spawn(async move {
            for answer in [&b"short"[..], &b"a longer answer"[..]] {
                let conn = server.connect().await.unwrap();
                let answer = answer.to_vec();
                tokio::task::spawn_blocking(move || {
                    let mut q = [0u8; 64];
                    let r = conn.stream.read_file(&mut q).unwrap();
                    assert_eq!(&q[..r.bytes_read], b"question");
                    conn.stream.write_file(&answer).unwrap();
                    while conn.stream.read_file(&mut q).is_ok() {}
                })
                .await
                .unwrap();
                server.disconnect().await.unwrap();
            }
            server
        });
        let (out, r) =
            named_pipes::call_named_pipe(&cs, &name, b"question", 64, NMPWAIT_WAIT_FOREVER)
                .await
                .unwrap();
        assert_eq!((&out[..], r.more_data), (&b"short"[..], false));
        // A longer answer than the buffer: cut, ERROR_MORE_DATA.
        let (out, r) =
            named_pipes::call_named_pipe(&cs, &name, b"question", 8, NMPWAIT_WAIT_FOREVER)
                .await
                .unwrap();
        assert_eq!((&out[..], r.more_data, r.status()), (&b"a longer"[..], true, 234));
        let server = serving.await.unwrap();
        // Busy, NMPWAIT_NOWAIT: ERROR_PIPE_BUSY at once.
        let _held = named_pipes::open(&cs, &name, GENERIC_READ | GENERIC_WRITE).await.unwrap();
        let e =
            named_pipes::call_named_pipe(&cs, &name, b"q", 8, NMPWAIT_NOWAIT).await.unwrap_err();
        assert_eq!(code(&e), 231, "{e}");
        drop(server);
        // A byte-type pipe cannot be called (it has no message-read mode).
        let bytes = pipe_name("callbytes");
        let _b = NamedPipeServer::create(&ss, &bytes, &PipeOptions::default()).await.unwrap();
        let e =
            named_pipes::call_named_pipe(&cs, &bytes, b"q", 8, NMPWAIT_NOWAIT).await.unwrap_err();
        assert_eq!(code(&e), 87, "{e}");
    });
}

fn install_probe(b: &TestBroker, name: &str, publisher: &str) -> String {
    b.install_app(name, publisher, "pipe-probe")
}

/// Whether `pid` is an ancestor of a running process named `comm`.
fn ancestor_of_a(pid: u32, comm: &str) -> bool {
    let field = |p: u32, name: &str| -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned())
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .any(|p: u32| {
            if field(p, "Name:").as_deref() != Some(comm) {
                return false;
            }
            let mut at = p;
            while let Some(parent) = field(at, "PPid:").and_then(|v| v.parse::<u32>().ok()) {
                if parent == pid {
                    return true;
                }
                if parent <= 1 {
                    break;
                }
                at = parent;
            }
            false
        })
}

#[test]
fn confined_apps_of_two_packages_exchange_messages_larger_than_a_socket_buffer() {
    let b = TestBroker::start();
    let server_pfn = install_probe(&b, "Contoso.PipeServer", "CN=Contoso Ltd, O=Contoso, C=CH");
    let client_pfn = install_probe(&b, "Fabrikam.PipeClient", "CN=Fabrikam Inc, O=Fabrikam, C=US");
    let server_sid = appipc_model::sid::appcontainer_sid(&server_pfn).to_string();
    let client_sid = appipc_model::sid::appcontainer_sid(&client_pfn).to_string();
    let leaf = unique("big");
    let qualified = format!(r"\\.\pipe\AppContainerNamedObjects\{server_sid}\{leaf}");
    // The user's side and the client package's side both grant; Low may write.
    let sddl = format!("D:(A;;GA;;;WD)(A;;GA;;;{client_sid})S:(ML;;NW;;;LW)");

    // The confined server serves two clients, reading with 1000-byte reads.
    let serve = b
        .cli()
        .args(["launch", "--wait", &server_pfn, "--", "serve", &format!(r"\\.\pipe\LOCAL\{leaf}")])
        .args([sddl.as_str(), "2", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rt = rt();
    let s = rt.block_on(async { b.session() });
    let sent = pattern(300_000);
    let server_pid = rt.block_on(async {
        // Until the server has created its pipe.
        let mut tries = 0;
        loop {
            match named_pipes::wait_named_pipe(&s, &qualified, NMPWAIT_WAIT_FOREVER).await {
                Ok(()) => break,
                Err(e) if code(&e) == 2 && tries < 600 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("the confined server did not create its pipe: {e}"),
            }
        }
        // This (unconfined) process first: 300 000 bytes each way, read in 64 KiB parts.
        let c = named_pipes::open(&s, &qualified, GENERIC_READ | GENERIC_WRITE).await.unwrap();
        c.set_read_mode(PipeReadMode::Message).unwrap();
        let to_send = sent.clone();
        tokio::task::spawn_blocking(move || {
            c.write_file(&to_send).unwrap();
            let (got, reads) = read_message(&c, 64 * 1024);
            assert_eq!(reads.len(), 5, "300 000 bytes in 64 KiB reads");
            assert!(reads[..4].iter().all(|r| r.more_data));
            assert!(got == to_send, "the echo came back changed");
            c.server_process_id()
        })
        .await
        .unwrap()
    });
    // This (unconfined) process is told the pid the broker tracks for the confined server:
    // the launched process tree's root, an ancestor of the running probe.
    assert!(ancestor_of_a(server_pid, "pipe-probe"), "GetNamedPipeServerProcessId {server_pid}");

    // Then the other package's confined client, with 1000-byte reads.
    let out = b
        .cli()
        .args(["launch", "--wait", &client_pfn, "--", "call", &qualified, "300000", "1000"])
        .output()
        .unwrap();
    let client_out = String::from_utf8_lossy(&out.stdout).into_owned();
    let server_out = serve.wait_with_output().unwrap();
    let server_out = String::from_utf8_lossy(&server_out.stdout).into_owned();
    let all = format!("client:\n{client_out}\nserver:\n{server_out}");
    // Each app container has a pid namespace of its own: neither sees the other (0).
    assert!(
        client_out.contains("call server-pid 0 got 300000 in 300 reads, 299 more-data, same"),
        "{all}"
    );
    assert!(server_out.contains("client 0 - got 300000 in 300 reads, 299 more-data"), "{all}");
    assert!(
        server_out
            .contains(&format!("client 0 {client_pfn} got 300000 in 300 reads, 299 more-data")),
        "{all}"
    );
    assert_eq!(server_out.matches("echoed 300000").count(), 2, "{all}");
    assert!(server_out.trim_end().ends_with("done"), "{all}");
}
