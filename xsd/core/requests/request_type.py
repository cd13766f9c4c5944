"""One entry of the request table: a request type's handler and its flags.

A module of its own so that it is compiled (``setup.py``): the engine reads an entry's
flags and calls its handler on every request, and a class of the package's
``__init__`` (which mypyc does not compile as a package's) made both a lookup by name.
"""

from __future__ import annotations

from collections.abc import Callable

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

    from xsd.core.connections import Connection
    from xsd.core.context import Context
    from xsd.core.views import Transaction

Handler = Callable[["Context", "Connection", "Transaction | None", bytes], bytes]

PRIVILEGED: Final = 1
"""Only a privileged connection may send it (others get EACCES)."""
IGNORES_TX: Final = 2
"""Its tx_id is not looked up (WATCH, UNWATCH)."""
WRITE: Final = 4
"""A write: an unprivileged domain spends write credit (``xsd.core.ratelimit``)."""
COMMIT: Final = 8
"""Spends write credit too when it commits (TRANSACTION_END with ``T``)."""
SIDE: Final = 16
"""May change state besides the tree: domains, quotas, settings (durable mode,
``Engine.side_changed``; SET_PERMS of a special name says so itself)."""


class RequestType:
    """One entry of the table: the handler and its flags."""

    __slots__ = ("flags", "handler")

    def __init__(self, handler: Handler, flags: int = 0) -> None:
        self.handler = handler
        self.flags = flags
