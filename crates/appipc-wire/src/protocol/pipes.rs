//! Named pipes (`\\.\pipe\LOCAL\…`).

use minicbor::{Decode, Encode};

super::mechanism! {
    /// Named pipes (`CreateNamedPipe`, `CreateFile` on a pipe, `WaitNamedPipe`): the broker
    /// keeps the names and instances, checks access by the named-object rules, and connects a
    /// client to a free instance with a socket pair. Errors carry `Win32` codes: 2 no such
    /// pipe, 5 denied, 121 wait timed out, 123 bad name, 231 busy.
    mechanism Pipes;
    requests {
        /// `CreateNamedPipe`: one more instance of a pipe served by this session. Returns the
        /// instance id; clients then arrive as `pipes.ClientConnected`.
        0 CreateInstance {
            /// `\\.\pipe\LOCAL\name`, …
            0 name: String,
            /// Message mode (boundaries kept) rather than byte mode.
            1 message_mode: bool,
            /// Which way data flows.
            2 direction: PipeDirection,
            /// 1 to 255; 255 is `PIPE_UNLIMITED_INSTANCES`.
            3 max_instances: u8,
            /// Security descriptor in SDDL (first instance only).
            4 sddl: Option<String>,
        } fds(0) -> u64, reply fds "0";
        /// `DisconnectNamedPipe`: the instance may take the next client.
        1 Disconnect {
            /// The instance.
            0 instance: u64,
        } fds(0) -> (), reply fds "0";
        /// `CreateFile` on a pipe name. The client's end can read only with read access
        /// granted and write only with write access granted; the pipe's direction must allow
        /// what was asked.
        2 Open {
            /// The pipe name.
            0 name: String,
            /// Desired access (`GENERIC_READ`, `GENERIC_WRITE`, …).
            1 desired_access: u32,
        } fds(0) -> PipeOpened, reply fds "1: the client's end";
        /// `WaitNamedPipe`: waits until an instance is free.
        3 Wait {
            /// The pipe name.
            0 name: String,
            /// Milliseconds.
            1 timeout_ms: u32,
        } fds(0) -> (), reply fds "0";
    }
    events {
        /// A client opened a pipe instance of this session; the server's end is attached.
        0 ClientConnected {
            /// The instance.
            0 instance: u64,
            /// The client's pid (`GetNamedPipeClientProcessId`).
            1 client_pid: u32,
            /// The client's package family name ("" for unpackaged).
            2 client_package_family_name: String,
        } fds "1: the server's end";
    }
}

/// Which way a pipe's data flows (`PIPE_ACCESS_DUPLEX`, `…_INBOUND`, `…_OUTBOUND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, serde::Serialize)]
#[cbor(index_only)]
#[serde(rename_all = "snake_case")]
pub enum PipeDirection {
    /// Both ways.
    #[n(0)]
    Duplex,
    /// Client to server.
    #[n(1)]
    Inbound,
    /// Server to client.
    #[n(2)]
    Outbound,
}

/// Answer to [`Open`].
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct PipeOpened {
    /// Message mode.
    #[n(0)]
    pub message_mode: bool,
    /// The client's end can read.
    #[n(1)]
    pub can_read: bool,
    /// The client's end can write.
    #[n(2)]
    pub can_write: bool,
}
