"""Every odmm wire format, shared by gateways, the Home Agent and mobile hosts.

Defined as scapy ``Packet`` classes and registered with scapy's dissectors, so captured
packets dissect in scapy; on the wire they are standard RS/RA and Mobility Header messages
with documented extensions (see docs/protocol.md for every field and its octet offset):

- typed prefix: a standard Prefix Information Option whose Reserved2 high octet carries the
  address type code (legacy hosts ignore Reserved2);
- on-demand option: ND option type 253 (RFC 4727 experimental) with sub-types capability,
  request, response, release and mobile-node identifier;
- network signalling: Proxy Binding Update / Acknowledgement (RFC 5213) with the
  Mobile Node Identifier (RFC 4283), Home Network Prefix (RFC 5213) and an odmm prefix
  context carried in the Experimental Mobility Option (type 18, RFC 5096).

Builders return the ICMPv6 or Mobility Header message without the IPv6 header (the daemons
send on raw sockets); parsers validate framing first and raise ``WireError`` naming the
problem, so a malformed packet costs one log line, never a crash.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from functools import lru_cache
from ipaddress import IPv6Address, IPv6Network

from scapy.fields import (
    ByteEnumField,
    ByteField,
    ConditionalField,
    FieldLenField,
    FlagsField,
    IntField,
    IP6Field,
    ShortField,
    StrLenField,
)
from scapy.layers import inet6
from scapy.layers.inet6 import (
    MIP6MH_BA,
    MIP6MH_BU,
    ICMPv6ND_NA,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    MIP6OptMNID,
    _ICMPv6NDGuessPayload,
    _MIP6OptAlign,
    in6_chksum,
)
from scapy.packet import Packet

from odmm.addrtypes import AddressType

ND_OPT_ONDEMAND = 253       # RFC 4727 experimental ND option type
MH_OPT_EXPERIMENTAL = 18    # RFC 5096 Experimental Mobility Option
MH_OPT_HNP = 22             # RFC 5213 Home Network Prefix option
IPPROTO_MH = 135
INFINITE = 0xFFFFFFFF

# on-demand option sub-types
SUB_CAPABILITY, SUB_REQUEST, SUB_RESPONSE, SUB_RELEASE, SUB_MNID, SUB_HELD = 1, 2, 3, 4, 5, 6
SUBTYPE_NAMES = {SUB_CAPABILITY: "capability", SUB_REQUEST: "request", SUB_RESPONSE: "response",
                 SUB_RELEASE: "release", SUB_MNID: "mn-id", SUB_HELD: "held prefix"}
FLAG_ON_NET = 0x80

# response status
STATUS_GRANTED, STATUS_NOT_SUPPORTED, STATUS_COULD_NOT_ASSIGN = 0, 1, 2
STATUS_NAMES = {0: "granted", 1: "type not supported", 2: "could not assign"}

# prefix context flags (Mobility Header)
CTX_NEW = 0x80      # asks the anchor for a new prefix of this type (prefix is ::)
CTX_RELEASE = 0x40  # the prefix is no longer needed
CTX_GRACE = 0x20    # the grace period of a GRACEFUL_REPLACEMENT prefix is running
CTX_DORMANT = 0x10  # assigned but not (yet) requested by the node: not advertised

# binding acknowledgement status (RFC 6275 / 5213 registry)
BA_ACCEPTED = 0
BA_UNSPECIFIED = 128
BA_PROHIBITED = 129
BA_INSUFFICIENT_RESOURCES = 130
BA_SEQ_OUT_OF_WINDOW = 135
BA_NOT_AUTHORIZED_FOR_PREFIX = 142


class WireError(ValueError):
    """A malformed or unexpected packet; the message names the problem."""


# --- scapy classes ----------------------------------------------------------------------------


class ICMPv6NDOptOnDemand(_ICMPv6NDGuessPayload, Packet):
    """On-demand mobility option (type 253); sub-classes by sub-type."""

    name = "ICMPv6 ND Option - On-Demand Mobility (unknown sub-type)"
    fields_desc = [ByteField("type", ND_OPT_ONDEMAND), ByteField("len", None),
                   ByteEnumField("subtype", 0, SUBTYPE_NAMES),
                   StrLenField("data", b"", length_from=lambda p: max(0, 8 * (p.len or 0) - 3))]

    def post_build(self, p, pay):
        if self.len is None:
            p = p[:1] + bytes([(len(p) + 7) // 8]) + p[2:]
        return p + b"\0" * ((-len(p)) % 8) + pay

    @classmethod
    def dispatch_hook(cls, _pkt=None, *args, **kargs):
        if _pkt and len(_pkt) >= 3:
            return _ONDEMAND_CLASSES.get(_pkt[2], ICMPv6NDOptOnDemand)
        return cls


class ODCapability(ICMPv6NDOptOnDemand):
    name = "On-Demand Mobility - capability"
    fields_desc = [ByteField("type", ND_OPT_ONDEMAND), ByteField("len", 1),
                   ByteEnumField("subtype", SUB_CAPABILITY, SUBTYPE_NAMES), ByteField("flags", 0),
                   FlagsField("types", 0, 16, ["untyped", "FIXED", "SESSION_LASTING", "NON_PERSISTENT",
                                               "GRACEFUL_REPLACEMENT"] + [f"t{i}" for i in range(5, 16)]),
                   ShortField("reserved", 0)]


class ODRequest(ICMPv6NDOptOnDemand):
    name = "On-Demand Mobility - request"
    fields_desc = [ByteField("type", ND_OPT_ONDEMAND), ByteField("len", 1),
                   ByteEnumField("subtype", SUB_REQUEST, SUBTYPE_NAMES),
                   FlagsField("flags", 0, 8, ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "ON_NET"]),
                   ShortField("reqid", 0), ByteEnumField("addrtype", 0, {t.value: t.name for t in AddressType}),
                   ByteField("reserved", 0)]


class ODResponse(ICMPv6NDOptOnDemand):
    name = "On-Demand Mobility - response"
    fields_desc = [ByteField("type", ND_OPT_ONDEMAND), ByteField("len", 1),
                   ByteEnumField("subtype", SUB_RESPONSE, SUBTYPE_NAMES),
                   ByteEnumField("status", 0, STATUS_NAMES), ShortField("reqid", 0),
                   ByteEnumField("addrtype", 0, {t.value: t.name for t in AddressType}), ByteField("reserved", 0)]


class ODRelease(ICMPv6NDOptOnDemand):
    name = "On-Demand Mobility - release"
    fields_desc = [ByteField("type", ND_OPT_ONDEMAND), ByteField("len", 3),
                   ByteEnumField("subtype", SUB_RELEASE, SUBTYPE_NAMES), ByteField("prefixlen", 64),
                   ShortField("reqid", 0), ShortField("reserved", 0), IP6Field("prefix", "::")]


class ODMobileNodeId(ICMPv6NDOptOnDemand):
    name = "On-Demand Mobility - mobile node identifier"
    fields_desc = [ByteField("type", ND_OPT_ONDEMAND), ByteField("len", None),
                   ByteEnumField("subtype", SUB_MNID, SUBTYPE_NAMES),
                   FieldLenField("idlen", None, length_of="mnid", fmt="B"),
                   StrLenField("mnid", b"", length_from=lambda p: p.idlen),
                   StrLenField("pad", b"", length_from=lambda p: max(0, 8 * (p.len or 0) - 4 - (p.idlen or 0)))]

    def post_build(self, p, pay):
        p = p + b"\0" * ((-len(p)) % 8)
        if self.len is None:
            p = p[:1] + bytes([len(p) // 8]) + p[2:]
        return p + pay


class ODHeldPrefix(ICMPv6NDOptOnDemand):
    name = "On-Demand Mobility - held prefix"
    fields_desc = [ByteField("type", ND_OPT_ONDEMAND), ByteField("len", 3),
                   ByteEnumField("subtype", SUB_HELD, SUBTYPE_NAMES),
                   ByteEnumField("addrtype", 0, {t.value: t.name for t in AddressType}), ByteField("prefixlen", 64),
                   ByteField("reserved1", 0), ShortField("reserved2", 0), IP6Field("prefix", "::")]


_ONDEMAND_CLASSES = {SUB_CAPABILITY: ODCapability, SUB_REQUEST: ODRequest, SUB_RESPONSE: ODResponse,
                     SUB_RELEASE: ODRelease, SUB_MNID: ODMobileNodeId, SUB_HELD: ODHeldPrefix}


class MIP6OptHomeNetworkPrefix(_MIP6OptAlign):  # RFC 5213 section 8.3
    name = "PMIPv6 Option - Home Network Prefix"
    fields_desc = [ByteField("otype", MH_OPT_HNP), ByteField("olen", 18), ByteField("reserved", 0),
                   ByteField("plen", 64), IP6Field("prefix", "::")]
    x = 8
    y = 4


class MIP6OptODMM(_MIP6OptAlign):  # RFC 5096 Experimental Mobility Option, odmm sub-types
    """Sub-type 1: prefix context (42 octets of data); sub-type 2: serving gateway (18)."""

    name = "odmm Option"
    fields_desc = [
        ByteField("otype", MH_OPT_EXPERIMENTAL), ByteField("olen", 42),
        ByteEnumField("subtype", 1, {1: "prefix context", 2: "serving gateway"}),
        ConditionalField(ByteEnumField("addrtype", 0, {t.value: t.name for t in AddressType}), lambda p: p.subtype == 1),
        ConditionalField(FlagsField("flags", 0, 8, ["f0", "f1", "f2", "f3", "DORMANT", "GRACE", "RELEASE", "NEW"]),
                         lambda p: p.subtype == 1),
        ConditionalField(ByteField("plen", 64), lambda p: p.subtype == 1),
        ConditionalField(ShortField("reserved", 0), lambda p: p.subtype == 1),
        ConditionalField(IntField("lifetime", 0), lambda p: p.subtype == 1),
        ConditionalField(IP6Field("prefix", "::"), lambda p: p.subtype == 1),
        ConditionalField(IP6Field("anchor", "::"), lambda p: p.subtype == 1),
        ConditionalField(ByteField("reserved2", 0), lambda p: p.subtype == 2),
        ConditionalField(IP6Field("serving", "::"), lambda p: p.subtype == 2),
    ]
    x = 8
    y = 4


def _register() -> None:
    """Make scapy (and so tests and captures) dissect the odmm extensions."""
    inet6.icmp6ndoptscls[ND_OPT_ONDEMAND] = ICMPv6NDOptOnDemand
    inet6.moboptcls[MH_OPT_HNP] = MIP6OptHomeNetworkPrefix
    inet6.moboptcls[MH_OPT_EXPERIMENTAL] = MIP6OptODMM
    inet6._mobopttypes[MH_OPT_HNP] = "Home Network Prefix (RFC5213)"
    inet6._mobopttypes[MH_OPT_EXPERIMENTAL] = "Experimental (RFC5096): odmm prefix context"


_register()


# --- plain data the daemons work with ------------------------------------------------------------


@dataclass(frozen=True)
class PrefixInfo:
    """A prefix as advertised in a (typed) PIO."""

    prefix: IPv6Network
    addrtype: AddressType
    valid: int
    preferred: int


@dataclass(frozen=True)
class Request:
    reqid: int
    addrtype: int  # raw code: validation is the receiver's job
    on_net: bool = False


@dataclass(frozen=True)
class Response:
    reqid: int
    status: int
    addrtype: int


@dataclass(frozen=True)
class Release:
    reqid: int
    prefix: IPv6Network


@dataclass(frozen=True)
class Held:
    """A prefix the node still holds, listed in its first RS after an attach, so that the new
    gateway can update the prefix's anchor at once instead of after asking the HA."""

    prefix: IPv6Network
    addrtype: AddressType


@dataclass
class RouterSolicitation:
    mac: str | None = None
    mn_id: str | None = None
    requests: list[Request] = field(default_factory=list)
    releases: list[Release] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)


@dataclass
class RouterAdvertisement:
    router_lifetime: int = 0
    mac: str | None = None
    prefixes: list[PrefixInfo] = field(default_factory=list)
    capability: frozenset[AddressType] | None = None  # None: not an on-demand network
    responses: list[Response] = field(default_factory=list)
    mtu: int | None = None


@dataclass(frozen=True)
class PrefixContext:
    """One prefix of a mobile node as signalled between gateways and the HA."""

    prefix: IPv6Network
    addrtype: AddressType
    anchor: IPv6Address
    lifetime: int = INFINITE  # seconds left; INFINITE for FIXED
    flags: int = 0


@dataclass
class Binding:
    """A Proxy Binding Update (``ack=False``) or Acknowledgement (``ack=True``)."""

    ack: bool
    seq: int
    lifetime_s: int
    mn_id: str
    status: int = BA_ACCEPTED
    hnps: list[IPv6Network] = field(default_factory=list)
    contexts: list[PrefixContext] = field(default_factory=list)
    serving: IPv6Address | None = None  # sent by the HA to an anchor: the node's new gateway
    home: bool = True  # H flag: a registration by the serving gateway; clear for context updates


# --- Neighbour Discovery -----------------------------------------------------------------------------


def typed_pio(p: PrefixInfo) -> ICMPv6NDOptPrefixInfo:
    """A standard PIO with the type code in Reserved2's high octet (0 for a legacy PIO)."""
    return ICMPv6NDOptPrefixInfo(prefixlen=p.prefix.prefixlen, L=1, A=1, validlifetime=p.valid & INFINITE,
                                 preferredlifetime=p.preferred & INFINITE, res2=(int(p.addrtype) & 0xFF) << 24,
                                 prefix=str(p.prefix.network_address))


def capability_option(types) -> ODCapability:
    bits = 0
    for t in types:
        bits |= 1 << int(t)
    return ODCapability(types=bits)


@lru_cache(maxsize=4096)
def _option_bytes(kind: str, value) -> bytes:
    """Encoded ND options, memoised: a gateway re-sends the same options in every RA, and
    building scapy packets costs ~0.2 ms per option (on the critical path of a request)."""
    if kind == "pio":
        return bytes(typed_pio(value))
    if kind == "capability":
        return bytes(capability_option(value))
    if kind == "slla":
        return bytes(ICMPv6NDOptSrcLLAddr(lladdr=value))
    if kind == "mtu":
        return bytes(ICMPv6NDOptMTU(mtu=value))
    if kind == "response":
        return bytes(ODResponse(status=value.status, reqid=value.reqid, addrtype=value.addrtype))
    raise ValueError(kind)


def build_ra(ra: RouterAdvertisement) -> bytes:
    data = bytes(ICMPv6ND_RA(routerlifetime=ra.router_lifetime, chlim=64, prf=0, cksum=0))
    opts = []
    if ra.mac:
        opts.append(_option_bytes("slla", ra.mac))
    if ra.mtu:
        opts.append(_option_bytes("mtu", ra.mtu))
    opts += [_option_bytes("pio", p) for p in ra.prefixes]
    if ra.capability is not None:
        opts.append(_option_bytes("capability", frozenset(ra.capability)))
    opts += [_option_bytes("response", r) for r in ra.responses]
    return data + b"".join(opts)


def build_rs(rs: RouterSolicitation) -> bytes:
    pkt = ICMPv6ND_RS(cksum=0)
    if rs.mac:
        pkt /= ICMPv6NDOptSrcLLAddr(lladdr=rs.mac)
    if rs.mn_id:
        pkt /= ODMobileNodeId(mnid=rs.mn_id.encode())
    for r in rs.requests:
        pkt /= ODRequest(flags=FLAG_ON_NET if r.on_net else 0, reqid=r.reqid, addrtype=r.addrtype)
    for r in rs.releases:
        pkt /= ODRelease(prefixlen=r.prefix.prefixlen, reqid=r.reqid, prefix=str(r.prefix.network_address))
    for h in rs.held:
        pkt /= ODHeldPrefix(addrtype=int(h.addrtype), prefixlen=h.prefix.prefixlen, prefix=str(h.prefix.network_address))
    return bytes(pkt)


def build_gratuitous_na(target: IPv6Address, mac: str) -> bytes:
    """An unsolicited Neighbor Advertisement announcing ``target`` at ``mac`` (RFC 9131 §4.1):
    Router, Solicited and Override flags clear, Target Link-Layer Address option present; sent
    to all-routers from ``target`` itself, it lets a router that accepts untracked NAs create
    a STALE neighbour entry, so the first packet for the address does not wait for ND."""
    return bytes(ICMPv6ND_NA(R=0, S=0, O=0, tgt=str(target), cksum=0) / ICMPv6NDOptDstLLAddr(lladdr=mac))


def _check_options(data: bytes, start: int) -> list[tuple[int, bytes]]:
    """Split ND options, enforcing RFC 4861 framing (a zero length invalidates the packet)."""
    opts = []
    off = start
    while off < len(data):
        if off + 2 > len(data):
            raise WireError(f"truncated option header at offset {off}")
        otype, olen = data[off], data[off + 1]
        if olen == 0:
            raise WireError(f"zero-length option (type {otype}) at offset {off}")
        end = off + 8 * olen
        if end > len(data):
            raise WireError(f"option type {otype} at offset {off} runs past the end ({8 * olen} > {len(data) - off} octets)")
        opts.append((otype, data[off:end]))
        off = end
    return opts


def _mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw[2:8])


def parse_nd(data: bytes) -> RouterSolicitation | RouterAdvertisement:
    """Parse an RS or RA (ICMPv6 message, no IPv6 header); WireError if malformed."""
    if len(data) < 8:
        raise WireError(f"ICMPv6 message of {len(data)} octets is too short")
    if data[0] == 133:
        msg: RouterSolicitation | RouterAdvertisement = RouterSolicitation()
        start = 8
    elif data[0] == 134:
        if len(data) < 16:
            raise WireError(f"router advertisement of {len(data)} octets is too short")
        msg = RouterAdvertisement(router_lifetime=struct.unpack_from("!H", data, 6)[0])
        start = 16
    else:
        raise WireError(f"not a router solicitation or advertisement (ICMPv6 type {data[0]})")
    if data[1] != 0:
        raise WireError(f"ICMPv6 code {data[1]} (must be 0)")
    for otype, raw in _check_options(data, start):
        if otype == 1:  # source link-layer address
            if len(raw) >= 8:
                msg.mac = _mac(raw)
        elif otype == 3 and isinstance(msg, RouterAdvertisement):
            if len(raw) != 32:
                raise WireError(f"prefix information option of {len(raw)} octets (must be 32)")
            pio = ICMPv6NDOptPrefixInfo(raw)
            code = pio.res2 >> 24
            try:
                atype = AddressType(code)
            except ValueError:
                raise WireError(f"prefix {pio.prefix}/{pio.prefixlen} carries unknown address type {code}") from None
            if pio.prefixlen > 128:
                raise WireError(f"prefix length {pio.prefixlen} > 128")
            net = IPv6Network((IPv6Address(pio.prefix), pio.prefixlen), strict=False)
            msg.prefixes.append(PrefixInfo(net, atype, pio.validlifetime, pio.preferredlifetime))
        elif otype == 5 and isinstance(msg, RouterAdvertisement):
            msg.mtu = struct.unpack_from("!I", raw, 4)[0]
        elif otype == ND_OPT_ONDEMAND:
            _parse_ondemand(raw, msg)
    return msg


def _parse_ondemand(raw: bytes, msg: RouterSolicitation | RouterAdvertisement) -> None:
    if len(raw) < 8:
        raise WireError("on-demand option shorter than 8 octets")
    sub = raw[2]
    is_rs = isinstance(msg, RouterSolicitation)
    if sub == SUB_CAPABILITY and not is_rs:
        bits = struct.unpack_from("!H", raw, 4)[0]
        msg.capability = frozenset(t for t in AddressType if t and bits & (1 << int(t)))
    elif sub == SUB_REQUEST and is_rs:
        msg.requests.append(Request(struct.unpack_from("!H", raw, 4)[0], raw[6], bool(raw[3] & FLAG_ON_NET)))
    elif sub == SUB_RESPONSE and not is_rs:
        msg.responses.append(Response(struct.unpack_from("!H", raw, 4)[0], raw[3], raw[6]))
    elif sub == SUB_RELEASE and is_rs:
        if len(raw) < 24:
            raise WireError(f"release option of {len(raw)} octets (must be 24)")
        plen = raw[3]
        if plen > 128:
            raise WireError(f"release of a prefix with length {plen} > 128")
        net = IPv6Network((IPv6Address(raw[8:24]), plen), strict=False)
        msg.releases.append(Release(struct.unpack_from("!H", raw, 4)[0], net))
    elif sub == SUB_HELD and is_rs:
        if len(raw) < 24:
            raise WireError(f"held-prefix option of {len(raw)} octets (must be 24)")
        try:
            atype = AddressType(raw[3])
        except ValueError:
            raise WireError(f"held prefix with unknown address type {raw[3]}") from None
        net = IPv6Network((IPv6Address(raw[8:24]), min(raw[4], 128)), strict=False)
        msg.held.append(Held(net, atype))
    elif sub == SUB_MNID and is_rs:
        n = raw[3]
        if 4 + n > len(raw):
            raise WireError(f"mobile node identifier of {n} octets does not fit its option")
        msg.mn_id = raw[4:4 + n].decode("utf-8", errors="replace")
    else:
        raise WireError(f"unknown on-demand option sub-type {sub} in a "
                        f"{'router solicitation' if is_rs else 'router advertisement'}")


# --- Mobility Header ---------------------------------------------------------------------------------


def build_binding(b: Binding, src: str, dst: str) -> bytes:
    """A PBU or PBA Mobility Header with its checksum (computed over the IPv6 pseudo-header)."""
    opts: list[Packet] = [MIP6OptMNID(id=b.mn_id.encode())]
    opts += [MIP6OptHomeNetworkPrefix(plen=n.prefixlen, prefix=str(n.network_address)) for n in b.hnps]
    opts += [MIP6OptODMM(subtype=1, addrtype=int(c.addrtype), flags=c.flags, plen=c.prefix.prefixlen,
                         lifetime=c.lifetime & INFINITE, prefix=str(c.prefix.network_address), anchor=str(c.anchor))
             for c in b.contexts]
    if b.serving is not None:
        opts.append(MIP6OptODMM(subtype=2, olen=18, serving=str(b.serving)))
    units = min((b.lifetime_s + 3) // 4, 0xFFFF)  # the MH lifetime unit is 4 seconds
    if b.ack:
        mh = MIP6MH_BA(status=b.status, flags="P", seq=b.seq & 0xFFFF, mhtime=units, options=opts)
    else:
        mh = MIP6MH_BU(flags="AHP" if b.home else "AP", seq=b.seq & 0xFFFF, mhtime=units, options=opts)
    return bytes(IPv6(src=src, dst=dst) / mh)[40:]


def parse_binding(data: bytes, src: str, dst: str) -> Binding:
    """Parse a PBU or PBA (Mobility Header, no IPv6 header); checksum verified."""
    if len(data) < 8:
        raise WireError(f"mobility header of {len(data)} octets is too short")
    hlen = 8 * (data[1] + 1)
    if hlen != len(data):
        raise WireError(f"mobility header length field says {hlen} octets, packet has {len(data)}")
    if in6_chksum(IPPROTO_MH, IPv6(src=src, dst=dst), data) != 0:
        raise WireError("bad mobility header checksum")
    mhtype = data[2]
    if mhtype == 5:
        fixed, ack = 12, False
    elif mhtype == 6:
        fixed, ack = 12, True
    else:
        raise WireError(f"unexpected mobility header type {mhtype} (expected BU 5 or BA 6)")
    if ack:
        status, seq, units = data[6], struct.unpack_from("!H", data, 8)[0], struct.unpack_from("!H", data, 10)[0]
        proxy, flags = bool(data[7] & 0x20), 0
    else:
        seq, flags, units = struct.unpack_from("!HHH", data, 6)
        status, proxy = BA_ACCEPTED, bool(flags & 0x0200)
    if not proxy:
        raise WireError("binding message without the P (proxy) flag")
    b = Binding(ack=ack, seq=seq, lifetime_s=units * 4, mn_id="", status=status,
                home=ack or bool(flags & 0x4000))
    off = fixed
    while off < len(data):
        otype = data[off]
        if otype == 0:  # Pad1
            off += 1
            continue
        if off + 2 > len(data):
            raise WireError(f"truncated mobility option at offset {off}")
        olen = data[off + 1]
        body = data[off + 2:off + 2 + olen]
        if len(body) != olen:
            raise WireError(f"mobility option type {otype} at offset {off} runs past the end")
        if otype == 8:
            if olen < 1:
                raise WireError("empty mobile node identifier option")
            b.mn_id = body[1:].decode("utf-8", errors="replace")
        elif otype == MH_OPT_HNP:
            if olen != 18:
                raise WireError(f"home network prefix option of length {olen} (must be 18)")
            b.hnps.append(IPv6Network((IPv6Address(body[2:18]), min(body[1], 128)), strict=False))
        elif otype == MH_OPT_EXPERIMENTAL and olen == 18 and body[0] == 2:
            b.serving = IPv6Address(body[2:18])
        elif otype == MH_OPT_EXPERIMENTAL and olen >= 42 and body[0] == 1:
            try:
                atype = AddressType(body[1])
            except ValueError:
                raise WireError(f"prefix context with unknown address type {body[1]}") from None
            lifetime = struct.unpack_from("!I", body, 6)[0]
            net = IPv6Network((IPv6Address(body[10:26]), min(body[3], 128)), strict=False)
            b.contexts.append(PrefixContext(net, atype, IPv6Address(body[26:42]), lifetime, body[2]))
        off += 2 + olen
    if not b.mn_id:
        raise WireError("binding message without a mobile node identifier")
    return b
