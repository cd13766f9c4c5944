"""The new process of a live update dies after the exec: the guardian, a copy of the old
daemon forked before it, serves on with everything (issue 15, item 6).

The new process is the real daemon, really exec'd; a test hook in it
(``XSD_TEST_DIE_AT``, xsd.server.liveupdate.guardian) sends itself SIGKILL at a named point: right
after the exec (before loading), once the state is loaded, once the sockets are adopted
(just before it would say it serves).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from tests.support.daemons import XsdDaemon
from tests.support.liveupdate import XSD_PROGRAM, Daemon, alive, children, live_update
from tests.support.wire import RawConn
from xsd.server.liveupdate import guardian
from xsd_client.protocol import Op


@pytest.fixture
def program() -> str:
    if not XSD_PROGRAM:
        pytest.fail("the xsd console script is not installed (pip install -e .)")
    return XSD_PROGRAM


@pytest.mark.parametrize("stage", ["exec", "loaded", "adopted"])
def test_the_new_process_killed_after_the_exec_loses_nothing(
    stage: str, tmp_path: Path, program: str
) -> None:
    env = dict(os.environ, **{guardian.DIE_AT_ENV: stage})
    daemon = Daemon([sys.executable, "-m", "xsd"], tmp_path / "rd", env=env)
    try:
        old = daemon.proc.pid
        sock = str(daemon.socket)
        with (
            RawConn(sock, timeout=30) as dom0,
            RawConn(sock, timeout=30) as watcher,
            RawConn(sock, timeout=30) as holder,
        ):
            assert dom0.write("/g/a", "before") == ("OK", b"OK\0")
            assert watcher.call(Op.WATCH, "/g", "w") == ("OK", b"OK\0")
            assert watcher.recv_packet().payload == b"/g\0w\0"
            tx = int(holder.call(Op.TRANSACTION_START, "")[1][:-1])
            assert holder.write("/g/tx", "in-tx", tx_id=tx) == ("OK", b"OK\0")
            assert dom0.call(Op.INTRODUCE, 5, 1, 1) == ("OK", b"OK\0")
            assert dom0.write("/local/domain/5", "") == ("OK", b"OK\0")
            assert dom0.call(Op.SET_PERMS, "/local/domain/5", "n5") == ("OK", b"OK\0")
            guest = RawConn(str(daemon.rundir / "domains" / "5" / "socket"), timeout=30)
            assert guest.write("data", "guest-before") == ("OK", b"OK\0")
            half = b"\x02\0\0\0\x07\0\0\0\0\0\0\0\x05\0\0\0/g/a\0"  # READ /g/a, cut
            dom0.send_raw(half[:10])

            kind, text = live_update(daemon.socket, program)
            assert daemon.proc.wait(30) == -9  # the new process, in the old PID, killed
            new = daemon.serving_pid()
            assert new != old and alive(new)
            said = f"New program died before it served: the old daemon serves on (pid {new})."
            assert (kind, text) == ("OK", said.encode() + b"\0")
            dom0.send_raw(half[10:])
            assert dom0.recv_reply().payload == b"before"
            assert guest.call(Op.READ, "data") == ("OK", b"guest-before")
            assert guest.write("data", "guest-after") == ("OK", b"OK\0")
            assert holder.call(Op.TRANSACTION_END, "T", tx_id=tx) == ("OK", b"OK\0")
            assert dom0.call(Op.READ, "/g/tx") == ("OK", b"in-tx")
            assert dom0.write("/g/b", "after") == ("OK", b"OK\0")
            events = [p.payload for p in watcher.drain_events(settle=0.5)]
            assert events == [b"/g/tx\0w\0", b"/g/b\0w\0"]
            guest.close()
        output = daemon.output()
        said = f"the new program died before it served; the old daemon serves on as pid {new}"
        assert f"live-update: {said}" in output
        assert "live-update: exec " not in output  # no new process logged anything

        # The guardian is the whole daemon: it updates in turn (the hook left out).
        wrapper = tmp_path / "no-hook"
        wrapper.write_text(f'#!/bin/sh\nunset {guardian.DIE_AT_ENV}\nexec {program} "$@"\n')
        wrapper.chmod(0o755)
        with RawConn(sock, timeout=30) as check:
            assert live_update(daemon.socket, str(wrapper)) == ("OK", b"OK\0")
            assert check.call(Op.READ, "/local/domain/5/data") == ("OK", b"guest-after")
        assert daemon.serving_pid() == new and alive(new)
    finally:
        daemon.stop()


def test_the_guardian_leaves_once_the_new_process_serves(xsd: XsdDaemon, program: str) -> None:
    """Nothing is left of it: no process, no zombie, no descriptor in the new process."""
    with RawConn(str(xsd.socket)) as conn:
        conn.write("/x", "1")
        for _ in range(3):
            assert live_update(xsd.socket, program) == ("OK", b"OK\0")
            deadline = time.monotonic() + 10
            while children(xsd.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert children(xsd.pid) == []
        assert conn.call(Op.READ, "/x") == ("OK", b"1")

    def pipes() -> list[str]:
        fd_dir = f"/proc/{xsd.pid}/fd"
        found = []
        for fd in os.listdir(fd_dir):
            try:
                target = os.readlink(f"{fd_dir}/{fd}")
            except FileNotFoundError:
                continue  # closed between the listing and the look: asked again below
            if target.startswith("pipe:"):
                found.append(target)
        return found

    # The new process goes on settling after its OK (it reaps the guardian, closes what
    # the restore used): look until it is done, or a while.
    deadline = time.monotonic() + 10
    while pipes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pipes() == []


def test_an_update_with_over_1024_descriptors_keeps_the_socket(
    xsd: XsdDaemon, program: str
) -> None:
    """The guardian waits on a pipe numbered above 1023 (1,100 connections held): it
    must neither fail nor, failing, run the daemon's shutdown and remove the socket the
    new process serves on (found by tools.bench_lu: new clients got ENOENT)."""
    held = [RawConn(str(xsd.socket), timeout=30) for _ in range(1100)]
    try:
        assert held[0].write("/many", "1") == ("OK", b"OK\0")
        assert live_update(xsd.socket, program) == ("OK", b"OK\0")
        deadline = time.monotonic() + 10
        while children(xsd.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert children(xsd.pid) == []  # the guardian left
        with RawConn(str(xsd.socket), timeout=30) as fresh:  # the socket is still there
            assert fresh.call(Op.READ, "/many") == ("OK", b"1")
        assert held[-1].call(Op.READ, "/many") == ("OK", b"1")
        assert "guardian failed" not in xsd.output()
    finally:
        for conn in held:
            conn.close()
