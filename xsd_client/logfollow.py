"""``xsd-logfollow``: follow a shared log directory across rotations and new files.

Several daemons append to files in one directory (``xsd -T DIR/xsd.log``); logrotate
renames or removes them and the daemons reopen the path by themselves. This follower
prints every line of every matching file as it arrives, filtered by source, domain,
type and class, as text (the line itself) or JSON.

Invariants:

* a file is followed by identity (device, inode), not by name: a rename (``xsd.log`` to
  ``xsd.log.1``) goes on from the same offset, so no line is printed twice; a new file
  under a matching name is read from its start, so no line is missed;
* a file that leaves the directory (removed, or renamed to a name that does not match)
  stays open and is read to its end until nobody has written to it for ``--grace``
  seconds (writers reopen within their check interval), then it is closed;
* only whole lines are printed; a file that shrinks (copytruncate) is read from 0 again;
* filesystem events (the ``watchdog`` package: inotify on Linux) wake the follower at
  once; a poll every ``--poll`` seconds covers what events miss.

It imports neither trio nor the daemon.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from xsd_client.logformat import CLASSES, Line, parse_line

_READ_SIZE = 1 << 20


@dataclass
class Tracked:
    """One file being followed."""

    name: str
    fd: int
    offset: int = 0
    partial: bytes = b""
    last_data: float = field(default_factory=time.monotonic)
    present: bool = True


@dataclass
class Filter:
    """Which lines to print: every given criterion must hold (lists: any of them)."""

    sources: list[str] = field(default_factory=list)
    domains: list[int] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)

    def accepts(self, line: Line) -> bool:
        """Whether ``line`` passes."""
        if self.classes and line.cls not in self.classes:
            return False
        if self.sources:
            names = (
                line.host,
                line.instance,
                str(line.pid),
                f"{line.host}/{line.instance}",
                f"{line.instance}[{line.pid}]",
            )
            if not any(fnmatch.fnmatchcase(n, p) for p in self.sources for n in names):
                return False
        if self.domains and line.domid not in self.domains:
            return False
        return not self.types or (line.type is not None and line.type in self.types)


class Follower:
    """Follows the files matching ``pattern`` in ``directory``; ``emit`` gets each line
    (text with its newline, the parsed line or None, the file name)."""

    def __init__(
        self,
        directory: Path,
        pattern: str,
        emit: Callable[[str, Line | None, str], None],
        from_start: bool = False,
        grace: float = 5.0,
    ) -> None:
        self.directory = directory
        self.pattern = pattern
        self.emit = emit
        self.grace = grace
        self.files: dict[tuple[int, int], Tracked] = {}
        self.lines = 0
        self._first_scan = not from_start

    def scan(self) -> int:
        """Look for new files and read what every followed file has; lines emitted."""
        before = self.lines
        seen: set[tuple[int, int]] = set()
        try:
            names = sorted(os.listdir(self.directory))
        except OSError:
            names = []
        # Read older (rotated) names first: their lines were written before.
        for name in sorted(names, key=lambda n: (n == self.pattern.rstrip("*"), n)):
            if not fnmatch.fnmatchcase(name, self.pattern):
                continue
            path = self.directory / name
            try:
                info = os.stat(path)
            except OSError:
                continue
            ident = (info.st_dev, info.st_ino)
            seen.add(ident)
            tracked = self.files.get(ident)
            if tracked is None:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue
                tracked = Tracked(name, fd, info.st_size if self._first_scan else 0)
                self.files[ident] = tracked
            tracked.name = name
            tracked.present = True
        self._first_scan = False
        now = time.monotonic()
        for ident, tracked in list(self.files.items()):
            self._read(tracked)
            if ident not in seen:
                tracked.present = False
                if now - tracked.last_data > self.grace:
                    os.close(tracked.fd)
                    del self.files[ident]
        return self.lines - before

    def _read(self, tracked: Tracked) -> None:
        try:
            size = os.fstat(tracked.fd).st_size
        except OSError:
            return
        if size < tracked.offset:  # truncated in place (copytruncate): start again
            tracked.offset = 0
            tracked.partial = b""
        while tracked.offset < size:
            chunk = os.pread(tracked.fd, _READ_SIZE, tracked.offset)
            if not chunk:
                break
            tracked.offset += len(chunk)
            tracked.last_data = time.monotonic()
            data = tracked.partial + chunk
            cut = data.rfind(b"\n") + 1
            tracked.partial = data[cut:]
            for raw in data[:cut].splitlines(keepends=True):
                text = raw.decode("utf-8", "replace")
                self.lines += 1
                self.emit(text, parse_line(text), tracked.name)

    def close(self) -> None:
        """Stop following every file."""
        for tracked in self.files.values():
            os.close(tracked.fd)
        self.files.clear()


def build_parser() -> argparse.ArgumentParser:
    """The options of ``xsd-logfollow``."""
    parser = argparse.ArgumentParser(
        prog="xsd-logfollow",
        description="Follow xsd's shared log files (a directory, or one file and its "
        "rotated copies) across rotations and new files, and print the lines that pass "
        "the filters.",
    )
    parser.add_argument(
        "path",
        type=Path,
        help="a directory (every file matching --glob), or a log file (it and its "
        "rotated names FILE*)",
    )
    parser.add_argument("--glob", default=None, help="file names to follow (default: *)")
    parser.add_argument(
        "--from-start",
        action="store_true",
        help="print the files' existing lines too (default: only new lines, as tail -F)",
    )
    parser.add_argument(
        "--source",
        action="append",
        default=[],
        metavar="PATTERN",
        help="only lines from this source: a glob against the host, the instance name, "
        "the pid, HOST/INSTANCE or INSTANCE[PID]; repeat for several",
    )
    parser.add_argument(
        "--domain",
        action="append",
        default=[],
        type=int,
        metavar="DOMID",
        help="only io lines of connections of this domain; repeat for several",
    )
    parser.add_argument(
        "--type",
        action="append",
        default=[],
        metavar="TYPE",
        help="only io lines of this message type (READ, WRITE, WATCH_EVENT, ERROR...)",
    )
    parser.add_argument(
        "--class",
        dest="classes",
        action="append",
        default=[],
        choices=CLASSES,
        help="only lines of this class; repeat for several",
    )
    parser.add_argument("--json", action="store_true", help="print JSON objects, one a line")
    parser.add_argument(
        "--grace",
        type=float,
        default=5.0,
        metavar="SECS",
        help="keep reading a removed or rotated-away file until it was idle this long (5)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=0.5,
        metavar="SECS",
        help="look at the files at least this often, events or not (0.5)",
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECS",
        help="exit once no line came for this long (default: follow forever)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xsd-logfollow`` console script."""
    args = build_parser().parse_args(argv)
    path: Path = args.path
    if path.is_dir():
        directory, pattern = path, args.glob or "*"
    else:
        directory, pattern = path.parent, args.glob or path.name + "*"
    selection = Filter(args.source, args.domain, [t.upper() for t in args.type], args.classes)
    filtering = bool(args.source or args.domain or args.type or args.classes)
    out = sys.stdout

    def emit(text: str, line: Line | None, name: str) -> None:
        if line is None:
            if not filtering:
                out.write(
                    json.dumps({"file": name, "raw": text.rstrip("\n")}) + "\n"
                    if args.json
                    else text
                )
            return
        if not selection.accepts(line):
            return
        if args.json:
            record: dict[str, Any] = {"file": name, **line.to_json()}
            out.write(json.dumps(record) + "\n")
        else:
            out.write(text if text.endswith("\n") else text + "\n")

    follower = Follower(directory, pattern, emit, args.from_start, args.grace)
    wake = threading.Event()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    observer = _watch(directory, wake)
    last_line = time.monotonic()
    try:
        while True:
            if follower.scan():
                last_line = time.monotonic()
            out.flush()
            if stop.is_set():
                break
            if args.idle_exit is not None and time.monotonic() - last_line > args.idle_exit:
                break
            wake.wait(args.poll)
            wake.clear()
    except BrokenPipeError:
        pass
    finally:
        if observer is not None:
            observer.stop()
        follower.close()
    return 0


def _watch(directory: Path, wake: threading.Event) -> Any:
    """Start a ``watchdog`` observer that sets ``wake`` on any change in ``directory``."""
    try:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer
    except ImportError:  # polling alone still works
        return None

    class Waker(FileSystemEventHandler):
        def on_any_event(self, event: Any) -> None:
            wake.set()

    observer = Observer()
    observer.schedule(Waker(), str(directory), recursive=False)
    observer.daemon = True
    observer.start()
    return observer


if __name__ == "__main__":
    sys.exit(main())
