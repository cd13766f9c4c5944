"""Durable mode's restore: watchdog deadlines, states of another boot, damaged states.

Every state here is made by a real daemon in a real state directory (LMDB); a state of
another boot is that state with its checkpoint rewritten under another boot id (the
boot id of the machine cannot change under a test); damage is done to the files.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import pytest

from handover import checkpoint, stream
from tests.support.daemons import XsdDaemon
from tests.support.wire import RawConn
from xsd.core.state import State
from xsd.server import durable
from xsd.server.durable_store import Store, read_state
from xsd.server.journal_file import HEADER, JournalFile, read_journal, used_bytes
from xsd_client.protocol import Op


def start(tmp_path: Path, *extra: str) -> XsdDaemon:
    return XsdDaemon(tmp_path / "run", "--state-dir", str(tmp_path / "state"), *extra)


def kill(daemon: XsdDaemon) -> None:
    os.kill(daemon.pid, signal.SIGKILL)
    daemon.proc.wait()
    daemon.log.close()


def guest_of(daemon: XsdDaemon, dom0: RawConn, domid: int) -> RawConn:
    assert dom0.call(Op.INTRODUCE, domid, 1, 1) == ("OK", b"OK\0")
    return RawConn(str(daemon.rundir / "domains" / str(domid) / "socket"))


def read(conn: RawConn, path: str) -> bytes | None:
    reply = conn.request(Op.READ, path.encode() + b"\0")
    return None if reply.op == Op.ERROR else reply.payload


def wait_for(predicate: object, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_watchdog_deadlines_survive_and_a_passed_one_fires_once_at_once(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    with RawConn(str(daemon.socket)) as dom0:
        guest = guest_of(daemon, dom0, 4)
        assert guest.write("watchdog/0/timeout", "1500") == ("OK", b"OK\0")
        assert guest.write("watchdog/0/control", "arm") == ("OK", b"OK\0")
        assert guest.write("watchdog/1/timeout", "60000") == ("OK", b"OK\0")
        assert guest.write("watchdog/1/control", "arm") == ("OK", b"OK\0")
        guest.close()
    kill(daemon)
    time.sleep(2.0)  # watchdog 0 expires while the daemon is down
    daemon = start(tmp_path)
    try:
        with RawConn(str(daemon.socket)) as dom0:
            base = "/local/domain/4/watchdog"
            assert wait_for(lambda: read(dom0, f"{base}/0/state") == b"expired", 2.0)
            assert read(dom0, f"{base}/0/fired") == b"1"
            assert read(dom0, f"{base}/bootstatus/watchdog") == b"0"
            assert read(dom0, f"{base}/1/state") == b"armed"
            guest = RawConn(str(daemon.rundir / "domains" / "4" / "socket"))
            assert guest.write("watchdog/1/timeleft", "") == ("OK", b"OK\0")
            left = int(read(guest, "watchdog/1/timeleft") or b"-1")
            assert 0 < left <= 60000 - 2000  # its deadline kept: the downtime counted
            guest.close()
            time.sleep(0.3)
            assert read(dom0, f"{base}/0/fired") == b"1"  # once
    finally:
        daemon.stop()
    assert daemon.output().count("watchdog 0: expired") <= 1


def _rewrite_boot(state_dir: Path, boot: str, mono_ns: int) -> None:
    """The state as it is, its checkpoint rewritten as if saved in boot ``boot``."""
    blob, entries = read_state(state_dir)
    state, _, last = checkpoint.restore(blob, entries)
    store = Store(state_dir)
    try:
        store.open()
        info = {"seq": last, "boot_id": boot, "mono_ns": mono_ns}
        recs = checkpoint.checkpoint_records(state, info)
        parts = stream.frame_parts(stream.pack_each(recs))
        store.write_checkpoint(parts, last, store.journal_end())
    finally:
        store.close()


def test_state_of_another_boot_is_refused_unless_told(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    with RawConn(str(daemon.socket)) as dom0:
        assert dom0.write("/keep", "me") == ("OK", b"OK\0")
        guest = guest_of(daemon, dom0, 7)
        assert guest.write("watchdog/0/timeout", "600000") == ("OK", b"OK\0")
        assert guest.write("watchdog/0/control", "arm") == ("OK", b"OK\0")
        guest.close()
    assert daemon.stop() == 0
    # Saved in another boot, at a moment of its clock when 500 s were left.
    _rewrite_boot(tmp_path / "state", "another-boot", time.monotonic_ns() + 100 * 10**9)
    refused = subprocess.run(
        [sys.executable, "-m", "xsd", "--rundir", str(tmp_path / "run2"),
         "--state-dir", str(tmp_path / "state")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "--state-dir-restore=any" in lines[0], refused.stderr
    daemon = start(tmp_path, "--state-dir-restore=any")
    try:
        with RawConn(str(daemon.socket)) as dom0:
            assert read(dom0, "/keep") == b"me"
            assert read(dom0, "/local/domain/7/watchdog/0/state") == b"armed"
            guest = RawConn(str(daemon.rundir / "domains" / "7" / "socket"))
            assert guest.write("watchdog/0/timeleft", "") == ("OK", b"OK\0")
            left = int(read(guest, "watchdog/0/timeleft") or b"-1")
            assert 490_000 < left <= 500_000, left  # the time it had left, kept
            guest.close()
    finally:
        daemon.stop()
    # Restored once: a state of this boot from now on.
    daemon = start(tmp_path)
    daemon.stop()


@pytest.fixture
def damaged_base(tmp_path: Path) -> Path:
    """A state directory whose checkpoint holds ``/cp/*`` and whose journal ``/jr/*``."""
    daemon = start(tmp_path)
    with RawConn(str(daemon.socket)) as dom0:
        for i in range(50):
            assert dom0.write(f"/cp/n{i}", f"checkpointed-value-{i}") == ("OK", b"OK\0")
    assert daemon.stop() == 0  # a clean stop writes the checkpoint
    daemon = start(tmp_path)
    with RawConn(str(daemon.socket)) as dom0:
        for i in range(50):
            assert dom0.write(f"/jr/n{i}", f"journaled-value-{i}") == ("OK", b"OK\0")
    kill(daemon)
    return tmp_path / "state"


def _load(state_dir: Path) -> State:
    args = argparse.Namespace(state_dir=state_dir, state_dir_restore="same-boot")
    loaded = durable.open_state(args, State(), None)
    try:
        return loaded.engine.state
    finally:
        loaded.store.close()


HEAD = 64 << 20
"""The journal's file is sparse up to its map size: its data is in the first bytes."""


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(HEAD)


def _flip(path: Path, marker: bytes) -> None:
    data = _head(path)
    at = data.find(marker)
    assert at >= 0, marker
    with open(path, "r+b") as f:
        while at >= 0:
            f.seek(at + len(marker) - 1)
            f.write(bytes([data[at + len(marker) - 1] ^ 0x01]))
            at = data.find(marker, at + 1)


def _poke(path: Path, at: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as f:
        f.truncate(max(0, size))


def _used(path: Path) -> int:
    """The bytes of an LMDB file that hold data."""
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, max_dbs=0)
    try:
        return int((env.info()["last_pgno"] + 1) * env.stat()["psize"])
    finally:
        env.close()


def _drop_entry(path: Path) -> None:
    """The journal rewritten without one of its middle entries."""
    entries = read_journal(path)
    assert len(entries) > 3
    del entries[len(entries) // 2]
    path.unlink()
    journal = JournalFile(path, sync=False)
    for seq, raw in entries:
        journal.append(seq, raw)
    journal.close()


DAMAGE = {
    "checkpoint value flipped": lambda d: _flip(d / "checkpoint.lmdb", b"checkpointed-value-17"),
    "journal value flipped": lambda d: _flip(d / "journal", b"journaled-value-17"),
    "checkpoint emptied": lambda d: _truncate(d / "checkpoint.lmdb", 0),
    "checkpoint cut to a page": lambda d: _truncate(d / "checkpoint.lmdb", 4096),
    "checkpoint cut short": lambda d: _truncate(
        d / "checkpoint.lmdb", _used(d / "checkpoint.lmdb") - 4096
    ),
    "journal emptied": lambda d: _truncate(d / "journal", 0),
    "journal cut in half": lambda d: _truncate(d / "journal", used_bytes(d / "journal") // 2),
    "journal cut short": lambda d: _truncate(d / "journal", used_bytes(d / "journal") - 100),
    "journal header cut": lambda d: _truncate(d / "journal", 40),
    "journal end offset damaged": lambda d: _poke(d / "journal", 20, b"\x01"),
    "journal entry length damaged": lambda d: _poke(d / "journal", HEADER + 9, b"\x7f"),
    "journal not a journal": lambda d: (d / "journal").write_bytes(b"x" * 8192),
    "journal missing": lambda d: (d / "journal").unlink(),
    "checkpoint missing": lambda d: (d / "checkpoint.lmdb").unlink(),
    "journal entry missing": lambda d: _drop_entry(d / "journal"),
    "checkpoint not lmdb": lambda d: (d / "checkpoint.lmdb").write_bytes(b"x" * 8192),
}


def test_undamaged_state_loads_whole(damaged_base: Path) -> None:
    state = _load(damaged_base)
    assert state.tree.nodes["/cp/n17"].value == b"checkpointed-value-17"
    assert state.tree.nodes["/jr/n49"].value == b"journaled-value-49"


def test_a_journal_in_lmdb_from_an_older_xsd_is_restored_then_replaced(
    damaged_base: Path,
) -> None:
    """A state directory as xsd wrote it before its journal left LMDB (``journal.lmdb``,
    entries under ``j`` + their big-endian sequence number): restored whole, and the
    checkpoint written at once includes its entries and deletes it."""
    entries = read_journal(damaged_base / "journal")
    (damaged_base / "journal").unlink()
    env = lmdb.open(str(damaged_base / "journal.lmdb"), subdir=False, max_dbs=0)
    with env.begin(write=True) as txn:
        txn.put(b"format", b"xsd-journal 1")
        for seq, raw in entries:
            txn.put(b"j" + seq.to_bytes(8, "big"), raw)
    env.close()
    state = _load(damaged_base)
    assert state.tree.nodes["/jr/n49"].value == b"journaled-value-49"
    assert not (damaged_base / "journal.lmdb").exists()
    assert (damaged_base / "journal").exists()
    state = _load(damaged_base)  # from the new checkpoint alone now
    assert state.tree.nodes["/jr/n49"].value == b"journaled-value-49"
    assert state.tree.nodes["/cp/n17"].value == b"checkpointed-value-17"


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_state_is_refused_whole(damaged_base: Path, damage: str) -> None:
    DAMAGE[damage](damaged_base)
    before = {p.name: _head(p) for p in damaged_base.iterdir() if p.name != "lock"}
    with pytest.raises(durable.DurableError) as refused:
        _load(damaged_base)
    message = str(refused.value)
    assert "\n" not in message and str(damaged_base) in message, message
    after = {p.name: _head(p) for p in damaged_base.iterdir() if p.name != "lock"}
    assert after == before  # a refused state is left as it was


def test_daemon_refuses_a_damaged_state_in_one_line(damaged_base: Path, tmp_path: Path) -> None:
    _flip(damaged_base / "journal", b"journaled-value-17")
    result = subprocess.run(
        [sys.executable, "-m", "xsd", "--rundir", str(tmp_path / "run3"),
         "--state-dir", str(damaged_base)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "checksum mismatch" in lines[0] and "move the directory away" in lines[0]
    assert not (tmp_path / "run3" / "socket").exists()


def test_state_dir_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "xsd.toml"
    config.write_text(f'state-dir = "{tmp_path / "cfgstate"}"\n')
    daemon = XsdDaemon(tmp_path / "run", "-c", str(config))
    with RawConn(str(daemon.socket)) as dom0:
        assert dom0.write("/from/config", "yes") == ("OK", b"OK\0")
    kill(daemon)
    assert (tmp_path / "cfgstate" / "journal").exists()
    daemon = XsdDaemon(tmp_path / "run", "-c", str(config))
    try:
        with RawConn(str(daemon.socket)) as dom0:
            assert read(dom0, "/from/config") == b"yes"
    finally:
        daemon.stop()


def test_background_checkpoints_under_writes_lose_nothing(tmp_path: Path) -> None:
    """Checkpoints every 40 entries while writes go on (the tree dumped in steps, what
    changed meanwhile as a delta); after kill -9 everything written is there."""
    daemon = start(tmp_path, "--state-dir-checkpoint", "40")
    expected: dict[str, bytes] = {}
    with RawConn(str(daemon.socket)) as dom0:
        for i in range(600):
            path = f"/ck/d{i % 7}/n{i % 150}"
            value = f"v{i}".encode()
            if i % 11 == 0:
                assert dom0.call(Op.RM, f"/ck/d{i % 7}") in (
                    ("OK", b"OK\0"),
                    ("ERROR", b"ENOENT\0"),
                )
                expected = {p: v for p, v in expected.items() if not p.startswith(f"/ck/d{i % 7}/")}
            assert dom0.write(path, value) == ("OK", b"OK\0")
            expected[path] = value
    time.sleep(0.5)  # the last checkpoint's thread
    kill(daemon)
    assert daemon.output().count("durable: checkpoint of") >= 5, daemon.output()
    entries = read_state(tmp_path / "state")[1]
    assert len(entries) < 600  # trimmed by the checkpoints
    daemon = start(tmp_path)
    try:
        with RawConn(str(daemon.socket)) as dom0:
            for path, value in expected.items():
                assert read(dom0, path) == value, path
            for d in range(7):
                names = dom0.call(Op.DIRECTORY, f"/ck/d{d}")[1].split(b"\0")[:-1]
                assert {f"/ck/d{d}/{n.decode()}" for n in names} == {
                    p for p in expected if p.startswith(f"/ck/d{d}/")
                }
    finally:
        daemon.stop()


def test_a_clean_stop_folds_the_journal_into_the_checkpoint(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    with RawConn(str(daemon.socket)) as dom0:
        for i in range(10):
            assert dom0.write(f"/fold/n{i}", "x") == ("OK", b"OK\0")
    kill(daemon)
    assert len(read_state(tmp_path / "state")[1]) >= 10
    daemon = start(tmp_path)  # restored from the journal, and nothing written since
    assert daemon.stop() == 0
    assert read_state(tmp_path / "state")[1] == []
    daemon = start(tmp_path)
    try:
        assert "(0 journal entries)" in daemon.output()
        with RawConn(str(daemon.socket)) as dom0:
            assert read(dom0, "/fold/n9") == b"x"
    finally:
        daemon.stop()


def test_live_update_in_durable_mode_keeps_the_journal_going(tmp_path: Path) -> None:
    """A live update of a durable daemon: the new program writes a checkpoint of what it
    was handed and journals on; a kill -9 afterwards loses nothing."""
    import shutil

    program = shutil.which("xsd")
    if not program:
        pytest.fail("the xsd console script is not installed (pip install -e .)")
    daemon = start(tmp_path)
    with RawConn(str(daemon.socket), timeout=60) as dom0:
        assert dom0.write("/before", "1") == ("OK", b"OK\0")
        guest_of(daemon, dom0, 5).close()
        assert dom0.call(Op.CONTROL, "live-update", "-f", program) == ("OK", b"OK\0")
        assert dom0.call(Op.CONTROL, "live-update", "-s", "-t", "10") == ("OK", b"OK\0")
    with RawConn(str(daemon.socket), timeout=60) as dom0:
        assert read(dom0, "/before") == b"1"
        assert dom0.write("/after", "2") == ("OK", b"OK\0")
    kill(daemon)
    daemon = start(tmp_path)
    try:
        with RawConn(str(daemon.socket)) as dom0:
            assert read(dom0, "/before") == b"1"
            assert read(dom0, "/after") == b"2"
            assert dom0.call(Op.IS_DOMAIN_INTRODUCED, 5) == ("OK", b"T\0")
    finally:
        daemon.stop()


def test_quotas_targets_and_special_permissions_survive(tmp_path: Path) -> None:
    daemon = start(tmp_path)
    with RawConn(str(daemon.socket)) as dom0:
        guest_of(daemon, dom0, 3).close()
        guest_of(daemon, dom0, 4).close()
        assert dom0.call(Op.SET_QUOTA, "nodes", "777") == ("OK", b"OK\0")
        assert dom0.call(Op.SET_QUOTA, 3, "nodes", "55") == ("OK", b"OK\0")
        assert dom0.call(Op.SET_TARGET, 4, 3) == ("OK", b"OK\0")
        assert dom0.call(Op.SET_PERMS, "@introduceDomain", "n0", "r3") == ("OK", b"OK\0")
        assert dom0.call(Op.RELEASE, 4) == ("OK", b"OK\0")
    kill(daemon)
    daemon = start(tmp_path)
    try:
        with RawConn(str(daemon.socket)) as dom0:
            assert dom0.call(Op.GET_QUOTA, "nodes") == ("OK", b"777\0")
            assert dom0.call(Op.GET_QUOTA, 3, "nodes") == ("OK", b"55\0")
            assert dom0.call(Op.IS_DOMAIN_INTRODUCED, 4) == ("OK", b"F\0")
            assert not (daemon.rundir / "domains" / "4" / "socket").exists()
            assert (daemon.rundir / "domains" / "3" / "socket").exists()
    finally:
        daemon.stop()
    state = _load(tmp_path / "state")
    assert state.special_perms["@introduceDomain"] == ((0, 0), (1, 3))  # n0 r3
