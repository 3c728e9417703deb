"""Flow and handoff metrics from probe records (pure functions: no namespaces, unit-testable).

Interruption of a flow at a move is what the mobile node experiences on the downlink: the
silence between the last packet of the correspondent's stream it received before the move and
the first one after, less one send interval (the gap there would be anyway). Nothing from the
old path arrives once the access link has moved, so the first packet after the move came over
the new path. Flows without a downlink stream (TCP) use the echoes of their own records, which
adds the time their first records after the move take to reach the correspondent. Resolution:
the send interval. A flow that receives nothing more before the next move (or the end) did not
survive the move.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from ipaddress import IPv6Address

from topologies.addressing import AddressPlan
from topologies.model import Topology

SETTLE_S = 0.2       # skip this long after a resumption before measuring the new RTT
BEFORE_S = 2.0       # RTT before a move: packets sent in the last BEFORE_S seconds
MARGIN_S = 0.05      # in-flight allowance added to the RTT when looking for the first loss


@dataclass
class MoveOutcome:
    move: int
    at_s: float
    to: str
    survived: bool
    interruption_ms: float | None
    lost: int
    rtt_before_ms: float | None
    rtt_after_ms: float | None
    analytic_before_ms: float | None
    analytic_after_ms: float | None
    bound_ms: float | None
    ratio_to_bound: float | None
    resolution_ms: float | None = None   # the measurement's resolution: one downlink send interval


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def anchor_of(plan: AddressPlan, address: str | None) -> str | None:
    """The node whose block contains ``address`` (where the address is anchored)."""
    if not address:
        return None
    a = IPv6Address(address)
    for node, block in plan.blocks.items():
        if a in block:
            return node
    return None


def analytic_rtt_ms(topo: Topology, peer: str, anchor: str | None, serving: str, access_ms: float) -> float | None:
    """RTT of the path a flow anchored at ``anchor`` takes while its node is on ``serving``:
    peer -> anchor -> (tunnel) -> serving -> node, and back the same way."""
    if anchor is None:
        return None
    one_way = topo.path_delay_ms(topo.path(peer, anchor))
    if anchor != serving:
        one_way += topo.path_delay_ms(topo.path(anchor, serving))
    return 2.0 * (one_way + access_ms)


def interruption_bound_ms(topo: Topology, anchor: str | None, serving: str, gap_ms: float, access_ms: float) -> float | None:
    """L2 gap + signalling RTT (new gateway <-> anchor) + access one-way delay + 20 ms."""
    if anchor is None:
        return None
    rtt = topo.analytic_rtt_ms(serving, anchor) if anchor != serving else 0.0
    return gap_ms + rtt + access_ms + 20.0


def flow_outcomes(probe: dict, moves: list[dict], topo: Topology, plan: AddressPlan, mn: str, initial_gw: str,
                  peer: str, access_ms: float) -> tuple[list[MoveOutcome], dict]:
    """Per-move outcomes of one flow, and whole-flow figures."""
    sent = {s: t / 1e9 for s, t in probe.get("sent", [])}
    recv = {s: t / 1e9 for s, t in probe.get("recv", []) if s in sent}
    downlink = sorted(t / 1e9 for _s, _t0, t in probe.get("stream", [])) or sorted(recv.values())
    rtt = {s: (recv[s] - sent[s]) * 1000 for s in recv}
    end = probe.get("end") or (max(sent.values()) if sent else 0.0)
    start = probe.get("start") or (min(sent.values()) if sent else 0.0)
    anchor = anchor_of(plan, probe.get("source"))
    by_time = sorted(sent.items(), key=lambda kv: kv[1])
    mine = [m for m in moves if m["mn"] == mn]
    outcomes = []
    serving = initial_gw
    for i, m in enumerate(mine):
        t = m["start"]
        window_end = mine[i + 1]["start"] if i + 1 < len(mine) else end
        interval = 1.0 / float(probe.get("stream_pps") or probe.get("rate_pps") or 100.0)
        before = [rtt[s] for s, ts in by_time if t - BEFORE_S <= ts <= t - 0.1 and s in rtt]
        rb = _median(before)
        # The access link is down from m["left"] until m["arrived"]: a packet the probe read in
        # between (or read late) reached the node before the outage, so the outage is split at
        # the link's arrival on the new gateway, not at its departure.
        back = m.get("arrived", t)
        last_rx = max((tr for tr in downlink if tr <= back), default=None)
        first_rx = min((tr for tr in downlink if back < tr < window_end), default=None)
        survived = first_rx is not None
        interruption = None
        if survived:
            interruption = max(0.0, (first_rx - (last_rx if last_rx is not None else t) - interval) * 1000)
        look_from = t - ((rb or 0.0) / 1000 + MARGIN_S)
        window = [(s, ts) for s, ts in by_time if look_from <= ts < window_end]
        lost = [ts for s, ts in window if s not in recv]
        after = [rtt[s] for s, ts in window if first_rx is not None and ts >= first_rx + SETTLE_S and s in rtt]
        l2_ms = 1000 * m.get("l2_outage", m.get("gap_s", 0))  # the outage the testbed produced
        bound = interruption_bound_ms(topo, anchor, m["to"], l2_ms, access_ms)
        outcomes.append(MoveOutcome(
            move=i + 1, at_s=round(t - start, 3), to=m["to"], survived=survived,
            interruption_ms=None if interruption is None else round(interruption, 2), lost=len(lost),
            rtt_before_ms=rb, rtt_after_ms=_median(after),
            analytic_before_ms=analytic_rtt_ms(topo, peer, anchor, serving, access_ms),
            analytic_after_ms=analytic_rtt_ms(topo, peer, anchor, m["to"], access_ms),
            bound_ms=bound,
            # the bound is about the network path; a TCP stall also holds the sender's retransmission timer
            ratio_to_bound=None if interruption is None or not bound or not probe.get("stream")
            else round(interruption / bound, 3),
            resolution_ms=round(interval * 1000, 3)))
        serving = m["to"]
    last = downlink[-1] if downlink else None
    steady = [rtt[s] for s, ts in by_time if s in rtt and ts < (mine[0]["start"] - 0.1 if mine else end)]
    whole = {
        "sent": len(sent), "received": len(recv), "lost": len(sent) - len(recv),
        "stream_received": len(probe.get("stream", [])),
        "loss_pct": 100.0 * (len(sent) - len(recv)) / len(sent) if sent else None,
        "rtt_initial_ms": _median(steady),
        "analytic_initial_ms": analytic_rtt_ms(topo, peer, anchor, initial_gw, access_ms),
        "anchor": anchor,
        "delivering_at_end": last is not None and last >= end - 1.0,
        "last_delivery_s": None if last is None else round(last - start, 3),
        "downlink_stream": bool(probe.get("stream")),
        "resets": [e for e in probe.get("events", []) if e.get("event") == "reset"],
    }
    return outcomes, whole


def outcome_dicts(outcomes: list[MoveOutcome]) -> list[dict]:
    return [asdict(o) for o in outcomes]
