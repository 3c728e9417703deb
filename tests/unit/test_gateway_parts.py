"""Pieces of the gateway daemons that need no namespace."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest

from gateways.config import DaemonConfig, GatewayPolicy
from gateways.pool import PoolExhausted, PrefixPool
from gateways.signalling import newer
from gateways.tunnels import link_local, tunnel_mac, vni


def test_pool_allocates_unique_prefixes_and_reuses_freed_ones():
    pool = PrefixPool(IPv6Network("2001:db8:1001::/48"), size=3)
    got = [pool.allocate() for _ in range(3)]
    assert got == [IPv6Network(f"2001:db8:1001:{i}::/64") for i in (1, 2, 3)]
    with pytest.raises(PoolExhausted, match="exhausted"):
        pool.allocate()
    assert pool.free(got[1]) and not pool.free(got[1])
    assert not pool.free(IPv6Network("2001:db8:1002:1::/64"))
    assert pool.allocate() == got[1]


def test_serial_number_comparison():
    assert newer(2, 1) and not newer(1, 2) and not newer(5, 5)
    assert newer(0, 65535) and newer(3, 65500)  # wraps around
    assert not newer(65500, 3)


def test_tunnel_addressing_is_symmetric_and_derivable():
    assert vni(3, 1) == vni(1, 3) == 4096 + 3
    mac = tunnel_mac(1, 2)
    assert mac == "02:0d:00:01:00:02"
    assert link_local(mac) == IPv6Address("fe80::d:ff:fe01:2")


def test_config_round_trip(tmp_path):
    cfg = DaemonConfig(name="gw1", role="gw", address="2001:db8:1001::1", block="2001:db8:1001::/48",
                       ha="2001:db8:a001::1", peers={"gw1": "2001:db8:1001::1"}, control="/tmp/x.sock",
                       policy=GatewayPolicy(grace_s=3, types=["FIXED"]))
    path = tmp_path / "gw1.json"
    cfg.save(path)
    back = DaemonConfig.load(path)
    assert back == cfg and back.policy.offered()[0].name == "FIXED"
    assert back.peer_name("2001:db8:1001:0::1") == "gw1" and back.peer_name("::1") is None
