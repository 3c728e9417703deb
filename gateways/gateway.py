"""The serving gateway daemon (one per gateway namespace).

A gateway is the access router of the mobile nodes attached to it and a distributed anchor
for the prefixes it grants. Mobile nodes reach it over a point-to-point access link named
``acc-<node>``; the link arriving in (leaving) this namespace is the attach (detach).

On attach (mode ``ondemand``): grant the default-type prefix and advertise it at once;
register the node with the HA (PBU), learn its live prefixes and their anchors from the PBA,
update each anchor gateway (PBU), install tunnels, forward routes and reverse rules, and only
then advertise the moved prefixes (old anchors' GRACEFUL prefixes deprecated).
Requests (RS with on-demand options) are answered by a unicast RA with typed PIOs.
Modes ``mobile-ip`` (every prefix anchored at the HA, plain RAs) and ``none`` (a plain local
prefix, no signalling) serve the baseline experiments; ``policy.legacy`` makes an on-demand
gateway look like a legacy one (no typed PIOs, no capability option).

Usage: python -m gateways.gateway CONFIG_JSON
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from gateways.config import DaemonConfig
from gateways.daemon import Daemon
from gateways.pool import PoolExhausted, PrefixPool
from odmm.addrtypes import AddressType
from odmm.eventloop import Timer, daemon_main
from odmm.linkmon import LinkMonitor
from odmm.ndsocket import NDSocket
from odmm.wire import (
    BA_ACCEPTED,
    BA_NOT_AUTHORIZED_FOR_PREFIX,
    CTX_DORMANT,
    CTX_GRACE,
    CTX_NEW,
    CTX_RELEASE,
    INFINITE,
    STATUS_COULD_NOT_ASSIGN,
    STATUS_GRANTED,
    STATUS_NOT_SUPPORTED,
    Binding,
    Held,
    PrefixContext,
    PrefixInfo,
    Request,
    Response,
    RouterAdvertisement,
    RouterSolicitation,
    WireError,
    build_ra,
    parse_nd,
)

ACCESS_PREFIX = "acc-"
ALL_NODES = "ff02::1"
WITHDRAW_ADVERTS = 3  # RAs that carry a withdrawn prefix with lifetime 0
PRECREATE_TUNNELS = 16  # up to this many peers, every tunnel exists from the start


def mn_id_of(ifname: str) -> str:
    return f"{ifname[len(ACCESS_PREFIX):]}@odmm"


@dataclass
class Prefix:
    """A prefix of an attached node, as this gateway serves it."""

    net: IPv6Network
    addrtype: AddressType
    anchor: IPv6Address
    active: bool = True               # advertised (a dormant FIXED prefix is not)
    valid_until: float | None = None  # a GRACEFUL prefix on its grace period
    timer: Timer | None = None


@dataclass
class Anchored:
    """A prefix from this gateway's pool, wherever its node is now."""

    mn_id: str
    addrtype: AddressType
    serving: IPv6Address | None      # the gateway the node is attached to (None: detached)
    grace_until: float | None = None
    since: float = 0.0               # when the route towards ``serving`` was installed
    timer: Timer | None = None


@dataclass
class Attachment:
    mn_id: str
    ifname: str
    ifindex: int
    mac: str | None = None           # the node's, from its RS
    lladdr: str | None = None
    prefixes: dict[IPv6Network, Prefix] = field(default_factory=dict)
    withdrawn: dict[IPv6Network, tuple[AddressType, int]] = field(default_factory=dict)
    timeline: dict[str, float] = field(default_factory=dict)
    ra_timer: Timer | None = None
    refresh_timer: Timer | None = None
    ready: bool = False              # moved prefixes installed and advertised
    gw_mac: str | None = None        # this end of the access link (the RA's source link-layer address)


class Gateway(Daemon):
    def __init__(self, cfg: DaemonConfig) -> None:
        super().__init__(cfg)
        self.policy = cfg.policy
        self.offered = set(self.policy.offered())
        self.pool = PrefixPool(cfg.block_net, self.policy.pool_size)
        self.ha = IPv6Address(cfg.ha) if cfg.ha else None
        self.attached: dict[str, Attachment] = {}
        self.anchored: dict[IPv6Network, Anchored] = {}
        self.handoffs: list[dict] = []
        self._warned_untracked_na = False
        self.counters = {"ra_tx": 0, "rs_rx": 0, "rs_dropped": 0, "requests": 0, "granted": 0,
                         "not_supported": 0, "could_not_assign": 0, "releases": 0, "bad_releases": 0,
                         "attach": 0, "detach": 0}
        self.nd = NDSocket({133})
        self.loop.add_reader(self.nd, self._on_nd)
        self.links = LinkMonitor()
        self.loop.add_reader(self.links, self._on_links)
        if cfg.mode != "none":  # tunnels to the HA and the other gateways, off the critical path
            peers = [a for n, a in cfg.peers.items() if n != cfg.name]
            for addr in peers if len(peers) <= PRECREATE_TUNNELS else ([cfg.ha] if cfg.ha else []):
                self.tunnels.ensure(addr)
        for link in self.ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            if name and name.startswith(ACCESS_PREFIX):
                self.loop.call_later(0, lambda n=name, i=link["index"]: self.attach(n, i))

    @property
    def ondemand(self) -> bool:
        return self.cfg.mode == "ondemand" and not self.policy.legacy

    # --- link events ---------------------------------------------------------------------
    def _on_links(self) -> None:
        for ev in self.links.events():
            if not ev.ifname.startswith(ACCESS_PREFIX):
                continue
            if ev.kind == "new" and ev.ifname not in self.attached:
                self.attach(ev.ifname, ev.ifindex)
            elif ev.kind == "del" and ev.ifname in self.attached:
                self.detach(ev.ifname)

    def attach(self, ifname: str, ifindex: int) -> None:
        now = self.loop.now()
        mn_id = mn_id_of(ifname)
        self.counters["attach"] += 1
        # The access link keeps its MAC address, and so its link-local address, on every
        # gateway: the node keeps one default router across moves (RFC 5213 section 6.8).
        try:
            self.ipr.link("set", index=ifindex, state="up")
        except Exception as exc:
            self.log(f"attach {ifname}: cannot bring the access link up: {exc}")
            return
        self._accept_untracked_na(ifname)
        att = Attachment(mn_id, ifname, ifindex)
        att.timeline.update(mn_id=mn_id, ifname=ifname, attach=now)
        self.handoffs.append(att.timeline)  # the live record: later steps are added to it
        self.attached[ifname] = att
        self.log(f"attach {mn_id} on {ifname}")
        if self.cfg.mode == "mobile-ip":  # everything comes from the HA
            self._register(att, [])
        else:
            try:
                p = self._grant_local(att, self._default_type(), route=False)
            except PoolExhausted as exc:
                self.log(f"attach {mn_id}: no default prefix: {exc}")
                p = None
            if self.cfg.mode == "none" or self.ha is None:
                self._local_ready(att, p)
                self._mark_ready(att)
            else:  # signalling first (the critical path); the local prefix's route and RA next,
                # after whatever the node has sent meanwhile (its RS lists prefixes to re-anchor)
                self._register(att, [self._context(p)] if p else [])
                self.loop.call_later(0, lambda: self._local_ready(att, p, advertise=True))
        att.ra_timer = self.loop.call_later(self.policy.ra_interval_s, lambda: self._periodic_ra(att))

    def _accept_untracked_na(self, ifname: str) -> None:
        """RFC 9131 on the access link: the node's unsolicited NAs create neighbour entries, so
        the first packet to each of its addresses after a move is not held for ND."""
        try:
            with open(f"/proc/sys/net/ipv6/conf/{ifname}/accept_untracked_na", "w") as f:
                f.write("1")
        except OSError as exc:
            if not self._warned_untracked_na:
                self._warned_untracked_na = True
                self.log(f"cannot accept untracked NAs on {ifname} (RFC 9131; kernel >= 5.19): {exc.strerror}; "
                         "the first packet to each address after a move waits for neighbour discovery")

    def _local_ready(self, att: Attachment, p: Prefix | None, advertise: bool = False) -> None:
        if self.attached.get(att.ifname) is not att:
            return
        if p is not None:
            self.tunnels.route_local(p.net, att.ifindex)
        if advertise:
            self.send_ra(att)

    def _default_type(self) -> AddressType:
        try:
            t = AddressType[self.policy.default_type]
        except KeyError:
            t = AddressType.NON_PERSISTENT
        return t

    def detach(self, ifname: str) -> None:
        att = self.attached.pop(ifname)
        self.counters["detach"] += 1
        for t in (att.ra_timer, att.refresh_timer):
            if t:
                t.cancel()
        self.tunnels.unreverse_iif(ifname)
        now = self.loop.now()
        for p in att.prefixes.values():
            if p.timer:
                p.timer.cancel()
            entry = self.anchored.get(p.net)
            if entry is None:
                continue  # anchored elsewhere: its route left with the device
            if p.addrtype == AddressType.SESSION_LASTING:
                entry.serving = None
            elif p.addrtype == AddressType.GRACEFUL_REPLACEMENT:
                entry.serving = None
                self._start_grace(p.net, entry, now)
            else:  # NON_PERSISTENT (and the local prefix of a legacy network) dies with the move
                self._free(p.net)
        self.log(f"detach {att.mn_id} from {ifname}")
        if self.ha is not None and self.cfg.mode != "none":
            self.signaller.send_update(self.ha, Binding(False, 0, 0, att.mn_id), lambda ba: None)
        self.tunnels.remove_unused()

    # --- prefixes ----------------------------------------------------------------------------
    def _grant_local(self, att: Attachment, t: AddressType, route: bool = True) -> Prefix:
        net = self.pool.allocate()
        p = Prefix(net, t, self.cfg.addr)
        att.prefixes[net] = p
        self.anchored[net] = Anchored(att.mn_id, t, self.cfg.addr)
        if route:
            self.tunnels.route_local(net, att.ifindex)
        self.log(f"granted {t.name} {net} to {att.mn_id}")
        return p

    def _free(self, net: IPv6Network) -> None:
        entry = self.anchored.pop(net, None)
        if entry and entry.timer:
            entry.timer.cancel()
        self.tunnels.unroute(net)
        self.pool.free(net)

    def _start_grace(self, net: IPv6Network, entry: Anchored, now: float) -> None:
        if entry.grace_until is None:
            entry.grace_until = now + self.policy.grace_s
            entry.timer = self.loop.call_at(entry.grace_until, lambda: self._grace_over(net))
            self.log(f"grace period of {net} ({entry.mn_id}) ends in {self.policy.grace_s:g} s")

    def _grace_over(self, net: IPv6Network) -> None:
        entry = self.anchored.get(net)
        if entry is None or entry.serving == self.cfg.addr:
            return
        self.log(f"grace period of {net} ({entry.mn_id}) over: withdrawn")
        self._free(net)
        self.tunnels.remove_unused()
        if self.ha is not None:
            ctx = PrefixContext(net, entry.addrtype, self.cfg.addr, 0, CTX_RELEASE)
            self.signaller.send_update(self.ha, Binding(False, 0, self.cfg.signalling.binding_lifetime_s,
                                                        entry.mn_id, contexts=[ctx], home=False), lambda ba: None)

    def _context(self, p: Prefix, flags: int = 0) -> PrefixContext:
        if not p.active:
            flags |= CTX_DORMANT
        return PrefixContext(p.net, p.addrtype, p.anchor, self._lifetime(p)[0], flags)

    def _lifetime(self, p: Prefix) -> tuple[int, int]:
        """(valid, preferred) seconds to advertise."""
        if p.addrtype == AddressType.FIXED:
            return INFINITE, INFINITE
        if p.valid_until is not None:  # grace running: deprecated, valid for what is left
            return max(0, int(p.valid_until - self.loop.now())), 0
        return self.policy.valid_s, self.policy.preferred_s

    # --- registration with the HA and the anchors --------------------------------------------
    def _register(self, att: Attachment, contexts: list[PrefixContext]) -> None:
        att.timeline["pbu_ha"] = self.loop.now()
        lifetime = self.cfg.signalling.binding_lifetime_s
        self.signaller.send_update(self.ha, Binding(False, 0, lifetime, att.mn_id, contexts=contexts),
                                   lambda ba, a=att: self._registered(a, ba))

    def _registered(self, att: Attachment, ba: Binding | None) -> None:
        """The HA's answer: serve every live prefix at once (the HA has already told the
        anchors where the node went), then confirm with each anchor gateway, which also
        reports how much grace a GRACEFUL prefix has left."""
        if self.attached.get(att.ifname) is not att:
            return  # detached meanwhile
        now = self.loop.now()
        att.timeline["pba_ha"] = now
        if ba is None or ba.status != BA_ACCEPTED:
            self.log(f"registration of {att.mn_id} failed: {'no answer' if ba is None else f'status {ba.status}'}")
            self._mark_ready(att)
            return
        att.refresh_timer = self.loop.call_later(ba.lifetime_s / 2 or 30, lambda: self._refresh(att))
        by_anchor: dict[IPv6Address, list[PrefixContext]] = {}
        for ctx in ba.contexts:
            if ctx.prefix in att.prefixes:
                continue
            if ctx.anchor == self.ha:  # FIXED
                self._install(att, ctx, self.ha)
            elif ctx.anchor == self.cfg.addr:  # the node came back to its anchor
                self._welcome_back(att, ctx)
            elif ctx.addrtype in (AddressType.SESSION_LASTING, AddressType.GRACEFUL_REPLACEMENT):
                # a graceful prefix is advertised once its anchor said how much grace is left
                self._install(att, ctx, ctx.anchor, active=ctx.addrtype == AddressType.SESSION_LASTING)
                by_anchor.setdefault(ctx.anchor, []).append(ctx)
        for hnp in ba.hnps:  # mobile-ip: a plain home network prefix
            if hnp not in att.prefixes:
                self._install(att, PrefixContext(hnp, AddressType.FIXED, self.ha), self.ha)
        self._mark_ready(att)
        for anchor, ctxs in by_anchor.items():
            att.timeline.setdefault("pbu_anchor", self.loop.now())
            self.signaller.send_update(
                anchor, Binding(False, 0, self.cfg.signalling.binding_lifetime_s, att.mn_id, contexts=ctxs, home=False),
                lambda reply, a=anchor: self._anchor_answered(att, a, reply))

    def _anchor_answered(self, att: Attachment, anchor: IPv6Address, ba: Binding | None,
                         sent: list[PrefixContext] | None = None) -> None:
        if self.attached.get(att.ifname) is not att:
            return
        att.timeline["pba_anchor"] = self.loop.now()
        if ba is None or ba.status != BA_ACCEPTED:
            self.log(f"anchor {anchor} refused {att.mn_id}: {'no answer' if ba is None else f'status {ba.status}'}")
            for ctx in sent or []:  # claimed by the node, not confirmed by its anchor: undo
                if ctx.prefix in att.prefixes:
                    self._expire(att, ctx.prefix)
            return
        for ctx in ba.contexts:
            p = att.prefixes.get(ctx.prefix)
            if p is None:
                continue
            if ctx.addrtype == AddressType.GRACEFUL_REPLACEMENT and ctx.lifetime != INFINITE:
                if p.timer:
                    p.timer.cancel()
                p.valid_until = self.loop.now() + ctx.lifetime
                p.timer = self.loop.call_at(p.valid_until, lambda n=ctx.prefix: self._expire(att, n))
            p.active = True
        self.send_ra(att)

    def _install(self, att: Attachment, ctx: PrefixContext, anchor: IPv6Address, active: bool = True) -> None:
        """Serve a prefix anchored at ``anchor`` (HA or another gateway) on this access link."""
        p = Prefix(ctx.prefix, ctx.addrtype, anchor, active=active and not (ctx.flags & CTX_DORMANT))
        att.prefixes[ctx.prefix] = p
        self.tunnels.route_local(ctx.prefix, att.ifindex)
        self.tunnels.reverse(ctx.prefix, att.ifname, anchor)

    def _welcome_back(self, att: Attachment, ctx: PrefixContext) -> None:
        entry = self.anchored.get(ctx.prefix)
        if entry is None or entry.mn_id != att.mn_id:
            return
        if entry.timer:
            entry.timer.cancel()
        entry.serving, entry.grace_until, entry.timer = self.cfg.addr, None, None
        att.prefixes[ctx.prefix] = Prefix(ctx.prefix, ctx.addrtype, self.cfg.addr)
        self.tunnels.route_local(ctx.prefix, att.ifindex)

    def _expire(self, att: Attachment, net: IPv6Network) -> None:
        p = att.prefixes.pop(net, None)
        if p is None:
            return
        self.log(f"{p.addrtype.name} {net} of {att.mn_id} expired")
        self.tunnels.unreverse(net, att.ifname)
        self.tunnels.unroute(net)
        self.tunnels.remove_unused()

    def _mark_ready(self, att: Attachment) -> None:
        now = self.loop.now()
        att.timeline["ready"] = now
        att.ready = True
        self.send_ra(att)
        att.timeline["ra"] = self.loop.now()

    def _refresh(self, att: Attachment) -> None:
        if self.attached.get(att.ifname) is not att:
            return
        lifetime = self.cfg.signalling.binding_lifetime_s
        ctxs = [self._context(p) for p in att.prefixes.values() if p.anchor == self.cfg.addr]

        def done(ba: Binding | None) -> None:
            if self.attached.get(att.ifname) is att:
                att.refresh_timer = self.loop.call_later(lifetime / 2, lambda: self._refresh(att))

        self._tell_ha(att, ctxs, done)

    def _tell_ha(self, att: Attachment, ctxs: list[PrefixContext], then: Callable | None = None) -> None:
        if self.ha is None:
            return
        self.signaller.send_update(self.ha, Binding(False, 0, self.cfg.signalling.binding_lifetime_s, att.mn_id,
                                                    contexts=ctxs), then or (lambda ba: None))

    # --- anchor role -------------------------------------------------------------------------
    def on_update(self, bu: Binding, peer: IPv6Address) -> Binding:
        out = []
        for ctx in bu.contexts:
            entry = self.anchored.get(ctx.prefix)
            if entry is None or entry.mn_id != bu.mn_id:
                self.log(f"PBU from {peer}: {ctx.prefix} is not anchored here for {bu.mn_id}")
                return Binding(True, bu.seq, 0, bu.mn_id, status=BA_NOT_AUTHORIZED_FOR_PREFIX)
        for ctx in bu.contexts:
            entry = self.anchored[ctx.prefix]
            if ctx.flags & CTX_RELEASE:
                self.log(f"{ctx.prefix} of {bu.mn_id} released (via {peer})")
                self._free(ctx.prefix)
                continue
            serving = bu.serving or peer  # the HA names the node's new gateway
            if serving == self.cfg.addr:
                continue  # the node is back here: served locally since its attach
            if entry.serving != serving:
                entry.since = self.loop.now()
            entry.serving = serving
            if not (self.policy.fault == "no-anchor-tunnel" and entry.addrtype == AddressType.SESSION_LASTING):
                self.tunnels.route_via(ctx.prefix, serving)
            flags, lifetime = 0, self.policy.valid_s
            if entry.addrtype == AddressType.GRACEFUL_REPLACEMENT:
                self._start_grace(ctx.prefix, entry, self.loop.now())
                flags, lifetime = CTX_GRACE, max(0, math.ceil(entry.grace_until - self.loop.now()))
            out.append(PrefixContext(ctx.prefix, entry.addrtype, self.cfg.addr, lifetime, flags))
            self.log(f"anchoring {entry.addrtype.name} {ctx.prefix} of {bu.mn_id} towards {self.cfg.peer_name(serving)}")
        self.tunnels.remove_unused()
        return Binding(True, bu.seq, bu.lifetime_s, bu.mn_id, contexts=out)

    # --- router solicitations and advertisements --------------------------------------------
    def _by_ifindex(self, ifindex: int) -> Attachment | None:
        return next((a for a in self.attached.values() if a.ifindex == ifindex), None)

    def _on_nd(self) -> None:
        for data, src, ifindex, hops in self.nd.receive():
            att = self._by_ifindex(ifindex)
            if att is None:
                continue  # not an access link: nothing to serve there
            self.counters["rs_rx"] += 1
            if hops != 255:
                self.counters["rs_dropped"] += 1
                self.log(f"RS on {att.ifname} with hop limit {hops} dropped (must be 255)")
                continue
            try:
                rs = parse_nd(data)
            except WireError as exc:
                self.counters["rs_dropped"] += 1
                self.log(f"malformed RS on {att.ifname} dropped: {exc}")
                continue
            if not isinstance(rs, RouterSolicitation):
                continue
            self._solicited(att, rs, src)

    def _solicited(self, att: Attachment, rs: RouterSolicitation, src: str) -> None:
        if rs.mac:
            att.mac = rs.mac
        if src != "::":
            att.lladdr = src
        if rs.mn_id and rs.mn_id != att.mn_id:
            self.log(f"RS on {att.ifname} claims {rs.mn_id}; the link says {att.mn_id} (kept)")
        responses: list[Response] = []
        if self.ondemand and rs.held:
            self._held(att, rs.held)
        if self.ondemand:
            for req in rs.requests:
                r = self._request(att, req)
                if r is not None:
                    responses.append(r)
            for rel in rs.releases:
                self._release(att, rel.prefix)
        att.timeline.setdefault("rs", self.loop.now())
        self.send_ra(att, responses, unicast=src if src != "::" else None)

    def _held(self, att: Attachment, held: list[Held]) -> None:
        """The node lists the prefixes it holds: update their anchors now, in parallel with the
        HA registration (which would name the same anchors one round trip later)."""
        by_anchor: dict[IPv6Address, list[PrefixContext]] = {}
        fixed: list[PrefixContext] = []
        for h in held:
            if h.prefix in att.prefixes or h.addrtype == AddressType.NON_PERSISTENT:
                continue
            anchor = self.cfg.anchor_of(h.prefix)
            if anchor is None:
                continue
            ctx = PrefixContext(h.prefix, h.addrtype, anchor)
            if h.addrtype == AddressType.FIXED:
                if anchor == self.ha:  # the HA learns of the move from the registration already sent
                    fixed.append(ctx)
                continue
            if anchor == self.cfg.addr:
                self._welcome_back(att, ctx)
                continue
            by_anchor.setdefault(anchor, []).append(ctx)
        for anchor, ctxs in by_anchor.items():  # signalling first: the anchor's route is the critical path
            att.timeline.setdefault("pbu_anchor", self.loop.now())
            self.signaller.send_update(
                anchor, Binding(False, 0, self.cfg.signalling.binding_lifetime_s, att.mn_id, contexts=ctxs, home=False),
                lambda reply, a=anchor, c=ctxs: self._anchor_answered(att, a, reply, c))
        for anchor, ctxs in by_anchor.items():
            for ctx in ctxs:
                self._install(att, ctx, anchor, active=ctx.addrtype == AddressType.SESSION_LASTING)
        for ctx in fixed:  # its downlink waits for the HA (a longer path) anyway
            self._install(att, ctx, self.ha)

    def _answer_later(self, att: Attachment, response: Response) -> None:
        if self.attached.get(att.ifname) is att:
            self.send_ra(att, [response], unicast=att.lladdr)

    def _request(self, att: Attachment, req: Request) -> Response | None:
        self.counters["requests"] += 1
        try:
            t = AddressType(req.addrtype)
        except ValueError:
            t = None
        if t is None or t == AddressType.UNTYPED or t not in self.offered:
            self.counters["not_supported"] += 1
            self.log(f"request {req.reqid} from {att.mn_id} for type {req.addrtype}: not supported")
            return Response(req.reqid, STATUS_NOT_SUPPORTED, req.addrtype)
        if t == AddressType.FIXED:
            return self._request_fixed(att, req)
        if not req.on_net:
            for p in att.prefixes.values():
                if p.addrtype == t and p.anchor == self.cfg.addr and p.active:
                    self.counters["granted"] += 1
                    return Response(req.reqid, STATUS_GRANTED, t)
        try:
            p = self._grant_local(att, t)
        except PoolExhausted as exc:
            self.counters["could_not_assign"] += 1
            self.log(f"request {req.reqid} from {att.mn_id} for {t.name}: {exc}")
            return Response(req.reqid, STATUS_COULD_NOT_ASSIGN, t)
        self.counters["granted"] += 1
        ctx = self._context(p)
        self.loop.call_later(0, lambda: self._tell_ha(att, [ctx]))  # after the answer has gone out
        return Response(req.reqid, STATUS_GRANTED, t)

    def _request_fixed(self, att: Attachment, req: Request) -> Response | None:
        fixed = [p for p in att.prefixes.values() if p.addrtype == AddressType.FIXED]
        if fixed and not req.on_net:
            p = fixed[0]
            if not p.active:
                p.active = True
                ctx = self._context(p)
                self.loop.call_later(0, lambda: self._tell_ha(att, [ctx]))
            self.counters["granted"] += 1
            return Response(req.reqid, STATUS_GRANTED, AddressType.FIXED)
        if self.ha is None:
            self.counters["could_not_assign"] += 1
            return Response(req.reqid, STATUS_COULD_NOT_ASSIGN, AddressType.FIXED)
        new = PrefixContext(IPv6Network("::/64"), AddressType.FIXED, self.ha, INFINITE, CTX_NEW)

        def answered(ba: Binding | None) -> None:
            got = [c for c in (ba.contexts if ba and ba.status == BA_ACCEPTED else [])
                   if c.addrtype == AddressType.FIXED and c.prefix not in att.prefixes and not c.flags & CTX_DORMANT]
            if not got:
                self.counters["could_not_assign"] += 1
                self._answer_later(att, Response(req.reqid, STATUS_COULD_NOT_ASSIGN, AddressType.FIXED))
                return
            if self.attached.get(att.ifname) is att:
                self._install(att, got[0], self.ha)
            self.counters["granted"] += 1
            self._answer_later(att, Response(req.reqid, STATUS_GRANTED, AddressType.FIXED))

        self._tell_ha(att, [new], answered)
        return None

    def _release(self, att: Attachment, net: IPv6Network) -> None:
        p = att.prefixes.get(net)
        if p is None:
            self.counters["bad_releases"] += 1
            self.log(f"{att.mn_id} released {net}, which it does not hold: ignored")
            return
        if p.addrtype == AddressType.FIXED:
            self.counters["bad_releases"] += 1
            self.log(f"{att.mn_id} released FIXED {net}: FIXED prefixes are kept (policy)")
            return
        self.counters["releases"] += 1
        del att.prefixes[net]
        if p.timer:
            p.timer.cancel()
        self.tunnels.unreverse(net, att.ifname)
        ctx = PrefixContext(net, p.addrtype, p.anchor, 0, CTX_RELEASE)
        if p.anchor == self.cfg.addr:
            self._free(net)
        else:
            self.tunnels.unroute(net)
            self.signaller.send_update(p.anchor, Binding(False, 0, self.cfg.signalling.binding_lifetime_s,
                                                         att.mn_id, contexts=[ctx], home=False), lambda ba: None)
        self._tell_ha(att, [ctx])
        att.withdrawn[net] = (p.addrtype, WITHDRAW_ADVERTS)
        self.tunnels.remove_unused()
        self.log(f"{att.mn_id} released {p.addrtype.name} {net}")

    def advertisement(self, att: Attachment, responses: list[Response] | None = None) -> RouterAdvertisement:
        typed = self.ondemand
        prefixes = []
        for p in att.prefixes.values():
            if not p.active:
                continue
            valid, preferred = self._lifetime(p)
            prefixes.append(PrefixInfo(p.net, p.addrtype if typed else AddressType.UNTYPED, valid, preferred))
        for net, (t, left) in list(att.withdrawn.items()):
            prefixes.append(PrefixInfo(net, t if typed else AddressType.UNTYPED, 0, 0))
            if left <= 1:
                del att.withdrawn[net]
            else:
                att.withdrawn[net] = (t, left - 1)
        mac = self._mac(att)
        return RouterAdvertisement(self.policy.router_lifetime_s, mac, prefixes,
                                   frozenset(self.offered) if typed else None, responses or [])

    def _mac(self, att: Attachment) -> str | None:
        if att.gw_mac is None:
            try:
                att.gw_mac = self.ipr.get_links(att.ifindex)[0].get_attr("IFLA_ADDRESS")
            except Exception:
                return None
        return att.gw_mac

    def send_ra(self, att: Attachment, responses: list[Response] | None = None, unicast: str | None = None) -> None:
        data = build_ra(self.advertisement(att, responses))
        if self.nd.send(data, unicast or ALL_NODES, att.ifindex):
            self.counters["ra_tx"] += 1

    def _periodic_ra(self, att: Attachment) -> None:
        if self.attached.get(att.ifname) is not att:
            return
        self.send_ra(att)
        att.ra_timer = self.loop.call_later(self.policy.ra_interval_s, lambda: self._periodic_ra(att))

    # --- control -----------------------------------------------------------------------------
    def state(self) -> dict:
        now = self.loop.now()
        return {
            "name": self.cfg.name, "mode": self.cfg.mode, "address": self.cfg.address, "legacy": self.policy.legacy,
            "attached": [{
                "mn_id": a.mn_id, "ifname": a.ifname, "mac": a.mac, "lladdr": a.lladdr, "ready": a.ready,
                "timeline": a.timeline,
                "prefixes": [{"prefix": str(p.net), "type": p.addrtype.name, "anchor": str(p.anchor),
                              "active": p.active, "valid": self._lifetime(p)[0], "preferred": self._lifetime(p)[1]}
                             for p in a.prefixes.values()],
            } for a in self.attached.values()],
            "anchored": [{"prefix": str(n), "mn_id": e.mn_id, "type": e.addrtype.name,
                          "serving": str(e.serving) if e.serving else None,
                          "grace_left": max(0.0, e.grace_until - now) if e.grace_until else None,
                          "since": e.since}
                         for n, e in self.anchored.items()],
            "pool": {"block": str(self.pool.block), "in_use": self.pool.in_use, "size": self.pool.size},
            "tunnels": self.tunnels.stats(),
            "counters": {**self.counters, **self.signaller.counters},
            "handoffs": self.handoffs,
        }


def main(argv: list[str] | None = None) -> int:
    return daemon_main(argv, "gateways.gateway", lambda path: Gateway(DaemonConfig.load(path)).run())


if __name__ == "__main__":
    sys.exit(main())
