"""Flow metrics on synthetic probe records."""

from __future__ import annotations

import pytest

from experiments.metrics import analytic_rtt_ms, anchor_of, flow_outcomes, interruption_bound_ms
from topologies.addressing import AddressPlan
from topologies.catalogue import resolve

TOPO = resolve("basic")
PLAN = AddressPlan(TOPO)
NS = 1_000_000_000


def probe(source: str, outage: tuple[float, float] | None, resume: bool, rtt: float = 0.032, end: float = 10.0):
    """100 pps for ``end`` s; nothing reaches the node while its link is down (``outage``), and
    after it only if ``resume``."""
    sent, recv, stream = [], [], []

    def lost(arrival: float) -> bool:
        return bool(outage) and arrival >= outage[0] and (not resume or arrival < outage[1])

    for i in range(int(end * 100)):
        t = i / 100
        sent.append([i, int(t * NS)])
        if not lost(t + rtt):
            recv.append([i, int((t + rtt) * NS)])
        if not lost(t + rtt / 2):
            stream.append([i, int(t * NS), int((t + rtt / 2) * NS)])
    return {"source": source, "sent": sent, "recv": recv, "stream": stream, "rate_pps": 100, "start": 0.0, "end": end}


MOVE = [{"mn": "mn", "from": "gw1", "to": "gw2", "gap_s": 0.05, "start": 5.0, "left": 5.0, "arrived": 5.05,
         "l2_outage": 0.05}]
SL = "2001:db8:1001:2::5"


def test_surviving_flow_interruption_and_bound():
    outcomes, whole = flow_outcomes(probe(SL, (5.0, 5.08), True), MOVE, TOPO, PLAN, "mn", "gw1", "cn", 1.0)
    (o,) = outcomes
    assert o.survived and o.interruption_ms == pytest.approx(80.0, abs=1.0)
    assert o.bound_ms == pytest.approx(50 + 4 + 1 + 20)  # gap + RTT gw2<->gw1 + access + 20
    assert o.ratio_to_bound == pytest.approx(80 / 75, abs=0.02)
    assert o.rtt_before_ms == pytest.approx(32.0) and o.analytic_after_ms == pytest.approx(36.0)
    assert whole["anchor"] == "gw1" and whole["delivering_at_end"]


def test_broken_flow():
    outcomes, whole = flow_outcomes(probe(SL, (5.0, 99), False), MOVE, TOPO, PLAN, "mn", "gw1", "cn", 1.0)
    assert not outcomes[0].survived and outcomes[0].interruption_ms is None
    assert not whole["delivering_at_end"] and whole["last_delivery_s"] == pytest.approx(5.0, abs=0.05)


def test_analytic_paths_follow_the_anchor():
    assert anchor_of(PLAN, "2001:db8:a001:1::1") == "ha"
    assert analytic_rtt_ms(TOPO, "cn", "ha", "gw2", 1.0) == pytest.approx(2 * (25 + 20 + 1))
    assert analytic_rtt_ms(TOPO, "cn", "gw1", "gw1", 1.0) == pytest.approx(32.0)
    assert interruption_bound_ms(TOPO, "ha", "gw2", 0, 1.0) == pytest.approx(40 + 1 + 20)
    assert interruption_bound_ms(TOPO, "gw1", "gw1", 10, 1.0) == pytest.approx(10 + 0 + 1 + 20)
