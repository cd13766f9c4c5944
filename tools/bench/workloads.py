"""The workloads: client processes that drive a daemon for a bounded time and report.

Each cell is one workload with one client shape (``clients`` processes, each keeping
``depth`` units in flight on its own connection). A *unit* is what the throughput
counts: one request for read/write/directory/mix, one whole transaction (start, read,
write, commit) for ``txn``, one delivered watch event for ``watch``.

Invariants:

* every client stops starting units at its deadline and finishes the ones in flight; a
  client that waits more than ``grace`` seconds past the deadline gives up and says so;
* latency is measured per unit, from the send of its first request to the receipt of
  its last reply (for ``watch``: from the write to the moment the last watcher has the
  event), with the system-wide monotonic clock, so processes can compare times;
* the daemon's CPU time is read by the parent just after all clients pass the start
  barrier and again after they have all finished.
"""

from __future__ import annotations

import os
import select
import socket
import time
import traceback
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tools.bench.bootstorm import boot_client
from tools.bench.conn import Conn
from xsd_client.protocol import Decoder, Op, encode, parse_error

WORKLOADS = ("read", "write", "dir", "mix", "txn", "watch", "boot")
"""Every workload, in table order (``boot``, the boot storm, is in ``bootstorm``)."""

VALUE = b"v" * 32
"""The value written by write, mix and txn units (32 bytes)."""

KEYS_PER_CLIENT = 64
"""Nodes each client owns: ``/bench/c<client>/k<0..63>``; slot ``s`` uses key ``s % 64``."""

DIR_CHILDREN = 100
FAN_PATH = "/bench/fan"


def fan_ring(depth: int) -> int:
    """Nodes each watch-workload writer cycles through: ``/bench/fan/w<client>/<k % ring>``.

    The ring is larger than the depth, so a write never hits a node whose previous event
    is still undelivered: daemons may coalesce identical pending events (C xenstored
    does), which would make "one write, one event per watcher" untrue.
    """
    return max(2, 2 * depth)


def fan_paths(clients: int, depth: int) -> list[tuple[str, bytes]]:
    """The nodes the watch workload writes, created before the watchers start."""
    ring = fan_ring(depth)
    return [(f"{FAN_PATH}/w{c}/{i}", b"0") for c in range(clients) for i in range(ring)]


MAX_CLIENTS = 64


def client_key(client: int, key: int) -> str:
    """The path of one of a client's own nodes."""
    return f"/bench/c{client}/k{key % KEYS_PER_CLIENT}"


def setup_paths(clients: int) -> list[tuple[str, bytes]]:
    """The nodes every workload expects to exist, with their values."""
    nodes = [(client_key(c, k), VALUE) for c in range(clients) for k in range(KEYS_PER_CLIENT)]
    nodes += [(f"/bench/dir/e{i}", b"x") for i in range(DIR_CHILDREN)]
    return nodes


@dataclass(slots=True)
class CellSpec:
    """What one cell runs."""

    socket: str
    workload: str
    clients: int
    depth: int
    duration: float
    grace: float = 5.0
    watchers: int = 1000
    watcher_procs: int = 2


@dataclass(slots=True)
class ClientResult:
    """What one client process reports."""

    units: int = 0
    errors: int = 0
    first_error: str = ""
    start_ns: int = 0
    end_ns: int = 0
    latencies: bytes = b""  # array('q') of nanoseconds
    timed_out: bool = False
    cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Request workloads: a unit is a short fixed program of requests.


class Program:
    """The requests of one workload for one client; ``step`` walks a slot through a unit."""

    def __init__(self, workload: str, client: int) -> None:
        self.workload = workload
        self.client = client
        self.count: list[int] = []  # units started, per slot
        self.stage: list[int] = []  # request index within the current unit, per slot
        self.tx: list[int] = []

    def reset(self, depth: int) -> None:
        """Prepare ``depth`` slots."""
        self.count = [0] * depth
        self.stage = [0] * depth
        self.tx = [0] * depth

    def first(self, slot: int) -> bytes:
        """Start a new unit in ``slot``: the bytes of its first request."""
        self.stage[slot] = 0
        n = self.count[slot]
        self.count[slot] = n + 1
        wl = self.workload
        key = client_key(self.client, slot + n)
        if wl == "read" or (wl == "mix" and n % 10):
            return encode(Op.READ, slot, 0, f"{key}\0".encode())
        if wl in ("write", "mix"):
            return encode(Op.WRITE, slot, 0, f"{key}\0".encode() + VALUE)
        if wl == "dir":
            return encode(Op.DIRECTORY, slot, 0, b"/bench/dir\0")
        if wl == "txn":
            return encode(Op.TRANSACTION_START, slot, 0, b"\0")
        raise ValueError(f"no request program for workload {wl!r}")

    def step(self, slot: int, op: int, payload: bytes) -> tuple[bytes | None, str]:
        """Take the reply for ``slot``; return (next request of the unit or None, error)."""
        if self.workload != "txn":
            return None, (parse_error(payload) if op == Op.ERROR else "")
        stage = self.stage[slot]
        key = client_key(self.client, slot)
        if op == Op.ERROR:
            err = parse_error(payload)
            if stage in (1, 2):  # abandon the transaction, then count the unit as failed
                self.stage[slot] = 4
                return encode(Op.TRANSACTION_END, slot, self.tx[slot], b"F\0"), err
            return None, err
        if stage == 4:  # the abort of a failed transaction
            return None, "aborted"
        self.stage[slot] = stage + 1
        if stage == 0:
            self.tx[slot] = tx = int(payload.rstrip(b"\0"))
            return encode(Op.READ, slot, tx, f"{key}\0".encode()), ""
        if stage == 1:
            return encode(Op.WRITE, slot, self.tx[slot], f"{key}\0".encode() + VALUE), ""
        if stage == 2:
            return encode(Op.TRANSACTION_END, slot, self.tx[slot], b"T\0"), ""
        return None, ""


def _connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


def request_client(spec: CellSpec, client: int, barrier: Any, out: Connection) -> None:
    """Process body: run one request workload on one connection and send a ClientResult."""
    res = ClientResult()
    try:
        sock = _connect(spec.socket)
        prog = Program(spec.workload, client)
        depth = spec.depth
        prog.reset(depth)
        lat = array("q")
        dec = Decoder()
        barrier.wait(60)
        now = time.monotonic_ns
        res.start_ns = t = now()
        cpu0 = time.process_time()
        deadline = t + int(spec.duration * 1e9)
        hard = deadline + int(spec.grace * 1e9)
        unit_start = [t] * depth
        busy = [True] * depth
        sock.sendall(b"".join(prog.first(s) for s in range(depth)))
        in_flight = depth
        errors = 0
        first_error = ""
        units = 0
        sock.settimeout(spec.grace)
        while in_flight:
            data = sock.recv(1 << 16)
            if not data:
                raise ConnectionError("daemon closed the connection")
            dec.receive_data(data)
            t = now()
            out_batch = []
            for pkt in dec:
                slot = pkt.req_id
                if pkt.op == Op.WATCH_EVENT or slot >= depth or not busy[slot]:
                    continue
                nxt, err = prog.step(slot, pkt.op, pkt.payload)
                if err and not first_error:
                    first_error = err
                if nxt is not None:
                    out_batch.append(nxt)
                    continue
                if err:
                    errors += 1
                else:
                    units += 1
                    lat.append(t - unit_start[slot])
                if t < deadline:
                    unit_start[slot] = t
                    out_batch.append(prog.first(slot))
                else:
                    busy[slot] = False
                    in_flight -= 1
            if out_batch:
                sock.sendall(b"".join(out_batch))
            if t > hard:
                res.timed_out = True
                break
        res.end_ns = now()
        res.cpu_s = time.process_time() - cpu0
        res.units, res.errors, res.first_error = units, errors, first_error
        res.latencies = lat.tobytes()
        sock.close()
    except Exception as exc:
        res.first_error = f"{type(exc).__name__}: {exc}"
        res.extra["traceback"] = traceback.format_exc()
        res.errors += 1
    out.send(res)
    out.close()


# ---------------------------------------------------------------------------
# Watch fan-out: writers write, watcher processes hold one watch per connection.


def watcher_proc(
    spec: CellSpec,
    index: int,
    conns: int,
    barrier: Any,
    done: Any,
    wakes: list[int],
    sent: Any,
    stop: Any,
    out: Connection,
) -> None:
    """Process body: hold ``conns`` watching connections, count and time the events.

    ``done[index * writers + w]`` is the number of writer ``w``'s writes whose event has
    reached every connection of this process; each time it grows a byte goes to
    ``wakes[w]`` so that the writer can send its next write.
    """
    writers = spec.clients
    res = ClientResult()
    socks: list[socket.socket] = []
    try:
        ep = select.epoll()
        decs: dict[int, Decoder] = {}
        # seen[fd][w]: events of writer w received on fd (events come in order per fd).
        seen: dict[int, list[int]] = {}
        for i in range(conns):
            sock = _connect(spec.socket)
            sock.sendall(encode(Op.WATCH, 1, 0, f"{FAN_PATH}\0t{index}.{i}\0".encode()))
            socks.append(sock)
        for sock in socks:  # wait for the WATCH reply and the initial event on each
            dec = Decoder()
            got_ok = got_event = False
            sock.settimeout(30)
            while not (got_ok and got_event):
                data = sock.recv(4096)
                if not data:
                    raise ConnectionError("daemon closed a watcher connection")
                dec.receive_data(data)
                for pkt in dec:
                    if pkt.op == Op.WATCH_EVENT:
                        got_event = True
                    elif pkt.op == Op.ERROR:
                        raise RuntimeError(f"WATCH failed: {parse_error(pkt.payload)}")
                    else:
                        got_ok = True
            sock.setblocking(False)
            fd = sock.fileno()
            decs[fd] = dec
            seen[fd] = [0] * writers
            ep.register(fd, select.EPOLLIN)
        # arrived[w][k]: connections that have writer w's k-th event; complete when == conns.
        arrived: list[list[int]] = [[] for _ in range(writers)]
        completed = [0] * writers
        complete_ns: list[array[int]] = [array("q") for _ in range(writers)]
        events = 0
        last_ns = 0
        prefix = len(FAN_PATH) + 2  # "/bench/fan/w"
        ring = fan_ring(spec.depth)
        lost = 0
        barrier.wait(60)
        res.start_ns = time.monotonic_ns()
        cpu0 = time.process_time()
        hard = res.start_ns + int((spec.duration + 2 * spec.grace) * 1e9)
        recv = os.read
        while True:
            ready = ep.poll(0.05)
            t = time.monotonic_ns()
            for fd, _ in ready:
                try:
                    data = recv(fd, 4096)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError("daemon closed a watcher connection")
                dec = decs[fd]
                dec.receive_data(data)
                mine = seen[fd]
                for pkt in dec:
                    if pkt.op != Op.WATCH_EVENT:
                        continue
                    path = pkt.payload[: pkt.payload.index(b"\0")]
                    if len(path) <= prefix:
                        continue  # the initial event of the watch itself
                    who, _, slot = path[prefix:].partition(b"/")
                    w = int(who)
                    first = mine[w]
                    # The k-th write goes to slot k % ring; a gap means events were lost.
                    k = first + (int(slot) - first) % ring
                    mine[w] = k + 1
                    events += 1
                    last_ns = t
                    lost += k - first
                    got = arrived[w]
                    for j in range(first, k + 1):
                        if j == len(got):
                            got.append(1)
                        else:
                            got[j] += 1
                    # Completion is in order: every fd had k-1 before it had k.
                    c = completed[w]
                    if c < len(got) and got[c] == conns:
                        while c < len(got) and got[c] == conns:
                            complete_ns[w].append(t)
                            c += 1
                        completed[w] = c
                        done[index * writers + w] = c
                        os.write(wakes[w], b"!")
            if stop.is_set() and all(completed[w] >= sent[w] for w in range(writers)):
                break
            if t > hard:
                res.timed_out = True
                break
        res.end_ns = time.monotonic_ns()
        res.cpu_s = time.process_time() - cpu0
        res.units = events
        res.extra["last_ns"] = last_ns
        res.extra["lost"] = lost
        res.extra["complete_ns"] = [c.tobytes() for c in complete_ns]
    except Exception as exc:
        res.first_error = f"{type(exc).__name__}: {exc}"
        res.extra["traceback"] = traceback.format_exc()
        res.errors += 1
        stop.set()
    for sock in socks:
        sock.close()
    out.send(res)
    out.close()


def writer_proc(
    spec: CellSpec,
    client: int,
    barrier: Any,
    done: Any,
    wake: int,
    sent_arr: Any,
    out: Connection,
) -> None:
    """Process body: write ``/bench/fan/w<client>`` with up to ``depth`` writes undelivered.

    A write is outstanding until its reply has come and every watcher has its event.
    """
    res = ClientResult()
    try:
        procs = spec.watcher_procs
        writers = spec.clients
        sock = _connect(spec.socket)
        sock.setblocking(False)
        ring = fan_ring(spec.depth)
        writes = [
            encode(Op.WRITE, 1, 0, f"{FAN_PATH}/w{client}/{i}\0".encode() + b"1")
            for i in range(ring)
        ]
        dec = Decoder()
        send_ns = array("q")
        sent = replied = delivered = 0
        errors = 0
        barrier.wait(60)
        now = time.monotonic_ns
        res.start_ns = t = now()
        cpu0 = time.process_time()
        deadline = t + int(spec.duration * 1e9)
        hard = deadline + int(spec.grace * 1e9)
        depth = spec.depth
        poller = select.epoll()
        poller.register(sock.fileno(), select.EPOLLIN)
        poller.register(wake, select.EPOLLIN)
        while True:
            if t < deadline:
                room = min(replied, delivered) + depth - sent
                if room > 0:
                    sock.sendall(b"".join(writes[k % ring] for k in range(sent, sent + room)))
                    send_ns.extend([t] * room)
                    sent += room
            elif replied == sent and delivered >= sent:
                break
            if t > hard:
                res.timed_out = True
                break
            for fd, _ in poller.poll(0.1):
                if fd == wake:
                    os.read(wake, 4096)
                    delivered = min(done[p * writers + client] for p in range(procs))
                    continue
                try:
                    data = sock.recv(1 << 16)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError("daemon closed the writer connection")
                dec.receive_data(data)
                for pkt in dec:
                    if pkt.op == Op.ERROR:
                        errors += 1
                        if not res.first_error:
                            res.first_error = parse_error(pkt.payload)
                    if pkt.op != Op.WATCH_EVENT:
                        replied += 1
            t = now()
        res.end_ns = now()
        res.cpu_s = time.process_time() - cpu0
        res.units = sent
        res.errors = errors
        res.extra["send_ns"] = send_ns.tobytes()
        sock.close()
    except Exception as exc:
        res.first_error = f"{type(exc).__name__}: {exc}"
        res.extra["traceback"] = traceback.format_exc()
        res.errors += 1
    sent_arr[client] = res.units
    out.send(res)
    out.close()


# ---------------------------------------------------------------------------
# Running a cell


@dataclass(slots=True)
class CellResult:
    """The measured outcome of one cell (before the daemon's CPU is attached)."""

    units: int
    seconds: float
    latencies_ns: list[int]
    errors: int
    first_error: str
    timed_out: bool
    start_ns: int = 0
    lost: int = 0
    """Watch events that never arrived (a later event of the same writer did)."""
    client_cpu_s: float = 0.0
    """CPU time the client processes used over the window (the load generator's cost)."""


def _percentile(sorted_values: list[int], q: float) -> int:
    if not sorted_values:
        return 0
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def percentiles(latencies_ns: list[int]) -> tuple[float, float]:
    """(p50, p99) in microseconds."""
    values = sorted(latencies_ns)
    return _percentile(values, 0.50) / 1e3, _percentile(values, 0.99) / 1e3


def run_cell(spec: CellSpec, on_start: Callable[[], None]) -> CellResult:
    """Run one cell in fresh client processes; call ``on_start`` when they all start."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    procs: list[Any] = []
    pipes: list[Connection] = []
    closers: list[int] = []
    watch = spec.workload == "watch"
    if watch:
        with Conn(spec.socket) as conn:
            ring = fan_paths(spec.clients, spec.depth)
            conn.pipeline(((Op.WRITE, 0, f"{p}\0".encode() + v) for p, v in ring), 256)
        n_watch = max(1, min(spec.watcher_procs, spec.watchers))
        spec.watcher_procs = n_watch
        barrier = ctx.Barrier(spec.clients + n_watch + 1)
        done = ctx.Array("q", n_watch * spec.clients, lock=False)
        sent = ctx.Array("q", [1 << 62] * spec.clients, lock=False)
        stop = ctx.Event()
        wakes = [os.pipe() for _ in range(spec.clients)]
        for r, w in wakes:
            os.set_blocking(r, False)
            closers += [r, w]
        share = [spec.watchers // n_watch + (i < spec.watchers % n_watch) for i in range(n_watch)]
        for i, conns in enumerate(share):
            rx, tx = ctx.Pipe(duplex=False)
            args = (spec, i, conns, barrier, done, [w for _, w in wakes], sent, stop, tx)
            procs.append(ctx.Process(target=watcher_proc, args=args, daemon=True))
            pipes.append(rx)
        writer_pipes = []
        for c in range(spec.clients):
            rx, tx = ctx.Pipe(duplex=False)
            args2 = (spec, c, barrier, done, wakes[c][0], sent, tx)
            procs.append(ctx.Process(target=writer_proc, args=args2, daemon=True))
            writer_pipes.append(rx)
        pipes += writer_pipes
    else:
        barrier = ctx.Barrier(spec.clients + 1)
        target = boot_client if spec.workload == "boot" else request_client
        for c in range(spec.clients):
            rx, tx = ctx.Pipe(duplex=False)
            args3 = (spec, c, barrier, tx)
            procs.append(ctx.Process(target=target, args=args3, daemon=True))
            pipes.append(rx)
    for p in procs:
        p.start()
    results: list[ClientResult] = []
    try:
        barrier.wait(120)
        on_start()
        limit = time.monotonic() + spec.duration + 3 * spec.grace + 30
        if watch:
            # Writers first: once they are done, tell the watchers how much to expect.
            results_w = [_receive(p, limit) for p in pipes[len(pipes) - spec.clients :]]
            stop.set()
            results = [_receive(p, limit) for p in pipes[: len(pipes) - spec.clients]]
            results += results_w
        else:
            results = [_receive(p, limit) for p in pipes]
    except Exception as exc:  # a broken barrier or a silent client
        results.append(ClientResult(errors=1, first_error=f"{type(exc).__name__}: {exc}"))
    finally:
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)
        for fd in closers:
            os.close(fd)
    return _combine(spec, results)


def _receive(pipe: Connection, limit: float) -> ClientResult:
    if not pipe.poll(max(0.0, limit - time.monotonic())):
        return ClientResult(errors=1, first_error="client process did not report in time")
    res: ClientResult = pipe.recv()
    return res


def _combine(spec: CellSpec, results: list[ClientResult]) -> CellResult:
    errors = sum(r.errors for r in results)
    first_error = next((r.first_error for r in results if r.first_error), "")
    timed_out = any(r.timed_out for r in results)
    starts = [r.start_ns for r in results if r.start_ns]
    ends = [r.end_ns for r in results if r.end_ns]
    start = min(starts) if starts else 0
    seconds = (max(ends) - start) / 1e9 if starts and ends else 0.0
    if spec.workload == "watch":  # watchers linger for the stop signal: end at the last event
        last = [r.extra["last_ns"] for r in results if r.extra.get("last_ns")]
        if last:
            seconds = (max(last) - start) / 1e9
    lat: list[int] = []
    if spec.workload != "watch":
        units = sum(r.units for r in results)
        for r in results:
            a: array[int] = array("q")
            a.frombytes(r.latencies)
            lat.extend(a)
    else:
        n_watch = spec.watcher_procs
        watchers, writers = results[:n_watch], results[n_watch:]
        units = sum(r.units for r in watchers)
        if len(writers) == spec.clients and all("complete_ns" in r.extra for r in watchers):
            for w, wr in enumerate(writers):
                sends: array[int] = array("q")
                sends.frombytes(wr.extra.get("send_ns", b""))
                per_proc = []
                for r in watchers:
                    c: array[int] = array("q")
                    c.frombytes(r.extra["complete_ns"][w])
                    per_proc.append(c)
                n = min([len(sends), *(len(c) for c in per_proc)])
                lat.extend(max(c[k] for c in per_proc) - sends[k] for k in range(n))
    lost = sum(r.extra.get("lost", 0) for r in results)
    cpu = sum(r.cpu_s for r in results)
    return CellResult(units, seconds, lat, errors, first_error, timed_out, start, lost, cpu)


def make_spec(socket_path: Path, workload: str, clients: int, depth: int, **kw: Any) -> CellSpec:
    """A :class:`CellSpec` with checked arguments."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r}")
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be 1..{MAX_CLIENTS}")
    if workload == "boot" and depth != 1:
        raise ValueError("the boot storm's workers send one request at a time: depth 1")
    return CellSpec(str(socket_path), workload, clients, max(1, depth), **kw)
