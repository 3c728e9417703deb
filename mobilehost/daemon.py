"""The mobile-node daemon: typed prefixes from RAs, addresses on demand, the socket API's server.

Runs in the mobile node's namespace. The kernel keeps accepting RAs for the default route and
on-link prefixes (accept_ra=1) but configures no address (autoconf=0): this daemon reads the
RAs itself, keeps the table of typed prefixes, and adds and removes addresses with pyroute2.

- ``setsc`` (control command) returns a source address of the wanted type: an existing one
  unless ON_NET, else a new prefix requested from the serving gateway (RS with a request,
  retransmitted with back-off). Errors: EAI_REQUIREDIPNOTSUPPORTED (legacy network, type not
  offered), EAI_REQUIREDIPFAILED (refused, timed out, detached), EPERM (policy).
- Legacy applications: every address whose type is not the policy's default type is
  deprecated (preferred lifetime 0), so the kernel's RFC 6724 rule 3 picks the default type.
- A move (carrier down/up): NON_PERSISTENT addresses of the old network go at once; the rest
  is kept while the new gateway advertises it (GRACEFUL deprecated, removed by the kernel when
  its valid lifetime, the grace left, runs out). Right after the RS, one unsolicited NA per
  kept address (RFC 9131) lets the new gateway's kernel know the node's link-layer address
  before the first packet for it arrives, instead of resolving it then (~4 ms on `basic`).
- SESSION_LASTING prefixes are released (RS release option) once no socket has used the
  address for ``release_hold_s``, judged from the kernel's socket tables.
- RAs not from the attached router, or with a hop limit other than 255, are ignored.

Usage: python -m mobilehost.daemon CONFIG_JSON
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network

from pyroute2 import IPRoute

from mobilehost.api import EAI_REQUIREDIPFAILED, EAI_REQUIREDIPNOTSUPPORTED, ERROR_NAMES
from mobilehost.config import MobileHostConfig
from mobilehost.sockets import addresses_in_use
from odmm.addrtypes import AddressType, UnknownAddressType, parse_type
from odmm.control import ControlServer, Deferred, Peer
from odmm.eventloop import Loop, Timer, daemon_main, freeze_heap
from odmm.linkmon import LinkMonitor
from odmm.ndsocket import ALL_ROUTERS, NDSocket
from odmm.wire import (
    INFINITE,
    STATUS_GRANTED,
    STATUS_NOT_SUPPORTED,
    Held,
    Release,
    Request,
    RouterAdvertisement,
    RouterSolicitation,
    WireError,
    build_gratuitous_na,
    build_rs,
    parse_nd,
)

NOT_SUPPORTED = ERROR_NAMES[EAI_REQUIREDIPNOTSUPPORTED]
FAILED = ERROR_NAMES[EAI_REQUIREDIPFAILED]
IFA_F_NODAD, IFA_F_OPTIMISTIC, IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x02, 0x04, 0x08, 0x40
DAD_WAIT_S = 5.0


def eui64_iid(mac: str) -> int:
    b = bytes(int(x, 16) for x in mac.split(":"))
    return int.from_bytes(bytes([b[0] ^ 0x02]) + b[1:3] + b"\xff\xfe" + b[3:6], "big")


@dataclass
class Entry:
    """A prefix the node holds, and its address."""

    prefix: IPv6Network
    addrtype: AddressType
    address: IPv6Address
    valid_until: float | None          # monotonic; None: infinite
    preferred_until: float | None
    first_seen: float
    unused_since: float | None = None
    requested: bool = False            # obtained by a request (eligible for release)
    held_until: float = 0.0            # not released before this (an application is still to bind it)

    def usable(self, now: float) -> bool:
        """Valid and not on a grace period (a deprecated GRACEFUL prefix is on its way out)."""
        if self.valid_until is not None and self.valid_until <= now:
            return False
        return not (self.addrtype == AddressType.GRACEFUL_REPLACEMENT and self.preferred_until is not None
                    and self.preferred_until <= now)


@dataclass
class Pending:
    reqid: int
    addrtype: AddressType
    on_net: bool
    known: set[IPv6Network]
    done: Deferred
    tries: int = 0
    timeout: float = 0.0
    timer: Timer | None = None
    sent_at: float = 0.0


@dataclass
class Counters:
    ra_rx: int = 0
    ra_ignored: int = 0
    rs_tx: int = 0
    na_tx: int = 0
    requests: int = 0
    granted: int = 0
    refused: int = 0
    timeouts: int = 0
    releases: int = 0
    reused: int = 0
    moves: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    attachments: list[dict] = field(default_factory=list)  # carrier up, RS sent, first RA (monotonic)


class MobileHost:
    def __init__(self, cfg: MobileHostConfig) -> None:
        self.cfg = cfg
        self.policy = cfg.policy
        self.loop = Loop()
        self.loop.on_error = lambda exc: self.log(f"internal error (daemon keeps running): {type(exc).__name__}: {exc}")
        self.ipr = IPRoute()
        idx = self.ipr.link_lookup(ifname=cfg.ifname)
        if not idx:
            raise SystemExit(f"mobilehost: no interface {cfg.ifname}")
        self.ifindex = idx[0]
        link = self.ipr.get_links(self.ifindex)[0]
        self.mac = link.get_attr("IFLA_ADDRESS")
        self.carrier = bool(link["flags"] & 0x10000)
        self.iid = eui64_iid(self.mac)
        self.entries: dict[IPv6Network, Entry] = {}
        self.capability: frozenset[AddressType] | None = None
        self.router: str | None = None      # link-local of the attached gateway
        self.seen_ra = False
        self.pending: dict[int, Pending] = {}
        self.waiting_ra: list[Deferred] = []
        self.ids = itertools.count(1)
        self.counters = Counters()
        self.attached_at = time.monotonic() if self.carrier else None
        self._prepared_rs: bytes | None = None
        self._prepared_nas: list[tuple[str, bytes]] | None = None
        self.nd = NDSocket({134})
        self.loop.add_reader(self.nd, self._on_nd)
        self.links = LinkMonitor()
        self.loop.add_reader(self.links, self._on_links)
        self.servers = [ControlServer(self.loop, p, self._control) for p in (cfg.control, cfg.app_socket) if p]
        self.loop.call_later(cfg.release_check_s, self._check_unused)
        self.log(f"mobile host {cfg.mn_id} on {cfg.ifname} ({self.mac}), DAD {cfg.dad}")

    def log(self, msg: str) -> None:
        sys.stderr.write(f"{time.monotonic():.6f} {self.cfg.name}: {msg}\n")
        sys.stderr.flush()

    # --- link --------------------------------------------------------------------------------
    def _on_links(self) -> None:
        for ev in self.links.events():
            if ev.ifindex != self.ifindex or ev.kind != "new" or ev.carrier == self.carrier:
                continue
            self.carrier = ev.carrier
            if ev.carrier:
                self._attached()
            else:
                self.router = None
                self.attached_at = None
                self._prepared_rs = self._attach_rs()  # built now, sent the moment the carrier returns
                self._prepared_nas = self._attach_nas()
                self.log("carrier down: detached")

    def _attached(self) -> None:
        self.counters.moves += 1
        self.attached_at = self.loop.now()
        self.router = None
        self.seen_ra = False
        self.counters.attachments.append({"carrier_up": self.attached_at})
        data, self._prepared_rs = self._prepared_rs or self._attach_rs(), None
        if self.nd.send(data, ALL_ROUTERS, self.ifindex):  # first: it starts the anchors' updates
            self.counters.rs_tx += 1
        self.counters.attachments[-1]["rs"] = self.loop.now()
        nas, self._prepared_nas = self._prepared_nas if self._prepared_nas is not None else self._attach_nas(), None
        for address, na in nas:
            if self.nd.send(na, ALL_ROUTERS, self.ifindex, src=address):
                self.counters.na_tx += 1
        for net, e in list(self.entries.items()):
            if e.addrtype == AddressType.NON_PERSISTENT:
                self._remove(net, "it belonged to the previous network")
        self.log("carrier up: attached, solicited with the prefixes held")

    # --- router advertisements ---------------------------------------------------------------
    def _on_nd(self) -> None:
        for data, src, ifindex, hops in self.nd.receive():
            if ifindex != self.ifindex:
                continue
            if hops != 255:
                self.counters.ra_ignored += 1
                self.log(f"RA from {src} with hop limit {hops} ignored")
                continue
            try:
                ra = parse_nd(data)
            except WireError as exc:
                self.counters.ra_ignored += 1
                self.log(f"malformed RA from {src} ignored: {exc}")
                continue
            if not isinstance(ra, RouterAdvertisement):
                continue
            if self.router is None:
                self.router = src
            elif src != self.router:
                self.counters.ra_ignored += 1
                self.log(f"RA from {src} ignored: not the attached router {self.router}")
                continue
            self.counters.ra_rx += 1
            self._advertised(ra)

    def _advertised(self, ra: RouterAdvertisement) -> None:
        now = self.loop.now()
        self.seen_ra = True
        if self.counters.attachments and "ra" not in self.counters.attachments[-1]:
            self.counters.attachments[-1]["ra"] = now
        self.capability = ra.capability
        for p in ra.prefixes:
            if p.prefix.prefixlen != 64:
                continue
            if p.valid == 0:
                if p.prefix in self.entries:
                    self._remove(p.prefix, "withdrawn by the network")
                continue
            e = self.entries.get(p.prefix)
            valid_until = None if p.valid == INFINITE else now + p.valid
            preferred_until = None if p.preferred == INFINITE else now + p.preferred
            if e is None:
                addr = IPv6Address(int(p.prefix.network_address) | self.iid)
                e = Entry(p.prefix, p.addrtype, addr, valid_until, preferred_until, now)
                self.entries[p.prefix] = e
                self.log(f"{p.addrtype.name} prefix {p.prefix}: address {addr}")
            else:
                e.addrtype, e.valid_until, e.preferred_until = p.addrtype, valid_until, preferred_until
        self._configure_all()
        for r in ra.responses:
            pending = self.pending.pop(r.reqid, None)
            if pending is not None:
                self._answered(pending, r.status)
        waiting, self.waiting_ra = self.waiting_ra, []
        for d in waiting:
            d.resolve({})

    def _lifetimes(self, e: Entry, now: float) -> tuple[int, int]:
        valid = INFINITE if e.valid_until is None else max(0, int(e.valid_until - now))
        preferred = INFINITE if e.preferred_until is None else max(0, int(e.preferred_until - now))
        default = self.policy.default()
        has_default = any(x.addrtype == default and x.usable(now) for x in self.entries.values())
        if has_default and e.addrtype != default:
            preferred = 0  # legacy applications must not pick it (RFC 6724 rule 3)
        return valid, min(preferred, valid)

    def _configure_all(self) -> None:
        now = self.loop.now()
        for e in self.entries.values():
            self._configure(e, now)

    def _configure(self, e: Entry, now: float) -> None:
        valid, preferred = self._lifetimes(e, now)
        flags = {"off": IFA_F_NODAD, "optimistic": IFA_F_OPTIMISTIC, "standard": 0}[self.cfg.dad]
        try:
            self.ipr.addr("replace", index=self.ifindex, address=str(e.address), prefixlen=64,
                          flags=flags, valid_lft=valid, preferred_lft=preferred)
        except Exception as exc:
            self.log(f"cannot configure {e.address}: {exc}")

    def _remove(self, net: IPv6Network, why: str) -> None:
        e = self.entries.pop(net, None)
        if e is None:
            return
        try:
            self.ipr.addr("del", index=self.ifindex, address=str(e.address), prefixlen=64)
        except Exception:  # already expired in the kernel
            pass
        self.log(f"removed {e.addrtype.name} {e.address}: {why}")
        self._configure_all()

    # --- requests ----------------------------------------------------------------------------
    def _kept(self) -> list[Entry]:
        """What the node keeps across a move (and announces to the new gateway)."""
        return [e for e in self.entries.values()
                if e.addrtype in (AddressType.FIXED, AddressType.SESSION_LASTING, AddressType.GRACEFUL_REPLACEMENT)]

    def _attach_rs(self) -> bytes:
        """The RS sent on attach: it lists the prefixes the node keeps across moves."""
        held = [Held(e.prefix, e.addrtype) for e in self._kept()]
        return build_rs(RouterSolicitation(self.mac, self.cfg.mn_id, [], [], held))

    def _attach_nas(self) -> list[tuple[str, bytes]]:
        """The unsolicited NAs sent on attach: one per address the node keeps across moves."""
        return [(str(e.address), build_gratuitous_na(e.address, self.mac)) for e in self._kept()]

    def _send_rs(self, requests: list[Request], releases: list[Release] | None = None,
                 held: list[Held] | None = None) -> None:
        rs = RouterSolicitation(self.mac, self.cfg.mn_id, requests, releases or [], held or [])
        if self.nd.send(build_rs(rs), ALL_ROUTERS, self.ifindex):
            self.counters.rs_tx += 1

    def _request(self, t: AddressType, on_net: bool, done: Deferred) -> None:
        self.counters.requests += 1
        reqid = next(self.ids) & 0xFFFF
        p = Pending(reqid, t, on_net, set(self.entries), done, timeout=self.cfg.rs_timeout_s)
        self.pending[reqid] = p
        p.sent_at = self.loop.now()
        self._transmit(p)

    def _transmit(self, p: Pending) -> None:
        p.tries += 1
        self._send_rs([Request(p.reqid, int(p.addrtype), p.on_net)])
        p.timer = self.loop.call_later(p.timeout, lambda: self._retry(p))

    def _retry(self, p: Pending) -> None:
        if self.pending.get(p.reqid) is not p:
            return
        if p.tries > self.cfg.rs_retries or not self.carrier:
            del self.pending[p.reqid]
            self.counters.timeouts += 1
            p.done.resolve(_error(FAILED, f"no answer from the network to the {p.addrtype.name} "
                                                        f"request after {p.tries} solicitations"))
            return
        p.timeout *= 2
        self._transmit(p)

    def _answered(self, p: Pending, status: int) -> None:
        if p.timer:
            p.timer.cancel()
        if status != STATUS_GRANTED:
            self.counters.refused += 1
            code = NOT_SUPPORTED if status == STATUS_NOT_SUPPORTED else FAILED
            why = "type not supported by the network" if status == STATUS_NOT_SUPPORTED else "network could not assign"
            p.done.resolve(_error(code, f"{p.addrtype.name}: {why}"))
            return
        now = self.loop.now()
        fresh = [e for n, e in self.entries.items() if e.addrtype == p.addrtype and n not in p.known and e.usable(now)]
        candidates = fresh or [e for e in self.entries.values() if e.addrtype == p.addrtype and e.usable(now)]
        if not candidates:
            self.counters.refused += 1
            p.done.resolve(_error(FAILED, f"{p.addrtype.name} granted but no such prefix advertised"))
            return
        e = max(candidates, key=lambda x: x.first_seen)
        e.requested = True
        e.held_until = self.loop.now() + DAD_WAIT_S  # while standard DAD runs, nobody can bind it
        self.counters.granted += 1
        self._when_usable(e, lambda: self._deliver(p, e), p.done)

    def _when_usable(self, e: Entry, then, done: Deferred, deadline: float | None = None) -> None:
        """Standard DAD keeps a new address tentative (~1 s here): answer once it is usable."""
        if self.cfg.dad != "standard":  # NODAD or optimistic (RFC 4429): usable at once
            then()
            return
        deadline = deadline or self.loop.now() + DAD_WAIT_S
        flags = self._kernel_flags(e.address)
        if flags is None:
            done.resolve(_error(FAILED, f"{e.address} disappeared before it became usable"))
        elif flags & IFA_F_DADFAILED:
            done.resolve(_error(FAILED, f"duplicate address detection failed for {e.address}"))
        elif not flags & IFA_F_TENTATIVE or flags & IFA_F_OPTIMISTIC:
            then()
        elif self.loop.now() > deadline:
            done.resolve(_error(FAILED, f"{e.address} still tentative after {DAD_WAIT_S:g} s"))
        else:
            self.loop.call_later(0.01, lambda: self._when_usable(e, then, done, deadline))

    def _kernel_flags(self, address: IPv6Address) -> int | None:
        for ad in self.ipr.get_addr(index=self.ifindex, family=10):
            if ad.get_attr("IFA_ADDRESS") == str(address):
                return ad.get_attr("IFA_FLAGS") or ad["flags"]
        return None

    def _deliver(self, p: Pending, e: Entry) -> None:
        e.held_until = self.loop.now() + self.policy.release_hold_s  # the caller binds it next
        ms = (self.loop.now() - p.sent_at) * 1000
        self.counters.latencies_ms.append(round(ms, 3))
        p.done.resolve({"address": str(e.address), "type": int(e.addrtype), "type_name": e.addrtype.name,
                        "prefix": str(e.prefix), "new": e.prefix not in p.known, "latency_ms": ms})

    # --- the API -----------------------------------------------------------------------------
    def setsc(self, t: AddressType, on_net: bool, peer: Peer) -> dict | Deferred:
        if not self.policy.allowed(t, peer.uid):
            return _error("EPERM", f"policy: uid {peer.uid} may not request {t.name} addresses")
        if not self.carrier:
            return _error(FAILED, "detached: no serving network")
        done = Deferred()
        if not self.seen_ra:  # just attached: decide once the network has introduced itself
            waiter = Deferred()
            waiter.then(lambda _r: self._setsc_known(t, on_net, done))
            self.waiting_ra.append(waiter)
            self.loop.call_later(2 * self.cfg.rs_timeout_s * (self.cfg.rs_retries + 1),
                                 lambda: waiter.resolve({}) if waiter in self.waiting_ra else None)
            if not self.pending:
                self._send_rs([])
        else:
            self._setsc_known(t, on_net, done)
        return done

    def _setsc_known(self, t: AddressType, on_net: bool, done: Deferred) -> None:
        if self.waiting_ra:
            self.waiting_ra = [w for w in self.waiting_ra if w.result is None]
        if not self.seen_ra:
            done.resolve(_error(FAILED, "no router advertisement from the network"))
            return
        if self.capability is None:
            done.resolve(_error(NOT_SUPPORTED, "the attached network is not an on-demand network"))
            return
        if t not in self.capability:
            done.resolve(_error(NOT_SUPPORTED, f"the network does not offer {t.name} addresses"))
            return
        now = self.loop.now()
        if not on_net:
            have = [e for e in self.entries.values() if e.addrtype == t and e.usable(now)]
            if have:
                e = max(have, key=lambda x: x.first_seen)
                e.held_until = max(e.held_until, self.loop.now() + self.policy.release_hold_s)
                self.counters.reused += 1
                t0 = time.monotonic()
                self._when_usable(e, lambda: done.resolve(
                    {"address": str(e.address), "type": int(t), "type_name": t.name, "prefix": str(e.prefix),
                     "new": False, "latency_ms": (time.monotonic() - t0) * 1000}), done)
                return
        self._request(t, on_net, done)

    def getsc(self, address: str) -> dict:
        try:
            a = IPv6Address(address)
        except ValueError:
            raise ValueError(f"not an IPv6 address: {address!r}") from None
        for e in self.entries.values():
            if a == e.address:
                return {"type": int(e.addrtype), "type_name": e.addrtype.name, "prefix": str(e.prefix)}
        return {"type": None, "type_name": None}

    def _control(self, req: dict, peer: Peer) -> dict | Deferred:
        cmd = req["cmd"]
        if cmd == "setsc":
            try:
                t = parse_type(req.get("type"))
            except UnknownAddressType as exc:
                return _error("EINVAL", str(exc))
            if t == AddressType.UNTYPED:
                return _error("EINVAL", "type 0 (untyped) cannot be requested")
            return self.setsc(t, bool(req.get("on_net")), peer)
        if cmd == "getsc":
            return self.getsc(str(req.get("address", "")))
        if cmd == "ping":
            return {"name": self.cfg.name, "role": "mn"}
        if cmd == "state":
            return self.state()
        raise ValueError(f"unknown command {cmd!r} (setsc, getsc, state, ping)")

    # --- releasing unused session-lasting prefixes --------------------------------------------
    def _check_unused(self) -> None:
        self.loop.call_later(self.cfg.release_check_s, self._check_unused)
        if not self.policy.release_unused:
            return
        now = self.loop.now()
        in_use = None
        for net, e in list(self.entries.items()):
            if e.addrtype != AddressType.SESSION_LASTING or not e.requested:
                continue
            if in_use is None:
                in_use = addresses_in_use()
            if e.address in in_use or now < e.held_until:
                e.unused_since = None
            elif e.unused_since is None:
                e.unused_since = now
            elif now - e.unused_since >= self.policy.release_hold_s:
                self.counters.releases += 1
                self._send_rs([], [Release(next(self.ids) & 0xFFFF, net)])
                self._remove(net, f"no socket used it for {self.policy.release_hold_s:g} s: released")

    def state(self) -> dict:
        now = self.loop.now()
        return {
            "name": self.cfg.name, "mn_id": self.cfg.mn_id, "mac": self.mac, "carrier": self.carrier, "router": self.router,
            "capability": sorted(t.name for t in self.capability) if self.capability is not None else None,
            "addresses": [{"address": str(e.address), "prefix": str(e.prefix), "type": e.addrtype.name,
                           "valid": self._lifetimes(e, now)[0], "preferred": self._lifetimes(e, now)[1],
                           "requested": e.requested} for e in self.entries.values()],
            "counters": self.counters.__dict__, "dad": self.cfg.dad,
        }

    def run(self) -> None:
        self.loop.stop_on_signals()
        self.log(f"scheduling: {self.loop.raise_priority()}")
        for name in self.policy.boot_types:  # configured at boot, as root
            self.setsc(parse_type(name), False, Peer(0, 0, 0))
        if self.carrier:
            self._send_rs([])
        freeze_heap()
        sys.stdout.write("READY\n")
        sys.stdout.flush()
        try:
            self.loop.run()
        finally:
            for s in self.servers:
                s.close()
            self.log("stopped")


def _error(code: str, message: str) -> dict:
    return {"ok": False, "code": code, "error": message}


def main(argv: list[str] | None = None) -> int:
    return daemon_main(argv, "mobilehost.daemon", lambda path: MobileHost(MobileHostConfig.load(path)).run())


if __name__ == "__main__":
    sys.exit(main())
