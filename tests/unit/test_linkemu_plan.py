"""Where each link direction is emulated, and what gets installed."""

from __future__ import annotations

from odmm.kernel import Capabilities
from odmm.linkemu.emulator import LinkEmulator, delayd_config, netem_args, tbf_args
from odmm.linkemu.plan import plan_egress, plan_queues
from topologies.addressing import AddressPlan
from topologies.catalogue import resolve
from topologies.model import LinkParams


def test_hooks_only_in_router_namespaces():
    topo = resolve("basic")
    plan = AddressPlan(topo)
    hooks = plan_queues(topo, plan)
    assert set(hooks) <= {n.name for n in topo.routers()}
    by_dir = {(h.src, h.dst): h for hs in hooks.values() for h in hs}
    assert len(by_dir) == 2 * len(topo.links)  # every link has delay in basic
    # towards a router: that router's PREROUTING, matching the ingress interface
    h = by_dir[("cn", "core")]
    assert (h.node, h.chains, h.match, h.iface) == ("core", ("PREROUTING",), "-i", "core-eth0")
    # towards an end host: the router's FORWARD and OUTPUT, matching the egress interface
    h = by_dir[("gw1", "mn")]
    assert (h.node, h.chains, h.match) == ("gw1", ("FORWARD", "OUTPUT"), "-o")
    assert h.iface == plan.interface("gw1", "mn").name
    # queue numbers are unique per namespace
    for node_hooks in hooks.values():
        assert [x.queue for x in node_hooks] == list(range(len(node_hooks)))


def test_rules_text():
    topo = resolve("basic")
    hooks = plan_queues(topo, AddressPlan(topo))
    rule = hooks["gw1"][0].rules()[0]
    assert rule.startswith("-A PREROUTING -i gw1-eth0 -m comment --comment odmm -j NFQUEUE --queue-num 0")
    assert "--queue-bypass" not in rule  # no silent pass-through if the element is gone


def test_undelayed_links_get_no_hooks():
    topo = resolve("line", {"n": 3, "delay_ms": [0, 7], "access_ms": 0})
    hooks = plan_queues(topo, AddressPlan(topo))
    dirs = {(h.src, h.dst) for hs in hooks.values() for h in hs}
    assert dirs == {("r2", "r3"), ("r3", "r2")}


def test_egress_shapes_for_rate_caps():
    topo = resolve("line", {"n": 2, "delay_ms": 1, "bw_mbit": 10})
    plan = AddressPlan(topo)
    shapes = plan_egress(topo, plan, delay_too=False)
    assert len(shapes) == 2 * len(topo.links)
    assert all(s.iface == plan.interface(s.src, s.dst).name for s in shapes)
    assert len(plan_egress(resolve("basic"), AddressPlan(resolve("basic")), delay_too=False)) == 0
    assert len(plan_egress(resolve("basic"), AddressPlan(resolve("basic")), delay_too=True)) == 12


def test_qdisc_parameters():
    t = tbf_args(10)
    assert t["rate"] == "10000kbit" and t["burst"] >= 3028
    n = netem_args(LinkParams(delay_ms=5, jitter_ms=1, loss_pct=2))
    assert n == {"delay": 5000, "limit": 10000, "jitter": 1000, "loss": 2}


def test_delayd_config_marks_egress_queues(tmp_path):
    topo = resolve("basic")
    hooks = plan_queues(topo, AddressPlan(topo))["gw1"]
    cfg = delayd_config(hooks, 3, tmp_path / "s.json")
    assert cfg["seed"] == 3
    assert {q["link"]: q["egress"] for q in cfg["queues"]}["gw1->mn"] is True
    assert {q["link"]: q["egress"] for q in cfg["queues"]}["core->gw1"] is False


def test_backend_choice_and_refusal():
    topo = resolve("basic")
    plan = AddressPlan(topo)
    both = Capabilities(netem=True, nfqueue=True, tbf=True)
    assert LinkEmulator(topo, plan, both).delay_backend == "netem"
    assert LinkEmulator(topo, plan, both, forced_delay="nfqueue").delay_backend == "nfqueue"
    only_nfq = Capabilities(nfqueue=True, tbf=True)
    emu = LinkEmulator(topo, plan, only_nfq)
    assert emu.delay_backend == "nfqueue" and "NFQUEUE" in emu.describe()
    import pytest

    from odmm.errors import KernelFeatureMissing
    nothing = Capabilities(notes={"netem": "no sch_netem", "nfqueue": "no iptables"})
    with pytest.raises(KernelFeatureMissing, match="sch_netem"):
        LinkEmulator(topo, plan, nothing)
    capped = resolve("basic", {"link_defaults.bw_mbit": 5})
    with pytest.raises(KernelFeatureMissing, match="tbf"):
        LinkEmulator(capped, AddressPlan(capped), Capabilities(nfqueue=True, notes={"tbf": "no sch_tbf"}))
    with pytest.raises(KernelFeatureMissing, match="netem"):
        LinkEmulator(topo, plan, only_nfq, forced_delay="netem")
