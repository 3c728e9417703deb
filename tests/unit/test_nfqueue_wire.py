"""nfnetlink_queue message encoding and parsing."""

from __future__ import annotations

import socket
import struct

from odmm.linkemu.nfqueue import (
    NF_ACCEPT,
    NFQA_PACKET_HDR,
    NFQA_TIMESTAMP,
    _attr,
    parse_packet,
    verdict_message,
)


def packet_message(queue: int, packet_id: int, stamp: tuple[int, int] | None) -> bytes:
    attrs = _attr(NFQA_PACKET_HDR, struct.pack("!IHB", packet_id, 0x86DD, 0) + b"\0")
    if stamp:
        attrs += _attr(NFQA_TIMESTAMP, struct.pack("!QQ", *stamp))
    body = struct.pack("!BBH", socket.AF_INET6, 0, queue) + attrs
    return struct.pack("=IHHII", 16 + len(body), (3 << 8) | 0, 0, 0, 0) + body


def test_parse_packet_with_timestamp():
    msg = packet_message(5, 1234, (1_700_000_000, 250))
    assert parse_packet(msg, len(msg)) == (5, 1234, 1_700_000_000 * 10**9 + 250_000)


def test_parse_packet_without_timestamp():
    msg = packet_message(0, 7, None)
    assert parse_packet(msg, len(msg)) == (0, 7, 0)


def test_parse_rejects_truncated_and_foreign_messages():
    msg = packet_message(0, 7, (1, 2))
    for cut in (0, 10, 19, 23):
        assert parse_packet(msg[:cut], cut) is None
    other = bytearray(msg)
    other[4:6] = struct.pack("=H", (3 << 8) | 2)  # a CONFIG message
    assert parse_packet(bytes(other), len(other)) is None
    bad_len = bytearray(msg)
    struct.pack_into("=H", bad_len, 20, 2)  # attribute shorter than its header
    assert parse_packet(bytes(bad_len), len(bad_len)) is None


def test_verdict_batch_encoding():
    msg = verdict_message(3, 99, NF_ACCEPT, batch=True)
    length, mtype, flags = struct.unpack_from("=IHH", msg)
    assert length == len(msg) == 32
    assert mtype == (3 << 8) | 3 and flags == 1
    assert struct.unpack_from("!H", msg, 18)[0] == 3
    alen, atype = struct.unpack_from("=HH", msg, 20)
    assert (alen, atype) == (12, 2)
    assert struct.unpack_from("!II", msg, 24) == (NF_ACCEPT, 99)
