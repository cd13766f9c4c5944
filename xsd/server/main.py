"""The ``xsd`` command: parse options, find the socket, serve until told to stop."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

import xsd
from xsd.server.reexec import RECOUNT_VERDICT  # the dry run's stdout (light: os, sys)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)

_STARTED_NS = time.monotonic_ns()  # live update: when the new program reached our code

# The daemon's heavy imports (trio, the server) wait until they are needed, so that the
# live-update dry run (--check-state) starts fast.
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from xsd.core.engine import Engine
    from xsd.core.quota import Quotas
    from xsd.core.state import Settings
    from xsd.server.mux import Multiplexer
    from xsd.server.options import Options

DAEMON_PACKAGES = ("trio", "msgpack", "lmdb")
"""What the daemon needs beyond Python (the ``daemon`` extra); the client needs none."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``xsd`` console script: :func:`run`, or one line saying how to
    install what it needs if a package of the ``daemon`` extra is missing."""
    try:
        return run(argv)
    except ModuleNotFoundError as exc:
        if exc.name not in DAEMON_PACKAGES:
            raise
        print(
            f"xsd: the daemon needs the Python package {exc.name!r}, which is not "
            "installed: pip install 'xsd[daemon]'",
            file=sys.stderr,
        )
        return 1


def run(argv: list[str] | None = None) -> int:
    """Parse the options and serve (or check a handed-over state, or restore one)."""
    argv = sys.argv[1:] if argv is None else argv
    if "--check-state" in argv:
        # The dry run of a live update. The other options are those the new program
        # will run with: they are checked too, so that a command line it would refuse
        # fails here rather than after the exec.
        import argparse

        quick = argparse.ArgumentParser(prog="xsd", add_help=False)
        quick.add_argument("--check-state", metavar="STATE", required=True)
        known, rest = quick.parse_known_args(argv)
        from xsd.server.options import parse

        if parse(rest) is None:
            return 2
        return check_state(known.check_state)
    from xsd.server import proctitle

    proctitle.set_name()  # "xsd" in ps and pidof, on every start (a live update's too)
    spec = handed_over_state(argv)
    if spec is not None:
        # The new process of a live update: the state first, the options (which its
        # dry run checked already) once the -s has its answer, so that parsing them is
        # not part of the pause.
        restored = restore(spec, argv)
        if restored is None:
            return 1
        engine, extra, mux, parsed = restored
        if parsed is None:
            return 2
        return serve(*parsed, restored=(engine, extra, mux))
    from xsd.server.options import parse

    parsed = parse(argv)
    if parsed is None:
        return 2
    return serve(*parsed)


def handed_over_state(argv: list[str]) -> str | None:
    """The STATE of ``--live-update STATE`` (as a live update passes it, spelled in
    full), or None."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "--":
            break
        if arg == "--live-update":
            return argv[i + 1]
    return None


def check_state(spec: str) -> int:
    """``xsd --check-state SPEC``: load a handed-over state completely, serve nothing.

    The daemon's own modules are imported too, so that a new program that could load
    the state but not run fails here, before the exec, not after it. The usage the
    state carries is checked against a recount of its nodes (:data:`RECOUNT_VERDICT`).
    """
    import handover

    try:
        state, _ = handover.load(spec)
    except handover.StateError as exc:
        print(f"xsd: cannot load state: {exc}", file=sys.stderr)
        return 1
    try:
        _import_server()
    except Exception as exc:
        print(f"xsd: cannot import the daemon: {exc!r}", file=sys.stderr)
        return 1
    from xsd.server import reexec

    print(reexec.report(), flush=True)  # how the update may exec us (stdout)
    tree = state.tree
    if _owning(tree.count_usage()) != _owning(tree.usage):
        print(
            "xsd: the state's usage differs from a recount of its nodes: "
            "the new process will recount it",
            file=sys.stderr,
        )
        print(RECOUNT_VERDICT, flush=True)
    print(
        f"xsd: state loads: {len(state.tree.nodes)} nodes, {len(state.connections)} connections",
        file=sys.stderr,
    )
    return 0


def _owning(usage: dict[int, list[int]]) -> dict[int, list[int]]:
    """Usage without the owners of nothing (a tree may keep them at ``[0, 0]``)."""
    return {owner: entry for owner, entry in usage.items() if entry != [0, 0]}


def _import_server() -> None:
    """Import what serving needs beyond the core (trio and the server's modules)."""
    import trio  # noqa: F401

    import xsd.server.daemon
    import xsd.server.sdnotify  # noqa: F401


def restore(
    spec: str, argv: list[str] | None
) -> tuple[Engine, dict[str, Any], Multiplexer, Options | None] | None:
    """Load a handed-over state and serve it at once (``xsd.server.early``), answering the
    ``-s`` that started us, while a thread imports the rest of the daemon and parses
    ``argv`` (if given); returns when the server can take over, with the options (None if
    they are wrong, the reason printed, or not asked for), or None (the reason printed)
    if the state cannot load.
    """
    # The modules and the state about to be built live as long as the daemon: the
    # cyclic collector waits until handover.load has frozen them (gc.freeze).
    collecting = gc.isenabled()
    gc.disable()
    try:
        import handover
        from xsd.core.engine import Engine
        from xsd.server import guardian, reexec
        from xsd.server.early import EarlyService

        reexec.restore_environment()  # before anything we run could inherit ours
        guard = guardian.take()  # the old daemon's copy, until we say we serve
        guardian.test_point("exec")
        timeline = handover.timeline
        timeline.take_exec_mark()
        if guard is not None:
            timeline.mark("forked", guard[2])  # the guardian's fork, after the exec mark
        timeline.mark("python", xsd.STARTED_NS)
        timeline.mark("main", _STARTED_NS)
        timeline.mark("imports")
        try:
            state, extra = handover.load(spec)
        except handover.StateError as exc:
            print(f"xsd: live update: cannot load the state: {exc}", file=sys.stderr)
            return None
    finally:
        if collecting:
            gc.enable()
    guardian.test_point("loaded")
    engine = Engine(state)
    timeline.restore(extra.get("timeline"))
    timeline.mark("loaded")
    early = EarlyService(engine)
    conns = {int(k): v for k, v in extra.pop("conns", {}).items()}  # now the service's
    parsed: list[Options | None] = []

    def prepare() -> None:
        guardian.reap(guard)
        _import_server()
        if argv is not None:
            from xsd.server.options import parse

            parsed.append(parse(argv))

    importer = threading.Thread(target=prepare, name="xsd-import", daemon=True)
    reply = extra.get("live_update_reply")
    # Its OK first: the others can wait the few ms of their adoption.
    first = {reply: conns.pop(reply)} if reply in conns else {}
    early.adopt(first)
    guardian.test_point("adopted")
    guardian.release(guard)  # no socket read or written yet: from here on, ours alone
    for conn_id in first:
        if early.answer(conn_id):
            timeline.mark("OK")
    early.adopt(conns)
    early.start()
    importer.start()
    early.serve_while(importer.is_alive)
    importer.join()
    timeline.mark("server imported")
    return engine, extra, early.mux, parsed[0] if parsed else None


def serve(
    args: argparse.Namespace,
    settings: Settings,
    quotas: Quotas,
    restored: tuple[Engine, dict[str, Any], Multiplexer] | None = None,
) -> int:
    """Run the daemon as the options say: fresh, or ``restored`` by a live update (whose
    state keeps its own settings and quotas, run-time changes included)."""
    import logging  # not before: a live update's restore does without them

    from xsd.server.options import SYSTEM_RUNDIR, default_rundir, prepare_rundir, socket_path_of

    log = logging.getLogger("xsd")
    level = logging.WARNING - 10 * min(args.verbose + 1, 2)
    logging.basicConfig(level=level, format="xsd: %(message)s", stream=sys.stderr)
    rundir = args.rundir or default_rundir()
    private = (
        args.rundir is None
        and not os.environ.get("XENSTORED_RUNDIR")
        and (str(rundir) != SYSTEM_RUNDIR)
    )
    if args.live_update and restored is None:
        # --live-update spelled so that main() did not see it (an abbreviation).
        restored_now = restore(args.live_update, None)
        if restored_now is None:
            return 1
        restored = restored_now[:3]

    from xsd.core.engine import Engine
    from xsd.core.state import State
    from xsd.server import fdstore, logfile, sdnotify, watchdog_actions
    from xsd.server.daemon import Server, ServerConfig
    from xsd.server.unix_sockets import BindError, lock_socket

    if restored is None:
        sdnotify.status("Starting")
        prepare_rundir(rundir, private)
        engine, extra, mux = Engine(State(settings=settings, quotas=quotas)), None, None
    else:
        engine, extra, mux = restored
    socket_path = socket_path_of(args, rundir)
    lock_fd = None
    if restored is None:  # the socket first: a second daemon reads no state to be refused
        try:
            lock_fd = lock_socket(socket_path)
        except BlockingIOError:
            print(f"xsd: another daemon serves {socket_path}; not starting", file=sys.stderr)
            return 1
        except OSError as exc:
            print(
                f"xsd: cannot use {socket_path}: {exc.strerror} ({exc.filename}); "
                "choose another place with --socket or --rundir",
                file=sys.stderr,
            )
            return 1
    durable = None
    if args.state_dir is not None:  # durable mode: the state from (and to) DIR
        from xsd.server.durable import DurableError, open_state

        try:
            durable = open_state(args, engine.state, engine if restored else None)
        except DurableError as exc:
            print(f"xsd: {exc}", file=sys.stderr)
            return 1
        engine = durable.engine
    config = ServerConfig(
        socket_path=socket_path,
        rundir=rundir,
        socket_mode=args.socket_mode,
        domain_socket_mode=args.domain_socket_mode,
    )
    server = Server(config, engine, mux=mux)
    server.live_update.dry_run_timeout = args.dry_run_timeout
    server.live_update.pid_file = args.pid_file
    if durable is not None:
        server.durable = durable
        server.mux.before_write = durable.commit
    watchdog_actions.configure(server, args)
    logfile.configure(server.logfile, args)  # logging
    if extra is not None:
        server.adopt_handover(extra)
        if "exec" in extra:  # the old process's last step, logged once it happened
            log.info("live-update: exec %s", extra["exec"])
        log.info("live update: state restored, %d nodes", len(server.engine.state.tree.nodes))
    else:
        server.lock_fd = lock_fd
        server.kept_sockets = fdstore.inherited()  # systemd kept the sockets: serve on them
    if args.pid_file:  # once the socket is ours: never another daemon's pid file
        try:
            args.pid_file.write_text(f"{os.getpid()}\n")
        except OSError as exc:
            print(
                f"xsd: cannot write the pid file {args.pid_file}: {exc.strerror}; "
                "choose another with --pid-file",
                file=sys.stderr,
            )
            return 1
    if durable is not None:
        # The domains it restored listen again.
        durable.open_domain_sockets(server.listeners, server.open_domain_socket)
    unbound: list[str] = []
    try:
        try:
            server.run()
        except* BindError as group:  # a socket the daemon cannot set up: say which
            unbound.extend(str(exc) for exc in _leaves(group))
    except KeyboardInterrupt:
        pass
    finally:
        _forget_pid_file(args)
        if durable is not None:
            durable.close()
    if unbound:
        for reason in unbound:
            print(f"xsd: {reason}; not starting", file=sys.stderr)
        return 1
    log.info("stopped")
    return 0


def _forget_pid_file(args: argparse.Namespace) -> None:
    if args.pid_file:
        try:
            if args.pid_file.read_text().strip() == str(os.getpid()):
                args.pid_file.unlink()
        except OSError:
            pass


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions in ``group`` and in the groups inside it (nurseries nest)."""
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves
