"""``python -m tools.bench_lu``: measure live updates, print the table (optionally JSON).

Examples (from the repository root)::

    python -m tools.bench_lu                     # 1k..1M nodes, xsd and C (C up to 100k)
    python -m tools.bench_lu -d xsd -n 1k,10k --connections 20 --watches 100 --watchdogs 10
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tools.bench.cli import add_output_options, comma_list, count
from tools.bench_lu.model import C_PROGRAM, Options
from tools.bench_lu.report import render
from tools.bench_lu.run import run

DAEMONS = ("xsd", "c")


def parse_args(argv: list[str] | None = None) -> tuple[Options, Path | None]:
    """Options from the command line, and the JSON output file if any."""
    p = argparse.ArgumentParser(
        prog="python -m tools.bench_lu",
        description="Live update under load: the stall from -s to OK, the worst latency of a "
        "concurrent reader and the daemon's peak memory; xsd side by side with C xenstored.",
    )
    d = Options()
    p.add_argument("-d", "--daemons", default="xsd,c", help="comma list of: xsd, c [%(default)s]")
    p.add_argument(
        "-n",
        "--nodes",
        default="1k,10k,50k,100k,1M",
        help="comma list of bulk node counts, grown on one store [%(default)s]",
    )
    p.add_argument(
        "--c-max-nodes",
        type=count,
        default=d.c_max_nodes,
        help="largest count tried on C xenstored, which creates nodes slowly past "
        "100k [%(default)s]",
    )
    p.add_argument(
        "--connections",
        type=count,
        default=d.connections,
        help="idle connections held across the updates [%(default)s]",
    )
    p.add_argument(
        "--watches",
        type=count,
        default=d.watches,
        help="watches, spread over the connections [%(default)s]",
    )
    p.add_argument(
        "--watchdogs",
        type=count,
        default=d.watchdogs,
        help="xsd only: domains introduced, each with watchdog 0 armed [%(default)s]",
    )
    p.add_argument(
        "--watchdog-timeout-ms",
        type=int,
        default=d.watchdog_timeout_ms,
        help="their timeout; longer than the run, so none fires [%(default)s]",
    )
    p.add_argument(
        "-r",
        "--repeat",
        type=int,
        default=d.repeat,
        help="updates per daemon and size (the table shows the median) [%(default)s]",
    )
    p.add_argument(
        "--transport",
        default=d.transport,
        help="xsd's state transport: memfd or lmdb:PATH [%(default)s]",
    )
    p.add_argument(
        "--xsd-program",
        default="",
        help="the new program for xsd (default: the xsd script beside this Python)",
    )
    p.add_argument("--c-program", default=C_PROGRAM, help="the new program for C [%(default)s]")
    p.add_argument(
        "--update-timeout",
        type=float,
        default=d.update_timeout,
        help="seconds an update may take before it counts as failed [%(default)s]",
    )
    p.add_argument(
        "--settle",
        type=float,
        default=d.settle,
        help="seconds of reading and sampling before -f, between -f and -s and "
        "after OK [%(default)s]",
    )
    p.add_argument(
        "--load-budget",
        type=float,
        default=d.load_budget,
        help="seconds per size for loading nodes; a size not reached is skipped [%(default)s]",
    )
    p.add_argument(
        "--time-budget",
        type=float,
        default=d.time_budget,
        help="seconds for the whole run; what is left is skipped [%(default)s]",
    )
    add_output_options(p)
    a = p.parse_args(argv)
    daemons = comma_list(a.daemons)
    for name in daemons:
        if name not in DAEMONS:
            p.error(f"unknown daemon {name!r}; choose from {', '.join(DAEMONS)}")
    try:
        sizes = sorted({count(x) for x in comma_list(a.nodes)})
    except (ValueError, argparse.ArgumentTypeError) as exc:
        p.error(str(exc))
    if not sizes or a.connections < 1 or a.repeat < 1:
        p.error("need at least one size, one connection and one repeat")
    if a.transport != "memfd" and not a.transport.startswith("lmdb:"):
        p.error("--transport is memfd or lmdb:PATH")
    opts = Options(
        daemons=daemons,
        sizes=sizes,
        c_max_nodes=a.c_max_nodes,
        connections=a.connections,
        watches=a.watches,
        watchdogs=a.watchdogs,
        watchdog_timeout_ms=a.watchdog_timeout_ms,
        repeat=a.repeat,
        transport=a.transport,
        xsd_program=a.xsd_program,
        c_program=a.c_program,
        update_timeout=a.update_timeout,
        settle=a.settle,
        load_budget=a.load_budget,
        time_budget=a.time_budget,
        rundir=a.rundir,
    )
    return opts, a.json


def main(argv: list[str] | None = None) -> int:
    """Run, print the table on stdout, write JSON if asked; 1 if anything failed."""
    opts, json_path = parse_args(argv)
    results = run(opts)
    sys.stdout.write(render(results, opts))
    if json_path is not None:
        json_path.write_text(json.dumps(results.to_json(), indent=1) + "\n")
    failed = results.skipped or any(not u.ok for r in results.rows for u in r.updates)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
