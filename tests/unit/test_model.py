"""Topology model: parsing, validation errors, graph queries, analytic RTT."""

from __future__ import annotations

from pathlib import Path

import pytest

from odmm.errors import TopologyError
from topologies.catalogue import resolve
from topologies.model import LinkParams, load_topology, topology_from_dict

GOOD = """
name = "t"
[link_defaults]
delay_ms = 1
[[nodes]]
name = "cn"
role = "cn"
[[nodes]]
name = "r"
role = "core"
[[nodes]]
name = "gw"
role = "gw"
[[nodes]]
name = "mn"
role = "mn"
[[links]]
a = "cn"
b = "r"
delay_ms = 10
[[links]]
a = "r"
b = "gw"
[[links]]
a = "gw"
b = "mn"
delay_ms = 2
loss_pct = 1.5
bw_mbit = 20
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "topo.toml"
    p.write_text(text)
    return p


def test_parse_good_file(tmp_path):
    topo = load_topology(write(tmp_path, GOOD))
    assert topo.name == "t"
    assert [n.role for n in topo.nodes.values()] == ["cn", "core", "gw", "mn"]
    assert topo.link_between("r", "gw").params == LinkParams(delay_ms=1.0)  # from link_defaults
    assert topo.link_between("mn", "gw").params == LinkParams(2.0, 0.0, 1.5, 20.0)
    assert topo.analytic_rtt_ms("cn", "mn") == pytest.approx(2 * (10 + 1 + 2))
    assert topo.path("cn", "mn") == ["cn", "r", "gw", "mn"]
    assert topo.needs_delay_element() and topo.needs_shaping()


def test_basic_catalogue_paths_and_via():
    topo = resolve("basic")
    assert topo.path("cn", "mn") == ["cn", "core", "gw1", "mn"]
    assert topo.analytic_rtt_ms("cn", "mn") == pytest.approx(32.0)
    # Mobile-IP style: through the Home Agent
    assert topo.path("cn", "mn", via="ha") == ["cn", "core", "ha", "core", "gw1", "mn"]
    assert topo.analytic_rtt_ms("cn", "mn", via="ha") == pytest.approx(2 * (10 + 15 + 15 + 5 + 1))
    # the direct gw1-gw2 link (2 ms) beats going through the core (10 ms)
    assert topo.path("gw1", "gw2") == ["gw1", "gw2"]


def test_equal_delay_prefers_fewer_hops():
    topo = resolve("grid", {"rows": 2, "cols": 2, "gw_ms": 0, "core_ms": 0})
    # core-gw1-gw2-gw4 and core-gw3-gw4 both cost 0 ms: the 2-hop path wins
    assert topo.path("core", "gw4") == ["core", "gw3", "gw4"]


BAD_CASES = {
    "unknown role": ('[[nodes]]\nname="x"\nrole="router"\n[[nodes]]\nname="y"\nrole="core"\n'
                     '[[links]]\na="x"\nb="y"\n', ["node 'x'", "unknown role 'router'"]),
    "link to undefined node": ('[[nodes]]\nname="x"\nrole="core"\n[[links]]\na="x"\nb="ghost"\n',
                               ["link x-ghost", "undefined node 'ghost'"]),
    "negative delay": ('[[nodes]]\nname="x"\nrole="core"\n[[nodes]]\nname="y"\nrole="core"\n'
                       '[[links]]\na="x"\nb="y"\ndelay_ms=-3\n', ["link x-y", "delay_ms must not be negative, got -3"]),
    "non-numeric delay": ('[[nodes]]\nname="x"\nrole="core"\n[[nodes]]\nname="y"\nrole="core"\n'
                          '[[links]]\na="x"\nb="y"\ndelay_ms="fast"\n', ["link x-y", "delay_ms must be a number, got 'fast'"]),
    "duplicate names": ('[[nodes]]\nname="x"\nrole="core"\n[[nodes]]\nname="x"\nrole="gw"\n',
                        ["node 'x'", "duplicate node name"]),
    "disconnected graph": ('[[nodes]]\nname="a"\nrole="core"\n[[nodes]]\nname="b"\nrole="core"\n'
                           '[[nodes]]\nname="c"\nrole="core"\n[[nodes]]\nname="d"\nrole="core"\n'
                           '[[links]]\na="a"\nb="b"\n[[links]]\na="c"\nb="d"\n',
                           ["disconnected", "{a, b}", "{c, d}"]),
    "loss above 100": ('[[nodes]]\nname="x"\nrole="core"\n[[nodes]]\nname="y"\nrole="core"\n'
                       '[[links]]\na="x"\nb="y"\nloss_pct=150\n', ["link x-y", "loss_pct must be between 0 and 100, got 150"]),
    "loss below 0": ('[[nodes]]\nname="x"\nrole="core"\n[[nodes]]\nname="y"\nrole="core"\n'
                     '[[links]]\na="x"\nb="y"\nloss_pct=-1\n', ["loss_pct must be between 0 and 100, got -1"]),
    "bad toml": ("[[nodes]\nname=", ["not valid TOML"]),
    "unknown link key": ('[[nodes]]\nname="x"\nrole="core"\n[[nodes]]\nname="y"\nrole="core"\n'
                         '[[links]]\na="x"\nb="y"\nlatency=3\n', ["link x-y", "unknown key 'latency'"]),
    "mobile node not on a gateway": ('[[nodes]]\nname="r"\nrole="core"\n[[nodes]]\nname="m"\nrole="mn"\n'
                                     '[[links]]\na="r"\nb="m"\n', ["node 'm'", "attaches to a gateway"]),
    "host to host": ('[[nodes]]\nname="c1"\nrole="cn"\n[[nodes]]\nname="c2"\nrole="cn"\n'
                     '[[links]]\na="c1"\nb="c2"\n', ["link c1-c2", "needs a router"]),
    "name too long": ('[[nodes]]\nname="averyverylongname"\nrole="core"\n', ["name must be 1-9"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_item_and_problem(tmp_path, case):
    text, expected = BAD_CASES[case]
    path = write(tmp_path, text)
    with pytest.raises(TopologyError) as err:
        load_topology(path)
    msg = str(err.value)
    assert msg.startswith(str(path)), msg
    for fragment in expected:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"


def test_several_problems_reported_together(tmp_path):
    text = ('[[nodes]]\nname="x"\nrole="core"\n[[nodes]]\nname="y"\nrole="core"\n'
            '[[links]]\na="x"\nb="y"\ndelay_ms=-1\nloss_pct=101\n')
    with pytest.raises(TopologyError, match="2 problems"):
        load_topology(write(tmp_path, text))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(TopologyError, match="cannot read topology file"):
        load_topology(tmp_path / "nope.toml")


def test_bool_is_not_a_number():
    data = {"nodes": [{"name": "x", "role": "core"}, {"name": "y", "role": "core"}],
            "links": [{"a": "x", "b": "y", "delay_ms": True}]}
    with pytest.raises(TopologyError, match="delay_ms must be a number"):
        topology_from_dict(data, "inline")
