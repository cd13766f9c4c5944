"""Rotation in the middle of the load: daemons reopen by themselves, the follower
(``xsd-logfollow``) reports every line exactly once; SIGHUP reopens too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.logs import Load, assert_complete, by_source, read_lines, start, wait_until
from xsd_client.logformat import Line, parse_line

FOLLOW = shutil.which("xsd-logfollow")


class Follower:
    """``xsd-logfollow --json`` on a directory, its output collected by a thread."""

    def __init__(self, directory: Path, *args: str) -> None:
        if FOLLOW is None:
            pytest.fail("the xsd-logfollow console script is not installed (pip install -e .)")
        self.proc = subprocess.Popen(
            [FOLLOW, str(directory), "--json", "--poll", "0.1", "--grace", "3", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.records: list[dict[str, object]] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            self.records.append(json.loads(text))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(10)
        self.thread.join(10)


def test_rotation_under_load_follower_sees_every_line_once(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    log = shared / "xsd.log"
    follower = Follower(shared, "--from-start")
    names = ["r1", "r2", "r3"]
    daemons = [start(tmp_path / n, log, n) for n in names]
    try:
        clients = [Load(d.socket, f"{n}") for n, d in zip(names, daemons, strict=True)]
        for c in clients:
            c.start()
        time.sleep(0.5)
        os.rename(log, shared / "xsd.log.1")  # logrotate's default: rename, writers reopen
        wait_until(log.exists, what="a daemon to recreate the log file")
        time.sleep(0.5)
        os.rename(log, shared / "xsd.log.2")
        time.sleep(0.3)
        (shared / "xsd.log.1").unlink()  # the oldest goes away (the follower read it)
        time.sleep(0.5)
        for c in clients:
            c.finish()
        assert all(c.requests > 100 for c in clients)
    finally:
        for d in daemons:
            d.stop()

    def closed_all() -> bool:
        done = [
            r
            for r in follower.records
            if str(r.get("text", "")).startswith("log: closing")
            and str(r.get("text", "")).endswith("(stopped)")
        ]
        return len(done) == len(names)

    try:
        wait_until(closed_all, what="the follower to see every daemon's last line")
    finally:
        follower.stop()
    lines = [Line(**{k: v for k, v in r.items() if k != "file"}) for r in follower.records]
    groups = by_source(lines)
    assert len(groups) == len(names)
    for group in groups.values():
        assert_complete(group)
        reopened = [ln for ln in group if ln.text.startswith("log: opened")]
        # opened at start, then once per rotation the daemon noticed (2 rotations)
        assert 1 <= len(reopened) <= 3
    total_rotated = sum(1 for ln in lines if "renamed or removed" in ln.text)
    assert total_rotated >= 1
    # Every line still on disk was reported (the rest was in the removed xsd.log.1).
    on_disk, bad = read_lines([log, shared / "xsd.log.2"])
    assert not bad
    assert {(*ln.source, ln.seq) for ln in on_disk} <= {(*ln.source, ln.seq) for ln in lines}
    assert len(on_disk) < len(lines)


def test_sighup_reopens_and_follower_filters(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    log = shared / "xsd.log"
    daemon = start(tmp_path / "d", log, "hup")
    other = start(tmp_path / "o", log, "other")
    try:
        os.rename(log, shared / "old.log")
        daemon.proc.send_signal(signal.SIGHUP)
        wait_until(log.exists, what="SIGHUP to reopen the log")
        load = Load(daemon.socket, "h", count=20)
        load.start()
        load.finish()
        Load(other.socket, "o", count=5).run()
    finally:
        daemon.stop()
        other.stop()
    lines, bad = read_lines([shared / "old.log", log])
    assert not bad
    hup = [ln for ln in lines if ln.instance == "hup"]
    assert_complete(hup)
    assert any(ln.text.endswith("(SIGHUP)") for ln in hup)
    # The follower's filters, on the finished files.
    out = subprocess.run(
        [
            FOLLOW or "xsd-logfollow",
            str(shared),
            "--from-start",
            "--idle-exit",
            "0.5",
            "--source",
            "hup",
            "--type",
            "write",
            "--domain",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    parsed = [parse_line(t) for t in out]
    assert len(parsed) == 40  # 20 WRITE requests and their 20 replies
    assert all(p is not None and p.instance == "hup" and p.type == "WRITE" for p in parsed)
    as_json = subprocess.run(
        [
            FOLLOW or "xsd-logfollow",
            str(log),
            "--from-start",
            "--idle-exit",
            "0.5",
            "--json",
            "--source",
            "other",
            "--class",
            "daemon",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    records = [json.loads(t) for t in as_json]
    assert records and all(r["instance"] == "other" and r["cls"] == "daemon" for r in records)
