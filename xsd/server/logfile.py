"""The shared log file backend: C xenstored's trace file (``-T``), shareable by many writers.

Several daemons (several xsd instances, on one host or sharing a directory) may append
to one file; every line names its source and never mixes with another writer's line.
The line format is :mod:`xsd_client.logformat`'s.

Invariants:

* one whole line per ``os.write()`` on a descriptor opened with ``O_APPEND``: the kernel
  appends each write at the end as one piece, so writers never interleave mid-line
  (only a short write on a full disk can cut a line, and then the error is reported);
* every line gets the next sequence number of this process, also when it cannot be
  written, so a reader sees a lost line as a gap; the number goes on across reopening,
  switching files and live update (it travels in the handover with the descriptor);
* nothing here blocks or raises into the daemon: the file is opened ``O_NONBLOCK``, a
  failed open or write is counted, reported once on stderr (and in the control reply
  that caused it, ``log status``) and retried; the daemon keeps serving;
* a rotated (renamed) or removed file is noticed by comparing the path's inode with the
  open descriptor's, at most once per check interval, and reopened by path; SIGHUP and
  ``log on`` reopen at once;
* before a live-update exec the engine's trace records are written out and the
  descriptor is made inheritable; the new process adopts it (or reopens the path), so no
  line is lost or written twice; lines logged before that are buffered (boundedly).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

from xsd.core.trace import TraceRecord, io_text
from xsd_client.logformat import CLASSES, Clock, classify, escape, format_line, source_tag
from xsd_client.protocol import ERROR_NAMES

if TYPE_CHECKING:
    from xsd.core.state import Settings

STDERR = "-"
"""The trace-file name meaning the daemon's stderr (no rotation)."""

DEFAULT_CHECK_INTERVAL = 0.25
"""Seconds between two checks that the path still names the open file."""


_PENDING_MAX = 4096  # lines kept while no file is configured yet (start, live update)
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def parse_classes(spec: str, current: list[str] | None = None) -> list[str]:
    """The classes a ``--log-classes`` spec selects.

    ``all``, ``none``, a comma list of class names (exactly those), or changes to
    ``current`` (default: all) such as ``-io`` or ``+io,-daemon``.

    Raises:
        ValueError: a name is no class.
    """
    selected = list(CLASSES if current is None else current)
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if not items or any(item[0] not in "+-" for item in items):
        selected = []
    for item in items:
        if item in ("all", "none"):
            selected = list(CLASSES) if item == "all" else []
            continue
        sign, name = (item[0], item[1:]) if item[0] in "+-" else ("+", item)
        if name not in CLASSES:
            raise ValueError(f"unknown log class {name!r}: use {', '.join(CLASSES)}")
        selected = [c for c in selected if c != name]
        if sign == "+":
            selected.append(name)
    return [c for c in CLASSES if c in selected]


class LogFile:
    """The trace/log file of one daemon: what it writes, where, and what went wrong."""

    def __init__(
        self,
        host: str | None = None,
        pid: int | None = None,
        check_interval: float = DEFAULT_CHECK_INTERVAL,
    ) -> None:
        self.host = host if host is not None else socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self.check_interval_ns = int(check_interval * 1e9)
        self.instance = "xsd"
        self._source = source_tag(self.host, self.instance, self.pid)
        self.classes: frozenset[str] = frozenset(CLASSES)
        self.path: str | None = None
        """The file lines should go to (absolute), or None: tracing off."""
        self.fd: int | None = None
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self._next_check = 0
        self.seq = 0
        self.written = 0
        self.dropped = 0
        self.error: str | None = None
        """Why the last open or write failed (None once it works again)."""
        self._errno = 0
        self._torn = False  # a short write left part of a line in the file
        self._dropped_reported = 0
        self._drop_reason: str | None = None  # why the lines not yet reported were dropped
        self._noticing = False  # writing the "lines dropped" notice
        self._ready = False  # until the first apply/adopt, lines wait in _pending
        self._pending: list[tuple[str, str, int]] = []
        self._clock = Clock()

    # ------------------------------------------------------------------ configuration

    def wants(self, cls: str) -> bool:
        """Would a line of class ``cls`` be written now (or buffered for the file)?"""
        return cls in self.classes and (self.path is not None or not self._ready)

    def apply(self, settings: Settings, reason: str = "configured") -> str | None:
        """Follow ``settings`` (file, on/off, classes, instance name).

        Returns the error name (``EACCES``...) if the file should be open and is not.
        """
        self.classes = frozenset(c for c in settings.log_classes if c in CLASSES)
        if settings.instance_name != self.instance:
            self.instance = settings.instance_name
            self._source = source_tag(self.host, self.instance, self.pid)
        path = None
        if settings.trace_on and settings.trace_file:
            path = _resolve(settings.trace_file)
        if path != self.path:
            self.close(f"switching to {path}" if path else "tracing off")
            self.path = path
            self._dropped_reported = self.dropped  # a new file missed nothing
            if self.error is not None and self.error.startswith("cannot open"):
                self.error = None  # that was another path
        if path is not None and self.fd is None:
            self._open(reason)
        if not self._ready:
            self._ready = True
            pending, self._pending = self._pending, []
            for cls, text, time_ns in pending:
                self._line(cls, text, time_ns)
        return self._error_name() if self.path is not None and self.fd is None else None

    def reopen(self, reason: str) -> str | None:
        """Close and open the file again by its path (SIGHUP, ``log on``)."""
        if self.path is None:
            return None
        self.close(None)
        self._open(reason)
        return None if self.fd is not None else self._error_name()

    def close(self, reason: str | None) -> None:
        """Close the file (writing why first, if ``reason``)."""
        if self.fd is None:
            return
        if reason:
            self.line("daemon", f"log: closing {self.path} ({reason})")
        fd, self.fd, self._ident = self.fd, None, None
        if self.path != STDERR:
            with contextlib.suppress(OSError):
                os.close(fd)

    def status(self) -> str:
        """The reply of ``log status``."""
        if self.path is None:
            where = "off"
        elif self.fd is None:
            where = f"{self.path} (not open: {self.error})"
        else:
            where = f"{self.path} (open)"
        lines = [
            f"Log file: {where}",
            f"Source: {self._source}",
            f"Classes: {' '.join(c for c in CLASSES if c in self.classes) or '(none)'}",
            f"Lines: {self.seq} numbered, {self.written} written, {self.dropped} dropped",
        ]
        if self.error is not None:
            lines.append(f"Last error: {self.error}")
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------------------ writing

    def line(self, cls: str, message: str, time_ns: int | None = None) -> None:
        """Log ``message`` (any text; it is escaped) as a line of class ``cls``."""
        if cls in self.classes:
            text = escape(message.encode("utf-8", "replace"))
            self._line(cls, text, time.time_ns() if time_ns is None else time_ns)

    def trace(self, records: list[TraceRecord]) -> None:
        """Write the engine's ``io`` records (monotonic times become wall-clock times)."""
        if "io" not in self.classes:
            return
        wall = time.time_ns()
        offset = wall - time.monotonic_ns()
        line = self._line
        last_mono = -1
        stamp = 0
        for record in records:
            mono = record[2]
            if mono != last_mono:  # a request and its replies share the engine's time
                last_mono = mono
                stamp = mono + offset if mono else wall
            line("io", io_text(record), stamp)

    def _line(self, cls: str, text: str, time_ns: int) -> None:
        if not self._ready:
            if len(self._pending) < _PENDING_MAX:
                self._pending.append((cls, text, time_ns))
            return
        if self.path is None:
            return
        now = time.monotonic_ns()
        if now >= self._next_check:
            self._next_check = now + self.check_interval_ns
            self._check()
        fd = self.fd
        if fd is None:
            self.seq += 1
            self._dropped(self.error or "not open")
            return
        if self.dropped > self._dropped_reported and not self._noticing and not self._notice():
            self.seq += 1
            self._dropped(self._drop_reason or "write failed")
            return  # the notice could not be written: nor can this line go before it
        self.seq += 1
        data = format_line(self._clock.format(time_ns), self._source, self.seq, cls, text)
        raw = data.encode("ascii")
        try:
            if self._torn:  # end the piece a short write left, so this line stays whole
                os.write(fd, b"\n")
                self._torn = False
            n = os.write(fd, raw)
        except OSError as exc:
            self._write_failed(exc)
            return
        if n != len(raw):
            self._torn = n > 0
            why = f"{os.strerror(errno.ENOSPC)} (short write, {n} of {len(raw)} bytes)"
            self._write_failed(OSError(errno.ENOSPC, why))
            return
        self.written += 1
        if self.error is not None and self.error.startswith("write failed"):
            self.error = None  # (a line written while nothing was left to report)

    def _dropped(self, reason: str) -> None:
        """Count a line lost; the first loss since the last notice says why."""
        if self.dropped == self._dropped_reported:
            self._drop_reason = reason
        self.dropped += 1

    def _write_failed(self, exc: OSError) -> None:
        text = f"write failed: {exc.strerror or exc}"
        self._dropped(text)
        if self.error is None or not self.error.startswith("write failed"):
            self.error = text
            _report(
                f"log file {self.path}: {text}; lines are dropped (and counted) "
                "until writing works again"
            )

    def _notice(self) -> bool:
        """Before any other line once lines were lost: write how many, and why. True if
        it was written (writing works again)."""
        lost = self.dropped - self._dropped_reported
        reason = self._drop_reason or "write failed"
        if "daemon" not in self.classes:  # no notice wanted: nothing to wait for
            self._dropped_reported += lost
            self.error = None
            return True
        written = self.written
        self._noticing = True
        try:
            self.line("daemon", f"log: {lost} lines dropped before this one ({reason})")
        finally:
            self._noticing = False
        if self.written == written:
            return False
        self._dropped_reported += lost
        if reason.startswith("write failed"):
            _report(f"log file {self.path}: writing again; {lost} lines were dropped ({reason})")
        self.error = None
        return True

    # ------------------------------------------------------------------ the file

    def _open(self, reason: str) -> None:
        path = self.path
        assert path is not None
        try:
            fd = os.dup(2) if path == STDERR else os.open(path, _FLAGS, 0o600)
            os.set_inheritable(fd, False)
            info = os.fstat(fd)
        except OSError as exc:
            text = f"cannot open: {exc.strerror or exc}"
            if self.error != text:
                _report(f"log file {path}: {text}; the daemon goes on without it")
            self.error = text
            self._errno = exc.errno or 0
            return
        self.fd = fd
        self._ident = (info.st_dev, info.st_ino)
        self._next_check = time.monotonic_ns() + self.check_interval_ns
        if self.error is not None and self.error.startswith("cannot open"):
            _report(f"log file {path}: open again")
            self.error = None
        self.line("daemon", f"log: opened {path} ({reason})")

    def _check(self) -> None:
        """Reopen if the path no longer names the open file (rotated, removed), or retry
        a file that could not be opened."""
        path = self.path
        if path is None or path == STDERR:
            return
        if self.fd is None:
            self._open("retry")
            return
        try:
            info = os.stat(path)
        except FileNotFoundError:
            self._reopen_quietly("renamed or removed")
            return
        except OSError:
            return
        if (info.st_dev, info.st_ino) != self._ident:
            self._reopen_quietly("rotated")

    def _reopen_quietly(self, why: str) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._open(f"the file was {why}")

    def _error_name(self) -> str:
        name = errno.errorcode.get(self._errno, "EIO")
        return name if name in ERROR_NAMES else "EIO"

    # ------------------------------------------------------------------ live update

    def before_exec(self) -> None:
        """The exec comes (its last lines are written): let the descriptor survive it.

        The counters travel in the handed-over state (:meth:`handover`), which the
        live update dumps after this.
        """
        if self.fd is not None:
            os.set_inheritable(self.fd, True)

    def exec_failed(self) -> None:
        """The exec did not happen: the descriptor is ours alone again."""
        if self.fd is not None:
            os.set_inheritable(self.fd, False)

    def handover(self) -> dict[str, Any]:
        """What the next process needs to go on writing where this one stopped."""
        return {
            "fd": self.fd,
            "path": self.path,
            "seq": self.seq,
            "written": self.written,
            "dropped": self.dropped,
            "dropped_reported": self._dropped_reported,
        }

    def adopt(self, data: dict[str, Any]) -> None:
        """Go on from a previous process's :meth:`handover` (before :meth:`apply`)."""
        counters = [int(data.get(k, 0)) for k in ("seq", "written", "dropped", "dropped_reported")]
        self.seq, self.written, self.dropped, self._dropped_reported = counters
        fd, path = data.get("fd"), data.get("path")
        if fd is None or path is None:
            return
        try:
            info = os.fstat(fd)
            os.set_inheritable(fd, False)
        except OSError:
            return  # not inherited after all: apply() reopens the path
        self.path, self.fd, self._ident = path, fd, (info.st_dev, info.st_ino)


def _resolve(name: str) -> str:
    return name if name == STDERR else os.path.abspath(name)


def _report(message: str) -> None:
    """A problem with the log itself: straight to stderr, never back into the log."""
    with contextlib.suppress(OSError):
        os.write(2, f"xsd: {message}\n".encode(errors="replace"))


class LogHandler(logging.Handler):
    """Sends the daemon's own messages (the ``xsd`` logger) to the log file as lines of
    the class their text names (:func:`xsd_client.logformat.classify`)."""

    def __init__(self, logfile: LogFile) -> None:
        super().__init__(logging.INFO)
        self.logfile = logfile

    def emit(self, record: logging.LogRecord) -> None:
        """Write one record as a line."""
        try:
            message = record.getMessage()
            self.logfile.line(classify(message), message, int(record.created * 1e9))
        except Exception:  # a log line must never take the daemon down
            self.handleError(record)


# ---------------------------------------------------------------------- options


def add_options(parser: argparse.ArgumentParser) -> None:
    """The logging options of ``xsd`` (also keys of the configuration file)."""
    group = parser.add_argument_group("logging (the shared trace/log file)")
    group.add_argument(
        "-T",
        "--trace-file",
        "--log-file",
        dest="trace_file",
        metavar="FILE",
        help="append the trace (every request and reply) and the daemon's own events to "
        "FILE, as C xenstored's -T; several daemons may share one file ('-': stderr). "
        "`xenstore-control logfile FILE` switches it, `log on|off` opens or closes it, "
        "SIGHUP reopens it; a rotated or removed file is reopened by itself",
    )
    group.add_argument(
        "--log-classes",
        metavar="SPEC",
        help=f"which lines to write: 'all' (default), 'none', a comma list of "
        f"{', '.join(CLASSES)}, or changes such as '-io' or '+io,-daemon'",
    )
    group.add_argument(
        "--instance-name",
        metavar="NAME",
        help="the name this daemon's lines carry, beside host and pid (default: xsd)",
    )
    group.add_argument(
        "--log-check-interval",
        type=float,
        default=DEFAULT_CHECK_INTERVAL,
        metavar="SECS",
        help="how often (at most) to check that the file was not rotated or removed, "
        f"while writing (default: {DEFAULT_CHECK_INTERVAL})",
    )


def apply_options(settings: Settings, args: argparse.Namespace) -> None:
    """Put the logging options into a fresh start's settings.

    Raises:
        ValueError: ``--log-classes`` names an unknown class.
    """
    if getattr(args, "trace_file", None):
        settings.trace_file = args.trace_file
    if getattr(args, "log_classes", None):
        settings.log_classes = parse_classes(args.log_classes)
    if getattr(args, "instance_name", None):
        settings.instance_name = args.instance_name


def configure(logfile: LogFile, args: argparse.Namespace) -> None:
    """Options that belong to the process, not the state (after a live update too)."""
    interval = getattr(args, "log_check_interval", DEFAULT_CHECK_INTERVAL)
    logfile.check_interval_ns = int(max(0.0, interval) * 1e9)
