"""A second daemon started beside a running one in durable mode is refused before it
reads (or creates, or changes) any state: the socket's lock comes first, then the state
directory's own lock.

Real daemons, real sockets, real state directories.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.daemons import XsdDaemon
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def second(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xsd", *args], capture_output=True, text=True, timeout=30
    )


def read(conn: RawConn, path: str) -> bytes | None:
    reply = conn.request(Op.READ, path.encode() + b"\0")
    return None if reply.op == Op.ERROR else reply.payload


def test_same_socket_is_refused_before_the_state_is_read(tmp_path: Path) -> None:
    daemon = XsdDaemon(tmp_path / "run", "--state-dir", str(tmp_path / "state"))
    try:
        with RawConn(str(daemon.socket)) as dom0:
            assert dom0.write("/keep", "me") == ("OK", b"OK\0")
        # Its state directory holds a damaged state: reading it would refuse with
        # "cannot restore"; the socket's lock must refuse first, saying why.
        damaged = tmp_path / "damaged"
        damaged.mkdir()
        (damaged / "checkpoint.lmdb").write_bytes(b"not a state" * 100)
        (damaged / "journal").write_bytes(b"not a journal" * 100)
        before = sorted(p.name for p in damaged.iterdir())
        refused = second("--rundir", str(tmp_path / "run"), "--state-dir", str(damaged))
        assert refused.returncode == 1
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "another daemon serves" in lines[0], refused.stderr
        assert sorted(p.name for p in damaged.iterdir()) == before  # no lock file, nothing
        # Nor does a second daemon on a fresh state directory create it.
        fresh = tmp_path / "fresh"
        refused = second("--rundir", str(tmp_path / "run"), "--state-dir", str(fresh))
        assert refused.returncode == 1 and "another daemon serves" in refused.stderr
        assert not fresh.exists()
        with RawConn(str(daemon.socket)) as dom0:  # the first one serves on, unharmed
            assert read(dom0, "/keep") == b"me"
    finally:
        assert daemon.stop() == 0


def test_same_state_dir_on_another_socket_is_refused(tmp_path: Path) -> None:
    daemon = XsdDaemon(tmp_path / "run", "--state-dir", str(tmp_path / "state"))
    try:
        with RawConn(str(daemon.socket)) as dom0:
            assert dom0.write("/keep", "me") == ("OK", b"OK\0")
        refused = second("--rundir", str(tmp_path / "run2"), "--state-dir", str(tmp_path / "state"))
        assert refused.returncode == 1
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "another daemon uses the state directory" in lines[0], (
            refused.stderr
        )
        with RawConn(str(daemon.socket)) as dom0:
            assert dom0.write("/more", "too") == ("OK", b"OK\0")
    finally:
        assert daemon.stop() == 0
    restarted = XsdDaemon(tmp_path / "run", "--state-dir", str(tmp_path / "state"))
    try:
        with RawConn(str(restarted.socket)) as dom0:
            assert read(dom0, "/keep") == b"me"
            assert read(dom0, "/more") == b"too"
    finally:
        assert restarted.stop() == 0
