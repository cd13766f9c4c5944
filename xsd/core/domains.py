"""Domains known to the store.

Domain 0 is introduced from the start and is privileged. Others exist from INTRODUCE
until RELEASE. A domain's connections act as that domain; SET_TARGET lets a device
model domain act for its target.
"""

from __future__ import annotations

from xsd.core.fields import Fields

DOMID_MAX = 65535
DOMID_FIRST_RESERVED = 0x7FF0
DOMID_SELF = 0x7FF0


class Domain(Fields):
    """What the store knows of one domain."""

    __slots__ = ("domid", "evtchn", "gfn", "quota", "target", "wrl_credit", "wrl_stamp")
    domid: int
    gfn: int
    evtchn: int
    target: int | None
    quota: dict[str, int]  # overrides of the global quotas
    wrl_credit: float  # writes it may still make now (xsd.core.ratelimit)
    wrl_stamp: int  # when the credit was last brought up to date (monotonic ns)

    def __init__(
        self,
        domid: int,
        gfn: int = 0,
        evtchn: int = 0,
        target: int | None = None,
        quota: dict[str, int] | None = None,
        wrl_credit: float = 10.0,
        wrl_stamp: int = 0,
    ) -> None:
        self.domid = domid
        self.gfn = gfn
        self.evtchn = evtchn
        self.target = target
        self.quota = {} if quota is None else quota
        self.wrl_credit = wrl_credit
        self.wrl_stamp = wrl_stamp


def parse_domid(raw: bytes) -> int:
    """A domid as C xenstored 4.17 reads it: ``atoi``, then taken as unsigned 32-bit.

    Junk reads as 0 and ``-1`` as 4294967295, exactly as the reference daemon answers.
    """
    return c_atoi(raw) & 0xFFFFFFFF


def c_atoi(raw: bytes) -> int:
    """C's lenient ``atoi``: leading white space, a sign, digits; anything else stops it.

    The result wraps to a 32-bit ``int`` as it does in C (``4294967296`` reads as 0).
    """
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
    value = (sign * int(digits) if digits else 0) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value
