"""Benchmark: wall time of a one-shot ``xsc read`` against ``xenstore-read``.

Both read the same node of the same daemon (Xen's C xenstored 4.17 by default, or
``--xsd`` for ours, or an already running one with ``--socket``), alternating, and the
median of ``--runs`` fresh processes is printed for each, with the interpreter floors
measured in the same run so the share that is ours can be told apart:

    python tools/bench_cli.py [--runs 50] [--xsd | --socket PATH] [--before DIR]
                              [--python PY]

Each ``xsc`` row also shows how much it takes over its *floor*, the same interpreter
started the same way doing nothing (``python -c pass``, ``python -S -c pass``, or through
``env``): that difference is the client's own cost, imports and work. Issue 16 asks for
the console script and the ``-S`` row within 10 ms of their floors on a quiet machine;
on a loaded one every figure stretches, and the ratio to the floor (``x floor``) is what
to compare across runs: (ratio - 1) times a quiet run's floor estimates the quiet
difference.

``--before DIR`` adds the rows of another checkout's client (say ``git worktree add DIR
HEAD~3``), measured in the same run, for a before/after ratio. ``--python PY`` measures
another interpreter, a fresh venv's say, which is what a user's machine sees (this
machine's site-packages may import modules at start-up, from a ``.pth``, that would
otherwise be the client's to pay for); the daemon keeps running with this one, which
has the daemon's dependencies::

    python3 -m venv /tmp/v && /tmp/v/bin/pip install -e .   # the client only
    python tools/bench_cli.py --xsd --python /tmp/v/bin/python --before /tmp/old-checkout

This is a measurement, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tools" / "peers" / "reference-xenstored"


@contextmanager
def daemon(kind: str) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        if kind == "c":
            subprocess.run(["bash", str(REFERENCE), "start", tmp, "c"], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            try:
                yield f"{tmp}/socket"
            finally:
                subprocess.run(["bash", str(REFERENCE), "stop", tmp], check=False)
        else:
            proc = subprocess.Popen(
                [sys.executable, "-m", "xsd", "--rundir", tmp],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                for _ in range(300):
                    if os.path.exists(f"{tmp}/socket"):
                        break
                    time.sleep(0.02)
                yield f"{tmp}/socket"
            finally:
                proc.terminate()
                proc.wait()


def time_ms(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, the child's) of one run, in ms.

    CPU time is what a loaded machine changes least: wall time also counts waiting for
    a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    # cwd "/": python -c and -m put the current directory first on sys.path, which
    # must not be a checkout (it would win over PYTHONPATH)
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True, cwd="/")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall * 1000, cpu * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--xsd", action="store_true", help="start our daemon instead of C's")
    group.add_argument("--socket", help="use a daemon already listening here")
    parser.add_argument("--before", type=Path, help="another checkout to compare with")
    parser.add_argument(
        "--python",
        help="the interpreter to measure (default: this one), e.g. a fresh venv's; the "
        "daemon (--xsd) still runs with this one, which has the daemon's dependencies",
    )
    args = parser.parse_args()
    measured = args.python or sys.executable
    # An installed package has its bytecode compiled; this environment may forbid
    # writing it (PYTHONDONTWRITEBYTECODE), so compile once here as pip would, with the
    # interpreter that will read it.
    for root in [ROOT, *([args.before] if args.before else [])]:
        compile_all = [measured, "-m", "compileall", "-q", str(root / "xsd_client")]
        subprocess.run(compile_all, check=True)

    py = measured  # a venv's python is a link that must stay one (its site)
    with open(py, "rb") as f:
        if f.read(2) == b"#!":  # a pyenv shim: a shell script, costly; its interpreter
            py = os.path.realpath(py)
    beside = Path(measured).parent / "xsc"  # the interpreter's own, not a shim
    xsc = str(beside) if beside.exists() else shutil.which("xsc")
    # Each row: its command and the floor it is compared with (the same interpreter
    # start, doing nothing), so the difference is what the client costs.
    floor, floor_s, floor_env = "python -c pass", "python -S -c pass", "env python -c pass"
    rows: dict[str, tuple[list[str], str | None]] = {
        floor: ([py, "-c", "pass"], None),
        floor_s: ([py, "-S", "-c", "pass"], None),
        floor_env: (["env", py, "-c", "pass"], None),
        "xenstore-read (Xen's C tool)": (["xenstore-read", "/bench/key"], None),
    }
    if xsc:
        rows["xsc read (console script)"] = ([xsc, "read", "/bench/key"], floor)
    rows["xsc read (python -m xsd_client.cli; runpy's own cost included)"] = (
        [py, "-m", "xsd_client.cli", "read", "/bench/key"],
        floor,
    )
    # What a console script runs (without runpy, which -m adds), from either checkout.
    script = "import sys; from xsd_client.cli import main; sys.argv[0] = 'xsc'; sys.exit(main())"
    checkouts = {"": ROOT, **({" BEFORE": args.before.resolve()} if args.before else {})}
    for label, root in checkouts.items():
        in_path = f"import sys; sys.path.insert(0, {str(root)!r}); {script}"
        rows[f"xsc read, python -S (no site.py){label}"] = (
            [py, "-S", "-c", in_path, "read", "/bench/key"],
            floor_s,
        )
        rows[f"xsc read (-c 'from xsd_client.cli import main'){label}"] = (
            ["env", f"PYTHONPATH={root}", py, "-c", script, "read", "/bench/key"],
            floor_env,
        )

    @contextmanager
    def given(path: str) -> Iterator[str]:
        yield path

    source = given(args.socket) if args.socket else daemon("xsd" if args.xsd else "c")
    with source as sock:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XENSTORED_")}
        env["XENSTORED_PATH"] = sock
        env["PYTHONPATH"] = str(ROOT)
        subprocess.run(["xenstore-write", "/bench/key", "value"], env=env, check=True)
        for argv, _ in rows.values():  # warm the page cache
            subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True, cwd="/")
        # Interleave the commands, one run of each in turn, so load from other
        # processes hits them all alike.
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(args.runs):
            for name, (argv, _) in rows.items():
                results[name].append(time_ms(argv, env))
    where = f"socket {args.socket}" if args.socket else "xsd" if args.xsd else "C xenstored 4.17"
    print(f"daemon: {where}")
    print(f"runs: {args.runs} per command; python {sys.version.split()[0]} ({py})")
    print("wall and CPU time (user + system) in ms, medians; over the row's floor: the")
    print("difference (+wall, +cpu) and the ratio of walls (x floor: what load changes least)")
    print("    wall      cpu    +wall     +cpu  x floor")
    medians = {
        name: (
            statistics.median(v[0] for v in values),
            statistics.median(v[1] for v in values),
        )
        for name, values in results.items()
    }
    for name, (wall, cpu) in medians.items():
        base = rows[name][1]
        if base is None:
            extra = " " * 27
        else:
            base_wall, base_cpu = medians[base]
            extra = f" {wall - base_wall:+8.1f} {cpu - base_cpu:+8.1f} {wall / base_wall:7.2f}x"
        print(f"{wall:8.1f} {cpu:8.1f}{extra}  {name}" + (f"  (vs {base})" if base else ""))


if __name__ == "__main__":
    main()
