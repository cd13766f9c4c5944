"""How the client tests run ``xsc`` and Xen's tools as fresh processes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

XSC = [sys.executable, "-m", "xsd_client.cli"]
"""The command line that runs xsc from this checkout."""


def tool_env(socket: str) -> dict[str, str]:
    """An environment pointing xenstore-utils and xsc at ``socket``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XENSTORED_")}
    env["XENSTORED_PATH"] = socket
    env["PYTHONPATH"] = str(ROOT)
    return env
