"""The ``xsd`` command: parse options, find the socket, serve until told to stop."""

from __future__ import annotations

import os
import sys
import time

from xsd.server.liveupdate import CHECK_OPTION  # light: the option names alone

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)

_STARTED_NS = time.monotonic_ns()  # live update: when the new program reached our code

# The daemon's heavy imports (trio, the server) wait until they are needed, so that the
# live-update dry run (CHECK_OPTION) starts fast.
if TYPE_CHECKING:
    import argparse

    from handover.shell_record import ShellRecord
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
    if CHECK_OPTION in argv:
        # The dry run of a live update (xsd.server.liveupdate.check). The other options
        # are those the new program will run with: they are checked too, so that a
        # command line it would refuse fails here rather than after the exec.
        from xsd.server.liveupdate import check
        from xsd.server.options import parse

        to_check, rest = check.split(argv)
        if parse(rest) is None:
            return 2
        return check.check_state(to_check, _import_server)
    from xsd.server import proctitle
    from xsd.server.liveupdate.restore import handed_over_state

    proctitle.set_name()  # "xsd" in ps and pidof, on every start (a live update's too)
    spec = handed_over_state(argv)
    if spec is not None:
        # The new process of a live update: the state first, the options (which its
        # dry run checked already) once the -s has its answer, so that parsing them is
        # not part of the pause.
        from xsd.server.liveupdate.restore import restore

        def prepare() -> Options | None:  # off the pause, while the -s has its OK
            from xsd.server.options import parse

            _import_server()
            return parse(argv)

        restored = restore(spec, _STARTED_NS, prepare)
        if restored is None:
            return 1
        engine, record, mux, options = restored
        if options is None:
            return 2
        return serve(*options, restored=(engine, record, mux))
    from xsd.server.options import parse

    parsed = parse(argv)
    if parsed is None:
        return 2
    return serve(*parsed)


def _import_server() -> None:
    """Import what serving needs beyond the core (trio and the server's modules): by a
    live update's dry run (to fail before the exec), and by its restore (meanwhile)."""
    import trio  # noqa: F401

    import xsd.server.daemon
    import xsd.server.sdnotify  # noqa: F401


def serve(
    args: argparse.Namespace,
    settings: Settings,
    quotas: Quotas,
    restored: tuple[Engine, ShellRecord, Multiplexer] | None = None,
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
        from xsd.server.liveupdate.restore import restore

        restored_now = restore(args.live_update, _STARTED_NS, _import_server)
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
        engine, record, mux = Engine(State(settings=settings, quotas=quotas)), None, None
    else:
        engine, record, mux = restored
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
    server.live_update.configure(args)
    if durable is not None:
        server.durable = durable
        server.mux.before_write = durable.commit
    watchdog_actions.configure(server, args)
    logfile.configure(server.logfile, args)  # logging
    if record is not None:
        server.adopt_handover(record)
        if record.exec is not None:  # the old process's last step, logged once it happened
            log.info("live-update: exec %s", record.exec)
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
