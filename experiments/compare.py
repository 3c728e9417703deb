"""Compare a result with a baseline (both summary.json), flow by flow."""

from __future__ import annotations

from experiments.report import aggregate


def _flows(result: dict) -> dict[tuple[str, str], dict]:
    agg = result.get("aggregate") or aggregate(result)
    return {(mode, f["flow"]): f for mode, a in agg.items() for f in a["flows"]}


def compare(result: dict, baseline: dict, tolerance: float) -> tuple[list[dict], list[str]]:
    """Rows of metric pairs, and the regressions: a flow that survived and no longer does, an
    interruption or RTT that grew by more than ``tolerance`` (relative) plus 5 ms of slack."""
    a, b = _flows(result), _flows(baseline)
    rows, regressions = [], []
    for key in sorted(set(a) | set(b)):
        fa, fb = a.get(key), b.get(key)
        if fa is None or fb is None:
            regressions.append(f"{key[0]}/{key[1]}: flow {'missing from the result' if fa is None else 'not in the baseline'}")
            continue
        pairs = [("survived", fa["survived_all"] / max(fa["reps"], 1), fb["survived_all"] / max(fb["reps"], 1)),
                 ("rtt_initial_ms", fa["rtt_initial_ms"], fb["rtt_initial_ms"])]
        for ma in fa["moves"]:
            mb = next((m for m in fb["moves"] if m["move"] == ma["move"]), None)
            if mb:
                if ma.get("ratio_to_bound") is not None:  # a TCP stall is mostly its retransmission timer
                    pairs.append((f"move{ma['move']}.interruption_ms", ma["interruption_ms"], mb["interruption_ms"]))
                pairs.append((f"move{ma['move']}.rtt_after_ms", ma["rtt_after_ms"], mb["rtt_after_ms"]))
        for metric, va, vb in pairs:
            rows.append({"mode": key[0], "flow": key[1], "metric": metric, "result": va, "baseline": vb})
            if va is None or vb is None:
                if (va is None) != (vb is None):
                    regressions.append(f"{key[0]}/{key[1]} {metric}: {vb} -> {va}")
                continue
            if metric == "survived":
                if va < vb:
                    regressions.append(f"{key[0]}/{key[1]} survived in {va:.0%} of repetitions, baseline {vb:.0%}")
            elif va > vb * (1 + tolerance) + 5.0:
                regressions.append(f"{key[0]}/{key[1]} {metric}: {va:.1f} vs baseline {vb:.1f} (> +{tolerance:.0%} + 5 ms)")
    return rows, regressions


def format_comparison(rows: list[dict]) -> str:
    head = f"{'mode':<10} {'flow':<14} {'metric':<28} {'result':>10} {'baseline':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        fa = "-" if r["result"] is None else f"{r['result']:.2f}"
        fb = "-" if r["baseline"] is None else f"{r['baseline']:.2f}"
        lines.append(f"{r['mode']:<10} {r['flow']:<14} {r['metric']:<28} {fa:>10} {fb:>10}")
    return "\n".join(lines)
