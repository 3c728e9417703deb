"""The userspace delay element: holds NFQUEUE'd packets and accepts them late.

Runs inside one router namespace and serves every emulated link direction hooked there
(one NFQUEUE number per direction). Each queue applies a constant delay, optional uniform
jitter (+/- jitter, never reordering: a packet is never released before its predecessor,
which keeps TCP sane) and Bernoulli loss. Release times are kept on a CLOCK_MONOTONIC
timerfd with absolute deadlines; all packets of a queue that are due together are released
with one batch verdict.

Timing. A packet's delay counts from the moment it entered the hook, not from when this
process heard of it (~0.1 ms later here):
- ``ingress`` queues (PREROUTING) use the kernel receive stamp of the packet;
- ``egress`` queues (FORWARD/OUTPUT) see the same stamp, but a packet that was already held
  by an ingress queue of this namespace entered the egress hook when it was released; the
  element remembers those release times by stamp. Locally generated packets carry no stamp
  and count from reception.
The timer is armed ``lead`` ns before the earliest due time, ``lead`` being steered so that
wake-ups land just before it; the element then spins on the clock up to the due time.

Usage (started by the testbed inside the namespace):
    python -m odmm.linkemu.delayd CONFIG_JSON
It prints ``READY`` on stdout once every queue is bound, and on SIGTERM writes its counters
to the ``stats`` path of the config and exits.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import select
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field

from odmm import kstamp
from odmm.eventloop import freeze_heap
from odmm.linkemu.nfqueue import NF_ACCEPT, NF_DROP, QueueSocket, parse_packet

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1
PR_SET_TIMERSLACK = 29

EARLY_NS = 5_000           # release packets due within this margin
SPIN_NS = 40_000           # aim timer wake-ups this long before the due time, then spin
MAX_SPIN_NS = 400_000      # never spin longer than this (a wake-up far too early re-arms)
MAX_LEAD_NS = 400_000      # cap on the learned timer lead
LEAD_STEP_NS = 30_000      # most one wake-up may move it: a rare multi-ms scheduling delay must not
                           # teach the element to wake (and spin) that much early every time
NICE = -10                 # the emulated links are the network: applications must not starve them
INITIAL_LEAD_NS = 200_000  # typical timer wake-up latency + SPIN_NS on a small VM
STALE_STAMP_NS = 50_000_000  # a stamp older than this is not trusted (clock step, bug)
RELEASE_MEMORY_NS = 2_000_000_000  # how long ingress release times are remembered


class TimerFd:
    """An absolute-deadline CLOCK_MONOTONIC timerfd (os.timerfd_* only exists from 3.13)."""

    class _Itimerspec(ctypes.Structure):
        _fields_ = [("it_interval", ctypes.c_long * 2), ("it_value", ctypes.c_long * 2)]

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._spec = self._Itimerspec()
        self._libc.prctl(PR_SET_TIMERSLACK, 1, 0, 0, 0)

    def arm(self, deadline_ns: int) -> None:
        sec, nsec = divmod(max(deadline_ns, 1), 1_000_000_000)
        self._spec.it_value[0], self._spec.it_value[1] = sec, nsec
        if self._libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None):
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")

    def clear(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            pass


@dataclass
class Queue:
    """One emulated link direction."""

    num: int
    delay_ns: int
    jitter_ns: int = 0
    loss: float = 0.0
    egress: bool = False
    link: str = ""
    pending: deque = field(default_factory=deque)  # (due, packet id, stamp) in arrival order
    last_due: int = 0
    received: int = 0
    dropped: int = 0
    released: int = 0
    late_sum_ns: int = 0
    late_max_ns: int = 0

    def counters(self) -> dict:
        n = self.released
        return {
            "link": self.link, "received": self.received, "dropped": self.dropped, "released": n,
            "late_mean_us": self.late_sum_ns / n / 1000 if n else 0.0,
            "late_max_us": self.late_max_ns / 1000,
        }


class DelayElement:
    """The event loop: take packets in, release them when due."""

    def __init__(self, config: dict) -> None:
        self.rng = random.Random(config.get("seed", 1))
        self.queues = {
            q["queue"]: Queue(
                q["queue"], int(q["delay_us"] * 1000), int(q.get("jitter_us", 0) * 1000),
                float(q.get("loss_pct", 0.0)) / 100.0, bool(q.get("egress", False)), q.get("link", ""),
            )
            for q in config["queues"]
        }
        self.track_releases = any(q.egress for q in self.queues.values())
        self.released_at: dict[int, int] = {}  # ingress stamp -> release time (monotonic)
        self.release_log: deque = deque()       # (release time, stamp) for expiry
        # Any socket with SO_TIMESTAMPNS turns on kernel receive stamps (NFQA_TIMESTAMP).
        self._stamper = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        kstamp.enable(self._stamper)
        self.nl = QueueSocket()
        for q in config["queues"]:
            # GSO super-packets pass whole unless loss is per packet (then the kernel segments).
            self.nl.bind(q["queue"], gso=not q.get("loss_pct"))
        self.nl.sock.setblocking(False)
        self.timer = TimerFd()
        self.lead = INITIAL_LEAD_NS
        self.armed = 0
        self.steering = False  # the armed deadline includes ``lead``
        self.enobufs = 0
        self.stamped = 0
        self.unstamped = 0

    def _take(self, buf: bytearray, mv: memoryview) -> None:
        """Read every queued packet notification and schedule it."""
        clock = time.monotonic_ns
        offset = time.time_ns() - clock()  # CLOCK_REALTIME stamps -> monotonic
        rand = self.rng.random
        recv_into = self.nl.sock.recv_into
        while True:
            try:
                n = recv_into(buf)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.enobufs += 1
                    continue
                raise
            parsed = parse_packet(mv, n)
            if parsed is None:
                continue
            qnum, pid, stamp = parsed
            q = self.queues.get(qnum)
            if q is None:
                continue
            q.received += 1
            if q.loss and rand() < q.loss:
                q.dropped += 1
                self.nl.verdict(qnum, pid, NF_DROP)
                continue
            now = clock()
            entered = stamp - offset if stamp else 0
            if entered <= 0 or entered > now or now - entered > STALE_STAMP_NS:
                entered = now
                self.unstamped += 1
            else:
                self.stamped += 1
                if q.egress and stamp in self.released_at:
                    entered = self.released_at[stamp]
            due = entered + q.delay_ns
            if q.jitter_ns:
                due += int((2.0 * rand() - 1.0) * q.jitter_ns)
            if due < q.last_due:
                due = q.last_due  # never reorder
            q.last_due = due
            q.pending.append((due, pid, stamp))

    def _head_due(self) -> int:
        heads = [q.pending[0][0] for q in self.queues.values() if q.pending]
        return min(heads) if heads else 0

    def _release(self, timer_fired: bool) -> None:
        """Accept everything due (one batch verdict per queue) and re-arm the timer.

        A timer wake-up is armed ``lead`` early so that it lands ``SPIN_NS`` before the due
        time (``lead`` follows the measured wake-up latency); the last few microseconds are
        spent spinning on the clock, which removes most of the VM's wake-up jitter.
        """
        clock = time.monotonic_ns
        now = clock()
        if timer_fired and self.steering:
            head = self._head_due()
            if head:
                step = min(max((now - (head - SPIN_NS)) >> 2, -LEAD_STEP_NS), LEAD_STEP_NS)
                self.lead = min(max(self.lead + step, 0), MAX_LEAD_NS)
                if 0 < head - now <= MAX_SPIN_NS:
                    while now < head:
                        now = clock()
        horizon = now + EARLY_NS
        next_due = 0
        for q in self.queues.values():
            pending = q.pending
            if not pending:
                continue
            last = -1
            while pending and pending[0][0] <= horizon:
                due, last, stamp = pending.popleft()
                late = now - due
                q.late_sum_ns += late
                if late > q.late_max_ns:
                    q.late_max_ns = late
                q.released += 1
                if self.track_releases and stamp and not q.egress:
                    self.released_at[stamp] = now
                    self.release_log.append((now, stamp))
            if last >= 0:
                self.nl.verdict(q.num, last, NF_ACCEPT, batch=True)
            if pending and (next_due == 0 or pending[0][0] < next_due):
                next_due = pending[0][0]
        if self.release_log:
            log, memory = self.release_log, self.released_at
            while log and log[0][0] < now - RELEASE_MEMORY_NS:
                t, stamp = log.popleft()
                if memory.get(stamp) == t:
                    del memory[stamp]
        if next_due:
            deadline = next_due - self.lead
            # Only wake-ups armed with the full lead steer it; an immediate re-arm does not.
            self.steering = deadline > now
            if not self.steering:
                deadline = now + 1
            if deadline != self.armed:
                self.timer.arm(deadline)
                self.armed = deadline

    def serve(self) -> dict:
        """Run until SIGTERM; return the counters."""
        ep = select.epoll()
        ep.register(self.nl.fileno(), select.EPOLLIN)
        ep.register(self.timer.fd, select.EPOLLIN)
        stop_r, stop_w = os.pipe()
        ep.register(stop_r, select.EPOLLIN)
        signal.signal(signal.SIGTERM, lambda *_: os.write(stop_w, b"x"))
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the testbed stops us with SIGTERM
        buf = bytearray(65536)
        mv = memoryview(buf)
        freeze_heap()  # a full collection must not hold packets past their due time
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        running = True
        while running:
            timer_fired = False
            for fd, _ev in ep.poll():
                if fd == stop_r:
                    running = False
                elif fd == self.timer.fd:
                    self.timer.clear()
                    timer_fired = True
                    self.armed = 0
            self._take(buf, mv)
            self._release(timer_fired)
        return {
            "enobufs": self.enobufs, "stamped": self.stamped, "unstamped": self.unstamped,
            "lead_us": self.lead / 1000,
            "queues": {q.num: q.counters() for q in self.queues.values()},
        }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m odmm.linkemu.delayd CONFIG_JSON\n")
        return 2
    config = json.loads(argv[0])
    try:
        os.nice(NICE)
    except OSError:
        pass  # not root: run at normal priority
    stats = DelayElement(config).serve()
    path = config.get("stats")
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(stats, fh)
        os.replace(tmp, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
