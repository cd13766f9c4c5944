"""xsd: a Xenstore-compatible state store daemon.

``xsd.core`` is the store as a pure state machine; ``xsd.server`` is the shell around it
(an epoll loop, trio its guest). Start the daemon with the ``xsd`` console script or
``python -m xsd``.
"""

import time as _time

STARTED_NS = _time.monotonic_ns()
"""When the interpreter, ``site`` done, first reached our code (a live update's timeline)."""

__version__ = "0.1.0"

from xsd import compiled as _compiled  # noqa: E402 - after the clock above

_compiled.guard()  # a compiled module whose source changed since runs from its source
