"""``odmm doctor`` reports what the probe found and the backend it implies."""

from __future__ import annotations

import pytest

from odmm.cli import main
from odmm.kernel import probe

pytestmark = pytest.mark.integration


def test_doctor_reports_probe_and_backends(capsys):
    caps = probe()
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert f"link delay/jitter/loss : {caps.delay_backend()}" in out
    assert f"mobility tunnels       : {caps.tunnel_backend()}" in out
    line = next(row for row in out.splitlines() if "tc netem" in row)
    assert ("yes" if caps.netem else "no") in line.split()
