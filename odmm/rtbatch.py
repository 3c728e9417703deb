"""Install many routes in one namespace fast: pyroute2-encoded messages, sent in batches.

A 200-node topology needs ~40 000 routes. One ``IPRoute.route()`` call per route costs
~0.27 ms here (request, wait for the ack); encoding the same RTM_NEWROUTE messages with
pyroute2 and streaming them over one netlink socket, acks read as they come, costs ~0.08 ms.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_NEWROUTE
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from odmm.errors import BuildError
from odmm.netns import socket_in

NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # acks without a copy of the request
SO_RCVBUFFORCE = 33
NLMSG_ERROR = 2
RTPROT_STATIC = 4
RT_TABLE_MAIN = 254
RTN_UNICAST = 1
CHUNK_BYTES = 16384


def encode_route(seq: int, dst: str, prefixlen: int, gateway: str, oif: int) -> bytes:
    msg = rtmsg()
    msg["family"] = socket.AF_INET6
    msg["dst_len"] = prefixlen
    msg["table"] = RT_TABLE_MAIN
    msg["proto"] = RTPROT_STATIC
    msg["scope"] = 0
    msg["type"] = RTN_UNICAST
    msg["attrs"] = [("RTA_DST", dst), ("RTA_GATEWAY", gateway), ("RTA_OIF", oif)]
    msg["header"]["type"] = RTM_NEWROUTE
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


def add_routes(netns_name: str, routes: Iterable[tuple[str, int, str, int]]) -> int:
    """Add (dst, prefixlen, gateway, oif) IPv6 routes in ``netns_name``; BuildError on any failure."""
    routes = list(routes)
    msgs = [encode_route(i + 1, *r) for i, r in enumerate(routes)]
    if not msgs:
        return 0
    sock = socket_in(netns_name, socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.bind((0, 0))
        errors: list[tuple[int, int]] = []
        acked = 0
        chunk: list[bytes] = []
        size = 0
        for m in msgs:
            chunk.append(m)
            size += len(m)
            if size >= CHUNK_BYTES:
                sock.send(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            sock.send(b"".join(chunk))
        while acked < len(msgs):
            data = sock.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                length, mtype, _flags, seq, _pid = struct.unpack_from("=IHHII", data, off)
                if mtype == NLMSG_ERROR:
                    acked += 1
                    err = struct.unpack_from("=i", data, off + 16)[0]
                    if err:
                        errors.append((seq, -err))
                off += max(length, 16)
        if errors:
            seq, err = errors[0]
            dst, plen, gw, oif = routes[seq - 1]
            raise BuildError(f"{netns_name}: {len(errors)} route(s) refused, first {dst}/{plen} via {gw} "
                             f"(oif {oif}): {os.strerror(err)}")
        return len(msgs)
    finally:
        sock.close()
