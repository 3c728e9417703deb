"""Expectations of a scenario (its ``[expect]`` table) checked against a run's result.

    [expect]
    complete = true                      # every repetition completes (the default)
    [expect.types.FIXED]                 # every flow that asked for FIXED ...
    survives = true                      # ... survives every move of every repetition
    interruption_ratio_max = 1.0         # interruption / bound, every move, every repetition
    rtt_tolerance = 0.03                 # |measured - analytic| <= max(3 %, 1 ms), before and after moves
    [expect.flows.legacy]                # one flow, by name (overrides its type's entry)
    survives = false
    [expect.network]
    ha_ratio = [0.9, 1.1]                # HA tunnel packets / packets the probes sent over HA paths
    [expect.handoffs]
    tunnels_ready_ms_max = 150           # attach -> tunnels ready at the new gateway
    signalling_per_handoff_max = 12      # PBU + PBA messages of all daemons, per move
    [expect.relations]                   # between the modes of a comparison
    ha_packets = ["mobile-ip", ">", "ondemand"]
    [expect.modes.none.types.FIXED]      # per mode: the same tables, for that mode only
    survives = false

Each check names its subject, the expectation and the measured value, so that a failure
reads as one table.
"""

from __future__ import annotations

from dataclasses import dataclass

from odmm.addrtypes import parse_type

RTT_FLOOR_MS = 1.0
MEDIAN_MIN_REPS = 3  # a median of fewer repetitions is just a sample
FLOW_KEYS = {"survives", "interruption_ratio_max", "rtt_tolerance"}
TOP_KEYS = {"complete", "types", "flows", "network", "handoffs", "relations", "modes"}


@dataclass
class Check:
    subject: str
    expectation: str
    measured: str
    ok: bool


def validate(expect: dict) -> list[str]:
    """Problems with an [expect] table (reported with the scenario's other problems)."""
    problems = []
    for k in expect:
        if k not in TOP_KEYS:
            problems.append(f"expect.{k}: unknown key (expected {', '.join(sorted(TOP_KEYS))})")
    for t, spec in (expect.get("types") or {}).items():
        try:
            parse_type(t)
        except ValueError as exc:
            problems.append(f"expect.types.{t}: {exc}")
        problems += [f"expect.types.{t}.{k}: unknown key" for k in spec if k not in FLOW_KEYS]
    for f, spec in (expect.get("flows") or {}).items():
        problems += [f"expect.flows.{f}.{k}: unknown key" for k in spec if k not in FLOW_KEYS]
    for mode, sub in (expect.get("modes") or {}).items():
        problems += [f"expect.modes.{mode}.{k}: unknown key (expected types, flows)" for k in sub
                     if k not in ("types", "flows")]
        problems += [p.replace("expect.", f"expect.modes.{mode}.", 1) for p in validate({k: v for k, v in sub.items()
                                                                                        if k in ("types", "flows")})]
    return problems


def _flow_spec(expect: dict, flow: dict, mode: str) -> dict:
    spec: dict = {}
    t = flow.get("requested")
    for table in (expect, (expect.get("modes") or {}).get(mode) or {}):
        for name, s in (table.get("types") or {}).items():
            if t and t != "legacy" and parse_type(name).name == t:
                spec.update(s)
        spec.update((table.get("flows") or {}).get(flow["flow"], {}))
    return spec


def _fmt(x, f="{:.3f}") -> str:
    return "-" if x is None else f.format(x)


def evaluate(result: dict, expect: dict) -> list[Check]:
    checks: list[Check] = []
    if expect.get("complete", True):
        for r in result["runs"]:
            checks.append(Check(f"[{r['mode']}] repetition {r['repetition']}", "completes",
                                r["status"] + (f": {r.get('error', '')[:120]}" if r.get("error") else ""),
                                r["status"] == "complete"))
    for r in result["runs"]:
        where = f"[{r['mode']}] rep {r['repetition']}"
        for f in r.get("flows", []):
            spec = _flow_spec(expect, f, r["mode"])
            if not spec:
                continue
            subject = f"{where} flow {f['flow']} ({f.get('type') or f.get('requested')})"
            if "survives" in spec:
                want = bool(spec["survives"])
                moves = f.get("moves", [])
                got = [m["survived"] for m in moves]
                ok = all(got) if want else (bool(got) and not all(got))
                checks.append(Check(subject, "survives every move" if want else "breaks at a move",
                                    "survived " + ", ".join(f"move {m['move']}: {'yes' if m['survived'] else 'no'}"
                                                            for m in moves), ok))
            if "interruption_ratio_max" in spec:
                lim = float(spec["interruption_ratio_max"])
                for m in f.get("moves", []):
                    if m.get("ratio_to_bound") is None:
                        continue
                    # one measurement is known to +/- one downlink send interval: it only counts as
                    # above the bound if it is more than that above it (the medians are held to the
                    # bound itself, below)
                    res = m.get("resolution_ms") or 0.0
                    checks.append(Check(f"{subject} move {m['move']}", f"interruption - {res:g} ms resolution <= "
                                        f"{lim:g} x bound",
                                        f"{m['interruption_ms']:.1f} ms vs {m['bound_ms']:.1f} ms = {m['ratio_to_bound']:.3f}",
                                        m["interruption_ms"] - res <= lim * m["bound_ms"]))
            if "rtt_tolerance" in spec:
                tol = float(spec["rtt_tolerance"])
                pairs = [("initially", f.get("rtt_initial_ms"), f.get("analytic_initial_ms"))]
                pairs += [(f"after move {m['move']}", m.get("rtt_after_ms"), m.get("analytic_after_ms"))
                          for m in f.get("moves", []) if m.get("survived")]
                for when, meas, ana in pairs:
                    if meas is None or ana is None:
                        continue
                    lim = max(tol * ana, RTT_FLOOR_MS)
                    checks.append(Check(f"{subject} RTT {when}", f"within max({tol:.0%}, {RTT_FLOOR_MS:g} ms) of "
                                        f"{ana:.2f} ms", f"{meas:.2f} ms", abs(meas - ana) <= lim))
    agg = result.get("aggregate", {})
    for mode, a in agg.items():  # medians over (3 or more) repetitions are held to the bound itself
        for f in a.get("flows", []):
            spec = _flow_spec(expect, f, mode)
            if "interruption_ratio_max" not in spec or f.get("reps", 0) < MEDIAN_MIN_REPS:
                continue
            lim = float(spec["interruption_ratio_max"])
            for m in f.get("moves", []):
                if m.get("ratio_to_bound") is not None:
                    checks.append(Check(f"[{mode}] flow {f['flow']} move {m['move']}, median of {f['reps']}",
                                        f"interruption / bound <= {lim:g}", f"{m['ratio_to_bound']:.3f}",
                                        m["ratio_to_bound"] <= lim))
    net = expect.get("network") or {}
    if "ha_ratio" in net:
        lo, hi = net["ha_ratio"]
        for mode, a in agg.items():
            if a.get("ha_packets_from_probes"):
                checks.append(Check(f"[{mode}] HA load", f"HA tunnel packets / probe packets over HA paths in [{lo}, {hi}]",
                                    f"{a['ha_packets']:.0f} / {a['ha_packets_from_probes']:.0f} = {_fmt(a['ha_ratio'])}",
                                    a["ha_ratio"] is not None and lo <= a["ha_ratio"] <= hi))
    hand = expect.get("handoffs") or {}
    for r in result["runs"]:
        where = f"[{r['mode']}] rep {r['repetition']}"
        for h in r.get("handoffs", []):
            if "tunnels_ready_ms_max" in hand and h.get("tunnels_ready_ms") is not None:
                lim = float(hand["tunnels_ready_ms_max"])
                checks.append(Check(f"{where} handoff {h['move']} {h['from']}->{h['to']}", f"tunnels ready <= {lim:g} ms",
                                    f"{h['tunnels_ready_ms']:.1f} ms", h["tunnels_ready_ms"] <= lim))
        if "signalling_per_handoff_max" in hand and r.get("handoffs"):
            sig = (r.get("network") or {}).get("signalling")
            if sig is not None:
                per = sig / len(r["handoffs"])
                lim = float(hand["signalling_per_handoff_max"])
                checks.append(Check(f"{where} signalling", f"PBU+PBA per handoff <= {lim:g}",
                                    f"{sig} messages / {len(r['handoffs'])} handoffs = {per:.1f}", per <= lim))
    for metric, (left, op, right) in (expect.get("relations") or {}).items():
        va = (agg.get(left) or {}).get(metric)
        vb = (agg.get(right) or {}).get(metric)
        ok = va is not None and vb is not None and (va > vb if op == ">" else va < vb if op == "<" else va == vb)
        checks.append(Check(f"{metric}", f"{left} {op} {right}", f"{left}: {_fmt(va, '{:.0f}')}, {right}: {_fmt(vb, '{:.0f}')}",
                            ok))
    return checks


def format_checks(checks: list[Check], only_failed: bool = False) -> str:
    rows = [c for c in checks if not c.ok] if only_failed else checks
    w1 = max([len(c.subject) for c in rows] + [7])
    w2 = max([len(c.expectation) for c in rows] + [11])
    lines = [f"{'subject':<{w1}}  {'expectation':<{w2}}  {'measured':<40}  verdict", "-" * (w1 + w2 + 56)]
    for c in rows:
        lines.append(f"{c.subject:<{w1}}  {c.expectation:<{w2}}  {c.measured:<40}  {'ok' if c.ok else 'FAIL'}")
    return "\n".join(lines)
