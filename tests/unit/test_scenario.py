"""Scenario files: every bad input is one clear error before anything is built."""

from __future__ import annotations

import pytest

from experiments.scenario import ScenarioError, list_scenarios, load_scenario, random_walk, scenario_from_dict
from topologies.catalogue import resolve

BASE = {"name": "t", "duration_s": 10, "apps": [{"name": "a", "type": "FIXED"}],
        "moves": [{"at_s": 2, "to": "gw2"}]}


def make(**changes) -> dict:
    data = {**BASE, **changes}
    return data


def test_shipped_scenarios_load():
    names = {n for n, _ in list_scenarios()}
    assert {"default", "comparison"} <= names
    for n in names:
        load_scenario(n)
    d = load_scenario("default")
    assert [a.type for a in d.apps][:5] == ["FIXED", "SESSION_LASTING", "NON_PERSISTENT", "GRACEFUL_REPLACEMENT",
                                            "legacy"]
    assert [(m.to, m.at_s) for m in d.moves] == [("gw2", 4.0), ("gw1", 9.0)]
    assert load_scenario("comparison").modes == ["mobile-ip", "ondemand", "none"]


@pytest.mark.parametrize("changes,fragment", [
    ({"colour": "red"}, "key 'colour': unknown key"),
    ({"apps": [{"name": "a", "node": "ghost", "type": "FIXED"}]}, "node 'ghost' is not a mobile node"),
    ({"moves": [{"at_s": 2, "to": "core"}]}, "cannot move to 'core': not a gateway"),
    ({"moves": [{"at_s": -1, "to": "gw2"}]}, "at_s must be a non-negative number"),
    ({"apps": [{"name": "a", "type": "SESION_LASTING"}]}, "unknown address type 'SESION_LASTING'"),
    ({"apps": [{"name": "a", "type": "FIXED", "peer": "gw1"}]}, "peer 'gw1' is not a correspondent node"),
    ({"apps": [{"name": "a", "type": "FIXED", "probe": "ping"}]}, "unknown probe 'ping'"),
    ({"moves": [{"at_s": 12, "to": "gw2"}]}, "not before the end of the run"),
    ({"moves": [{"at_s": 2, "to": "gw1"}]}, "mn is already on gw1"),
    ({"mode": "pmip"}, "unknown mode 'pmip'"),
    ({"dad": "sometimes"}, "unknown DAD mode"),
    ({"repetitions": 0}, "repetitions: must be an integer >= 1"),
    ({"gateway": {"grace": 3}}, "gateway.grace: unknown key"),
    ({"topology": {"name": "nowhere"}}, "unknown topology 'nowhere'"),
    ({"apps": []}, "at least one [[apps]] entry"),
])
def test_bad_scenarios(changes, fragment):
    with pytest.raises(ScenarioError) as err:
        scenario_from_dict(make(**changes), "bad.toml")
    assert str(err.value).startswith("bad.toml")
    assert fragment in str(err.value)


def test_overrides_and_unknown_scenario():
    sc = load_scenario("default", {"repetitions": 2, "gateway.grace_s": 3.0, "mode": "mobile-ip"})
    assert (sc.repetitions, sc.gateway.grace_s, sc.mode) == (2, 3.0, "mobile-ip")
    with pytest.raises(ScenarioError, match="unknown scenario 'nope'"):
        load_scenario("nope")


def test_random_walk_is_reproducible_and_stays_on_gateways():
    topo = resolve("grid", {"rows": 3, "cols": 3})
    a = random_walk(topo, "mn1", 1.0, 2.0, 6, 42, 0, "gw1")
    b = random_walk(topo, "mn1", 1.0, 2.0, 6, 42, 0, "gw1")
    assert a == b and len(a) == 6
    here = "gw1"
    for m in a:
        assert topo.nodes[m.to].role == "gw" and topo.graph.has_edge(here, m.to)
        here = m.to
    sc = scenario_from_dict({"topology": {"name": "grid", "params": {"rows": 2, "cols": 2}}, "duration_s": 20,
                             "apps": [{"type": "SESSION_LASTING"}],
                             "mobility": {"pattern": "random-walk", "count": 3, "every_s": 4, "seed": 1}}, "walk.toml")
    assert len(sc.moves) == 3 and sc.moves[0].at_s == 2.0
