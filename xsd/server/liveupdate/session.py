"""The live-update service: the ``live-update`` control command and its session.

The commands (``-f``, ``-c``, ``-s``, ``-a``) and the session they build, the dry runs
(``dryrun``) at ``-f`` and, if something changed since, at ``-s``; ``-s``'s last step,
the exec, is ``handoff``'s. The sequence and its invariants: ``xsd.server.liveupdate``.
"""

from __future__ import annotations

import gc
import logging
import os
import shlex
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import trio

from handover import records, stream, timeline, transports
from xsd.server.liveupdate import CHECK_OPTION, STATE_OPTIONS, dryrun, reexec
from xsd.server.liveupdate.handoff import Handoff

if TYPE_CHECKING:
    import argparse

    from xsd.server.shell import HandingShell


log = logging.getLogger("xsd")

T = TypeVar("T")

JOURNAL_CHECK_SECONDS = 0.5
"""How often an open session looks at the size of the tree's journal."""


@dataclass
class Session:
    """A live update in preparation."""

    owner: int
    program: str
    cmdline: str | None = None
    checked_cmdline: str | None = None
    checked: bool = False
    starting: bool = False
    cancel: trio.CancelScope | None = None
    aborted: bool = False
    ahead: records.TreeAhead | None = None
    """The tree as the dry run dumped it; -s sends it and the changes since."""
    recount_usage: bool = False
    """The dry run found the tree's usage wrong: -s sends none, the new process recounts."""
    plan: reexec.Plan | None = None
    """How to exec the new program without ``site``, as its dry run told (None: as is)."""
    memfd: int | None = None
    """The memfd the dry run loaded: -s writes the state over it (its pages exist)."""
    program_id: tuple[int, ...] | None = None
    """The program file as the dry run found it: -s runs the dry run again if it changed."""


class LiveUpdate:
    """Runs the ``live-update`` control command for a server, through its shell."""

    def __init__(self, shell: HandingShell, argv: list[str]) -> None:
        """``argv``: the daemon's command line (the new program gets it, less
        :data:`~xsd.server.liveupdate.STATE_OPTIONS`)."""
        self.shell = shell
        self.argv = list(argv)
        self.session: Session | None = None
        self.dry_run_timeout = dryrun.DEFAULT_TIMEOUT
        """Seconds a dry run may take (``--dry-run-timeout``)."""
        self.pid_file: Path | None = None
        """The daemon's pid file, rewritten by a guardian that takes over."""

    def configure(self, args: argparse.Namespace) -> None:
        """Take the options (``--dry-run-timeout``, ``--pid-file``)."""
        self.dry_run_timeout = args.dry_run_timeout
        self.pid_file = args.pid_file

    # ------------------------------------------------------------------ commands

    def command(self, conn_id: int, args: list[bytes]) -> None:
        """Answer ``live-update ARGS`` from connection ``conn_id`` (now or later)."""
        engine = self.shell.engine
        try:
            text = self._command(conn_id, [a.decode(errors="surrogateescape") for a in args])
        except ValueError:
            engine.complete_deferred(conn_id, b"", "EINVAL")
            return
        if text is not None:
            engine.complete_deferred(conn_id, text.encode() + b"\0")

    def _command(self, conn_id: int, args: list[str]) -> str | None:
        if not args:
            raise ValueError
        flag, rest = args[0], args[1:]
        session = self.session
        if flag == "-f":
            if len(rest) != 1:
                raise ValueError
            if session is not None:
                return "live-update session already active."
            program = rest[0]
            try:
                info = os.stat(program)
            except OSError:
                return "File not accessible."
            if not info.st_mode & 0o111:
                return "File not executable."
            session = self.session = Session(conn_id, program, starting=True)
            log.info("live-update: binary %s", program)
            self.shell.start_soon(self._check, session, conn_id)
            return None
        if flag == "-c":
            if len(rest) != 1:
                raise ValueError
            if session is None or session.owner != conn_id:
                return "Not in live-update session."
            session.cmdline = rest[0]
            log.info("live-update: cmdline %s", rest[0])
            return "OK"
        if flag == "-a":
            if rest:
                raise ValueError
            if session is None:
                return "No live-update session active."
            self.abort()
            return "OK"
        if flag == "-s":
            state_spec = _parse_start(rest)
            if session is None or session.owner != conn_id:
                return "Not in live-update session."
            if session.starting:
                return "live-update already started."
            session.starting = True
            self.shell.start_soon(self._start, session, conn_id, state_spec)
            return None
        raise ValueError

    def _end(self) -> None:
        """No session any more: nothing to keep a journal of changes for, or a memfd."""
        session, self.session = self.session, None
        if session is not None and session.memfd is not None:
            os.close(session.memfd)
            session.memfd = None
        records.forget_ahead(self.shell.engine.state.tree)

    def abort(self) -> None:
        """End the session; a waiting ``-s`` is answered "Cancellation was requested"."""
        session = self.session
        self._end()
        if session is None:
            return
        session.aborted = True
        if session.cancel is not None:
            session.cancel.cancel()
        log.info("live-update: abort")

    def connection_closed(self, conn_id: int) -> None:
        """The owner of a session went away: the session ends."""
        if self.session is not None and self.session.owner == conn_id:
            self.abort()

    # ------------------------------------------------------------------ the update

    async def _check(self, session: Session, conn_id: int) -> None:
        """``-f``: the dry run, answered when it is over."""
        error = None
        with trio.CancelScope() as scope:
            session.cancel = scope
            error = await self._dry_run(session)
        session.cancel = None
        session.starting = False
        if session.aborted:
            error = "Cancellation was requested"
        elif error is None:
            session.checked = True
            session.checked_cmdline = session.cmdline
            self.shell.start_soon(self._bound_journal, session)
        elif self.session is session:
            self._end()
        self._answer(conn_id, error)

    async def _bound_journal(self, session: Session) -> None:
        """While ``-s`` has not come, keep the journal from outgrowing its use: once
        more nodes changed than a delta is sent for, drop it and the kept dump (``-s``
        then dumps the tree whole), rather than grow with every write."""
        tree = self.shell.engine.state.tree
        while self.session is session and session.ahead is not None:
            await trio.sleep(JOURNAL_CHECK_SECONDS)
            journal = tree.journal
            if journal is None or self.session is not session or session.starting:
                return
            if len(journal) * records.DELTA_SHARE_MAX > len(tree.nodes):
                log.info(
                    "live-update: %d paths changed since the dry run; -s dumps the tree whole",
                    len(journal),
                )
                session.ahead = None
                records.forget_ahead(tree)

    def _answer(self, conn_id: int, error: str | None) -> None:
        self.shell.engine.complete_deferred(conn_id, (error or "OK").encode() + b"\0")
        self.shell.flush()
        self.shell.wake(conn_id)

    async def _start(self, session: Session, conn_id: int, state_spec: str) -> None:
        error: str | None = None
        timeline.clear()
        timeline.mark("-s")
        with trio.CancelScope() as scope:
            session.cancel = scope
            if (
                not session.checked
                or session.cmdline != session.checked_cmdline
                or _identity(session.program) != session.program_id
            ):
                error = await self._dry_run(session)
            if error is None and not session.aborted:
                error = self._exec(session, conn_id, state_spec)
        if session.aborted:
            error = "Cancellation was requested"
        if self.session is session:
            self._end()
        self._answer(conn_id, error)

    def _argv(self, session: Session, extra: list[str]) -> list[str]:
        if session.cmdline is not None:
            args = shlex.split(session.cmdline)
        else:
            args = _strip_state_options(self.argv)
        return [session.program, *args, *extra]

    async def _dry_run(self, session: Session) -> str | None:
        """Let the new program load the current state in a child; None if it can.

        The tree dumped for it is kept, and the tree's journal started, so that ``-s``
        dumps only what changed since. The tree is dumped in steps, serving between them
        (the journal makes the result exact)."""
        state = self.shell.engine.state
        session.ahead = await _stepwise(records.dump_ahead_steps(state.tree))
        packed = stream.pack_each(
            records.dump(state, self.shell.handover().to_extra(), session.ahead)
        )
        reuse, session.memfd = session.memfd, None
        fd = session.memfd = transports.write_memfd_stream(packed, into=reuse)
        del packed
        session.program_id = _identity(session.program)
        argv = self._argv(session, [CHECK_OPTION, f"fd:{fd}"])
        error, stdout = await self._run_check(argv, fd)
        if error is not None:
            log.error("live-update: dry run failed: %s", error)
            return error
        plan = reexec.exec_plan(session.program, stdout)
        if plan is not None:
            # Once more, exactly as the exec will run it: no site, the path it made.
            env = plan.environment(os.environ)
            error, _ = await self._run_check(plan.argv(argv), fd, env)
            if error is not None:
                log.warning(
                    "live-update: %s cannot run without site (%s): it will be exec'd as it is",
                    session.program,
                    error,
                )
                plan = None
        session.plan = plan
        session.recount_usage = reexec.RECOUNT_VERDICT in stdout
        if session.recount_usage:
            log.warning("live-update: the tree's usage differs from its nodes; recounting it")
        return None

    async def _run_check(
        self, argv: list[str], fd: int, env: dict[str, str] | None = None
    ) -> tuple[str | None, str]:
        """Run one dry run; its error text (None if it passed) and its stdout."""
        try:
            outcome = await dryrun.run(argv, pass_fds=(fd,), timeout=self.dry_run_timeout, env=env)
        except OSError as exc:
            return f"New program cannot be run: {exc}", ""
        if outcome.returncode is None:
            return (
                "New program failed to load the state: no answer within "
                f"{self.dry_run_timeout:g} s (killed; see --dry-run-timeout)"
            ), ""
        if outcome.returncode != 0:
            reason = outcome.stderr.decode(errors="replace").strip().splitlines()
            detail = reason[-1] if reason else f"exit status {outcome.returncode}"
            return f"New program failed to load the state: {detail}", ""
        return None, outcome.stdout.decode(errors="replace")

    def _exec(self, session: Session, conn_id: int, state_spec: str) -> str:
        """Dump, hand over and exec; returns an error text if the exec did not happen
        (or, in the guardian, if the new process died before it served)."""
        handoff = Handoff(
            self.shell,
            self._argv(session, []),
            state_spec,
            ahead=session.ahead,
            recount_usage=session.recount_usage,
            plan=session.plan,
            pid_file=self.pid_file,
        )
        memfd, session.memfd = session.memfd, None  # the dry run's: the hand-off's now
        return handoff.run(conn_id, memfd)


async def _stepwise(steps: Generator[None, None, T]) -> T:
    """Run a generator of steps to its result, letting the other tasks run between
    steps; the cyclic collector waits (a full pass over a big store costs more than the
    dump, and everything the dump makes is freed by reference counting)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        while True:
            try:
                next(steps)
            except StopIteration as done:
                result: T = done.value
                return result
            await trio.lowlevel.checkpoint()
    finally:
        if collecting:
            gc.enable()


def _parse_start(args: list[str]) -> str:
    """``-s`` options: ``-F``, ``-t SECS``, ``-v VER`` (accepted for Xen's CLI) and ours,
    ``--state memfd|lmdb:PATH``. Returns the state transport."""
    spec = "memfd"
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "-F":
            i += 1
        elif arg in ("-t", "-v", "--state") and i + 1 < len(args):
            if arg == "-t" and not args[i + 1].isdigit():
                raise ValueError
            if arg == "--state":
                spec = args[i + 1]
                if spec != "memfd" and not spec.startswith("lmdb:"):
                    raise ValueError
            i += 2
        else:
            raise ValueError
    return spec


def _identity(program: str) -> tuple[int, ...] | None:
    """What tells a program file from another one put in its place."""
    try:
        info = os.stat(program)
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _strip_state_options(argv: list[str]) -> list[str]:
    out = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in STATE_OPTIONS:
            skip = True
            continue
        out.append(arg)
    return out


__all__ = ["LiveUpdate", "Session"]
