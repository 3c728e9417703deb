"""A pytest plugin: every scenario with an ``[expect]`` table is a test.

    pytest experiments/scenarios [--odmm-reps N] [--odmm-set key=value ...]

Each item runs its scenario for real (results under results/regression/<scenario>/<run-id>)
and checks the expectations; a failure prints one table of subject, expectation, measured
value and verdict. Scenarios without expectations are not collected.
"""

from __future__ import annotations

import os
import time
import tomllib
from pathlib import Path

import pytest

from experiments.expect import evaluate, format_checks

RESULTS = Path(os.environ.get("ODMM_RESULTS", "results")) / "regression"


def pytest_addoption(parser):
    group = parser.getgroup("odmm")
    group.addoption("--odmm-reps", type=int, default=None, help="cap the repetitions of every scenario")
    group.addoption("--odmm-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a scenario key (as odmm run --set)")


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".toml":
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    def collect(self):
        try:
            data = tomllib.loads(self.path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise self.CollectError(f"{self.path}: not valid TOML: {exc}") from None
        if data.get("expect"):
            yield ScenarioItem.from_parent(self, name=str(data.get("name") or self.path.stem))


class ExpectationsNotMet(Exception):
    def __init__(self, checks, out):
        super().__init__(f"{sum(not c.ok for c in checks)} expectation(s) not met")
        self.checks, self.out = checks, out


class ScenarioItem(pytest.Item):
    def runtest(self):
        from experiments.runner import run
        from experiments.scenario import load_scenario
        from topologies.catalogue import parse_value

        if os.geteuid() != 0:
            pytest.skip("scenario regressions build namespaces: run as root")
        overrides = {}
        for item in self.config.getoption("odmm_set") or []:
            key, _, value = item.partition("=")
            overrides[key] = parse_value(value)
        sc = load_scenario(str(self.path), overrides)
        cap = self.config.getoption("odmm_reps")
        if cap:
            sc.repetitions = min(sc.repetitions, cap)
        out = RESULTS / sc.name / time.strftime("%Y%m%d-%H%M%S")
        result = run(sc, out, say=lambda _m: None)
        checks = evaluate(result, sc.expect)
        self.user_properties.append(("results", str(out)))
        if not all(c.ok for c in checks):
            raise ExpectationsNotMet(checks, out)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ExpectationsNotMet):
            e = excinfo.value
            failed = [c for c in e.checks if not c.ok]
            return (f"scenario {self.name}: {len(failed)} of {len(e.checks)} expectations not met "
                    f"(results in {e.out})\n" + format_checks(failed))
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"scenario {self.name}"
