"""Give freed memory back to the system after a connection that held much of it goes.

Queued replies and watch events are bytes objects of up to 4 KiB: glibc's malloc takes
them from its heap, not from their own mappings, and a heap's free pages below a block
still in use are not returned by ``free()``. A guest that made the daemon queue hundreds
of megabytes and then left therefore left the RSS up, although nothing referred to those
bytes any more. ``malloc_trim(0)`` hands such free pages back (madvise); it costs a walk
of the heap, so it runs only once enough has been freed since the last time.

Without glibc (or ctypes) :func:`trim` does nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Final

TRIM_AFTER: Final = 16 << 20
"""Bytes freed (queued output of connections gone or of events dropped) that make it
worth trimming (final: the compiled multiplexer, which tests it after every pass, reads
it as a constant, not by name from this module)."""

_malloc_trim: Callable[[int], int] | None = None
_looked_up = False


def _lookup() -> Callable[[int], int] | None:
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        function: Callable[[int], int] = libc.malloc_trim
    except (ImportError, OSError, AttributeError):
        return None
    return function


def trim() -> bool:
    """Return free heap pages to the system; False where that is not possible."""
    global _malloc_trim, _looked_up
    if not _looked_up:
        _malloc_trim = _lookup()
        _looked_up = True
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
