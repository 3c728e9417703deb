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
from mobilehost.config import DAD_MODES, MobileHostConfig, MobileHostPolicy
from odmm import netns
from odmm.control import ControlClient
from odmm.errors import OdmmError
from topologies.addressing import access_ifname
from topologies.testbed import CTL_DIR, LIMBO, Testbed


class MobilityNetwork:
    """The network half of the on-demand system, deployed on a started Testbed."""

    def __init__(self, tb: Testbed, mode: str = "ondemand", policy: GatewayPolicy | None = None,
                 policies: dict[str, GatewayPolicy] | None = None, signalling: SignallingPolicy | None = None,
                 ha_pool_size: int = 4000, host_policy: MobileHostPolicy | None = None,
                 host_policies: dict[str, MobileHostPolicy] | None = None, dad: str = "off") -> None:
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
        if dad not in DAD_MODES:
            raise OdmmError(f"unknown DAD mode {dad!r} (expected one of {', '.join(DAD_MODES)})")
        self.dad = dad
        self.host_policy = host_policy or MobileHostPolicy()
        self.host_policies = host_policies or {}
        self.topo = tb.topo
        self.gateways = sorted(n.name for n in self.topo.by_role("gw"))
        has = [n.name for n in self.topo.by_role("ha")]
        self.ha = has[0] if has and mode != "none" else None
        self.clients: dict[str, ControlClient] = {}
        self.location = {n.name: self.topo.links_of(n.name)[0].other(n.name) for n in self.topo.by_role("mn")}
        self.moves: list[dict] = []
        self._relocation_s = 0.02  # how long the kernel takes to move a link between namespaces (learned)

    def _configs(self) -> dict[str, DaemonConfig]:
        plan = self.tb.plan
        anchors = ([self.ha] if self.ha else []) + self.gateways
        peers = {n: str(plan.address(n)) for n in anchors}
        ids = {str(plan.address(n)): i + 1 for i, n in enumerate(anchors)}
        ctl = CTL_DIR
        out = {}
        for name in anchors:
            role = self.topo.nodes[name].role
            out[name] = DaemonConfig(
                name=name, role=role, address=str(plan.address(name)), block=str(plan.blocks[name]),
                mode=self.mode, ha=peers.get(self.ha) if self.ha and role == "gw" else None,
                peers=peers, tunnel_ids=ids, tunnel_backend=self._tunnel_backend(),
                blocks={str(plan.address(n)): str(plan.blocks[n]) for n in anchors},
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
        if self.tb.access == "managed":
            self._start_hosts()
        return self

    def host_socket(self, mn: str) -> str:
        return str(CTL_DIR / f"{mn}.sock")

    def _start_hosts(self) -> None:
        """The odmm mobile-host daemon on every mobile node (access='managed')."""
        sup = self.tb.supervisor
        dad = {"off": ["accept_dad=0"], "optimistic": ["accept_dad=1", "optimistic_dad=1", "use_optimistic=1"],
               "standard": ["accept_dad=1", "optimistic_dad=0"]}[self.dad]
        procs = []
        for mn in sorted(self.location):
            ifname = self.tb.plan.interface(mn, self.location[mn]).name
            res = self.tb.run(mn, ["sysctl", "-qw", *[f"net.ipv6.conf.{ifname}.{kv}" for kv in dad]])
            if res.returncode != 0:
                raise OdmmError(f"cannot set DAD mode {self.dad} on {mn}: {res.stderr.strip()}")
            cfg = MobileHostConfig(name=mn, ifname=ifname, control=self.host_socket(mn), dad=self.dad,
                                   policy=replace(self.host_policies.get(mn, self.host_policy)))
            path = self.tb.log_dir / f"{mn}.json"
            cfg.save(path)
            procs.append(sup.launch(f"mobile host {mn}", self.tb.popen_of(mn),
                                    [sys.executable, "-m", "mobilehost.daemon", str(path)],
                                    self.tb.log_dir / f"{mn}.log", pipe_stdout=True))
            self.clients[mn] = ControlClient(cfg.control, name=f"mobile host {mn}")
        sup.wait_ready(procs, "READY", timeout=15.0)

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

    def _relocate(self, mn: str, to_ns: str) -> None:
        ifname = access_ifname(mn)
        src = self.location[mn]
        ipr = self.tb.ipr(src)
        idx = ipr.link_lookup(ifname=ifname)
        if not idx:
            raise OdmmError(f"{ifname} is not on {src}")
        ipr.link("set", index=idx[0], net_ns_fd=netns.name_of(to_ns))
        self.location[mn] = to_ns

    def detach(self, mn: str) -> float:
        """Take ``mn`` off its gateway (the access link waits in a namespace of its own)."""
        if self.location[mn] == LIMBO:
            raise OdmmError(f"{mn} is already detached")
        self._relocate(mn, LIMBO)
        return time.monotonic()

    def attach(self, mn: str, to: str) -> float:
        """Attach a detached ``mn`` to gateway ``to``."""
        if to not in self.gateways:
            raise OdmmError(f"cannot attach {mn} to {to!r}: not a gateway ({', '.join(self.gateways)})")
        if self.location[mn] != LIMBO:
            raise OdmmError(f"{mn} is attached to {self.location[mn]}; use move()")
        self._relocate(mn, to)
        return time.monotonic()

    def move(self, mn: str, to: str, gap_s: float = 0.0) -> dict:
        """Hand ``mn`` over to gateway ``to`` after an L2 gap of ``gap_s``.

        The old gateway's end of the access link goes down first (the node loses carrier at
        once), then the link is moved to the new gateway, which brings it up. Moving a device
        between namespaces takes the kernel ~20 ms, so the move starts that much before the
        gap ends; ``l2_outage`` in the record is the outage actually produced (it cannot be
        shorter than one move).
        """
        if to not in self.gateways:
            raise OdmmError(f"cannot move {mn} to {to!r}: not a gateway ({', '.join(self.gateways)})")
        src = self.location[mn]
        if src == to:
            raise OdmmError(f"{mn} is already attached to {to}")
        ipr = self.tb.ipr(src)
        idx = ipr.link_lookup(ifname=access_ifname(mn))
        if not idx:
            raise OdmmError(f"{access_ifname(mn)} is not on {src}")
        t0 = time.monotonic()
        ipr.link("set", index=idx[0], state="down")
        t_left = time.monotonic()
        wait = gap_s - self._relocation_s
        if wait > 0:
            time.sleep(wait)  # the emulated L2 gap itself, not a wait for something
        t_move = time.monotonic()
        self._relocate(mn, to)
        t_arrived = time.monotonic()
        self._relocation_s += 0.25 * ((t_arrived - t_move) - self._relocation_s)
        record = {"mn": mn, "from": src, "to": to, "gap_s": gap_s, "start": t0, "left": t_left,
                  "arrived": t_arrived, "l2_outage": t_arrived - t0}
        self.moves.append(record)
        return record
