"""``python -m tools.bench.core_replay``: the core's own cost, without sockets or a shell.

Replays the boot storm's units (:mod:`tools.bench.bootstorm`: ``workers`` workers, each a
domain of its own, units interleaved one per worker in turn) and the ``txn`` workload's
unit (start, read, write, commit) against an in-process :class:`~xsd.core.engine.Engine`,
and prints the process CPU time spent in ``Engine.receive`` per unit, per request and per
request type. Each figure is the best of ``--repeat`` runs on a fresh engine;
``--profile`` prints cProfile's view of one boot run instead.

Examples (from the repository root)::

    PYTHONPATH=$PWD python -m tools.bench.core_replay --units 20 --workers 8
    PYTHONPATH=$PWD python -m tools.bench.core_replay --profile | head -60

Another checkout's core (its ``tools.bench`` has what this script imports): run the file,
not the module, with that checkout first on the path, e.g.
``PYTHONPATH=/work/main python tools/bench/core_replay.py --workers 8``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from tools.bench.bootstorm import CLOSE, Step, _steps, unit_steps
from tools.bench.libxl_lifecycle import expand
from xsd.core.engine import Engine
from xsd_client.protocol import HEADER, Decoder, Op, encode, parse_error

Clock = Callable[[], float]


class _Worker:
    """One boot-storm worker: a connection per actor, all domain 0, as on the socket."""

    def __init__(self, engine: Engine, spent: dict[int, list[float]]) -> None:
        self.engine = engine
        self.spent = spent  # op -> [cpu seconds, requests]
        self.conns: dict[str, tuple[int, Decoder]] = {}
        self.tx: dict[str, int] = {}
        self.req_id = 0

    def play(self, step: Step, clock: Clock) -> str:
        """One request and its reply: the error name, or ""."""
        actor, op, payload, in_tx = step
        if op == CLOSE:
            gone = self.conns.pop(actor, None)
            if gone is not None:
                self.engine.disconnect(gone[0])
            return ""
        if actor not in self.conns:
            self.conns[actor] = (self.engine.connect(0), Decoder())
        conn_id, decoder = self.conns[actor]
        self.req_id = req_id = (self.req_id + 1) & 0xFFFF
        frame = encode(op, req_id, self.tx.get(actor, 0) if in_tx else 0, payload)
        start = clock()
        self.engine.receive(conn_id, frame)
        entry = self.spent.setdefault(op, [0.0, 0])
        entry[0] += clock() - start
        entry[1] += 1
        decoder.receive_data(_drain(self.engine, conn_id))
        error = ""
        for packet in decoder:
            if packet.op == Op.WATCH_EVENT or packet.req_id != req_id:
                continue
            if packet.op == Op.ERROR:
                error = parse_error(packet.payload)
            elif op == Op.TRANSACTION_START:
                self.tx[actor] = int(packet.payload.rstrip(b"\0"))
        return error

    def drain(self) -> None:
        """Drop every connection's queued output (the watch events)."""
        for conn_id, _ in self.conns.values():
            _drain(self.engine, conn_id)


def _drain(engine: Engine, conn_id: int) -> bytes:
    conn = engine.state.connections[conn_id]
    parts = []
    while data := conn.output():
        conn.consume(len(data))
        parts.append(data)
    return b"".join(parts)


def boot(units: int, workers: int, clock: Clock = time.process_time) -> dict[int, list[float]]:
    """CPU seconds and requests per request type for ``units`` units of each worker."""
    engine = Engine()
    spent: dict[int, list[float]] = {}
    crew = [_Worker(engine, spent) for _ in range(workers)]
    for worker in crew:
        for step in _steps(list(expand("boot"))):
            worker.play(step, clock)
        worker.drain()
    spent.clear()
    plays = [[unit_steps(1 + w, "pv"), unit_steps(1 + w, "hvm")] for w in range(workers)]
    for n in range(units):
        for worker, plan in zip(crew, plays, strict=True):
            for step in plan[n % 2]:
                error = worker.play(step, clock)
                if error and error != "ENOENT":
                    raise RuntimeError(f"{error} for {step[0]} {Op(step[1]).name}")
            worker.drain()
    return spent


def txn(units: int, clock: Clock = time.process_time) -> float:
    """CPU seconds for ``units`` transactions (start, read, write, commit) of one client."""
    engine = Engine()
    conn_id = engine.connect(0)
    key = b"/bench/c0/s0\0"
    engine.receive(conn_id, encode(Op.WRITE, 1, 0, key + b"x" * 32))
    _drain(engine, conn_id)
    spent = 0.0
    for _ in range(units):
        start = clock()
        engine.receive(conn_id, encode(Op.TRANSACTION_START, 1, 0, b"\0"))
        tx = int(_drain(engine, conn_id)[16:].rstrip(b"\0"))
        for op, payload in (
            (Op.READ, key),
            (Op.WRITE, key + b"y" * 32),
            (Op.TRANSACTION_END, b"T\0"),
        ):
            engine.receive(conn_id, encode(op, 1, tx, payload))
            reply = _drain(engine, conn_id)
        spent += clock() - start
        if HEADER.unpack_from(reply)[0] != Op.TRANSACTION_END:
            raise RuntimeError(f"the commit failed: {reply[16:]!r}")
    return spent


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tools.bench.core_replay", description=__doc__)
    p.add_argument("--units", type=int, default=20, help="boot units per worker [20]")
    p.add_argument("--workers", type=int, default=1, help="boot-storm workers [1]")
    p.add_argument("--txn", type=int, default=20000, help="transactions [20000]")
    p.add_argument("--repeat", type=int, default=3, help="runs, the best kept [3]")
    p.add_argument("--profile", action="store_true", help="cProfile one boot run instead")
    args = p.parse_args(argv)
    if args.profile:
        import cProfile
        import pstats

        profile = cProfile.Profile()
        profile.runcall(boot, args.units, args.workers)
        pstats.Stats(profile).sort_stats("tottime").print_stats(40)
        return
    best: dict[int, list[float]] | None = None
    for _ in range(args.repeat):
        run = boot(args.units, args.workers)
        if best is None or sum(v[0] for v in run.values()) < sum(v[0] for v in best.values()):
            best = run
    assert best is not None
    done = args.units * args.workers
    total = sum(v[0] for v in best.values())
    requests = sum(int(v[1]) for v in best.values())
    print(
        f"boot ({args.workers} workers): {total / done * 1e3:.2f} ms/unit, "
        f"{total / requests * 1e6:.1f} us/request over {requests / done:.0f} requests/unit"
    )
    for op, (seconds, count) in sorted(best.items(), key=lambda kv: -kv[1][0]):
        print(
            f"  {Op(op).name:22s} {100 * seconds / total:5.1f}%  {count / done:6.1f}/unit"
            f"  {seconds / count * 1e6:7.1f} us each"
        )
    if args.txn:
        seconds = min(txn(args.txn) for _ in range(args.repeat))
        print(f"txn: {seconds / args.txn * 1e6:.2f} us/txn (start, read, write, commit)")


if __name__ == "__main__":
    main()
