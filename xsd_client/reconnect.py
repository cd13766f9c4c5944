"""Carrying on after the daemon restarted, sans I/O: the back-off, and what becomes of
each request that was waiting when the connection went.

Both clients reconnect when asked to (``Client(reconnect=True)``,
``open_client(reconnect=True)``; off by default: against a daemon that keeps its store
in memory, a restart loses the store, and a program should see that rather than carry
on against an empty one). A reconnecting client:

* tries again after :class:`Backoff` delays (20 ms doubling to 0.5 s, with jitter) and gives
  up after its ``give_up`` seconds (then it closes, as a client without reconnection);
* registers every watch again, with the same path and token, so each fires its
  initial event again (:class:`~xsd_client.recipes.DataWatch` re-reads then);
* decides for every request that had no reply (:func:`fate`): one not yet sent is sent;
  one whose effect is the same if applied twice (reads, WRITE, MKDIR, SET_PERMS, WATCH,
  TRANSACTION_START, ...) is sent again; one inside a transaction raises ``EAGAIN``
  (the transaction died with the daemon; ``transact()`` runs it again); an abort is
  done; anything else (RM, INTRODUCE, RELEASE, a commit, CONTROL, ...) raises
  :class:`~xsd_client.errors.RequestLostError`, since it may or may not have happened.
"""

from __future__ import annotations

from collections.abc import Iterator

from .protocol import Op

__all__ = ["AGAIN", "DONE", "LOST", "REPEATABLE", "RESEND", "Backoff", "fate"]

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
