"""An unusable log never stops the daemon: unwritable paths, a full disk, classes off."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.logs import Load, control, read_lines, start, wait_until
from tests.support.wire import RawConn
from xsd_client.protocol import Op


@contextlib.contextmanager
def tiny_disk(where: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs at ``where`` (root), else a file that is always full (/dev/full)."""
    where.mkdir()
    mounted = (
        os.geteuid() == 0
        and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    try:
        yield where
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], check=False)


def test_unopenable_path_daemon_serves_and_reports(tmp_path: Path) -> None:
    daemon = start(tmp_path / "d", tmp_path / "no" / "such" / "dir" / "x.log", "bad")
    try:
        with RawConn(str(daemon.socket)) as conn:
            assert conn.write("/still", "serving") == ("OK", b"OK\0")
            assert conn.call(Op.READ, "/still") == ("OK", b"serving")
            kind, status = conn.call(Op.CONTROL, "log", "status")
            assert kind == "OK" and b"not open: cannot open: No such file" in status
            # A directory cannot be a log file: the reply says so, serving goes on.
            assert conn.call(Op.CONTROL, "logfile", str(tmp_path)) == ("ERROR", b"EISDIR\0")
            assert conn.call(Op.READ, "/still") == ("OK", b"serving")
            good = tmp_path / "good.log"
            assert conn.call(Op.CONTROL, "logfile", str(good)) == ("OK", b"OK\0")
            assert conn.call(Op.READ, "/still") == ("OK", b"serving")
    finally:
        daemon.stop()
    err = daemon.output()
    assert "cannot open: No such file or directory; the daemon goes on without it" in err
    assert "cannot open: Is a directory" in err
    lines, bad = read_lines([good])
    assert not bad and lines[0].text == f"log: opened {good} (logfile)"


def test_full_disk_daemon_serves_reports_and_recovers(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "tiny") as disk:
        mounted = os.path.ismount(disk)
        if mounted:
            log = disk / "xsd.log"
        else:
            if not os.path.exists("/dev/full"):
                pytest.skip("neither a tmpfs mount nor /dev/full")
            log = disk / "xsd.log"
            log.symlink_to("/dev/full")
        daemon = start(tmp_path / "d", log, "full")
        try:
            filler = disk / "filler"
            if mounted:
                with contextlib.suppress(OSError), open(filler, "wb") as f:
                    f.write(b"x" * (1 << 20))  # fills the disk
            load = Load(daemon.socket, "f", count=300)
            load.start()
            load.finish()  # every request answered, disk full or not
            assert load.requests == 600
            kind, status = control(daemon.socket, "log", "status")
            assert kind == "OK" and b"No space left on device" in status, status
            assert b" 0 dropped" not in status
            if mounted:
                filler.unlink()
                Load(daemon.socket, "g", count=5).run()
                wait_until(
                    lambda: b"Last error" not in control(daemon.socket, "log", "status")[1],
                    what="writing to work again",
                )
        finally:
            daemon.stop()
        err = daemon.output()
        assert err.count("lines are dropped (and counted)") == 1  # reported once
        if mounted:
            assert "writing again;" in err
            lines, bad = read_lines([log])
            assert len(bad) <= 1  # at most the piece of one line a short write left
            dropped = [ln for ln in lines if "lines dropped before this one" in ln.text]
            assert len(dropped) == 1
            count = int(dropped[0].text.split()[1])
            seqs = sorted(ln.seq for ln in lines if ln.instance == "full")
            assert count > 0
            # The gap in the numbers is exactly the count of dropped lines.
            assert len(set(range(1, seqs[-1] + 1)) - set(seqs)) == count
            # And the notice is the first line written after the gap (issue 15, item 9).
            ordered = sorted((ln for ln in lines if ln.instance == "full"), key=lambda ln: ln.seq)
            gap = next(i for i, ln in enumerate(ordered[1:], 1) if ln.seq != ordered[i - 1].seq + 1)
            assert ordered[gap] is dropped[0], [ln.text for ln in ordered[gap - 1 : gap + 2]]
            assert dropped[0].seq == ordered[gap - 1].seq + count + 1


def test_classes_switch_and_io_off_costs_nothing(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    daemon = start(tmp_path / "d", log, "cls", "--log-classes=-io")
    try:
        Load(daemon.socket, "a", count=10).run()
        assert control(daemon.socket, "log", "+io") == ("OK", b"OK\0")
        Load(daemon.socket, "b", count=10).run()
        assert control(daemon.socket, "log", "-daemon") == ("OK", b"OK\0")
        assert control(daemon.socket, "log", "+nope") == ("ERROR", b"EINVAL\0")
        assert control(daemon.socket, "log") == ("ERROR", b"EINVAL\0")  # as C 4.17
        assert control(daemon.socket, "log", "off") == ("OK", b"OK\0")
        Load(daemon.socket, "c", count=10).run()
        assert control(daemon.socket, "log", "on") == ("OK", b"OK\0")
    finally:
        daemon.stop()
    lines, bad = read_lines([log])
    assert not bad
    payloads = [ln.payload or "" for ln in lines if ln.cls == "io"]
    assert not any(p.startswith("/load/a/") for p in payloads)
    assert sum(p.startswith("/load/b/") for p in payloads) == 20  # the requests
    assert not any(p.startswith("/load/c/") for p in payloads)
    assert not any(ln.cls == "daemon" and "stop" in ln.text for ln in lines)
