"""The fuzzing clients: one non-blocking socket each, and how it behaves.

Kinds:

* ``talker``: sends batch after batch as fast as the daemon takes them, reads all;
* ``trickler``: the same with pauses between the pieces (headers left half-sent);
* ``slow``: reads at most 512 bytes every few tens of milliseconds;
* ``mute``: never reads; sends until the socket is full, then waits, then goes;
* ``vanisher``: closes its socket in the middle of a batch.

Every client's bytes come from its own ``random.Random(f"{seed}/{slot}/{life}")``, so a
seed replays the same streams; when a client ends (its batches done, vanished, or closed
by the daemon) a new one takes its slot with the next ``life``.
"""

from __future__ import annotations

import bisect
import errno
import random
import socket
from pathlib import Path

from tools.fuzz.requests import Batch, Requests
from xsd_client.protocol import HEADER, Op

KINDS = ("talker", "talker", "talker", "trickler", "slow", "mute", "vanisher")


class Client:
    """One fuzzing connection (``sock`` is None once it ended)."""

    def __init__(self, seed: int, slot: int, life: int, domid: int, path: Path) -> None:
        rng = random.Random(f"{seed}/{slot}/{life}")
        self.rng = rng
        self.slot = slot
        self.life = life
        self.domid = domid
        self.kind = rng.choice(KINDS)
        self.requests = Requests(rng, domid, slot, rng.choice((0.0, 0.0, 0.01, 0.05, 0.3)))
        self.batches_left = rng.randint(3, 200)
        self.mute_for = rng.uniform(0.5, 8.0)
        self.batch: Batch | None = None
        self.pieces: list[bytes] = []
        self.offset = 0  # bytes of the current batch sent
        self.sent_requests = 0
        self.sent_bytes = 0
        self.received = 0
        self.replies = 0  # packets received: replies and errors
        self.events = 0  # watch events received
        self._header = b""  # a reply header received in part
        self._skip = 0  # payload bytes of the current packet still to come
        self.end: str | None = None  # why it ended: done, vanished, closed (by the daemon)
        self.born = 0.0
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect(str(path))
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self.sock: socket.socket | None = sock

    def close(self, why: str) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
            self.end = why

    def step(self, now: float) -> float | None:
        """Do the next thing; how long until the next step (None: this client ended)."""
        if self.sock is None:
            return None
        kind = self.kind
        if kind != "mute":
            if not self._read(512 if kind == "slow" else 1 << 20):
                return None
        elif now - self.born > self.mute_for:
            self.close("done")
            return None
        if not self.pieces:
            if self.batches_left <= 0:
                self.close("done")
                return None
            self.batches_left -= 1
            self.batch = self.requests.batch()
            self.pieces = self.requests.pieces(self.batch)
            self.offset = 0
        piece = self.pieces[0]
        try:
            n = self.sock.send(piece)
        except BlockingIOError:
            return 0.05 if kind == "mute" else 0.01  # the daemon is not reading it now
        except OSError as exc:
            self._gone(exc)
            return None
        self.sent_bytes += n
        self._count(n)
        if n < len(piece):
            self.pieces[0] = piece[n:]
            return 0.005
        self.pieces.pop(0)
        if kind == "vanisher" and self.pieces and self.rng.random() < 0.3:
            self.close("vanished")
            return None
        if kind == "trickler":
            return self.rng.choice((0.0, 0.001, 0.01))
        if kind == "slow":
            return self.rng.uniform(0.01, 0.05)
        return 0.0

    def _count(self, n: int) -> None:
        assert self.batch is not None
        before = self.offset
        self.offset += n
        ends = self.batch.ends
        self.sent_requests += bisect.bisect_right(ends, self.offset) - bisect.bisect_right(
            ends, before
        )

    def _read(self, budget: int) -> bool:
        """Read what is there (up to ``budget``); False if the daemon closed it."""
        assert self.sock is not None
        while budget > 0:
            try:
                data = self.sock.recv(min(budget, 262144))
            except BlockingIOError:
                return True
            except OSError as exc:
                self._gone(exc)
                return False
            if not data:
                self.close("closed")
                return False
            self.received += len(data)
            budget -= len(data)
            self._frames(data)
        return True

    def _frames(self, data: bytes) -> None:
        """Count the packets in the stream (headers read, payloads skipped)."""
        i, size = 0, len(data)
        while i < size:
            if self._skip:
                take = min(self._skip, size - i)
                i += take
                self._skip -= take
                continue
            need = HEADER.size - len(self._header)
            self._header += data[i : i + need]
            i += need
            if len(self._header) == HEADER.size:
                op, _, _, length = HEADER.unpack(self._header)
                self._header = b""
                self._skip = length
                if op == Op.WATCH_EVENT:
                    self.events += 1
                else:
                    self.replies += 1

    def _gone(self, exc: OSError) -> None:
        known = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN)
        self.close("closed" if exc.errno in known else f"error {exc}")
