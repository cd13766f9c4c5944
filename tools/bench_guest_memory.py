"""Load generator: one guest tries to make the daemon grow; domain 0 must stay served.

Starts xsd, introduces guest domain 7 and measures domain 0's READ latency (sequential
requests on the main socket) idle, then while the guest attacks from its own socket:

* ``--connections`` connections (default 128), each with a watch on the guest's home
  whose token is long (the event fills most of a message), that never read anything;
* a writer process that creates ``--nodes`` nodes of the home in one transaction and
  commits, then removes them in the next one, and so on: every commit fires an event
  per node to every watch.

It samples the daemon's RSS throughout, prints the peak, the RSS after the guest closed
its connections and was released, and domain 0's p50/p99 of both phases. With several
``--code`` directories it runs the same attack against each (``PYTHONPATH`` for the
daemon, and its working directory), so before/after figures come from one run:

    git archive main | tar -x -C /tmp/main-src
    python tools/bench_guest_memory.py --code /tmp/main-src --code .

The attack stops by itself after ``--seconds``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # the tests' helpers: tests.support

from tests.support.daemons import XsdDaemon  # noqa: E402
from tests.support.wire import RawConn  # noqa: E402
from xsd_client.protocol import Op, encode  # noqa: E402

DOMID = 7
HOME = f"/local/domain/{DOMID}"


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB (0 once it is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if "VmRSS" in line), 0)


def node_path(j: int, generation: int) -> bytes:
    """The ``j``th node the writer uses in a write/remove ``generation`` (200 to a
    directory: under the node-size quota; new names each time: no event coalesces)."""
    return f"{HOME}/d{j // 200}/n{j % 200}g{generation}".encode()


def writer(path: str, nodes: int, stop_at: float) -> None:
    """Create ``nodes`` nodes in one transaction, remove them in the next, until
    ``stop_at`` (time.time())."""
    conn = RawConn(path, timeout=120)
    k = 0
    while time.time() < stop_at:
        kind, raw = conn.call(Op.TRANSACTION_START)
        if kind != "OK":
            time.sleep(0.01)
            continue
        tx = int(raw.rstrip(b"\0"))
        op = Op.WRITE if k % 2 == 0 else Op.RM
        body = b"".join(
            encode(op, j + 1, tx, node_path(j, k // 2) + (b"\0v" if op == Op.WRITE else b"\0"))
            for j in range(nodes)
        )
        conn.send_raw(body)
        for _ in range(nodes):
            conn.recv_reply()
        conn.call(Op.TRANSACTION_END, "T", tx_id=tx)
        k += 1


def never_readers(path: str, count: int, token_len: int) -> list[socket.socket]:
    """``count`` connections with a long-token watch on the home, never read."""
    socks = []
    for i in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        token = (f"{i:04d}" + "t" * token_len)[:token_len]
        sock.sendall(encode(Op.WATCH, 1, 0, f"{HOME}\0{token}\0".encode()))
        socks.append(sock)
    return socks


def latencies(conn: RawConn, seconds: float) -> list[float]:
    """Sequential domain 0 READs for ``seconds``; each one's latency."""
    out = []
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        start = time.perf_counter()
        reply = conn.request(Op.READ, f"/bench/k{i % 100}\0".encode())
        out.append(time.perf_counter() - start)
        assert reply.op == Op.READ, reply
        i += 1
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1e3


def run(code: str | None, args: argparse.Namespace) -> dict[str, float]:
    """One attack against a daemon running ``code`` (None: what ``python -m xsd`` finds)."""
    here = Path.cwd()
    if code is not None:
        # ``-m`` puts the current directory first on the path: start the daemon there.
        os.environ["PYTHONPATH"] = str(Path(code).resolve())
        os.chdir(code)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            daemon = XsdDaemon(Path(tmp) / "run", "--watchdogs-per-domain", "0", *args.xsd_arg)
        finally:
            os.chdir(here)
        try:
            dom0 = RawConn(str(daemon.socket), timeout=60)
            for i in range(100):
                dom0.write(f"/bench/k{i}", b"v" * 64)
            dom0.call(Op.INTRODUCE, DOMID, 1, 1)
            dom0.call(Op.MKDIR, HOME)
            dom0.call(Op.SET_PERMS, HOME, f"n{DOMID}")
            latencies(dom0, 0.5)  # warm up
            rss_idle = rss_kib(daemon.pid)
            idle = latencies(dom0, args.probe)
            guest = str(daemon.rundir / "domains" / str(DOMID) / "socket")
            socks = never_readers(guest, args.connections, args.token)
            stop_at = time.time() + args.seconds
            proc = mp.Process(target=writer, args=(guest, args.nodes, stop_at))
            proc.start()
            peak = [0]
            sampling = True

            def sample() -> None:
                while sampling:
                    peak[0] = max(peak[0], rss_kib(daemon.pid))
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample)
            sampler.start()
            time.sleep(max(0.0, args.seconds - args.probe) / 2)
            attacked = latencies(dom0, args.probe)
            proc.join(args.seconds + 30)
            if proc.is_alive():
                proc.kill()
            sampling = False
            sampler.join()
            for sock in socks:
                sock.close()
            dom0.call(Op.RELEASE, DOMID)
            time.sleep(2)
            rss_after = rss_kib(daemon.pid)
            alive = daemon.proc.poll() is None
        finally:
            daemon.stop()
    return {
        "rss_idle": rss_idle / 1024,
        "rss_peak": peak[0] / 1024,
        "rss_after": rss_after / 1024,
        "idle_p50": percentile(idle, 0.5),
        "idle_p99": percentile(idle, 0.99),
        "attack_p50": percentile(attacked, 0.5),
        "attack_p99": percentile(attacked, 0.99),
        "attack_max": max(attacked) * 1e3,
        "alive": float(alive),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=128, help="never-reading connections")
    parser.add_argument("--token", type=int, default=3900, help="watch token length (bytes)")
    parser.add_argument("--nodes", type=int, default=900, help="nodes written per transaction")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the attack")
    parser.add_argument("--probe", type=float, default=3.0, help="seconds of dom0 reads per phase")
    parser.add_argument(
        "--code", action="append", help="source tree the daemon runs (repeat to compare)"
    )
    parser.add_argument(
        "--xsd-arg", action="append", default=[], help="extra daemon option (repeatable)"
    )
    args = parser.parse_args()
    codes = args.code or [None]
    print(
        f"{args.connections} never-reading guest connections, {args.token}-byte tokens, "
        f"transactions of {args.nodes} writes/removes, {args.seconds:.0f} s"
    )
    header = (
        f"{'code':<24} {'RSS idle':>9} {'peak':>8} {'after':>8} "
        f"{'p50 idle':>9} {'p99 idle':>9} {'p50 att':>8} {'p99 att':>8} {'max att':>8}"
    )
    print(header + "   (MiB, ms)")
    for code in codes:
        r = run(code, args)
        name = (code or "(this interpreter)")[-24:]
        print(
            f"{name:<24} {r['rss_idle']:9.1f} {r['rss_peak']:8.1f} {r['rss_after']:8.1f} "
            f"{r['idle_p50']:9.2f} {r['idle_p99']:9.2f} {r['attack_p50']:8.2f} "
            f"{r['attack_p99']:8.2f} {r['attack_max']:8.1f}" + ("" if r["alive"] else "  DIED")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
