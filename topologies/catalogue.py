"""The topology catalogue: named topologies, with parameters that can be overridden.

- File entries (``catalogue/*.toml``, e.g. ``basic``) take dotted overrides of their data:
  ``link_defaults.<param>`` or ``links.<a>-<b>.<param>``.
- Generated entries (``line``, ``grid``) take keyword parameters.

``resolve("basic")``, ``resolve("line", {"n": 4})`` or ``resolve("my.toml")`` all return a
validated ``Topology``.
"""

from __future__ import annotations

import copy
import inspect
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from odmm.errors import TopologyError
from topologies.model import LINK_PARAM_NAMES, Topology, read_toml, topology_from_dict

CATALOGUE_DIR = Path(__file__).parent / "catalogue"


def _per_link(value: float | list, count: int, what: str) -> list[float]:
    if isinstance(value, list):
        if len(value) != count:
            raise TopologyError(f"{what}: expected {count} values, got {len(value)}")
        return list(value)
    return [value] * count


def line(n: int = 4, delay_ms: float | list = 5.0, access_ms: float | list = 0.0,
         jitter_ms: float = 0.0, loss_pct: float = 0.0, bw_mbit: float | None = None) -> dict:
    """A chain of n core routers r1..rn with an end host h<i> (role cn) on every router.

    ``delay_ms`` is one value or a list of n-1 values for the chain links r1-r2, r2-r3, ...;
    ``access_ms`` one value or a list of n values for the host links h<i>-r<i>.
    """
    if not isinstance(n, int) or n < 1:
        raise TopologyError(f"line: n must be a positive integer, got {n!r}")
    chain = _per_link(delay_ms, n - 1, "line: delay_ms")
    access = _per_link(access_ms, n, "line: access_ms")
    extra = {"jitter_ms": jitter_ms, "loss_pct": loss_pct}
    if bw_mbit is not None:
        extra["bw_mbit"] = bw_mbit
    nodes = [{"name": f"r{i}", "role": "core"} for i in range(1, n + 1)]
    nodes += [{"name": f"h{i}", "role": "cn"} for i in range(1, n + 1)]
    links = [{"a": f"r{i}", "b": f"r{i + 1}", "delay_ms": chain[i - 1], **extra} for i in range(1, n)]
    links += [{"a": f"r{i}", "b": f"h{i}", "delay_ms": access[i - 1], **extra} for i in range(1, n + 1)]
    return {"name": f"line{n}", "nodes": nodes, "links": links}


def grid(rows: int = 3, cols: int = 3, gw_ms: float = 2.0, core_ms: float = 5.0,
         ha_ms: float = 15.0, cn_ms: float = 10.0, access_ms: float = 1.0, mns: int = 1) -> dict:
    """A rows x cols mesh of gateways behind a core router, with HA, CN and mobile nodes.

    Gateways gw1..gwN (row-major) link to their right and lower neighbours; the core router
    links to the first gateway of every row, the HA and the CN hang off the core router;
    ``mns`` mobile nodes attach to gw1, gw2, ... in turn.
    """
    for key, val in (("rows", rows), ("cols", cols), ("mns", mns)):
        if not isinstance(val, int) or val < (0 if key == "mns" else 1):
            raise TopologyError(f"grid: {key} must be a positive integer, got {val!r}")
    count = rows * cols

    def gw(r: int, c: int) -> str:
        return f"gw{r * cols + c + 1}"

    nodes = [{"name": "cn", "role": "cn"}, {"name": "core", "role": "core"}, {"name": "ha", "role": "ha"}]
    nodes += [{"name": f"gw{k}", "role": "gw"} for k in range(1, count + 1)]
    nodes += [{"name": f"mn{k}", "role": "mn"} for k in range(1, mns + 1)]
    links = [{"a": "cn", "b": "core", "delay_ms": cn_ms}, {"a": "core", "b": "ha", "delay_ms": ha_ms}]
    for r in range(rows):
        links.append({"a": "core", "b": gw(r, 0), "delay_ms": core_ms})
        for c in range(cols):
            if c + 1 < cols:
                links.append({"a": gw(r, c), "b": gw(r, c + 1), "delay_ms": gw_ms})
            if r + 1 < rows:
                links.append({"a": gw(r, c), "b": gw(r + 1, c), "delay_ms": gw_ms})
    for k in range(1, mns + 1):
        links.append({"a": f"gw{(k - 1) % count + 1}", "b": f"mn{k}", "delay_ms": access_ms})
    return {"name": f"grid{rows}x{cols}", "nodes": nodes, "links": links}


GENERATORS: dict[str, Callable[..., dict]] = {"line": line, "grid": grid}


def names() -> list[str]:
    """Every catalogue entry."""
    return sorted(set(GENERATORS) | {p.stem for p in CATALOGUE_DIR.glob("*.toml")})


def describe(name: str) -> str:
    if name in GENERATORS:
        fn = GENERATORS[name]
        params = ", ".join(f"{p.name}={p.default!r}" for p in inspect.signature(fn).parameters.values())
        return f"{(fn.__doc__ or '').strip().splitlines()[0]} [{params}]"
    return str(read_toml(CATALOGUE_DIR / f"{name}.toml").get("description", ""))


def parse_value(text: str) -> Any:
    """A --set value: TOML syntax (numbers, lists, booleans, quoted strings), else a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _apply_overrides(data: dict, overrides: dict[str, Any], source: str) -> dict:
    data = copy.deepcopy(data)
    for key, value in overrides.items():
        parts = key.split(".")
        if len(parts) == 2 and parts[0] == "link_defaults" and parts[1] in LINK_PARAM_NAMES:
            data.setdefault("link_defaults", {})[parts[1]] = value
            continue
        if len(parts) == 3 and parts[0] == "links" and parts[2] in LINK_PARAM_NAMES:
            ends = set(parts[1].split("-", 1))
            matches = [lk for lk in data.get("links", []) if {lk.get("a"), lk.get("b")} == ends]
            if not matches:
                raise TopologyError(f"{source}: override {key!r}: no link {parts[1]}")
            matches[0][parts[2]] = value
            continue
        raise TopologyError(
            f"{source}: override {key!r}: expected link_defaults.<param> or links.<a>-<b>.<param> "
            f"with <param> one of {', '.join(LINK_PARAM_NAMES)}"
        )
    return data


def resolve(spec: str, overrides: dict[str, Any] | None = None) -> Topology:
    """A catalogue name or a path to a topology TOML file -> validated Topology."""
    overrides = dict(overrides or {})
    path = Path(spec)
    if spec in GENERATORS and not path.exists():
        fn = GENERATORS[spec]
        allowed = list(inspect.signature(fn).parameters)
        unknown = [k for k in overrides if k not in allowed]
        if unknown:
            raise TopologyError(
                f"catalogue topology {spec!r}: unknown parameter {unknown[0]!r} (parameters: {', '.join(allowed)})"
            )
        try:
            data = fn(**overrides)
        except TypeError as exc:
            raise TopologyError(f"catalogue topology {spec!r}: {exc}") from None
        return topology_from_dict(data, f"catalogue topology {spec!r}")
    if not path.exists() and (CATALOGUE_DIR / f"{spec}.toml").exists():
        path = CATALOGUE_DIR / f"{spec}.toml"
    if not path.exists():
        raise TopologyError(f"unknown topology {spec!r}: not a file and not in the catalogue ({', '.join(names())})")
    data = read_toml(path)
    return topology_from_dict(_apply_overrides(data, overrides, str(path)), str(path))
