"""Exceptions of the xenstore client: one root, one class per wire error name.

Invariants:

* every exception this package raises on purpose derives from :class:`XenstoreError`,
  which is an :class:`OSError` (a xenstore error *is* an errno travelling by name);
* each name of the ``xsd_errors`` table (:data:`xsd_client.protocol.ERROR_NAMES`) has
  exactly one class, named after it, registered in :data:`ERRORS`; the class carries the
  wire name in ``errno_name`` and the local errno number in ``errno``;
* where Python has a natural builtin for the errno (``ENOENT`` is a
  :class:`FileNotFoundError`, ``EACCES`` a :class:`PermissionError`, ...) the class
  subclasses it too, so ``except FileNotFoundError`` works;
* failures of the connection itself (closed, broken framing) are separate classes under
  the same root and never carry a wire name.
"""

from __future__ import annotations

import errno as _errno

from .protocol import ERROR_NAMES

__all__ = [
    "E2BIG",
    "EACCES",
    "EAGAIN",
    "EBUSY",
    "EEXIST",
    "EINVAL",
    "EIO",
    "EISCONN",
    "EISDIR",
    "ENOENT",
    "ENOMEM",
    "ENOSPC",
    "ENOSYS",
    "ENOTEMPTY",
    "EPERM",
    "EROFS",
    "ERRORS",
    "ConnectionClosedError",
    "RemoteProtocolError",
    "RequestLostError",
    "XenstoreError",
    "error_from_name",
]


class XenstoreError(OSError):
    """Root of every error raised by :mod:`xsd_client`.

    Server errors are instances of the per-name subclasses below; ``errno_name`` is the
    name that came over the wire (``"ENOENT"``), or ``""`` for client-side failures.
    """

    errno_name: str = ""


class ConnectionClosedError(XenstoreError, ConnectionError):
    """The connection to the daemon is closed (by us, by the daemon, or broken)."""


class RequestLostError(ConnectionClosedError):
    """A reconnecting client lost the connection after sending a request that cannot
    safely be sent again (RM, INTRODUCE, a transaction's commit, ...), before its reply
    came: it may or may not have been applied. Check, then retry if it was not."""


class RemoteProtocolError(XenstoreError):
    """The daemon sent something that breaks the wire protocol; the connection is dropped."""


ERRORS: dict[str, type[XenstoreError]] = {}
"""Wire error name -> exception class, filled by :func:`_register`."""


def _register(cls: type[XenstoreError]) -> type[XenstoreError]:
    name = cls.__name__
    if name not in ERROR_NAMES:  # pragma: no cover - a typo in this file
        raise AssertionError(f"{name} is not a xenstore error name")
    cls.errno_name = name
    ERRORS[name] = cls
    return cls


@_register
class EINVAL(XenstoreError):
    """Invalid argument: bad path, bad payload, unknown command."""


@_register
class EACCES(XenstoreError, PermissionError):
    """Permission denied."""


@_register
class EEXIST(XenstoreError, FileExistsError):
    """Already exists (for example the same watch registered twice)."""


@_register
class EISDIR(XenstoreError, IsADirectoryError):
    """Is a directory (in the table, never produced by Xen's daemons)."""


@_register
class ENOENT(XenstoreError, FileNotFoundError):
    """No such node, transaction or domain."""


@_register
class ENOMEM(XenstoreError):
    """Out of memory, a memory quota, or a transaction marked failed."""


@_register
class ENOSPC(XenstoreError):
    """A quota was exceeded."""


@_register
class EIO(XenstoreError):
    """Internal error in the daemon."""


@_register
class ENOTEMPTY(XenstoreError):
    """Directory not empty (in the table, never produced by Xen's daemons)."""


@_register
class ENOSYS(XenstoreError):
    """The daemon does not implement this message type."""


@_register
class EROFS(XenstoreError):
    """Read-only store (in the table, never produced by Xen's daemons)."""


@_register
class EBUSY(XenstoreError):
    """Busy: nested transaction, or an operation not allowed in the current state."""


@_register
class EAGAIN(XenstoreError):
    """The transaction conflicted with another change; run it again from the start."""


@_register
class EISCONN(XenstoreError):
    """Already connected (in the table, never produced by Xen's daemons)."""


@_register
class E2BIG(XenstoreError):
    """Reply too big (a large DIRECTORY) or, in Xen 4.17-4.21, a watch quota."""


@_register
class EPERM(XenstoreError, PermissionError):
    """Operation not permitted (for example an unprivileged owner change)."""


def error_from_name(name: str, path: str | None = None) -> XenstoreError:
    """Build the exception for an ERROR reply.

    Args:
        name: the wire error name; a name outside the table reads as ``EINVAL``, as
            libxenstore does.
        path: the path the request was about, if any; it becomes ``filename``.

    Returns:
        An instance of the registered class, with ``errno``/``strerror`` set from the
        local C library (``str()`` reads like any ``OSError``).
    """
    from os import strerror  # here: a one-shot ``xsc`` under ``python -S`` spares os

    cls = ERRORS.get(name, EINVAL)
    code = getattr(_errno, cls.errno_name, _errno.EINVAL)
    if path is None:
        return cls(code, strerror(code))
    return cls(code, strerror(code), path)
