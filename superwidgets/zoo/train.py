"""Deterministic training of the reference models.

Usage: ``python -m superwidgets.zoo.train NAME [NAME ...]`` (or ``all``).
Writes ``weights/NAME.safetensors`` and a ``weights/NAME.json`` model card.

Training runs on CPU with ``torch.use_deterministic_algorithms(True)``, a fixed seed and a
seeded mini-batch generator, so the same machine reproduces the shipped weights bit for bit.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from .registry import WEIGHTS, _entry, available

__all__ = [
    "DECODABLE_R2",
    "bottleneck_decodability",
    "char_metrics",
    "decodability",
    "factor_ceilings",
    "fit_char_model",
    "fit_neuron_model",
    "main",
    "neuron_metrics",
    "train",
]

#: Held-out R² above which a factor counts as decodable from a bottleneck by a linear readout with a
#: ReLU (:func:`decodability`, ``readout="relu"``); it must also beat the R² that the other 19 factors
#: reach for it (see :func:`factor_ceilings`).
DECODABLE_R2 = 0.5


def train(name: str, *, seed: int = 0) -> dict[str, Any]:
    """Train model ``name`` deterministically on CPU and save its weights.

    Returns
    -------
    dict
        The model card: seed, recipe and the entry's metrics (for classifiers: train and test accuracy).
    """
    from safetensors.torch import save_file

    entry = _entry(name)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    model = entry.architecture()
    data = entry.data()
    if entry.fit is None:
        x_tr, y_tr = data.X[data.train], data.y[data.train]
        opt = torch.optim.AdamW(model.parameters(), lr=entry.lr, weight_decay=entry.weight_decay)
        loss_fn = nn.CrossEntropyLoss()
        model.train()
        for _ in range(entry.train_steps):
            opt.zero_grad()
            loss = loss_fn(model(x_tr), y_tr)
            loss.backward()
            opt.step()
        recipe: dict[str, Any] = {"steps": entry.train_steps}
    else:
        entry.fit(model, data, generator=torch.Generator().manual_seed(seed), **entry.recipe)
        recipe = {"recipe": dict(entry.recipe)}
    model.eval()
    with torch.no_grad():
        metrics = entry.evaluate(model, data) if entry.evaluate is not None else _accuracies(model, data)
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(WEIGHTS / f"{name}.safetensors"))
    card = {"name": name, "seed": seed, **recipe, **metrics, "description": entry.description}
    (WEIGHTS / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def _accuracies(model: nn.Module, data: Any) -> dict[str, float]:
    acc_tr = (model(data.X[data.train]).argmax(1) == data.y[data.train]).float().mean().item()
    acc_te = (model(data.X[data.test]).argmax(1) == data.y[data.test]).float().mean().item()
    return {"train_accuracy": round(acc_tr, 4), "test_accuracy": round(acc_te, 4)}


# --------------------------------------------------------------------------------------------
# Neuron models
# --------------------------------------------------------------------------------------------


def fit_neuron_model(
    model: nn.Module,
    world: Any,
    *,
    generator: torch.Generator,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    augment: bool,
) -> None:
    """Train a neuron model (``NeuronCNN`` or ``NeuronRecordMLP``) in place on the world's train split.

    Mini-batch AdamW with a one-cycle learning-rate schedule, batches drawn with ``generator``.
    The loss reads every head from the bottleneck: cross-entropy on ``disease``, plus MSE on the
    ``outcome`` divided by its train variance, plus the sum over the 20 factors of each factor's MSE
    divided by its train variance, the factors read out as ``relu(factor_head(z))`` (the factors are
    sparse and ≥ 0; a ReLU readout is what lets a narrow bottleneck hold more of them than it has
    dimensions, as in Elhage et al.'s toy models — with a linear readout the best code is the top
    principal subspace and nothing is superposed). ``augment`` applies one random 90° rotation and flip per batch
    (the neuron images are isotropic by construction).
    """
    x = model.world_inputs(world)
    rows = torch.as_tensor(world.records.train)
    disease = torch.as_tensor(world.disease)
    outcome = torch.as_tensor(world.outcome)
    factors = torch.as_tensor(world.factors)
    outcome_var = outcome[rows].var()
    factor_var = factors[rows].var(0).clamp_min(1e-8)
    steps = len(rows) // batch_size
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps)
    ce = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = rows[torch.randperm(len(rows), generator=generator)]
        for i in range(steps):
            idx = order[i * batch_size : (i + 1) * batch_size]
            xb = x[idx]
            if augment:
                k = int(torch.randint(4, (1,), generator=generator))
                xb = torch.rot90(xb, k, (2, 3))
                if int(torch.randint(2, (1,), generator=generator)):
                    xb = xb.flip(3)
            z = model.encode(xb)
            loss = (
                ce(model.disease_head(z), disease[idx])
                + ((model.outcome_head(z)[:, 0] - outcome[idx]) ** 2).mean() / outcome_var
                + (((torch.relu(model.factor_head(z)) - factors[idx]) ** 2).mean(0) / factor_var).sum()
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    model.eval()


def _batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, size: int = 1024) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i : i + size]) for i in range(0, len(x), size)])


def _r2(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    ss = ((y - y.mean(0)) ** 2).sum(0)
    return 1.0 - ((y - pred) ** 2).sum(0) / np.where(ss > 0, ss, 1.0)


def decodability(
    codes: np.ndarray | torch.Tensor,
    factors: np.ndarray | torch.Tensor,
    fit_rows: np.ndarray,
    eval_rows: np.ndarray,
    *,
    readout: str = "relu",
    alpha: float = 1e-2,
) -> np.ndarray:
    """Held-out R² of a readout from ``codes`` to each column of ``factors``.

    ``readout="linear"``: a ridge regression (penalty ``alpha · n_fit`` on the standardised codes,
    intercept not penalised). ``readout="relu"`` (default): ``relu(z · w_k + b_k)`` per factor, the
    readout of Elhage et al.'s toy models, fitted by L-BFGS on the mean squared error (started from
    the ridge solution, a small L2 penalty on ``w``). A linear map from an ``m``-dimensional code
    can explain at most about ``m`` units of R² in total across uncorrelated factors, whatever the
    code, so it cannot show superposition; the ReLU's threshold can filter out the interference
    between sparse, non-negative factors that share directions, which is what superposition relies
    on. Codes are standardised with the fit rows' statistics; computed in float64.

    Parameters
    ----------
    codes : array, shape (n, m)
        Activations, e.g. a bottleneck.
    factors : array, shape (n, K)
        Targets, e.g. ``world.factors`` (``≥ 0`` for the ReLU readout to make sense).
    fit_rows, eval_rows : int arrays
        Rows to fit the readout on and rows to score it on.
    readout : {"relu", "linear"}
        The readout, see above.
    alpha : float
        Ridge penalty of the linear readout (and of the ReLU readout's starting point).

    Returns
    -------
    numpy.ndarray, shape (K,)
        R² on ``eval_rows`` per factor (1 = perfectly decodable, ≤ 0 = not at all).
    """
    if readout not in ("relu", "linear"):
        raise ValueError(f"readout must be 'relu' or 'linear'; got {readout!r}")
    z = np.asarray(codes, dtype=np.float64)
    f = np.asarray(factors, dtype=np.float64)
    mu = z[fit_rows].mean(0)
    sd = z[fit_rows].std(0)
    z = (z - mu) / np.where(sd > 0, sd, 1.0)
    a = np.c_[z[fit_rows], np.ones(len(fit_rows))]
    b = np.c_[z[eval_rows], np.ones(len(eval_rows))]
    reg = alpha * len(fit_rows) * np.eye(a.shape[1])
    reg[-1, -1] = 0.0
    w = np.linalg.solve(a.T @ a + reg, a.T @ f[fit_rows])
    if readout == "linear":
        return _r2(f[eval_rows], b @ w)
    return _r2(f[eval_rows], _relu_readout(a, f[fit_rows], w, b))


def _relu_readout(a: np.ndarray, f: np.ndarray, w_lin: np.ndarray, b: np.ndarray, steps: int = 200) -> np.ndarray:
    """Fit ``relu(a @ w)`` to ``f`` by L-BFGS; predict at ``b``.

    Two starts, the better kept per factor (the loss is a sum of independent per-factor terms): the
    ridge solution ``w_lin`` (a stationary point when all its predictions are positive, so the ReLU
    never engages) and a ridge fit on the rows where the factor is active, its intercept lowered so
    that the median inactive row sits at zero.
    """
    at, ft = torch.as_tensor(a), torch.as_tensor(f)
    var = ft.var(0).clamp_min(1e-12)
    w_act = w_lin.copy()
    reg = 1e-3 * np.eye(a.shape[1])
    for k in range(f.shape[1]):
        on = f[:, k] > 0
        if a.shape[1] < on.sum() < len(f):
            w_act[:, k] = np.linalg.solve(a[on].T @ a[on] + reg * on.sum(), a[on].T @ f[on, k])
            w_act[-1, k] -= np.median(a[~on] @ w_act[:, k])
    best, best_loss = None, None
    for w0 in (w_lin, w_act):
        w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")

        def closure(w: torch.Tensor = w, opt: torch.optim.LBFGS = opt) -> torch.Tensor:
            opt.zero_grad()
            loss = (((torch.relu(at @ w) - ft) ** 2).mean(0) / var).sum() + 1e-4 * (w[:-1] ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            per = ((torch.relu(at @ w) - ft) ** 2).mean(0)
            if best is None:
                best, best_loss = w.detach().clone(), per
            else:
                better = per < best_loss
                best[:, better] = w.detach()[:, better]
                best_loss = torch.minimum(best_loss, per)
    with torch.no_grad():
        return torch.relu(torch.as_tensor(b) @ best).numpy()


def bottleneck_decodability(model: nn.Module, world: Any, *, readout: str = "relu") -> dict[str, float]:
    """Per-factor decodability from a neuron model's bottleneck.

    A readout (ReLU of a linear map by default, or ``readout="linear"``) from the bottleneck codes
    of the world's train cells to each factor, scored (R²) on its test cells; see :func:`decodability`.
    """
    codes = _batched(model.encode, model.world_inputs(world))
    r2 = decodability(codes, world.factors, world.records.train, world.records.test, readout=readout)
    return dict(zip(world.factor_names, (float(v) for v in r2), strict=True))


def factor_ceilings(world: Any) -> np.ndarray:
    """Held-out R² of each factor from the *other* 19 factors (their values, squares and on/off flags).

    The same ReLU readout as :func:`decodability` uses by default.

    A code that stores some factors, one per dimension and untangled, makes any other factor
    decodable only through its correlations with them, so no better than this. A factor whose
    decodability from a code beats its ceiling is carried by the code itself. On the zoo's world the
    ceiling is 0.33 for ``disease`` (through its genotype parents) and at most 0.12 for the others.

    Returns
    -------
    numpy.ndarray, shape (20,)
        One R² per factor, in the order of ``world.factor_names`` (ridge on the train cells,
        scored on the test cells; see :func:`decodability`).
    """
    cached = world.__dict__.get("_factor_ceilings")
    if cached is not None and cached[0] is world.factors:  # computed once per world (≈ 10 s)
        return cached[1].copy()
    f = np.asarray(world.factors, dtype=np.float64)
    out = np.empty(f.shape[1])
    for k in range(f.shape[1]):
        o = np.delete(f, k, axis=1)
        feats = np.concatenate([o, o**2, (o > 0).astype(np.float64)], axis=1)
        out[k] = decodability(feats, f[:, [k]], world.records.train, world.records.test)[0]
    world.__dict__["_factor_ceilings"] = (world.factors, out.copy())
    return out


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U, ties averaged)."""
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    _, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    ranks = (np.bincount(inv, weights=ranks) / counts)[inv]
    pos = y == 1
    n1, n0 = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def neuron_metrics(model: nn.Module, world: Any, *, threshold: float = DECODABLE_R2) -> dict[str, Any]:
    """Model-card metrics of a neuron model on the world's train/test split.

    Disease accuracy (with the majority-class baseline, balanced accuracy and ROC AUC), outcome R²,
    the factor head's R² per factor, and the decodability of each factor from the bottleneck by a ReLU
    readout (and, for comparison, a linear one)
    (:func:`bottleneck_decodability`): the factors above ``threshold`` and above their
    :func:`factor_ceilings` count as decodable, next to the bottleneck width.
    """
    tr, te = world.records.train, world.records.test
    codes = _batched(model.encode, model.world_inputs(world))
    y = np.asarray(world.disease)
    logits = model.disease_head(codes).numpy()
    pred = logits.argmax(1)
    outcome = model.outcome_head(codes)[:, 0].numpy()
    factor_pred = torch.relu(model.factor_head(codes)).numpy()
    decod = decodability(codes, world.factors, tr, te)
    linear = decodability(codes, world.factors, tr, te, readout="linear")
    ceilings = factor_ceilings(world)
    head_r2 = _r2(world.factors[te], factor_pred[te])
    names = list(world.factor_names)
    decodable = [n for n, r, c in zip(names, decod, ceilings, strict=True) if r > max(threshold, c)]
    majority = max(y[te].mean(), 1 - y[te].mean())
    balanced = np.mean([(pred[te][y[te] == c] == c).mean() for c in (0, 1)])
    return {
        "bottleneck_width": int(codes.shape[1]),
        "train_accuracy": round(float((pred[tr] == y[tr]).mean()), 4),
        "test_accuracy": round(float((pred[te] == y[te]).mean()), 4),
        "test_majority_baseline": round(float(majority), 4),
        "test_balanced_accuracy": round(float(balanced), 4),
        "test_auc": round(_auc(logits[te, 1] - logits[te, 0], y[te]), 4),
        "outcome_r2": round(float(_r2(world.outcome[te], outcome[te])), 4),
        "factor_head_r2_mean": round(float(head_r2.mean()), 4),
        "decodable_threshold": threshold,
        "decodable_factors": len(decodable),
        "decodable_factor_names": decodable,
        "decodable_counts": {str(t): int((decod > t).sum()) for t in (0.3, 0.4, 0.5, 0.7, 0.9)},
        "decodability_r2_sum": round(float(np.clip(decod, 0, None).sum()), 4),
        "decodability_r2": {n: round(float(r), 4) for n, r in zip(names, decod, strict=True)},
        "linear_decodable_counts": {str(t): int((linear > t).sum()) for t in (0.3, 0.4, 0.5, 0.7, 0.9)},
        "linear_decodability_r2": {n: round(float(r), 4) for n, r in zip(names, linear, strict=True)},
        "factor_ceiling_r2": {n: round(float(r), 4) for n, r in zip(names, ceilings, strict=True)},
        "factor_head_r2": {n: round(float(r), 4) for n, r in zip(names, head_r2, strict=True)},
        "world": {
            "n": len(world),
            "seed": world.seed,
            "image_size": world.image_size,
            "train": len(tr),
            "test": len(te),
        },
    }


# --------------------------------------------------------------------------------------------
# Character language model
# --------------------------------------------------------------------------------------------


def fit_char_model(
    model: nn.Module,
    data: Any,
    *,
    generator: torch.Generator,
    steps: int = 3000,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.01,
) -> None:
    """Train a character model on random windows of the train part (next-character cross-entropy).

    AdamW with a linear warm-up over the first 5 % of steps and a cosine decay; windows drawn with
    ``generator``; one CPU thread (deterministic, and fastest for a model this small).
    """
    ids, ctx, end = data.ids, data.context, data.train_end
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * min(1.0, s / steps)))
    )
    offsets = torch.arange(ctx + 1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model.train()
        for _ in range(steps):
            starts = torch.randint(0, end - ctx - 1, (batch_size, 1), generator=generator)
            chunk = ids[starts + offsets]
            logits = model(chunk[:, :-1])
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), chunk[:, 1:].reshape(-1))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    finally:
        torch.set_num_threads(threads)
        model.eval()


def char_metrics(model: nn.Module, data: Any, windows: int = 256) -> dict[str, Any]:
    """Held-out bits per character and next-character accuracy, with the unigram baseline for scale."""
    ids, ctx = data.ids, data.context
    test = ids[data.train_end :]
    starts = torch.arange(0, len(test) - ctx - 1, (len(test) - ctx - 1) // windows)[:windows]
    chunk = test[starts[:, None] + torch.arange(ctx + 1)]
    logits = _batched(model, chunk[:, :-1], 64)
    target = chunk[:, 1:]
    nll = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1)).item()
    acc = (logits.argmax(-1) == target).float().mean().item()
    counts = torch.bincount(ids[: data.train_end], minlength=len(data.vocab)).double() + 1
    p = counts / counts.sum()
    unigram = float(-(p[target.reshape(-1)].log2()).mean())
    return {
        "test_bits_per_char": round(nll / np.log(2), 4),
        "unigram_bits_per_char": round(unigram, 4),
        "test_next_char_accuracy": round(acc, 4),
    }


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="+", help=f"models to train: {available()} or 'all'")
    args = parser.parse_args(argv)
    names = available() if args.names == ["all"] else args.names
    for n in names:
        t0 = time.perf_counter()
        card = train(n)
        print(json.dumps(card))
        print(f"trained {n} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
