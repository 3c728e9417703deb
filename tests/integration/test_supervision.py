"""A dead delay element or a missing kernel feature is never silent."""

from __future__ import annotations

import pytest

from odmm import netns
from odmm.errors import DaemonDied, KernelFeatureMissing
from odmm.kernel import capabilities
from odmm.probes.ping import ping
from topologies.catalogue import resolve
from topologies.testbed import Testbed

pytestmark = pytest.mark.integration


def test_dead_delay_element_fails_loudly(tmp_path):
    topo = resolve("basic")
    with Testbed(topo, log_dir=tmp_path) as tb:
        proc = tb.emulator.daemons["core"]
        proc.popen.kill()
        proc.popen.wait()
        with pytest.raises(DaemonDied, match="delay element in core died"):
            tb.check()
        # and the link is not silently unshaped: packets through core stop
        res = ping(netns.name_of("cn"), tb.address("mn"), count=5, warmup=0, interval=0.05, timeout=1.0)
        assert res.received == 0


def test_unavailable_backend_refused_before_anything_is_built(tmp_path):
    caps = capabilities()
    if caps.netem:
        pytest.skip("this kernel has netem")
    with pytest.raises(KernelFeatureMissing, match="netem"):
        Testbed(resolve("basic"), log_dir=tmp_path, delay_backend="netem").start()
    assert netns.ours() == []
