"""Domain 0 can list a flooding guest's connections (issue 15, item 8; a killed daemon's
per-domain sockets: ``tests/server/test_unix_sockets_stale.py``).

``CONTROL connections`` used to answer E2BIG once its text passed 4096 bytes (about 40
connections); it now pages (``dom <domid>``, ``from <conn-id>``, a summary line).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.domains import Env, err
from xsd_client.protocol import Op

ROOT = Path(__file__).resolve().parents[3]


def _summary(text: str) -> dict[str, str]:
    last = text.splitlines()[-1]
    assert last.startswith("summary "), text[-300:]
    return dict(item.split("=") for item in last.split()[1:])


def _page_all(env: Env, dom: str | None = None, start: str | None = None) -> list[str]:
    """Every connection line, asking page after page as the summary says."""
    lines: list[str] = []
    mine = ["dom", dom] if dom is not None else []
    for _ in range(100):
        text = env.control("connections", *mine, *(["from", start] if start else []))
        assert len(text) < 4096
        lines += text.splitlines()[:-1]
        after = _summary(text)["next"]
        if after == "-":
            return lines
        start = after
    raise AssertionError("paging does not end")


def test_connections_pages_a_flooding_guests_connections(fresh: Callable[..., Env]) -> None:
    env = fresh()
    guest_count = 150  # ~100 bytes a line: far more than one reply holds
    first = env.introduce(7)
    conns = [first, *(env.guest(7) for _ in range(guest_count - 1))]
    for conn in conns:  # each one accepted and served
        assert conn.call(Op.GET_DOMAIN_PATH, 7) == ("OK", b"/local/domain/7\0")
    for conn in conns[:3]:
        assert conn.call(Op.WATCH, "data", "tok") == ("OK", b"OK\0")
    others = [env.connect0() for _ in range(5)]
    for conn in others:
        assert conn.call(Op.GET_DOMAIN_PATH, 7) == ("OK", b"/local/domain/7\0")
    # The whole list, page by page: each connection exactly once, in id order.
    everything = _page_all(env)
    ids = [int(line.split()[1]) for line in everything]
    assert ids == sorted(set(ids))
    assert len(everything) >= guest_count + len(others) + 1
    first_page = env.control("connections")
    summary = _summary(first_page)
    assert int(summary["matching"]) == len(everything)
    assert int(summary["shown"]) == len(first_page.splitlines()) - 1 < len(everything)
    # One domain's only.
    mine = _page_all(env, dom="7")
    assert len(mine) == guest_count and all(" dom7 unpriv " in line for line in mine)
    assert sum("watches=1" in line for line in mine) == 3
    assert _summary(env.control("connections", "dom", "7"))["matching"] == str(guest_count)
    # From an id on.
    middle = ids[len(ids) // 2]
    assert [int(ln.split()[1]) for ln in _page_all(env, start=str(middle))] == [
        i for i in ids if i >= middle
    ]
    assert env.control("connections", "dom", "99") == "summary matching=0 shown=0 next=-\n"
    for bad in (["dom"], ["dom", "x"], ["from", "-1"], ["dom", "1", "dom", "2"], ["all"]):
        assert env.dom0.call(Op.CONTROL, "connections", *bad) == err("EINVAL"), bad
    assert "connections\t[dom <domid>] [from <conn-id>]\n" in env.control("help")


def test_connections_from_the_command_line(fresh: Callable[..., Env]) -> None:
    env = fresh()
    env.introduce(8)
    for _ in range(59):
        assert env.guest(8).call(Op.GET_DOMAIN_PATH, 8) == ("OK", b"/local/domain/8\0")
    tool_env = {k: v for k, v in os.environ.items() if not k.startswith("XENSTORED_")}
    tool_env |= {"XENSTORED_PATH": str(env.daemon.socket), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "xsd_client.cli", "control", "connections", "dom", "8"],
        env=tool_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    summary = _summary(out.rstrip("\n"))
    assert summary["matching"] == "60" and summary["next"] != "-"
    nxt = summary["next"]
    out2 = subprocess.run(
        [sys.executable, "-m", "xsd_client.cli", "control", "connections", "dom", "8", "from", nxt],
        env=tool_env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out2.splitlines()[0].startswith(f"conn {nxt} dom8 ")
