"""When durable mode's next checkpoint is due (``Durable.checkpoint_due``): once the
journal holds ``--state-dir-checkpoint`` entries, or half as many as the tree has nodes
now if that is more, so a big tree is not dumped again every few seconds under writes.
A real engine answers real writes; the state directory is a real LMDB one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from xsd.core.state import State
from xsd.server.durable import open_state
from xsd_client.protocol import Op, encode


@pytest.mark.parametrize(("nodes", "every", "due"), [(10, 40, 40), (300, 40, 150)])
def test_a_checkpoint_is_due_after_more_entries_the_bigger_the_tree(
    tmp_path: Path, nodes: int, every: int, due: int
) -> None:
    args = argparse.Namespace(
        state_dir=tmp_path / "state",
        state_dir_sync=False,
        state_dir_checkpoint=every,
        state_dir_restore="same-boot",
    )
    durable = open_state(args, State(), None)
    try:
        engine = durable.engine
        conn = engine.connect(0)
        for i in range(nodes):
            engine.receive(conn, encode(Op.WRITE, i + 1, 0, b"/t/n%d\0v" % i))
            engine.take_effects()
            durable.commit()
        count = len(engine.state.tree.nodes)  # and /, /t, /tool, /tool/xenstored
        assert count >= nodes
        durable.checkpoint_sync()
        assert durable.entries == 0 and not durable.checkpoint_due()
        threshold = max(every, count // 2)
        assert threshold >= due
        for i in range(threshold):  # one journal entry a write
            assert not durable.checkpoint_due(), i
            engine.receive(conn, encode(Op.WRITE, 1, 0, b"/t/n0\0v%d" % i))
            engine.take_effects()
            durable.commit()
        assert durable.entries == threshold and durable.checkpoint_due()
    finally:
        durable.close()
