"""One client connection as data: who it is, its input buffer, its output queue.

Invariants:

* ``out`` holds whole encoded messages in the order they must be written; ``out_bytes``
  is the sum of their lengths minus ``out_offset``, the bytes of ``out[0]`` already
  written (a message is never reordered once its first byte went out);
* ``pending_events`` holds the payloads of watch events queued but not yet fully
  written, so an identical event can be coalesced as C xenstored does;
* ``transactions`` maps this connection's open transaction ids to transactions;
  ids are per connection and never 0.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from xsd.core.views import Transaction
from xsd.core.watches import Watch
from xsd_client.protocol import Decoder


@dataclass(slots=True)
class Credentials:
    """The peer's pid, uid and gid from SO_PEERCRED, if known."""

    pid: int
    uid: int
    gid: int


@dataclass(eq=False, slots=True)
class Connection:
    """A client connection: its identity, buffers, watches and transactions."""

    id: int
    domid: int
    privileged: bool
    creds: Credentials | None = None
    decoder: Decoder = field(default_factory=Decoder)
    out: deque[bytes] = field(default_factory=deque)
    out_offset: int = 0
    out_bytes: int = 0
    event_frames: set[bytes] = field(default_factory=set)
    watches: list[Watch] = field(default_factory=list)
    transactions: dict[int, Transaction] = field(default_factory=dict)
    next_tx_id: int = 1
    dropped_events: int = 0

    def queue(self, frame: bytes) -> None:
        """Append one encoded message to the output queue."""
        self.out.append(frame)
        self.out_bytes += len(frame)

    def output(self) -> bytes:
        """Bytes waiting to be written (a prefix of them may be written at once)."""
        out = self.out
        if not out:
            return b""
        if len(out) > 1:
            joined = b"".join(out)
            event_frames = self.event_frames
            if event_frames:
                # Joining loses frame identity; events still unsent can no longer be
                # matched for coalescing, which only means one more event may go out.
                event_frames.clear()
            out.clear()
            out.append(joined)
        return out[0][self.out_offset :]

    def consume(self, n: int) -> None:
        """``n`` bytes of :meth:`output` were written."""
        self.out_bytes -= n
        self.out_offset += n
        out = self.out
        while out and self.out_offset >= len(out[0]):
            frame = out.popleft()
            self.out_offset -= len(frame)
            self.event_frames.discard(frame)
