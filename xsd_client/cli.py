"""``xsc``: the xenstore-utils commands, one subcommand each, plus ``control``.

``xsc read|write|ls|list|exists|rm|chmod|watch ARGS`` behaves as Xen's
``xenstore-<mode> ARGS`` (``tools/xenstore/xenstore_client.c``) and ``xsc control ARGS``
as ``xenstore-control ARGS``. Invariants, each checked against Debian's xenstore-utils
4.17 by ``tests/client/test_client_cli.py``:

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

Start-up cost matters (a shell loop may run thousands of these): this module imports
only the blocking client and the standard library modules it already needs; never trio.
"""

from __future__ import annotations

import os
import sys

from .client import Client, Transaction, WatchEvent
from .errors import EAGAIN, ENOENT, XenstoreError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms
    from collections.abc import Callable, Sequence

__all__ = ["main", "sanitise", "unsanitise"]

PROG = "xsc"

_HELP_FLAG = ("-h", "--help")

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

_STRING_MAX = 3072 + 1024  # XENSTORE_ABS_PATH_MAX + 1024: longer ls paths read as missing
_MAX_PATH_LEN = 256  # chmod -r builds child paths in a buffer of this size
_TAG_LEN = len(' = "..."')
_INT_MAX = 2**31 - 1


class _Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


# ---------------------------------------------------------------------------------------
# Escaping, as xs_lib.c does it.

_SANITISE = [
    bytes([c]) if 0x20 <= c <= 0x7E and c != 0x5C else b"\\%03o" % c if c < 8 else b"\\x%02x" % c
    for c in range(256)
]
_SANITISE[0x09], _SANITISE[0x0A], _SANITISE[0x0D] = b"\\t", b"\\n", b"\\r"
_SANITISE[0x5C] = b"\\\\"
_SAFE = bytes(c for c in range(0x20, 0x7F) if c != 0x5C)


def sanitise(value: bytes) -> bytes:
    """Escape a value for printing: printable ASCII but ``\\`` as is, ``\\t \\n \\r \\\\``,
    bytes below 8 as ``\\ooo``, every other byte as ``\\xNN``."""
    if not value.translate(None, _SAFE):
        return value
    table = _SANITISE
    return b"".join([table[c] for c in value])


_SPACE = b" \t\n\v\f\r"
_HEX = b"0123456789abcdefABCDEF"
_OCT = b"01234567"
_SIMPLE = {ord("t"): 9, ord("n"): 10, ord("r"): 13, ord("\\"): 92}


def _scan_hex2(s: bytes, i: int) -> tuple[int, int] | None:
    """glibc ``sscanf(s + i, "%2x")``: (value, index after) or None on no match."""
    while i < len(s) and s[i] in _SPACE:
        i += 1
    width, neg, digits, value = 2, False, 0, 0
    if i < len(s) and s[i] in b"+-":
        neg, i, width = s[i] == 0x2D, i + 1, width - 1
    if width and s[i : i + 1] == b"0":
        # A "0x" prefix is eaten (and uses the width) but the 0 counts as a digit.
        i, width, digits = i + 1, width - 1, 1
        if width and s[i : i + 1] in (b"x", b"X"):
            i, width = i + 1, width - 1
    while width and i < len(s) and s[i] in _HEX:
        value, i, width, digits = value * 16 + int(s[i : i + 1], 16), i + 1, width - 1, digits + 1
    if not digits:
        return None
    return (-value if neg else value), i


def unsanitise(spec: bytes) -> bytes:
    """Reverse :func:`sanitise` as Xen's ``unsanitise_value`` does, quirks included:
    an unknown escape stands for its letter, ``\\x`` without hex digits for ``x``, and a
    trailing lone backslash for a NUL byte."""
    if b"\\" not in spec:
        return spec
    out = bytearray()
    i, n = 0, len(spec)
    while i < n:
        c = spec[i]
        i += 1
        if c != 0x5C:
            out.append(c)
            continue
        if i == n:  # a lone trailing backslash becomes the terminating NUL, kept
            out.append(0)
            break
        c = spec[i]
        i += 1
        if c in _SIMPLE:
            c = _SIMPLE[c]
        elif c == ord("x"):
            scanned = _scan_hex2(spec, i)
            if scanned is not None:
                c, i = scanned
        elif c in _OCT:
            j = i - 1
            end = j
            while end < n and end - j < 3 and spec[end] in _OCT:
                end += 1
            c, i = int(spec[j:end], 8), end
        out.append(c & 0xFF)
    return bytes(out)


# ---------------------------------------------------------------------------------------
# Options, as glibc getopt_long does them (permuting, abbreviations, errors are warnings).


def _getopt(mode: str, args: Sequence[str]) -> tuple[list[tuple[str, str]], list[str]]:
    opts: list[tuple[str, str]] = []
    operands: list[str] = []
    posix = "POSIXLY_CORRECT" in os.environ
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            operands += args[i:]
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            matches = [k for k in _LONG if k.startswith(name)]
            if name in _LONG:
                matches = [name]
            if not matches:
                _warn(mode, f"unrecognized option '{arg}'")
                continue
            if len(matches) > 1:
                _warn(mode, f"option '{arg}' is ambiguous")
                continue
            flag, needs = _LONG[matches[0]]
            if needs and not eq:
                if i == len(args):
                    _warn(mode, f"option '--{matches[0]}' requires an argument")
                    continue
                value, i = args[i], i + 1
            elif not needs and eq:
                _warn(mode, f"option '--{matches[0]}' doesn't allow an argument")
                continue
            opts.append((flag, value))
        elif arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                flag = arg[j]
                j += 1
                if flag not in _SHORT:
                    _warn(mode, f"invalid option -- '{flag}'")
                    continue
                if _SHORT[flag]:
                    if j < len(arg):
                        value = arg[j:]
                    elif i < len(args):
                        value, i = args[i], i + 1
                    else:
                        _warn(mode, f"option requires an argument -- '{flag}'")
                        break
                    opts.append((flag, value))
                    break
                opts.append((flag, ""))
        else:
            operands.append(arg)
            if posix:
                operands += args[i:]
                break
    return opts, operands


def _atoi(text: str) -> int:
    """C ``atoi``: leading blanks, a sign, digits; garbage reads as 0; int wraps."""
    s = text.lstrip(" \t\n\v\f\r")
    sign = 1
    if s[:1] in ("+", "-"):
        sign, s = (-1 if s[0] == "-" else 1), s[1:]
    digits = ""
    for ch in s:
        if not ("0" <= ch <= "9"):
            break
        digits += ch
    value = sign * int(digits) if digits else 0
    value = max(-(2**63), min(2**63 - 1, value))  # strtol saturates to long
    return (value + 2**31) % 2**32 - 2**31  # then the cast to int wraps


# ---------------------------------------------------------------------------------------
# Output and messages


def _prefix(mode: str) -> str:
    return f"{PROG} {mode}" if mode else PROG


def _warn(mode: str, msg: str) -> None:
    sys.stderr.write(f"{_prefix(mode)}: {msg}\n")


def _errno_text(e: BaseException) -> str:
    code = getattr(e, "errno", None)
    return os.strerror(code) if isinstance(code, int) else str(e)


def _usage(mode: str) -> _Exit:
    # errx() puts the program name first, hence "xsc read: Usage: xsc read ...".
    if mode in _USAGE:
        sys.stderr.write(f"{PROG} {mode}: Usage: {PROG} {mode} {_USAGE[mode]}\n")
    elif mode == "control":
        sys.stderr.write(f"Usage:\n{PROG} control <command> [<arg>...]\n")
        return _Exit(2)
    else:
        sys.stderr.write(f"{PROG}: Usage: {PROG} <mode> [-h] [...]\n")
    return _Exit(1)


def _print_help(mode: str) -> None:
    if mode == "control":
        text = (
            f"usage: {PROG} control <command> [<arg>...]\n\n"
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
        text = f"usage: {PROG} {mode} {_USAGE[mode]}\n\n{what}\n\noptions:\n"
        text += "  -h, --help    show this help\n"
        if options:
            text += f"  {options}\n"
        text += "  -s            ignored (accepted for compatibility)\n"
    else:
        text = (
            f"usage: {PROG} <mode> [options] [args...]\n\n"
            "Xenstore command line, compatible with xenstore-utils.\n\nmodes:\n"
            "  read      print values            write   set values\n"
            "  ls        print a tree            list    print child names\n"
            "  exists    test for keys           rm      remove keys\n"
            "  chmod     set permissions         watch   print watch events\n"
            "  control   XS_CONTROL commands (xenstore-control)\n"
            "  live-update  replace the daemon in place (xenstore-control live-update)\n"
            "  watchdog  list, arm, kick and configure the per-domain watchdogs\n\n"
            f"'{PROG} <mode> --help' describes each; '{PROG} --version' prints the version.\n"
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


def _connect(mode: str) -> Client:
    try:
        return Client()
    except XenstoreError as e:
        if mode == "control":
            sys.stderr.write("Failed to contact Xenstored.\n")
        else:
            _warn(mode, f"xs_open: {_errno_text(e)}")
        raise _Exit(1) from None


# ---------------------------------------------------------------------------------------
# The modes. Each returns the exit status; `out` collects what Xen buffers until the end.

_Ops = Client | Transaction


def _fs(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


class _Command:
    def __init__(self, mode: str, flags: dict[str, str], keys: list[str]) -> None:
        self.mode = mode
        self.flags = flags
        self.keys = keys
        self.out = bytearray()

    def warn(self, msg: str) -> None:
        _warn(self.mode, msg)

    def do_read(self, xs: _Ops) -> int:
        prefix, raw = "p" in self.flags, "R" in self.flags
        for key in self.keys:
            try:
                value = xs.read(key)
            except XenstoreError:
                self.warn(f"couldn't read path {key}")
                return 1
            if prefix:
                self.out += _fs(key) + b": "
            self.out += value if raw else sanitise(value) + b"\n"
        return 0

    def do_write(self, xs: _Ops) -> int:
        raw = "R" in self.flags
        for key, spec in zip(self.keys[::2], self.keys[1::2], strict=True):
            value = _fs(spec).split(b"\0", 1)[0]
            try:
                xs.write(key, value if raw else unsanitise(value))
            except XenstoreError:
                self.warn(f"could not write path {key}")
                return 1
        return 0

    def do_rm(self, xs: _Ops) -> int:
        for key in self.keys:
            path = key
            while True:
                try:
                    xs.rm(path)
                except XenstoreError:
                    self.warn(f"could not remove path {path}")
                    return 1
                if "t" not in self.flags or "/" not in path:
                    break
                path = path[: path.rindex("/")]
                try:
                    if xs.read(path) or xs.directory(path):
                        break
                except XenstoreError:
                    break
        return 0

    def do_exists(self, xs: _Ops) -> int:
        for key in self.keys:
            try:
                xs.read(key)
            except XenstoreError:
                return 1
        return 0

    def do_list(self, xs: _Ops) -> int:
        prefix = "p" in self.flags
        for key in self.keys:
            try:
                names = xs.directory(key)
            except XenstoreError:
                self.warn(f"could not list path {key}")
                return 1
            for name in names:
                if prefix:
                    self.out += _fs(key) + b"/"
                self.out += _fs(name) + b"\n"
        return 0

    def do_chmod(self, xs: _Ops) -> int:
        key, modes = self.keys[0], self.keys[1:]
        perms = []
        for spec in modes:
            letter = spec[:1] or "\0"
            if letter not in ("n", "r", "w", "b"):
                self.warn(f"Invalid permission specification: '{letter}'")
                raise _Exit(1)
            perms.append(f"{letter}{_atoi(spec[1:])}")
        self._chmod(xs, _fs(key), perms, "u" in self.flags, "r" in self.flags)
        return 0

    def _chmod(self, xs: _Ops, path: bytes, perms: list[str], upto: bool, recurse: bool) -> None:
        if not path:
            return
        text = path.decode("utf-8", "surrogateescape")
        try:
            xs.set_perms(text, perms)
        except XenstoreError as e:
            self.warn(f"Error occurred setting permissions on '{text}': {_errno_text(e)}")
            raise _Exit(1) from None
        if upto:
            cut = path.rfind(b"/")
            if cut < 0:
                self.warn(f"Unable to locate path separator '/' in '{text}'")
                raise _Exit(1)
            self._chmod(xs, path[:cut], perms, True, False)
        if recurse:
            try:
                names = xs.directory(text)
            except XenstoreError:
                return
            for name in names:
                child = (path + b"/" + _fs(name))[: _MAX_PATH_LEN - 1]
                self._chmod(xs, child, perms, False, True)

    def do_ls(self, xs: Client) -> int:
        flat, show_perms = "f" in self.flags, "p" in self.flags
        if flat:
            max_width, desired_width = _INT_MAX // 2, 0
        else:
            max_width, desired_width = 80, 60
            try:
                max_width = os.get_terminal_size(1).columns - 2
            except (OSError, ValueError):
                pass
        paths = self.keys or ["/"]
        for path in paths:
            self._ls(xs, _fs(path), 0, show_perms, flat, max_width, desired_width)
        return 0

    def _ls(
        self, xs: Client, path: bytes, depth: int, show_perms: bool, flat: bool,
        max_width: int, desired_width: int,
    ) -> None:  # fmt: skip
        out = self.out
        text = path.decode("utf-8", "surrogateescape")
        try:
            names = xs.directory(text)
        except XenstoreError as e:
            if depth and isinstance(e, ENOENT):
                return  # a node that vanished while we walked: move on, as Xen does
            self.warn(f"xs_directory ({text}): {_errno_text(e)}")
            raise _Exit(1) from None
        sep = b"" if path.endswith(b"/") else b"/"
        for name in names:
            bname = _fs(name)
            newpath = path + sep + bname
            if flat:
                out += newpath
                width = 0
            else:
                out += b" " * depth
                width = depth
                cut = max_width - _TAG_LEN - width
                shown = bname[:cut] if cut >= 0 else bname
                out += shown
                width += len(shown)
            value: bytes | None = None
            if len(newpath) < _STRING_MAX:
                try:
                    value = xs.read(newpath.decode("utf-8", "surrogateescape"))
                except XenstoreError:
                    value = None
            if value is None:
                out += b":\n"
            else:
                shown = sanitise(value)
                if max_width < width + len(value) + _TAG_LEN:
                    cut = max_width - _TAG_LEN - width
                    out += b' = "' + (shown[:cut] if cut >= 0 else shown) + b'\\..."'
                else:
                    piece = b' = "' + shown + b'"'
                    out += piece
                    width += len(piece)
                    if show_perms:
                        out += b" "
                        width += 1
                        while width < min(desired_width, max_width):
                            out += b"." if width & 1 else b" "
                            width += 1
            if show_perms:
                try:
                    perms = xs.get_perms(newpath.decode("utf-8", "surrogateescape"))
                except XenstoreError as e:
                    self.warn(f"\ncould not access permissions for {name}: {_errno_text(e)}")
                else:
                    out += b"  (" + ",".join(str(p) for p in perms).encode() + b")"
            out += b"\n"
            self._ls(xs, newpath, depth + 1, show_perms, flat, max_width, desired_width)

    def do_watch(self, xs: Client) -> int:
        import queue

        events: queue.SimpleQueue[str] = queue.SimpleQueue()
        depth = _atoi(self.flags["d"]) if "d" in self.flags else -1
        number = _atoi(self.flags["n"]) if "n" in self.flags else -1

        def on_event(event: WatchEvent) -> None:
            events.put(event.path)

        for key in self.keys:
            try:
                xs.watch(key, key, callback=on_event, depth=depth if depth >= 0 else None)
            except XenstoreError:
                if depth >= 0:
                    self.warn(f"Unable to add watch on {key} with depth {depth}\n")
                else:
                    self.warn(f"Unable to add watch on {key}\n")
                raise _Exit(1) from None
        stdout = sys.stdout.buffer
        count = 0
        while number == -1 or count < number:
            try:
                path = events.get(timeout=0.5)
            except queue.Empty:
                if xs.closed:
                    return 0  # libxenstore stops at EOF too, without a word
                continue
            stdout.write(_fs(path) + b"\n")
            stdout.flush()
            count += 1
        return 0


_TRANSACTIONAL = {"rm", "chmod", "exists", "list"}


def _run(mode: str, args: Sequence[str]) -> int:
    opts, operands = _getopt(mode, args)
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
    command = _Command(mode, flags, operands)
    perform: Callable[[_Ops], int] = getattr(command, f"do_{mode}")

    client = _connect(mode)
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
                raise _Exit(1) from None
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
                raise _Exit(1) from None
            except XenstoreError:
                command.warn("couldn't end transaction")
                raise _Exit(1) from None
            break
    finally:
        if command.out:
            sys.stdout.buffer.write(command.out)
        client.close()
    return status


def _control(args: Sequence[str]) -> int:
    if not args:
        raise _usage("control")
    if args[0] in _HELP_FLAG:
        _print_help("control")
        return 0
    if args[0] == "live-update" and any(arg in _HELP_FLAG for arg in args[1:]):
        from . import cli_liveupdate

        sys.stdout.write(cli_liveupdate.HELP)
        return 0
    client = _connect("control")
    try:
        if args[0] == "live-update":
            from . import cli_liveupdate

            return cli_liveupdate.run(client, args[1:])
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
            sys.stdout.buffer.write(_fs(reply) + b"\n")
        return 0
    finally:
        client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``xsc``; returns the exit status (the console script exits with it)."""
    global PROG
    args = list(sys.argv if argv is None else argv)
    name = os.path.basename(args[0]) if args else PROG
    if name.startswith("xenstore-"):
        mode, rest = name[len("xenstore-") :], args[1:]
        PROG = "xenstore"
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
        if mode in _HELP_FLAG:
            _print_help("")
            return 0
        if mode == "control":
            return _control(rest)
        if mode == "--version":
            sys.stdout.write(f"{PROG} {_version()}\n")
            return 0
        if mode == "live-update":  # also `xsc control live-update ...`, as xenstore-control
            from . import cli_liveupdate

            if any(arg in _HELP_FLAG for arg in rest):
                sys.stdout.write(cli_liveupdate.HELP)
                return 0
            client = _connect("control")
            try:
                return cli_liveupdate.run(client, rest)
            finally:
                client.close()
        if mode == "watchdog":  # the watchdog commands (issue 5) live in cli_watchdog
            from .cli_watchdog import main as watchdog_main

            return watchdog_main(rest)
        if mode not in _MODES:
            _warn("", f"unknown mode {mode}\n")
            return 1
        return _run(mode, rest)
    except _Exit as e:
        return e.code
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            pass


if __name__ == "__main__":
    sys.exit(main())
