"""A client's watches by token, and which of them a WATCH_EVENT goes to, sans I/O.

Both clients keep one. The blocking client holds its lock around every call; the trio
client needs none.
"""

from __future__ import annotations

from ._typing import Generic, Protocol, TypeVar
from .calls import dec, enc
from .protocol import parse_watch_event
from .values import WatchEvent

__all__ = ["WatchTable", "covers"]


class _Watch(Protocol):
    path: str
    token: str


W = TypeVar("W", bound=_Watch)


def covers(wpath: str, epath: str) -> bool:
    """True if an event on ``epath`` can come from a watch on ``wpath``."""
    if epath == wpath:
        return True
    base = wpath.rstrip("/")
    return epath.startswith(base + "/")


class WatchTable(Generic[W]):
    """The watches of one connection, under their tokens as sent."""

    def __init__(self) -> None:
        self._by_token: dict[bytes, list[W]] = {}
        self._depth: dict[int, int] = {}  # id(watch): its WATCH depth, if it has one

    def add(self, watch: W, depth: int | None = None) -> None:
        """Register ``watch`` (set with ``depth``, or None: every level): from now on
        its events reach it."""
        self._by_token.setdefault(enc(watch.token, "token"), []).append(watch)
        if depth is not None:
            self._depth[id(watch)] = depth

    def remove(self, watch: W) -> None:
        """Unregister ``watch``, if it is registered."""
        raw_token = enc(watch.token, "token")
        watches = self._by_token.get(raw_token, [])
        if watch in watches:
            watches.remove(watch)
            self._depth.pop(id(watch), None)
            if not watches:
                del self._by_token[raw_token]

    def find(self, path: str, token: str) -> W | None:
        """The watch on ``path`` with ``token``, if there is one."""
        for watch in self._by_token.get(enc(token, "token"), ()):
            if watch.path == path:
                return watch
        return None

    def all(self) -> list[W]:
        """Every watch (a reconnected client registers them again)."""
        return [w for ws in self._by_token.values() for w in ws]

    def registrations(self) -> list[tuple[str, str, int | None]]:
        """``(path, token, depth)`` of every watch, as it was set: what a reconnected
        client sends again (``xsd_client.reconnect.resume``)."""
        depth = self._depth
        return [(w.path, w.token, depth.get(id(w))) for ws in self._by_token.values() for w in ws]

    def take_all(self) -> list[W]:
        """Every watch, leaving the table empty."""
        watches = [w for ws in self._by_token.values() for w in ws]
        self._by_token = {}
        self._depth = {}
        return watches

    def route(self, payload: bytes) -> tuple[WatchEvent, list[W]]:
        """The event in a WATCH_EVENT payload and the watches to hand it to.

        Several watches may share a token on different paths: the event goes to those it
        can belong to, or to all of them if it fits none (spurious events are allowed,
        lost ones are not). No watch: the token is one nobody holds any more.
        """
        epath, token = parse_watch_event(payload)
        watches = list(self._by_token.get(token, ()))
        if len(watches) > 1:
            watches = [w for w in watches if covers(w.path, epath)] or watches
        return WatchEvent(epath, dec(token)), watches
