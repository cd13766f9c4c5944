"""The ``xsd`` command: parse options, find the socket, serve until told to stop."""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

import xsd
from xsd import __version__
from xsd.server.reexec import RECOUNT_VERDICT  # the dry run's stdout (light: os, sys)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)

_STARTED_NS = time.monotonic_ns()  # live update: when the new program reached our code

# The daemon's heavy imports (trio, the server) wait until they are needed, so that the
# live-update dry run (--check-state) starts fast.
if TYPE_CHECKING:
    import argparse
    from pathlib import Path
    from typing import Any

    from xsd.core.engine import Engine
    from xsd.core.quota import Quotas
    from xsd.core.state import Settings
    from xsd.server.mux import Multiplexer

    Options = tuple[argparse.Namespace, Settings, Quotas]
    """What :func:`options` makes of a command line."""

SYSTEM_RUNDIR = "/var/run/xenstored"


def default_rundir() -> Path:
    """``$XENSTORED_RUNDIR``, else Xen's ``/var/run/xenstored`` for root, else a private one."""
    from pathlib import Path  # not at import: a live update's restore does without it

    env = os.environ.get("XENSTORED_RUNDIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path(SYSTEM_RUNDIR)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return Path(runtime) / "xsd" if runtime else Path(f"/tmp/xsd-{os.geteuid()}")


def build_parser() -> argparse.ArgumentParser:
    """The command-line options of ``xsd``."""
    from pathlib import Path

    from xsd.server import option_types as types

    parser = types.OneLineErrorParser(
        prog="xsd",
        description="A Xenstore-compatible state store daemon. Runs in the foreground and "
        "serves Xen's xenstore protocol on a Unix socket; stop it with SIGTERM or SIGINT.",
    )
    parser.add_argument(
        "--rundir",
        type=Path,
        help="run directory: holds the socket and per-domain sockets; created with mode "
        "0755 if missing; given, it wins over $XENSTORED_PATH (default: "
        "$XENSTORED_RUNDIR, else /var/run/xenstored as root, else $XDG_RUNTIME_DIR/xsd "
        "or /tmp/xsd-UID, created with mode 0700)",
    )
    parser.add_argument(
        "--socket",
        type=Path,
        help="path of the listening socket; the first of: this option, RUNDIR/socket if "
        "--rundir is given, $XENSTORED_PATH, RUNDIR/socket",
    )
    parser.add_argument(
        "--socket-mode",
        type=types.octal_mode,
        default=0o600,
        help="file mode of the listening socket, octal (default: 0600, as C xenstored)",
    )
    parser.add_argument(
        "--domain-socket-mode",
        type=types.octal_mode,
        default=0o600,
        help="file mode of each per-domain socket RUNDIR/domains/DOMID/socket (default: 0600)",
    )
    parser.add_argument("-F", "--pid-file", type=Path, help="write the daemon's pid to this file")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (repeat for debug output)"
    )
    parser.add_argument(
        "--live-update",
        metavar="STATE",
        help="start from the state a live update handed over (fd:N for a memfd, "
        "lmdb:PATH for an LMDB file) and adopt its sockets; the daemon passes this to the "
        "new program itself",
    )
    parser.add_argument(
        "--check-state",
        metavar="STATE",
        help="load a handed-over state completely, print what it holds and exit: 0 if it "
        "loads, 1 if not (the dry run before a live update)",
    )
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        help="read options from this TOML file first (keys are the long option names; "
        "tables [quota] and [quota-soft]); command-line options override it",
    )
    parser.add_argument(
        "--quota",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hard quota for unprivileged domains, as `xenstore-control quota` names "
        "them (nodes, watches, transactions, outstanding, transaction-nodes, memory, "
        "node-size, path-max, permissions); 0 disables it; repeat for several",
    )
    parser.add_argument(
        "--quota-soft",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a soft quota (memory): crossing it is logged, not refused",
    )
    parser.add_argument(
        "--quota-privileged",
        action="store_true",
        help="apply quotas to privileged connections too (C xenstored exempts them)",
    )
    parser.add_argument(
        "--event-timeout",
        type=types.non_negative_float,
        default=20.0,
        metavar="SECS",
        help="drop watch events an unprivileged domain has not started to read after this "
        "long (default: 20, as C xenstored; 0: never)",
    )
    parser.add_argument(
        "--request-timeout",
        type=types.non_negative_float,
        default=60.0,
        metavar="SECS",
        help="close a connection that leaves a request half-sent this long (default: 60; 0: never)",
    )
    parser.add_argument(
        "--write-rate",
        type=types.non_negative_float,
        default=200.0,
        metavar="N",
        help="writes per second an unprivileged domain may make; beyond it the domain "
        "waits its turn (C xenstored's write rate limit; default: 200; 0: no limit)",
    )
    parser.add_argument(
        "--write-burst",
        type=types.positive_float,
        default=10.0,
        metavar="N",
        help="writes an unprivileged domain may make at once before the rate applies (default: 10)",
    )
    parser.add_argument(
        "--path-max",
        type=types.positive_int,
        default=2048,
        metavar="N",
        help="longest path below /local/domain/N/ (or whole path elsewhere) for privileged "
        "clients, as C 4.17 checks it (default: 2048; unprivileged domains use their quota)",
    )
    parser.add_argument("--version", action="version", version=f"xsd {__version__}")
    from xsd.server import dryrun, logfile, watchdog_actions  # options live with their feature

    dryrun.add_options(parser)
    watchdog_actions.add_options(parser)
    logfile.add_options(parser)
    from xsd.server import durable  # durable mode: --state-dir

    durable.add_options(parser)
    types.tighten(parser, types.FEATURE_LIMITS)
    return parser


def prepare_rundir(rundir: Path, private: bool = False) -> None:
    """Create the run directory if needed (mode 0755, or 0700 if ``private``: the default
    one of a user), refusing one another user could tamper with.

    Raises:
        SystemExit: the directory cannot be made or used (one line: what, and what to do).
    """
    try:
        if not rundir.is_dir():
            rundir.mkdir(parents=True, mode=0o700)
            rundir.chmod(0o700 if private else 0o755)  # not what the umask leaves
        info = rundir.stat()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileExistsError):
            reason = "it exists and is not a directory"
        raise SystemExit(
            f"xsd: cannot use {rundir} as the run directory: {reason}; choose another with --rundir"
        ) from None
    if info.st_uid != os.geteuid():
        raise SystemExit(f"xsd: {rundir} belongs to uid {info.st_uid}, not to us")
    if info.st_mode & 0o022:
        raise SystemExit(
            f"xsd: {rundir} is writable by others (mode {info.st_mode & 0o777:o}); "
            "chmod go-w it or choose another with --rundir"
        )


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
        if options(rest) is None:
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
    parsed = options(argv)
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


def options(argv: list[str]) -> Options | None:
    """The options (a ``--config`` file's first), and the settings and quotas they make;
    None, with the reason printed, if they are wrong (argparse itself exits with 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is not None:
        from xsd.server.config import ConfigError, apply_file

        try:
            apply_file(parser, args.config)
        except ConfigError as exc:
            print(f"xsd: {exc}", file=sys.stderr)
            return None
        args = parser.parse_args(argv)
    if (
        args.watchdog_min_timeout is not None
        and args.watchdog_max_timeout is not None
        and args.watchdog_min_timeout > args.watchdog_max_timeout
    ):
        print("xsd: --watchdog-min-timeout is above --watchdog-max-timeout", file=sys.stderr)
        return None
    try:
        settings, quotas = initial_settings(args)
    except ValueError as exc:
        print(f"xsd: {exc}", file=sys.stderr)
        return None
    return args, settings, quotas


def initial_settings(args: argparse.Namespace) -> tuple[Settings, Quotas]:
    """The core's settings and quotas for a fresh start, from the options.

    Raises:
        ValueError: a quota option names no quota or has no number.
    """
    from xsd.core.quota import Quotas
    from xsd.core.state import Settings

    settings = Settings(
        path_max=args.path_max,
        quota_privileged=args.quota_privileged,
        event_timeout_ns=int(args.event_timeout * 1e9),
        request_timeout_ns=int(args.request_timeout * 1e9),
        write_rate=args.write_rate,
        write_burst=args.write_burst,
    )
    from xsd.server import logfile  # logging: -T, --log-classes, --instance-name

    logfile.apply_options(settings, args)
    quotas = Quotas()
    for values, specs in ((quotas.hard, args.quota), (quotas.soft, args.quota_soft)):
        for spec in specs:
            name, sep, number = spec.partition("=")
            name = {"node-permissions": "permissions"}.get(name, name)
            if not sep or name not in values or not number.strip().isdigit():
                raise ValueError(
                    f"bad quota {spec!r}: use NAME=NUMBER with one of {', '.join(values)}"
                )
            values[name] = int(number)
    return settings, quotas


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
            parsed.append(options(argv))

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
    from xsd.server import logfile, sdnotify, watchdog_actions
    from xsd.server.daemon import Server, ServerConfig
    from xsd.server.unix_sockets import BindError

    if restored is None:
        sdnotify.status("Starting")
        prepare_rundir(rundir, private)
        engine, extra, mux = Engine(State(settings=settings, quotas=quotas)), None, None
    else:
        engine, extra, mux = restored
    durable = None
    if args.state_dir is not None:  # durable mode: the state from (and to) DIR
        from xsd.server.durable import DurableError, open_state

        try:
            durable = open_state(args, engine.state, engine if restored else None)
        except DurableError as exc:
            print(f"xsd: {exc}", file=sys.stderr)
            return 1
        engine = durable.engine
    socket_path = socket_path_of(args, rundir)
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
        try:
            server.lock()
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


def socket_path_of(args: argparse.Namespace, rundir: Path) -> Path:
    """Where the daemon listens: ``--socket``; else ``RUNDIR/socket`` for an explicit
    ``--rundir``; else ``$XENSTORED_PATH``; else ``RUNDIR/socket``."""
    from pathlib import Path

    if args.socket:
        return Path(args.socket)
    if args.rundir is None and os.environ.get("XENSTORED_PATH"):
        return Path(os.environ["XENSTORED_PATH"])
    return rundir / "socket"


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
