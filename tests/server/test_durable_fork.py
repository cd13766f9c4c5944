"""A live update forks its guardian with durable mode's journal lock free
(``Server.forking``): a checkpoint's thread that holds it then (moving the journal to
its next file) is waited for, so the guardian, which has no such thread, can commit.
A real state directory, a real thread and a real fork."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from xsd.server.daemon import Server
from xsd.server.durable_store import Store


def test_the_guardian_is_forked_with_the_journal_lock_free(tmp_path: Path) -> None:
    store = Store(tmp_path, sync=False)
    store.open()
    held = threading.Event()

    def checkpoint_thread() -> None:
        with store.writing:
            held.set()
            time.sleep(0.3)

    thread = threading.Thread(target=checkpoint_thread)
    thread.start()
    held.wait()
    shell = SimpleNamespace(durable=SimpleNamespace(store=store))
    with Server.forking(shell):  # type: ignore[arg-type]
        pid = os.fork()
        if pid == 0:  # the guardian: its first commit must not wait
            os._exit(0 if store.writing.acquire(timeout=2) else 1)
    _, status = os.waitpid(pid, 0)
    thread.join()
    store.append(1, b"entry")  # and the daemon goes on
    store.close()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
