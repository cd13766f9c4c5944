"""Run the whole benchmark: every selected daemon through every cell, then memory per node.

1. The cells: a fresh daemon of every kind, all running side by side (each idle while
   the others are measured); the setup nodes in each; then every workload x shape on
   the small store, the daemons taking turns cell by cell (the first of a cell's turn
   rotating: :func:`first_of_turn`), then ``preload`` bulk nodes under ``/bench/pre``
   in each and every cell again on that store. Turns per cell, not a whole run per
   daemon, because this VM's speed drifts over minutes: a daemon measured a few minutes
   after another once came out 0.7x on cells where the two run the same code (reads in
   durable mode); a cell's daemons are now measured within seconds of each other. With
   ``rounds`` above 1, every cell's turn comes round that many times, the first of each
   rotating on, and each figure of a row is the median of its rounds
   (:func:`median_row`): a single 2-second turn on this VM is off by up to a tenth
   either way, in either direction.
2. Memory: per kind, another fresh daemon, its resident memory empty, then after
   loading each of the ``memory`` node counts (deeply pipelined writes), each within a
   time budget.

A daemon that fails to start is skipped with a message; one that dies mid-run has its
remaining cells marked failed. Nothing here prints the table: see :mod:`tools.bench.report`.
"""

from __future__ import annotations

import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.bench.cell import make_spec, setup_paths
from tools.bench.conn import Conn, load_nodes
from tools.bench.daemons import KINDS, Daemon, DaemonStartError, ProcSample, start_daemon
from tools.bench.workloads import percentiles, run_cell

Shape = tuple[int, int]
"""(clients, depth)."""

UNITS = {"txn": "txn", "watch": "event", "boot": "domain"}
"""What a workload's throughput counts, where it is not one request."""


@dataclass(slots=True)
class Options:
    """Everything the command line can set."""

    daemons: list[str] = field(default_factory=lambda: ["xsd", "c", "ocaml"])
    workloads: list[str] = field(
        default_factory=lambda: ["read", "write", "dir", "mix", "txn", "watch"]
    )
    shapes: list[Shape] = field(default_factory=lambda: [(1, 1), (1, 64), (8, 1)])
    duration: float = 2.0
    rounds: int = 1
    grace: float = 5.0
    preload: int = 100_000
    memory: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    memory_budget: float = 120.0
    watchers: int = 1000
    watcher_procs: int = 2
    rundir: Path | None = None


@dataclass(slots=True)
class CellRow:
    """One line of the throughput table."""

    daemon: str
    store: str
    workload: str
    clients: int
    depth: int
    unit: str = "req"
    ops_per_s: float | None = None
    p50_us: float | None = None
    p99_us: float | None = None
    cpu_us_per_op: float | None = None
    cpu_us_per_op_fine: float | None = None
    client_us_per_op: float | None = None
    rss_bytes: int | None = None
    pss_bytes: int | None = None
    units: int = 0
    seconds: float = 0.0
    errors: int = 0
    lost: int = 0
    error: str = ""
    rounds_ops_per_s: list[float] = field(default_factory=list)
    """Each round's units/s (``ops_per_s`` is their median)."""


@dataclass(slots=True)
class MemoryRow:
    """One line of the memory table."""

    daemon: str
    target_nodes: int
    nodes: int = 0
    load_seconds: float = 0.0
    rss_empty: int = 0
    rss: int = 0
    pss_empty: int = 0
    pss: int = 0
    bytes_per_node: float | None = None
    pss_bytes_per_node: float | None = None
    errors: int = 0
    error: str = ""


@dataclass(slots=True)
class Results:
    """All rows of one run plus what produced them."""

    cells: list[CellRow] = field(default_factory=list)
    memory: list[MemoryRow] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    options: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "options": self.options,
            "skipped": self.skipped,
            "cells": [asdict(c) for c in self.cells],
            "memory": [asdict(m) for m in self.memory],
        }


def log(msg: str) -> None:
    """Progress to stderr, so that stdout carries only the table."""
    print(msg, file=sys.stderr, flush=True)


def _store_name(n: int) -> str:
    if n == 0:
        return "empty"
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def setup_store(daemon: Daemon, clients: int) -> None:
    """Create the nodes every workload expects."""
    with Conn(daemon.socket) as conn:
        for path, value in setup_paths(clients):
            conn.write(path, value)


def preload_store(daemon: Daemon, nodes: int) -> None:
    """Load ``nodes`` bulk nodes under ``/bench/pre``."""
    t0 = time.monotonic()
    done, errors = load_nodes(daemon.socket, "/bench/pre", 0, nodes)
    log(
        f"  {daemon.name}: preloaded {done:,} nodes in {time.monotonic() - t0:.1f} s"
        + (f" ({errors} failed)" if errors else "")
    )


def run_cells(daemons: list[Daemon], store: str, opts: Options, out: Results) -> None:
    """Run every cell on each of ``daemons`` in turn, cell by cell, ``opts.rounds``
    turns a cell, the first of a turn rotating so that no shape always has the same
    order (:func:`first_of_turn`); one row per daemon and cell (:func:`median_row`)."""
    turn = 0
    for workload in opts.workloads:
        for clients, depth in opts.shapes:
            if workload == "boot" and depth != 1:
                continue  # the boot storm's workers send one request at a time
            rows_by_daemon: dict[str, list[CellRow]] = {}  # in the first round's order
            for _ in range(opts.rounds):
                first = first_of_turn(turn, len(daemons))
                for i in range(len(daemons)):
                    daemon = daemons[(first + i) % len(daemons)]
                    if daemon.name not in out.skipped:  # not aborted by an earlier cell
                        cell = functools.partial(
                            run_cell_row, store=store, workload=workload, clients=clients,
                            depth=depth, opts=opts, into=rows_by_daemon.setdefault(daemon.name, []),
                        )  # fmt: skip
                        _use(daemon, out, cell)
                turn += 1
            out.cells += [median_row(rows) for rows in rows_by_daemon.values() if rows]


def first_of_turn(turn: int, daemons: int) -> int:
    """The daemon that goes first in cell number ``turn``: one step further each cell
    and one more each round of ``daemons`` cells. A plain step per cell put three
    daemons in the same order in every cell of a shape when a workload has three
    shapes (durable mode last at 1x64 every time, and reads, which it serves with the
    in-memory code, at 0.83-0.84 there in two runs)."""
    return (turn + turn // daemons) % daemons if daemons else 0


def run_cell_row(
    daemon: Daemon,
    store: str,
    workload: str,
    clients: int,
    depth: int,
    opts: Options,
    into: list[CellRow],
) -> None:
    """Run one cell against ``daemon`` and add its row to ``into``."""
    row = CellRow(daemon.name, store, workload, clients, depth, UNITS.get(workload, "req"))
    into.append(row)
    if not daemon.alive():
        row.error = "daemon not running"
        return
    spec = make_spec(
        daemon.socket,
        workload,
        clients,
        depth,
        duration=opts.duration,
        grace=opts.grace,
        watchers=opts.watchers,
        watcher_procs=opts.watcher_procs,
    )
    before: list[ProcSample] = []
    res = run_cell(spec, functools.partial(_sample_into, daemon, before))
    if not before or not daemon.alive():
        row.error = res.first_error or "daemon died"
        row.errors = res.errors
        log(f"  {daemon.name} {store} {workload} {clients}x{depth}: FAILED {row.error}")
        return
    after = daemon.sample()
    row.units, row.seconds, row.errors = res.units, res.seconds, res.errors
    row.lost = res.lost
    row.error = res.first_error + (" (timed out)" if res.timed_out else "")
    if res.units and res.seconds > 0:
        row.ops_per_s = res.units / res.seconds
        row.p50_us, row.p99_us = percentiles(res.latencies_ns)
        row.cpu_us_per_op = (after.cpu_s - before[0].cpu_s) * 1e6 / res.units
        row.cpu_us_per_op_fine = (after.cpu_ns - before[0].cpu_ns) / 1e3 / res.units
        row.client_us_per_op = res.client_cpu_s * 1e6 / res.units
    row.rss_bytes, row.pss_bytes = after.rss, after.pss
    log(
        f"  {daemon.name} {store} {workload} {clients}x{depth}: "
        f"{row.ops_per_s or 0:,.0f} {row.unit}/s"
        + (f" errors={row.errors} {row.error}" if row.errors or row.error else "")
        + (f" lost={row.lost}" if row.lost else "")
    )


_MEDIAN_FIGURES = (
    "ops_per_s", "p50_us", "p99_us", "cpu_us_per_op", "cpu_us_per_op_fine", "client_us_per_op",
)  # fmt: skip


def median_row(rows: list[CellRow]) -> CellRow:
    """One row for a daemon's rounds of a cell: each figure the median of the rounds
    that measured it (each figure on its own), counts summed, the last round's memory,
    the first error; a cell none of whose rounds measured anything keeps its error."""
    first, last = rows[0], rows[-1]
    row = CellRow(first.daemon, first.store, first.workload, first.clients, first.depth, first.unit)
    for name in _MEDIAN_FIGURES:
        values = [v for r in rows if (v := getattr(r, name)) is not None]
        setattr(row, name, statistics.median(values) if values else None)
    row.rounds_ops_per_s = [r.ops_per_s for r in rows if r.ops_per_s is not None]
    row.units = sum(r.units for r in rows)
    row.seconds = sum(r.seconds for r in rows)
    row.errors = sum(r.errors for r in rows)
    row.lost = sum(r.lost for r in rows)
    row.error = next((r.error for r in rows if r.error), "")
    row.rss_bytes, row.pss_bytes = last.rss_bytes, last.pss_bytes
    return row


def _sample_into(daemon: Daemon, into: list[ProcSample]) -> None:
    into.append(daemon.sample())


def run_memory(daemon: Daemon, opts: Options, out: Results) -> None:
    """Load the memory node counts into a fresh ``daemon`` and record bytes per node."""
    empty = daemon.sample()
    loaded = 0
    spent = 0.0
    budget_end = time.monotonic() + opts.memory_budget
    for target in sorted(opts.memory):
        row = MemoryRow(daemon.name, target, rss_empty=empty.rss, pss_empty=empty.pss)
        out.memory.append(row)
        if not daemon.alive():
            row.error = "daemon not running"
            continue
        t0 = time.monotonic()
        try:
            done, errors = load_nodes(
                daemon.socket, "/bench/m", loaded, target - loaded, deadline=budget_end
            )
        except Exception as exc:
            row.error = f"{type(exc).__name__}: {exc}"
            log(f"  {daemon.name} memory {target}: FAILED {row.error}")
            break
        spent += time.monotonic() - t0
        loaded += done
        row.errors = errors
        row.nodes, row.load_seconds = loaded, spent
        if not daemon.alive():
            row.error = "daemon died while loading"
            continue
        now = daemon.sample()
        row.rss, row.pss = now.rss, now.pss
        if loaded:
            row.bytes_per_node = (now.rss - empty.rss) / loaded
            row.pss_bytes_per_node = (now.pss - empty.pss) / loaded
        if loaded < target:
            row.error = f"budget of {opts.memory_budget:.0f} s spent at {loaded:,} nodes"
        log(
            f"  {daemon.name} memory: {loaded:,} nodes in {spent:.1f} s, "
            f"{row.bytes_per_node or 0:.0f} B/node" + (f" ({row.error})" if row.error else "")
        )
        if loaded < target:
            break


def run(opts: Options) -> Results:
    """Run the benchmark as ``opts`` says."""
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()}
    out = Results(options=options)
    base_ctx = tempfile.TemporaryDirectory(prefix="xsd-bench-", dir=opts.rundir)
    base = Path(base_ctx.name)
    try:
        if opts.workloads and opts.shapes:
            _cells(opts, out, base)
        if opts.memory:
            for kind in opts.daemons:
                if KINDS.get(kind, kind) not in out.skipped:
                    daemon = _start(kind, base / f"{kind}-mem", out)
                    if daemon is not None:
                        try:
                            _use(daemon, out, functools.partial(run_memory, opts=opts, out=out))
                        finally:
                            daemon.stop()
    finally:
        base_ctx.cleanup()
    return out


def _cells(opts: Options, out: Results, base: Path) -> None:
    """Every cell, the daemons side by side taking turns (see the module doc); a daemon
    that died has the rest of its cells marked failed, one whose set-up or preload
    raised is skipped (why in ``out.skipped``)."""
    max_clients = max((c for c, _ in opts.shapes), default=1)
    started: list[Daemon] = []
    try:
        for kind in opts.daemons:
            daemon = _start(kind, base / f"{kind}-cells", out)
            if daemon is not None:
                started.append(daemon)
        for daemon in started:
            _use(daemon, out, functools.partial(setup_store, clients=max_clients))
        run_cells(started, "empty", opts, out)
        if opts.preload:
            for daemon in started:
                if daemon.alive() and daemon.name not in out.skipped:
                    _use(daemon, out, functools.partial(preload_store, nodes=opts.preload))
            run_cells(started, _store_name(opts.preload), opts, out)
    finally:
        for daemon in started:
            daemon.stop()


def _start(kind: str, rundir: Path, out: Results) -> Daemon | None:
    """A fresh daemon of ``kind``, or None (the reason in ``out.skipped``)."""
    name = KINDS.get(kind, kind)
    log(f"{name}: starting in {rundir}")
    try:
        return start_daemon(kind, rundir)
    except DaemonStartError as exc:
        out.skipped[name] = str(exc)
        log(f"{name}: SKIPPED, it did not start: {exc}")
        return None


def _use(daemon: Daemon, out: Results, body: Callable[[Daemon], None]) -> None:
    """Run ``body`` on ``daemon``; if it raises, the daemon's run is aborted: why in
    ``out.skipped``, and no more cells for it."""
    try:
        body(daemon)
    except Exception as exc:
        out.skipped.setdefault(daemon.name, f"run aborted: {type(exc).__name__}: {exc}")
        log(f"{daemon.name}: run aborted: {type(exc).__name__}: {exc}")
