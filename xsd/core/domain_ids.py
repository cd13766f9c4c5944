"""Which domains exist, and when: the rule, over the records of :mod:`xsd.core.domains`.

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
above :data:`~xsd.core.domains.DOMID_FIRST_RESERVED` never exist. Domain 0 is
introduced from the start and is privileged. SET_TARGET lets a device model domain act
for its target.
"""

from __future__ import annotations

from xsd.core import perms as P
from xsd.core.domains import DOMID_FIRST_RESERVED, Domain
from xsd.core.errors import XsError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from xsd.core.views import Transaction


def may_exist(domid: int) -> bool:
    """True for an id a domain can have (0 up to, not including, the reserved ids)."""
    return 0 <= domid < DOMID_FIRST_RESERVED


def name(domains: dict[int, Domain], domid: int) -> bool:
    """Domain 0 named ``domid``: from now on it is known (if an id a domain can have).

    Returns whether the domain is known.
    """
    if domid in domains:
        return True
    if not may_exist(domid):
        return False
    domains[domid] = Domain(domid, introduced=False)
    return True


def check_perms(domains: dict[int, Domain], privileged: bool, perms: P.Perms) -> P.Perms:
    """A SET_PERMS list as the node will keep it.

    A privileged caller's list makes every domain it names known (before the node is
    even looked at, as C allocates its domain structures). An entry naming a domain that
    is not known is kept, flagged ignored, so a domain made later with that id gets
    nothing from it (XSA-322).

    Raises:
        XsError: ENOENT for an owner that is no known domain.
    """
    if privileged:
        for _, who in perms:
            name(domains, who)
    if perms[0][1] not in domains:
        raise XsError("ENOENT")
    return P.flag_absent(perms, domains.__contains__)


def adopt_owners(domains: dict[int, Domain], tx: Transaction) -> None:
    """A transaction committed: the owners of the nodes it wrote are known domains.

    An owner can be unknown only if it was released while the transaction was open; the
    commit names it again, making a new domain, as C xenstored does while the hypervisor
    knows the id. (Permission entries naming it were flagged at the release.)
    """
    for path in tx.modified:
        node = tx.nodes[path]
        if node is not None:
            name(domains, node.perms[0][1])


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
