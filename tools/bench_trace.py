"""What tracing every request costs: xsd's throughput with the trace file on versus off.

Run ``python -m tools.bench_trace`` (``--help`` for the options). For each workload and
shape of ``tools.bench`` it runs a fresh xsd three ways, in alternation, ``--repeat``
times:

* ``off``: no trace file (the engine's trace list is None: one attribute test a request);
* ``file``: a trace file open but class ``io`` off (``--log-classes=-io``);
* ``trace``: every request and reply written to the file (class ``io`` on);

and prints requests per second, the daemon's CPU microseconds per request, and the
ratio to ``off`` (best run of each). Invariants: every mode runs on the same machine in
the same conditions, alternated so that drift affects them alike; the trace file lives
in a temporary directory (or ``--dir``) and its line count is checked against the
requests served (each request is one IN and one OUT line).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.bench.cell import make_spec
from tools.bench.daemons import ROOT, Daemon, ping
from tools.bench.runner import setup_store
from tools.bench.workloads import run_cell

MODES = {
    "off": [],
    "file": ["--log-classes=-io"],
    "trace": [],
}


@dataclass
class Row:
    """One run of one cell in one mode."""

    mode: str
    workload: str
    shape: str
    ops_per_s: float
    cpu_us_per_op: float
    trace_lines: int


def start(rundir: Path, trace: Path | None, extra: list[str]) -> Daemon:
    """A fresh xsd in ``rundir``, tracing to ``trace`` if given."""
    rundir.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "xsd", "--rundir", str(rundir)]
    if trace is not None:
        args += ["-T", str(trace), *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("XENSTORED_PATH", None)
    env.pop("XENSTORED_RUNDIR", None)
    with open(rundir / "xsd.out", "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    daemon = Daemon("xsd", rundir, proc.pid, proc)
    deadline = time.monotonic() + 15
    while True:
        try:
            ping(daemon.socket)
            return daemon
        except OSError:
            if time.monotonic() > deadline or not daemon.alive():
                daemon.stop()
                raise RuntimeError(f"xsd did not start: {daemon.log_tail()}") from None
            time.sleep(0.05)


def run_one(base: Path, mode: str, workload: str, shape: str, duration: float, n: int) -> Row:
    """One fresh daemon, one cell."""
    clients, depth = (int(x) for x in shape.split("x"))
    rundir = base / f"{mode}-{workload}-{shape}-{n}"
    trace = rundir / "trace.log" if mode != "off" else None
    daemon = start(rundir, trace, MODES[mode])
    try:
        setup_store(daemon, clients)
        spec = make_spec(daemon.socket, workload, clients, depth, duration=duration)
        before = []
        result = run_cell(spec, lambda: before.append(daemon.sample()))
        after = daemon.sample()
    finally:
        daemon.stop()
    if result.errors or not result.units or not before:
        raise RuntimeError(f"{mode} {workload} {shape}: {result.first_error or 'no units'}")
    lines = 0
    if trace is not None and trace.exists():
        with open(trace, "rb") as f:
            lines = sum(1 for _ in f)
        if mode == "trace" and lines < 2 * result.units:
            raise RuntimeError(f"trace has {lines} lines for {result.units} requests")
    return Row(
        mode,
        workload,
        shape,
        result.units / result.seconds,
        (after.cpu_ns - before[0].cpu_ns) / 1e3 / result.units,
        lines,
    )


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the cells, print the table (and JSON if asked)."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench_trace", description=__doc__)
    parser.add_argument("-w", "--workloads", default="read,write", help="[read,write]")
    parser.add_argument("-s", "--shapes", default="1x64,4x16", help="CLIENTSxDEPTH [1x64,4x16]")
    parser.add_argument("-t", "--duration", type=float, default=3.0, help="seconds a run [3]")
    parser.add_argument("-r", "--repeat", type=int, default=2, help="runs of each mode [2]")
    parser.add_argument("--dir", type=Path, help="where run directories and traces go")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows here")
    args = parser.parse_args(argv)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="xsd-bench-trace-") as tmp:
        base = args.dir or Path(tmp)
        for workload in args.workloads.split(","):
            for shape in args.shapes.split(","):
                for n in range(args.repeat):
                    for mode in MODES:
                        row = run_one(base, mode, workload, shape, args.duration, n)
                        rows.append(row)
                        print(
                            f"  {workload} {shape} {mode}: {row.ops_per_s:,.0f} req/s, "
                            f"{row.cpu_us_per_op:.1f} us CPU/req",
                            file=sys.stderr,
                            flush=True,
                        )
    print(f"{'workload':8} {'shape':6} {'mode':6} {'req/s':>9} {'us/req':>7} {'ratio':>6}")
    for workload in args.workloads.split(","):
        for shape in args.shapes.split(","):
            best = {
                mode: max(
                    (r for r in rows if (r.mode, r.workload, r.shape) == (mode, workload, shape)),
                    key=lambda r: r.ops_per_s,
                )
                for mode in MODES
            }
            for mode, row in best.items():
                ratio = row.ops_per_s / best["off"].ops_per_s
                print(
                    f"{workload:8} {shape:6} {mode:6} {row.ops_per_s:9,.0f} "
                    f"{row.cpu_us_per_op:7.1f} {ratio:6.2f}"
                )
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
