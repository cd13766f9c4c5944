"""The wire's framing: headers, the incremental decoder, NUL-separated arguments.

Part of :mod:`xsd_client.protocol` (which re-exports all of it), in a module of its own
because every request the daemon answers runs through it: ``pip install`` compiles this
module with mypyc (``setup.py``), as it compiles the daemon's request path, and it holds
nothing mypyc cannot compile (no :class:`~xsd_client.frozen.Frozen` class: ``Packet``
is in :mod:`xsd_client.message`). Interpreted, the decoder's three calls a request were a fifth of
the instructions the daemon spent on it (``callgrind`` on ``tools/bench_pass.py``).
"""

from __future__ import annotations

import struct

from ._typing import mypyc_attr
from .message import Packet

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms of xsc
    from collections.abc import Iterator
    from typing import Final

HEADER: Final = struct.Struct("<IIII")
"""type, req_id, tx_id, len."""
_HEADER_SIZE: Final = 16

PAYLOAD_MAX: Final = 4096


class ProtocolError(Exception):
    """The peer broke the framing rules; the connection cannot continue."""


def _u32(buf: bytes, at: int) -> int:
    """The little-endian u32 at ``at``: four indexings, each a C array read compiled (a
    call to ``HEADER.unpack_from`` costs four times the whole header so)."""
    return buf[at] | buf[at + 1] << 8 | buf[at + 2] << 16 | buf[at + 3] << 24


def _packet_at(buf: bytes, at: int) -> bool:
    """Whether a whole packet starts at ``at`` (an oversized header counts as one: the
    next read of it raises)."""
    if len(buf) - at < _HEADER_SIZE:
        return False
    length = _u32(buf, at + 12)
    return length > PAYLOAD_MAX or len(buf) - at >= _HEADER_SIZE + length


@mypyc_attr(allow_interpreted_subclasses=True)  # a public class: still subclassable
class Decoder:
    """Incremental decoder: feed bytes in any chunking, take whole packets out.

    ``receive_data(b"")`` marks end of stream; a stream that ends inside a packet is a
    :class:`ProtocolError` on the next :meth:`next_packet`.

    The buffer is an immutable ``bytes`` and the offset of its first unread byte: a packet
    taken out is one slice, not a move of the rest down the buffer. Once no whole packet
    is left, only the unread bytes are kept (the part of a packet that follows).
    """

    __slots__ = ("_buf", "_eof", "_pos")

    def __init__(self, pending: bytes = b"") -> None:
        self._buf = bytes(pending)
        self._pos = 0
        self._eof = False

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet returned as a packet (a half-read request)."""
        return self._buf[self._pos :]

    def receive_data(self, data: bytes | memoryview) -> None:
        """Buffer bytes read from the peer (copied: ``data`` may be reused after);
        ``b""`` means the peer closed."""
        if not data:
            self._eof = True
        elif self._pos == len(self._buf):
            self._buf = data if isinstance(data, bytes) else bytes(data)
            self._pos = 0
        else:
            self._buf = self._buf[self._pos :] + bytes(data)
            self._pos = 0

    def has_packet(self) -> bool:
        """True if a whole packet is buffered (oversized headers count as one)."""
        return _packet_at(self._buf, self._pos)

    def has_data(self) -> bool:
        """True if any byte is buffered (``pending`` without the copy)."""
        return self._pos < len(self._buf)

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
        buf, pos = self._buf, self._pos
        size = len(buf)
        if size - pos >= _HEADER_SIZE:
            length = _u32(buf, pos + 12)
            if length > PAYLOAD_MAX:
                raise ProtocolError(f"peer announced a payload of {length} bytes")
            start = pos + _HEADER_SIZE
            end = start + length
            if size >= end:
                if _packet_at(buf, end):
                    self._pos = end  # another whole packet follows
                else:  # keep only the part of a packet that follows, not what was read
                    self._buf = buf[end:] if end < size else b""
                    self._pos = 0
                return _u32(buf, pos), _u32(buf, pos + 4), _u32(buf, pos + 8), buf[start:end]
        if self._eof and pos < size:
            raise ProtocolError(f"stream ended inside a packet ({size - pos} bytes pending)")
        return None

    def __iter__(self) -> Iterator[Packet]:
        while (packet := self.next_packet()) is not None:
            yield packet


def split_args(payload: bytes) -> list[bytes]:
    """The complete NUL-terminated strings of a payload; bytes after the last NUL are ignored."""
    parts = payload.split(b"\0")
    parts.pop()  # whatever follows the last NUL (or the whole payload if there is none)
    return parts
