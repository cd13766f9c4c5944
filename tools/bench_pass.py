"""Benchmark: the daemon's own cost per request, with no scheduler in the way.

One process plays both sides over ``socketpair``s: it sends one request on each of
``clients`` connections, then times one pass of the daemon's real request path (the
epoll wait of :class:`~xsd.server.mux.Multiplexer`, its reads, the engine's answers,
the writes of the replies), then reads the replies back untimed. Nobody sleeps and
nobody is woken, so what is timed is the Python and the system calls of the path
itself: what the interpreter costs per request, apart from the wake-ups and
preemptions that dominate a benchmark with client processes (``tools.bench``).
Compare checkouts by running the file with another checkout first on the path::

    python tools/bench_pass.py [-c 1,8] [-w read,write] [-n 20000] [--repeat 3]
    PYTHONPATH=/other/checkout python tools/bench_pass.py

Prints, per cell, the best of ``--repeat`` runs in microseconds per request (a pass's
time divided by the requests it answered). The store holds one node per connection.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: PYTHONPATH's xsd first, else this checkout's
    sys.path.append(str(Path(__file__).resolve().parents[1]))

from xsd.core.engine import Engine
from xsd.server.mux import Multiplexer
from xsd_client.protocol import Op, encode

VALUE = b"x" * 32


def one_run(clients: int, workload: str, rounds: int) -> float:
    """Microseconds per request over ``rounds`` passes of ``clients`` requests."""
    engine = Engine()

    def flush() -> None:
        engine.take_effects()
        for conn_id in engine.take_dirty():
            mux.send(conn_id)

    mux = Multiplexer(engine, flush, lambda conn_id: None)
    peers: list[socket.socket] = []
    requests: list[bytes] = []
    for i in range(clients):
        mine, theirs = socket.socketpair()
        mux.add(engine.connect(0), mine)
        peers.append(theirs)
        path = f"/bench/c{i}".encode()
        theirs.send(encode(Op.WRITE, 1, 0, path + b"\0" + VALUE))  # the node exists
        op = Op.READ if workload == "read" else Op.WRITE
        requests.append(encode(op, 1, 0, path + b"\0" + (b"" if op == Op.READ else VALUE)))
    poll = mux.epoll.poll
    mux.pass_events(poll(0))
    for peer in peers:
        peer.recv(65536)
    spent = 0.0
    for _ in range(rounds):
        for peer, request in zip(peers, requests, strict=True):
            peer.send(request)
        start = time.perf_counter()
        mux.pass_events(poll(0))
        spent += time.perf_counter() - start
        for peer in peers:
            if not peer.recv(65536):
                raise RuntimeError("the daemon side closed a connection")
    mux.close()
    for peer in peers:
        peer.close()
    return spent / (rounds * clients) * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--clients", default="1,8", help="comma list of connections [1,8]")
    p.add_argument("-w", "--workloads", default="read,write", help="read and/or write")
    p.add_argument("-n", "--rounds", type=int, default=20000, help="passes per run [20000]")
    p.add_argument("--repeat", type=int, default=3, help="runs per cell; the best counts [3]")
    a = p.parse_args(argv)
    try:
        counts = [int(c) for c in a.clients.split(",") if c]
    except ValueError:
        p.error(f"--clients takes whole numbers, not {a.clients!r}")
    workloads = [w for w in a.workloads.split(",") if w]
    for w in workloads:
        if w not in ("read", "write"):
            p.error(f"unknown workload {w!r}; choose from read, write")
    if not counts or min(counts) < 1 or a.rounds < 1 or a.repeat < 1:
        p.error("clients, rounds and repeat must be positive")
    print(f"{'workload':8} {'clients':>7} {'us/request':>10}")
    for workload in workloads:
        for clients in counts:
            best = min(one_run(clients, workload, a.rounds) for _ in range(a.repeat))
            print(f"{workload:8} {clients:7} {best:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
