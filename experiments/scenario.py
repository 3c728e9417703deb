"""Scenario files: what a handoff experiment builds, runs, moves and expects.

A scenario is TOML (see experiments/scenarios/default.toml and docs/experiments.md). It is
validated completely before any namespace exists: every problem is reported as one
``ScenarioError`` naming the file, the item and the problem.
"""

from __future__ import annotations

import copy
import random
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import networkx as nx

from experiments.expect import validate as validate_expect
from gateways.config import FAULTS, MODES, GatewayPolicy, SignallingPolicy
from mobilehost.config import DAD_MODES, MobileHostPolicy
from odmm.addrtypes import REQUESTABLE, UnknownAddressType, parse_type
from odmm.errors import OdmmError, TopologyError
from topologies import catalogue
from topologies.model import Topology, topology_from_dict

SCENARIO_DIR = Path(__file__).parent / "scenarios"
PROBES = ("udp-echo", "tcp-stream")
LEGACY = "legacy"


class ScenarioError(OdmmError):
    """An invalid scenario; nothing has been started."""


@dataclass(frozen=True)
class App:
    name: str
    node: str
    type: str              # an address type name, or "legacy" (never calls setsc)
    probe: str = "udp-echo"
    rate_pps: float = 100.0
    peer: str = "cn"
    port: int = 0          # 0: one per application
    size: int = 64
    on_net: bool = False
    stream_pps: float = 200.0  # the downlink stream of a udp-echo probe (its packet spacing is the
                               # resolution of the measured interruption); 0: none


@dataclass(frozen=True)
class Move:
    node: str
    at_s: float
    to: str
    gap_ms: float = 0.0


@dataclass
class Scenario:
    name: str
    source: str
    topology: Topology
    mode: str = "ondemand"
    dad: str = "off"
    repetitions: int = 1
    seed: int = 1
    duration_s: float = 10.0
    apps: list[App] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)
    gateway: GatewayPolicy = field(default_factory=GatewayPolicy)
    host: MobileHostPolicy = field(default_factory=MobileHostPolicy)
    signalling: SignallingPolicy = field(default_factory=SignallingPolicy)
    modes: list[str] = field(default_factory=list)   # comparison: run the same mix in each mode
    expect: dict = field(default_factory=dict)
    pcap: bool = False     # capture ND and mobility signalling on every gateway, the HA and mobile nodes
    description: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    def with_mode(self, mode: str) -> Scenario:
        s = copy.copy(self)
        s.mode, s.modes = mode, []
        return s


TOP_KEYS = {"name", "description", "mode", "modes", "dad", "repetitions", "seed", "duration_s", "topology",
            "apps", "moves", "mobility", "gateway", "host", "signalling", "expect", "pcap"}


class _Problems:
    def __init__(self, source: str) -> None:
        self.source, self.items = source, []

    def add(self, item: str, problem: str) -> None:
        self.items.append(f"{item}: {problem}")

    def check(self) -> None:
        if len(self.items) == 1:
            raise ScenarioError(f"{self.source}: {self.items[0]}")
        if self.items:
            raise ScenarioError(f"{self.source}: {len(self.items)} problems:\n  " + "\n  ".join(self.items))


def _policy(cls, raw: Any, item: str, problems: _Problems):
    names = {f.name for f in fields(cls)}
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        problems.add(item, "must be a table")
        return cls()
    unknown = [k for k in raw if k not in names]
    for k in unknown:
        problems.add(f"{item}.{k}", f"unknown key (expected one of {', '.join(sorted(names))})")
    try:
        return cls(**{k: v for k, v in raw.items() if k in names})
    except TypeError as exc:
        problems.add(item, str(exc))
        return cls()


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def apply_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    """``--set a.b=v`` on the raw scenario table."""
    data = copy.deepcopy(data)
    for key, value in overrides.items():
        node = data
        parts = key.split(".")
        for p in parts[:-1]:
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            if not isinstance(nxt, dict):
                raise ScenarioError(f"--set {key}: {p!r} is not a table")
            node = nxt
        node[parts[-1]] = value
    return data


def _topology(raw: Any, problems: _Problems) -> Topology | None:
    if raw is None:
        raw = {"name": "basic"}
    if not isinstance(raw, dict):
        problems.add("topology", "must be a table: {name = ..., params = {...}} or inline nodes/links")
        return None
    try:
        if "nodes" in raw:
            return topology_from_dict({k: v for k, v in raw.items() if k != "params"}, f"{problems.source} [topology]")
        unknown = [k for k in raw if k not in ("name", "params")]
        if unknown:
            problems.add(f"topology.{unknown[0]}", "unknown key (expected name and params, or nodes and links)")
            return None
        return catalogue.resolve(str(raw.get("name", "basic")), raw.get("params") or {})
    except TopologyError as exc:
        problems.add("topology", str(exc))
        return None


def random_walk(topo: Topology, node: str, start_s: float, every_s: float, count: int, seed: int,
                gap_ms: float, first: str) -> list[Move]:
    """Moves of ``node`` to a random neighbouring gateway (in the gateway graph), reproducibly."""
    gws = [n.name for n in topo.by_role("gw")]
    sub = topo.graph.subgraph(gws)
    rng = random.Random(seed)
    here, out = first, []
    for i in range(count):
        options = sorted(nx.neighbors(sub, here)) or sorted(g for g in gws if g != here)
        here = rng.choice(options)
        out.append(Move(node, start_s + i * every_s, here, gap_ms))
    return out


def scenario_from_dict(data: dict, source: str) -> Scenario:
    problems = _Problems(source)
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: a scenario must be a table")
    for k in data:
        if k not in TOP_KEYS:
            problems.add(f"key {k!r}", f"unknown key (expected one of {', '.join(sorted(TOP_KEYS))})")
    topo = _topology(data.get("topology"), problems)
    sc = Scenario(name=str(data.get("name") or Path(source).stem), source=source, topology=topo,  # type: ignore[arg-type]
                  description=str(data.get("description", "")), raw=data)
    mode = data.get("mode", "ondemand")
    if mode not in MODES:
        problems.add("mode", f"unknown mode {mode!r} (expected one of {', '.join(MODES)})")
    sc.mode = mode
    modes = data.get("modes", [])
    if not isinstance(modes, list) or any(m not in MODES for m in modes):
        problems.add("modes", f"a list of modes from {', '.join(MODES)}")
        modes = []
    sc.modes = modes
    if data.get("dad", "off") not in DAD_MODES:
        problems.add("dad", f"unknown DAD mode {data.get('dad')!r} (expected one of {', '.join(DAD_MODES)})")
    sc.dad = data.get("dad", "off")
    if not isinstance(data.get("pcap", False), bool):
        problems.add("pcap", f"must be true or false, got {data.get('pcap')!r}")
    sc.pcap = bool(data.get("pcap", False))
    for key, lo in (("repetitions", 1), ("seed", 0)):
        v = data.get(key, getattr(sc, key))
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            problems.add(key, f"must be an integer >= {lo}, got {v!r}")
        else:
            setattr(sc, key, v)
    dur = data.get("duration_s", sc.duration_s)
    if not _number(dur) or dur <= 0:
        problems.add("duration_s", f"must be a positive number, got {dur!r}")
    else:
        sc.duration_s = float(dur)
    sc.gateway = _policy(GatewayPolicy, data.get("gateway"), "gateway", problems)
    sc.host = _policy(MobileHostPolicy, data.get("host"), "host", problems)
    sc.signalling = _policy(SignallingPolicy, data.get("signalling"), "signalling", problems)
    for item, names in (("gateway.types", sc.gateway.types), ("host.unprivileged_types", sc.host.unprivileged_types),
                        ("host.boot_types", sc.host.boot_types),
                        ("gateway.default_type", [sc.gateway.default_type]), ("host.default_type", [sc.host.default_type])):
        for n in names:
            try:
                parse_type(n)
            except UnknownAddressType as exc:
                problems.add(item, str(exc))
    sc.expect = data.get("expect", {}) if isinstance(data.get("expect", {}), dict) else {}
    if not isinstance(data.get("expect", {}), dict):
        problems.add("expect", "must be a table")
    for p in validate_expect(sc.expect):
        problems.add(p.split(":")[0], p.split(": ", 1)[1])
    if sc.gateway.fault not in FAULTS:
        problems.add("gateway.fault", f"unknown fault {sc.gateway.fault!r} (expected one of {', '.join(repr(f) for f in FAULTS)})")
    nodes = topo.nodes if topo else {}
    mns = [n for n, v in nodes.items() if v.role == "mn"]
    raw_apps = data.get("apps", [])
    if not isinstance(raw_apps, list):
        problems.add("apps", "must be a list of [[apps]] tables")
        raw_apps = []
    names = set()
    app_keys = {f.name for f in fields(App)}
    for i, raw in enumerate(raw_apps):
        item = f"apps[{i}]" + (f" ({raw.get('name')})" if isinstance(raw, dict) and raw.get("name") else "")
        if not isinstance(raw, dict):
            problems.add(item, "must be a table")
            continue
        for k in raw:
            if k not in app_keys:
                problems.add(item, f"unknown key {k!r} (expected {', '.join(sorted(app_keys))})")
        name = raw.get("name", f"app{i + 1}")
        if name in names:
            problems.add(item, f"duplicate application name {name!r}")
        names.add(name)
        node = raw.get("node", mns[0] if len(mns) == 1 else None)
        if node not in nodes or (node and nodes[node].role != "mn"):
            problems.add(item, f"node {node!r} is not a mobile node of the topology ({', '.join(mns) or 'none'})")
        t = str(raw.get("type", LEGACY))
        if t != LEGACY:
            try:
                if parse_type(t) not in REQUESTABLE:
                    raise UnknownAddressType(f"type {t!r} cannot be requested")
                t = parse_type(t).name
            except UnknownAddressType as exc:
                problems.add(item, f"{exc} (or 'legacy')")
        peer = raw.get("peer", "cn")
        if peer not in nodes or nodes[peer].role != "cn":
            problems.add(item, f"peer {peer!r} is not a correspondent node of the topology")
        probe = raw.get("probe", "udp-echo")
        if probe not in PROBES:
            problems.add(item, f"unknown probe {probe!r} (expected {', '.join(PROBES)})")
        rate = raw.get("rate_pps", 100.0)
        if not _number(rate) or not 0 < rate <= 2000:
            problems.add(item, f"rate_pps must be in (0, 2000], got {rate!r}")
        size = raw.get("size", 64)
        if not isinstance(size, int) or not 32 <= size <= 1400:
            problems.add(item, f"size must be an integer in [32, 1400], got {size!r}")
        stream = raw.get("stream_pps", App.stream_pps)
        if not _number(stream) or not 0 <= stream <= 2000:
            problems.add(item, f"stream_pps must be in [0, 2000], got {stream!r}")
            stream = App.stream_pps
        sc.apps.append(App(name, node, t, probe, float(rate) if _number(rate) else 100.0, peer,
                           int(raw.get("port", 0) or 0), size if isinstance(size, int) else 64,
                           bool(raw.get("on_net", False)), float(stream)))
    if not sc.apps:
        problems.add("apps", "at least one [[apps]] entry is needed")
    gws = [n for n, v in nodes.items() if v.role == "gw"]
    raw_moves = data.get("moves", [])
    if not isinstance(raw_moves, list):
        problems.add("moves", "must be a list of [[moves]] tables")
        raw_moves = []
    for i, raw in enumerate(raw_moves):
        item = f"moves[{i}]"
        if not isinstance(raw, dict):
            problems.add(item, "must be a table")
            continue
        for k in raw:
            if k not in ("node", "at_s", "to", "gap_ms"):
                problems.add(item, f"unknown key {k!r} (expected node, at_s, to, gap_ms)")
        node = raw.get("node", mns[0] if len(mns) == 1 else None)
        if node not in mns:
            problems.add(item, f"node {node!r} is not a mobile node ({', '.join(mns) or 'none'})")
        to = raw.get("to")
        if to not in gws:
            problems.add(item, f"cannot move to {to!r}: not a gateway ({', '.join(gws)})")
        at, gap = raw.get("at_s"), raw.get("gap_ms", 0)
        if not _number(at) or at < 0:
            problems.add(item, f"at_s must be a non-negative number, got {at!r}")
            at = 0
        if not _number(gap) or gap < 0:
            problems.add(item, f"gap_ms must be a non-negative number, got {gap!r}")
            gap = 0
        sc.moves.append(Move(node, float(at), to, float(gap)))
    walk = data.get("mobility")
    if walk is not None and topo is not None:
        keys = {"pattern", "node", "start_s", "every_s", "count", "seed", "gap_ms"}
        if not isinstance(walk, dict) or walk.get("pattern") != "random-walk":
            problems.add("mobility", "expected {pattern = 'random-walk', node, start_s, every_s, count, seed, gap_ms}")
        else:
            for k in walk:
                if k not in keys:
                    problems.add("mobility", f"unknown key {k!r} (expected {', '.join(sorted(keys))})")
            node = walk.get("node", mns[0] if len(mns) == 1 else None)
            if node not in mns:
                problems.add("mobility", f"node {node!r} is not a mobile node")
            else:
                first = topo.links_of(node)[0].other(node)
                sc.moves += random_walk(topo, node, float(walk.get("start_s", 2.0)), float(walk.get("every_s", 5.0)),
                                        int(walk.get("count", 3)), int(walk.get("seed", sc.seed)),
                                        float(walk.get("gap_ms", 0.0)), first)
    sc.moves.sort(key=lambda m: m.at_s)
    for m in sc.moves:
        if m.at_s >= sc.duration_s:
            problems.add("moves", f"a move at {m.at_s:g} s is not before the end of the run ({sc.duration_s:g} s)")
    where = {n: topo.links_of(n)[0].other(n) for n in mns} if topo else {}
    for m in sc.moves:
        if m.node in where and m.to == where[m.node]:
            problems.add("moves", f"{m.node} is already on {m.to} at {m.at_s:g} s")
        where[m.node] = m.to
    problems.check()
    return sc


def load_scenario(spec: str, overrides: dict[str, Any] | None = None) -> Scenario:
    """A scenario name (from experiments/scenarios) or a path, with ``--set`` overrides."""
    path = Path(spec)
    if not path.exists():
        cand = SCENARIO_DIR / f"{spec}.toml"
        if not cand.exists():
            known = ", ".join(sorted(p.stem for p in SCENARIO_DIR.glob("*.toml")))
            raise ScenarioError(f"unknown scenario {spec!r}: not a file and not in {SCENARIO_DIR} ({known})")
        path = cand
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
    if overrides:
        data = apply_overrides(data, overrides)
    return scenario_from_dict(data, str(path))


def list_scenarios() -> list[tuple[str, str]]:
    out = []
    for p in sorted(SCENARIO_DIR.glob("*.toml")):
        try:
            desc = tomllib.loads(p.read_text()).get("description", "")
        except tomllib.TOMLDecodeError:
            desc = "(invalid TOML)"
        out.append((p.stem, desc))
    return out
