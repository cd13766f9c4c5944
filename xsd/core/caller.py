"""Who is asking: the caller of a node operation, as data (``xsd.core.ops`` takes it).

Its own module, not the operations', because the daemon's hot modules are compiled
(``setup.py``) and a :class:`~xsd.core.fields.Fields` class must not be: a compiled class
keeps neither its annotations nor its ``__init__``'s code, which ``fields`` reads.
"""

from __future__ import annotations

from collections.abc import Mapping

from xsd.core.fields import Fields


class Caller(Fields):
    """Who is asking: a domain, whether it is privileged, its SET_TARGET target, and
    the quotas that apply to it (None: exempt, as privileged callers are). What it may
    do to a node: :func:`xsd.core.ops.access`."""

    __slots__ = ("domid", "limits", "privileged", "target")
    domid: int
    privileged: bool
    target: int | None
    limits: Mapping[str, int] | None

    def __init__(
        self,
        domid: int,
        privileged: bool,
        target: int | None = None,
        limits: Mapping[str, int] | None = None,
    ) -> None:
        self.domid = domid
        self.privileged = privileged
        self.target = target
        self.limits = limits
