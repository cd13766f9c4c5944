"""The side processes of a live-update measurement: holder, reader and sampler.

Each runs in its own process (``multiprocessing``, fork), so that none of them competes
with the process that times ``-s`` for its interpreter lock:

* :func:`holder_main` opens the idle connections, registers the watches spread over them,
  then drains whatever the daemon sends (watch events) until told to stop; on request it
  checks that every connection still answers a READ;
* :func:`reader_main` sends READs one at a time on its own connection, recording when each
  was sent and how long its reply took, until stopped;
* :func:`sampler_main` reads the daemon's VmRSS from ``/proc/PID/status`` every ~1 ms, with
  the resident memory of its child processes (the xsd dry run) and the system's Shmem
  (a memfd holding the state is shared memory that no VmRSS shows).

Invariants: every loop is bounded by a hard deadline given by the parent, every socket has
a timeout, and each process sends exactly one final message on its pipe (results or
``("error", text)``) before it exits, so the parent never waits on a silent child.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import time
import traceback
from array import array
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from tools.bench.conn import Conn
from xsd_client.protocol import Decoder, Op, encode

WATCH_PREFIX = "/lu/watch"
"""Watch ``j`` is on ``WATCH_PREFIX/j`` (a node that need not exist), token ``w<j>``."""

PROBE_PATH = "/lu/probe"
"""The node the reader and the connection check READ."""

VERIFY_REQ_ID = 0x7FFFFF00
"""Request id of the READ each held connection sends when asked to verify."""


def _send_final(out: Connection, message: tuple[Any, ...]) -> None:
    with contextlib.suppress(OSError, ValueError):
        out.send(message)


# ---------------------------------------------------------------------------- holder


def connect(socket_path: str, deadline: float) -> Conn:
    """A new connection, retried while the daemon's listen backlog is full.

    C xenstored listens with a backlog of 1, so a burst of connects gets EAGAIN until it
    has accepted the previous ones.
    """
    while True:
        try:
            return Conn(socket_path, timeout=30.0)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def holder_main(
    socket_path: str, connections: int, watches: int, ctl: Connection, hard_deadline: float
) -> None:
    """Process body: hold ``connections`` idle connections with ``watches`` watches.

    Messages on ``ctl``: it sends ``("ready", connections, watches, errors)`` once set up
    (or ``("error", text)``); it answers ``"verify"`` with ``("verified", answered, open)``
    and ends on ``"stop"`` (or at ``hard_deadline``, ``time.monotonic()``).
    """
    conns: list[Conn] = []
    try:
        for _ in range(connections):
            conns.append(connect(socket_path, time.monotonic() + 30.0))
        per_conn: list[list[int]] = [[] for _ in range(connections)]
        for j in range(watches):
            per_conn[j % connections].append(j)
        errors = 0
        for conn, ids in zip(conns, per_conn, strict=True):
            requests = [(int(Op.WATCH), 0, f"{WATCH_PREFIX}/{j}\0w{j}\0".encode()) for j in ids]
            if requests:
                errors += conn.pipeline(requests, depth=len(requests), timeout=60.0)
            conn.events.clear()
        ctl.send(("ready", len(conns), watches, errors))
    except Exception:
        _send_final(ctl, ("error", traceback.format_exc(limit=3)))
        for conn in conns:
            conn.close()
        return
    try:
        _drain(conns, ctl, hard_deadline)
    except Exception:
        _send_final(ctl, ("error", traceback.format_exc(limit=3)))
    finally:
        for conn in conns:
            conn.close()


def _drain(conns: list[Conn], ctl: Connection, hard_deadline: float) -> None:
    """Read and drop what the daemon sends; answer the parent's commands."""
    sel = selectors.DefaultSelector()
    for i, conn in enumerate(conns):
        conn.sock.setblocking(False)
        sel.register(conn.sock, selectors.EVENT_READ, i)
    sel.register(ctl.fileno(), selectors.EVENT_READ, -1)
    open_conns = set(range(len(conns)))
    waiting: set[int] | None = None  # connections whose verify READ has no reply yet
    verify_deadline = 0.0
    probe = encode(Op.READ, VERIFY_REQ_ID, 0, f"{PROBE_PATH}\0".encode())
    while time.monotonic() < hard_deadline:
        for key, _ in sel.select(timeout=0.5):
            i = key.data
            if i == -1:
                command = ctl.recv()
                if command == "stop":
                    return
                if command == "verify":
                    waiting = set()
                    for k in sorted(open_conns):
                        try:
                            conns[k].sock.sendall(probe)  # 32 bytes: fits any socket buffer
                            waiting.add(k)
                        except OSError:
                            pass
                    verify_deadline = time.monotonic() + 30.0
                continue
            conn = conns[i]
            try:
                data = conn.sock.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(conn.sock)
                open_conns.discard(i)
                if waiting is not None:
                    waiting.discard(i)
                continue
            conn.decoder.receive_data(data)
            for packet in conn.decoder:
                is_probe = packet.op != Op.WATCH_EVENT and packet.req_id == VERIFY_REQ_ID
                if is_probe and waiting is not None:
                    waiting.discard(i)
        if waiting is not None and (not waiting or time.monotonic() > verify_deadline):
            ctl.send(("verified", len(open_conns) - len(waiting), len(conns)))
            waiting = None


# ---------------------------------------------------------------------------- reader


def reader_main(
    socket_path: str, stop: Event, out: Connection, timeout: float, hard_deadline: float
) -> None:
    """Process body: READ ``PROBE_PATH`` in a loop, one request in flight, until ``stop``.

    Sends ``("ready",)`` once connected, then at the end ``("done", sends, latencies,
    errors, error_text)`` where ``sends`` and ``latencies`` are ``array('q')`` bytes of
    ``time.monotonic_ns()`` send times and reply latencies (ns).
    """
    sends = array("q")
    lats = array("q")
    errors = 0
    text = ""
    try:
        sock = connect(socket_path, time.monotonic() + 30.0).sock
        sock.settimeout(timeout)
    except OSError as exc:
        _send_final(out, ("error", f"reader cannot connect: {exc}"))
        return
    out.send(("ready",))
    decoder = Decoder()
    request = encode(Op.READ, 1, 0, f"{PROBE_PATH}\0".encode())
    now = time.monotonic_ns
    hard_ns = int(hard_deadline * 1e9)
    try:
        while not stop.is_set():
            t0 = now()
            if t0 > hard_ns:
                text = "reader stopped at its hard deadline"
                break
            sock.sendall(request)
            while True:
                packet = decoder.next_packet()
                if packet is not None and packet.op != Op.WATCH_EVENT:
                    break
                if packet is None:
                    data = sock.recv(1 << 16)
                    if not data:
                        raise OSError("daemon closed the reader's connection")
                    decoder.receive_data(data)
            t1 = now()
            if packet.op == Op.ERROR:
                errors += 1
            sends.append(t0)
            lats.append(t1 - t0)
    except OSError as exc:  # a timeout included
        errors += 1
        text = f"reader: {exc or type(exc).__name__}"
    finally:
        sock.close()
    _send_final(out, ("done", sends.tobytes(), lats.tobytes(), errors, text))


# ---------------------------------------------------------------------------- sampler


def _status_kb(pid: int | str, field: str = "VmRSS:") -> int:
    """A ``kB`` field of ``/proc/PID/status`` (0 if the process or field is gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            key = field.encode()
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children(pid: int) -> list[str]:
    """The pids of ``pid``'s child processes, from every thread's ``children`` list."""
    kids: list[str] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for task in tasks:
        with contextlib.suppress(OSError):
            kids += Path(f"/proc/{pid}/task/{task}/children").read_text().split()
    return kids


def _shmem_kb() -> int:
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"Shmem:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def sampler_main(
    pid: int, stop: Event, out: Connection, interval: float, hard_deadline: float
) -> None:
    """Process body: sample memory every ``interval`` seconds until ``stop``.

    Sends ``("ready",)`` after the first sample, then ``("done", times, rss, child_rss,
    shmem)``: ``array('q')`` bytes of ``time.monotonic_ns()`` and kB figures.
    """
    times, rss, child, shmem = array("q"), array("q"), array("q"), array("q")
    ready = False
    try:
        while not stop.is_set() and time.monotonic() < hard_deadline:
            times.append(time.monotonic_ns())
            rss.append(_status_kb(pid))
            child.append(sum(_status_kb(kid) for kid in _children(pid)))
            shmem.append(_shmem_kb())
            if not ready:
                out.send(("ready",))
                ready = True
            time.sleep(interval)
    except Exception:
        _send_final(out, ("error", traceback.format_exc(limit=3)))
        return
    _send_final(out, ("done", times.tobytes(), rss.tobytes(), child.tobytes(), shmem.tobytes()))
