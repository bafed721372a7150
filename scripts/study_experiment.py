"""The study experiment: claims (a)–(e) over encoder seeds × SAE seeds (``docs/study.md``, "The experiment").

Run (after ``scripts/study_encoders.py`` has written the encoders into the same ``--out``):

    .venv/bin/python scripts/study_experiment.py --out study-cache [--arch narrow wide] \
        [--encoder-seeds 0 1 2] [--sae-seeds 0 1 2] [--jobs 2]

For each encoder (``narrow``: 128 pooled features, ``wide``: 512) and seed: the pooled features of
every cell of the zoo's cell-state world (``cell_states(n=6000, seed=0, image_size=48)``); then for
each SAE seed a Gated SAE (``fit_sae(arch="gated")``, the library's recipe) with ``8×`` as many
latents as features (``--expansion``), trained on the train wells' features only; then
:func:`superwidgets.science.study_claims.study_claims` on the 1,504 held-out cells (their features,
their SAE codes, their wells' death rates, their genotypes, and their expression counts as CP10k →
log1p → 30 PCs). Claim (e) compares the narrow and the wide encoder's gaps
(:func:`~superwidgets.science.study_claims.gap_shrinks`).

Writes ``<out>/claims.jsonl`` (one line per encoder × SAE seed; a line already there is not
recomputed) and prints the markdown tables that ``docs/study.md`` shows. ``SW_SLOW=1`` (or
``--paper``) uses the study's SAE size, 8,192 latents, on both encoders.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from study_encoders import WIDTHS, encoder_path


def _features(out: Path, arch: str, seed: int) -> np.ndarray:
    """Pooled features of every cell for encoder ``arch``/``seed`` (cached in ``out``)."""
    cache = out / f"features-{arch}-{seed}.npy"
    if cache.exists():
        return np.load(cache)
    from safetensors.torch import load_file

    from superwidgets.science.ssl import ConvEncoder, encode
    from superwidgets.zoo import registry

    model = ConvEncoder(in_channels=4, widths=WIDTHS[arch])
    model.load_state_dict(load_file(str(encoder_path(out, arch, seed))))
    f = encode(model, registry._cell_world().images).astype(np.float32)
    np.save(cache, f)
    return f


def one(out: Path, arch: str, enc_seed: int, sae_seed: int, latents: int, steps: int, quick: bool) -> dict:
    """Claims (a)–(d) for one encoder and one SAE seed."""
    torch.set_num_threads(1)
    from superwidgets.data.cellstate import GENOTYPES
    from superwidgets.science.sae import fit_sae
    from superwidgets.science.study_claims import expression_pcs, study_claims
    from superwidgets.zoo import registry

    world = registry._cell_world()
    t0 = time.perf_counter()
    f = _features(out, arch, enc_seed)
    tr, te = world.train, world.test
    sae = fit_sae(torch.from_numpy(f[tr]), arch="gated", width=latents, steps=steps, seed=sae_seed, progress=False)
    with torch.no_grad():
        codes = sae.encode(torch.from_numpy(f[te])).numpy()
    t1 = time.perf_counter()
    res = study_claims(
        f[te],
        codes,
        world.death_rate[te],
        np.asarray(GENOTYPES)[world.genotype[te]],
        expression_pcs(world.counts[te]),
        permutations=200 if quick else 1000,
        n_boot=100 if quick else 200,
        gw_points=500,
        seed=0,
    )
    t2 = time.perf_counter()
    alive = float((codes > 0).any(0).mean())
    l0 = float((codes > 0).sum(1).mean())
    return {
        "arch": arch,
        "encoder_seed": enc_seed,
        "sae_seed": sae_seed,
        "latents": latents,
        "steps": steps,
        "sae_alive": alive,
        "sae_l0": l0,
        "sae_seconds": round(t1 - t0, 1),
        "claims_seconds": round(t2 - t1, 1),
        **res.row(),
        "settings": res.settings,
    }


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def tables(rows: list[dict]) -> str:
    """The markdown tables of ``docs/study.md``: every seed, then the verdicts and claim (e)."""
    from superwidgets.science.study_claims import CLAIMS, ClaimResult, gap_shrinks

    head = (
        "| encoder | enc. seed | SAE seed | L0 | kNN SD ratio k=10 CNN → SAE (pooled) | p (SAE) | "
        "Moran's I CNN → SAE [95 % CI of diff.] | ridge R² CNN → SAE | label transfer 1:1 CNN → SAE | "
        "barycentric CNN → SAE | FOSCTTM CNN → SAE | (a) | (b) | (c) | (d) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in sorted(rows, key=lambda r: (r["arch"], r["encoder_seed"], r["sae_seed"])):
        ok = ["✅" if r[f"holds_{c}"] else "❌" for c in CLAIMS]
        lines.append(
            f"| {r['arch']} | {r['encoder_seed']} | {r['sae_seed']} | {r['sae_l0']:.1f} | "
            f"{_fmt(r['knn_cnn_k10_pooled'])} → {_fmt(r['knn_sae_k10_pooled'])} | {r['knn_p_sae_k10_pooled']:.3g} | "
            f"{_fmt(r['moran_cnn'])} → {_fmt(r['moran_sae'])} [{r['moran_ci_low']:+.3f}, {r['moran_ci_high']:+.3f}] | "
            f"{_fmt(r['r2_cnn'])} → {_fmt(r['r2_sae'])} | {_fmt(r['lt_argmax_cnn'])} → {_fmt(r['lt_argmax_sae'])} | "
            f"{_fmt(r['lt_bary_cnn'])} → {_fmt(r['lt_bary_sae'])} | "
            f"{_fmt(r['foscttm_cnn'])} → {_fmt(r['foscttm_sae'])} | " + " | ".join(ok) + " |"
        )
    out = head + "\n".join(lines) + "\n"
    verdict = "\n| claim | holds on |\n|---|---|\n"
    for c in CLAIMS:
        n_ok = sum(r[f"holds_{c}"] for r in rows)
        verdict += f"| {c} | {n_ok} of {len(rows)} |\n"
    archs = {r["arch"] for r in rows}
    if {"narrow", "wide"} <= archs:

        def res(a: str) -> list[ClaimResult]:
            keep = [r for r in rows if r["arch"] == a]
            return [ClaimResult({k: v for k, v in r.items() if isinstance(v, float)}, {}, {}) for r in keep]

        e = gap_shrinks(res("narrow"), res("wide"))
        verdict += f"| e_gap_shrinks_when_wider | {'yes' if e['holds'] else 'no'} |\n"
        verdict += "\n| gap (positive: SAE better) | narrow | wide |\n|---|---|---|\n" + "".join(
            f"| {name} | {e[f'gap_{m}_narrow']:+.4f} | {e[f'gap_{m}_wide']:+.4f} |\n"
            for m, name in (
                ("knn", "kNN SD ratio, CNN − SAE"),
                ("moran", "Moran's I, SAE − CNN"),
                ("r2", "ridge R², SAE − CNN"),
                ("lt", "label transfer 1:1, SAE − CNN"),
            )
        )
    return out + verdict


def main() -> None:
    """Run every encoder × SAE seed not yet in ``claims.jsonl`` and print the tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("study-cache"))
    p.add_argument("--arch", nargs="+", default=["narrow", "wide"], choices=sorted(WIDTHS))
    p.add_argument("--encoder-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sae-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--expansion", type=int, default=8, help="SAE latents per feature (default 8)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--paper", action="store_true", help="8,192 latents (also SW_SLOW=1)")
    p.add_argument("--quick", action="store_true", help="200 permutations, 100 bootstrap resamples (else 1000, 200)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--tables-only", action="store_true")
    args = p.parse_args()
    from superwidgets.science.study_claims import CLAIMS

    paper = args.paper or os.environ.get("SW_SLOW") == "1"
    log = args.out / ("claims-paper.jsonl" if paper else "claims.jsonl")
    done = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    have = {(r["arch"], r["encoder_seed"], r["sae_seed"]) for r in done}
    todo = []
    for arch in args.arch:
        latents = 8192 if paper else args.expansion * WIDTHS[arch][-1]
        for e in args.encoder_seeds:
            for s in args.sae_seeds:
                if (arch, e, s) not in have:
                    todo.append((args.out, arch, e, s, latents, args.steps, args.quick))
    if not args.tables_only and todo:
        for arch in args.arch:  # features first, once per encoder (not in parallel copies)
            for e in args.encoder_seeds:
                _features(args.out, arch, e)
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for row in pool.map(one, *zip(*todo, strict=True)):
                done.append(row)
                with log.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(
                    f"{row['arch']} enc {row['encoder_seed']} sae {row['sae_seed']}: "
                    f"{ {c: row[f'holds_{c}'] for c in CLAIMS} } "
                    f"({row['sae_seconds']} s + {row['claims_seconds']} s)",
                    flush=True,
                )
    keep = [r for r in done if r["arch"] in args.arch and r["encoder_seed"] in args.encoder_seeds]
    print(tables(keep))


if __name__ == "__main__":
    main()
