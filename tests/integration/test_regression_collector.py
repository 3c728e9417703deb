"""The scenario collector catches a deliberate regression, and passes once it is gone."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

SCENARIO = """
name = "guard"
duration_s = 4.0
repetitions = 1
[gateway]
grace_s = 10.0
[[apps]]
name = "session"
type = "SESSION_LASTING"
[[apps]]
name = "fixed"
type = "FIXED"
[[moves]]
at_s = 1.5
to = "gw2"
[expect.types.SESSION_LASTING]
survives = true
[expect.types.FIXED]
survives = true
"""


def test_collector_fails_on_a_broken_gateway_and_passes_when_fixed(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("ODMM_RESULTS", str(tmp_path / "results"))
    pytester.makeconftest("from experiments.pytest_scenarios import pytest_addoption, pytest_collect_file  # noqa\n")
    path = pytester.makefile(".toml", guard=SCENARIO)

    broken = pytester.runpytest_subprocess(str(path), "--odmm-set", "gateway.fault=no-anchor-tunnel")
    broken.assert_outcomes(failed=1)
    out = broken.stdout.str()
    assert "scenario guard: 1 of 3 expectations not met" in out
    assert "flow session (SESSION_LASTING)" in out and "survives every move" in out
    assert "survived move 1: no" in out and "FAIL" in out
    assert "flow fixed" not in out  # only what failed is listed

    fixed = pytester.runpytest_subprocess(str(path))
    fixed.assert_outcomes(passed=1)
