"""Static routes: following next hops from any router reaches the owner along Topology.path."""

from __future__ import annotations

import pytest

from topologies.addressing import AddressPlan
from topologies.catalogue import resolve
from topologies.routing import DEFAULT, compute_routes


def walk(topo, plan, routes, src, dst):
    """Forward hop by hop using the computed tables, as the kernels will."""
    target = plan.address(dst)
    node, hops = src, [src]
    while node != dst:
        connected = [i for i in plan.interfaces[node] if target in i.address.network]
        if connected:
            node = connected[0].peer if connected[0].address.ip != target else node
            hops.append(node)
            break
        table = sorted(routes[node], key=lambda r: -r.dst.prefixlen)
        route = next(r for r in table if target in r.dst)
        node = next(i.peer for i in plan.interfaces[node] if i.name == route.dev)
        hops.append(node)
        assert len(hops) < 100, "routing loop"
    return hops


@pytest.mark.parametrize("spec,params", [("basic", {}), ("grid", {"rows": 3, "cols": 4, "mns": 2}),
                                         ("line", {"n": 5, "delay_ms": [1, 9, 1, 1]})])
def test_routes_follow_shortest_paths(spec, params):
    topo = resolve(spec, params)
    plan = AddressPlan(topo)
    routes = compute_routes(topo, plan)
    names = sorted(topo.nodes)
    for src in names:
        for dst in names:
            if src != dst:
                assert walk(topo, plan, routes, src, dst) == topo.path(src, dst), (src, dst)


def test_one_route_per_block_and_default_for_hosts():
    topo = resolve("basic")
    plan = AddressPlan(topo)
    routes = compute_routes(topo, plan)
    for r in topo.routers():
        assert len(routes[r.name]) == len(plan.blocks) - 1
    for h in topo.hosts():
        assert [x.dst for x in routes[h.name]] == [DEFAULT]
