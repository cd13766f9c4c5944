"""``Generic``, ``Protocol`` and ``TypeVar`` for the type checker, without ``typing``
at run time; ``mypyc_attr`` for mypyc, without ``mypy_extensions`` at run time.

The one-shot CLI imports the client modules; importing ``typing`` would cost it
~2 ms of every start. Type checkers see the real names (they take ``TYPE_CHECKING``
as true whatever it is set to); at run time a generic base is a plain class that
subscripting gives back, a protocol is ``object`` and a type variable is its name.
mypyc reads ``mypyc_attr`` where the type checker does; at run time it leaves the class
as it is.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Generic as Generic
    from typing import Protocol as Protocol
    from typing import TypeVar as TypeVar

    from mypy_extensions import mypyc_attr as mypyc_attr
else:

    class Generic:
        """A plain base: ``Generic[T]`` is ``Generic`` itself."""

        __slots__ = ()

        def __class_getitem__(cls, item):
            return cls

    Protocol = object

    def TypeVar(name, *constraints, **options):
        return name

    def mypyc_attr(*attrs, **kwattrs):
        return lambda cls: cls


__all__ = ["Generic", "Protocol", "TypeVar", "mypyc_attr"]
