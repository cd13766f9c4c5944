"""This repository's source as an install takes it: a copy of its top-level files and
its packages, for tests that build or install xsd in a place of their own."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.daemons import ROOT

PACKAGES = ("xsd", "xsd_client", "handover")


def copy_source(dest: Path, *also_ignore: str) -> Path:
    """The top-level files (pyproject.toml, setup.py, README...) and the packages, without
    ``__pycache__`` nor what ``also_ignore`` names (glob patterns), into ``dest``."""
    dest.mkdir()
    for item in ROOT.iterdir():
        if item.is_file():
            shutil.copy2(item, dest / item.name)
    ignore = shutil.ignore_patterns("__pycache__", *also_ignore)
    for name in PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    return dest
