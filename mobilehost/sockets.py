"""Which local addresses sockets use, read from the kernel's socket tables of this namespace.

The kernel, not bookkeeping, decides when a SESSION_LASTING address is no longer used:
/proc/net/{tcp6,udp6,raw6} list every IPv6 socket with its local address (the same tables
``ss`` reads through sock_diag). TCP sockets in TIME_WAIT or CLOSE are not held by any
application and do not count.
"""

from __future__ import annotations

import sys
from ipaddress import IPv6Address

TABLES = ("tcp6", "udp6", "raw6")
GONE_TCP_STATES = {"06", "07"}  # TIME_WAIT, CLOSE


def _address(hexaddr: str) -> IPv6Address:
    raw = bytes.fromhex(hexaddr)
    if sys.byteorder == "little":  # the kernel prints four host-order 32-bit words
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return IPv6Address(raw)


def addresses_in_use(proc_net: str = "/proc/self/net") -> set[IPv6Address]:
    used: set[IPv6Address] = set()
    for table in TABLES:
        try:
            with open(f"{proc_net}/{table}") as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    if len(fields) < 4:
                        continue
                    if table == "tcp6" and fields[3] in GONE_TCP_STATES:
                        continue
                    used.add(_address(fields[1].split(":")[0]))
        except FileNotFoundError:
            continue
    return used
