"""handover: the daemon's state to a flat stream of records and back, for live update.

``records`` is the format (``dump`` turns a State into records, ``load`` back, and
``old_formats`` reads those of earlier versions), the tree through ``tree_columns``
(breadth-first columns) and ``tree_delta`` (what changed since a kept dump), typed parts
through ``plain``; ``stream`` frames them (version, length, checksum); ``transports``
carries the frame in a memfd or an LMDB file; ``timeline`` notes when each step of a
live update happened; ``shell_record`` is the shell's part of the hand-over (its
descriptors, the ``-s`` to answer), one typed record; ``checkpoint`` is durable mode's use
of the same records. :func:`load` is the whole restore path, used by the new program and
by its dry run. Of
the core, handover reads the data model only. Nothing here imports trio.
"""

from __future__ import annotations

import gc
import os

from handover import records, stream, timeline, transports
from handover.records import StateError
from handover.shell_record import ShellRecord
from xsd.core.state import State

__all__ = ["ShellRecord", "StateError", "load", "timeline"]


def load(spec: str) -> tuple[State, ShellRecord]:
    """Load the state named by ``fd:N`` (a memfd, closed here) or ``lmdb:PATH``, and
    the shell's record that came with it.

    Raises:
        StateError: the state cannot be loaded; nothing was loaded.
    """
    # What a load builds lives as long as the daemon: the cyclic collector waits until it
    # is all built, and then it goes out of every later collection (gc.freeze). Were
    # the collector enabled first, the first allocation would collect the whole load.
    collecting = gc.isenabled()
    gc.disable()
    try:
        blob = transports.load_blob(spec)
        if spec.startswith("fd:"):
            os.close(int(spec[3:]))
        recs = stream.decode_state(blob)  # checks the frame first
        timeline.mark("unpacked")
        state, extra = records.load(recs)
        del recs, blob
        shell = ShellRecord.from_extra(extra)
        gc.freeze()
        timeline.mark("rebuilt")
    finally:
        if collecting:
            gc.enable()
    return state, shell
