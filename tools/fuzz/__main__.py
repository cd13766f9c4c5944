"""``python -m tools.fuzz``: fuzz a real xsd with many hostile clients; exit 1 on a finding.

Examples (from the repository root)::

    python -m tools.fuzz                                  # 30 s, 100 clients, a random seed
    python -m tools.fuzz --seed 7 --duration 20           # replay seed 7's client streams
    python -m tools.fuzz --requests 1000000 --conns 600 --guests 8 --duration 3600 \\
        --progress 30 --json fuzz.json                    # the long run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tools.fuzz.run import Options, run


def parse_args(argv: list[str] | None = None) -> tuple[Options, Path | None]:
    p = argparse.ArgumentParser(
        prog="python -m tools.fuzz",
        description="Fuzz xsd's request path with many hostile clients (domain 0 and guests, "
        "each on its own socket) while a bystander is probed; exit 1 if an invariant broke.",
    )
    p.add_argument("--seed", type=int, help="the seed (default: random, printed)")
    p.add_argument("-t", "--duration", type=float, default=30.0, help="seconds [%(default)s]")
    p.add_argument(
        "-n", "--requests", type=int, default=0, help="stop after this many requests (0: none)"
    )
    p.add_argument("-c", "--conns", type=int, default=100, help="clients at once [%(default)s]")
    p.add_argument("-g", "--guests", type=int, default=4, help="guest domains [%(default)s]")
    p.add_argument(
        "--dom0-share",
        type=float,
        default=1 / 3,
        help="share of the clients on domain 0's socket, 0..1 [1/3]; the rest are guests'",
    )
    p.add_argument("--rss-limit", type=int, default=512, help="daemon RSS bound, MiB [%(default)s]")
    p.add_argument(
        "--latency-bound", type=float, default=1.0, help="bystander bound, s [%(default)s]"
    )
    p.add_argument(
        "--daemon-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an extra argument for xsd (repeat: --daemon-arg=--write-rate --daemon-arg=0)",
    )
    p.add_argument("--rundir", type=Path, help="the daemon's run directory (default: a temp one)")
    p.add_argument("--progress", type=float, default=0.0, help="seconds between progress lines")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args(argv)
    if not 0 <= a.dom0_share <= 1:
        p.error("--dom0-share must be between 0 and 1")
    if a.duration <= 0 or a.conns < 1 or a.guests < 0 or a.requests < 0:
        p.error("duration and conns must be positive; guests and requests not negative")
    seed = a.seed if a.seed is not None else int.from_bytes(os.urandom(4), "little")
    opts = Options(
        seed=seed,
        duration=a.duration,
        max_requests=a.requests,
        conns=a.conns,
        guests=a.guests,
        dom0_share=a.dom0_share,
        rss_limit_mib=a.rss_limit,
        latency_bound=a.latency_bound,
        daemon_args=a.daemon_arg,
        rundir=a.rundir,
        progress=a.progress,
    )
    return opts, a.json


def say(text: str) -> None:
    print(text, flush=True)


def main(argv: list[str] | None = None) -> int:
    opts, json_path = parse_args(argv)
    say(f"fuzz: seed {opts.seed} (replay: python -m tools.fuzz --seed {opts.seed} ...)")
    figures = run(opts, say)
    f = figures
    say(
        f"fuzz: seed {f.seed}: {f.requests} requests sent, {f.replies} replies and "
        f"{f.events} watch events received, {f.bytes_sent} bytes sent, "
        f"{f.connections} connections (peak {f.peak_concurrent} open, "
        f"{f.closed_by_daemon} closed by the daemon, {f.vanished} vanished) in {f.duration:.1f} s"
    )
    say(
        f"fuzz: daemon RSS {f.start_rss_kib // 1024} MiB at start, peak "
        f"{f.peak_rss_kib // 1024} MiB, {f.end_rss_kib // 1024} MiB at the end; "
        f"bystander: {f.probes} probes, max {f.probe_max * 1000:.1f} ms, "
        f"p99 {f.probe_p99 * 1000:.1f} ms; daemon alive: {f.alive}, exit {f.exit_status}"
    )
    for violation in f.violations:
        say(f"fuzz: VIOLATION: {violation}")
    if json_path is not None:
        json_path.write_text(json.dumps(f.to_json(), indent=1) + "\n")
    say("fuzz: OK" if f.ok() else f"fuzz: FAILED (seed {f.seed})")
    return 0 if f.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
