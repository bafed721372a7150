"""Time of ``import superwidgets`` on top of an already imported torch + anywidget.

Each sample is a fresh ``python`` subprocess that imports torch and anywidget,
then times ``import superwidgets`` with ``time.perf_counter``. The baseline is
the 150 ms budget from DESIGN.md (a constant, not a measurement), so the ratio
is ``ours / 0.150 s`` with target 1.0. If nnsight is installed, its import time
(measured the same way, interleaved) is reported as a peer; it is never installed
by this benchmark.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from typing import Any

from ._common import median, row, table

BUDGET_S = 0.150

#: Packages superwidgets defers to first use; importing any of them eagerly is a regression.
HEAVY = ("sklearn", "matplotlib", "scipy", "pandas", "safetensors", "superwidgets.widgets", "superwidgets.zoo")

PROBE = """
import json, sys, time
import torch, anywidget
before = set(sys.modules)
sys.stderr.write("@@mark@@\\n"); sys.stderr.flush()
t0 = time.perf_counter()
import {module}
t1 = time.perf_counter()
new = set(sys.modules) - before
print(json.dumps({{"t": t1 - t0, "new": len(new),
                  "heavy": sorted(m for m in {heavy!r} if m in new),
                  "packages": sorted({{m.split(".")[0] for m in new}})}}))
"""


def _sample(module: str, importtime: bool = False) -> tuple[dict[str, Any], str]:
    cmd = [sys.executable]
    if importtime:
        cmd += ["-X", "importtime"]
    cmd += ["-c", PROBE.format(module=module, heavy=HEAVY)]
    p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1]), p.stderr


def _top_self(stderr: str, k: int = 5) -> list[list[Any]]:
    """Largest self times (µs) among the modules imported after the marker."""
    after = stderr.split("@@mark@@", 1)[-1]
    got = []
    for line in after.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = [p.strip() for p in line[len("import time:") :].split("|")]
        if len(parts) == 3 and parts[0].isdigit():
            got.append((int(parts[0]), parts[2].strip()))
    got.sort(reverse=True)
    return [[name, us] for us, name in got[:k]]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def run(reps: int | None = None) -> tuple[list[dict[str, Any]], str]:
    reps = reps or 21
    peers = ["nnsight"] if importlib.util.find_spec("nnsight") is not None else []
    _sample("superwidgets")  # warm the OS file cache and .pyc files
    for p in peers:
        _sample(p)
    times: dict[str, list[float]] = {m: [] for m in ["superwidgets", *peers]}
    last: dict[str, dict[str, Any]] = {}
    for _ in range(reps):
        for m in times:
            info, _ = _sample(m)
            times[m].append(info["t"])
            last[m] = info
    _, stderr = _sample("superwidgets", importtime=True)

    rows = []
    ours = median(times["superwidgets"])
    rows.append(
        row(
            "import_superwidgets",
            ours,
            BUDGET_S,
            1.0,
            unit="s",
            baseline_is="150 ms budget (DESIGN.md), not a measurement",
            reps=reps,
            min=round(min(times["superwidgets"]), 4),
            max=round(max(times["superwidgets"]), 4),
            new_modules=last["superwidgets"]["new"],
            new_packages=last["superwidgets"]["packages"],
            heavy_loaded=last["superwidgets"]["heavy"],
            top_self_us=_top_self(stderr),
        )
    )
    for p in peers:
        rows.append(
            row(
                f"import_{p}_peer",
                median(times[p]),
                BUDGET_S,
                None,
                unit="s",
                version=_version(p),
                baseline_is="150 ms budget (DESIGN.md), not a measurement",
                reps=reps,
                new_modules=last[p]["new"],
            )
        )
    return rows, _body(rows, peers)


def _body(rows: list[dict[str, Any]], peers: list[str]) -> str:
    def notes(r: dict[str, Any]) -> str:
        if r["name"] != "import_superwidgets":
            return f"nnsight {r['version']}; {r['new_modules']} new modules"
        top = ", ".join(f"`{n}` {us / 1000:.1f} ms" for n, us in r["top_self_us"][:3])
        heavy = ", ".join(r["heavy_loaded"]) or "none"
        return (
            f"min {r['min'] * 1e3:.1f} / max {r['max'] * 1e3:.1f} ms over {r['reps']} runs; "
            f"{r['new_modules']} new modules; deferred packages loaded: {heavy}; largest self times: {top}"
        )

    peer = (
        "nnsight is installed (not by this benchmark) and shown as a peer, timed interleaved with ours."
        if peers
        else "nnsight is not installed, so no peer row (this benchmark never installs it; DESIGN.md saw +560 ms)."
    )
    return (
        table(rows, notes)
        + f"""

Each sample is a fresh subprocess: `import torch, anywidget`, then `time.perf_counter()`
around `import superwidgets`. The baseline is the **150 ms budget** from DESIGN.md, a
constant, so ratio = median ÷ 0.150 s and the target is 1.0. {peer}
"""
    )
