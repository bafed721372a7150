"""Streaming statistics of an SAE's latents at one site, and their cohort effects on demand.

:class:`LatentStats` is what :class:`~superwidgets.FeatureDashboard` shows, as a plain
Python object a script can use on its own. It streams through the inputs in chunks: per
chunk one clean pass (:meth:`Lens.trace <superwidgets.engine.Lens.trace>`) gives the
model's outputs and the site's activations, the SAE encodes them in slices of positions,
and only the positive codes are kept, in coordinate form. Nothing dense in (positions ×
latents), nor in (inputs × latents), is ever held: frequencies, maxima, fixed-bin
histograms and each latent's top inputs are computed from the sparse codes.

A latent's effect on the cohort's predictions (ablated or steered) is computed when asked
for, with the engine's :meth:`Lens.sweep <superwidgets.engine.Lens.sweep>` over only the
inputs it can change, and cached; :meth:`LatentStats.effects` gives the mean effects of a
chosen set of latents (e.g. the few hundred most frequent) for a sort.

Examples
--------
>>> lens = sw.Lens(model)                                                  # doctest: +SKIP
>>> stats = LatentStats(lens, "transformer.h.8", sae, ids, readout=lambda o: o.logits[:, -1].softmax(-1))
>>> stats.frequency.argsort()[::-1][:10]      # the ten most frequent latents  # doctest: +SKIP
>>> stats.effect(123, mode="ablate").mean(0)  # mean change of each output      # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..engine import SAE, Ablate, Lens, Steer
from .rank import search_features

__all__ = ["MODES", "LatentStats", "SparseCodes"]

#: The ways a latent's effect is measured: set it to 0, or add ``alpha`` times its decoder row.
MODES = ("ablate", "steer")

#: Most dense code values one encode call produces (``rows × latents``; float32: 64 MB).
_ENCODE_VALUES = 16_000_000
#: Most bytes of model output and site activation one chunk of inputs may hold.
_CHUNK_BYTES = 256_000_000
#: Most kept per-position code entries (about 14 bytes each); past it, positions are recomputed on demand.
_POSITION_ENTRIES = 32_000_000
#: Per-latent effects kept (least recently used out first).
_EFFECTS_KEPT = 32


@dataclasses.dataclass(frozen=True)
class SparseCodes:
    """Positive codes of every latent, in coordinate form, grouped by latent.

    Entry ``j`` says that latent ``latent`` (implicit: the group ``j`` lies in) has code
    ``value[j]`` on input ``input[j]`` at position ``position[j]``. Latent ``f``'s entries
    are ``offsets[f]:offsets[f + 1]``, ordered by input, then position.

    Attributes
    ----------
    offsets : ndarray int64, shape (n_latents + 1,)
        Start of each latent's entries.
    input : ndarray int32, shape (nnz,)
        Input index of each entry.
    position : ndarray int32, shape (nnz,) or None
        Flat position within the input (sequence index, or ``row * W + col`` at a
        convolutional site); ``None`` for codes pooled per input.
    value : ndarray float32, shape (nnz,)
        The code (> 0).
    """

    offsets: np.ndarray
    input: np.ndarray
    position: np.ndarray | None
    value: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays."""
        pos = 0 if self.position is None else self.position.nbytes
        return int(self.offsets.nbytes + self.input.nbytes + pos + self.value.nbytes)

    def of(self, latent: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """``(input, position, value)`` of one latent's entries (views, not copies)."""
        a, b = int(self.offsets[latent]), int(self.offsets[latent + 1])
        pos = None if self.position is None else self.position[a:b]
        return self.input[a:b], pos, self.value[a:b]


def _group(latent: np.ndarray, n_latents: int, *columns: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Stable-sort entries by latent; the offsets of each latent's group and the columns in that order."""
    order = np.argsort(latent, kind="stable")
    counts = np.bincount(latent, minlength=n_latents)
    offsets = np.zeros(n_latents + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, [c[order] for c in columns]


class LatentStats:
    """Statistics of an SAE's latents at one site over a cohort, computed by streaming.

    Parameters
    ----------
    lens : Lens
        The lens on the model (it adds no edit of its own; effects are relative to the
        clean model).
    site : str
        Module path the SAE reads. At a convolutional site ``(n, C, H, W)`` the SAE
        encodes every position; at a sequence site ``(n, T, d)`` every token. An input's
        activation of a latent is its maximum over positions.
    sae : nn.Module or SAE
        Any module with ``encode``, ``decode`` and ``W_dec`` (``(n_latents, d)``), or an
        ``sw.SAE(...)`` basis wrapping one (its ``keep_error`` and names are used).
    inputs : Tensor, shape (n, ...)
        The cohort, as the model takes it.
    readout : callable, optional
        ``readout(model_output) -> Tensor (batch, C)``: the values whose change an effect
        measures (e.g. ``lambda o: o.logits[:, -1].softmax(-1)``). Default: the output
        itself, flattened per input.
    top_k : int
        Top inputs kept per latent.
    bins : int
        Bins of each latent's activation histogram (over ``[0, max]``).
    chunk : int
        Most inputs per forward pass (fewer when one input's output is large: a chunk
        holds at most about 256 MB of outputs and activations).
    progress : callable, optional
        ``progress(done, total)`` after each chunk (inputs done, inputs in all).

    Attributes
    ----------
    site : str
    names : list of str
        Each latent's name.
    n_inputs, n_latents : int
    positions : tuple of int
        Positions per input: ``()`` for a flat site, ``(T,)`` for a sequence site,
        ``(H, W)`` at a convolutional site.
    frequency : ndarray float32 (n_latents,)
        Fraction of inputs on which the latent is > 0 (0: dead).
    max : ndarray float32 (n_latents,)
        Largest activation over the cohort (0 for dead latents).
    n_active : ndarray int32 (n_latents,)
        Inputs on which the latent is > 0.
    hist : ndarray int32 (n_latents, bins)
        Histogram of each latent's activations over the inputs where it is > 0, bins
        evenly over ``[0, max]`` (``[0, 1]`` for dead latents); see :meth:`histogram`.
    top_inputs : ndarray int32 (n_latents, top_k)
        Inputs on which each latent is largest (ties by index), ``-1`` past ``n_active``.
    top_values : ndarray float32 (n_latents, top_k)
        The latent's activation on each (0 past ``n_active``).
    baseline : ndarray float32 (n_inputs, C)
        ``readout`` of the clean model on each input.
    pooled : SparseCodes
        Each input's activation of each latent (its maximum over positions), where > 0.
    codes : SparseCodes or None
        Every positive code per position (``None`` at a flat site, where it equals
        ``pooled``, or when there are more than 32 million of them: then
        :meth:`positions` recomputes them for the inputs asked for).

    Examples
    --------
    >>> stats = LatentStats(lens, "hidden", sae, X, readout=lambda y: y.softmax(-1))  # doctest: +SKIP
    >>> stats.top(5)                # inputs where latent 5 is largest, and its values  # doctest: +SKIP
    >>> stats.effect(5, mode="steer", alpha=2.0).mean(0)                             # doctest: +SKIP
    """

    def __init__(
        self,
        lens: Lens,
        site: str,
        sae: Any,
        inputs: torch.Tensor,
        *,
        readout: Callable[[Any], torch.Tensor] | None = None,
        top_k: int = 12,
        bins: int = 30,
        chunk: int = 1024,
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        if not isinstance(lens, Lens):
            raise TypeError(f"LatentStats needs a superwidgets Lens, got {type(lens).__name__}")
        if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
            raise ValueError("inputs must be a non-empty tensor (n, ...) of model inputs")
        for name, value in (("top_k", top_k), ("bins", bins), ("chunk", chunk)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if readout is not None and not callable(readout):
            raise TypeError(f"readout must be a function of the model's output, got {type(readout).__name__}")
        if progress is not None and not callable(progress):
            raise TypeError("progress must be a callable progress(done, total)")
        if isinstance(sae, SAE):
            basis = SAE(sae.sae, name=sae.name, keep_error=sae.keep_error, names=sae._names)
        else:
            basis = SAE(sae)  # TypeError naming what is missing
        lens.bind(site)
        self._lens = lens
        self.site = site
        self.basis = basis
        self.inputs = inputs
        self._readout = readout or (lambda y: y)
        self.top_k, self.bins, self.chunk = int(top_k), int(bins), int(chunk)
        self.n_inputs = int(inputs.shape[0])
        self._effects: OrderedDict[tuple[int, str, float], np.ndarray] = OrderedDict()
        self._build(progress)

    # ------------------------------------------------------------------ build
    def _build(self, progress: Callable[[int, int], None] | None) -> None:
        n = self.n_inputs
        base_parts: list[np.ndarray] = []
        pooled_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        pos_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        kept_entries = 0
        keep_positions = True
        start, step = 0, 1  # the first chunk is one input: it sizes the others
        self.n_latents = 0
        while start < n:
            stop = min(n, start + step)
            out, got = self._lens.trace(self.inputs[start:stop], self.site)
            h = got[self.site]
            if start == 0:
                self._describe_site(h)
                per_input = (_nbytes(out) + h.numel() * h.element_size()) / max(1, stop - start)
                step = int(max(1, min(self.chunk, _CHUNK_BYTES // max(1.0, per_input))))
            base_parts.append(self._read(out))
            del out
            lat, row, pos, val = self._sparse_codes(h)
            del h
            row += start
            # pooled per input: the maximum over positions of each (input, latent)
            key = row.astype(np.int64) * self.n_latents + lat
            order = np.lexsort((-val, key))
            key, val_sorted = key[order], val[order]
            first = np.ones(len(key), bool)
            first[1:] = key[1:] != key[:-1]
            pooled_parts.append(
                ((key[first] % self.n_latents).astype(np.int32), (key[first] // self.n_latents).astype(np.int32),
                 val_sorted[first])
            )  # fmt: skip
            if self._positions_total > 1 and keep_positions:
                kept_entries += len(lat)
                if kept_entries > _POSITION_ENTRIES:
                    keep_positions = False
                    pos_parts.clear()
                else:
                    pos_parts.append((lat, row, pos, val))
            if progress is not None:
                progress(stop, n)
            start = stop
        self.baseline = np.concatenate(base_parts).astype(np.float32)
        lat = np.concatenate([p[0] for p in pooled_parts])
        offsets, (inp, val) = _group(
            lat,
            self.n_latents,
            np.concatenate([p[1] for p in pooled_parts]),
            np.concatenate([p[2] for p in pooled_parts]),
        )
        del pooled_parts
        self.pooled = SparseCodes(offsets=offsets, input=inp, position=None, value=val)
        if self._positions_total > 1 and keep_positions:
            lat = np.concatenate([p[0] for p in pos_parts])
            cols = (np.concatenate([p[i] for p in pos_parts]) for i in (1, 2, 3))
            offsets, (inp, pos, val) = _group(lat, self.n_latents, *cols)
            self.codes: SparseCodes | None = SparseCodes(offsets=offsets, input=inp, position=pos, value=val)
        else:
            self.codes = None
        del pos_parts
        self._summarise()

    def _describe_site(self, h: torch.Tensor) -> None:
        """Width, positions and latent names from the first chunk's site activations."""
        if not isinstance(h, torch.Tensor) or h.ndim < 2:
            raise ValueError(
                f"site {self.site!r} gives activations of shape {tuple(getattr(h, 'shape', ()))}; an SAE needs "
                "(n, d), (n, positions, d) or (n, C, H, W)"
            )
        self._conv = h.ndim == 4
        self.width = int(h.shape[1] if self._conv else h.shape[-1])
        self.names = self.basis.names(self.width)  # ValueError on a width mismatch (the engine's text)
        self.n_latents = len(self.names)
        self.positions: tuple[int, ...] = tuple(int(s) for s in (h.shape[2:] if self._conv else h.shape[1:-1]))
        self._positions_total = int(np.prod(self.positions)) if self.positions else 1

    def _encode(self, h: torch.Tensor) -> torch.Tensor:
        """Codes ``(rows, n_latents)`` of activations ``(rows, d)``."""
        dev = _device(self.basis.sae)
        with torch.no_grad():
            c = self.basis.sae.encode(h.to(dev) if dev is not None else h)
        if not isinstance(c, torch.Tensor) or c.shape != (*h.shape[:-1], self.n_latents):
            raise ValueError(
                f"the SAE's encode returned shape {tuple(getattr(c, 'shape', ()))} for activations "
                f"{tuple(h.shape)}; expected {(*h.shape[:-1], self.n_latents)} (one code per latent of W_dec)"
            )
        return c.detach()

    def _rows(self, h: torch.Tensor) -> torch.Tensor:
        """Site activations as ``(inputs × positions, d)``, positions in row-major order."""
        hf = h.movedim(1, -1) if self._conv else h
        return hf.reshape(-1, self.width)

    def _sparse_codes(self, h: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Positive codes of a chunk as ``(latent, input in chunk, position, value)``, encoded in slices."""
        flat = self._rows(h)
        per = max(1, _ENCODE_VALUES // max(1, self.n_latents))
        parts = []
        for a in range(0, flat.shape[0], per):
            c = self._encode(flat[a : a + per])
            idx = torch.nonzero(c > 0)
            vals = c[idx[:, 0], idx[:, 1]].float().cpu()
            idx = idx.cpu()
            parts.append((idx[:, 0] + a, idx[:, 1], vals))
            del c
        rows = torch.cat([p[0] for p in parts]).numpy()
        lat = torch.cat([p[1] for p in parts]).numpy().astype(np.int32)
        val = torch.cat([p[2] for p in parts]).numpy().astype(np.float32)
        P = self._positions_total
        return lat, (rows // P).astype(np.int32), (rows % P).astype(np.int32), val

    def _read(self, out: Any) -> np.ndarray:
        t = self._readout(out)
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"readout must return a tensor (batch, C), got {type(t).__name__}")
        return t.detach().float().reshape(t.shape[0], -1).cpu().numpy()

    def _summarise(self) -> None:
        """Frequency, max, histograms and top inputs of every latent, from the pooled sparse codes."""
        L, k, n = self.n_latents, self.top_k, self.n_inputs
        p = self.pooled
        counts = np.diff(p.offsets).astype(np.int32)
        self.n_active = counts
        self.frequency = (counts / n).astype(np.float32)
        mx = np.zeros(L, np.float32)
        live = counts > 0
        if live.any():
            mx[live] = np.maximum.reduceat(p.value, p.offsets[:-1][live])
        self.max = mx
        self.hist = np.zeros((L, self.bins), np.int32)
        self.top_inputs = np.full((L, k), -1, np.int32)
        self.top_values = np.zeros((L, k), np.float32)
        # top inputs: entries of each latent by value, largest first, ties by input (stable)
        lat = np.repeat(np.arange(L, dtype=np.int32), counts)
        order = np.lexsort((p.input, -p.value, lat))
        rank = np.arange(len(order)) - np.repeat(p.offsets[:-1], counts)
        take = rank < k
        sel = order[take]
        self.top_inputs[lat[take], rank[take]] = p.input[sel]
        self.top_values[lat[take], rank[take]] = p.value[sel]
        for f in np.flatnonzero(live):
            a, b = p.offsets[f], p.offsets[f + 1]
            self.hist[f] = np.histogram(p.value[a:b], bins=self.bins, range=(0.0, float(mx[f])))[0]

    # ------------------------------------------------------------------ views of one latent
    def index(self, latent: int | str) -> int:
        """A latent's index from its index or name (the engine's error when out of range or unknown)."""
        if isinstance(latent, float) and latent.is_integer():
            latent = int(latent)
        return self.basis.index(latent, self.width)

    def search(self, query: str | int) -> np.ndarray:
        """Latents matching ``query``, as :func:`superwidgets.analysis.rank.search_features` (FeatureLab's search).

        ``"#123"``: latent 123 only; ``"123"`` (or ``123``): latent 123 first, then every name
        containing "123"; anything else: names containing it, case-insensitively; blank: all.

        Returns
        -------
        ndarray int64
            Matching latent indices.
        """
        return search_features(self.names, str(query))

    def column(self, latent: int | str) -> np.ndarray:
        """Each input's activation of ``latent`` (its maximum over positions; 0 where inactive), ``(n_inputs,)``."""
        f = self.index(latent)
        inp, _, val = self.pooled.of(f)
        col = np.zeros(self.n_inputs, np.float32)
        col[inp] = val
        return col

    def active(self, latent: int | str) -> np.ndarray:
        """Inputs on which ``latent`` is > 0, ascending (int64)."""
        return self.pooled.of(self.index(latent))[0].astype(np.int64)

    def histogram(self, latent: int | str) -> tuple[np.ndarray, np.ndarray]:
        """``(counts (bins,), edges (bins + 1,))`` of the latent's activations where > 0, bins over ``[0, max]``."""
        f = self.index(latent)
        hi = float(self.max[f])
        edges = np.histogram_bin_edges(np.zeros(0, np.float32), bins=self.bins, range=(0.0, hi if hi > 0 else 1.0))
        return self.hist[f].copy(), edges.astype(np.float32)

    def top(self, latent: int | str) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs, values)``: the inputs where ``latent`` is largest (at most ``top_k``; only where > 0)."""
        f = self.index(latent)
        m = min(self.top_k, int(self.n_active[f]))
        return self.top_inputs[f, :m].copy(), self.top_values[f, :m].copy()

    def positions_of(self, latent: int | str, inputs: Sequence[int] | np.ndarray) -> np.ndarray:
        """The latent's code at every position of the given inputs: ``(k, *positions)`` float32.

        From the kept sparse codes, or recomputed with one clean pass over those inputs when
        they were not kept. At a flat site the result is ``(k,)``.
        """
        f = self.index(latent)
        idx = np.asarray(inputs, dtype=np.int64).reshape(-1)
        P = self._positions_total
        out = np.zeros((len(idx), P), np.float32)
        if self.codes is not None or P == 1:
            src = self.codes if self.codes is not None else self.pooled
            inp, pos, val = src.of(f)
            for j, i in enumerate(idx):
                a, b = np.searchsorted(inp, [i, i + 1])
                if pos is not None:
                    out[j, pos[a:b]] = val[a:b]
                elif b > a:  # one position (or pooled): at most one value per input
                    out[j, 0] = val[a]
        elif len(idx):
            out[:] = self.dense_codes(idx)[..., f].reshape(len(idx), P)
        return out.reshape(len(idx), *self.positions)

    def dense_codes(self, inputs: Sequence[int] | np.ndarray) -> np.ndarray:
        """Full codes of a few inputs (one clean pass): ``(k, *positions, n_latents)`` float32."""
        idx = np.asarray(inputs, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n_inputs):
            raise ValueError(f"input indices must lie in 0..{self.n_inputs - 1}")
        parts = []
        for a in range(0, len(idx), self.chunk):
            x = self.inputs[torch.from_numpy(idx[a : a + self.chunk])]
            h = self._lens.activations(x, self.site)[self.site]
            parts.append(self._encode(self._rows(h)).float().cpu().numpy())
        flat = np.concatenate(parts) if parts else np.zeros((0, self.n_latents), np.float32)
        return flat.reshape(len(idx), *self.positions, self.n_latents)

    @property
    def nbytes(self) -> int:
        """Bytes of the statistics and sparse codes held (not the model, the lens or the inputs)."""
        arrays = [self.frequency, self.max, self.n_active, self.hist, self.top_inputs, self.top_values, self.baseline]
        cached = sum(v.nbytes for v in self._effects.values())
        codes = 0 if self.codes is None else self.codes.nbytes
        return int(sum(a.nbytes for a in arrays) + self.pooled.nbytes + codes + cached)

    # ------------------------------------------------------------------ effects
    def effect(self, latent: int | str, mode: str = "ablate", alpha: float = 1.0) -> np.ndarray:
        """Change of every input's readout when ``latent`` is ablated or steered (LRU-cached).

        Computed with :meth:`Lens.sweep` over only the inputs the edit can change: with the
        SAE's error term kept, ablating a latent changes nothing where it is 0, so only the
        inputs where it is active run; steering runs every input. Other rows are 0.

        Parameters
        ----------
        latent : int or str
        mode : {"ablate", "steer"}
            Set the latent to 0, or add ``alpha`` times its decoder row (at every position).
        alpha : float
            Steering strength.

        Returns
        -------
        ndarray float32, shape (n_inputs, C)
            ``readout(edited) - readout(clean)``.
        """
        f = self.index(latent)
        if mode not in MODES:
            raise ValueError(f"effect mode must be one of {MODES}, got {mode!r}")
        alpha = float(alpha)
        if not np.isfinite(alpha):
            raise ValueError(f"alpha must be finite, got {alpha}")
        key = (f, mode, alpha if mode == "steer" else 0.0)
        hit = self._effects.get(key)
        if hit is not None:
            self._effects.move_to_end(key)
            return hit
        out = np.zeros(self.baseline.shape, np.float32)
        if mode == "ablate":
            rows = self.active(f) if self.basis.keep_error else np.arange(self.n_inputs)
            op: Any = Ablate([f])
        else:
            rows = np.arange(self.n_inputs) if alpha != 0 else np.arange(0)
            op = Steer(feature=f, alpha=alpha)
        if rows.size:
            out[rows] = self._sweep(rows, [f], lambda _f: op)[0]
        self._effects[key] = out
        while len(self._effects) > _EFFECTS_KEPT:
            self._effects.popitem(last=False)
        return out

    def effects(
        self,
        latents: Sequence[int | str] | np.ndarray,
        *,
        sample: Sequence[int] | np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Mean change of each output when each of ``latents`` is ablated, over ``sample`` (default: every input).

        For a sort over a chosen set (e.g. the few hundred most frequent latents), never
        all of them up front. With the error term kept, only the inputs where a latent is
        active can change; the latents are run in one batched :meth:`Lens.sweep` over the
        inputs where any of them is active, or, when that would run more than twice as many
        rows, one sweep per latent over its own active inputs.

        Parameters
        ----------
        latents : sequence of int or str
        sample : sequence of int, optional
            Input indices to average over.
        progress : callable, optional
            ``progress(done, total)`` in latents.

        Returns
        -------
        ndarray float32, shape (len(latents), C)
        """
        feats = [self.index(f) for f in np.asarray(latents).reshape(-1).tolist()]
        rows = np.arange(self.n_inputs) if sample is None else np.unique(np.asarray(sample, np.int64))
        if rows.size == 0:
            raise ValueError("the sample is empty; pass at least one input index")
        if rows.min() < 0 or rows.max() >= self.n_inputs:
            raise ValueError(f"sample indices must lie in 0..{self.n_inputs - 1}")
        C = self.baseline.shape[1]
        out = np.zeros((len(feats), C), np.float32)
        if not feats:
            return out
        if not self.basis.keep_error:  # every input can change: one sweep of all of them
            delta = self._sweep(rows, feats, lambda f: Ablate([f]))
            return delta.astype(np.float64).mean(1).astype(np.float32)
        on = [np.intersect1d(self.active(f), rows, assume_unique=True) for f in feats]
        live = [j for j, r in enumerate(on) if r.size]
        if not live:
            return out
        union = np.unique(np.concatenate([on[j] for j in live]))
        sparse_rows = sum(2 * on[j].size for j in live)  # each sweep: a clean and an edited pass
        if union.size * (len(live) + 1) <= 2 * sparse_rows:
            delta = self._sweep(union, [feats[j] for j in live], lambda f: Ablate([f]))
            pos = {int(i): q for q, i in enumerate(union)}
            for t, j in enumerate(live):
                take = [pos[int(i)] for i in on[j]]  # inactive inputs are unchanged: exactly 0
                out[j] = delta[t, take].astype(np.float64).sum(0) / rows.size
            if progress is not None:
                progress(len(feats), len(feats))
            return out
        for done, j in enumerate(live):
            hit = self._effects.get((feats[j], "ablate", 0.0))
            if hit is not None and sample is None:
                d = hit[on[j]]
            else:
                d = self._sweep(on[j], [feats[j]], lambda f: Ablate([f]))[0]
            out[j] = d.astype(np.float64).sum(0) / rows.size
            if progress is not None:
                progress(done + 1, len(live))
        return out

    def _sweep(self, rows: np.ndarray, feats: list[int], op: Callable[[int], Any]) -> np.ndarray:
        """``lens.sweep`` of single-latent edits over inputs ``rows``: ``(len(feats), len(rows), C)``."""
        x = self.inputs[torch.from_numpy(np.asarray(rows, np.int64))]
        delta = self._lens.sweep(
            self.site,
            x,
            features=feats,
            op=op,
            basis=self.basis,
            readout=lambda y: _flat(self._readout(y)),
            batch_size=self.chunk,
        )
        return delta.reshape(len(feats), len(rows), -1).numpy().astype(np.float32)


def _flat(t: Any) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"readout must return a tensor (batch, C), got {type(t).__name__}")
    return t.detach().float().reshape(t.shape[0], -1)


def _nbytes(out: Any) -> int:
    """Bytes of the tensors in a (nested) model output."""
    if isinstance(out, torch.Tensor):
        return out.numel() * out.element_size()
    if isinstance(out, dict):
        return sum(_nbytes(v) for v in out.values())
    if isinstance(out, (tuple, list)):
        return sum(_nbytes(v) for v in out)
    if dataclasses.is_dataclass(out) and not isinstance(out, type):
        return sum(_nbytes(getattr(out, f.name)) for f in dataclasses.fields(out))
    return 0


def _device(module: Any) -> torch.device | None:
    params = getattr(module, "parameters", None)
    if params is None:
        return None
    p = next(iter(params()), None)
    return None if p is None else p.device
