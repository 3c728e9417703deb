"""Topologies as data: a validated description -> a networkx graph with roles and link params.

A topology file (TOML) looks like::

    name = "mine"                    # optional, defaults to the file name
    [link_defaults]                  # optional, applies to every link
    delay_ms = 1.0
    [[nodes]]
    name = "cn"
    role = "cn"                      # cn | core | ha | gw | mn
    [[links]]
    a = "cn"
    b = "core"
    delay_ms = 10                    # one-way, each direction
    jitter_ms = 0                    # uniform +/- jitter, never reorders
    loss_pct = 0                     # Bernoulli loss per direction
    bw_mbit = 100                    # optional rate cap per direction

Every problem is reported as one ``TopologyError`` naming the file, the item and the
problem, before anything is built.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import networkx as nx

from odmm.errors import TopologyError

ROLES: dict[str, str] = {
    "cn": "correspondent node",
    "core": "core router",
    "ha": "home agent",
    "gw": "serving gateway",
    "mn": "mobile node",
}
ROUTER_ROLES = frozenset({"core", "ha", "gw"})
HOST_ROLES = frozenset({"cn", "mn"})
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,8}$")  # "<name>-ethNN" must fit IFNAMSIZ (15)
HOP_EPSILON_MS = 1e-6  # tie-break: among equal-delay paths, fewer hops wins


@dataclass(frozen=True)
class LinkParams:
    """Per-direction emulation parameters of a link (both directions are equal)."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    bw_mbit: float | None = None

    def needs_delay_element(self) -> bool:
        """True when delay, jitter or loss must be emulated (bandwidth alone is a qdisc)."""
        return self.delay_ms > 0 or self.jitter_ms > 0 or self.loss_pct > 0


LINK_PARAM_NAMES = tuple(f.name for f in fields(LinkParams))


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    index: int  # 1-based position among the nodes of the same role

    @property
    def is_router(self) -> bool:
        return self.role in ROUTER_ROLES


@dataclass(frozen=True)
class Link:
    index: int  # 1-based position in the topology
    a: str
    b: str
    params: LinkParams

    def other(self, node: str) -> str:
        return self.b if node == self.a else self.a


@dataclass
class Topology:
    """A validated topology; ``graph`` carries roles on nodes and params on edges."""

    name: str
    source: str
    nodes: dict[str, Node]
    links: list[Link]
    graph: nx.Graph = field(init=False, repr=False)

    def __post_init__(self) -> None:
        g = nx.Graph(name=self.name)
        for n in self.nodes.values():
            g.add_node(n.name, role=n.role, index=n.index)
        for link in self.links:
            p = link.params
            g.add_edge(
                link.a, link.b, index=link.index, delay_ms=p.delay_ms, jitter_ms=p.jitter_ms,
                loss_pct=p.loss_pct, bw_mbit=p.bw_mbit, weight=p.delay_ms + HOP_EPSILON_MS,
            )
        self.graph = g

    # --- queries -----------------------------------------------------------------------
    def by_role(self, role: str) -> list[Node]:
        return [n for n in self.nodes.values() if n.role == role]

    def routers(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.is_router]

    def hosts(self) -> list[Node]:
        return [n for n in self.nodes.values() if not n.is_router]

    def links_of(self, node: str) -> list[Link]:
        return [lk for lk in self.links if node in (lk.a, lk.b)]

    def link_between(self, a: str, b: str) -> Link:
        for lk in self.links:
            if {lk.a, lk.b} == {a, b}:
                return lk
        raise KeyError(f"no link between {a} and {b}")

    def path(self, src: str, dst: str, via: str | None = None) -> list[str]:
        """The delay-weighted shortest path (the one the installed routes follow)."""
        for n in (src, dst, via):
            if n is not None and n not in self.nodes:
                raise KeyError(f"unknown node {n!r} in topology {self.name!r}")
        if via is not None:
            first = nx.shortest_path(self.graph, src, via, weight="weight")
            return first + nx.shortest_path(self.graph, via, dst, weight="weight")[1:]
        return nx.shortest_path(self.graph, src, dst, weight="weight")

    def path_delay_ms(self, path: list[str]) -> float:
        return sum(self.graph.edges[u, v]["delay_ms"] for u, v in nx.utils.pairwise(path))

    def analytic_rtt_ms(self, src: str, dst: str, via: str | None = None) -> float:
        """Round-trip propagation delay of the path, out and back the same way."""
        return 2.0 * self.path_delay_ms(self.path(src, dst, via))

    def needs_delay_element(self) -> bool:
        return any(lk.params.needs_delay_element() for lk in self.links)

    def needs_shaping(self) -> bool:
        return any(lk.params.bw_mbit for lk in self.links)


# --- parsing and validation ----------------------------------------------------------------


class _Problems:
    """Collects problems so the user sees all of them in one error."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, item: str, problem: str) -> None:
        self.items.append(f"{item}: {problem}")

    def raise_if_any(self) -> None:
        if self.items:
            if len(self.items) == 1:
                raise TopologyError(f"{self.source}: {self.items[0]}")
            lines = "\n  ".join(self.items)
            raise TopologyError(f"{self.source}: {len(self.items)} problems:\n  {lines}")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _link_params(raw: dict, item: str, problems: _Problems, base: dict | None = None) -> LinkParams:
    merged = dict(base or {})
    merged.update({k: v for k, v in raw.items() if k in LINK_PARAM_NAMES})
    values: dict[str, float | None] = {}
    for key in LINK_PARAM_NAMES:
        if key not in merged or (key == "bw_mbit" and merged[key] is None):
            continue
        num = _number(merged[key])
        if num is None:
            problems.add(item, f"{key} must be a number, got {merged[key]!r}")
            continue
        if key == "loss_pct" and not 0.0 <= num <= 100.0:
            problems.add(item, f"loss_pct must be between 0 and 100, got {num:g}")
        elif key == "bw_mbit" and num <= 0:
            problems.add(item, f"bw_mbit must be positive, got {num:g}")
        elif num < 0:
            problems.add(item, f"{key} must not be negative, got {num:g}")
        values[key] = num
    return LinkParams(**values)  # type: ignore[arg-type]


def topology_from_dict(data: dict, source: str, name: str | None = None) -> Topology:
    """Validate a parsed topology description and build the model."""
    problems = _Problems(source)
    if not isinstance(data, dict):
        raise TopologyError(f"{source}: a topology must be a table, got {type(data).__name__}")
    known_top = {"name", "description", "link_defaults", "nodes", "links"}
    for key in data:
        if key not in known_top:
            problems.add(f"key {key!r}", f"unknown key (expected one of {', '.join(sorted(known_top))})")
    defaults = data.get("link_defaults", {})
    if not isinstance(defaults, dict):
        problems.add("link_defaults", "must be a table")
        defaults = {}
    for key in defaults:
        if key not in LINK_PARAM_NAMES:
            problems.add(f"link_defaults.{key}", f"unknown link parameter (expected {', '.join(LINK_PARAM_NAMES)})")
    _link_params(defaults, "link_defaults", problems)

    raw_nodes = data.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        problems.add("nodes", "a non-empty list of [[nodes]] tables is required")
        raw_nodes = []
    nodes: dict[str, Node] = {}
    counters: dict[str, int] = {}
    for i, raw in enumerate(raw_nodes):
        item = f"nodes[{i}]"
        if not isinstance(raw, dict):
            problems.add(item, "must be a table with 'name' and 'role'")
            continue
        nname = raw.get("name")
        if isinstance(nname, str):
            item = f"node {nname!r}"
        for key in raw:
            if key not in ("name", "role"):
                problems.add(item, f"unknown key {key!r} (expected 'name' and 'role')")
        if not isinstance(nname, str) or not NAME_RE.match(nname):
            problems.add(item, f"name must be 1-9 lowercase letters, digits or '_' starting with a letter, got {nname!r}")
            continue
        role = raw.get("role")
        if role not in ROLES:
            problems.add(item, f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
            continue
        if nname in nodes:
            problems.add(item, "duplicate node name")
            continue
        counters[role] = counters.get(role, 0) + 1
        nodes[nname] = Node(nname, role, counters[role])

    raw_links = data.get("links")
    if not isinstance(raw_links, list):
        problems.add("links", "a list of [[links]] tables is required")
        raw_links = []
    links: list[Link] = []
    seen: set[frozenset[str]] = set()
    for i, raw in enumerate(raw_links):
        item = f"links[{i}]"
        if not isinstance(raw, dict):
            problems.add(item, "must be a table with 'a' and 'b'")
            continue
        a, b = raw.get("a"), raw.get("b")
        if isinstance(a, str) and isinstance(b, str):
            item = f"link {a}-{b}"
        for key in raw:
            if key not in ("a", "b") and key not in LINK_PARAM_NAMES:
                problems.add(item, f"unknown key {key!r} (expected a, b, {', '.join(LINK_PARAM_NAMES)})")
        params = _link_params(raw, item, problems, defaults)
        ok = True
        for end in (a, b):
            if not isinstance(end, str):
                problems.add(item, f"'a' and 'b' must be node names, got {end!r}")
                ok = False
            elif end not in nodes:
                problems.add(item, f"link to undefined node {end!r}")
                ok = False
        if not ok:
            continue
        if a == b:
            problems.add(item, "a link must join two different nodes")
            continue
        pair = frozenset((a, b))
        if pair in seen:
            problems.add(item, "duplicate link (parallel links are not supported)")
            continue
        seen.add(pair)
        if not nodes[a].is_router and not nodes[b].is_router:
            problems.add(item, "a link needs a router at one end (cn and mn are end hosts)")
            continue
        links.append(Link(len(links) + 1, a, b, params))

    for n in nodes.values():
        degree = sum(1 for lk in links if n.name in (lk.a, lk.b))
        if not n.is_router and degree != 1:
            problems.add(f"node {n.name!r}", f"a {ROLES[n.role]} needs exactly one link, it has {degree}")
        if n.role == "mn":
            peers = [lk.other(n.name) for lk in links if n.name in (lk.a, lk.b)]
            if peers and nodes[peers[0]].role != "gw":
                problems.add(f"node {n.name!r}", f"a mobile node attaches to a gateway, not to {peers[0]!r}")
    problems.raise_if_any()

    topo = Topology(name or str(data.get("name") or Path(source).stem), source, nodes, links)
    parts = list(nx.connected_components(topo.graph))
    if len(parts) > 1:
        desc = "; ".join("{" + ", ".join(sorted(p)) + "}" for p in sorted(parts, key=min))
        raise TopologyError(f"{source}: the graph is disconnected: {len(parts)} parts: {desc}")
    return topo


def read_toml(path: str | Path) -> dict:
    """Parse a TOML file, turning I/O and syntax problems into a TopologyError."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise TopologyError(f"{path}: cannot read topology file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{path}: not valid TOML: {exc}") from None


def load_topology(path: str | Path) -> Topology:
    """Read and validate a topology TOML file."""
    return topology_from_dict(read_toml(path), str(path))
