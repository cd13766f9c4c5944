"""Typed state parts to msgpack-able plain data and back, by their type hints.

A part of the state that has no record kind of its own travels as plain data (earlier
versions sent the watchdogs so): the core's slotted classes (``xsd.core.fields``) as
maps of field name to value (so a later version can add a field with a default, or drop
one), dicts as lists of pairs (msgpack keys must be simple), sets sorted, tuples and
deques as lists.

The conversion is driven by the type hints, once per type: :func:`encoder` and
:func:`decoder` build (and cache) one small function per hint, so converting a thousand
domains' watchdogs costs a few function calls each, not a walk of ``typing`` per value.
This module imports ``typing`` and evaluates hints: a live update's restore loads it
only for parts sent this way.
"""

from __future__ import annotations

import functools
import types
import typing
from collections import deque
from collections.abc import Callable
from typing import Any

from handover.columns import SCALARS
from xsd.core import fields

Convert = Callable[[Any], Any]


class PlainError(ValueError):
    """Plain data that does not fit the type it should rebuild."""


def _same(value: Any) -> Any:
    return value


@functools.cache
def hints(cls: type) -> dict[str, Any]:
    """The evaluated type hints of a class (``get_type_hints`` is slow: once per class)."""
    return typing.get_type_hints(cls)


@functools.cache
def encoder(hint: Any) -> Convert:
    """The function that turns a value of type ``hint`` into plain data."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if _is_fields_class(hint):
        encoders = [(name, encoder(hints(hint)[name])) for name in fields.names(hint)]

        def encode_fields(value: Any) -> Any:
            return {name: enc(getattr(value, name)) for name, enc in encoders}

        return encode_fields
    if origin in (typing.Union, types.UnionType):
        options = [encoder(a) for a in args if a is not type(None)]
        if len(options) == 1:
            (only,) = options
            return lambda value: None if value is None else only(value)
        return to_plain  # a real union: go by the value
    if origin is dict:
        key, val = encoder(args[0]), encoder(args[1])
        if key is _same and val is _same:
            return lambda value: [[k, v] for k, v in value.items()]
        return lambda value: [[key(k), val(v)] for k, v in value.items()]
    if origin in (list, deque) or (origin is tuple and args[1:] == (Ellipsis,)):
        item = encoder(args[0])
        return list if item is _same else (lambda value: [item(v) for v in value])
    if origin is tuple:
        items = [encoder(a) for a in args]
        if all(i is _same for i in items):
            return list
        return lambda value: [i(v) for i, v in zip(items, value, strict=True)]
    if origin in (set, frozenset):
        item = encoder(args[0])
        return lambda value: sorted(item(v) for v in value)
    if hint in (int, str, bytes, bool, float, type(None)) or hint is Any or hint is object:
        return _same
    return to_plain


def to_plain(value: Any) -> Any:
    """Any value to plain data, going by what the value is (for untyped parts)."""
    if isinstance(value, fields.Fields):
        kind: Any = type(value)  # a class, hashable (mypy takes Fields' __eq__ for its)
        return encoder(kind)(value)
    if isinstance(value, dict):
        return [[to_plain(k), to_plain(v)] for k, v in value.items()]
    if isinstance(value, list | tuple | deque):
        return [to_plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(to_plain(v) for v in value)
    return value


@functools.cache
def decoder(hint: Any) -> Convert:
    """The function that rebuilds a value of type ``hint`` from :func:`encoder`'s output.

    The function raises :class:`PlainError` (or TypeError, KeyError) for data that does
    not fit."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if _is_fields_class(hint):
        return _fields_decoder(hint)
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(args)
    if origin is dict:
        key, val = decoder(args[0]), decoder(args[1])
        return lambda plain: {key(k): val(v) for k, v in plain}
    if origin is list:
        item = decoder(args[0])
        return lambda plain: [item(v) for v in _list(plain)]
    if origin is deque:
        item = decoder(args[0])
        return lambda plain: deque(item(v) for v in _list(plain))
    if origin in (set, frozenset):
        item = decoder(args[0])
        return lambda plain: origin(item(v) for v in _list(plain))
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            item = decoder(args[0])
            return lambda plain: tuple(item(v) for v in _list(plain))
        if all(a in SCALARS for a in args):
            return _scalar_tuple_decoder(args)
        items = [decoder(a) for a in args]
        return lambda plain: tuple(i(v) for i, v in zip(items, _list(plain), strict=True))
    if hint is float:
        return _float
    if hint in (int, str, bytes, bool):
        return functools.partial(_scalar, hint)
    if hint is Any or hint is object:
        return _same
    raise PlainError(f"cannot rebuild a value of type {hint}")


def _is_fields_class(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, fields.Fields)


def _fields_decoder(cls: type) -> Convert:
    # Scalar fields are checked inline rather than through a function each: a thousand
    # domains' watchdogs are tens of thousands of them.
    checked: list[tuple[str, type]] = []
    converted: list[tuple[str, Convert]] = []
    for name in fields.names(cls):
        hint = hints(cls)[name]
        if hint in SCALARS:
            checked.append((name, hint))
        else:
            converted.append((name, decoder(hint)))

    def decode_fields(plain: Any) -> Any:
        if not isinstance(plain, dict):
            raise PlainError(f"{cls.__name__} expected a map")
        kwargs = {}
        for name, kind in checked:
            if name in plain:
                value = plain[name]
                if not isinstance(value, kind):
                    raise PlainError(
                        f"{cls.__name__}.{name}: expected {kind.__name__}, "
                        f"got {type(value).__name__}"
                    )
                kwargs[name] = value
        for name, dec in converted:
            if name in plain:
                kwargs[name] = dec(plain[name])
        return cls(**kwargs)

    return decode_fields


def _scalar_tuple_decoder(kinds: tuple[type, ...]) -> Convert:
    def decode_tuple(plain: Any) -> tuple[Any, ...]:
        items = _list(plain)
        if len(items) != len(kinds) or not all(map(isinstance, items, kinds)):
            raise PlainError(f"expected a tuple of {', '.join(k.__name__ for k in kinds)}")
        return tuple(items)

    return decode_tuple


def _union_decoder(args: tuple[Any, ...]) -> Convert:
    options = [decoder(a) for a in args if a is not type(None)]
    optional = type(None) in args

    def decode_union(plain: Any) -> Any:
        if plain is None and optional:
            return None
        for option in options:
            try:
                return option(plain)
            except (PlainError, TypeError, ValueError, KeyError):
                continue
        raise PlainError(f"{plain!r} matches no type of {args}")

    return decode_union


def _list(plain: Any) -> list[Any]:
    if not isinstance(plain, list):
        raise PlainError(f"expected a list, got {type(plain).__name__}")
    return plain


def _float(plain: Any) -> float:
    if isinstance(plain, bool) or not isinstance(plain, int | float):
        raise PlainError(f"expected float, got {type(plain).__name__}")
    return float(plain)


def _scalar(hint: type, plain: Any) -> Any:
    if not isinstance(plain, hint):
        raise PlainError(f"expected {hint.__name__}, got {type(plain).__name__}")
    return plain


def from_plain(hint: Any, plain: Any) -> Any:
    """Rebuild a value of type ``hint`` from plain data (see :func:`decoder`)."""
    return decoder(hint)(plain)
