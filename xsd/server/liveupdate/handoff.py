"""``-s``'s last step, in one synchronous go: the dump, the descriptors, the exec.

The state is dumped with the ``-s`` request's reply still owed and the shell's record
(``handover.shell_record``) beside it: the connection to answer, the update's timeline,
the exec's command line. It goes into the dry run's memfd (or an LMDB file); exactly the
sockets, the lock and the memfd become inheritable; systemd hears RELOADING; a guardian
is forked (``guardian``) and this process execs the new program, as its dry run said
(``reexec``). Whatever fails before the exec is undone: the descriptors are ours alone
again, and the daemon serves on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from handover import records, stream, timeline, transports
from xsd.server import sdnotify
from xsd.server.liveupdate import LIVE_UPDATE_OPTION, guardian, reexec

if TYPE_CHECKING:
    from xsd.server.shell import HandingShell

log = logging.getLogger("xsd")


class Handoff:
    """One update's exec: what its session decided, and how to carry it out."""

    def __init__(
        self,
        shell: HandingShell,
        argv: list[str],
        state_spec: str,
        *,
        ahead: records.TreeAhead | None,
        recount_usage: bool,
        plan: reexec.Plan | None,
        pid_file: Path | None,
    ) -> None:
        """``argv``: the new program and its options, but the state's;
        ``state_spec``: ``memfd`` or ``lmdb:PATH``; ``ahead``: the tree as the dry run
        dumped it; ``recount_usage``: send no usage (the new process recounts);
        ``plan``: how to exec it without ``site`` (None: as it is); ``pid_file``: what a
        guardian that takes over rewrites."""
        self.shell = shell
        self.argv = argv
        self.state_spec = state_spec
        self.ahead = ahead
        self.recount_usage = recount_usage
        self.plan = plan
        self.pid_file = pid_file

    def run(self, conn_id: int, memfd: int | None) -> str:
        """Hand over to the new program, answering ``-s`` of ``conn_id`` from there;
        ``memfd``: the dry run's, written over (closed here whatever happens). Returns
        an error text if the exec did not happen (or, in the guardian, if the new process
        died before it served)."""
        shell = self.shell
        state_spec = self.state_spec
        # The last log lines go out before the dump, so that the state it carries (the
        # log's counters included) is final: the new process logs the exec.
        shell.before_exec()
        record = shell.handover()
        record.live_update_reply = conn_id
        record.timeline = timeline_marks = timeline.marks()
        record.exec = f"{' '.join(self.argv)} (state: {state_spec})"
        # The -s request's reply is owed by the new process: it is in the state.
        recs = list(
            records.dump(
                shell.engine.state,
                record.to_extra(),
                self.ahead,
                with_usage=not self.recount_usage,
            )
        )
        timeline_marks.append(["dumped", time.monotonic_ns()])  # packed below, with it
        fds = record.descriptors()
        lock = record.lock
        if state_spec.startswith("lmdb:"):
            if memfd is not None:
                os.close(memfd)  # not for the new process
                memfd = None
            try:
                transports.write_lmdb(Path(state_spec[5:]), recs)
            except Exception as exc:
                shell.exec_failed()
                log.error("live-update: no exec: cannot write the state: %s", exc)
                return f"Dump write error: {exc}"
            source = state_spec
        else:
            try:
                memfd = transports.write_memfd_stream(stream.pack_each(recs), into=memfd)
            except OSError as exc:  # the memfd is closed
                shell.exec_failed()
                log.error("live-update: no exec: cannot write the state: %s", exc)
                return f"Dump write error: {exc}"
            source = f"fd:{memfd}"
        del recs
        argv = [*self.argv, LIVE_UPDATE_OPTION, source]
        sdnotify.notify_reloading()
        plan = self.plan
        if plan is not None and reexec.shebang_interpreter(argv[0]) != plan.interpreter:
            plan = None  # the program changed since its dry run: exec it as it is now
        path, args = (argv[0], argv) if plan is None else (plan.interpreter, plan.argv(argv))
        for fd in fds:
            os.set_inheritable(fd, True)
        if lock is not None:
            os.set_inheritable(lock, True)
        timeline.mark_exec()  # in os.environ
        env = dict(os.environ) if plan is None else plan.environment(os.environ)
        guard = guardian.Guardian()
        try:
            with shell.forking():
                is_guardian = guard.fork()
        except OSError as exc:  # no memory for a copy: no update without a way back
            guard.close()
            is_guardian, detail = False, f"cannot fork a guardian: {exc}"
        else:
            if is_guardian:
                try:
                    new_one_died = guard.wait()
                except BaseException:
                    # Whatever went wrong here, the guardian must not unwind into the
                    # daemon's shutdown: that would remove the socket the new one serves.
                    log.exception("live-update: the guardian failed; leaving it to the new process")
                    os._exit(1)
                if not new_one_died:
                    os._exit(0)  # the new process serves: leave without a trace
                detail = "the new program died before it served"
            else:
                try:
                    os.execve(path, args, guard.environment(env))
                except OSError as exc:
                    guard.stand_down()
                    detail = f"exec failed: {exc}"
        # No exec happened, or we are the guardian of a new process that died.
        timeline.forget_exec()
        for fd in fds:
            os.set_inheritable(fd, False)
        if lock is not None:
            os.set_inheritable(lock, False)
        if memfd is not None:
            os.close(memfd)
        shell.exec_failed()  # logging: the log fd is ours alone again
        if not is_guardian:
            log.error("live-update: %s; no update", detail)
            sdnotify.notify("READY=1")
            return "Error activating new binary."
        pid = os.getpid()
        if self.pid_file is not None:
            with contextlib.suppress(OSError):
                self.pid_file.write_text(f"{pid}\n")
        sdnotify.notify(f"MAINPID={pid}\nREADY=1")
        log.error("live-update: %s; the old daemon serves on as pid %d", detail, pid)
        return f"New program died before it served: the old daemon serves on (pid {pid})."
