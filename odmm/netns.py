"""Named network namespaces of the testbed (``odmm-<node>`` under /run/netns).

Mininet's nodes live in anonymous namespaces held by their shells; the testbed names each
one, so that ``ip netns exec odmm-mn ...`` works for users and ``odmm clean`` can find
and remove everything a crashed run left behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import threading
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


_libc = ctypes.CDLL(None, use_errno=True)
_setns_lock = threading.Lock()
CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def socket_in(name: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket created inside namespace ``name`` (full odmm-* name or path).

    setns() moves only the calling thread, and a socket stays in the namespace it was
    created in, so this is a cheap syscall pair instead of pyroute2's fork per socket.
    """
    path = name if name.startswith("/") else os.path.join(RUN_DIR, name)
    with _setns_lock:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            target = os.open(path, os.O_RDONLY)
            try:
                _setns(target)
                try:
                    return socket.socket(family, kind, proto)
                finally:
                    _setns(home)
            finally:
                os.close(target)
        finally:
            os.close(home)


def create(node: str) -> None:
    """An empty namespace odmm-<node> (not a Mininet node)."""
    _netns.create(name_of(node))


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
