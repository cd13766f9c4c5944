"""The whole state of the daemon, as plain data.

Everything live update must carry is reachable from one :class:`State`: the tree, the
special nodes' permissions, watches, connections (with their buffers, queues and
transactions), domains, quotas and settings. Nothing in it is a socket, a task or a
closure, so ``handover`` can turn it into records and back.
"""

from __future__ import annotations

from xsd.core import perms as P
from xsd.core.connections import Connection
from xsd.core.domains import Domain
from xsd.core.fields import Fields
from xsd.core.quota import Quotas
from xsd.core.tree import Tree
from xsd.core.watch_index import WatchIndex
from xsd.core.watchdog_state import WatchdogState

SPECIAL_NODES = ("@introduceDomain", "@releaseDomain")


class Settings(Fields):
    """Run-time settings that CONTROL can change."""

    __slots__ = (
        "event_timeout_ns",
        "instance_name",
        "log_classes",
        "path_max",
        "quota_privileged",
        "request_timeout_ns",
        "trace_file",
        "trace_on",
        "write_burst",
        "write_rate",
    )
    path_max: int
    """C 4.17 checks the path length of every connection, dom0's included."""
    trace_file: str | None
    trace_on: bool
    # logging (xsd.server.logfile): which classes go to the trace file, and the name
    # its lines carry; xsd_client.logformat.CLASSES lists the classes.
    log_classes: list[str]
    instance_name: str
    quota_privileged: bool
    """Apply quotas to privileged connections too (C exempts them)."""
    event_timeout_ns: int
    """Unsent watch events of unprivileged connections are dropped after this (C: 20 s)."""
    write_rate: float
    """Writes per second an unprivileged domain may make (C's wrl; 0: no limit)."""
    write_burst: float
    """Writes an unprivileged domain may make at once before the rate applies."""
    request_timeout_ns: int
    """A connection that leaves a request half-sent this long is closed (0: never)."""

    def __init__(
        self,
        path_max: int = 2048,
        trace_file: str | None = None,
        trace_on: bool = True,
        log_classes: list[str] | None = None,
        instance_name: str = "xsd",
        quota_privileged: bool = False,
        event_timeout_ns: int = 20_000_000_000,
        write_rate: float = 200.0,
        write_burst: float = 10.0,
        request_timeout_ns: int = 60_000_000_000,
    ) -> None:
        self.path_max = path_max
        self.trace_file = trace_file
        self.trace_on = trace_on
        self.log_classes = (
            ["io", "conn", "dom", "wd", "lu", "ctl", "daemon"]
            if log_classes is None
            else log_classes
        )
        self.instance_name = instance_name
        self.quota_privileged = quota_privileged
        self.event_timeout_ns = event_timeout_ns
        self.write_rate = write_rate
        self.write_burst = write_burst
        self.request_timeout_ns = request_timeout_ns


class State(Fields):
    """Everything the store knows."""

    __slots__ = (
        "connections",
        "domains",
        "next_conn_id",
        "quotas",
        "settings",
        "special_perms",
        "tree",
        "watchdogs",
        "watches",
    )
    tree: Tree
    special_perms: dict[str, P.Perms]
    watches: WatchIndex
    connections: dict[int, Connection]
    next_conn_id: int
    domains: dict[int, Domain]
    settings: Settings
    quotas: Quotas
    watchdogs: WatchdogState
    """Per-domain watchdog timers and their settings (``xsd.core.watchdogs``)."""

    def __init__(
        self,
        tree: Tree | None = None,
        special_perms: dict[str, P.Perms] | None = None,
        watches: WatchIndex | None = None,
        connections: dict[int, Connection] | None = None,
        next_conn_id: int = 1,
        domains: dict[int, Domain] | None = None,
        settings: Settings | None = None,
        quotas: Quotas | None = None,
        watchdogs: WatchdogState | None = None,
    ) -> None:
        self.tree = Tree.initial() if tree is None else tree
        self.special_perms = (
            dict.fromkeys(SPECIAL_NODES, P.DEFAULT) if special_perms is None else special_perms
        )
        self.watches = WatchIndex() if watches is None else watches
        self.connections = {} if connections is None else connections
        self.next_conn_id = next_conn_id
        self.domains = {0: Domain(0)} if domains is None else domains
        self.settings = Settings() if settings is None else settings
        self.quotas = Quotas() if quotas is None else quotas
        self.watchdogs = WatchdogState() if watchdogs is None else watchdogs
