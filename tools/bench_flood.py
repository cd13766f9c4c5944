"""Benchmark: domain 0's read latency while a guest floods the daemon.

Starts xsd, introduces one guest domain and measures domain 0's READ latency (one request
at a time, on the main socket) twice: idle, then while the guest floods it from its own
socket with four clients in separate processes:

* a writer: pipelined WRITEs (batches of 20) over 500 nodes of its home;
* a watcher: 100 watches on its home, reading every event the writer causes;
* a transaction client: start, 5 writes, commit, again and again;
* a slow reader: a watch on its home and pipelined READs of a 2000-byte node whose
  replies it never reads (the daemon must hold it back, not buffer for it).

Prints p50, p99 and max of both runs and the p99 ratio (target: within 2x).

    python tools/bench_flood.py [--samples 3000] [--seconds 6]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # the tests' helpers: tests.support

from tests.support.daemons import XsdDaemon  # noqa: E402
from tests.support.wire import RawConn  # noqa: E402
from xsd_client.protocol import Op, encode  # noqa: E402

DOMID = 7
HOME = f"/local/domain/{DOMID}"


def _writer(path: str, stop: mp.synchronize.Event) -> None:
    conn = RawConn(path, timeout=60)
    k = 0
    while not stop.is_set():
        conn.send_raw(
            b"".join(encode(Op.WRITE, j, 0, f"w{(k + j) % 500}\0{k}".encode()) for j in range(20))
        )
        for _ in range(20):
            conn.recv_reply()
        k += 20


def _watcher(path: str, stop: mp.synchronize.Event) -> None:
    conn = RawConn(path, timeout=60)
    for i in range(100):
        conn.call(Op.WATCH, HOME, f"t{i}")
    conn.sock.settimeout(0.2)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            conn.sock.recv(1 << 16)


def _transactions(path: str, stop: mp.synchronize.Event) -> None:
    conn = RawConn(path, timeout=60)
    k = 0
    while not stop.is_set():
        tx = int(conn.call(Op.TRANSACTION_START)[1].rstrip(b"\0"))
        for j in range(5):
            conn.write(f"tx{j}", f"{k}", tx_id=tx)
        conn.call(Op.TRANSACTION_END, "T", tx_id=tx)
        k += 1


def _slow_reader(path: str, stop: mp.synchronize.Event) -> None:
    conn = RawConn(path, timeout=60)
    conn.call(Op.WATCH, HOME, "slow" * 200)
    conn.write("big", b"b" * 2000)
    conn.sock.setblocking(False)
    burst = encode(Op.READ, 0, 0, b"big\0") * 1000
    while not stop.is_set():
        try:
            conn.sock.send(burst)
        except BlockingIOError:
            time.sleep(0.05)  # the daemon stopped reading us, as it should


FLOODERS = {
    "writer": _writer,
    "watcher": _watcher,
    "transactions": _transactions,
    "slow-reader": _slow_reader,
}


def _latencies(conn: RawConn, samples: int) -> list[float]:
    out = []
    for i in range(samples):
        start = time.perf_counter()
        reply = conn.request(Op.READ, f"/bench/k{i % 100}\0".encode())
        out.append(time.perf_counter() - start)
        assert reply.op == Op.READ
    return out


def _summary(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return (
        ordered[len(ordered) // 2] * 1e6,
        ordered[int(len(ordered) * 0.99)] * 1e6,
        ordered[-1] * 1e6,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3000, help="reads per phase")
    parser.add_argument("--seconds", type=float, default=3.0, help="flood before measuring")
    parser.add_argument(
        "--flooders",
        default=",".join(FLOODERS),
        help=f"comma-separated subset of {', '.join(FLOODERS)} (default: all)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        daemon = XsdDaemon(Path(tmp) / "run", "--watchdogs-per-domain", "0")
        try:
            dom0 = RawConn(str(daemon.socket), timeout=60)
            for i in range(100):
                dom0.write(f"/bench/k{i}", b"v" * 64)
            dom0.call(Op.INTRODUCE, DOMID, 1, 1)
            dom0.call(Op.MKDIR, HOME)
            dom0.call(Op.SET_PERMS, HOME, f"n{DOMID}")
            _latencies(dom0, 500)  # warm up
            idle = _latencies(dom0, args.samples)
            guest_socket = str(daemon.rundir / "domains" / str(DOMID) / "socket")
            stop = mp.Event()
            chosen = [FLOODERS[name] for name in args.flooders.split(",")]
            procs = [mp.Process(target=f, args=(guest_socket, stop)) for f in chosen]
            for p in procs:
                p.start()
            time.sleep(args.seconds)
            flood = _latencies(dom0, args.samples)
            rss = next(
                int(line.split()[1])
                for line in Path(f"/proc/{daemon.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
            stop.set()
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.kill()
        finally:
            daemon.stop()
    i50, i99, imax = _summary(idle)
    f50, f99, fmax = _summary(flood)
    print(f"dom0 READ latency, {args.samples} sequential reads per phase (us); {args.flooders}")
    print(f"{'phase':<8} {'p50':>8} {'p99':>8} {'max':>8}")
    print(f"{'idle':<8} {i50:8.0f} {i99:8.0f} {imax:8.0f}")
    print(f"{'flood':<8} {f50:8.0f} {f99:8.0f} {fmax:8.0f}")
    ratio = f99 / i99
    print(
        f"p99 ratio flood/idle: {ratio:.2f} (target <= 2.0: {'met' if ratio <= 2 else 'NOT met'})"
    )
    print(f"daemon VmRSS during the flood: {rss / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
