"""The request types the store answers: one family per module, and the one table.

As C xenstored's ``wire_funcs``: each type has its handler and its flags, and the
engine (``xsd.core.engine``) looks both up once per request. The families:
``nodes`` (READ ... SET_PERMS), ``watches``, ``transactions``, ``domains`` (domains and
quotas) and ``control``. A handler is called as ``handler(ctx, conn, tx, payload)``
with the :class:`~xsd.core.context.Context`, the connection, its transaction (None
outside one, and for the types flagged :data:`IGNORES_TX`) and the payload; it returns
the reply payload or raises :class:`~xsd.core.errors.XsError` (or
:class:`~xsd.core.errors.Deferred`: the shell answers later).
"""

from __future__ import annotations

from xsd.core.requests import control, domains, nodes, transactions, watches
from xsd.core.requests.request_type import (
    COMMIT,
    IGNORES_TX,
    PRIVILEGED,
    SIDE,
    WRITE,
    Handler,
    RequestType,
)
from xsd_client.protocol import Op

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

__all__ = [
    "COMMIT",
    "IGNORES_TX",
    "PRIVILEGED",
    "SIDE",
    "TABLE",
    "WRITE",
    "Handler",
    "RequestType",
]

_BY_OP: dict[Op, RequestType] = {
    Op.CONTROL: RequestType(control.control, PRIVILEGED | SIDE),
    Op.DIRECTORY: RequestType(nodes.directory),
    Op.READ: RequestType(nodes.read),
    Op.GET_PERMS: RequestType(nodes.get_perms),
    Op.WATCH: RequestType(watches.watch, IGNORES_TX),
    Op.UNWATCH: RequestType(watches.unwatch, IGNORES_TX),
    Op.TRANSACTION_START: RequestType(transactions.start),
    Op.TRANSACTION_END: RequestType(transactions.end, COMMIT),
    Op.INTRODUCE: RequestType(domains.introduce, PRIVILEGED | SIDE),
    Op.RELEASE: RequestType(domains.release, PRIVILEGED | SIDE),
    Op.GET_DOMAIN_PATH: RequestType(domains.get_domain_path),
    Op.WRITE: RequestType(nodes.write, WRITE),
    Op.MKDIR: RequestType(nodes.mkdir, WRITE),
    Op.RM: RequestType(nodes.rm, WRITE),
    Op.SET_PERMS: RequestType(nodes.set_perms, WRITE),
    Op.IS_DOMAIN_INTRODUCED: RequestType(domains.is_domain_introduced, PRIVILEGED | SIDE),
    Op.RESUME: RequestType(domains.resume, PRIVILEGED | SIDE),
    Op.SET_TARGET: RequestType(domains.set_target, PRIVILEGED | SIDE),
    Op.RESET_WATCHES: RequestType(watches.reset_watches),
    Op.DIRECTORY_PART: RequestType(nodes.directory_part),
    Op.GET_QUOTA: RequestType(domains.get_quota, PRIVILEGED | SIDE),
    Op.SET_QUOTA: RequestType(domains.set_quota, PRIVILEGED | SIDE),
}

TABLE: Final[dict[int, RequestType]] = {int(op): entry for op, entry in _BY_OP.items()}
"""Every request type the store answers, by its number; the others get ENOSYS. Keyed by
plain ints: the op a request carries (a small int, the very object of the key) is found
by identity, where an ``Op`` key compares by value, a call of its own on every lookup."""
