"""The xenstore wire protocol, sans-IO: shared by the client and the daemon.

Every message, in both directions, is a 16-byte header ``(type, req_id, tx_id, len)``
of little-endian u32s followed by ``len`` payload bytes, ``len <= PAYLOAD_MAX``.
Payload arguments are NUL-terminated strings, except the value of a WRITE, which is
raw bytes running to the end of the payload, and the value of a READ reply.

Nothing here does I/O. :class:`Decoder` only buffers what it is given and hands back
whole :class:`Packet` objects; :func:`encode` turns one back into bytes. Invariants:

* a :class:`Decoder` never holds more than one header plus ``PAYLOAD_MAX`` bytes of an
  unfinished packet beyond what the caller fed it, and refuses (raises
  :class:`ProtocolError`) a header announcing more than ``PAYLOAD_MAX``;
* encoding then decoding any packet gives the same packet back, whatever the chunking.
"""

from __future__ import annotations

import struct

from .frozen import Frozen
from .intenum import IntEnum

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms of xsc
    from collections.abc import Iterator
    from typing import Final

__all__ = [
    "ABS_PATH_MAX",
    "DOMID_ANY",
    "DOMID_INVALID",
    "DOMID_SELF",
    "ERROR_NAMES",
    "HEADER",
    "PAYLOAD_MAX",
    "REL_PATH_MAX",
    "Decoder",
    "Op",
    "Packet",
    "ProtocolError",
    "encode",
    "join_args",
    "parse_directory",
    "parse_directory_part",
    "parse_error",
    "parse_perms",
    "parse_watch_event",
    "split_args",
]

HEADER: Final = struct.Struct("<IIII")
"""type, req_id, tx_id, len."""
_HEADER_SIZE: Final = HEADER.size
_unpack_from: Final = HEADER.unpack_from
_pack: Final = HEADER.pack

PAYLOAD_MAX: Final = 4096
ABS_PATH_MAX: Final = 3072
REL_PATH_MAX: Final = 2048

DOMID_SELF: Final = 0x7FF0
DOMID_INVALID: Final = 0x7FF4
DOMID_ANY: Final = 0x7FF5


class Op(IntEnum):
    """Message type numbers (``xs_wire.h``)."""

    CONTROL = 0
    DIRECTORY = 1
    READ = 2
    GET_PERMS = 3
    WATCH = 4
    UNWATCH = 5
    TRANSACTION_START = 6
    TRANSACTION_END = 7
    INTRODUCE = 8
    RELEASE = 9
    GET_DOMAIN_PATH = 10
    WRITE = 11
    MKDIR = 12
    RM = 13
    SET_PERMS = 14
    WATCH_EVENT = 15
    ERROR = 16
    IS_DOMAIN_INTRODUCED = 17
    RESUME = 18
    SET_TARGET = 19
    RESTRICT = 20
    RESET_WATCHES = 21
    DIRECTORY_PART = 22
    GET_FEATURE = 23
    SET_FEATURE = 24
    GET_QUOTA = 25
    SET_QUOTA = 26
    INVALID = 65535


# The xsd_errors table of xs_wire.h, in its order. Only these names go on the wire.
ERROR_NAMES: tuple[str, ...] = (
    "EINVAL",
    "EACCES",
    "EEXIST",
    "EISDIR",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
    "EIO",
    "ENOTEMPTY",
    "ENOSYS",
    "EROFS",
    "EBUSY",
    "EAGAIN",
    "EISCONN",
    "E2BIG",
    "EPERM",
)


class ProtocolError(Exception):
    """The peer broke the framing rules; the connection cannot continue."""


class Packet(Frozen):
    """One message: header fields and payload (immutable, equal by value)."""

    __slots__ = ("op", "payload", "req_id", "tx_id")

    op: int
    req_id: int
    tx_id: int
    payload: bytes

    def __init__(self, op: int, req_id: int, tx_id: int, payload: bytes) -> None:
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "req_id", req_id)
        object.__setattr__(self, "tx_id", tx_id)
        object.__setattr__(self, "payload", payload)

    def __repr__(self) -> str:
        try:
            name = Op(self.op).name
        except ValueError:
            name = str(self.op)
        return f"Packet({name}, req_id={self.req_id}, tx_id={self.tx_id}, {self.payload!r})"


def encode(op: int, req_id: int, tx_id: int, payload: bytes) -> bytes:
    """Return the wire bytes of one message.

    Raises:
        ProtocolError: if the payload is longer than ``PAYLOAD_MAX``.
    """
    size = len(payload)
    if size > PAYLOAD_MAX:
        raise ProtocolError(f"payload of {size} bytes exceeds {PAYLOAD_MAX}")
    return _pack(op, req_id, tx_id, size) + payload


class Decoder:
    """Incremental decoder: feed bytes in any chunking, take whole packets out.

    ``receive_data(b"")`` marks end of stream; a stream that ends inside a packet is a
    :class:`ProtocolError` on the next :meth:`next_packet`.
    """

    __slots__ = ("_buf", "_eof")

    def __init__(self, pending: bytes = b"") -> None:
        self._buf = bytearray(pending)
        self._eof = False

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet returned as a packet (a half-read request)."""
        return bytes(self._buf)

    def receive_data(self, data: bytes | memoryview) -> None:
        """Buffer bytes read from the peer (copied: ``data`` may be reused after);
        ``b""`` means the peer closed."""
        if data:
            self._buf += data
        else:
            self._eof = True

    def has_packet(self) -> bool:
        """True if a whole packet is buffered (oversized headers count as one)."""
        buf = self._buf
        if len(buf) < _HEADER_SIZE:
            return False
        length: int = _unpack_from(buf)[3]
        return length > PAYLOAD_MAX or len(buf) >= _HEADER_SIZE + length

    def has_data(self) -> bool:
        """True if any byte is buffered (``pending`` without the copy)."""
        return bool(self._buf)

    def next_packet(self) -> Packet | None:
        """Return the next whole packet, or None if more bytes are needed.

        Raises:
            ProtocolError: the header announces more than ``PAYLOAD_MAX`` bytes, or the
                stream ended in the middle of a packet.
        """
        fields = self.next_fields()
        return None if fields is None else Packet(*fields)

    def next_fields(self) -> tuple[int, int, int, bytes] | None:
        """:meth:`next_packet` as a plain tuple ``(op, req_id, tx_id, payload)``: what
        the daemon's request path takes (a tuple costs a fifth of a :class:`Packet`).

        Raises:
            ProtocolError: as :meth:`next_packet`.
        """
        buf = self._buf
        if len(buf) >= _HEADER_SIZE:
            op, req_id, tx_id, length = _unpack_from(buf)
            if length > PAYLOAD_MAX:
                raise ProtocolError(f"peer announced a payload of {length} bytes")
            end = _HEADER_SIZE + length
            if len(buf) >= end:
                payload = bytes(buf[_HEADER_SIZE:end])
                del buf[:end]
                return op, req_id, tx_id, payload
        if self._eof and buf:
            raise ProtocolError(f"stream ended inside a packet ({len(buf)} bytes pending)")
        return None

    def __iter__(self) -> Iterator[Packet]:
        while (packet := self.next_packet()) is not None:
            yield packet


# ---------------------------------------------------------------------------
# Payload helpers


def _as_bytes(arg: bytes | str | int) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, int):
        return str(arg).encode()
    return arg.encode()


def join_args(*args: bytes | str | int) -> bytes:
    """Each argument followed by a NUL, concatenated: ``join_args("a", 1) == b"a\\x001\\x00"``."""
    return b"".join(_as_bytes(a) + b"\0" for a in args)


def split_args(payload: bytes) -> list[bytes]:
    """The complete NUL-terminated strings of a payload; bytes after the last NUL are ignored."""
    parts = payload.split(b"\0")
    parts.pop()  # whatever follows the last NUL (or the whole payload if there is none)
    return parts


def parse_error(payload: bytes) -> str:
    """The error name of an ERROR reply; an unknown name reads as EINVAL, as libxenstore does."""
    name = payload.split(b"\0", 1)[0].decode("ascii", "replace")
    return name if name in ERROR_NAMES else "EINVAL"


def _text(raw: bytes) -> str:
    # Daemons send ASCII names; any other byte is kept as a surrogate, as the clients'
    # own paths keep theirs, so a strange name is never an error (on a reader thread,
    # it would end the connection's reader).
    return raw.decode("utf-8", "surrogateescape")


def parse_directory(payload: bytes) -> list[str]:
    """Child names of a DIRECTORY reply (an empty payload means no children)."""
    return [_text(p) for p in split_args(payload)]


def parse_directory_part(payload: bytes) -> tuple[int, list[str], bool]:
    """A DIRECTORY_PART reply as ``(generation, names, complete)``.

    ``complete`` is true when this chunk reaches the end of the child list (the payload
    ends with an extra NUL).
    """
    gen, _, rest = payload.partition(b"\0")
    complete = rest.endswith(b"\0\0") or rest == b"\0" or rest == b""
    if rest.endswith(b"\0\0"):
        rest = rest[:-1]
    elif rest == b"\0":
        rest = b""
    return int(gen), [_text(p) for p in split_args(rest)], complete


def parse_perms(payload: bytes) -> list[str]:
    """Permission strings of a GET_PERMS reply, owner first (``["n0", "r5"]``)."""
    return [_text(p) for p in split_args(payload)]


def parse_watch_event(payload: bytes) -> tuple[str, bytes]:
    """``(path, token)`` of a WATCH_EVENT."""
    path, _, rest = payload.partition(b"\0")
    token = rest[:-1] if rest.endswith(b"\0") else rest
    return _text(path), token
