"""One fuzzing run: a real daemon, many hostile clients, invariants checked throughout.

The run starts ``python -m xsd``, introduces ``guests`` domains (1..N, each with a home
it owns), and keeps ``conns`` clients connected (``dom0_share`` of them on domain 0's socket, the
rest on the guests' own sockets; see :mod:`tools.fuzz.actors`). A bystander thread on domain
0's socket sends a READ every ``probe_interval`` and times the answer.

Invariants, checked every ``check_interval`` and at the end:

* the daemon process never exits;
* every bystander probe is answered within ``latency_bound`` seconds;
* the daemon's RSS stays under ``rss_limit_mib``;
* no traceback or "internal error" in the daemon's output;
* at the end: a fresh domain 0 connection is served and ``CONTROL check`` says ``OK``.
"""

from __future__ import annotations

import heapq
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tools.fuzz.actors import Client
from tools.fuzz.daemon import Daemon, call, introduce, raise_fd_limit
from xsd_client.protocol import Op


@dataclass
class Options:
    seed: int
    duration: float = 30.0
    max_requests: int = 0  # stop after this many (0: only the duration)
    conns: int = 100
    guests: int = 4
    dom0_share: float = 1 / 3  # of the clients, on domain 0's socket (the rest: guests)
    rss_limit_mib: int = 512
    latency_bound: float = 1.0
    probe_interval: float = 0.1
    check_interval: float = 0.25
    daemon_args: list[str] = field(default_factory=list)
    rundir: Path | None = None
    progress: float = 0.0  # seconds between progress lines (0: none)


@dataclass
class Figures:
    seed: int
    requests: int = 0  # whole requests the kernel took from the clients
    replies: int = 0  # replies (and errors) the clients received
    events: int = 0  # watch events the clients received
    bytes_sent: int = 0
    bytes_received: int = 0
    connections: int = 0  # opened in all
    peak_concurrent: int = 0
    closed_by_daemon: int = 0
    vanished: int = 0
    connect_failures: int = 0
    duration: float = 0.0
    start_rss_kib: int = 0
    peak_rss_kib: int = 0
    end_rss_kib: int = 0
    probes: int = 0
    probe_max: float = 0.0
    probe_p99: float = 0.0
    alive: bool = True
    exit_status: int | None = None
    violations: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Bystander(threading.Thread):
    """A domain 0 client that asks a READ every ``interval`` and times each answer."""

    def __init__(self, path: Path, interval: float, bound: float) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.interval = interval
        self.bound = bound
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(max(5.0, 5 * self.bound))
                sock.connect(str(self.path))
                req = 0
                while not self.stop.wait(self.interval):
                    req += 1
                    start = time.monotonic()
                    # Any answer will do: the clients may have removed the node.
                    call(sock, Op.READ, "/tool/xenstored", req_id=req, errors=False)
                    took = time.monotonic() - start
                    self.latencies.append(took)
                    if took > self.bound:
                        self.failures.append(f"bystander probe {req} took {took:.3f} s")
        except Exception as exc:
            self.failures.append(f"bystander failed: {exc!r}")


def run(opts: Options, log: Callable[[str], None] = print) -> Figures:
    """Fuzz a fresh daemon as ``opts`` say; the figures, with any violations."""
    raise_fd_limit()
    figures = Figures(opts.seed)
    with tempfile.TemporaryDirectory(prefix="xsd-fuzz-") as tmp:
        rundir = opts.rundir or Path(tmp) / "run"
        daemon = Daemon(rundir, opts.daemon_args)
        try:
            _fuzz(opts, daemon, figures, log)
        finally:
            figures.exit_status = daemon.stop()
            figures.violations += [f"daemon output: {line}" for line in daemon.scan()]
            if opts.rundir is None and figures.violations:
                kept = Path(tempfile.mkdtemp(prefix="xsd-fuzz-failed-"))
                (kept / "xsd.out").write_bytes(daemon.out_path.read_bytes())
                log(f"fuzz: the daemon's output is kept in {kept / 'xsd.out'}")
    return figures


def _fuzz(opts: Options, daemon: Daemon, figures: Figures, log: Callable[[str], None]) -> None:
    setup = socket.socket(socket.AF_UNIX)
    setup.settimeout(60)
    setup.connect(str(daemon.socket))
    guests = list(range(1, opts.guests + 1))
    for domid in guests:
        introduce(setup, domid)
    call(setup, Op.MKDIR, "/fuzz")
    figures.start_rss_kib = figures.peak_rss_kib = daemon.rss_kib()
    bystander = Bystander(daemon.socket, opts.probe_interval, opts.latency_bound)
    bystander.start()

    def socket_of(domid: int) -> Path:
        return daemon.socket if domid == 0 else daemon.rundir / "domains" / str(domid) / "socket"

    def domain_of(slot: int) -> int:
        # Spread evenly: slot s is domain 0's when the share's multiples step over it.
        dom0 = int((slot + 1) * opts.dom0_share) > int(slot * opts.dom0_share)
        return 0 if not guests or dom0 else guests[slot % len(guests)]

    clients: dict[int, Client] = {}
    lives: dict[int, int] = {}
    heap: list[tuple[float, int]] = []
    start = time.monotonic()

    def spawn(slot: int, now: float) -> None:
        domid = domain_of(slot)
        lives[slot] = lives.get(slot, -1) + 1
        try:
            client = Client(opts.seed, slot, lives[slot], domid, socket_of(domid))
        except OSError:
            figures.connect_failures += 1
            if domid:
                introduce(setup, domid)  # released by someone? A toolstack would redo it
            heapq.heappush(heap, (now + 0.1, slot))
            return
        client.born = now
        clients[slot] = client
        figures.connections += 1
        heapq.heappush(heap, (now, slot))

    for slot in range(opts.conns):
        spawn(slot, start)
    next_check = start + opts.check_interval
    next_progress = start + opts.progress if opts.progress else float("inf")
    ended = {"closed": 0, "vanished": 0}

    def retire(client: Client) -> None:
        figures.requests += client.sent_requests
        figures.bytes_sent += client.sent_bytes
        figures.bytes_received += client.received
        figures.replies += client.replies
        figures.events += client.events
        if client.end in ended:
            ended[client.end] += 1

    def live_requests() -> int:
        return figures.requests + sum(c.sent_requests for c in clients.values())

    def live_replies() -> int:
        return figures.replies + sum(c.replies for c in clients.values())

    while True:
        now = time.monotonic()
        if now >= next_check:
            next_check = now + opts.check_interval
            figures.peak_concurrent = max(figures.peak_concurrent, len(clients))
            if not _check(daemon, figures, bystander, opts):
                break
            if now - start >= opts.duration:
                break
            if opts.max_requests and live_requests() >= opts.max_requests:
                break
        if now >= next_progress:
            next_progress = now + opts.progress
            lat = max(bystander.latencies, default=0.0)
            log(
                f"fuzz: {now - start:6.0f} s  {live_requests():>9} requests  "
                f"{live_replies():>9} replies  "
                f"{figures.connections:>6} connections ({len(clients)} open)  "
                f"rss {daemon.rss_kib() // 1024} MiB (peak {figures.peak_rss_kib // 1024})  "
                f"probe max {lat * 1000:.0f} ms"
            )
        if not heap:
            time.sleep(0.01)
            continue
        when, slot = heap[0]
        if when > now:
            time.sleep(min(when - now, 0.005))
            continue
        heapq.heappop(heap)
        client = clients.get(slot)
        if client is None:  # a slot waiting to connect again
            spawn(slot, now)
            continue
        delay = client.step(now)
        if delay is None:
            del clients[slot]
            retire(client)
            spawn(slot, now)
        else:
            heapq.heappush(heap, (now + delay, slot))
    figures.duration = time.monotonic() - start
    for client in clients.values():
        client.close("done")
        retire(client)
    figures.closed_by_daemon = ended["closed"]
    figures.vanished = ended["vanished"]
    bystander.stop.set()
    bystander.join(10)
    _final(daemon, figures, bystander, setup)
    setup.close()


def _check(daemon: Daemon, figures: Figures, bystander: Bystander, opts: Options) -> bool:
    """The invariants now; False if the run must stop (the daemon is gone)."""
    if not daemon.alive():
        figures.alive = False
        figures.violations.append(f"the daemon exited ({daemon.proc.returncode})")
        return False
    rss = daemon.rss_kib()
    figures.peak_rss_kib = max(figures.peak_rss_kib, rss)
    if rss > opts.rss_limit_mib * 1024 and not any("RSS" in v for v in figures.violations):
        figures.violations.append(f"RSS {rss // 1024} MiB over {opts.rss_limit_mib} MiB")
    for line in daemon.scan():
        figures.violations.append(f"daemon output: {line}")
    while bystander.failures:
        figures.violations.append(bystander.failures.pop(0))
    return True


def _final(daemon: Daemon, figures: Figures, bystander: Bystander, setup: socket.socket) -> None:
    _check(daemon, figures, bystander, Options(seed=0, rss_limit_mib=1 << 30))
    lat = sorted(bystander.latencies)
    figures.probes = len(lat)
    figures.probe_max = lat[-1] if lat else 0.0
    figures.probe_p99 = lat[int(0.99 * (len(lat) - 1))] if lat else 0.0
    if not lat:
        figures.violations.append("the bystander was never answered")
    figures.alive = daemon.alive()
    figures.end_rss_kib = daemon.rss_kib()
    if not figures.alive:
        return
    try:
        with socket.socket(socket.AF_UNIX) as fresh:
            # The clients are gone, but what they sent before closing is still answered
            # (as C does): on a loaded machine that can take a while.
            fresh.settimeout(60)
            fresh.connect(str(daemon.socket))
            call(fresh, Op.READ, "/tool/xenstored", errors=False)
        if call(setup, Op.CONTROL, "check") != b"OK\0":
            figures.violations.append("CONTROL check did not answer OK")
    except Exception as exc:
        figures.violations.append(f"after the run, domain 0 is not served: {exc!r}")
    if "check:" in daemon.tail(20000):
        figures.violations.append("CONTROL check found inconsistencies (see the output)")
