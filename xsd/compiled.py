"""Whether the request path runs compiled, and the guard that keeps a stale build out.

``pip install`` compiles the daemon's hot modules with mypyc (``setup.py``; why, and what
it gains: ``xsd.server.host``), and the client package's framing, which every request
runs through too (:mod:`xsd_client.framing`). Each package has its manifest and its
guard (:mod:`xsd_client._compiled`): :func:`guard`, called when ``xsd`` is first
imported, runs this package's. A compiled module whose source changed since runs from
its source, with every other compiled module of the package. The daemon's compiled code
calls the framing's compiled code directly, so if the client package's build is stale
(its guard ran when ``xsd_client`` was imported, just before), the daemon's runs as
Python too. :func:`status` says which for the daemon's log.
"""

from __future__ import annotations

import sys

from xsd_client._compiled import CLIENT, MANIFEST, Build, directory_of

__all__ = ["MANIFEST", "guard", "stale", "status"]

BUILD = Build(__name__.partition(".")[0], directory_of(__file__))
"""The daemon's compiled modules."""


def guard() -> None:
    """Use the compiled modules only if every one's source is the one it was made from,
    the client package's framing included."""
    BUILD.guard(None if CLIENT.stale is None else f"{CLIENT.stale} (xsd_client)")


def stale() -> bool:
    """Whether a compiled module's source changed since, so that none runs compiled."""
    return BUILD.stale is not None


def status() -> str:
    """One line for the log: compiled, or pure Python and why."""
    if (why := BUILD.stale) is not None:
        return f"the request path runs as Python: {why} (pip install again to compile it)"
    engine = sys.modules.get("xsd.core.engine")
    modules = len(BUILD.modules) + len(CLIENT.modules)
    if BUILD.modules and engine is not None and not (engine.__file__ or "").endswith(".py"):
        return f"the request path runs compiled ({modules} modules, mypyc)"
    return "the request path runs as Python (not compiled)"
