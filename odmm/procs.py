"""Supervised processes inside testbed namespaces (delay elements, later the daemons).

A process that dies while the testbed needs it is reported loudly (stderr, at once, with the
tail of its log) and makes ``Supervisor.check()`` raise ``DaemonDied``; nobody polls a dead
link and gets plausible-looking numbers.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from odmm.errors import BuildError, DaemonDied


def readable(fileobj, timeout: float) -> bool:
    """Wait up to ``timeout`` s for input (poll, not select: big testbeds use fds > 1023)."""
    poller = select.poll()
    poller.register(fileobj, select.POLLIN)
    return bool(poller.poll(max(0.0, timeout) * 1000))


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path
    expected_exit: bool = False
    finite: bool = False  # a program that ends by itself: exit status 0 is not a death
    exit_reported: bool = field(default=False, repr=False)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def died(self) -> bool:
        """Exited while needed (a finite program may end with status 0)."""
        rc = self.popen.poll()
        return rc is not None and not self.expected_exit and not (self.finite and rc == 0)

    def describe_death(self) -> str:
        rc = self.popen.returncode
        how = f"killed by signal {-rc}" if rc is not None and rc < 0 else f"exit status {rc}"
        tail = log_tail(self.log)
        return f"{self.name} died ({how}); log {self.log}" + (f":\n{tail}" if tail else "")


class Supervisor:
    """Starts processes, watches them from a thread, stops them all."""

    def __init__(self, on_death: Callable[[Proc], None] | None = None, poll_s: float = 0.2) -> None:
        self.procs: list[Proc] = []
        self._dead: list[Proc] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poll_s = poll_s
        self._on_death = on_death or self._report
        self._thread = threading.Thread(target=self._watch, name="odmm-supervisor", daemon=True)
        self._thread.start()

    @staticmethod
    def _report(proc: Proc) -> None:
        sys.stderr.write(f"odmm: ERROR: {proc.describe_death()}\n")
        sys.stderr.flush()

    def spawn(self, name: str, start: Callable[..., subprocess.Popen], argv: list[str], log: Path,
              ready: str | None = None, ready_timeout: float = 10.0, env: dict | None = None) -> Proc:
        """Start ``argv`` with ``start`` (e.g. a Mininet node's popen); wait for the ``ready``
        line on its stdout if given. stderr goes to ``log``."""
        proc = self.launch(name, start, argv, log, ready is not None, env)
        if ready:
            self.wait_ready([proc], ready, ready_timeout)
        return proc

    def launch(self, name: str, start: Callable[..., subprocess.Popen], argv: list[str], log: Path,
               pipe_stdout: bool = False, env: dict | None = None, finite: bool = False) -> Proc:
        """Start without waiting (see ``wait_ready``); the process is supervised from now on."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as errfile:
            popen = start(argv, stdout=subprocess.PIPE if pipe_stdout else subprocess.DEVNULL,
                          stderr=errfile, stdin=subprocess.DEVNULL, env=env)
        proc = Proc(name, popen, log, finite=finite)
        with self._lock:
            self.procs.append(proc)
        return proc

    def wait_ready(self, procs: list[Proc], ready: str, timeout: float = 10.0) -> None:
        """Wait until every process printed the ``ready`` line (they start in parallel)."""
        deadline = time.monotonic() + timeout
        lines = {p.popen.stdout.fileno(): (p, bytearray()) for p in procs}
        waiting = dict(lines)
        poller = select.poll()
        for fd in waiting:
            poller.register(fd, select.POLLIN | select.POLLHUP)
        while waiting:
            left = deadline - time.monotonic()
            events = poller.poll(max(0.0, left) * 1000) if left > 0 else []
            if not events:
                break
            for fd, _ev in events:
                proc, buf = waiting[fd]
                chunk = os.read(fd, 256)
                buf += chunk
                if not chunk or b"\n" in buf:
                    poller.unregister(fd)
                    del waiting[fd]
        failed = [p for p, buf in lines.values() if bytes(buf).strip() != ready.encode()]
        if failed:
            for p in failed:
                p.expected_exit = True
                p.exit_reported = True
                self._kill(p.popen)
                p.popen.wait()
            raise BuildError(f"{failed[0].name} did not become ready within {timeout:g} s; {failed[0].describe_death()}"
                             + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))

    def _watch(self) -> None:
        while not self._stop.wait(self._poll_s):
            with self._lock:
                procs = list(self.procs)
            for p in procs:
                if not p.exit_reported and p.died():
                    p.exit_reported = True
                    with self._lock:
                        self._dead.append(p)
                    self._on_death(p)

    def check(self) -> None:
        """Raise DaemonDied if any supervised process has died unexpectedly."""
        with self._lock:
            procs = list(self.procs)
        dead = [p for p in procs if p.died()]
        if dead:
            for p in dead:
                if not p.exit_reported:
                    p.exit_reported = True
            raise DaemonDied("; ".join(p.describe_death() for p in dead))

    @staticmethod
    def _kill(popen: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            popen.send_signal(sig)
        except ProcessLookupError:
            pass

    def stop_all(self, timeout: float = 3.0) -> None:
        """SIGTERM everything, wait up to ``timeout``, SIGKILL the rest."""
        with self._lock:
            procs = list(self.procs)
        for p in procs:
            p.expected_exit = True
            if p.alive():
                self._kill(p.popen, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in procs:
            try:
                p.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._kill(p.popen)
                p.popen.wait()
            if p.popen.stdout:
                p.popen.stdout.close()
        self._stop.set()
