"""Quotas: the limits C xenstored puts on unprivileged domains, and their reports.

Hard quotas are enforced; soft quotas only warn. Names, defaults, order and report
formats are C xenstored 4.17's (``xenstore-control quota``), followed by three of xsd's
own that bound what a domain makes the daemon hold besides its nodes (C counts these in
its ``memory`` quota; docs/differences.md): ``output`` (replies and watch events queued
for its connections), ``transaction-memory`` (its open transactions' copies of nodes)
and ``watch-memory`` (its watches' paths and tokens). A value of 0 disables a check.
Domain 0 and other privileged connections are exempt.
"""

from __future__ import annotations

from xsd.core.errors import XsError
from xsd.core.fields import Fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)

if TYPE_CHECKING:
    from xsd.core.state import State
    from xsd.core.watches import Watch

# name -> (default, description), in the order ``quota`` lists them.
HARD_QUOTAS: dict[str, tuple[int, str]] = {
    "nodes": (1000, "Nodes per domain"),
    "watches": (128, "Watches per domain"),
    "transactions": (10, "Transactions per domain"),
    "outstanding": (20, "Outstanding requests per domain"),
    "transaction-nodes": (1024, "Max. number of accessed nodes per transaction"),
    "memory": (2621440, "Total Xenstore memory per domain (error level)"),
    "node-size": (2048, "Max. size of a node"),
    "path-max": (2048, "Max. length of a node path"),
    "permissions": (5, "Max. number of permissions per node"),
    # xsd's own (the names are GET_QUOTA/SET_QUOTA names too)
    "output": (4194304, "Max. bytes of replies and events queued per domain"),
    "transaction-memory": (2621440, "Max. bytes of transaction copies per domain"),
    "watch-memory": (262144, "Max. bytes of watch paths and tokens per domain"),
}
SOFT_QUOTAS: dict[str, tuple[int, str]] = {
    "memory": (2097152, "Total Xenstore memory per domain (warning level)"),
}

# GET_QUOTA/SET_QUOTA names (C 4.22), in the order GET_QUOTA lists them.
WIRE_NAMES = (
    "nodes",
    "watches",
    "outstanding",
    "memory",
    "soft-memory",
    "transactions",
    "transaction-nodes",
    "node-permissions",
    "path-max",
    "node-size",
    "output",
    "transaction-memory",
    "watch-memory",
)
_WIRE_TO_INTERNAL = {"node-permissions": "permissions"}


def watch_cost(watch: Watch) -> int:
    """Bytes a watch counts against ``watch-memory``: a fixed overhead, path and token."""
    return 64 + len(watch.path) + len(watch.token)


def _defaults(table: dict[str, tuple[int, str]]) -> dict[str, int]:
    return {name: default for name, (default, _) in table.items()}


class Quotas(Fields):
    """Current hard and soft quota values."""

    __slots__ = ("hard", "soft")
    hard: dict[str, int]
    soft: dict[str, int]

    def __init__(
        self, hard: dict[str, int] | None = None, soft: dict[str, int] | None = None
    ) -> None:
        self.hard = _defaults(HARD_QUOTAS) if hard is None else hard
        self.soft = _defaults(SOFT_QUOTAS) if soft is None else soft


def describe(values: dict[str, int], title: str) -> str:
    """The ``quota`` / ``quota-soft`` listing."""
    table = HARD_QUOTAS if "nodes" in values else SOFT_QUOTAS
    lines = [f"{name:<17s}: {values[name]:8d} {table[name][1]}\n" for name in values]
    return title + "".join(lines)


def set_value(values: dict[str, int], name: bytes, raw: bytes) -> None:
    """``quota set <name> <value>``: value a decimal of at least 1.

    Raises:
        XsError: EINVAL for an unknown name or a bad value.
    """
    key = name.decode(errors="replace")
    if key not in values or not raw.isdigit() or int(raw) < 1:
        raise XsError("EINVAL")
    values[key] = int(raw)


def internal_name(raw: bytes) -> str:
    """A GET_QUOTA/SET_QUOTA name as this module keys it (EINVAL if unknown)."""
    name = raw.decode(errors="replace")
    if name not in WIRE_NAMES:
        raise XsError("EINVAL")
    return _WIRE_TO_INTERNAL.get(name, name)


def get_global(quotas: Quotas, raw: bytes) -> int:
    """GET_QUOTA of a global value."""
    name = internal_name(raw)
    if name == "soft-memory":
        return quotas.soft["memory"]
    return quotas.hard[name]


def set_global(quotas: Quotas, raw: bytes, value: bytes) -> None:
    """SET_QUOTA of a global value (0 disables the check)."""
    name = internal_name(raw)
    if not value.isdigit():
        raise XsError("EINVAL")
    if name == "soft-memory":
        quotas.soft["memory"] = int(value)
    else:
        quotas.hard[name] = int(value)


def usage_report(state: State, domid: int) -> str:
    """``quota <domid>``: what a domain uses now."""
    nodes, memory = state.tree.usage.get(domid, (0, 0))
    conns = [c for c in state.connections.values() if c.domid == domid]
    watches = sum(len(c.watches) for c in conns)
    transactions = sum(len(c.transactions) for c in conns)
    rows = [
        ("nodes", nodes),
        ("watches", watches),
        ("transactions", transactions),
        ("outstanding", 0),
        ("memory", memory),
        ("output", sum(c.out_bytes for c in conns)),
        ("transaction-memory", sum(t.size for c in conns for t in c.transactions.values())),
        ("watch-memory", sum(watch_cost(w) for c in conns for w in c.watches)),
    ]
    return f"Domain {domid}:\n" + "".join(f"{n:<16s}: {v:8d}\n" for n, v in rows)
