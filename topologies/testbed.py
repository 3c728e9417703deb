"""Build a topology as real namespaces with Mininet, configure it with pyroute2, tear it down.

Mininet provides the nodes (one shell per namespace, ``node.popen`` to run programs there)
and the veth links; no switches, no controller. Every node's namespace is named
``odmm-<node>``. Addresses and routes are configured over netlink (pyroute2) from the
address plan and the shortest-path routes. Link emulation follows (``LinkEmulator``).

Use as a context manager; teardown runs on normal exit, exceptions and Ctrl-C, and
``odmm clean`` removes what a killed process could not.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import resource
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pyroute2 import IPRoute

from odmm import kernel, netns
from odmm.errors import BuildError, KernelFeatureMissing, OdmmError
from odmm.linkemu.emulator import LinkEmulator
from odmm.procs import Supervisor
from odmm.rtbatch import add_routes
from topologies.addressing import AddressPlan
from topologies.model import Topology
from topologies.routing import compute_routes

RUN_DIR = Path("/run/odmm")
LOCK_PATH = RUN_DIR / "lock"
CTL_DIR = RUN_DIR / "ctl"  # daemons' control sockets (world-traversable: unprivileged apps use them)
IFA_F_NODAD = 0x02
MARK_ENV = "ODMM_TESTBED"  # set in every process the testbed starts, so `odmm clean` finds strays


ACCESS_MODES = ("static", "slaac", "managed")
LIMBO = "limbo"  # the namespace an access link waits in during an L2 gap


def _sysctls(role: str, access: str) -> str:
    """Per-namespace settings, applied before any interface exists.

    DAD is off: a tentative link-local stalls neighbour discovery for ~2 s on a fresh link
    (experiments choose the mobile node's DAD mode themselves). A mobile node learns its
    default router from RAs unless its access is static; with ``slaac`` the kernel also
    configures addresses (a legacy host), with ``managed`` the odmm mobile-host daemon does.
    """
    mobile = role == "mn" and access != "static"
    keys = {
        "net.ipv6.conf.all.accept_dad": 0,
        "net.ipv6.conf.default.accept_dad": 0,
        "net.ipv6.conf.all.accept_ra": 1 if mobile else 0,
        "net.ipv6.conf.default.accept_ra": 1 if mobile else 0,
        "net.ipv6.conf.default.autoconf": 1 if mobile and access == "slaac" else 0,
        "net.ipv6.conf.all.autoconf": 1 if mobile and access == "slaac" else 0,
        "net.ipv6.conf.all.forwarding": 1 if role in ("core", "ha", "gw") else 0,
        "net.ipv6.conf.all.keep_addr_on_down": 1 if mobile else 0,
    }
    return "sysctl -qw " + " ".join(f"{k}={v}" for k, v in keys.items())


def _raise_fd_limit() -> None:
    """Large topologies hold a pty, a netlink socket and pipes per node."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Testbed:
    """A running emulated network for one topology."""

    __test__ = False  # not a pytest test class

    def __init__(self, topo: Topology, *, log_dir: Path | None = None, delay_backend: str | None = None,
                 seed: int = 1, echo: Callable[[str], None] | None = None, access: str = "static") -> None:
        """``access`` says who configures mobile nodes' access links: ``static`` (the address
        plan, no mobility), ``slaac`` (gateway daemons and kernel SLAAC on the node) or
        ``managed`` (gateway daemons and the odmm mobile-host daemon)."""
        if access not in ACCESS_MODES:
            raise ValueError(f"access must be one of {ACCESS_MODES}, got {access!r}")
        self.access = access
        self.topo = topo
        self.plan = AddressPlan(topo)
        self.routes = compute_routes(topo, self.plan)
        self.log_dir = Path(log_dir) if log_dir else Path(tempfile.mkdtemp(prefix="odmm-"))
        self.delay_backend = delay_backend
        self.seed = seed
        self.echo = echo or (lambda _msg: None)
        self.net = None
        self.nodes: dict = {}
        self._iprs: dict[str, IPRoute] = {}
        self.supervisor: Supervisor | None = None
        self.emulator: LinkEmulator | None = None
        self._lock_fd: int | None = None
        self._started = False
        self.timings: dict[str, float] = {}

    # --- lifecycle ---------------------------------------------------------------------
    def __enter__(self) -> Testbed:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> Testbed:
        if os.geteuid() != 0:
            raise OdmmError("the testbed builds network namespaces and needs root")
        _raise_fd_limit()
        caps = kernel.capabilities()
        if not caps.mininet:
            raise KernelFeatureMissing(caps.notes["mininet"])
        # Every kernel feature the topology needs is checked before anything is built.
        self.emulator = LinkEmulator(self.topo, self.plan, caps, self.delay_backend, roaming=self.roaming)
        self._acquire_lock()
        leftovers = netns.ours()
        if leftovers:
            self._release_lock()
            raise BuildError(f"namespaces of an earlier run still exist ({', '.join(leftovers[:5])}...): run `odmm clean`")
        self._started = True
        atexit.register(self.stop)
        try:
            t0 = time.monotonic()
            self._build()
            t1 = time.monotonic()
            self._configure()
            t2 = time.monotonic()
            self.supervisor = Supervisor()
            self.emulator.start(self.ipr, self.popen_of, self.supervisor, self.log_dir, self.seed)
            t3 = time.monotonic()
            self.timings.update(nodes_links_s=t1 - t0, addresses_routes_s=t2 - t1, link_emulation_s=t3 - t2)
        except BaseException:
            self.stop()
            raise
        self.echo(f"testbed {self.topo.name}: {len(self.topo.nodes)} nodes, {len(self.topo.links)} links; "
                  f"{self.emulator.describe()}")
        return self

    def _acquire_lock(self) -> None:
        LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
        CTL_DIR.mkdir(parents=True, exist_ok=True)
        os.chmod(RUN_DIR, 0o755)
        os.chmod(CTL_DIR, 0o755)
        fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise BuildError(f"another odmm testbed is running (pid {owner}); wait for it or run `odmm clean`") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _build(self) -> None:
        from mininet.log import lg
        from mininet.net import Mininet

        lg.setLogLevel("error")
        os.environ[MARK_ENV] = str(os.getpid())
        self.net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False, waitConnected=False)
        for node in self.topo.nodes.values():
            host = self.net.addHost(node.name, ip=None)
            self.nodes[node.name] = host
            netns.attach(node.name, host.pid)
            out = host.cmd(_sysctls(node.role, self.access))
            if out.strip():
                raise BuildError(f"cannot configure {node.name}: {out.strip()}")
        for link in self.topo.links:
            ia = self.plan.interface(link.a, link.b)
            ib = self.plan.interface(link.b, link.a)
            self.net.addLink(self.nodes[link.a], self.nodes[link.b], intfName1=ia.name, intfName2=ib.name)
        if self.roaming:
            netns.create(LIMBO)

    def _configure(self) -> None:
        for name in self.topo.nodes:
            ipr = self.ipr(name)
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            if name in self.plan.loopbacks:
                ipr.addr("add", index=1, address=str(self.plan.loopbacks[name]), prefixlen=128, flags=IFA_F_NODAD)
            index = {}
            for itf in self.plan.interfaces[name]:
                idx = ipr.link_lookup(ifname=itf.name)[0]
                index[itf.name] = idx
                if not (self.roaming and self._is_access(itf)):  # gateway and node daemons own these
                    ipr.addr("add", index=idx, address=str(itf.address.ip), prefixlen=64, flags=IFA_F_NODAD)
                ipr.link("set", index=idx, state="up")
            routes = [r for r in self.routes[name] if not (self.roaming and self.topo.nodes[name].role == "mn")]
            add_routes(netns.name_of(name), [(str(r.dst.network_address), r.dst.prefixlen, str(r.via), index[r.dev])
                                             for r in routes])

    @property
    def roaming(self) -> bool:
        """Mobile nodes' access links move between gateways (gateway daemons run)."""
        return self.access != "static"

    def _is_access(self, itf) -> bool:
        return "mn" in (self.topo.nodes[itf.node].role, self.topo.nodes[itf.peer].role)

    def stop(self) -> None:
        """Tear everything down; safe to call twice and after a failed start."""
        if not self._started:
            return
        self._started = False
        errors = []
        if self.supervisor:
            self.supervisor.stop_all()
        for ipr in self._iprs.values():
            try:
                ipr.close()
            except Exception:  # a closed netns socket: nothing left to release
                pass
        self._iprs.clear()
        for host in self.nodes.values():
            try:
                host.terminate()
            except Exception as exc:
                errors.append(f"{host.name}: {exc}")
        names = [netns.name_of(n) for n in [*self.topo.nodes, LIMBO]]
        netns.kill_all_in([n for n in names if n in netns.ours()])
        for n in names:
            netns.remove(n)
        self.nodes.clear()
        self.net = None
        for sock in CTL_DIR.glob("*.sock"):
            sock.unlink(missing_ok=True)
        self._release_lock()
        if errors:
            self.echo("teardown warnings: " + "; ".join(errors))

    # --- access ------------------------------------------------------------------------
    def ipr(self, node: str) -> IPRoute:
        """A netlink socket inside ``node``'s namespace (cached)."""
        if node not in self._iprs:
            sock = netns.socket_in(netns.name_of(node), socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
            self._iprs[node] = IPRoute(fileno=sock.detach())
        return self._iprs[node]

    def popen_of(self, node: str) -> Callable[..., subprocess.Popen]:
        """``popen(argv, **kwargs)`` that runs inside ``node``'s namespace."""
        host = self.nodes[node]

        def popen(argv, **kwargs):
            return host.popen(argv, **kwargs)

        return popen

    def popen(self, node: str, argv: list[str], **kwargs) -> subprocess.Popen:
        return self.nodes[node].popen(argv, **kwargs)

    def run(self, node: str, argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run a command to completion inside ``node``'s namespace."""
        return subprocess.run(["ip", "netns", "exec", netns.name_of(node), *argv],
                              capture_output=True, text=True, timeout=timeout)

    def address(self, node: str) -> str:
        return str(self.plan.address(node))

    def check(self) -> None:
        """Raise DaemonDied if a supervised process (e.g. a delay element) has died."""
        if self.supervisor:
            self.supervisor.check()
