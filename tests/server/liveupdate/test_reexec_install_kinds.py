"""A live update after each way of installing xsd: it updates, or -f refuses it and the
old daemon serves on; never an exec that cannot start (issue 16).

Each kind is a real install of this source tree into a fresh venv (pip, no network):
editable in setuptools' default mode (an import hook in a ``.pth``: what the README's
``pip install -e .`` makes), editable in compat mode (a path in a ``.pth``), a wheel, and
a package found only by an import hook of our own that maps it to a directory of another
name (so that no ``sys.path`` can stand in for ``site``). The daemon runs from the venv's
``xsd`` with no PYTHONPATH, and ``xenstore-control live-update`` updates it to itself.

The venvs see the test interpreter's dependencies (trio, lmdb...) through a plain path
in a ``.pth``, not ``--system-site-packages``: the system's own ``.pth`` files (the
project's compat install among them) would put a second copy of xsd on the path and
hide what these tests look for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemons import ROOT, XEN_BIN, need_reference
from tests.support.liveupdate import Daemon, live_update
from tests.support.source import PACKAGES, copy_source
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _make_venv(where: Path) -> tuple[Path, Path]:
    """A venv whose python also finds the test interpreter's packages; (python, site dir)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
        env=_clean_env(),
    ).stdout.strip()
    deps = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(site) / "_test_deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    return python, Path(site)


def _pip_install(python: Path, *args: str) -> None:
    result = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            *args,
        ],
        capture_output=True,
        text=True,
        env=_clean_env(),
    )
    assert result.returncode == 0, result.stdout + result.stderr


_FINDER = """
import importlib.abc, importlib.util, os, sys
MAPPING = {mapping!r}

class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        where = MAPPING.get(name)
        if where is None:
            return None
        init = os.path.join(where, "__init__.py")
        return importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[where]
        )

def install():
    sys.meta_path.append(_Finder())
"""


def _hooked(root: Path, python: Path, site: Path) -> None:
    """Our packages in directories of other names, found by a finder a .pth installs."""
    mapping = {}
    for name in PACKAGES:
        where = root / "impl" / f"lib_{name}"
        shutil.copytree(ROOT / name, where, ignore=shutil.ignore_patterns("__pycache__"))
        mapping[name] = str(where)
    (site / "_test_finder.py").write_text(_FINDER.format(mapping=mapping))
    (site / "_test_finder.pth").write_text("import _test_finder; _test_finder.install()\n")
    script = python.parent / "xsd"
    script.write_text(
        f"#!{python}\nimport sys\nfrom xsd.server.main import main\nsys.exit(main())\n"
    )
    script.chmod(0o755)


@pytest.fixture(scope="module", params=["editable", "editable-compat", "wheel", "hooked"])
def installed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``xsd`` script of a venv holding xsd installed in the given way."""
    kind = request.param
    root = tmp_path_factory.mktemp(kind)
    python, site = _make_venv(root / "venv")
    if kind == "hooked":
        _hooked(root, python, site)
    else:
        src = copy_source(root / "src")
        if kind == "editable":
            _pip_install(python, "-e", str(src))
            # setuptools' default editable mode for this layout: an import hook
            assert list(site.glob("__editable__*finder.py")), sorted(os.listdir(site))
        elif kind == "editable-compat":
            _pip_install(python, "-e", str(src), "--config-settings", "editable_mode=compat")
        else:
            _pip_install(python, str(src))
    where = subprocess.run(
        [str(python), "-c", "import xsd; print(xsd.__file__)"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        cwd=root,  # not this tree, which python -c would put first on its path
    ).stdout.strip()
    assert where.startswith(str(root)), f"the venv imports xsd from {where!r}, not its install"
    return python.parent / "xsd"


@pytest.fixture
def daemon(installed: Path, tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon([str(installed)], tmp_path / "rd", env=_clean_env())
    yield d
    d.stop()


def test_live_update_after_each_install_kind(
    installed: Path, daemon: Daemon, request: pytest.FixtureRequest
) -> None:
    need_reference()
    pid = daemon.proc.pid
    env = dict(_clean_env(), XENSTORED_PATH=str(daemon.socket))
    with RawConn(str(daemon.socket), timeout=30) as conn:
        assert conn.write("/kind", "kept") == ("OK", b"OK\0")
        for _ in range(2):
            result = subprocess.run(
                [str(XEN_BIN / "xenstore-control"), "live-update", str(installed)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stdout + result.stderr + daemon.output()
            assert conn.call(Op.READ, "/kind") == ("OK", b"kept")
    assert daemon.proc.poll() is None and daemon.serving_pid() == pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    if "hooked" in request.node.callspec.id:
        # -S would not find the packages: its dry run said so, and it was exec'd as is
        assert cmdline[1] == os.fsencode(installed), cmdline
        assert "cannot run without site" in daemon.output()
    else:
        assert cmdline[1:3] == [b"-S", os.fsencode(installed)], cmdline
        assert "cannot run without site" not in daemon.output()


def test_a_program_that_cannot_start_is_refused_at_f(
    installed: Path, daemon: Daemon, tmp_path: Path
) -> None:
    """Its interpreter is told to skip site (``-S`` in its ``#!``): nothing finds xsd
    then, whatever the install; -f says so and the daemon serves on."""
    script = tmp_path / "xsd-nosite"
    script.write_text(installed.read_text().replace("\n", " -S\n", 1))
    script.chmod(0o755)
    if "site-packages" in (Path(installed).read_text().splitlines()[0]):
        pytest.skip("a system python")  # pragma: no cover
    with RawConn(str(daemon.socket), timeout=30) as conn:
        conn.write("/still", "here")
        kind, text = live_update(daemon.socket, str(script))
        assert kind == "OK" and text.startswith(b"New program failed to load the state: "), text
        assert b"No module named" in text, text
        assert conn.call(Op.READ, "/still") == ("OK", b"here")
    assert daemon.proc.poll() is None and daemon.serving_pid() == daemon.proc.pid
