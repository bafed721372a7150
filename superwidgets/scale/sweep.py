"""The engine's batched sweeps over a cohort split across ranks, gathered to rank 0.

Rank ``r`` of ``W`` runs :meth:`superwidgets.Lens.sweep` on a contiguous slice of the inputs
(``torch.tensor_split`` of the cohort into ``W`` parts); the slices' effects are gathered with
``torch.distributed.all_gather`` (tensors, padded to the largest slice) and concatenated in input
order, so rank 0 holds what a one-process sweep returns. ``op="mean"`` takes its mean over the whole
cohort (not each rank's slice) unless a ``reference`` is given, as the one-process sweep does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ._util import dist_state

__all__ = ["sweep"]


def sweep(
    model: Any,
    site: str,
    inputs: torch.Tensor,
    *,
    features: Sequence[int | str] | None = None,
    op: Any = "ablate",
    basis: Any = None,
    feature_dim: int | None = None,
    readout: Callable[[Any], torch.Tensor] | None = None,
    reference: torch.Tensor | None = None,
    batch_size: int = 8192,
    progress: bool = False,
) -> torch.Tensor | None:
    """Effect of each single-feature edit at ``site`` on every input, the inputs split over ranks.

    Parameters
    ----------
    model : Lens or nn.Module
        A :class:`~superwidgets.Lens`, or a model (a Lens is made for the sweep and closed after; it
        replaces any open Lens on that model, as every new Lens does).
    site : str
        Module path.
    inputs : Tensor (n, ...)
        The whole cohort, the same on every rank; each rank sweeps its slice.
    features, op, basis, feature_dim, readout, reference, batch_size, progress
        As :meth:`superwidgets.Lens.sweep` (``progress`` on rank 0 only). With ``op="mean"`` and no
        ``reference``, the mean is over the whole cohort on every rank.

    Returns
    -------
    Tensor or None
        On rank 0 (and in a single process): ``(n_features, n, *readout_shape)``, equal to
        ``lens.sweep(site, inputs, ...)`` in one process. ``None`` on the other ranks.

    Raises
    ------
    ValueError
        Fewer inputs than ranks; anything :meth:`Lens.sweep` refuses.
    """
    from ..engine.lens import Lens

    if not isinstance(inputs, torch.Tensor) or inputs.ndim == 0:
        raise ValueError(f"inputs must be a tensor (n, ...) holding the whole cohort, got {type(inputs).__name__}")
    rank, world = dist_state()
    n = int(inputs.shape[0])
    if n < world:
        raise ValueError(f"{n} inputs cannot be split over {world} ranks; use fewer ranks than inputs")
    if op == "mean" and reference is None:
        reference = inputs
    own = isinstance(model, nn.Module)
    if not own and not isinstance(model, Lens):
        raise TypeError(f"model must be a superwidgets.Lens or a torch.nn.Module, got {type(model).__name__}")
    lens = Lens(model) if own else model
    try:
        part = torch.tensor_split(inputs, world)[rank]
        effect = lens.sweep(
            site,
            part,
            features=features,
            op=op,
            basis=basis,
            feature_dim=feature_dim,
            readout=readout,
            reference=reference,
            batch_size=batch_size,
            progress=progress and rank == 0,
        )
    finally:
        if own:
            lens.close()
    if world == 1:
        return effect
    import torch.distributed as dist

    sizes = [int(p.shape[0]) for p in torch.tensor_split(torch.empty(n, 0), world)]
    rows = effect.movedim(1, 0).contiguous()  # (n_r, F, ...): pad the input axis to the largest slice
    padded = rows.new_zeros((max(sizes), *rows.shape[1:]))
    padded[: rows.shape[0]] = rows
    got = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(got, padded)
    if rank != 0:
        return None
    return torch.cat([g[:s] for g, s in zip(got, sizes, strict=True)]).movedim(0, 1).contiguous()
