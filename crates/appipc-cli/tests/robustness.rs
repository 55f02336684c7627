//! Misbehaving clients lose their own connection; the broker and every other client go on.

use std::time::Duration;

use appipc_sys::socket::{self, Blocking};
use appipc_testkit::TestBroker;
use appipc_wire::frame::{Frame, MAX_FRAME_LEN, Raw, Reply};
use appipc_wire::protocol::{broker, packages};
use appipc_wire::status::ErrorKind;

/// A raw connection to the broker, bypassing the SDK.
fn raw(b: &TestBroker) -> std::os::fd::OwnedFd {
    socket::seqpacket_connect(&b.socket()).expect("connect")
}

/// Receives one frame, waiting at most 10 s. `None` if the broker closed the connection.
fn recv_frame(fd: &std::os::fd::OwnedFd) -> Option<Frame> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match socket::recv(fd, MAX_FRAME_LEN, Blocking::No) {
            Ok(None) => return None,
            Ok(Some(p)) => return Some(Frame::from_cbor(&p.data).expect("broker frames decode")),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(std::time::Instant::now() < deadline, "no answer from the broker in 10 s");
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// Whether the broker closes the connection, saying why (`broker.Closing`) before its end:
/// `Some(reason)`, or `None` if it goes on.
fn closed_with(fd: &std::os::fd::OwnedFd) -> Option<String> {
    use appipc_wire::protocol::Event;
    let mut reason = None;
    loop {
        match recv_frame(fd) {
            None => return Some(reason.unwrap_or_default()),
            Some(Frame { event: Some(Event::Broker(broker::Event::Closing(c))), .. }) => {
                reason = Some(c.reason)
            }
            Some(other) => panic!("expected the connection to close, got {other:?}"),
        }
    }
}

fn ping(fd: &std::os::fd::OwnedFd, id: u64) -> Option<Frame> {
    socket::send(fd, &Frame::request(id, broker::Ping {}).to_cbor(), &[], Blocking::Yes).ok()?;
    recv_frame(fd)
}

/// Whether a reply is a `Pong`.
fn is_pong(reply: Option<Reply>) -> bool {
    match reply {
        Some(Reply::Ok(raw)) => raw.decode::<broker::Pong>().is_ok(),
        _ => false,
    }
}

fn assert_alive(b: &TestBroker, bystander: &std::os::fd::OwnedFd) {
    let f = ping(bystander, 99).expect("the bystander's session still works");
    assert!(is_pong(f.reply.clone()), "{f:?}");
    let fresh = raw(b);
    assert!(is_pong(ping(&fresh, 1).and_then(|f| f.reply)), "new clients are served");
}

#[test]
fn garbage_closes_only_that_connection() {
    let b = TestBroker::start();
    let bystander = raw(&b);
    assert!(ping(&bystander, 1).is_some());
    for garbage in [&b"\xff\xfe\xfd"[..], b"\x9f\x9f\x9f\x9f", b"hello broker", &[0u8; 1]] {
        let bad = raw(&b);
        socket::send(&bad, garbage, &[], Blocking::Yes).unwrap();
        let why = closed_with(&bad).expect("closed");
        assert!(why.contains("protocol violation"), "garbage {garbage:?}: {why}");
        assert_alive(&b, &bystander);
    }
    assert!(b.log().contains("protocol violation"), "logged:\n{}", b.log());
}

#[test]
fn oversized_frame_closes_the_connection() {
    let b = TestBroker::start();
    let bystander = raw(&b);
    let bad = raw(&b);
    let big = vec![0x80u8; MAX_FRAME_LEN + 1000];
    // The kernel may refuse a message this large (EMSGSIZE) or the broker must close.
    if socket::send(&bad, &big, &[], Blocking::Yes).is_ok() {
        assert!(closed_with(&bad).expect("closed").contains("protocol violation"));
        // The broker's log reaches the test through the reaper, after the close: wait for it.
        let mut logged = false;
        for _ in 0..100 {
            logged = b.log().contains("exceeds the limit");
            if logged {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(logged, "{}", b.log());
    }
    assert_alive(&b, &bystander);
}

#[test]
fn truncated_frame_closes_the_connection() {
    let b = TestBroker::start();
    let bystander = raw(&b);
    let bad = raw(&b);
    let whole =
        Frame::request(5, packages::Install { path: "/tmp/x".into(), consent: None }).to_cbor();
    socket::send(&bad, &whole[..whole.len() - 3], &[], Blocking::Yes).unwrap();
    assert!(closed_with(&bad).expect("closed").contains("protocol violation"));
    assert_alive(&b, &bystander);
}

#[test]
fn protocol_violations_close_the_connection() {
    let b = TestBroker::start();
    let bystander = raw(&b);
    // A reply from a client, and request id 0.
    for f in [Frame::reply(3, Reply::Ok(Raw::encode(&()))), Frame::request(0, broker::Ping {})] {
        let bad = raw(&b);
        socket::send(&bad, &f.to_cbor(), &[], Blocking::Yes).unwrap();
        let why = closed_with(&bad).expect("closed");
        assert!(why.contains("protocol violation"), "{f:?}: {why}");
    }
    assert_alive(&b, &bystander);
}

#[test]
fn unknown_request_is_answered_not_fatal() {
    let b = TestBroker::start();
    let c = raw(&b);
    // [7, [99, 0, []]]: mechanism 99 does not exist; [8, [0, 99, [1]]]: nor request 99 of
    // the broker mechanism.
    for (id, bytes) in [
        (7, vec![0x82, 0x07, 0x83, 0x18, 0x63, 0x00, 0x80]),
        (8, vec![0x82, 0x08, 0x83, 0x00, 0x18, 0x63, 0x81, 0x01]),
    ] {
        socket::send(&c, &bytes, &[], Blocking::Yes).unwrap();
        let f = recv_frame(&c).expect("answered");
        assert_eq!(f.id, id);
        match f.reply {
            Some(Reply::Err(e)) => assert_eq!(e.kind, ErrorKind::Unsupported),
            other => panic!("{other:?}"),
        }
    }
    // The same session goes on.
    assert!(is_pong(ping(&c, 9).and_then(|f| f.reply)));
}

#[test]
fn unexpected_fds_are_refused_and_closed() {
    let b = TestBroker::start();
    let c = raw(&b);
    let (x, _y) = socket::stream_pair().unwrap();
    use std::os::fd::AsFd;
    socket::send(&c, &Frame::request(4, broker::Ping {}).to_cbor(), &[x.as_fd()], Blocking::Yes)
        .unwrap();
    match recv_frame(&c).and_then(|f| f.reply) {
        Some(Reply::Err(e)) => {
            assert_eq!(e.kind, ErrorKind::BadRequest);
            assert!(e.message.contains("takes 0 fd(s), 1 attached"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn peer_dying_mid_request_does_not_hurt() {
    let b = TestBroker::start();
    let bystander = raw(&b);
    for i in 0..50u64 {
        let c = raw(&b);
        socket::send(
            &c,
            &Frame::request(i + 1, packages::ListPackages {}).to_cbor(),
            &[],
            Blocking::Yes,
        )
        .unwrap();
        socket::send(&c, &Frame::request(i + 2, broker::WhoAmI {}).to_cbor(), &[], Blocking::Yes)
            .unwrap();
        drop(c);
    }
    // And real client processes killed while they talk to the broker.
    for _ in 0..5 {
        let mut c = b.cli();
        c.arg("ps").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let _ = child.kill();
        let _ = child.wait();
    }
    assert_alive(&b, &bystander);
}

#[test]
fn peer_of_another_user_is_refused() {
    if rustix::process::getuid().as_raw() != 0 {
        eprintln!(
            "SKIPPED peer_of_another_user_is_refused: needs root to run a client as another uid"
        );
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let b = TestBroker::start();
    // Let uid 65534 reach the socket file, so the broker's own uid check is what refuses it.
    for p in [b.root.path(), &b.runtime_dir] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o711)).unwrap();
    }
    std::fs::set_permissions(b.socket(), std::fs::Permissions::from_mode(0o666)).unwrap();
    // A copy of the CLI that uid 65534 can execute wherever the target directory is.
    let exe = b.root.path().join("appipc-for-nobody");
    // Copied by cp, not in this process: a writable fd of ours could leak into a fork made by
    // another test thread and make the exec fail with ETXTBSY.
    let cp = std::process::Command::new("cp")
        .arg(appipc_testkit::binary("appipc"))
        .arg(&exe)
        .status()
        .unwrap();
    assert!(cp.success());
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = std::process::Command::new(&exe)
        .arg("status")
        .uid(65534)
        .gid(65534)
        .env("APPIPC_RUNTIME_DIR", &b.runtime_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "status must fail for another uid");
    assert!(stderr.contains("the broker closed the session"), "{stderr}");
    assert!(b.log().contains("refused a peer of another user"), "{}", b.log());
}
