"""Node permissions: the owner entry first, then an access control list.

A permission list is a tuple of ``(access, domid)`` pairs, ``access`` being a bit set of
:data:`READ` and :data:`WRITE`. Entry 0 names the owner, and its access is the default
for every domain without an entry of its own; the first matching later entry decides
for a domain that has one. Identical lists are interned (:func:`intern`) so that the
many nodes sharing a list share one tuple.
"""

from __future__ import annotations

from collections.abc import Callable

from xsd.core.errors import XsError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

NONE: Final = 0
READ: Final = 1
WRITE: Final = 2
BOTH: Final = READ | WRITE
OWNER: Final = 4
FULL: Final = READ | WRITE | OWNER
IGNORE: Final = 8
"""Flag of an ACL entry naming a domain that did not exist when it was set (C's
``XS_PERM_IGNORE``): shown by GET_PERMS, never matched, so a domain introduced later
with that id inherits nothing (XSA-322)."""

Perms = tuple[tuple[int, int], ...]

_LETTER_TO_ACCESS: Final = {ord("n"): NONE, ord("r"): READ, ord("w"): WRITE, ord("b"): BOTH}
_ACCESS_TO_LETTER: Final = {NONE: "n", READ: "r", WRITE: "w", BOTH: "b"}

_interned: Final[dict[Perms, Perms]] = {}


def intern(perms: Perms) -> Perms:
    """One shared tuple for each distinct permission list."""
    return _interned.setdefault(perms, perms)


DEFAULT: Final[Perms] = intern(((NONE, 0),))
"""``n0``: the permissions of the initial nodes."""


def _c_strtol(text: bytes) -> int | None:
    """C's ``strtol(text, &end, 0)`` requiring the whole text to be consumed.

    Base 0 accepts leading white space, a sign, ``0x`` hex and ``0`` octal, as the C
    daemon's parser does. Returns None where C would reject the entry.
    """
    if text.isdigit() and (text[:1] != b"0" or len(text) == 1):
        return int(text)  # plain decimal, as nearly every entry is
    s = text.lstrip(b" \t\n\v\f\r")
    sign = 1
    if s[:1] in (b"+", b"-"):
        sign = -1 if s[:1] == b"-" else 1
        s = s[1:]
    base = 10
    if s[:2].lower() == b"0x" and len(s) > 2:
        base, s = 16, s[2:]
    elif s[:1] == b"0" and len(s) > 1:
        base, s = 8, s[1:]
    if not s:
        return None
    try:
        value = int(s, base)
    except ValueError:
        return None
    if not s.isalnum():  # int() also accepts "_" separators and spaces that strtol does not
        return None
    return sign * value


def parse(entries: list[bytes]) -> Perms:
    """Permission strings from the wire (``[b"n0", b"r5"]``) to a list.

    Raises:
        XsError: EINVAL for an empty list or a malformed entry.
    """
    if not entries:
        raise XsError("EINVAL")
    out = []
    for entry in entries:
        access = _LETTER_TO_ACCESS.get(entry[0]) if entry else None
        if access is None:
            raise XsError("EINVAL")
        domid = _c_strtol(entry[1:])
        if domid is None:
            raise XsError("EINVAL")
        # The C daemon stores the id in an unsigned int and prints it with %i.
        domid &= 0xFFFFFFFF
        if domid >= 0x80000000:
            domid -= 0x100000000
        out.append((access, domid))
    return intern(tuple(out))


def format_perms(perms: Perms) -> bytes:
    """The GET_PERMS reply payload: ``b"n0\\0r5\\0"``."""
    return b"".join(f"{_ACCESS_TO_LETTER[a & BOTH]}{d}".encode() + b"\0" for a, d in perms)


def to_strings(perms: Perms) -> list[str]:
    """``[("n", 0)]`` style display: ``["n0", "r5"]``."""
    return [f"{_ACCESS_TO_LETTER[a & BOTH]}{d}" for a, d in perms]


def access_for(perms: Perms, domid: int, target: int | None) -> int:
    """What domain ``domid`` (acting also for ``target``, if set) may do on a node.

    Privileged callers never get here (they have :data:`FULL`). The owner, or the
    owner's device model, has full access; else the first ACL entry naming the caller
    or its target decides (entries flagged :data:`IGNORE` never do); else the owner
    entry's default.
    """
    owner_access, owner = perms[0]
    if owner == domid or (target is not None and owner == target):
        return FULL
    for access, who in perms[1:]:
        if (who == domid or (target is not None and who == target)) and not access & IGNORE:
            return access
    return owner_access


def flag_absent(perms: Perms, exists: Callable[[int], bool]) -> Perms:
    """``perms`` with every ACL entry naming a domain that does not ``exist`` flagged
    :data:`IGNORE` (the owner entry is the caller's to check)."""
    if all(exists(who) or access & IGNORE for access, who in perms[1:]):
        return perms
    return intern((perms[0], *((a if exists(w) else a | IGNORE, w) for a, w in perms[1:])))


def for_new_child(parent: Perms, creator: int, privileged: bool) -> Perms:
    """Permissions of a node created below ``parent``: a copy, owned by an unprivileged creator."""
    if privileged:
        return parent
    return intern(((parent[0][0], creator), *parent[1:]))
