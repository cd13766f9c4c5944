"""The dry run has a time limit and never outlives the daemon (issue 15, item 7)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.daemons import XsdDaemon
from tests.support.liveupdate import XSD_PROGRAM, live_update, wait_gone
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def _hanging(tmp_path: Path, pids: Path) -> str:
    """A new program whose dry run hangs (with a child of its own); runs the real
    daemon otherwise."""
    script = tmp_path / "hangs"
    script.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" --check-state "*)\n'
        f"  sleep 600 & echo $! >> {pids}\n"
        f"  echo $$ >> {pids}\n"
        "  exec sleep 600;;\n"
        "esac\n"
        f'exec {XSD_PROGRAM} "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def _wait_for_pids(pids: Path, count: int) -> list[int]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if pids.exists() and len(found := pids.read_text().split()) >= count:
            return [int(p) for p in found]
        time.sleep(0.02)
    raise AssertionError("the dry run never started")


def test_a_hanging_dry_run_is_killed_at_the_limit(tmp_path: Path) -> None:
    config = tmp_path / "xsd.toml"
    config.write_text("dry-run-timeout = 1.5\n")  # the config key, as the option
    daemon = XsdDaemon(tmp_path / "rd", "--config", str(config))
    try:
        pids = tmp_path / "pids"
        with RawConn(str(daemon.socket), timeout=30) as conn:
            conn.write("/kept", "yes")
            started = time.monotonic()
            kind, text = live_update(daemon.socket, _hanging(tmp_path, pids))
            took = time.monotonic() - started
            assert (kind, text) == (
                "OK",
                b"New program failed to load the state: no answer within 1.5 s "
                b"(killed; see --dry-run-timeout)\0",
            )
            assert 1.5 <= took < 10, took
            for pid in _wait_for_pids(pids, 2):  # the program and what it started
                assert wait_gone(pid, kill_after=5), pid
            assert conn.call(Op.READ, "/kept") == ("OK", b"yes")
            # the session ended with it (a new one may start)
            assert conn.call(Op.CONTROL, "live-update", "-a") == (
                "OK",
                b"No live-update session active.\0",
            )
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_daemon_during_f_leaves_no_child(tmp_path: Path, how: signal.Signals) -> None:
    daemon = XsdDaemon(tmp_path / "rd")
    pids = tmp_path / "pids"
    conn = RawConn(str(daemon.socket), timeout=30)
    try:
        program = _hanging(tmp_path, pids)
        thread = threading.Thread(target=_ignore_eof, args=(conn, program), daemon=True)
        thread.start()
        found = _wait_for_pids(pids, 2)
        daemon.proc.send_signal(how)
        daemon.proc.wait(10)
        # the --check-state child goes with the daemon, however it ends
        assert wait_gone(found[1], kill_after=10), "the dry-run child outlived the daemon"
        if how == signal.SIGTERM:  # the daemon killed the child's group itself
            assert wait_gone(found[0], kill_after=10)
        else:  # the kernel's death signal reaches the child, not what the child started
            os.kill(found[0], signal.SIGKILL)
        thread.join(10)
    finally:
        conn.close()
        daemon.stop()


def _ignore_eof(conn: RawConn, program: str) -> None:
    with contextlib.suppress(EOFError, OSError):  # the daemon goes away meanwhile
        conn.call(Op.CONTROL, "live-update", "-f", program)


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_a_bad_time_limit_is_one_line(tmp_path: Path, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "xsd", "--rundir", str(tmp_path), "--dry-run-timeout", value],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--dry-run-timeout" in result.stderr and "Traceback" not in result.stderr
