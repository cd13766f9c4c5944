"""A message of the wire protocol: its type numbers and the record of one.

Re-exported by :mod:`xsd_client.protocol`; a module of its own so that the framing
(:mod:`xsd_client.framing`, compiled) can make packets without importing the rest of
the protocol.
"""

from __future__ import annotations

from .frozen import Frozen
from .intenum import IntEnum


class Op(IntEnum):
    """Message type numbers (``xs_wire.h``)."""

    CONTROL = 0
    DIRECTORY = 1
    READ = 2
    GET_PERMS = 3
    WATCH = 4
    UNWATCH = 5
    TRANSACTION_START = 6
    TRANSACTION_END = 7
    INTRODUCE = 8
    RELEASE = 9
    GET_DOMAIN_PATH = 10
    WRITE = 11
    MKDIR = 12
    RM = 13
    SET_PERMS = 14
    WATCH_EVENT = 15
    ERROR = 16
    IS_DOMAIN_INTRODUCED = 17
    RESUME = 18
    SET_TARGET = 19
    RESTRICT = 20
    RESET_WATCHES = 21
    DIRECTORY_PART = 22
    GET_FEATURE = 23
    SET_FEATURE = 24
    GET_QUOTA = 25
    SET_QUOTA = 26
    INVALID = 65535


class Packet(Frozen):
    """One message: header fields and payload (immutable, equal by value)."""

    __slots__ = ("op", "payload", "req_id", "tx_id")

    op: int
    req_id: int
    tx_id: int
    payload: bytes

    def __init__(self, op: int, req_id: int, tx_id: int, payload: bytes) -> None:
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "req_id", req_id)
        object.__setattr__(self, "tx_id", tx_id)
        object.__setattr__(self, "payload", payload)

    def __repr__(self) -> str:
        try:
            name = Op(self.op).name
        except ValueError:
            name = str(self.op)
        return f"Packet({name}, req_id={self.req_id}, tx_id={self.tx_id}, {self.payload!r})"
