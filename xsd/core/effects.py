"""What the engine asks of its shell: an :class:`Effect` is an action with its input.

Its own module so that the engine's features (the watchdogs, the domain requests)
can make effects without importing the engine, which imports them.
"""

from __future__ import annotations

from xsd.core.fields import Fields


class Effect(Fields):
    """Something the shell must do: ``kind`` is one of the names below, ``arg`` its input.

    * ``"introduced"``: domain ``arg`` (int) was introduced: open its socket;
    * ``"released"``: domain ``arg`` was released: close its socket;
    * ``"close"``: close connection ``arg``;
    * ``"trace"``: the trace settings changed (``arg``: a description);
    * ``"log"``: write ``arg`` (str) to the daemon's log;
    * ``"memreport"``: write a memory report to file ``arg`` (or the trace file if None);
    * ``"timer"``: a new deadline appeared: recompute when to :meth:`~xsd.core.engine.Engine.tick`;
    * ``"deferred"``: ``(conn_id, command, args)``: a request the shell answers, through
      :meth:`~xsd.core.engine.Engine.complete_deferred` (live update);
    * ``"resume"``: connection ``arg`` may be served again (it paid its writes back);
    * ``"bug"``: ``(request, exception)``: handling a request raised an unexpected
      exception; the client got EIO and the shell logs the traceback.
    """

    __slots__ = ("arg", "kind")
    kind: str
    arg: object

    def __init__(self, kind: str, arg: object) -> None:
        self.kind = kind
        self.arg = arg
