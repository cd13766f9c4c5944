"""When a connection's requests are served: output, outstanding replies, write credit.

The engine asks :class:`Flow` before it decodes each request. Invariants:

* a connection whose output queue is over :data:`OUT_HIGH_WATER`, or that waits for a
  deferred reply, is not served;
* an unprivileged connection is not served while it has its domain's ``outstanding``
  replies unread, or while its domain's connections together hold the domain's
  ``output`` quota of queued bytes and it holds more than one message
  (:data:`~xsd.core.context.OWN_MESSAGE`) of it;
* an unprivileged domain whose write credit went below zero (``xsd.core.ratelimit``) is
  not served until it paid it back; its connections then take turns, the one that
  waited longest first, so one connection cannot starve the others.
"""

from __future__ import annotations

from collections.abc import Mapping

from xsd.core import ratelimit
from xsd.core.connections import Connection
from xsd.core.context import OWN_MESSAGE, Context
from xsd.core.effects import TimerChanged

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

OUT_HIGH_WATER: Final = 1 << 20
"""Stop reading a connection's requests while this many output bytes wait for it."""


class Flow:
    """Which connections may be served now (see the module doc)."""

    __slots__ = ("ctx", "turns")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.turns = ratelimit.Turns()
        """The connections of rate-limited domains waiting for credit, in turns."""

    def blocked(self, conn: Connection) -> bool:
        """True if the connection's buffered requests must wait for its output to drain,
        its deferred reply, its outstanding replies to be read, or write credit."""
        if conn.out_bytes >= OUT_HIGH_WATER or conn.deferred is not None:
            return True
        if conn.privileged:
            return False
        return self.held(conn) or self.waits(conn, take=False)

    def held(self, conn: Connection, limits: Mapping[str, int] | None = None) -> bool:
        """An unprivileged connection's requests wait for its (domain's) output to drain
        (``limits``: its domain's, if the caller has them)."""
        if limits is None:
            limits = self.ctx.limits(conn.domid)
        outstanding = limits["outstanding"]
        if outstanding and conn.replies >= outstanding:
            return True
        output = limits["output"]
        return bool(output and conn.out_bytes >= OWN_MESSAGE and conn.account.out_bytes >= output)

    def spend(self, conn: Connection) -> None:
        """One write by an unprivileged connection's domain."""
        ctx = self.ctx
        settings = ctx.state.settings
        domain = ctx.state.domains.get(conn.domid)
        if domain is not None and settings.write_rate:
            ratelimit.spend(domain, ctx.now, settings.write_rate, settings.write_burst)
            if domain.wrl_credit < 0:
                ctx.effects.append(TimerChanged())  # a pay-back time to wake for

    def in_debt(self, domid: int) -> bool:
        """The domain must earn write credit back before it is served."""
        ctx = self.ctx
        settings = ctx.state.settings
        domain = ctx.state.domains.get(domid)
        if domain is None or not settings.write_rate:
            return False
        return ratelimit.in_debt(domain, ctx.now, settings.write_rate, settings.write_burst)

    def waits(self, conn: Connection, take: bool) -> bool:
        """True if an unprivileged connection must wait for its domain's write credit:
        the domain is in debt, or other connections of it waited first (``take``: see
        :meth:`ratelimit.Turns.must_wait`)."""
        domid = conn.domid
        return self.turns.must_wait(domid, conn.id, self.in_debt(domid), take)

    def next_in_turn(self) -> None:
        """Let the first connection of each paid-back domain's credit queue that can
        go now take its turn (the engine's ``tick`` then resumes it)."""
        connections = self.ctx.state.connections

        def can_go(conn_id: int) -> bool:
            conn = connections.get(conn_id)
            return (
                conn is not None
                and conn.decoder.has_packet()
                and conn.deferred is None
                and conn.out_bytes < OUT_HIGH_WATER
                and not self.held(conn)
            )

        for domid in list(self.turns.queues):
            if not self.in_debt(domid):
                self.turns.next_turn(domid, can_go)
