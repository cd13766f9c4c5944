"""CONTROL ``memreport``: a few counts of what the daemon holds, appended to a file."""

from __future__ import annotations

import logging

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from xsd.core.state import State

log = logging.getLogger("xsd")


def write(state: State, target: str | None) -> None:
    """Append the counts of nodes, connections, domains and watches to ``target`` (the
    trace file if None; nothing if there is none). A failure is logged, never raised."""
    lines = [
        f"nodes: {len(state.tree.nodes)}",
        f"connections: {len(state.connections)}",
        f"domains: {len(state.domains)}",
        f"watches: {sum(len(w) for w in state.watches.by_path.values())}",
    ]
    target = target or state.settings.trace_file
    if target is None:
        return
    try:
        with open(target, "a") as f:
            f.write("\n".join(lines) + "\n")
    except OSError as exc:
        log.error("memreport to %s failed: %s", target, exc)
