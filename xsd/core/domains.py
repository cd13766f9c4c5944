"""Domains known to the store, and the rule that says which domains exist.

There is no hypervisor to ask, so the store learns of domains from domain 0 (any
privileged connection), as a toolstack tells it about them. A domain id's life:

* **unknown**: nothing names it. A permission entry naming it (SET_PERMS by an
  unprivileged domain) is kept but ignored; an owner naming it is ENOENT.
* **known** ("created"): a privileged SET_PERMS named it (owner or any entry, even in a
  transaction, even if the request then fails, as C xenstored allocates its domain
  structure before it looks at the node), or a transaction committed a node it owns.
  This is what libxl relies on: it lays out ``/local/domain/N`` and the device nodes,
  with permissions naming N, before ``INTRODUCE N``. Nodes it owns count towards its
  quotas from then on; it has no connection yet, so ``IS_DOMAIN_INTRODUCED`` says F and
  RELEASE, RESUME and SET_TARGET say ENOENT, as in C.
* **introduced**: INTRODUCE made it (known or not before) a domain with a ring: its
  socket opens, ``@introduceDomain`` fires, its watchdogs are made.
* **released**: RELEASE ends it. Its connections close, the nodes it owns are removed,
  every permission entry naming it, in the tree and in open transactions' copies, is
  flagged ignored (GET_PERMS still shows it, as C's does), the special nodes forget it,
  ``@releaseDomain`` fires, and the id is unknown again: the next naming is a new
  domain that inherits nothing (XSA-322).

C xenstored gets the same effect lazily: each domain records the generation count at
which it was created, and an entry naming a domain created after the node was last
written is ignored when the node is next read. With the whole tree in memory xsd flags
the entries eagerly at RELEASE, which also covers a transaction opened before the
release and committed after it, and two incarnations created at the same generation.
A domain named but never introduced stays known (C: until the hypervisor destroys it);
without a hypervisor the toolstack ends one by introducing and releasing it. Ids at or
above :data:`DOMID_FIRST_RESERVED` never exist. Domain 0 is introduced from the start
and is privileged. SET_TARGET lets a device model domain act for its target.
"""

from __future__ import annotations

from xsd.core.fields import Fields

DOMID_MAX = 65535
DOMID_FIRST_RESERVED = 0x7FF0
DOMID_SELF = 0x7FF0


class Domain(Fields):
    """What the store knows of one domain."""

    __slots__ = (
        "domid",
        "evtchn",
        "gfn",
        "introduced",
        "quota",
        "target",
        "wrl_credit",
        "wrl_stamp",
    )
    domid: int
    gfn: int
    evtchn: int
    target: int | None
    quota: dict[str, int]  # overrides of the global quotas
    wrl_credit: float  # writes it may still make now (xsd.core.ratelimit)
    wrl_stamp: int  # when the credit was last brought up to date (monotonic ns)
    introduced: bool  # INTRODUCE gave it a ring (else only named by domain 0 so far)

    def __init__(
        self,
        domid: int,
        gfn: int = 0,
        evtchn: int = 0,
        target: int | None = None,
        quota: dict[str, int] | None = None,
        wrl_credit: float = 10.0,
        wrl_stamp: int = 0,
        introduced: bool = True,
    ) -> None:
        self.domid = domid
        self.gfn = gfn
        self.evtchn = evtchn
        self.target = target
        self.quota = {} if quota is None else quota
        self.wrl_credit = wrl_credit
        self.wrl_stamp = wrl_stamp
        self.introduced = introduced


def may_exist(domid: int) -> bool:
    """True for an id a domain can have (0 up to, not including, the reserved ids)."""
    return 0 <= domid < DOMID_FIRST_RESERVED


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
