"""Running a cell: fork the client processes of a workload, gather and combine results.

Each cell is one workload with one client shape (``clients`` processes, each keeping
``depth`` units in flight on its own connection). A *unit* is what the throughput
counts: one request for read/write/directory/mix, one whole transaction (start, read,
write, commit) for ``txn``, one delivered watch event for ``watch``.

Invariants:

* every client stops starting units at its deadline and finishes the ones in flight; a
  client that waits more than ``grace`` seconds past the deadline gives up and says so;
* latency is measured per unit, from the send of its first request to the receipt of
  its last reply (for ``watch``: from the write to the moment the last watcher has the
  event), with the system-wide monotonic clock, so processes can compare times;
* the daemon's CPU time is read by the parent just after all clients pass the start
  barrier and again after they have all finished.

The workloads themselves live beside this module: the shared spec and nodes in
:mod:`tools.bench.cell`, the request programs in :mod:`tools.bench.request_load`, the
watch fan-out in :mod:`tools.bench.fanout`, the boot storm in :mod:`tools.bench.bootstorm`.
"""

from __future__ import annotations

import os
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from tools.bench.bootstorm import boot_client
from tools.bench.cell import CellSpec, ClientResult, fan_paths
from tools.bench.conn import Conn
from tools.bench.fanout import watcher_proc, writer_proc
from tools.bench.request_load import request_client
from xsd_client.protocol import Op


@dataclass(slots=True)
class CellResult:
    """The measured outcome of one cell (before the daemon's CPU is attached)."""

    units: int
    seconds: float
    latencies_ns: list[int]
    errors: int
    first_error: str
    timed_out: bool
    start_ns: int = 0
    lost: int = 0
    """Watch events that never arrived (a later event of the same writer did)."""
    client_cpu_s: float = 0.0
    """CPU time the client processes used over the window (the load generator's cost)."""


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def percentiles(latencies_ns: list[int]) -> tuple[float, float]:
    """(p50, p99) in microseconds."""
    values = sorted(latencies_ns)
    return _percentile(values, 0.50) / 1e3, _percentile(values, 0.99) / 1e3


def run_cell(spec: CellSpec, on_start: Callable[[], None]) -> CellResult:
    """Run one cell in fresh client processes; call ``on_start`` when they all start."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    procs: list[Any] = []
    pipes: list[Connection] = []
    closers: list[int] = []
    watch = spec.workload == "watch"
    if watch:
        with Conn(spec.socket) as conn:
            ring = fan_paths(spec.clients, spec.depth)
            conn.pipeline(((Op.WRITE, 0, f"{p}\0".encode() + v) for p, v in ring), 256)
        n_watch = max(1, min(spec.watcher_procs, spec.watchers))
        spec.watcher_procs = n_watch
        barrier = ctx.Barrier(spec.clients + n_watch + 1)
        done = ctx.Array("q", n_watch * spec.clients, lock=False)
        sent = ctx.Array("q", [1 << 62] * spec.clients, lock=False)
        stop = ctx.Event()
        wakes = [os.pipe() for _ in range(spec.clients)]
        for r, w in wakes:
            os.set_blocking(r, False)
            closers += [r, w]
        share = [spec.watchers // n_watch + (i < spec.watchers % n_watch) for i in range(n_watch)]
        for i, conns in enumerate(share):
            rx, tx = ctx.Pipe(duplex=False)
            args = (spec, i, conns, barrier, done, [w for _, w in wakes], sent, stop, tx)
            procs.append(ctx.Process(target=watcher_proc, args=args, daemon=True))
            pipes.append(rx)
        writer_pipes = []
        for c in range(spec.clients):
            rx, tx = ctx.Pipe(duplex=False)
            args2 = (spec, c, barrier, done, wakes[c][0], sent, tx)
            procs.append(ctx.Process(target=writer_proc, args=args2, daemon=True))
            writer_pipes.append(rx)
        pipes += writer_pipes
    else:
        barrier = ctx.Barrier(spec.clients + 1)
        target = boot_client if spec.workload == "boot" else request_client
        for c in range(spec.clients):
            rx, tx = ctx.Pipe(duplex=False)
            args3 = (spec, c, barrier, tx)
            procs.append(ctx.Process(target=target, args=args3, daemon=True))
            pipes.append(rx)
    for p in procs:
        p.start()
    results: list[ClientResult] = []
    try:
        barrier.wait(120)
        on_start()
        limit = time.monotonic() + spec.duration + 3 * spec.grace + 30
        if watch:
            # Writers first: once they are done, tell the watchers how much to expect.
            results_w = [_receive(p, limit) for p in pipes[len(pipes) - spec.clients :]]
            stop.set()
            results = [_receive(p, limit) for p in pipes[: len(pipes) - spec.clients]]
            results += results_w
        else:
            results = [_receive(p, limit) for p in pipes]
    except Exception as exc:  # a broken barrier or a silent client
        results.append(ClientResult(errors=1, first_error=f"{type(exc).__name__}: {exc}"))
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
        for fd in closers:
            os.close(fd)
    return _combine(spec, results)


def _receive(pipe: Connection, limit: float) -> ClientResult:
    if not pipe.poll(max(0.0, limit - time.monotonic())):
        return ClientResult(errors=1, first_error="client process did not report in time")
    res: ClientResult = pipe.recv()
    return res


def _combine(spec: CellSpec, results: list[ClientResult]) -> CellResult:
    errors = sum(r.errors for r in results)
    first_error = next((r.first_error for r in results if r.first_error), "")
    timed_out = any(r.timed_out for r in results)
    starts = [r.start_ns for r in results if r.start_ns]
    ends = [r.end_ns for r in results if r.end_ns]
    start = min(starts) if starts else 0
    seconds = (max(ends) - start) / 1e9 if starts and ends else 0.0
    if spec.workload == "watch":  # watchers linger for the stop signal: end at the last event
        last = [r.extra["last_ns"] for r in results if r.extra.get("last_ns")]
        if last:
            seconds = (max(last) - start) / 1e9
    lat: list[int] = []
    if spec.workload != "watch":
        units = sum(r.units for r in results)
        for r in results:
            a: array[int] = array("q")
            a.frombytes(r.latencies)
            lat.extend(a)
    else:
        n_watch = spec.watcher_procs
        watchers, writers = results[:n_watch], results[n_watch:]
        units = sum(r.units for r in watchers)
        if len(writers) == spec.clients and all("complete_ns" in r.extra for r in watchers):
            for w, wr in enumerate(writers):
                sends: array[int] = array("q")
                sends.frombytes(wr.extra.get("send_ns", b""))
                per_proc = []
                for r in watchers:
                    c: array[int] = array("q")
                    c.frombytes(r.extra["complete_ns"][w])
                    per_proc.append(c)
                n = min([len(sends), *(len(c) for c in per_proc)])
                lat.extend(max(c[k] for c in per_proc) - sends[k] for k in range(n))
    lost = sum(r.extra.get("lost", 0) for r in results)
    cpu = sum(r.cpu_s for r in results)
    return CellResult(units, seconds, lat, errors, first_error, timed_out, start, lost, cpu)
