"""Batched sweeps: the effect of each single-feature edit on every input, in one pass per chunk.

Instead of one forward pass per (feature, input chunk), the site's clean
activations are repeated once per feature in a chunk, each copy gets its own
edit, and only the layers after the site run on the stacked batch (via the
Lens's fx plan; a full forward on repeated inputs where there is none).
Chunks keep at most ``batch_size`` rows in flight.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .bases import Basis, Neurons
from .edits import Ablate, Fn, MeanAblate, Op
from .sites import get_element, set_element

if TYPE_CHECKING:
    from .lens import Lens

__all__ = ["sweep"]


def _rep(value: Any, times: int, n: int) -> Any:
    """Repeat batch-shaped tensors (leading dim ``n``) ``times`` along dim 0; leave the rest."""
    if isinstance(value, torch.Tensor):
        if value.ndim > 0 and value.shape[0] == n and times > 1:
            return value.repeat(times, *([1] * (value.ndim - 1)))
        return value
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_rep(v, times, n) for v in value)
    if isinstance(value, list):
        return [_rep(v, times, n) for v in value]
    return value


def _edit_blocks(h: torch.Tensor, fns: list[Fn], feature_dim: int | None) -> torch.Tensor:
    """``cat([fn(h) for fn in fns])`` with the feature axis moved last for the ops."""
    fd = feature_dim if feature_dim is not None else (1 if h.ndim == 4 else -1)
    moved = h.movedim(fd, -1)
    out = torch.cat([fn(moved) for fn in fns])
    return out.movedim(-1, fd)


class _SetUnits:
    """Fast stacked edit for neuron-basis ablations: copy ``h`` once per feature, then set one unit per copy.

    Equivalent to ``_edit_blocks`` with ``Ablate([f])`` / ``MeanAblate([f])`` ops, with one
    repeat and one scatter instead of a full elementwise pass and a concatenation per feature.
    """

    def __init__(self, units: list[int], values: torch.Tensor) -> None:
        self.units = torch.tensor(units)
        self.values = values

    def __call__(self, h: torch.Tensor, j0: int, j1: int, feature_dim: int | None) -> torch.Tensor:
        fd = feature_dim if feature_dim is not None else (1 if h.ndim == 4 else -1)
        moved = h.movedim(fd, -1)
        times = j1 - j0
        rep = moved.unsqueeze(0).repeat(times, *([1] * moved.ndim))
        flat = rep.view(times, -1, moved.shape[-1])
        vals = self.values[j0:j1].to(dtype=h.dtype, device=h.device)
        flat[torch.arange(times), :, self.units[j0:j1].to(h.device)] = vals[:, None]
        return rep.view(times * moved.shape[0], *moved.shape[1:]).movedim(-1, fd)


class _Progress:
    def __init__(self, total: int, enabled: bool | Callable[[int, int], None]) -> None:
        self.total, self.done = total, 0
        self.callback = enabled if callable(enabled) else None
        self.bar = None
        if enabled is True:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="sweep", unit="chunk")
            except ImportError:
                self.bar = None
        self.text = enabled is True and self.bar is None

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)
        if self.bar is not None:
            self.bar.update(1)
        elif self.text:
            print(f"\rsweep {self.done}/{self.total}", end="" if self.done < self.total else "\n", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def sweep(
    lens: Lens,
    site: str,
    inputs: torch.Tensor,
    *,
    features: Sequence[int | str] | None = None,
    op: str | Callable[[int | str], Op] = "ablate",
    basis: Basis | None = None,
    feature_dim: int | None = None,
    readout: Callable[[Any], torch.Tensor] | None = None,
    reference: torch.Tensor | None = None,
    batch_size: int = 8192,
    progress: bool | Callable[[int, int], None] = False,
) -> torch.Tensor:
    """Effect of each single-feature edit at ``site`` on every input.

    Parameters
    ----------
    lens : Lens
        The lens (its own edits are switched off during the sweep: effects are
        relative to the clean model).
    site : str
        Module path.
    inputs : Tensor, shape (n, ...)
        The cohort.
    features : sequence, optional
        Features of ``basis`` to sweep (default: all).
    op : {"ablate", "mean"} or callable
        ``"ablate"``: zero each feature; ``"mean"``: set it to its mean over
        ``reference`` (default: the inputs); or ``op(feature) -> Op`` for any
        single-feature edit (e.g. ``lambda f: sw.Clamp([f], 3.0)``).
    basis : Basis, optional
        ``Neurons()`` (default), ``Directions`` or ``SAE``.
    feature_dim : int, optional
        Feature axis of the site's activation.
    readout : callable, optional
        Applied to model outputs before differencing (e.g. ``lambda y: y.softmax(-1)``).
        Default: the output tensor itself.
    reference : Tensor, optional
        Reference inputs for ``op="mean"``.
    batch_size : int
        Most rows (features × inputs) per forward pass; bounds memory.
    progress : bool or callable
        ``True`` shows a progress bar (tqdm if installed, else text on
        stderr); a callable gets ``(done, total)`` after each chunk.

    Returns
    -------
    Tensor, shape (n_features, n, *readout_shape)
        ``readout(edited) - readout(baseline)`` per feature and input.
    """
    lens._check_open()
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
        raise ValueError("inputs must be a non-empty tensor of shape (n, ...)")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lens._check_input(inputs)
    lens.bind(site)
    readout = readout or (lambda y: y)
    b = basis if basis is not None else Neurons()
    first = lens.activations(inputs[:1], site)[site]
    fd = feature_dim if feature_dim is not None else (1 if first.ndim == 4 else -1)
    width = int(first.shape[fd])
    names = b.names(width)
    feats = list(range(len(names))) if features is None else list(features)
    if not feats:
        raise ValueError("no features to sweep")
    if op == "ablate":
        ops = [Ablate([f]) for f in feats]
    elif op == "mean":
        mean = lens.mean(site, reference if reference is not None else inputs, feature_dim=feature_dim)
        ops = [MeanAblate([f], mean=mean) for f in feats]
    elif callable(op):
        ops = [op(f) for f in feats]
        if not all(isinstance(o, Op) for o in ops):
            raise TypeError("op(feature) must return an edit op such as sw.Clamp([feature], 1.0)")
    else:
        raise ValueError(f"op must be 'ablate', 'mean' or a callable feature -> Op, got {op!r}")
    fns = [o.compile(width, b, first.dtype, first.device) for o in ops]
    fast = None
    if isinstance(b, Neurons) and op in ("ablate", "mean"):
        units = [b.index(f, width) for f in feats]
        fast = _SetUnits(units, torch.zeros(len(units)) if op == "ablate" else mean[units])

    n = int(inputs.shape[0])
    n_chunk = min(n, batch_size)
    # stack features only while batches are small: past ~2k rows a stacked copy costs more than it saves
    f_chunk = max(1, min(batch_size, 2048) // n_chunk)
    in_chunks = [(i, min(i + n_chunk, n)) for i in range(0, n, n_chunk)]
    f_chunks = [(j, min(j + f_chunk, len(fns))) for j in range(0, len(fns), f_chunk)]
    bar = _Progress(len(in_chunks) * len(f_chunks), progress)
    out: torch.Tensor | None = None
    use_plan = True
    try:
        with lens._clean():
            for a, z in in_chunks:
                x = inputs[a:z]
                nc = z - a
                plan = lens._plan_for(x) if use_plan else None
                replayed = None
                if plan is not None:
                    base, vals = lens._guard_model(lambda x=x, plan=plan: plan.capture(x))
                    program, front = plan.tail(frozenset({site})) or (None, [])
                    site_node = plan.node_of(site)
                else:
                    # no fx trace: replay the modules before the site from one clean pass (see replay.py)
                    replayed = lens._replay_capture(x, site) if use_plan else None
                    base = replayed[0] if replayed is not None else lens._forward(x)
                base_r = readout(base)
                for j0, j1 in f_chunks:
                    block = fns[j0:j1]
                    times = j1 - j0
                    if plan is not None and program is not None:
                        site_val = vals[site_node]
                        h0 = get_element(site_val, 0)
                        h_edit = fast(h0, j0, j1, fd) if fast is not None else _edit_blocks(h0, block, fd)
                        edited_site = (
                            h_edit
                            if isinstance(site_val, torch.Tensor)
                            else set_element(_rep(site_val, times, nc), 0, h_edit)
                        )
                        args = [edited_site if f is site_node else _rep(vals[f], times, nc) for f in front]
                        y = lens._guard_model(lambda args=args, program=program: program(*args))
                        if out is None and use_plan and not _agrees(lens, site, x, block[0], fd, readout, y, nc):
                            use_plan = False  # a value without a batch axis broke the repeat: go full
                            plan = None
                    if plan is None and replayed is not None:
                        _, replay, cache = replayed
                        with replay.replaying(site, cache, times):
                            y = _full(lens, site, x.repeat(times, *([1] * (x.ndim - 1))), block, fd, nc)
                        if out is None and not _agrees(lens, site, x, block[0], fd, readout, y, nc):
                            use_plan, replayed = False, None
                            y = _full(lens, site, x.repeat(times, *([1] * (x.ndim - 1))), block, fd, nc)
                    elif plan is None or program is None:
                        y = _full(lens, site, x.repeat(times, *([1] * (x.ndim - 1))), block, fd, nc)
                    eff = readout(y).reshape(times, nc, *base_r.shape[1:]) - base_r.unsqueeze(0)
                    if out is None:
                        out = torch.empty(len(fns), n, *base_r.shape[1:], dtype=eff.dtype)
                    out[j0:j1, a:z] = eff.detach().to("cpu")
                    bar.step()
    finally:
        bar.close()
    assert out is not None
    return out


def _full(lens: Lens, site: str, x_rep: torch.Tensor, block: list[Fn], fd: int, nc: int) -> Any:
    """Full forward on repeated inputs; a temporary hook gives each copy its own edit."""
    module = lens._sites[site].module

    def hook(_m: Any, _a: Any, output: Any) -> Any:
        h = get_element(output, 0)
        parts = [fn(h[i * nc : (i + 1) * nc].movedim(fd, -1)).movedim(-1, fd) for i, fn in enumerate(block)]
        return set_element(output, 0, torch.cat(parts))

    handle = module.register_forward_hook(hook)
    try:
        return lens._forward(x_rep)
    finally:
        handle.remove()


def _agrees(lens: Lens, site: str, x: torch.Tensor, fn: Fn, fd: int, readout: Any, y: Any, nc: int) -> bool:
    """Check the first stacked rows against a plain edited forward of the same inputs (once per sweep)."""
    k = min(nc, 8)
    ref = readout(_full(lens, site, x[:k], [fn], fd, k))
    got = readout(y)[:k]
    return bool(got.shape == ref.shape and torch.allclose(got, ref, rtol=1e-5, atol=1e-6))
