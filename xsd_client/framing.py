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
_unpack_from: Final = HEADER.unpack_from

PAYLOAD_MAX: Final = 4096


class ProtocolError(Exception):
    """The peer broke the framing rules; the connection cannot continue."""


@mypyc_attr(allow_interpreted_subclasses=True)  # a public class: still subclassable
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


def split_args(payload: bytes) -> list[bytes]:
    """The complete NUL-terminated strings of a payload; bytes after the last NUL are ignored."""
    parts = payload.split(b"\0")
    parts.pop()  # whatever follows the last NUL (or the whole payload if there is none)
    return parts
