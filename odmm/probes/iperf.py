"""iperf3 between two testbed nodes (the real tool, JSON output)."""

from __future__ import annotations

import json
import subprocess
import time

from odmm.errors import OdmmError
from odmm.procs import readable


def iperf3(tb, server: str, client: str, *, seconds: float = 5.0, udp: bool = False,
           bitrate: str | None = None, length: int | None = None, extra: list[str] | None = None,
           ready_timeout: float = 5.0) -> dict:
    """Run one iperf3 test from ``client`` to ``server``'s address; return iperf3's JSON."""
    addr = tb.address(server)
    srv = tb.popen(server, ["iperf3", "-s", "-1", "-B", addr, "--forceflush"], stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + ready_timeout
        seen = b""
        while b"listening" not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or srv.poll() is not None:
                raise OdmmError(f"iperf3 server on {server} did not start: {seen.decode(errors='replace')}")
            if readable(srv.stdout, left):
                seen += srv.stdout.read1(4096)
        argv = ["iperf3", "-6", "-c", addr, "-J", "-t", f"{seconds:g}"]
        if udp:
            argv.append("-u")
        if bitrate:
            argv += ["-b", bitrate]
        if length:
            argv += ["-l", str(length)]
        argv += extra or []
        res = tb.run(client, argv, timeout=seconds + 30)
        try:
            data = json.loads(res.stdout)
        except ValueError:
            raise OdmmError(f"iperf3 {client} -> {server} failed: {res.stderr.strip() or res.stdout[:500]}") from None
        if "error" in data:
            raise OdmmError(f"iperf3 {client} -> {server}: {data['error']}")
        return data
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait()
        srv.stdout.close()
