"""Many instances of one state class as one column per field, and back.

A thousand domains' watchdogs are thousands of small objects. As maps of field name
to value (``handover.plain``) each costs a map to pack and a dict of keyword arguments
to rebuild; as columns, each field is one list, built and checked in C-level passes
(``map``, ``attrgetter``), and the objects are made by one ``map`` over the class.
The columns are keyed by field name, so a later version may add a field with a default
(its column is missing here: the default fills it) or drop one (an unknown column is
ignored), as with ``plain``.

The classes are the core's slotted ones (``xsd.core.fields``): their fields and types
come from their annotations, read as written, so that this runs without ``typing``
during a live update's pause. Only fields annotated with a scalar type (int, str,
bytes, bool) go as columns; the caller supplies the others (``given``).
"""

from __future__ import annotations

from itertools import repeat
from operator import attrgetter

from xsd.core import fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any

SCALARS = (int, str, bytes, bool)
"""Types whose values need only a type check (no conversion) to be rebuilt."""
_SCALAR_HINTS = {hint: kind for kind in SCALARS for hint in (kind, kind.__name__)}
"""Each scalar type by itself and by the name that an annotation gives it."""


class ColumnError(ValueError):
    """Columns that do not rebuild the instances they should."""


def scalar_fields(cls: type) -> list[tuple[str, type]]:
    """``(name, type)`` of the fields of ``cls`` that go as columns."""
    hinted = fields.hints(cls).items()
    return [(name, _SCALAR_HINTS[hint]) for name, hint in hinted if hint in _SCALAR_HINTS]


def to_columns(cls: type, items: list[Any]) -> dict[str, list[Any]]:
    """The scalar fields of ``items`` (instances of ``cls``), a column each."""
    return {name: list(map(attrgetter(name), items)) for name, _ in scalar_fields(cls)}


def from_columns(
    cls: type, columns: Any, count: int, given: dict[str, list[Any]] | None = None
) -> list[Any]:
    """``count`` instances of ``cls`` from ``columns`` (:func:`to_columns`) and the
    other fields' values in ``given`` (name: a list of ``count`` values).

    Raises:
        ColumnError: a column of the wrong type or length, or a field with neither a
            column nor a default.
    """
    if not isinstance(columns, dict):
        raise ColumnError(f"{cls.__name__} columns are not a map")
    given = given or {}
    kinds = dict(scalar_fields(cls))
    optional = fields.defaults(cls)
    args: list[Any] = []
    for name in fields.parameters(cls):
        if name in given:
            column = given[name]
        elif name in kinds and name in columns:
            column = columns[name]
            if not isinstance(column, list) or not set(map(type, column)) <= {kinds[name]}:
                raise ColumnError(f"{cls.__name__}.{name}: not a column of {kinds[name]}")
        elif name in optional:
            args.append(repeat(optional[name], count))
            continue
        else:
            raise ColumnError(f"{cls.__name__}.{name}: no column and no default")
        if len(column) != count:
            raise ColumnError(f"{cls.__name__}.{name}: {len(column)} values for {count}")
        args.append(column)
    return list(map(cls, *args)) if args else [cls() for _ in range(count)]
