"""The requests about domains and their quotas, and what naming or releasing one does.

INTRODUCE, RELEASE, RESUME, SET_TARGET, IS_DOMAIN_INTRODUCED, GET_DOMAIN_PATH,
GET_QUOTA and SET_QUOTA: handlers of the :class:`~xsd.core.engine.Engine`, which
calls them with itself first. They check their arguments as C xenstored does.
:func:`check_perms` and :func:`adopt_owners` are where SET_PERMS and a transaction's
commit make domains known; which domains exist, and when, is the rule written down in
:mod:`xsd.core.domains`.
"""

from __future__ import annotations

from collections.abc import Callable

from xsd.core import ops, quota
from xsd.core import perms as P
from xsd.core.domains import (
    DOMID_FIRST_RESERVED,
    DOMID_SELF,
    Domain,
    c_atoi,
    may_exist,
    parse_domid,
)
from xsd.core.effects import CloseConnection, DomainIntroduced, DomainReleased
from xsd.core.errors import XsError
from xsd.core.paths import home_of
from xsd.core.payloads import OK, one_arg
from xsd.core.views import DirectView
from xsd_client.protocol import split_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from xsd.core.connections import Connection
    from xsd.core.engine import Engine
    from xsd.core.views import Transaction


def introduce(engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) < 3:
        raise XsError("EINVAL")
    domid = parse_domid(args[0]) & 0xFFFF  # C stores it in a 16-bit domid_t
    evtchn = c_atoi(args[2]) & 0xFFFFFFFF
    if evtchn == 0:
        raise XsError("EINVAL")
    if domid >= DOMID_FIRST_RESERVED:
        raise XsError("EINVAL")  # deliberate: no socket for a reserved domid
    domains = engine.state.domains
    domain = domains.get(domid)
    if domain is None:
        domain = domains[domid] = Domain(domid, introduced=False)
    if not domain.introduced:  # a new domain, or one domain 0 has only named so far
        domain.introduced = True
        domain.gfn = c_atoi(args[1])
        domain.evtchn = evtchn
        if domid != 0:
            for observer in engine.observers:
                observer.on_introduce(engine, domid)
            engine.fire("@introduceDomain")
            engine.effects.append(DomainIntroduced(domid))
    else:
        domain.evtchn = evtchn
    return OK


def name(engine: Engine, domid: int) -> bool:
    """Domain 0 named ``domid``: from now on it is known (if an id a domain can have).

    Returns whether the domain is known.
    """
    domains = engine.state.domains
    if domid in domains:
        return True
    if not may_exist(domid):
        return False
    domains[domid] = Domain(domid, introduced=False)
    return True


def check_perms(engine: Engine, conn: Connection, perms: P.Perms) -> P.Perms:
    """A SET_PERMS list as the node will keep it.

    A privileged caller's list makes every domain it names known (before the node is
    even looked at, as C allocates its domain structures). An entry naming a domain that
    is not known is kept, flagged ignored, so a domain made later with that id gets
    nothing from it (XSA-322).

    Raises:
        XsError: ENOENT for an owner that is no known domain.
    """
    if conn.privileged:
        for _, who in perms:
            name(engine, who)
    domains = engine.state.domains
    if perms[0][1] not in domains:
        raise XsError("ENOENT")
    return P.flag_absent(perms, domains.__contains__)


def adopt_owners(engine: Engine, tx: Transaction) -> None:
    """A transaction committed: the owners of the nodes it wrote are known domains.

    An owner can be unknown only if it was released while the transaction was open; the
    commit names it again, making a new domain, as C xenstored does once the hypervisor
    still knows the id. (Permission entries naming it were flagged at the release.)
    """
    for path in tx.modified:
        node = tx.nodes[path]
        if node is not None:
            name(engine, node.perms[0][1])


def _known_domain(engine: Engine, payload: bytes) -> int:
    domid = parse_domid(one_arg(payload))
    if domid == 0:
        raise XsError("EINVAL")
    if not _introduced(engine, domid):
        raise XsError("ENOENT")
    return domid


def _introduced(engine: Engine, domid: int) -> bool:
    domain = engine.state.domains.get(domid)
    return domain is not None and domain.introduced


def release(engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    domid = _known_domain(engine, payload)
    engine.release_after_reply = domid  # C answers first, then tears the domain down
    return OK


def release_domain(engine: Engine, domid: int) -> None:
    """Forget a domain: close its connections, remove its nodes, fire @releaseDomain."""
    for other in list(engine.state.connections.values()):
        if other.domid == domid and not other.privileged:
            engine.disconnect(other.id)
            engine.effects.append(CloseConnection(other.id))
    del engine.state.domains[domid]
    tree = engine.state.tree
    view = DirectView(tree)
    owned = [p for p in tree.walk() if p != "/" and tree.nodes[p].perms[0][1] == domid]
    for path in owned:
        if path in tree.nodes:
            for event_path, exact, old in ops.rm(view, ops.DOM0, path):
                engine.fire(event_path, exact, old)
    # The domain's ACL entries stay, flagged ignored (GET_PERMS shows them, as C's), so a
    # new domain with its id inherits nothing; so do those of open transactions' copies.
    gone = _forgotten(domid)
    for path, node in tree.nodes.items():
        perms = gone(node.perms)
        if perms is not node.perms:
            node.perms = perms  # same length, same cost: the usage stays true
            tree.changed(path)
    for conn in engine.state.connections.values():
        for tx in conn.transactions.values():
            for copy in tx.nodes.values():
                if copy is not None:
                    copy.perms = gone(copy.perms)
    # The special nodes forget it: entries removed, ownership back to domain 0 (as C).
    special = engine.state.special_perms
    for name_, perms in special.items():
        access, owner = perms[0]
        special[name_] = P.intern(
            ((access, 0 if owner == domid else owner), *(e for e in perms[1:] if e[1] != domid))
        )
    tree.usage.pop(domid, None)
    for observer in engine.observers:
        observer.on_release(engine, domid)
    engine.fire("@releaseDomain")
    engine.effects.append(DomainReleased(domid))


def _forgotten(domid: int) -> Callable[[P.Perms], P.Perms]:
    """A function flagging ignored the (non-owner) entries of a list naming ``domid``."""

    def flag(perms: P.Perms) -> P.Perms:
        if not any(who == domid and not a & P.IGNORE for a, who in perms[1:]):
            return perms
        return P.intern((perms[0], *((a | P.IGNORE if w == domid else a, w) for a, w in perms[1:])))

    return flag


def resume(engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    _known_domain(engine, payload)
    return OK


def set_target(engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) < 2:
        raise XsError("EINVAL")
    domid = parse_domid(args[0])
    target = parse_domid(args[1])
    if not (_introduced(engine, domid) and _introduced(engine, target)):
        raise XsError("ENOENT")
    engine.state.domains[domid].target = target
    return OK


def is_domain_introduced(
    engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes
) -> bytes:
    domid = parse_domid(one_arg(payload))
    return b"T\0" if _introduced(engine, domid) or domid == DOMID_SELF else b"F\0"


def get_domain_path(
    engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes
) -> bytes:
    domid = parse_domid(one_arg(payload))
    return home_of(domid).encode() + b"\0"


def get_quota(engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if not args:
        return " ".join(quota.WIRE_NAMES).encode() + b"\0"
    if len(args) > 2:
        raise XsError("EINVAL")
    if len(args) == 1:
        return f"{quota.get_global(engine.state.quotas, args[0])}".encode() + b"\0"
    domain = engine.state.domains.get(parse_domid(args[0]))
    if domain is None:
        raise XsError("ENOENT")
    name = quota.internal_name(args[1])
    value = domain.quota.get(name, engine.state.quotas.hard[name])
    return f"{value}".encode() + b"\0"


def set_quota(engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) == 2:
        quota.set_global(engine.state.quotas, args[0], args[1])
        return OK
    if len(args) != 3:
        raise XsError("EINVAL")
    domain = engine.state.domains.get(parse_domid(args[0]))
    if domain is None:
        raise XsError("ENOENT")
    name = quota.internal_name(args[1])
    if name == "soft-memory" or not args[2].isdigit():
        raise XsError("EINVAL")
    domain.quota[name] = int(args[2])
    return OK
