"""``python -m superwidgets.scale {harvest,train,sweep}``: the command line of :mod:`superwidgets.scale`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "parser"]

_MODEL_HELP = (
    "the model and its inputs: 'MODULE:FUNCTION', a function that takes no arguments and returns "
    "(model, inputs) -- e.g. 'mymodels:gpt_and_prompts' for def gpt_and_prompts() in mymodels.py, "
    "importable from the current folder or PYTHONPATH; every rank calls it, so seed anything random -- "
    "or a zoo model name such as 'breast-cancer-mlp' (its data set gives the inputs)"
)

_EPILOG = """\
Run the same command three ways:
  one process:        python -m superwidgets.scale train --store acts --out sae-run
  N ranks, one node:  python -m torch.distributed.run --nproc_per_node=N -m superwidgets.scale train ...
                      (torchrun does the same; gloo on CPU, nccl on GPU, one GPU per rank)
  several nodes:      torchrun --nnodes=2 --node_rank=$NODE --nproc_per_node=8 \\
                        --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 -m superwidgets.scale train ...
Rank 0 writes progress as JSON (--progress-file; train: OUT/progress.json) for a notebook to poll.
Every step is resumable: run the same command again after a crash. Details: docs/scale.md.
"""


def parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m superwidgets.scale`` (its subcommands and their options)."""
    p = argparse.ArgumentParser(
        prog="python -m superwidgets.scale",
        description="Harvest activations to disk, train sparse autoencoders on them and run ablation sweeps, "
        "on one process or many (torchrun).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", metavar="{harvest,train,sweep}")
    sub.required = True

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--threads", type=int, default=None, help="torch CPU threads per rank (default: torch's)")
        q.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda:LOCAL_RANK if available)")
        q.add_argument("--progress-file", type=Path, default=None, help="rank 0 writes its progress here (JSON)")
        q.add_argument("--quiet", action="store_true", help="no progress bar")

    h = sub.add_parser(
        "harvest",
        help="stream a site's activations into sharded safetensors files (resumable, split over ranks)",
        description="Run the model over its inputs and store the activations of one site as shards of "
        "--rows-per-shard rows with a JSON index. Killed? Run the same command again: it resumes. Under "
        "torchrun each rank harvests a slice of the inputs and writes its own shards; on a cluster without "
        "torchrun, give each job --rank and --world-size.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    h.add_argument("--model", required=True, help=_MODEL_HELP)
    h.add_argument("--site", required=True, help="module path whose output is stored, e.g. 'blocks.3' or 'layer3'")
    h.add_argument("--out", required=True, type=Path, help="the store's folder")
    h.add_argument("--rows-per-shard", type=int, default=65536, help="rows per shard file (default 65536)")
    h.add_argument("--chunk-size", type=int, default=256, help="inputs per forward pass (default 256)")
    h.add_argument("--feature-dim", type=int, default=None, help="feature axis (default: 1 for conv, else last)")
    h.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"], help="storage dtype")
    h.add_argument("--rank", type=int, default=None, help="this job's part (cluster arrays without torchrun)")
    h.add_argument("--world-size", type=int, default=None, help="number of parts (with --rank)")
    h.add_argument("--overwrite", action="store_true", help="delete a store already in --out and start over")
    common(h)

    t = sub.add_parser(
        "train",
        help="train an SAE on a store (DDP under torchrun), with checkpoints",
        description="Train a sparse autoencoder (the recipes of superwidgets.science.fit_sae) on a store. "
        "--batch-size is the global batch, split over the ranks. Writes OUT/checkpoint.* every "
        "--checkpoint-every steps (a rerun resumes there), OUT/progress.json, and at the end OUT/sae/sae.json + "
        "OUT/sae/sae.safetensors: sw.science.load_sae('OUT/sae') then sw.SAE(sae) or a FeatureDashboard.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument("--store", required=True, type=Path, help="a store written by 'harvest'")
    t.add_argument("--out", required=True, type=Path, help="folder for checkpoints, progress and the SAE")
    t.add_argument("--arch", default="topk", choices=["topk", "relu", "gated", "jumprelu"], help="architecture")
    t.add_argument("--width", type=int, default=None, help="latents (default 8 x the activation width)")
    t.add_argument("--k", type=int, default=None, help="topk: active latents per input")
    t.add_argument("--l1", type=float, default=None, help="relu, gated: L1 coefficient (default 0.3)")
    t.add_argument("--l0", type=float, default=None, help="jumprelu: L0 coefficient (default 0.01)")
    t.add_argument("--steps", type=int, default=3000, help="optimiser steps (default 3000)")
    t.add_argument("--batch-size", type=int, default=256, help="global batch, divisible by the ranks (default 256)")
    t.add_argument("--lr", type=float, default=None, help="dictionary learning rate (default: by width)")
    t.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the batch order")
    t.add_argument("--no-normalize", action="store_true", help="train on raw activations (no global rescale)")
    t.add_argument("--resample-dead", choices=["auto", "yes", "no"], default="auto", help="dead-latent handling")
    t.add_argument("--dead-after", type=int, default=None, help="activations without firing = dead")
    t.add_argument("--warmup", type=float, default=0.05, help="warm-up fraction of the steps")
    t.add_argument("--log-every", type=int, default=50, help="steps between history entries")
    t.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (default 500)")
    t.add_argument("--until", type=int, default=None, help="stop after this step with a checkpoint (time limits)")
    t.add_argument("--no-resume", action="store_true", help="ignore a checkpoint in --out and start over")
    common(t)

    s = sub.add_parser(
        "sweep",
        help="the effect of ablating each feature on every input, inputs split over ranks",
        description="Lens.sweep over the whole cohort, each rank a slice of the inputs, gathered to rank 0, "
        "which writes OUT.safetensors ('effect': features x inputs x readout) and OUT.json.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--model", required=True, help=_MODEL_HELP)
    s.add_argument("--site", required=True, help="module path to edit")
    s.add_argument("--out", required=True, type=Path, help="file stem: writes OUT.safetensors and OUT.json")
    s.add_argument("--features", default=None, help="comma-separated features, or A:B for a range (default: all)")
    s.add_argument("--op", default="ablate", choices=["ablate", "mean"], help="zero each feature, or set its mean")
    s.add_argument("--readout", default="output", choices=["output", "softmax", "log_softmax"], help="what differs")
    s.add_argument("--sae", type=Path, default=None, help="sweep the latents of this SAE (saved by train/save_sae)")
    s.add_argument("--feature-dim", type=int, default=None, help="feature axis of the site")
    s.add_argument("--batch-size", type=int, default=8192, help="most rows per forward pass")
    s.add_argument("--max-inputs", type=int, default=None, help="use the first N inputs only")
    common(s)
    return p


def _features(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            return list(range(int(a), int(b)))
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"--features must be like 0,3,7 or 0:64, got {text!r}") from None


_READOUTS: dict[str, Any] = {
    "output": None,
    "softmax": lambda y: y.softmax(-1),
    "log_softmax": lambda y: y.log_softmax(-1),
}


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m superwidgets.scale ARGV``; returns the exit status."""
    import torch

    p = parser()
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    except (ValueError, FileNotFoundError) as exc:  # bad input: the message says how to fix it
        p.exit(2, f"{p.prog} {args.command}: error: {exc}\n")


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        from .train import train

        train(
            args.store,
            args.out,
            arch=args.arch,
            width=args.width,
            k=args.k,
            l1=args.l1,
            l0=args.l0,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            device=args.device,
            normalize=not args.no_normalize,
            resample_dead={"auto": None, "yes": True, "no": False}[args.resample_dead],
            dead_after=args.dead_after,
            warmup=args.warmup,
            log_every=args.log_every,
            checkpoint_every=args.checkpoint_every,
            resume=not args.no_resume,
            until=args.until,
            progress=not args.quiet,
            progress_file=args.progress_file,
        )
        return 0
    from ._util import init_distributed
    from .spec import load_model

    model, inputs = load_model(args.model)
    _rank, world, dev, _ = init_distributed(args.device)
    model.to(dev)
    if args.command == "harvest":
        from .store import harvest

        harvest(
            model,
            args.site,
            inputs,
            args.out,
            rows_per_shard=args.rows_per_shard,
            chunk_size=args.chunk_size,
            feature_dim=args.feature_dim,
            dtype=args.dtype,
            model_name=args.model,
            rank=args.rank,
            world_size=args.world_size,
            overwrite=args.overwrite,
            progress=not args.quiet,
            progress_file=args.progress_file,
        )
        return 0
    from .sweep import sweep

    if args.max_inputs is not None:
        inputs = inputs[: args.max_inputs]
    basis = None
    if args.sae is not None:
        from .. import SAE
        from ..science.sae import load_sae

        basis = SAE(load_sae(args.sae, device=dev))
    effect = sweep(
        model,
        args.site,
        inputs.to(dev),
        features=_features(args.features),
        op=args.op,
        basis=basis,
        feature_dim=args.feature_dim,
        readout=_READOUTS[args.readout],
        batch_size=args.batch_size,
        progress=not args.quiet,
    )
    if effect is not None:
        from ..engine.files import digest, write_pair

        out = Path(args.out)
        tensors = {"effect": effect.detach().cpu().contiguous()}
        sha = digest(tensors)
        doc = {
            "format": "superwidgets.scale.sweep",
            "model": args.model,
            "site": args.site,
            "op": args.op,
            "readout": args.readout,
            "features": _features(args.features),
            "sae": None if args.sae is None else str(args.sae),
            "shape": list(effect.shape),
            "world_size": world,
            "tensors_sha256": sha,
        }
        write_pair(
            out.with_suffix(".json"),
            json.dumps(doc, indent=1),
            out.with_suffix(".safetensors"),
            tensors,
            {"sha256": sha},
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
