"""Registered watches and which of them an event fires.

Invariants:

* ``by_path`` indexes every registered watch by its canonical path, so matching an
  event costs one lookup per ancestor of the event's path, not one per watch; what
  matching remembers of it (the watches on and above a path) is forgotten whenever a
  watch comes or goes, so ``by_path`` changes only through :meth:`WatchIndex.add` and
  :meth:`WatchIndex.remove` once matching has run (a restore fills a new index);
* every watch has a sequence number that only grows, and matches are returned in the
  order C xenstored visits them: connections in creation order, then each connection's
  watches in registration order.
"""

from __future__ import annotations

from operator import attrgetter

from xsd.core.watches import Watch

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

_ABOVE_KEPT: Final = 1024
"""Paths whose watches on and above them :meth:`WatchIndex.matching` remembers."""

_ORDER: Final = attrgetter("conn_id", "seq")
"""Delivery order: connections in creation order, then registration order."""


class WatchIndex:
    """All watches of all connections, indexed by path."""

    __slots__ = ("_above", "by_path", "next_seq")

    def __init__(self) -> None:
        self.by_path: dict[str, list[Watch]] = {}
        self.next_seq = 1
        # The watches on a path and on its ancestors, by path, as matching found them:
        # the events of one change (a commit's) mostly share a parent. Emptied whenever
        # a watch comes or goes, and at _ABOVE_KEPT entries.
        self._above: dict[str, list[Watch]] = {}

    def add(self, conn_id: int, path: str, token: bytes, relative_to: str | None) -> Watch:
        """Register a watch (the caller has checked for duplicates)."""
        watch = Watch(conn_id, self.next_seq, path, token, relative_to)
        self.next_seq += 1
        self.by_path.setdefault(path, []).append(watch)
        self._above.clear()
        return watch

    def remove(self, watch: Watch) -> None:
        """Unregister one watch."""
        bucket = self.by_path[watch.path]
        del bucket[index_of(bucket, watch)]
        if not bucket:
            del self.by_path[watch.path]
        self._above.clear()

    def matching(self, path: str, exact: bool) -> list[Watch]:
        """Watches fired by an event on ``path``, in delivery order.

        ``exact`` events (and special ``@`` events) fire only watches on the path
        itself; others also fire watches on its ancestors.
        """
        by_path = self.by_path
        if not by_path:
            return []
        found = list(by_path.get(path, ()))
        if not exact and path[:1] == "/" and path != "/":
            cut = path.rfind("/")
            parent = path[:cut] if cut > 0 else "/"
            above = self._above.get(parent)
            if above is None:
                above = self._on_and_above(parent)
                if len(self._above) >= _ABOVE_KEPT:
                    self._above.clear()
                self._above[parent] = above
            found.extend(above)
        if len(found) > 1:
            found.sort(key=_ORDER)
        return found

    def _on_and_above(self, path: str) -> list[Watch]:
        """The watches on ``path`` (absolute) and on its ancestors."""
        by_path = self.by_path
        found = list(by_path.get(path, ()))
        up = path
        while up != "/":  # ancestors(path), without the list
            cut = up.rfind("/")
            up = up[:cut] if cut > 0 else "/"
            bucket = by_path.get(up)
            if bucket:
                found.extend(bucket)
        return found


def index_of(watches: list[Watch], watch: Watch) -> int:
    """Where ``watch`` itself is in ``watches``: found by identity, not by ``list.index``,
    whose field-by-field comparisons (``Fields.__eq__``) cost microseconds a watch.

    Raises:
        ValueError: it is not there.
    """
    for i, other in enumerate(watches):
        if other is watch:
            return i
    raise ValueError("watch not registered")
