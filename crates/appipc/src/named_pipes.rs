//! Named pipes (`\\.\pipe\LOCAL\name`) and anonymous pipes.
//!
//! A server creates instances ([`NamedPipeServer::create`], `CreateNamedPipe`) and waits for
//! clients ([`NamedPipeServer::connect`], `ConnectNamedPipe`); a client opens the pipe by name
//! ([`open`], `CreateFile`) and gets the other end of a socket pair — a byte stream, or
//! `SOCK_SEQPACKET` in message mode, which keeps message boundaries. The broker checks the name
//! and the access and stays out of the data. Busy pipes give `ERROR_PIPE_BUSY` (231), missing ones
//! `ERROR_FILE_NOT_FOUND` (2); [`wait_named_pipe`] waits for a free instance.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use appipc_wire::protocol::pipes as wire;
pub use appipc_wire::protocol::pipes::PipeDirection;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::session::Session;

/// `GENERIC_READ`.
pub const GENERIC_READ: u32 = 0x8000_0000;
/// `GENERIC_WRITE`.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// `PIPE_UNLIMITED_INSTANCES`.
pub const PIPE_UNLIMITED_INSTANCES: u8 = 255;

/// Options of [`NamedPipeServer::create`].
#[derive(Debug, Clone)]
pub struct PipeOptions {
    /// `PIPE_TYPE_MESSAGE` (boundaries kept) instead of `PIPE_TYPE_BYTE`.
    pub message_mode: bool,
    /// Direction.
    pub direction: PipeDirection,
    /// 1 to 255 (`PIPE_UNLIMITED_INSTANCES`).
    pub max_instances: u8,
    /// Security descriptor (SDDL) of the pipe, given by its first instance.
    pub sddl: Option<String>,
}

impl Default for PipeOptions {
    fn default() -> Self {
        PipeOptions {
            message_mode: false,
            direction: PipeDirection::Duplex,
            max_instances: PIPE_UNLIMITED_INSTANCES,
            sddl: None,
        }
    }
}

/// One instance of a named pipe, served by this process.
#[derive(Debug)]
pub struct NamedPipeServer {
    session: Session,
    instance: u64,
    clients: mpsc::UnboundedReceiver<(u32, String, std::os::fd::OwnedFd)>,
}

/// A connected client, as the server sees it.
#[derive(Debug)]
pub struct ServerConnection {
    /// The data (read and write as the direction allows).
    pub stream: UnixStream,
    /// `GetNamedPipeClientProcessId`.
    pub client_pid: u32,
    /// The client's package family name ("" for an unpackaged client).
    pub client_package_family_name: String,
}

impl NamedPipeServer {
    /// `CreateNamedPipe`: one more instance of `name` (`\\.\pipe\LOCAL\…`).
    pub async fn create(
        session: &Session,
        name: &str,
        options: &PipeOptions,
    ) -> Result<NamedPipeServer> {
        let request = wire::CreateInstance {
            name: name.to_owned(),
            message_mode: options.message_mode,
            direction: options.direction,
            max_instances: options.max_instances,
            sddl: options.sddl.clone(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let instance = session.call(request).await.map_err(Error::into_win32)?;
        // Clients that arrived before this route are waiting in the session for it.
        session.route_pipe(instance, tx);
        Ok(NamedPipeServer { session: session.clone(), instance, clients: rx })
    }

    /// `ConnectNamedPipe`: waits for the next client of this instance.
    pub async fn connect(&mut self) -> Result<ServerConnection> {
        let (client_pid, client_package_family_name, fd) =
            self.clients.recv().await.ok_or(Error::Disconnected)?;
        Ok(ServerConnection {
            stream: UnixStream::from(fd),
            client_pid,
            client_package_family_name,
        })
    }

    /// `DisconnectNamedPipe`: the instance takes the next client.
    pub async fn disconnect(&self) -> Result<()> {
        self.session
            .call(wire::Disconnect { instance: self.instance })
            .await
            .map_err(Error::into_win32)
    }
}

/// `CreateFile` on a pipe name: the client's end. It reads only with read access granted and
/// writes only with write access granted; the access asked must fit the pipe's direction
/// (write an inbound pipe, read an outbound one), and 0 is refused (5).
pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<UnixStream> {
    let (_, mut fds) = session
        .call_with_fds(wire::Open { name: name.to_owned(), desired_access }, &[])
        .await
        .map_err(Error::into_win32)?;
    let fd = fds.pop().ok_or_else(|| Error::Protocol("pipe opened without its fd".into()))?;
    Ok(UnixStream::from(fd))
}

/// `WaitNamedPipe`: waits until an instance of `name` is free, at most `timeout`.
pub async fn wait_named_pipe(session: &Session, name: &str, timeout: Duration) -> Result<()> {
    let timeout_ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
    let wait = timeout + crate::session::default_timeout();
    session
        .call_within(wire::Wait { name: name.to_owned(), timeout_ms }, &[], wait)
        .await
        .map(|_| ())
        .map_err(Error::into_win32)
}

/// `CreatePipe`: an anonymous pipe (read end, write end), for a parent and its child.
pub fn anonymous_pipe() -> Result<(std::fs::File, std::fs::File)> {
    let (r, w) =
        appipc_sys::fs::pipe().map_err(|source| Error::Io { what: "creating a pipe", source })?;
    Ok((std::fs::File::from(r), std::fs::File::from(w)))
}
