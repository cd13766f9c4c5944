"""``xsc live-update``: replace the daemon in place, as ``xenstore-control live-update``.

The same steps and messages as Xen's client (``tools/xenstore/xenstore_control.c``):
read ``/tool/xenstored/domid`` (a stub domain is refused), ``live-update -f FILE``, then
``-c CMDLINE`` if given, then ``-s -t SECS [-F]`` retried once a second while the daemon
answers ``BUSY``, and ``-a`` after any failure. ``--state memfd|lmdb:PATH`` is xsd's own:
how the daemon hands its state to the new program. Exit status: 0 done, 1 daemon
unreachable, 2 usage, 3 the update failed (the old daemon still serves).
"""

from __future__ import annotations

import sys
import time

from .cli import _atoi as atoi
from .cli import _errno_text as errno_text
from .client import Client
from .errors import XenstoreError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

HELP = """\
usage: xsc live-update [-c CMDLINE] [-F] [-t SECS] [--state memfd|lmdb:PATH] FILE
       (also: xsc control live-update ...)

Replace the daemon with the program FILE in the same process, keeping every connection,
watch, transaction and timer: the daemon checks FILE first (a dry run) and only then
execs it; if anything fails, the old daemon carries on.

options:
  -h, --help          show this help
  -c CMDLINE          the new program's command line (default: the daemon's own options)
  -F                  force (Xen: update although transactions are open, dropping
                      them; xsd carries open transactions over anyway)
  -t SECS             give up after SECS seconds (default: 60)
  --state memfd|lmdb:PATH
                      how xsd hands its state over: a memfd (default) or an LMDB file

Exit status: 0 updated, 1 daemon unreachable, 2 usage, 3 update failed (nothing lost).
"""


def run(client: Client, args: Sequence[str]) -> int:
    """``xenstore-control live-update [-c CMDLINE] [-F] [-t SECS] FILE`` for a daemon."""

    binary = cmdline = state = None
    timeout, force = 60, False
    it = iter(args)
    for arg in it:
        if arg in ("-c", "-t", "--state"):
            value = next(it, None)
            if value is None:
                what = {"-c": "command line", "-t": "timeout", "--state": "state transport"}[arg]
                sys.stderr.write(f"Missing {what} value\n")
                return 2
            if arg == "-c":
                cmdline = value
            elif arg == "--state":
                state = value  # xsd's own: memfd (default) or lmdb:PATH
            else:
                timeout = atoi(value) % 2**32
        elif arg == "-F":
            force = True
        else:
            binary = arg
    if binary is None:
        sys.stderr.write("Missing binary specification\n")
        return 2
    if client.exists("/tool/xenstored/domid"):
        sys.stderr.write("Live update of a xenstore stub domain is not supported by xsc.\n")
        return 3

    def send(*cmd: str) -> tuple[bool, str]:
        try:
            return True, client.control("live-update", *cmd)
        except XenstoreError as e:
            return False, errno_text(e)

    ok, text = send("-f", binary)
    if not ok or text != "OK":
        sys.stderr.write(f"Setting update binary failed:\n{text}\n")
        return 3
    rc = 0
    if cmdline is not None:
        ok, text = send("-c", cmdline)
        if not ok or text != "OK":
            sys.stderr.write(f"Setting update binary failed:\n{text}\n")
            rc = 3
    if not rc:
        start = ["-s", "-t", str(timeout), *(["-F"] if force else [])]
        if state is not None:
            start += ["--state", state]
        ok, text = True, "BUSY"
        began = time.time()
        while time.time() - began < timeout:
            ok, text = send(*start)
            if not ok or text != "BUSY":
                break
            time.sleep(1)
        if not ok or text != "OK":
            sys.stderr.write(f"Starting live update failed:\n{text}\n")
            rc = 3
    if rc:
        try:
            client.control("live-update", "-a")
        except XenstoreError:
            pass
    return rc
