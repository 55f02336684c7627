//! The loopback data path, the broker's half: each app container's supervisor
//! (`appipc_sys::seccomp_notify`) asks over a socket pair the broker made for that container
//! whether a `connect` or `bind` on a loopback address may go on, and the broker answers.
//! Who asks is the channel (the container it was made for, the caller attested at launch),
//! never a byte of the message; the message carries only the address the supervisor read and,
//! attached, a duplicate of the app's socket.
//!
//! * `bind` of a port (loopback or wildcard address; for an ephemeral bind the port the kernel
//!   picked, for a `listen` the socket's port): one loopback port space is shared by all
//!   packages and the host. A port another package's namespace, or the host, listens on — or
//!   that another package holds — is `EADDRINUSE`; otherwise the port is the package's and the
//!   supervisor binds it in the package's own namespace. A package holds a port it was let
//!   bind for as long as the very socket it bound is bound there (`sock_diag`, Linux 6.9; on
//!   older kernels, while the package's namespace lives), and during [`RESERVED`] after the
//!   answer (before the bind shows).
//! * `connect` to a loopback port: a listener in the caller's own namespace is simply reached
//!   (the same package always reaches itself); otherwise the port's listener is looked for in
//!   the other packages' namespaces, then on the host (two packages' namespaces listening on
//!   it: refused, never one picked), and the connect is decided as
//!   [`Operation::LoopbackConnect`] (recorded in the decision log). Refused: `ECONNREFUSED`.
//!   Allowed: a socket made in the listener's namespace (by its [`SocketFactory`]; the host's
//!   by the broker itself), with the app socket's options, connected by the broker to the
//!   address the supervisor read, and installed over the app's fd. No listener anywhere: the
//!   kernel refuses it in the caller's namespace.
//!
//! * A packaged full-trust process's supervisor (`seccomp_notify::supervised_full_trust`: in
//!   the host's namespace) asks only about a connect that no host listener reaches; its
//!   client is decided as full trust (the server's `in` rule naming it, or its own package),
//!   a host listener is left to the kernel, and a bind is never reserved (it binds in the
//!   host's namespace, outside the packages' port space).
//!
//! Listeners are found with `sock_diag` in each namespace (`appipc_sys::loopback::Listeners`),
//! one query per namespace — for a connect the kernel's hashed lookup of the listener that
//! address reaches, for a bind a dump filtered by port — all of a request's queries in one
//! job of the broker's loopback pool ([`POOL_THREADS`] threads): never on the async threads.
//! A connect's wait for the listener's namespace holds no thread at all. A host listener is
//! treated as an unpackaged one (a packaged full-trust listener included).
//!
//! [`SocketFactory`]: appipc_sys::loopback::SocketFactory

use std::collections::{HashMap, VecDeque};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appipc_model::loopback::{Connect, LoopbackEnd, Transport};
use appipc_model::policy::Operation;
use appipc_sys::loopback::{ASK_LEN, Answer, Ask, AskOp, SocketInfo, Target};

use super::EndFacts;
use crate::Shared;
use crate::caller::Caller;
use crate::container::NamespaceTools;
use crate::mech::storage::store;

/// How long a port a package was let bind stays its own before its bound socket shows.
const RESERVED: Duration = Duration::from_secs(2);
/// The threads of the loopback pool (`Shared::loopback_pool`).
pub(crate) const POOL_THREADS: usize = 2;
/// How long the broker waits for a connect in the listener's namespace.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// Sockets installed per container that a restarted `connect` is recognised by.
const INSTALLED_KEPT: usize = 1024;

const SOCK_STREAM: i32 = rustix::net::SocketType::STREAM.as_raw() as i32;
const AF_INET: i32 = rustix::net::AddressFamily::INET.as_raw() as i32;
const AF_INET6: i32 = rustix::net::AddressFamily::INET6.as_raw() as i32;
/// `IPPROTO_TCP`.
const TCP: i32 = 6;
const EADDRINUSE: i32 = rustix::io::Errno::ADDRINUSE.raw_os_error();
const ECONNREFUSED: i32 = rustix::io::Errno::CONNREFUSED.raw_os_error();
const ETIMEDOUT: i32 = rustix::io::Errno::TIMEDOUT.raw_os_error();

/// The ports packages were let bind: port → who holds it.
#[derive(Debug, Default)]
pub(crate) struct Ports {
    map: Mutex<HashMap<u16, Held>>,
}

/// A port a package was let bind.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    /// The package's family, lower case.
    family: String,
    /// The socket it was let bind (its inode).
    inode: u64,
    /// When.
    at: Instant,
}

/// One container's channel being served.
struct Container {
    shared: Arc<Shared>,
    caller: Caller,
    /// The caller's family, lower case.
    family: String,
    /// A packaged full-trust process (in the host's network namespace), not an app container.
    full_trust: bool,
    /// Inodes of the sockets installed in this container, newest last.
    installed: VecDeque<u64>,
}

/// Where a loopback port's listener is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// In the caller's own namespace.
    Own,
    /// In another package's namespace (its family, lower case).
    Package(String),
    /// On the host (the broker's namespace).
    Host,
    /// Nowhere.
    Nobody,
    /// In more than one other package's namespace: whose it is cannot be told.
    Ambiguous(Vec<String>),
}

/// Whose listener on a port a client of `own` reaches, from the namespaces that listen on it
/// and whether the host does (pure). Its own namespace first (the kernel connects there); one
/// other package's; more than one: [`Owner::Ambiguous`], never one of them picked; then the
/// host's.
fn owner_of(listening: &[String], host: bool, own: &str) -> Owner {
    if listening.iter().any(|f| f == own) {
        return Owner::Own;
    }
    match listening {
        [] if host => Owner::Host,
        [] => Owner::Nobody,
        [one] => Owner::Package(one.clone()),
        many => Owner::Ambiguous(many.to_vec()),
    }
}

/// The loopback TCP ports `family`'s namespace listens on, sorted (none without a holder).
pub(crate) async fn inbound_ports(shared: &Arc<Shared>, family: &str) -> Vec<u16> {
    let Ok(Some(t)) = shared.holders.tools(shared, family).await else { return Vec::new() };
    shared
        .loopback_pool
        .run(move || t.listeners.ports().unwrap_or_default())
        .await
        .unwrap_or_default()
}

/// A socket of `family`'s namespace connected to its listener on `port` (127.0.0.1, else ::1).
pub(crate) async fn connect_into(
    shared: &Arc<Shared>,
    family: &str,
    port: u16,
) -> std::io::Result<OwnedFd> {
    let tools = shared.holders.tools(shared, family).await?.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no process of the package runs")
    })?;
    let mut last = std::io::Error::from_raw_os_error(ECONNREFUSED);
    for (domain, addr) in appipc_sys::loopback::loopback_addresses(port) {
        let t = tools.clone();
        let made = shared.loopback_pool.run(move || t.factory.socket(domain, SOCK_STREAM, TCP));
        let s = made.await.map_err(|e| std::io::Error::other(e.to_string()))??;
        match connect_async(&s, &addr).await {
            Ok(()) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connects `s` to `addr` within [`CONNECT_WAIT`], waiting on the async runtime (no thread is
/// held while the listener's namespace answers); leaves `s` blocking.
async fn connect_async(s: &OwnedFd, addr: &[u8]) -> std::io::Result<()> {
    let started = appipc_sys::loopback::connect_start(s.as_fd(), addr);
    let result = match started {
        Ok(true) => Ok(()),
        Ok(false) => {
            match tokio::time::timeout(CONNECT_WAIT, appipc_sys::aio::writable(s.as_fd())).await {
                Ok(Ok(())) => appipc_sys::loopback::connect_result(s.as_fd()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::Error::from_raw_os_error(ETIMEDOUT)),
            }
        }
        Err(e) => Err(e),
    };
    appipc_sys::socket::set_nonblocking(s, false)?;
    result
}

/// The live connect supervisors of packaged full-trust processes, per package (lowercase
/// family name): each is a process of its own, with a channel the broker serves, living as
/// long as any process of its tree lives. A package may have at most `[limits]
/// processes-per-package` of them, or an app that leaves a child running and is launched again
/// and again would pile them up.
#[derive(Debug, Default)]
pub(crate) struct Supervisors(Mutex<HashMap<String, usize>>);

impl Supervisors {
    fn count(&self, family: &str) -> usize {
        self.0.lock().expect("supervisors poisoned").get(family).copied().unwrap_or(0)
    }

    fn add(&self, family: &str) {
        *self.0.lock().expect("supervisors poisoned").entry(family.to_owned()).or_default() += 1;
    }

    fn remove(&self, family: &str) {
        let mut m = self.0.lock().expect("supervisors poisoned");
        if let Some(n) = m.get_mut(family) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(family);
            }
        }
    }
}

/// Room for one more full-trust connect supervisor of `family`: `Err` with the reason when the
/// package has `[limits] processes-per-package` of them alive.
pub(crate) fn room_for_supervisor(shared: &Shared, family: &str) -> Result<(), String> {
    let live = shared.supervisors.count(&family.to_ascii_lowercase());
    let max = shared.config.limits.processes_per_package;
    if live >= max {
        return Err(format!(
            "package {family} has {live} full-trust process trees running (each with its \
             connect supervisor), the most it may ([limits] processes-per-package)"
        ));
    }
    Ok(())
}

/// Serves the loopback channel of a process just started (an app container's supervisor, or
/// a packaged full-trust process's), once the session keeper holds a duplicate of it: a broker that dies does not take the
/// channel along, and the next one serves it again ([`serve_kept`]).
pub(crate) async fn serve(shared: &Arc<Shared>, caller: &Caller, channel: Option<OwnedFd>) {
    let (Some(channel), Some(record)) = (channel, crate::keeper::Record::loopback(caller)) else {
        return;
    };
    let key = shared.next_key();
    let kept = shared.keeper.put(key, record, channel.as_fd());
    crate::keeper::wait_kept(kept, key, &shared.log_limiter).await;
    serve_kept(shared, caller, key, channel);
}

/// Serves a container's loopback channel (`key`: its entry with the session keeper, which
/// lets it go when the channel ends).
pub(crate) fn serve_kept(shared: &Arc<Shared>, caller: &Caller, key: u64, channel: OwnedFd) {
    let Some(family) = caller.family_name() else { return };
    let mut c = Container {
        shared: shared.clone(),
        caller: caller.clone(),
        family: family.to_ascii_lowercase(),
        full_trust: caller.trust() == appipc_wire::caller::TrustLevel::FullTrust,
        installed: VecDeque::new(),
    };
    if c.full_trust {
        shared.supervisors.add(&c.family);
    }
    tokio::spawn(async move {
        c.serve(key, channel).await;
        c.shared.keeper.forget(key);
        if c.full_trust {
            c.shared.supervisors.remove(&c.family);
        }
    });
}

impl Container {
    /// Answers the channel's questions until it ends.
    async fn serve(&mut self, key: u64, channel: OwnedFd) {
        let c = self;
        let channel = match appipc_sys::aio::AsyncSeqPacket::new(channel) {
            Ok(ch) => Arc::new(ch),
            Err(e) => {
                tracing::error!(error = %e, "loopback channel: cannot register");
                return;
            }
        };
        c.shared.keeper.attach(key, &channel);
        loop {
            let packet = match channel.recv(ASK_LEN + 1).await {
                Ok(Some(p)) => p,
                Ok(None) | Err(_) => break,
            };
            let ask = Ask::decode(&packet.data).filter(|_| !packet.truncated);
            let (Some(ask), [socket]) = (ask, packet.fds.as_slice()) else {
                tracing::warn!(caller = %c.caller.describe(), "loopback channel: malformed question; closed");
                let _ = appipc_sys::socket::shutdown(&*channel);
                break;
            };
            let (answer, fd) = c.answer(&ask, socket).await;
            let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
            if channel.send(&answer.encode(ask.seq), &fds).await.is_err() {
                break;
            }
        }
    }

    async fn answer(&mut self, ask: &Ask, socket: &OwnedFd) -> (Answer, Option<OwnedFd>) {
        let info = match appipc_sys::loopback::socket_info(socket.as_fd()) {
            Ok(i) if i.ty == SOCK_STREAM && matches!(i.domain, AF_INET | AF_INET6) => i,
            _ => return (Answer::Continue, None),
        };
        match ask.op {
            // A full-trust process binds in the host's namespace, outside the packages' port
            // space (its supervisor never asks; a question is answered as if it had not).
            AskOp::Bind if self.full_trust => (Answer::Continue, None),
            AskOp::Bind => match appipc_sys::loopback::bind_port(ask.address()) {
                Some(port) => (self.bind(port, info.inode).await, None),
                None => (Answer::Continue, None),
            },
            AskOp::Connect => match appipc_sys::loopback::classify(ask.address()) {
                Ok(Target::Loopback { port, .. }) if port != 0 => {
                    if self.installed.contains(&info.inode) {
                        // A connect restarted after its socket was installed.
                        return (Answer::Done, None);
                    }
                    self.connect(ask, port, socket, info).await
                }
                _ => (Answer::Continue, None),
            },
        }
    }

    /// The packages' namespaces that listen on `port` and whether the host does — for a
    /// connect (`to`: its address), whose listener a connect to that address would reach (the
    /// kernel's hashed lookup) — one query per namespace, all in one job of the loopback pool.
    async fn listening(&self, port: u16, to: Option<&[u8]>) -> (Vec<String>, bool) {
        let to = to.map(<[u8]>::to_vec);
        let mut all = Vec::new();
        for (f, _) in self.shared.holders.pids() {
            match self.shared.holders.tools(&self.shared, &f).await {
                Ok(Some(t)) => all.push((f, t)),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(package = %f, error = %e, "loopback: cannot query a namespace")
                }
            }
        }
        let host = self.shared.holders.host_listeners();
        let job = self.shared.loopback_pool.run(move || {
            let there = |l: &appipc_sys::loopback::Listeners| {
                match &to {
                    Some(addr) => l.reaches(addr),
                    None => l.listens(port),
                }
                .unwrap_or(false)
            };
            let listening: Vec<String> =
                all.into_iter().filter(|(_, t)| there(&t.listeners)).map(|(f, _)| f).collect();
            (listening, host.is_some_and(|h| there(&h)))
        });
        job.await.unwrap_or_default()
    }

    /// Where port `port`'s listener is ([`owner_of`]); for a connect (`to`: its address),
    /// the listener a connect there would reach.
    async fn owner(&self, port: u16, to: Option<&[u8]>) -> Owner {
        let (listening, host) = self.listening(port, to).await;
        // A full-trust process has no namespace of its own: its package's is another's.
        owner_of(&listening, host, if self.full_trust { "" } else { &self.family })
    }

    /// Whether `held` (another package's) still stands: within [`RESERVED`] of the answer,
    /// or while its socket is bound to `port` in its namespace (on a kernel that cannot tell,
    /// while the namespace lives).
    async fn still_held(&self, held: &Held, port: u16) -> bool {
        if held.at.elapsed() < RESERVED {
            return true;
        }
        let tools = match self.shared.holders.tools(&self.shared, &held.family).await {
            Ok(Some(t)) => t,
            // Its namespace is gone, and the socket with it.
            Ok(None) => return false,
            Err(_) => return true,
        };
        let inode = held.inode;
        let job = self.shared.loopback_pool.run(move || {
            if !appipc_sys::loopback::Listeners::reports_bound_sockets() {
                return true;
            }
            t_port_use(&tools, port, inode)
        });
        job.await.unwrap_or(true)
    }

    async fn bind(&self, port: u16, inode: u64) -> Answer {
        let owner = self.owner(port, None).await;
        let taken = matches!(owner, Owner::Package(_) | Owner::Host | Owner::Ambiguous(_));
        let held =
            self.shared.loopback_ports.map.lock().expect("ports poisoned").get(&port).cloned();
        let held_by_other = match &held {
            Some(h) if h.family != self.family => self.still_held(h, port).await,
            _ => false,
        };
        if taken || held_by_other {
            tracing::info!(caller = %self.caller.describe(), port, ?owner, held_by_other, "loopback bind: port in use by another package or the host (EADDRINUSE)");
            return Answer::Fail(EADDRINUSE);
        }
        let live: Vec<String> = self.shared.holders.pids().into_iter().map(|(f, _)| f).collect();
        let mut ports = self.shared.loopback_ports.map.lock().expect("ports poisoned");
        // Another package was let bind it while this was looked at: it is theirs.
        let now = ports.get(&port).cloned();
        if now != held && now.as_ref().is_some_and(|h| h.family != self.family) {
            return Answer::Fail(EADDRINUSE);
        }
        // The ports of packages whose namespace is gone are no one's.
        ports.retain(|_, h| live.contains(&h.family) || h.at.elapsed() < RESERVED);
        ports.insert(port, Held { family: self.family.clone(), inode, at: Instant::now() });
        Answer::Continue
    }

    /// The facts about an installed package as one end (`None`: not installed); the client
    /// is this caller (an app container, or a full-trust process), the server an app container.
    async fn facts(&self, family: &str, client: bool) -> Option<EndFacts> {
        let package = self.shared.repository.get(family)?;
        let f = package.family_name.to_string();
        let exempt =
            client && store(&self.shared, move |s| s.is_loopback_exempt(&f)).await.unwrap_or(false);
        Some(EndFacts { package, exempt, confined: !(client && self.full_trust) })
    }

    async fn connect(
        &mut self,
        ask: &Ask,
        port: u16,
        app: &OwnedFd,
        info: SocketInfo,
    ) -> (Answer, Option<OwnedFd>) {
        let owner = self.owner(port, Some(ask.address())).await;
        let server_family = match &owner {
            Owner::Own | Owner::Nobody => return (Answer::Continue, None),
            Owner::Package(f) => Some(f.clone()),
            // A full-trust process reaches the host's listeners itself, as ever.
            Owner::Host if self.full_trust => return (Answer::Continue, None),
            Owner::Host => None,
            Owner::Ambiguous(all) => {
                tracing::warn!(caller = %self.caller.describe(), port, packages = ?all, "loopback connect: more than one package listens on the port; refused (ECONNREFUSED)");
                return (Answer::Fail(ECONNREFUSED), None);
            }
        };
        let Some(client) = self.facts(&self.family.clone(), true).await else {
            return (Answer::Fail(ECONNREFUSED), None);
        };
        let server = match &server_family {
            Some(f) => match self.facts(f, false).await {
                Some(s) => Some(s),
                None => return (Answer::Fail(ECONNREFUSED), None),
            },
            None => None,
        };
        let connect = Connect {
            client: client.end(),
            server: server.as_ref().map_or(LoopbackEnd::Unpackaged, EndFacts::end),
            port: Some(port),
            transport: Transport::Tcp,
        };
        let op = Operation::LoopbackConnect(connect);
        if crate::decide::enforce(&self.shared, &self.caller, op).is_err() {
            return (Answer::Fail(ECONNREFUSED), None);
        }
        match self.make_connected(server_family.as_deref(), ask, app, info).await {
            Ok(s) => {
                if let Ok(i) = appipc_sys::loopback::socket_info(s.as_fd()) {
                    if self.installed.len() >= INSTALLED_KEPT {
                        self.installed.pop_front();
                    }
                    self.installed.push_back(i.inode);
                }
                (Answer::Install, Some(s))
            }
            Err(e) => {
                let errno = e.raw_os_error().filter(|e| (1..4096).contains(e));
                tracing::info!(caller = %self.caller.describe(), port, error = %e, "loopback connect: allowed, but the listener's namespace refused");
                (Answer::Fail(errno.unwrap_or(ECONNREFUSED)), None)
            }
        }
    }

    /// A socket in the listener's namespace (`family`'s, or the host's), with the app socket's
    /// options, connected to the address the supervisor read.
    async fn make_connected(
        &self,
        family: Option<&str>,
        ask: &Ask,
        app: &OwnedFd,
        info: SocketInfo,
    ) -> std::io::Result<OwnedFd> {
        let tools = match family {
            Some(f) => Some(
                self.shared
                    .holders
                    .tools(&self.shared, f)
                    .await?
                    .ok_or_else(|| std::io::Error::from_raw_os_error(ECONNREFUSED))?,
            ),
            None => None,
        };
        let app = app.try_clone()?;
        // A host socket is the app's: made with its host uid (under a root broker).
        let uid = self.shared.holders.host_uid(&self.family).unwrap_or(self.caller.uid);
        let made = self.shared.loopback_pool.run(move || {
            let s = match tools {
                // Plain TCP whatever the app's socket was (MPTCP, SCTP, … are not made in
                // another namespace on its behalf).
                Some(t) => t.factory.socket(info.domain, SOCK_STREAM, TCP)?,
                None => appipc_sys::loopback::host_socket_as(info.domain, TCP, uid)?,
            };
            appipc_sys::loopback::copy_options(app.as_fd(), s.as_fd());
            Ok::<_, std::io::Error>(s)
        });
        let s = made.await.map_err(|e| std::io::Error::other(e.to_string()))??;
        connect_async(&s, ask.address()).await?;
        appipc_sys::socket::set_nonblocking(&s, info.nonblocking)?;
        Ok(s)
    }
}

/// Whether `port` is still held by the socket of inode `inode` in the namespace of `tools`
/// (bound or listening); true when that cannot be told. Blocking.
fn t_port_use(tools: &NamespaceTools, port: u16, inode: u64) -> bool {
    tools.listeners.port_use(port, Some(inode)).map_or(true, |u| u.holds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fams(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Red team F2b: two namespaces listening on one port used to be resolved by HashMap order
    /// (the first one found); now neither is reached.
    #[test]
    fn two_packages_listening_on_one_port_reach_neither() {
        assert_eq!(owner_of(&fams(&["a", "m"]), false, "c"), Owner::Ambiguous(fams(&["a", "m"])));
        assert_eq!(owner_of(&fams(&["m", "a"]), true, "c"), Owner::Ambiguous(fams(&["m", "a"])));
        assert_eq!(owner_of(&fams(&["a"]), false, "c"), Owner::Package("a".into()));
        assert_eq!(owner_of(&fams(&["a"]), true, "c"), Owner::Package("a".into()));
        assert_eq!(owner_of(&fams(&["a", "c"]), false, "c"), Owner::Own, "the kernel's own");
        assert_eq!(owner_of(&[], true, "c"), Owner::Host);
        assert_eq!(owner_of(&[], false, "c"), Owner::Nobody);
    }

    /// Red team F3: a connect that waits for the listener's namespace (here a listener whose
    /// accept queue is full, so the kernel drops the SYN and the connect goes on for seconds)
    /// holds no thread: on a one-thread runtime, a job of a one-slot pool started after it
    /// still finishes first.
    #[tokio::test(flavor = "current_thread")]
    async fn a_waiting_connect_holds_no_thread() {
        use std::os::fd::AsRawFd;
        let l = appipc_sys::loopback::host_socket(AF_INET, TCP).unwrap();
        let any = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 0);
        rustix::net::bind(&l, &any).unwrap();
        rustix::net::listen(&l, 0).unwrap();
        let port = match std::net::TcpListener::from(l.try_clone().unwrap()).local_addr() {
            Ok(a) => a.port(),
            Err(e) => panic!("{e}"),
        };
        let addr = &appipc_sys::loopback::loopback_addresses(port)[0].1;
        // Fill the accept queue (nobody accepts).
        let mut queued = Vec::new();
        for _ in 0..2 {
            let s = appipc_sys::loopback::host_socket(AF_INET, TCP).unwrap();
            let _ = appipc_sys::loopback::connect_start(s.as_fd(), addr);
            queued.push(s);
        }
        std::thread::sleep(Duration::from_millis(100));
        let s = appipc_sys::loopback::host_socket(AF_INET, TCP).unwrap();
        let pool = crate::blocking::BlockingPool::new(1);
        let connecting = connect_async(&s, addr);
        let job = pool.run(|| 7);
        tokio::pin!(connecting, job);
        tokio::select! {
            biased;
            r = &mut connecting => panic!("the connect ended first: {r:?} (fd {})", s.as_raw_fd()),
            v = &mut job => assert_eq!(v.unwrap(), 7),
        }
        drop(queued);
    }
}
