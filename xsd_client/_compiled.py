"""The guard that keeps a stale compiled build out, for each package that has one.

``pip install`` compiles a few modules with mypyc (``setup.py``): the daemon's request
path in ``xsd`` and the wire's framing here (:mod:`xsd_client.framing`). They are
extension modules beside their sources, with ``compiled.manifest`` beside the package's
``__init__``: each compiled module with the size, modification time and CRC-32 of the
source it was made from. Python imports an extension module before a source of the same
name, so a source changed since (a ``git pull`` without a reinstall, a developer's edit)
would silently not run. :meth:`Build.guard`, called when the package is first imported,
compares the sources with the manifest; if one differs or is gone, none of the package's
compiled modules is used (they call each other directly: all or none), and a finder first
on ``sys.meta_path`` loads each from its source.

This runs at every start of a program that imports the package, a live update's
included: a ``stat`` per module (its source read and summed only if its time changed),
no import but ``zlib`` then.
"""

from __future__ import annotations

import posix  # os's C half: importing os costs a one-shot xsc ~1.7 ms it may not need
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see _typing)
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

MANIFEST = "compiled.manifest"


class _FromSource:
    """A meta path finder that loads the listed modules from their sources, or every
    module of a package (``sources`` None) that has a source."""

    def __init__(self, build: Build, sources: dict[str, str] | None) -> None:
        self.build = build
        self.sources = sources

    def find_spec(
        self, name: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if self.sources is not None:
            source = self.sources.get(name)
        elif name.startswith(self.build.package + "."):
            source = self.build.source(name)
            try:
                posix.stat(source)
            except OSError:
                return None  # a package (its __init__) or nothing: the usual finders
        else:
            source = None
        if source is None:
            return None
        # importlib.machinery, not importlib.util (which imports functools, collections:
        # the one-shot client's budget, tests/client/test_cli_oneshot_imports.py).
        from importlib.machinery import ModuleSpec, SourceFileLoader

        spec = ModuleSpec(name, SourceFileLoader(name, source), origin=source)
        spec.has_location = True  # __file__ is the source
        return spec


def _unchanged(source: str, size: int, mtime: int, crc: int) -> bool:
    """Whether ``source`` is the file it was: the same size, and the same modification
    time or (a checkout touches it) the same CRC-32."""
    try:
        found = posix.stat(source)
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


class Build:
    """One package's compiled modules: which, and whether they may run."""

    def __init__(self, package: str, directory: str) -> None:
        self.package = package
        self.directory = directory
        self.modules: list[str] = []
        """The modules the manifest lists (none: the package was not compiled)."""
        self.stale: str | None = None
        """Why none of them runs compiled: the first source that changed, if one did."""

    def source(self, module: str) -> str:
        """The source file of ``module`` (``xsd.core.engine``) in this package."""
        return "/".join([self.directory, *module.split(".")[1:]]) + ".py"

    def guard(self, stale: str | None = None) -> None:
        """Use the compiled modules only if every one's source is the one it was made
        from (and ``stale``, a reason given by the caller, is None)."""
        try:
            with open(f"{self.directory}/{MANIFEST}", "rb") as f:
                text = f.read()
        except OSError:
            return  # not compiled: nothing to guard
        try:
            listed = [line.split() for line in text.decode().splitlines() if line]
            self.modules.extend(fields[0] for fields in listed)
            sources = {module: self.source(module) for module in self.modules}
            for module, size, mtime, crc in listed:
                if stale is None and not _unchanged(
                    sources[module], int(size), int(mtime), int(crc)
                ):
                    stale = f"{module} changed since it was compiled"
        except ValueError:  # not a manifest this version wrote: trust none of it
            self.stale = f"{MANIFEST} is not one this version wrote"
            sys.meta_path.insert(0, _FromSource(self, None))
            return
        if stale is not None:
            self.stale = stale
            sys.meta_path.insert(0, _FromSource(self, sources))


def directory_of(module_file: str) -> str:
    """The absolute directory of a module's file (``os.path`` without importing it)."""
    directory = module_file.rpartition("/")[0] or "."
    return directory if directory.startswith("/") else f"{posix.getcwd()}/{directory}"


CLIENT = Build(__name__.rpartition(".")[0], directory_of(__file__))
"""This package's build (:mod:`xsd_client.framing`), guarded when the package is imported."""
