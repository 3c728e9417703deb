"""Send a Router Solicitation with on-demand requests and wait for the answering RA.

Used by the mobile-host daemon and by tests that drive the host side directly.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from odmm.ndsocket import ALL_ROUTERS, NDSocket
from odmm.netns import socket_in
from odmm.procs import readable
from odmm.wire import Release, Request, RouterAdvertisement, RouterSolicitation, WireError, build_rs, parse_nd


@dataclass
class Answer:
    ra: RouterAdvertisement
    source: str
    rtt_s: float


def open_nd(netns_name: str | None = None) -> NDSocket:
    """An NDSocket receiving RAs, created in ``netns_name`` (or here)."""
    sock = socket_in(netns_name, socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) if netns_name else None
    return NDSocket({134}, sock=sock)


def solicit(nd: NDSocket, ifindex: int, mac: str | None = None, mn_id: str | None = None,
            requests: list[Request] | None = None, releases: list[Release] | None = None,
            timeout: float = 2.0, raw: bytes | None = None, need_responses: bool = True) -> Answer | None:
    """Send one RS on ``ifindex``; return the first RA answering every request (any RA when
    nothing was requested or ``need_responses`` is false) within ``timeout``, else None.
    ``raw`` sends those bytes instead of a built RS."""
    requests = requests or []
    data = raw if raw is not None else build_rs(RouterSolicitation(mac, mn_id, requests, releases or []))
    nd.receive()  # drop anything older than this solicitation
    t0 = time.monotonic()
    if not nd.send(data, ALL_ROUTERS, ifindex):
        return None
    wanted = {r.reqid for r in requests} if need_responses else set()
    deadline = t0 + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not readable(nd.sock, left):
            return None
        for msg, src, idx, hops in nd.receive():
            if idx != ifindex or hops != 255:
                continue
            try:
                ra = parse_nd(msg)
            except WireError:
                continue
            if not isinstance(ra, RouterAdvertisement):
                continue
            if wanted <= {r.reqid for r in ra.responses}:
                return Answer(ra, src, time.monotonic() - t0)
