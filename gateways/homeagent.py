"""The Home Agent daemon: FIXED prefixes and the authoritative mobility context of each node.

Binding cache: node -> serving gateway, binding lifetime, and every live prefix with its type
and anchor (FIXED at the HA; SESSION_LASTING / GRACEFUL_REPLACEMENT / NON_PERSISTENT at the
gateway that granted them). A gateway registers an attaching node (PBU) and learns from the
PBA which prefixes to serve and whom to ask; the HA tunnels the node's FIXED prefixes to the
serving gateway. In ``ondemand`` mode a node's first FIXED prefix is assigned at its first
registration but stays dormant (not advertised) until the node asks for FIXED; in
``mobile-ip`` mode it is the node's active home network prefix from the start.

Usage: python -m gateways.homeagent CONFIG_JSON
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from gateways.config import DaemonConfig
from gateways.daemon import Daemon
from gateways.pool import PoolExhausted, PrefixPool
from odmm.addrtypes import AddressType
from odmm.eventloop import Timer, daemon_main
from odmm.wire import (
    BA_ACCEPTED,
    BA_INSUFFICIENT_RESOURCES,
    CTX_DORMANT,
    CTX_GRACE,
    CTX_NEW,
    CTX_RELEASE,
    INFINITE,
    Binding,
    PrefixContext,
)


@dataclass
class Known:
    """A prefix of a node as the HA knows it."""

    net: IPv6Network
    addrtype: AddressType
    anchor: IPv6Address
    lifetime: int = INFINITE
    updated: float = 0.0
    flags: int = 0

    def left(self, now: float) -> int:
        if self.lifetime == INFINITE:
            return INFINITE
        return max(0, int(self.lifetime - (now - self.updated)))


@dataclass
class BindingEntry:
    mn_id: str
    serving: IPv6Address | None = None
    expires: float | None = None
    prefixes: dict[IPv6Network, Known] = field(default_factory=dict)
    timer: Timer | None = None
    registrations: int = 0


class HomeAgent(Daemon):
    def __init__(self, cfg: DaemonConfig) -> None:
        super().__init__(cfg)
        self.pool = PrefixPool(cfg.block_net, cfg.ha_pool_size)
        self.cache: dict[str, BindingEntry] = {}
        for name, addr in cfg.peers.items():  # tunnels to every gateway, off the critical path
            if name != cfg.name:
                self.tunnels.ensure(addr)
        self.counters = {"registrations": 0, "deregistrations": 0, "handoffs": 0, "expired": 0,
                         "fixed_assigned": 0, "fixed_refused": 0, "anchor_notifications": 0}

    def _fixed(self, entry: BindingEntry) -> list[Known]:
        return [k for k in entry.prefixes.values() if k.addrtype == AddressType.FIXED]

    def _assign_fixed(self, entry: BindingEntry, dormant: bool) -> Known | None:
        try:
            net = self.pool.allocate()
        except PoolExhausted as exc:
            self.counters["fixed_refused"] += 1
            self.log(f"no FIXED prefix for {entry.mn_id}: {exc}")
            return None
        k = Known(net, AddressType.FIXED, self.cfg.addr, INFINITE, self.loop.now(), CTX_DORMANT if dormant else 0)
        entry.prefixes[net] = k
        self.counters["fixed_assigned"] += 1
        self.log(f"assigned FIXED {net} to {entry.mn_id}{' (dormant)' if dormant else ''}")
        return k

    def on_update(self, bu: Binding, peer: IPv6Address) -> Binding:
        now = self.loop.now()
        entry = self.cache.get(bu.mn_id)
        if bu.lifetime_s == 0:  # deregistration by the gateway the node left
            self.counters["deregistrations"] += 1
            if entry and entry.serving == peer:
                self._unbind(entry)
                self.log(f"{bu.mn_id} deregistered by {self.cfg.peer_name(peer)}")
            return Binding(True, bu.seq, 0, bu.mn_id)
        if entry is None:
            entry = self.cache[bu.mn_id] = BindingEntry(bu.mn_id)
        if not bu.home:  # an anchor updating its prefixes (e.g. a grace period ended)
            self._apply_contexts(entry, bu, now)
            return Binding(True, bu.seq, bu.lifetime_s, bu.mn_id)
        self.counters["registrations"] += 1
        moved = entry.serving != peer
        if moved:
            if entry.serving is not None:
                self.counters["handoffs"] += 1
            for net, k in list(entry.prefixes.items()):  # non-persistent prefixes die at a move
                if k.addrtype == AddressType.NON_PERSISTENT and k.anchor != peer:
                    del entry.prefixes[net]
            entry.serving = peer
            self.log(f"{bu.mn_id} now served by {self.cfg.peer_name(peer)}")
        entry.registrations += 1
        entry.expires = now + bu.lifetime_s
        if entry.timer:
            entry.timer.cancel()
        entry.timer = self.loop.call_at(entry.expires, lambda e=entry: self._expire(e))
        if not self._fixed(entry):
            self._assign_fixed(entry, dormant=self.cfg.mode == "ondemand")
        status = self._apply_contexts(entry, bu, now)
        for k in self._fixed(entry):
            self.tunnels.route_via(k.net, peer)
        if moved:  # after the PBA has gone out: the new gateway's answer comes first
            self.loop.call_later(0, lambda: self._notify_anchors(entry, peer, now))
        contexts = [PrefixContext(k.net, k.addrtype, k.anchor, k.left(now), k.flags) for k in entry.prefixes.values()
                    if k.left(now) > 0]
        hnps = [k.net for k in self._fixed(entry) if not k.flags & CTX_DORMANT]
        return Binding(True, bu.seq, bu.lifetime_s, bu.mn_id, status=status, hnps=hnps, contexts=contexts)

    def _apply_contexts(self, entry: BindingEntry, bu: Binding, now: float) -> int:
        """Record what a gateway reports about the node's prefixes; returns the BA status."""
        status = BA_ACCEPTED
        for ctx in bu.contexts:
            if ctx.addrtype == AddressType.FIXED and ctx.flags & CTX_NEW:
                if self._assign_fixed(entry, dormant=False) is None:
                    status = BA_INSUFFICIENT_RESOURCES
            elif ctx.flags & CTX_RELEASE:
                k = entry.prefixes.get(ctx.prefix)
                if k is not None and k.addrtype != AddressType.FIXED:
                    del entry.prefixes[ctx.prefix]
            elif ctx.addrtype == AddressType.FIXED:
                k = entry.prefixes.get(ctx.prefix)
                if k is not None and not ctx.flags & CTX_DORMANT:
                    k.flags &= ~CTX_DORMANT
            else:
                entry.prefixes[ctx.prefix] = Known(ctx.prefix, ctx.addrtype, ctx.anchor, ctx.lifetime, now,
                                                   ctx.flags & CTX_GRACE)
        return status

    def _notify_anchors(self, entry: BindingEntry, serving: IPv6Address, now: float) -> None:
        """Tell every gateway anchoring a session-lasting or graceful prefix of the node where
        it went, in parallel with the PBA to the new gateway: the anchors' tunnels are then
        ready after one signalling path (new gateway -> HA -> anchor), not two round trips."""
        by_anchor: dict[IPv6Address, list[PrefixContext]] = {}
        for k in entry.prefixes.values():
            if k.addrtype in (AddressType.SESSION_LASTING, AddressType.GRACEFUL_REPLACEMENT) \
                    and k.anchor not in (self.cfg.addr, serving):
                by_anchor.setdefault(k.anchor, []).append(PrefixContext(k.net, k.addrtype, k.anchor, k.left(now)))
        for anchor, ctxs in by_anchor.items():
            self.counters["anchor_notifications"] += 1
            bu = Binding(False, 0, self.cfg.signalling.binding_lifetime_s, entry.mn_id, contexts=ctxs, serving=serving,
                         home=False)
            self.signaller.send_update(anchor, bu, lambda ba, a=anchor: self._anchor_acked(entry.mn_id, a, ba))

    def _anchor_acked(self, mn_id: str, anchor: IPv6Address, ba: Binding | None) -> None:
        if ba is None or ba.status != BA_ACCEPTED:
            self.log(f"anchor {self.cfg.peer_name(anchor)} did not accept the move of {mn_id}: "
                     f"{'no answer' if ba is None else f'status {ba.status}'}")

    def _unbind(self, entry: BindingEntry) -> None:
        entry.serving = None
        entry.expires = None
        if entry.timer:
            entry.timer.cancel()
            entry.timer = None
        for k in self._fixed(entry):
            self.tunnels.unroute(k.net)
        self.tunnels.remove_unused()

    def _expire(self, entry: BindingEntry) -> None:
        if entry.expires is not None and self.loop.now() >= entry.expires - 0.001:
            self.counters["expired"] += 1
            self.log(f"binding of {entry.mn_id} expired")
            self._unbind(entry)

    def state(self) -> dict:
        now = self.loop.now()
        return {
            "name": self.cfg.name, "mode": self.cfg.mode, "address": self.cfg.address,
            "bindings": [{
                "mn_id": e.mn_id, "serving": str(e.serving) if e.serving else None,
                "serving_name": self.cfg.peer_name(e.serving) if e.serving else None,
                "lifetime_left": max(0.0, e.expires - now) if e.expires else None,
                "prefixes": [{"prefix": str(k.net), "type": k.addrtype.name, "anchor": str(k.anchor),
                              "dormant": bool(k.flags & CTX_DORMANT), "valid": k.left(now)}
                             for k in e.prefixes.values()],
            } for e in self.cache.values()],
            "pool": {"block": str(self.pool.block), "in_use": self.pool.in_use, "size": self.pool.size},
            "tunnels": self.tunnels.stats(),
            "counters": {**self.counters, **self.signaller.counters},
        }


def main(argv: list[str] | None = None) -> int:
    return daemon_main(argv, "gateways.homeagent", lambda path: HomeAgent(DaemonConfig.load(path)).run())


if __name__ == "__main__":
    sys.exit(main())
