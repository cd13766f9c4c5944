"""The watch requests: WATCH, UNWATCH, RESET_WATCHES (C's ``xenstored_watch.c``).

Which watches an event fires, and who may see it, is the context's
(:meth:`~xsd.core.context.Context.fire`); here watches are added and removed, within the
``watches`` and ``watch-memory`` quotas of unprivileged domains.
"""

from __future__ import annotations

from functools import partial

from xsd.core.errors import XsError
from xsd.core.paths import home_of
from xsd.core.payloads import OK
from xsd.core.quota import watch_cost
from xsd_client.protocol import PAYLOAD_MAX, Op, encode, split_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

    from xsd.core.connections import Connection
    from xsd.core.context import Context
    from xsd.core.views import Transaction

_EVENT: Final = int(Op.WATCH_EVENT)


def watch(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    """Add a watch; its first event follows the ``OK``."""
    args = split_args(payload)
    if len(args) != 2:
        raise XsError("EINVAL")
    raw, token = args
    relative_to = None
    if raw[:1] == b"@":
        if len(raw) > ctx.state.settings.path_max:
            raise XsError("EINVAL")
        path = raw.decode("latin-1")
    else:
        path = ctx.path(conn, raw)
        if raw[:1] != b"/":
            relative_to = home_of(conn.domid)
    for existing in conn.watches:
        if existing.path == path and existing.token == token:
            raise XsError("EEXIST")
    if not conn.privileged:
        limits = ctx.limits(conn.domid)
        most = limits["watches"]
        if most and ctx.domain_count(conn.domid, "watches") >= most:
            raise XsError("ENOSPC")
        most = limits["watch-memory"]
        if most:
            cost = 64 + len(path) + len(token)
            used = sum(watch_cost(w) for other in conn.account.conns for w in other.watches)
            if used + cost > most:
                raise XsError("ENOSPC")
    added = ctx.state.watches.add(conn.id, path, token, relative_to)
    conn.watches.append(added)
    event = added.event_path(path).encode() + b"\0" + token + b"\0"
    if len(event) <= PAYLOAD_MAX:
        ctx.after_reply.append(partial(ctx.queue_event, conn, encode(_EVENT, 0, 0, event)))
    return OK


def unwatch(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) != 2:
        raise XsError("EINVAL")
    raw, token = args
    if raw[:1] in (b"/", b"@"):
        path = raw.decode("latin-1")
    else:
        path = home_of(conn.domid) + "/" + raw.decode("latin-1")
    for i, existing in enumerate(conn.watches):
        if existing.path == path and existing.token == token:
            del conn.watches[i]
            ctx.state.watches.remove(existing)
            return OK
    raise XsError("ENOENT")


def reset_watches(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    """Drop every watch and open transaction of the connection."""
    for existing in conn.watches:
        ctx.state.watches.remove(existing)
    conn.watches.clear()
    conn.transactions.clear()
    conn.account.tx_conns.discard(conn)
    return OK
