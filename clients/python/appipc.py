"""A client of the appipc broker in Python, standard library only.

Written from docs/wire.md alone: the CBOR subset the protocol uses, ValueSets, frames over a
SOCK_SEQPACKET session with the fds of SCM_RIGHTS, and the requests a script most often wants:

    with appipc.Session.connect() as s:
        print(s.whoami()["trust"])                          # TrustLevel.UNPACKAGED
        for p in s.list_packages():
            print(p["family_name"], p["version"])
        conn = s.open_app_service("Contoso.Services_cvnpggrrsm18p", "com.contoso.echo")
        status, reply = conn.send_message({"Command": appipc.string("Ping")})
        token = s.add_file_token(open("notes.txt", "rb"))
        info, f = s.redeem_file_token(token)                 # f: a new file object
        handle, fd = s.open_named_object(appipc.ObjectType.FILE_MAPPING, r"Session\\x",
                                         appipc.FILE_MAP_READ)

Structs come back as dicts keyed by the field names of docs/wire.md (their array order is the
order of the *Types* tables); enumerations as their numbers.
"""

import array
import enum
import os
import socket
import struct

__all__ = [
    "Session", "BrokerError", "AppServiceConnection", "TrustLevel", "ObjectType", "HandleFd",
    "socket_path", "encode", "decode", "encode_value_set", "decode_value_set",
    "string", "boolean", "int32", "int64", "uint64", "double", "single", "uint8_array",
    "value_set", "FILE_MAP_READ", "FILE_MAP_WRITE", "SYNCHRONIZE", "MAXIMUM_ALLOWED",
]

MAX_FRAME_LEN = 128 * 1024
MAX_FDS = 16

# Access masks (docs/wire.md, "What some requests carry").
GENERIC_READ = 0x80000000
GENERIC_ALL = 0x10000000
SYNCHRONIZE = 0x00100000
FILE_MAP_WRITE = 0x0002
FILE_MAP_READ = 0x0004
MAXIMUM_ALLOWED = 0x02000000


class TrustLevel(enum.IntEnum):
    UNPACKAGED = 0
    APP_CONTAINER = 1
    FULL_TRUST = 2


class ObjectType(enum.IntEnum):
    EVENT = 0
    SEMAPHORE = 1
    FILE_MAPPING = 2


class HandleFd(enum.IntEnum):
    NONE = 0
    OBJECT = 1
    READ_ONLY = 2
    READINESS = 3


# ---------------------------------------------------------------- CBOR (RFC 8949), the subset

class Float32(float):
    """A float to be written as float32 (`fa`); plain floats are written as float64."""


def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for ai, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
        if n < 1 << (8 * struct.calcsize(fmt)):
            return bytes([major << 5 | ai]) + struct.pack(fmt, n)
    raise ValueError("integer needs more than 64 bits")


def encode(v):
    """Python → CBOR: None, bool, int, float (float64; Float32 as float32), str, bytes,
    list/tuple (array), dict (map, keys in the order given)."""
    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, Float32):
        return b"\xfa" + struct.pack(">f", v)
    if isinstance(v, float):
        return b"\xfb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        return _head(3, len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        return _head(2, len(v)) + bytes(v)
    if isinstance(v, (list, tuple)):
        return _head(4, len(v)) + b"".join(encode(x) for x in v)
    if isinstance(v, dict):
        return _head(5, len(v)) + b"".join(encode(k) + encode(x) for k, x in v.items())
    raise TypeError(f"cannot encode {type(v).__name__}")


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated CBOR")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def argument(self, ai):
        if ai < 24:
            return ai
        if ai in (24, 25, 26, 27):
            size = 1 << (ai - 24)
            return int.from_bytes(self.take(size), "big")
        if ai == 31:
            return None  # indefinite
        raise ValueError(f"reserved additional information {ai}")

    def item(self):
        ib = self.take(1)[0]
        major, ai = ib >> 5, ib & 31
        if major == 7:
            if ai == 20:
                return False
            if ai == 21:
                return True
            if ai in (22, 23):
                return None
            if ai == 26:
                return Float32(struct.unpack(">f", self.take(4))[0])
            if ai == 27:
                return struct.unpack(">d", self.take(8))[0]
            if ai == 25:
                return struct.unpack(">e", self.take(2))[0]
            if ai == 31:
                return _BREAK
            raise ValueError(f"simple value {ai}")
        n = self.argument(ai)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major in (2, 3):
            if n is None:  # indefinite string: definite chunks until the break
                chunks = []
                while (c := self.item()) is not _BREAK:
                    chunks.append(c)
                return (b"" if major == 2 else "").join(chunks)
            raw = self.take(n)
            return bytes(raw) if major == 2 else bytes(raw).decode("utf-8")
        if major == 4:
            out = []
            while n is None or len(out) < n:
                x = self.item()
                if x is _BREAK:
                    break
                out.append(x)
            return out
        if major == 5:
            out, count = {}, 0
            while n is None or count < n:
                k = self.item()
                if k is _BREAK:
                    break
                if isinstance(k, list):
                    k = tuple(k)
                if k in out:
                    raise ValueError(f"duplicate key {k!r}")
                out[k] = self.item()
                count += 1
            return out
        raise ValueError("tags are not used by appipc")


_BREAK = object()


def decode(data):
    """CBOR → Python (arrays as lists, maps as dicts, float32 as Float32); refuses trailing
    bytes."""
    r = _Reader(memoryview(data))
    v = r.item()
    if r.pos != len(data):
        raise ValueError(f"{len(data) - r.pos} bytes after the item")
    return v


# ---------------------------------------------------------------- ValueSet (docs/wire.md)

VALUE_SET = 0x8000


def string(s): return (12, s)
def boolean(b): return (11, bool(b))
def int32(i): return (4, int(i))
def int64(i): return (6, int(i))
def uint64(i): return (7, int(i))
def double(x): return (9, float(x))
def single(x): return (8, Float32(x))
def uint8_array(b): return (1025, bytes(b))
def value_set(d): return (VALUE_SET, d)


def _payload(code, v):
    if code == VALUE_SET:
        return _value_set_map(v)
    if code == 0:
        return None
    if code in (8,):
        return Float32(v)
    if code in (17, 18, 19):
        return [Float32(x) for x in v]
    if code == 16:
        return bytes(v)
    if code == 1025:
        return bytes(v)
    if 1026 <= code <= 1043:
        return [_payload(code - 1024, x) for x in v]
    return v


def _plain(v):
    """A plain Python value as (type code, value): what `appipc app-service call` does with
    plain JSON."""
    if isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], int):
        return v
    if isinstance(v, bool):
        return boolean(v)
    if isinstance(v, int):
        return int32(v) if -2**31 <= v < 2**31 else (int64(v) if v < 2**63 else uint64(v))
    if isinstance(v, float):
        return double(v)
    if isinstance(v, str):
        return string(v)
    if isinstance(v, (bytes, bytearray)):
        return uint8_array(v)
    if isinstance(v, dict):
        return value_set(v)
    if v is None:
        return (0, None)
    raise TypeError(f"no ValueSet type for {type(v).__name__}; give (code, value)")


def _value_set_map(entries):
    out = {}
    for key in sorted(entries, key=lambda k: k.encode("utf-8")):
        code, v = _plain(entries[key])
        out[key] = [code, _payload(code, v)]
    return out


def encode_value_set(entries):
    """{key: value or (type code, value)} → the CBOR of a ValueSet (keys sorted as the appipc
    encoder writes them)."""
    return encode(_value_set_map(entries))


def _from_map(m):
    if not isinstance(m, dict):
        raise ValueError("a ValueSet is a map")
    out = {}
    for key, pair in m.items():
        if not isinstance(key, str) or not isinstance(pair, list) or len(pair) != 2:
            raise ValueError(f"bad ValueSet entry {key!r}")
        code, payload = pair
        out[key] = (code, _from_map(payload) if code == VALUE_SET else payload)
    return out


def decode_value_set(data):
    """The CBOR of a ValueSet → {key: (type code, value)} (nested sets as dicts)."""
    return _from_map(decode(data))


# ---------------------------------------------------------------- the types (docs/wire.md)

# Field names in array order, from the Types tables.
FIELDS = {
    "Pong": ["protocol", "broker_pid", "version"],
    "CallerIdentity": ["pid", "uid", "package_full_name", "package_family_name", "app_id",
                       "trust", "capabilities", "package_sid", "capability_sids", "session_id"],
    "PackageInfo": ["name", "version", "publisher", "publisher_id", "family_name", "full_name",
                    "capabilities", "applications", "install_location", "data_location",
                    "display_name", "package_sid", "installed_at", "granted_capabilities",
                    "signer", "log_location"],
    "AppInfo": ["id", "executable", "trust"],
    "Signer": ["key_id", "publisher"],
    "ProcessInfo": ["pid", "app_user_model_id", "package_family_name", "trust", "started_at",
                    "confinement", "confined"],
    "Opened": ["connection_id", "max_message_size"],
    "RedeemedFile": ["path", "name", "writable"],
    "FileTokenInfo": ["token", "source_package_family_name", "path", "writable", "created_at",
                      "expires_at"],
    "NamedObjectHandle": ["handle", "already_exists", "granted_access", "size", "manual_reset",
                          "fd"],
    "ErrorReply": ["kind", "code", "message"],
}


def _struct(name, items):
    fields = FIELDS[name]
    # Trailing absent Option fields are left out by the encoder; fields a newer broker added
    # after the ones this client knows are kept under "_more".
    out = dict(zip(fields, list(items) + [None] * (len(fields) - len(items))))
    if len(items) > len(fields):
        out["_more"] = list(items[len(fields):])
    return out


class BrokerError(Exception):
    """A request the broker refused: `ErrorReply` (`kind`: ErrorKind number; `code`:
    `[0]`, `[1, win32]`, `[2, hresult]` or `[3, status]`)."""

    def __init__(self, reply):
        self.kind, self.code, self.message = reply["kind"], reply["code"], reply["message"]
        super().__init__(f"{self.message} (kind {self.kind}, code {self.code})")


# ---------------------------------------------------------------- the session

def socket_path():
    """$APPIPC_RUNTIME_DIR/broker.sock, else $XDG_RUNTIME_DIR/appipc/broker.sock, else
    /tmp/appipc-<uid>/broker.sock."""
    d = os.environ.get("APPIPC_RUNTIME_DIR")
    if not d:
        x = os.environ.get("XDG_RUNTIME_DIR")
        d = os.path.join(x, "appipc") if x else f"/tmp/appipc-{os.getuid()}"
    return os.path.join(d, "broker.sock")


def _send(sock, data, fds=()):
    anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
    sock.sendmsg([data], anc)


def _recv(sock):
    data, anc, flags, _ = sock.recvmsg(MAX_FRAME_LEN, socket.CMSG_SPACE(MAX_FDS * 4))
    fds = []
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(payload[:len(payload) - len(payload) % a.itemsize])
            fds.extend(a)
    if not data and not fds:
        raise ConnectionError("the broker closed the session")
    return data, fds


class Session:
    """One broker session: requests one at a time, blocking."""

    def __init__(self, sock):
        self.sock, self.next_id, self.events = sock, 1, []

    @classmethod
    def connect(cls, path=None):
        """Connects as an unpackaged process to the broker's public socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(path or socket_path())
        return cls(s)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, mechanism, call, fields, fds=()):
        """Sends `[id, [mechanism, call, fields]]` with `fds`; returns (output, fds) of the
        reply with that id (events received meanwhile are kept in `self.events`), or raises
        BrokerError."""
        rid, self.next_id = self.next_id, self.next_id + 1
        _send(self.sock, encode([rid, [mechanism, call, list(fields)]]), fds)
        while True:
            data, got = _recv(self.sock)
            frame = decode(data)
            frame += [None] * (4 - len(frame))
            fid, _, reply, event = frame
            if event is not None:
                self.events.append((event, got))
                continue
            if fid != rid or reply is None:
                for fd in got:
                    os.close(fd)
                continue
            if reply[0] == 0:
                return reply[1], got
            for fd in got:
                os.close(fd)
            raise BrokerError(_struct("ErrorReply", reply[1]))

    # broker (mechanism 0)
    def ping(self):
        return _struct("Pong", self.call(0, 0, [])[0])

    def whoami(self):
        me = _struct("CallerIdentity", self.call(0, 1, [])[0])
        me["trust"] = TrustLevel(me["trust"])
        return me

    # packages (1)
    def list_packages(self):
        out = []
        for raw in self.call(1, 1, [])[0]:
            p = _struct("PackageInfo", raw)
            p["applications"] = [_struct("AppInfo", a) for a in p["applications"]]
            p["signer"] = _struct("Signer", p["signer"]) if p["signer"] else None
            out.append(p)
        return out

    # launch (2)
    def list_processes(self):
        return [_struct("ProcessInfo", p) for p in self.call(2, 1, [])[0]]

    # app_service (3)
    def open_app_service(self, package_family_name, app_service_name):
        """`AppServiceConnection.OpenAsync`: the connection, or BrokerError whose code is
        `[3, AppServiceConnectionStatus]`."""
        out, fds = self.call(3, 0, [package_family_name, app_service_name])
        opened = _struct("Opened", out)
        return AppServiceConnection(socket.socket(fileno=fds[0]), opened)

    # storage (5)
    def add_file_token(self, f):
        """SharedStorageAccessManager.AddFile: `f` an open file (or fd); returns the token."""
        fd = f if isinstance(f, int) else f.fileno()
        return self.call(5, 3, [], [fd])[0]

    def redeem_file_token(self, token):
        """RedeemTokenForFileAsync: (RedeemedFile, a new file object opened for what it
        allows)."""
        out, fds = self.call(5, 4, [token])
        info = _struct("RedeemedFile", out)
        return info, os.fdopen(fds[0], "r+b" if info["writable"] else "rb")

    def list_file_tokens(self):
        return [_struct("FileTokenInfo", t) for t in self.call(5, 6, [])[0]]

    # named_objects (6)
    def create_file_mapping(self, name, size, writable=True, sddl=None):
        """CreateFileMapping backed by memory: (NamedObjectHandle, fd or None)."""
        fields = [[2, [size, writable]], name] + ([sddl] if sddl is not None else [])
        return self._handle(self.call(6, 0, fields))

    def create_event(self, name, manual_reset=False, initial_state=False, sddl=None):
        fields = [[0, [manual_reset, initial_state]], name] + ([sddl] if sddl else [])
        return self._handle(self.call(6, 0, fields))

    def open_named_object(self, object_type, name, desired_access):
        """Open…: (NamedObjectHandle, the fd its `fd` field describes, or None)."""
        return self._handle(self.call(6, 1, [int(object_type), name, desired_access]))

    def close_handle(self, handle):
        self.call(6, 2, [handle])

    @staticmethod
    def _handle(reply):
        out, fds = reply
        h = _struct("NamedObjectHandle", out)
        h["fd"] = HandleFd(h["fd"])
        return h, (fds[0] if fds else None)

    # stopping
    def shutdown(self):
        self.call(0, 3, [])


class AppServiceConnection:
    """The client's end of an app-service connection: ChannelFrames, peer to peer."""

    REQUEST, RESPONSE, CLOSE = 0, 1, 2

    def __init__(self, sock, opened):
        self.sock, self.opened, self.next_id = sock, opened, 1

    def send_message(self, message):
        """SendMessageAsync: returns (AppServiceResponseStatus number, {key: (code, value)})."""
        rid, self.next_id = self.next_id, self.next_id + 1
        frame = [rid, self.REQUEST, 0, _value_set_map(message)]
        _send(self.sock, encode(frame))
        while True:
            data, fds = _recv(self.sock)
            f = decode(data)
            f += [None] * (5 - len(f))
            fid, kind, status, msg, memfd_len = f
            if kind == self.RESPONSE and fid == rid:
                if memfd_len is not None:
                    with os.fdopen(fds[0], "rb") as m:
                        msg = decode(m.read(memfd_len))
                return status, _from_map(msg if msg is not None else {})
            for fd in fds:
                os.close(fd)
            if kind == self.CLOSE:
                raise ConnectionError(f"the provider closed the connection (status {status})")
            # A request from the provider: this simple client answers Failure (1).
            if kind == self.REQUEST:
                _send(self.sock, encode([fid, self.RESPONSE, 1, {}]))

    def close(self):
        """Close(): a close frame, status Completed (0)."""
        try:
            _send(self.sock, encode([0, self.CLOSE, 0]))
        finally:
            self.sock.close()
