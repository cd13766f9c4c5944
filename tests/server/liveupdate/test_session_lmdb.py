"""A live update's LMDB state (``--state lmdb:PATH``): a full filesystem or a missing
directory is an error answered to ``-s``, the daemon serves on (issue 15 item 5, issue 16),
and ``live-update: exec`` is logged only when the exec happened."""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import XsdDaemon
from tests.support.liveupdate import XSD_PROGRAM, live_update
from tests.support.wire import RawConn
from xsd_client.protocol import Op


@pytest.fixture
def full_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB filesystem (tmpfs: a full one is where LMDB's mappings used to
    SIGBUS), unmounted afterwards."""
    where = tmp_path / "small"
    where.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(where: Path, leave: int) -> Path:
    """Fill the filesystem but ``leave`` bytes (in 4 KiB pages)."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


def _exec_lines(daemon: XsdDaemon, settle: int | None = None) -> int:
    """How many exec lines the log has (once there are ``settle``, if given: the new
    process logs it once its server took over, after the OK)."""
    deadline = time.monotonic() + 10
    while settle is not None and daemon.output().count("live-update: exec ") < settle:
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return daemon.output().count("live-update: exec ")


@pytest.mark.parametrize("leave", [0, 16 << 10, 312 << 10])
def test_a_full_filesystem_is_an_error_answered_to_s(
    xsd: XsdDaemon, full_fs: Path, leave: int
) -> None:
    assert XSD_PROGRAM
    state = full_fs / "state.lmdb"
    pid = xsd.pid
    with RawConn(str(xsd.socket), timeout=60) as conn:
        for i in range(300):  # ~300 kB of state: more than the room left
            assert conn.write(f"/big/{i}", "v" * 1000) == ("OK", b"OK\0")
        filler = _fill(full_fs, leave)
        kind, text = live_update(xsd.socket, XSD_PROGRAM, "--state", f"lmdb:{state}")
        assert kind == "OK" and text.startswith(b"Dump write error: "), text
        if leave < 300_000:  # less than the state's stream: refused before LMDB writes
            assert b"[Errno 28] no space for the state on " in text, text
        else:  # room for the stream, not for the LMDB file: LMDB's own write error
            assert text.startswith(f"Dump write error: cannot write {state}: ".encode()), text
        assert xsd.proc.poll() is None and xsd.pid == pid
        assert conn.call(Op.READ, "/big/299") == ("OK", b"v" * 1000)
        assert not state.exists()  # nothing half-written left behind
        assert _exec_lines(xsd) == 0
        # room again: the same update goes through
        filler.unlink()
        assert live_update(xsd.socket, XSD_PROGRAM, "--state", f"lmdb:{state}") == ("OK", b"OK\0")
        assert conn.call(Op.READ, "/big/299") == ("OK", b"v" * 1000)
    assert xsd.pid == pid and _exec_lines(xsd, settle=1) == 1


def test_the_state_directory_is_created(xsd: XsdDaemon, tmp_path: Path) -> None:
    assert XSD_PROGRAM
    state = tmp_path / "var" / "lib" / "xsd" / "state.lmdb"
    with RawConn(str(xsd.socket), timeout=60) as conn:
        conn.write("/kept", "yes")
        assert live_update(xsd.socket, XSD_PROGRAM, "--state", f"lmdb:{state}") == ("OK", b"OK\0")
        assert conn.call(Op.READ, "/kept") == ("OK", b"yes")
    assert state.exists()
    assert stat.S_IMODE(state.parent.stat().st_mode) == 0o700
    # the exec was logged once, by the new process, with what it was
    assert _exec_lines(xsd, settle=1) == 1
    assert f"live-update: exec {XSD_PROGRAM} --rundir" in xsd.output()
    assert f"(state: lmdb:{state})" in xsd.output()


def test_a_state_directory_that_cannot_be_made_is_an_error(xsd: XsdDaemon, tmp_path: Path) -> None:
    assert XSD_PROGRAM
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with RawConn(str(xsd.socket), timeout=60) as conn:
        conn.write("/kept", "yes")
        kind, text = live_update(
            xsd.socket, XSD_PROGRAM, "--state", f"lmdb:{blocker}/sub/state.lmdb"
        )
        assert (kind, text) == (
            "OK",
            f"Dump write error: [Errno 20] Not a directory: '{blocker}/sub'\0".encode(),
        )
        assert conn.call(Op.READ, "/kept") == ("OK", b"yes")
    assert xsd.proc.poll() is None
    assert _exec_lines(xsd) == 0
