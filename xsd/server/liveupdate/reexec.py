"""How a live update execs the new program: a Python program without ``site``.

Started the usual way, the new program's interpreter runs ``site`` first: it reads every
``.pth`` file and runs the code some of them hold. That is tens of milliseconds of the
update's pause (here ~25 ms, most of it one ``.pth`` that imports ``certifi``), and all
it yields is ``sys.path``, which the dry run (``xsd --check-state``, the same program)
has just computed. So the dry run reports its interpreter and ``sys.path``
(:func:`report`), and if the program is a script that the kernel would run with that
very interpreter (``#!`` and its path, nothing else), the update execs
``interpreter -S program ARGS`` with that path in ``PYTHONPATH`` (:func:`exec_plan`).
The new process puts ``PYTHONPATH`` back as it was (:func:`restore_environment`), so
that nothing it runs inherits ours.

A package found by an import hook rather than through ``sys.path`` (a default editable
install: ``pip install -e .`` puts a finder in a ``.pth``) would not be found without
``site``: the report names the directories of such packages (``roots``), which the plan
appends to the path. Whatever the plan, the update runs it once more as a dry run
(``interpreter -S program ARGS --check-state``, the very command line and environment of
the exec) before it is used; if that fails, the program is exec'd as it is (with ``site``,
which its first dry run ran).

What differs in the new process: ``site`` is not imported, so ``.pth`` code and
``sitecustomize`` do not run again (their paths are there); ``sys.flags.no_site`` is 1;
``/proc/PID/cmdline`` shows ``-S`` after the interpreter. A program that is not such
a script (a binary, a shell wrapper, ``#!/usr/bin/env python3``) is exec'd as it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, MutableMapping

REPORT_PREFIX = "xsd: check-state: python "
"""The dry run's stdout line with its interpreter and path (JSON after the prefix)."""

RECOUNT_VERDICT = "xsd: check-state: recount usage"
"""What the dry run prints on stdout when the state's accounting (the tree's usage,
which the restore takes as it comes) differs from its nodes: the update then sends
none, and the new process recounts it."""

SAVED_ENV = "XSD_LIVE_UPDATE_PYTHONPATH"
"""Carries the PYTHONPATH to put back across the exec: ``=`` and its value, or empty
if there was none."""


def report() -> str:
    """The line the dry run prints: this interpreter, and the path ``site`` made."""
    import json

    facts = {
        "executable": sys.executable,
        "path": sys.path,
        "site": not sys.flags.no_site,
        "roots": hooked_roots(),
    }
    return REPORT_PREFIX + json.dumps(facts)


def hooked_roots() -> list[str]:
    """The directories holding top-level packages (and modules) imported so far that no
    ``sys.path`` entry leads to: those an import hook found (a default editable install
    maps ``xsd`` to its source directory so)."""
    entries = {os.path.realpath(p or os.curdir) for p in sys.path}
    roots: list[str] = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if "." in name or name == "__main__" or not isinstance(file, str):
            continue
        if hasattr(module, "__path__"):  # a package: NAME/__init__.py
            where = os.path.dirname(file)
            if os.path.basename(where) != name:
                continue  # mapped to a directory of another name: -S cannot follow
            root = os.path.dirname(where)
        else:
            if os.path.basename(file).partition(".")[0] != name:
                continue
            root = os.path.dirname(file)
        if os.path.realpath(root) not in entries and root not in roots:
            roots.append(root)
    return roots


class Plan:
    """How to exec the new program without ``site``: its ``interpreter``, and ``path``,
    the new program's ``sys.path`` as its dry run had it, but the script's own directory
    (``sys.path[0]``, which the interpreter adds by itself)."""

    __slots__ = ("interpreter", "path")

    # Not a dataclass: the new process imports this module during the pause.
    def __init__(self, interpreter: str, path: list[str]) -> None:
        self.interpreter = interpreter
        self.path = path

    def argv(self, argv: list[str]) -> list[str]:
        """The exec's argv for the program's ``argv`` (``argv[0]`` the program)."""
        return [self.interpreter, "-S", *argv]

    def environment(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` with our PYTHONPATH, and the one to put back."""
        env = dict(environ)
        saved = environ.get("PYTHONPATH")
        env[SAVED_ENV] = "" if saved is None else "=" + saved
        env["PYTHONPATH"] = os.pathsep.join(self.path)
        return env


def exec_plan(program: str, dry_run_stdout: str) -> Plan | None:
    """The plan for ``program`` from its dry run's output, or None to exec it as it is
    (no report, or a program the kernel would not run with that interpreter alone)."""
    import json

    line = next((x for x in dry_run_stdout.splitlines() if x.startswith(REPORT_PREFIX)), None)
    if line is None:
        return None
    try:
        facts = json.loads(line[len(REPORT_PREFIX) :])
        executable, path, ran_site = facts["executable"], facts["path"], facts["site"]
        roots = facts.get("roots", [])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    if not (isinstance(executable, str) and isinstance(path, list) and ran_site is True):
        return None
    if not isinstance(roots, list):
        return None
    if not path or not all(isinstance(p, str) and os.pathsep not in p for p in path + roots):
        return None
    interpreter = shebang_interpreter(program)
    if interpreter is None or not _same_file(interpreter, executable):
        return None
    full = [p for p in path[1:] if p]
    return Plan(interpreter, full + [r for r in roots if r and r not in full])


def shebang_interpreter(program: str) -> str | None:
    """The interpreter of a ``#!/absolute/path`` script (no argument), else None."""
    try:
        with open(program, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].split()
    if len(words) != 1 or not words[0].startswith(b"/"):
        return None
    return os.fsdecode(words[0])


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def restore_environment(environ: MutableMapping[str, str] = os.environ) -> None:
    """In the new process: put PYTHONPATH back as it was before the exec (a no-op if
    the exec was not one of ours)."""
    saved = environ.pop(SAVED_ENV, None)
    if saved is None:
        return
    if saved.startswith("="):
        environ["PYTHONPATH"] = saved[1:]
    else:
        environ.pop("PYTHONPATH", None)
