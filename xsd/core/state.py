"""The whole state of the daemon, as plain data.

Everything live update must carry is reachable from one :class:`State`: the tree, the
special nodes' permissions, watches, connections (with their buffers, queues and
transactions), domains, quotas and settings. Nothing in it is a socket, a task or a
closure, so ``handover`` can turn it into records and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xsd.core import perms as P
from xsd.core.connections import Connection
from xsd.core.domains import Domain
from xsd.core.quota import Quotas
from xsd.core.tree import Tree
from xsd.core.watchdogs import WatchdogState
from xsd.core.watches import WatchIndex

SPECIAL_NODES = ("@introduceDomain", "@releaseDomain")


@dataclass(slots=True)
class Settings:
    """Run-time settings that CONTROL can change."""

    path_max: int = 2048
    """C 4.17 checks the path length of every connection, dom0's included."""
    trace_file: str | None = None
    trace_on: bool = True
    # logging (xsd.server.logfile): which classes go to the trace file, and the name
    # its lines carry; xsd_client.logformat.CLASSES lists the classes.
    log_classes: list[str] = field(
        default_factory=lambda: ["io", "conn", "dom", "wd", "lu", "ctl", "daemon"]
    )
    instance_name: str = "xsd"
    quota_privileged: bool = False
    """Apply quotas to privileged connections too (C exempts them)."""
    event_timeout_ns: int = 20_000_000_000
    """Unsent watch events of unprivileged connections are dropped after this (C: 20 s)."""
    write_rate: float = 200.0
    """Writes per second an unprivileged domain may make (C's wrl; 0: no limit)."""
    write_burst: float = 10.0
    """Writes an unprivileged domain may make at once before the rate applies."""
    request_timeout_ns: int = 60_000_000_000
    """A connection that leaves a request half-sent this long is closed (0: never)."""


@dataclass(slots=True)
class State:
    """Everything the store knows."""

    tree: Tree = field(default_factory=Tree.initial)
    special_perms: dict[str, P.Perms] = field(
        default_factory=lambda: dict.fromkeys(SPECIAL_NODES, P.DEFAULT)
    )
    watches: WatchIndex = field(default_factory=WatchIndex)
    connections: dict[int, Connection] = field(default_factory=dict)
    next_conn_id: int = 1
    domains: dict[int, Domain] = field(default_factory=lambda: {0: Domain(0)})
    settings: Settings = field(default_factory=Settings)
    quotas: Quotas = field(default_factory=Quotas)
    watchdogs: WatchdogState = field(default_factory=WatchdogState)
    """Per-domain watchdog timers and their settings (``xsd.core.watchdogs``)."""
