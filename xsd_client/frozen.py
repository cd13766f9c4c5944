"""The base of the package's small immutable value classes.

Not dataclasses: importing ``dataclasses`` (and ``inspect``) costs a one-shot command
line ~15 ms, a third of its start-up, and the daemon's restore path as much.
"""

from __future__ import annotations

__all__ = ["Frozen"]


class Frozen:
    """Equal and hashed by the values of the subclass's ``__slots__``; nothing can be
    set after ``__init__``, which sets them with ``object.__setattr__``.

    Only instances of the same class compare equal.
    """

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self.__slots__])

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (cannot set {name})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable (cannot delete {name})")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, Frozen)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())
