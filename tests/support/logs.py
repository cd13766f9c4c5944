"""Helpers for the logging tests: daemons writing a shared file, load, reading lines back.

Everything runs for real: xsd processes, their shared log file on disk, clients on
Unix sockets. Lines are checked with the parser of ``xsd_client.logformat``, the same
one the follower uses, so "every line parses" means the documented format.
"""

from __future__ import annotations

import collections
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tests.support.daemons import XsdDaemon
from tests.support.wire import RawConn
from xsd_client.logformat import Line, parse_line
from xsd_client.protocol import Op

XSD_PROGRAM = shutil.which("xsd") or ""


def start(rundir: Path, log: Path, name: str, *extra: str) -> XsdDaemon:
    """An xsd tracing to ``log`` as instance ``name``, checking for rotation often."""
    return XsdDaemon(
        rundir, "-T", str(log), "--instance-name", name, "--log-check-interval", "0.05", *extra
    )


def read_lines(paths: Iterable[Path]) -> tuple[list[Line], list[str]]:
    """Parsed lines of the files, and the lines that do not parse."""
    parsed: list[Line] = []
    bad: list[str] = []
    for path in paths:
        data = path.read_bytes()
        assert not data or data.endswith(b"\n"), f"{path} ends in the middle of a line"
        for raw in data.decode("ascii").splitlines():
            line = parse_line(raw)
            if line is None:
                bad.append(raw)
            else:
                parsed.append(line)
    return parsed, bad


def by_source(lines: Iterable[Line]) -> dict[tuple[str, str, int], list[Line]]:
    """Lines grouped by writer, each group sorted by sequence number."""
    groups: dict[tuple[str, str, int], list[Line]] = collections.defaultdict(list)
    for line in lines:
        groups[line.source].append(line)
    for group in groups.values():
        group.sort(key=lambda ln: ln.seq)
    return dict(groups)


def assert_complete(lines: list[Line]) -> None:
    """Sequence numbers 1..N, each exactly once: nothing lost, nothing twice."""
    seqs = [ln.seq for ln in lines]
    dups = [s for s, n in collections.Counter(seqs).items() if n > 1]
    assert not dups, f"lines written twice: seq {dups[:10]}"
    missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
    assert not missing, f"lines lost: seq {missing[:10]} ({len(missing)} in all)"


class Load(threading.Thread):
    """One client: WRITE then READ ``/load/<tag>/<n>`` until stopped or ``count`` done;
    counts the requests it got replies to."""

    def __init__(self, sock: Path, tag: str, count: int | None = None) -> None:
        super().__init__(daemon=True)
        self.conn = RawConn(str(sock), timeout=60)
        self.tag = tag
        self.count = count
        self.requests = 0
        self.written: list[int] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            n = 0
            while not self.stop.is_set() and (self.count is None or n < self.count):
                path = f"/load/{self.tag}/{n}"
                assert self.conn.write(path, str(n)) == ("OK", b"OK\0")
                self.requests += 1
                self.written.append(n)
                assert self.conn.call(Op.READ, path) == ("OK", str(n).encode())
                self.requests += 1
                n += 1
        except BaseException as exc:
            self.error = exc
        finally:
            self.conn.close()

    def finish(self) -> None:
        """Stop (a client without a count), wait, and fail if the client met an error."""
        if self.count is None:
            self.stop.set()
        self.join(120)
        assert not self.is_alive(), "client stuck"
        if self.error is not None:
            raise self.error


def control(sock: Path, *args: str) -> tuple[str, bytes]:
    """One CONTROL request on a fresh connection."""
    with RawConn(str(sock), timeout=60) as conn:
        return conn.call(Op.CONTROL, *args)


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    """Poll ``check`` until it holds (fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)
