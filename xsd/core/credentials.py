"""A peer's credentials (SO_PEERCRED), as data.

Its own module, not the connections', because the daemon's hot modules are compiled
(``setup.py``) and a :class:`~xsd.core.fields.Fields` class must not be (see
``xsd.core.caller``).
"""

from __future__ import annotations

from xsd.core.fields import Fields


class Credentials(Fields):
    """The peer's pid, uid and gid from SO_PEERCRED, if known."""

    __slots__ = ("gid", "pid", "uid")
    pid: int
    uid: int
    gid: int

    def __init__(self, pid: int, uid: int, gid: int) -> None:
        self.pid = pid
        self.uid = uid
        self.gid = gid
