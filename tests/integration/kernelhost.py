"""The mobile-node side for gateway tests: scapy-built RS on a raw socket, kernel SLAAC."""

from __future__ import annotations

import itertools
import time
from ipaddress import IPv6Address, IPv6Network

from mobilehost.solicit import Answer, open_nd, solicit
from odmm import netns
from odmm.addrtypes import AddressType
from odmm.wire import Release, Request


class KernelHost:
    def __init__(self, tb, name: str = "mn") -> None:
        self.tb = tb
        self.name = name
        self.ns = netns.name_of(name)
        self.ipr = tb.ipr(name)
        self.ifname = f"{name}-eth0"
        self.ifindex = self.ipr.link_lookup(ifname=self.ifname)[0]
        self.mac = self.ipr.get_links(self.ifindex)[0].get_attr("IFLA_ADDRESS")
        self.nd = open_nd(self.ns)
        self._ids = itertools.count(1)

    def request(self, addrtype: AddressType | int, on_net: bool = False, timeout: float = 2.0,
                answered: bool = True) -> tuple[Answer, int]:
        """Request a prefix; ``answered=False`` accepts any RA (a legacy network ignores requests)."""
        reqid = next(self._ids)
        answer = solicit(self.nd, self.ifindex, self.mac, f"{self.name}@odmm", [Request(reqid, int(addrtype), on_net)],
                         timeout=timeout, need_responses=answered)
        assert answer is not None, f"no answer to request {reqid} for type {addrtype}"
        return answer, reqid

    def release(self, prefix: IPv6Network) -> Answer | None:
        return solicit(self.nd, self.ifindex, self.mac, f"{self.name}@odmm",
                       releases=[Release(next(self._ids), prefix)], timeout=1.0)

    def addresses(self) -> dict[IPv6Network, str]:
        """Global, usable (non-tentative) addresses by /64."""
        out = {}
        for ad in self.ipr.get_addr(index=self.ifindex, family=10):
            a = IPv6Address(ad.get_attr("IFA_ADDRESS"))
            if not a.is_link_local and not ad["flags"] & 0x40:  # IFA_F_TENTATIVE
                out[IPv6Network((a, 64), strict=False)] = str(a)
        return out

    def wait_address(self, prefix: IPv6Network, timeout: float = 2.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            got = self.addresses().get(prefix)
            if got:
                return got
            assert time.monotonic() < deadline, f"{self.name} has no address in {prefix}: {self.addresses()}"
            time.sleep(0.01)
