"""GNU ``getopt_long`` as xenstore-utils use it (glibc's behaviour, not Python's getopt).

Operands are permuted after the options unless ``POSIXLY_CORRECT`` is set, long options
may be abbreviated, and an unknown or malformed option is warned about and skipped.
"""

from __future__ import annotations

from .cli_common import warn
from .oneshot import getenv

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:  # collections.abc imports collections, functools...: ~3 ms
    from collections.abc import Sequence


def getopt(
    mode: str,
    args: Sequence[str],
    long: dict[str, tuple[str, bool]],
    short: dict[str, bool],
) -> tuple[list[tuple[str, str]], list[str]]:
    """``(options, operands)``: each option as ``(flag, value)``; ``long`` maps a long
    name to its flag and whether it takes a value, ``short`` a flag to the latter."""
    opts: list[tuple[str, str]] = []
    operands: list[str] = []
    posix = getenv("POSIXLY_CORRECT") is not None
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            operands += args[i:]
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            matches = [k for k in long if k.startswith(name)]
            if name in long:
                matches = [name]
            if not matches:
                warn(mode, f"unrecognized option '{arg}'")
                continue
            if len(matches) > 1:
                warn(mode, f"option '{arg}' is ambiguous")
                continue
            flag, needs = long[matches[0]]
            if needs and not eq:
                if i == len(args):
                    warn(mode, f"option '--{matches[0]}' requires an argument")
                    continue
                value, i = args[i], i + 1
            elif not needs and eq:
                warn(mode, f"option '--{matches[0]}' doesn't allow an argument")
                continue
            opts.append((flag, value))
        elif arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                flag = arg[j]
                j += 1
                if flag not in short:
                    warn(mode, f"invalid option -- '{flag}'")
                    continue
                if short[flag]:
                    if j < len(arg):
                        value = arg[j:]
                    elif i < len(args):
                        value, i = args[i], i + 1
                    else:
                        warn(mode, f"option requires an argument -- '{flag}'")
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
