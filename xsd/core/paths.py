"""Canonical node paths.

A canonical path is absolute (``/`` or ``/a/b``), uses only ``A-Z a-z 0-9 - / _ @``,
has no empty component and no trailing slash. A relative path is taken below the
connection's home, ``/local/domain/<domid>``. Paths starting with ``@`` are special
(watch names such as ``@releaseDomain``) and only some requests accept them.
"""

from __future__ import annotations

from xsd.core.errors import XsError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

_VALID: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/_@"

PATH_MAX_DEFAULT: Final = 2048
"""C's ``path-max`` quota: the limit on the part of a path below ``/local/domain/<N>/``."""


def home_of(domid: int) -> str:
    """The directory relative paths of domain ``domid`` resolve under."""
    return f"/local/domain/{domid}"


def is_valid(path: bytes) -> bool:
    """True if ``path`` (absolute or special) has only valid characters and components."""
    if not path:
        return False
    if path.translate(None, _VALID):  # what is left once the valid bytes are deleted
        return False
    if b"//" in path:
        return False
    return not (path.endswith(b"/") and path != b"/")


def relative_length(path: str) -> int:
    """The length the ``path-max`` quota counts: below ``/local/domain/<N>/`` if there."""
    if path.startswith("/local/domain/"):
        slash = path.find("/", 14)
        # C 4.17 strips the prefix only for a domid of at most 5 characters.
        if 14 < slash <= 19 and path[14:slash].isdigit():
            return len(path) - slash - 1
    return len(path)


def canonicalize(
    raw: bytes, domid: int, *, allow_special: bool = False, path_max: int = PATH_MAX_DEFAULT
) -> str:
    """The canonical form of a request's path argument.

    Raises:
        XsError: EINVAL for an invalid path, a special path where none is allowed, or a
            path longer than ``path_max`` (0 disables the length check).
    """
    if raw[:1] == b"@":
        if not allow_special or not is_valid(raw):
            raise XsError("EINVAL")
        return raw.decode()
    if raw[:1] != b"/":
        raw = home_of(domid).encode() + b"/" + raw
    if not is_valid(raw):
        raise XsError("EINVAL")
    path = raw.decode()
    if path_max and relative_length(path) > path_max:
        raise XsError("EINVAL")
    return path


def parent_of(path: str) -> str:
    """``/a/b`` -> ``/a``; ``/a`` -> ``/``."""
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else "/"


def ancestors(path: str) -> list[str]:
    """Proper ancestors of ``path``, nearest first: ``/a/b/c`` -> ``/a/b``, ``/a``, ``/``."""
    out = []
    while path != "/":
        cut = path.rfind("/")  # parent_of, inlined: this runs for every watch event
        path = path[:cut] if cut > 0 else "/"
        out.append(path)
    return out
