"""``xsc`` against Debian's xenstore-utils 4.17: the same commands against the same
daemon print the same stdout, byte for byte, and exit with the same status.

Every case runs twice on a freshly built subtree: once with Xen's tool under ``/ref``,
once with ``xsc`` under ``/our`` (same length, so widths match). The outputs are compared
with the root names swapped, and so is the subtree each command leaves behind (values
and permissions), which checks the commands that write. Stderr is compared too, with
the program names swapped, except where xsc's help deliberately says more.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.xsc import XSC, tool_env
from xsd_client import errors
from xsd_client.client import Client

Run = Callable[..., subprocess.CompletedProcess[bytes]]

SPECIAL = b"tab\there nl\ncr\rbs\\ nul\x00 bel\x07 bs\x08 us\x1f del\x7f hi\x80\xff \"q' ~"


def build(client: Client, root: str) -> None:
    with contextlib.suppress(errors.ENOENT):
        client.rm(root)
    with client.transaction() as t:
        t.write(f"{root}/plain", b"hello")
        t.write(f"{root}/empty", b"")
        t.write(f"{root}/special", SPECIAL)
        t.write(f"{root}/dir/a", b"1")
        t.write(f"{root}/dir/b/c", b"deep")
        t.write(f"{root}/dir/b/d", b"")
        t.write(f"{root}/long", b"x" * 150)
        t.write(f"{root}/" + "n" * 80, b"long name")
        t.write(f"{root}/mid", b"m" * 55)
        t.write(f"{root}/tidy/x/y", b"leaf")
        t.write(f"{root}/tidy2/keep", b"")
        t.write(f"{root}/tidy2/x/y", b"")
        t.set_perms(f"{root}/dir/a", ["b0", "r0"])


def dump(client: Client, root: str) -> list[tuple[str, bytes, list[str]]]:
    out: list[tuple[str, bytes, list[str]]] = []
    todo = [root]
    while todo:
        path = todo.pop()
        try:
            out.append(
                (
                    path[len(root) :],
                    client.read(path),
                    [str(p) for p in client.get_perms(path)],
                )
            )
            todo += [f"{path}/{name}" for name in client.directory(path)]
        except errors.ENOENT:
            pass
    return sorted(out)


R = "{root}"

CASES: list[tuple[str, list[str]]] = [
    # read
    ("read", [f"{R}/plain"]),
    ("read", [f"{R}/special"]),
    ("read", [f"{R}/empty"]),
    ("read", [f"{R}/dir"]),
    ("read", ["-p", f"{R}/plain", f"{R}/empty", f"{R}/special"]),
    ("read", ["-R", f"{R}/special"]),
    ("read", ["-R", "-p", f"{R}/special", f"{R}/plain"]),
    ("read", ["--raw", f"{R}/plain"]),
    ("read", [f"{R}/plain", "--pre"]),  # permuted, abbreviated
    ("read", [f"{R}/plain", f"{R}/missing", f"{R}/empty"]),
    ("read", [f"{R}/missing"]),
    ("read", [f"{R}/bad//path"]),
    ("read", [""]),
    ("read", ["relative/missing"]),
    ("read", []),
    ("read", ["-t", f"{R}/plain"]),
    ("read", ["-s", f"{R}/plain"]),
    ("read", ["-x", f"{R}/plain"]),
    ("read", ["--bogus", f"{R}/plain"]),
    ("read", ["--", f"{R}/plain"]),
    # write
    ("write", [f"{R}/w", "value"]),
    ("write", [f"{R}/w", ""]),
    ("write", [f"{R}/w", r"a\tb\nc\rd\\e\x41\x4a\x0x41\x-1\xZZ\101\7\08\777\q\8 \ "[:-1]]),
    ("write", [f"{R}/w", "trailing backslash\\"]),
    ("write", [f"{R}/w", r"\x 41 \x+f \x"]),
    ("write", ["-R", f"{R}/w", r"raw\t\x41"]),
    ("write", [f"{R}/w1", "1", f"{R}/w2", "2", f"{R}/plain", "3"]),
    ("write", [f"{R}/w1", "1", f"{R}/bad//path", "2"]),
    ("write", [f"{R}/odd"]),
    ("write", [f"{R}/a", "1", f"{R}/b"]),
    ("write", [f"{R}/w", "-5"]),
    ("write", ["--", f"{R}/w", "-5"]),
    ("write", ["-p", f"{R}/w", "v"]),
    # ls
    ("ls", [f"{R}"]),
    ("ls", ["-p", f"{R}"]),
    ("ls", ["-f", f"{R}"]),
    ("ls", ["-f", "-p", f"{R}"]),
    ("ls", ["-fp", f"{R}/dir", f"{R}/plain"]),
    ("ls", [f"{R}/dir/"]),
    ("ls", [f"{R}/missing"]),
    ("ls", ["-R", f"{R}"]),
    # list
    ("list", [f"{R}/dir"]),
    ("list", ["-p", f"{R}/dir", f"{R}/dir/b"]),
    ("list", [f"{R}/plain"]),
    ("list", [f"{R}/dir", f"{R}/missing"]),
    ("list", [f"{R}/missing"]),
    ("list", []),
    # exists
    ("exists", [f"{R}/plain"]),
    ("exists", [f"{R}/plain", f"{R}/dir/b/c"]),
    ("exists", [f"{R}/missing"]),
    ("exists", [f"{R}/plain", f"{R}/missing"]),
    ("exists", ["-p", f"{R}/plain"]),
    ("exists", []),
    # rm
    ("rm", [f"{R}/dir/b"]),
    ("rm", [f"{R}/plain", f"{R}/empty"]),
    ("rm", [f"{R}/dir/nothing"]),
    ("rm", [f"{R}/missing/child"]),
    ("rm", ["-t", f"{R}/tidy/x/y"]),
    ("rm", ["--tidy", f"{R}/tidy2/x/y"]),
    ("rm", []),
    # chmod
    ("chmod", [f"{R}/plain", "r0"]),
    ("chmod", [f"{R}/plain", "b0", "w0", "n0"]),
    ("chmod", [f"{R}/plain", "b+0", "r 0", "wabc"]),
    ("chmod", ["-r", f"{R}/dir", "w0"]),
    ("chmod", ["-u", f"{R}/dir/b/c", "b0", "r0"]),
    ("chmod", ["-u", "-r", f"{R}/dir/b", "r0"]),
    ("chmod", [f"{R}/plain", "q1"]),
    ("chmod", [f"{R}/plain", "r0", ""]),
    ("chmod", [f"{R}/plain"]),
    ("chmod", [f"{R}/missing", "r0"]),
    ("chmod", [f"{R}/plain", "r9"]),
    # watch
    ("watch", ["-n", "1", f"{R}/dir"]),
    ("watch", ["-n2", f"{R}/plain", f"{R}/dir"]),
    ("watch", ["--number=1", f"{R}/missing"]),
    ("watch", ["-n", "0", f"{R}/dir"]),
    ("watch", []),
]

# xsc's usage line for watch also names -d, which newer Xen has.
STDERR_DIFFERS = {("watch", ())}


def _ids() -> list[str]:
    return [f"{mode}-{i}" for i, (mode, _) in enumerate(CASES)]


@pytest.mark.parametrize(("mode", "args"), CASES, ids=_ids())
def test_same_as_xenstore_utils(
    client: Client, xenstore: Run, xsc: Run, mode: str, args: list[str]
) -> None:
    results = {}
    for root, run in (("/ref", lambda *a: xenstore(mode, *a)), ("/our", lambda *a: xsc(mode, *a))):
        build(client, root)
        proc = run(*(a.replace(R, root) for a in args))
        results[root] = (proc, dump(client, root))
    (ref, ref_tree), (our, our_tree) = results["/ref"], results["/our"]
    assert our.stdout.replace(b"/our", b"/ref") == ref.stdout
    assert our.returncode == ref.returncode
    assert our_tree == ref_tree
    if (mode, tuple(args)) not in STDERR_DIFFERS:
        theirs = ref.stderr.replace(f"xenstore-{mode}".encode(), b"PROG")
        ours = our.stderr.replace(f"xsc {mode}".encode(), b"PROG").replace(b"/our", b"/ref")
        assert ours == theirs


def test_help_everywhere(xsc: Run) -> None:
    top = xsc("--help")
    assert top.returncode == 0 and b"usage: xsc <mode>" in top.stdout
    for mode in ("read", "write", "ls", "list", "exists", "rm", "chmod", "watch", "control"):
        for flag in ("-h", "--help"):
            proc = xsc(mode, flag)
            assert proc.returncode == 0, (mode, flag, proc.stderr)
            assert proc.stdout.startswith(f"usage: xsc {mode}".encode())


def test_no_mode_and_unknown_mode(xsc: Run) -> None:
    assert xsc().returncode == 1
    proc = xsc("frobnicate")
    assert proc.returncode == 1 and b"unknown mode frobnicate" in proc.stderr


def test_control(xsc: Run, daemon_socket: str) -> None:
    ref = "/usr/lib/xen-4.17/bin/xenstore-control"
    for args in (["check"], ["print", "hello"], ["no-such"], []):
        ours = xsc("control", *args)
        theirs = subprocess.run(
            [ref, *args],
            env={"XENSTORED_PATH": daemon_socket, "PATH": "/usr/bin:/bin"},
            capture_output=True,
        )
        assert (ours.stdout, ours.returncode) == (theirs.stdout, theirs.returncode), args
    assert xsc("control", "help").stdout.startswith(b"check")


def test_unreachable_daemon(tmp_path: Path) -> None:
    env = tool_env(str(tmp_path / "none"))
    for mode, status in (("read", 1), ("control", 1)):
        proc = subprocess.run([*XSC, mode, "check"], env=env, capture_output=True)
        assert proc.returncode == status
        theirs = subprocess.run([f"xenstore-{mode}", "check"], env=env, capture_output=True)
        if mode == "read":
            assert theirs.returncode == status


def test_sanitise_roundtrip() -> None:
    from xsd_client.cli import sanitise, unsanitise

    every = bytes(range(256))
    assert unsanitise(sanitise(every)) == every
    assert sanitise(b"\x00\x07\x08\t\n\r\\\x7f") == rb"\000\007\x08\t\n\r\\\x7f"


def _run_on_pty(argv: list[str], env: dict[str, str], columns: int) -> bytes:
    import fcntl
    import os
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(argv, env=env, stdout=slave, stderr=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(20) == 0
    return out


@pytest.mark.parametrize("columns", [30, 50, 100])
def test_ls_fits_the_terminal_width_as_xenstore_ls(
    client: Client, daemon_socket: str, columns: int
) -> None:
    outputs = []
    for root, argv in (("/ref", ["xenstore-ls", "-p"]), ("/our", [*XSC, "ls", "-p"])):
        build(client, root)
        out = _run_on_pty([*argv, root], tool_env(daemon_socket), columns)
        outputs.append(out)
    assert outputs[1] == outputs[0]
    assert b"\\..." in outputs[0]  # something was cut


@pytest.mark.parametrize("tool", ["xenstore-watch", "xsc"])
def test_watch_prints_events_as_they_come(client: Client, daemon_socket: str, tool: str) -> None:
    argv = ["xenstore-watch"] if tool == "xenstore-watch" else [*XSC, "watch"]
    client.write("/wt", b"")
    proc = subprocess.Popen(
        [*argv, "-n", "4", "/wt", "@introduceDomain"],
        env=tool_env(daemon_socket),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"/wt\n"  # each line is flushed at once
    assert proc.stdout.readline() == b"@introduceDomain\n"
    client.write("/wt/a", b"1")
    assert proc.stdout.readline() == b"/wt/a\n"
    client.rm("/wt/a")
    assert proc.stdout.readline() == b"/wt/a\n"
    assert proc.wait(10) == 0
    assert proc.stdout.read() == b""
