"""Run the live-update benchmark: per daemon, grow one store and update it at every size.

Per daemon (xsd, C xenstored), on one fresh process:

1. set up what every update carries: the introduced domains with one armed watchdog each
   (xsd only), ``connections`` idle connections holding ``watches`` watches (a holder
   process), and the probe node;
2. for each node count, ascending: load bulk nodes up to it (``tools.bench.conn.load_nodes``,
   within the load budget), then measure ``repeat`` live updates (:func:`measure_update`)
   and check that everything survived (:func:`verify`).

A size the daemon cannot reach in the budget is skipped with the reason, as is every size
above ``c_max_nodes`` for C. Everything is bounded in time: a hard deadline for the whole
run, per-phase socket timeouts, and every side process joined with a timeout (then killed).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import re
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.context import ForkProcess
from pathlib import Path
from typing import Any

from tools.bench.conn import BenchError, Conn, load_nodes
from tools.bench.daemons import KINDS, Daemon, DaemonStartError, start_daemon
from tools.bench.runner import log
from tools.bench_lu.probes import PROBE_PATH, holder_main, reader_main, sampler_main
from xsd.server.liveupdate import LIVE_UPDATE_OPTION
from xsd_client.protocol import Op

BULK_PREFIX = "/lu/bulk"
"""Bulk nodes go under this prefix (``tools.bench.conn.node_path``: 100 per directory)."""

C_PROGRAM = "/usr/lib/xen-4.17/bin/xenstored"
EXEC_MARKERS = {"xsd": LIVE_UPDATE_OPTION, "c": "-U"}
"""The argument the new program is exec'd with, visible in ``/proc/PID/cmdline`` after."""

_CTX = multiprocessing.get_context("fork")


@dataclass(slots=True)
class Options:
    """Everything the command line sets."""

    daemons: list[str] = field(default_factory=lambda: ["xsd", "c"])
    sizes: list[int] = field(default_factory=lambda: [1_000, 10_000, 50_000, 100_000, 1_000_000])
    c_max_nodes: int = 100_000
    connections: int = 1000
    watches: int = 10_000
    watchdogs: int = 1000
    watchdog_timeout_ms: int = 3_600_000
    repeat: int = 3
    transport: str = "memfd"
    xsd_program: str = ""
    c_program: str = C_PROGRAM
    update_timeout: float = 120.0
    settle: float = 0.3
    sample_interval: float = 0.001
    load_budget: float = 240.0
    time_budget: float = 900.0
    rundir: Path | None = None


@dataclass(slots=True)
class Update:
    """The figures of one live update."""

    ok: bool = False
    error: str = ""
    dry_run_ms: float | None = None
    stall_ms: float | None = None
    reads: int = 0
    read_errors: int = 0
    worst_read_ms_update: float | None = None
    """Worst latency of a READ in flight at any moment between sending -s and its OK."""
    worst_read_ms_dry_run: float | None = None
    """The same for the -f window (the dry run)."""
    worst_read_ms_idle: float | None = None
    """The same before -f: what the reader sees with no update going on."""
    rss_steady: int | None = None
    rss_peak_dry_run: int | None = None
    rss_peak_update: int | None = None
    rss_after: int | None = None
    peak_ratio: float | None = None
    """max(daemon VmRSS from -f to the end) / steady VmRSS before -f."""
    child_peak: int | None = None
    """Peak resident memory of the daemon's children (the xsd dry run)."""
    whole_peak: int | None = None
    """Peak of daemon VmRSS + children + growth of the system's Shmem (a memfd)."""
    whole_ratio: float | None = None
    samples: int = 0
    pid_before: int = 0
    pid_after: int = 0
    same_process: bool = False
    exec_seen: bool = False
    conns_answering: int | None = None
    conns_total: int | None = None
    watchdogs_armed: int | None = None
    store_nodes: int | None = None
    phases: str = ""
    """xsd's own account of where the stall went (its log's timeline line)."""
    marks: dict[str, int] = field(default_factory=dict)
    """``time.monotonic_ns()`` when -f (f0) and -s (s0) were sent and answered (f1, s1)."""


@dataclass(slots=True)
class Row:
    """One daemon at one size: its updates and their summary."""

    daemon: str
    nodes: int
    loaded: int = 0
    load_seconds: float = 0.0
    machine_ms: float | None = None
    """This shared machine's speed just before the cell's updates: the median time an
    interpreter takes to start (``python -S -c pass``); it varies by half and more
    from one hour to the next, and every stall with it."""
    skipped: str = ""
    updates: list[Update] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Results:
    """Every row of a run, what it ran with, and the daemons that could not run."""

    rows: list[Row] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    setup: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "options": self.options,
            "skipped": self.skipped,
            "setup": self.setup,
            "rows": [asdict(r) for r in self.rows],
        }


class RunError(RuntimeError):
    """A daemon cannot go on being measured; the message says why."""


# ---------------------------------------------------------------------------- helpers


def size_name(n: int) -> str:
    """``1000`` -> ``1k``, ``1000000`` -> ``1M``."""
    if n and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def default_xsd_program() -> str:
    """The ``xsd`` console script of this interpreter, else the first on ``PATH``.

    The script beside ``sys.executable`` is preferred: a version-manager shim found first
    on ``PATH`` (pyenv's is a bash script that runs ``pyenv exec``) would add its own
    start-up to every exec and be measured as xsd's.
    """
    import shutil
    import sys

    beside = Path(sys.executable).parent / "xsd"
    if beside.is_file() and beside.stat().st_mode & 0o111:
        return str(beside)
    return shutil.which("xsd") or "xsd"


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


def _recv(conn: Connection, timeout: float, what: str) -> tuple[Any, ...]:
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


def _end(proc: ForkProcess, timeout: float = 5.0) -> None:
    """Join a side process; kill it if it does not end by itself in ``timeout`` seconds."""
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join(5)


# ---------------------------------------------------------------------------- setup


def introduce_watchdogs(daemon: Daemon, domains: int, timeout_ms: int) -> int:
    """INTRODUCE domains 1..``domains`` and arm watchdog 0 of each; return the failures."""
    if domains <= 0:
        return 0
    with Conn(daemon.socket, timeout=60.0) as conn:
        errors = conn.pipeline(
            (
                (Op.INTRODUCE, 0, f"{d}\0{0x1000 + d}\0{1}\0".encode())
                for d in range(1, domains + 1)
            ),
            depth=256,
            timeout=120.0,
        )
        requests = []
        for d in range(1, domains + 1):
            base = f"/local/domain/{d}/watchdog/0"
            requests.append((int(Op.WRITE), 0, f"{base}/timeout\0{timeout_ms}".encode()))
            requests.append((int(Op.WRITE), 0, f"{base}/control\0arm".encode()))
        errors += conn.pipeline(requests, depth=256, timeout=120.0)
    return errors


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


# ---------------------------------------------------------------------------- one update


def measure_update(daemon: Daemon, ctl: Conn, program: str, opts: Options) -> Update:
    """Run one live update (``-f`` then ``-s``) with the reader and the sampler going."""
    up = Update(pid_before=daemon.pid)
    start0, _ = _proc_identity(daemon.pid)
    stop = _CTX.Event()
    hard = time.monotonic() + 2 * opts.update_timeout + 60
    r_out, r_in = _CTX.Pipe(duplex=False)
    s_out, s_in = _CTX.Pipe(duplex=False)
    reader = _CTX.Process(
        target=reader_main,
        args=(str(daemon.socket), stop, r_in, opts.update_timeout + 30, hard),
        daemon=True,
    )
    sampler = _CTX.Process(
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
        _recv(r_out, 20, "reader")
        _recv(s_out, 20, "sampler")
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
            reads = _recv(r_out, 30, "reader")
        with contextlib.suppress(RunError):
            samples = _recv(s_out, 30, "sampler")
        _end(reader)
        _end(sampler)
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
        _, answering, total = _recv(holder, 40, "holder")
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


# ---------------------------------------------------------------------------- per daemon


def run_daemon(kind: str, rundir: Path, opts: Options, out: Results, deadline: float) -> None:
    """Every size for one daemon kind; rows go to ``out``; raises RunError to skip it."""
    program = (opts.xsd_program or default_xsd_program()) if kind == "xsd" else opts.c_program
    if not Path(program).exists():
        raise RunError(f"program {program} not found")
    log(f"[{KINDS[kind]}] starting")
    try:
        daemon = start_daemon(kind, rundir / kind)
    except DaemonStartError as exc:
        raise RunError(str(exc)) from None
    holder_proc: ForkProcess | None = None
    holder: Connection | None = None
    setup: dict[str, Any] = {"pid": daemon.pid, "program": program}
    out.setup[KINDS[kind]] = setup
    try:
        with Conn(daemon.socket, timeout=opts.update_timeout + 30) as ctl:
            ctl.write(PROBE_PATH, b"probe")
            if kind == "xsd" and opts.watchdogs:
                t = time.monotonic()
                errors = introduce_watchdogs(daemon, opts.watchdogs, opts.watchdog_timeout_ms)
                armed = count_armed(daemon, opts.watchdogs)
                setup.update(watchdog_errors=errors, watchdogs_armed=armed)
                log(f"[{daemon.name}] {opts.watchdogs} domains, {armed} watchdogs armed "
                    f"({time.monotonic() - t:.1f} s)")  # fmt: skip
                if armed != opts.watchdogs:
                    raise RunError(f"only {armed} of {opts.watchdogs} watchdogs armed")
            t = time.monotonic()
            holder, h_in = _CTX.Pipe()
            holder_proc = _CTX.Process(
                target=holder_main,
                args=(str(daemon.socket), opts.connections, opts.watches, h_in, deadline + 60),
                daemon=True,
            )
            holder_proc.start()
            h_in.close()
            _, conns, watches, werr = _recv(holder, 300, "holder setup")
            setup.update(connections=conns, watches=watches, watch_errors=werr)
            log(f"[{daemon.name}] {conns} connections, {watches} watches "
                f"({werr} failed, {time.monotonic() - t:.1f} s)")  # fmt: skip
            if werr:
                raise RunError(f"{werr} WATCH requests failed")
            loaded = 0
            for n in opts.sizes:
                row = Row(KINDS[kind], n)
                out.rows.append(row)
                if kind == "c" and n > opts.c_max_nodes:
                    row.skipped = f"above --c-max-nodes {size_name(opts.c_max_nodes)}"
                    continue
                if loaded < n:
                    t = time.monotonic()
                    budget = min(t + opts.load_budget, deadline)
                    done, errs = load_nodes(daemon.socket, BULK_PREFIX, loaded, n - loaded,
                                            deadline=budget, chunk=10_000)  # fmt: skip
                    loaded += done
                    row.load_seconds = time.monotonic() - t
                    log(f"[{daemon.name}] loaded {size_name(loaded)} nodes "
                        f"({row.load_seconds:.1f} s, {errs} failed)")  # fmt: skip
                row.loaded = loaded
                if loaded < n:
                    row.skipped = f"loaded only {loaded} nodes within the load budget"
                    break
                row.machine_ms = interpreter_start_ms()
                for _ in range(opts.repeat):
                    if time.monotonic() > deadline:
                        row.skipped = row.skipped or "time budget spent"
                        break
                    up = measure_update(daemon, ctl, program, opts)
                    verify(daemon, holder, up, opts)
                    row.updates.append(up)
                    log(f"[{daemon.name}] {size_name(n)}: "
                        + (f"stall {up.stall_ms:.1f} ms, dry run {up.dry_run_ms or 0:.0f} ms, "
                           f"worst read {up.worst_read_ms_update or 0:.1f} ms, "
                           f"peak {up.peak_ratio or 0:.2f}x"
                           if up.ok else f"FAILED: {up.error}"))  # fmt: skip
                    if not daemon.alive():
                        raise RunError("the daemon died")
                summarize(row)
                if time.monotonic() > deadline:
                    break
    except (BenchError, OSError) as exc:
        raise RunError(f"{type(exc).__name__}: {exc}") from None
    finally:
        if holder is not None:
            with contextlib.suppress(OSError):
                holder.send("stop")
        if holder_proc is not None:
            _end(holder_proc, 10)
        setup["log_tail"] = daemon.log_tail(8)
        daemon.stop()


def interpreter_start_ms(samples: int = 7) -> float:
    """The median time, in ms, for ``python -S -c pass`` to run: a gauge of how fast the
    machine is right now (a live update's new process starts the same way)."""
    times = []
    for _ in range(samples):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-S", "-c", "pass"], check=True)
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def run(opts: Options) -> Results:
    """Run every daemon through every size and return the results."""
    out = Results(options={k: str(v) if isinstance(v, Path) else v
                           for k, v in asdict(opts).items()})  # fmt: skip
    deadline = time.monotonic() + opts.time_budget
    with tempfile.TemporaryDirectory(prefix="xsd-bench-lu-", dir=opts.rundir) as tmp:
        for kind in opts.daemons:
            if time.monotonic() > deadline:
                out.skipped[KINDS[kind]] = "time budget spent"
                continue
            try:
                run_daemon(kind, Path(tmp), opts, out, deadline)
            except RunError as exc:
                log(f"[{KINDS[kind]}] stopped: {exc}")
                out.skipped[KINDS[kind]] = str(exc)
    return out
