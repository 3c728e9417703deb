"""Measured vs analytic RTT of end-to-end paths (what ``make run`` shows before experiments).

The analytic RTT of a path is twice the sum of its one-way link delays on the same
delay-weighted shortest path the routes follow; the measurement is the median of ICMPv6
echo RTTs after a warm-up. Agreement is judged as |measured - analytic| <= max(rel, abs).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from odmm import netns
from odmm.probes.ping import ping
from topologies.model import Topology
from topologies.testbed import Testbed

REL_TOL = 0.02
ABS_TOL_MS = 0.5


def within(measured: float, analytic: float, rel: float = REL_TOL, abs_ms: float = ABS_TOL_MS) -> bool:
    return abs(measured - analytic) <= max(rel * analytic, abs_ms)


@dataclass
class PathRtt:
    src: str
    dst: str
    address: str
    path: list[str]
    analytic_ms: float
    median_ms: float | None
    loss_pct: float
    samples: int

    @property
    def ratio(self) -> float | None:
        if self.median_ms is None or self.analytic_ms == 0:
            return None
        return self.median_ms / self.analytic_ms

    @property
    def ok(self) -> bool:
        return self.median_ms is not None and within(self.median_ms, self.analytic_ms)

    def to_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "ok": self.ok}


def default_pairs(topo: Topology) -> list[tuple[str, str]]:
    """Every pair of end hosts, and every end host to every router."""
    hosts = sorted(n.name for n in topo.hosts())
    pairs = [(a, b) for i, a in enumerate(hosts) for b in hosts[i + 1:]]
    pairs += [(h, r.name) for h in hosts for r in sorted(topo.routers(), key=lambda n: n.name)]
    return pairs


def measure_paths(tb: Testbed, pairs: list[tuple[str, str]] | None = None, count: int = 25,
                  warmup: int = 5, interval: float = 0.02, workers: int = 8) -> list[PathRtt]:
    """Ping every pair concurrently and compare with the analytic RTT."""
    pairs = pairs if pairs is not None else default_pairs(tb.topo)

    def one(pair: tuple[str, str]) -> PathRtt:
        src, dst = pair
        addr = tb.address(dst)
        res = ping(netns.name_of(src), addr, count=count, warmup=warmup, interval=interval)
        return PathRtt(src, dst, addr, tb.topo.path(src, dst), tb.topo.analytic_rtt_ms(src, dst),
                       res.median_ms, res.loss_pct, res.received)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(pool.map(one, pairs))
    tb.check()
    return rows


def format_table(rows: list[PathRtt]) -> str:
    head = f"{'path':<16} {'hops':<28} {'analytic ms':>11} {'measured ms':>11} {'ratio':>7} {'loss':>6}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        med = f"{r.median_ms:.2f}" if r.median_ms is not None else "-"
        ratio = f"{r.ratio:.3f}" if r.ratio is not None else "-"
        hops = "-".join(r.path)
        lines.append(f"{r.src + ' -> ' + r.dst:<16} {hops:<28} {r.analytic_ms:>11.2f} {med:>11} {ratio:>7} "
                     f"{r.loss_pct:>5.0f}%  {'yes' if r.ok else 'NO'}")
    return "\n".join(lines)
