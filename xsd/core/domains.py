"""Domains known to the store.

Domain 0 is introduced from the start and is privileged. Others exist from INTRODUCE
until RELEASE. A domain's connections act as that domain; SET_TARGET lets a device
model domain act for its target.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xsd.core.errors import XsError

DOMID_MAX = 65535


@dataclass(slots=True)
class Domain:
    """What the store knows of one domain."""

    domid: int
    gfn: int = 0
    evtchn: int = 0
    target: int | None = None
    quota: dict[str, int] = field(default_factory=dict)  # overrides of the global quotas


def parse_domid(raw: bytes) -> int:
    """A domid as C's ``strtoul`` with full consumption and ``<= 65535`` accepts it.

    Raises:
        XsError: EINVAL otherwise.
    """
    text = raw.strip(b" \t\n\v\f\r")
    if raw[:1].isspace() and text[:1].isdigit():
        pass  # strtoul skips leading white space
    elif not raw[:1].isdigit() and raw[:1] != b"+":
        raise XsError("EINVAL")
    if text.startswith(b"+"):
        text = text[1:]
    if not text.isdigit() or len(raw.rstrip()) != len(raw):
        raise XsError("EINVAL")
    value = int(text)
    if value > DOMID_MAX:
        raise XsError("EINVAL")
    return value


def c_atoi(raw: bytes) -> int:
    """C's lenient ``atoi``: leading white space, a sign, digits; anything else stops it."""
    s = raw.lstrip(b" \t\n\v\f\r")
    sign = 1
    if s[:1] in (b"+", b"-"):
        sign = -1 if s[:1] == b"-" else 1
        s = s[1:]
    digits = b""
    for ch in s:
        if 48 <= ch <= 57:
            digits += bytes((ch,))
        else:
            break
    return sign * int(digits) if digits else 0
