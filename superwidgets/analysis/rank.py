"""The order a feature list shows: by activation, or by attribution to the shown prediction; and search.

Among tens of thousands of SAE latents a user needs the few that matter for the input on
screen. :func:`rank_features` orders a site's features either by how strongly they are
active on the shown input, or by how much the shown prediction leans on them (gradient ×
activation through the basis, :func:`superwidgets.engine.attribution.attribute`, with the
top candidates re-ordered by their exact ablation effect from one batched sweep,
:func:`~superwidgets.engine.attribution.top_effects`). :func:`search_features` finds features
by index or label. Plain Python + the engine; results are numpy arrays.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..engine.attribution import attribute, top_effects
from ..engine.bases import SAE, Basis, Neurons
from ..engine.edits import coordinates
from ._readout import check_output, check_readout, pick_prediction

if TYPE_CHECKING:
    from ..engine.lens import Lens

__all__ = ["RANK_BY", "FeatureRanking", "rank_features", "search_features"]

#: The orders :func:`rank_features` knows.
RANK_BY = ("activation", "attribution")


@dataclasses.dataclass
class FeatureRanking:
    """A site's features in the order a feature list shows them.

    Attributes
    ----------
    order : numpy.ndarray of int64, shape (m,)
        Feature indices, most important first (``m = top`` or every feature).
    values : numpy.ndarray of float32, shape (n_features,)
        Per feature, in basis order: the pooled clean coordinate on the shown input
        (``by="activation"``; ordered by its absolute value) or the gradient × activation
        attribution to the target (``by="attribution"``; ``-value`` predicts the target's
        change when the feature is ablated).
    effects : numpy.ndarray of float32, shape (n_features,)
        The exact change of the target when the feature is zero-ablated, for the candidates
        measured by the sweep; NaN for the others (and everywhere with ``by="activation"``).
    by : str
        ``"activation"`` or ``"attribution"``.
    target : int or None
        The class whose displayed value was attributed (``by="attribution"``), else ``None``.
    """

    order: np.ndarray
    values: np.ndarray
    effects: np.ndarray
    by: str
    target: int | None = None

    @property
    def measured(self) -> np.ndarray:
        """Indices whose exact ablation effect was measured, in ``order``."""
        return self.order[np.isfinite(self.effects[self.order])]


def _displayed(pred: torch.Tensor, readout: str) -> torch.Tensor:
    """The displayed values ``(batch, classes)`` of a prediction tensor, differentiable."""
    t = pred.reshape(pred.shape[0], -1)
    if not t.is_floating_point():
        t = t.float()
    if readout == "softmax":
        return torch.softmax(t, 1)
    if readout == "sigmoid":
        return torch.sigmoid(t)
    return t


def _pooled(basis: Basis, h: torch.Tensor, feature_dim: int | None) -> torch.Tensor:
    """Each feature's clean coordinate on input 0, averaged over positions (as FeatureLab shows it)."""
    fd = feature_dim if feature_dim is not None else (1 if h.ndim == 4 else -1)
    h = h.movedim(fd, -1)
    h = h.float() if h.dtype in (torch.float16, torch.bfloat16) else h
    width = int(h.shape[-1])
    with torch.no_grad():
        if isinstance(basis, SAE):
            w = basis.sae.W_dec
            dtype = w.dtype if isinstance(w, torch.Tensor) and w.is_floating_point() else h.dtype
            device = w.device if isinstance(w, torch.Tensor) else h.device
            basis.decoder(width)  # a width mismatch says so
            c = basis.sae.encode(h[:1].to(dtype=dtype, device=device))
        else:
            c = coordinates(basis, width, list(range(basis.count(width))), h[:1])
    c = c.detach().float().cpu()
    if c.ndim > 2:
        c = c.mean(dim=tuple(range(1, c.ndim - 1)))
    return c[0]


def rank_features(
    lens: Lens,
    x: torch.Tensor,
    site: str,
    *,
    basis: Basis | None = None,
    output: Callable[[Any], Any] | None = None,
    readout: str = "softmax",
    by: str = "activation",
    top: int | None = None,
    target: int | None = None,
    exact: int = 16,
    clean: torch.Tensor | None = None,
    feature_dim: int | None = None,
) -> FeatureRanking:
    """Order the features of ``site`` for the shown input ``x``.

    Parameters
    ----------
    lens : Lens
        The lens on the model (edits off for both orders: they rank the clean model).
    x : Tensor, shape (1, ...)
        The shown input.
    site : str
        Module path.
    basis : Basis, optional
        ``Neurons()`` (default), ``Directions(...)`` or ``SAE(...)``.
    output : callable, optional
        Picks the prediction ``(batch, classes)`` from the model's output, as the widgets'
        ``output=`` does (e.g. ``lambda o: o.logits[:, -1, :50]``); default: the output
        itself, its ``logits``, the last position of a 3-D one.
    readout : {"softmax", "sigmoid", "identity"}
        How the prediction is displayed; attribution targets the displayed value.
    by : {"activation", "attribution"}
        ``"activation"``: by ``|coordinate|`` on ``x``, averaged over positions and space.
        ``"attribution"``: by gradient × activation to the displayed value of the target
        class (one forward + one backward), with the ``exact`` largest re-ordered by their
        exact ablation effect (one batched sweep) and placed first.
    top : int, optional
        Return only the first ``top`` features of the order (default: all).
    target : int, optional
        Class to attribute (``by="attribution"``); default: the class ``x`` is predicted
        to be by the displayed readout of the clean model.
    exact : int
        How many top candidates get their exact ablation effect measured (0: none).
    clean : Tensor, optional
        The site's clean activation for ``x`` when the caller has it (e.g.
        ``lens.run(x, capture=site).clean[site]``); saves a pass for ``by="activation"``.
    feature_dim : int, optional
        Feature axis of the site's activation (default: last, or 1 for 4-D conv maps).

    Returns
    -------
    FeatureRanking
        ``order`` (what the list shows), per-feature ``values`` and exact ``effects``.

    Raises
    ------
    ValueError
        Unknown ``by`` or ``readout``, a bad ``top``/``exact``/``target``, ``x`` not a single
        input; the engine's errors (unknown site with close matches, basis of the wrong width).
    """
    if by not in RANK_BY:
        raise ValueError(f"by must be one of {RANK_BY}, got {by!r}")
    readout = check_readout(readout)
    output = check_output(output)
    if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] != 1:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be the shown input as a batch of one, shape (1, ...), got {shape}; use X[i : i + 1]")
    if top is not None and (isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1):
        raise ValueError(f"top must be a positive number of features or None (all), got {top!r}")
    if isinstance(exact, bool) or not isinstance(exact, (int, np.integer)) or exact < 0:
        raise ValueError(f"exact must be a number of candidates >= 0, got {exact!r}")
    if target is not None and (isinstance(target, bool) or not isinstance(target, (int, np.integer))):
        raise ValueError(f"target must be a class index (int) or None (the predicted class), got {target!r}")
    b = basis if basis is not None else Neurons()
    if by == "activation":
        h = clean if clean is not None else lens.activations(x, site)[site]
        values = _pooled(b, h, feature_dim).numpy().astype(np.float32)
        order = np.argsort(-np.abs(values), kind="stable")
        effects = np.full(values.shape, np.nan, dtype=np.float32)
        return FeatureRanking(order[:top].astype(np.int64), values, effects, by)

    chosen: list[int] = []

    def displayed(out: Any) -> torch.Tensor:
        return _displayed(pick_prediction(out, output), readout)

    def value_of(out: Any) -> torch.Tensor:
        shown = displayed(out)
        if not chosen:  # the class of the clean prediction, read on this very pass
            if target is not None:
                if not 0 <= int(target) < shown.shape[1]:
                    raise ValueError(
                        f"target class {target} is out of range; the prediction has {shown.shape[1]} classes"
                    )
                chosen.append(int(target))
            else:
                chosen.append(int(shown[0].detach().argmax()))
        return shown[0, chosen[0]]

    values_t = attribute(lens, x, site, basis=b, target=value_of, feature_dim=feature_dim)
    values = values_t.numpy().astype(np.float32)
    effects = np.full(values.shape, np.nan, dtype=np.float32)
    head = np.zeros(0, dtype=np.int64)
    if exact > 0:
        c = chosen[0]
        head, _, eff = top_effects(
            lens,
            x,
            site,
            basis=b,
            readout=lambda o: displayed(o)[:, c],
            k=int(exact),
            attribution=values_t,
            feature_dim=feature_dim,
        )
        effects[head] = eff
    rest = np.argsort(-np.abs(values), kind="stable")
    rest = rest[~np.isin(rest, head)]
    order = np.concatenate([head, rest]).astype(np.int64)
    return FeatureRanking(order[:top], values, effects, by, chosen[0])


_INDEX = re.compile(r"#?\s*(\d+)")


def search_features(names: Sequence[str], query: str) -> np.ndarray:
    """Features whose index or label matches ``query``.

    Parameters
    ----------
    names : sequence of str
        The feature labels, in basis order (e.g. ``basis.names(width)``).
    query : str
        ``"#123"``: feature 123 only. ``"123"``: feature 123 first, then every label
        containing "123". Anything else: labels containing it, case-insensitively.
        Blank: every feature.

    Returns
    -------
    numpy.ndarray of int64
        Matching indices (an index match first, then label matches in basis order).

    Raises
    ------
    TypeError
        ``query`` is not a string.
    """
    if not isinstance(query, str):
        raise TypeError(f"query must be a string (an index like '#123' or part of a label), got {type(query).__name__}")
    q = query.strip()
    n = len(names)
    if not q:
        return np.arange(n, dtype=np.int64)
    hits: list[int] = []
    m = _INDEX.fullmatch(q)
    if m is not None:
        i = int(m.group(1))
        if i < n:
            hits.append(i)
        if q.startswith("#"):
            return np.asarray(hits, dtype=np.int64)
    needle = q.casefold()
    first = hits[0] if hits else -1
    hits.extend(i for i, name in enumerate(names) if i != first and needle in str(name).casefold())
    return np.asarray(hits, dtype=np.int64)
