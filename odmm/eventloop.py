"""A small single-threaded event loop for the daemons: fd readiness and timers.

The daemons configure the kernel with pyroute2's synchronous API, which runs an asyncio loop
of its own per call; that cannot nest inside a running asyncio loop, hence this loop.
"""

from __future__ import annotations

import gc
import heapq
import itertools
import os
import selectors
import signal
import sys
import time
from collections.abc import Callable

DAEMON_RT_PRIORITY = 10  # SCHED_RR, below the kernel's own real-time threads (50 and up)
DAEMON_NICE = -10        # the fallback: level with the delay elements


class Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._running = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._drain_wake)
        self.on_error: Callable[[BaseException], None] | None = None

    @staticmethod
    def now() -> float:
        return time.monotonic()

    def add_reader(self, fileobj, callback: Callable[[], None]) -> None:
        self._sel.register(fileobj, selectors.EVENT_READ, callback)

    def remove_reader(self, fileobj) -> None:
        try:
            self._sel.unregister(fileobj)
        except (KeyError, ValueError):
            pass

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        t = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), t))
        return t

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self.now() + max(0.0, delay), callback)

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def stop(self) -> None:
        self._running = False
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    @staticmethod
    def raise_priority() -> str:
        """Protocol daemons stand for the routers' control planes and the host's stack: a
        handoff's critical path hops through three of them (host, new gateway, anchor), so
        application and emulation load must not delay their wake-ups. SCHED_RR at a low
        real-time priority does that (handoffs measured ~5 ms shorter on 2 cores than at nice
        -10); the daemons are event-driven and light, and the kernel keeps 5 % of each second
        for other tasks anyway. Falls back to nice -10 where real-time scheduling is refused
        (no CAP_SYS_NICE, a cgroup without real-time runtime). Returns what was chosen, for
        the daemon's log."""
        try:
            os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(DAEMON_RT_PRIORITY))
            return f"SCHED_RR priority {DAEMON_RT_PRIORITY}"
        except (OSError, AttributeError):
            pass
        try:
            os.nice(DAEMON_NICE)
            return f"nice {DAEMON_NICE} (real-time scheduling refused)"
        except OSError:
            return "default priority (not permitted to raise it)"

    def stop_on_signals(self, *signums: int) -> None:
        for s in signums or (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: self.stop())

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception as exc:  # a bug in one handler must not kill the daemon
            if self.on_error:
                self.on_error(exc)
            else:
                raise

    def run(self) -> None:
        self._running = True
        while self._running:
            timeout = None
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - self.now())
            for key, _ in self._sel.select(timeout):
                self._guard(key.data)
            now = self.now()
            while self._timers and self._timers[0][0] <= now:
                _, _, t = heapq.heappop(self._timers)
                if not t.cancelled:
                    self._guard(t.callback)


def freeze_heap() -> None:
    """Exempt everything allocated so far (imports, scapy's protocol tables, the daemon's
    set-up) from the cyclic garbage collector. A full collection over that heap took 28-93 ms
    in the daemons, deterministically at the same point of a run, stalling whatever message
    was being handled (a handoff's PBA left the HA 25-40 ms late). Call once, when a
    long-running process has finished setting up and enters its steady state."""
    gc.collect()
    gc.freeze()


def daemon_main(argv: list[str] | None, module: str, start: Callable[[str], None]) -> int:
    """``python -m <module> CONFIG_JSON``: the entry point every odmm daemon shares."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write(f"usage: python -m {module} CONFIG_JSON\n")
        return 2
    start(argv[0])
    return 0
