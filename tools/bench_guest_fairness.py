"""Load generator: one connection of a guest floods writes; does its other one get through?

Starts xsd (default write rate limit, or ``--xsd-arg=--write-rate=N``), introduces guest
domain 7 and, from the guest's own socket, runs a flooder (WRITEs sent without pause,
replies read by another thread) and a keepalive connection that writes once every
``--interval`` seconds, for ``--seconds``. Prints how many writes each got through and the
keepalive's worst wait. With several ``--code`` directories it runs against each (see
tools/bench_guest_memory.py):

    python tools/bench_guest_fairness.py --code /tmp/main-src --code . \
        --xsd-arg=--write-rate=40 --xsd-arg=--write-burst=1

It stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # the tests' helpers: tests.support

from tests.support.daemons import XsdDaemon  # noqa: E402
from tests.support.wire import RawConn  # noqa: E402
from xsd_client.protocol import Op, encode  # noqa: E402

DOMID = 7
HOME = f"/local/domain/{DOMID}"


def run(code: str | None, args: argparse.Namespace) -> tuple[int, int, int, float]:
    """(keepalive writes tried, done, flooder writes done, keepalive worst latency s)."""
    here = Path.cwd()
    if code is not None:
        os.environ["PYTHONPATH"] = str(Path(code).resolve())
        os.chdir(code)  # ``-m`` puts the current directory first on the path
    with tempfile.TemporaryDirectory() as tmp:
        try:
            daemon = XsdDaemon(Path(tmp) / "run", "--watchdogs-per-domain", "0", *args.xsd_arg)
        finally:
            os.chdir(here)
        try:
            dom0 = RawConn(str(daemon.socket), timeout=60)
            dom0.call(Op.INTRODUCE, DOMID, 1, 1)
            dom0.call(Op.MKDIR, HOME)
            dom0.call(Op.SET_PERMS, HOME, f"n{DOMID}")
            path = str(daemon.rundir / "domains" / str(DOMID) / "socket")
            flooder = RawConn(path, timeout=120)
            keeper = RawConn(path, timeout=120)
            stop = threading.Event()
            flooded = [0]

            def flood() -> None:  # always more requests buffered than answered
                batch = b"".join(encode(Op.WRITE, i, 0, f"f{i}\0x".encode()) for i in range(20))
                with contextlib.suppress(OSError):
                    while not stop.is_set():
                        flooder.send_raw(batch)

            def count() -> None:
                while not stop.is_set():
                    try:
                        flooder.recv_reply(0.5)
                    except TimeoutError:
                        continue
                    except (OSError, EOFError):
                        return
                    flooded[0] += 1

            threads = [threading.Thread(target=flood), threading.Thread(target=count)]
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            tried = done = 0
            worst = 0.0
            end = time.monotonic() + args.seconds
            pending = False
            keeper.sock.settimeout(args.interval)
            while time.monotonic() < end:
                if not pending:
                    keeper.send(Op.WRITE, b"keepalive\0" + str(tried).encode())
                    sent = time.monotonic()
                    tried += 1
                    pending = True
                try:
                    keeper.recv_reply(max(0.01, end - time.monotonic()))
                except TimeoutError:
                    continue
                pending = False
                done += 1
                worst = max(worst, time.monotonic() - sent)
                time.sleep(max(0.0, args.interval - (time.monotonic() - sent)))
            if pending:
                worst = max(worst, time.monotonic() - sent)
            stop.set()
        finally:
            daemon.stop()  # the flooder's threads end with its connection
            flooder.sock.close()
            for thread in threads:
                thread.join(60)
    return tried, done, flooded[0], worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="length of the flood")
    parser.add_argument("--interval", type=float, default=0.5, help="keepalive period (s)")
    parser.add_argument("--code", action="append", help="source tree the daemon runs")
    parser.add_argument(
        "--xsd-arg", action="append", default=[], help="extra daemon option (repeatable)"
    )
    args = parser.parse_args()
    extra = " ".join(args.xsd_arg) or "default rate 200/s"
    print(f"flood {args.seconds:.0f} s; keepalive every {args.interval} s ({extra})")
    print(f"{'code':<24} {'keepalive':>10} {'flooder':>8} {'worst wait':>11}")
    for code in args.code or [None]:
        tried, done, flooded, worst = run(code, args)
        name = (code or "(this interpreter)")[-24:]
        print(f"{name:<24} {done:>4}/{tried:<5} {flooded:8d} {worst:10.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
