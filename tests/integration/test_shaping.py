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


def test_jitter_spreads_rtt_without_reordering(tmp_path):
    import statistics

    from odmm import netns
    from odmm.probes.ping import ping

    topo = topology_from_dict(two_hosts(delay_ms=10, jitter_ms=3), "jitter-test")
    with Testbed(topo, log_dir=tmp_path) as tb:
        res = ping(netns.name_of("h1"), tb.address("h2"), count=200, warmup=5, interval=0.01)
        udp = iperf3(tb, "h2", "h1", seconds=2, udp=True, bitrate="16M", length=1000)  # 2000 pps
        tb.check()
    rtts = res.rtts_ms
    analytic = 2 * (1 + 10 + 1)
    sd = statistics.pstdev(rtts)
    # two independent uniform +/-3 ms draws per round trip: sd = sqrt(2 * 3**2 / 3) = 2.45 ms
    print(f"jitter 3 ms: mean {statistics.mean(rtts):.2f} ms (analytic {analytic}), sd {sd:.2f} ms, "
          f"range {min(rtts):.2f}..{max(rtts):.2f}")
    assert len(rtts) >= 195
    assert abs(statistics.mean(rtts) - analytic) <= 0.6
    assert 1.9 <= sd <= 3.0
    assert min(rtts) >= analytic - 6 - 0.2 and max(rtts) <= analytic + 6 + 1.0
    stream = udp["end"]["streams"][0]["udp"]  # the receiver's counts, reported back to the client
    assert stream["packets"] >= 3900 and stream["lost_packets"] == 0, stream
    assert stream["out_of_order"] == 0, stream
