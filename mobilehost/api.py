"""The on-demand socket API for applications on a mobile node.

Draft -11 (primary)::

    addr = setsc(sock, AddressType.SESSION_LASTING)        # or on_net=True for a new prefix
    sock.bind((addr, 0)); sock.connect((server, port))
    getsc(sock)                                            # -> AddressType in effect

Draft -10 (RFC 5014 style)::

    setsockopt(sock, IPPROTO_IPV6, IPV6_ADDR_PREFERENCES,
               IPV6_REQUIRE_SESSION_LASTING_IP | IPV6_REQUIRE_SRC_ON_NET)
    getaddrinfo(host, port, flags=IPV6_REQUIRE_FIXED_IP)   # configures, ignores failure

The calls talk to the mobile-host daemon of the caller's network namespace over its control
socket (docs/protocol.md), so any language can implement them. Errors are OSError
subclasses carrying the draft's codes; PermissionError when policy forbids the type.
"""

from __future__ import annotations

import errno
import os
import socket
import weakref

from mobilehost.config import APP_SOCKET
from odmm.addrtypes import AddressType, UnknownAddressType, parse_type
from odmm.control import ControlClient, ControlError

# The draft's error codes (netdb.h style: negative, outside glibc's EAI_* range).
EAI_REQUIREDIPNOTSUPPORTED = -120
EAI_REQUIREDIPFAILED = -121
ERROR_NAMES = {EAI_REQUIREDIPNOTSUPPORTED: "EAI_REQUIREDIPNOTSUPPORTED", EAI_REQUIREDIPFAILED: "EAI_REQUIREDIPFAILED"}

# RFC 5014 source address preferences (Linux values) and the draft's -10 flags.
IPV6_ADDR_PREFERENCES = 72
IPV6_PREFER_SRC_TMP = 0x0001
IPV6_PREFER_SRC_PUBLIC = 0x0002
IPV6_PREFER_SRC_COA = 0x0004
IPV6_PREFER_SRC_CGA = 0x0008
IPV6_PREFER_SRC_PUBTMP_DEFAULT = 0x0100
IPV6_PREFER_SRC_HOME = 0x0400
IPV6_PREFER_SRC_NONCGA = 0x0800
RFC5014_MASK = 0x0F0F
IPV6_REQUIRE_FIXED_IP = 0x00010000
IPV6_REQUIRE_SESSION_LASTING_IP = 0x00020000
IPV6_REQUIRE_NON_PERSISTENT_IP = 0x00040000
IPV6_REQUIRE_GRACEFUL_REPLACEMENT_IP = 0x00080000  # odmm: -11's fourth type as a -10 flag
IPV6_REQUIRE_SRC_ON_NET = 0x00100000
REQUIRE_FLAGS = {
    IPV6_REQUIRE_FIXED_IP: AddressType.FIXED,
    IPV6_REQUIRE_SESSION_LASTING_IP: AddressType.SESSION_LASTING,
    IPV6_REQUIRE_NON_PERSISTENT_IP: AddressType.NON_PERSISTENT,
    IPV6_REQUIRE_GRACEFUL_REPLACEMENT_IP: AddressType.GRACEFUL_REPLACEMENT,
}
REQUIRE_MASK = sum(REQUIRE_FLAGS)


class OnDemandError(OSError):
    """Base of the draft's errors; ``errno`` is the draft's code."""


class RequiredIPNotSupported(OnDemandError):
    """The attached network (or this host) does not offer the type: fall back to legacy calls."""

    def __init__(self, message: str) -> None:
        super().__init__(EAI_REQUIREDIPNOTSUPPORTED, message)


class RequiredIPFailed(OnDemandError):
    """The network refused, did not answer, or there is no network."""

    def __init__(self, message: str) -> None:
        super().__init__(EAI_REQUIREDIPFAILED, message)


_state: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # socket -> {"type", "address", "prefs"}


def _daemon_path(daemon: str | None) -> str:
    return daemon or os.environ.get("ODMM_MOBILEHOST") or APP_SOCKET


def _check_socket(sock: socket.socket) -> None:
    if not isinstance(sock, socket.socket):
        raise TypeError(f"expected a socket, got {type(sock).__name__}")
    if sock.fileno() < 0:
        raise OSError(errno.EBADF, "the socket is closed")
    if sock.family != socket.AF_INET6:
        raise OSError(errno.EAFNOSUPPORT, f"on-demand mobility applies to IPv6 sockets, not {sock.family.name}")


def _call(daemon: str | None, cmd: str, timeout: float, **args) -> dict:
    path = _daemon_path(daemon)
    client = ControlClient(path, timeout=timeout, name="mobile-host daemon")
    try:
        return client.call(cmd, **args)
    except ControlError as exc:
        code = exc.reply.get("code")
        message = exc.reply.get("error") or str(exc)
        if code == "EPERM":
            raise PermissionError(errno.EPERM, message) from None
        if code == "EINVAL":
            raise ValueError(message) from None
        if code == ERROR_NAMES[EAI_REQUIREDIPNOTSUPPORTED]:
            raise RequiredIPNotSupported(message) from None
        if code == ERROR_NAMES[EAI_REQUIREDIPFAILED]:
            raise RequiredIPFailed(message) from None
        if not exc.reply:  # no daemon, or it died mid-call: this host has no on-demand stack
            raise RequiredIPNotSupported(f"no on-demand mobility support here: {exc}") from None
        raise RequiredIPFailed(message) from None
    finally:
        client.close()


def setsc(sock: socket.socket, sc_type: AddressType | int | str, on_net: bool = False, *,
          daemon: str | None = None, timeout: float = 15.0) -> str:
    """Obtain a source address of ``sc_type`` for ``sock`` (draft -11); the caller binds to it."""
    _check_socket(sock)
    try:
        t = parse_type(sc_type)
    except UnknownAddressType as exc:
        raise ValueError(str(exc)) from None
    if t == AddressType.UNTYPED:
        raise ValueError("type 0 is reserved: ask for FIXED, SESSION_LASTING, NON_PERSISTENT or GRACEFUL_REPLACEMENT")
    reply = _call(daemon, "setsc", timeout, type=int(t), on_net=bool(on_net))
    _state.setdefault(sock, {})
    _state[sock].update(type=t, address=reply["address"])
    return reply["address"]


def getsc(sock: socket.socket, *, daemon: str | None = None, timeout: float = 5.0) -> AddressType | None:
    """The address type in effect for ``sock``: that of its bound address, else the one set."""
    _check_socket(sock)
    addr = sock.getsockname()[0]
    if addr not in ("::", ""):
        reply = _call(daemon, "getsc", timeout, address=addr.split("%")[0])
        if reply.get("type") is not None:
            return AddressType(reply["type"])
        return None
    return _state.get(sock, {}).get("type")


def setsockopt(sock: socket.socket, level: int, optname: int, value, *, daemon: str | None = None) -> None:
    """``sock.setsockopt`` that understands the draft -10 flags in IPV6_ADDR_PREFERENCES.

    One REQUIRE flag per call (the last call wins); PREFER_SRC_HOME/COA are ignored when a
    REQUIRE flag is set; the other RFC 5014 flags go to the kernel; ON_NET without a REQUIRE
    flag is ignored. The socket is bound to an address of the required type (port 0), which is
    how the stack makes that address its source.
    """
    if (level, optname) != (socket.IPPROTO_IPV6, IPV6_ADDR_PREFERENCES):
        sock.setsockopt(level, optname, value)
        return
    _check_socket(sock)
    flags = int(value)
    required = [t for bit, t in REQUIRE_FLAGS.items() if flags & bit]
    if len(required) > 1:
        raise OSError(errno.EINVAL, f"only one IPV6_REQUIRE_* flag at a time, got {', '.join(t.name for t in required)}")
    kernel = flags & RFC5014_MASK
    if required:
        kernel &= ~(IPV6_PREFER_SRC_HOME | IPV6_PREFER_SRC_COA)
    if kernel:
        sock.setsockopt(socket.IPPROTO_IPV6, IPV6_ADDR_PREFERENCES, kernel)
    _state.setdefault(sock, {})["prefs"] = flags
    if required:
        if sock.getsockname()[0] not in ("::", ""):
            raise OSError(errno.EINVAL, "the socket is already bound; set address preferences before bind()")
        addr = setsc(sock, required[0], bool(flags & IPV6_REQUIRE_SRC_ON_NET), daemon=daemon)
        sock.bind((addr, 0))


def getsockopt(sock: socket.socket, level: int, optname: int, buflen: int | None = None):
    if (level, optname) == (socket.IPPROTO_IPV6, IPV6_ADDR_PREFERENCES):
        _check_socket(sock)
        return _state.get(sock, {}).get("prefs", 0)
    return sock.getsockopt(level, optname) if buflen is None else sock.getsockopt(level, optname, buflen)


def getaddrinfo(host, port, family: int = socket.AF_INET6, type: int = 0, proto: int = 0, flags: int = 0, *,
                daemon: str | None = None):
    """``socket.getaddrinfo`` that first triggers configuration of a required address type
    (draft -10: a failure of that configuration is ignored here, only setsockopt reports it)."""
    required = [t for bit, t in REQUIRE_FLAGS.items() if flags & bit]
    if required:
        try:
            _call(daemon, "setsc", 15.0, type=int(required[-1]), on_net=bool(flags & IPV6_REQUIRE_SRC_ON_NET))
        except (OSError, ValueError):
            pass
    return socket.getaddrinfo(host, port, family, type, proto, flags & ~(REQUIRE_MASK | IPV6_REQUIRE_SRC_ON_NET))
