"""The request/reply trace (log class ``io``) as the engine records it: plain tuples.

While the shell traces, :attr:`Engine.trace <xsd.core.engine.Engine.trace>` is a list and
the engine appends one :data:`TraceRecord` per message: the request it read (a
:class:`~xsd_client.protocol.Packet`) and each reply or watch event it queued (the
encoded frame). The shell drains the list after every batch and turns each record into
a line with :func:`io_text`. When tracing is off the list is None and a request pays
one attribute test.

Invariants: records are appended in the order the messages were read and queued, with
the engine's monotonic time of the request that caused them; nothing here does I/O or
reads a clock, and a record holds no reference into the state that later changes
(packets and frames are immutable).
"""

from __future__ import annotations

from xsd_client.protocol import HEADER, Packet

TraceRecord = tuple[int, int, int, Packet | bytes]
"""(connection id, domid, monotonic ns, the request read or the frame queued)."""


def io_text(record: TraceRecord) -> str:
    """The TEXT of the ``io`` line for ``record`` (see :mod:`xsd_client.logformat`)."""
    # Imported here: the engine imports this module, and a live update's restore need
    # not pay for the log format (its regexes and tables) before it answers.
    from xsd_client.logformat import format_io

    conn_id, domid, _, message = record
    if isinstance(message, Packet):
        return format_io(
            "IN", conn_id, domid, message.op, message.req_id, message.tx_id, message.payload
        )
    op, req_id, tx_id, _ = HEADER.unpack_from(message)
    return format_io("OUT", conn_id, domid, op, req_id, tx_id, message[HEADER.size :])
