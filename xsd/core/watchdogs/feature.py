"""The watchdogs as a feature of the store: what installs them and what they observe.

:func:`install` registers a :class:`Watchdogs` with an engine's context: as the check of
writes to watchdog nodes, as an observer of changes, connections and domains, and as the
feature :func:`of` finds again (the shell's kick sockets and action backends use it).
"""

from __future__ import annotations

from xsd.core import ops
from xsd.core.context import Context
from xsd.core.views import DirectView
from xsd.core.watchdogs import guest, layout
from xsd.core.watchdogs.machine import Machine
from xsd_client._typing import Protocol  # no class under TYPE_CHECKING here: setup.py

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import TypeVar

    from xsd.core.connections import Connection
    from xsd.core.ops import Event

    F = TypeVar("F")


class Host(Protocol):
    """What has features installed: an engine, or its context."""

    def feature(self, kind: type[F]) -> F: ...


class Watchdogs(Machine):
    """The watchdog feature: the state machine plus its hooks into the store."""

    # Every WRITE and RM runs these two. Methods calling the functions, not the functions
    # as class attributes: a compiled function (setup.py) does not bind to an instance as
    # a Python one does.
    def check(self, conn: Connection, path: str, value: bytes | None) -> None:
        """Refuse a write (a value) or removal (None) that would break a watchdog's rules."""
        guest.check(self, conn, path, value)

    def on_change(self, conn: Connection | None, events: list[Event]) -> None:
        """Apply committed writes to watchdog nodes; put back removed nodes."""
        guest.apply_changes(self, conn, events)

    def on_disconnect(self, conn: Connection) -> None:
        """Magic close: the arming connection went; with a 'V' last written, disarm."""
        if conn.privileged:
            return
        dd = self.ctx.state.watchdogs.domains.get(conn.domid)
        if dd is None:
            return
        for slot, dog in enumerate(dd.dogs):
            if dog.owner != conn.id:
                continue
            dog.owner = 0
            if not dog.running:
                continue
            if dog.expect_close:
                self.disarm(conn.domid, slot, "magic close")
            else:
                self.ctx.log(
                    f"watchdog: domain {conn.domid} watchdog {slot}: closed without "
                    "magic close, still running"
                )
            dog.expect_close = False

    def on_introduce(self, domid: int) -> None:
        """A domain was introduced: give it its watchdogs."""
        self.provision(domid)

    def on_release(self, domid: int) -> None:
        """A domain was released: its watchdogs stop and their nodes go."""
        st = self.ctx.state.watchdogs
        if st.domains.pop(domid, None) is None:
            return
        base = layout.base_of(domid)
        tree = self.ctx.state.tree
        if base in tree.nodes:
            self.fire(ops.rm(DirectView(tree), ops.DOM0, base))


def install(ctx: Context) -> Watchdogs:
    """Give the store behind ``ctx`` its watchdogs."""
    watchdogs = Watchdogs(ctx)
    ctx.install(watchdogs, watchdogs)
    return watchdogs


def of(host: Host) -> Watchdogs:
    """The watchdogs installed on ``host`` (an engine; LookupError if none)."""
    return host.feature(Watchdogs)
