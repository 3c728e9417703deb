"""Gateways and Home Agent on `basic`: typed prefixes on demand, anchoring after a move,
network modes, captures; the mobile node is driven with scapy and the kernel."""

from __future__ import annotations

import socket
import subprocess
import time
from ipaddress import IPv6Address, IPv6Network

import pytest

from gateways.config import GatewayPolicy
from gateways.deploy import MobilityNetwork
from odmm import netns
from odmm.addrtypes import AddressType as T
from odmm.probes.ping import ping
from odmm.wire import STATUS_COULD_NOT_ASSIGN, STATUS_GRANTED, STATUS_NOT_SUPPORTED
from topologies.catalogue import resolve
from topologies.testbed import Testbed

from .helpers import deploy_basic
from .kernelhost import KernelHost

pytestmark = pytest.mark.integration

ACCESS_RTT_MS = 2 * 1.0  # basic: mn-gw1 is 1 ms each way


def network(tmp_path, mode="ondemand", **policy):
    return deploy_basic(tmp_path, "slaac", mode=mode, policy=GatewayPolicy(**policy))


@pytest.fixture
def ondemand(tmp_path):
    tb, mob = network(tmp_path, grace_s=3.0)
    yield tb, mob, KernelHost(tb)
    tb.stop()


def tunnel_tx(tb, node: str, peer: str) -> int:
    """Packets the kernel sent into ``node``'s tunnel towards ``peer`` (not daemon state)."""
    ipr = tb.ipr(node)
    peer_addr = str(tb.plan.address(peer))
    for link in ipr.get_links():
        if link.get_attr("IFLA_IFNAME", "").startswith("tun"):
            info = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
            remote = info.get_attr("IFLA_VXLAN_GROUP6") or info.get_attr("IFLA_IP6TNL_REMOTE")
            if remote == peer_addr:
                return link.get_attr("IFLA_STATS64")["tx_packets"]
    return 0


def test_each_type_granted_from_the_right_pool_within_access_rtt(ondemand):
    tb, mob, mn = ondemand
    pools = {T.FIXED: tb.plan.blocks["ha"], T.SESSION_LASTING: tb.plan.blocks["gw1"],
             T.NON_PERSISTENT: tb.plan.blocks["gw1"], T.GRACEFUL_REPLACEMENT: tb.plan.blocks["gw1"]}
    for t, pool in pools.items():
        answer, reqid = mn.request(t, on_net=t == T.NON_PERSISTENT)
        resp = next(r for r in answer.ra.responses if r.reqid == reqid)
        assert (resp.status, resp.addrtype) == (STATUS_GRANTED, t)
        typed = [p for p in answer.ra.prefixes if p.addrtype == t and p.prefix.subnet_of(pool)]
        assert typed, f"no {t.name} PIO from {pool} in {answer.ra.prefixes}"
        rtt_ms = answer.rtt_s * 1000
        print(f"{t.name}: granted {typed[-1].prefix} in {rtt_ms:.2f} ms (bound {ACCESS_RTT_MS + 5:.1f} ms)")
        assert rtt_ms <= ACCESS_RTT_MS + 5
    assert answer.ra.capability == frozenset(pools)


def test_unsupported_types_and_exhausted_pool(tmp_path):
    tb, mob = network(tmp_path, types=["FIXED", "SESSION_LASTING", "NON_PERSISTENT"], pool_size=2)
    try:
        mn = KernelHost(tb)
        for code in (T.GRACEFUL_REPLACEMENT, 0, 9):
            answer, reqid = mn.request(code)
            resp = next(r for r in answer.ra.responses if r.reqid == reqid)
            assert resp.status == STATUS_NOT_SUPPORTED, code
        # the default NON_PERSISTENT prefix holds one of the two prefixes of the pool
        answer, reqid = mn.request(T.SESSION_LASTING)
        granted = next(r for r in answer.ra.responses if r.reqid == reqid)
        assert granted.status == STATUS_GRANTED
        answer, reqid = mn.request(T.NON_PERSISTENT, on_net=True)
        resp = next(r for r in answer.ra.responses if r.reqid == reqid)
        assert resp.status == STATUS_COULD_NOT_ASSIGN
        # nothing already granted was lost
        kinds = sorted(p.addrtype for p in answer.ra.prefixes)
        assert kinds == [T.SESSION_LASTING, T.NON_PERSISTENT]
        assert answer.ra.capability == frozenset({T.FIXED, T.SESSION_LASTING, T.NON_PERSISTENT})
        tb.check()
    finally:
        tb.stop()


def test_legacy_host_gets_an_address_and_reaches_the_cn(ondemand):
    tb, mob, mn = ondemand
    prefix = next(IPv6Network(p["prefix"]) for p in mob.state("gw1")["attached"][0]["prefixes"])
    addr = mn.wait_address(prefix)
    assert IPv6Address(addr) in tb.plan.blocks["gw1"]
    res = ping(netns.name_of("mn"), tb.address("cn"), count=20, warmup=3)
    assert res.received == 20
    analytic = tb.topo.analytic_rtt_ms("mn", "cn")
    assert abs(res.median_ms - analytic) <= max(0.02 * analytic, 0.5)


def test_handoff_each_type_takes_its_anchor_path(ondemand):
    tb, mob, mn = ondemand
    for t in (T.FIXED, T.SESSION_LASTING, T.GRACEFUL_REPLACEMENT):
        mn.request(t)
    types = {IPv6Network(p["prefix"]): T[p["type"]] for p in mob.state("gw1")["attached"][0]["prefixes"]}
    addr = {t: mn.wait_address(net) for net, t in types.items()}
    assert set(addr) == {T.FIXED, T.SESSION_LASTING, T.GRACEFUL_REPLACEMENT, T.NON_PERSISTENT}

    mob.move("mn", "gw2")
    mob.wait_ready("mn")
    cn = netns.name_of("cn")

    def probe(t: T) -> tuple[int, int, int]:
        ha0, gw0 = tunnel_tx(tb, "ha", "gw2"), tunnel_tx(tb, "gw1", "gw2")
        res = ping(cn, addr[t], count=20, warmup=0, interval=0.02, timeout=1.0)
        return res.received, tunnel_tx(tb, "ha", "gw2") - ha0, tunnel_tx(tb, "gw1", "gw2") - gw0

    # >= 20: the 20 echo requests went through that tunnel; < 5: none did (a tunnel device
    # also carries the odd MLD report of its own)
    got, via_ha, via_gw1 = probe(T.FIXED)
    assert got == 20 and via_ha >= 20 and via_gw1 < 5, (got, via_ha, via_gw1)
    got, via_ha, via_gw1 = probe(T.SESSION_LASTING)
    assert got == 20 and via_gw1 >= 20 and via_ha < 5, (got, via_ha, via_gw1)
    got, via_ha, via_gw1 = probe(T.GRACEFUL_REPLACEMENT)
    assert got == 20 and via_gw1 >= 20, (got, via_ha, via_gw1)
    got, via_ha, via_gw1 = probe(T.NON_PERSISTENT)
    assert got == 0 and via_ha < 5 and via_gw1 < 5, (got, via_ha, via_gw1)

    # after the grace period GW1 stops forwarding the graceful prefix
    deadline = time.monotonic() + 5.0
    while any(a["type"] == "GRACEFUL_REPLACEMENT" for a in mob.state("gw1")["anchored"]):
        assert time.monotonic() < deadline, "grace period did not end"
        time.sleep(0.05)
    got, via_ha, via_gw1 = probe(T.GRACEFUL_REPLACEMENT)
    assert got == 0 and via_gw1 < 5, (got, via_ha, via_gw1)
    # the measured paths are the analytic ones: FIXED through the HA, SL through gw1
    for t, via in ((T.FIXED, "ha"), (T.SESSION_LASTING, "gw1")):
        res = ping(cn, addr[t], count=20, warmup=2)
        path = tb.topo.path("cn", via) + tb.topo.path(via, "gw2")[1:]  # then the access link, now on gw2
        analytic = 2 * (tb.topo.path_delay_ms(path) + tb.topo.link_between("mn", "gw1").params.delay_ms)
        assert abs(res.median_ms - analytic) <= max(0.02 * analytic, 0.5), (t.name, res.median_ms, analytic)


def test_bad_input_is_refused_and_nothing_is_lost(ondemand):
    from odmm.wire import IPPROTO_MH, Binding, build_binding, parse_binding

    tb, mob, mn = ondemand
    mn.request(T.SESSION_LASTING)
    before = mob.state("gw1")
    held = {p["prefix"] for p in before["attached"][0]["prefixes"]}
    # malformed router solicitations: truncated, zero-length option, unknown sub-type, wrong hop limit
    bad = [bytes([133, 0, 0, 0, 0, 0]),
           bytes([133, 0, 0, 0, 0, 0, 0, 0, 253, 0, 0, 0, 0, 0, 0, 0]),
           bytes([133, 0, 0, 0, 0, 0, 0, 0, 253, 1, 77, 0, 0, 0, 0, 0]),
           bytes([133, 0, 0, 0, 0, 0, 0, 0, 253, 3, 4, 64, 0, 0, 0, 0])]  # release option cut short
    for data in bad:
        assert mn.nd.send(data, "ff02::2", mn.ifindex)
    mn.nd.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 64)
    mn.nd.send(bytes([133, 0, 0, 0, 0, 0, 0, 0]), "ff02::2", mn.ifindex)
    mn.nd.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    # a release of a prefix the node does not hold
    assert mn.release(IPv6Network("2001:db8:1001:999::/64")) is not None
    # mobility headers: from an unknown node, stale sequence number, bad checksum
    gw1 = tb.address("gw1")

    def exchange(node: str, src: str, bu: Binding, corrupt: bool = False) -> Binding | None:
        s = netns.socket_in(netns.name_of(node), socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH)
        try:
            s.bind((src, 0))
            data = bytearray(build_binding(bu, src, gw1))
            if corrupt:  # the kernel fills in MH checksums unless told not to
                s.setsockopt(socket.IPPROTO_IPV6, 7, -1)  # IPV6_CHECKSUM off
                data[4] ^= 0xFF
            s.sendto(bytes(data), (gw1, 0))
            s.settimeout(1.0)
            try:
                reply, _ = s.recvfrom(4096)
            except TimeoutError:
                return None
            return parse_binding(reply, gw1, src)
        finally:
            s.close()

    ba = exchange("cn", tb.address("cn"), Binding(False, 1, 600, "mn@odmm"))
    assert ba is not None and ba.status == 129  # administratively prohibited
    gw2 = tb.address("gw2")
    assert exchange("gw2", gw2, Binding(False, 1000, 600, "ghost@odmm")).status == 0
    assert exchange("gw2", gw2, Binding(False, 900, 600, "ghost@odmm")).status == 135  # stale
    assert exchange("gw2", gw2, Binding(False, 1001, 600, "ghost@odmm"), corrupt=True) is None
    sl = next(p for p in before["attached"][0]["prefixes"] if p["type"] == "SESSION_LASTING")
    from odmm.wire import PrefixContext
    wrong = Binding(False, 1002, 600, "ghost@odmm",
                    contexts=[PrefixContext(IPv6Network(sl["prefix"]), T.SESSION_LASTING, IPv6Address(gw1))])
    assert exchange("gw2", gw2, wrong).status == 142  # not this node's prefix

    tb.check()  # every daemon is still running
    after = mob.state("gw1")
    assert {p["prefix"] for p in after["attached"][0]["prefixes"]} == held
    assert after["counters"]["rs_dropped"] >= 5
    assert after["counters"]["bad_releases"] == 1
    assert after["counters"]["stale"] >= 1  # (a bad checksum never reaches the daemon: the kernel drops it)
    answer, reqid = mn.request(T.NON_PERSISTENT, on_net=True)  # and it still serves requests
    assert next(r for r in answer.ra.responses if r.reqid == reqid).status == STATUS_GRANTED
    log = (tb.log_dir / "gw1.log").read_text()
    assert "zero-length option" in log and "hop limit 64" in log and "unknown node" in log


def test_captures_decode_as_rs_ra_and_proxy_binding_messages(tmp_path):
    tb = Testbed(resolve("basic"), log_dir=tmp_path, access="slaac").start()
    try:
        pcaps = {n: tmp_path / f"{n}.pcap" for n in ("gw2", "mn")}
        caps = [subprocess.Popen(["ip", "netns", "exec", netns.name_of(n), "tcpdump", "-i", "any", "-U", "--immediate-mode", "-w", str(p),
                                  "icmp6 or ip6 proto 135"], stderr=subprocess.PIPE) for n, p in pcaps.items()]
        for c in caps:  # tcpdump says it is listening once the capture runs
            while b"listening" not in c.stderr.readline():
                assert c.poll() is None, "tcpdump did not start"
        mob = MobilityNetwork(tb).start()
        mob.wait_ready("mn")
        KernelHost(tb).request(T.SESSION_LASTING)
        mob.move("mn", "gw2")
        mob.wait_ready("mn")
        KernelHost(tb).request(T.NON_PERSISTENT)
        time.sleep(0.2)  # let the last packets reach the capture files
        for c in caps:
            c.terminate()
            c.wait()
    finally:
        tb.stop()

    def tshark(pcap, flt):
        out = subprocess.run(["tshark", "-r", str(pcap), "-Y", flt], capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if line.strip()]

    for pcap in pcaps.values():
        assert tshark(pcap, "_ws.malformed || _ws.expert.severity == error") == []
    assert len(tshark(pcaps["mn"], "icmpv6.type == 133")) >= 2
    assert len(tshark(pcaps["mn"], "icmpv6.type == 134 && icmpv6.opt.type == 253")) >= 2
    assert len(tshark(pcaps["gw2"], "mip6.mhtype == 5 && mip6.bu.p_flag == 1")) >= 2  # to the HA and to gw1
    assert len(tshark(pcaps["gw2"], "mip6.mhtype == 6 && mip6.ba.p_flag == 1")) >= 2
    assert any("Binding Update" in line for line in tshark(pcaps["gw2"], "mipv6"))


@pytest.mark.parametrize("mode", ["mobile-ip", "none"])
def test_baseline_modes(tmp_path, mode):
    tb, mob = network(tmp_path, mode=mode)
    try:
        mn = KernelHost(tb)
        st = mob.state("gw1")["attached"][0]
        prefix = IPv6Network(st["prefixes"][0]["prefix"])
        pool = tb.plan.blocks["ha" if mode == "mobile-ip" else "gw1"]
        assert prefix.subnet_of(pool)
        answer, reqid = mn.request(T.SESSION_LASTING, answered=False)  # a legacy network ignores it
        assert answer.ra.capability is None and not answer.ra.responses
        assert all(p.addrtype == T.UNTYPED for p in answer.ra.prefixes)
        addr = mn.wait_address(prefix)
        mob.move("mn", "gw2")
        mob.wait_ready("mn")
        res = ping(netns.name_of("cn"), addr, count=10, warmup=2, timeout=1.0)
        if mode == "mobile-ip":  # the home network prefix survives, through the HA
            assert res.received == 10
            path = tb.topo.path("cn", "ha") + tb.topo.path("ha", "gw2")[1:]
            analytic = 2 * (tb.topo.path_delay_ms(path) + 1.0)
            assert abs(res.median_ms - analytic) <= max(0.02 * analytic, 0.5)
        else:  # no mobility support: the old address is gone, a new one comes from gw2
            assert res.received == 0
            st2 = mob.state("gw2")["attached"][0]
            assert IPv6Network(st2["prefixes"][0]["prefix"]).subnet_of(tb.plan.blocks["gw2"])
    finally:
        tb.stop()


def test_legacy_gateway_sends_plain_ras(tmp_path):
    tb, mob = network(tmp_path, legacy=True)
    try:
        answer, reqid = KernelHost(tb).request(T.FIXED, answered=False)
        assert answer.ra.capability is None and answer.ra.responses == []
        assert [p.addrtype for p in answer.ra.prefixes] == [T.UNTYPED]
    finally:
        tb.stop()
