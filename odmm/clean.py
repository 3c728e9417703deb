"""``odmm clean``: remove whatever a crashed or killed run left behind (like ``mn -c``).

Removes odmm-* namespaces and every process inside them, processes started by a testbed
(marked with ODMM_TESTBED in their environment) that escaped, and NFQUEUE rules tagged
``odmm`` in the root namespace. Refuses while a live testbed holds the lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

from odmm import netns
from odmm.errors import OdmmError
from topologies.testbed import CTL_DIR, LOCK_PATH, MARK_ENV

RULE_TAG = "--comment odmm"


@dataclass
class CleanReport:
    namespaces: list[str] = field(default_factory=list)
    processes: int = 0
    rules: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not (self.namespaces or self.processes or self.rules):
            return "nothing to clean"
        parts = []
        if self.namespaces:
            parts.append(f"{len(self.namespaces)} namespace(s): {', '.join(self.namespaces)}")
        if self.processes:
            parts.append(f"{self.processes} process(es)")
        if self.rules:
            parts.append(f"{len(self.rules)} root-namespace ip6tables rule(s)")
        return "removed " + "; ".join(parts)


def _lock_holder() -> str | None:
    """The pid text of a live testbed holding the lock, or None."""
    if not LOCK_PATH.exists():
        return None
    fd = os.open(LOCK_PATH, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
    finally:
        os.close(fd)
    return None


def _ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as fh:
                pid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            break
    return pids


def _marked_processes() -> list[int]:
    spare = _ancestors()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spare:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if f"{MARK_ENV}=".encode() in env:
            found.append(int(entry))
    return found


def _root_rules() -> list[str]:
    tool = shutil.which("ip6tables-save")
    if tool is None:
        return []
    res = subprocess.run([tool, "-t", "mangle"], capture_output=True, text=True)
    return [line for line in res.stdout.splitlines() if line.startswith("-A ") and RULE_TAG in line]


def clean(force: bool = False) -> CleanReport:
    holder = _lock_holder()
    if holder and not force:
        raise OdmmError(f"a testbed is running (pid {holder}); stop it first or use `odmm clean --force`")
    report = CleanReport()
    names = netns.ours()
    report.processes += netns.kill_all_in(names)
    for name in names:
        netns.remove(name)
    report.namespaces = names
    strays = _marked_processes()
    for pid in strays:
        try:
            os.kill(pid, signal.SIGKILL)
            report.processes += 1
        except ProcessLookupError:
            pass
    for rule in _root_rules():
        subprocess.run(["ip6tables", "-w", "-t", "mangle", "-D", *rule.split()[1:]], capture_output=True)
        report.rules.append(rule)
    for sock in CTL_DIR.glob("*.sock"):  # control sockets of daemons that are gone
        sock.unlink(missing_ok=True)
    if not holder and LOCK_PATH.exists():
        LOCK_PATH.unlink()
    return report
