"""Run the live-update benchmark: per daemon, grow one store and update it at every size.

Per daemon (xsd, C xenstored), on one fresh process:

1. set up what every update carries: the introduced domains with one armed watchdog each
   (xsd only), ``connections`` idle connections holding ``watches`` watches (a holder
   process), and the probe node;
2. for each node count, ascending: load bulk nodes up to it (``tools.bench.conn.load_nodes``,
   within the load budget), then measure ``repeat`` live updates and check that everything
   survived (:mod:`tools.bench_lu.update`).

A size the daemon cannot reach in the budget is skipped with the reason, as is every size
above ``c_max_nodes`` for C. Everything is bounded in time: a hard deadline for the whole
run, per-phase socket timeouts, and every side process joined with a timeout (then killed).
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from multiprocessing.connection import Connection
from multiprocessing.context import ForkProcess
from pathlib import Path
from typing import Any

from tools.bench.conn import BenchError, Conn, load_nodes
from tools.bench.daemons import KINDS, Daemon, DaemonStartError, start_daemon
from tools.bench.runner import log
from tools.bench_lu.model import Options, Results, Row, RunError, size_name
from tools.bench_lu.probes import PROBE_PATH, holder_main
from tools.bench_lu.update import CTX, count_armed, end, measure_update, receive, summarize, verify
from xsd_client.protocol import Op

BULK_PREFIX = "/lu/bulk"
"""Bulk nodes go under this prefix (``tools.bench.conn.node_path``: 100 per directory)."""


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
            holder, h_in = CTX.Pipe()
            holder_proc = CTX.Process(
                target=holder_main,
                args=(str(daemon.socket), opts.connections, opts.watches, h_in, deadline + 60),
                daemon=True,
            )
            holder_proc.start()
            h_in.close()
            _, conns, watches, werr = receive(holder, 300, "holder setup")
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
            end(holder_proc, 10)
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
