"""The differential harness's daemons: the reference C xenstored and the daemon under test.

The daemon under test is xsd unless ``XSD_CONFORMANCE_SUT`` names a second reference
daemon (``c`` or ``ocaml``), which proves the harness itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemons import ReferenceDaemon, XsdDaemon, need_reference


@dataclass
class Pair:
    """A fresh reference C xenstored (``ref``) and a fresh daemon under test (``sut``)."""

    ref: ReferenceDaemon
    sut: XsdDaemon | ReferenceDaemon
    sut_name: str = "xsd"
    ref_name: str = "C xenstored"


def sut_kind() -> str:
    """``xsd``, or ``c`` / ``ocaml`` when ``XSD_CONFORMANCE_SUT`` says so.

    Pointing the suites at a second reference daemon proves the harness: against a second
    C xenstored everything must pass; against oxenstored the documented C/OCaml differences
    must show up as failures.
    """
    return os.environ.get("XSD_CONFORMANCE_SUT", "xsd")


def start_sut(rundir: Path) -> XsdDaemon | ReferenceDaemon:
    kind = sut_kind()
    if kind == "xsd":
        # Watchdogs off: INTRODUCE must leave the tree as a plain xenstored's does.
        return XsdDaemon(rundir, "--watchdogs-per-domain", "0")
    need_reference()
    return ReferenceDaemon(rundir, kind)


def sut_label() -> str:
    return {"xsd": "xsd", "c": "C xenstored (2nd)", "ocaml": "oxenstored"}.get(sut_kind(), "sut")


@pytest.fixture(name="pair")
def pair_fixture(tmp_path: Path) -> Iterator[Pair]:
    """Fresh C xenstored and fresh daemon under test (xsd unless overridden)."""
    need_reference()
    ref = ReferenceDaemon(tmp_path / "ref", "c")
    try:
        sut = start_sut(tmp_path / "sut")
    except BaseException:
        ref.stop()
        raise
    yield Pair(ref, sut, sut_label())
    sut.stop()
    ref.stop()


@pytest.fixture(name="sut")
def sut_fixture(tmp_path: Path) -> Iterator[XsdDaemon | ReferenceDaemon]:
    """The daemon under test alone (xsd unless ``XSD_CONFORMANCE_SUT`` overrides)."""
    daemon = start_sut(tmp_path / "sut")
    yield daemon
    daemon.stop()


class PairPool:
    """One daemon pair shared by many cases, restarted after a failure.

    Sharing keeps the suites fast (starting xsd costs a few hundred ms). It is sound as
    long as every case leaves both daemons in the same state, which the comparison itself
    checks; a failed case discards the pair so the next one starts fresh.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.n = 0
        self.current: tuple[ReferenceDaemon, XsdDaemon | ReferenceDaemon] | None = None

    def get(self) -> tuple[ReferenceDaemon, XsdDaemon | ReferenceDaemon]:
        if self.current is None:
            self.n += 1
            ref = ReferenceDaemon(self.base / f"ref{self.n}", "c")
            self.current = (ref, start_sut(self.base / f"sut{self.n}"))
        return self.current

    def get_pair(self) -> Pair:
        ref, sut = self.get()
        return Pair(ref, sut, sut_label())

    def discard(self) -> None:
        if self.current is not None:
            ref, sut = self.current
            sut.stop()
            ref.stop()
            self.current = None


@pytest.fixture(scope="module", name="pool")
def pool_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PairPool]:
    need_reference()
    pool = PairPool(tmp_path_factory.mktemp("generated"))
    yield pool
    pool.discard()
