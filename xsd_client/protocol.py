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

The framing (the header, :class:`Decoder`, :func:`split_args`) is in
:mod:`xsd_client.framing`, which ``pip install`` compiles; the message types
(:class:`Op`, :class:`Packet`) in :mod:`xsd_client.message`. Both are re-exported here.
"""

from __future__ import annotations

from .framing import HEADER, PAYLOAD_MAX, Decoder, ProtocolError, split_args
from .message import Op, Packet

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms of xsc
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

_pack: Final = HEADER.pack

ABS_PATH_MAX: Final = 3072
REL_PATH_MAX: Final = 2048

DOMID_SELF: Final = 0x7FF0
DOMID_INVALID: Final = 0x7FF4
DOMID_ANY: Final = 0x7FF5


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


def encode(op: int, req_id: int, tx_id: int, payload: bytes) -> bytes:
    """Return the wire bytes of one message.

    Raises:
        ProtocolError: if the payload is longer than ``PAYLOAD_MAX``.
    """
    size = len(payload)
    if size > PAYLOAD_MAX:
        raise ProtocolError(f"payload of {size} bytes exceeds {PAYLOAD_MAX}")
    return _pack(op, req_id, tx_id, size) + payload


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
