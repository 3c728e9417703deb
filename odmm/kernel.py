"""Probe what this kernel can do, once per run, and choose the backends.

Every probe really tries the feature (creates the qdisc, the tunnel, binds the queue) in a
throw-away namespace; nothing is guessed from version numbers or config files.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from dataclasses import asdict, dataclass, field

from odmm.errors import KernelFeatureMissing
from odmm.eventloop import DAEMON_NICE, DAEMON_RT_PRIORITY

PROBE_NS = f"odmm-probe-{os.getpid()}"
IPPROTO_MPTCP = 262


@dataclass
class Capabilities:
    """What the kernel and the installed tools offer; ``notes`` says why something is missing."""

    netem: bool = False
    tbf: bool = False
    htb: bool = False
    nfqueue: bool = False
    ip6tnl: bool = False
    sit: bool = False
    gre: bool = False
    vxlan: bool = False
    mptcp: bool = False
    optimistic_dad: bool = False
    rt_sched: bool = False
    untracked_na: bool = False
    mininet: bool = False
    notes: dict[str, str] = field(default_factory=dict)

    # --- backend choices ---------------------------------------------------------------
    def delay_backend(self, forced: str | None = None) -> str | None:
        """netem where it exists, else the NFQUEUE delay element, else nothing."""
        forced = forced or os.environ.get("ODMM_DELAY_BACKEND") or None
        if forced:
            if forced not in ("netem", "nfqueue"):
                raise KernelFeatureMissing(f"unknown delay backend {forced!r} (expected netem or nfqueue)")
            if not getattr(self, forced):
                raise KernelFeatureMissing(f"delay backend {forced!r} was asked for but {self.notes.get(forced, 'is unavailable')}")
            return forced
        if self.netem:
            return "netem"
        if self.nfqueue:
            return "nfqueue"
        return None

    def rate_backend(self) -> str | None:
        return "tbf" if self.tbf else None

    def tunnel_backend(self) -> str | None:
        if self.ip6tnl:
            return "ip6tnl"
        if self.vxlan:
            return "vxlan"
        return None

    def daemon_scheduling(self) -> str:
        return f"SCHED_RR priority {DAEMON_RT_PRIORITY}" if self.rt_sched else f"nice {DAEMON_NICE}"

    def require_delay(self) -> str:
        backend = self.delay_backend()
        if backend is None:
            raise KernelFeatureMissing(
                "the topology asks for delay, jitter or loss but this kernel has neither sch_netem "
                f"({self.notes.get('netem', 'missing')}) nor a usable NFQUEUE ({self.notes.get('nfqueue', 'missing')})"
            )
        return backend

    def require_rate(self) -> str:
        backend = self.rate_backend()
        if backend is None:
            raise KernelFeatureMissing(f"the topology caps bandwidth but sch_tbf is missing ({self.notes.get('tbf')})")
        return backend

    def to_dict(self) -> dict:
        return asdict(self)


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


def _inside_probe(fd: int) -> None:
    """Runs in a forked child that entered the probe namespace: socket-level probes."""
    out: dict[str, object] = {}
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM, IPPROTO_MPTCP)
        s.close()
        out["mptcp"] = True
    except OSError as exc:
        out["mptcp"] = False
        out["mptcp_note"] = f"no MPTCP sockets: {exc.strerror}"
    try:
        from odmm.linkemu.nfqueue import QueueSocket

        q = QueueSocket(rcvbuf=1 << 20)
        q.bind(7)
        q.unbind(7)
        q.close()
        out["nfqueue_bind"] = True
    except OSError as exc:
        out["nfqueue_bind"] = False
        out["nfqueue_note"] = f"cannot bind an NFQUEUE (nfnetlink_queue): {exc.strerror or exc}"
    try:  # the daemons' scheduling class (odmm.eventloop.Loop.raise_priority); this child exits anyway
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(DAEMON_RT_PRIORITY))
        out["rt_sched"] = True
    except OSError as exc:
        out["rt_sched"] = False
        out["rt_sched_note"] = f"SCHED_RR refused: {exc.strerror}"
    os.write(fd, json.dumps(out).encode())


def probe() -> Capabilities:
    """Try every feature in a throw-away namespace."""
    from pyroute2 import IPRoute, netns

    caps = Capabilities()
    caps.mininet = shutil.which("mnexec") is not None
    if not caps.mininet:
        caps.notes["mininet"] = "mnexec not found (install the Debian package 'mininet')"
    caps.optimistic_dad = os.path.exists("/proc/sys/net/ipv6/conf/default/optimistic_dad")
    if not caps.optimistic_dad:
        caps.notes["optimistic_dad"] = "kernel built without CONFIG_IPV6_OPTIMISTIC_DAD"
    caps.untracked_na = os.path.exists("/proc/sys/net/ipv6/conf/default/accept_untracked_na")
    if not caps.untracked_na:
        caps.notes["untracked_na"] = ("no accept_untracked_na (kernel < 5.19): after a move the first packet "
                                      "to each address waits for neighbour discovery")
    netns.create(PROBE_NS)
    try:
        with IPRoute(netns=PROBE_NS) as ipr:
            ipr.link("add", ifname="pa", kind="veth", peer="pb")
            idx = ipr.link_lookup(ifname="pa")[0]
            ipr.link("set", index=idx, state="up")
            for kind, kwargs in (
                ("netem", {"delay": 1000}),
                ("tbf", {"rate": "10mbit", "burst": 16000, "latency": "50ms"}),
                ("htb", {"default": 0}),
            ):
                try:
                    ipr.tc("add", kind, index=idx, handle="1:", **kwargs)
                    ipr.tc("del", index=idx, handle="1:", root=True)
                    setattr(caps, kind, True)
                except Exception as exc:  # NetlinkError: ENOENT etc.
                    caps.notes[kind] = f"cannot create a {kind} qdisc (sch_{kind}): {_err(exc)}"
            tunnels = {
                "ip6tnl": {"local": "2001:db8::1", "remote": "2001:db8::2", "ip6tnl_mode": 41},
                "sit": {},
                "gre": {},
                "vxlan": {"vxlan_id": 42, "vxlan_port": 4789, "vxlan_local6": "2001:db8::1"},
            }
            for kind, kwargs in tunnels.items():
                try:
                    ipr.link("add", ifname=f"t{kind}"[:15], kind=kind, **kwargs)
                    setattr(caps, kind, True)
                except Exception as exc:
                    caps.notes[kind] = f"cannot create a {kind} device: {_err(exc)}"
        caps.nfqueue = _probe_nfqueue(caps)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: enter the namespace and probe sockets
            try:
                os.close(r)
                netns.setns(PROBE_NS)
                _inside_probe(w)
            finally:
                os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        inside = json.loads(data or b"{}")
        caps.mptcp = bool(inside.get("mptcp"))
        if not caps.mptcp:
            caps.notes["mptcp"] = str(inside.get("mptcp_note", "probe failed"))
        caps.rt_sched = bool(inside.get("rt_sched"))
        if not caps.rt_sched:
            caps.notes["rt_sched"] = str(inside.get("rt_sched_note", "probe failed"))
        if caps.nfqueue and not inside.get("nfqueue_bind"):
            caps.nfqueue = False
            caps.notes["nfqueue"] = str(inside.get("nfqueue_note", "probe failed"))
    finally:
        netns.remove(PROBE_NS)
    return caps


def _probe_nfqueue(caps: Capabilities) -> bool:
    tool = shutil.which("ip6tables")
    if tool is None:
        caps.notes["nfqueue"] = "ip6tables not found (install the Debian package 'iptables')"
        return False
    res = subprocess.run(
        ["ip", "netns", "exec", PROBE_NS, tool, "-w", "-t", "mangle", "-A", "PREROUTING",
         "-i", "pa", "-j", "NFQUEUE", "--queue-num", "7"],
        capture_output=True, text=True,
    )
    if res.returncode != 0:
        caps.notes["nfqueue"] = f"ip6tables NFQUEUE target refused: {res.stderr.strip()}"
        return False
    return True


_cached: Capabilities | None = None


def capabilities() -> Capabilities:
    """The probe result for this process (probed on first use)."""
    global _cached
    if _cached is None:
        _cached = probe()
    return _cached


def describe(caps: Capabilities) -> list[tuple[str, str, str]]:
    """(feature, yes/no, note) rows for ``odmm doctor``."""
    rows = []
    labels = {
        "netem": "tc netem (delay/jitter/loss qdisc)",
        "nfqueue": "NFQUEUE (userspace delay element)",
        "tbf": "tc tbf (rate cap)",
        "htb": "tc htb",
        "ip6tnl": "ip6tnl tunnels",
        "sit": "sit tunnels",
        "gre": "gre tunnels",
        "vxlan": "VXLAN over IPv6",
        "mptcp": "MPTCP sockets",
        "optimistic_dad": "optimistic DAD",
        "rt_sched": "real-time scheduling (SCHED_RR)",
        "untracked_na": "RFC 9131 untracked NAs",
        "mininet": "Mininet (mnexec)",
    }
    for key, label in labels.items():
        ok = getattr(caps, key)
        rows.append((label, "yes" if ok else "no", "" if ok else caps.notes.get(key, "")))
    return rows
