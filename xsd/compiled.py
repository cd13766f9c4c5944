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
_stale: str | None = None  # why none runs compiled: the first source that changed
_compiled: list[str] = []  # the modules the manifest lists


class _FromSource:
    """A meta path finder that loads the listed modules (None: every module of this
    package) from their sources."""

    def __init__(self, sources: dict[str, str] | None) -> None:
        self.sources = sources

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if self.sources is not None:
            source = self.sources.get(name)
        elif name.startswith("xsd."):
            source = _source(name)
            if not os.path.exists(source):
                return None  # a package (its __init__) or nothing: the usual finders
        else:
            source = None
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
        with open(os.path.join(_HERE, MANIFEST), "rb") as f:
            text = f.read()
    except OSError:
        return  # not compiled: nothing to guard
    try:
        listed = [line.split() for line in text.decode().splitlines() if line]
        _compiled.extend(fields[0] for fields in listed)
        sources = {module: _source(module) for module in _compiled}
        for module, size, mtime, crc in listed:
            if not _unchanged(sources[module], int(size), int(mtime), int(crc)):
                _stale = f"{module} changed since it was compiled"
                break
    except ValueError:  # not a manifest this version wrote: trust none of it
        _stale = f"{MANIFEST} is not one this version wrote"
        sys.meta_path.insert(0, _FromSource(None))
        return
    if _stale is not None:
        sys.meta_path.insert(0, _FromSource(sources))


def stale() -> bool:
    """Whether a compiled module's source changed since, so that none runs compiled."""
    return _stale is not None


def status() -> str:
    """One line for the log: compiled, or pure Python and why."""
    if _stale is not None:
        return f"the request path runs as Python: {_stale} (pip install again to compile it)"
    engine = sys.modules.get("xsd.core.engine")
    if _compiled and engine is not None and not (engine.__file__ or "").endswith(".py"):
        return f"the request path runs compiled ({len(_compiled)} modules, mypyc)"
    return "the request path runs as Python (not compiled)"
