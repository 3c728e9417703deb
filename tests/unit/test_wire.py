"""Wire formats: round trips, scapy dissection, and every malformed case the daemons see."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Network

import pytest
from scapy.layers.inet6 import (
    MIP6MH_BA,
    MIP6MH_BU,
    ICMPv6ND_NA,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptPrefixInfo,
)

from odmm.addrtypes import AddressType as T
from odmm.addrtypes import UnknownAddressType, parse_type
from odmm.wire import (
    CTX_DORMANT,
    CTX_GRACE,
    INFINITE,
    Binding,
    Held,
    ODCapability,
    ODRequest,
    PrefixContext,
    PrefixInfo,
    Release,
    Request,
    Response,
    RouterAdvertisement,
    RouterSolicitation,
    WireError,
    build_binding,
    build_gratuitous_na,
    build_ra,
    build_rs,
    parse_binding,
    parse_nd,
)

P1 = IPv6Network("2001:db8:1001:1::/64")
P2 = IPv6Network("2001:db8:a001:7::/64")
GW, HA = "2001:db8:1002::1", "2001:db8:a001::1"


def test_type_codes_and_names():
    assert [int(t) for t in T] == [0, 1, 2, 3, 4]
    assert parse_type("session-lasting") is T.SESSION_LASTING
    assert parse_type(4) is T.GRACEFUL_REPLACEMENT
    with pytest.raises(UnknownAddressType, match="unknown address type 'SESION_LASTING'"):
        parse_type("SESION_LASTING")
    with pytest.raises(UnknownAddressType, match="code 9"):
        parse_type(9)


def test_typed_pio_keeps_standard_layout():
    ra = RouterAdvertisement(1800, "02:00:00:00:00:01", [PrefixInfo(P1, T.SESSION_LASTING, 600, 300)])
    data = build_ra(ra)
    pio = ICMPv6ND_RA(data)[ICMPv6NDOptPrefixInfo]
    assert pio.prefix == str(P1.network_address) and pio.prefixlen == 64 and pio.A == 1 and pio.L == 1
    assert pio.res2 == 2 << 24  # the type code in Reserved2's high octet, the rest zero
    raw = bytes(pio)[:32]
    assert raw[12] == 2 and raw[13:16] == b"\0\0\0"


def test_ra_round_trip_and_dissection():
    ra = RouterAdvertisement(1800, "02:00:00:00:00:01",
                             [PrefixInfo(P1, T.NON_PERSISTENT, 1800, 1800), PrefixInfo(P2, T.FIXED, INFINITE, INFINITE)],
                             frozenset({T.FIXED, T.NON_PERSISTENT}), [Response(7, 0, 1), Response(8, 2, 3)])
    data = build_ra(ra)
    assert parse_nd(data) == ra
    pkt = ICMPv6ND_RA(data)
    assert pkt[ODCapability].types == (1 << 1) | (1 << 3)


def test_rs_round_trip_and_dissection():
    rs = RouterSolicitation("02:00:00:00:00:02", "mn@odmm", [Request(1, 2, True), Request(2, 9)],
                            [Release(3, P1)], [Held(P1, T.SESSION_LASTING)])
    data = build_rs(rs)
    assert parse_nd(data) == rs
    assert ICMPv6ND_RS(data)[ODRequest].flags.ON_NET


@pytest.mark.parametrize("data,problem", [
    (bytes([133, 0, 0, 0]), "too short"),
    (bytes([133, 0, 0, 0, 0, 0, 0, 0, 253, 0, 0, 0, 0, 0, 0, 0]), "zero-length option"),
    (bytes([133, 0, 0, 0, 0, 0, 0, 0, 253, 2, 2, 0, 0, 0, 0, 0]), "runs past the end"),
    (bytes([133, 0, 0, 0, 0, 0, 0, 0, 253, 1, 77, 0, 0, 0, 0, 0]), "unknown on-demand option sub-type 77"),
    (bytes([133, 0, 0, 0, 0, 0, 0, 0, 253, 1, 4, 64, 0, 0, 0, 0]), "release option of 8 octets"),
    (bytes([133, 5, 0, 0, 0, 0, 0, 0]), "ICMPv6 code 5"),
    (bytes([135, 0, 0, 0, 0, 0, 0, 0]), "not a router solicitation"),
    (bytes([133, 0, 0, 0, 0, 0, 0, 0, 253]), "truncated option header"),
])
def test_malformed_nd_is_a_wire_error(data, problem):
    with pytest.raises(WireError, match=problem):
        parse_nd(data)


def test_pio_with_unknown_type_is_refused():
    data = bytearray(build_ra(RouterAdvertisement(0, None, [PrefixInfo(P1, T.FIXED, 1, 1)])))
    data[16 + 12] = 9
    with pytest.raises(WireError, match="unknown address type 9"):
        parse_nd(bytes(data))


def test_binding_round_trip_and_dissection():
    ctx = [PrefixContext(P1, T.GRACEFUL_REPLACEMENT, IPv6Address(GW), 7, CTX_GRACE),
           PrefixContext(P2, T.FIXED, IPv6Address(HA), INFINITE, CTX_DORMANT)]
    bu = Binding(False, 65535, 600, "mn@odmm", contexts=ctx, serving=IPv6Address(GW), home=False)
    data = build_binding(bu, HA, GW)
    assert parse_binding(data, HA, GW) == bu
    pkt = MIP6MH_BU(data)
    assert pkt.flags.P and pkt.flags.A and not pkt.flags.H
    ba = Binding(True, 65535, 600, "mn@odmm", status=0, hnps=[P2], contexts=ctx)
    data = build_binding(ba, GW, HA)
    assert parse_binding(data, GW, HA) == ba
    assert MIP6MH_BA(data).flags.P


def test_binding_lifetime_in_units_of_four_seconds():
    data = build_binding(Binding(False, 1, 601, "x@odmm"), HA, GW)
    assert parse_binding(data, HA, GW).lifetime_s == 604


@pytest.mark.parametrize("mutate,problem", [
    (lambda d: d[:6], "too short"),
    (lambda d: d[:-8], "length field says"),
    (lambda d: d[:4] + bytes([d[4] ^ 0xFF]) + d[5:], "bad mobility header checksum"),
])
def test_malformed_binding(mutate, problem):
    data = build_binding(Binding(False, 1, 600, "mn@odmm", hnps=[P2]), HA, GW)
    with pytest.raises(WireError, match=problem):
        parse_binding(mutate(data), HA, GW)


def test_binding_needs_proxy_flag_and_node_id():
    from scapy.layers.inet6 import IPv6

    plain = bytes(IPv6(src=HA, dst=GW) / MIP6MH_BU(flags="AH", seq=1))[40:]
    with pytest.raises(WireError, match="P \\(proxy\\) flag"):
        parse_binding(plain, HA, GW)
    anonymous = bytes(IPv6(src=HA, dst=GW) / MIP6MH_BU(flags="AHP", seq=1))[40:]
    with pytest.raises(WireError, match="without a mobile node identifier"):
        parse_binding(anonymous, HA, GW)


def test_gratuitous_na_is_rfc9131_shaped():
    data = build_gratuitous_na(IPv6Address("2001:db8:1001:2::1"), "02:0d:00:01:00:02")
    na = ICMPv6ND_NA(data)
    assert (na.type, na.R, na.S, na.O) == (136, 0, 0, 0)  # unsolicited, and must not override an entry
    assert na.tgt == "2001:db8:1001:2::1"
    assert na[ICMPv6NDOptDstLLAddr].lladdr == "02:0d:00:01:00:02"
    assert len(data) == 24 + 8
