"""The engine as a pure state machine: requests in, replies and events out."""

from __future__ import annotations

import subprocess
import sys

from xsd.core.connections import Connection
from xsd.core.context import Observer
from xsd.core.engine import OUT_HIGH_WATER, Engine
from xsd.core.ops import Event
from xsd_client.protocol import Decoder, Op, Packet, encode, join_args


class Session:
    """One engine connection driven with raw packets."""

    def __init__(self, engine: Engine, domid: int = 0) -> None:
        self.engine = engine
        self.id = engine.connect(domid)

    def send(
        self, op: int, *args: bytes | str | int, tx: int = 0, raw: bytes | None = None
    ) -> None:
        payload = raw if raw is not None else join_args(*args)
        self.engine.receive(self.id, encode(op, 9, tx, payload))

    def take(self) -> list[Packet]:
        conn = self.engine.state.connections[self.id]
        decoder = Decoder()
        while data := conn.output():
            decoder.receive_data(data)
            conn.consume(len(data))
        return list(decoder)

    def call(
        self, op: int, *args: bytes | str | int, tx: int = 0, raw: bytes | None = None
    ) -> bytes:
        """The reply payload, prefixed with b"E:" for an error."""
        self.send(op, *args, tx=tx, raw=raw)
        replies = [p for p in self.take() if p.op != Op.WATCH_EVENT]
        assert len(replies) == 1
        reply = replies[0]
        return b"E:" + reply.payload[:-1] if reply.op == Op.ERROR else reply.payload


def events(packets: list[Packet]) -> list[bytes]:
    return [p.payload for p in packets if p.op == Op.WATCH_EVENT]


def test_core_imports_no_io() -> None:
    code = (
        "import sys, xsd.core.engine; "
        "bad = [m for m in ('trio', 'socket', 'xsd.server', 'handover') if m in sys.modules]; "
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_write_read_directory_and_initial_tree() -> None:
    s = Session(Engine())
    assert s.call(Op.DIRECTORY, "/") == b"tool\0"
    assert s.call(Op.WRITE, raw=b"/a/b\0hello\0world") == b"OK\0"
    assert s.call(Op.READ, "/a/b") == b"hello\0world"
    assert s.call(Op.DIRECTORY, "/") == b"tool\0a\0"
    assert s.call(Op.READ, "/a/missing") == b"E:ENOENT"
    assert s.call(Op.READ, "a") == b"E:ENOENT"  # relative: /local/domain/0/a
    assert s.call(Op.READ, "/a//b") == b"E:EINVAL"
    assert s.call(Op.READ, "/a/") == b"E:EINVAL"
    assert s.call(Op.READ, "/a b") == b"E:EINVAL"
    assert s.call(Op.READ, raw=b"/a") == b"E:EINVAL"
    assert s.call(Op.RM, "/") == b"E:EINVAL"


def test_watch_events_order_and_relative_paths() -> None:
    engine = Engine()
    watcher = Session(engine)
    writer = Session(engine)
    watcher.send(Op.WATCH, "/a", "tok")
    out = watcher.take()
    assert [p.op for p in out] == [Op.WATCH, Op.WATCH_EVENT]  # OK first, then the first event
    assert out[1].payload == b"/a\0tok\0"
    assert watcher.call(Op.WATCH, "/a", "tok") == b"E:EEXIST"
    watcher.send(Op.WATCH, "rel", "r")
    assert events(watcher.take()) == [b"rel\0r\0"]
    writer.call(Op.WRITE, raw=b"/a/b/c\0x")
    writer.call(Op.WRITE, raw=b"/local/domain/0/rel/x\0y")
    assert events(watcher.take()) == [b"/a/b/c\0tok\0", b"rel/x\0r\0"]
    # The writer's own watch sees its event before the reply.
    writer.send(Op.WATCH, "/a", "w")
    writer.take()
    writer.send(Op.WRITE, raw=b"/a\0v")
    assert [p.op for p in writer.take()] == [Op.WATCH_EVENT, Op.WRITE]
    # RM: every removed node with an exact watch, children first, then the top.
    watcher.send(Op.WATCH, "/a/b/c", "deep")
    watcher.take()
    writer.call(Op.RM, "/a/b")
    assert events(watcher.take()) == [b"/a/b/c\0deep\0", b"/a/b\0tok\0"]
    assert watcher.call(Op.UNWATCH, "/a", "nope") == b"E:ENOENT"
    assert watcher.call(Op.UNWATCH, "/a", "tok") == b"OK\0"
    writer.call(Op.WRITE, raw=b"/a\0again")
    assert events(watcher.take()) == []


def test_a_watch_that_comes_or_goes_between_two_sibling_events_is_seen_by_the_second() -> None:
    engine = Engine()
    watcher = Session(engine)
    writer = Session(engine)
    watcher.send(Op.WATCH, "/p/q", "near")
    watcher.take()
    writer.call(Op.WRITE, raw=b"/p/q/r/one\0x")
    assert events(watcher.take()) == [b"/p/q/r/one\0near\0"]
    watcher.send(Op.WATCH, "/p", "far")  # above the parent of both events
    watcher.take()
    writer.call(Op.WRITE, raw=b"/p/q/r/two\0x")
    assert events(watcher.take()) == [b"/p/q/r/two\0near\0", b"/p/q/r/two\0far\0"]
    assert watcher.call(Op.UNWATCH, "/p/q", "near") == b"OK\0"
    writer.call(Op.WRITE, raw=b"/p/q/r/three\0x")
    assert events(watcher.take()) == [b"/p/q/r/three\0far\0"]
    watcher.engine.disconnect(watcher.id)  # its watches go with it
    other = Session(engine)
    other.send(Op.WATCH, "/p/q/r", "mine")
    other.take()
    writer.call(Op.WRITE, raw=b"/p/q/r/four\0x")
    assert events(other.take()) == [b"/p/q/r/four\0mine\0"]


def test_identical_pending_events_coalesce() -> None:
    engine = Engine()
    watcher = Session(engine)
    writer = Session(engine)
    watcher.send(Op.WATCH, "/a", "t")
    watcher.take()
    for _ in range(3):
        writer.call(Op.WRITE, raw=b"/a\0v")
    assert events(watcher.take()) == [b"/a\0t\0"]


def test_transactions_isolate_and_conflict() -> None:
    engine = Engine()
    a = Session(engine)
    b = Session(engine)
    watcher = Session(engine)
    watcher.send(Op.WATCH, "/x", "t")
    watcher.take()
    tx = int(a.call(Op.TRANSACTION_START, "")[:-1])
    assert tx == 1
    assert a.call(Op.TRANSACTION_START, "", tx=tx) == b"E:EBUSY"
    assert a.call(Op.WRITE, raw=b"/x\0in-tx", tx=tx) == b"OK\0"
    assert a.call(Op.READ, "/x", tx=tx) == b"in-tx"
    assert b.call(Op.READ, "/x") == b"E:ENOENT"
    assert b.call(Op.READ, "/x", tx=tx) == b"E:ENOENT"  # ids are per connection
    assert events(watcher.take()) == []
    assert a.call(Op.TRANSACTION_END, "T", tx=tx) == b"OK\0"
    assert b.call(Op.READ, "/x") == b"in-tx"
    assert events(watcher.take()) == [b"/x\0t\0"]
    # A conflict: b changes a node a's transaction read.
    tx = int(a.call(Op.TRANSACTION_START, "")[:-1])
    assert a.call(Op.READ, "/x", tx=tx) == b"in-tx"
    b.call(Op.WRITE, raw=b"/x\0outside")
    a.call(Op.WRITE, raw=b"/y\0z", tx=tx)
    assert a.call(Op.TRANSACTION_END, "T", tx=tx) == b"E:EAGAIN"
    assert a.call(Op.READ, "/y") == b"E:ENOENT"
    assert a.call(Op.TRANSACTION_END, "T", tx=tx) == b"E:ENOENT"
    # Abort drops everything.
    tx = int(a.call(Op.TRANSACTION_START, "")[:-1])
    a.call(Op.WRITE, raw=b"/z\0v", tx=tx)
    assert a.call(Op.TRANSACTION_END, "F", tx=tx) == b"OK\0"
    assert a.call(Op.READ, "/z") == b"E:ENOENT"
    # RESET_WATCHES drops open transactions too.
    tx = int(a.call(Op.TRANSACTION_START, "")[:-1])
    assert a.call(Op.RESET_WATCHES, "", tx=tx) == b"OK\0"
    assert a.call(Op.READ, "/x", tx=tx) == b"E:ENOENT"


def test_unprivileged_domain_permissions() -> None:
    engine = Engine()
    dom0 = Session(engine)
    assert dom0.call(Op.INTRODUCE, 5, 1, 1) == b"OK\0"
    dom0.call(Op.WRITE, raw=b"/local/domain/5\0")
    dom0.call(Op.SET_PERMS, "/local/domain/5", "n5")
    dom0.call(Op.WRITE, raw=b"/secret/inner\0s")
    guest = Session(engine, domid=5)
    assert guest.call(Op.WRITE, raw=b"data/x\0v") == b"OK\0"
    assert dom0.call(Op.GET_PERMS, "/local/domain/5/data") == b"n5\0"
    assert guest.call(Op.READ, "/secret/inner") == b"E:EACCES"
    assert guest.call(Op.READ, "/secret/missing") == b"E:EACCES"  # no probing under /secret
    assert guest.call(Op.READ, "data/missing") == b"E:ENOENT"
    assert guest.call(Op.SET_PERMS, "data", "n0") == b"E:EPERM"
    assert guest.call(Op.SET_PERMS, "data", "n5", "r0") == b"OK\0"
    assert guest.call(Op.INTRODUCE, 6, 1, 1) == b"E:EACCES"
    assert guest.call(Op.CONTROL, "help") == b"E:EACCES"
    # Release removes the domain's nodes and fires @releaseDomain.
    dom0.send(Op.WATCH, "@releaseDomain", "rel")
    dom0.take()
    assert dom0.call(Op.RELEASE, 5) == b"OK\0"
    assert dom0.call(Op.READ, "/local/domain/5") == b"E:ENOENT"
    assert 5 not in {c.domid for c in engine.state.connections.values()}


def test_a_client_that_does_not_read_is_held_back() -> None:
    engine = Engine()
    s = Session(engine)
    s.call(Op.WRITE, raw=b"/big\0" + b"v" * 4000)
    many = encode(Op.READ, 1, 0, b"/big\0") * 1000
    held = engine.receive(s.id, many)
    conn = engine.state.connections[s.id]
    assert held
    assert OUT_HIGH_WATER <= conn.out_bytes < OUT_HIGH_WATER + 5000
    replies = 0
    while True:
        replies += len(s.take())
        if not engine.resume(s.id):
            break
    replies += len(s.take())
    assert replies == 1000


def test_very_deep_paths_are_removed_without_recursion() -> None:
    s = Session(Engine())
    path = "/d" + "/x" * 1023  # 2048 bytes: the path-max C 4.17 applies to dom0 too
    s.call(Op.WRITE, raw=path.encode() + b"\0v")
    # Built level by level: each WRITE is bounded by the payload limit.
    assert s.call(Op.READ, path) == b"v"
    assert s.call(Op.RM, "/d") == b"OK\0"
    assert s.call(Op.DIRECTORY, "/") == b"tool\0"


def test_directory_part_chunks_a_large_directory() -> None:
    s = Session(Engine())
    names = [f"child-with-a-long-name-{i:04d}" for i in range(300)]
    for name in names:
        s.call(Op.WRITE, raw=f"/big/{name}\0".encode())
    assert s.call(Op.DIRECTORY, "/big") == b"E:E2BIG"
    got: list[str] = []
    offset = 0
    while True:
        reply = s.call(Op.DIRECTORY_PART, "/big", offset)
        _, _, body = reply.partition(b"\0")
        done = body.endswith(b"\0\0") or body == b"\0"
        chunk = body[:-1] if done else body
        got.extend(n.decode() for n in chunk.split(b"\0")[:-1])
        offset += len(chunk)
        if done:
            break
    assert got == names


def test_directory_listing_follows_every_change() -> None:
    engine = Engine()
    s = Session(engine)
    other = Session(engine)
    s.call(Op.WRITE, raw=b"/d/a\0")
    assert s.call(Op.DIRECTORY, "/d") == b"a\0"
    s.call(Op.WRITE, raw=b"/d/b\0")
    assert s.call(Op.DIRECTORY, "/d") == b"a\0b\0"
    s.call(Op.RM, "/d/a")
    assert s.call(Op.DIRECTORY, "/d") == b"b\0"
    tx = int(other.call(Op.TRANSACTION_START, "")[:-1])
    other.call(Op.WRITE, raw=b"/d/c\0", tx=tx)
    assert other.call(Op.DIRECTORY, "/d", tx=tx) == b"b\0c\0"
    assert s.call(Op.DIRECTORY, "/d") == b"b\0"
    assert other.call(Op.TRANSACTION_END, "T", tx=tx) == b"OK\0"
    assert s.call(Op.DIRECTORY, "/d") == b"b\0c\0"
    s.call(Op.RM, "/d/b")
    s.call(Op.RM, "/d/c")
    assert s.call(Op.DIRECTORY, "/d") == b""


class _BrokenObserver(Observer):
    """A feature with a bug: its change hook raises."""

    def on_change(self, conn: Connection | None, events: list[Event]) -> None:
        raise RuntimeError("bug in a feature")


def test_an_internal_error_costs_one_eio_reply_not_the_connection() -> None:
    engine = Engine()
    engine.ctx.observers.append(_BrokenObserver())
    s = Session(engine)
    assert s.call(Op.WRITE, raw=b"/a\0v") == b"E:EIO"
    bugs = [e for e in engine.take_effects() if e.kind == "bug"]
    assert len(bugs) == 1 and "bug in a feature" in repr(bugs[0].error)
    engine.ctx.observers.pop()
    assert s.call(Op.READ, "/a") == b"v"  # served on, the same connection


def test_guest_writes_beyond_the_rate_wait_their_turn() -> None:
    engine = Engine()
    dom0 = Session(engine)
    dom0.call(Op.INTRODUCE, 4, 1, 1)
    dom0.call(Op.WRITE, raw=b"/local/domain/4\0")
    dom0.call(Op.SET_PERMS, "/local/domain/4", "n4")
    guest = Session(engine, domid=4)
    t0 = 10**12
    # Burst of 10, then 200 per second: 15 writes at once leave 4 waiting.
    burst = b"".join(encode(Op.WRITE, i, 0, f"k{i}\0v".encode()) for i in range(15))
    held = engine.receive(guest.id, burst, t0)
    assert held and engine.blocked(guest.id)
    assert len(guest.take()) == 11  # the burst, and the write that went into debt
    paid = engine.next_deadline()
    assert paid is not None and t0 < paid <= t0 + 6_000_000  # 1/200 s later
    assert dom0.call(Op.READ, "/local/domain/4/k0") == b"v"  # dom0 is not held up
    engine.tick(paid)
    assert [e.conn_id for e in engine.take_effects() if e.kind == "resume"] == [guest.id]
    engine.resume(guest.id, paid + 20_000_000)  # 20 ms later: 4 more writes earned
    assert len(guest.take()) == 4
