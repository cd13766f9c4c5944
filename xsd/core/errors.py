"""The one exception the core raises for a request: a Xenstore error name."""

from __future__ import annotations

from xsd_client.protocol import ERROR_NAMES


class XsError(Exception):
    """A request failed with the Xenstore error ``name`` (one of ``ERROR_NAMES``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        # Only names of the wire table may reach a client (C maps the rest to EINVAL).
        self.name = name if name in ERROR_NAMES else "EINVAL"
        super().__init__(self.name)


class Deferred(Exception):
    """The request's reply will come later, from the shell (live update).

    ``arguments`` are the request's arguments after the command name.
    """

    def __init__(self, command: str, args: list[bytes]) -> None:
        super().__init__(command)
        self.command = command
        self.arguments = args
