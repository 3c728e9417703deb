"""Run a scenario: build, deploy, start probes, move nodes on schedule, collect, tear down.

Every repetition is a fresh testbed (seeded differently). A daemon or probe that dies marks
the run failed with its log tail; what was gathered so far is kept and reported, and the
testbed is always torn down.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from experiments.metrics import flow_outcomes, outcome_dicts
from experiments.scenario import Scenario
from gateways.deploy import MobilityNetwork
from odmm import netns
from odmm.errors import DaemonDied, OdmmError
from topologies.testbed import Testbed

BASE_PORT = 7000


def _ports(sc: Scenario) -> dict[str, int]:
    return {a.name: a.port or BASE_PORT + i for i, a in enumerate(sc.apps)}


def _tunnel_counters(tb: Testbed, node: str) -> dict:
    """Packets and bytes through ``node``'s tunnels, from the kernel."""
    total = {"tx_packets": 0, "rx_packets": 0, "tx_bytes": 0, "rx_bytes": 0, "tunnels": 0}
    for link in tb.ipr(node).get_links():
        if (link.get_attr("IFLA_IFNAME") or "").startswith("tun"):
            st = link.get_attr("IFLA_STATS64") or {}
            total["tunnels"] += 1
            for k in ("tx_packets", "rx_packets", "tx_bytes", "rx_bytes"):
                total[k] += st.get(k, 0)
    return total


def run_repetition(sc: Scenario, rep: int, out: Path, say: Callable[[str], None]) -> dict:
    """One repetition; returns its record (status 'complete' or 'failed' with the reason)."""
    rec: dict = {"repetition": rep, "seed": sc.seed + rep - 1, "mode": sc.mode, "status": "running", "flows": [],
                 "handoffs": [], "moves": []}
    logs = out / f"rep{rep}"
    topo = sc.topology
    mns = [n.name for n in topo.by_role("mn")]
    initial = {n: topo.links_of(n)[0].other(n) for n in mns}
    ports = _ports(sc)
    probes = {}
    tb = Testbed(topo, log_dir=logs, access="managed", seed=rec["seed"])
    try:
        say(f"rep {rep}/{sc.repetitions} [{sc.mode}]: building {topo.name} ({len(topo.nodes)} nodes)")
        tb.start()
        mob = MobilityNetwork(tb, mode=sc.mode, policy=sc.gateway, signalling=sc.signalling,
                              host_policy=sc.host, dad=sc.dad).start()
        sup = tb.supervisor
        if sc.pcap:  # ND and mobility signalling, as the nodes see it (Ctrl-C/SIGTERM flushes the files)
            for node in [n for n in topo.nodes if topo.nodes[n].role in ("gw", "ha", "mn")]:
                sup.launch(f"capture on {node}", tb.popen_of(node),
                           ["tcpdump", "-i", "any", "-U", "--immediate-mode", "-w", str(logs / f"{node}.pcap"),
                            "icmp6 or ip6 proto 135 or udp port 4789"], logs / f"capture-{node}.log")
        for n in mns:
            mob.wait_ready(n)
        servers = {}
        for cn in sorted({a.peer for a in sc.apps}):
            udp = [ports[a.name] for a in sc.apps if a.peer == cn and a.probe == "udp-echo"]
            tcp = [ports[a.name] for a in sc.apps if a.peer == cn and a.probe == "tcp-stream"]
            argv = [sys.executable, "-m", "experiments.probes", "server", "--address", tb.address(cn)]
            argv += [x for p in udp for x in ("--udp", str(p))] + [x for p in tcp for x in ("--tcp", str(p))]
            servers[cn] = sup.spawn(f"echo server on {cn}", tb.popen_of(cn), argv, logs / f"server-{cn}.log",
                                    ready="READY")
        launched = []
        for a in sc.apps:
            path = logs / f"flow-{a.name}.json"
            argv = [sys.executable, "-m", "experiments.probes", "client", "--flow", a.name,
                    "--proto", "udp" if a.probe == "udp-echo" else "tcp", "--type", a.type, "--peer",
                    tb.address(a.peer), "--port", str(ports[a.name]), "--rate", str(a.rate_pps),
                    "--duration", str(sc.duration_s), "--size", str(a.size), "--out", str(path),
                    "--stream-rate", str(a.stream_pps)]
            if a.on_net:
                argv.append("--on-net")
            proc = sup.launch(f"probe {a.name}", tb.popen_of(a.node), argv, logs / f"flow-{a.name}.log",
                              pipe_stdout=True, finite=True)
            launched.append(proc)
            probes[a.name] = (a, path, proc)
        sup.wait_ready(launched, "READY", timeout=30.0)
        t0 = time.monotonic()
        say(f"rep {rep}: {len(sc.apps)} flows running for {sc.duration_s:g} s")
        for m in sc.moves:
            _sleep_until(t0 + m.at_s, tb)
            rec["moves"].append(mob.move(m.node, m.to, m.gap_ms / 1000))
            say(f"rep {rep}: t={time.monotonic() - t0:5.2f} s  {m.node} {rec['moves'][-1]['from']} -> {m.to}"
                + (f" (L2 gap {m.gap_ms:g} ms)" if m.gap_ms else ""))
        deadline = t0 + sc.duration_s + 10.0
        for a, _path, proc in probes.values():
            while proc.alive():
                if time.monotonic() > deadline:
                    raise OdmmError(f"probe {a.name} did not finish")
                tb.check()
                time.sleep(0.05)
            proc.expected_exit = True
        for name in mob.clients:
            rec.setdefault("states", {})[name] = mob.state(name)
        rec["network"] = {
            "ha": _tunnel_counters(tb, "ha") if "ha" in topo.nodes else None,
            "signalling": sum(st.get("counters", {}).get("pbu_tx", 0) + st.get("counters", {}).get("pba_tx", 0)
                              for st in rec["states"].values()),
        }
        rec["status"] = "complete"
    except (DaemonDied, OdmmError) as exc:
        rec["status"], rec["error"] = "failed", str(exc)
        say(f"rep {rep}: FAILED: {exc}")
    except KeyboardInterrupt:
        rec["status"], rec["error"] = "interrupted", "interrupted by the user"
        raise
    finally:
        tb.stop()
        records = _records(probes)
        rec["flows"] = _flows(sc, probes, records, rec, initial)
        rec["handoffs"] = _handoffs(rec, records)
    return rec


def _sleep_until(when: float, tb: Testbed) -> None:
    """The experiment's schedule (not a wait for an event); daemons are checked meanwhile."""
    while True:
        left = when - time.monotonic()
        if left <= 0:
            return
        tb.check()
        time.sleep(min(left, 0.05))


def _records(probes: dict) -> dict[str, dict | None]:
    """Each probe's record (None if it did not finish), read once."""
    out: dict[str, dict | None] = {}
    for name, (_a, path, _p) in probes.items():
        try:
            out[name] = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            out[name] = None
    return out


def _flows(sc: Scenario, probes: dict, records: dict, rec: dict, initial: dict) -> list[dict]:
    topo = sc.topology
    from topologies.addressing import AddressPlan

    plan = AddressPlan(topo)
    out = []
    for a, _path, _proc in probes.values():
        data = records.get(a.name)
        if data is None:
            out.append({"flow": a.name, "requested": a.type, "error": "no probe record (the probe did not finish)"})
            continue
        access = topo.links_of(a.node)[0].params.delay_ms
        outcomes, whole = flow_outcomes(data, rec["moves"], topo, plan, a.node, initial[a.node], a.peer, access)
        out.append({"flow": a.name, "node": a.node, "probe": a.probe, "requested": a.type,
                    "type": data.get("type"), "source": data.get("source"), "fallback": data.get("fallback"),
                    "setsc_ms": data.get("setsc_ms"), "error": data.get("error"), **whole,
                    "moves": outcome_dicts(outcomes),
                    "survived_all": bool(outcomes) and all(o.survived for o in outcomes)})
    return out


def _handoffs(rec: dict, records: dict) -> list[dict]:
    states = rec.get("states", {})
    out = []
    for i, m in enumerate(rec["moves"]):
        gw = states.get(m["to"], {})
        mn_id = f"{m['mn']}@odmm"
        cands = [h for h in gw.get("handoffs", []) if h.get("mn_id") == mn_id and h.get("attach", 0) >= m["left"] - 0.001]
        h = min(cands, key=lambda x: x["attach"]) if cands else {}
        mn = states.get(m["mn"], {}).get("counters", {}).get("attachments", [])
        a = next((x for x in mn if x.get("carrier_up", 0) >= m["left"] - 0.001), {})
        first = None
        attach = h.get("attach")
        if attach:
            for data in records.values():
                if data is None:
                    continue
                after = [t / 1e9 for _s, t in data.get("recv", []) if t / 1e9 > attach]
                if after and (first is None or min(after) < first):
                    first = min(after)

        def ms(x, y):
            return round((x - y) * 1000, 2) if x is not None and y is not None else None

        out.append({"move": i + 1, "mn": m["mn"], "from": m["from"], "to": m["to"], "gap_ms": m["gap_s"] * 1000,
                    "attach_after_move_ms": ms(attach, m["arrived"]),
                    "rs_to_ra_ms": ms(a.get("ra"), a.get("rs")),
                    "pbu_to_pba_ms": ms(h.get("pba_ha"), h.get("pbu_ha")),
                    "tunnels_ready_ms": ms(h.get("ready"), attach),
                    "first_packet_after_attach_ms": ms(first, attach)})
    return out


def run(sc: Scenario, out: Path, say: Callable[[str], None] = print) -> dict:
    """All repetitions (and, for a comparison, all modes) of a scenario."""
    out.mkdir(parents=True, exist_ok=True)
    result = {"scenario": sc.name, "description": sc.description, "source": sc.source,
              "modes": sc.modes or [sc.mode], "repetitions": sc.repetitions, "duration_s": sc.duration_s,
              "apps": [asdict(a) for a in sc.apps], "moves": [asdict(m) for m in sc.moves],
              "expect": sc.expect, "runs": [], "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        for mode in result["modes"]:
            msc = sc.with_mode(mode)
            for rep in range(1, sc.repetitions + 1):
                sub = out / mode if sc.modes else out
                result["runs"].append(run_repetition(msc, rep, sub, say))
        result["status"] = "failed" if any(r["status"] != "complete" for r in result["runs"]) else "complete"
    except KeyboardInterrupt:
        result["status"] = "interrupted"
        raise
    finally:
        result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        from experiments.report import write_results

        write_results(result, out)
    return result


def shell(sc: Scenario) -> None:
    """Build the scenario's network with every daemon up and open the Mininet CLI, with two
    more commands: ``move NODE GATEWAY [GAP_MS]`` and ``state DAEMON``."""
    from mininet.cli import CLI

    class OdmmCLI(CLI):
        prompt = "odmm> "

        def do_move(self, line: str) -> None:
            """move NODE GATEWAY [GAP_MS]: hand a mobile node over to another gateway."""
            args = line.split()
            try:
                rec = mob.move(args[0], args[1], float(args[2]) / 1000 if len(args) > 2 else 0.0)
                print(f"{rec['mn']}: {rec['from']} -> {rec['to']} (L2 outage {rec['l2_outage'] * 1000:.0f} ms)")
            except (IndexError, ValueError):
                print("usage: move NODE GATEWAY [GAP_MS]")
            except OdmmError as exc:
                print(f"error: {exc}")

        def do_state(self, line: str) -> None:
            """state DAEMON: the JSON state of a gateway, the HA or a mobile host."""
            try:
                print(json.dumps(mob.state(line.strip()), indent=1, default=str))
            except (KeyError, OdmmError) as exc:
                print(f"error: {exc} (daemons: {', '.join(sorted(mob.clients))})")

    with Testbed(sc.topology, access="managed", echo=print) as tb:
        mob = MobilityNetwork(tb, mode=sc.mode, policy=sc.gateway, signalling=sc.signalling, host_policy=sc.host,
                              dad=sc.dad).start()
        for n in mob.location:
            mob.wait_ready(n)
        print(f"{sc.name}: mode {sc.mode}; namespaces " + ", ".join(netns.name_of(n) for n in tb.topo.nodes))
        print("examples: ip netns exec odmm-mn .venv/bin/python examples/sl_client.py "
              f"{tb.address('cn') if 'cn' in tb.topo.nodes else '<cn address>'} 7")
        print("extra commands: move NODE GATEWAY [GAP_MS], state DAEMON; control sockets in /run/odmm/ctl")
        OdmmCLI(tb.net)
