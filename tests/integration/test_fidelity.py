"""Median RTT of every path equals the analytic RTT within max(2 %, 0.5 ms)."""

from __future__ import annotations

import pytest

from topologies.catalogue import resolve
from topologies.fidelity import default_pairs, format_table, measure_paths
from topologies.testbed import Testbed

pytestmark = pytest.mark.integration

CASES = {
    "basic": ("basic", {}),
    # a line of 4 routers whose links carry one-way delays of 5, 10, 20 and 40 ms
    # (r1-r2, r2-r3, r3-r4, and h4's access link: a router-to-host direction too)
    "line4": ("line", {"n": 4, "delay_ms": [5, 10, 20], "access_ms": [0, 0, 0, 40]}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_measured_rtt_matches_analytic(case, tmp_path):
    spec, params = CASES[case]
    topo = resolve(spec, params)
    with Testbed(topo, log_dir=tmp_path) as tb:
        rows = measure_paths(tb, default_pairs(topo), count=25, warmup=5)
    print(format_table(rows))
    hosts = {n.name for n in topo.hosts()}
    assert sum(1 for r in rows if r.src in hosts and r.dst in hosts) == len(hosts) * (len(hosts) - 1) // 2
    for r in rows:
        assert r.samples >= 20, f"{r.src}->{r.dst}: only {r.samples} replies"
        tol = max(0.02 * r.analytic_ms, 0.5)
        assert abs(r.median_ms - r.analytic_ms) <= tol, (
            f"{r.src}->{r.dst} via {'-'.join(r.path)}: measured {r.median_ms:.3f} ms, "
            f"analytic {r.analytic_ms:.3f} ms, tolerance {tol:.3f} ms")
