"""What the store knows of one domain, as data, and the ids domains can have.

Which domains exist, and when (known, introduced, released), is the rule in
:mod:`xsd.core.domain_ids`, which keeps these records. Its own module, not the rule's,
because the rule is compiled (``setup.py``) and a :class:`~xsd.core.fields.Fields`
class must not be.
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
