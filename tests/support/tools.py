"""Running a script of ``tools/`` as a user does, with this checkout first on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_tool(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python tools/SCRIPT ARGS...``, its output captured as text."""
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / script), *args],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
