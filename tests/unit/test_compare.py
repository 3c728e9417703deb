"""odmm compare: regressions beyond the tolerance make it fail."""

from __future__ import annotations

import copy
import json

from experiments.compare import compare
from odmm.cli import main


def result(interruption: float, survived: bool = True, rtt: float = 32.0) -> dict:
    move = {"move": 1, "to": "gw2", "survived": survived, "interruption_ms": interruption if survived else None,
            "bound_ms": 75.0, "ratio_to_bound": interruption / 75 if survived else None, "rtt_after_ms": 36.0,
            "analytic_after_ms": 36.0}
    flow = {"flow": "session", "requested": "SESSION_LASTING", "type": "SESSION_LASTING", "survived_all": survived,
            "rtt_initial_ms": rtt, "analytic_initial_ms": 32.0, "loss_pct": 1.0, "setsc_ms": 5.0,
            "delivering_at_end": survived, "moves": [move], "anchor": "gw1"}
    run = {"repetition": 1, "mode": "ondemand", "status": "complete", "flows": [flow], "handoffs": [],
           "network": {"ha": {"tx_packets": 10, "rx_packets": 10}}}
    return {"scenario": "s", "modes": ["ondemand"], "runs": [run]}


def test_no_regression_within_tolerance():
    rows, regressions = compare(result(60.0), result(58.0), 0.10)
    assert regressions == [] and any(r["metric"] == "move1.interruption_ms" for r in rows)


def test_regressions_are_named():
    _, regressions = compare(result(120.0), result(60.0), 0.10)
    assert regressions == ["ondemand/session move1.interruption_ms: 120.0 vs baseline 60.0 (> +10% + 5 ms)"]
    _, regressions = compare(result(0, survived=False), result(60.0), 0.10)
    assert any("survived in 0% of repetitions, baseline 100%" in r for r in regressions)
    broken = copy.deepcopy(result(60.0))
    broken["runs"][0]["flows"] = []
    _, regressions = compare(broken, result(60.0), 0.10)
    assert regressions == ["ondemand/session: flow missing from the result"]


def test_cli_exit_codes(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(result(120.0)))
    b.write_text(json.dumps(result(60.0)))
    assert main(["compare", str(a), str(b), "--tolerance", "0.1"]) == 1
    assert "1 regression(s)" in capsys.readouterr().out
    assert main(["compare", str(b), str(b)]) == 0
    assert main(["compare", str(tmp_path / "none"), str(b)]) == 2
