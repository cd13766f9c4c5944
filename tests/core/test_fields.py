"""The core's slotted state classes (``xsd.core.fields``) and what the restore imports."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from handover import plain
from xsd.core import effects, fields
from xsd.core.caller import Caller
from xsd.core.connections import Connection
from xsd.core.credentials import Credentials
from xsd.core.domains import Domain
from xsd.core.quota import Quotas
from xsd.core.state import Settings, State
from xsd.core.watchdogs import Dog, DomainDogs, WatchdogState
from xsd.core.watches import Watch

FIELDS_CLASSES = [
    Credentials,
    Domain,
    Caller,
    Quotas,
    Settings,
    State,
    Dog,
    DomainDogs,
    WatchdogState,
    Watch,
    *(getattr(effects, name) for name in effects.__all__),
]


@pytest.mark.parametrize("cls", FIELDS_CLASSES, ids=lambda c: c.__name__)
def test_the_fields_are_the_slots_and_the_init_parameters(cls: type) -> None:
    names = fields.names(cls)
    assert sorted(names) == sorted(cls.__slots__)
    assert fields.parameters(cls) == names  # in the order they are annotated
    # every class up to object has slots: no instance carries a __dict__
    assert all("__slots__" in klass.__dict__ for klass in cls.__mro__[:-1])


def test_mutable_defaults_are_fresh_for_each_instance() -> None:
    assert fields.defaults(Domain) == {
        "gfn": 0,
        "evtchn": 0,
        "target": None,
        "quota": None,
        "wrl_credit": 10.0,
        "wrl_stamp": 0,
        "introduced": True,
    }
    a, b = Domain(1), Domain(2)
    a.quota["nodes"] = 5
    assert b.quota == {}
    assert Settings().log_classes is not Settings().log_classes
    assert State().domains == {0: Domain(0)}
    assert WatchdogState().heap is not WatchdogState().heap


def test_repr_and_equality_go_by_field() -> None:
    dog = Dog(1000, state="armed")
    assert repr(dog).startswith("Dog(timeout_ms=1000, pretimeout_ms=0, state='armed',")
    assert dog == Dog(1000, state="armed")
    assert dog != Dog(1000)
    assert dog != "Dog"
    with pytest.raises(TypeError):
        hash(dog)  # mutable and compared by value, as a dataclass
    assert fields.as_dict(Credentials(1, 2, 3)) == {"pid": 1, "uid": 2, "gid": 3}


def test_connections_compare_by_identity() -> None:
    assert Connection(1, 0, True) != Connection(1, 0, True)
    assert "id=1" in repr(Connection(1, 0, True))


def test_plain_data_round_trips_a_fields_class() -> None:
    state = WatchdogState(domains={3: DomainDogs([Dog(500, token=7)], qmp="/q")})
    hint = plain.hints(State)["watchdogs"]
    again = plain.from_plain(hint, plain.encoder(hint)(state))
    assert again == state
    assert again.domains[3].dogs[0] is not state.domains[3].dogs[0]


def test_the_restore_path_imports_neither_dataclasses_nor_typing() -> None:
    """What a live update's new process imports before it answers: each of these
    costs milliseconds of the pause (see xsd.core.fields)."""
    code = (
        "import sys, re\n"
        "import xsd.server.main, handover\n"
        "from xsd.core.engine import Engine\n"
        "from xsd.server.liveupdate import reexec\n"
        "from xsd.server.liveupdate.early import EarlyService\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "xsd.core.engine" in out
    heavy_modules = ("dataclasses", "inspect", "typing", "socket", "hashlib", "handover.plain")
    for heavy in (*heavy_modules, "logging", "argparse"):
        assert heavy not in out, heavy
