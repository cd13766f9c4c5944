"""What a fuzzing client sends: valid requests, mutated ones, and how the bytes of a
batch are cut into ``send()`` calls.

Everything here is a function of the :class:`random.Random` it is given, so a seed
gives the same bytes in the same pieces every time (the daemon's timing may differ).

Mutations are what a hostile guest can do with its own bytes: any type number, any
request and transaction ids, a length field that lies (short, long, more than 4096), a
payload with its NULs moved, added or taken away, random bytes, a request cut short.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from xsd_client.protocol import HEADER, PAYLOAD_MAX, Op, encode, join_args

# Ops a client picks among, with weights (dom0 adds CONTROL and GET_QUOTA).
_OPS: list[tuple[Op, int]] = [
    (Op.READ, 20),
    (Op.WRITE, 16),
    (Op.MKDIR, 4),
    (Op.RM, 5),
    (Op.DIRECTORY, 6),
    (Op.DIRECTORY_PART, 2),
    (Op.GET_PERMS, 4),
    (Op.SET_PERMS, 3),
    (Op.WATCH, 5),
    (Op.UNWATCH, 3),
    (Op.TRANSACTION_START, 3),
    (Op.TRANSACTION_END, 3),
    (Op.GET_DOMAIN_PATH, 1),
    (Op.IS_DOMAIN_INTRODUCED, 1),
    (Op.RESET_WATCHES, 1),
    (Op.GET_FEATURE, 1),
]
_DOM0_OPS: list[tuple[Op, int]] = [*_OPS, (Op.CONTROL, 2), (Op.GET_QUOTA, 1)]
# CONTROL commands that change nothing outside the store (no file, no exec); not
# `check`, which walks the whole tree (the run ends with one).
_CONTROLS = [
    [b"help"],
    [b"quota"],
    [b"quota-soft"],
    [b"connections"],
    [b"print", b"fuzz"],
    [b"log", b"status"],
    [b"bogus"],
]
_SPECIAL = ["@introduceDomain", "@releaseDomain", "@", "@bogus"]


@dataclass
class Batch:
    """Bytes to send and the offsets where each request in them ends."""

    data: bytes
    ends: list[int]


class Requests:
    """The request stream of one connection of domain ``domid``."""

    def __init__(self, rng: random.Random, domid: int, slot: int, mutate: float) -> None:
        self.rng = rng
        self.domid = domid
        self.mutate = mutate  # the share of requests mutated
        self.ops, self.weights = zip(*(_DOM0_OPS if domid == 0 else _OPS), strict=True)
        if domid == 0:
            self.base = f"/fuzz/c{slot % 50}"
        else:
            self.base = f"/local/domain/{domid}/c{slot % 20}"
        self.next_req = 1

    # ------------------------------------------------------------------ valid requests

    def path(self) -> str:
        rng = self.rng
        roll = rng.random()
        if roll < 0.75:
            depth = rng.randint(0, 3)
            return self.base + "".join(f"/{rng.choice('abcde')}" for _ in range(depth))
        if roll < 0.85 and self.domid:
            return rng.choice(["a", "c0/b", "data", "x/y/z"])  # relative to the home
        if roll < 0.95:
            return rng.choice(["/fuzz", "/local/domain/0", "/", "/tool", "/fuzz/c1/a"])
        return rng.choice(_SPECIAL) if rng.random() < 0.5 else self.base + "/" + "p" * 300

    def value(self) -> bytes:
        rng = self.rng
        size = rng.choice([0, 1, 8, 30, 100]) if rng.random() < 0.9 else rng.randint(0, 4000)
        return bytes([97 + (size % 26)]) * size

    def valid(self) -> tuple[int, int, bytes]:
        """One valid request: (op, tx id, payload)."""
        rng = self.rng
        op: Op = rng.choices(self.ops, self.weights)[0]
        tx = rng.choice((1, 2, 3, 4)) if rng.random() < 0.15 else 0
        path = self.path()
        if op == Op.WRITE:
            payload = path.encode() + b"\0" + self.value()
        elif op == Op.SET_PERMS:
            payload = join_args(path, f"n{self.domid}", *rng.sample(["r0", "b1", "w2", "n3"], 1))
        elif op in (Op.WATCH, Op.UNWATCH):
            token = "t" * rng.choice([1, 5, 40, 200])
            payload = join_args(path if rng.random() < 0.8 else rng.choice(_SPECIAL), token)
        elif op == Op.DIRECTORY_PART:
            payload = join_args(path, rng.choice([0, 1, 5, 100]))
        elif op == Op.TRANSACTION_START:
            payload, tx = b"\0", 0
        elif op == Op.TRANSACTION_END:
            payload = rng.choice([b"T\0", b"F\0"])
        elif op in (Op.GET_DOMAIN_PATH, Op.IS_DOMAIN_INTRODUCED, Op.GET_QUOTA):
            payload = join_args(rng.choice([0, 1, 2, 7, 99]))
        elif op == Op.RESET_WATCHES:
            payload, tx = b"", 0
        elif op == Op.GET_FEATURE:
            payload = b"" if rng.random() < 0.5 else join_args(self.domid)
        elif op == Op.CONTROL:
            payload, tx = join_args(*rng.choice(_CONTROLS)), 0
        else:
            payload = join_args(path)
        return op, tx, payload[:PAYLOAD_MAX]

    def request(self) -> bytes:
        """One request's bytes, mutated with probability ``mutate``."""
        op, tx, payload = self.valid()
        req = self.next_req
        self.next_req = (self.next_req + 1) & 0xFFFFFFFF
        if self.rng.random() >= self.mutate:
            return encode(op, req, tx, payload)
        return self.mutated(op, req, tx, payload)

    # ------------------------------------------------------------------ mutations

    def mutated(self, op: int, req: int, tx: int, payload: bytes) -> bytes:
        rng = self.rng
        length: int | None = None
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            kind = rng.randrange(11)
            if kind in (7, 8, 10) and rng.random() < 0.7:
                kind = 4  # the framing breakers end the connection: keep them rarer
            if kind == 0:
                op = rng.choice([rng.randrange(32), rng.randrange(1 << 32), Op.INVALID])
                if op in (Op.INTRODUCE, Op.RELEASE, Op.SET_TARGET, Op.RESUME, Op.SET_QUOTA):
                    op = Op.READ  # no domain's life is the fuzzer's to end
            elif kind == 1:
                req = rng.randrange(1 << 32)
            elif kind == 2:
                tx = rng.choice([rng.randrange(1 << 32), rng.randrange(8), 0xFFFFFFFF])
            elif kind == 3:  # NULs: none, in the middle, many
                payload = payload.replace(b"\0", b"") if rng.random() < 0.5 else payload
                at = rng.randint(0, len(payload))
                payload = payload[:at] + b"\0" * rng.choice((1, 2, 50)) + payload[at:]
            elif kind == 4:  # bytes flipped
                data = bytearray(payload)
                for _ in range(rng.randint(1, 4)):
                    if data:
                        data[rng.randrange(len(data))] = rng.randrange(256)
                payload = bytes(data)
            elif kind == 5:
                payload = rng.randbytes(rng.choice((0, 1, 16, 300, PAYLOAD_MAX)))
            elif kind == 6:
                payload = payload[: rng.randint(0, len(payload))]
            elif kind == 7:  # as long as allowed, or one more
                payload = payload + b"\0" * (PAYLOAD_MAX - len(payload) + rng.choice((0, 0, 1)))
            elif kind == 8:  # a length that lies by a little (the framing slips)
                length = max(0, len(payload) + rng.choice((-3, -1, 1, 2, 17)))
            elif kind == 9 and rng.random() < 0.2:  # more than 4096: the end of it
                length = rng.choice([PAYLOAD_MAX + 1, 5000, 1 << 20, 0xFFFFFFFF])
            elif kind == 10:  # the header alone, or cut in the middle
                return HEADER.pack(op, req, tx, len(payload))[: rng.randint(1, HEADER.size)]
        if length is None:
            length = len(payload)
        return HEADER.pack(op & 0xFFFFFFFF, req, tx, length) + payload

    # ------------------------------------------------------------------ batches

    def batch(self) -> Batch:
        """A group of requests a client writes together: usually a few, sometimes a
        whole batch of 16+ (the multiplexer's turn size), sometimes a flood."""
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            count = rng.randint(1, 4)
        elif roll < 0.9:
            count = rng.randint(15, 40)
        else:
            count = rng.randint(100, 300)
        data = bytearray()
        ends = []
        for _ in range(count):
            data += self.request()
            ends.append(len(data))
        if rng.random() < 0.01:  # the item-1 shape: whole requests, then a huge header
            data += HEADER.pack(Op.WRITE, 1, 0, rng.choice([PAYLOAD_MAX + 1, 1 << 31]))
        return Batch(bytes(data), ends)

    def pieces(self, batch: Batch) -> list[bytes]:
        """How ``batch`` is cut into ``send()`` calls."""
        rng = self.rng
        data = batch.data
        roll = rng.random()
        if roll < 0.35 or len(data) < 2:
            return [data]  # all at once
        if roll < 0.45 and len(data) <= 400:
            return [data[i : i + 1] for i in range(len(data))]  # one byte at a time
        if roll < 0.7:  # inside headers: a request's end plus 1..15
            cuts = sorted(
                {min(len(data) - 1, rng.choice([0, *batch.ends]) + rng.randint(1, HEADER.size - 1))}
                | {e for e in rng.sample(batch.ends, min(2, len(batch.ends))) if e < len(data)}
            )
        else:  # anywhere
            cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8))))
        out = []
        start = 0
        for cut in cuts:
            if start < cut < len(data):
                out.append(data[start:cut])
                start = cut
        out.append(data[start:])
        return out
