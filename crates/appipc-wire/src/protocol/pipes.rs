//! Named pipes (`\\.\pipe\LOCAL\…`).

use minicbor::{Decode, Encode};

super::mechanism! {
    /// Named pipes (`CreateNamedPipe`, `CreateFile` on a pipe, `WaitNamedPipe`): the broker
    /// keeps the names and instances, checks access by the named-object rules, and connects a
    /// client to a free instance with a stream socket pair (message-type pipes frame each
    /// message with its length, in the SDK). Errors carry `Win32` codes: 2 no such pipe, 5
    /// denied (also: `FILE_FLAG_FIRST_PIPE_INSTANCE` on an existing name, or an instance
    /// whose type, direction, instance limit or default time-out differ from the pipe's),
    /// 87 bad parameter, 121 wait timed out, 123 bad name, 231 busy.
    mechanism Pipes;
    requests {
        /// `CreateNamedPipe`: one more instance of a pipe served by this session. Returns the
        /// instance id; clients then arrive as `pipes.ClientConnected`.
        0 CreateInstance {
            /// `\\.\pipe\LOCAL\name`, …
            0 name: String,
            /// `PIPE_TYPE_MESSAGE` (boundaries kept) rather than `PIPE_TYPE_BYTE`.
            1 message_mode: bool,
            /// Which way data flows.
            2 direction: PipeDirection,
            /// 1 to 255; 255 is `PIPE_UNLIMITED_INSTANCES`.
            3 max_instances: u8,
            /// Security descriptor in SDDL (first instance only).
            4 sddl: Option<String>,
            /// `nDefaultTimeOut` in milliseconds, what `WaitNamedPipe(NMPWAIT_USE_DEFAULT_WAIT)`
            /// waits; 0 is 50 ms. Every instance gives the same.
            5 default_timeout_ms: u32,
            /// `FILE_FLAG_FIRST_PIPE_INSTANCE`: fail (5) if the pipe exists.
            6 first_instance: bool,
        } fds(0) -> u64, reply fds "0";
        /// `DisconnectNamedPipe`: the instance may take the next client (the server's SDK
        /// has shut the connection down, cutting the client off).
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
        /// `WaitNamedPipe`: waits until an instance is free; at once 2 if the pipe does not
        /// exist.
        3 Wait {
            /// The pipe name.
            0 name: String,
            /// Milliseconds, or `NMPWAIT_USE_DEFAULT_WAIT` (0: the pipe's default time-out)
            /// or `NMPWAIT_WAIT_FOREVER` (`0xFFFFFFFF`: no time-out).
            1 timeout_ms: u32,
        } fds(0) -> (), reply fds "0";
    }
    events {
        /// A client opened a pipe instance of this session; the server's end is attached.
        0 ClientConnected {
            /// The instance.
            0 instance: u64,
            /// The client's pid (`GetNamedPipeClientProcessId`) as the broker numbers it (an
            /// app container's: the process the broker launched); 0 for a server in an app
            /// container, whose pid namespace is its own.
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
    /// The server's pid (`GetNamedPipeServerProcessId`) as the broker numbers it (an app
    /// container's: the process the broker launched); 0 for a client in an app container,
    /// whose pid namespace is its own.
    #[n(3)]
    pub server_pid: u32,
}
