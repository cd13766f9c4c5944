"""The build: the daemon's request path compiled with mypyc, or left as Python.

Everything else is declared in ``pyproject.toml``. ``pip install`` (editable or not)
compiles :data:`HOT`, the modules every request runs through, with mypyc (a build
requirement): C extension modules beside their sources, which Python imports first. Why
and what it gains: ``xsd/server/host.py``. The build then writes ``xsd/compiled.manifest``
(each compiled module with the size, time and CRC-32 of the source it was made from), which
``xsd.compiled`` checks when the daemon starts, so that a source changed since (a
``git pull`` without a reinstall) runs as Python instead of being shadowed by a stale
extension.

Compiling is an optimisation, never a requirement: with ``XSD_COMPILE=0`` in the
environment, without a C compiler or Python's headers, or if mypyc fails for any reason,
the build says so in one line and installs the pure-Python daemon, which behaves the
same.
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HOT = [
    "xsd/core/engine.py",
    "xsd/core/context.py",
    "xsd/core/flow.py",
    "xsd/core/views.py",
    "xsd/core/tree.py",
    "xsd/core/connections.py",
    "xsd/core/ops.py",
    "xsd/core/paths.py",
    "xsd/core/perms.py",
    "xsd/core/payloads.py",
    "xsd/core/domain_ids.py",
    "xsd/core/watch_index.py",
    "xsd/core/requests/request_type.py",
    "xsd/core/requests/nodes.py",
    "xsd/core/requests/transactions.py",
    "xsd/core/requests/watches.py",
    "xsd/core/watchdogs/feature.py",
    "xsd/core/watchdogs/machine.py",
    "xsd/core/watchdogs/guest.py",
    "xsd/core/watchdogs/layout.py",
    "xsd/server/host.py",
    "xsd/server/mux.py",
]
"""The daemon's compiled modules. None may define a ``xsd.core.fields.Fields`` class: a compiled
class keeps neither its annotations nor its ``__init__``'s code, which ``fields`` reads
(``tests/test_compiled.py`` checks)."""

GROUP = "xsd.compiled"
"""mypyc's name for the shared library that holds the compiled code of all of them."""

CLIENT_HOT = ["xsd_client/framing.py"]
"""The client package's compiled module: the wire's framing, which every request the
daemon answers runs through too. A library of its own (:data:`CLIENT_GROUP`), so that
a client program loads none of the daemon's."""

CLIENT_GROUP = "xsd_client.compiled"

MANIFESTS = {
    Path("xsd") / "compiled.manifest": HOT,
    Path("xsd_client") / "compiled.manifest": CLIENT_HOT,
}
"""Where the build lists what it compiled, package by package (``xsd_client._compiled``
reads them)."""


def _say(text: str) -> None:
    print(f"xsd build: {text}", file=sys.stderr)


class CompileHot(build_ext):
    """build_ext that makes :data:`HOT`'s extensions with mypyc, or none."""

    def finalize_options(self) -> None:
        # mypyc's extensions replace the placeholder before build_ext prepares them.
        self.failed: str | None = None
        exts: list[Extension] = []
        if os.environ.get("XSD_COMPILE", "1") == "0":
            self.failed = "XSD_COMPILE=0"
        else:
            try:
                from mypyc.build import mypycify

                # The build's environment has mypy, not the daemon's dependencies
                # (trio): what the hot modules use of them is typed Any.
                exts = mypycify(
                    ["--ignore-missing-imports", *HOT, *CLIENT_HOT],
                    opt_level="3",
                    separate=[(HOT, GROUP), (CLIENT_HOT, CLIENT_GROUP)],
                )
            except (Exception, SystemExit) as exc:  # any failure: pure Python
                self.failed = f"{type(exc).__name__}: {exc}"
        self.distribution.ext_modules = exts
        super().finalize_options()

    def run(self) -> None:
        if self.failed is None and self.extensions:
            try:
                super().run()
            except (Exception, SystemExit) as exc:  # any failure: pure Python
                self.failed = f"{type(exc).__name__}: {exc}"
                self._remove_outputs()
        if self.failed is not None:
            _say(f"not compiled ({self.failed}); the daemon stays pure Python")
            return
        self._write_manifest()
        _say(f"compiled {len(HOT) + len(CLIENT_HOT)} modules with mypyc")

    def _root(self) -> Path:
        """Where the packages are laid out: the source tree (in place) or the build's."""
        return Path(".") if self.inplace else Path(self.build_lib)

    def _remove_outputs(self) -> None:
        for ext in self.extensions:
            path = Path(self.get_ext_fullpath(ext.name))
            path.unlink(missing_ok=True)
        for manifest in MANIFESTS:
            (self._root() / manifest).unlink(missing_ok=True)
        self.extensions = []

    def _write_manifest(self) -> None:
        for manifest, sources in MANIFESTS.items():
            lines = []
            for source in sources:
                data = Path(source).read_bytes()
                mtime = Path(source).stat().st_mtime_ns
                module = source.removesuffix(".py").replace("/", ".")
                lines.append(f"{module} {len(data)} {mtime} {zlib.crc32(data)}\n")
            target = self._root() / manifest
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(lines))


# A placeholder, replaced in CompileHot.finalize_options: it makes the wheel a platform one and
# build_ext run at all, without running mypyc in every setup.py command (sdist, metadata).
setup(
    ext_modules=[Extension(f"{GROUP}__mypyc", sources=[])],
    cmdclass={"build_ext": CompileHot},
)
