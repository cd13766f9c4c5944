"""Differential tests: the same request sequences to C xenstored 4.17 and to xsd.

Every script (``tests/support/differential_scripts.py`` and ``_sessions.py``) is played
against a fresh reference C xenstored and a fresh xsd over real sockets; the replies (type,
req_id, tx_id, payload), the watch events each connection receives, and the tree left
behind (values, permissions, generation counts, child order) must be identical. Deliberate
differences are listed, with their reasons, in ``docs/differences.md``; its toml block is
the only source of normalisations.
"""

from __future__ import annotations

import pytest

from tests.support.differential import (  # noqa: F401
    DIFFERENCES,
    Pair,
    compare,
    load_rules,
    pair_fixture,
    sut_kind,
)
from tests.support.differential_scripts_sessions import SCRIPTS
from xsd_client.protocol import Op


def test_normalisations_name_their_rows() -> None:
    """Each normalisation excuses a difference listed, with its reason, in the table."""
    text = DIFFERENCES.read_text()
    table = [line.replace("`", "") for line in text.splitlines() if line.startswith("| ")]
    for rule in load_rules(DIFFERENCES) if sut_kind() == "xsd" else []:
        assert any(row.startswith(f"| {rule.id}") for row in table), (
            f"normalisation {rule.id!r} names no row of {DIFFERENCES}"
        )


def test_every_type_is_scripted() -> None:
    """Every message type number, and 0..30, appears in some hand-written script."""
    used = {st.op for script in SCRIPTS.values() for st in script}
    missing = [op.name for op in Op if op not in used]
    assert not missing, f"no script sends {missing}"
    assert set(range(28)) <= used


@pytest.mark.reference
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_script(pair: Pair, name: str) -> None:
    compare(
        pair.ref.socket,
        pair.sut.socket,
        SCRIPTS[name],
        nconns=2,
        ref_name=pair.ref_name,
        got_name=pair.sut_name,
    )
