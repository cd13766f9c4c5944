"""A blocking raw-protocol connection for setting up a store and loading it fast.

Invariants:

* framing is :mod:`xsd_client.protocol`'s (``encode`` and ``Decoder``), nothing else;
* :meth:`Conn.pipeline` never has more than ``depth`` requests in flight and returns only
  when every request sent has its reply, or raises after ``timeout`` seconds;
* watch events that arrive while waiting for replies are kept, never mistaken for them.
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from xsd_client.protocol import Decoder, Op, Packet, encode, join_args, parse_error

Request = tuple[int, int, bytes]
"""``(op, tx_id, payload)`` of one request."""


class BenchError(RuntimeError):
    """A request failed where the benchmark needs it to succeed."""


class Conn:
    """One client connection to a daemon's Unix socket."""

    def __init__(self, path: Path | str, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.decoder = Decoder()
        self.events: list[Packet] = []
        self._req_id = 0

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _packets(self) -> Iterator[Packet]:
        """Replies as they arrive (watch events are set aside in ``events``)."""
        while True:
            for packet in self.decoder:
                if packet.op == Op.WATCH_EVENT:
                    self.events.append(packet)
                else:
                    yield packet
            data = self.sock.recv(1 << 16)
            if not data:
                raise BenchError("daemon closed the connection")
            self.decoder.receive_data(data)

    def request(self, op: int, payload: bytes, tx_id: int = 0) -> bytes:
        """Send one request and return its reply payload.

        Raises:
            BenchError: the daemon answered with an error or closed the connection.
        """
        self._req_id += 1
        self.sock.sendall(encode(op, self._req_id, tx_id, payload))
        reply = next(self._packets())
        if reply.op == Op.ERROR:
            raise BenchError(f"{Op(op).name} {payload[:60]!r}: {parse_error(reply.payload)}")
        return reply.payload

    def write(self, path: str, value: bytes) -> None:
        """WRITE ``value`` at ``path``."""
        self.request(Op.WRITE, path.encode() + b"\0" + value)

    def pipeline(self, requests: Iterable[Request], depth: int, timeout: float = 600.0) -> int:
        """Send every request with up to ``depth`` in flight; return how many failed.

        Requests are sent in batches as replies free room, one ``sendall`` per batch.

        Raises:
            BenchError: the daemon closed the connection, or ``timeout`` passed.
        """
        deadline = time.monotonic() + timeout
        it = iter(requests)
        in_flight = 0
        errors = 0
        exhausted = False
        packets = self._packets()
        while True:
            if not exhausted and in_flight <= depth // 2:  # refill in chunks, one send each
                room = depth - in_flight
                batch = []
                for op, tx_id, payload in itertools.islice(it, room):
                    self._req_id = (self._req_id + 1) & 0x7FFFFFFF
                    batch.append(encode(op, self._req_id, tx_id, payload))
                if len(batch) < room:
                    exhausted = True
                if batch:
                    self.sock.sendall(b"".join(batch))
                    in_flight += len(batch)
            if in_flight == 0:
                return errors
            if time.monotonic() > deadline:
                raise BenchError(f"{in_flight} replies still missing after {timeout} s")
            reply = next(packets)
            in_flight -= 1
            if reply.op == Op.ERROR:
                errors += 1
            # Drain every reply already decoded before refilling.
            while in_flight and self.decoder.has_packet():
                reply = next(packets)
                in_flight -= 1
                if reply.op == Op.ERROR:
                    errors += 1


def node_path(prefix: str, i: int) -> str:
    """The path of bulk node ``i`` under ``prefix``: 100 children per directory, 3 levels."""
    return f"{prefix}/{i // 10000}/{i // 100 % 100}/{i % 100}"


NODE_VALUE = b"value-0123456789"
"""The 16-byte value every bulk node holds."""


def load_nodes(
    path: Path | str,
    prefix: str,
    start: int,
    count: int,
    depth: int = 512,
    deadline: float | None = None,
    chunk: int = 20000,
) -> tuple[int, int]:
    """WRITE bulk nodes ``start..start+count`` under ``prefix``, deeply pipelined.

    Stops early, between chunks of ``chunk`` nodes, once ``time.monotonic()`` passes
    ``deadline``. Returns ``(nodes written, failed writes)``.
    """

    def requests(lo: int, hi: int) -> Iterator[Request]:
        for i in range(lo, hi):
            yield Op.WRITE, 0, f"{node_path(prefix, i)}\0".encode() + NODE_VALUE

    done = errors = 0
    with Conn(path) as conn:
        while done < count:
            if deadline is not None and time.monotonic() > deadline:
                break
            n = min(chunk, count - done)
            errors += conn.pipeline(requests(start + done, start + done + n), depth)
            done += n
    return done, errors


def directory(conn: Conn, path: str) -> list[bytes]:
    """The child names of ``path``."""
    return conn.request(Op.DIRECTORY, join_args(path)).split(b"\0")[:-1]
