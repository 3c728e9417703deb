"""Tunnels between anchors and serving gateways, and the routes and rules that use them.

One tunnel device per peer. Backends:
- ``ip6tnl`` (IPv6-in-IPv6) where the kernel has it: routes point at the device;
- ``vxlan`` over the IPv6 underlay (this kernel): an Ethernet-like device per peer with
  deterministic MAC addresses on both ends, so the peer's link-local address and a permanent
  neighbour entry are known up front and no ND runs over the tunnel.

Forward path: ``PREFIX via <peer> dev <tunnel>`` in the main table.
Reverse path (serving gateway): ``from PREFIX iif <access interface> lookup <peer table>``,
the peer table holding a default route into the tunnel. The ``iif`` keeps the router's own
packets (e.g. ICMPv6 Packet Too Big) out of the tunnel, so PMTUD keeps working.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

VXLAN_PORT = 4789
UNDERLAY_MTU = 1500
VXLAN_OVERHEAD = 40 + 8 + 8 + 14  # IPv6 + UDP + VXLAN + inner Ethernet
IP6TNL_OVERHEAD = 40
TABLE_BASE = 1000
RULE_PRIORITY = 100


def tunnel_mac(local_id: int, peer_id: int) -> str:
    """Locally administered MAC of the device on ``local_id`` towards ``peer_id``."""
    return f"02:0d:{local_id >> 8 & 0xff:02x}:{local_id & 0xff:02x}:{peer_id >> 8 & 0xff:02x}:{peer_id & 0xff:02x}"


def link_local(mac: str) -> IPv6Address:
    """The EUI-64 link-local address the kernel derives from ``mac``."""
    b = bytes(int(x, 16) for x in mac.split(":"))
    eui = bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:6]
    return IPv6Address(b"\xfe\x80" + b"\0" * 6 + eui)


def vni(a: int, b: int) -> int:
    """The VXLAN network identifier both ends of a pair agree on (ids < 4096)."""
    lo, hi = sorted((a, b))
    return lo * 4096 + hi


@dataclass
class Tunnel:
    peer: IPv6Address
    peer_id: int
    ifname: str
    ifindex: int
    table: int
    via: IPv6Address | None  # next hop inside the tunnel (vxlan), None for point-to-point


class TunnelManager:
    """Creates tunnels on demand and installs the routes and rules that use them."""

    def __init__(self, ipr, local: IPv6Address, local_id: int, ids: dict[str, int], backend: str) -> None:
        if backend not in ("vxlan", "ip6tnl"):
            raise ValueError(f"unknown tunnel backend {backend!r}")
        self.ipr = ipr
        self.local = IPv6Address(local)
        self.local_id = local_id
        self.ids = {IPv6Address(k): v for k, v in ids.items()}
        self.backend = backend
        self.tunnels: dict[IPv6Address, Tunnel] = {}
        self.routes: dict[IPv6Network, IPv6Address] = {}
        self.rules: dict[tuple[IPv6Network, str], IPv6Address] = {}

    def ensure(self, peer: IPv6Address) -> Tunnel:
        peer = IPv6Address(peer)
        if peer in self.tunnels:
            return self.tunnels[peer]
        if peer not in self.ids:
            raise KeyError(f"no tunnel id for peer {peer}")
        pid = self.ids[peer]
        ifname = f"tun{pid}"
        table = TABLE_BASE + pid
        if self.backend == "vxlan":
            mac = tunnel_mac(self.local_id, pid)
            self.ipr.link("add", ifname=ifname, kind="vxlan", vxlan_id=vni(self.local_id, pid),
                          vxlan_local6=str(self.local), vxlan_group6=str(peer), vxlan_port=VXLAN_PORT,
                          vxlan_learning=0, address=mac, mtu=UNDERLAY_MTU - VXLAN_OVERHEAD)
            via = link_local(tunnel_mac(pid, self.local_id))
        else:
            self.ipr.link("add", ifname=ifname, kind="ip6tnl", ip6tnl_local=str(self.local),
                          ip6tnl_remote=str(peer), ip6tnl_proto=socket.IPPROTO_IPV6,
                          mtu=UNDERLAY_MTU - IP6TNL_OVERHEAD)
            via = None
        idx = self.ipr.link_lookup(ifname=ifname)[0]
        self.ipr.link("set", index=idx, state="up")
        if via is not None:
            self.ipr.neigh("replace", dst=str(via), lladdr=tunnel_mac(pid, self.local_id), ifindex=idx,
                           state=0x80, family=socket.AF_INET6)  # NUD_PERMANENT
            self.ipr.route("replace", dst="::/0", gateway=str(via), oif=idx, table=table)
        else:
            self.ipr.route("replace", dst="::/0", oif=idx, table=table)
        t = Tunnel(peer, pid, ifname, idx, table, via)
        self.tunnels[peer] = t
        return t

    def remove_unused(self, keep: bool = True) -> None:
        """Delete tunnels no route or rule uses; by default they are kept for the next user
        (creating one costs ~20 ms of netlink calls on the critical path of a handoff)."""
        if keep:
            return
        used = set(self.routes.values()) | set(self.rules.values())
        for peer in [p for p in self.tunnels if p not in used]:
            t = self.tunnels.pop(peer)
            try:
                self.ipr.link("del", index=t.ifindex)
            except Exception:  # already gone with the namespace
                pass

    def route_via(self, prefix: IPv6Network, peer: IPv6Address) -> Tunnel:
        """Forward path: send ``prefix`` into the tunnel towards ``peer``."""
        t = self.ensure(peer)
        kw = {"gateway": str(t.via)} if t.via else {}
        self.ipr.route("replace", dst=str(prefix), oif=t.ifindex, **kw)
        self.routes[prefix] = t.peer
        return t

    def route_local(self, prefix: IPv6Network, ifindex: int) -> None:
        """Deliver ``prefix`` on an access link (the mobile node answers ND for its addresses)."""
        self.ipr.route("replace", dst=str(prefix), oif=ifindex)
        self.routes.pop(prefix, None)

    def unroute(self, prefix: IPv6Network) -> None:
        self.routes.pop(prefix, None)
        try:
            self.ipr.route("del", dst=str(prefix))
        except Exception:  # no such route (e.g. removed with its device)
            pass

    def reverse(self, prefix: IPv6Network, iif: str, peer: IPv6Address) -> Tunnel:
        """Reverse path: packets from ``prefix`` arriving on ``iif`` go into the tunnel."""
        t = self.ensure(peer)
        key = (prefix, iif)
        if key in self.rules:
            self._del_rule(prefix, iif, self.tunnels[self.rules[key]].table)
        self.ipr.rule("add", family=socket.AF_INET6, src=str(prefix.network_address), src_len=prefix.prefixlen,
                      iifname=iif, table=t.table, priority=RULE_PRIORITY)
        self.rules[key] = t.peer
        return t

    def unreverse(self, prefix: IPv6Network, iif: str) -> None:
        peer = self.rules.pop((prefix, iif), None)
        if peer is not None and peer in self.tunnels:
            self._del_rule(prefix, iif, self.tunnels[peer].table)

    def unreverse_iif(self, iif: str) -> None:
        for prefix, i in [k for k in self.rules if k[1] == iif]:
            self.unreverse(prefix, i)

    def _del_rule(self, prefix: IPv6Network, iif: str, table: int) -> None:
        try:
            self.ipr.rule("del", family=socket.AF_INET6, src=str(prefix.network_address),
                          src_len=prefix.prefixlen, iifname=iif, table=table, priority=RULE_PRIORITY)
        except Exception:
            pass

    def stats(self) -> dict[str, dict]:
        """Packet and byte counters of every tunnel device, from the kernel."""
        out = {}
        for t in self.tunnels.values():
            try:
                link = self.ipr.get_links(t.ifindex)[0]
            except Exception:
                continue
            s = link.get_attr("IFLA_STATS64") or {}
            out[str(t.peer)] = {"ifname": t.ifname, "tx_packets": s.get("tx_packets", 0),
                                "rx_packets": s.get("rx_packets", 0), "tx_bytes": s.get("tx_bytes", 0),
                                "rx_bytes": s.get("rx_bytes", 0)}
        return out
