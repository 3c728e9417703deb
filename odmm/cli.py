"""The ``odmm`` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from odmm.errors import OdmmError

RESULTS_DIR = Path(os.environ.get("ODMM_RESULTS", "results"))


def _overrides(pairs: list[str]) -> dict:
    from topologies.catalogue import parse_value

    out = {}
    for item in pairs or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OdmmError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = parse_value(value.strip())
    return out


def _write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def cmd_doctor(args: argparse.Namespace) -> int:
    from odmm import kernel

    if os.geteuid() != 0:
        raise OdmmError("odmm doctor probes the kernel in a scratch namespace and needs root")
    caps = kernel.probe()
    print(f"kernel {os.uname().release}")
    width = max(len(r[0]) for r in kernel.describe(caps))
    for label, ok, note in kernel.describe(caps):
        print(f"  {label:<{width}}  {ok:<3}  {note}")
    print("backends chosen:")
    print(f"  link delay/jitter/loss : {caps.delay_backend() or 'NONE (topologies with delay will be refused)'}")
    print(f"  link rate caps         : {caps.rate_backend() or 'NONE (topologies with bw_mbit will be refused)'}")
    print(f"  mobility tunnels       : {caps.tunnel_backend() or 'NONE'}")
    print(f"  protocol daemons       : {caps.daemon_scheduling()}")
    if args.json:
        print(json.dumps({**caps.to_dict(), "delay_backend": caps.delay_backend(),
                          "rate_backend": caps.rate_backend(), "tunnel_backend": caps.tunnel_backend(),
                          "daemon_scheduling": caps.daemon_scheduling()}, indent=2))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from odmm.clean import clean

    report = clean(force=args.force)
    if not args.quiet or report.summary() != "nothing to clean":
        print(f"odmm clean: {report.summary()}")
    return 0


def cmd_topo(args: argparse.Namespace) -> int:
    from topologies import catalogue
    from topologies.addressing import AddressPlan
    from topologies.routing import compute_routes

    if args.name is None:
        for name in catalogue.names():
            print(f"{name:<8} {catalogue.describe(name)}")
        return 0
    topo = catalogue.resolve(args.name, _overrides(args.set))
    plan = AddressPlan(topo)
    print(f"topology {topo.name} ({topo.source}): {len(topo.nodes)} nodes, {len(topo.links)} links")
    for n in topo.nodes.values():
        block = plan.blocks.get(n.name, "")
        print(f"  {n.name:<9} {n.role:<5} {plan.address(n.name)!s:<26} {block}")
    print("links (one-way, each direction):")
    for lk in topo.links:
        p = lk.params
        extra = "".join([f" jitter {p.jitter_ms:g} ms" if p.jitter_ms else "",
                         f" loss {p.loss_pct:g} %" if p.loss_pct else "",
                         f" {p.bw_mbit:g} Mbit/s" if p.bw_mbit else ""])
        print(f"  {lk.a}-{lk.b}: {p.delay_ms:g} ms{extra}")
    if args.routes:
        for node, routes in compute_routes(topo, plan).items():
            for r in routes:
                print(f"  {node}: {r.dst} via {r.via} dev {r.dev}")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from topologies import catalogue
    from topologies.fidelity import format_table, measure_paths
    from topologies.testbed import Testbed

    topo = catalogue.resolve(args.topology, _overrides(args.set))
    run_id = time.strftime("%Y%m%d-%H%M%S")
    out_dir = Path(args.out) if args.out else RESULTS_DIR / "measure" / topo.name / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    with Testbed(topo, log_dir=out_dir / "logs", delay_backend=args.backend, echo=print) as tb:
        rows = measure_paths(tb, count=args.count)
        counters = tb.emulator.kernel_counters()
    print(format_table(rows))
    bad = [r for r in rows if not r.ok]
    _write_json_atomic(out_dir / "summary.json", {
        "topology": topo.name, "source": topo.source, "run_id": run_id,
        "backend": tb.emulator.describe(), "timings": tb.timings,
        "paths": [r.to_dict() for r in rows], "queues": counters,
        "delay_elements": tb.emulator.daemon_stats(),
    })
    print(f"\n{len(rows) - len(bad)}/{len(rows)} paths within max(2 %, 0.5 ms) of the analytic RTT; "
          f"results in {out_dir}/summary.json")
    return 0 if not bad else 1


def _result_path(spec: str) -> Path:
    path = Path(spec)
    if path.is_dir():
        path = path / "summary.json"
    if not path.exists():
        raise OdmmError(f"no result at {spec} (expected a run directory or its summary.json)")
    return path


def cmd_run(args: argparse.Namespace) -> int:
    from experiments.report import format_summary
    from experiments.runner import run
    from experiments.scenario import load_scenario

    overrides = _overrides(args.set)
    if args.repeat:
        overrides["repetitions"] = args.repeat
    if args.pcap:
        overrides["pcap"] = True
    sc = load_scenario(args.scenario, overrides)  # every check happens before anything is built
    run_id = time.strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else RESULTS_DIR / sc.name / run_id
    print(f"odmm run {sc.name}: {sc.description or sc.source}")
    print(f"  modes {', '.join(sc.modes or [sc.mode])}; {sc.repetitions} repetition(s) of {sc.duration_s:g} s; "
          f"{len(sc.apps)} flows; {len(sc.moves)} moves; results in {out}")
    result = run(sc, out)
    print()
    print(format_summary(result))
    print(f"status: {result['status']}; summary {out / 'summary.json'}; files: {', '.join(result.get('files', []))}")
    return 0 if result["status"] == "complete" else 1


def cmd_list(args: argparse.Namespace) -> int:
    from experiments.scenario import list_scenarios

    print("scenarios:")
    for name, desc in list_scenarios():
        print(f"  {name:<14} {desc}")
    if RESULTS_DIR.exists():
        runs = sorted(RESULTS_DIR.glob("*/*/summary.json"))
        if runs:
            print("results:")
            for p in runs[-20:]:
                try:
                    status = json.loads(p.read_text()).get("status")
                except ValueError:
                    status = "unreadable"
                print(f"  {p.parent}  [{status}]")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from experiments.report import format_summary

    path = _result_path(args.result)
    result = json.loads(path.read_text())
    print(format_summary(result))
    print(f"status: {result.get('status')}; files in {path.parent}: {', '.join(result.get('files', []))}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from experiments.compare import compare, format_comparison

    a = json.loads(_result_path(args.result).read_text())
    b = json.loads(_result_path(args.baseline).read_text())
    rows, regressions = compare(a, b, args.tolerance)
    print(format_comparison(rows))
    if regressions:
        print(f"\n{len(regressions)} regression(s) beyond tolerance {args.tolerance:g}:")
        for r in regressions:
            print(f"  {r}")
        return 1
    print(f"\nno regression beyond tolerance {args.tolerance:g}")
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    from experiments.runner import shell
    from experiments.scenario import load_scenario

    shell(load_scenario(args.scenario, _overrides(args.set)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="odmm", description="On-Demand Mobility testbed (RFC 8653)")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("doctor", help="probe kernel capabilities and show the backends chosen")
    d.add_argument("--json", action="store_true", help="also print the probe as JSON")
    d.set_defaults(func=cmd_doctor)

    c = sub.add_parser("clean", help="remove namespaces, processes and rules a crashed run left")
    c.add_argument("--force", action="store_true", help="even while a testbed holds the lock")
    c.add_argument("--quiet", action="store_true", help="say nothing when there is nothing to clean")
    c.set_defaults(func=cmd_clean)

    t = sub.add_parser("topo", help="list the catalogue or show one topology (no root needed)")
    t.add_argument("name", nargs="?", help="catalogue name or TOML file")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a parameter")
    t.add_argument("--routes", action="store_true", help="also print every static route")
    t.set_defaults(func=cmd_topo)

    m = sub.add_parser("measure", help="build a topology and compare measured with analytic RTTs")
    m.add_argument("topology", nargs="?", default="basic", help="catalogue name or TOML file (default: basic)")
    m.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a topology parameter")
    m.add_argument("--count", type=int, default=25, help="echo requests per path after warm-up (default 25)")
    m.add_argument("--backend", choices=["netem", "nfqueue"], help="force a delay backend")
    m.add_argument("--out", help="output directory (default results/measure/<topology>/<run-id>)")
    m.set_defaults(func=cmd_measure)

    r = sub.add_parser("run", help="run a handoff experiment (scenario name or TOML file)")
    r.add_argument("scenario", nargs="?", default="default")
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a scenario key (dotted)")
    r.add_argument("--repeat", type=int, help="number of repetitions")
    r.add_argument("--out", help="output directory (default results/<scenario>/<run-id>)")
    r.add_argument("--pcap", action="store_true", help="capture ND, mobility signalling and tunnels per node")
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", help="list scenarios and recent results")
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="print the summary of a result")
    sh.add_argument("result", help="a run directory or its summary.json")
    sh.set_defaults(func=cmd_show)

    cp = sub.add_parser("compare", help="compare a result with a baseline; exits 1 on a regression")
    cp.add_argument("result")
    cp.add_argument("baseline")
    cp.add_argument("--tolerance", type=float, default=0.10, help="relative tolerance (default 0.10)")
    cp.set_defaults(func=cmd_compare)

    sl = sub.add_parser("shell", help="the Mininet CLI on a scenario's network, every daemon up")
    sl.add_argument("scenario", nargs="?", default="default")
    sl.add_argument("--set", action="append", metavar="KEY=VALUE")
    sl.set_defaults(func=cmd_shell)
    return p


_MAIN_PID = os.getpid()


def _terminate(signum, _frame):
    """SIGTERM unwinds like Ctrl-C so that the testbed is torn down. A forked helper (pyroute2
    forks to open sockets in namespaces) inherits this handler and must just exit."""
    if os.getpid() != _MAIN_PID:
        os._exit(128 + signum)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    global _MAIN_PID
    args = build_parser().parse_args(argv)
    _MAIN_PID = os.getpid()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except OdmmError as exc:
        print(f"odmm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("odmm: interrupted; everything was torn down", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: say so plainly, keep the traceback one variable away
        if os.environ.get("ODMM_DEBUG"):
            raise
        print(f"odmm: internal error: {type(exc).__name__}: {exc} (set ODMM_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
