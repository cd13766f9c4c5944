"""The node requests: READ, DIRECTORY, DIRECTORY_PART, GET_PERMS, WRITE, MKDIR, RM,
SET_PERMS (C xenstored's ``xenstored_core.c``).

Each handler takes the request's arguments apart as C does, resolves the path for the
connection, and runs the node operation (``xsd.core.ops``) on the view the connection
sees: the tree, or its transaction. WRITE and RM ask every observer's check first (the
watchdogs refuse bad values before anything changes).
"""

from __future__ import annotations

from xsd.core import domain_ids, ops
from xsd.core import perms as P
from xsd.core.domain_ids import c_atoi
from xsd.core.errors import XsError
from xsd.core.payloads import OK, one_arg
from xsd_client.protocol import split_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from xsd.core.caller import Caller
    from xsd.core.connections import Connection
    from xsd.core.context import Context
    from xsd.core.views import Transaction


def read(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    path = ctx.path(conn, one_arg(payload))
    return ops.read(ctx.view(conn, tx), ctx.caller(conn), path)


def directory(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    path = ctx.path(conn, one_arg(payload))
    return ops.directory(ctx.view(conn, tx), ctx.caller(conn), path)


def directory_part(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) != 2:
        raise XsError("EINVAL")
    path = ctx.path(conn, args[0])
    return ops.directory_part(ctx.view(conn, tx), ctx.caller(conn), path, c_atoi(args[1]))


def get_perms(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    path = ctx.path(conn, one_arg(payload))
    return ops.get_perms(ctx.view(conn, tx), ctx.caller(conn), path)


def write(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    raw, sep, value = payload.partition(b"\0")
    if not sep:
        raise XsError("EINVAL")
    path = ctx.path(conn, raw)
    for observer in ctx.observers:
        observer.check(conn, path, value)
    ctx.changed(conn, ops.write(ctx.view(conn, tx), ctx.caller(conn), path, value), tx)
    return OK


def mkdir(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    path = ctx.path(conn, one_arg(payload))
    ctx.changed(conn, ops.mkdir(ctx.view(conn, tx), ctx.caller(conn), path), tx)
    return OK


def rm(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    path = ctx.path(conn, one_arg(payload))
    for observer in ctx.observers:
        observer.check(conn, path, None)
    ctx.changed(conn, ops.rm(ctx.view(conn, tx), ctx.caller(conn), path), tx)
    return OK


def set_perms(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    args = split_args(payload)
    if len(args) < 2:
        raise XsError("EINVAL")
    caller = ctx.caller(conn)
    if caller.limits is not None:
        most = caller.limits["permissions"]
        if most and len(args) - 1 > most:
            raise XsError("ENOSPC")
    # Domain 0 naming a domain makes it known; an unknown owner is ENOENT, other
    # unknown entries are kept but ignored (XSA-322): xsd.core.domains has the rule.
    new = domain_ids.check_perms(ctx.state.domains, conn.privileged, P.parse(args[1:]))
    if args[0][:1] == b"@":
        return _set_special_perms(ctx, caller, args[0], new)
    path = ctx.path(conn, args[0])
    ctx.changed(conn, ops.set_perms(ctx.view(conn, tx), caller, path, new), tx)
    return OK


def _set_special_perms(ctx: Context, caller: Caller, raw: bytes, new: P.Perms) -> bytes:
    ctx.side_changed = True
    name = raw.decode("latin-1")
    special = ctx.state.special_perms
    if name not in special:
        raise XsError("EINVAL")
    if not caller.privileged and not (
        P.access_for(special[name], caller.domid, caller.target) & (P.WRITE | P.OWNER)
        == P.WRITE | P.OWNER
    ):
        raise XsError("EACCES")
    special[name] = new  # C 4.17 fires no event for the special nodes' permissions
    return OK
