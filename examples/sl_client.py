#!/usr/bin/env python3
"""The draft's section 4 example in Python: a TCP client with a SESSION_LASTING source address.

Run it on a mobile node of a running testbed (`odmm shell` keeps one up), e.g.:
    ip netns exec odmm-mn .venv/bin/python examples/sl_client.py 2001:db8:c001::2 7
It asks for a session-lasting source address, binds to it, connects, and echoes a line every
second (the session survives handoffs). Without on-demand support it falls back to a plain
connection, as the draft's section 5.1 tells applications to do.
"""

from __future__ import annotations

import socket
import sys
import time

from mobilehost.api import OnDemandError, getsc, setsc
from odmm.addrtypes import AddressType


def main() -> int:
    server, port = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 7
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        source = setsc(s, AddressType.SESSION_LASTING)   # setsc() succeeded: bind to the address
        s.bind((source, 0))
        print(f"session-lasting source {source} ({getsc(s).name})", flush=True)
    except OnDemandError as exc:                         # no such service: connect without it
        print(f"no session-lasting address ({exc.strerror}); using a legacy source", flush=True)
    s.connect((server, port))
    for i in range(count):
        s.sendall(f"hello {i}\n".encode())
        print(s.recv(100).decode().strip(), flush=True)
        time.sleep(1.0)
    s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
