"""The vocabulary every workload shares: the cell's spec, a client's result, the nodes.

A *cell* is one workload run with one client shape: ``clients`` processes, each keeping
``depth`` units in flight on its own connection. :class:`CellSpec` says what it runs,
:class:`ClientResult` is what each client process sends back, and the functions here name
the nodes the workloads read and write (set up before the clients start).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKLOADS = ("read", "write", "dir", "mix", "txn", "watch", "boot")
"""Every workload, in table order (``boot``, the boot storm, is in ``bootstorm``)."""

VALUE = b"v" * 32
"""The value written by write, mix and txn units (32 bytes)."""

KEYS_PER_CLIENT = 64
"""Nodes each client owns: ``/bench/c<client>/k<0..63>``; slot ``s`` uses key ``s % 64``."""

DIR_CHILDREN = 100
FAN_PATH = "/bench/fan"


def fan_ring(depth: int) -> int:
    """Nodes each watch-workload writer cycles through: ``/bench/fan/w<client>/<k % ring>``.

    The ring is larger than the depth, so a write never hits a node whose previous event
    is still undelivered: daemons may coalesce identical pending events (C xenstored
    does), which would make "one write, one event per watcher" untrue.
    """
    return max(2, 2 * depth)


def fan_paths(clients: int, depth: int) -> list[tuple[str, bytes]]:
    """The nodes the watch workload writes, created before the watchers start."""
    ring = fan_ring(depth)
    return [(f"{FAN_PATH}/w{c}/{i}", b"0") for c in range(clients) for i in range(ring)]


MAX_CLIENTS = 64


def client_key(client: int, key: int) -> str:
    """The path of one of a client's own nodes."""
    return f"/bench/c{client}/k{key % KEYS_PER_CLIENT}"


def setup_paths(clients: int) -> list[tuple[str, bytes]]:
    """The nodes every workload expects to exist, with their values."""
    nodes = [(client_key(c, k), VALUE) for c in range(clients) for k in range(KEYS_PER_CLIENT)]
    nodes += [(f"/bench/dir/e{i}", b"x") for i in range(DIR_CHILDREN)]
    return nodes


@dataclass(slots=True)
class CellSpec:
    """What one cell runs."""

    socket: str
    workload: str
    clients: int
    depth: int
    duration: float
    grace: float = 5.0
    watchers: int = 1000
    watcher_procs: int = 2


@dataclass(slots=True)
class ClientResult:
    """What one client process reports."""

    units: int = 0
    errors: int = 0
    first_error: str = ""
    start_ns: int = 0
    end_ns: int = 0
    latencies: bytes = b""  # array('q') of nanoseconds
    timed_out: bool = False
    cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def connect(path: str) -> socket.socket:
    """A blocking connection to the daemon's socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def make_spec(socket_path: Path, workload: str, clients: int, depth: int, **kw: Any) -> CellSpec:
    """A :class:`CellSpec` with checked arguments."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}")
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be 1..{MAX_CLIENTS}")
    if workload == "boot" and depth != 1:
        raise ValueError("the boot storm's workers send one request at a time: depth 1")
    return CellSpec(str(socket_path), workload, clients, max(1, depth), **kw)
