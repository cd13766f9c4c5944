"""Plain slotted classes for the state: what ``dataclasses`` would give, without its cost.

A live update's new process creates the core's classes during the pause, before it can
answer. There ``dataclasses`` costs about as much as rebuilding 50,000 nodes: its
import pulls in ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``), and each
class it makes compiles generated methods. So the state's classes are written out:

* the fields are annotated in the class body, in order (for type checkers, and for
  ``handover``, which reads the annotations), and are the class's ``__slots__``;
* ``__init__`` takes them in that order; a mutable default is ``None`` in the signature
  and a fresh object in the instance;
* :class:`Fields` adds ``repr`` and field-by-field equality (which, as with a
  dataclass, makes instances unhashable).

For the same reason the modules on that path do not import ``typing`` (~3.5 ms) at
run time: they set ``TYPE_CHECKING = False`` themselves (type checkers take any
``TYPE_CHECKING`` as true) and import from ``typing`` only under it.

``handover`` converts such classes generically through :func:`hints`, :func:`names`,
:func:`parameters`, :func:`defaults` and :func:`as_dict`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see above)
if TYPE_CHECKING:
    from typing import Any


class Fields:
    """Base of a slotted class whose annotated ``__slots__`` are its fields: repr and
    equality."""

    __slots__ = ()

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names(type(self)))
        return f"{type(self).__name__}({shown})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in names(type(self)))


def hints(cls: type) -> dict[str, Any]:
    """The fields of ``cls`` in order, with their annotations as written (strings, in a
    module that postpones them): those of its body and its bases', bases first."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        # Not inspect.get_annotations: importing inspect is the cost this module avoids.
        out.update(klass.__dict__.get("__annotations__", {}))  # noqa: RUF063
    return out


def names(cls: type) -> tuple[str, ...]:
    """The fields of ``cls`` in order (see :func:`hints`); found once per class, since
    equality and ``repr`` ask on every call."""
    found = _NAMES.get(cls)
    if found is None:
        found = _NAMES[cls] = tuple(hints(cls))
    return found


_NAMES: dict[type, tuple[str, ...]] = {}


def parameters(cls: type) -> tuple[str, ...]:
    """The parameters of ``cls``'s ``__init__`` that can be given by position, in order."""
    code = cls.__init__.__code__  # type: ignore[misc]
    params: tuple[str, ...] = code.co_varnames[1 : code.co_argcount]
    return params


def defaults(cls: type) -> dict[str, Any]:
    """The default of each parameter of ``cls``'s ``__init__`` that has one (``None``
    where a fresh object stands in for it)."""
    init = cls.__init__  # type: ignore[misc]
    given = init.__defaults__ or ()
    params = parameters(cls)
    out = dict(zip(params[len(params) - len(given) :], given, strict=True))
    out.update(init.__kwdefaults__ or {})
    return out


def as_dict(item: object) -> dict[str, Any]:
    """The fields of ``item`` by name (values as they are, not copied)."""
    return {name: getattr(item, name) for name in names(type(item))}
