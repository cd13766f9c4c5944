"""When durable mode's next checkpoint is due (``Durable.checkpoint_due``): once the
journal holds ``--state-dir-checkpoint`` entries, or half as many as the tree has nodes
now if that is more, so a big tree is not dumped again every few seconds under writes;
or once the tree has grown by as many nodes as it had (``--state-dir-checkpoint`` at
least), so that a bulk load in few passes is not all replayed at a restart.
A real engine answers real writes; the state directory is a real LMDB one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from xsd.core.state import State
from xsd.server.durable import open_state
from xsd_client.protocol import Op, encode


def _options(tmp_path: Path, every: int) -> argparse.Namespace:
    return argparse.Namespace(
        state_dir=tmp_path / "state",
        state_dir_sync=False,
        state_dir_checkpoint=every,
        state_dir_restore="same-boot",
    )


@pytest.mark.parametrize(("nodes", "every", "due"), [(10, 40, 40), (300, 40, 150)])
def test_a_checkpoint_is_due_after_more_entries_the_bigger_the_tree(
    tmp_path: Path, nodes: int, every: int, due: int
) -> None:
    durable = open_state(_options(tmp_path, every), State(), None)
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


def test_a_checkpoint_is_due_once_the_tree_has_doubled_in_few_entries(tmp_path: Path) -> None:
    durable = open_state(_options(tmp_path, 40), State(), None)
    try:
        engine = durable.engine
        conn = engine.connect(0)
        made = 0

        def one_pass(count: int) -> None:  # one journal entry creating ``count`` nodes
            nonlocal made
            for _ in range(count):
                engine.receive(conn, encode(Op.WRITE, 1, 0, b"/bulk/n%d\0v" % made))
                made += 1
            engine.take_effects()
            durable.commit()

        start = len(engine.state.tree.nodes)  # small: grows by 40 (the option) at least
        while len(engine.state.tree.nodes) < start + 40:
            assert not durable.checkpoint_due()
            one_pass(10)
        assert durable.entries < 40 and durable.checkpoint_due()
        durable.checkpoint_sync()
        grown = len(engine.state.tree.nodes)  # now twice as many as it has
        one_pass(200)
        assert len(engine.state.tree.nodes) >= 2 * grown and durable.checkpoint_due()
        assert durable.entries == 1
    finally:
        durable.close()


def test_a_restore_counts_the_growth_its_journal_replayed(tmp_path: Path) -> None:
    """The nodes a journal made count from the checkpoint before them, after a crash too:
    a bulk load is not replayed again at every restart until the tree doubles anew."""
    durable = open_state(_options(tmp_path, 40), State(), None)
    engine = durable.engine
    conn = engine.connect(0)
    for i in range(100):  # two journal entries, 100 new nodes
        engine.receive(conn, encode(Op.WRITE, 1, 0, b"/bulk/n%d\0v" % i))
        if i % 50 == 49:
            engine.take_effects()
            durable.commit()
    durable.store.close()  # a crash: no checkpoint at the end
    durable = open_state(_options(tmp_path, 40), State(), None)
    try:
        assert durable.entries == 2 and len(durable.engine.state.tree.nodes) > 100
        assert durable.checkpoint_due()
    finally:
        durable.close()
