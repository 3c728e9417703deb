"""The address plan: blocks, uniqueness, interface names."""

from __future__ import annotations

from ipaddress import IPv6Network

import pytest

from odmm.errors import TopologyError
from topologies.addressing import AddressPlan, block_of
from topologies.catalogue import resolve


def test_blocks_read_as_role_and_index():
    assert block_of("gw", 1) == IPv6Network("2001:db8:1001::/48")
    assert block_of("gw", 12) == IPv6Network("2001:db8:1012::/48")
    assert block_of("ha", 1) == IPv6Network("2001:db8:a001::/48")
    assert block_of("cn", 3) == IPv6Network("2001:db8:c003::/48")
    with pytest.raises(TopologyError, match="room for 999"):
        block_of("gw", 1000)


def test_basic_plan():
    plan = AddressPlan(resolve("basic"))
    assert str(plan.address("cn")) == "2001:db8:c001::2"
    assert str(plan.address("gw1")) == "2001:db8:1001::1"
    assert str(plan.address("mn")) == "2001:db8:1001:f001::2"
    mn_if = plan.interface("mn", "gw1")
    assert mn_if.name == "mn-eth0" and str(mn_if.peer_address) == "2001:db8:1001:f001::1"
    assert plan.pool_prefix("gw2", 1) == IPv6Network("2001:db8:1002:1::/64")
    assert plan.pool_prefix("ha", 1) == IPv6Network("2001:db8:a001:1::/64")


@pytest.mark.parametrize("spec,params", [("basic", {}), ("grid", {"rows": 14, "cols": 14}), ("line", {"n": 8})])
def test_every_address_unique_and_inside_owner_blocks(spec, params):
    topo = resolve(spec, params)
    plan = AddressPlan(topo)
    addrs = [itf.address.ip for itfs in plan.interfaces.values() for itf in itfs]
    addrs += list(plan.loopbacks.values())
    assert len(addrs) == len(set(addrs))
    blocks = list(plan.blocks.values())
    for a in addrs:
        assert any(a in b for b in blocks), a
    for itfs in plan.interfaces.values():
        for itf in itfs:
            assert len(itf.name) <= 15
    # each link is one /64 shared by both ends
    for link in topo.links:
        a, b = plan.interface(link.a, link.b), plan.interface(link.b, link.a)
        assert a.address.network == b.address.network
        assert a.peer_address == b.address.ip
