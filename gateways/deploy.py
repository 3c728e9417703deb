"""Run the Home Agent and gateway daemons in a testbed, and move mobile nodes between gateways.

A handoff moves the gateway end of the node's access link (``acc-<node>``) into the next
gateway's namespace, like an L2 re-association: the old gateway sees the link leave
(detach), the new one sees it arrive (attach), the node sees carrier go down and up. An
optional L2 gap keeps the link parked in a namespace of its own in between.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace

from gateways.config import MODES, DaemonConfig, GatewayPolicy, SignallingPolicy
from odmm import netns
from odmm.control import ControlClient
from odmm.errors import OdmmError
from topologies.addressing import access_ifname
from topologies.testbed import LIMBO, Testbed


class MobilityNetwork:
    """The network half of the on-demand system, deployed on a started Testbed."""

    def __init__(self, tb: Testbed, mode: str = "ondemand", policy: GatewayPolicy | None = None,
                 policies: dict[str, GatewayPolicy] | None = None, signalling: SignallingPolicy | None = None,
                 ha_pool_size: int = 4000) -> None:
        if mode not in MODES:
            raise OdmmError(f"unknown network mode {mode!r} (expected one of {', '.join(MODES)})")
        if not tb.roaming:
            raise OdmmError("the testbed was built with static access links; use access='slaac' or 'managed'")
        self.tb = tb
        self.mode = mode
        self.policy = policy or GatewayPolicy()
        self.policies = policies or {}
        self.signalling = signalling or SignallingPolicy()
        self.ha_pool_size = ha_pool_size
        self.topo = tb.topo
        self.gateways = sorted(n.name for n in self.topo.by_role("gw"))
        has = [n.name for n in self.topo.by_role("ha")]
        self.ha = has[0] if has and mode != "none" else None
        self.clients: dict[str, ControlClient] = {}
        self.location = {n.name: self.topo.links_of(n.name)[0].other(n.name) for n in self.topo.by_role("mn")}
        self.moves: list[dict] = []

    def _configs(self) -> dict[str, DaemonConfig]:
        plan = self.tb.plan
        anchors = ([self.ha] if self.ha else []) + self.gateways
        peers = {n: str(plan.address(n)) for n in anchors}
        ids = {str(plan.address(n)): i + 1 for i, n in enumerate(anchors)}
        ctl = self.tb.log_dir / "ctl"
        out = {}
        for name in anchors:
            role = self.topo.nodes[name].role
            out[name] = DaemonConfig(
                name=name, role=role, address=str(plan.address(name)), block=str(plan.blocks[name]),
                mode=self.mode, ha=peers.get(self.ha) if self.ha and role == "gw" else None,
                peers=peers, tunnel_ids=ids, tunnel_backend=self._tunnel_backend(),
                control=str(ctl / f"{name}.sock"), policy=replace(self.policies.get(name, self.policy)),
                signalling=self.signalling, ha_pool_size=self.ha_pool_size,
            )
        return out

    @staticmethod
    def _tunnel_backend() -> str:
        from odmm.kernel import capabilities

        backend = capabilities().tunnel_backend()
        if backend is None:
            raise OdmmError("no tunnel backend: this kernel has neither ip6tnl nor VXLAN")
        return backend

    def start(self) -> MobilityNetwork:
        sup = self.tb.supervisor
        procs = []
        for name, cfg in self._configs().items():
            path = self.tb.log_dir / f"{name}.json"
            cfg.save(path)
            module = "gateways.homeagent" if cfg.role == "ha" else "gateways.gateway"
            label = "home agent" if cfg.role == "ha" else "gateway"
            procs.append(sup.launch(f"{label} {name}", self.tb.popen_of(name), [sys.executable, "-m", module, str(path)],
                                    self.tb.log_dir / f"{name}.log", pipe_stdout=True))
            self.clients[name] = ControlClient(cfg.control, name=f"{label} {name}")
        sup.wait_ready(procs, "READY", timeout=15.0)
        return self

    def client(self, name: str) -> ControlClient:
        return self.clients[name]

    def state(self, name: str) -> dict:
        return self.clients[name].call("state")

    def wait_ready(self, mn: str, gw: str | None = None, timeout: float = 5.0) -> dict:
        """Poll ``gw`` (default: where ``mn`` is) until it has finished attaching ``mn``."""
        gw = gw or self.location[mn]
        deadline = time.monotonic() + timeout
        while True:
            self.tb.check()
            st = self.state(gw)
            att = next((a for a in st["attached"] if a["ifname"] == access_ifname(mn)), None)
            if att and att["ready"]:
                return att
            if time.monotonic() > deadline:
                raise OdmmError(f"{gw} did not finish attaching {mn} within {timeout:g} s")
            time.sleep(0.01)

    def move(self, mn: str, to: str, gap_s: float = 0.0) -> dict:
        """Hand ``mn`` over to gateway ``to``; returns the monotonic times of the move."""
        if to not in self.gateways:
            raise OdmmError(f"cannot move {mn} to {to!r}: not a gateway ({', '.join(self.gateways)})")
        src = self.location[mn]
        if src == to:
            raise OdmmError(f"{mn} is already attached to {to}")
        ifname = access_ifname(mn)
        ipr = self.tb.ipr(src)
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            raise OdmmError(f"{ifname} is not on {src}")
        t0 = time.monotonic()
        if gap_s > 0:
            ipr.link("set", index=idx[0], net_ns_fd=netns.name_of(LIMBO))
            t_left = time.monotonic()
            time.sleep(gap_s)  # the emulated L2 gap itself, not a wait for something
            limbo = self.tb.ipr(LIMBO)
            limbo.link("set", index=limbo.link_lookup(ifname=ifname)[0], net_ns_fd=netns.name_of(to))
        else:
            ipr.link("set", index=idx[0], net_ns_fd=netns.name_of(to))
            t_left = t0
        t_arrived = time.monotonic()
        self.location[mn] = to
        record = {"mn": mn, "from": src, "to": to, "gap_s": gap_s, "start": t0, "left": t_left, "arrived": t_arrived}
        self.moves.append(record)
        return record
