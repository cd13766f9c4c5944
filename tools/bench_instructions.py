"""Benchmark: instructions a daemon spends per request, counted, not timed.

Each daemon (xsd, C xenstored) runs under ``valgrind --tool=callgrind``, whole process,
every thread, while one client sends its requests one at a time and waits for each
reply, as Xen's clients do. Each cell is run twice, with ``--base`` requests and with
``--base`` + ``-n``; the difference of the two totals over ``-n`` is what one request
costs the daemon in user space, start-up and shutdown cancelled out. Instructions do
not drift with what else the machine is doing, where timings on a shared 2-core VM move
by ±10% between runs, so a change to the request path shows in the first digits::

    python tools/bench_instructions.py [-d xsd,c] [-w write,read,dir,txn] [-n 5000]

Prints, per workload and daemon, the instructions per request and xsd over C. ``txn``
is TRANSACTION_START, READ, WRITE and TRANSACTION_END in a transaction: its figure is per
request, a quarter of a unit. The kernel's share (the system calls) is not counted: per
request, xsd makes three (``epoll_wait``, ``recv``, ``send``), C seven (``strace -c``:
three ``poll``, two ``read``, two ``write`` a WRITE).

Needs valgrind (Debian's ``valgrind``) and, for C, the reference daemons
(``tools/peers/reference-xenstored install``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tools" / "peers" / "reference-xenstored"
XENBIN = Path("/usr/lib/xen-4.17/bin")
HEADER = struct.Struct("<IIII")
VALUE = b"x" * 32
KEY = b"/bench/k\0"

WORKLOADS: dict[str, list[tuple[int, bytes]]] = {
    # (op, payload) in order; op numbers from xs_wire.h. txn's tx ids are filled in.
    "write": [(11, KEY + VALUE)],
    "read": [(2, KEY)],
    "dir": [(1, b"/bench\0")],
    "txn": [(6, b"\0"), (2, KEY), (11, KEY + VALUE), (7, b"T\0")],
}


def _standin() -> Path:
    """The hypervisor stand-in the reference script builds (its cache, as it computes it)."""
    cache = os.environ.get("XSD_PEERS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "xsd-peers"
    )
    standin = Path(cache) / "xen-standin.so"
    if not standin.exists():  # built by the script's first start
        with tempfile.TemporaryDirectory() as rundir:
            subprocess.run(["bash", str(REFERENCE), "start", rundir, "c"], check=True)
            subprocess.run(["bash", str(REFERENCE), "stop", rundir], check=False)
    return standin


def _command(daemon: str, rundir: Path, out: Path) -> tuple[list[str], dict[str, str]]:
    grind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
    env = dict(os.environ)
    if daemon == "xsd":
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env.pop("XENSTORED_PATH", None)
        return [*grind, sys.executable, "-m", "xsd", "--rundir", str(rundir)], env
    env.update(XENSTORED_RUNDIR=str(rundir), XENSTORED_PATH=str(rundir / "socket"))
    # env(1) sets the preload for xenstored alone, valgrind following it (--trace-children).
    return [
        *grind,
        "--trace-children=yes",
        "env",
        f"LD_PRELOAD={_standin()}",
        str(XENBIN / "xenstored"),
        "--no-fork",
        "--pid-file",
        str(rundir / "pid"),
    ], env


class Client:
    """One connection, one request in flight."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(str(path))

    def call(self, op: int, payload: bytes, tx: int = 0) -> bytes:
        self.sock.sendall(HEADER.pack(op, 1, tx, len(payload)) + payload)
        head = self._exactly(HEADER.size)
        return self._exactly(HEADER.unpack(head)[3])

    def _exactly(self, size: int) -> bytes:
        got = b""
        while len(got) < size:
            chunk = self.sock.recv(size - len(got))
            if not chunk:
                raise ConnectionError("the daemon closed the connection")
            got += chunk
        return got

    def run(self, workload: str, requests: int) -> int:
        """Send about ``requests`` of ``workload`` (whole units); return how many."""
        self.call(11, KEY + VALUE)  # the node the others read
        program = WORKLOADS[workload]
        units = max(1, requests // len(program))
        for _ in range(units):
            tx = 0
            for op, payload in program:
                reply = self.call(op, payload, tx)
                if op == 6:
                    tx = int(reply.rstrip(b"\0"))
        return units * len(program)


def count(daemon: str, workload: str, requests: int) -> tuple[int, int]:
    """Instructions of a whole run of ``daemon`` serving about ``requests`` of
    ``workload``, and how many it served."""
    with tempfile.TemporaryDirectory(prefix="xsd-instr-") as tmp:
        rundir, out = Path(tmp) / "run", Path(tmp) / "callgrind.out"
        rundir.mkdir()
        argv, env = _command(daemon, rundir, out)
        with open(Path(tmp) / "daemon.log", "wb") as log:
            proc = subprocess.Popen(
                argv, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True
            )
        try:
            deadline = time.monotonic() + 180  # python's start-up runs ~50x slower
            while not (rundir / "socket").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"bench_instructions: {daemon} did not start under valgrind")
                time.sleep(0.2)
            time.sleep(1.0)  # the socket exists before the daemon serves
            sent = Client(rundir / "socket").run(workload, requests)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1]), sent
        raise SystemExit(f"bench_instructions: no total in {daemon}'s callgrind output")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-d", "--daemons", default="xsd,c", help="comma list of: xsd, c")
    parser.add_argument("-w", "--workloads", default="write,read,dir,txn")
    parser.add_argument("-n", "--requests", type=int, default=5000)
    parser.add_argument("--base", type=int, default=1000, help="requests of the short run")
    args = parser.parse_args(argv)
    daemons = args.daemons.split(",")
    workloads = args.workloads.split(",")
    for name, known in (("daemon", ("xsd", "c")), ("workload", tuple(WORKLOADS))):
        for given in daemons if name == "daemon" else workloads:
            if given not in known:
                parser.error(f"unknown {name} {given!r}: choose from {', '.join(known)}")
    if args.requests < 4 or args.base < 4:
        parser.error("-n and --base must be at least 4 (a txn unit is 4 requests)")
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (Debian: apt-get install valgrind)")
    if "c" in daemons and not (XENBIN / "xenstored").exists():
        parser.error(f"C xenstored is not installed: bash {REFERENCE} install")
    print("workload  daemon  instructions/request  xsd/C")
    for workload in workloads:
        per: dict[str, float] = {}
        for daemon in daemons:
            short, few = count(daemon, workload, args.base)
            long, many = count(daemon, workload, args.base + args.requests)
            per[daemon] = (long - short) / (many - few)
            ratio = per["xsd"] / per["c"] if len(per) == 2 and "c" in per else None
            shown = "" if ratio is None else f"{ratio:.2f}"
            print(f"{workload:8}  {daemon:6}  {per[daemon]:20,.0f}  {shown}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
