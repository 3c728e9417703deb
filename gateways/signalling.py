"""Proxy Binding Update / Acknowledgement exchange over a raw Mobility Header socket.

Sending side: sequence numbers per (peer, mobile node), retransmission with exponential
back-off, and resynchronisation when the peer answers "sequence number out of window"
(status 135 carries the peer's last accepted number). Receiving side: freshness check in
16-bit serial arithmetic, replay of the cached answer for a retransmitted update, and a
handler that turns an update into an acknowledgement.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from ipaddress import IPv6Address

from gateways.config import SignallingPolicy
from odmm.eventloop import Loop, Timer
from odmm.wire import BA_SEQ_OUT_OF_WINDOW, IPPROTO_MH, Binding, WireError, build_binding, parse_binding

Reply = Callable[[Binding | None], None]


def newer(seq: int, last: int) -> bool:
    """RFC 1982 serial comparison on 16 bits: is ``seq`` after ``last``?"""
    return 0 < ((seq - last) & 0xFFFF) < 0x8000


@dataclass
class _Pending:
    peer: IPv6Address
    binding: Binding
    on_reply: Reply
    tries: int
    timeout: float
    timer: Timer | None = None
    resynced: bool = False


class Signaller:
    def __init__(self, loop: Loop, local: IPv6Address, policy: SignallingPolicy, log: Callable[[str], None],
                 on_update: Callable[[Binding, IPv6Address], Binding]) -> None:
        self.loop = loop
        self.local = IPv6Address(local)
        self.policy = policy
        self.log = log
        self.on_update = on_update
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_MH)
        self.sock.bind((str(self.local), 0))
        self.sock.setblocking(False)
        loop.add_reader(self.sock, self._receive)
        self._seq: dict[tuple[IPv6Address, str], int] = {}
        self._pending: dict[tuple[IPv6Address, int], _Pending] = {}
        self._last_rx: dict[tuple[IPv6Address, str], tuple[int, bytes]] = {}
        self.counters = {"pbu_tx": 0, "pbu_rx": 0, "pba_tx": 0, "pba_rx": 0, "retransmits": 0,
                         "timeouts": 0, "malformed": 0, "stale": 0, "resyncs": 0}

    # --- sending -----------------------------------------------------------------------
    def send_update(self, peer: IPv6Address, binding: Binding, on_reply: Reply) -> int:
        """Send a PBU (its ``seq`` is assigned here); ``on_reply`` gets the PBA or None."""
        peer = IPv6Address(peer)
        key = (peer, binding.mn_id)
        seq = (self._seq.get(key, random.randrange(0x10000)) + 1) & 0xFFFF
        self._seq[key] = seq
        p = _Pending(peer, replace(binding, seq=seq, ack=False), on_reply, 0, self.policy.retransmit_s)
        self._pending[(peer, seq)] = p
        self._transmit(p)
        return seq

    def _transmit(self, p: _Pending) -> None:
        data = build_binding(p.binding, str(self.local), str(p.peer))
        try:
            self.sock.sendto(data, (str(p.peer), 0))
        except OSError as exc:
            self.log(f"PBU to {p.peer} not sent: {exc.strerror}")
        self.counters["pbu_tx"] += 1
        if p.tries:
            self.counters["retransmits"] += 1
        p.tries += 1
        p.timer = self.loop.call_later(p.timeout, lambda: self._expire(p))

    def _expire(self, p: _Pending) -> None:
        if self._pending.get((p.peer, p.binding.seq)) is not p:
            return
        if p.tries > self.policy.max_retransmits:
            del self._pending[(p.peer, p.binding.seq)]
            self.counters["timeouts"] += 1
            self.log(f"PBU seq {p.binding.seq} for {p.binding.mn_id} to {p.peer}: no answer after {p.tries} tries")
            p.on_reply(None)
            return
        p.timeout *= 2
        self._transmit(p)

    def _acknowledged(self, ba: Binding, peer: IPv6Address) -> None:
        p = self._pending.pop((peer, ba.seq), None)
        if p is None:
            # status 135 carries the peer's last accepted number, not ours: find by node
            if ba.status == BA_SEQ_OUT_OF_WINDOW:
                p = next((q for k, q in self._pending.items() if k[0] == peer and q.binding.mn_id == ba.mn_id), None)
                if p is not None:
                    del self._pending[(peer, p.binding.seq)]
            if p is None:
                return
        if p.timer:
            p.timer.cancel()
        if ba.status == BA_SEQ_OUT_OF_WINDOW and not p.resynced:
            self.counters["resyncs"] += 1
            seq = (ba.seq + 1) & 0xFFFF
            self._seq[(peer, ba.mn_id)] = seq
            q = _Pending(peer, replace(p.binding, seq=seq), p.on_reply, 0, self.policy.retransmit_s, resynced=True)
            self._pending[(peer, seq)] = q
            self._transmit(q)
            return
        p.on_reply(ba)

    # --- receiving ---------------------------------------------------------------------
    def _receive(self) -> None:
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return
            peer = IPv6Address(addr[0].split("%")[0])
            try:
                msg = parse_binding(data, str(peer), str(self.local))
            except WireError as exc:
                self.counters["malformed"] += 1
                self.log(f"dropped mobility header from {peer}: {exc}")
                continue
            if msg.ack:
                self.counters["pba_rx"] += 1
                self._acknowledged(msg, peer)
            else:
                self.counters["pbu_rx"] += 1
                self._update(msg, peer)

    def _update(self, bu: Binding, peer: IPv6Address) -> None:
        key = (peer, bu.mn_id)
        last = self._last_rx.get(key)
        if last is not None and bu.seq == last[0]:
            self._send_raw(peer, last[1])  # a retransmission: same answer again
            return
        if last is not None and not newer(bu.seq, last[0]):
            self.counters["stale"] += 1
            self.log(f"stale PBU seq {bu.seq} from {peer} for {bu.mn_id} (last {last[0]})")
            ba = Binding(True, last[0], 0, bu.mn_id, status=BA_SEQ_OUT_OF_WINDOW)
            self._send_raw(peer, build_binding(ba, str(self.local), str(peer)))
            return
        ba = self.on_update(bu, peer)
        ba = replace(ba, ack=True, seq=bu.seq, mn_id=bu.mn_id)
        data = build_binding(ba, str(self.local), str(peer))
        if ba.status < 128:
            self._last_rx[key] = (bu.seq, data)
        self._send_raw(peer, data)

    def _send_raw(self, peer: IPv6Address, data: bytes) -> None:
        try:
            self.sock.sendto(data, (str(peer), 0))
            self.counters["pba_tx"] += 1
        except OSError as exc:
            self.log(f"PBA to {peer} not sent: {exc.strerror}")
