"""Daemon configuration: written by the deployer as JSON, read by the gateway and HA daemons."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from ipaddress import IPv6Address, IPv6Network
from pathlib import Path

from odmm.addrtypes import REQUESTABLE, AddressType, parse_type

MODES = ("ondemand", "mobile-ip", "none")
# Deliberate faults a scenario can inject to show that its expectations catch them:
FAULTS = {"": "none",
          "no-anchor-tunnel": "an anchor gateway acknowledges a moved SESSION_LASTING prefix but never tunnels it"}


@dataclass
class GatewayPolicy:
    """What a gateway offers and how (documented in docs/gateways.md)."""

    types: list[str] = field(default_factory=lambda: [t.name for t in REQUESTABLE])
    default_type: str = "NON_PERSISTENT"   # the prefix every attaching node gets unasked
    pool_size: int = 4000                  # live prefixes this gateway may grant
    grace_s: float = 10.0                  # GRACEFUL_REPLACEMENT grace period after a move
    ra_interval_s: float = 1.0             # periodic RAs on each access link
    valid_s: int = 1800                    # lifetimes of finite prefixes while anchored/served
    preferred_s: int = 1800
    router_lifetime_s: int = 1800
    legacy: bool = False                   # plain RAs: no typed PIOs, no capability option
    fault: str = ""                        # deliberate breakage, to test regression checks (FAULTS)

    def offered(self) -> list[AddressType]:
        return [parse_type(t) for t in self.types]


@dataclass
class SignallingPolicy:
    binding_lifetime_s: int = 600
    retransmit_s: float = 0.25             # first PBU retransmission timeout, doubled each time
    max_retransmits: int = 4


@dataclass
class DaemonConfig:
    name: str
    role: str                              # "gw" or "ha"
    address: str                           # loopback: signalling and tunnel endpoint
    block: str                             # the /48 this node anchors prefixes from
    mode: str = "ondemand"
    ha: str | None = None                  # the HA's address (gateways)
    peers: dict[str, str] = field(default_factory=dict)   # name -> address of every HA/GW
    tunnel_ids: dict[str, int] = field(default_factory=dict)  # address -> small id (tunnel naming)
    blocks: dict[str, str] = field(default_factory=dict)      # address -> the /48 that node anchors
    tunnel_backend: str = "vxlan"
    control: str = ""
    policy: GatewayPolicy = field(default_factory=GatewayPolicy)
    signalling: SignallingPolicy = field(default_factory=SignallingPolicy)
    ha_pool_size: int = 4000               # FIXED prefixes the HA may grant

    @property
    def addr(self) -> IPv6Address:
        return IPv6Address(self.address)

    @property
    def block_net(self) -> IPv6Network:
        return IPv6Network(self.block)

    def peer_name(self, address: IPv6Address | str) -> str | None:
        a = str(IPv6Address(address))
        return next((n for n, v in self.peers.items() if str(IPv6Address(v)) == a), None)

    def anchor_of(self, prefix: IPv6Network) -> IPv6Address | None:
        """The HA or gateway whose block contains ``prefix`` (the address plan makes it so)."""
        for addr, block in self.blocks.items():
            if prefix.subnet_of(IPv6Network(block)):
                return IPv6Address(addr)
        return None

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> DaemonConfig:
        data = json.loads(Path(path).read_text())
        data["policy"] = GatewayPolicy(**data.get("policy", {}))
        data["signalling"] = SignallingPolicy(**data.get("signalling", {}))
        return cls(**data)
