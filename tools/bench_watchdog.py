"""Benchmark: how late watchdogs fire while clients keep the daemon busy.

Starts xsd with N armed watchdogs (N/100 domains of up to 100 watchdogs each, timeouts
spread over 2-6 s, action ``none``), keeps it busy with clients writing in pipelined
batches of 32, and reads how late each expiry was from the daemon's own log line
("... us late"). Prints p50, p99 and max lateness per N.

    python tools/bench_watchdog.py 1 1000 10000 [--busy 3]

With ``--kicks``, it measures instead how many keepalives a second one client gets
through (pipelined writes of ``keepalive`` by domain 0, round robin) when N domains
each have one armed watchdog:

    python tools/bench_watchdog.py --kicks 1 1000 10000

Every run stops by itself (about 8 s per N, 3 s with ``--kicks``); traffic stays on a
Unix socket.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # the tests' helpers: tests.support

from tests.support.daemons import XsdDaemon  # noqa: E402
from tests.support.wire import RawConn  # noqa: E402
from xsd_client.protocol import Op  # noqa: E402


def _busy(socket_path: str, index: int, stop: threading.Event) -> None:
    conn = RawConn(socket_path, timeout=60)
    k = 0
    while not stop.is_set():
        for j in range(32):
            conn.send(Op.WRITE, f"/busy/{index}/{j}\0{k}".encode())
        for _ in range(32):
            conn.recv_reply()
        k += 1
    conn.close()


def run(n: int, busy: int, rundir: Path) -> dict[str, float]:
    """Arm ``n`` watchdogs under load; return lateness figures in ms."""
    per = min(n, 100)
    domains = max(1, n // per)
    daemon = XsdDaemon(
        rundir,
        "--watchdogs-per-domain", str(per),
        "--watchdog-action", "none",
        "--watchdog-max-timeout", "100000",
    )  # fmt: skip
    try:
        dom0 = RawConn(str(daemon.socket), timeout=60)
        for dom in range(1, domains + 1):
            assert dom0.call(Op.INTRODUCE, dom, 1, 1)[0] == "OK"
        stop = threading.Event()
        threads = [
            threading.Thread(target=_busy, args=(str(daemon.socket), i, stop), daemon=True)
            for i in range(busy)
        ]
        for t in threads:
            t.start()
        rnd = random.Random(1)
        pending = 0
        for dom in range(1, domains + 1):
            for slot in range(per):
                base = f"/local/domain/{dom}/watchdog/{slot}"
                dom0.send(Op.WRITE, f"{base}/timeout\0{rnd.randint(2000, 6000)}".encode())
                dom0.send(Op.WRITE, f"{base}/control\0arm".encode())
                pending += 2
                if pending >= 512:
                    for _ in range(pending):
                        dom0.recv_reply()
                    pending = 0
        for _ in range(pending):
            dom0.recv_reply()
        time.sleep(7)
        stop.set()
        for t in threads:
            t.join(5)
        lates = sorted(int(m) / 1000 for m in re.findall(r"(\d+) us late", daemon.output()))
    finally:
        daemon.stop()
    if not lates:
        return {"n": n, "expiries": 0}

    def q(frac: float) -> float:
        return lates[min(len(lates) - 1, int(frac * len(lates)))]

    return {"n": n, "expiries": len(lates), "p50": q(0.5), "p99": q(0.99), "max": lates[-1]}


def kick_rate(domains: int, rundir: Path, seconds: float = 2.0) -> float:
    """Keepalives per second through the store with ``domains`` armed watchdogs."""
    daemon = XsdDaemon(rundir, "--watchdogs-per-domain", "1")
    try:
        dom0 = RawConn(str(daemon.socket), timeout=60)
        for dom in range(1, domains + 1):
            dom0.send(Op.INTRODUCE, f"{dom}\x001\x001\x00".encode())
            dom0.send(Op.WRITE, f"/local/domain/{dom}/watchdog/0/timeout\x003600000".encode())
            dom0.send(Op.WRITE, f"/local/domain/{dom}/watchdog/0/control\0arm".encode())
            for _ in range(3):
                assert dom0.recv_reply().op != Op.ERROR
        kicks = [
            f"/local/domain/{d}/watchdog/0/keepalive\x001".encode() for d in range(1, domains + 1)
        ]
        done = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(64):
                dom0.send(Op.WRITE, kicks[done % domains])
                done += 1
            for _ in range(64):
                assert dom0.recv_reply().op != Op.ERROR
        return done / (time.perf_counter() - start)
    finally:
        daemon.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="*", type=int, default=[1, 1000, 10000])
    parser.add_argument("--busy", type=int, default=3, help="busy client threads (default 3)")
    parser.add_argument("--kicks", action="store_true", help="measure keepalives per second")
    args = parser.parse_args()
    if args.kicks:
        print(f"{'domains':>7} {'kicks/s':>9}")
        for n in args.counts:
            with tempfile.TemporaryDirectory() as tmp:
                rate = kick_rate(n, Path(tmp) / "rd")
            print(f"{n:>7} {rate:>9.0f}")
        return
    print(f"{'armed':>7} {'expiries':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for n in args.counts:
        with tempfile.TemporaryDirectory() as tmp:
            r = run(n, args.busy, Path(tmp) / "rd")
        if not r["expiries"]:
            print(f"{n:>7} {0:>8} (no expiry seen)")
            continue
        print(f"{n:>7} {r['expiries']:>8} {r['p50']:>8.2f} {r['p99']:>8.2f} {r['max']:>8.2f}")


if __name__ == "__main__":
    main()
