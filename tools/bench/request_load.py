"""The request workloads (read, write, dir, mix, txn): a unit is a short fixed program.

:class:`Program` walks each in-flight slot through its unit (one request, or for ``txn``
start, read, write, commit); :func:`request_client` is the client process that keeps
``depth`` slots busy on one connection until the deadline and reports a ClientResult.
"""

from __future__ import annotations

import time
import traceback
from array import array
from multiprocessing.connection import Connection
from typing import Any

from tools.bench.cell import VALUE, CellSpec, ClientResult, client_key, connect
from xsd_client.protocol import Decoder, Op, encode, parse_error


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


def request_client(spec: CellSpec, client: int, barrier: Any, out: Connection) -> None:
    """Process body: run one request workload on one connection and send a ClientResult."""
    res = ClientResult()
    try:
        sock = connect(spec.socket)
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
