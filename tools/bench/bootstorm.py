"""The boot storm: workers that create and tear down domains as libxl does, one request at
a time.

A unit is one domain's whole life, ``xl create`` then ``xl shutdown`` (destroy and
release included), replayed from :mod:`tools.bench.libxl_lifecycle`: about 430 requests
with their transactions, watches and the XenbusState handshake of a disk and a vif. Each
client process is one worker: it plays the actors (libxl, the backends, the hotplug
scripts, xenconsoled, QEMU, the guest's kernel) on a connection each, waits for every
reply before the next request, and uses one domain id, released and used again unit
after unit; units alternate between a PV and an HVM guest. Before the start barrier each
worker plays the ``boot`` block (dom0's own nodes, the backend bus watch, xenconsoled's
watches), so every worker's watchers see every worker's domains come and go.

All actors speak as domain 0, the guest too, on every daemon: C xenstored has no other
kind of socket client, and the same requests must reach every daemon (the guest's own
socket is exercised by ``tests/conformance/test_libxl_replay.py``). Watch events are
read and discarded at the end of each unit. A reply that is an error other than ENOENT
(which libxl gets, and ignores, removing what is not there yet) fails the unit; a
transaction whose commit conflicts (EAGAIN) is played again, as libxl does.
"""

from __future__ import annotations

import select
import socket
import time
import traceback
from array import array
from typing import TYPE_CHECKING, Any

from tools.bench.cell import ClientResult
from tools.bench.libxl_lifecycle import Guest, Request, expand
from xsd_client.protocol import Decoder, Op, encode, join_args, parse_error

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from tools.bench.cell import CellSpec

Step = tuple[str, int, bytes, bool]
"""``(actor, op, payload, in its transaction)``; op -1 closes the actor's connection."""

CLOSE = -1
RETRIES = 50
"""Attempts at a transaction that keeps conflicting before the unit fails."""


def _steps(requests: list[Request]) -> list[Step]:
    out: list[Step] = []
    for r in requests:
        if r.op == "CLOSE":
            out.append((r.actor, CLOSE, b"", False))
            continue
        op = int(Op[r.op])
        if r.op == "WRITE":
            payload = r.args[0].encode() + b"\0" + r.args[1].encode()
        elif r.op in ("TRANSACTION_START", "RESET_WATCHES"):
            payload = b"\0"
        else:
            payload = join_args(*r.args)
        out.append((r.actor, op, payload, r.tx or op == Op.TRANSACTION_END))
    return out


def unit_steps(domid: int, kind: str) -> list[Step]:
    """One domain's life: created, shut down, destroyed, released."""
    guest = Guest(domid, kind)
    return _steps([*expand("create", guest), *expand("shutdown", guest)])


class Worker:
    """The actors' connections of one worker, and the requests it plays."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.socks: dict[str, socket.socket] = {}
        self.decoders: dict[str, Decoder] = {}
        self.tx: dict[str, int] = {}
        self.open_tx: dict[str, list[Step]] = {}
        self.req_id = 0
        self.retries = 0

    def _sock(self, actor: str) -> socket.socket:
        sock = self.socks.get(actor)
        if sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            for _ in range(1000):
                try:
                    sock.connect(self.path)
                    break
                except BlockingIOError:  # C xenstored's listen backlog is 1: wait a little
                    time.sleep(0.005)
            else:
                raise ConnectionError(f"{actor}: the daemon does not accept connections")
            self.socks[actor] = sock
            self.decoders[actor] = Decoder()
        return sock

    def play(self, step: Step) -> str:
        """Play one request; a commit that gets EAGAIN is retried whole, as libxl and the
        kernel's xenbus do (every request of the actor since its TRANSACTION_START)."""
        actor, op = step[0], step[1]
        if op == Op.TRANSACTION_START:
            self.open_tx[actor] = []
        opened = self.open_tx.get(actor)
        if opened is not None:
            opened.append(step)
        err = self._send(step)
        if op != Op.TRANSACTION_END:
            return err
        steps = self.open_tx.pop(actor, [])
        for _ in range(RETRIES):
            if err != "EAGAIN":
                break
            self.retries += 1
            for again in steps:
                err = self._send(again)
        return err

    def _send(self, step: Step) -> str:
        """Send one request and wait for its reply; the error name, or ""."""
        actor, op, payload, in_tx = step
        if op == CLOSE:
            sock = self.socks.pop(actor, None)
            if sock is not None:
                sock.close()
            return ""
        sock = self._sock(actor)
        self.req_id = req_id = (self.req_id + 1) & 0xFFFF
        sock.sendall(encode(op, req_id, self.tx.get(actor, 0) if in_tx else 0, payload))
        dec = self.decoders[actor]
        while True:
            for pkt in dec:
                if pkt.op == Op.WATCH_EVENT or pkt.req_id != req_id:
                    continue
                if pkt.op == Op.ERROR:
                    return parse_error(pkt.payload)
                if op == Op.TRANSACTION_START:
                    self.tx[actor] = int(pkt.payload.rstrip(b"\0"))
                return ""
            data = sock.recv(1 << 16)
            if not data:
                raise ConnectionError(f"daemon closed {actor}'s connection")
            dec.receive_data(data)

    def drain(self) -> None:
        """Read and drop the watch events waiting on every connection."""
        actors = {sock: actor for actor, sock in self.socks.items()}
        while actors:
            ready, _, _ = select.select(list(actors), [], [], 0)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(1 << 16)
                if not data:
                    raise ConnectionError(f"daemon closed {actors[sock]}'s connection")
                decoder = self.decoders[actors[sock]]
                decoder.receive_data(data)
                for _ in decoder:
                    pass

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()


def boot_client(spec: CellSpec, client: int, barrier: Any, out: Connection) -> None:
    """Process body: one worker of the boot storm; sends a ClientResult."""
    res = ClientResult()
    worker = Worker(spec.socket)
    try:
        domid = 1 + client
        units = [unit_steps(domid, "pv"), unit_steps(domid, "hvm")]
        for step in _steps(list(expand("boot"))):
            worker.play(step)
        worker.drain()
        lat = array("q")
        barrier.wait(60)
        now = time.monotonic_ns
        res.start_ns = t = now()
        cpu0 = time.process_time()
        deadline = t + int(spec.duration * 1e9)
        hard = deadline + int(spec.grace * 1e9)
        n = 0
        while t < deadline:
            failed = ""
            for step in units[n % 2]:
                err = worker.play(step)
                if err and err != "ENOENT" and not failed:
                    failed = f"{err} for {step[0]} {Op(step[1]).name} {step[2]!r}"
            worker.drain()
            n += 1
            end = now()
            if failed:
                res.errors += 1
                res.first_error = res.first_error or failed
            else:
                res.units += 1
                lat.append(end - t)
            t = end
            if t > hard:
                res.timed_out = True
                break
        res.end_ns = now()
        res.cpu_s = time.process_time() - cpu0
        res.latencies = lat.tobytes()
        res.extra["requests_per_unit"] = (len(units[0]) + len(units[1])) / 2
        res.extra["retried_transactions"] = worker.retries
    except Exception as exc:
        res.first_error = f"{type(exc).__name__}: {exc}"
        res.extra["traceback"] = traceback.format_exc()
        res.errors += 1
    finally:
        worker.close()
    out.send(res)
    out.close()
