//! The loopback data path, the broker's half: each app container's supervisor
//! (`appipc_sys::seccomp_notify`) asks over a socket pair the broker made for that container
//! whether a `connect` or `bind` on a loopback address may go on, and the broker answers.
//! Who asks is the channel (the container it was made for, the caller attested at launch),
//! never a byte of the message; the message carries only the address the supervisor read and,
//! attached, a duplicate of the app's socket.
//!
//! * `bind` of a port (loopback or wildcard address, not 0): one loopback port space is shared
//!   by all packages and the host. A port another package's namespace, or the host, listens
//!   on — or that another package was let bind in the last [`RESERVED`] — is `EADDRINUSE`;
//!   otherwise the kernel binds it in the package's own namespace.
//! * `connect` to a loopback port: a listener in the caller's own namespace is simply reached
//!   (the same package always reaches itself); otherwise the port's listener is looked for in
//!   the other packages' namespaces, then on the host, and the connect is decided as
//!   [`Operation::LoopbackConnect`] (recorded in the decision log). Refused: `ECONNREFUSED`.
//!   Allowed: a socket made in the listener's namespace (by its [`SocketFactory`]; the host's
//!   by the broker itself), with the app socket's options, connected by the broker to the
//!   address the supervisor read, and installed over the app's fd. No listener anywhere: the
//!   kernel refuses it in the caller's namespace.
//!
//! Listeners are found with `sock_diag` in each namespace (`appipc_sys::loopback::Listeners`);
//! a host listener is treated as an unpackaged one (a packaged full-trust listener included).
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
use crate::mech::storage::store;

/// How long a port a package was let bind stays its own before its listener shows.
const RESERVED: Duration = Duration::from_secs(2);
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

/// Ports recently let bind: port → (family, lower case; when).
#[derive(Debug, Default)]
pub(crate) struct Ports {
    map: Mutex<HashMap<u16, (String, Instant)>>,
}

/// One container's channel being served.
struct Container {
    shared: Arc<Shared>,
    caller: Caller,
    /// The caller's family, lower case.
    family: String,
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
}

/// The loopback TCP ports `family`'s namespace listens on, sorted (none without a holder).
pub(crate) async fn inbound_ports(shared: &Arc<Shared>, family: &str) -> Vec<u16> {
    match shared.holders.listeners(shared, family).await {
        Ok(Some(l)) => l.ports().unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A socket of `family`'s namespace connected to its listener on `port` (127.0.0.1, else ::1).
pub(crate) async fn connect_into(
    shared: &Arc<Shared>,
    family: &str,
    port: u16,
) -> std::io::Result<OwnedFd> {
    let factory = shared.holders.factory(shared, family).await?.ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no process of the package runs")
    })?;
    let made = shared.blocking.run(move || {
        let mut last = std::io::Error::from_raw_os_error(ECONNREFUSED);
        for (domain, addr) in appipc_sys::loopback::loopback_addresses(port) {
            let s = factory.socket(domain, SOCK_STREAM, 0)?;
            match appipc_sys::loopback::connect_within(s.as_fd(), &addr, CONNECT_WAIT) {
                Ok(()) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    });
    made.await.map_err(|e| std::io::Error::other(e.to_string()))?
}

/// Serves the loopback channel of a confined process just started (none for full trust).
pub(crate) fn serve(shared: &Arc<Shared>, caller: &Caller, channel: Option<OwnedFd>) {
    let (Some(channel), Some(family)) = (channel, caller.family_name()) else { return };
    let mut c = Container {
        shared: shared.clone(),
        caller: caller.clone(),
        family: family.to_ascii_lowercase(),
        installed: VecDeque::new(),
    };
    tokio::spawn(async move {
        let channel = match appipc_sys::aio::AsyncSeqPacket::new(channel) {
            Ok(ch) => ch,
            Err(e) => {
                tracing::error!(error = %e, "loopback channel: cannot register");
                return;
            }
        };
        loop {
            let packet = match channel.recv(ASK_LEN + 1).await {
                Ok(Some(p)) => p,
                Ok(None) | Err(_) => break,
            };
            let ask = Ask::decode(&packet.data).filter(|_| !packet.truncated);
            let (Some(ask), [socket]) = (ask, packet.fds.as_slice()) else {
                tracing::warn!(caller = %c.caller.describe(), "loopback channel: malformed question; closed");
                break;
            };
            let (answer, fd) = c.answer(&ask, socket).await;
            let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
            if channel.send(&answer.encode(ask.seq), &fds).await.is_err() {
                break;
            }
        }
    });
}

impl Container {
    async fn answer(&mut self, ask: &Ask, socket: &OwnedFd) -> (Answer, Option<OwnedFd>) {
        let info = match appipc_sys::loopback::socket_info(socket.as_fd()) {
            Ok(i) if i.ty == SOCK_STREAM && matches!(i.domain, AF_INET | AF_INET6) => i,
            _ => return (Answer::Continue, None),
        };
        match ask.op {
            AskOp::Bind => match appipc_sys::loopback::bind_port(ask.address()) {
                Some(port) => (self.bind(port).await, None),
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

    /// Where port `port`'s listener is: the caller's own namespace first, then the other
    /// packages', then the host.
    async fn owner(&self, port: u16) -> Owner {
        let mut families: Vec<String> =
            self.shared.holders.pids().into_iter().map(|(f, _)| f).collect();
        families.sort_by_key(|f| *f != self.family);
        for f in families {
            let Ok(Some(l)) = self.shared.holders.listeners(&self.shared, &f).await else {
                continue;
            };
            if l.listens(port).unwrap_or(false) {
                return if f == self.family { Owner::Own } else { Owner::Package(f) };
            }
        }
        match self.shared.holders.host_listeners() {
            Some(h) if h.listens(port).unwrap_or(false) => Owner::Host,
            _ => Owner::Nobody,
        }
    }

    async fn bind(&self, port: u16) -> Answer {
        let owner = self.owner(port).await;
        let mut ports = self.shared.loopback_ports.map.lock().expect("ports poisoned");
        let reserved_by_other =
            ports.get(&port).is_some_and(|(f, at)| *f != self.family && at.elapsed() < RESERVED);
        let taken = matches!(owner, Owner::Package(_) | Owner::Host) || reserved_by_other;
        if taken {
            tracing::info!(caller = %self.caller.describe(), port, ?owner, "loopback bind: port in use by another package or the host (EADDRINUSE)");
            return Answer::Fail(EADDRINUSE);
        }
        ports.retain(|_, (_, at)| at.elapsed() < RESERVED);
        ports.insert(port, (self.family.clone(), Instant::now()));
        Answer::Continue
    }

    /// The facts about an installed package as one end (`None`: not installed).
    async fn facts(&self, family: &str, client: bool) -> Option<EndFacts> {
        let package = self.shared.repository.get(family)?;
        let f = package.family_name.to_string();
        let exempt =
            client && store(&self.shared, move |s| s.is_loopback_exempt(&f)).await.unwrap_or(false);
        Some(EndFacts { package, exempt })
    }

    async fn connect(
        &mut self,
        ask: &Ask,
        port: u16,
        app: &OwnedFd,
        info: SocketInfo,
    ) -> (Answer, Option<OwnedFd>) {
        let owner = self.owner(port).await;
        let server_family = match &owner {
            Owner::Own | Owner::Nobody => return (Answer::Continue, None),
            Owner::Package(f) => Some(f.clone()),
            Owner::Host => None,
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
        let factory = match family {
            Some(f) => Some(
                self.shared
                    .holders
                    .factory(&self.shared, f)
                    .await?
                    .ok_or_else(|| std::io::Error::from_raw_os_error(ECONNREFUSED))?,
            ),
            None => None,
        };
        let app = app.try_clone()?;
        let addr = ask.address().to_vec();
        let made = self.shared.blocking.run(move || {
            let s = match factory {
                // Plain TCP whatever the app's socket was (MPTCP, SCTP, … are not made in
                // another namespace on its behalf).
                Some(f) => f.socket(info.domain, SOCK_STREAM, TCP)?,
                None => appipc_sys::loopback::host_socket(info.domain, TCP)?,
            };
            appipc_sys::loopback::copy_options(app.as_fd(), s.as_fd());
            appipc_sys::loopback::connect_within(s.as_fd(), &addr, CONNECT_WAIT)?;
            appipc_sys::socket::set_nonblocking(&s, info.nonblocking)?;
            Ok::<_, std::io::Error>(s)
        });
        made.await.map_err(|e| std::io::Error::other(e.to_string()))?
    }
}
