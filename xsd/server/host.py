"""The daemon's main loop: a plain epoll loop that owns the sockets and the engine.

The request path never enters trio's scheduler. One loop, in the main thread, waits on
one ``select.epoll`` holding every client socket (:class:`~xsd.server.mux.Multiplexer`),
the listening sockets and a wake-up eventfd; it reads, lets the engine answer, writes,
fires the engine's timers from its own wait (the timeout is the engine's next deadline)
and runs the callbacks queued for it. trio runs the services (watchdog actions, QMP,
hooks, kickers and heartbeats, durable checkpoints, live-update orchestration, signals)
as a *guest* of this loop (``trio.lowlevel.start_guest_run``): trio's own I/O wait runs
in a thread of trio's, which only hands the results back through
:meth:`Host.call_soon_threadsafe`; every step of every trio task runs here, between two
passes, so exactly one thread ever touches the engine.

Why this design (``python tools/bench_loop.py``: an echo server with one request in
flight per client, the same clients against each design in the same run, interleaved,
on the shared 2-core machine at a load average of 8-20; server CPU per request from the
server's threads' schedstat, medians of two runs of 3 and 6 repetitions):

============================  ===============  ===============================
design                        CPU/request 1x1  per-run ratio to the old design
============================  ===============  ===============================
trio task on an epoll (old)   36-40 us         1
epoll loop, trio as guest     18-20 us         0.35-0.73
epoll loop, trio in a thread  15-17 us         0.28-0.56
epoll loop, no trio (floor)   13-14 us         0.22-0.48
============================  ===============  ===============================

With 8 clients every design costs 12-15 us a request (a wake-up serves several). The
guest and the thread both leave trio out of the request path and are within the noise
of each other (the guest's small extra is its 100 Hz test heartbeat, which an idle
daemon does not have). The guest won on what the thread would cost elsewhere: with trio
in its own thread, every service's call into the engine must be marshalled to this
thread and waited for, and a service at work (a dry run packing the state, a
checkpoint) takes the GIL from the request path for up to the switch interval (5 ms);
as a guest, trio's work runs here in task-sized steps between passes, and the services
call the engine directly, as they always did.

Where an unpipelined request's CPU goes (one client, READ then WRITE of one node,
C xenstored in the same interleaved run; CPU from /proc utime/stime and schedstat):
three system calls a request (``epoll_wait``, ``recv``, ``send``: ``strace -c``), which
cost xsd 4-5 us of system time and C 6-7 us; then Python: 9-10 us of user time for a
READ, 12-13 us for a WRITE, against C's 1.5-2 us. The engine's share of that (measured
alone, in-process) is 3.8 us for a READ and 6 us for a WRITE; the rest is this loop, the
multiplexer and the flush, about 25 Python calls a request in all. (A wall-clock
profile, py-spy's, puts most samples in ``send``: time the daemon was runnable but the
client it had just woken held the CPU, not CPU spent.) No trimming of Python closes
that: the plain epoll echo alone costs 4.7 us.

So the modules every request runs through are compiled with mypyc when xsd is installed
(``setup.py``'s ``HOT``: the engine, context, flow, views, tree, connections, node
operations, paths, permissions, payloads, the watch index, the rule of which domains
exist, the node, transaction and watch request families, the watchdogs (their feature,
machine, write checks and layout), this loop and the multiplexer; ``xsd.compiled`` runs
them as Python if a source changed since). Paired runs, the same daemon compiled and as
Python, C in the same run (``tools/bench`` cells, medians of five turns; CPU per request):

=====================  ========================  ========================  ==========
cell                   compiled / Python         CPU compiled / Python     C's CPU
=====================  ========================  ========================  ==========
write 1x1              1.04                      37 / 42 us                26 us
write 8x1              1.21                      11.7 / 15.4 us            11.7 us
write 1x64             1.47                      3.5 / 5.2 us              4.7 us
txn 1x64               1.41                      15 / 22 us                20 us
=====================  ========================  ========================  ==========

Pipelined, xsd leads C on every cell (1.24-1.49x; watch fan-out 3.2-3.5x), and with
eight clients it leads too (1.03-1.08x but boot, 0.96) and spends less CPU per request
than C (0.91-0.98x; each daemon in a session of its own: ``tools/bench/daemons.py``).
With one request in flight it spends more. A request there runs no interpreted frame:
a plain pass's replies are written by :meth:`Multiplexer.flush
<xsd.server.mux.Multiplexer.flush>`, what the core ran interpreted (functions beside a
:class:`~xsd.core.fields.Fields` class: a caller's access, watch matching, the rule of
which domains exist) is in compiled modules of its own, and so is the wire's framing
(:mod:`xsd_client.framing`, a mypyc library of the client package's own, guarded by
:mod:`xsd_client._compiled`, so that a client program loads none of the daemon's).
``callgrind`` counts instructions, whatever the machine is doing: on
``tools/bench_pass.py`` (one connection, the pass alone) a WRITE took 33.3k instructions
with the framing interpreted, a fifth of them in it, and a third in lookups by name:
every module constant a compiled function read was a lookup in its module's dict, and
``self.handle(conn, *request)`` a generic call. With the constants ``Final`` (inlined,
or a C static), the call unpacked, the framing compiled (its header read by indexing a
``bytes`` buffer, not ``struct``), the views' interface a base class rather than a
protocol (a call through a protocol is a call by name), the state's connections held
by the engine and each socket's ``send`` and ``recv_into`` bound once, a WRITE took
21.1k and a READ 18.2k (29.5k before). ``tools/bench_instructions.py`` counts the whole
daemon (every thread, this loop and the system calls' Python side included, start-up
cancelled out), C in the same run: a WRITE then cost 24.1k against C's 8.2k, a READ
21.3k against 6.7k. What went next (18.6k and 15.4k; ``git log`` has each step): calls
that compiled code still made by name (an observer's hooks through a protocol, the
table's entries in an uncompiled ``__init__``, bound methods kept in locals, an
f-string of one int, ``bytes.find``), a 64 KiB ``malloc`` per read (a quiet
connection's read now asks for 479 bytes, which Python's small-object allocator
serves, and so does ``epoll.poll``'s array of 42 events), a tuple key on the path
cache, an ``Op`` key compared by value, the deque taken apart message by message. In
time, user-space CPU per request at 1x1 fell by a quarter (a WRITE 16 to 12 us, C 6
us); the kernel's share is below C's (18-19 us against 21-24: three system calls a
request, C seven: three polls, two reads, two writes; ``strace -c``). What the
instructions go to now is calls on objects that are not compiled (sockets, epoll,
deques, the records that ``handover`` reads), allocation and slices, each a fraction
of a microsecond. Cython on the modules as they were gained nothing measurable.

What compiling asks of the code (``tests/test_compiled.py`` checks the first): no
:class:`~xsd.core.fields.Fields` class in a compiled module (a compiled class keeps
neither the annotations nor the ``__init__`` code that ``fields`` and ``handover`` read:
hence the records in modules of their own, ``xsd.core.caller``, ``credentials``,
``watches`` and ``domains``, beside the compiled ``watch_index`` and ``domain_ids``), no
``else`` under ``TYPE_CHECKING`` (mypyc compiles it as unreachable and raises there), no
compiled function used as a method (it does not bind), and no Python subclass of a
compiled class.

Invariants:

* only this thread runs the engine: the trio guest's steps are callbacks of this loop;
  other threads (trio's I/O wait, ``trio.to_thread`` workers) reach it only through
  :meth:`Host.call_soon_threadsafe`;
* the wait's timeout is the time to the engine's next deadline, recomputed after every
  tick, whenever a ``TimerChanged`` effect says a new deadline appeared
  (:meth:`Host.timer_changed`) and at least every second; a pass never waits while
  callbacks are queued or connections have requests left;
* every pass runs the callbacks queued before it began (not those they queue), so
  neither the clients nor the services can starve the other;
* the loop ends when :meth:`Host.stop` is called (the guest's end does it); the guest's
  outcome is then returned or raised by :meth:`Host.run`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import select
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from outcome import Outcome

    from xsd.core.engine import Engine
    from xsd.server.mux import Multiplexer

Callback = Callable[[], object]

# Ready descriptors taken per wait. epoll.poll allocates an array of this many 12-byte
# events each call: up to 42, Python's small-object allocator serves it (512 bytes at
# most); 256 cost a malloc and a free of the C library's, ~600 instructions a wait. More
# ready descriptors than this are reported by the next wait, which does not sleep.
_EVENTS: Final = 42
_TICK_EVERY_NS: Final = 1_000_000_000  # the engine's tick runs at least this often
_IN: Final = select.EPOLLIN


class Host:
    """The main loop: the engine's thread, its sockets' wait, its timers and callbacks."""

    def __init__(self, engine: Engine, mux: Multiplexer) -> None:
        """After a tick the multiplexer's flush applies the engine's effects and writes
        its output, as after a pass."""
        self.engine = engine
        self.mux = mux
        self.epoll = mux.epoll
        self._readers = mux.readers
        self._calls: deque[Callback] = deque()
        self._timers: list[tuple[float, int, Callback]] = []  # (when, seq, fn): a heap
        self._seq = itertools.count()
        self._wakeup = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.epoll.register(self._wakeup, _IN)
        self._readers[self._wakeup] = self._woken
        self._next_tick = 0  # when the engine's tick is next due (monotonic ns)
        self._running = False
        self._outcome: Outcome[Any] | None = None

    # ------------------------------------------------------------------ the interface

    def call_soon(self, fn: Callback) -> None:
        """Run ``fn`` in this thread after the current pass (from this thread only)."""
        self._calls.append(fn)

    def call_soon_threadsafe(self, fn: Callback) -> None:
        """Run ``fn`` in this thread soon; callable from any thread."""
        self._calls.append(fn)
        os.eventfd_write(self._wakeup, 1)

    def call_later(self, delay: float, fn: Callback) -> None:
        """Run ``fn`` in this thread after ``delay`` seconds."""
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), fn))

    def add_reader(self, fd: int, fn: Callback) -> None:
        """Call ``fn`` whenever ``fd`` is readable (level-triggered); replaces the
        callback of a descriptor watched already."""
        if fd not in self._readers:
            self.epoll.register(fd, _IN)
        self._readers[fd] = fn

    def remove_reader(self, fd: int) -> None:
        """Stop watching ``fd`` (before it is closed)."""
        if self._readers.pop(fd, None) is not None:
            with contextlib.suppress(OSError):
                self.epoll.unregister(fd)

    def timer_changed(self) -> None:
        """A deadline may have appeared earlier than the loop waits for: look again."""
        self._next_tick = 0

    # ------------------------------------------------------------------ running

    def run(self, main: Callable[[], Awaitable[object]]) -> object:
        """Run ``main`` as trio's guest and serve until it returns; returns its result
        or raises its exception."""
        import trio

        trio.lowlevel.start_guest_run(
            main,
            run_sync_soon_threadsafe=self.call_soon_threadsafe,
            run_sync_soon_not_threadsafe=self.call_soon,
            done_callback=self._done,
        )
        self._running = True
        self._loop()
        assert self._outcome is not None
        return self._outcome.unwrap()

    def stop(self) -> None:
        """End the loop after the current pass."""
        self._running = False

    def _done(self, outcome: Outcome[Any]) -> None:
        self._outcome = outcome
        self.stop()

    def _woken(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wakeup)

    def _loop(self) -> None:
        poll, calls, mux, timers = self.epoll.poll, self._calls, self.mux, self._timers
        turns, popleft = mux.turns, calls.popleft  # not mux.pass_events: see below
        clock = time.monotonic_ns
        while self._running:
            now = clock()
            if now >= self._next_tick:
                self._tick(now)
                now = clock()
            if calls or turns:
                timeout = 0.0
            else:
                timeout = (self._next_tick - now) / 1e9
                if timers:
                    timeout = min(timeout, timers[0][0] - time.monotonic())
                if timeout < 0.0:
                    timeout = 0.0
            events = poll(timeout, _EVENTS)
            if events or turns:
                mux.pass_events(events)  # a native call; bound in a local, a Python one
            if timers:
                self._run_timers()
            if calls:
                for _ in range(len(calls)):
                    popleft()()

    def _tick(self, now: int) -> None:
        """Fire the engine's due deadlines, then decide when to look again."""
        engine = self.engine
        try:
            engine.tick(now)
            self.mux.flush()
        except Exception:
            # A bug in a timer must not stop the daemon (or the next timers).
            import logging

            logging.getLogger("xsd").exception("timer tick failed")
        deadline = engine.next_deadline()
        later = now + _TICK_EVERY_NS
        self._next_tick = later if deadline is None else min(deadline, later)

    def _run_timers(self) -> None:
        now = time.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now:
            heapq.heappop(timers)[2]()

    def close(self) -> None:
        """Forget the wake-up descriptor (the multiplexer closes the epoll)."""
        self.remove_reader(self._wakeup)
        os.close(self._wakeup)
