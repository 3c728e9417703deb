"""Kernel receive stamps: the time a packet arrived, not the time it was read."""

from __future__ import annotations

import socket
import struct
import time

from odmm import kstamp


def test_stamp_of_reads_a_timespec_and_ignores_other_messages():
    ts = struct.pack("=qq", 12, 345)
    assert kstamp.stamp_of([(socket.SOL_SOCKET, kstamp.SCM_TIMESTAMPNS, ts)]) == 12_000_000_345
    assert kstamp.stamp_of([(socket.IPPROTO_IPV6, 50, b"\0" * 16)]) is None
    assert kstamp.stamp_of([(socket.SOL_SOCKET, kstamp.SCM_TIMESTAMPNS, b"\0" * 8)]) is None  # truncated


def test_a_late_read_keeps_the_arrival_time():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        kstamp.enable(rx)
        sent = time.monotonic_ns()
        tx.sendto(b"x", rx.getsockname())
        time.sleep(0.05)  # read late on purpose: the stamp must not move with the read
        data, arrived = kstamp.recv_monotonic(rx, 100, kstamp.realtime_offset_ns())
        read = time.monotonic_ns()
        assert data == b"x"
        assert sent - 2_000_000 <= arrived <= sent + 20_000_000, (arrived - sent) / 1e6
        assert read - arrived >= 40_000_000, (read - arrived) / 1e6
    finally:
        rx.close()
        tx.close()
