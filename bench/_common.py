"""Shared machinery: interleaved timing, JSON rows, machine facts, docs/BENCHMARKS.md sections."""

from __future__ import annotations

import datetime
import gc
import json
import os
import platform
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "BENCHMARKS.md"

#: Benchmarks in the order ``python -m bench all`` runs them (and the doc lists them).
NAMES = ("hooks", "engine", "cache", "import", "wire", "toy", "sae", "cohort", "align", "latency", "scale", "dist")

TITLES = {
    "align": "GW alignment of two representation spaces (`python -m bench align`)",
    "hooks": "Hook overhead (`python -m bench hooks`)",
    "import": "Import time (`python -m bench import`)",
    "wire": "Arrays on the wire (`python -m bench wire`)",
    "latency": "Slider to DOM in JupyterLab + Chromium (`python -m bench latency`)",
    "toy": "Toy models of superposition: retraining the lesson model (`python -m bench toy`)",
    "cache": "Baseline cache: what its freshness check costs (`python -m bench cache`)",
    "engine": "Engine vs peers and the work it avoids (`python -m bench engine`)",
    "cohort": "FeatureLab cohort view at 10,000 records (`python -m bench cohort`)",
    "sae": "Sparse autoencoders: recovery and a fair race with SAELens (`python -m bench sae`)",
    "dist": "Past one machine: activation store, SAE training on ranks (`python -m bench dist`)",
    "scale": "Live at the size users bring: GPT-2-small, 24,576-latent SAE, ResNet-50 (`python -m bench scale`)",
}

#: Text above the sections, used when docs/BENCHMARKS.md does not exist yet.
INTRO = (Path(__file__).resolve().parent / "intro.md").read_text()


# --------------------------------------------------------------------- machine
def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Facts about the machine and software that the numbers depend on."""
    import torch

    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def set_threads(n: int) -> None:
    """Pin torch's intra-op thread count (and inter-op, if still possible)."""
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:  # only settable before any parallel work ran
        pass


class CpuMeter:
    """How busy the machine was with *other* processes while a benchmark ran.

    Reads /proc/stat (all CPUs) and subtracts this process's own CPU time (and
    its waited-for children's), giving the average number of cores others used.
    """

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = self._busy()
        self._own0 = self._own()

    @staticmethod
    def _busy() -> float | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except OSError:
            return None
        v = [int(x) for x in fields]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def others(self) -> float | None:
        """Average number of cores used by other processes since construction."""
        busy = self._busy()
        wall = time.monotonic() - self._t0
        if busy is None or self._busy0 is None or wall <= 0:
            return None
        return round(max(0.0, (busy - self._busy0) - (self._own() - self._own0)) / wall, 2)

    def wall(self) -> float:
        return round(time.monotonic() - self._t0, 1)


# --------------------------------------------------------------------- timing
def interleaved(
    variants: dict[str, Callable[[], Any]], reps: int, warmup: int = 5, seed: int = 0
) -> dict[str, list[float]]:
    """Time each variant ``reps`` times, interleaved, and return the samples (seconds).

    Every repetition runs every variant once, in a freshly shuffled order, so
    slow drifts of the machine (turbo, other processes) hit all variants alike.
    Each callable is one sample (time a block of calls inside it for short ones).
    """
    rng = random.Random(seed)
    names = list(variants)
    for _ in range(warmup):
        for n in names:
            variants[n]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    gc_was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for _ in range(reps):
            rng.shuffle(names)
            for n in names:
                fn = variants[n]
                t0 = time.perf_counter_ns()
                fn()
                samples[n].append((time.perf_counter_ns() - t0) * 1e-9)
    finally:
        if gc_was:
            gc.enable()
    return samples


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def paired_ratio(ours: Sequence[float], base: Sequence[float]) -> float:
    """Median over repetitions of ours[i] / base[i]."""
    return statistics.median(a / b for a, b in zip(ours, base, strict=True))


# --------------------------------------------------------------------- output
def emit(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


def row(name: str, ours: float, baseline: float, target: float | None, **extra: Any) -> dict[str, Any]:
    """Build, print and return one figure."""
    ratio = ours / baseline
    r: dict[str, Any] = {
        "name": name,
        "ours": _round(ours),
        "baseline": _round(baseline),
        "ratio": round(ratio, 4),
        "target": target,
        "pass": None if target is None else bool(ratio <= target),
    }
    r.update(extra)
    emit(r)
    return r


def _round(x: float) -> float:
    return float(f"{x:.6g}")


def fmt_value(x: float, unit: str) -> str:
    if unit == "s":
        if x < 1e-3:
            return f"{x * 1e6:.1f} µs"
        if x < 1:
            return f"{x * 1e3:.2f} ms"
        return f"{x:.3f} s"
    if unit == "bytes":
        return f"{int(x):,} B"
    return f"{x:g}"


def table(rows: Sequence[dict[str, Any]], notes: Callable[[dict[str, Any]], str] | None = None) -> str:
    lines = ["| figure | ours | baseline | ratio | target | pass | notes |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        unit = r.get("unit", "s")
        target = "—" if r["target"] is None else f"≤ {r['target']:g}"
        ok = "—" if r["pass"] is None else ("✅" if r["pass"] else "❌ FAIL")
        note = notes(r) if notes else ""
        lines.append(
            f"| `{r['name']}` | {fmt_value(r['ours'], unit)} | {fmt_value(r['baseline'], unit)} "
            f"| {r['ratio']:.3f} | {target} | {ok} | {note} |"
        )
    return "\n".join(lines)


def write_section(name: str, body: str, info: dict[str, Any]) -> None:
    """Replace the ``<!-- bench:NAME -->`` section of docs/BENCHMARKS.md (creating what is missing)."""
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    others = info.get("others_busy_cores")
    load = f"load average at start {info['loadavg'][0]:.2f}" + (
        f", other processes used {others:.2f} cores on average during the run" if others is not None else ""
    )
    section = (
        f"<!-- bench:{name} -->\n"
        f"## {TITLES[name]}\n\n"
        f"Run {date} on {info['cores']} cores ({info['cpu']}), torch {info['torch']}, "
        f"Python {info['python']}, torch threads {info['threads']}; {load}; took {info['wall_s']} s.\n\n"
        f"{body.strip()}\n"
        f"<!-- /bench:{name} -->"
    )
    text = DOC.read_text() if DOC.exists() else INTRO
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section, text)
    else:
        text = _insert_in_order(text, name, section)
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def _insert_in_order(text: str, name: str, section: str) -> str:
    """Insert a new section before the first later benchmark's section, else at the end."""
    later = NAMES[NAMES.index(name) + 1 :] if name in NAMES else ()
    for other in later:
        marker = f"<!-- bench:{other} -->"
        if marker in text:
            i = text.index(marker)
            return text[:i] + section + "\n\n" + text[i:]
    return text.rstrip("\n") + "\n\n" + section + "\n"
