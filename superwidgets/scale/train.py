"""Train an SAE on an activation store, on one process or many (``torchrun``, DDP), with checkpoints.

The recipe is :func:`superwidgets.science.sae.fit_sae`'s, step for step (the same ``_Trainer``): the
same architectures, initialisation, learning-rate schedule, warm-up, dead-latent handling and Adam.
What changes is where the batches come from and who computes them:

* a global batch of ``batch_size`` rows is drawn by the seeded sampler of :func:`fit_sae` (shuffled
  epochs over every row of the store, so across shards); rank ``r`` of ``W`` reads rows
  ``[r·B/W, (r+1)·B/W)`` of it from the memory-mapped shards;
* the loss runs through ``DistributedDataParallel`` (gloo on CPU, nccl on GPU), whose backward
  averages the gradients, so each rank takes the step a single process takes on the whole batch;
  the per-latent "fired" flags are OR-ed over ranks, so dead-latent bookkeeping is global too;
* every ``checkpoint_every`` steps rank 0 writes ``checkpoint.json`` + ``checkpoint.safetensors``
  atomically as a pair (weights, Adam state, sampler and random-stream state, history); a rerun
  resumes from it and ends with the weights an uninterrupted run ends with.

The result is saved with :func:`superwidgets.science.save_sae` as ``OUT/sae/sae.json`` +
``OUT/sae/sae.safetensors``: ``sw.science.load_sae(OUT / "sae")`` gives the engine's SAE classes, ready
for ``sw.SAE(sae)`` and the FeatureDashboard.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..engine.files import digest, write_pair
from ._util import Progress, init_distributed, read_json
from .store import ActivationStore

__all__ = ["CHECKPOINT_FORMAT", "train"]

#: Format tag of ``checkpoint.json``.
CHECKPOINT_FORMAT = "superwidgets.scale.checkpoint"


class _Loss(nn.Module):
    """``sae.loss`` as a module's forward, so DistributedDataParallel can wrap it."""

    def __init__(self, sae: nn.Module) -> None:
        super().__init__()
        self.sae = sae

    def forward(
        self, x: torch.Tensor, dead: torch.Tensor | None = None, sparsity_scale: float = 1.0
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The SAE's training loss on ``x`` (see ``_SAEBase.loss``)."""
        return self.sae.loss(x, dead=dead, sparsity_scale=sparsity_scale)


class _StoreRows:
    """Normalised rows of a store on a device, indexable like the tensor :func:`fit_sae` resamples from."""

    def __init__(self, store: ActivationStore, scale: float, dev: torch.device) -> None:
        self.store, self.scale, self.device = store, scale, dev
        self.shape = (len(store), store.d)

    def __getitem__(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.store.rows(idx).to(self.device)
        return x * self.scale if self.scale != 1.0 else x


def train(
    store: str | Path | ActivationStore,
    out: str | Path,
    *,
    arch: str = "topk",
    width: int | None = None,
    k: int | None = None,
    l1: float | None = None,
    l0: float | None = None,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    normalize: bool = True,
    resample_dead: bool | None = None,
    dead_after: int | None = None,
    aux_k: int | None = None,
    aux_coef: float | None = None,
    bandwidth: float | None = None,
    init_threshold: float | None = None,
    warmup: float = 0.05,
    log_every: int = 50,
    checkpoint_every: int = 500,
    resume: bool = True,
    until: int | None = None,
    progress: bool = False,
    progress_file: str | Path | None = None,
) -> nn.Module | None:
    """Train an SAE on the activations in ``store``; under ``torchrun``, on every rank together.

    Parameters
    ----------
    store : str, Path or ActivationStore
        A store written by :func:`superwidgets.scale.store.harvest`.
    out : str or Path
        Folder for the checkpoint, the progress file and the trained SAE (``OUT/sae/sae.json`` +
        ``OUT/sae/sae.safetensors``).
    arch, width, k, l1, l0, steps, lr, seed, normalize, resample_dead, dead_after, aux_k, aux_coef, \
bandwidth, init_threshold, warmup, log_every
        As :func:`superwidgets.science.sae.train_sae`. ``normalize`` uses the store's mean and
        variance (exact float64 sums kept per shard). ``seed`` seeds the initialisation and the batch
        order, whatever the number of ranks.
    batch_size : int
        The *global* batch: each of ``W`` ranks reads ``batch_size / W`` rows per step (it must divide).
        Same ``batch_size`` and ``seed`` on 1 or ``W`` ranks: the same SAE, up to float rounding.
    device : str or torch.device, optional
        Default: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU.
    checkpoint_every : int
        Steps between checkpoints (rank 0 writes them, atomically).
    resume : bool
        Continue from ``OUT/checkpoint.json`` when it exists (it must be of the same recipe and store);
        ``False`` starts over.
    until : int, optional
        Stop after this many steps (of ``steps``), writing a checkpoint: for jobs with a time limit.
        The next run resumes there.
    progress : bool
        A tqdm bar on rank 0.
    progress_file : str or Path, optional
        JSON progress written by rank 0 (default ``OUT/progress.json``): ``state``, ``done``,
        ``total``, ``eta_s``, ``metrics`` (loss, mse, l0, dead_fraction) -- what a notebook polls.

    Returns
    -------
    nn.Module or None
        The trained SAE on the CPU (every rank returns it; rank 0 has saved it), with ``history`` as
        :func:`fit_sae`'s; ``None`` when stopped by ``until`` before the last step.

    Raises
    ------
    ValueError
        ``batch_size`` not divisible by the number of ranks, bad recipe values (as :func:`fit_sae`),
        or a checkpoint of another recipe or store in ``out`` (pass ``resume=False`` to start over).
    """
    from ..science.sae import TopKSAE, _Batches, _check_size, _recipe, _Trainer, save_sae, stream

    t_start = time.perf_counter()
    st = store if isinstance(store, ActivationStore) else ActivationStore(store)
    out = Path(out)
    N, d = len(st), st.d
    if N == 0:
        raise ValueError(f"the store at {st.path} holds no rows; harvest some inputs first")
    checkpoint_every = _check_size("checkpoint_every", checkpoint_every)
    recipe = _recipe(
        N,
        d,
        arch=arch,
        width=width,
        k=k,
        l1=l1,
        l0=l0,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        resample_dead=resample_dead,
        dead_after=dead_after,
        aux_k=aux_k,
        aux_coef=aux_coef,
        bandwidth=bandwidth,
        init_threshold=init_threshold,
        warmup=warmup,
        log_every=log_every,
    )
    stop = recipe.steps if until is None else min(recipe.steps, _check_size("until", until))
    rank, world, dev, _ = init_distributed(device)
    if recipe.batch_size % world:
        raise ValueError(
            f"batch_size {recipe.batch_size} is the global batch and must be divisible by the number of "
            f"ranks ({world}); pick e.g. {math.ceil(recipe.batch_size / world) * world}"
        )
    per_rank = recipe.batch_size // world
    mean, var = st.stats()
    scale = 1.0 / math.sqrt(var) if normalize and var > 0 else 1.0
    pool = _StoreRows(st, scale, dev)
    trainer = _Trainer(recipe, (mean * scale).to(dev), dev, pool=pool, rows_per_step=recipe.batch_size)
    sampler = _Batches(N, recipe.batch_size, stream(recipe.seed, "train.batches"))
    ck_json, ck_tensors = out / "checkpoint.json", out / "checkpoint.safetensors"
    ident = {"recipe": recipe.to_json(), "store_sha256": st.sha256, "scale": scale}
    if resume and (ck_json.exists() or _temps(ck_json)):
        _load_checkpoint(ck_json, ck_tensors, ident, trainer, sampler)
        if rank == 0 and trainer.step_index:
            print(
                f"train: resuming from {ck_json} at step {trainer.step_index} of {recipe.steps}",
                file=sys.stderr,
                flush=True,
            )
    if world > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(_Loss(trainer.sae), device_ids=[dev.index] if dev.type == "cuda" else None)
        trainer.loss_fn = ddp

        def all_fired(fired: torch.Tensor) -> torch.Tensor:
            f = fired.to(torch.int32)
            dist.all_reduce(f, op=dist.ReduceOp.MAX)
            return f.bool()

        def mean_fn(values: torch.Tensor) -> torch.Tensor:
            v = values.clone()
            dist.all_reduce(v)
            return v / world

        trainer.all_fired, trainer.mean_fn = all_fired, mean_fn
        if isinstance(trainer.sae, TopKSAE):
            trainer.sae._batch_mean = mean_fn  # AuxK: normalised by the global batch's error
    progress_path = Path(progress_file) if progress_file is not None else out / "progress.json"
    bar = Progress(
        progress_path,
        "train",
        recipe.steps,
        bar=progress,
        active=rank == 0,
        world_size=world,
        done=trainer.step_index,
    )
    saved = False
    try:
        with trainer.threads():
            while trainer.step_index < stop:
                idx = next(sampler)
                x = pool[idx[rank * per_rank : (rank + 1) * per_rank]]
                if trainer.step(x):
                    h = trainer.hist
                    bar.update(
                        1,
                        loss=h["loss"][-1],
                        mse=h["mse"][-1],
                        l0=h["l0"][-1],
                        dead_fraction=h["dead_fraction"][-1],
                    )
                else:
                    bar.update(1)
                s = trainer.step_index
                if rank == 0 and (s % checkpoint_every == 0 or s == stop) and s < recipe.steps:
                    if not saved:  # every rank has loaded the checkpoint by now (DDP syncs each step)
                        _remove_temps(ck_json, ck_tensors, progress_path)
                    _save_checkpoint(ck_json, ck_tensors, ident, trainer, sampler)
                    saved = True
    except BaseException:
        bar.close("failed")
        raise
    if trainer.step_index < recipe.steps:
        bar.close("stopped")
        return None
    if isinstance(trainer.sae, TopKSAE):
        trainer.sae._batch_mean = None
    sae = trainer.finish(scale, torch.device("cpu"), seconds=time.perf_counter() - t_start)
    if rank == 0:
        save_sae(sae, out / "sae")
        ck_json.unlink(missing_ok=True)  # the run is complete: a rerun starts over
        ck_tensors.unlink(missing_ok=True)
        _remove_temps(ck_json, ck_tensors)
    bar.close("done")
    return sae


def _try(check: Any, path: Path) -> dict[str, Any] | None:
    try:
        return check(path)
    except ValueError:
        return None


def _save_checkpoint(ck_json: Path, ck_tensors: Path, ident: dict[str, Any], trainer: Any, sampler: Any) -> None:
    tensors, meta = trainer.state()
    tensors["rng.batches"] = sampler.gen.get_state()
    tensors["sampler.buf"] = sampler.buf.clone()
    sha = digest(tensors)
    doc = {"format": CHECKPOINT_FORMAT, **ident, **meta, "tensors_sha256": sha}
    write_pair(ck_json, json.dumps(doc), ck_tensors, tensors, {"sha256": sha})


def _temps(path: Path) -> list[Path]:
    """The temporary files ``write_pair`` leaves beside ``path`` when it is killed (``.NAME.*.tmp``)."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _remove_temps(*paths: Path) -> None:
    for path in paths:
        for t in _temps(path):
            t.unlink(missing_ok=True)


def _load_checkpoint(ck_json: Path, ck_tensors: Path, ident: dict[str, Any], trainer: Any, sampler: Any) -> None:
    from safetensors.torch import load_file

    hint = "delete it or pass resume=False (--no-resume) to start over"

    def check(path: Path) -> dict[str, Any]:
        doc = read_json(path, "training checkpoint", hint)
        if doc.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path} is not a superwidgets.scale checkpoint; {hint}")
        for key, want in ident.items():
            if doc.get(key) != want:
                raise ValueError(
                    f"{path} belongs to another run ({key} differs: {doc.get(key)!r} there, {want!r} now); {hint}"
                )
        return doc

    def tensors_of(path: Path) -> tuple[dict[str, torch.Tensor] | None, str | None]:
        try:
            t = load_file(str(path))
        except Exception:  # SafetensorError, OSError: missing, or half written when the writer was killed
            return None, None
        return t, digest(t)

    doc = check(ck_json) if ck_json.exists() else None
    tensors, sha = tensors_of(ck_tensors)
    if doc is None or sha != doc.get("tensors_sha256"):
        # A SIGKILL inside write_pair, between its two renames, leaves the new tensors beside the old JSON;
        # the new JSON and the old tensors are then still in its temporary files. Take the newest pair that
        # was saved together (a half-written temporary file does not parse or does not match).
        docs = [(p, d) for p in _temps(ck_json) for d in [_try(check, p)] if d is not None]
        if doc is not None:
            docs.append((ck_json, doc))
        pool = [(ck_tensors, tensors, sha)] + [(p, *tensors_of(p)) for p in _temps(ck_tensors)]
        pairs = [
            (int(d.get("step", -1)), d, t) for _, d in docs for _, t, h in pool if h and h == d.get("tensors_sha256")
        ]
        if not pairs:
            if doc is None:  # killed while writing the first checkpoint: nothing to resume from
                return
            if tensors is None:
                raise ValueError(f"{ck_tensors}: missing or unreadable checkpoint tensors; {hint}")
            raise ValueError(f"{ck_tensors} was not saved with {ck_json.name} (SHA-256 differs); {hint}")
        _, doc, tensors = max(pairs, key=lambda p: p[0])
    assert doc is not None and tensors is not None
    trainer.load_state(tensors, doc)
    sampler.gen.set_state(tensors["rng.batches"].clone())
    sampler.buf = tensors["sampler.buf"].clone()
