"""``make bench``: the performance claims of odmm, measured in one reproducible command.

Sections (each reports ratios against an analytic value or a target, which survive a noisy
machine better than absolute numbers):

- fidelity:   measured/analytic RTT per path, over topologies and link delays (target 1 +/- 0.02)
- throughput: loss-free packets/s of the delay element over 1 and 3 delayed hops, with the
              CPU it uses (target >= 40k pps over 3 hops on 2 cores)
- build:      build and teardown time of grids of 10, 50 and 200 nodes

Writes ``results/bench/bench-<time>.json`` (and ``latest.json``) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

from odmm.errors import OdmmError
from odmm.probes.iperf import iperf3
from topologies.catalogue import resolve
from topologies.fidelity import default_pairs, measure_paths
from topologies.testbed import Testbed

OUT_DIR = Path(os.environ.get("ODMM_RESULTS", "results")) / "bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def bench_fidelity(log_dir: Path, quick: bool) -> list[dict]:
    cases = [("basic", {})]
    delays = [1, 5, 20] if quick else [1, 5, 10, 20, 50, 100]
    cases += [("line", {"n": 2, "delay_ms": d, "access_ms": 0}) for d in delays]
    cases.append(("line", {"n": 4, "delay_ms": [5, 10, 20], "access_ms": [0, 0, 0, 40]}))
    rows = []
    for spec, params in cases:
        topo = resolve(spec, params)
        with Testbed(topo, log_dir=log_dir / f"fidelity-{topo.name}") as tb:
            pairs = [p for p in default_pairs(topo) if topo.analytic_rtt_ms(*p) > 0]
            for r in measure_paths(tb, pairs, count=50, warmup=5):
                rows.append({"topology": topo.name, "params": params, "path": f"{r.src}->{r.dst}",
                             "hops": len(r.path) - 1, "analytic_ms": r.analytic_ms, "measured_ms": r.median_ms,
                             "ratio": r.ratio, "within_2pct": r.ratio is not None and abs(r.ratio - 1) <= 0.02})
    return rows


def bench_throughput(log_dir: Path, quick: bool) -> list[dict]:
    """Step the UDP packet rate up until the delay elements lose packets."""
    rates = [10_000, 20_000, 40_000] if quick else [10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 80_000]
    size = 64
    rows = []
    for hops in (1, 3):
        topo = resolve("line", {"n": hops + 1, "delay_ms": 5, "access_ms": 0})
        src, dst = "h1", f"h{hops + 1}"
        with Testbed(topo, log_dir=log_dir / f"throughput-{hops}") as tb:
            iperf3(tb, dst, src, seconds=1, udp=True, bitrate="1M", length=size)  # warm-up (ND)
            for pps in rates:
                pids = [p.popen.pid for p in tb.emulator.daemons.values()]
                cpu0 = [_cpu_seconds(p) for p in pids]
                t0 = time.monotonic()
                res = iperf3(tb, dst, src, seconds=3, udp=True, bitrate=str(pps * size * 8), length=size,
                             extra=["-w", "8M"])
                wall = time.monotonic() - t0
                cpu = [(_cpu_seconds(p) - c) / wall for p, c in zip(pids, cpu0, strict=True)]
                tb.check()
                s = res["end"]["sum"]
                drops = sum(c["queue_dropped"] + c["user_dropped"] for c in tb.emulator.kernel_counters().values())
                achieved = s["packets"] / s["seconds"] if s["seconds"] else 0.0
                rows.append({"hops": hops, "target_pps": pps, "sent_pps": round(achieved),
                             "lost": s["lost_packets"], "queue_drops": drops,
                             "loss_free": s["lost_packets"] == 0 and drops == 0,
                             "delay_cpu_pct_max": round(100 * max(cpu), 1),
                             "delay_cpu_pct_total": round(100 * sum(cpu), 1)})
                if s["lost_packets"] > 0.01 * s["packets"]:
                    break
    return rows


def bench_build(log_dir: Path, quick: bool) -> list[dict]:
    sizes = {10: {"rows": 2, "cols": 3}, 50: {"rows": 6, "cols": 7, "mns": 5}, 200: {"rows": 14, "cols": 14}}
    if quick:
        sizes.pop(200)
    rows = []
    for nodes, params in sizes.items():
        topo = resolve("grid", params)
        assert len(topo.nodes) == nodes
        t0 = time.monotonic()
        tb = Testbed(topo, log_dir=log_dir / f"build-{nodes}").start()
        t1 = time.monotonic()
        tb.stop()
        t2 = time.monotonic()
        rows.append({"nodes": nodes, "links": len(topo.links), "build_s": round(t1 - t0, 2),
                     "teardown_s": round(t2 - t1, 2), **{k: round(v, 2) for k, v in tb.timings.items()}})
    return rows


def bench_signalling(log_dir: Path, quick: bool) -> list[dict]:
    """Handoff signalling on `basic`: attach -> tunnels ready (new gateway and anchors)."""
    import sys as _sys

    from gateways.config import GatewayPolicy
    from gateways.deploy import MobilityNetwork
    from mobilehost.solicit import open_nd, solicit
    from odmm import netns
    from odmm.addrtypes import AddressType
    from odmm.wire import Request

    topo = resolve("basic")
    rows = []
    with Testbed(topo, log_dir=log_dir / "signalling", access="slaac") as tb:
        mob = MobilityNetwork(tb, policy=GatewayPolicy(grace_s=600)).start()
        mob.wait_ready("mn")
        nd = open_nd(netns.name_of("mn"))
        idx = tb.ipr("mn").link_lookup(ifname="mn-eth0")[0]
        mac = tb.ipr("mn").get_links(idx)[0].get_attr("IFLA_ADDRESS")
        for i, t in enumerate((AddressType.FIXED, AddressType.SESSION_LASTING, AddressType.GRACEFUL_REPLACEMENT), 1):
            if solicit(nd, idx, mac, "mn@odmm", [Request(i, int(t))]) is None:
                raise OdmmError(f"no answer to the {t.name} request")
        for n in range(4 if quick else 10):
            src = mob.location["mn"]
            dst = "gw2" if src == "gw1" else "gw1"
            mob.move("mn", dst)
            att = mob.wait_ready("mn")
            anchors = {a["prefix"]: a for a in mob.state(src)["anchored"]}
            tl = att["timeline"]
            anchor_ready = max((a["since"] for a in anchors.values() if a["serving"]), default=tl["ready"])
            ready = max(tl["ready"], anchor_ready)
            # the farthest anchor the new gateway must hear from: the HA or the old gateway
            rtt = max(topo.analytic_rtt_ms(dst, "ha"), topo.analytic_rtt_ms(dst, src))
            bound = rtt + 10.0
            ms = (ready - tl["attach"]) * 1000
            rows.append({"handoff": n + 1, "from": src, "to": dst, "attach_to_pbu_ms": round((tl["pbu_ha"] - tl["attach"]) * 1000, 2),
                         "pbu_to_pba_ms": round((tl["pba_ha"] - tl["pbu_ha"]) * 1000, 2),
                         "new_gw_ready_ms": round((tl["ready"] - tl["attach"]) * 1000, 2),
                         "anchor_ready_ms": round((anchor_ready - tl["attach"]) * 1000, 2),
                         "tunnels_ready_ms": round(ms, 2), "signalling_rtt_ms": rtt, "bound_ms": bound,
                         "ratio_to_bound": round(ms / bound, 3)})
            print(f"  handoff {n + 1} {src}->{dst}: tunnels ready {ms:.1f} ms (bound {bound:.0f} ms)", file=_sys.stderr)
    return rows


def bench_setsc(log_dir: Path, quick: bool) -> list[dict]:
    """setsc latency on `basic` per DAD mode: reuse of a configured address, and a new prefix."""
    import socket
    import statistics

    from gateways.config import GatewayPolicy
    from gateways.deploy import MobilityNetwork
    from mobilehost import api
    from mobilehost.config import MobileHostPolicy
    from odmm import netns
    from odmm.addrtypes import AddressType

    topo = resolve("basic")
    access_rtt = topo.analytic_rtt_ms("mn", "gw1")
    n = 10 if quick else 30
    rows = []
    for dad in ("off", "optimistic", "standard"):
        with Testbed(topo, log_dir=log_dir / f"setsc-{dad}", access="managed") as tb:
            # unused prefixes are released quickly, so that the node holds a handful of prefixes
            # (as a host would), not every one the benchmark asked for
            mob = MobilityNetwork(tb, policy=GatewayPolicy(),
                                  host_policy=MobileHostPolicy(release_unused=True, release_hold_s=0.1),
                                  dad=dad).start()
            mob.wait_ready("mn")
            d = mob.host_socket("mn")
            for kind, on_net, count in (("new prefix", True, n if dad != "standard" else 5), ("reuse", False, n)):
                times = []
                keep = netns.socket_in(netns.name_of("mn"), socket.AF_INET6, socket.SOCK_DGRAM)
                if not on_net:  # a bound socket keeps one prefix in use for the reuse measurements
                    keep.bind((api.setsc(keep, AddressType.SESSION_LASTING, daemon=d), 0))
                for _ in range(count):
                    s = netns.socket_in(netns.name_of("mn"), socket.AF_INET6, socket.SOCK_DGRAM)
                    t0 = time.perf_counter()
                    api.setsc(s, AddressType.SESSION_LASTING, on_net=on_net, daemon=d)
                    times.append((time.perf_counter() - t0) * 1000)
                    s.close()
                    if on_net:
                        time.sleep(0.5)  # let the unused prefix be released (hold 0.1 s, checked every 0.25 s)
                keep.close()
                med = statistics.median(times)
                bound = 2.0 if kind == "reuse" else access_rtt + 10.0
                rows.append({"dad": dad, "kind": kind, "n": count, "median_ms": round(med, 3),
                             "p90_ms": round(sorted(times)[int(0.9 * (count - 1))], 3), "bound_ms": bound,
                             "ratio_to_bound": round(med / bound, 3),
                             "applies": kind == "reuse" or dad != "standard"})
    return rows


def bench_interruption(log_dir: Path, quick: bool) -> list[dict]:
    """The default scenario: interruption / bound and RTT / analytic per flow and move."""
    from experiments.runner import run
    from experiments.scenario import load_scenario

    sc = load_scenario("default", {"repetitions": 2 if quick else 5})
    result = run(sc, log_dir / "interruption", say=lambda _m: None)
    rows = []
    for f in result["aggregate"]["ondemand"]["flows"]:
        for m in f["moves"]:
            rows.append({"flow": f["flow"], "type": f["type"], "move": m["move"], "to": m["to"],
                         "survived": f"{m['survived']}/{f['reps']}", "interruption_ms": m["interruption_ms"],
                         "bound_ms": m["bound_ms"], "ratio_median": m["ratio_to_bound"],
                         "ratio_max": m["ratio_to_bound_max"], "rtt_after_ratio": m["rtt_after_ratio"]})
    return rows


def bench_daemons(log_dir: Path, quick: bool) -> list[dict]:
    """CPU the gateway, HA and mobile-host daemons use per mobile node (grid 2x2, RAs every
    second, one handoff per node during the measurement)."""
    from gateways.deploy import MobilityNetwork

    rows = []
    for mns in (1, 4) if quick else (1, 4, 8):
        topo = resolve("grid", {"rows": 2, "cols": 2, "mns": mns})
        with Testbed(topo, log_dir=log_dir / f"daemons-{mns}", access="managed") as tb:
            mob = MobilityNetwork(tb).start()
            for n in mob.location:
                mob.wait_ready(n)
            procs = {p.name: p.popen.pid for p in tb.supervisor.procs
                     if p.name.startswith(("gateway", "home agent", "mobile host"))}
            cpu0 = {n: _cpu_seconds(pid) for n, pid in procs.items()}
            t0 = time.monotonic()
            for n in sorted(mob.location):
                src = mob.location[n]
                mob.move(n, "gw2" if src != "gw2" else "gw1")
            time.sleep(10.0 if not quick else 5.0)  # steady state: periodic RAs and refreshes
            wall = time.monotonic() - t0
            tb.check()
            used = {n: _cpu_seconds(pid) - cpu0[n] for n, pid in procs.items()}
        gw = sum(v for n, v in used.items() if n.startswith(("gateway", "home agent")))
        mh = sum(v for n, v in used.items() if n.startswith("mobile host"))
        rows.append({"mobile_nodes": mns, "seconds": round(wall, 1),
                     "network_daemons_cpu_pct": round(100 * gw / wall, 2),
                     "mobile_host_daemons_cpu_pct": round(100 * mh / wall, 2),
                     "per_mn_network_cpu_pct": round(100 * gw / wall / mns, 3),
                     "per_mn_host_cpu_pct": round(100 * mh / wall / mns, 3)})
    return rows


SECTIONS: dict[str, Callable[[Path, bool], list[dict]]] = {
    "fidelity": bench_fidelity,
    "throughput": bench_throughput,
    "build": bench_build,
    "signalling": bench_signalling,
    "setsc": bench_setsc,
    "interruption": bench_interruption,
    "daemons": bench_daemons,
}


def summarize(results: dict) -> dict:
    out = {}
    fid = results.get("fidelity")
    if fid:
        ratios = [r["ratio"] for r in fid if r["ratio"] is not None]
        out["fidelity"] = {"paths": len(fid), "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4),
                           "within_2pct": sum(r["within_2pct"] for r in fid), "target": "1 +/- 0.02 on every path"}
    thr = results.get("throughput")
    if thr:
        out["throughput"] = {
            f"{h}_hops_max_loss_free_pps": max((r["sent_pps"] for r in thr if r["hops"] == h and r["loss_free"]),
                                               default=0)
            for h in (1, 3)
        }
        out["throughput"]["target"] = ">= 40000 pps loss-free over 3 hops"
    sc = results.get("setsc")
    if sc:
        out["setsc"] = {f"{r['dad']}/{r['kind']}": r["median_ms"] for r in sc}
        out["setsc"]["target"] = "reuse < 2 ms median; new prefix <= access RTT + 10 ms with DAD off or optimistic"
    sig = results.get("signalling")
    if sig:
        ratios = sorted(r["ratio_to_bound"] for r in sig)
        out["signalling"] = {"handoffs": len(sig), "ratio_median": ratios[len(ratios) // 2], "ratio_max": ratios[-1],
                             "target": "tunnels ready <= signalling RTT to the farthest anchor + 10 ms (ratio <= 1)"}
    return out


def _table(title: str, columns: list[str], rows: list[list]) -> list[str]:
    """A markdown section: heading, table, blank line."""
    return ([f"### {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""])


def markdown(results: dict) -> str:
    lines: list[str] = []
    if results.get("fidelity"):
        lines += _table("RTT fidelity (median of 50 echoes)",
                        ["topology", "path", "hops", "analytic ms", "measured ms", "ratio"],
                        [[r["topology"], r["path"], r["hops"], f"{r['analytic_ms']:.2f}",
                          f"{r['measured_ms']:.3f}" if r["measured_ms"] is not None else "-",
                          f"{r['ratio']:.4f}" if r["ratio"] is not None else "-"] for r in results["fidelity"]])
    if results.get("throughput"):
        lines += _table("Delay element throughput (UDP, 64-byte payloads, 5 ms per hop)",
                        ["delayed hops", "target pps", "sent pps", "lost", "queue drops", "loss-free", "CPU max %",
                         "CPU total %"],
                        [[r["hops"], r["target_pps"], r["sent_pps"], r["lost"], r["queue_drops"],
                          "yes" if r["loss_free"] else "no", r["delay_cpu_pct_max"], r["delay_cpu_pct_total"]]
                         for r in results["throughput"]])
    if results.get("signalling"):
        lines += _table("Handoff signalling on basic (attach -> tunnels ready)",
                        ["#", "move", "attach->PBU ms", "PBU->PBA ms", "new gw ready ms", "anchor ready ms", "ready ms",
                         "bound ms", "ratio"],
                        [[r["handoff"], f"{r['from']}->{r['to']}", r["attach_to_pbu_ms"], r["pbu_to_pba_ms"],
                          r["new_gw_ready_ms"], r["anchor_ready_ms"], r["tunnels_ready_ms"], f"{r['bound_ms']:.0f}",
                          r["ratio_to_bound"]] for r in results["signalling"]])
    if results.get("setsc"):
        lines += _table("setsc latency (SESSION_LASTING, from an application in the MN namespace)",
                        ["DAD", "kind", "n", "median ms", "p90 ms", "target ms", "ratio"],
                        [[r["dad"], r["kind"], r["n"], r["median_ms"], r["p90_ms"],
                          f"{r['bound_ms']:.0f}" if r["applies"] else "- (DAD ~1 s)",
                          r["ratio_to_bound"] if r["applies"] else "-"] for r in results["setsc"]])
    if results.get("interruption"):
        lines += _table("Interruption per type (default scenario)",
                        ["flow", "type", "move", "survived", "interruption ms", "bound ms", "ratio median", "ratio max",
                         "RTT after / analytic"],
                        [[r["flow"], r["type"], f"{r['move']} ({r['to']})", r["survived"], r["interruption_ms"],
                          f"{r['bound_ms']:.0f}", r["ratio_median"], r["ratio_max"], r["rtt_after_ratio"]]
                         for r in results["interruption"]])
    if results.get("daemons"):
        lines += _table("Daemon CPU per mobile node (grid 2x2, RAs every second)",
                        ["mobile nodes", "network daemons CPU %", "host daemons CPU %", "per MN network %",
                         "per MN host %"],
                        [[r["mobile_nodes"], r["network_daemons_cpu_pct"], r["mobile_host_daemons_cpu_pct"],
                          r["per_mn_network_cpu_pct"], r["per_mn_host_cpu_pct"]] for r in results["daemons"]])
    if results.get("build"):
        lines += _table("Build and teardown", ["nodes", "links", "build s", "teardown s"],
                        [[r["nodes"], r["links"], r["build_s"], r["teardown_s"]] for r in results["build"]])
    if results.get("summary"):
        lines += ["### Summary", "", "```", json.dumps(results["summary"], indent=2), "```"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--only", help=f"comma-separated sections ({', '.join(SECTIONS)})")
    ap.add_argument("--quick", action="store_true", help="fewer points per section")
    args = ap.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        print(f"bench: unknown section {unknown[0]!r} (sections: {', '.join(SECTIONS)})", file=sys.stderr)
        return 2
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = OUT_DIR / f"logs-{stamp}"
    results: dict = {"started": stamp, "host": platform.node(), "kernel": platform.release(),
                     "cpus": os.cpu_count(), "quick": args.quick}
    failed = []
    for name in chosen:
        print(f"bench: {name} ...", flush=True)
        t0 = time.monotonic()
        try:
            results[name] = SECTIONS[name](log_dir, args.quick)
        except OdmmError as exc:  # keep what the other sections measured
            print(f"bench: {name} failed: {exc}", file=sys.stderr)
            results[f"{name}_error"] = str(exc)
            failed.append(name)
        results[f"{name}_seconds"] = round(time.monotonic() - t0, 1)
    results["summary"] = summarize(results)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"bench-{stamp}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, path)
    (OUT_DIR / "latest.json").write_text(json.dumps(results, indent=2))
    table = markdown(results)
    (OUT_DIR / f"bench-{stamp}.md").write_text(table + "\n")
    print(table)
    print(f"\nbench: results in {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
