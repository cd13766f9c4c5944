"""Benchmark: durable mode's restart time, and how long a background checkpoint holds
the daemon up.

For each node count N: start ``xsd --state-dir`` (``--state-dir-checkpoint``: a
checkpoint every ``--checkpoint`` journal entries, or half as many as the tree has
nodes if that is more, or once the tree has grown by as many nodes as it had at the last
checkpoint, ``--checkpoint`` at least), write N nodes (pipelined, 16-byte values, 100
children per directory, as ``tools.bench`` loads them), then

* ``kill -9`` it and start it again: the time from the start until the first reply,
  with the daemon's own "restored ... in X ms" (the state: a checkpoint and a journal);
* stop it (SIGTERM: a clean stop writes a checkpoint) and start it again: the same,
  from a checkpoint alone;

and prints, beside them, the start of a daemon with no state, and the longest pause of
the background checkpoints taken while loading (the daemon's "longest pause" log).

    python tools/bench_restart.py 10000 100000

Every run stops by itself; traffic stays on a Unix socket.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.bench.conn import load_nodes
from tools.bench.daemons import ping

ROOT = Path(__file__).resolve().parents[1]


def start(rundir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], float]:
    """A daemon started in ``rundir``, and the seconds until it first answered."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("XENSTORED_PATH", None)
    rundir.mkdir(parents=True, exist_ok=True)
    out = open(rundir / "xsd.out", "ab")  # noqa: SIM115 - the child keeps it
    began = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xsd", "--rundir", str(rundir), *extra],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )
    out.close()
    sock = rundir / "socket"
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"xsd exited: {(rundir / 'xsd.out').read_text()[-500:]}")
        if time.monotonic() - began > 300:
            proc.kill()
            raise SystemExit("xsd did not answer within 300 s")
        try:
            ping(sock, timeout=60)
            return proc, time.monotonic() - began
        except OSError:
            time.sleep(0.01)


def restored_ms(rundir: Path) -> str:
    """The daemon's last "restored ... in X ms" figure."""
    found = re.findall(r"restored .* in (\d+) ms \((\d+) journal", (rundir / "xsd.out").read_text())
    return f"{found[-1][0]} ms ({found[-1][1]} entries)" if found else "?"


def run(n: int, checkpoint: int) -> None:
    with tempfile.TemporaryDirectory(prefix="xsd-restart-") as tmp:
        base = Path(tmp)
        plain, plain_s = start(base / "plain")
        plain.send_signal(signal.SIGTERM)
        plain.wait(30)
        rundir = base / "durable"
        args = ("--state-dir", str(base / "state"), "--state-dir-checkpoint", str(checkpoint))
        proc, _ = start(rundir, *args)
        t0 = time.monotonic()
        done, errors = load_nodes(rundir / "socket", "/bench/pre", 0, n)
        load_s = time.monotonic() - t0
        time.sleep(1.0)  # a checkpoint's thread may still be writing
        pauses = [
            float(p)
            for p in re.findall(r"longest pause ([\d.]+) ms", (rundir / "xsd.out").read_text())
        ]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc, after_kill = start(rundir, *args)
        kill_detail = restored_ms(rundir)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        proc, after_stop = start(rundir, *args)
        stop_detail = restored_ms(rundir)
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
        # On disk (the journal's file is sparse up to its map size).
        size = sum(p.stat().st_blocks * 512 for p in (base / "state").glob("*.lmdb"))
        print(
            f"{n:>9,} nodes ({done:,} written, {errors} failed, {load_s:.1f} s): "
            f"start without state {plain_s:.2f} s; after kill -9 {after_kill:.2f} s "
            f"(restore {kill_detail}); after a clean stop {after_stop:.2f} s "
            f"(restore {stop_detail}); checkpoints while loading: {len(pauses)}, "
            f"longest pause {max(pauses, default=0):.1f} ms; state files {size / 1e6:.1f} MB",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("nodes", type=int, nargs="+", help="node counts")
    parser.add_argument(
        "--checkpoint",
        type=int,
        default=2000,
        help="journal entries per checkpoint, at least (the daemon waits for half as many as "
        "the tree has nodes, if more), and the least growth of the tree that makes one due "
        "[2000]",
    )
    opts = parser.parse_args()
    for n in opts.nodes:
        run(n, opts.checkpoint)


if __name__ == "__main__":
    main()
