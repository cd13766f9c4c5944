"""The daemon's process name: ``xsd``, for ``ps``, ``pidof`` and ``kill $(pidof xsd)``.

Started as ``python3 -m xsd`` or through the console script (``python3 /usr/bin/xsd``,
and after a live update ``python3 -S /usr/bin/xsd --live-update ...``), the process would
be called ``python3``. :func:`set_name` renames it twice:

* the kernel's short name (``/proc/self/comm``: ``ps -e``, ``ps -C xsd``, ``top``), by a
  write to that file (what ``prctl(PR_SET_NAME)`` does, without loading ctypes);
* the first word of its command line (``/proc/self/cmdline``: ``pidof``, ``ps -f``): the
  interpreter's path in the argument block the kernel set up at exec is overwritten with
  ``xsd``, the following arguments moved up after it and the freed end filled with NULs.
  The block is the kernel's copy of ``argv``; Python keeps its own copy of the arguments,
  so nothing reads the block again.

Only the interpreter's path is replaced: the arguments after it (``-m xsd``, or ``-S`` and
the program) stay, so the command line still says what runs. Both steps are best effort:
a failure (another kernel, no ``/proc``) leaves the name as it was, silently. It costs
a few tens of microseconds, so it is done on every start, the live update's included.
"""

from __future__ import annotations

import os

NAME = b"xsd"


def set_name() -> None:
    """Call this process ``xsd`` in ``/proc/self/comm`` and in its command line."""
    for step in (_rename, _rewrite_cmdline):
        try:
            step()
        except (OSError, ValueError, IndexError):
            continue


def _rename() -> None:
    with open("/proc/self/comm", "wb") as comm:
        comm.write(NAME)


def _rewrite_cmdline() -> None:
    with open("/proc/self/stat", "rb") as f:
        stat = f.read()
    # Fields after the name (which may hold spaces and parentheses): arg_start and arg_end
    # are fields 48 and 49 (proc(5)), i.e. 46 and 47 counted from the state (field 3).
    fields = stat[stat.rindex(b")") + 2 :].split()
    start, end = int(fields[45]), int(fields[46])
    fd = os.open("/proc/self/mem", os.O_RDWR)
    try:
        block = os.pread(fd, end - start, start)
        first, sep, rest = block.partition(b"\0")
        if not sep or first == NAME:
            return
        new = NAME + b"\0" + rest
        os.pwrite(fd, new + b"\0" * (len(block) - len(new)), start)
    finally:
        os.close(fd)
