//! `pipes`: the broker holds the pipe names and their instances, decides access by the
//! named-object rules, and connects a client to a free instance with a socket pair (a stream
//! for byte mode, `SOCK_SEQPACKET` for message mode); the data then flows between the two.
//!
//! The client's end can do exactly what its granted rights allow: it reads only with
//! `FILE_READ_DATA` granted and writes only with `FILE_WRITE_DATA` granted (the other half of
//! the socket is shut down), and the rights asked must fit the pipe's direction (reading an
//! inbound pipe, or writing an outbound one, is refused as on Windows).

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appipc_model::named_objects::{
    self as model, FILE_CREATE_PIPE_INSTANCE, FILE_READ_DATA, FILE_WRITE_DATA, NameKind, Namespace,
    ObjectType, SecurityDescriptor,
};
use appipc_model::policy::Operation;
use appipc_sys::aio::AsyncSeqPacket;
use appipc_wire::frame::Frame;
use appipc_wire::protocol::pipes::{self as wire, ClientConnected, PipeDirection, PipeOpened};
use appipc_wire::status::Win32Error;
use tokio::sync::Notify;

use crate::cx::{Cx, Replied};
use crate::error::{InternalError, NamedObjectError};

type Result<T, E = NamedObjectError> = std::result::Result<T, E>;

pub(crate) async fn handle(cx: Cx<'_>, r: wire::Request) -> Result<Replied> {
    use wire::Request as R;
    let pipes = &cx.shared.pipes;
    Ok(match r {
        R::CreateInstance(c) => Replied::of::<wire::CreateInstance>(pipes.create_instance(&cx, c)?),
        R::Disconnect(d) => {
            pipes.disconnect(&cx, d.instance)?;
            Replied::of::<wire::Disconnect>(())
        }
        R::Open(o) => {
            let (opened, fd) = pipes.open(&cx, &o.name, o.desired_access).await?;
            Replied::with_fds::<wire::Open>(opened, vec![fd])
        }
        R::Wait(w) => {
            pipes.wait(&cx, &w.name, w.timeout_ms).await?;
            Replied::of::<wire::Wait>(())
        }
    })
}

type Key = (Namespace, String);

#[derive(Debug)]
struct Instance {
    id: u64,
    session_id: u64,
    server: Arc<AsyncSeqPacket>,
    connected: bool,
}

#[derive(Debug)]
struct Pipe {
    display: String,
    sd: SecurityDescriptor,
    message_mode: bool,
    direction: PipeDirection,
    max_instances: u8,
    instances: Vec<Instance>,
}

/// The pipe table.
#[derive(Debug, Default)]
pub struct Pipes {
    pipes: Mutex<HashMap<Key, Pipe>>,
    next: AtomicU64,
    freed: Notify,
}

fn failed(code: Win32Error, message: impl Into<String>) -> NamedObjectError {
    NamedObjectError::win32(code, message)
}

impl Pipes {
    /// `CreateNamedPipe` (one instance).
    fn create_instance(&self, cx: &Cx<'_>, c: wire::CreateInstance) -> Result<u64> {
        let who = cx.caller;
        let wire::CreateInstance { name, message_mode, direction, max_instances, sddl } = c;
        if max_instances == 0 {
            return Err(NamedObjectError::parameter("a pipe needs at least one instance"));
        }
        let n = model::resolve(&who.principal, &name, NameKind::Pipe)?;
        let key = (n.namespace.clone(), n.key.clone());
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        // A pipe's name cannot be the "folder" of another's.
        if pipes.keys().any(|(ns, k)| {
            *ns == key.0
                && k != &key.1
                && (key.1.starts_with(&format!("{k}\\")) || k.starts_with(&format!("{}\\", key.1)))
        }) {
            return Err(failed(
                Win32Error::InvalidName,
                format!("{name:?} overlaps the name of another pipe"),
            ));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let instance = Instance {
            id,
            session_id: who.session_id,
            server: cx.session.clone(),
            connected: false,
        };
        match pipes.get_mut(&key) {
            Some(p) => {
                cx.enforce(Operation::OpenNamedObject {
                    name: &n,
                    ty: ObjectType::Pipe,
                    sd: &p.sd,
                    desired: FILE_CREATE_PIPE_INSTANCE,
                })?;
                if p.message_mode != message_mode
                    || p.max_instances != max_instances
                    || p.direction != direction
                {
                    return Err(failed(
                        Win32Error::AccessDenied,
                        format!("{name:?} exists with another mode, direction or instance limit"),
                    ));
                }
                if p.max_instances != 255 && p.instances.len() >= usize::from(p.max_instances) {
                    return Err(failed(
                        Win32Error::PipeBusy,
                        format!("{name:?} already has its {} instance(s)", p.max_instances),
                    ));
                }
                p.instances.push(instance);
            }
            None => {
                cx.enforce(Operation::CreateNamedObject { name: &n, ty: ObjectType::Pipe })?;
                let sd = match sddl {
                    Some(t) => SecurityDescriptor::from_sddl(&t).map_err(|e| {
                        NamedObjectError::parameter(format!("security descriptor: {e}"))
                    })?,
                    None => model::default_descriptor(&who.principal),
                };
                tracing::info!(pipe = %n.display, namespace = %n.namespace, by = %who.describe(), "named pipe created");
                pipes.insert(
                    key,
                    Pipe {
                        display: n.display,
                        sd,
                        message_mode,
                        direction,
                        max_instances,
                        instances: vec![instance],
                    },
                );
            }
        }
        drop(pipes);
        self.freed.notify_waiters();
        Ok(id)
    }

    /// `DisconnectNamedPipe`.
    fn disconnect(&self, cx: &Cx<'_>, instance: u64) -> Result<()> {
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        let inst =
            pipes.values_mut().flat_map(|p| p.instances.iter_mut()).find(|i| i.id == instance);
        let owned = inst.as_ref().is_some_and(|i| i.session_id == cx.caller.session_id);
        cx.enforce(Operation::UseHandle { handle: instance, owned })?;
        inst.expect("owned implies present").connected = false;
        drop(pipes);
        self.freed.notify_waiters();
        Ok(())
    }

    /// `CreateFile` on a pipe.
    async fn open(
        &self,
        cx: &Cx<'_>,
        name: &str,
        desired: u32,
    ) -> Result<(PipeOpened, std::os::fd::OwnedFd)> {
        let who = cx.caller;
        let n = model::resolve(&who.principal, name, NameKind::Pipe)?;
        let key = (n.namespace.clone(), n.key.clone());
        loop {
            let (server, id, message_mode, can_read, can_write) = {
                let mut pipes = self.pipes.lock().expect("pipes poisoned");
                let Some(p) = pipes.get_mut(&key) else {
                    return Err(failed(Win32Error::FileNotFound, format!("no pipe {name:?}")));
                };
                let d = cx.enforce(Operation::OpenNamedObject {
                    name: &n,
                    ty: ObjectType::Pipe,
                    sd: &p.sd,
                    desired,
                })?;
                let (read, write) =
                    (d.granted & FILE_READ_DATA != 0, d.granted & FILE_WRITE_DATA != 0);
                let fits = match p.direction {
                    PipeDirection::Duplex => read || write,
                    PipeDirection::Inbound => write && !read,
                    PipeDirection::Outbound => read && !write,
                };
                if !fits {
                    return Err(failed(
                        Win32Error::AccessDenied,
                        format!(
                            "{name:?} is {} and the access asked ({:#x}) does not fit it: a \
                             client writes an inbound pipe, reads an outbound one",
                            match p.direction {
                                PipeDirection::Duplex => "duplex",
                                PipeDirection::Inbound => "inbound",
                                PipeDirection::Outbound => "outbound",
                            },
                            d.granted
                        ),
                    ));
                }
                let Some(inst) = p.instances.iter_mut().find(|i| !i.connected) else {
                    return Err(failed(
                        Win32Error::PipeBusy,
                        format!("every instance of {name:?} is busy"),
                    ));
                };
                inst.connected = true;
                (inst.server.clone(), inst.id, p.message_mode, read, write)
            };
            let pair = if message_mode {
                appipc_sys::socket::seqpacket_pair()
            } else {
                appipc_sys::socket::stream_pair()
            };
            let (server_end, client_end) =
                pair.map_err(|e| InternalError::io("creating a pipe's socket pair", e))?;
            // The client's end reads only if it may read, writes only if it may write; the
            // server's end the other way round.
            let shut = |fd: &std::os::fd::OwnedFd, reading: bool| {
                appipc_sys::socket::shutdown_direction(fd, reading)
                    .map_err(|e| InternalError::io("setting the pipe's direction", e))
            };
            if !can_read {
                shut(&client_end, true)?;
                shut(&server_end, false)?;
            }
            if !can_write {
                shut(&client_end, false)?;
                shut(&server_end, true)?;
            }
            let event = Frame::event(ClientConnected {
                instance: id,
                client_pid: who.pid,
                client_package_family_name: who.family_name_or_empty(),
            });
            if server.send(&event.to_cbor(), &[server_end.as_fd()]).await.is_err() {
                // The server is gone: drop the instance and try the next.
                let mut pipes = self.pipes.lock().expect("pipes poisoned");
                if let Some(p) = pipes.get_mut(&key) {
                    p.instances.retain(|i| i.id != id);
                    if p.instances.is_empty() {
                        pipes.remove(&key);
                    }
                }
                continue;
            }
            tracing::debug!(pipe = %n.display, instance = id, client = %who.describe(), "pipe connected");
            return Ok((PipeOpened { message_mode, can_read, can_write }, client_end));
        }
    }

    /// `WaitNamedPipe`.
    async fn wait(&self, cx: &Cx<'_>, name: &str, timeout_ms: u32) -> Result<()> {
        let n = model::resolve(&cx.caller.principal, name, NameKind::Pipe)?;
        let key = (n.namespace, n.key);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        loop {
            let freed = self.freed.notified();
            {
                let pipes = self.pipes.lock().expect("pipes poisoned");
                match pipes.get(&key) {
                    None => {
                        return Err(failed(Win32Error::FileNotFound, format!("no pipe {name:?}")));
                    }
                    Some(p) if p.instances.iter().any(|i| !i.connected) => return Ok(()),
                    Some(_) => {}
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(failed(
                    Win32Error::SemTimeout,
                    format!("no instance of {name:?} became free in {timeout_ms} ms"),
                ));
            }
        }
    }

    /// A session ended: its instances go; a pipe without instances is gone.
    pub(crate) fn session_closed(&self, session: u64) {
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        pipes.retain(|_, p| {
            p.instances.retain(|i| i.session_id != session);
            if p.instances.is_empty() {
                tracing::debug!(pipe = %p.display, "last instance closed: pipe gone");
            }
            !p.instances.is_empty()
        });
        drop(pipes);
        self.freed.notify_waiters();
    }
}
