"""``xsc``: the xenstore-utils commands, one subcommand each, plus ``control``.

``xsc read|write|ls|list|exists|rm|chmod|watch ARGS`` behaves as Xen's
``xenstore-<mode> ARGS`` (``tools/xenstore/xenstore_client.c``) and ``xsc control ARGS``
as ``xenstore-control ARGS``. Invariants, each checked against Debian's xenstore-utils
4.17 by ``tests/client/test_cli.py``:

* stdout and the exit status are the same byte for byte: the same escaping (Xen's
  ``sanitise_value``/``unsanitise_value``), the same ``ls`` layout and width rules,
  the same GNU ``getopt_long`` option handling (permuted operands, abbreviated long
  options, unknown options warned about and ignored, ``-s`` accepted and ignored);
* a command with several keys runs in one transaction exactly when Xen's does (``read``
  with more than one key, ``write`` with more than one pair, ``rm``, ``chmod``,
  ``exists``, ``list`` always; ``ls`` and ``watch`` never), and a transaction ending in
  EAGAIN is run again from scratch with its output thrown away;
* messages go to stderr prefixed ``xsc <mode>:``, so stderr differs only by that name.

Deliberate differences: ``-h``/``--help`` prints a help text to stdout and exits 0 (Xen
prints the usage line to stderr and exits 1); ``watch -d N`` (newer Xen) is accepted.
If the program is called through a link named ``xenstore-<mode>``, the mode comes from
the name as in Xen.

This module parses the command line and dispatches; the parts: ``escaping`` (Xen's
escaping of values), ``cli_getopt`` (glibc's option parsing), ``cli_utils`` (the
xenstore-utils commands), ``cli_common`` (messages, exit, atoi), ``cli_liveupdate`` and
``cli_watchdog`` (their subcommands, imported when used).

Start-up cost matters (a shell loop may run thousands of these): a one-shot command
imports only the thread-free :class:`~xsd_client.oneshot.OneShotClient` and what it
needs (``tests/client/test_cli_oneshot_imports.py`` pins the list); ``watch`` and
``live-update`` import the threaded client when they run; never trio.
"""

from __future__ import annotations

import sys

from . import cli_common
from .cli_common import HELP_FLAG, Exit, connect, connect_threaded, fs, warn
from .cli_getopt import getopt
from .cli_utils import Command
from .errors import EAGAIN, XenstoreError
from .escaping import sanitise, unsanitise

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms
    from collections.abc import Callable, Sequence

    from .operations import Operations

__all__ = ["main", "sanitise", "unsanitise"]


# xenstore_client.c: long options, the flag each needs and the modes that accept it.
_LONG = {
    "help": ("h", False),
    "flat": ("f", False),
    "prefix": ("p", False),
    "tidy": ("t", False),
    "upto": ("u", False),
    "recurse": ("r", False),
    "number": ("n", True),
    "raw": ("R", False),
    "depth": ("d", True),
}
_SHORT = {"h": False, "f": False, "s": False, "p": False, "t": False, "u": False,
          "r": False, "n": True, "R": False, "d": True}  # fmt: skip
_FLAG_MODES = {
    "f": {"ls"},
    "p": {"read", "list", "ls"},
    "t": {"rm"},
    "u": {"chmod"},
    "r": {"chmod"},
    "n": {"watch"},
    "d": {"watch"},
    "R": {"read", "write"},
}
_USAGE = {
    "read": "[-h] [-p] [-s] [-R] key [...]",
    "write": "[-h] [-s] [-R] key value [...]",
    "rm": "[-h] [-s] [-t] key [...]",
    "exists": "[-h] [-p] [-s] key [...]",
    "list": "[-h] [-p] [-s] key [...]",
    "ls": "[-h] [-f] [-p] [-s] [path]",
    "chmod": "[-h] [-u] [-r] [-s] key <mode [modes...]>",
    "watch": "[-h] [-n NR] [-d DEPTH] key",
}
_HELP = {
    "read": (
        "Print the value of each key (escaped: \\t \\n \\r \\\\ \\ooo \\xNN).",
        "-p, --prefix  print 'key: value'\n"
        "  -R, --raw     print the raw bytes, no escaping, no newline",
    ),
    "write": (
        "Set each key to its value; several pairs are written in one transaction.\n"
        "Values are unescaped (\\t \\n \\r \\\\ \\ooo \\xNN) unless -R is given.",
        "-R, --raw     store each value as given",
    ),
    "rm": (
        "Remove each key and everything below it.",
        "-t, --tidy    also remove parents left empty with an empty value, upwards",
    ),
    "exists": ("Exit 0 if every key exists, 1 otherwise; print nothing.", ""),
    "list": (
        "Print the names of the children of each key, one per line.",
        "-p, --prefix  print each child's full path",
    ),
    "ls": (
        "Print the tree below path (default /) with values, indented by depth.",
        "-f, --flat    print full paths, no width limit\n"
        "  -p, --prefix  print the permissions of each node",
    ),
    "chmod": (
        "Set the permissions of key: modes are n, r, w or b followed by a domid;\n"
        "the first one names the owner and the default for other domains.",
        "-u, --upto    apply to every parent too\n  -r, --recurse apply to every child too",
    ),
    "watch": (
        "Watch each key and print the path of every event (the first fires at once).",
        "-n, --number NR   stop after NR events\n"
        "  -d, --depth N     watch only N levels below key (needs Xen 4.22's protocol)",
    ),
}
_MODES = (*_USAGE, "control")

# ---------------------------------------------------------------------------------------
# Output and messages


def _usage(mode: str) -> Exit:
    prog = cli_common.PROG
    # errx() puts the program name first, hence "xsc read: Usage: xsc read ...".
    if mode in _USAGE:
        sys.stderr.write(f"{prog} {mode}: Usage: {prog} {mode} {_USAGE[mode]}\n")
    elif mode == "control":
        sys.stderr.write(f"Usage:\n{prog} control <command> [<arg>...]\n")
        return Exit(2)
    else:
        sys.stderr.write(f"{prog}: Usage: {prog} <mode> [-h] [...]\n")
    return Exit(1)


def _print_help(mode: str) -> None:
    prog = cli_common.PROG
    if mode == "control":
        text = (
            f"usage: {prog} control <command> [<arg>...]\n\n"
            "Send an XS_CONTROL command to the daemon and print its reply, as\n"
            "xenstore-control does; 'help' lists the daemon's commands.\n"
            "  live-update [-c CMDLINE] [-F] [-t SECS] [--state memfd|lmdb:PATH] FILE\n"
            "                                     replace the daemon in place (also\n"
            "                                     `xsc live-update ...`); --state picks\n"
            "                                     how xsd hands its state over\n\n"
            "Exit status: 0 done, 1 daemon unreachable, 2 usage, 3 command failed.\n"
        )
    elif mode in _HELP:
        what, options = _HELP[mode]
        text = f"usage: {prog} {mode} {_USAGE[mode]}\n\n{what}\n\noptions:\n"
        text += "  -h, --help    show this help\n"
        if options:
            text += f"  {options}\n"
        text += "  -s            ignored (accepted for compatibility)\n"
    else:
        text = (
            f"usage: {prog} <mode> [options] [args...]\n\n"
            "Xenstore command line, compatible with xenstore-utils.\n\nmodes:\n"
            "  read      print values            write   set values\n"
            "  ls        print a tree            list    print child names\n"
            "  exists    test for keys           rm      remove keys\n"
            "  chmod     set permissions         watch   print watch events\n"
            "  control   XS_CONTROL commands (xenstore-control)\n"
            "  live-update  replace the daemon in place (xenstore-control live-update)\n"
            "  watchdog  list, arm, kick and configure the per-domain watchdogs\n\n"
            f"'{prog} <mode> --help' describes each; '{prog} --version' prints the version.\n"
            "The daemon socket is $XENSTORED_PATH, else $XENSTORED_RUNDIR/socket, else\n"
            "/var/run/xenstored/socket.\n"
        )
    sys.stdout.write(text)


def _version() -> str:
    """The installed distribution's version (importlib.metadata: only for --version)."""
    from importlib import metadata

    try:
        return metadata.version("xsd")
    except metadata.PackageNotFoundError:
        return "(not installed)"


_TRANSACTIONAL = {"rm", "chmod", "exists", "list"}


def _run(mode: str, args: Sequence[str]) -> int:
    opts, operands = getopt(mode, args, _LONG, _SHORT)
    flags: dict[str, str] = {}
    for flag, value in opts:
        if flag == "h":
            _print_help(mode)
            return 0
        if flag == "s":
            continue
        if mode not in _FLAG_MODES[flag]:
            raise _usage(mode)
        flags[flag] = value
    if mode == "write" and len(operands) % 2 == 1:
        raise _usage(mode)
    if mode != "ls" and not operands:
        raise _usage(mode)

    if mode == "read":
        transactional = len(operands) > 1
    elif mode == "write":
        transactional = len(operands) > 2
    else:
        transactional = mode in _TRANSACTIONAL
    command = Command(mode, flags, operands)
    perform: Callable[[Operations], int] = getattr(command, f"do_{mode}")

    # watch alone needs the threaded client (its reader delivers the events)
    client = connect_threaded(mode) if mode == "watch" else connect(mode)
    try:
        while True:
            command.out.clear()
            if not transactional:
                status = perform(client)
                break
            try:
                tx = client.transaction()
            except XenstoreError:
                command.warn("couldn't start transaction")
                raise Exit(1) from None
            status = perform(tx)
            try:
                if status == 0:
                    tx.commit()
                else:
                    tx.abort()
            except EAGAIN:
                if status == 0:
                    continue
                command.warn("couldn't end transaction")
                raise Exit(1) from None
            except XenstoreError:
                command.warn("couldn't end transaction")
                raise Exit(1) from None
            break
    finally:
        if command.out:
            sys.stdout.buffer.write(command.out)
        client.close()
    return status


def _control(args: Sequence[str]) -> int:
    if not args:
        raise _usage("control")
    if args[0] in HELP_FLAG:
        _print_help("control")
        return 0
    if args[0] == "live-update" and any(arg in HELP_FLAG for arg in args[1:]):
        from . import cli_liveupdate

        sys.stdout.write(cli_liveupdate.HELP)
        return 0
    if args[0] == "live-update":
        return _live_update(args[1:])
    client = connect("control")
    try:
        try:
            reply = client.control(args[0], *args[1:])
        except XenstoreError as e:
            if e.errno_name == "EINVAL":
                try:
                    commands = client.control("help")
                except XenstoreError:
                    sys.stderr.write("Error when executing command.\n")
                else:
                    sys.stderr.write(f"Command not supported. Valid commands are:\n{commands}\n")
            else:
                code = e.errno if isinstance(e.errno, int) else 5  # EIO
                sys.stderr.write(f"Error {code} when trying to execute command.\n")
            return 3
        if reply:
            sys.stdout.buffer.write(fs(reply) + b"\n")
        return 0
    finally:
        client.close()


def _live_update(args: Sequence[str]) -> int:
    from . import cli_liveupdate

    client = connect_threaded("control")
    try:
        return cli_liveupdate.run(client, args)
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xsc``; returns the exit status (the console script exits with it)."""
    args = list(sys.argv if argv is None else argv)
    name = args[0].rpartition("/")[2] if args else cli_common.PROG  # os.path.basename
    if name.startswith("xenstore-"):
        mode, rest = name[len("xenstore-") :], args[1:]
        cli_common.PROG = "xenstore"
    elif len(args) < 2:
        _usage("")
        return 1
    else:
        mode, rest = args[1], args[2:]
    if argv is None:
        # A real command line: die quietly on a closed pipe or ^C, as a C tool does.
        # _signal: the signal module wraps it in enums, ~4 ms of imports.
        from _signal import SIG_DFL, SIGINT, SIGPIPE, signal  # type: ignore[import-not-found]

        signal(SIGPIPE, SIG_DFL)
        signal(SIGINT, SIG_DFL)
    try:
        if mode in HELP_FLAG:
            _print_help("")
            return 0
        if mode == "control":
            return _control(rest)
        if mode == "--version":
            sys.stdout.write(f"{cli_common.PROG} {_version()}\n")
            return 0
        if mode == "live-update":  # also `xsc control live-update ...`, as xenstore-control
            if any(arg in HELP_FLAG for arg in rest):
                from . import cli_liveupdate

                sys.stdout.write(cli_liveupdate.HELP)
                return 0
            return _live_update(rest)
        if mode == "watchdog":  # the watchdog commands (issue 5) live in cli_watchdog
            from .cli_watchdog import main as watchdog_main

            return watchdog_main(rest)
        if mode not in _MODES:
            warn("", f"unknown mode {mode}\n")
            return 1
        return _run(mode, rest)
    except Exit as e:
        return e.code
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            pass


if __name__ == "__main__":
    sys.exit(main())
