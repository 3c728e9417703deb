#!/usr/bin/env python3
"""A TCP echo server on the mobile node's FIXED address: reachable at the same address from
anywhere, before and after every move.

    ip netns exec odmm-mn .venv/bin/python examples/fixed_server.py 7

Prints its address, then echoes every line of every client until interrupted.
"""

from __future__ import annotations

import socket
import sys
import threading

from mobilehost.api import setsc
from odmm.addrtypes import AddressType


def serve(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    address = setsc(s, AddressType.FIXED)  # needs a policy that lets this uid ask for FIXED
    s.bind((address, port))
    s.listen()
    print(f"listening on [{address}]:{port}", flush=True)
    try:
        while True:
            conn, _ = s.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
