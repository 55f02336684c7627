//! Named pipes: the broker holds the pipe names and their instances, checks access by the
//! named-object rules, and connects a client to a free instance with a socket pair (a stream
//! for byte mode, `SOCK_SEQPACKET` for message mode); the data then flows between the two.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use appipc_model::named_objects::{
    self as model, FILE_CREATE_PIPE_INSTANCE, Intent, NameKind, Namespace, ObjectType, Requester,
    SecurityDescriptor, Win32Error,
};
use appipc_sys::aio::AsyncSeqPacket;
use appipc_wire::protocol::{Event, Frame, Reply, TrustLevel};
use tokio::sync::Notify;

use crate::error::{BrokerError, Result};
use crate::session::Identity;

/// `ERROR_SEM_TIMEOUT`, which `WaitNamedPipe` reports when no instance became free in time.
const ERROR_SEM_TIMEOUT: u32 = 121;

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
    direction: u8,
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

fn failed(code: u32, message: impl Into<String>) -> Reply {
    let message = message.into();
    tracing::info!(code, %message, "pipe refused");
    Reply::NamedObjectFailed { code, message }
}

fn requester(who: &Identity) -> Requester {
    match &who.package {
        Some(p) if p.trust == TrustLevel::AppContainer => {
            Requester::confined(&p.family_name, &p.capabilities)
        }
        _ => Requester::unconfined(),
    }
}

impl Pipes {
    /// `CreateNamedPipe` (one instance).
    #[allow(clippy::too_many_arguments)] // CreateNamedPipe's own parameters
    pub(crate) fn create_instance(
        &self,
        who: &Identity,
        server: &Arc<AsyncSeqPacket>,
        name: &str,
        message_mode: bool,
        direction: u8,
        max_instances: u8,
        sddl: Option<&str>,
    ) -> Result<Reply> {
        if direction > 2 || max_instances == 0 {
            return Err(BrokerError::BadRequest(format!(
                "direction {direction}, max instances {max_instances}"
            )));
        }
        let req = requester(who);
        let n = match model::resolve(&req, name, NameKind::Pipe, Intent::Create) {
            Ok(n) => n,
            Err(e) => return Ok(failed(e.code.code(), e.message)),
        };
        let key = (n.namespace.clone(), n.key.clone());
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        // A pipe's name cannot be the "folder" of another's.
        if pipes.keys().any(|(ns, k)| {
            *ns == key.0
                && k != &key.1
                && (key.1.starts_with(&format!("{k}\\")) || k.starts_with(&format!("{}\\", key.1)))
        }) {
            return Ok(failed(
                Win32Error::InvalidName.code(),
                format!("{name:?} overlaps the name of another pipe"),
            ));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let instance =
            Instance { id, session_id: who.session_id, server: server.clone(), connected: false };
        match pipes.get_mut(&key) {
            Some(p) => {
                if let Err(e) =
                    model::check_access(&req, &p.sd, ObjectType::Pipe, FILE_CREATE_PIPE_INSTANCE)
                {
                    return Ok(failed(e.code.code(), e.message));
                }
                if p.message_mode != message_mode
                    || p.max_instances != max_instances
                    || p.direction != direction
                {
                    return Ok(failed(
                        Win32Error::AccessDenied.code(),
                        format!("{name:?} exists with another mode, direction or instance limit"),
                    ));
                }
                if p.max_instances != 255 && p.instances.len() >= usize::from(p.max_instances) {
                    return Ok(failed(
                        Win32Error::PipeBusy.code(),
                        format!("{name:?} already has its {} instance(s)", p.max_instances),
                    ));
                }
                p.instances.push(instance);
            }
            None => {
                let sd = match sddl {
                    Some(t) => SecurityDescriptor::from_sddl(t).map_err(|e| {
                        BrokerError::BadRequest(format!("security descriptor: {e}"))
                    })?,
                    None => model::default_descriptor(&req),
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
        Ok(Reply::PipeInstance { instance: id })
    }

    /// `DisconnectNamedPipe`.
    pub(crate) fn disconnect(&self, who: &Identity, instance: u64) -> Result<Reply> {
        let mut pipes = self.pipes.lock().expect("pipes poisoned");
        let inst = pipes
            .values_mut()
            .flat_map(|p| p.instances.iter_mut())
            .find(|i| i.id == instance && i.session_id == who.session_id)
            .ok_or_else(|| {
                BrokerError::NotFound(format!("no pipe instance {instance} of this session"))
            })?;
        inst.connected = false;
        drop(pipes);
        self.freed.notify_waiters();
        Ok(Reply::Ok)
    }

    /// `CreateFile` on a pipe.
    pub(crate) async fn open(
        &self,
        who: &Identity,
        name: &str,
        desired: u32,
    ) -> Result<(Reply, Vec<std::os::fd::OwnedFd>)> {
        let req = requester(who);
        let n = match model::resolve(&req, name, NameKind::Pipe, Intent::Open) {
            Ok(n) => n,
            Err(e) => return Ok((failed(e.code.code(), e.message), Vec::new())),
        };
        let key = (n.namespace.clone(), n.key.clone());
        loop {
            let (server, id, message_mode, direction) = {
                let mut pipes = self.pipes.lock().expect("pipes poisoned");
                let Some(p) = pipes.get_mut(&key) else {
                    return Ok((
                        failed(Win32Error::FileNotFound.code(), format!("no pipe {name:?}")),
                        Vec::new(),
                    ));
                };
                if let Err(e) = model::check_access(&req, &p.sd, ObjectType::Pipe, desired) {
                    return Ok((failed(e.code.code(), e.message), Vec::new()));
                }
                let Some(inst) = p.instances.iter_mut().find(|i| !i.connected) else {
                    return Ok((
                        failed(
                            Win32Error::PipeBusy.code(),
                            format!("every instance of {name:?} is busy"),
                        ),
                        Vec::new(),
                    ));
                };
                inst.connected = true;
                (inst.server.clone(), inst.id, p.message_mode, p.direction)
            };
            let pair = if message_mode {
                appipc_sys::socket::seqpacket_pair()
            } else {
                appipc_sys::socket::stream_pair()
            };
            let (server_end, client_end) =
                pair.map_err(|e| BrokerError::io("creating a pipe's socket pair", e))?;
            // Inbound: the client writes, the server reads; outbound: the reverse.
            let shut = match direction {
                1 => appipc_sys::socket::shutdown_direction(&server_end, false)
                    .and_then(|()| appipc_sys::socket::shutdown_direction(&client_end, true)),
                2 => appipc_sys::socket::shutdown_direction(&server_end, true)
                    .and_then(|()| appipc_sys::socket::shutdown_direction(&client_end, false)),
                _ => Ok(()),
            };
            shut.map_err(|e| BrokerError::io("setting the pipe's direction", e))?;
            let event = Frame::event(Event::PipeClientConnected {
                instance: id,
                client_pid: who.pid,
                client_package_family_name: who
                    .package
                    .as_ref()
                    .map(|p| p.family_name.clone())
                    .unwrap_or_default(),
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
            return Ok((Reply::PipeConnected { message_mode }, vec![client_end]));
        }
    }

    /// `WaitNamedPipe`.
    pub(crate) async fn wait(&self, who: &Identity, name: &str, timeout_ms: u32) -> Result<Reply> {
        let req = requester(who);
        let n = match model::resolve(&req, name, NameKind::Pipe, Intent::Open) {
            Ok(n) => n,
            Err(e) => return Ok(failed(e.code.code(), e.message)),
        };
        let key = (n.namespace, n.key);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(timeout_ms));
        loop {
            let freed = self.freed.notified();
            {
                let pipes = self.pipes.lock().expect("pipes poisoned");
                match pipes.get(&key) {
                    None => {
                        return Ok(failed(
                            Win32Error::FileNotFound.code(),
                            format!("no pipe {name:?}"),
                        ));
                    }
                    Some(p) if p.instances.iter().any(|i| !i.connected) => return Ok(Reply::Ok),
                    Some(_) => {}
                }
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Ok(failed(
                    ERROR_SEM_TIMEOUT,
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
