"""Carrying on after the daemon restarted, sans I/O: the back-off, and what becomes of
each request that was waiting when the connection went.

Both clients reconnect when asked to (``Client(reconnect=True)``,
``open_client(reconnect=True)``; off by default: against a daemon that keeps its store
in memory, a restart loses the store, and a program should see that rather than carry
on against an empty one). A reconnecting client:

* tries again after :class:`Backoff` delays (20 ms doubling to 0.5 s, with jitter) and gives
  up after its ``give_up`` seconds (then it closes, as a client without reconnection);
* registers every watch again, with the same path, token and depth (``watch(...,
  depth=N)``), so each fires its initial event again
  (:class:`~xsd_client.recipes.DataWatch` re-reads then);
* decides for every request that had no reply (:func:`fate`): one not yet sent is sent;
  one whose effect is the same if applied twice (reads, WRITE, MKDIR, SET_PERMS, WATCH,
  TRANSACTION_START, ...) is sent again; one inside a transaction raises ``EAGAIN``
  (the transaction died with the daemon; ``transact()`` runs it again); an abort is
  done; anything else (RM, INTRODUCE, RELEASE, a commit, CONTROL, ...) raises
  :class:`~xsd_client.errors.RequestLostError`, since it may or may not have happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

from . import calls
from ._typing import Protocol, TypeVar
from .errors import RequestLostError, XenstoreError, error_from_name
from .protocol import Op, Packet, encode

__all__ = ["AGAIN", "DONE", "LOST", "REPEATABLE", "RESEND", "Backoff", "fate", "resume"]

REPEATABLE = frozenset(
    {
        Op.READ,
        Op.DIRECTORY,
        Op.DIRECTORY_PART,
        Op.GET_PERMS,
        Op.GET_DOMAIN_PATH,
        Op.IS_DOMAIN_INTRODUCED,
        Op.GET_QUOTA,
        Op.WATCH,
        Op.WRITE,
        Op.MKDIR,
        Op.SET_PERMS,
        Op.TRANSACTION_START,
    }
)
"""Requests sent again after a reconnection: applying one twice is applying it once.
(A WRITE sent again may undo another client's write made in between, exactly as if
ours had come later.)"""

RESEND = "resend"
AGAIN = "again"
DONE = "done"
LOST = "lost"


def fate(op: int, payload: bytes, tx_id: int, sent: bool) -> str:
    """What a reconnected client does with a request that got no reply: :data:`RESEND`
    it, fail it with EAGAIN (:data:`AGAIN`), answer it OK (:data:`DONE`), or fail it
    with ``RequestLostError`` (:data:`LOST`)."""
    if op == Op.TRANSACTION_END:
        if payload[:1] != b"T":
            return DONE  # an abort: the daemon forgot the transaction anyway
        return LOST if sent else AGAIN
    if tx_id:
        return AGAIN
    if not sent or op in REPEATABLE:
        return RESEND
    return LOST


class Waiting(Protocol):
    """A request waiting for its reply, as both clients keep it."""

    op: Op
    payload: bytes
    tx_id: int
    sent: bool


W = TypeVar("W", bound=Waiting)


def resume(
    watches: Iterable[tuple[str, str, int | None]],
    pending: MutableMapping[int, W],
    next_req_id: int,
) -> tuple[bytes, int, list[tuple[W, Packet | None, XenstoreError | None]]]:
    """What a client sends first on a new connection, and what becomes of the rest.

    ``watches`` are the client's watches as ``(path, token, depth)``
    (``WatchTable.registrations``). Returns the bytes to send (every watch registered
    again, then the requests to
    :data:`RESEND`, each marked sent), the next request id to use, and the requests
    settled without the daemon, removed from ``pending``, each with its reply or error.
    """
    out = []
    for path, token, depth in watches:
        next_req_id = next_req_id % 0xFFFFFFFF + 1
        call = calls.watch(path, token, depth)  # replies go nowhere
        out.append(encode(call.op, next_req_id, 0, call.payload))
    settled: list[tuple[W, Packet | None, XenstoreError | None]] = []
    for req_id, slot in list(pending.items()):
        what = fate(slot.op, slot.payload, slot.tx_id, slot.sent)
        if what == RESEND:
            out.append(encode(slot.op, req_id, 0, slot.payload))
            slot.sent = True
            continue
        del pending[req_id]
        if what == DONE:
            settled.append((slot, Packet(slot.op, req_id, slot.tx_id, b"OK\0"), None))
        elif what == AGAIN:
            settled.append((slot, None, error_from_name("EAGAIN")))
        else:
            lost = RequestLostError(
                f"the daemon restarted before answering {slot.op.name}: "
                "it may or may not have been applied"
            )
            settled.append((slot, None, lost))
    return b"".join(out), next_req_id, settled


class Backoff:
    """Delays between attempts to reconnect: ``initial`` seconds, doubling up to
    ``maximum``, each with up to 25% jitter, for ``give_up`` seconds in all (None:
    forever)."""

    def __init__(
        self, initial: float = 0.02, maximum: float = 0.5, give_up: float | None = 60.0
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.give_up = give_up

    def delays(self) -> Iterator[float]:
        """The delays to wait before each attempt, until it is time to give up."""
        import random  # only once a connection is lost: the CLI never pays for it

        delay = self.initial
        waited = 0.0
        while self.give_up is None or waited < self.give_up:
            step = delay * random.uniform(0.75, 1.0)
            waited += step
            yield step
            delay = min(self.maximum, delay * 2)


def policy(reconnect: bool | Backoff) -> Backoff | None:
    """The back-off a client's ``reconnect`` argument asks for (None: no reconnection)."""
    if isinstance(reconnect, Backoff):
        return reconnect
    return Backoff() if reconnect else None
