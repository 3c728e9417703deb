"""Minimal nfnetlink_queue client: bind queues, receive packet ids, send (batch) verdicts.

The delay element only needs packet *metadata* (the queue and packet id), so it asks the
kernel for NFQNL_COPY_META and never copies payloads to user space. Verdicts for a queue are
issued with NFQNL_MSG_VERDICT_BATCH ("accept every packet with id <= N"), which is why each
queue must release its packets in arrival order.

Message layouts follow include/uapi/linux/netfilter/nfnetlink_queue.h. Netlink headers are in
host byte order, nfnetlink payload values in network byte order.
"""

from __future__ import annotations

import os
import socket
import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_MSG_VERDICT_BATCH = 3

NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 2

NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_TIMESTAMP = 4
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5

NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_COPY_META = 1
NFQA_CFG_F_GSO = 1 << 2

NF_DROP = 0
NF_ACCEPT = 1

_NLMSGHDR = struct.Struct("=IHHII")
_NFGENMSG = struct.Struct("!BBH")
_NLATTR = struct.Struct("=HH")
_VERDICT_MSG = struct.Struct("=IHHII" + "BBH" + "HH" + "II")
_TYPE_VERDICT = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT
_TYPE_BATCH = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT_BATCH
_TYPE_PACKET = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET


class NfqueueError(OSError):
    """The kernel refused a queue configuration request."""


def _attr(atype: int, payload: bytes) -> bytes:
    length = _NLATTR.size + len(payload)
    pad = (-length) % 4
    return _NLATTR.pack(length, atype) + payload + b"\0" * pad


def config_message(seq: int, queue: int, attrs: bytes, family: int = socket.AF_UNSPEC) -> bytes:
    """An NFQNL_MSG_CONFIG request for ``queue`` carrying already-encoded ``attrs``."""
    body = _NFGENMSG.pack(family, 0, queue) + attrs
    mtype = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_CONFIG
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), mtype, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def verdict_message(queue: int, packet_id: int, verdict: int, batch: bool) -> bytes:
    """A verdict for one packet, or (batch) for every queued packet with id <= packet_id."""
    mtype = _TYPE_BATCH if batch else _TYPE_VERDICT
    return _VERDICT_MSG.pack(
        _VERDICT_MSG.size, mtype, NLM_F_REQUEST, 0, 0,
        0, 0, socket.htons(queue),
        12, NFQA_VERDICT_HDR,
        socket.htonl(verdict), socket.htonl(packet_id),
    )


def parse_packet(buf: memoryview | bytes, length: int) -> tuple[int, int, int] | None:
    """(queue, packet id, arrival time in ns of CLOCK_REALTIME or 0) of an NFQNL_MSG_PACKET.

    The arrival time is the skb receive timestamp (NFQA_TIMESTAMP); the kernel only fills
    it in while some socket has enabled timestamping, and never for locally generated
    packets. Returns None for any other message.
    """
    if length < _NLMSGHDR.size + _NFGENMSG.size:
        return None
    if _NLMSGHDR.unpack_from(buf, 0)[1] != _TYPE_PACKET:
        return None
    queue = struct.unpack_from("!H", buf, 18)[0]
    packet_id = -1
    stamp = 0
    off = _NLMSGHDR.size + _NFGENMSG.size
    while off + _NLATTR.size <= length:
        alen, atype = _NLATTR.unpack_from(buf, off)
        if alen < _NLATTR.size or off + alen > length:
            return None
        atype &= 0x7FFF
        if atype == NFQA_PACKET_HDR and alen >= _NLATTR.size + 4:
            packet_id = struct.unpack_from("!I", buf, off + _NLATTR.size)[0]
        elif atype == NFQA_TIMESTAMP and alen >= _NLATTR.size + 16:
            sec, usec = struct.unpack_from("!QQ", buf, off + _NLATTR.size)
            stamp = sec * 1_000_000_000 + usec * 1000
        off += (alen + 3) & ~3
    if packet_id < 0:
        return None
    return queue, packet_id, stamp


class QueueSocket:
    """A netlink socket bound to one or more NFQUEUE numbers in the current namespace."""

    def __init__(self, rcvbuf: int = 32 << 20) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, rcvbuf)  # SO_RCVBUFFORCE (root)
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind((0, 0))
        self._seq = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def _request(self, queue: int, attrs: bytes) -> None:
        self._seq += 1
        self.sock.send(config_message(self._seq, queue, attrs))
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + _NLMSGHDR.size <= len(data):
                mlen, mtype, _f, seq, _p = _NLMSGHDR.unpack_from(data, off)
                if mtype == NLMSG_ERROR and seq == self._seq:
                    err = struct.unpack_from("=i", data, off + _NLMSGHDR.size)[0]
                    if err:
                        raise NfqueueError(-err, f"nfqueue {queue}: {os.strerror(-err)}")
                    return
                off += max(mlen, _NLMSGHDR.size)

    def bind(self, queue: int, maxlen: int = 65536, gso: bool = False) -> None:
        """Bind ``queue`` in metadata-only copy mode with a deep kernel queue.

        No FAIL_OPEN flag: a full queue drops packets (counted by the kernel) instead of
        letting them through undelayed, which would silently unshape the link.
        """
        self._request(queue, _attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)))
        self._request(queue, _attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)))
        self._request(queue, _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)))
        if gso:
            flags = struct.pack("!I", NFQA_CFG_F_GSO)
            self._request(queue, _attr(NFQA_CFG_FLAGS, flags) + _attr(NFQA_CFG_MASK, flags))

    def unbind(self, queue: int) -> None:
        self._request(queue, _attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_UNBIND, 0, 0)))

    def verdict(self, queue: int, packet_id: int, verdict: int, batch: bool = False) -> None:
        self.sock.send(verdict_message(queue, packet_id, verdict, batch))

    def close(self) -> None:
        self.sock.close()


def queue_stats(path: str = "/proc/net/netfilter/nfnetlink_queue") -> dict[int, dict[str, int]]:
    """Per-queue kernel counters of the current namespace (queue_dropped, user_dropped, ...)."""
    stats: dict[int, dict[str, int]] = {}
    try:
        with open(path) as fh:
            for line in fh:
                f = line.split()
                if len(f) >= 9:
                    stats[int(f[0])] = {
                        "portid": int(f[1]), "queued": int(f[2]), "copy_mode": int(f[3]),
                        "copy_range": int(f[4]), "queue_dropped": int(f[5]),
                        "user_dropped": int(f[6]), "last_id": int(f[7]),
                    }
    except FileNotFoundError:
        pass
    return stats
