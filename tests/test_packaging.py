"""The distribution as a user gets it: an sdist with the docs, a wheel whose client
installs into a bare virtual environment without the daemon's dependencies.

Built with ``python -m build`` (the wheel from the sdist, as pip would build it) and
installed with pip into a fresh venv that sees no other site-packages, from the wheel
alone (``--no-index``): pip refuses if the wheel requires anything it cannot find there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAEMON_DEPS = {"trio", "msgpack", "lmdb", "watchdog"}


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel built from it."""
    try:
        import build  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the 'build' package (dev extra) is not installed")
        pytest.skip("the 'build' package (dev extra) is not installed")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("xsd-*.tar.gz")
    (wheel,) = out.glob("xsd-*.whl")
    return sdist, wheel


def test_the_sdist_carries_the_docs_and_the_peers(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for wanted in ("docs/design.md", "docs/differences.md", "docs/xsd.example.toml",
                   "docs/xsd.service", "LICENSE", "README.md", "tools/peers/xen-standin.c",
                   "tools/peers/reference-xenstored", ".ci/run"):  # fmt: skip
        assert wanted in names, wanted


def test_the_wheel_requires_nothing_but_through_its_extras(dists: tuple[Path, Path]) -> None:
    _, wheel = dists
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = whl.read(meta).decode()
    for package in ("xsd", "xsd_client", "handover"):
        assert f"{package}/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    fields = [line.split(": ", 1) for line in metadata.split("\n\n", 1)[0].splitlines()]
    requires = [value for key, value in fields if key == "Requires-Dist"]
    assert requires and all("extra ==" in r for r in requires), requires
    daemon = {r.split(">")[0] for r in requires if 'extra == "daemon"' in r}
    assert daemon == DAEMON_DEPS
    assert ["License-Expression", "MIT"] in fields
    assert sum(1 for key, _ in fields if key == "Classifier") >= 5


def test_the_client_installs_alone_into_a_bare_venv(
    dists: tuple[Path, Path], tmp_path: Path
) -> None:
    _, wheel = dists
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--disable-pip-version-check",
         "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    plain = subprocess.run(
        [str(python), "-c", "import xsd_client.client, xsd_client.cli, sys;"
         "print(sorted(m for m in ('trio', 'msgpack', 'lmdb', 'watchdog') if m in sys.modules))"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )  # fmt: skip
    assert plain.returncode == 0 and plain.stdout.strip() == "[]", plain.stderr
    version = subprocess.run(
        [str(venv / "bin" / "xsc"), "--version"], capture_output=True, text=True, env=env
    )
    assert version.stdout == "xsc 0.1.0\n", version.stderr
    daemon = subprocess.run(
        [str(venv / "bin" / "xsd"), "--rundir", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert daemon.returncode == 1
    (line,) = daemon.stderr.splitlines()
    missing = line.split("'")[1]
    assert missing in DAEMON_DEPS
    assert line == (
        f"xsd: the daemon needs the Python package '{missing}', which is not installed: "
        "pip install 'xsd[daemon]'"
    )
