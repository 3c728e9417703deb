"""The mobile-host stack and the socket API on `basic`, against the real gateways."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

import pytest

from gateways.config import GatewayPolicy
from mobilehost import api
from mobilehost.config import MobileHostPolicy
from odmm import netns
from odmm.addrtypes import AddressType as T

from .helpers import deploy_basic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def managed(tmp_path, gw=None, host=None, dad="off"):
    return deploy_basic(tmp_path, "managed", policy=gw or GatewayPolicy(), host_policy=host or MobileHostPolicy(), dad=dad)


@pytest.fixture
def net(tmp_path):
    tb, mob = managed(tmp_path, gw=GatewayPolicy(grace_s=4.0))
    yield tb, mob
    tb.stop()


def mn_socket(kind=socket.SOCK_STREAM) -> socket.socket:
    return netns.socket_in(netns.name_of("mn"), socket.AF_INET6, kind)


def table(mob) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for a in mob.state("mn")["addresses"]:
        out.setdefault(a["type"], []).append(a)
    return out


class EchoServer:
    """TCP echo on the CN (a real kernel socket in the CN's namespace)."""

    def __init__(self, tb, port: int = 7) -> None:
        self.sock = netns.socket_in(netns.name_of("cn"), socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((tb.address("cn"), port))
        self.sock.listen()
        self.address = (tb.address("cn"), port)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(4096):
                    conn.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


def echo_ok(s: socket.socket, timeout: float = 1.0) -> bool:
    s.settimeout(timeout)
    try:
        s.sendall(b"ping\n")
        return s.recv(100) == b"ping\n"
    except OSError:
        return False


def test_setsc_each_type_from_its_anchor_and_on_net(net):
    tb, mob = net
    d = mob.host_socket("mn")
    pools = {T.FIXED: "ha", T.SESSION_LASTING: "gw1", T.NON_PERSISTENT: "gw1", T.GRACEFUL_REPLACEMENT: "gw1"}
    got = {}
    for t, anchor in pools.items():
        s = mn_socket()
        addr = api.setsc(s, t, daemon=d)
        assert IPv6Address(addr) in tb.plan.blocks[anchor], (t, addr)
        s.bind((addr, 0))
        assert api.getsc(s, daemon=d) == t
        got[t] = addr
        s.close()
    # a second socket of the same type reuses the address; ON_NET obtains a new prefix
    assert api.setsc(mn_socket(), T.SESSION_LASTING, daemon=d) == got[T.SESSION_LASTING]
    fresh = api.setsc(mn_socket(), T.SESSION_LASTING, on_net=True, daemon=d)
    assert fresh != got[T.SESSION_LASTING] and IPv6Address(fresh) in tb.plan.blocks["gw1"]
    fixed2 = api.setsc(mn_socket(), T.FIXED, on_net=True, daemon=d)
    assert fixed2 != got[T.FIXED] and IPv6Address(fixed2) in tb.plan.blocks["ha"]


def test_not_supported_on_a_legacy_gateway(tmp_path):
    tb, mob = managed(tmp_path, gw=GatewayPolicy(legacy=True))
    try:
        with pytest.raises(api.RequiredIPNotSupported, match="not an on-demand network"):
            api.setsc(mn_socket(), T.SESSION_LASTING, daemon=mob.host_socket("mn"))
        # the legacy application path still works: the plain prefix is configured
        u = mn_socket(socket.SOCK_DGRAM)
        u.connect((tb.address("cn"), 9))
        assert IPv6Address(u.getsockname()[0]) in tb.plan.blocks["gw1"]
    finally:
        tb.stop()


def test_not_supported_type_failed_pool_and_detached(tmp_path):
    tb, mob = managed(tmp_path, gw=GatewayPolicy(types=["FIXED", "SESSION_LASTING", "NON_PERSISTENT"], pool_size=1))
    try:
        d = mob.host_socket("mn")
        with pytest.raises(api.RequiredIPNotSupported, match="does not offer GRACEFUL_REPLACEMENT"):
            api.setsc(mn_socket(), T.GRACEFUL_REPLACEMENT, daemon=d)
        with pytest.raises(api.RequiredIPFailed, match="could not assign"):  # the default prefix took the pool
            api.setsc(mn_socket(), T.SESSION_LASTING, daemon=d)
        mob.detach("mn")
        deadline = time.monotonic() + 2
        while mob.state("mn")["carrier"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with pytest.raises(api.RequiredIPFailed, match="detached"):
            api.setsc(mn_socket(), T.FIXED, daemon=d)
        tb.check()
    finally:
        tb.stop()


def test_unprivileged_uid_and_fixed(tmp_path):
    tb, mob = managed(tmp_path)
    try:
        # a process that knows nothing of odmm's Python: the documented JSON-lines protocol on
        # the namespace's abstract socket, as uid 65534
        code = ("import json,socket,sys\n"
                "s=socket.socket(socket.AF_UNIX); s.connect('\\0odmm-mobilehost')\n"
                "for t in (1, 2):\n"
                "    s.sendall((json.dumps({'cmd':'setsc','type':t})+'\\n').encode())\n"
                "    print(s.makefile().readline().strip())\n")
        res = subprocess.run(["ip", "netns", "exec", netns.name_of("mn"), "setpriv", "--reuid=65534",
                              "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", code],
                             capture_output=True, text=True, timeout=30)
        lines = res.stdout.splitlines()
        assert len(lines) == 2, res.stderr
        assert '"code": "EPERM"' in lines[0] and "uid 65534 may not request FIXED" in lines[0]
        assert '"ok": true' in lines[1] and "SESSION_LASTING" in lines[1]
    finally:
        tb.stop()


@pytest.mark.parametrize("default", ["NON_PERSISTENT", "SESSION_LASTING"])
def test_legacy_application_gets_the_default_type(tmp_path, default):
    boot = [default] if default != "NON_PERSISTENT" else []
    tb, mob = managed(tmp_path, host=MobileHostPolicy(default_type=default, boot_types=boot, release_unused=False))
    try:
        d = mob.host_socket("mn")
        api.setsc(mn_socket(), T.FIXED, daemon=d)  # other types exist too
        api.setsc(mn_socket(), T.GRACEFUL_REPLACEMENT, daemon=d)
        deadline = time.monotonic() + 3
        while default not in table(mob):
            assert time.monotonic() < deadline, f"no {default} address: {table(mob)}"
            time.sleep(0.02)
        u = mn_socket(socket.SOCK_DGRAM)
        u.connect((tb.address("cn"), 9))  # never bound: the kernel chooses the source
        src = u.getsockname()[0]
        assert api.getsc(u, daemon=d) == T[default], (src, table(mob))
    finally:
        tb.stop()


def test_handoff_address_table_and_sessions(net):
    tb, mob = net
    d = mob.host_socket("mn")
    server = EchoServer(tb)
    conns = {}
    for t in (T.FIXED, T.SESSION_LASTING, T.NON_PERSISTENT, T.GRACEFUL_REPLACEMENT):
        s = mn_socket()
        s.bind((api.setsc(s, t, daemon=d), 0))
        s.connect(server.address)
        assert echo_ok(s), t
        conns[t] = s
    before = table(mob)
    mob.move("mn", "gw2")
    mob.wait_ready("mn")
    deadline = time.monotonic() + 2
    while not any(IPv6Network(a["prefix"]).subnet_of(tb.plan.blocks["gw2"]) for a in table(mob).get("NON_PERSISTENT", [])):
        assert time.monotonic() < deadline, table(mob)
        time.sleep(0.02)
    after = table(mob)
    # DESIGN section 2: FIXED and SESSION_LASTING kept, NON_PERSISTENT of gw1 gone (a new one from
    # gw2), GRACEFUL deprecated with valid = grace left
    assert [a["address"] for a in after["FIXED"]] == [a["address"] for a in before["FIXED"]]
    assert [a["address"] for a in after["SESSION_LASTING"]] == [a["address"] for a in before["SESSION_LASTING"]]
    assert all(IPv6Network(a["prefix"]).subnet_of(tb.plan.blocks["gw2"]) for a in after["NON_PERSISTENT"])
    deadline = time.monotonic() + 2
    while not all(a["preferred"] == 0 and a["valid"] <= 4 for a in table(mob).get("GRACEFUL_REPLACEMENT", [{}])):
        assert time.monotonic() < deadline, table(mob)
        time.sleep(0.02)
    assert echo_ok(conns[T.FIXED]) and echo_ok(conns[T.SESSION_LASTING])
    assert echo_ok(conns[T.GRACEFUL_REPLACEMENT])  # within its grace period
    assert not echo_ok(conns[T.NON_PERSISTENT])
    deadline = time.monotonic() + 6  # the grace period ends: the session breaks, the address goes
    while "GRACEFUL_REPLACEMENT" in table(mob):
        assert time.monotonic() < deadline, table(mob)
        time.sleep(0.05)
    assert not echo_ok(conns[T.GRACEFUL_REPLACEMENT])
    assert echo_ok(conns[T.FIXED]) and echo_ok(conns[T.SESSION_LASTING])
    for s in conns.values():
        s.close()
    server.close()


def test_new_gateway_knows_the_kept_addresses_before_any_packet(net):
    """RFC 9131: the node's unsolicited NAs after a move create neighbour entries on the new
    gateway, so the first packet to a kept address is not held for neighbour discovery."""
    tb, mob = net
    d = mob.host_socket("mn")
    kept = []
    for t in (T.FIXED, T.SESSION_LASTING):
        s = mn_socket(socket.SOCK_DGRAM)
        kept.append(IPv6Address(api.setsc(s, t, daemon=d)))
        s.close()
    mac = mob.state("mn")["mac"]
    sent_before = mob.state("mn")["counters"]["na_tx"]
    mob.move("mn", "gw2")
    ipr = tb.ipr("gw2")
    deadline = time.monotonic() + 2  # no traffic goes to these addresses: only the NAs can teach gw2
    while True:
        idx = ipr.link_lookup(ifname="acc-mn")
        known = {IPv6Address(n.get_attr("NDA_DST")): n.get_attr("NDA_LLADDR")
                 for n in (ipr.get_neighbours(family=socket.AF_INET6, ifindex=idx[0]) if idx else [])}
        if all(known.get(a) == mac for a in kept):
            break
        assert time.monotonic() < deadline, (kept, known)
        time.sleep(0.01)
    assert mob.state("mn")["counters"]["na_tx"] - sent_before >= len(kept)


def test_session_lasting_released_after_last_socket(net):
    tb, mob = net
    d = mob.host_socket("mn")
    a, b = mn_socket(), mn_socket(socket.SOCK_DGRAM)
    addr = api.setsc(a, T.SESSION_LASTING, on_net=True, daemon=d)
    assert api.setsc(b, T.SESSION_LASTING, daemon=d) == addr  # reused by a second socket
    a.bind((addr, 0))
    a.listen()
    b.bind((addr, 0))
    prefix = str(IPv6Network((addr, 64), strict=False))

    def present() -> tuple[bool, bool]:
        on_mn = any(x["address"] == addr for x in mob.state("mn")["addresses"])
        on_gw = any(x["prefix"] == prefix for x in mob.state("gw1")["anchored"])
        return on_mn, on_gw

    a.close()
    time.sleep(3.0)  # longer than the hold time: the other socket keeps it
    assert present() == (True, True)
    b.close()
    deadline = time.monotonic() + 5
    while present() != (False, False):
        assert time.monotonic() < deadline, present()
        time.sleep(0.05)
    assert not any(ad.get_attr("IFA_ADDRESS") == addr for ad in tb.ipr("mn").get_addr(family=10))


def test_rogue_and_malformed_ras_are_ignored(net):
    from odmm.wire import PrefixInfo, RouterAdvertisement, build_ra

    tb, mob = net
    d = mob.host_socket("mn")
    keep = api.setsc(mn_socket(), T.SESSION_LASTING, daemon=d)
    gw = tb.ipr("gw1")
    idx = gw.link_lookup(ifname="acc-mn")[0]
    gw.addr("add", index=idx, address="fe80::bad", prefixlen=64, flags=0x02)
    s = netns.socket_in(netns.name_of("gw1"), socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    s.bind(("fe80::bad", 0, 0, idx))
    rogue = build_ra(RouterAdvertisement(1800, None, [PrefixInfo(IPv6Network("2001:db8:dead::/64"), T.FIXED, 600, 600)],
                                         frozenset({T.FIXED})))
    s.sendto(rogue, ("ff02::1", 0, 0, idx))
    s.close()
    real = netns.socket_in(netns.name_of("gw1"), socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    real.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
    real.sendto(bytes([134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]),
                ("ff02::1", 0, 0, idx))  # zero-length option
    real.close()
    deadline = time.monotonic() + 2
    while mob.state("mn")["counters"]["ra_ignored"] < 2:
        assert time.monotonic() < deadline, mob.state("mn")["counters"]
        time.sleep(0.02)
    st = mob.state("mn")
    assert not any(a["prefix"].startswith("2001:db8:dead") for a in st["addresses"])
    assert any(a["address"] == keep for a in st["addresses"])
    log = (tb.log_dir / "mn.log").read_text()
    assert "not the attached router" in log and "zero-length option" in log
    tb.check()


def test_rfc5014_style_interface(net):
    tb, mob = net
    d = mob.host_socket("mn")
    s = mn_socket()
    api.setsockopt(s, socket.IPPROTO_IPV6, api.IPV6_ADDR_PREFERENCES,
                   api.IPV6_REQUIRE_SESSION_LASTING_IP | api.IPV6_REQUIRE_SRC_ON_NET, daemon=d)
    src = s.getsockname()[0]
    assert api.getsc(s, daemon=d) == T.SESSION_LASTING and IPv6Address(src) in tb.plan.blocks["gw1"]
    assert api.getsockopt(s, socket.IPPROTO_IPV6, api.IPV6_ADDR_PREFERENCES) & api.IPV6_REQUIRE_SESSION_LASTING_IP
    # getaddrinfo configures the type (FIXED appears) and returns normal results
    res = api.getaddrinfo(tb.address("cn"), 7, flags=api.IPV6_REQUIRE_FIXED_IP, daemon=d)
    assert res[0][4][0] == tb.address("cn")
    assert "FIXED" in table(mob)


def test_examples_run_in_the_mobile_node(net):
    tb, mob = net
    server = EchoServer(tb)
    env_py = sys.executable
    res = subprocess.run(["ip", "netns", "exec", netns.name_of("mn"), env_py, str(ROOT / "examples/sl_client.py"),
                          tb.address("cn"), "7", "2"], capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert "session-lasting source 2001:db8:1001:" in res.stdout and res.stdout.count("hello") == 2
    srv = subprocess.Popen(["ip", "netns", "exec", netns.name_of("mn"), env_py, str(ROOT / "examples/fixed_server.py"),
                            "7007"], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = srv.stdout.readline()
        assert line.startswith("listening on [2001:db8:a001:")
        addr = line.split("[")[1].split("]")[0]
        c = netns.socket_in(netns.name_of("cn"), socket.AF_INET6, socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect((addr, 7007))
        assert echo_ok(c)
        c.close()
    finally:
        srv.terminate()
        srv.wait()
    server.close()
