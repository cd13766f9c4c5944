"""The requests about domains and their quotas, and what releasing a domain does.

INTRODUCE, RELEASE, RESUME, SET_TARGET, IS_DOMAIN_INTRODUCED, GET_DOMAIN_PATH,
GET_QUOTA and SET_QUOTA: handlers of the :class:`~xsd.core.engine.Engine`, which
calls them with itself first. They check their arguments as C xenstored does.
"""

from __future__ import annotations

from xsd.core import ops, quota
from xsd.core import perms as P
from xsd.core.domains import DOMID_FIRST_RESERVED, DOMID_SELF, Domain, c_atoi, parse_domid
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
    if domid not in domains:
        domains[domid] = Domain(domid, c_atoi(args[1]), evtchn)
        if domid != 0:
            for observer in engine.observers:
                observer.on_introduce(engine, domid)
            engine.fire("@introduceDomain")
            engine.effects.append(DomainIntroduced(domid))
    else:
        domains[domid].evtchn = evtchn
    return OK


def _known_domain(engine: Engine, payload: bytes) -> int:
    domid = parse_domid(one_arg(payload))
    if domid == 0:
        raise XsError("EINVAL")
    if domid not in engine.state.domains:
        raise XsError("ENOENT")
    return domid


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
    # Scrub the domain's ACL entries so a new domain with its id inherits nothing.
    for path, node in tree.nodes.items():
        if any(who == domid for _, who in node.perms[1:]):
            tree.charge(path, node, -1)  # an entry fewer costs its owner 8 bytes less
            node.perms = P.intern((node.perms[0], *(e for e in node.perms[1:] if e[1] != domid)))
            tree.charge(path, node, 1)
            tree.changed(path)
    special = engine.state.special_perms
    for name, perms in special.items():
        special[name] = P.intern((perms[0], *(e for e in perms[1:] if e[1] != domid)))
    tree.usage.pop(domid, None)
    for observer in engine.observers:
        observer.on_release(engine, domid)
    engine.fire("@releaseDomain")
    engine.effects.append(DomainReleased(domid))


def resume(engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    _known_domain(engine, payload)
    return OK


def set_target(engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) < 2:
        raise XsError("EINVAL")
    domid = parse_domid(args[0])
    target = parse_domid(args[1])
    domains = engine.state.domains
    if domid not in domains or target not in domains:
        raise XsError("ENOENT")
    domains[domid].target = target
    return OK


def is_domain_introduced(
    engine: Engine, conn: Connection, tx: Transaction | None, payload: bytes
) -> bytes:
    domid = parse_domid(one_arg(payload))
    return b"T\0" if domid in engine.state.domains or domid == DOMID_SELF else b"F\0"


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
