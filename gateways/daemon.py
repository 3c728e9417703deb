"""What the gateway and Home Agent daemons share: config, loop, log, netlink, tunnels,
signalling and the control socket."""

from __future__ import annotations

import sys
import time
from ipaddress import IPv6Address

from pyroute2 import IPRoute

from gateways.config import DaemonConfig
from gateways.signalling import Signaller
from gateways.tunnels import TunnelManager
from odmm.control import ControlServer, Peer
from odmm.eventloop import Loop, freeze_heap
from odmm.wire import BA_PROHIBITED, Binding


class Daemon:
    def __init__(self, cfg: DaemonConfig) -> None:
        self.cfg = cfg
        self.loop = Loop()
        self.loop.on_error = lambda exc: self.log(f"internal error (daemon keeps running): {type(exc).__name__}: {exc}")
        self.ipr = IPRoute()
        self.tunnels = TunnelManager(self.ipr, cfg.addr, cfg.tunnel_ids.get(cfg.address, 0), cfg.tunnel_ids,
                                     cfg.tunnel_backend)
        self.signaller = Signaller(self.loop, cfg.addr, cfg.signalling, self.log, self._checked_update)
        self.control = ControlServer(self.loop, cfg.control, self._control) if cfg.control else None
        self.started = time.monotonic()

    def log(self, msg: str) -> None:
        sys.stderr.write(f"{time.monotonic():.6f} {self.cfg.name}: {msg}\n")
        sys.stderr.flush()

    def known_peer(self, addr: IPv6Address) -> bool:
        return self.cfg.peer_name(addr) is not None

    def _checked_update(self, bu: Binding, peer: IPv6Address) -> Binding:
        if not self.known_peer(peer):
            self.log(f"PBU from unknown node {peer} for {bu.mn_id}: administratively prohibited")
            return Binding(True, bu.seq, 0, bu.mn_id, status=BA_PROHIBITED)
        return self.on_update(bu, peer)

    def on_update(self, bu: Binding, peer: IPv6Address) -> Binding:
        raise NotImplementedError

    def _control(self, req: dict, peer: Peer) -> dict:
        cmd = req["cmd"]
        if cmd == "ping":
            return {"name": self.cfg.name, "role": self.cfg.role, "mode": self.cfg.mode}
        if cmd == "state":
            return self.state()
        raise ValueError(f"unknown command {cmd!r} (ping, state)")

    def state(self) -> dict:
        raise NotImplementedError

    def run(self) -> None:
        self.loop.stop_on_signals()
        self.log(f"scheduling: {self.loop.raise_priority()}")
        freeze_heap()
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        try:
            self.loop.run()
        finally:
            if self.control:
                self.control.close()
            self.log("stopped")
