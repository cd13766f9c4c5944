"""What every ``xsc`` subcommand shares: the name in its messages, its exit, C's atoi.

Messages go to stderr prefixed ``xsc <mode>:`` (``xenstore-<mode>`` names the program
``xenstore`` when called through such a link, as Xen's tools do: ``cli.main`` sets
:data:`PROG`). Importing this module never imports trio, nor the threaded client:
a one-shot command talks through :class:`~xsd_client.oneshot.OneShotClient`.
"""

from __future__ import annotations

import sys

from .errors import XenstoreError
from .oneshot import OneShotClient

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:
    from .client import Client

PROG = "xsc"
"""The program name messages carry."""

HELP_FLAG = ("-h", "--help")


class Exit(Exception):
    """Leave the command with exit status ``code``."""

    def __init__(self, code: int) -> None:
        self.code = code


def prefix(mode: str) -> str:
    """``xsc <mode>`` (or ``xsc``): what messages start with."""
    return f"{PROG} {mode}" if mode else PROG


def warn(mode: str, msg: str) -> None:
    """A message on stderr, prefixed as Xen's tools prefix theirs."""
    sys.stderr.write(f"{prefix(mode)}: {msg}\n")


def errno_text(e: BaseException) -> str:
    """``strerror`` of an error's errno, else its text."""
    from os import strerror  # on error paths only (see oneshot.getenv)

    code = getattr(e, "errno", None)
    return strerror(code) if isinstance(code, int) else str(e)


def atoi(text: str) -> int:
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


def fs(path: str) -> bytes:
    """A path or name as bytes, as the command line gave it."""
    return path.encode("utf-8", "surrogateescape")


def connect(mode: str) -> OneShotClient:
    """A one-shot client on the daemon's socket, or exit 1 with Xen's message."""
    try:
        return OneShotClient()
    except XenstoreError as e:
        raise _unreachable(mode, e) from None


def connect_threaded(mode: str) -> Client:
    """The threaded client (watches need its reader), or exit 1 with Xen's message."""
    from .client import Client

    try:
        return Client()
    except XenstoreError as e:
        raise _unreachable(mode, e) from None


def _unreachable(mode: str, e: XenstoreError) -> Exit:
    """Xen's message for a daemon that cannot be reached; the exit to raise."""
    if mode == "control":
        sys.stderr.write("Failed to contact Xenstored.\n")
    else:
        warn(mode, f"xs_open: {errno_text(e)}")
    return Exit(1)
