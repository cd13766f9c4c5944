"""A registered watch, as data: whose, on what, with which token, in what order.

A watch belongs to one connection and has a canonical path (or a special ``@`` name),
a token, and whether it was registered with a relative path (its events then report
paths relative to the connection's home). Which watches an event fires:
:mod:`xsd.core.watch_index`. Invariants:

* within one connection, a (path, token) pair is registered at most once;
* every watch has a sequence number that only grows (the index hands them out).

Its own module, not the index's, because the index is compiled (``setup.py``) and a
:class:`~xsd.core.fields.Fields` class must not be.
"""

from __future__ import annotations

from xsd.core.fields import Fields


class Watch(Fields):
    """One registered watch."""

    __slots__ = ("conn_id", "path", "relative_to", "seq", "token")
    conn_id: int
    seq: int
    path: str
    token: bytes
    relative_to: str | None  # the home prefix to strip from event paths, if relative

    def __init__(
        self, conn_id: int, seq: int, path: str, token: bytes, relative_to: str | None
    ) -> None:
        self.conn_id = conn_id
        self.seq = seq
        self.path = path
        self.token = token
        self.relative_to = relative_to

    def event_path(self, path: str) -> str:
        """The path reported to this watch's owner for an event on ``path``."""
        prefix = self.relative_to
        if prefix is not None and path.startswith(prefix) and len(path) > len(prefix):
            return path[len(prefix) + 1 :]
        return path
