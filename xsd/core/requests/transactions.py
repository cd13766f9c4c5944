"""The transaction requests: TRANSACTION_START and TRANSACTION_END (C's
``xenstored_transaction.c``).

A transaction works on its own copies of the nodes it touches (``xsd.core.views``);
its commit succeeds only if none of them changed meanwhile (EAGAIN otherwise), and then
fires one event per changed node, as C does.
"""

from __future__ import annotations

from xsd.core import domain_ids
from xsd.core.errors import XsError
from xsd.core.payloads import OK, one_arg
from xsd.core.views import Transaction, TransactionView, apply, conflicts

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from xsd.core.connections import Connection
    from xsd.core.context import Context
    from xsd.core.ops import Event


def start(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    if tx is not None:
        raise XsError("EBUSY")
    if not conn.privileged:
        most = ctx.limits(conn.domid)["transactions"]
        if most and ctx.domain_count(conn.domid, "transactions") >= most:
            raise XsError("ENOSPC")
    tx_id = conn.next_tx_id
    while tx_id == 0 or tx_id in conn.transactions:
        tx_id = (tx_id + 1) & 0xFFFFFFFF
    conn.next_tx_id = (tx_id + 1) & 0xFFFFFFFF
    conn.transactions[tx_id] = Transaction(tx_id, ctx.state.tree.next_generation())
    conn.account.tx_conns.add(conn)
    return str(tx_id).encode() + b"\0"  # compiled, f"{tx_id}" is a call of str.format


def end(ctx: Context, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
    arg = one_arg(payload)
    if arg not in (b"T", b"F"):
        raise XsError("EINVAL")
    if tx is None:
        raise XsError("ENOENT")
    del conn.transactions[tx.id]
    if not conn.transactions:
        conn.account.tx_conns.discard(conn)
    if arg == b"F":
        return OK
    if tx.failed:
        raise XsError("ENOMEM")
    tree = ctx.state.tree
    if conflicts(tree, tx):
        raise XsError("EAGAIN")
    if not conn.privileged:
        most = ctx.limits(conn.domid)["nodes"]
        if most and TransactionView(tree, tx).usage(conn.domid)[0] > most:
            raise XsError("ENOSPC")
    # As C: one event per changed node, in first-access order, exact only if every
    # change to it was; none for a node created and deleted within the transaction.
    # Permissions before commit decide, with the new ones, who may see each event.
    exact_of: dict[str, bool] = {}
    for path, exact, _ in tx.events:
        exact_of[path] = exact_of.get(path, True) and exact
    before = {p: tree.nodes[p].perms for p in exact_of if p in tree.nodes}
    apply(tree, tx)
    domain_ids.adopt_owners(ctx.state.domains, tx)
    events: list[Event] = []
    for path in tx.accessed:
        if path in exact_of and (path in before or path in tree.nodes):
            events.append((path, exact_of[path], before.get(path)))
    ctx.changed(conn, events, None)
    return OK
