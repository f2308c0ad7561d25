"""lab93zmq benchmarks: each item beside its baseline, in one run.

Usage::

    python bench/run.py [--quick] [--json FILE] [--only NAME,...] [--rounds N] [--profile DIR]

Prints a table of medians with min-max and the ratio ours/baseline on stdout
(progress on stderr) and writes every raw figure as JSON (default
``bench-results.json`` in the current directory). See bench/README.rst.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BenchError, Figure, Settings, compile_bytecode, log, machine, table  # noqa: E402

# name -> module; the order is the order they run in.
ITEMS = {
    "fanout": "fanout",
    "latency": "latency",
    "secure": "secure",
    "signing": "signing",
    "broadcast": "broadcast",
    "catchup": "catchup",
    "pipelines": "pipelines",
    "send": "send",
    "api": "api",
    "irc": "irc",
    "rooms": "rooms",
    "store": "store",
    "idle": "idle",
    "overload": "overload",
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description="lab93zmq benchmarks beside their baselines."
    )
    parser.add_argument("--quick", action="store_true", help="short runs (under 2 minutes)")
    parser.add_argument(
        "--json",
        metavar="FILE",
        default="bench-results.json",
        help="where to write the raw figures (default: %(default)s)",
    )
    parser.add_argument(
        "--only", metavar="NAME,...", default="", help=f"run only these items: {', '.join(ITEMS)}"
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds of A/B per item (default: 2 quick, 5 full)"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="profile our server with py-spy during the first fan-out run; write to DIR",
    )
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in ITEMS]
    if unknown:
        parser.error(f"unknown item(s) {', '.join(unknown)}; choose from {', '.join(ITEMS)}")
    args.items = chosen or list(ITEMS)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    rounds = args.rounds or (2 if args.quick else 5)
    profile = Path(args.profile).resolve() if args.profile else None
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
    settings = Settings(quick=args.quick, rounds=rounds, profile=profile)
    compile_bytecode()
    figures: list[Figure] = []
    failures: dict[str, str] = {}
    timings: dict[str, float] = {}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lab93-bench-") as tmp:
        for name in args.items:
            log(f"{name}: starting")
            t0 = time.monotonic()
            workdir = Path(tmp) / name
            workdir.mkdir()
            try:
                module = importlib.import_module(ITEMS[name])
                got = module.run(settings, workdir)
                figures += got
            except (BenchError, ImportError, OSError) as error:
                failures[name] = f"{type(error).__name__}: {error}"
                log(f"{name}: FAILED: {failures[name]}")
            except Exception as error:  # a bug in an item must not lose the others' figures
                failures[name] = f"{type(error).__name__}: {error}"
                log(f"{name}: FAILED\n{traceback.format_exc()}")
            timings[name] = time.monotonic() - t0
            log(f"{name}: done in {timings[name]:.1f} s")
    total = time.monotonic() - started
    report = {
        "command": " ".join(["python", "bench/run.py", *(sys.argv[1:] if argv is None else argv)]),
        "quick": args.quick,
        "rounds": rounds,
        "machine": machine(),
        "seconds": total,
        "item_seconds": timings,
        "failures": failures,
        "figures": [figure.to_json() for figure in figures],
    }
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(table(figures))
    for name, why in failures.items():
        print(f"{name}: not measured: {why}")
    print(
        f"\n{'quick' if args.quick else 'full'} run, {rounds} rounds, {total:.0f} s; "
        f"raw figures in {args.json}"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
