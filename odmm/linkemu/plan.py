"""Where each emulated link direction is implemented (pure: no kernel access).

nfqueue backend (kernels without sch_netem): a direction x -> y is delayed in a *router*
namespace, never on an end host's egress (that throttles TCP to a few Mbit/s):

- y is a router: y's PREROUTING, matching ``-i`` the interface facing x. The packet still
  carries its receive timestamp there, which the delay element uses.
- y is an end host: x's FORWARD and OUTPUT, matching ``-o`` the interface facing y (FORWARD
  comes before the kernel clears the timestamp of forwarded packets; OUTPUT catches what the
  router itself sends, such as Router Advertisements).

netem backend: a netem qdisc on x's egress interface. Rate caps (``bw_mbit``) are a tbf
qdisc on x's egress interface with either backend.
"""

from __future__ import annotations

from dataclasses import dataclass

from topologies.addressing import AddressPlan
from topologies.model import LinkParams, Topology


@dataclass(frozen=True)
class QueueHook:
    """One link direction handled by the delay element of ``node``."""

    node: str
    chains: tuple[str, ...]
    match: str  # "-i" or "-o"
    iface: str
    queue: int
    src: str
    dst: str
    params: LinkParams

    def rules(self, comment: str = "odmm") -> list[str]:
        """ip6tables-restore lines (mangle table) that send this direction to the queue."""
        return [
            f"-A {chain} {self.match} {self.iface} -m comment --comment {comment} "
            f"-j NFQUEUE --queue-num {self.queue}"
            for chain in self.chains
        ]


@dataclass(frozen=True)
class EgressShape:
    """A qdisc on ``node``'s egress ``iface`` for the direction src -> dst."""

    node: str
    iface: str
    src: str
    dst: str
    params: LinkParams


def _directions(topo: Topology):
    for link in topo.links:
        yield link.a, link.b, link.params
        yield link.b, link.a, link.params


def plan_queues(topo: Topology, plan: AddressPlan, roaming: bool = False) -> dict[str, list[QueueHook]]:
    """Delay-element hooks per namespace for every direction needing delay, jitter or loss.

    With ``roaming``, a mobile node's access link is hooked on *every* gateway (rules match
    the interface by name), so the emulation follows the link when it moves.
    """
    hooks: dict[str, list[QueueHook]] = {}

    def add(node: str, chains: tuple[str, ...], match: str, iface: str, src: str, dst: str, params) -> None:
        queue = len(hooks.setdefault(node, []))
        hooks[node].append(QueueHook(node, chains, match, iface, queue, src, dst, params))

    gateways = [n.name for n in topo.by_role("gw")]
    for src, dst, params in _directions(topo):
        if not params.needs_delay_element():
            continue
        if topo.nodes[dst].is_router:
            iface = plan.interface(dst, src).name
            for node in gateways if roaming and topo.nodes[src].role == "mn" else [dst]:
                add(node, ("PREROUTING",), "-i", iface, src, node, params)
        else:
            iface = plan.interface(src, dst).name
            for node in gateways if roaming and topo.nodes[dst].role == "mn" else [src]:
                add(node, ("FORWARD", "OUTPUT"), "-o", iface, node, dst, params)
    return hooks


def plan_egress(topo: Topology, plan: AddressPlan, delay_too: bool) -> list[EgressShape]:
    """Egress qdiscs: directions with a rate cap, and (netem backend) every delayed one."""
    shapes = []
    for src, dst, params in _directions(topo):
        if params.bw_mbit or (delay_too and params.needs_delay_element()):
            shapes.append(EgressShape(src, plan.interface(src, dst).name, src, dst, params))
    return shapes
