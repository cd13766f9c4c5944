"""The options of ``xsd``: the parser, what they make of the core's settings, and the
places (run directory, socket) they name.

Imported only once a command line is to be parsed: a live update's new process answers
its ``-s`` first (``xsd.server.main``), so parsing is not part of the pause.
"""

from __future__ import annotations

import os
import sys

from xsd import __version__
from xsd.server.liveupdate import CHECK_OPTION, LIVE_UPDATE_OPTION

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    import argparse
    from pathlib import Path

    from xsd.core.quota import Quotas
    from xsd.core.state import Settings

    Options = tuple[argparse.Namespace, Settings, Quotas]
    """What :func:`parse` makes of a command line."""

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
        LIVE_UPDATE_OPTION,
        metavar="STATE",
        help="start from the state a live update handed over (fd:N for a memfd, "
        "lmdb:PATH for an LMDB file) and adopt its sockets; the daemon passes this to the "
        "new program itself",
    )
    parser.add_argument(
        CHECK_OPTION,
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
    from xsd.server import logfile, watchdog_actions  # options live with their feature
    from xsd.server.liveupdate import dryrun

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


def parse(argv: list[str]) -> Options | None:
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


def socket_path_of(args: argparse.Namespace, rundir: Path) -> Path:
    """Where the daemon listens: ``--socket``; else ``RUNDIR/socket`` for an explicit
    ``--rundir``; else ``$XENSTORED_PATH``; else ``RUNDIR/socket``."""
    from pathlib import Path

    if args.socket:
        return Path(args.socket)
    if args.rundir is None and os.environ.get("XENSTORED_PATH"):
        return Path(os.environ["XENSTORED_PATH"])
    return rundir / "socket"
