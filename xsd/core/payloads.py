"""What the request handlers share about payloads: the one-argument form and ``OK``."""

from __future__ import annotations

from xsd.core.errors import XsError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final

OK: Final = b"OK\0"
"""The reply payload of a request that succeeded and has nothing to say."""


def one_arg(payload: bytes) -> bytes:
    """The argument of a one-string request: exactly one NUL, and it ends the payload.

    Raises:
        XsError: EINVAL otherwise, as C xenstored answers.
    """
    # Compiled, the last byte is read natively and ``0 in`` is one memchr: ``find`` was a
    # call by name with its arguments parsed, ~800 of the ~1,100 instructions it cost.
    # (``b"\0" in`` costs twice as much again: bytes tries the operand as an int first,
    # and the TypeError it raises and clears is the cost.)
    if not payload or payload[-1] != 0:
        raise XsError("EINVAL")
    arg = payload[:-1]
    if 0 in arg:
        raise XsError("EINVAL")
    return arg
