"""Apply a topology's link parameters to the running namespaces, with the chosen backend.

No parameter is ever dropped silently: a topology that needs delay/jitter/loss or a rate cap
on a kernel that cannot do it fails before anything is built (``KernelFeatureMissing``), and
a delay element that dies later fails the run (``Supervisor.check``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from odmm import netns
from odmm.errors import BuildError
from odmm.kernel import Capabilities
from odmm.linkemu.nfqueue import queue_stats
from odmm.linkemu.plan import EgressShape, QueueHook, plan_egress, plan_queues
from odmm.procs import Proc, Supervisor
from topologies.addressing import AddressPlan
from topologies.model import LinkParams, Topology

RULE_COMMENT = "odmm"
QUEUE_LATENCY = "50ms"  # tbf queue depth, as time at the capped rate


def tbf_args(bw_mbit: float) -> dict:
    """tbf parameters for a rate cap: a burst of ~4 ms of traffic (at least two full frames)."""
    rate_bps = bw_mbit * 1e6
    return {"rate": f"{rate_bps / 1000:.0f}kbit", "burst": max(2 * 1514, int(rate_bps / 8 / 250)),
            "latency": QUEUE_LATENCY}


def netem_args(params: LinkParams) -> dict:
    """pyroute2 netem parameters (times in microseconds)."""
    args: dict = {"delay": int(params.delay_ms * 1000), "limit": 10000}
    if params.jitter_ms:
        args["jitter"] = int(params.jitter_ms * 1000)
    if params.loss_pct:
        args["loss"] = params.loss_pct
    return args


def delayd_config(hooks: list[QueueHook], seed: int, stats_path: Path) -> dict:
    return {
        "seed": seed,
        "stats": str(stats_path),
        "queues": [
            {"queue": h.queue, "delay_us": h.params.delay_ms * 1000, "jitter_us": h.params.jitter_ms * 1000,
             "loss_pct": h.params.loss_pct, "link": f"{h.src}->{h.dst}", "egress": h.match == "-o"}
            for h in hooks
        ],
    }


class LinkEmulator:
    """Chooses backends for one topology and applies them to a running testbed."""

    def __init__(self, topo: Topology, plan: AddressPlan, caps: Capabilities, forced_delay: str | None = None,
                 roaming: bool = False) -> None:
        self.topo = topo
        self.plan = plan
        self.delay_backend: str | None = None
        if topo.needs_delay_element():
            self.delay_backend = caps.delay_backend(forced_delay) or caps.require_delay()
        self.rate_backend = caps.require_rate() if topo.needs_shaping() else None
        self.queues: dict[str, list[QueueHook]] = (
            plan_queues(topo, plan, roaming) if self.delay_backend == "nfqueue" else {}
        )
        self.egress: list[EgressShape] = plan_egress(topo, plan, delay_too=self.delay_backend == "netem")
        self.daemons: dict[str, Proc] = {}
        self.stats_paths: dict[str, Path] = {}

    def describe(self) -> str:
        parts = []
        if self.delay_backend == "nfqueue":
            nq = sum(len(v) for v in self.queues.values())
            parts.append(f"delay/jitter/loss: NFQUEUE delay element ({nq} link directions in {len(self.queues)} router namespaces)")
        elif self.delay_backend == "netem":
            parts.append("delay/jitter/loss: tc netem")
        else:
            parts.append("delay/jitter/loss: none needed")
        caps = sum(1 for s in self.egress if s.params.bw_mbit)
        parts.append(f"rate caps: tbf on {caps} link directions" if caps else "rate caps: none needed")
        return "; ".join(parts)

    def start(self, ipr_of: Callable, popen_of: Callable, supervisor: Supervisor, log_dir: Path, seed: int = 1) -> None:
        """Install qdiscs, start the delay elements, then hook traffic into their queues."""
        for shape in self.egress:
            self._install_qdiscs(ipr_of(shape.node), shape)
        for i, (node, hooks) in enumerate(sorted(self.queues.items())):
            stats = log_dir / f"delayd-{node}.stats.json"
            self.stats_paths[node] = stats
            config = delayd_config(hooks, seed + i, stats)
            self.daemons[node] = supervisor.launch(
                f"delay element in {node}", popen_of(node),
                [sys.executable, "-m", "odmm.linkemu.delayd", json.dumps(config)],
                log_dir / f"delayd-{node}.log", pipe_stdout=True,
            )
        if self.daemons:
            supervisor.wait_ready(list(self.daemons.values()), "READY", timeout=10.0 + 0.1 * len(self.daemons))
        # Only now hook traffic into the queues (a queue nobody listens to drops everything).
        restores = {}
        for node, hooks in self.queues.items():
            rules = "*mangle\n" + "".join(r + "\n" for h in hooks for r in h.rules(RULE_COMMENT)) + "COMMIT\n"
            p = subprocess.Popen(["ip", "netns", "exec", netns.name_of(node), "ip6tables-restore", "-w", "--noflush"],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            restores[node] = (p, rules)
        errors = []
        for node, (p, rules) in restores.items():
            _out, err = p.communicate(rules)
            if p.returncode != 0:
                errors.append(f"cannot install the NFQUEUE rules in {node}: {err.strip()}")
        if errors:
            raise BuildError("; ".join(errors))

    def _install_qdiscs(self, ipr, shape: EgressShape) -> None:
        idx = ipr.link_lookup(ifname=shape.iface)[0]
        p = shape.params
        try:
            if self.delay_backend == "netem" and p.needs_delay_element():
                ipr.tc("add", "netem", index=idx, handle="1:", **netem_args(p))
                if p.bw_mbit:
                    ipr.tc("add", "tbf", index=idx, handle="10:", parent="1:1", **tbf_args(p.bw_mbit))
            elif p.bw_mbit:
                ipr.tc("add", "tbf", index=idx, handle="1:", **tbf_args(p.bw_mbit))
        except Exception as exc:
            raise BuildError(f"cannot shape {shape.src}->{shape.dst} on {shape.node}:{shape.iface}: {exc}") from exc

    def kernel_counters(self) -> dict[str, dict]:
        """Per link direction: NFQUEUE kernel counters (queue overflows, netlink drops)."""
        out: dict[str, dict] = {}
        for node, hooks in self.queues.items():
            proc = self.daemons.get(node)
            if proc is None or not proc.alive():
                continue
            stats = queue_stats(f"/proc/{proc.popen.pid}/net/netfilter/nfnetlink_queue")
            for h in hooks:
                s = stats.get(h.queue, {})
                out[f"{h.src}->{h.dst}"] = {"node": node, "queue": h.queue,
                                            "queue_dropped": s.get("queue_dropped", 0),
                                            "user_dropped": s.get("user_dropped", 0),
                                            "waiting": s.get("queued", 0)}
        return out

    def daemon_stats(self) -> dict[str, dict]:
        """Counters each delay element wrote when it stopped (after ``Supervisor.stop_all``)."""
        out = {}
        for node, path in self.stats_paths.items():
            try:
                out[node] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return out
