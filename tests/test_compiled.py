"""The request path compiled with mypyc (``setup.py``) and its guards (``xsd.compiled``,
``xsd_client._compiled``).

An install compiles the hot modules (the daemon's, and the client package's framing); one
whose source changed since runs from its source instead, with every other compiled module
of its package (they call each other directly: all or none), and the daemon's with the
framing's. CI installs with the README's command, so there the modules must have been
compiled.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.source import copy_source
from xsd import compiled

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "xsd" / compiled.MANIFEST
CLIENT_MANIFEST = ROOT / "xsd_client" / compiled.MANIFEST


def _hot(name: str = "HOT") -> list[str]:
    """setup.py's HOT (or CLIENT_HOT), read without running setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            return [str(v) for v in value]
    raise AssertionError(f"setup.py has no {name} list")


def _need_compiled() -> None:
    if MANIFEST.exists():
        return
    if os.environ.get("CI"):
        pytest.fail("CI installed xsd without compiling its request path (see setup.py's output)")
    pytest.skip("this install is not compiled (XSD_COMPILE=0, or no compiler)")


def test_no_compiled_module_defines_a_fields_class() -> None:
    # A compiled class keeps neither its annotations nor its __init__'s code.
    for source in _hot() + _hot("CLIENT_HOT"):
        tree = ast.parse((ROOT / source).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                assert "Fields" not in bases, f"{source}: {node.name} is a Fields class"


def test_the_manifests_list_every_hot_module() -> None:
    _need_compiled()
    for manifest, hot in ((MANIFEST, _hot()), (CLIENT_MANIFEST, _hot("CLIENT_HOT"))):
        listed = [line.split()[0] for line in manifest.read_text().splitlines() if line]
        assert listed == [s.removesuffix(".py").replace("/", ".") for s in hot]


_PROBE = """
import sys
import xsd.core.engine, xsd.server.mux, xsd.server.host
from xsd import compiled
from xsd.core.engine import Engine
from xsd_client.protocol import Op, encode
from xsd_client._compiled import CLIENT
print(compiled.status())
for name in compiled.BUILD.modules + CLIENT.modules:
    print(name, sys.modules[name].__file__)
engine = Engine()
conn = engine.connect(0)
engine.receive(conn, encode(Op.WRITE, 1, 0, b"/probe\\0v") + encode(Op.READ, 2, 0, b"/probe\\0"))
print("reply", bytes(engine.state.connections[conn].output())[-1:])
"""


def _probe(tree: Path) -> list[str]:
    env = dict(os.environ, PYTHONPATH=f"{tree}{os.pathsep}{ROOT}")
    result = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=tree.parent,  # not the repository: -c puts the directory first on the path
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in ("xsd", "xsd_client"):
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / package, tree / package, ignore=ignore)
    return tree


def test_an_unchanged_install_runs_compiled(tmp_path: Path) -> None:
    _need_compiled()
    tree = _copy(tmp_path)
    lines = _probe(tree)
    assert lines[0].startswith("the request path runs compiled"), lines[0]
    files = dict(line.split() for line in lines[1:-1])
    assert len(files) == len(_hot()) + len(_hot("CLIENT_HOT"))
    assert all(f.endswith(".so") and f.startswith(str(tree)) for f in files.values()), files
    assert lines[-1] == "reply b'v'"


def test_a_changed_source_runs_every_hot_module_from_source(tmp_path: Path) -> None:
    _need_compiled()
    tree = _copy(tmp_path)
    changed = tree / "xsd" / "core" / "paths.py"
    changed.write_text(changed.read_text() + "\n# changed after the build\n")
    lines = _probe(tree)
    assert "xsd.core.paths changed since it was compiled" in lines[0], lines[0]
    files = dict(line.split() for line in lines[1:-1] if line.startswith("xsd."))
    assert len(files) == len(_hot())
    assert all(f.endswith(".py") and f.startswith(str(tree)) for f in files.values()), files
    assert lines[-1] == "reply b'v'"


def test_a_changed_framing_runs_it_and_the_daemon_from_source(tmp_path: Path) -> None:
    # The daemon's compiled code calls the framing's directly: a stale framing would
    # still run through it, so the daemon's modules run from their sources too.
    _need_compiled()
    tree = _copy(tmp_path)
    changed = tree / "xsd_client" / "framing.py"
    changed.write_text(changed.read_text() + "\n# changed after the build\n")
    lines = _probe(tree)
    assert "xsd_client.framing changed since it was compiled (xsd_client)" in lines[0], lines[0]
    files = dict(line.split() for line in lines[1:-1])
    assert len(files) == len(_hot()) + len(_hot("CLIENT_HOT"))
    assert all(f.endswith(".py") and f.startswith(str(tree)) for f in files.values()), files
    assert lines[-1] == "reply b'v'"


def test_a_changed_daemon_module_leaves_the_client_framing_compiled(tmp_path: Path) -> None:
    # The other way round, nothing calls into the daemon's library: a client program
    # (xsc) and a daemon running as Python keep the compiled framing.
    _need_compiled()
    tree = _copy(tmp_path)
    changed = tree / "xsd" / "core" / "paths.py"
    changed.write_text(changed.read_text() + "\n# changed after the build\n")
    files = dict(line.split() for line in _probe(tree)[1:-1])
    assert files["xsd_client.framing"].endswith(".so"), files
    assert files["xsd.core.engine"].endswith(".py"), files


def test_a_source_of_another_size_runs_as_python_too(tmp_path: Path) -> None:
    _need_compiled()
    tree = _copy(tmp_path)
    manifest = tree / "xsd" / compiled.MANIFEST
    manifest.write_text(manifest.read_text().replace(" ", " 1", 1))  # another size
    lines = _probe(tree)
    assert "changed since it was compiled" in lines[0], lines[0]


def test_xsd_compile_0_installs_the_same_daemon_as_python(tmp_path: Path) -> None:
    source = copy_source(tmp_path / "src", "*.so", compiled.MANIFEST)
    target = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env["XSD_COMPILE"] = "0"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-v", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "xsd build: not compiled (XSD_COMPILE=0)" in result.stdout + result.stderr
    assert not list(target.rglob("*.so"))
    assert not (target / "xsd" / compiled.MANIFEST).exists()
    assert not (target / "xsd_client" / compiled.MANIFEST).exists()
    lines = _probe(target)
    assert lines[0] == "the request path runs as Python (not compiled)", lines[0]
    assert lines[-1] == "reply b'v'"


def test_a_manifest_of_another_form_runs_every_module_as_python(tmp_path: Path) -> None:
    _need_compiled()
    tree = _copy(tmp_path)
    manifest = tree / "xsd" / compiled.MANIFEST
    manifest.write_text(manifest.read_text() + "xsd.core.engine 14800\n")  # not this form
    lines = _probe(tree)
    assert lines[0] == (
        "the request path runs as Python: compiled.manifest is not one this version "
        "wrote (pip install again to compile it)"
    ), lines[0]
    files = dict(line.split() for line in lines[1:-1] if line.startswith("xsd."))
    assert files and all(f.endswith(".py") and f.startswith(str(tree)) for f in files.values())
    assert lines[-1] == "reply b'v'"
