"""Watchdog action backends, and the daemon's watchdog options.

The core decides what an expired watchdog's action is and asks for hard actions (reset,
poweroff, pause, inject-nmi) with a :class:`~xsd.core.effects.WatchdogAction` effect. This module
performs them: over QMP to the domain's QEMU when the domain has a QMP socket (its
``watchdog/qmp`` node), else by running the hook command (``--watchdog-hook``) with the
domain, watchdog and action in its environment. Invariants:

* a backend never raises into the daemon: every failure (no backend, refused connection,
  QMP error, hook exit status, time limit) becomes a result string;
* the engine changes only through :meth:`Watchdogs.action_done`, with ``engine.now`` set
  and the output flushed right after, so the result is logged and shown in the store
  (``bootstatus/result``) and ``@watchdog`` fires;
* every backend call is bounded in time (:data:`QMP_TIMEOUT`, :data:`HOOK_TIMEOUT`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import time
from typing import TYPE_CHECKING, Any

from xsd.core.effects import WatchdogAction
from xsd.core.watchdogs import ACTIONS, ALIASES, canonical_action
from xsd.core.watchdogs.feature import of as watchdogs_of

if TYPE_CHECKING:
    import trio

    from xsd.server.shell import Shell

log = logging.getLogger("xsd")

QMP_COMMANDS = {
    "reset": "system_reset",
    "poweroff": "quit",
    "pause": "stop",
    "inject-nmi": "inject-nmi",
}
"""The QMP command for each hard action (QEMU's own watchdog does the same internally)."""

QMP_TIMEOUT = 5.0
HOOK_TIMEOUT = 30.0


class BackendError(Exception):
    """A backend could not perform the action."""


class _QmpLines:
    """QMP's framing: one JSON object per line."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def message(self) -> dict[str, Any]:
        while b"\n" not in self.buf:
            data = await self.stream.receive_some(65536)
            if not data:
                raise BackendError("QMP connection closed")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError as exc:
            raise BackendError(f"bad QMP message: {line[:80]!r}") from exc
        if not isinstance(message, dict):
            raise BackendError(f"bad QMP message: {line[:80]!r}")
        return message

    async def execute(self, command: str) -> dict[str, Any]:
        await self.stream.send_all(json.dumps({"execute": command}).encode() + b"\n")
        while True:
            message = await self.message()
            if "error" in message:
                error = message["error"]
                desc = error.get("desc", error) if isinstance(error, dict) else error
                raise BackendError(f"QMP {command}: {desc}")
            if "return" in message:
                return message
            # An asynchronous event (STOP, RESET, ...): not our answer.


async def qmp_execute(path: str, command: str) -> str:
    """Run one QMP command on the QEMU whose QMP socket is ``path``; returns a summary.

    Raises:
        BackendError: the socket, the handshake or the command failed, or took too long.
    """
    import trio  # not at the top: the daemon's option parser imports this module

    with trio.move_on_after(QMP_TIMEOUT) as scope:
        try:
            stream = await trio.open_unix_socket(path)
        except OSError as exc:
            raise BackendError(f"QMP {path}: {exc.strerror or exc}") from exc
        async with stream:
            lines = _QmpLines(stream)
            try:
                greeting = await lines.message()
                if "QMP" not in greeting:
                    raise BackendError(f"QMP {path}: no greeting")
                await lines.execute("qmp_capabilities")
                try:
                    await lines.execute(command)
                except BackendError:
                    if command != "quit" or lines.buf:
                        raise
                    return "qmp quit (QEMU exited)"
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                if command == "quit":
                    return "qmp quit (QEMU exited)"
                raise BackendError(f"QMP {path}: {exc}") from exc
            return f"qmp {command}"
    assert scope.cancelled_caught
    raise BackendError(f"QMP {path}: no answer in {QMP_TIMEOUT:g} s")


async def run_hook(hook: str, request: WatchdogAction) -> str:
    """Run the hook command with the action in its environment; returns a summary.

    The environment adds ``XSD_DOMID``, ``XSD_WATCHDOG`` (the slot), ``XSD_ACTION`` and
    ``XSD_QMP`` (the domain's QMP socket, possibly empty).

    Raises:
        BackendError: the command could not run, exited non-zero, or took too long.
    """
    env = dict(
        os.environ,
        XSD_DOMID=str(request.domid),
        XSD_WATCHDOG=str(request.slot),
        XSD_ACTION=request.action,
        XSD_QMP=request.qmp,
    )
    try:
        argv = shlex.split(hook)
    except ValueError as exc:
        raise BackendError(f"hook {hook!r}: {exc}") from exc
    import trio

    with trio.move_on_after(HOOK_TIMEOUT):
        try:
            done = await trio.run_process(
                argv, env=env, check=False, capture_stdout=True, capture_stderr=True
            )
        except OSError as exc:
            raise BackendError(
                f"hook {argv[0] if argv else hook!r}: {exc.strerror or exc}"
            ) from exc
        if done.returncode != 0:
            err = done.stderr.decode(errors="replace").strip().splitlines()
            tail = f": {err[-1][:200]}" if err else ""
            raise BackendError(f"hook exited with status {done.returncode}{tail}")
        return f"hook {argv[0]}"
    raise BackendError(f"hook took more than {HOOK_TIMEOUT:g} s")


async def perform(request: WatchdogAction, hook: str | None) -> tuple[bool, str]:
    """Carry out a hard action; ``(ok, what was done or why it failed)``, never raises."""
    try:
        if request.qmp:
            return True, await qmp_execute(request.qmp, QMP_COMMANDS[request.action])
        if hook:
            return True, await run_hook(hook, request)
        raise BackendError(f"no backend for {request.action} (no watchdog/qmp, no hook)")
    except BackendError as exc:
        return False, str(exc)


async def perform_effect(server: Shell, request: WatchdogAction) -> None:
    """Perform an expiry's action and put its result in the store (a server task)."""
    ok, detail = await perform(request, server.config.watchdog_hook)
    if ok:
        log.warning(
            "watchdog: domain %d watchdog %d: %s done", request.domid, request.slot, request.action
        )
    else:
        log.error(
            "watchdog: domain %d watchdog %d: action %s failed: %s",
            request.domid,
            request.slot,
            request.action,
            detail,
        )
    engine = server.engine
    engine.now = time.monotonic_ns()
    watchdogs_of(engine).action_done(request.domid, request.seq, ok, detail)
    server.flush()


# ---------------------------------------------------------------------------- options


def _action(text: str) -> str:
    if canonical_action(text) is None:
        raise argparse.ArgumentTypeError(
            f"unknown action {text!r} (one of {', '.join(ACTIONS + tuple(ALIASES))})"
        )
    return text


def add_options(parser: argparse.ArgumentParser) -> None:
    """The daemon's watchdog options."""
    from xsd.server import kicker_specs

    group = parser.add_argument_group("watchdogs")
    group.add_argument(
        "--watchdogs-per-domain", type=int, metavar="N", help="watchdogs of each domain (default 2)"
    )
    group.add_argument(
        "--watchdog-action",
        type=_action,
        metavar="ACTION",
        help="action of a watchdog whose domain sets none: reset (default), shutdown, reboot, "
        "poweroff, pause, debug, none, inject-nmi, or an xl on_watchdog name",
    )
    group.add_argument("--watchdog-min-timeout", type=int, metavar="MS", help="default 10")
    group.add_argument("--watchdog-max-timeout", type=int, metavar="MS", help="default 86400000")
    group.add_argument(
        "--watchdog-hook",
        metavar="CMD",
        help="command for hard actions of domains without a QMP socket; gets XSD_DOMID, "
        "XSD_WATCHDOG, XSD_ACTION, XSD_QMP in its environment",
    )
    group.add_argument(
        "--watchdog-notify",
        type=kicker_specs.parse_notify,
        action="append",
        default=[],
        metavar="DOMID:N:PATH",
        help="an sd_notify datagram socket at PATH that feeds watchdog N of DOMID "
        "(WATCHDOG=1, WATCHDOG_USEC=, WATCHDOG=trigger); repeatable",
    )
    group.add_argument(
        "--watchdog-heartbeat",
        type=kicker_specs.parse_heartbeat,
        action="append",
        default=[],
        metavar="DOMID:N:LISTEN[,peer=ADDR][,pulse=MS]",
        help="a stream socket (HOST:PORT or unix:PATH) where any message kicks watchdog N "
        "of DOMID; with peer=, also send heartbeats to ADDR every pulse ms (default 1000); "
        "repeatable",
    )


def configure(server: Shell, args: argparse.Namespace) -> None:
    """Apply the watchdog options to a server and its (new or restored) state."""
    st = server.engine.state.watchdogs
    if args.watchdogs_per_domain is not None:
        st.per_domain = max(0, args.watchdogs_per_domain)
    if args.watchdog_action is not None:
        st.default_action = args.watchdog_action
    if args.watchdog_min_timeout is not None:
        st.min_timeout_ms = max(1, args.watchdog_min_timeout)
    if args.watchdog_max_timeout is not None:
        st.max_timeout_ms = max(st.min_timeout_ms, args.watchdog_max_timeout)
    st.default_timeout_ms = min(max(st.default_timeout_ms, st.min_timeout_ms), st.max_timeout_ms)
    server.config.watchdog_hook = args.watchdog_hook
    server.config.watchdog_kickers = [*args.watchdog_notify, *args.watchdog_heartbeat]
