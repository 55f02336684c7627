//! appipcd under systemd, without systemd: the test passes the listening socket the way
//! systemd's socket activation does (fd 3, `LISTEN_PID`, `LISTEN_FDS=1`) and listens on a
//! `NOTIFY_SOCKET` for the readiness message of `Type=notify`.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

fn cli(home: &std::path::Path, run: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(appipc_testkit::binary("appipc"))
        .args(args)
        .env("APPIPC_HOME", home)
        .env("APPIPC_RUNTIME_DIR", run)
        .env_remove("APPIPC_SESSION_FD")
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn message(notify: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = notify.recv(&mut buf).expect("a notification from appipcd (NOTIFY_SOCKET)");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn socket_activation_and_readiness_as_systemd_does_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, run) = (tmp.path().join("home"), tmp.path().join("run"));
    std::fs::create_dir_all(&run).unwrap();
    let socket = run.join("broker.sock");
    // What systemd does for ListenSequentialPacket=: bind and listen before the broker runs.
    let listener = appipc_sys::socket::seqpacket_listen(&socket, 16).expect("listen");
    let notify_path = tmp.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let log = std::fs::File::create(tmp.path().join("broker.log")).unwrap();

    // fd 3 is the socket and LISTEN_PID the broker's own pid: the shell moves its stdin to fd
    // 3 and execs appipcd in its place (same pid).
    let mut broker = Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3<&0 0</dev/null; LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --log debug"#)
        .arg(appipc_testkit::binary("appipcd"))
        .stdin(Stdio::from(listener))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .env("APPIPC_HOME", &home)
        .env("APPIPC_RUNTIME_DIR", &run)
        .env("NOTIFY_SOCKET", &notify_path)
        .env_remove("APPIPC_SESSION_FD")
        .spawn()
        .unwrap();
    let ready = message(&notify);
    assert!(ready.contains("READY=1"), "{ready:?}");
    assert!(ready.contains(&format!("STATUS=serving {}", socket.display())), "{ready:?}");

    // Clients reach it through the inherited socket: the same broker, by pid.
    let (ok, out) = cli(&home, &run, &["status"]);
    assert!(ok, "{out}");
    assert!(out.contains(&format!("broker pid {},", broker.id())), "{out}");
    let (ok, out) = cli(&home, &run, &["whoami"]);
    assert!(ok && out.contains("trust unpackaged"), "{out}");
    let logged = std::fs::read_to_string(tmp.path().join("broker.log")).unwrap();
    assert!(logged.contains("socket activation"), "{logged}");

    // Stopped, it says so, exits 0 (no restart), and leaves the socket file to systemd.
    let (ok, out) = cli(&home, &run, &["stop"]);
    assert!(ok, "{out}");
    assert!(message(&notify).contains("STOPPING=1"));
    let status = broker.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(socket.exists(), "the inherited socket's file belongs to the service manager");
}

#[test]
fn variables_meant_for_another_process_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, run) = (tmp.path().join("home"), tmp.path().join("run"));
    // LISTEN_PID names another process (a parent's leaked variables): the broker binds its own
    // socket, and without NOTIFY_SOCKET it notifies no one.
    let mut broker = Command::new(appipc_testkit::binary("appipcd"))
        .env("APPIPC_HOME", &home)
        .env("APPIPC_RUNTIME_DIR", &run)
        .env("LISTEN_PID", "1")
        .env("LISTEN_FDS", "1")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("APPIPC_SESSION_FD")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !cli(&home, &run, &["status"]).0 {
        assert!(std::time::Instant::now() < deadline, "the broker did not bind its own socket");
        assert!(broker.try_wait().unwrap().is_none(), "the broker exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(cli(&home, &run, &["stop"]).0);
    assert_eq!(broker.wait().unwrap().code(), Some(0));
    assert!(!run.join("broker.sock").exists(), "its own socket is removed when it stops");
}
