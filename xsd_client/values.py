"""The values the clients hand out: a permission entry and a watch event.

Both are :class:`~xsd_client.frozen.Frozen`: immutable, equal and hashed by value.
"""

from __future__ import annotations

from .frozen import Frozen

__all__ = ["Perm", "WatchEvent"]

_ACCESS = frozenset("nrwb")


class Perm(Frozen):
    """One permission entry: an access letter and a domain id.

    ``access`` is ``"n"`` (none), ``"r"`` (read), ``"w"`` (write) or ``"b"`` (both). The
    first entry of a node's list names its owner and the default for other domains.
    ``str(Perm("r", 5)) == "r5"`` is the wire form. Immutable and hashable.
    """

    __slots__ = ("access", "domid")
    access: str
    domid: int

    def __init__(self, access: str, domid: int) -> None:
        if access not in _ACCESS or len(access) != 1:
            raise ValueError(f"access must be one of n, r, w, b; got {access!r}")
        object.__setattr__(self, "access", access)
        object.__setattr__(self, "domid", domid)

    def __repr__(self) -> str:
        return f"Perm({self.access!r}, {self.domid!r})"

    def __str__(self) -> str:
        return f"{self.access}{self.domid}"

    @classmethod
    def parse(cls, text: str) -> Perm:
        """Parse the wire form ``"<letter><domid>"`` (``"b0"``).

        Raises:
            ValueError: not a letter among n, r, w, b followed by a decimal domid.
        """
        if len(text) < 2 or not text[1:].isdigit():
            raise ValueError(f"bad permission {text!r}")
        return cls(text[0], int(text[1:]))


class WatchEvent(Frozen):
    """A watch fired: ``path`` is the node that changed (or the watched path itself for
    the event every watch gets when it is set); ``token`` is the watch's token."""

    __slots__ = ("path", "token")
    path: str
    token: str

    def __init__(self, path: str, token: str) -> None:
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "token", token)

    def __repr__(self) -> str:
        return f"WatchEvent(path={self.path!r}, token={self.token!r})"
