"""One live update measured and verified, and a row's updates summarized.

:func:`measure_update` sends ``-f`` then ``-s`` with the reader and the sampler side
processes going (:mod:`tools.bench_lu.probes`) and turns what they saw into an
:class:`~tools.bench_lu.model.Update`: the stall, the dry run, the worst READ latency
in each window, the memory peaks, and whether the same process was exec'd anew.
:func:`verify` then checks that the held connections answer and the watchdogs are still
armed; :func:`summarize` takes the median (or worst) of a row's successful updates.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import re
import statistics
import time
from array import array
from multiprocessing.connection import Connection
from multiprocessing.context import ForkProcess
from typing import Any

from tools.bench.conn import BenchError, Conn
from tools.bench.daemons import Daemon
from tools.bench_lu.model import Options, Row, RunError, Update
from tools.bench_lu.probes import reader_main, sampler_main
from xsd.server.liveupdate import LIVE_UPDATE_OPTION
from xsd_client.protocol import Op

EXEC_MARKERS = {"xsd": LIVE_UPDATE_OPTION, "c": "-U"}
"""The argument the new program is exec'd with, visible in ``/proc/PID/cmdline`` after."""

CTX = multiprocessing.get_context("fork")


def _proc_identity(pid: int) -> tuple[int, str]:
    """(start time in clock ticks, command line) of ``pid``; (0, "") if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return 0, ""
    return int(stat[stat.rindex(")") + 2 :].split()[19]), cmdline


def receive(conn: Connection, timeout: float, what: str) -> tuple[Any, ...]:
    """One message from a side process, or RunError after ``timeout`` seconds."""
    if not conn.poll(timeout):
        raise RunError(f"{what}: no answer after {timeout:.0f} s")
    try:
        message: tuple[Any, ...] = conn.recv()
    except EOFError:
        raise RunError(f"{what}: the process ended without an answer") from None
    if message[0] == "error":
        raise RunError(f"{what}: {message[1]}")
    return message


def end(proc: ForkProcess, timeout: float = 5.0) -> None:
    """Join a side process; kill it if it does not end by itself in ``timeout`` seconds."""
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join(5)


def count_armed(daemon: Daemon, domains: int) -> int:
    """How many of the domains' watchdog 0 read ``armed``."""
    with Conn(daemon.socket, timeout=30.0) as conn:
        return sum(
            conn.request(Op.READ, f"/local/domain/{d}/watchdog/0/state\0".encode()) == b"armed"
            for d in range(1, domains + 1)
        )


def store_nodes_from_log(daemon: Daemon) -> int | None:
    """xsd's exact node count after its last live update, from its log."""
    path = daemon.rundir / "xsd.out"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"state restored, (\d+) nodes", text)
    return int(found[-1]) if found else None


def phases_from_log(daemon: Daemon) -> str:
    """xsd's timeline of its last live update (``-s``, dump, exec, imports, load, OK)."""
    try:
        text = (daemon.rundir / "xsd.out").read_text(errors="replace")
    except OSError:
        return ""
    found = re.findall(r"live update: (\d+ ms after -s: .*)", text)
    return found[-1] if found else ""


def measure_update(daemon: Daemon, ctl: Conn, program: str, opts: Options) -> Update:
    """Run one live update (``-f`` then ``-s``) with the reader and the sampler going."""
    up = Update(pid_before=daemon.pid)
    start0, _ = _proc_identity(daemon.pid)
    stop = CTX.Event()
    hard = time.monotonic() + 2 * opts.update_timeout + 60
    r_out, r_in = CTX.Pipe(duplex=False)
    s_out, s_in = CTX.Pipe(duplex=False)
    reader = CTX.Process(
        target=reader_main,
        args=(str(daemon.socket), stop, r_in, opts.update_timeout + 30, hard),
        daemon=True,
    )
    sampler = CTX.Process(
        target=sampler_main,
        args=(daemon.pid, stop, s_in, opts.sample_interval, hard),
        daemon=True,
    )
    reader.start()
    sampler.start()
    r_in.close()
    s_in.close()
    marks = up.marks
    try:
        receive(r_out, 20, "reader")
        receive(s_out, 20, "sampler")
        time.sleep(opts.settle)
        spec = b"" if daemon.kind != "xsd" or opts.transport == "memfd" else opts.transport.encode()
        marks["f0"] = time.monotonic_ns()
        reply = ctl.request(Op.CONTROL, b"live-update\0-f\0" + program.encode() + b"\0")
        marks["f1"] = time.monotonic_ns()
        if reply != b"OK\0":
            raise RunError(f"-f answered {reply.rstrip(bytes(1)).decode(errors='replace')!r}")
        time.sleep(opts.settle)
        start = b"live-update\0-s\0-t\0" + str(int(opts.update_timeout)).encode() + b"\0"
        if spec:
            start += b"--state\0" + spec + b"\0"
        marks["s0"] = time.monotonic_ns()
        reply = ctl.request(Op.CONTROL, start)
        marks["s1"] = time.monotonic_ns()
        if reply != b"OK\0":
            raise RunError(f"-s answered {reply.rstrip(bytes(1)).decode(errors='replace')!r}")
        time.sleep(opts.settle)
        up.ok = True
    except (RunError, BenchError, OSError) as exc:
        up.error = str(exc) or type(exc).__name__
    finally:
        stop.set()
        reads = samples = None
        with contextlib.suppress(RunError):
            reads = receive(r_out, 30, "reader")
        with contextlib.suppress(RunError):
            samples = receive(s_out, 30, "sampler")
        end(reader)
        end(sampler)
    if "f1" in marks:
        up.dry_run_ms = (marks["f1"] - marks["f0"]) / 1e6
    if "s1" in marks:
        up.stall_ms = (marks["s1"] - marks["s0"]) / 1e6
    if reads is not None:
        _latencies(up, reads, marks)
    if samples is not None:
        _memory(up, samples, marks)
    start1, cmdline = _proc_identity(daemon.pid)
    up.pid_after = daemon.pid if start1 else 0
    up.same_process = bool(start1) and start1 == start0 and daemon.alive()
    up.exec_seen = EXEC_MARKERS[daemon.kind] in cmdline.split()
    if not up.ok and not up.error:
        up.error = "incomplete"
    return up


def _latencies(up: Update, reads: tuple[Any, ...], marks: dict[str, int]) -> None:
    _, sends_b, lats_b, errors, text = reads
    sends, lats = array("q"), array("q")
    sends.frombytes(sends_b)
    lats.frombytes(lats_b)
    up.reads = len(sends)
    up.read_errors = errors
    if text and not up.error:
        up.error = text

    def worst(lo: int, hi: int) -> float | None:
        inside = [lat for t, lat in zip(sends, lats, strict=True) if t < hi and t + lat > lo]
        return max(inside) / 1e6 if inside else None

    if "f0" in marks:
        up.worst_read_ms_idle = worst(0, marks["f0"])
    if "f1" in marks:
        up.worst_read_ms_dry_run = worst(marks["f0"], marks["f1"])
    if "s1" in marks:
        up.worst_read_ms_update = worst(marks["s0"], marks["s1"])


def _memory(up: Update, samples: tuple[Any, ...], marks: dict[str, int]) -> None:
    cols = []
    for raw in samples[1:]:
        col = array("q")
        col.frombytes(raw)
        cols.append(col)
    times, rss, child, shmem = cols
    up.samples = len(times)
    if "f0" not in marks or not times:
        return
    before = [i for i, t in enumerate(times) if t < marks["f0"]] or [0]
    steady = int(statistics.median(rss[i] for i in before)) * 1024
    shmem0 = int(statistics.median(shmem[i] for i in before))
    up.rss_steady = steady
    f_end = marks.get("s0", marks.get("f1", marks["f0"]))
    during_f = [rss[i] for i, t in enumerate(times) if marks["f0"] <= t < f_end]
    during_s = [rss[i] for i, t in enumerate(times) if t >= f_end]
    if during_f:
        up.rss_peak_dry_run = max(during_f) * 1024
    if during_s and "s0" in marks:
        up.rss_peak_update = max(during_s) * 1024
    after = [rss[i] for i, t in enumerate(times) if "s1" in marks and t > marks["s1"]]
    if after:
        up.rss_after = int(statistics.median(after)) * 1024
    peak = max(during_f + during_s, default=0) * 1024
    if steady:
        up.peak_ratio = peak / steady
    span = [i for i, t in enumerate(times) if t >= marks["f0"]]
    if span:
        up.child_peak = max(child[i] for i in span) * 1024
        up.whole_peak = max(rss[i] + child[i] + max(0, shmem[i] - shmem0) for i in span) * 1024
        if steady:
            up.whole_ratio = up.whole_peak / steady


def verify(daemon: Daemon, holder: Connection, up: Update, opts: Options) -> None:
    """After an update: the held connections answer, the watchdogs are still armed."""
    try:
        holder.send("verify")
        _, answering, total = receive(holder, 40, "holder")
        up.conns_answering, up.conns_total = answering, total
        if daemon.kind == "xsd" and opts.watchdogs:
            up.watchdogs_armed = count_armed(daemon, opts.watchdogs)
            up.store_nodes = store_nodes_from_log(daemon)
            up.phases = phases_from_log(daemon)
    except (RunError, BenchError, OSError) as exc:
        up.error = up.error or f"verify: {exc}"
        up.ok = False
        return
    problems = []
    if answering != total:
        problems.append(f"{total - answering} of {total} held connections silent")
    if up.watchdogs_armed is not None and up.watchdogs_armed != opts.watchdogs:
        problems.append(f"{up.watchdogs_armed} of {opts.watchdogs} watchdogs armed")
    if not (up.same_process and up.exec_seen):
        problems.append("not the same process exec'd anew")
    if problems and up.ok:
        up.ok = False
        up.error = "; ".join(problems)


def summarize(row: Row) -> None:
    """Median over the row's successful updates of each figure (max for the worst ones)."""
    good = [u for u in row.updates if u.ok]
    if not good:
        return

    def pick(name: str, how: Any = statistics.median) -> Any:
        values = [getattr(u, name) for u in good if getattr(u, name) is not None]
        return how(values) if values else None

    row.summary = {
        "updates": len(good),
        "stall_ms": pick("stall_ms"),
        "dry_run_ms": pick("dry_run_ms"),
        "worst_read_ms_update": pick("worst_read_ms_update", max),
        "worst_read_ms_dry_run": pick("worst_read_ms_dry_run", max),
        "worst_read_ms_idle": pick("worst_read_ms_idle", max),
        "rss_steady": pick("rss_steady"),
        "rss_peak": max(max(u.rss_peak_dry_run or 0, u.rss_peak_update or 0) for u in good),
        "peak_ratio": pick("peak_ratio", max),
        "whole_ratio": pick("whole_ratio", max),
        "child_peak": pick("child_peak", max),
        "store_nodes": pick("store_nodes", max),
    }
