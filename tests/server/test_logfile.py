"""The log classes ``--log-classes`` names: all, none, a list, additions and removals."""

from __future__ import annotations

import pytest

from xsd.server.logfile import parse_classes
from xsd_client.logformat import CLASSES


def test_parse_classes() -> None:
    assert parse_classes("all") == list(CLASSES)
    assert parse_classes("none") == []
    assert parse_classes("-io") == [c for c in CLASSES if c != "io"]
    assert parse_classes("lu,io") == ["io", "lu"]
    assert parse_classes("+io", []) == ["io"]
    with pytest.raises(ValueError):
        parse_classes("+nope")
