"""``python -m tools.bench``: run the benchmark and print one table (optionally JSON).

Examples (from the repository root)::

    python -m tools.bench                         # everything, all three daemons
    python -m tools.bench -d c,ocaml -w read,txn -t 0.5 --preload 0 --memory 10000
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.bench.cell import MAX_CLIENTS, WORKLOADS
from tools.bench.cli import add_output_options, comma_list, count
from tools.bench.daemons import KINDS
from tools.bench.report import render
from tools.bench.runner import Options, Shape, run


def _shape(text: str) -> Shape:
    clients, _, depth = text.partition("x")
    shape = int(clients), int(depth or 1)
    if not (1 <= shape[0] <= MAX_CLIENTS and shape[1] >= 1):
        raise argparse.ArgumentTypeError(f"bad shape {text!r}: CLIENTSxDEPTH, 1..{MAX_CLIENTS}")
    return shape


def parse_args(argv: list[str] | None = None) -> tuple[Options, Path | None]:
    """Options from the command line, and the JSON output file if any."""
    p = argparse.ArgumentParser(
        prog="python -m tools.bench",
        description="Benchmark xsd against Xen's C xenstored and oxenstored, side by side.",
    )
    p.add_argument(
        "-d",
        "--daemons",
        default="xsd,c,ocaml",
        help="comma list of: xsd, c (C xenstored), ocaml (oxenstored) [%(default)s]",
    )
    p.add_argument(
        "-w", "--workloads", default=",".join(WORKLOADS), help="comma list of: %(default)s"
    )
    p.add_argument(
        "-s",
        "--shapes",
        default="1x1,1x64,8x1",
        help="comma list of CLIENTSxDEPTH (depth = units in flight per client) [%(default)s]",
    )
    p.add_argument(
        "-t", "--duration", type=float, default=2.0, help="seconds per cell [%(default)s]"
    )
    p.add_argument(
        "-r",
        "--rounds",
        type=int,
        default=1,
        help="turns of every cell, each figure the median of its rounds [%(default)s]",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=5.0,
        help="seconds a client may wait for replies after its cell ends [%(default)s]",
    )
    p.add_argument(
        "--preload",
        type=count,
        default=100_000,
        help="nodes to preload before running every cell again; 0 = skip [%(default)s]",
    )
    p.add_argument(
        "--memory",
        default="100k,1M",
        help="comma list of node counts for bytes per node; '' = skip [%(default)s]",
    )
    p.add_argument(
        "--memory-budget",
        type=float,
        default=120.0,
        help="seconds of loading per daemon for the memory counts [%(default)s]",
    )
    p.add_argument(
        "--watchers",
        type=int,
        default=1000,
        help="watching connections in the watch workload [%(default)s]",
    )
    p.add_argument(
        "--watcher-procs",
        type=int,
        default=2,
        help="processes holding the watching connections [%(default)s]",
    )
    add_output_options(p)
    a = p.parse_args(argv)
    daemons = comma_list(a.daemons)
    for d in daemons:
        if d not in KINDS:
            p.error(f"unknown daemon {d!r}; choose from {', '.join(KINDS)}")
    workloads = comma_list(a.workloads)
    for w in workloads:
        if w not in WORKLOADS:
            p.error(f"unknown workload {w!r}; choose from {', '.join(WORKLOADS)}")
    try:
        shapes = [_shape(s) for s in comma_list(a.shapes)]
        memory = [count(m) for m in comma_list(a.memory)]
    except (ValueError, argparse.ArgumentTypeError) as exc:
        p.error(str(exc))
    if a.duration <= 0 or a.rounds < 1 or a.watchers < 1 or a.watcher_procs < 1:
        p.error("duration, rounds, watchers and watcher-procs must be positive")
    opts = Options(
        daemons=daemons,
        workloads=workloads,
        shapes=shapes,
        duration=a.duration,
        rounds=a.rounds,
        grace=a.grace,
        preload=a.preload,
        memory=memory,
        memory_budget=a.memory_budget,
        watchers=a.watchers,
        watcher_procs=a.watcher_procs,
        rundir=a.rundir,
    )
    return opts, a.json


def main(argv: list[str] | None = None) -> int:
    """Run, print the table on stdout, write JSON if asked; 1 if any daemon was skipped."""
    opts, json_path = parse_args(argv)
    results = run(opts)
    sys.stdout.write(render(results))
    if json_path is not None:
        json_path.write_text(json.dumps(results.to_json(), indent=1) + "\n")
    return 1 if results.skipped else 0


if __name__ == "__main__":
    raise SystemExit(main())
