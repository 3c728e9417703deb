"""Static routes from delay-weighted shortest paths (networkx), one route per address block.

Routers get a route to every other node's /48 block via the first hop of the shortest path;
end hosts get a default route via their router. The same path function gives the analytic
expectations (``Topology.path``), so what is measured follows what is predicted.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv6Address, IPv6Network

import networkx as nx

from topologies.addressing import AddressPlan
from topologies.model import Topology

DEFAULT = IPv6Network("::/0")


@dataclass(frozen=True)
class Route:
    dst: IPv6Network
    via: IPv6Address
    dev: str


def compute_routes(topo: Topology, plan: AddressPlan) -> dict[str, list[Route]]:
    """Every static route of every node, keyed by node name."""
    routes: dict[str, list[Route]] = {name: [] for name in topo.nodes}
    for node in topo.hosts():
        itf = plan.interfaces[node.name][0]
        routes[node.name].append(Route(DEFAULT, itf.peer_address, itf.name))
    for node in topo.routers():
        paths = nx.single_source_dijkstra_path(topo.graph, node.name, weight="weight")
        for owner, block in plan.blocks.items():
            if owner == node.name:
                continue
            hop = paths[owner][1]
            itf = plan.interface(node.name, hop)
            routes[node.name].append(Route(block, itf.peer_address, itf.name))
    return routes
