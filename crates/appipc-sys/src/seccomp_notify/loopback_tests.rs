//! The supervisor's loopback half against a scripted broker: two network namespaces ("A", the
//! app's; "B", another package's), a forked app under the filter, and a broker thread that
//! answers the supervisor's questions as each test says. The attacker's cases first: an address
//! changed after the supervisor read it, hostile lengths and pointers, UDP, a broker that is gone.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use crate::loopback::{ANSWER_LEN, Answer, Ask, AskOp, SocketFactory};
use crate::sandbox::{HostIds, NamespaceHolder};
use crate::socket::Blocking;

/// The two namespaces and a socket factory in each.
struct World {
    _a: NamespaceHolder,
    _b: NamespaceHolder,
    a: SocketFactory,
    b: SocketFactory,
    a_ns: (OwnedFd, OwnedFd),
}

fn world() -> Option<World> {
    let start = || NamespaceHolder::start(&HostIds::own());
    let (a, b) = match (start(), start()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("skipped: no user and network namespaces here: {e}");
            return None;
        }
    };
    let join = !rustix::process::geteuid().is_root();
    let fa = SocketFactory::start(a.userns.as_fd(), a.netns.as_fd(), join).unwrap();
    let fb = SocketFactory::start(b.userns.as_fd(), b.netns.as_fd(), join).unwrap();
    let a_ns = (a.userns.try_clone().unwrap(), a.netns.try_clone().unwrap());
    Some(World { _a: a, _b: b, a: fa, b: fb, a_ns })
}

fn port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    20000 + (std::process::id() % 20000) as u16 + n * 7
}

fn v4(port: u16) -> [u8; 16] {
    let mut a = [0u8; 16];
    a[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    a[2..4].copy_from_slice(&port.to_be_bytes());
    a[4..8].copy_from_slice(&[127, 0, 0, 1]);
    a
}

fn v6(port: u16) -> [u8; 28] {
    let mut a = [0u8; 28];
    a[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
    a[2..4].copy_from_slice(&port.to_be_bytes());
    a[23] = 1;
    a
}

/// A TCP (or UDP) socket of the factory's namespace bound to `addr`, listening if TCP.
fn bound_in(f: &SocketFactory, addr: &[u8], udp: bool) -> OwnedFd {
    let domain = i32::from(u16::from_ne_bytes([addr[0], addr[1]]));
    let ty = if udp { libc::SOCK_DGRAM } else { libc::SOCK_STREAM };
    let s = f.socket(domain, ty, 0).unwrap();
    // SAFETY: bind reads `addr.len()` bytes of `addr`; listen takes integers.
    unsafe {
        assert_eq!(libc::bind(s.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32), 0);
        if !udp {
            assert_eq!(libc::listen(s.as_raw_fd(), 8), 0);
        }
    }
    s
}

/// A shared anonymous page: the app's address lives there, so the test can change it while
/// the app waits in `connect`.
struct Page(*mut u8);
// SAFETY: the page is plain bytes shared with a forked child; access is by raw copies.
unsafe impl Send for Page {}
// SAFETY: as above.
unsafe impl Sync for Page {}

impl Page {
    fn new() -> Page {
        // SAFETY: a fresh anonymous shared mapping of one page, never unmapped in the test.
        let p = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                4096,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED,
            )
        }
        .unwrap();
        Page(p.cast())
    }

    fn write(&self, at: usize, bytes: &[u8]) {
        assert!(at + bytes.len() <= 4096);
        // SAFETY: within the page; the other side only reads it through the kernel.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.0.add(at), bytes.len()) };
    }

    fn addr(&self, at: usize) -> *const libc::sockaddr {
        // SAFETY: within the page.
        unsafe { self.0.add(at).cast() }
    }
}

fn errno_of(rc: libc::c_int) -> i32 {
    if rc == 0 { 0 } else { std::io::Error::last_os_error().raw_os_error().unwrap_or(-1) }
}

/// What the scripted broker saw.
#[derive(Default)]
struct Seen {
    asks: Vec<Ask>,
}

type App = fn(&Page) -> [i32; 8];
type Script = Box<dyn FnMut(&Ask, OwnedFd) -> (Answer, Option<OwnedFd>) + Send>;

/// Runs `app` in a forked child in namespace A under the filter, with a supervisor whose
/// broker is `script` (`None`: the broker's end is closed before the app starts).
fn run(w: &World, page: &Page, app: App, script: Option<Script>) -> ([i32; 8], Vec<Ask>) {
    run_as(w, page, app, script, false)
}

/// [`run`]; with `full_trust`, the filter and supervisor of a packaged full-trust process
/// (`connect` only, the supervisor forked detached), namespace A standing for the host's.
fn run_as(
    w: &World,
    page: &Page,
    app: App,
    script: Option<Script>,
    full_trust: bool,
) -> ([i32; 8], Vec<Ask>) {
    run_with(w, page, app, script, full_trust, &[])
}

/// [`run_as`], the app allowed to make socket files below `socket_dirs`.
fn run_with(
    w: &World,
    page: &Page,
    app: App,
    script: Option<Script>,
    full_trust: bool,
    socket_dirs: &[std::path::PathBuf],
) -> ([i32; 8], Vec<Ask>) {
    let (broker, theirs) = crate::socket::seqpacket_pair().unwrap();
    let (filter, mut supervisor) = if full_trust {
        super::super::supervised_full_trust(theirs).unwrap()
    } else {
        super::super::supervised_with(false, Some(theirs)).unwrap()
    };
    supervisor.allow_sockets_below(socket_dirs);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let broker_thread = match script {
        Some(mut script) => {
            let seen = seen.clone();
            Some(std::thread::spawn(move || {
                while let Ok(Some(mut p)) = crate::socket::recv(&broker, 4096, Blocking::Yes) {
                    if p.data.is_empty() {
                        break;
                    }
                    let ask = Ask::decode(&p.data).expect("a well-formed question");
                    seen.lock().unwrap().asks.push(ask);
                    let (answer, fd) = script(&ask, p.fds.pop().expect("the app's socket"));
                    let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
                    let msg: [u8; ANSWER_LEN] = answer.encode(ask.seq);
                    if crate::socket::send(&broker, &msg, &fds, Blocking::Yes).is_err() {
                        break;
                    }
                }
            }))
        }
        None => {
            drop(broker);
            None
        }
    };
    let (results_read, results_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let (child, joined) = fork_into_a(w);
    if child == 0 {
        let started =
            if full_trust { supervisor.start_detached().map(|_| 0) } else { supervisor.start() };
        let r = if !joined {
            [-100; 8]
        } else if started.is_err() {
            [-101; 8]
        } else if filter.apply().is_err() {
            [-102; 8]
        } else {
            app(page)
        };
        report(&results_write, r);
    }
    drop((filter, supervisor, results_write));
    let r = collect(&results_read, child);
    if let Some(t) = broker_thread {
        t.join().unwrap();
    }
    let asks = std::mem::take(&mut seen.lock().unwrap().asks);
    (r, asks)
}

/// Forks a child that joins namespace A: `(0, joined)` in the child, `(pid, true)` in the
/// test. glibc's fork, not `raw_fork`: its atfork handlers leave malloc's locks usable in the
/// child, where the race tests start threads (through `raw_fork`, a lock another test's
/// thread held at the fork hung a racer's first allocation, and the suite with it).
fn fork_into_a(w: &World) -> (libc::pid_t, bool) {
    let (userns, netns) = (w.a_ns.0.as_raw_fd(), w.a_ns.1.as_raw_fd());
    let join_user = !rustix::process::geteuid().is_root();
    // SAFETY: the child makes only async-signal-safe calls and what glibc's fork makes safe
    // in a child (malloc, thread creation), and ends with _exit (`report`).
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child != 0 {
        return (child, true);
    }
    // SAFETY: setns takes fds open in this process.
    let joined = unsafe {
        (!join_user || libc::setns(userns, libc::CLONE_NEWUSER) == 0)
            && libc::setns(netns, libc::CLONE_NEWNET) == 0
    };
    (0, joined)
}

/// In the forked app child: sends its results to the test, and ends the child.
fn report(results_write: &OwnedFd, r: [i32; 8]) -> ! {
    let mut bytes = [0u8; 32];
    for (i, v) in r.iter().enumerate() {
        bytes[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
    }
    let _ = rustix::io::write(results_write, &bytes);
    // SAFETY: ends the forked child without running the parent's code.
    unsafe { libc::_exit(0) }
}

/// In the test: the app child's results, once it has sent them; the child reaped.
fn collect(results_read: &OwnedFd, child: libc::pid_t) -> [i32; 8] {
    let mut bytes = [0u8; 32];
    let mut got = 0;
    while got < bytes.len() {
        let n = rustix::io::read(results_read, &mut bytes[got..]).unwrap();
        assert!(n > 0, "the app child ended early");
        got += n;
    }
    let _ = rustix::process::waitpid(
        rustix::process::Pid::from_raw(child),
        rustix::process::WaitOptions::empty(),
    );
    let r: Vec<i32> = bytes.chunks(4).map(|c| i32::from_ne_bytes(c.try_into().unwrap())).collect();
    r.try_into().unwrap()
}

fn tcp_socket(domain: i32) -> i32 {
    // SAFETY: socket takes integers.
    unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) }
}

/// A socket in B connected to `addr` (what the broker makes for an allowed connect).
fn connected_in(f: &SocketFactory, addr: &[u8]) -> OwnedFd {
    let domain = i32::from(u16::from_ne_bytes([addr[0], addr[1]]));
    let s = f.socket(domain, libc::SOCK_STREAM, 0).unwrap();
    crate::loopback::connect_within(s.as_fd(), addr, std::time::Duration::from_secs(5)).unwrap();
    s
}

fn accept_and_read(listener: &OwnedFd) -> Vec<u8> {
    crate::socket::set_nonblocking(listener, false).unwrap();
    let c = crate::socket::accept(listener).unwrap();
    let mut buf = [0u8; 64];
    let n = rustix::io::read(&c, &mut buf).unwrap();
    buf[..n].to_vec()
}

/// The app: connect the address at page offset 0 (`len` at offset 512), write "hi" on success.
fn app_connect(page: &Page) -> [i32; 8] {
    // SAFETY: reads a u32 written by the parent before the fork.
    let len = unsafe { std::ptr::read(page.0.add(512).cast::<u32>()) };
    // SAFETY: the domain is written at offset 516 before the fork.
    let domain = unsafe { std::ptr::read(page.0.add(516).cast::<i32>()) };
    let s = tcp_socket(domain);
    // SAFETY: connect reads `len` bytes at the page (or faults, which is the kernel's answer).
    let rc = unsafe { libc::connect(s, page.addr(0), len) };
    let e = errno_of(rc);
    let mut wrote = -1;
    if rc == 0 {
        // SAFETY: writes 2 bytes of a literal.
        wrote = unsafe { libc::write(s, b"hi".as_ptr().cast(), 2) } as i32;
    }
    [rc, e, wrote, 0, 0, 0, 0, 0]
}

fn set_target(page: &Page, addr: &[u8]) {
    page.write(0, addr);
    page.write(512, &(addr.len() as u32).to_ne_bytes());
    let domain = i32::from(u16::from_ne_bytes([addr[0], addr[1]]));
    page.write(516, &domain.to_ne_bytes());
}

#[test]
fn an_installed_socket_reaches_the_other_namespace_and_connect_returns_0() {
    let Some(w) = world() else { return };
    for addr in [&v4(port())[..], &v6(port())[..]] {
        let listener = bound_in(&w.b, addr, false);
        let page = Page::new();
        set_target(&page, addr);
        let factory_b = &w.b as *const SocketFactory as usize;
        let script: Script = Box::new(move |ask, _app| {
            // SAFETY: the factory outlives `run`, which joins this thread.
            let f = unsafe { &*(factory_b as *const SocketFactory) };
            (Answer::Install, Some(connected_in(f, ask.address())))
        });
        let (r, asks) = run(&w, &page, app_connect, Some(script));
        assert_eq!(r[..3], [0, 0, 2], "connect returned 0 (not the fd), then wrote");
        assert_eq!(asks.len(), 1);
        assert_eq!(asks[0].op, AskOp::Connect);
        assert_eq!(asks[0].address(), addr);
        assert_eq!(accept_and_read(&listener), b"hi");
    }
}

#[test]
fn an_address_changed_after_the_read_never_reaches_further() {
    let Some(w) = world() else { return };
    let (pb, pa) = (port(), port());
    let b_listener = bound_in(&w.b, &v4(pb), false);
    let a_listener = bound_in(&w.a, &v4(pa), false);
    let page = Arc::new(Page::new());
    // 1. Asked about B's port, the app swaps in A's port before the answer: the installed
    //    socket is the one for the address read (B, which the broker allowed), not A.
    set_target(&page, &v4(pb));
    let factory_b = &w.b as *const SocketFactory as usize;
    let p2 = page.clone();
    let script: Script = Box::new(move |ask, _| {
        p2.write(0, &v4(pa));
        // SAFETY: the factory outlives `run`, which joins this thread.
        let f = unsafe { &*(factory_b as *const SocketFactory) };
        (Answer::Install, Some(connected_in(f, ask.address())))
    });
    let (r, _) = run(&w, &page, app_connect, Some(script));
    assert_eq!(r[..3], [0, 0, 2]);
    assert_eq!(accept_and_read(&b_listener), b"hi");
    crate::socket::set_nonblocking(&a_listener, true).unwrap();
    assert!(crate::socket::accept(&a_listener).is_err(), "nothing reached A's listener");
    // 2. Asked about a port (let through), the app swaps in B's port: the kernel reads it
    //    again, but in A's namespace, where nothing listens on it.
    set_target(&page, &v4(port()));
    let p3 = page.clone();
    let script: Script = Box::new(move |_, _| {
        p3.write(0, &v4(pb));
        (Answer::Continue, None)
    });
    let (r, _) = run(&w, &page, app_connect, Some(script));
    assert_eq!(r[..2], [-1, libc::ECONNREFUSED], "let through, it stays in A");
    crate::socket::set_nonblocking(&b_listener, true).unwrap();
    assert!(crate::socket::accept(&b_listener).is_err(), "nothing reached B's listener");
}

/// Hostile lengths and pointers: the kernel's own errors, and the broker is never asked.
#[test]
fn hostile_lengths_and_pointers_get_the_kernels_answer_without_asking() {
    let Some(w) = world() else { return };
    fn app(page: &Page) -> [i32; 8] {
        let s = tcp_socket(libc::AF_INET);
        let mut r = [0i32; 8];
        // SAFETY: connect and bind with hostile pointers and lengths: the kernel checks them.
        unsafe {
            r[0] = errno_of(libc::connect(s, std::ptr::null(), 16));
            r[1] = errno_of(libc::connect(s, page.addr(0), 200));
            r[2] = errno_of(libc::connect(s, page.addr(0), u32::MAX));
            r[3] = errno_of(libc::connect(s, page.addr(0), 15));
            r[4] = errno_of(libc::bind(s, std::ptr::null(), 16));
            r[5] = errno_of(libc::connect(-1, page.addr(0), 16));
            r[6] = errno_of(libc::connect(0x7fff, page.addr(0), 16));
            // An address nothing is mapped at.
            r[7] = errno_of(libc::connect(s, 8 as *const libc::sockaddr, 16));
        }
        r
    }
    let page = Page::new();
    set_target(&page, &v4(port()));
    let script: Script = Box::new(|_, _| (Answer::Fail(libc::EACCES), None));
    let (r, asks) = run(&w, &page, app, Some(script));
    let want = [
        libc::EFAULT,
        libc::EINVAL,
        libc::EINVAL,
        libc::EINVAL,
        libc::EFAULT,
        libc::EBADF,
        libc::EBADF,
        libc::EFAULT,
    ];
    assert_eq!(r, want);
    assert!(asks.is_empty(), "{asks:?}");
}

#[test]
fn udp_is_never_asked_about_and_never_delivered_to_another_namespace() {
    let Some(w) = world() else { return };
    let p = port();
    let receiver = bound_in(&w.b, &v4(p), true);
    fn app(page: &Page) -> [i32; 8] {
        // SAFETY: socket, connect and send with the address on the page.
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
            let c = errno_of(libc::connect(s, page.addr(0), 16));
            let sent = libc::send(s, b"udp".as_ptr().cast(), 3, 0) as i32;
            [c, sent, 0, 0, 0, 0, 0, 0]
        }
    }
    let page = Page::new();
    set_target(&page, &v4(p));
    let script: Script = Box::new(|_, _| panic!("asked about UDP"));
    let (r, asks) = run(&w, &page, app, Some(script));
    assert_eq!(r[0], 0, "UDP connect is the kernel's, in A");
    assert!(asks.is_empty());
    let mut buf = [0u8; 8];
    let got = rustix::net::recv(&receiver, &mut buf, rustix::net::RecvFlags::DONTWAIT);
    assert_eq!(got.err(), Some(rustix::io::Errno::AGAIN), "nothing arrived in B");
}

#[test]
fn without_a_broker_everything_is_let_through_into_the_apps_own_namespace() {
    let Some(w) = world() else { return };
    let (pb, pa) = (port(), port());
    let b_listener = bound_in(&w.b, &v4(pb), false);
    let a_listener = bound_in(&w.a, &v4(pa), false);
    fn app(page: &Page) -> [i32; 8] {
        let mut r = app_connect(page);
        // Then the app's own listener (offset 1024), which its namespace has.
        let s = tcp_socket(libc::AF_INET);
        // SAFETY: connect reads 16 bytes of the page.
        r[3] = errno_of(unsafe { libc::connect(s, page.addr(1024), 16) });
        r
    }
    let page = Page::new();
    set_target(&page, &v4(pb));
    page.write(1024, &v4(pa));
    let (r, _) = run(&w, &page, app, None);
    assert_eq!(r[..2], [-1, libc::ECONNREFUSED], "isolation, not an escape");
    assert_eq!(r[3], 0, "the app's own namespace still works");
    crate::socket::set_nonblocking(&b_listener, true).unwrap();
    assert!(crate::socket::accept(&b_listener).is_err());
    assert_eq!(accept_and_read(&a_listener), b"");
}

/// A connect to a port the app's own namespace listens on is let through without asking.
#[test]
fn the_apps_own_listener_is_reached_without_asking() {
    let Some(w) = world() else { return };
    let pa = port();
    let a_listener = bound_in(&w.a, &v4(pa), false);
    let page = Page::new();
    set_target(&page, &v4(pa));
    let script: Script = Box::new(|_, _| (Answer::Fail(libc::EACCES), None));
    let (r, asks) = run(&w, &page, app_connect, Some(script));
    assert_eq!(r[..3], [0, 0, 2]);
    assert!(asks.is_empty(), "{asks:?}");
    assert_eq!(accept_and_read(&a_listener), b"hi");
}

#[test]
fn refusals_and_bind_answers_reach_the_app() {
    let Some(w) = world() else { return };
    fn app(page: &Page) -> [i32; 8] {
        let mut r = [0i32; 8];
        let s = tcp_socket(libc::AF_INET);
        // SAFETY: connect and bind read 16 bytes of the page.
        unsafe {
            r[0] = errno_of(libc::connect(s, page.addr(0), 16));
            let t = tcp_socket(libc::AF_INET);
            r[1] = errno_of(libc::bind(t, page.addr(0), 16));
            // A non-loopback address is not asked about (the kernel's answer).
            let u = tcp_socket(libc::AF_INET);
            r[2] = errno_of(libc::bind(u, page.addr(1024), 16));
        }
        r
    }
    let page = Page::new();
    set_target(&page, &v4(port()));
    let mut far = v4(port());
    far[4..8].copy_from_slice(&[192, 0, 2, 1]);
    page.write(1024, &far);
    let script: Script = Box::new(|ask, _| match ask.op {
        AskOp::Connect => (Answer::Fail(libc::ECONNREFUSED), None),
        AskOp::Bind => (Answer::Fail(libc::EADDRINUSE), None),
    });
    let (r, asks) = run(&w, &page, app, Some(script));
    assert_eq!(r[..3], [libc::ECONNREFUSED, libc::EADDRINUSE, libc::EADDRNOTAVAIL]);
    assert_eq!(asks.iter().map(|a| a.op).collect::<Vec<_>>(), [AskOp::Connect, AskOp::Bind]);
    assert!(!asks[0].cloexec, "socket() without SOCK_CLOEXEC");
}

/// The local port of the app's socket `s` (0 if unbound).
fn local_port_of(s: i32) -> i32 {
    let mut a = [0u8; 16];
    let mut n = 16u32;
    // SAFETY: getsockname writes at most `n` bytes into `a`, on this stack frame.
    unsafe { libc::getsockname(s, a.as_mut_ptr().cast(), &mut n) };
    i32::from(u16::from_be_bytes([a[2], a[3]]))
}

/// The port each of `asks` names.
fn ports_asked(asks: &[Ask]) -> Vec<i32> {
    asks.iter().map(|a| i32::from(u16::from_be_bytes([a.addr[2], a.addr[3]]))).collect()
}

/// A script that refuses the first `n` binds (another package holds the port) and lets the
/// rest go on.
fn refusing_first(n: usize) -> Script {
    let mut left = n;
    Box::new(move |ask, _| match ask.op {
        AskOp::Bind if left > 0 => {
            left -= 1;
            (Answer::Fail(libc::EADDRINUSE), None)
        }
        _ => (Answer::Continue, None),
    })
}

/// Red team F2b: an ephemeral port is in the shared space too. A bind of port 0 is asked
/// about with the port the kernel picked, never let through unasked; ports the broker
/// refuses (another package's) are skipped, and the app gets one it accepted.
#[test]
fn an_ephemeral_bind_gets_a_port_the_broker_accepted() {
    let Some(w) = world() else { return };
    fn app(page: &Page) -> [i32; 8] {
        let s = tcp_socket(libc::AF_INET);
        // SAFETY: bind reads 16 bytes of the page.
        let rc = unsafe { libc::bind(s, page.addr(0), 16) };
        [errno_of(rc), local_port_of(s), 0, 0, 0, 0, 0, 0]
    }
    let page = Page::new();
    set_target(&page, &v4(0));
    let (r, asks) = run(&w, &page, app, Some(refusing_first(3)));
    assert_eq!(r[0], 0, "bind");
    let ports = ports_asked(&asks);
    assert_eq!(ports.len(), 4, "{ports:?}");
    assert!(ports.iter().all(|p| *p != 0), "{ports:?}");
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "a refused port offered again: {ports:?}");
    assert_eq!(r[1], ports[3], "bound to the port the broker accepted");
    // Every port refused: EADDRINUSE, and the socket is not bound.
    let (r, asks) = run(&w, &page, app, Some(refusing_first(usize::MAX)));
    assert_eq!(r[..2], [libc::EADDRINUSE, 0]);
    assert_eq!(asks.len(), 16);
}

/// Red team F2b: `listen` on a socket not bound yet (the kernel would pick a port itself)
/// takes a port the broker accepted; on a bound socket the port is asked about again, and a
/// refusal is the app's `EADDRINUSE`.
#[test]
fn listen_is_checked_and_its_implicit_port_is_one_the_broker_accepted() {
    let Some(w) = world() else { return };
    fn app(page: &Page) -> [i32; 8] {
        let s = tcp_socket(libc::AF_INET);
        // SAFETY: listen takes integers; bind reads 16 bytes of the page.
        unsafe {
            let first = errno_of(libc::listen(s, 8));
            let t = tcp_socket(libc::AF_INET);
            let bound = errno_of(libc::bind(t, page.addr(0), 16));
            let second = errno_of(libc::listen(t, 8));
            [first, local_port_of(s), bound, second, 0, 0, 0, 0]
        }
    }
    let page = Page::new();
    let p = port();
    set_target(&page, &v4(p));
    // Refused: the first implicit port, then (after the explicit bind was let go on) the
    // bound port at listen.
    let mut n = 0;
    let script: Script = Box::new(move |ask, _| {
        n += 1;
        match (ask.op, n) {
            (AskOp::Bind, 1 | 4) => (Answer::Fail(libc::EADDRINUSE), None),
            _ => (Answer::Continue, None),
        }
    });
    let (r, asks) = run(&w, &page, app, Some(script));
    let ports = ports_asked(&asks);
    assert_eq!(r[0], 0, "listen without bind");
    assert_eq!(ports.len(), 4, "{ports:?}");
    assert!(ports[0] != 0 && ports[1] != 0 && ports[0] != ports[1], "{ports:?}");
    assert_eq!(r[1], ports[1], "listening on the port the broker accepted");
    assert_eq!(r[2], 0, "bind");
    assert_eq!(&ports[2..], [i32::from(p), i32::from(p)]);
    assert_eq!(r[3], libc::EADDRINUSE, "listen on a port another package came to hold");
}

/// A full-trust process's connects that its own (the host's) namespace answers are never
/// asked about: a listener there, a port nobody listens on that is not loopback, a local
/// socket. (The supervisor is in the app's namespace, A, as on the host.)
#[test]
fn a_full_trust_connect_its_own_namespace_answers_is_never_asked() {
    let Some(w) = world() else { return };
    let pa = port();
    let _a_listener = bound_in(&w.a, &v4(pa), false);
    let mut far = v4(pa);
    far[4..8].copy_from_slice(&[192, 0, 2, 1]);
    let mut unix = [0u8; 20];
    unix[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    unix[2..19].copy_from_slice(b"/nonexistent/sock");
    for (addr, want) in [
        (&v4(pa)[..], [0, 0, 2]),
        (&far[..], [-1, libc::ENETUNREACH, -1]),
        (&unix[..], [-1, libc::ENOENT, -1]),
    ] {
        let page = Page::new();
        set_target(&page, addr);
        let script: Script = Box::new(|_, _| (Answer::Fail(libc::EPERM), None));
        let (r, asks) = run_as(&w, &page, app_connect, Some(script), true);
        assert_eq!(r[..3], want, "{addr:?}");
        assert!(asks.is_empty(), "asked about {addr:?}");
    }
}

/// A loopback port nobody in its namespace listens on (where an app container's listener may
/// be): the broker is asked, and an answer is carried out — a socket it made in B installed
/// (connect returns 0, the bytes reach B), or its refusal.
#[test]
fn a_full_trust_connect_nobody_answers_is_asked_and_carried_out() {
    let Some(w) = world() else { return };
    let pb = port();
    let listener = bound_in(&w.b, &v4(pb), false);
    let page = Page::new();
    set_target(&page, &v4(pb));
    let factory_b = &w.b as *const SocketFactory as usize;
    let script: Script = Box::new(move |ask, _app| {
        // SAFETY: the factory outlives `run_as`, which joins this thread.
        let f = unsafe { &*(factory_b as *const SocketFactory) };
        (Answer::Install, Some(connected_in(f, ask.address())))
    });
    let (r, asks) = run_as(&w, &page, app_connect, Some(script), true);
    assert_eq!(r[..3], [0, 0, 2]);
    assert_eq!(asks.len(), 1);
    assert_eq!((asks[0].op, asks[0].address()), (AskOp::Connect, &v4(pb)[..]));
    assert_eq!(accept_and_read(&listener), b"hi");
    let script: Script = Box::new(|_, _| (Answer::Fail(libc::ECONNREFUSED), None));
    let (r, asks) = run_as(&w, &page, app_connect, Some(script), true);
    assert_eq!(r[..2], [-1, libc::ECONNREFUSED]);
    assert_eq!(asks.len(), 1);
}

/// The app: connect the address at page offset 0, then disconnect the socket
/// (`AF_UNSPEC`) and connect it to the address at offset 256 (of the same length).
fn app_connect_then_reuse(page: &Page) -> [i32; 8] {
    // SAFETY: as in `app_connect`.
    let len = unsafe { std::ptr::read(page.0.add(512).cast::<u32>()) };
    // SAFETY: as in `app_connect`.
    let domain = unsafe { std::ptr::read(page.0.add(516).cast::<i32>()) };
    let s = tcp_socket(domain);
    let mut unspec = [0u8; 16];
    unspec[..2].copy_from_slice(&(libc::AF_UNSPEC as u16).to_ne_bytes());
    // SAFETY: connect reads `len` bytes at the page, or 16 of `unspec`.
    let (a, b, c) = unsafe {
        let a = libc::connect(s, page.addr(0), len);
        let ea = errno_of(a);
        let b = libc::connect(s, unspec.as_ptr().cast(), 16);
        let eb = errno_of(b);
        let c = libc::connect(s, page.addr(256), len);
        ((a, ea), (b, eb), (c, errno_of(c)))
    };
    [a.0, a.1, b.0, b.1, c.0, c.1, 0, 0]
}

/// A socket installed for a full-trust process is of B's namespace: it cannot be disconnected,
/// nor connected to anything else (`EISCONN`), and the other listener never sees it.
#[test]
fn a_socket_installed_for_a_full_trust_process_cannot_be_reused() {
    let Some(w) = world() else { return };
    let (pb, other) = (port(), port());
    let listener = bound_in(&w.b, &v4(pb), false);
    let other_listener = bound_in(&w.b, &v4(other), false);
    let page = Page::new();
    set_target(&page, &v4(pb));
    page.write(256, &v4(other));
    let factory_b = &w.b as *const SocketFactory as usize;
    let script: Script = Box::new(move |ask, _app| {
        // SAFETY: the factory outlives `run_as`, which joins this thread.
        let f = unsafe { &*(factory_b as *const SocketFactory) };
        (Answer::Install, Some(connected_in(f, ask.address())))
    });
    let (r, asks) = run_as(&w, &page, app_connect_then_reuse, Some(script), true);
    assert_eq!(r[..6], [0, 0, -1, libc::EISCONN, -1, libc::EISCONN], "{r:?}");
    assert_eq!(asks.len(), 1, "only the first connect was asked about");
    drop(listener);
    crate::socket::set_nonblocking(&other_listener, true).unwrap();
    assert!(crate::socket::accept(&other_listener).is_err(), "the other port was reached");
}

/// The app: connect the address at page offset 0; after 200 ms (the connection has ended:
/// the listener reset it), bind the socket to the address at offset 256, then listen on it.
fn app_connect_then_listen(page: &Page) -> [i32; 8] {
    // SAFETY: as in `app_connect`.
    let len = unsafe { std::ptr::read(page.0.add(512).cast::<u32>()) };
    // SAFETY: as in `app_connect`.
    let domain = unsafe { std::ptr::read(page.0.add(516).cast::<i32>()) };
    let s = tcp_socket(domain);
    // SAFETY: connect and bind read `len` bytes at the page; listen takes integers.
    let (a, b, c) = unsafe {
        let a = libc::connect(s, page.addr(0), len);
        let ea = errno_of(a);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let b = libc::bind(s, page.addr(256), len);
        let eb = errno_of(b);
        let c = libc::listen(s, 8);
        ((a, ea), (b, eb), (c, errno_of(c)))
    };
    [a.0, a.1, b.0, b.1, c.0, c.1, 0, 0]
}

/// An installed socket whose connection has ended has no port any more (`TCP_CLOSE`): bound
/// and listening, it would be a listener of the full-trust process inside B's namespace. Its
/// `bind` and `listen` go to the supervisor too, which refuses both (`EINVAL`); nothing
/// listens on the port in B's namespace afterwards.
#[test]
fn an_installed_socket_whose_connection_ended_cannot_listen_in_the_servers_namespace() {
    let Some(w) = world() else { return };
    let (pb, squat) = (port(), port());
    let listener = bound_in(&w.b, &v4(pb), false);
    let page = Page::new();
    set_target(&page, &v4(pb));
    page.write(256, &v4(squat));
    let factory_b = &w.b as *const SocketFactory as usize;
    let listener_fd = listener.as_raw_fd();
    let script: Script = Box::new(move |ask, _app| {
        // SAFETY: the factory outlives `run_as`, which joins this thread.
        let f = unsafe { &*(factory_b as *const SocketFactory) };
        let s = connected_in(f, ask.address());
        // SAFETY: `listener` outlives `run_as`; the fd is borrowed for the accept only.
        let l = unsafe { std::os::fd::BorrowedFd::borrow_raw(listener_fd) };
        let accepted = rustix::net::accept(l).unwrap();
        // Linger 0: closing resets the connection, which ends it on the app's side at once.
        let linger = libc::linger { l_onoff: 1, l_linger: 0 };
        // SAFETY: setsockopt reads one `linger` from the stack.
        unsafe {
            libc::setsockopt(
                accepted.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(accepted);
        (Answer::Install, Some(s))
    });
    let (r, _) = run_as(&w, &page, app_connect_then_listen, Some(script), true);
    assert_eq!(r[..6], [0, 0, -1, libc::EINVAL, -1, libc::EINVAL], "{r:?}");
    // Nothing of the app's listens on the port in B's namespace.
    let probe = w.b.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap();
    let addr = v4(squat);
    // SAFETY: connect reads `addr.len()` bytes of `addr`.
    let rc = unsafe { libc::connect(probe.as_raw_fd(), addr.as_ptr().cast(), addr.len() as u32) };
    assert_eq!((rc, errno_of(rc)), (-1, libc::ECONNREFUSED));
    drop(listener);
}

/// The app: connect the address at page offset 0 (installed), then, on the two sockets whose
/// fds are at offsets 600 and 604 (of a namespace of the process's own, made before the fork),
/// bind the first to the address at offset 256 and listen, and connect the second to the
/// address at offset 768.
fn app_connect_then_own_sandbox(page: &Page) -> [i32; 8] {
    // SAFETY: as in `app_connect`.
    let len = unsafe { std::ptr::read(page.0.add(512).cast::<u32>()) };
    // SAFETY: as in `app_connect`.
    let domain = unsafe { std::ptr::read(page.0.add(516).cast::<i32>()) };
    // SAFETY: within the page, written by the test before the fork.
    let (own1, own2) = unsafe {
        (
            std::ptr::read(page.0.add(600).cast::<i32>()),
            std::ptr::read(page.0.add(604).cast::<i32>()),
        )
    };
    let s = tcp_socket(domain);
    // SAFETY: connect and bind read `len` bytes at the page; listen takes integers.
    unsafe {
        let a = libc::connect(s, page.addr(0), len);
        let ea = errno_of(a);
        let b = libc::bind(own1, page.addr(256), len);
        let b = if b == 0 { libc::listen(own1, 8) } else { b };
        let eb = errno_of(b);
        let c = libc::connect(own2, page.addr(768), len);
        [a, ea, b, eb, c, errno_of(c), 0, 0]
    }
}

/// Red team (full trust, 4): once a socket was installed for a full-trust process, the sockets
/// of a namespace the process made for itself (`bwrap --unshare-net`, `unshare -rn`) are still
/// its own: they bind, listen and connect there (they were `EINVAL` and `EISCONN`).
#[test]
fn a_full_trust_processes_own_sandbox_sockets_work_after_an_install() {
    let (Some(w), Some(own)) = (world(), world()) else { return };
    let (pb, p_listen, p_own) = (port(), port(), port());
    let listener = bound_in(&w.b, &v4(pb), false);
    let own_listener = bound_in(&own.a, &v4(p_own), false);
    let (own1, own2) = (
        own.a.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap(),
        own.a.socket(libc::AF_INET, libc::SOCK_STREAM, 0).unwrap(),
    );
    let page = Page::new();
    set_target(&page, &v4(pb));
    page.write(256, &v4(p_listen));
    page.write(768, &v4(p_own));
    page.write(600, &own1.as_raw_fd().to_ne_bytes());
    page.write(604, &own2.as_raw_fd().to_ne_bytes());
    let factory_b = &w.b as *const SocketFactory as usize;
    let script: Script = Box::new(move |ask, _app| {
        // SAFETY: the factory outlives `run_as`, which joins this thread.
        let f = unsafe { &*(factory_b as *const SocketFactory) };
        (Answer::Install, Some(connected_in(f, ask.address())))
    });
    let (r, asks) = run_as(&w, &page, app_connect_then_own_sandbox, Some(script), true);
    assert_eq!(r[..6], [0, 0, 0, 0, 0, 0], "{r:?}");
    assert_eq!(asks.len(), 1, "only the connect to B was asked about");
    drop((listener, own_listener));
}

/// The app (an attacker): connect the address at page offset 0 (installed), then race: one
/// thread puts the installed socket and a socket of its own at that fd number in turn
/// (`dup2`), while this one disconnects the fd number (`AF_UNSPEC`) again and again. Then:
/// whether the installed socket is still connected (`getpeername` 0).
fn app_disconnect_race(page: &Page) -> [i32; 8] {
    // SAFETY: as in `app_connect`.
    let len = unsafe { std::ptr::read(page.0.add(512).cast::<u32>()) };
    // SAFETY: as in `app_connect`.
    let domain = unsafe { std::ptr::read(page.0.add(516).cast::<i32>()) };
    let s = tcp_socket(domain);
    // SAFETY: connect reads `len` bytes at the page; dup and socket take integers.
    let (rc, installed, own) = unsafe {
        let rc = libc::connect(s, page.addr(0), len);
        (rc, libc::dup(s), tcp_socket(domain))
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: dup2 takes integers; both fds stay open until the join.
                unsafe {
                    libc::dup2(own, s);
                    libc::dup2(installed, s);
                }
            }
        })
    };
    let mut unspec = [0u8; 16];
    unspec[..2].copy_from_slice(&(libc::AF_UNSPEC as u16).to_ne_bytes());
    for _ in 0..20_000 {
        // SAFETY: connect reads 16 bytes of `unspec`.
        unsafe { libc::connect(s, unspec.as_ptr().cast(), 16) };
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = swapper.join();
    let mut peer = [0u8; 28];
    let mut n = 28 as libc::socklen_t;
    // SAFETY: getpeername writes at most `n` bytes into `peer`.
    let still = unsafe { libc::getpeername(installed, peer.as_mut_ptr().cast(), &raw mut n) };
    [rc, still, errno_of(still), 0, 0, 0, 0, 0]
}

/// Red team (second round, 1): a disconnect of the app's own socket used to be let through
/// after the check, and the kernel then looked the fd number up again: a thread that put an
/// installed socket there meanwhile got it disconnected (and then connectable anew in its
/// namespace, with `sendto(MSG_FASTOPEN)`). The supervisor now disconnects the very socket it
/// looked at: the installed socket stays connected, for a container and for a full-trust
/// process.
#[test]
fn a_disconnect_raced_with_dup2_never_disconnects_an_installed_socket() {
    let Some(w) = world() else { return };
    for full_trust in [false, true] {
        let pb = port();
        let listener = bound_in(&w.b, &v4(pb), false);
        let page = Page::new();
        set_target(&page, &v4(pb));
        let factory_b = &w.b as *const SocketFactory as usize;
        let script: Script = Box::new(move |ask, _app| {
            // SAFETY: the factory outlives `run_as`, which joins this thread.
            let f = unsafe { &*(factory_b as *const SocketFactory) };
            (Answer::Install, Some(connected_in(f, ask.address())))
        });
        let (r, _) = run_as(&w, &page, app_disconnect_race, Some(script), full_trust);
        assert_eq!(r[..3], [0, 0, 0], "full trust {full_trust}: {r:?}");
        drop(listener);
    }
}

/// A script that installs a socket of B connected to the address asked about.
fn installing(w: &World) -> Script {
    let factory_b = &w.b as *const SocketFactory as usize;
    Box::new(move |ask, _app| match ask.op {
        AskOp::Connect => {
            // SAFETY: the factory outlives `run_with`, which joins this thread.
            let f = unsafe { &*(factory_b as *const SocketFactory) };
            (Answer::Install, Some(connected_in(f, ask.address())))
        }
        AskOp::Bind => (Answer::Continue, None),
    })
}

/// The app (an attacker): connect the address at page offset 0 (installed), then race: one
/// thread puts the installed socket and a socket of its own (of the domain at offset 1540) at
/// that fd number in turn (`dup2`), another flips the family of the address at offset 1024
/// (its length at 1536) between its own and `AF_UNSPEC`, while this one connects the fd
/// number to that address again and again. Then: whether the installed socket is still
/// connected (`getpeername` 0).
fn app_address_flip_race(page: &Page) -> [i32; 8] {
    // SAFETY: as in `app_connect`.
    let len = unsafe { std::ptr::read(page.0.add(512).cast::<u32>()) };
    // SAFETY: as in `app_connect`.
    let domain = unsafe { std::ptr::read(page.0.add(516).cast::<i32>()) };
    // SAFETY: within the page, written by the test before the fork.
    let (other_len, other_domain) = unsafe {
        (
            std::ptr::read(page.0.add(1536).cast::<u32>()),
            std::ptr::read(page.0.add(1540).cast::<i32>()),
        )
    };
    let s = tcp_socket(domain);
    // SAFETY: connect reads `len` bytes at the page; dup and socket take integers.
    let (rc, installed, own) = unsafe {
        let rc = libc::connect(s, page.addr(0), len);
        (rc, libc::dup(s), libc::socket(other_domain, libc::SOCK_STREAM, 0))
    };
    let family = other_domain as u16;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: dup2 takes integers; both fds stay open until the join.
                unsafe {
                    libc::dup2(own, s);
                    libc::dup2(installed, s);
                }
            }
        })
    };
    let at = page.0 as usize + 1024;
    let flipper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let p = at as *mut u16;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: within the shared page; the kernel and the supervisor only read it.
                unsafe {
                    std::ptr::write_volatile(p, libc::AF_UNSPEC as u16);
                    std::ptr::write_volatile(p, family);
                }
            }
        })
    };
    for _ in 0..20_000 {
        // SAFETY: connect reads `other_len` bytes of the page.
        unsafe { libc::connect(s, page.addr(1024), other_len) };
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = swapper.join();
    let _ = flipper.join();
    let mut peer = [0u8; 28];
    let mut n = 28 as libc::socklen_t;
    // SAFETY: getpeername writes at most `n` bytes into `peer`.
    let still = unsafe { libc::getpeername(installed, peer.as_mut_ptr().cast(), &raw mut n) };
    [rc, still, errno_of(still), 0, 0, 0, 0, 0]
}

/// A pathname `AF_UNIX` address (`sockaddr_un`, its whole length).
fn unix_addr(path: &[u8]) -> [u8; 110] {
    let mut a = [0u8; 110];
    a[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
    a[2..2 + path.len()].copy_from_slice(path);
    a
}

/// Red team (third round, 1): a connect the supervisor did not ask about (a pathname
/// `AF_UNIX` one, one to an address that is not loopback) used to be let through, and the
/// kernel then looked the fd number up and read the address again: a thread that put an
/// installed socket there and another that made the address `AF_UNSPEC` meanwhile got the
/// installed socket disconnected (then connectable anew in B's namespace). The supervisor now
/// carries out every connect of a container itself: the installed socket stays connected.
#[test]
fn a_connect_raced_with_dup2_and_an_address_flip_never_disconnects_an_installed_socket() {
    let Some(w) = world() else { return };
    let mut far = v4(80);
    far[4..8].copy_from_slice(&[192, 0, 2, 1]);
    let unix = unix_addr(b"/nonexistent/appipc-race.sock");
    for (other, domain) in [(&unix[..], libc::AF_UNIX), (&far[..], libc::AF_INET)] {
        let pb = port();
        let listener = bound_in(&w.b, &v4(pb), false);
        let page = Page::new();
        set_target(&page, &v4(pb));
        page.write(1024, other);
        page.write(1536, &(other.len() as u32).to_ne_bytes());
        page.write(1540, &domain.to_ne_bytes());
        let (r, _) = run(&w, &page, app_address_flip_race, Some(installing(&w)));
        assert_eq!(r[..3], [0, 0, 0], "racing with family {domain}: {r:?}");
        drop(listener);
    }
}

/// A fresh directory under the temporary directory (removed by the test).
fn scratch_dir(name: &str) -> std::path::PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("appipc-lb-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A C string written at page offset `at` (NUL-terminated).
fn put_str(page: &Page, at: usize, s: &[u8]) {
    page.write(at, s);
    page.write(at + s.len(), &[0]);
}

/// The NUL-terminated string at page offset `at`, as a pointer for the app.
fn str_at(page: &Page, at: usize) -> *const libc::c_char {
    page.addr(at).cast()
}

/// [`unix_addr`] of the path at page offset `at` (at most 107 bytes of it), in a
/// `sockaddr_storage`'s room (NULs after it).
fn unix_addr_at(page: &Page, at: usize) -> [u8; 128] {
    // SAFETY: strlen reads the NUL-terminated string the test put on the page.
    let n = unsafe { libc::strlen(str_at(page, at)) }.min(107);
    // SAFETY: `n` bytes within the page, written by the test before the fork.
    let path = unsafe { std::slice::from_raw_parts(page.0.add(at), n) };
    let mut a = [0u8; 128];
    a[..110].copy_from_slice(&unix_addr(path));
    a
}

/// `connect` of a new `AF_UNIX` stream socket to the path at page offset `at`.
fn unix_connect(page: &Page, at: usize) -> i32 {
    let a = unix_addr_at(page, at);
    // SAFETY: socket takes integers; connect reads 110 bytes of `a`.
    unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        errno_of(libc::connect(s, a.as_ptr().cast(), 110))
    }
}

/// Pathname `AF_UNIX` connects, carried out by the supervisor, are resolved as the kernel
/// resolves them for the app: absolute, relative to its working directory, through a link;
/// a file that is no socket is `ECONNREFUSED`, a missing one `ENOENT`; the broker is never
/// asked.
#[test]
fn pathname_unix_connects_are_resolved_as_for_the_app() {
    let Some(w) = world() else { return };
    let d = scratch_dir("connect");
    let sock = d.join("s.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::os::unix::fs::symlink(&sock, d.join("link")).unwrap();
    std::fs::write(d.join("plain"), b"").unwrap();
    fn app(page: &Page) -> [i32; 8] {
        // SAFETY: chdir reads the NUL-terminated path the test put on the page.
        let cd = errno_of(unsafe { libc::chdir(str_at(page, 0)) });
        [
            cd,
            unix_connect(page, 1024),
            unix_connect(page, 1200),
            unix_connect(page, 1300),
            unix_connect(page, 1400),
            unix_connect(page, 1500),
            0,
            0,
        ]
    }
    let page = Page::new();
    put_str(&page, 0, d.as_os_str().as_encoded_bytes());
    put_str(&page, 1024, sock.as_os_str().as_encoded_bytes());
    put_str(&page, 1200, b"s.sock");
    put_str(&page, 1300, b"./link");
    put_str(&page, 1400, b"plain");
    put_str(&page, 1500, b"missing");
    let script: Script = Box::new(|_, _| panic!("asked about a local socket"));
    let (r, asks) = run(&w, &page, app, Some(script));
    assert_eq!(r[..6], [0, 0, 0, 0, libc::ECONNREFUSED, libc::ENOENT], "{r:?}");
    assert!(asks.is_empty());
    listener.set_nonblocking(true).unwrap();
    let accepted = std::iter::from_fn(|| listener.accept().ok()).count();
    assert_eq!(accepted, 3, "three connects reached the listener");
    std::fs::remove_dir_all(&d).unwrap();
}

/// `bind` of a new `AF_UNIX` stream socket to the path at page offset `at`; then `listen`.
fn unix_bind(page: &Page, at: usize) -> i32 {
    let a = unix_addr_at(page, at);
    // SAFETY: socket and listen take integers; bind reads 110 bytes of `a`.
    unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        let rc = libc::bind(s, a.as_ptr().cast(), 110);
        if rc != 0 {
            return errno_of(rc);
        }
        errno_of(libc::listen(s, 4))
    }
}

/// Pathname `AF_UNIX` binds, carried out by the supervisor, make the socket file where the
/// app's Landlock domain would let it (below an allowed directory, through a link into one
/// too), with the app's umask; elsewhere `EACCES`; a name taken `EADDRINUSE`, a missing
/// directory `ENOENT`, a file as directory `ENOTDIR`.
#[test]
fn pathname_unix_binds_are_made_where_landlock_would_let_the_app() {
    let Some(w) = world() else { return };
    let allowed = scratch_dir("allowed");
    let other = scratch_dir("other");
    std::fs::create_dir(allowed.join("sub")).unwrap();
    std::os::unix::fs::symlink(&allowed, other.join("into")).unwrap();
    std::fs::write(allowed.join("plain"), b"").unwrap();
    fn app(page: &Page) -> [i32; 8] {
        // SAFETY: chdir reads the NUL-terminated path the test put on the page.
        let cd = errno_of(unsafe { libc::chdir(str_at(page, 0)) });
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        [
            cd,
            unix_bind(page, 1024),
            unix_bind(page, 1200),
            unix_bind(page, 1300),
            unix_bind(page, 1400),
            unix_bind(page, 1024),
            unix_bind(page, 1500),
            unix_bind(page, 1600),
        ]
    }
    let page = Page::new();
    put_str(&page, 0, allowed.as_os_str().as_encoded_bytes());
    put_str(&page, 1024, b"a.sock");
    put_str(&page, 1200, b"sub/b.sock");
    let via_link = other.join("into/c.sock");
    put_str(&page, 1300, via_link.as_os_str().as_encoded_bytes());
    let outside = other.join("d.sock");
    put_str(&page, 1400, outside.as_os_str().as_encoded_bytes());
    put_str(&page, 1500, b"missing/e.sock");
    put_str(&page, 1600, b"plain/f.sock");
    let script: Script = Box::new(|_, _| panic!("asked about a local socket"));
    let (r, asks) = run_with(&w, &page, app, Some(script), false, std::slice::from_ref(&allowed));
    assert_eq!(
        r,
        [0, 0, 0, 0, libc::EACCES, libc::EADDRINUSE, libc::ENOENT, libc::ENOTDIR],
        "{r:?}"
    );
    assert!(asks.is_empty());
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    for made in [allowed.join("a.sock"), allowed.join("sub/b.sock"), allowed.join("c.sock")] {
        let m = std::fs::symlink_metadata(&made).unwrap();
        assert!(m.file_type().is_socket(), "{made:?}");
        assert_eq!(m.permissions().mode() & 0o777, 0o700, "the app's umask: {made:?}");
    }
    assert!(!outside.exists(), "nothing made outside the allowed folders");
    std::fs::remove_dir_all(&allowed).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
}

/// `bind` of a new `AF_UNIX` stream socket to the path at page offset `at`, the address
/// `len` bytes long (the path, then NULs).
fn unix_bind_len(page: &Page, at: usize, len: usize) -> i32 {
    let a = unix_addr_at(page, at);
    // SAFETY: socket takes integers; bind reads `len` (≤ 128) bytes of `a`.
    unsafe {
        let s = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        errno_of(libc::bind(s, a.as_ptr().cast(), len.min(128) as u32))
    }
}

/// Runs `app` in a forked child of namespace A with no filter and no supervisor: what the
/// kernel itself answers.
fn run_plain(w: &World, page: &Page, app: App) -> [i32; 8] {
    let (results_read, results_write) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let (child, joined) = fork_into_a(w);
    if child == 0 {
        let r = if joined { app(page) } else { [-100; 8] };
        report(&results_write, r);
    }
    drop(results_write);
    collect(&results_read, child)
}

/// Runs `app` as the kernel answers it ([`run_plain`]) and supervised (the folder writable
/// for it), each in a scratch folder of its own that `prepare` fills, with the page (whose
/// offset 0 holds the folder); the folders (for the caller to look at and remove) and the
/// results, the kernel's first.
fn plain_and_supervised(
    w: &World,
    name: &str,
    app: App,
    prepare: impl Fn(&std::path::Path, &Page),
) -> [(std::path::PathBuf, [i32; 8]); 2] {
    [false, true].map(|supervised| {
        let d = scratch_dir(&format!("{name}-{}", if supervised { "supervised" } else { "plain" }));
        let page = Page::new();
        put_str(&page, 0, d.as_os_str().as_encoded_bytes());
        prepare(&d, &page);
        let r = if supervised {
            let script: Script = Box::new(|_, _| panic!("asked about a local socket"));
            run_with(w, &page, app, Some(script), false, std::slice::from_ref(&d)).0
        } else {
            run_plain(w, &page, app)
        };
        (d, r)
    })
}

/// The app child becomes uid and gid 65534 with no supplementary group (raw calls: this one
/// thread's credentials); whether it did.
fn become_nobody() -> bool {
    let none: [libc::gid_t; 0] = [];
    // SAFETY: raw setgroups reads no gid (a count of 0); setresgid and setresuid take integers.
    unsafe {
        libc::syscall(libc::SYS_setgroups, 0, none.as_ptr()) == 0
            && libc::syscall(libc::SYS_setresgid, NOBODY, NOBODY, NOBODY) == 0
            && libc::syscall(libc::SYS_setresuid, NOBODY, NOBODY, NOBODY) == 0
    }
}

/// The uid and gid the tests' apps take when the test runs as root.
const NOBODY: u32 = 65534;

/// A pathname `AF_UNIX` bind carried out by the supervisor fails as the kernel's own would, in
/// the kernel's order: the same errno for a trailing slash on a directory (`EADDRINUSE`) or
/// on a missing name (`ENOENT`), for `/`, for a name taken, for a file as a directory, and for
/// an address longer than a `sockaddr_un` (`EINVAL`, not a bind of the path in it).
#[test]
fn pathname_unix_bind_errors_are_the_kernels() {
    let Some(w) = world() else { return };
    fn app(page: &Page) -> [i32; 8] {
        // SAFETY: chdir reads the NUL-terminated path the test put on the page.
        let cd = errno_of(unsafe { libc::chdir(str_at(page, 0)) });
        [
            cd,
            unix_bind_len(page, 1024, 110),
            unix_bind_len(page, 1024, 110),
            unix_bind_len(page, 1100, 110),
            unix_bind_len(page, 1200, 110),
            unix_bind_len(page, 1300, 110),
            unix_bind_len(page, 1400, 110),
            unix_bind_len(page, 1500, 111) * 1000 + unix_bind_len(page, 1600, 110),
        ]
    }
    let results = plain_and_supervised(&w, "errs", app, |d, page| {
        std::fs::create_dir(d.join("sub")).unwrap();
        std::fs::write(d.join("plain"), b"").unwrap();
        put_str(page, 1024, b"a.sock");
        put_str(page, 1100, b"sub/");
        put_str(page, 1200, b"missing/");
        put_str(page, 1300, b"/");
        put_str(page, 1400, b"plain/x.sock");
        put_str(page, 1500, b"long.sock");
        put_str(page, 1600, b"sub//");
    });
    for (d, r) in &results {
        assert!(!d.join("long.sock").exists(), "{d:?}: {r:?}");
        std::fs::remove_dir_all(d).unwrap();
    }
    let results = [results[0].1, results[1].1];
    assert_eq!(
        results[0],
        [
            0,
            0,
            libc::EADDRINUSE,
            libc::EADDRINUSE,
            libc::ENOENT,
            libc::EADDRINUSE,
            libc::ENOTDIR,
            libc::EINVAL * 1000 + libc::EADDRINUSE
        ],
        "the kernel's own answers"
    );
    assert_eq!(results[1], results[0], "supervised against the kernel's");
}

/// Below a directory the app cannot search, a pathname `AF_UNIX` bind is `EACCES` before
/// anything else — for a new name, an existing one, `.` and a trailing slash — as the kernel's
/// path walk says, supervised or not. As uid 65534 when the test runs as root.
#[test]
fn a_bind_below_a_directory_the_app_cannot_search_is_eacces_first() {
    let Some(w) = world() else { return };
    fn app(page: &Page) -> [i32; 8] {
        if rustix::process::geteuid().is_root() && !become_nobody() {
            return [-1; 8];
        }
        // SAFETY: chdir reads the NUL-terminated path the test put on the page.
        if unsafe { libc::chdir(str_at(page, 0)) } != 0 {
            return [-2; 8];
        }
        [
            unix_bind_len(page, 1024, 110),
            unix_bind_len(page, 1100, 110),
            unix_bind_len(page, 1200, 110),
            unix_bind_len(page, 1300, 110),
            unix_bind_len(page, 1400, 110),
            0,
            0,
            0,
        ]
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path, m| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    let results = plain_and_supervised(&w, "locked", app, |d, page| {
        std::fs::create_dir(d.join("locked")).unwrap();
        std::fs::write(d.join("locked/taken"), b"").unwrap();
        mode(d, 0o777);
        mode(&d.join("locked"), 0o666);
        put_str(page, 1024, b"locked/new.sock");
        put_str(page, 1100, b"locked/taken");
        put_str(page, 1200, b"locked/.");
        put_str(page, 1300, b"locked/taken/");
        put_str(page, 1400, b"open.sock");
    });
    for (d, _) in &results {
        mode(&d.join("locked"), 0o755);
        std::fs::remove_dir_all(d).unwrap();
    }
    let results = [results[0].1, results[1].1];
    let e = libc::EACCES;
    assert_eq!(results[0], [e, e, e, e, 0, 0, 0, 0], "the kernel's own answers");
    assert_eq!(results[1], results[0], "supervised against the kernel's");
}

/// The credentials an `AF_UNIX` peer reads (`SO_PEERCRED`) of a connect or a listener the
/// supervisor carried out are the app's uid and gid — not the supervisor's, which under a root
/// broker is root (before, a root broker's container looked like uid 0 to every `AF_UNIX`
/// server it connected to, and its listeners to their clients). Pathname and abstract names.
#[test]
fn unix_peers_read_the_apps_credentials_not_the_supervisors() {
    if !rustix::process::geteuid().is_root() {
        println!(
            "SKIPPED: needs root (an unprivileged supervisor has the app's uid: nothing to tell \
             apart)"
        );
        return;
    }
    let Some(w) = world() else { return };
    fn peer(fd: i32) -> (i32, i32) {
        let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
        let mut n = size_of::<libc::ucred>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `n` bytes into `cred`, on this stack frame.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERCRED,
                (&raw mut cred).cast(),
                &mut n,
            )
        };
        if rc != 0 { (-1, -1) } else { (cred.uid as i32, cred.gid as i32) }
    }
    fn app(page: &Page) -> [i32; 8] {
        let mut r = [0i32; 8];
        // SAFETY: chdir reads the page's path; socket, bind, listen, connect and accept on
        // this stack's buffers.
        unsafe {
            if !become_nobody() || libc::chdir(str_at(page, 0)) != 0 {
                return [-1; 8];
            }
            let mut named = [0u8; 110];
            named[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
            named[2..8].copy_from_slice(b"p.sock");
            let mut abs = [0u8; 20];
            abs[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
            abs[3..19].copy_from_slice(b"appipc-lb-peercr");
            for (k, (addr, len)) in [(&named[..], 110u32), (&abs[..], 19)].into_iter().enumerate() {
                let l = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                let c = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
                if libc::bind(l, addr.as_ptr().cast(), len) != 0
                    || libc::listen(l, 4) != 0
                    || libc::connect(c, addr.as_ptr().cast(), len) != 0
                {
                    r[k * 4] = -(errno_of(-1) + 10);
                    continue;
                }
                let a = libc::accept(l, std::ptr::null_mut(), std::ptr::null_mut());
                (r[k * 4], r[k * 4 + 1]) = peer(a);
                (r[k * 4 + 2], r[k * 4 + 3]) = peer(c);
            }
        }
        r
    }
    let d = scratch_dir("peercred");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    let page = Page::new();
    put_str(&page, 0, d.as_os_str().as_encoded_bytes());
    let script: Script = Box::new(|_, _| panic!("asked about a local socket"));
    let (r, asks) = run_with(&w, &page, app, Some(script), false, std::slice::from_ref(&d));
    let n = NOBODY as i32;
    assert_eq!(r, [n; 8], "connector's and listener's uid and gid, pathname then abstract");
    assert!(asks.is_empty());
    std::fs::remove_dir_all(&d).unwrap();
}

/// Everything else a container does with its own sockets is carried out by the supervisor as
/// the kernel would: an abstract `AF_UNIX` bind, listen and connect, an autobind, a netlink
/// bind, a UDP connect, a connect to an address its namespace does not reach, a nonblocking
/// connect to its own listener; a bad fd is `EBADF`. Nothing is asked.
#[test]
fn a_containers_other_socket_calls_are_carried_out_as_the_kernel_would() {
    let Some(w) = world() else { return };
    let pa = port();
    let a_listener = bound_in(&w.a, &v4(pa), false);
    fn app(page: &Page) -> [i32; 8] {
        let mut r = [0i32; 8];
        let mut abs = [0u8; 20];
        abs[..2].copy_from_slice(&(libc::AF_UNIX as u16).to_ne_bytes());
        abs[3..19].copy_from_slice(b"appipc-lb-abstra");
        // SAFETY: socket, bind, listen, connect and getsockname on this stack's buffers.
        unsafe {
            let l = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            r[0] = errno_of(libc::bind(l, abs.as_ptr().cast(), 19));
            r[0] |= errno_of(libc::listen(l, 4));
            let c = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            r[1] = errno_of(libc::connect(c, abs.as_ptr().cast(), 19));
            let auto = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0);
            r[2] = errno_of(libc::bind(auto, abs.as_ptr().cast(), 2));
            let mut name = [0u8; 110];
            let mut n = 110 as libc::socklen_t;
            libc::getsockname(auto, name.as_mut_ptr().cast(), &mut n);
            r[3] = n as i32;
            let nl = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE);
            let mut sa: libc::sockaddr_nl = std::mem::zeroed();
            sa.nl_family = libc::AF_NETLINK as u16;
            r[4] = errno_of(libc::bind(
                nl,
                (&raw const sa).cast(),
                size_of::<libc::sockaddr_nl>() as u32,
            ));
            let far = page.addr(1024);
            let t = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            r[5] = errno_of(libc::connect(t, far, 16));
            let nb = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
            let rc = libc::connect(nb, page.addr(0), 16);
            r[6] = if rc == 0 { 0 } else { errno_of(rc) };
            r[7] = errno_of(libc::listen(0x7ff0, 4));
        }
        r
    }
    let page = Page::new();
    set_target(&page, &v4(pa));
    let mut far = v4(80);
    far[4..8].copy_from_slice(&[192, 0, 2, 1]);
    page.write(1024, &far);
    let script: Script = Box::new(|_, _| panic!("asked about a call of the app's own"));
    let (r, asks) = run(&w, &page, app, Some(script));
    assert_eq!(r[..3], [0, 0, 0], "abstract bind, listen, connect; autobind: {r:?}");
    assert_eq!(r[3], 2 + 6, "an autobound name: a NUL and five hex digits: {r:?}");
    assert_eq!(r[4], 0, "netlink bind: {r:?}");
    assert_eq!(r[5], libc::ENETUNREACH, "not loopback: only lo here: {r:?}");
    assert!(r[6] == 0 || r[6] == libc::EINPROGRESS, "nonblocking connect: {r:?}");
    assert_eq!(r[7], libc::EBADF, "listen on no fd: {r:?}");
    assert!(asks.is_empty(), "{asks:?}");
    drop(a_listener);
}

/// A supervisor that could not find out its namespace when it started (no memory, no fd left)
/// does not take that for a kernel that cannot tell namespaces apart — which would let every
/// call through for the container's life — but finds it out at the next call.
#[test]
fn a_namespace_not_found_out_at_start_is_at_the_next_call() {
    let (ours, _theirs) = crate::socket::seqpacket_pair().unwrap();
    let mut link = super::BrokerLink::new(ours);
    if link.netns_unknowable {
        println!("SKIPPED: this kernel cannot tell namespaces apart (before Linux 5.14)");
        return;
    }
    let known = link.own_netns;
    assert!(known.is_some());
    link.own_netns = None;
    let proc = rustix::fs::open(
        "/proc",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap();
    let mut ctx = super::Context::new(proc, super::super::Caps::Keep);
    ctx.broker = Some(link);
    assert_eq!(super::own_netns(&mut ctx).unwrap(), known);
}
