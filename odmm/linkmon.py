"""Link events from the kernel (RTM_NEWLINK / RTM_DELLINK) on a raw netlink socket.

Decoded with pyroute2's ``ifinfmsg``. Used by gateways to see a mobile node's access link
arrive (attach) or leave (detach) their namespace, and by mobile hosts to see carrier go.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

RTMGRP_LINK = 1
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFF_UP, IFF_RUNNING, IFF_LOWER_UP = 0x1, 0x40, 0x10000


@dataclass(frozen=True)
class LinkEvent:
    kind: str          # "new" or "del"
    ifname: str
    ifindex: int
    up: bool           # administratively up
    carrier: bool      # lower layer up
    mac: str | None


class LinkMonitor:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, 33, 1 << 20)  # SO_RCVBUFFORCE
        self.sock.bind((0, RTMGRP_LINK))
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def events(self) -> list[LinkEvent]:
        out = []
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except BlockingIOError:
                return out
            off = 0
            while off + 16 <= len(data):
                length, mtype = struct.unpack_from("=IH", data, off)
                if length < 16:
                    break
                if mtype in (RTM_NEWLINK, RTM_DELLINK):
                    msg = ifinfmsg(data[off:off + length])
                    msg.decode()
                    flags = msg["flags"]
                    out.append(LinkEvent("new" if mtype == RTM_NEWLINK else "del", msg.get_attr("IFLA_IFNAME") or "",
                                         msg["index"], bool(flags & IFF_UP), bool(flags & IFF_LOWER_UP),
                                         msg.get_attr("IFLA_ADDRESS")))
                off += (length + 3) & ~3

    def close(self) -> None:
        self.sock.close()
