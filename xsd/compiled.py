"""Whether the request path runs compiled, and the guard that keeps a stale build out.

``pip install`` compiles the daemon's hot modules with mypyc (``setup.py``; why, and what
it gains: ``xsd.server.host``): extension modules beside their sources, and
``compiled.manifest`` beside this file, each compiled module with the size, modification
time and CRC-32 of the source it was made from. Python imports an extension module
before a source of the same name, so a source changed since (a ``git pull`` without a
reinstall, a developer's edit) would silently not run. :func:`guard`, called when ``xsd``
is first imported, compares the sources with the manifest. If one differs or is gone,
none of the compiled modules is used (they call each other directly, so it is all or
none): a finder first on ``sys.meta_path`` loads each of them from its source.
:func:`status` says which for the daemon's log.

This runs at every start of the daemon, a live update's included: a ``stat`` per module
(its source read and summed only if its time changed), no import but ``zlib`` then.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

MANIFEST = "compiled.manifest"
_HERE = os.path.dirname(os.path.abspath(__file__))
_stale: str | None = None  # the first compiled module whose source changed since
_compiled: list[str] = []  # the modules the manifest lists


class _FromSource:
    """A meta path finder that loads the listed modules from their sources."""

    def __init__(self, sources: dict[str, str]) -> None:
        self.sources = sources

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        source = self.sources.get(name)
        if source is None:
            return None
        from importlib.util import spec_from_file_location

        return spec_from_file_location(name, source)


def _source(module: str) -> str:
    """The source file of ``module`` (``xsd.core.engine``) in this package's directory."""
    return os.path.join(_HERE, *module.split(".")[1:]) + ".py"


def _unchanged(source: str, size: int, mtime: int, crc: int) -> bool:
    """Whether ``source`` is the file it was: the same size, and the same modification
    time or (a checkout touches it) the same CRC-32."""
    try:
        found = os.stat(source)
        if found.st_size != size:
            return False
        if found.st_mtime_ns == mtime:
            return True
        with open(source, "rb") as f:
            data = f.read()
    except OSError:
        return False
    import zlib

    return zlib.crc32(data) == crc


def guard() -> None:
    """Use the compiled modules only if every one's source is the one it was made from."""
    global _stale
    try:
        with open(os.path.join(_HERE, MANIFEST)) as f:
            listed = [line.split() for line in f.read().splitlines() if line]
    except OSError:
        return  # not compiled: nothing to guard
    sources = {}
    for module, size, mtime, crc in listed:
        _compiled.append(module)
        source = sources[module] = _source(module)
        if _stale is None and not _unchanged(source, int(size), int(mtime), int(crc)):
            _stale = module
    if _stale is not None:
        sys.meta_path.insert(0, _FromSource(sources))


def stale() -> bool:
    """Whether a compiled module's source changed since, so that none runs compiled."""
    return _stale is not None


def status() -> str:
    """One line for the log: compiled, or pure Python and why."""
    if _stale is not None:
        return (
            f"the request path runs as Python: {_stale} changed since it was compiled "
            "(pip install again to compile it)"
        )
    engine = sys.modules.get("xsd.core.engine")
    if _compiled and engine is not None and not (engine.__file__ or "").endswith(".py"):
        return f"the request path runs compiled ({len(_compiled)} modules, mypyc)"
    return "the request path runs as Python (not compiled)"
