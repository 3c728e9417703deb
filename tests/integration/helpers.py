"""What a testbed may leave behind, listed so that before/after can be compared."""

from __future__ import annotations

import os
import subprocess
import time

from odmm import netns
from topologies.testbed import MARK_ENV


def _net_namespaces() -> set[int]:
    seen = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                seen.add(os.stat(f"/proc/{entry}/ns/net").st_ino)
            except OSError:
                pass
    return seen


def _our_processes() -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmd = fh.read()
            with open(f"/proc/{entry}/environ", "rb") as fh:
                env = fh.read()
        except OSError:
            continue
        if b"odmm.linkemu.delayd" in cmd or b"mininet:" in cmd or f"{MARK_ENV}=".encode() in env:
            found.add(int(entry))
    return found


def snapshot() -> dict:
    """Namespaces, root links, testbed processes and root ip6tables/iptables rules."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    rules = ""
    for tool in ("ip6tables-save", "iptables-save", "ip6tables-legacy-save", "iptables-legacy-save"):
        rules += subprocess.run([tool], capture_output=True, text=True).stdout if _exists(tool) else ""
    return {
        "named": netns.ours(),
        "netns_inodes": len(_net_namespaces()),
        "links": sorted(line.split(":")[1].strip() for line in links.splitlines()),
        "processes": sorted(_our_processes()),
        "rules": sorted(r for r in rules.splitlines() if r.startswith("-A")),
    }


def deploy_basic(log_dir, access: str, **network):
    """`basic` with the gateway daemons (and, for access='managed', the mobile host) up."""
    from gateways.deploy import MobilityNetwork
    from topologies.catalogue import resolve
    from topologies.testbed import Testbed

    tb = Testbed(resolve("basic"), log_dir=log_dir, access=access).start()
    try:
        mob = MobilityNetwork(tb, **network).start()
        mob.wait_ready("mn")
    except BaseException:
        tb.stop()
        raise
    return tb, mob


def _exists(tool: str) -> bool:
    return any(os.access(os.path.join(d, tool), os.X_OK) for d in os.environ.get("PATH", "").split(":"))


def settled_snapshot(expected: dict, timeout: float = 5.0) -> dict:
    """Snapshot again until it matches ``expected`` or the deadline passes (the kernel
    releases namespaces and reaps processes asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        snap = snapshot()
        if snap == expected or time.monotonic() > deadline:
            return snap
        time.sleep(0.05)
