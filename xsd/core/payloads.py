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
    if not payload or payload.find(b"\0") != len(payload) - 1:
        raise XsError("EINVAL")
    return payload[:-1]
