"""Many instances of one dataclass as one column per field, and back.

A thousand domains' watchdogs are thousands of small objects. As maps of field name
to value (``handover.plain``) each costs a map to pack and a dict of keyword arguments
to rebuild; as columns, each field is one list, built and checked in C-level passes
(``map``, ``attrgetter``), and the objects are made by one ``map`` over the class.
The columns are keyed by field name, so a later version may add a field with a default
(its column is missing here: the default fills it) or drop one (an unknown column is
ignored), as with ``plain``.

Only fields of scalar types (int, str, bytes, bool) go as columns; the caller supplies
the others (``given``).
"""

from __future__ import annotations

import dataclasses
from itertools import repeat
from operator import attrgetter
from typing import Any

from handover import plain


class ColumnError(ValueError):
    """Columns that do not rebuild the instances they should."""


def scalar_fields(cls: type) -> list[tuple[str, type]]:
    """``(name, type)`` of the fields of dataclass ``cls`` that go as columns."""
    hints = plain.hints(cls)
    fields = dataclasses.fields(cls)
    return [(f.name, hints[f.name]) for f in fields if hints[f.name] in plain.SCALARS]


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
    args: list[Any] = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.name in given:
            column = given[f.name]
        elif f.name in kinds and f.name in columns:
            column = columns[f.name]
            if not isinstance(column, list) or not set(map(type, column)) <= {kinds[f.name]}:
                raise ColumnError(f"{cls.__name__}.{f.name}: not a column of {kinds[f.name]}")
        elif f.default is not dataclasses.MISSING:
            args.append(repeat(f.default, count))
            continue
        elif f.default_factory is not dataclasses.MISSING:
            args.append([f.default_factory() for _ in range(count)])
            continue
        else:
            raise ColumnError(f"{cls.__name__}.{f.name}: no column and no default")
        if len(column) != count:
            raise ColumnError(f"{cls.__name__}.{f.name}: {len(column)} values for {count}")
        args.append(column)
    return list(map(cls, *args)) if args else [cls() for _ in range(count)]
