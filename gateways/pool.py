"""Per-mobile-node /64 prefixes handed out from an anchor's /48 block."""

from __future__ import annotations

from ipaddress import IPv6Network

from topologies.addressing import POOL_FIRST, POOL_LAST, subnet


class PoolExhausted(Exception):
    """No prefix left; the requester gets status 'could not assign'."""


class PrefixPool:
    """Allocates unique /64s, lowest free number first; ``size`` caps how many can be live."""

    def __init__(self, block: IPv6Network, size: int | None = None) -> None:
        self.block = block
        self.size = min(size or (POOL_LAST - POOL_FIRST + 1), POOL_LAST - POOL_FIRST + 1)
        self._used: set[int] = set()
        self._next = POOL_FIRST

    def allocate(self) -> IPv6Network:
        if len(self._used) >= self.size:
            raise PoolExhausted(f"pool {self.block} exhausted ({self.size} prefixes in use)")
        n = self._next
        while n in self._used:
            n += 1
        self._used.add(n)
        self._next = n + 1 if n + 1 < POOL_FIRST + self.size else POOL_FIRST
        return subnet(self.block, n)

    def owns(self, prefix: IPv6Network) -> bool:
        return prefix.prefixlen == 64 and prefix.subnet_of(self.block)

    def free(self, prefix: IPv6Network) -> bool:
        if not self.owns(prefix):
            return False
        n = (int(prefix.network_address) >> 64) & 0xFFFF
        if n in self._used:
            self._used.discard(n)
            return True
        return False

    @property
    def in_use(self) -> int:
        return len(self._used)
