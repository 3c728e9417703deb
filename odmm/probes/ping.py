"""ICMPv6 echo from inside a namespace, with per-packet RTTs at microsecond resolution.

Requests are crafted with scapy and sent on a raw ICMPv6 socket created in the source
namespace; replies are timestamped by the kernel (SO_TIMESTAMPNS), so the RTT excludes
this process's scheduling delay on the receive side. iputils ping rounds RTTs above
100 ms to whole milliseconds, too coarse for the 2 % fidelity checks.
"""

from __future__ import annotations

import os
import random
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field

from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest

from odmm import kstamp
from odmm.netns import socket_in
from odmm.procs import readable

ICMP6_FILTER = 1
ECHO_REPLY = 129


@dataclass
class PingResult:
    dst: str
    sent: int
    rtts_ms: list[float] = field(default_factory=list)  # measured packets only, in send order

    @property
    def received(self) -> int:
        return len(self.rtts_ms)

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def median_ms(self) -> float | None:
        return statistics.median(self.rtts_ms) if self.rtts_ms else None


def _echo_only_filter() -> bytes:
    words = [0xFFFFFFFF] * 8  # block everything ...
    words[ECHO_REPLY >> 5] &= ~(1 << (ECHO_REPLY & 31))  # ... but echo replies
    return struct.pack("=8I", *words)


def ping(netns_name: str, dst: str, count: int = 25, interval: float = 0.02, warmup: int = 5,
         timeout: float = 2.0, size: int = 56) -> PingResult:
    """Send ``warmup + count`` echo requests from ``netns_name``; RTTs of the last ``count``.

    Warm-up replies (neighbour discovery, cold caches) are not reported. Requests are paced
    at ``interval`` regardless of replies; a reply later than ``timeout`` after the last
    request counts as lost.
    """
    sock = socket_in(netns_name, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    try:
        sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, _echo_only_filter())
        kstamp.enable(sock)
        sock.setblocking(False)
        ident = random.randrange(1, 0xFFFF)
        payload = os.urandom(size)
        total = warmup + count
        sent_at: dict[int, int] = {}
        rtts: dict[int, float] = {}
        next_send = time.monotonic()
        seq = 0
        deadline = None
        while True:
            now = time.monotonic()
            if seq < total and now >= next_send:
                pkt = bytes(ICMPv6EchoRequest(id=ident, seq=seq, data=payload, cksum=0))
                sent_at[seq] = time.time_ns()
                try:
                    sock.sendto(pkt, (dst, 0))
                except OSError:
                    pass  # no route / unreachable yet: counts as lost
                seq += 1
                next_send += interval
                if seq == total:
                    deadline = now + timeout
                continue
            if len(rtts) == total or (deadline is not None and now >= deadline):
                break
            wait = (next_send if seq < total else deadline) - now
            if not readable(sock, wait):
                continue
            while True:
                try:
                    data, anc, _flags, _addr = sock.recvmsg(65535, kstamp.CMSG_SPACE)
                except BlockingIOError:
                    break
                stamp = kstamp.stamp_of(anc) or time.time_ns()
                reply = ICMPv6EchoReply(data)
                if reply.id != ident or reply.seq not in sent_at or reply.seq in rtts:
                    continue
                rtts[reply.seq] = (stamp - sent_at[reply.seq]) / 1e6
        measured = [rtts[s] for s in range(warmup, total) if s in rtts]
        return PingResult(dst, count, measured)
    finally:
        sock.close()
