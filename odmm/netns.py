"""Named network namespaces of the testbed (``odmm-<node>`` under /run/netns).

Mininet's nodes live in anonymous namespaces held by their shells; the testbed names each
one, so that ``ip netns exec odmm-mn ...`` works for users and ``odmm clean`` can find
and remove everything a crashed run left behind.
"""

from __future__ import annotations

import os
import signal
import time

from pyroute2 import netns as _netns

PREFIX = "odmm-"
RUN_DIR = "/run/netns"


def name_of(node: str) -> str:
    return PREFIX + node


def path_of(node: str) -> str:
    return os.path.join(RUN_DIR, name_of(node))


def ours() -> list[str]:
    """Every odmm namespace name currently mounted."""
    try:
        return sorted(n for n in os.listdir(RUN_DIR) if n.startswith(PREFIX))
    except FileNotFoundError:
        return []


def attach(node: str, pid: int) -> None:
    """Name the namespace of ``pid`` as odmm-<node>."""
    _netns.attach(name_of(node), pid)


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def pids_in(names: list[str]) -> dict[str, list[int]]:
    """Processes whose network namespace is one of ``names`` (full odmm-* names)."""
    inodes = {ino: n for n in names if (ino := _inode(os.path.join(RUN_DIR, n))) is not None}
    found: dict[str, list[int]] = {n: [] for n in names}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        ino = _inode(f"/proc/{entry}/ns/net")
        if ino in inodes:
            found[inodes[ino]].append(int(entry))
    return found


def kill_all_in(names: list[str], timeout: float = 2.0) -> int:
    """SIGTERM then SIGKILL every process living in ``names``; returns how many there were."""
    victims = [pid for pids in pids_in(names).values() for pid in pids if pid != os.getpid()]
    count = len(victims)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in victims:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            victims = [p for p in victims if os.path.exists(f"/proc/{p}") and not _zombie(p)]
            if not victims:
                break
            time.sleep(0.02)
        if not victims:
            break
    return count


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def remove(name: str) -> None:
    """Unmount and unlink a namespace name (the kernel frees it once no process holds it)."""
    try:
        _netns.remove(name)
    except FileNotFoundError:
        pass
