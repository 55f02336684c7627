//! Named pipes (`\\.\pipe\LOCAL\name`) and anonymous pipes.
//!
//! A server creates instances ([`NamedPipeServer::create`], `CreateNamedPipe`) and waits for
//! clients ([`NamedPipeServer::connect`], `ConnectNamedPipe`); a client opens the pipe by name
//! ([`open`], `CreateFile`) and gets a [`PipeStream`], the other end of a stream socket pair.
//! The broker checks the name and the access and stays out of the data. Busy pipes give
//! `ERROR_PIPE_BUSY` (231), missing ones `ERROR_FILE_NOT_FOUND` (2); [`wait_named_pipe`] waits
//! for a free instance.
//!
//! **Byte-type pipes** (`PIPE_TYPE_BYTE`) are the kernel's stream, read and written straight.
//! **Message-type pipes** (`PIPE_TYPE_MESSAGE`) keep each write as one message of any size:
//! this SDK puts a 4-byte little-endian length before each message on the stream (both ends go
//! through it). Reading is then as on Windows, in the handle's *read mode*
//! ([`PipeStream::set_read_mode`], `SetNamedPipeHandleState`):
//! * `PIPE_READMODE_MESSAGE`: [`PipeStream::read_file`] returns one message; a buffer shorter
//!   than the message gets its first part with `more_data` set (`ERROR_MORE_DATA`, 234), and
//!   the next reads return the rest.
//! * `PIPE_READMODE_BYTE`: reads ignore the boundaries and return what is there, across
//!   messages.
//!
//! A client's handle starts in byte-read mode, as `CreateFile` leaves it ("The handle returned
//! by CreateFile defaults to byte-read mode", *Named Pipe Client*); a server's in the mode its
//! [`PipeOptions::read_mode`] says. `PIPE_READMODE_MESSAGE` on a byte-type pipe is
//! `ERROR_INVALID_PARAMETER` (87).
//!
//! [`PipeStream::peek`] is `PeekNamedPipe`, [`PipeStream::transact`] `TransactNamedPipe`,
//! [`call_named_pipe`] `CallNamedPipe`; [`PipeStream::server_process_id`] and
//! [`PipeStream::client_process_id`] are `GetNamedPipeServerProcessId` and
//! `GetNamedPipeClientProcessId`, as the caller's pid namespace numbers the process (0 when
//! it cannot see it: a process in another app container's pid namespace).
//!
//! Errors of the data path, as `Error::NamedObject { code, .. }`: 109 `ERROR_BROKEN_PIPE` when
//! the other end has closed (or been cut off by `DisconnectNamedPipe`) and everything it sent
//! has been read, 232 `ERROR_NO_DATA` when writing to such a pipe, 5 when reading a handle
//! without read access (or writing one without write access), 230 `ERROR_BAD_PIPE` for a
//! transaction on a handle that is not in message-read mode.

use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
/// `NMPWAIT_USE_DEFAULT_WAIT`: wait the server's `nDefaultTimeOut`.
pub const NMPWAIT_USE_DEFAULT_WAIT: u32 = 0;
/// `NMPWAIT_NOWAIT` (`CallNamedPipe`): do not wait for a busy pipe.
pub const NMPWAIT_NOWAIT: u32 = 1;
/// `NMPWAIT_WAIT_FOREVER`.
pub const NMPWAIT_WAIT_FOREVER: u32 = 0xFFFF_FFFF;
/// `ERROR_ACCESS_DENIED`.
pub const ERROR_ACCESS_DENIED: u32 = 5;
/// `ERROR_INVALID_PARAMETER`.
pub const ERROR_INVALID_PARAMETER: u32 = 87;
/// `ERROR_BROKEN_PIPE`: the other end closed.
pub const ERROR_BROKEN_PIPE: u32 = 109;
/// `ERROR_BAD_PIPE`: the pipe state is invalid (a transaction outside message-read mode).
pub const ERROR_BAD_PIPE: u32 = 230;
/// `ERROR_PIPE_BUSY`.
pub const ERROR_PIPE_BUSY: u32 = 231;
/// `ERROR_NO_DATA`: the pipe is being closed (a write to a pipe whose other end closed).
pub const ERROR_NO_DATA: u32 = 232;
/// `ERROR_MORE_DATA`: the message is longer than the buffer; the rest stays readable.
pub const ERROR_MORE_DATA: u32 = 234;

/// The read mode of a pipe handle (`PIPE_READMODE_BYTE`, `PIPE_READMODE_MESSAGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeReadMode {
    /// `PIPE_READMODE_BYTE`: a stream of bytes, message boundaries ignored.
    Byte,
    /// `PIPE_READMODE_MESSAGE`: one message per read (message-type pipes only).
    Message,
}

/// Options of [`NamedPipeServer::create`].
#[derive(Debug, Clone)]
pub struct PipeOptions {
    /// `PIPE_TYPE_MESSAGE` (boundaries kept) instead of `PIPE_TYPE_BYTE`.
    pub message_mode: bool,
    /// The server handle's read mode: `PIPE_READMODE_MESSAGE` is for message-type pipes only
    /// (else `ERROR_INVALID_PARAMETER`, 87). `None` (the default) reads as the type writes:
    /// message-read mode on a message-type pipe, byte-read mode on a byte-type one.
    pub read_mode: Option<PipeReadMode>,
    /// Direction.
    pub direction: PipeDirection,
    /// 1 to 255 (`PIPE_UNLIMITED_INSTANCES`).
    pub max_instances: u8,
    /// Security descriptor (SDDL) of the pipe, given by its first instance.
    pub sddl: Option<String>,
    /// `nDefaultTimeOut` in milliseconds: what a client's `WaitNamedPipe` with
    /// `NMPWAIT_USE_DEFAULT_WAIT` waits. 0 is 50 ms, as on Windows. Every instance of a pipe
    /// gives the same (else `ERROR_ACCESS_DENIED`).
    pub default_timeout_ms: u32,
    /// `FILE_FLAG_FIRST_PIPE_INSTANCE`: fail with `ERROR_ACCESS_DENIED` (5) if the pipe
    /// exists already (no one else serves this name).
    pub first_instance: bool,
}

impl Default for PipeOptions {
    fn default() -> Self {
        PipeOptions {
            message_mode: false,
            read_mode: None,
            direction: PipeDirection::Duplex,
            max_instances: PIPE_UNLIMITED_INSTANCES,
            sddl: None,
            default_timeout_ms: 0,
            first_instance: false,
        }
    }
}

fn win32(code: u32, message: impl Into<String>) -> Error {
    Error::NamedObject { code, message: message.into() }
}

/// What one [`PipeStream::read_file`] (or a transaction) read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeRead {
    /// Bytes placed in the buffer (`lpNumberOfBytesRead`).
    pub bytes_read: usize,
    /// The message goes on (`ReadFile` returned `FALSE` with `ERROR_MORE_DATA`, 234): the next
    /// reads return the rest.
    pub more_data: bool,
}

impl PipeRead {
    /// The Win32 status of the read: 0, or `ERROR_MORE_DATA` (234).
    pub fn status(&self) -> u32 {
        if self.more_data { ERROR_MORE_DATA } else { 0 }
    }
}

/// What [`PipeStream::peek`] saw (`PeekNamedPipe`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PipePeek {
    /// Bytes copied into the buffer (`lpBytesRead`): of the next message on a message-type
    /// pipe, whatever the read mode.
    pub bytes_read: usize,
    /// Bytes there are to read now (`lpTotalBytesAvail`), without appipc's framing.
    pub total_bytes_avail: usize,
    /// Bytes of the next message beyond those copied (`lpBytesLeftThisMessage`); 0 on a
    /// byte-type pipe.
    pub bytes_left_this_message: usize,
}

/// The read-ahead of a message-type pipe handle: bytes taken from the socket and not yet
/// handed out, and where the current message stands.
#[derive(Debug)]
struct Reader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Bytes of the current message not yet read; `None` at a boundary (a length next).
    left: Option<usize>,
}

/// How much the read-ahead takes per read, and the most `peek` holds.
const READ_AHEAD: usize = 64 * 1024;
const PEEK_MAX: usize = 4 << 20;
/// The length before each message.
const HEADER: usize = 4;

fn ended_inside(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("the pipe ended inside {what}"))
}

impl Reader {
    fn new() -> Reader {
        Reader { buf: Vec::new(), start: 0, end: 0, left: None }
    }

    fn avail(&self) -> usize {
        self.end - self.start
    }

    /// Reads more of the socket into the read-ahead; `Some(0)` at the end of the stream,
    /// `None` (only when not waiting) if nothing is there now.
    fn fill(&mut self, sock: &UnixStream, wait: bool) -> std::io::Result<Option<usize>> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
        if self.buf.len() - self.end < READ_AHEAD / 4 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < READ_AHEAD / 4 {
                self.buf.resize(self.end + READ_AHEAD, 0);
            }
        }
        let dst = &mut self.buf[self.end..];
        let n = if wait {
            loop {
                match (&*sock).read(dst) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        } else {
            match appipc_sys::socket::recv_now(sock, dst, false)? {
                Some(n) => n,
                None => return Ok(None),
            }
        };
        self.end += n;
        Ok(Some(n))
    }

    /// Takes in, without waiting, what the socket holds now; whether there is more to read.
    fn fill_now(&mut self, sock: &UnixStream) -> std::io::Result<bool> {
        Ok(matches!(self.fill(sock, false)?, Some(n) if n > 0))
    }

    /// The length of the next message, waiting for it; `None` at the end of the stream.
    fn header(&mut self, sock: &UnixStream) -> std::io::Result<Option<usize>> {
        while self.avail() < HEADER {
            if self.fill(sock, true)? == Some(0) {
                return if self.avail() == 0 { Ok(None) } else { Err(ended_inside("a length")) };
            }
        }
        let mut len = [0u8; HEADER];
        len.copy_from_slice(&self.buf[self.start..self.start + HEADER]);
        self.start += HEADER;
        Ok(Some(u32::from_le_bytes(len) as usize))
    }

    /// Up to `out.len()` bytes of the `left` still to come of this message: from the
    /// read-ahead, else straight from the socket (waiting). Not 0 unless `out` is empty.
    fn payload(
        &mut self,
        sock: &UnixStream,
        out: &mut [u8],
        left: usize,
    ) -> std::io::Result<usize> {
        let want = out.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        if self.avail() > 0 {
            let k = want.min(self.avail());
            out[..k].copy_from_slice(&self.buf[self.start..self.start + k]);
            self.start += k;
            return Ok(k);
        }
        loop {
            match (&*sock).read(&mut out[..want]) {
                Ok(0) => return Err(ended_inside("a message")),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Message-read mode: (what of the next message fits `out`, whether some is left);
    /// `None` at the end of the stream.
    fn read_message(
        &mut self,
        sock: &UnixStream,
        out: &mut [u8],
    ) -> std::io::Result<Option<PipeRead>> {
        let mut left = match self.left {
            Some(l) => l,
            None => match self.header(sock)? {
                Some(l) => l,
                None => return Ok(None),
            },
        };
        self.left = Some(left);
        let mut n = 0;
        while n < out.len() && left > 0 {
            let k = self.payload(sock, &mut out[n..], left)?;
            n += k;
            left -= k;
            self.left = Some(left);
        }
        self.left = (left > 0).then_some(left);
        Ok(Some(PipeRead { bytes_read: n, more_data: left > 0 }))
    }

    /// Byte-read mode on a message-type pipe: what is there, across messages, waiting only
    /// for the first byte; 0 at the end of the stream.
    fn read_bytes(&mut self, sock: &UnixStream, out: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < out.len() {
            match self.left {
                None => {
                    if n > 0 && self.avail() < HEADER && !self.fill_now(sock)? {
                        break;
                    }
                    if n > 0 && self.avail() < HEADER {
                        continue;
                    }
                    match self.header(sock)? {
                        Some(l) => self.left = Some(l),
                        None => break,
                    }
                }
                Some(0) => self.left = None,
                Some(l) => {
                    if n > 0 && self.avail() == 0 && !self.fill_now(sock)? {
                        break;
                    }
                    let k = self.payload(sock, &mut out[n..], l)?;
                    n += k;
                    self.left = Some(l - k);
                }
            }
        }
        Ok(n)
    }

    /// `PeekNamedPipe` on a message-type pipe: takes in what the socket holds now (up to
    /// [`PEEK_MAX`] held) and looks at it without consuming; also whether the stream ended.
    fn peek(&mut self, sock: &UnixStream, out: &mut [u8]) -> std::io::Result<(PipePeek, bool)> {
        let mut ended = false;
        while self.avail() < PEEK_MAX {
            match self.fill(sock, false)? {
                None => break,
                Some(0) => {
                    ended = true;
                    break;
                }
                Some(_) => {}
            }
        }
        let (mut pos, end) = (self.start, self.end);
        let mut left = self.left;
        let mut seen = PipePeek::default();
        let mut first = true;
        loop {
            let l = match left {
                Some(l) => l,
                None => {
                    if end - pos < HEADER {
                        break;
                    }
                    let mut len = [0u8; HEADER];
                    len.copy_from_slice(&self.buf[pos..pos + HEADER]);
                    pos += HEADER;
                    u32::from_le_bytes(len) as usize
                }
            };
            let here = l.min(end - pos);
            if first {
                let k = here.min(out.len());
                out[..k].copy_from_slice(&self.buf[pos..pos + k]);
                seen.bytes_read = k;
                seen.bytes_left_this_message = l - k;
                first = false;
            }
            seen.total_bytes_avail += here;
            pos += here;
            if here < l {
                break;
            }
            left = None;
        }
        Ok((seen, ended))
    }
}

#[derive(Debug)]
struct Shared {
    message_type: bool,
    read_message: AtomicBool,
    can_read: bool,
    can_write: bool,
    server_pid: u32,
    client_pid: u32,
    reader: Mutex<Reader>,
    /// Held while one message is written, so that two writers' messages do not interleave.
    writer: Mutex<()>,
}

/// One end of a named pipe connection: a pipe handle, as `CreateFile` (client) or
/// `CreateNamedPipe` + `ConnectNamedPipe` (server) give it.
///
/// [`Read`] and [`Write`] work on it as on a file (a [`Write::write`] on a message-type pipe
/// is one message; a [`Read::read`] in message-read mode returns at most one message, the rest
/// of a long one on the next reads, and skips empty messages, whose 0 would read as the end).
/// [`PipeStream::read_file`] says what Windows' `ReadFile` says, `ERROR_MORE_DATA` included.
#[derive(Debug)]
pub struct PipeStream {
    sock: UnixStream,
    shared: Arc<Shared>,
}

/// An io error of the data path as its Win32 code.
fn io_error(e: std::io::Error, writing: bool) -> Error {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::BrokenPipe if writing => {
            win32(ERROR_NO_DATA, "the other end of the pipe has closed: nothing can be written")
        }
        K::BrokenPipe | K::ConnectionReset | K::UnexpectedEof => {
            win32(ERROR_BROKEN_PIPE, format!("the pipe has ended: {e}"))
        }
        _ => {
            Error::Io { what: if writing { "writing a pipe" } else { "reading a pipe" }, source: e }
        }
    }
}

fn to_io(e: Error) -> std::io::Error {
    match e {
        Error::NamedObject { code: ERROR_BROKEN_PIPE, message } => {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, message)
        }
        Error::NamedObject { code: ERROR_NO_DATA, message } => {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, message)
        }
        Error::NamedObject { code: ERROR_ACCESS_DENIED, message } => {
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, message)
        }
        Error::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    }
}

impl PipeStream {
    fn new(
        fd: OwnedFd,
        message_type: bool,
        read_mode: PipeReadMode,
        (can_read, can_write): (bool, bool),
        (server_pid, client_pid): (u32, u32),
    ) -> PipeStream {
        PipeStream {
            sock: UnixStream::from(fd),
            shared: Arc::new(Shared {
                message_type,
                read_message: AtomicBool::new(read_mode == PipeReadMode::Message),
                can_read,
                can_write,
                server_pid,
                client_pid,
                reader: Mutex::new(Reader::new()),
                writer: Mutex::new(()),
            }),
        }
    }

    /// Whether the pipe is message-type (`PIPE_TYPE_MESSAGE`).
    pub fn is_message_type(&self) -> bool {
        self.shared.message_type
    }

    /// The handle's read mode.
    pub fn read_mode(&self) -> PipeReadMode {
        if self.shared.read_message.load(Ordering::Relaxed) {
            PipeReadMode::Message
        } else {
            PipeReadMode::Byte
        }
    }

    /// `SetNamedPipeHandleState` (the read mode): `PIPE_READMODE_MESSAGE` on a byte-type pipe
    /// is `ERROR_INVALID_PARAMETER` (87). Shared by this handle's clones.
    pub fn set_read_mode(&self, mode: PipeReadMode) -> Result<()> {
        if mode == PipeReadMode::Message && !self.shared.message_type {
            return Err(win32(
                ERROR_INVALID_PARAMETER,
                "PIPE_READMODE_MESSAGE on a byte-type pipe (SetNamedPipeHandleState)",
            ));
        }
        self.shared.read_message.store(mode == PipeReadMode::Message, Ordering::Relaxed);
        Ok(())
    }

    /// `GetNamedPipeServerProcessId`: the server's pid as this process's pid namespace numbers
    /// it (0 if the server is in a pid namespace this process cannot see into).
    pub fn server_process_id(&self) -> u32 {
        self.shared.server_pid
    }

    /// `GetNamedPipeClientProcessId`: the client's pid as this process's pid namespace numbers
    /// it (0 if the client is in a pid namespace this process cannot see into).
    pub fn client_process_id(&self) -> u32 {
        self.shared.client_pid
    }

    /// Another handle of the same connection (its read-ahead and read mode shared).
    pub fn try_clone(&self) -> Result<PipeStream> {
        let sock = self
            .sock
            .try_clone()
            .map_err(|source| Error::Io { what: "duplicating a pipe handle", source })?;
        Ok(PipeStream { sock, shared: self.shared.clone() })
    }

    fn may_read(&self) -> Result<()> {
        if self.shared.can_read {
            Ok(())
        } else {
            Err(win32(ERROR_ACCESS_DENIED, "this pipe handle has no read access"))
        }
    }

    /// `ReadFile`: in message-read mode one message, or the first `buf.len()` bytes of it with
    /// [`PipeRead::more_data`] set (`ERROR_MORE_DATA`, 234; the rest comes with the next
    /// reads); in byte-read mode what is there (waiting for the first byte). A 0-byte message
    /// reads as 0 bytes, complete. The end of the pipe (the other end closed, everything read)
    /// is `ERROR_BROKEN_PIPE` (109).
    pub fn read_file(&self, buf: &mut [u8]) -> Result<PipeRead> {
        self.may_read()?;
        let broken = || win32(ERROR_BROKEN_PIPE, "the other end of the pipe has closed");
        if !self.shared.message_type {
            let n = loop {
                match (&self.sock).read(buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_error(e, false)),
                }
            };
            if n == 0 && !buf.is_empty() {
                return Err(broken());
            }
            return Ok(PipeRead { bytes_read: n, more_data: false });
        }
        let mut r = self.shared.reader.lock().expect("pipe reader poisoned");
        if self.read_mode() == PipeReadMode::Message {
            r.read_message(&self.sock, buf).map_err(|e| io_error(e, false))?.ok_or_else(broken)
        } else {
            match r.read_bytes(&self.sock, buf).map_err(|e| io_error(e, false))? {
                0 if !buf.is_empty() => Err(broken()),
                n => Ok(PipeRead { bytes_read: n, more_data: false }),
            }
        }
    }

    /// `WriteFile`: all of `data`, as one message on a message-type pipe (of any size, up to
    /// 4 GiB − 1; a 0-byte write is a 0-byte message). A pipe whose other end closed is
    /// `ERROR_NO_DATA` (232).
    pub fn write_file(&self, data: &[u8]) -> Result<usize> {
        if !self.shared.can_write {
            return Err(win32(ERROR_ACCESS_DENIED, "this pipe handle has no write access"));
        }
        if !self.shared.message_type {
            (&self.sock).write_all(data).map_err(|e| io_error(e, true))?;
            return Ok(data.len());
        }
        let len = u32::try_from(data.len()).map_err(|_| {
            win32(ERROR_INVALID_PARAMETER, "a pipe message is at most 4 GiB - 1 bytes")
        })?;
        let header = len.to_le_bytes();
        let _one_at_a_time = self.shared.writer.lock().expect("pipe writer poisoned");
        let (mut head, mut body) = (&header[..], data);
        while !head.is_empty() || !body.is_empty() {
            let n = match (&self.sock).write_vectored(&[IoSlice::new(head), IoSlice::new(body)]) {
                Ok(0) => {
                    return Err(io_error(std::io::ErrorKind::WriteZero.into(), true));
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e, true)),
            };
            let h = n.min(head.len());
            head = &head[h..];
            body = &body[n - h..];
        }
        Ok(data.len())
    }

    /// `PeekNamedPipe`: copies what is there into `buf` without taking it, and never waits. On
    /// a message-type pipe it reads in message mode whatever the handle's read mode (as
    /// Windows does): the next message's first bytes, and how many of it are left beyond them.
    /// An ended pipe with nothing left to read is `ERROR_BROKEN_PIPE` (109).
    pub fn peek(&self, buf: &mut [u8]) -> Result<PipePeek> {
        self.may_read()?;
        let broken = || win32(ERROR_BROKEN_PIPE, "the other end of the pipe has closed");
        if !self.shared.message_type {
            let n = if buf.is_empty() {
                0
            } else {
                match appipc_sys::socket::recv_now(&self.sock, buf, true)
                    .map_err(|e| io_error(e, false))?
                {
                    Some(0) => return Err(broken()),
                    Some(n) => n,
                    None => 0,
                }
            };
            let total = appipc_sys::socket::queued_bytes(&self.sock)
                .map_err(|source| Error::Io { what: "peeking at a pipe", source })?;
            if total == 0 && appipc_sys::socket::peer_hung_up(&self.sock) {
                return Err(broken());
            }
            return Ok(PipePeek {
                bytes_read: n,
                total_bytes_avail: usize::try_from(total).unwrap_or(usize::MAX),
                bytes_left_this_message: 0,
            });
        }
        let mut r = self.shared.reader.lock().expect("pipe reader poisoned");
        let (seen, ended) = r.peek(&self.sock, buf).map_err(|e| io_error(e, false))?;
        if ended && seen.total_bytes_avail == 0 && seen.bytes_left_this_message == 0 {
            return Err(broken());
        }
        Ok(seen)
    }

    /// `TransactNamedPipe`: writes `input` as one message and reads the answering message into
    /// `out` (`more_data` if it is longer: the rest comes with the next reads). The pipe must
    /// be message-type and this handle in message-read mode, else `ERROR_BAD_PIPE` (230; the
    /// documentation says only that it fails).
    pub fn transact(&self, input: &[u8], out: &mut [u8]) -> Result<PipeRead> {
        if !self.shared.message_type || self.read_mode() != PipeReadMode::Message {
            return Err(win32(
                ERROR_BAD_PIPE,
                "TransactNamedPipe needs a message-type pipe in message-read mode",
            ));
        }
        self.write_file(input)?;
        self.read_file(out)
    }
}

impl Read for &PipeStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.read_file(buf) {
                // An empty message would read as the end: skip it.
                Ok(PipeRead { bytes_read: 0, more_data: false }) => {}
                Ok(r) => return Ok(r.bytes_read),
                Err(Error::NamedObject { code: ERROR_BROKEN_PIPE, .. }) => return Ok(0),
                Err(e) => return Err(to_io(e)),
            }
        }
    }
}

impl Read for PipeStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for &PipeStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_file(buf).map_err(to_io)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Write for PipeStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AsFd for PipeStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsRawFd for PipeStream {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// The raw socket. On a message-type pipe its bytes carry appipc's framing (a 4-byte
/// little-endian length before each message), and what this handle read ahead is lost.
impl From<PipeStream> for UnixStream {
    fn from(p: PipeStream) -> UnixStream {
        p.sock
    }
}

/// One instance of a named pipe, served by this process.
#[derive(Debug)]
pub struct NamedPipeServer {
    session: Session,
    instance: u64,
    clients: mpsc::UnboundedReceiver<(u32, String, OwnedFd)>,
    message_type: bool,
    read_mode: PipeReadMode,
    direction: PipeDirection,
    /// The current client's connection (a duplicate of the server's end), which
    /// `DisconnectNamedPipe` cuts.
    current: Mutex<Option<OwnedFd>>,
}

/// A connected client, as the server sees it. As on Windows, where the server's handle is the
/// connection, the connection lasts until [`NamedPipeServer::disconnect`] or the
/// [`NamedPipeServer`] is dropped (or the client closes), not until this is dropped.
#[derive(Debug)]
pub struct ServerConnection {
    /// The data (read and write as the direction allows).
    pub stream: PipeStream,
    /// `GetNamedPipeClientProcessId`, as this process's pid namespace numbers the client (0 if
    /// it cannot see it).
    pub client_pid: u32,
    /// The client's package family name ("" for an unpackaged client).
    pub client_package_family_name: String,
}

impl NamedPipeServer {
    /// `CreateNamedPipe`: one more instance of `name` (`\\.\pipe\LOCAL\…`).
    /// `PIPE_READMODE_MESSAGE` on a byte-type pipe is `ERROR_INVALID_PARAMETER` (87), as
    /// `CreateNamedPipe` has it ("This mode cannot be used with PIPE_READMODE_MESSAGE").
    pub async fn create(
        session: &Session,
        name: &str,
        options: &PipeOptions,
    ) -> Result<NamedPipeServer> {
        let read_mode = match (options.read_mode, options.message_mode) {
            (Some(PipeReadMode::Message), false) => {
                return Err(win32(
                    ERROR_INVALID_PARAMETER,
                    "PIPE_TYPE_BYTE cannot be read with PIPE_READMODE_MESSAGE (CreateNamedPipe)",
                ));
            }
            (Some(mode), _) => mode,
            (None, true) => PipeReadMode::Message,
            (None, false) => PipeReadMode::Byte,
        };
        let request = wire::CreateInstance {
            name: name.to_owned(),
            message_mode: options.message_mode,
            direction: options.direction,
            max_instances: options.max_instances,
            sddl: options.sddl.clone(),
            default_timeout_ms: options.default_timeout_ms,
            first_instance: options.first_instance,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let instance = session.call(request).await.map_err(Error::into_win32)?;
        // Clients that arrived before this route are waiting in the session for it.
        session.route_pipe(instance, tx);
        Ok(NamedPipeServer {
            session: session.clone(),
            instance,
            clients: rx,
            message_type: options.message_mode,
            read_mode,
            direction: options.direction,
            current: Mutex::new(None),
        })
    }

    /// `ConnectNamedPipe`: waits for the next client of this instance.
    pub async fn connect(&mut self) -> Result<ServerConnection> {
        let (client_pid, client_package_family_name, fd) =
            self.clients.recv().await.ok_or(Error::Disconnected)?;
        let kept = fd
            .try_clone()
            .map_err(|source| Error::Io { what: "keeping the pipe connection", source })?;
        *self.current.lock().expect("pipe server poisoned") = Some(kept);
        let rights = match self.direction {
            PipeDirection::Duplex => (true, true),
            PipeDirection::Inbound => (true, false),
            PipeDirection::Outbound => (false, true),
        };
        Ok(ServerConnection {
            stream: PipeStream::new(
                fd,
                self.message_type,
                self.read_mode,
                rights,
                (std::process::id(), client_pid),
            ),
            client_pid,
            client_package_family_name,
        })
    }

    /// `DisconnectNamedPipe`: cuts the current client off — both ends of the connection are
    /// shut down, so the client's next reads (once it has read what was already sent) fail
    /// with `ERROR_BROKEN_PIPE` and its writes with `ERROR_NO_DATA`, as do this side's — and
    /// the instance takes the next client ([`NamedPipeServer::connect`] again).
    pub async fn disconnect(&self) -> Result<()> {
        if let Some(fd) = self.current.lock().expect("pipe server poisoned").take() {
            // Already shut down by the other end: nothing more to cut.
            let _ = appipc_sys::socket::shutdown(&fd);
        }
        self.session
            .call(wire::Disconnect { instance: self.instance })
            .await
            .map_err(Error::into_win32)
    }
}

/// `CreateFile` on a pipe name: the client's end, in byte-read mode (as on Windows; see
/// [`PipeStream::set_read_mode`]). It reads only with read access granted and writes only with
/// write access granted; the access asked must fit the pipe's direction (write an inbound
/// pipe, read an outbound one; else `ERROR_ACCESS_DENIED`, 5), and 0 is refused (5).
pub async fn open(session: &Session, name: &str, desired_access: u32) -> Result<PipeStream> {
    let (opened, mut fds) = session
        .call_with_fds(wire::Open { name: name.to_owned(), desired_access }, &[])
        .await
        .map_err(Error::into_win32)?;
    let fd = fds.pop().ok_or_else(|| Error::Protocol("pipe opened without its fd".into()))?;
    Ok(PipeStream::new(
        fd,
        opened.message_mode,
        PipeReadMode::Byte,
        (opened.can_read, opened.can_write),
        (opened.server_pid, std::process::id()),
    ))
}

/// A `WaitNamedPipe` or `CallNamedPipe` time-out: milliseconds, or
/// [`NMPWAIT_USE_DEFAULT_WAIT`] (0, the server's `nDefaultTimeOut`), [`NMPWAIT_WAIT_FOREVER`].
/// A [`Duration`] converts to its milliseconds (at least 1, so that it never means the
/// default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeTimeout(pub u32);

impl From<u32> for PipeTimeout {
    fn from(ms: u32) -> PipeTimeout {
        PipeTimeout(ms)
    }
}

impl From<Duration> for PipeTimeout {
    fn from(d: Duration) -> PipeTimeout {
        let ms = u32::try_from(d.as_millis()).unwrap_or(NMPWAIT_WAIT_FOREVER - 1);
        PipeTimeout(ms.clamp(1, NMPWAIT_WAIT_FOREVER - 1))
    }
}

/// `WaitNamedPipe`: waits until an instance of `name` is free: at most the given milliseconds,
/// the server's default time-out ([`NMPWAIT_USE_DEFAULT_WAIT`], 0; 50 ms unless the server set
/// one) or without end ([`NMPWAIT_WAIT_FOREVER`]). Time-out: `ERROR_SEM_TIMEOUT` (121); no such
/// pipe: `ERROR_FILE_NOT_FOUND` (2) at once.
pub async fn wait_named_pipe(
    session: &Session,
    name: &str,
    timeout: impl Into<PipeTimeout>,
) -> Result<()> {
    let timeout_ms = timeout.into().0;
    let wait = match timeout_ms {
        NMPWAIT_USE_DEFAULT_WAIT | NMPWAIT_WAIT_FOREVER => Duration::MAX,
        ms => Duration::from_millis(u64::from(ms)) + crate::session::default_timeout(),
    };
    session
        .call_within(wire::Wait { name: name.to_owned(), timeout_ms }, &[], wait)
        .await
        .map(|_| ())
        .map_err(Error::into_win32)
}

/// `CallNamedPipe`: opens a message-type pipe (if every instance is busy, waits as `timeout`
/// says — [`NMPWAIT_NOWAIT`] not at all — and tries once more), sets message-read mode, writes
/// `input` as one message, reads the answer (at most `out_size` bytes) and closes. A longer
/// answer comes back cut, with `more_data` set (`ERROR_MORE_DATA`, 234; the rest is lost with
/// the handle, as on Windows). A byte-type pipe is `ERROR_INVALID_PARAMETER` (87).
pub async fn call_named_pipe(
    session: &Session,
    name: &str,
    input: &[u8],
    out_size: usize,
    timeout: impl Into<PipeTimeout>,
) -> Result<(Vec<u8>, PipeRead)> {
    let timeout = timeout.into();
    let access = GENERIC_READ | GENERIC_WRITE;
    let stream = match open(session, name, access).await {
        Err(Error::NamedObject { code: ERROR_PIPE_BUSY, .. }) if timeout.0 != NMPWAIT_NOWAIT => {
            wait_named_pipe(session, name, timeout).await?;
            open(session, name, access).await?
        }
        other => other?,
    };
    stream.set_read_mode(PipeReadMode::Message)?;
    let input = input.to_vec();
    tokio::task::spawn_blocking(move || {
        let mut out = vec![0u8; out_size];
        let r = stream.transact(&input, &mut out)?;
        out.truncate(r.bytes_read);
        Ok((out, r))
    })
    .await
    .map_err(|e| Error::Protocol(format!("CallNamedPipe's transaction did not finish: {e}")))?
}

/// `CreatePipe`: an anonymous pipe (read end, write end), for a parent and its child.
pub fn anonymous_pipe() -> Result<(std::fs::File, std::fs::File)> {
    let (r, w) =
        appipc_sys::fs::pipe().map_err(|source| Error::Io { what: "creating a pipe", source })?;
    Ok((std::fs::File::from(r), std::fs::File::from(w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two ends of a message-type pipe, without a broker; `raw` writes the wire bytes itself.
    fn pair(read_mode: PipeReadMode) -> (PipeStream, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (PipeStream::new(a.into(), true, read_mode, (true, true), (1, 2)), b)
    }

    fn frame(msg: &[u8]) -> Vec<u8> {
        let mut f = (msg.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(msg);
        f
    }

    #[test]
    fn a_message_split_anywhere_on_the_stream_reads_whole_and_in_parts() {
        let (p, mut raw) = pair(PipeReadMode::Message);
        let wire = [frame(b"hello"), frame(b""), frame(b"world!")].concat();
        // The length itself arrives in two pieces, then the rest byte by byte.
        raw.write_all(&wire[..2]).unwrap();
        let writer = std::thread::spawn(move || {
            for b in &wire[2..] {
                raw.write_all(std::slice::from_ref(b)).unwrap();
            }
            raw
        });
        let mut buf = [0u8; 3];
        assert_eq!(p.read_file(&mut buf).unwrap(), PipeRead { bytes_read: 3, more_data: true });
        assert_eq!(&buf, b"hel");
        assert_eq!(p.read_file(&mut buf).unwrap(), PipeRead { bytes_read: 2, more_data: false });
        assert_eq!(&buf[..2], b"lo");
        assert_eq!(p.read_file(&mut buf).unwrap(), PipeRead { bytes_read: 0, more_data: false });
        let mut big = [0u8; 16];
        assert_eq!(p.read_file(&mut big).unwrap(), PipeRead { bytes_read: 6, more_data: false });
        drop(writer.join().unwrap());
        let e = p.read_file(&mut big).unwrap_err();
        assert!(matches!(e, Error::NamedObject { code: ERROR_BROKEN_PIPE, .. }), "{e}");
    }

    #[test]
    fn byte_read_mode_crosses_boundaries_and_a_torn_message_is_a_broken_pipe() {
        let (p, mut raw) = pair(PipeReadMode::Byte);
        raw.write_all(&[frame(b"ab"), frame(b""), frame(b"cd")].concat()).unwrap();
        let mut buf = [0u8; 16];
        let r = p.read_file(&mut buf).unwrap();
        assert_eq!(&buf[..r.bytes_read], b"abcd");
        // The writer dies inside a message: what came is read, then the pipe is broken.
        raw.write_all(&frame(b"torn message")[..8]).unwrap();
        drop(raw);
        let r = p.read_file(&mut buf).unwrap();
        assert_eq!(&buf[..r.bytes_read], b"torn");
        let e = p.read_file(&mut buf).unwrap_err();
        assert!(matches!(e, Error::NamedObject { code: ERROR_BROKEN_PIPE, .. }), "{e}");
    }

    #[test]
    fn writes_are_framed_and_peek_takes_nothing() {
        let (p, mut raw) = pair(PipeReadMode::Message);
        p.write_file(b"xyz").unwrap();
        p.write_file(b"").unwrap();
        let mut got = [0u8; 11];
        raw.read_exact(&mut got).unwrap();
        assert_eq!(&got[..], &[frame(b"xyz"), frame(b"")].concat()[..]);
        raw.write_all(&[frame(b"12345"), frame(b"678")].concat()).unwrap();
        let mut two = [0u8; 2];
        let seen = p.peek(&mut two).unwrap();
        assert_eq!(
            seen,
            PipePeek { bytes_read: 2, total_bytes_avail: 8, bytes_left_this_message: 3 }
        );
        let mut buf = [0u8; 16];
        assert_eq!(p.read_file(&mut buf).unwrap().bytes_read, 5);
        // Part of a message read: peek sees what is left of it.
        assert_eq!(p.read_file(&mut two).unwrap(), PipeRead { bytes_read: 2, more_data: true });
        let seen = p.peek(&mut buf).unwrap();
        assert_eq!(
            seen,
            PipePeek { bytes_read: 1, total_bytes_avail: 1, bytes_left_this_message: 0 }
        );
        assert_eq!(&buf[..1], b"8");
    }
}
