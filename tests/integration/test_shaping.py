"""Rate caps and loss measure what the topology says."""

from __future__ import annotations

import pytest

from odmm.probes.iperf import iperf3
from odmm.stats import binomial_interval
from topologies.model import topology_from_dict
from topologies.testbed import Testbed

pytestmark = pytest.mark.integration


def two_hosts(**link) -> dict:
    return {
        "name": "pair",
        "nodes": [{"name": "h1", "role": "cn"}, {"name": "r1", "role": "core"},
                  {"name": "r2", "role": "core"}, {"name": "h2", "role": "cn"}],
        "links": [{"a": "h1", "b": "r1", "delay_ms": 1}, {"a": "r1", "b": "r2", "delay_ms": 2, **link},
                  {"a": "r2", "b": "h2", "delay_ms": 1}],
    }


def test_rate_cap_10mbit(tmp_path):
    topo = topology_from_dict(two_hosts(bw_mbit=10), "rate-test")
    with Testbed(topo, log_dir=tmp_path) as tb:
        result = iperf3(tb, "h2", "h1", seconds=5)
        tb.check()
    mbit = result["end"]["sum_received"]["bits_per_second"] / 1e6
    print(f"10 Mbit/s cap: iperf3 TCP goodput {mbit:.2f} Mbit/s (ratio {mbit / 10:.3f})")
    assert 9.0 <= mbit <= 11.0


def test_loss_10pct_within_binomial_bounds(tmp_path):
    topo = topology_from_dict(two_hosts(loss_pct=10), "loss-test")
    with Testbed(topo, log_dir=tmp_path) as tb:
        result = iperf3(tb, "h2", "h1", seconds=3, udp=True, bitrate="8M", length=1000)
        tb.check()
    s = result["end"]["sum"]
    sent, lost = s["packets"], s["lost_packets"]
    lo, hi = binomial_interval(sent, 0.10, 0.999)
    print(f"10 % loss: {lost}/{sent} lost ({100 * lost / sent:.2f} %), 99.9 % bounds [{lo}, {hi}]")
    assert sent >= 2500
    assert lo <= lost <= hi
