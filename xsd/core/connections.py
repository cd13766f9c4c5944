"""One client connection as data: who it is, its input buffer, its output queue.

Invariants:

* ``out`` holds whole encoded messages, in the order they must be written, each with
  its kind (reply or event) and the time it was queued; ``out_offset`` bytes of the first
  one are already written (a message is never dropped or reordered once started);
  ``out_bytes`` is the number of bytes still to write;
* ``replies`` counts reply messages in ``out`` (C's "outstanding requests");
* ``event_frames`` holds the watch events queued but not yet started, so an identical
  event can be coalesced as C xenstored does;
* ``transactions`` maps this connection's open transaction ids (never 0) to
  transactions; ids are per connection;
* ``account`` is shared by every connection of the same domain (the context joins them):
  its ``out_bytes`` is the sum of theirs, so a domain's queued output is known at once.
"""

from __future__ import annotations

from collections import deque

from xsd.core.credentials import Credentials
from xsd.core.views import Transaction
from xsd.core.watches import Watch
from xsd_client.protocol import Decoder

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

REPLY: Final = 0
EVENT: Final = 1

_JOIN_LIMIT: Final = 1 << 16  # bytes handed to one send(): enough to batch, small to re-join


class Account:
    """What all the connections of one domain hold together (see ``Context.connect``)."""

    __slots__ = ("conns", "out_bytes", "tx_conns")

    def __init__(self) -> None:
        self.conns: set[Connection] = set()
        self.out_bytes = 0
        self.tx_conns: set[Connection] = set()  # those with open transactions


class Connection:
    """A client connection: its identity, buffers, watches and transactions.

    Compared by identity: two connections are never the same one.
    """

    __slots__ = (
        "account",
        "creds",
        "decoder",
        "deferred",
        "domid",
        "dropped_events",
        "event_frames",
        "id",
        "next_tx_id",
        "out",
        "out_bytes",
        "out_offset",
        "partial_since",
        "privileged",
        "replies",
        "transactions",
        "watches",
    )
    id: int
    domid: int
    privileged: bool
    account: Account
    creds: Credentials | None
    decoder: Decoder
    out: deque[tuple[bytes, int, int]]
    out_offset: int
    out_bytes: int
    replies: int
    event_frames: set[bytes]
    watches: list[Watch]
    transactions: dict[int, Transaction]
    next_tx_id: int
    partial_since: int | None
    dropped_events: int
    deferred: tuple[int, int] | None
    """(req_id, tx_id) of a request whose reply the shell gives later (live update);
    no further request of this connection is processed until then."""

    def __init__(
        self,
        id: int,
        domid: int,
        privileged: bool,
        creds: Credentials | None = None,
    ) -> None:
        self.id = id
        self.domid = domid
        self.privileged = privileged
        self.creds = creds
        self.decoder = Decoder()
        self.out = deque()
        self.out_offset = 0
        self.out_bytes = 0
        self.replies = 0
        self.event_frames = set()
        self.watches = []
        self.transactions = {}
        self.next_tx_id = 1
        self.partial_since = None
        self.dropped_events = 0
        self.deferred = None
        self.account = Account()
        self.account.conns.add(self)

    def __repr__(self) -> str:
        return f"Connection(id={self.id}, domid={self.domid}, privileged={self.privileged})"

    def queue(self, frame: bytes, kind: int = REPLY, now: int = 0) -> None:
        """Append one encoded message to the output queue."""
        self.out.append((frame, kind, now))
        self.out_bytes += len(frame)
        self.account.out_bytes += len(frame)
        if kind == REPLY:
            self.replies += 1
        else:
            self.event_frames.add(frame)

    def output(self) -> bytes:
        """Bytes waiting to be written, from the first unwritten one (a batch, not all)."""
        out = self.out
        if not out:
            return b""
        first = out[0][0]
        if self.out_offset:
            first = first[self.out_offset :]  # compiled, a slice copies even a whole one
        if len(out) == 1 or len(first) >= _JOIN_LIMIT:
            return first
        parts = [first]
        size = len(first)
        for i in range(1, len(out)):
            frame = out[i][0]
            parts.append(frame)
            size += len(frame)
            if size >= _JOIN_LIMIT:
                break
        return b"".join(parts)

    def consume(self, n: int) -> None:
        """``n`` bytes of :meth:`output` were written."""
        self.out_bytes -= n
        self.account.out_bytes -= n
        if not self.out_bytes:
            # All of it written (most writes: one reply): no message is left, so no reply
            # and no event to coalesce with. Cheaper than taking the messages off one by
            # one: compiled, each step on the deque is a call by name.
            self.out.clear()
            self.out_offset = 0
            self.replies = 0
            if self.event_frames:
                self.event_frames.clear()
            return
        offset = self.out_offset + n
        out = self.out
        while out and offset >= len(out[0][0]):
            frame, kind, _ = out.popleft()
            offset -= len(frame)
            if kind == REPLY:
                self.replies -= 1
            else:
                self.event_frames.discard(frame)
        self.out_offset = offset
        if offset and out:
            # The first message has started: it can no longer absorb a duplicate.
            self.event_frames.discard(out[0][0])

    def expire_events(self, before: int) -> int:
        """Drop watch events queued before ``before`` that have not started; return how many."""
        out = self.out
        if not out:
            return 0
        keep: deque[tuple[bytes, int, int]] = deque()
        dropped = 0
        for i, item in enumerate(out):
            frame, kind, queued = item
            if kind == EVENT and queued < before and not (i == 0 and self.out_offset):
                dropped += 1
                self.out_bytes -= len(frame)
                self.account.out_bytes -= len(frame)
                self.event_frames.discard(frame)
            else:
                keep.append(item)
        self.out = keep
        self.dropped_events += dropped
        return dropped

    def oldest_event(self) -> int | None:
        """When the oldest queued, unstarted event was queued (None if there is none)."""
        for i, (_, kind, queued) in enumerate(self.out):
            if kind == EVENT and not (i == 0 and self.out_offset):
                return queued
        return None
