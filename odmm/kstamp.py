"""Kernel receive timestamps (SO_TIMESTAMPNS) for probes.

A user-space clock read after ``recv`` includes however long the process waited for a CPU;
on a 2-core machine running delay elements and daemons that is milliseconds at times, as
large as what the probes measure. The kernel stamps each packet when it arrives (in
CLOCK_REALTIME); probes convert the stamp to CLOCK_MONOTONIC, the clock every namespace
shares and every odmm record uses.

Use on end hosts (mobile and correspondent nodes). In a router namespace a link's delay is
applied by an ingress NFQUEUE element after the kernel has stamped the packet, so there the
stamp precedes the emulated delay.
"""

from __future__ import annotations

import socket
import struct
import time

SO_TIMESTAMPNS = 35          # Linux; also SCM_TIMESTAMPNS, the control message type
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("=qq")
CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


def enable(sock: socket.socket) -> None:
    """Ask the kernel to stamp every packet this socket receives."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def realtime_offset_ns() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC now; subtract it from a kernel stamp."""
    return time.time_ns() - time.monotonic_ns()


def stamp_of(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The CLOCK_REALTIME receive stamp (ns) in a ``recvmsg`` result, or None."""
    for level, ctype, cdata in ancdata:
        if level == socket.SOL_SOCKET and ctype == SCM_TIMESTAMPNS and len(cdata) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(cdata)
            return sec * 1_000_000_000 + nsec
    return None


def recv_monotonic(sock: socket.socket, bufsize: int, offset_ns: int) -> tuple[bytes, int]:
    """``recv`` with the packet's arrival time in CLOCK_MONOTONIC ns (now, if unstamped).

    ``offset_ns`` is a recent ``realtime_offset_ns()``: the caller takes it once per
    wake-up, not per packet.
    """
    data, anc, _flags, _addr = sock.recvmsg(bufsize, CMSG_SPACE)
    stamp = stamp_of(anc)
    return data, (stamp - offset_ns if stamp is not None else time.monotonic_ns())
