"""A checkpoint drops exactly the journal entries it includes, in short transactions
(``Store.write_checkpoint``): a real LMDB state directory, entries around the chunk size."""

from __future__ import annotations

from pathlib import Path

import pytest

from xsd.server.durable_store import TRIM_CHUNK, Store


@pytest.mark.parametrize(
    ("entries", "included"),
    [(10, 5), (3, 0), (TRIM_CHUNK * 3, TRIM_CHUNK * 3), (TRIM_CHUNK * 3, TRIM_CHUNK),
     (TRIM_CHUNK * 3, TRIM_CHUNK + 1)],
)  # fmt: skip
def test_checkpoint_drops_the_entries_it_includes(
    tmp_path: Path, entries: int, included: int
) -> None:
    store = Store(tmp_path, sync=False)
    store.open()
    try:
        for seq in range(1, entries + 1):
            store.append(seq, b"entry %d" % seq)
        store.write_checkpoint([b"head", b"record", b"digest"], included)
        with store.journal.begin() as txn:
            keys = [bytes(key) for key, _ in txn.cursor()]
        left = [int.from_bytes(key[1:], "big") for key in keys if key.startswith(b"j")]
        assert left == list(range(included + 1, entries + 1))
        assert b"format" in keys
        assert store.last_seq() == (entries if entries > included else 0)
    finally:
        store.close()
