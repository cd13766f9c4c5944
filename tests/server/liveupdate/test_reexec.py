"""A live update execs a Python new program without ``site`` (xsd.server.liveupdate.reexec)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.daemons import XsdDaemon
from tests.support.liveupdate import live_update
from tests.support.wire import RawConn
from xsd.server.liveupdate import reexec
from xsd_client.protocol import Op


def _file(tmp_path: Path, name: str, first_line: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(first_line + b"\nprint('hello')\n")
    return str(path)


@pytest.mark.parametrize(
    ("first_line", "interpreter"),
    [
        (b"#!/usr/bin/python3", "/usr/bin/python3"),
        (b"#! /usr/bin/python3", "/usr/bin/python3"),
        (b"#!/usr/bin/env python3", None),  # env would look the interpreter up
        (b"#!/usr/bin/python3 -E", None),  # an argument we would have to keep
        (b"#!python3", None),
        (b"\x7fELF\x02\x01\x01", None),
    ],
)
def test_the_shebang_names_the_interpreter(
    tmp_path: Path, first_line: bytes, interpreter: str | None
) -> None:
    assert reexec.shebang_interpreter(_file(tmp_path, "prog", first_line)) == interpreter


def test_a_missing_program_has_no_interpreter(tmp_path: Path) -> None:
    assert reexec.shebang_interpreter(str(tmp_path / "nothing")) is None


def test_the_plan_comes_from_the_dry_runs_report(tmp_path: Path) -> None:
    ours = _file(tmp_path, "ours", b"#!" + os.fsencode(sys.executable))
    report = reexec.report()
    plan = reexec.exec_plan(ours, f"xsd: something else\n{report}\n")
    assert plan is not None
    assert os.path.samefile(plan.interpreter, sys.executable)
    assert plan.path == [p for p in sys.path[1:] if p]
    assert plan.argv([ours, "--x"]) == [plan.interpreter, "-S", ours, "--x"]
    # anything else: exec the program as it is
    shell = _file(tmp_path, "shell", b"#!/bin/sh")
    facts = json.loads(report[len(reexec.REPORT_PREFIX) :])
    assert reexec.exec_plan(shell, report) is None  # another interpreter
    assert reexec.exec_plan(ours, "xsd: state loads\n") is None  # no report
    assert reexec.exec_plan(ours, reexec.REPORT_PREFIX + "{not json") is None
    for change in ({"site": False}, {"path": ["/a:b"]}, {"path": []}, {"executable": 3}):
        bad = reexec.REPORT_PREFIX + json.dumps({**facts, **change})
        assert reexec.exec_plan(ours, bad) is None, change


@pytest.mark.parametrize("original", [None, "/somewhere:/else"])
def test_pythonpath_is_put_back_after_the_exec(original: str | None) -> None:
    plan = reexec.Plan("/usr/bin/python3", ["/lib/a", "/lib/b"])
    before = {"HOME": "/root"} if original is None else {"PYTHONPATH": original}
    env = plan.environment(before)
    assert env["PYTHONPATH"] == "/lib/a:/lib/b"
    reexec.restore_environment(env)
    assert env == before
    reexec.restore_environment(env)  # not after one of our execs: nothing to do
    assert env == before


def test_the_new_process_runs_without_site_and_gives_back_pythonpath(
    xsd: XsdDaemon, tmp_path: Path
) -> None:
    program = shutil.which("xsd")
    assert program, "the xsd console script is not installed (pip install -e .)"
    assert reexec.shebang_interpreter(program) is not None
    pid = xsd.pid
    with RawConn(str(xsd.socket)) as conn:
        conn.write("/kept", "yes")
        assert live_update(xsd.socket, program) == ("OK", b"OK\0")
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[1:3] == [b"-S", os.fsencode(program)]
        assert conn.call(Op.READ, "/kept") == ("OK", b"yes")
        # what the daemon runs now (the next dry run: a shell wrapper, so exec'd as it
        # is) inherits its environment as it was before the exec
        seen = tmp_path / "env"
        wrapper = tmp_path / "wrapper"
        wrapper.write_text(f'#!/bin/sh\nenv > {seen}\nexec {program} "$@"\n')
        wrapper.chmod(0o755)
        assert live_update(xsd.socket, str(wrapper)) == ("OK", b"OK\0")
        assert conn.call(Op.READ, "/kept") == ("OK", b"yes")
    env = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert reexec.SAVED_ENV not in env
    assert env.get("PYTHONPATH") == os.environ.get("PYTHONPATH")
    assert xsd.pid == pid
    # the wrapper was exec'd as it is, and it exec'd the script with site
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1] == os.fsencode(program)


def test_a_program_changed_since_its_dry_run_is_exec_d_as_it_is(
    xsd: XsdDaemon, tmp_path: Path
) -> None:
    program = shutil.which("xsd")
    assert program, "the xsd console script is not installed (pip install -e .)"
    copy = tmp_path / "xsd-copy"
    copy.write_text(Path(program).read_text())
    copy.chmod(0o755)
    with RawConn(str(xsd.socket), timeout=60) as conn:
        assert conn.call(Op.CONTROL, "live-update", "-f", str(copy)) == ("OK", b"OK\0")
        # replaced between -f and -s (by a shell script): no plan for it any more
        copy.write_text(f'#!/bin/sh\nexec {program} "$@"\n')
        assert conn.call(Op.CONTROL, "live-update", "-s", "-t", "10") == ("OK", b"OK\0")
        assert conn.call(Op.READ, "/tool/xenstored") == ("OK", b"")
    cmdline = Path(f"/proc/{xsd.pid}/cmdline").read_bytes().split(b"\0")
    assert b"-S" not in cmdline
    assert cmdline[1] == os.fsencode(program)


def test_packages_an_import_hook_found_are_reported_and_planned(tmp_path: Path) -> None:
    """A default editable install's finder maps a package to its source directory, which
    no sys.path entry names: the report names that directory, the plan appends it; a
    package mapped to a directory of another name cannot be followed (none is named)."""
    import importlib.util

    loaded = []
    for name, directory in (("lu_hooked_pkg", "lu_hooked_pkg"), ("lu_renamed_pkg", "elsewhere")):
        where = tmp_path / "src" / directory
        where.mkdir(parents=True)
        (where / "__init__.py").write_text("")
        spec = importlib.util.spec_from_file_location(
            name, where / "__init__.py", submodule_search_locations=[str(where)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
        loaded.append(name)
    try:
        assert reexec.hooked_roots() == [str(tmp_path / "src")]
        ours = _file(tmp_path, "ours", b"#!" + os.fsencode(sys.executable))
        plan = reexec.exec_plan(ours, reexec.report())
        assert plan is not None and plan.path[-1] == str(tmp_path / "src")
    finally:
        for name in loaded:
            del sys.modules[name]
    assert str(tmp_path / "src") not in reexec.hooked_roots()
