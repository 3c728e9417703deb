"""The socket API's own checks and error mapping (no network needed)."""

from __future__ import annotations

import errno
import json
import socket
import threading

import pytest

from mobilehost import api
from mobilehost.sockets import _address
from odmm.addrtypes import AddressType


@pytest.fixture
def fake_daemon(tmp_path):
    """A control socket answering with canned replies (or hanging up, like a dying daemon)."""
    path = tmp_path / "mn.sock"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen()
    replies: list = []
    seen: list = []

    def run():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile().readline()
                if not line:
                    continue
                seen.append(json.loads(line))
                reply = replies.pop(0)
                if reply is not None:
                    conn.sendall((json.dumps(reply) + "\n").encode())

    threading.Thread(target=run, daemon=True).start()
    yield str(path), replies, seen
    srv.close()


def test_error_codes_are_distinct_and_named():
    assert api.EAI_REQUIREDIPNOTSUPPORTED != api.EAI_REQUIREDIPFAILED
    assert api.RequiredIPFailed("x").errno == api.EAI_REQUIREDIPFAILED
    assert issubclass(api.RequiredIPNotSupported, OSError)


def test_socket_checks():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.close()
    with pytest.raises(OSError) as err:
        api.setsc(s, AddressType.FIXED, daemon="/nonexistent")
    assert err.value.errno == errno.EBADF
    v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with pytest.raises(OSError) as err:
        api.setsc(v4, AddressType.FIXED, daemon="/nonexistent")
    assert err.value.errno == errno.EAFNOSUPPORT
    v4.close()
    with pytest.raises(TypeError):
        api.setsc("not a socket", 1)


def test_unknown_types():
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    for bad in (9, "SESION_LASTING", 0):
        with pytest.raises(ValueError):
            api.setsc(s, bad, daemon="/nonexistent")
    s.close()


def test_no_daemon_means_no_on_demand_support(tmp_path):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with pytest.raises(api.RequiredIPNotSupported, match="not running"):
        api.setsc(s, AddressType.SESSION_LASTING, daemon=str(tmp_path / "none.sock"))
    s.close()


def test_daemon_dying_mid_call(fake_daemon):
    path, replies, _ = fake_daemon
    replies.append(None)  # hang up without answering
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with pytest.raises(api.RequiredIPNotSupported, match="closed the control connection"):
        api.setsc(s, AddressType.FIXED, daemon=path)
    s.close()


def test_error_mapping(fake_daemon):
    path, replies, seen = fake_daemon
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    cases = [("EAI_REQUIREDIPNOTSUPPORTED", api.RequiredIPNotSupported), ("EAI_REQUIREDIPFAILED", api.RequiredIPFailed),
             ("EPERM", PermissionError)]
    for code, exc in cases:
        replies.append({"ok": False, "code": code, "error": f"because {code}"})
        with pytest.raises(exc, match=f"because {code}"):
            api.setsc(s, AddressType.FIXED, on_net=True, daemon=path)
    assert seen[0] == {"cmd": "setsc", "type": 1, "on_net": True}
    replies.append({"ok": True, "address": "2001:db8::5", "type": 2})
    assert api.setsc(s, "session-lasting", daemon=path) == "2001:db8::5"
    assert api.getsc(s, daemon=path) == AddressType.SESSION_LASTING  # unbound: the type set
    s.close()


def test_setsockopt_flag_rules(fake_daemon):
    path, replies, seen = fake_daemon
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with pytest.raises(OSError) as err:
        api.setsockopt(s, socket.IPPROTO_IPV6, api.IPV6_ADDR_PREFERENCES,
                       api.IPV6_REQUIRE_FIXED_IP | api.IPV6_REQUIRE_SESSION_LASTING_IP, daemon=path)
    assert err.value.errno == errno.EINVAL
    # ON_NET alone is ignored; RFC 5014 flags reach the kernel
    api.setsockopt(s, socket.IPPROTO_IPV6, api.IPV6_ADDR_PREFERENCES,
                   api.IPV6_REQUIRE_SRC_ON_NET | api.IPV6_PREFER_SRC_PUBLIC, daemon=path)
    assert seen == []
    assert s.getsockopt(socket.IPPROTO_IPV6, api.IPV6_ADDR_PREFERENCES) & api.IPV6_PREFER_SRC_PUBLIC
    # with a REQUIRE flag, HOME/COA are ignored (not passed to the kernel, whose default is HOME)
    replies.append({"ok": True, "address": "::1", "type": 3})
    api.setsockopt(s, socket.IPPROTO_IPV6, api.IPV6_ADDR_PREFERENCES,
                   api.IPV6_REQUIRE_NON_PERSISTENT_IP | api.IPV6_PREFER_SRC_COA, daemon=path)
    assert seen[-1] == {"cmd": "setsc", "type": 3, "on_net": False}
    assert not s.getsockopt(socket.IPPROTO_IPV6, api.IPV6_ADDR_PREFERENCES) & api.IPV6_PREFER_SRC_COA
    assert s.getsockname()[0] == "::1"  # bound to the required address
    assert api.getsockopt(s, socket.IPPROTO_IPV6, api.IPV6_ADDR_PREFERENCES) & api.IPV6_REQUIRE_NON_PERSISTENT_IP
    s.close()


def test_getaddrinfo_ignores_configuration_failure(fake_daemon):
    path, replies, seen = fake_daemon
    replies.append({"ok": False, "code": "EAI_REQUIREDIPFAILED", "error": "refused"})
    res = api.getaddrinfo("::1", 80, flags=api.IPV6_REQUIRE_FIXED_IP, daemon=path)
    assert res and res[0][4][0] == "::1"
    assert seen == [{"cmd": "setsc", "type": 1, "on_net": False}]


def test_proc_net_address_decoding():
    import sys

    # ::1 as the kernel prints it in /proc/net/tcp6 on this machine's byte order
    word = "01000000" if sys.byteorder == "little" else "00000001"
    assert str(_address("0" * 24 + word)) == "::1"
