"""A raw ICMPv6 socket for Router Solicitations and Advertisements on chosen interfaces.

Messages go out with hop limit 255 (RFC 4861 requires it and receivers check it) to a
link-scope destination on an explicit interface; received messages come with the arrival
interface and hop limit, so that off-link or forged ND can be refused.
"""

from __future__ import annotations

import socket
import struct

ICMP6_FILTER = 1
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
ALL_ROUTERS = "ff02::2"  # where hosts send RS and gratuitous NAs


class NDSocket:
    def __init__(self, accept: set[int], sock: socket.socket | None = None) -> None:
        """``sock``: a raw ICMPv6 socket opened elsewhere (e.g. in another namespace)."""
        self.sock = sock or socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        words = [0xFFFFFFFF] * 8
        for t in accept:
            words[t >> 5] &= ~(1 << (t & 31))
        self.sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, struct.pack("=8I", *words))
        self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        self.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes, dst: str, ifindex: int, src: str | None = None) -> bool:
        """Send on ``ifindex``; ``src``: the source address (default: the kernel's choice,
        the link-local address for a link-scope destination)."""
        try:
            if src is None:
                self.sock.sendto(data, (dst, 0, 0, ifindex))
            else:
                info = socket.inet_pton(socket.AF_INET6, src) + struct.pack("=I", ifindex)
                self.sock.sendmsg([data], [(socket.IPPROTO_IPV6, IPV6_PKTINFO, info)], 0, (dst, 0, 0, ifindex))
            return True
        except OSError:
            return False  # interface gone or down, or the address already removed: the caller's state will catch up

    def receive(self) -> list[tuple[bytes, str, int, int]]:
        """Every pending message as (data, source, arrival ifindex, hop limit)."""
        out = []
        while True:
            try:
                data, anc, _flags, addr = self.sock.recvmsg(65535, 256)
            except BlockingIOError:
                return out
            ifindex, hops = 0, -1
            for level, ctype, cdata in anc:
                if level == socket.IPPROTO_IPV6 and ctype == IPV6_PKTINFO and len(cdata) >= 20:
                    ifindex = struct.unpack_from("=I", cdata, 16)[0]
                elif level == socket.IPPROTO_IPV6 and ctype == IPV6_HOPLIMIT and len(cdata) >= 4:
                    hops = struct.unpack_from("=i", cdata, 0)[0]
            out.append((data, addr[0].split("%")[0], ifindex, hops))

    def close(self) -> None:
        self.sock.close()
