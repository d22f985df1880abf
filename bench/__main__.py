"""``python -m bench [--quick] [--only NAME...]``: run the scenarios, print the table, record the results."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import traceback

from bench.common import ROOT, Figure, fmt, machine_facts

# (module, needs root for a lab)
SCENARIOS = [
    ("bench.scenarios.scheduler", False),
    ("bench.scenarios.registry", False),
    ("bench.scenarios.simulation", False),
    ("bench.scenarios.cli", False),
    ("bench.scenarios.lab", True),
    ("bench.scenarios.cluster", True),
    ("bench.scenarios.tunnel", True),
]


def table(figures: list[Figure]) -> str:
    lines = ["| scenario | figure | median | min | max | p90 | n | real fleet | target | met |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for f in figures:
        met = {True: "yes", False: "**no**", None: "-"}[f.met]
        lo, hi = min(f.samples, default=float("nan")), max(f.samples, default=float("nan"))
        lines.append(
            f"| {f.scenario} | {f.name} ({f.unit}) | {fmt(f.median, f.unit)} | {fmt(lo, f.unit)} "
            f"| {fmt(hi, f.unit)} | {fmt(f.p90, f.unit)} | {len(f.samples)} "
            f"| {f.reference or '-'} | {f.target or '-'} | {met} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes in all")
    parser.add_argument("--only", nargs="*", default=None, help="scenario module suffixes to run")
    parser.add_argument("--no-record", action="store_true", help="do not write results files")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    failures: list[str] = []
    for module_name, needs_root in SCENARIOS:
        short = module_name.rsplit(".", 1)[-1]
        if args.only is not None and short not in args.only:
            continue
        if needs_root and os.geteuid() != 0:
            failures.append(f"{short}: skipped (needs root for the lab)")
            continue
        print(f"== {short}", flush=True)
        try:
            module = importlib.import_module(module_name)
            got = module.run(quick=args.quick)
        except Exception as err:  # a broken scenario must not hide the others' figures
            traceback.print_exc()
            failures.append(f"{short}: failed: {type(err).__name__}: {err}")
            continue
        figures.extend(got)
        for f in got:
            print(f"   {f.name}: median {fmt(f.median, f.unit)} {f.unit} (n={len(f.samples)}) {f.note}", flush=True)
    facts = machine_facts()
    text = table(figures)
    print(text)
    for line in failures:
        print(line, file=sys.stderr)
    if not args.no_record:
        results = ROOT / "bench" / "results"
        results.mkdir(exist_ok=True)
        name = f"{facts['date'].replace(':', '')}-{facts['commit'] or 'nocommit'}{'-quick' if args.quick else ''}.json"
        (results / name).write_text(json.dumps({"facts": facts, "quick": args.quick, "failures": failures,
                                                "figures": [f.as_dict() for f in figures]}, indent=1) + "\n")
        if not args.quick or not (ROOT / "bench" / "RESULTS.md").exists():
            kind = "quick run (small sizes: `make bench QUICK=1`)" if args.quick else "full run"
            header = (f"# Benchmark results\n\nLatest {kind}: commit `{facts['commit']}`, {facts['date']}, "
                      f"{facts['cpus']} cores, {facts['memory_gib']} GiB, {facts['etcd']}, {facts['systemd']}.\n"
                      "Real fleet's figures are from fleet-reference.md 7.1 (the same kind of machine). "
                      "Medians over repeated runs; raw JSON in `bench/results/`.\n\n")
            notes = "\n".join(f"- {f.scenario} / {f.name}: {f.note}" for f in figures if f.note)
            (ROOT / "bench" / "RESULTS.md").write_text(header + text + "\n\n" + (notes + "\n" if notes else "")
                                                       + "".join(f"\n- {x}" for x in failures) + "\n")
    return 1 if any("failed" in x for x in failures) else 0


if __name__ == "__main__":
    sys.exit(main())
