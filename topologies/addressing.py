"""The address plan: the one place that decides which IPv6 address or prefix anything gets.

Everything lives in the documentation prefix 2001:db8::/32. Every node except a mobile
node owns a /48 *block*, whose first hex group reads as role + index::

    gw k   2001:db8:1KKK::/48   (gw1 -> 2001:db8:1001::/48; also its on-demand prefix pool)
    ha k   2001:db8:aKKK::/48   (also the FIXED prefix pool)
    cn k   2001:db8:cKKK::/48
    core k 2001:db8:eKKK::/48

Inside a block (the 4th group selects a /64):

    0000        routers: loopback <block>::1/128 ; correspondent nodes: their access link
    0001-efff   gateways and HA: per-mobile-node prefixes granted on demand
    f001-f999   gateways: static access link of mobile node k (f<k>), used without mobility
    ff01-ffff   router-to-router links, numbered per node (from the block of the link's 'a')

On a link, the router end (or 'a' for two routers) is ::1, the other end ::2. The gateway
end of a mobile node's access link is named ``acc-<node>`` (it moves between gateways). Routers
route each block towards its owner, so one route per node covers every address above.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Interface, IPv6Network

from odmm.errors import TopologyError
from topologies.model import Topology

DOC_PREFIX = IPv6Network("2001:db8::/32")
BLOCK_DIGIT = {"gw": 0x1, "ha": 0xA, "cn": 0xC, "core": 0xE}
MAX_INDEX = 999
POOL_FIRST, POOL_LAST = 0x0001, 0xEFFF
STATIC_ACCESS_BASE = 0xF000
ROUTER_LINK_BASE = 0xFF00


def block_of(role: str, index: int) -> IPv6Network:
    """The /48 owned by node ``index`` of ``role`` (mobile nodes own none)."""
    if role not in BLOCK_DIGIT:
        raise ValueError(f"role {role!r} owns no address block")
    if not 1 <= index <= MAX_INDEX:
        raise TopologyError(f"too many nodes of role {role!r}: the address plan has room for {MAX_INDEX}")
    group = int(f"{BLOCK_DIGIT[role]:x}{index:03d}", 16)
    return IPv6Network((int(DOC_PREFIX.network_address) | (group << 80), 48))


def subnet(block: IPv6Network, number: int) -> IPv6Network:
    """The /64 number ``number`` (0..0xffff) inside a /48 block."""
    return IPv6Network((int(block.network_address) | (number << 64), 64))


def host(net: IPv6Network, iid: int) -> IPv6Address:
    return IPv6Address(int(net.network_address) + iid)


def access_ifname(mn: str) -> str:
    """The gateway end of a mobile node's access link: it keeps this name on every gateway
    it moves to, and the gateway daemon derives the node's identity from it."""
    return f"acc-{mn}"


@dataclass(frozen=True)
class Interface:
    """One end of a link, as configured on its node."""

    node: str
    name: str           # e.g. "gw1-eth0"
    address: IPv6Interface
    link: int           # Link.index
    peer: str
    peer_address: IPv6Address


class AddressPlan:
    """Interfaces, loopbacks and blocks of every node of a topology."""

    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.blocks: dict[str, IPv6Network] = {
            n.name: block_of(n.role, n.index) for n in topo.nodes.values() if n.role in BLOCK_DIGIT
        }
        self.loopbacks: dict[str, IPv6Address] = {
            n.name: host(subnet(self.blocks[n.name], 0), 1) for n in topo.routers()
        }
        self.interfaces: dict[str, list[Interface]] = {name: [] for name in topo.nodes}
        router_links: dict[str, int] = {}
        for link in topo.links:
            a, b = topo.nodes[link.a], topo.nodes[link.b]
            if not a.is_router:  # put the router first
                a, b = b, a
            if b.role == "cn":
                net = subnet(self.blocks[b.name], 0)
            elif b.role == "mn":
                net = subnet(self.blocks[a.name], STATIC_ACCESS_BASE + self._static_number(b.index))
            else:
                router_links[a.name] = router_links.get(a.name, 0) + 1
                if router_links[a.name] > 0xFF:
                    raise TopologyError(f"node {a.name!r} has more than 255 router links")
                net = subnet(self.blocks[a.name], ROUTER_LINK_BASE + router_links[a.name])
            addr_a, addr_b = host(net, 1), host(net, 2)
            name_a = access_ifname(b.name) if b.role == "mn" else self._ifname(a.name)
            self.interfaces[a.name].append(Interface(
                a.name, name_a, IPv6Interface((addr_a, 64)), link.index, b.name, addr_b))
            self.interfaces[b.name].append(Interface(
                b.name, self._ifname(b.name), IPv6Interface((addr_b, 64)), link.index, a.name, addr_a))

    @staticmethod
    def _static_number(index: int) -> int:
        return int(f"{index:03d}", 16)

    def _ifname(self, node: str) -> str:
        return f"{node}-eth{len(self.interfaces[node])}"

    def interface(self, node: str, peer: str) -> Interface:
        for itf in self.interfaces[node]:
            if itf.peer == peer:
                return itf
        raise KeyError(f"{node} has no interface towards {peer}")

    def address(self, node: str) -> IPv6Address:
        """The address that identifies ``node``: loopback for routers, link address for hosts."""
        if node in self.loopbacks:
            return self.loopbacks[node]
        return self.interfaces[node][0].address.ip

    def pool(self, node: str) -> IPv6Network:
        """The prefix pool of a gateway or home agent (its block)."""
        if self.topo.nodes[node].role not in ("gw", "ha"):
            raise KeyError(f"{node} is not a gateway or home agent")
        return self.blocks[node]

    def pool_prefix(self, node: str, number: int) -> IPv6Network:
        """The ``number``-th on-demand /64 of a gateway or HA pool (1-based)."""
        if not 1 <= number <= POOL_LAST - POOL_FIRST + 1:
            raise IndexError(f"pool prefix number {number} out of range")
        return subnet(self.pool(node), POOL_FIRST + number - 1)
