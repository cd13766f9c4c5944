"""The requests about domains and their quotas: INTRODUCE, RELEASE, RESUME, SET_TARGET,
IS_DOMAIN_INTRODUCED, GET_DOMAIN_PATH, GET_QUOTA, SET_QUOTA (C's ``xenstored_domain.c``),
and what releasing a domain does.

They check their arguments as C xenstored does. Which domains exist, and when, is the
rule written down in :mod:`xsd.core.domain_ids`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from xsd.core import ops, quota
from xsd.core import perms as P
from xsd.core.domain_ids import c_atoi, parse_domid
from xsd.core.domains import DOMID_FIRST_RESERVED, DOMID_SELF, Domain
from xsd.core.effects import CloseConnection, DomainIntroduced, DomainReleased
from xsd.core.errors import XsError
from xsd.core.paths import home_of
from xsd.core.payloads import OK, one_arg
from xsd.core.views import DirectView
from xsd_client.protocol import split_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from xsd.core.connections import Connection
    from xsd.core.context import Context
    from xsd.core.views import Transaction


def introduce(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) < 3:
        raise XsError("EINVAL")
    domid = parse_domid(args[0]) & 0xFFFF  # C stores it in a 16-bit domid_t
    evtchn = c_atoi(args[2]) & 0xFFFFFFFF
    if evtchn == 0:
        raise XsError("EINVAL")
    if domid >= DOMID_FIRST_RESERVED:
        raise XsError("EINVAL")  # deliberate: no socket for a reserved domid
    domains = ctx.state.domains
    domain = domains.get(domid)
    if domain is None:
        domain = domains[domid] = Domain(domid, introduced=False)
    if not domain.introduced:  # a new domain, or one domain 0 has only named so far
        domain.introduced = True
        domain.gfn = c_atoi(args[1])
        domain.evtchn = evtchn
        if domid != 0:
            for observer in ctx.observers:
                observer.on_introduce(domid)
            ctx.fire("@introduceDomain")
            ctx.effects.append(DomainIntroduced(domid))
    else:
        domain.evtchn = evtchn
    return OK


def _known_domain(ctx: Context, payload: bytes) -> int:
    domid = parse_domid(one_arg(payload))
    if domid == 0:
        raise XsError("EINVAL")
    if not _introduced(ctx, domid):
        raise XsError("ENOENT")
    return domid


def _introduced(ctx: Context, domid: int) -> bool:
    domain = ctx.state.domains.get(domid)
    return domain is not None and domain.introduced


def release(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    domid = _known_domain(ctx, payload)
    ctx.after_reply.append(partial(release_domain, ctx, domid))  # C answers first
    return OK


def release_domain(ctx: Context, domid: int) -> None:
    """End a domain: close its connections, remove its nodes, flag the permission
    entries naming it ignored, fire @releaseDomain; its id is unknown again."""
    for other in list(ctx.state.connections.values()):
        if other.domid == domid and not other.privileged:
            ctx.disconnect(other.id)
            ctx.effects.append(CloseConnection(other.id))
    del ctx.state.domains[domid]
    tree = ctx.state.tree
    view = DirectView(tree)
    usage = tree.usage.get(domid)
    owned = []
    if usage and usage[0]:  # it owns nodes (the usage counts them): find them
        owned = [p for p in tree.walk() if p != "/" and tree.nodes[p].perms[0][1] == domid]
    for path in owned:
        if path in tree.nodes:
            for event_path, exact, old in ops.rm(view, ops.DOM0, path):
                ctx.fire(event_path, exact, old)
    # The domain's ACL entries stay, flagged ignored (GET_PERMS shows them, as C's), so a
    # new domain with its id inherits nothing; so do those of open transactions' copies.
    gone = _forgotten(domid)
    # Nodes share a few permission lists (interned): each is looked at once. A list
    # is kept alive beside its id here, so that no other can take its id meanwhile.
    seen: dict[int, tuple[P.Perms, P.Perms]] = {}
    for path, node in tree.nodes.items():
        old = node.perms
        known = seen.get(id(old))
        if known is None:
            known = seen[id(old)] = (old, gone(old))
        perms = known[1]
        if perms is not old:
            node.perms = perms  # same length, same cost: the usage stays true
            tree.changed(path)
    for conn in ctx.state.connections.values():
        for tx in conn.transactions.values():
            for copy in tx.nodes.values():
                if copy is not None:
                    copy.perms = gone(copy.perms)
    # The special nodes forget it: entries removed, ownership back to domain 0 (as C).
    special = ctx.state.special_perms
    for name_, perms in special.items():
        access, owner = perms[0]
        special[name_] = P.intern(
            ((access, 0 if owner == domid else owner), *(e for e in perms[1:] if e[1] != domid))
        )
    tree.usage.pop(domid, None)
    for observer in ctx.observers:
        observer.on_release(domid)
    ctx.fire("@releaseDomain")
    ctx.effects.append(DomainReleased(domid))


def _forgotten(domid: int) -> Callable[[P.Perms], P.Perms]:
    """A function flagging ignored the (non-owner) entries of a list naming ``domid``."""

    def flag(perms: P.Perms) -> P.Perms:
        if not any(who == domid and not a & P.IGNORE for a, who in perms[1:]):
            return perms
        return P.intern((perms[0], *((a | P.IGNORE if w == domid else a, w) for a, w in perms[1:])))

    return flag


def resume(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    _known_domain(ctx, payload)
    return OK


def set_target(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) < 2:
        raise XsError("EINVAL")
    domid = parse_domid(args[0])
    target = parse_domid(args[1])
    if not (_introduced(ctx, domid) and _introduced(ctx, target)):
        raise XsError("ENOENT")
    ctx.state.domains[domid].target = target
    return OK


def is_domain_introduced(
    ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes
) -> bytes:
    domid = parse_domid(one_arg(payload))
    return b"T\0" if _introduced(ctx, domid) or domid == DOMID_SELF else b"F\0"


def get_domain_path(
    ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes
) -> bytes:
    domid = parse_domid(one_arg(payload))
    return home_of(domid).encode() + b"\0"


def get_quota(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if not args:
        return " ".join(quota.WIRE_NAMES).encode() + b"\0"
    if len(args) > 2:
        raise XsError("EINVAL")
    if len(args) == 1:
        return f"{quota.get_global(ctx.state.quotas, args[0])}".encode() + b"\0"
    domain = ctx.state.domains.get(parse_domid(args[0]))
    if domain is None:
        raise XsError("ENOENT")
    name = quota.internal_name(args[1])
    value = domain.quota.get(name, ctx.state.quotas.hard[name])
    return f"{value}".encode() + b"\0"


def set_quota(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) == 2:
        quota.set_global(ctx.state.quotas, args[0], args[1])
        return OK
    if len(args) != 3:
        raise XsError("EINVAL")
    domain = ctx.state.domains.get(parse_domid(args[0]))
    if domain is None:
        raise XsError("ENOENT")
    name = quota.internal_name(args[1])
    if name == "soft-memory" or not args[2].isdigit():
        raise XsError("EINVAL")
    domain.quota[name] = int(args[2])
    return OK
