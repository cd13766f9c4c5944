"""Quotas: the limits C xenstored puts on unprivileged domains, and their reports.

Hard quotas are enforced; soft quotas only warn. Names, defaults, order and report
formats are C xenstored 4.17's (``xenstore-control quota``). A value of 0 disables a
check. Domain 0 and other privileged connections are exempt.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xsd.core.errors import XsError

if TYPE_CHECKING:
    from xsd.core.state import State

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
}
SOFT_QUOTAS: dict[str, tuple[int, str]] = {
    "memory": (2097152, "Total Xenstore memory per domain (warning level)"),
}

NODE_OVERHEAD = 32
"""Bytes C xenstored charges for a node record besides its path, value and child list."""


def _defaults(table: dict[str, tuple[int, str]]) -> dict[str, int]:
    return {name: default for name, (default, _) in table.items()}


@dataclass(slots=True)
class Quotas:
    """Current hard and soft quota values."""

    hard: dict[str, int] = field(default_factory=lambda: _defaults(HARD_QUOTAS))
    soft: dict[str, int] = field(default_factory=lambda: _defaults(SOFT_QUOTAS))


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


def node_cost(path: str, value: bytes, children: list[str], nperms: int) -> int:
    """Memory charged for one node, after C's accounting of a node record."""
    child_bytes = sum(len(c) - c.rfind("/") for c in children)
    return NODE_OVERHEAD + len(path) + len(value) + child_bytes + 8 * (nperms - 1)


def usage_report(state: State, domid: int) -> str:
    """``quota <domid>``: what a domain uses now."""
    nodes = 0
    memory = 0
    for path, node in state.tree.nodes.items():
        if node.perms[0][1] == domid:
            nodes += 1
            memory += node_cost(path, node.value, node.children, len(node.perms))
    conns = [c for c in state.connections.values() if c.domid == domid]
    watches = sum(len(c.watches) for c in conns)
    transactions = sum(len(c.transactions) for c in conns)
    rows = [
        ("nodes", nodes),
        ("watches", watches),
        ("transactions", transactions),
        ("outstanding", 0),
        ("memory", memory),
    ]
    return f"Domain {domid}:\n" + "".join(f"{n:<16s}: {v:8d}\n" for n, v in rows)
