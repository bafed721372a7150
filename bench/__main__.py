"""``python -m bench {hooks,import,wire,latency,...,all} [--threads N] [--reps N] [--no-write] [--before REV]``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ._common import NAMES, CpuMeter, emit, machine, set_threads, write_section

MODULES = {
    "align": "bench.align",
    "hooks": "bench.hooks",
    "engine": "bench.engine",
    "cache": "bench.cache",
    "import": "bench.import_time",
    "wire": "bench.wire",
    "toy": "bench.toy",
    "sae": "bench.sae",
    "cohort": "bench.cohort",
    "latency": "bench.latency",
    "scale": "bench.scale",
    "dist": "bench.dist",
}


def run_one(name: str, reps: int | None, write: bool) -> list[dict]:
    module = importlib.import_module(MODULES[name])
    meter = CpuMeter()
    info = machine()
    emit({"bench": name, "header": True, **info})
    rows, body = module.run(reps)
    info["others_busy_cores"] = meter.others()
    info["wall_s"] = meter.wall()
    failed = [r["name"] for r in rows if r["pass"] is False]
    emit(
        {
            "bench": name,
            "footer": True,
            "others_busy_cores": info["others_busy_cores"],
            "wall_s": info["wall_s"],
            "failed": failed,
        }
    )
    if write:
        write_section(name, body, info)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description="superwidgets performance benchmarks")
    p.add_argument("name", choices=[*NAMES, "all"])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per figure (default: per benchmark)")
    p.add_argument("--no-write", action="store_true", help="do not rewrite docs/BENCHMARKS.md")
    p.add_argument("--before", metavar="REV", default=None,
                   help="latency only: also measure git revision REV's code in the same run")  # fmt: skip
    args = p.parse_args(argv)
    if args.before:
        os.environ["SW_BENCH_BEFORE"] = args.before
    set_threads(args.threads)
    names = NAMES if args.name == "all" else (args.name,)
    rows = [r for n in names for r in run_one(n, args.reps, not args.no_write)]
    return 1 if any(r["pass"] is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
