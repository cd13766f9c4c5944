"""``IntEnum`` without importing ``enum``: the base of :class:`xsd_client.protocol.Op`.

``enum`` imports ``functools``, ``operator``, ``collections`` and ``types``, and making an
``IntEnum`` of 28 members runs a good deal of Python: together ~4 ms of every one-shot
``xsc`` command (measured with ``python -X importtime``), a third of its start-up. This
base gives a class of integer constants what the package uses of ``IntEnum``:

* each upper-case ``NAME = number`` of the class body becomes a member: an instance of
  the class (so an ``int``, equal and hashed as its number) with ``name`` and ``value``;
* ``Cls(number)`` is the member with that number (ValueError if none), ``Cls[name]`` the
  member of that name (KeyError), ``number in Cls`` whether a member has it, iteration
  the members in definition order, ``len(Cls)`` their count, ``Cls.__members__`` and
  ``Cls._value2member_map_`` the two mappings;
* ``repr()`` is ``<Cls.NAME: number>``, ``str()`` and ``format()`` the number (as an
  ``IntEnum``'s in Python 3.11), pickling and copying keep the member.

Type checkers see ``enum.IntEnum`` itself (``TYPE_CHECKING`` is true for them), so they
check member names and types exactly as before.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:
    from enum import IntEnum as IntEnum
else:

    class _IntEnumType(type):
        def __new__(mcls, name, bases, namespace):
            members = {
                key: value
                for key, value in namespace.items()
                if key.isupper() and type(value) is int
            }
            for key in members:
                del namespace[key]
            cls = super().__new__(mcls, name, bases, namespace)
            by_name, by_value = {}, {}
            for key, number in members.items():
                member = int.__new__(cls, number)
                member._name_ = key
                by_name[key] = by_value.setdefault(number, member)
                type.__setattr__(cls, key, by_value[number])
            type.__setattr__(cls, "__members__", by_name)
            type.__setattr__(cls, "_value2member_map_", by_value)
            return cls

        def __call__(cls, value):
            try:
                return cls._value2member_map_[value]
            except (KeyError, TypeError):
                raise ValueError(f"{value!r} is not a valid {cls.__qualname__}") from None

        def __getitem__(cls, name):
            return cls.__members__[name]

        def __contains__(cls, value):
            try:
                return value in cls._value2member_map_
            except TypeError:
                return False

        def __iter__(cls):
            return iter(list(cls._value2member_map_.values()))

        def __len__(cls):
            return len(cls._value2member_map_)

        def __setattr__(cls, name, value):
            if name in cls.__dict__.get("__members__", ()):
                raise AttributeError(f"cannot reassign member {name!r}")
            super().__setattr__(name, value)

    class IntEnum(int, metaclass=_IntEnumType):
        """An integer constant with a name (see the module's docstring)."""

        @property
        def name(self):
            return self._name_

        @property
        def value(self):
            return int(self)

        def __repr__(self):
            return f"<{type(self).__qualname__}.{self._name_}: {int(self)}>"

        __str__ = int.__repr__

        def __format__(self, spec):
            return int.__format__(int(self), spec)

        def __reduce_ex__(self, protocol):
            return type(self), (int(self),)

        def __copy__(self):
            return self

        def __deepcopy__(self, memo):
            return self


__all__ = ["IntEnum"]
