"""Mobile-host configuration and policy (one file per mobile node)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from odmm.addrtypes import AddressType, parse_type

DAD_MODES = ("off", "optimistic", "standard")
APP_SOCKET = "@odmm-mobilehost"  # abstract UNIX socket: one per network namespace


@dataclass
class MobileHostPolicy:
    """Draft section 3.3 matters of policy, per mobile node."""

    default_type: str = "NON_PERSISTENT"     # what legacy applications (never calling setsc) get
    unprivileged_types: list[str] = field(    # types a non-root uid may request
        default_factory=lambda: ["SESSION_LASTING", "NON_PERSISTENT", "GRACEFUL_REPLACEMENT"])
    boot_types: list[str] = field(default_factory=list)  # addresses configured at start
    release_unused: bool = True              # release a SESSION_LASTING prefix once no socket uses it
    release_hold_s: float = 2.0              # ... after it has been unused this long

    def default(self) -> AddressType:
        return parse_type(self.default_type)

    def allowed(self, t: AddressType, uid: int) -> bool:
        return uid == 0 or t.name in {parse_type(x).name for x in self.unprivileged_types}


@dataclass
class MobileHostConfig:
    name: str
    ifname: str
    control: str = ""                        # filesystem control socket (for the runner)
    app_socket: str = APP_SOCKET             # where applications find the daemon
    dad: str = "off"
    rs_timeout_s: float = 0.25               # first RS retransmission, doubled each time
    rs_retries: int = 3
    release_check_s: float = 0.25            # how often the kernel's socket table is read
    policy: MobileHostPolicy = field(default_factory=MobileHostPolicy)

    @property
    def mn_id(self) -> str:
        return f"{self.name}@odmm"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> MobileHostConfig:
        data = json.loads(Path(path).read_text())
        data["policy"] = MobileHostPolicy(**data.get("policy", {}))
        return cls(**data)
