"""Durable mode under SIGKILL: every acknowledged change survives, nothing refused appears.

A load thread sends writes, removals, permission changes, introductions and watchdog
arms (from the guest's own per-domain socket) and keeps a model of what was
acknowledged; the daemon is killed with SIGKILL at a random instant, restarted on the
same ``--state-dir``, and the whole model is checked against it. A request in flight at
the kill may have happened or not: both are accepted, nothing else.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path

from tests.support.daemons import XsdDaemon
from tests.support.wire import RawConn
from xsd_client.protocol import Op

KILLS = int(os.environ.get("XSD_CRASH_KILLS", "50"))
DOMIDS = range(1, 13)
KEYS = 64
ARM_TIMEOUT_MS = 600_000  # armed watchdogs stay armed through the test


class Model:
    """What the daemon acknowledged, and what may or may not have happened."""

    def __init__(self) -> None:
        self.values: dict[str, bytes | None] = {}  # None: removed
        self.perms: dict[str, bytes] = {}
        self.domains: set[int] = set()
        self.armed: set[int] = set()
        self.refused: list[str] = []
        self.maybe: dict[str, set[bytes | None]] = {}  # in flight at the kill: either
        self.maybe_perms: dict[str, set[bytes]] = {}
        self.maybe_domain: set[int] = set()
        self.acked = 0


def _ok(reply_op: int) -> bool:
    return reply_op != Op.ERROR


def load(daemon: XsdDaemon, model: Model, rng: random.Random, stop: threading.Event) -> None:
    """Send changes until the daemon dies (or ``stop``), keeping ``model`` exact."""
    try:
        dom0 = RawConn(str(daemon.socket), timeout=5)
    except OSError:
        return
    guests: dict[int, RawConn] = {}
    try:
        while not stop.is_set():
            kind = rng.random()
            if kind < 0.55:
                path = f"/d/k{rng.randrange(KEYS)}"
                value = f"v{model.acked}-{rng.randrange(1 << 30)}".encode()
                before = model.values.get(path)
                model.maybe[path] = {before, value}
                reply = dom0.request(Op.WRITE, path.encode() + b"\0" + value)
                assert _ok(reply.op), reply
                model.values[path] = value
                if path not in model.perms:
                    model.perms[path] = b"n0"
            elif kind < 0.65:
                path = f"/d/k{rng.randrange(KEYS)}"
                model.maybe[path] = {model.values.get(path), None}
                reply = dom0.request(Op.RM, path.encode() + b"\0")
                assert _ok(reply.op) or reply.payload == b"ENOENT\0", reply
                model.values[path] = None
                model.perms.pop(path, None)
                model.maybe_perms.pop(path, None)
            elif kind < 0.8:
                path = f"/d/k{rng.randrange(KEYS)}"
                if model.values.get(path) is None:
                    continue
                perms = f"n0\0r{rng.choice(DOMIDS)}\0".encode()
                model.maybe_perms[path] = {model.perms[path], perms[:-1]}
                reply = dom0.request(Op.SET_PERMS, path.encode() + b"\0" + perms)
                assert _ok(reply.op), reply
                model.perms[path] = perms[:-1]
            elif kind < 0.88:
                domid = rng.choice(DOMIDS)
                if domid in model.domains:
                    continue
                model.maybe_domain.add(domid)
                args = f"{domid}\0{1000 + domid}\0{domid}\0".encode()
                reply = dom0.request(Op.INTRODUCE, args)
                assert _ok(reply.op), reply
                model.domains.add(domid)
            else:
                candidates = sorted(model.domains - model.armed)
                if not candidates:
                    continue
                domid = rng.choice(candidates)
                guest = guests.get(domid)
                if guest is None:
                    sock = daemon.rundir / "domains" / str(domid) / "socket"
                    guest = guests[domid] = RawConn(str(sock), timeout=5)
                # Refused: a guest may not write outside its home.
                bad = f"/d/guest{domid}-{model.acked}"
                reply = guest.request(Op.WRITE, bad.encode() + b"\0x")
                assert reply.op == Op.ERROR, reply
                model.refused.append(bad)
                base = b"watchdog/0/"
                reply = guest.request(Op.WRITE, base + b"timeout\0" + str(ARM_TIMEOUT_MS).encode())
                assert _ok(reply.op), reply
                reply = guest.request(Op.WRITE, base + b"control\0arm")
                assert _ok(reply.op), reply
                model.armed.add(domid)
            model.maybe.clear()
            model.maybe_perms.clear()
            model.maybe_domain.clear()
            model.acked += 1
    except (OSError, EOFError, ConnectionError, AssertionError) as exc:
        if isinstance(exc, AssertionError) and daemon.proc.poll() is None:
            raise
    finally:
        dom0.close()
        for guest in guests.values():
            guest.close()


def check(daemon: XsdDaemon, model: Model) -> None:
    """Everything acknowledged is there (or one of the two outcomes of the request in
    flight), nothing refused is."""
    with RawConn(str(daemon.socket), timeout=10) as conn:
        for path, value in model.values.items():
            reply = conn.request(Op.READ, path.encode() + b"\0")
            got = None if reply.op == Op.ERROR else reply.payload
            allowed = model.maybe.get(path, {value})
            assert got in allowed, (path, got, allowed)
            model.values[path] = got  # the outcome of a request in flight, from now on
            if got is None:
                model.perms.pop(path, None)
            elif path not in model.perms:
                model.perms[path] = b"n0"
            if got is not None:
                reply = conn.request(Op.GET_PERMS, path.encode() + b"\0")
                perms = reply.payload.rstrip(b"\0")
                allowed_perms = model.maybe_perms.get(path, {model.perms[path]})
                if path in model.maybe:  # written in flight: it may be a new node
                    allowed_perms = allowed_perms | {b"n0"}
                assert perms in allowed_perms, (path, perms, allowed_perms)
                model.perms[path] = perms
        for domid in DOMIDS:
            reply = conn.request(Op.IS_DOMAIN_INTRODUCED, f"{domid}\0".encode())
            introduced = reply.payload == b"T\0"
            if domid in model.domains:
                assert introduced, domid
                with RawConn(str(daemon.rundir / "domains" / str(domid) / "socket")) as g:
                    assert g.call(Op.READ, "watchdog/0/state")[0] == "OK"
            elif domid not in model.maybe_domain:
                assert not introduced, domid
        for domid in model.armed:
            state = conn.request(Op.READ, f"/local/domain/{domid}/watchdog/0/state\0".encode())
            assert state.payload == b"armed", (domid, state)
        for path in model.refused:
            reply = conn.request(Op.READ, path.encode() + b"\0")
            assert reply.op == Op.ERROR and reply.payload == b"ENOENT\0", (path, reply)
    model.maybe.clear()
    model.maybe_perms.clear()
    # An introduction in flight that happened is now acknowledged by the check.
    for domid in model.maybe_domain:
        with RawConn(str(daemon.socket)) as conn:
            if conn.request(Op.IS_DOMAIN_INTRODUCED, f"{domid}\0".encode()).payload == b"T\0":
                model.domains.add(domid)
    model.maybe_domain.clear()


def run_lane(tmp_path: Path, seed: int, kills: int) -> Model:
    """``kills`` SIGKILLs of one daemon under load, each followed by a restart and a check."""
    rng = random.Random(seed)
    rundir = tmp_path / "run"
    state_dir = tmp_path / "state"
    model = Model()
    daemon = XsdDaemon(rundir, "--state-dir", str(state_dir))
    try:
        for _ in range(kills):
            stop = threading.Event()
            worker = threading.Thread(target=load, args=(daemon, model, rng, stop))
            worker.start()
            time.sleep(rng.uniform(0.02, 0.3))
            os.kill(daemon.pid, signal.SIGKILL)
            daemon.proc.wait()
            worker.join(10)
            assert not worker.is_alive()
            daemon.log.close()
            daemon = XsdDaemon(rundir, "--state-dir", str(state_dir))
            check(daemon, model)
            assert "restored" in daemon.output(), daemon.output()
    finally:
        daemon.stop()
    return model


def test_sigkill_at_random_points_loses_no_acknowledged_change(tmp_path: Path) -> None:
    """Two daemons side by side (two state directories), KILLS kills in all."""
    seed = int(os.environ.get("XSD_CRASH_SEED", "20"))
    lanes = 2
    models: list[Model] = []
    errors: list[BaseException] = []

    def lane(n: int) -> None:
        try:
            models.append(run_lane(tmp_path / f"lane{n}", seed + n, KILLS // lanes))
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=lane, args=(n,)) for n in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    acked = sum(m.acked for m in models)
    print(f"{KILLS} kills, {acked} acknowledged changes, {time.monotonic() - started:.1f} s")
    assert acked > KILLS * 20  # the kills came under load
    assert all(m.domains and m.armed for m in models)
