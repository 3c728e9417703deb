"""Results of a run: summary.json (atomic), CSV tables, PNG plots and the terminal table."""

from __future__ import annotations

import csv
import json
import os
import statistics
from pathlib import Path

SUMMARY = "summary.json"


def _median(xs):
    xs = [x for x in xs if x is not None]
    return round(statistics.median(xs), 3) if xs else None


def _max(xs):
    xs = [x for x in xs if x is not None]
    return max(xs) if xs else None


def aggregate(result: dict) -> dict:
    """Per mode and flow: survival counts and medians over repetitions."""
    out: dict = {}
    for mode in result["modes"]:
        runs = [r for r in result["runs"] if r.get("mode") == mode]
        flows: dict = {}
        for r in runs:
            for f in r.get("flows", []):
                a = flows.setdefault(f["flow"], {"flow": f["flow"], "requested": f.get("requested"), "types": [],
                                                 "reps": 0, "survived_all": 0, "moves": {}, "rtt_initial_ms": [],
                                                 "analytic_initial_ms": [], "loss_pct": [], "setsc_ms": [],
                                                 "delivering_at_end": 0, "fallback": None})
                a["reps"] += 1
                a["types"].append(f.get("type"))
                a["survived_all"] += bool(f.get("survived_all"))
                a["delivering_at_end"] += bool(f.get("delivering_at_end"))
                a["fallback"] = a["fallback"] or f.get("fallback")
                for k in ("rtt_initial_ms", "analytic_initial_ms", "loss_pct", "setsc_ms"):
                    a[k].append(f.get(k))
                for mv in f.get("moves", []):
                    m = a["moves"].setdefault(mv["move"], {"move": mv["move"], "to": mv["to"], "survived": 0,
                                                           "interruption_ms": [], "ratio_to_bound": [],
                                                           "bound_ms": mv["bound_ms"], "rtt_after_ms": [],
                                                           "analytic_after_ms": mv["analytic_after_ms"]})
                    m["survived"] += bool(mv["survived"])
                    m["interruption_ms"].append(mv["interruption_ms"])
                    m["ratio_to_bound"].append(mv["ratio_to_bound"])
                    m["rtt_after_ms"].append(mv["rtt_after_ms"])
        for a in flows.values():
            a["type"] = next((t for t in a.pop("types") if t), None)
            for k in ("rtt_initial_ms", "analytic_initial_ms", "loss_pct", "setsc_ms"):
                a[k] = _median(a[k])
            a["rtt_ratio"] = round(a["rtt_initial_ms"] / a["analytic_initial_ms"], 4) \
                if a["rtt_initial_ms"] and a["analytic_initial_ms"] else None
            moves = []
            for m in a["moves"].values():
                ints, ratios, rtts = m.pop("interruption_ms"), m.pop("ratio_to_bound"), m.pop("rtt_after_ms")
                m["interruption_ms"], m["interruption_ms_max"] = _median(ints), _max(ints)
                m["ratio_to_bound"], m["ratio_to_bound_max"] = _median(ratios), _max(ratios)
                m["rtt_after_ms"] = _median(rtts)
                m["rtt_after_ratio"] = round(m["rtt_after_ms"] / m["analytic_after_ms"], 4) \
                    if m["rtt_after_ms"] and m["analytic_after_ms"] else None
                moves.append(m)
            a["moves"] = moves
        ha = [((r.get("network") or {}).get("ha") or {}) for r in runs]
        # what the probes exchanged over paths through the HA: each of those packets crosses an
        # HA tunnel once (requests in, echoes and stream packets out)
        expected = [sum(f.get("sent", 0) + f.get("received", 0) + f.get("stream_received", 0)
                        for f in r.get("flows", []) if f.get("anchor") == "ha") for r in runs]
        ha_packets = _median([h.get("tx_packets", 0) + h.get("rx_packets", 0) for h in ha if h])
        out[mode] = {
            "flows": list(flows.values()),
            "runs": len(runs), "complete": sum(r["status"] == "complete" for r in runs),
            "ha_packets": ha_packets,
            "rtt_mean_ms": round(statistics.mean(x["rtt_initial_ms"] for x in flows.values() if x["rtt_initial_ms"]), 3)
            if any(x["rtt_initial_ms"] for x in flows.values()) else None,
            "ha_packets_from_probes": _median(expected),
            "ha_ratio": round(ha_packets / _median(expected), 3) if ha_packets and _median(expected) else None,
            "ha_bytes": _median([h.get("tx_bytes", 0) + h.get("rx_bytes", 0) for h in ha if h]),
            "handoffs": _aggregate_handoffs(runs),
        }
    return out


def _aggregate_handoffs(runs: list[dict]) -> list[dict]:
    moves: dict = {}
    for r in runs:
        for h in r.get("handoffs", []):
            m = moves.setdefault(h["move"], {"move": h["move"], "from": h["from"], "to": h["to"], "gap_ms": h["gap_ms"]})
            for k in ("rs_to_ra_ms", "pbu_to_pba_ms", "tunnels_ready_ms", "first_packet_after_attach_ms",
                      "attach_after_move_ms"):
                m.setdefault(k, []).append(h.get(k))
    for m in moves.values():
        for k, v in list(m.items()):
            if isinstance(v, list):
                m[k] = _median(v)
    return list(moves.values())


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_results(result: dict, out: Path) -> None:
    """summary.json last-but-atomically: an interrupted run never leaves half of one."""
    out.mkdir(parents=True, exist_ok=True)
    result["aggregate"] = aggregate(result)
    files = []
    files.append(_write_csv(out / "flows.csv", _flow_rows(result)))
    files.append(_write_csv(out / "handoffs.csv", [dict(mode=r["mode"], rep=r["repetition"], **h)
                                                     for r in result["runs"] for h in r.get("handoffs", [])]))
    files.append(_write_csv(out / "network.csv", [{"mode": r["mode"], "rep": r["repetition"], "status": r["status"],
                                                     **{f"ha_{k}": v for k, v in ((r.get("network") or {}).get("ha") or {}).items()}}
                                                    for r in result["runs"]]))
    try:
        files += plot(result, out)
    except Exception as exc:  # a plot must never cost the numbers
        result["plot_error"] = f"{type(exc).__name__}: {exc}"
    result["files"] = [str(f.name) for f in files if f]
    slim = {**result, "runs": [{k: v for k, v in r.items() if k != "states"} for r in result["runs"]]}
    for r, full in zip(slim["runs"], result["runs"], strict=True):
        if "states" in full:
            (out / f"states-{r['mode']}-rep{r['repetition']}.json").write_text(json.dumps(full["states"], indent=1,
                                                                                          default=str))
    _atomic_text(out / SUMMARY, json.dumps(slim, indent=2, default=str))


def _flow_rows(result: dict) -> list[dict]:
    rows = []
    for r in result["runs"]:
        for f in r.get("flows", []):
            for mv in f.get("moves", []) or [{}]:
                rows.append({"mode": r["mode"], "rep": r["repetition"], "flow": f["flow"], "requested": f.get("requested"),
                             "type": f.get("type"), "source": f.get("source"), "anchor": f.get("anchor"),
                             "setsc_ms": f.get("setsc_ms"), "rtt_initial_ms": f.get("rtt_initial_ms"),
                             "analytic_initial_ms": f.get("analytic_initial_ms"), "loss_pct": f.get("loss_pct"),
                             **{f"move_{k}": v for k, v in mv.items()}})
    return rows


def _write_csv(path: Path, rows: list[dict]) -> Path | None:
    if not rows:
        return None
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return path


def plot(result: dict, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    for mode in result["modes"]:
        run = next((r for r in result["runs"] if r["mode"] == mode), None)
        if not run:
            continue
        base = out / mode if len(result["modes"]) > 1 else out
        fig, ax = plt.subplots(figsize=(11, 5))
        t0 = None
        for f in run.get("flows", []):
            path = base / f"rep{run['repetition']}" / f"flow-{f['flow']}.json"
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            t0 = t0 if t0 is not None else data.get("start")
            sent = {s: t / 1e9 for s, t in data.get("sent", [])}
            pts = [(sent[s] - t0, (t / 1e9 - sent[s]) * 1000) for s, t in data.get("recv", []) if s in sent]
            if pts:
                label = f"{f['flow']} ({f.get('type') or 'untyped'})"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], ".", ms=2, label=label)
        for m in run.get("moves", []):
            if t0 is not None:
                ax.axvline(m["start"] - t0, color="k", ls="--", lw=0.8)
                if m.get("gap_s"):
                    ax.axvspan(m["left"] - t0, m["arrived"] - t0, color="grey", alpha=0.3)
                ax.text(m["start"] - t0, ax.get_ylim()[1] * 0.95, f" {m['from']}->{m['to']}", fontsize=8)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("RTT (ms)")
        ax.set_title(f"{result['scenario']} [{mode}] repetition {run['repetition']}: RTT per flow, handoffs dashed")
        ax.legend(loc="upper left", fontsize=8, markerscale=4)
        fig.tight_layout()
        path = out / (f"timeline-{mode}.png" if len(result["modes"]) > 1 else "timeline.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    agg = result.get("aggregate", {})
    if agg:
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.5))
        modes = list(agg)
        names = [f["flow"] for f in agg[modes[0]]["flows"]]
        width = 0.8 / max(1, len(modes))
        for i, mode in enumerate(modes):
            fl = {f["flow"]: f for f in agg[mode]["flows"]}
            xs = [j + i * width for j in range(len(names))]
            axes[0].bar(xs, [fl.get(n, {}).get("rtt_initial_ms") or 0 for n in names], width, label=mode)
            axes[2].bar(i, sum(1 for f in fl.values() if not f["survived_all"]), 0.6, label=mode)
        axes[0].set_xticks([j + width * (len(modes) - 1) / 2 for j in range(len(names))], names, rotation=30)
        axes[0].set_ylabel("RTT before the first move (ms)")
        axes[0].legend(fontsize=8)
        axes[1].bar(range(len(modes)), [agg[m]["ha_packets"] or 0 for m in modes], 0.6)
        axes[1].set_xticks(range(len(modes)), modes)
        axes[1].set_ylabel("packets through the HA")
        axes[2].set_xticks(range(len(modes)), modes)
        axes[2].set_ylabel("flows that did not survive every move")
        fig.suptitle(f"{result['scenario']}: RTT, Home Agent load and broken sessions per mode")
        fig.tight_layout()
        path = out / "comparison.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def _f(x, fmt="{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def format_summary(result: dict) -> str:
    lines = []
    agg = result.get("aggregate") or aggregate(result)
    for mode, a in agg.items():
        lines.append(f"{result['scenario']} [{mode}]: {a['complete']}/{a['runs']} repetitions complete; "
                     f"packets through the HA: {_f(a['ha_packets'], '{:.0f}')} (probes sent "
                     f"{_f(a.get('ha_packets_from_probes'), '{:.0f}')} over HA paths, ratio {_f(a.get('ha_ratio'), '{:.3f}')})")
        head = (f"{'flow':<14} {'type':<21} {'survived':>8} {'RTT ms':>7} {'analytic':>8} {'ratio':>6}  "
                f"{'move':>4} {'interr. ms':>10} {'bound':>6} {'ratio':>6} {'RTT after':>9} {'ratio':>6}")
        lines += [head, "-" * len(head)]
        for f in a["flows"]:
            first = True
            for m in f["moves"] or [{}]:
                left = (f"{f['flow']:<14} {(f['type'] or f['requested'] or '-'):<21} "
                        f"{f['survived_all']}/{f['reps']:<6} {_f(f['rtt_initial_ms']):>7} "
                        f"{_f(f['analytic_initial_ms']):>8} {_f(f['rtt_ratio'], '{:.3f}'):>6}") if first else " " * 68
                first = False
                if m:
                    surv = f"{m['survived']}/{f['reps']}"
                    lines.append(f"{left}  {m['move']:>4} {(_f(m['interruption_ms']) if m['survived'] else 'broke ' + surv):>10} "
                                 f"{_f(m['bound_ms'], '{:.0f}'):>6} {_f(m['ratio_to_bound'], '{:.2f}'):>6} "
                                 f"{_f(m['rtt_after_ms']):>9} {_f(m['rtt_after_ratio'], '{:.3f}'):>6}")
                else:
                    lines.append(left)
        if a["handoffs"]:
            lines.append("handoffs (medians): " + "; ".join(
                f"#{h['move']} {h['from']}->{h['to']}: RS->RA {_f(h['rs_to_ra_ms'])} ms, PBU->PBA {_f(h['pbu_to_pba_ms'])} ms, "
                f"tunnels ready {_f(h['tunnels_ready_ms'])} ms, first packet {_f(h['first_packet_after_attach_ms'])} ms"
                for h in a["handoffs"]))
        lines.append("")
    return "\n".join(lines)
