"""The shell's part of a live update's hand-over, one typed record (handover.shell_record):
it travels as the untyped map did, so the states written before it load the same, and a
record of the wrong types is refused in one line, at the dry run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import handover
from handover import records, stream, transports
from handover.shell_record import ShellRecord
from xsd.core.engine import Engine

FIXTURES = Path(__file__).parent / "fixtures"

# What the shell wrote before the record existed (xsd.server.daemon.handover_extra and
# the -s additions), as the dump sent it and a new process read it.
UNTYPED = {
    "listeners": {0: 5, 7: 6},
    "conns": {3: 8, 4: 9},
    "lock": 4,
    "log": {"fd": 10, "path": "/var/log/xsd.log", "seq": 12, "written": 900},
    "live_update_reply": 3,
    "timeline": [["-s", 100], ["dumped", 250]],
    "exec": "/usr/bin/xsd --rundir /run (state: memfd)",
}


def _load_via_memfd(extra: dict[str, Any]) -> tuple[object, ShellRecord]:
    fd = transports.write_memfd_stream(stream.pack_each(records.dump(Engine().state, extra)))
    return handover.load(f"fd:{fd}")


def test_a_state_with_the_untyped_map_loads_into_the_record() -> None:
    _, record = _load_via_memfd(UNTYPED)
    assert record == ShellRecord(
        listeners={0: 5, 7: 6},
        conns={3: 8, 4: 9},
        lock=4,
        log=UNTYPED["log"],
        live_update_reply=3,
        timeline=[["-s", 100], ["dumped", 250]],
        exec="/usr/bin/xsd --rundir /run (state: memfd)",
    )
    assert record.descriptors() == [5, 6, 8, 9]


def test_the_record_is_sent_as_the_untyped_map_was() -> None:
    record = ShellRecord.from_extra(UNTYPED)
    assert record.to_extra() == UNTYPED
    # a dry run's dump: no -s to answer, no timeline, no exec (keys left out, as before)
    dry = ShellRecord(listeners={0: 5}, conns={}, lock=None, log={"fd": None})
    assert dry.to_extra() == {"listeners": {0: 5}, "conns": {}, "lock": None, "log": {"fd": None}}
    _, again = _load_via_memfd(dry.to_extra())
    assert again == dry


def test_string_keys_are_read_as_numbers() -> None:
    record = ShellRecord.from_extra({"listeners": {"0": 5}, "conns": {"12": 7}})
    assert (record.listeners, record.conns) == ({0: 5}, {12: 7})


@pytest.mark.parametrize("name", ["state-v1", "state-v2"])
def test_earlier_formats_load_with_an_empty_record(name: str) -> None:
    blob = (FIXTURES / f"{name}.xsdstate").read_bytes()
    _, extra = records.load(stream.decode_state(blob))
    record = ShellRecord.from_extra(extra)  # their map holds a key of no field: left alone
    assert record == ShellRecord()
    assert record.descriptors() == [] and record.lock is None and record.exec is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("conns", {"three": 8}, "the hand-over's conns is not a map of numbers"),
        ("listeners", [1, 2], "the hand-over's listeners is not a map of numbers"),
        ("conns", {3: "8"}, "the hand-over's conns are not descriptors"),
        ("lock", "4", "the hand-over's lock is not a number"),
        ("exec", 5, "the hand-over's exec is not text"),
        ("log", [1], "the hand-over's log is not a map"),
    ],
)
def test_a_record_of_the_wrong_types_is_refused(field: str, value: Any, message: str) -> None:
    with pytest.raises(handover.StateError, match=message):
        _load_via_memfd({**UNTYPED, field: value})


def test_the_dry_run_refuses_it_in_one_line(tmp_path: Path) -> None:
    bad = list(records.dump(Engine().state, {**UNTYPED, "conns": {3: "eight"}}))
    transports.write_lmdb(tmp_path / "bad.lmdb", bad)
    check = subprocess.run(
        [sys.executable, "-m", "xsd", "--check-state", f"lmdb:{tmp_path / 'bad.lmdb'}"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        "xsd: cannot load state: the hand-over's conns are not descriptors"
    ]
