"""The watch fan-out: writers write, watcher processes hold one watch per connection.

A unit is one delivered watch event. :func:`writer_proc` keeps up to ``depth`` writes
undelivered; :func:`watcher_proc` holds many watching connections, counts the events and
times the moment every connection of the process has each write's event, telling the
writer through shared counters and a wake-up pipe.
"""

from __future__ import annotations

import os
import select
import socket
import time
import traceback
from array import array
from multiprocessing.connection import Connection
from typing import Any

from tools.bench.cell import FAN_PATH, CellSpec, ClientResult, connect, fan_ring
from xsd_client.protocol import Decoder, Op, encode, parse_error


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
            sock = connect(spec.socket)
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
        sock = connect(spec.socket)
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
