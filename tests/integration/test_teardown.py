"""Building and stopping leaves nothing behind: normal exit, exception, Ctrl-C, crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from odmm import netns
from odmm.clean import clean
from topologies.catalogue import resolve
from topologies.testbed import Testbed

from .helpers import settled_snapshot, snapshot

pytestmark = pytest.mark.integration


def test_grid_50_nodes_leaves_nothing(tmp_path):
    before = snapshot()
    topo = resolve("grid", {"rows": 6, "cols": 7, "mns": 5})
    assert len(topo.nodes) == 50
    with Testbed(topo, log_dir=tmp_path) as tb:
        during = snapshot()
        assert len(during["named"]) == 50
        assert during["netns_inodes"] >= before["netns_inodes"] + 50
        assert len(during["processes"]) >= 50  # shells + delay elements
        assert len(tb.emulator.daemons) > 0
    after = settled_snapshot(before)
    assert after == before


def test_exception_inside_tears_down(tmp_path):
    before = snapshot()
    with pytest.raises(RuntimeError, match="boom"):
        with Testbed(resolve("basic"), log_dir=tmp_path):
            raise RuntimeError("boom")
    assert settled_snapshot(before) == before


def test_keyboard_interrupt_inside_tears_down(tmp_path):
    before = snapshot()
    with pytest.raises(KeyboardInterrupt):
        with Testbed(resolve("basic"), log_dir=tmp_path):
            raise KeyboardInterrupt
    assert settled_snapshot(before) == before


def _wait_for_namespaces(deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not netns.ours() or not any(b"delayd" in open(f"/proc/{p}/cmdline", "rb").read()
                                      for p in snapshot()["processes"] if os.path.exists(f"/proc/{p}")):
        assert time.monotonic() < deadline, "testbed did not come up"
        time.sleep(0.05)


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "odmm.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_ctrl_c_on_the_cli_tears_down(tmp_path):
    before = snapshot()
    proc = _cli("measure", "line", "--set", "n=3", "--count", "1000", "--out", str(tmp_path))
    _wait_for_namespaces()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert settled_snapshot(before) == before


def test_clean_after_a_killed_run(tmp_path):
    before = snapshot()
    proc = _cli("measure", "line", "--set", "n=3", "--count", "1000", "--out", str(tmp_path))
    _wait_for_namespaces()
    proc.kill()  # no chance to clean up
    proc.communicate(timeout=10)
    assert netns.ours(), "a killed run should leave namespaces for clean to find"
    report = clean()
    assert report.namespaces and report.processes > 0
    assert settled_snapshot(before) == before
    assert clean().summary() == "nothing to clean"
