"""Probe applications: real programs on real sockets, using the mobile-host API.

    python -m experiments.probes server --address ADDR --udp PORT ... --tcp PORT ...
    python -m experiments.probes client --flow NAME --proto udp|tcp --type FIXED|...|legacy \\
        --peer ADDR --port PORT --rate PPS --duration S --size BYTES --out FILE [--on-net]

The client asks for its address type with ``setsc`` (falling back to a plain socket when the
network or host does not offer it, as the draft tells applications to), binds, and sends
sequenced, timestamped packets (UDP) or records (TCP) that the server echoes. A UDP client
also subscribes to a downlink stream: the server sends it sequenced packets at the same rate
for the run, so what the mobile node receives measures downlink continuity on its own. The
client prints ``READY`` once its socket is set up, and writes every send, echo and stream
time (CLOCK_MONOTONIC, the same clock in every namespace; receive times are the kernel's
stamps) to ``--out`` when it ends or receives SIGTERM.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time

from odmm import kstamp
from odmm.eventloop import freeze_heap

HEADER = struct.Struct("!4sBxHIQ")  # magic, kind, pad, stream rate (pps), sequence, time (ns)
MAGIC = b"ODMM"
REQUEST, STREAM, SUBSCRIBE = 1, 2, 3


def _stop_flag() -> list[bool]:
    flag = [False]
    signal.signal(signal.SIGTERM, lambda *_: flag.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: flag.__setitem__(0, True))
    return flag


def serve(address: str, udp_ports: list[int], tcp_ports: list[int]) -> int:
    sel = selectors.DefaultSelector()
    for port in udp_ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind((address, port))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "udp")
    for port in tcp_ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        s.listen(64)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, "listen")
    stop = _stop_flag()
    streams: dict[tuple, dict] = {}  # (socket fd, client address) -> rate, next send, end, seq
    freeze_heap()  # no collection pause in the middle of the measurement
    print("READY", flush=True)
    while not stop[0]:
        now = time.monotonic()
        for key_, st in list(streams.items()):
            while st["next"] <= now and st["next"] < st["end"]:
                pkt = HEADER.pack(MAGIC, STREAM, 0, st["seq"], time.monotonic_ns()).ljust(st["size"], b"\0")
                try:
                    st["sock"].sendto(pkt, key_[1])
                except OSError:
                    pass  # unreachable for now: a lost packet
                st["seq"] += 1
                st["next"] += st["interval"]
            if st["next"] >= st["end"]:
                del streams[key_]
        timeout = min([st["next"] for st in streams.values()], default=now + 0.2) - time.monotonic()
        for key, _ in sel.select(max(0.0, min(timeout, 0.2))):
            s = key.fileobj
            try:
                if key.data == "udp":
                    while True:
                        data, addr = s.recvfrom(65535)
                        if len(data) >= HEADER.size and data[:4] == MAGIC and data[4] == SUBSCRIBE:
                            _m, _k, rate, seconds, _t = HEADER.unpack_from(data)
                            if rate and (s.fileno(), addr) not in streams:
                                streams[(s.fileno(), addr)] = {
                                    "sock": s, "interval": 1.0 / rate, "next": time.monotonic(), "seq": 0,
                                    "end": time.monotonic() + seconds, "size": len(data)}
                            continue
                        s.sendto(data, addr)
                elif key.data == "listen":
                    conn, _ = s.accept()
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, "tcp")
                else:
                    data = s.recv(65536)
                    if not data:
                        sel.unregister(s)
                        s.close()
                    else:
                        s.setblocking(True)
                        s.settimeout(1.0)
                        s.sendall(data)
                        s.setblocking(False)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                if key.data == "tcp":
                    sel.unregister(s)
                    s.close()
    return 0


def _setup(args) -> tuple[socket.socket, dict]:
    kind = socket.SOCK_DGRAM if args.proto == "udp" else socket.SOCK_STREAM
    sock = socket.socket(socket.AF_INET6, kind)
    if kind == socket.SOCK_STREAM:  # records are small and timed: no Nagle
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    info = {"flow": args.flow, "proto": args.proto, "requested": args.type, "fallback": None, "setsc_ms": None}
    if args.type != "legacy":
        from mobilehost.api import OnDemandError, setsc

        t0 = time.monotonic()
        try:
            addr = setsc(sock, args.type, on_net=args.on_net)
            info["setsc_ms"] = (time.monotonic() - t0) * 1000
            sock.bind((addr, 0))
        except (OnDemandError, PermissionError) as exc:
            info["fallback"] = f"{type(exc).__name__}: {exc.strerror or exc}"
    sock.settimeout(5.0)
    sock.connect((args.peer, args.port))
    sock.setblocking(False)
    kstamp.enable(sock)  # receive times from the kernel: this process's CPU waits stay out of them
    info["source"] = sock.getsockname()[0]
    try:
        from mobilehost.api import getsc

        t = getsc(sock)
        info["type"] = t.name if t is not None else None
    except (OSError, ValueError):
        info["type"] = None
    return sock, info


def run_client(args) -> int:
    stop = _stop_flag()
    sent: list[list[int]] = []
    recv: list[list[int]] = []
    events: list[dict] = []
    try:
        sock, info = _setup(args)
    except OSError as exc:
        info = {"flow": args.flow, "requested": args.type, "error": f"setup failed: {exc}"}
        _write(args.out, {**info, "sent": [], "recv": [], "events": []})
        print(f"probe {args.flow}: {exc}", file=sys.stderr)
        return 1
    stream: list[list[int]] = []
    if args.proto == "udp" and args.stream_rate > 0:  # the downlink stream (asked three times: not to lose it)
        sub = HEADER.pack(MAGIC, SUBSCRIBE, int(args.stream_rate), int(args.duration + 1), 0).ljust(args.size, b"\0")
        for _ in range(3):
            try:
                sock.send(sub)
            except OSError:
                pass
    freeze_heap()  # no collection pause in the middle of the measurement
    print("READY", flush=True)
    interval = 1.0 / args.rate
    start = time.monotonic()
    info["start"] = start
    end = start + args.duration
    seq = 0
    pending = b""
    inbuf = b""
    alive = True
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    next_send = start
    while not stop[0]:
        now = time.monotonic()
        if now >= end:
            break
        if alive and now >= next_send:
            t_ns = time.monotonic_ns()
            pkt = HEADER.pack(MAGIC, REQUEST, 0, seq, t_ns).ljust(args.size, b"\0")
            try:
                if args.proto == "udp":
                    sock.send(pkt)
                else:
                    pending += pkt
                    n = sock.send(pending)
                    pending = pending[n:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                if args.proto == "tcp" and exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT):
                    events.append({"t": now, "event": "reset", "error": os.strerror(exc.errno)})
                    alive = False
                # UDP: ICMP errors (e.g. unreachable) surface here; the packet counts as lost
            sent.append([seq, t_ns])
            seq += 1
            next_send += interval
            continue
        timeout = max(0.0, min(next_send, end) - time.monotonic()) if alive else max(0.0, end - time.monotonic())
        for _key, _ in sel.select(timeout):
            offset = kstamp.realtime_offset_ns()
            try:
                while True:
                    data, t_ns = kstamp.recv_monotonic(sock, 65536, offset)
                    if args.proto == "udp":
                        if len(data) >= HEADER.size and data[:4] == MAGIC:
                            _m, kind, _r, n, t_srv = HEADER.unpack_from(data)
                            if kind == REQUEST:
                                recv.append([n, t_ns])
                            elif kind == STREAM:
                                stream.append([n, t_srv, t_ns])
                        continue
                    if not data:
                        events.append({"t": time.monotonic(), "event": "closed"})
                        alive = False
                        sel.unregister(sock)
                        break
                    inbuf += data
                    while len(inbuf) >= args.size:
                        rec, inbuf = inbuf[:args.size], inbuf[args.size:]
                        if rec[:4] == MAGIC:
                            recv.append([HEADER.unpack_from(rec)[3], t_ns])
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                if args.proto == "tcp":
                    events.append({"t": time.monotonic(), "event": "reset", "error": os.strerror(exc.errno or 0)})
                    alive = False
                    try:
                        sel.unregister(sock)
                    except (KeyError, ValueError):
                        pass
    info["end"] = time.monotonic()
    sock.close()
    _write(args.out, {**info, "rate_pps": args.rate, "stream_pps": args.stream_rate if stream else 0,
                      "size": args.size, "sent": sent, "recv": recv, "stream": stream, "events": events})
    return 0


def _write(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m experiments.probes")
    sub = ap.add_subparsers(dest="role", required=True)
    s = sub.add_parser("server")
    s.add_argument("--address", required=True)
    s.add_argument("--udp", type=int, action="append", default=[])
    s.add_argument("--tcp", type=int, action="append", default=[])
    c = sub.add_parser("client")
    c.add_argument("--flow", required=True)
    c.add_argument("--proto", choices=["udp", "tcp"], default="udp")
    c.add_argument("--type", default="legacy")
    c.add_argument("--peer", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--rate", type=float, default=100.0)
    c.add_argument("--duration", type=float, required=True)
    c.add_argument("--size", type=int, default=64, help="bytes per packet or record (at least 20)")
    c.add_argument("--out", required=True)
    c.add_argument("--on-net", action="store_true")
    c.add_argument("--stream-rate", type=float, default=200.0, help="downlink stream packets/s (udp; 0: none)")
    args = ap.parse_args(argv)
    if args.role == "server":
        return serve(args.address, args.udp, args.tcp)
    return run_client(args)


if __name__ == "__main__":
    sys.exit(main())
