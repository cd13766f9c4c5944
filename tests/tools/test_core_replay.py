"""The in-process replay of the boot storm and the txn unit (``tools.bench.core_replay``)."""

from __future__ import annotations

import pytest

from tools.bench import core_replay
from xsd_client.protocol import Op


def test_boot_units_play_every_worker_s_domain_life_without_an_error() -> None:
    spent = core_replay.boot(units=2, workers=2)  # a unit that went wrong raises
    assert spent[Op.INTRODUCE][1] == 4  # once per unit of each worker
    assert spent[Op.RELEASE][1] == 4
    assert spent[Op.TRANSACTION_START][1] == spent[Op.TRANSACTION_END][1] > 4
    assert all(seconds >= 0 for seconds, _ in spent.values())


def test_txn_units_commit(capsys: pytest.CaptureFixture[str]) -> None:
    ticks = iter(range(1_000_000))  # a commit that fails raises
    assert core_replay.txn(units=3, clock=lambda: float(next(ticks))) == 3.0
    core_replay.main(["--units", "1", "--txn", "2", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "INTRODUCE" in out and "txn:" in out
