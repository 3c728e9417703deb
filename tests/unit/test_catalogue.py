"""Catalogue entries and overrides."""

from __future__ import annotations

import pytest

from odmm.errors import TopologyError
from topologies.catalogue import names, parse_value, resolve


def test_catalogue_lists_entries():
    assert {"basic", "line", "grid"} <= set(names())


def test_line_per_link_delays():
    topo = resolve("line", {"n": 4, "delay_ms": [5, 10, 20], "access_ms": [40, 0, 0, 0]})
    assert len(topo.routers()) == 4 and len(topo.hosts()) == 4
    assert topo.link_between("r3", "r4").params.delay_ms == 20
    assert topo.analytic_rtt_ms("h1", "h4") == pytest.approx(2 * (40 + 5 + 10 + 20))


def test_line_wrong_list_length():
    with pytest.raises(TopologyError, match="expected 3 values"):
        resolve("line", {"n": 4, "delay_ms": [1, 2]})


@pytest.mark.parametrize("rows,cols,mns,total", [(2, 3, 1, 10), (6, 7, 5, 50), (14, 14, 1, 200)])
def test_grid_sizes(rows, cols, mns, total):
    topo = resolve("grid", {"rows": rows, "cols": cols, "mns": mns})
    assert len(topo.nodes) == total
    assert len(topo.by_role("gw")) == rows * cols


def test_unknown_generator_parameter():
    with pytest.raises(TopologyError, match="unknown parameter 'size'"):
        resolve("grid", {"size": 3})


def test_file_entry_overrides():
    topo = resolve("basic", {"links.ha-core.delay_ms": 20, "link_defaults.bw_mbit": 50})
    assert topo.link_between("core", "ha").params.delay_ms == 20
    assert all(lk.params.bw_mbit == 50 for lk in topo.links)


def test_bad_override_key():
    with pytest.raises(TopologyError, match="no link core-mn"):
        resolve("basic", {"links.core-mn.delay_ms": 1})
    with pytest.raises(TopologyError, match="expected link_defaults"):
        resolve("basic", {"nodes.cn.role": "gw"})


def test_override_value_is_validated():
    with pytest.raises(TopologyError, match="delay_ms must not be negative"):
        resolve("basic", {"links.core-ha.delay_ms": -5})


def test_unknown_topology():
    with pytest.raises(TopologyError, match="unknown topology 'nowhere'"):
        resolve("nowhere")


def test_parse_value():
    assert parse_value("5") == 5
    assert parse_value("[5, 10]") == [5, 10]
    assert parse_value("2.5") == 2.5
    assert parse_value("abc") == "abc"
