"""Benchmark: what the daemon's main loop costs per unpipelined request, by design.

A one-request-at-a-time server on a Unix socket, built four ways, each measured in the
same run with the same clients (separate processes, each with one request in flight):

* ``trio``: a trio task waits for a private epoll to become readable
  (``trio.lowlevel.wait_readable``), then serves every ready socket inline: what
  ``xsd/server/mux.py`` did up to issue 17;
* ``guest``: a plain ``select.epoll`` loop owns the main thread; trio runs as a guest
  (``trio.lowlevel.start_guest_run``), its callbacks queued to the loop and a wake-up
  eventfd in the loop's epoll for those queued from trio's I/O thread;
* ``thread``: the same plain loop; trio runs ``trio.run`` in its own thread and the two
  talk through a queue and an eventfd;
* ``plain``: the plain loop with no trio at all (the floor).

In every design trio runs a "service" that does what the daemon's services do when
idle: it wakes every 10 ms (a heartbeat) and hands a no-op to the loop's thread. The
work per request is either an echo of the 16-byte header and payload (``--work echo``:
the loop alone) or the real engine answering a READ (``--work engine``).

Per cell: requests/s, server CPU per request (the sum of the server's threads'
``schedstat`` run time over the window, so trio's own thread counts too), p50/p99
round trip. On a loaded machine compare ratios between designs of the same run; each
design is run ``--repeat`` times, interleaved.

    python tools/bench_loop.py [-c 1,8] [-t 2] [--repeat 3] [--work echo|engine]
        [--designs trio,guest,thread,plain] [--busy MS]

``--busy MS``: the service also burns MS ms of CPU every 10 ms in 1 ms steps (trio
checkpoints between them), to see what services at work cost the request path.

Every process stops by itself; traffic stays on Unix sockets.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import os
import select
import signal
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

_HEADER = struct.Struct("<IIII")
_READ = 2
_IN = select.EPOLLIN
Callback = Callable[[], None]
_BEAT = float(os.environ.get("BEAT", "0.01"))


# ---------------------------------------------------------------------------- the work


class Work:
    """What a server does with a readable client socket: read, answer, write."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.socks: dict[int, socket.socket] = {}
        self.conn_of: dict[int, int] = {}
        if kind == "engine":
            sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
            from xsd.core.engine import Engine

            self.engine = Engine()
            cid = self.engine.connect(0)
            for i in range(64):
                body = b"/bench/%02d\0x" % i
                self.engine.receive(cid, _HEADER.pack(11, 0, 0, len(body)) + body, 0)  # WRITE
            self.engine.disconnect(cid)
            self.engine.take_dirty()

    def add(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        fd = sock.fileno()
        self.socks[fd] = sock
        if self.kind == "engine":
            self.conn_of[fd] = self.engine.connect(0)

    def readable(self, fd: int) -> bool:
        """Serve one readable socket; False if it closed."""
        sock = self.socks[fd]
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return True
        if not data:
            return False
        if self.kind == "echo":
            sock.send(data)
            return True
        engine = self.engine
        cid = self.conn_of[fd]
        engine.receive(cid, data, time.monotonic_ns(), 16)
        for dirty in engine.take_dirty():
            conn = engine.state.connections[dirty]
            n = sock.send(conn.output())
            conn.consume(n)
        return True


def _accept(listener: socket.socket, work: Work, epoll: select.epoll | None) -> None:
    with contextlib.suppress(BlockingIOError):
        while True:
            sock, _ = listener.accept()
            work.add(sock)
            if epoll is not None:
                epoll.register(sock.fileno(), _IN)


async def _service(post: Callable[[Callback], None], busy_ms: int) -> None:
    """An idle daemon's services: a heartbeat every 10 ms that reaches the loop."""
    import trio

    if _BEAT == 0:
        await trio.sleep_forever()

    beats = 0

    def beat() -> None:
        nonlocal beats
        beats += 1

    while True:
        await trio.sleep(_BEAT)
        post(beat)
        for _ in range(busy_ms):
            end = time.perf_counter() + 0.001
            while time.perf_counter() < end:
                pass
            await trio.lowlevel.checkpoint()


# ---------------------------------------------------------------------------- designs


def serve_trio(listener: socket.socket, work: Work, busy_ms: int, ready: Callback) -> None:
    """(a) A trio task waiting on the epoll descriptor, as mux.py did."""
    import trio

    epoll = select.epoll()
    epoll.register(listener.fileno(), _IN)
    lfd = listener.fileno()

    async def loop() -> None:
        ready()
        while True:
            events = epoll.poll(0, 256)
            if not events:
                await trio.lowlevel.wait_readable(epoll.fileno())
                continue
            for fd, _ in events:
                if fd == lfd:
                    _accept(listener, work, epoll)
                elif not work.readable(fd):
                    epoll.unregister(fd)
                    work.socks.pop(fd).close()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(loop)
            nursery.start_soon(_service, lambda fn: fn(), busy_ms)

    trio.run(main)


class PlainLoop:
    """The plain epoll loop of designs (b), (c) and (d)."""

    def __init__(self, listener: socket.socket, work: Work) -> None:
        self.listener = listener
        self.work = work
        self.epoll = select.epoll()
        self.epoll.register(listener.fileno(), _IN)
        self.calls: deque[Callback] = deque()
        self.wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.epoll.register(self.wakeup, _IN)

    def call_soon_threadsafe(self, fn: Callback) -> None:
        self.calls.append(fn)
        os.eventfd_write(self.wakeup, 1)

    def call_soon(self, fn: Callback) -> None:
        self.calls.append(fn)

    def run(self, ready: Callback) -> None:
        epoll, calls, work = self.epoll, self.calls, self.work
        ready()
        lfd, wfd = self.listener.fileno(), self.wakeup
        while True:
            for fd, _ in epoll.poll(0 if calls else -1, 256):
                if fd == wfd:
                    os.eventfd_read(wfd)
                elif fd == lfd:
                    _accept(self.listener, work, epoll)
                elif not work.readable(fd):
                    epoll.unregister(fd)
                    work.socks.pop(fd).close()
            for _ in range(len(calls)):
                calls.popleft()()


def serve_guest(listener: socket.socket, work: Work, busy_ms: int, ready: Callback) -> None:
    """(b) The plain loop in the main thread, trio its guest."""
    import trio

    loop = PlainLoop(listener, work)
    trio.lowlevel.start_guest_run(
        _service,
        loop.call_soon,
        busy_ms,
        run_sync_soon_threadsafe=loop.call_soon_threadsafe,
        run_sync_soon_not_threadsafe=loop.call_soon,
        done_callback=lambda outcome: outcome.unwrap(),
    )
    loop.run(ready)


def serve_thread(listener: socket.socket, work: Work, busy_ms: int, ready: Callback) -> None:
    """(c) The plain loop in the main thread, trio in a thread of its own."""
    import trio

    loop = PlainLoop(listener, work)
    thread = threading.Thread(
        target=trio.run, args=(_service, loop.call_soon_threadsafe, busy_ms), daemon=True
    )
    thread.start()
    loop.run(ready)


def serve_plain(listener: socket.socket, work: Work, busy_ms: int, ready: Callback) -> None:
    """(d) The plain loop, no trio (the floor)."""
    PlainLoop(listener, work).run(ready)


Design = Callable[[socket.socket, Work, int, Callback], None]
DESIGNS: dict[str, Design] = {
    "trio": serve_trio,
    "guest": serve_guest,
    "thread": serve_thread,
    "plain": serve_plain,
}


def _server(design: str, path: str, kind: str, busy_ms: int, ready: mp.Event) -> None:  # type: ignore[type-arg]
    signal.alarm(600)  # never outlive a lost parent
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.setblocking(False)
    work = Work(kind)
    DESIGNS[design](listener, work, busy_ms, ready.set)  # once it serves: imports done


# ---------------------------------------------------------------------------- clients


def _client(path: str, seconds: float, barrier: mp.Barrier, out: mp.Queue) -> None:  # type: ignore[type-arg]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(path)
    payload = b"/bench/%02d\0" % (os.getpid() % 64)
    frame = _HEADER.pack(_READ, 1, 0, len(payload)) + payload
    barrier.wait()
    lat: list[int] = []
    n = 0
    clock = time.perf_counter_ns
    end = clock() + int(seconds * 1e9)
    now = clock()
    while now < end:
        sock.sendall(frame)
        header = sock.recv(16)
        while len(header) < 16:
            header += sock.recv(16 - len(header))
        _, _, _, length = _HEADER.unpack(header)
        got = 0
        while got < length:
            got += len(sock.recv(length - got))
        after = clock()
        if n % 8 == 0:
            lat.append(after - now)
        n += 1
        now = after
    sock.close()
    out.put((n, lat))


def _cpu_ns(pid: int) -> int:
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


def cell(design: str, clients: int, seconds: float, kind: str, busy_ms: int) -> dict[str, float]:
    """One design, ``clients`` clients: requests/s, server us/request, latency."""
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="bench-loop-") as tmp:
        path = f"{tmp}/sock"
        ready = ctx.Event()
        server = ctx.Process(target=_server, args=(design, path, kind, busy_ms, ready))
        server.start()
        try:
            if not ready.wait(30):
                raise RuntimeError(f"{design}: server did not start")
            barrier = ctx.Barrier(clients + 1)
            out = ctx.Queue()
            procs = [
                ctx.Process(target=_client, args=(path, seconds, barrier, out))
                for _ in range(clients)
            ]
            for p in procs:
                p.start()
            barrier.wait(30)
            assert server.pid is not None
            cpu0, t0 = _cpu_ns(server.pid), time.perf_counter()
            results = [out.get(timeout=seconds + 30) for _ in procs]
            cpu1, t1 = _cpu_ns(server.pid), time.perf_counter()
            for p in procs:
                p.join(10)
        finally:
            server.kill()
            server.join()
    n = sum(r[0] for r in results)
    lat = sorted(x for r in results for x in r[1])
    return {
        "rps": n / (t1 - t0),
        "cpu_us": (cpu1 - cpu0) / 1e3 / max(n, 1),
        "p50_us": lat[len(lat) // 2] / 1e3 if lat else 0.0,
        "p99_us": lat[int(len(lat) * 0.99)] / 1e3 if lat else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--clients", default="1,8", help="client counts (default 1,8)")
    parser.add_argument("-t", "--seconds", type=float, default=2.0, help="seconds per cell")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each cell, interleaved")
    parser.add_argument("--work", choices=("echo", "engine"), default="echo")
    parser.add_argument("--designs", default=",".join(DESIGNS))
    parser.add_argument("--busy", type=int, default=0, metavar="MS")
    args = parser.parse_args()
    designs = args.designs.split(",")
    for name in designs:
        if name not in DESIGNS:
            parser.error(f"unknown design {name!r}: use {', '.join(DESIGNS)}")
    print(
        f"work={args.work} busy={args.busy}ms t={args.seconds}s repeat={args.repeat} "
        f"load={os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for clients in (int(c) for c in args.clients.split(",")):
        runs: dict[str, list[dict[str, float]]] = {d: [] for d in designs}
        for _ in range(args.repeat):
            for d in designs:
                runs[d].append(cell(d, clients, args.seconds, args.work, args.busy))
        base = designs[0]
        print(f"\n{clients} client(s), one request in flight each; ratios to {base} per run")
        print(f"{'design':8} {'req/s':>8} {'cpu us/req':>10} {'p50 us':>7} {'p99 us':>7}  "
              f"{'rps ratio':>16} {'cpu ratio':>16}")  # fmt: skip
        for d in designs:
            r = runs[d]
            rps_ratio = [x["rps"] / b["rps"] for x, b in zip(r, runs[base], strict=True)]
            cpu_ratio = [x["cpu_us"] / b["cpu_us"] for x, b in zip(r, runs[base], strict=True)]
            med = {k: statistics.median(x[k] for x in r) for k in r[0]}
            print(
                f"{d:8} {med['rps']:8.0f} {med['cpu_us']:10.1f} {med['p50_us']:7.0f} "
                f"{med['p99_us']:7.0f}  {' '.join(f'{x:.2f}' for x in rps_ratio):>16} "
                f"{' '.join(f'{x:.2f}' for x in cpu_ratio):>16}",
                flush=True,
            )


if __name__ == "__main__":
    main()
