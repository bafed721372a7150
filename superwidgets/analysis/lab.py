"""The lab session: what FeatureLab shows, as a plain Python object (no Jupyter needed).

A :class:`LabSession` holds two edits on a :class:`~superwidgets.engine.Lens` (switch features
off, steer along them) and answers, for the controls a user sets:

- :meth:`LabSession.update`: the shown input first — its baseline and edited readout, its clean
  feature coordinates, the selected feature's edited map, the continuation — from **one** engine
  call (``lens.run(x, capture=[site])``) plus the generation loop when ``generate > 0``;
- :meth:`LabSession.cohort`: the summary of the whole cohort (histogram of the change of one
  output, flips, most affected inputs), computed progressively in chunks of background-friendly
  runs (``preemptible=True``), stopped by a newer control state.

FeatureLab makes one call here per control change and writes the result to its traits; a
script gets the same numbers::

    session = LabSession(lens, data, "hidden")
    shown = session.update(38, ablated=[13], steer=None)
    summary = session.cohort_summary()        # or: for part in session.cohort(): ...
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..data.inputs import as_inputs
from ..engine import Ablate, Edit, Lens, Neurons, Steer
from ..engine.bases import Basis
from ..engine.edits import coordinates
from ..engine.lens import Preempted
from ._readout import (
    check_output,
    check_readout,
    correlate,
    count_classes,
    pick_prediction,
    prediction_of,
    readout_rows,
)
from .rank import FeatureRanking, rank_features

__all__ = ["CancelToken", "CohortSummary", "LabResult", "LabSession", "check_steer_max"]

#: Bins of the cohort histogram (symmetric around 0).
COHORT_BINS = 31

#: Seconds one automatic cohort chunk aims at: the view gets a partial summary about this often.
CHUNK_SECONDS = 0.25

#: A cohort whose whole first pass took at most this long runs as one chunk afterwards. Either way the
#: lens keeps every chunk's clean baseline (the displayed prediction and what resuming needs: runs ask
#: for ``output=`` the picked prediction only), so every later pass only runs the edited rest of the model.
WHOLE_SECONDS = 10.0


def check_steer_max(value: Any) -> float:
    """``steer_max`` as a positive finite float.

    Raises
    ------
    ValueError
        Not a number, not positive or not finite (the message says what to pass).
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"steer_max must be a positive number (the slider's range), got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"steer_max must be a positive, finite number (the slider's range), got {v}")
    return v


class CancelToken:
    """Says whether a piece of work still belongs to the current control state.

    A :class:`LabSession` hands one out per control state (:attr:`LabSession.token`) and cancels it
    when the state changes (:meth:`LabSession.update`) or on :meth:`LabSession.cancel`; a cohort
    computed for that state stops at its next chunk. Thread-safe.
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Mark the work stale (idempotent)."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self._event.is_set()


@dataclasses.dataclass(frozen=True)
class LabResult:
    """What the lab shows for the shown input under one control state.

    Attributes
    ----------
    index : int
        The shown input.
    ablated : tuple of int
        Features switched off (zero-ablated), sorted.
    steer : numpy.ndarray
        float32 ``(k,)``: steering amount per feature.
    baseline, edited : numpy.ndarray
        float32 ``(C,)``: displayed outputs (the readout of the prediction) with every edit off / on.
    activations : numpy.ndarray
        float32 ``(k,)``: each feature's clean coordinate for the shown input (averaged over
        space or positions).
    selected : int
        Feature whose views are given (-1: none).
    spatial : numpy.ndarray or None
        float32 ``(h, w)``: the selected feature's edited activation map at a convolutional site.
    positions : numpy.ndarray or None
        float32 ``(P,)``: the selected feature's edited activation per position at a sequence site.
    gt_corr : numpy.ndarray or None
        float32 ``(K,)``: correlation of the selected feature's clean coordinate over the cohort
        with each ground-truth factor (when factors were given).
    generated_baseline, generated_edited : str
        Greedy continuations with every edit off / on (``generate > 0``; else ``""``).
    """

    index: int
    ablated: tuple[int, ...]
    steer: np.ndarray
    baseline: np.ndarray
    edited: np.ndarray
    activations: np.ndarray
    selected: int = -1
    spatial: np.ndarray | None = None
    positions: np.ndarray | None = None
    gt_corr: np.ndarray | None = None
    generated_baseline: str = ""
    generated_edited: str = ""


@dataclasses.dataclass(frozen=True)
class CohortSummary:
    """The change of one output over the cohort, for the rows computed so far.

    Attributes
    ----------
    hist : numpy.ndarray
        int32 ``(31,)``: how many of the ``done`` rows change output ``cohort_class`` by each bin's amount.
    edges : numpy.ndarray
        float32 ``(32,)``: bin edges, symmetric around 0 (the largest absolute change, times 1.0001).
    flips : int
        Rows whose predicted (argmax) output changes under the edits.
    top : numpy.ndarray
        int32 ``(k,)``: indices of the most affected rows (largest absolute change), most affected first.
    top_delta : numpy.ndarray
        float32 ``(k,)``: their change.
    done, total : int
        Rows summarised so far, rows in the cohort (the first ``done`` rows, in order).
    """

    hist: np.ndarray
    edges: np.ndarray
    flips: int
    top: np.ndarray
    top_delta: np.ndarray
    done: int
    total: int

    @property
    def complete(self) -> bool:
        """True when every row of the cohort is summarised."""
        return self.done == self.total


def summarise(delta: np.ndarray, flips: int, top_k: int, total: int) -> CohortSummary:
    """A :class:`CohortSummary` of the changes ``delta`` (one per row done, float32).

    Parameters
    ----------
    delta : numpy.ndarray
        Change of the summarised output for each row done so far.
    flips : int
        Rows among them whose argmax changed.
    top_k : int
        How many most affected rows to list.
    total : int
        Rows in the whole cohort.
    """
    lim = float(np.abs(delta).max()) if delta.size else 0.0
    lim = 1e-6 if lim == 0 else lim * 1.0001
    hist, edges = np.histogram(delta, bins=COHORT_BINS, range=(-lim, lim))
    top = np.argsort(-np.abs(delta), kind="stable")[: min(top_k, delta.shape[0])]
    return CohortSummary(
        hist=hist.astype(np.int32),
        edges=edges.astype(np.float32),
        flips=int(flips),
        top=top.astype(np.int32),
        top_delta=delta[top].astype(np.float32),
        done=int(delta.shape[0]),
        total=int(total),
    )


class LabSession:
    """Ablate and steer the features of one site; read the shown input's and the cohort's predictions.

    The UI-free half of :class:`superwidgets.FeatureLab`: the widget validates nothing twice and
    computes nothing itself — each control change is one :meth:`update`, then the cohort follows
    from :meth:`cohort` in a background thread. Usable from scripts with the same numbers.

    Parameters
    ----------
    lens : Lens
        The lens on the model; the session adds two edits at ``site`` (and no hooks).
    inputs : TabularData, Tensor or array
        The cohort: an object with ``X`` (and optionally ``y``, ``class_names``) or a tensor
        ``(n, ...)`` of model inputs (see :func:`superwidgets.data.inputs.as_inputs`).
    site : str
        Module path whose features are edited.
    basis : Basis, optional
        ``Neurons()`` (default), ``Directions(...)`` or ``SAE(...)``.
    index : int
        Input probed to learn the site's width and the number of outputs.
    readout : {"softmax", "sigmoid", "identity"}
        How outputs become the displayed values.
    output : callable, optional
        Picks the prediction ``(batch, classes)`` from what the model returns (default: the
        tensor, its ``logits`` or its first tensor; a language model's last position).
    cohort_class : int
        Output whose change over the cohort is summarised.
    cohort_top : int
        How many most-affected inputs a summary lists (0: no cohort summary).
    generate : int
        Greedy continuation length for token inputs ``(n, T)`` (0 = off, at most 256).
    decode : callable, optional
        ``decode(list_of_ids) -> str`` for the continuations; default: the ids with spaces.
    factors : numpy.ndarray, optional
        Ground-truth factors ``(n, K)``: the selected feature's correlation with each.

    Examples
    --------
    >>> model, data = sw.zoo.load("breast-cancer-mlp")             # doctest: +SKIP
    >>> session = LabSession(sw.Lens(model), data, "hidden")        # doctest: +SKIP
    >>> session.update(38, ablated=[13]).edited                     # doctest: +SKIP
    >>> session.cohort_summary().flips                              # doctest: +SKIP
    """

    def __init__(
        self,
        lens: Lens,
        inputs: Any,
        site: str,
        *,
        basis: Basis | None = None,
        index: int = 0,
        readout: str = "softmax",
        output: Callable[[Any], Any] | None = None,
        cohort_class: int = 0,
        cohort_top: int = 10,
        generate: int = 0,
        decode: Callable[[list[int]], str] | None = None,
        factors: np.ndarray | None = None,
    ) -> None:
        if not isinstance(lens, Lens):
            raise TypeError(f"LabSession needs a superwidgets Lens as its first argument, got {type(lens).__name__}")
        if isinstance(cohort_top, bool) or not isinstance(cohort_top, (int, np.integer)) or cohort_top < 0:
            raise ValueError(f"cohort_top must be >= 0, got {cohort_top}")
        self.readout = check_readout(readout)
        self.output = check_output(output)
        # what the lens keeps of each clean output: the displayed prediction (batch, classes), not a language
        # model's logits at every position; one function object, so the lens's cache knows it
        self._pick: Callable[[Any], torch.Tensor] = self._make_pick()
        self.lens = lens
        self.site = str(site)
        X, self.labels, self.label_names = as_inputs(inputs)
        self.inputs: torch.Tensor = X
        if isinstance(generate, bool) or not isinstance(generate, (int, np.integer)) or not 0 <= generate <= 256:
            raise ValueError(f"generate must be a number of tokens in 0..256, got {generate!r}")
        if generate and (X.ndim != 2 or X.is_floating_point()):
            raise ValueError(
                f"generate= continues token sequences: inputs must be integer ids (n, T), got {tuple(X.shape)} "
                f"{X.dtype}"
            )
        if decode is not None and not callable(decode):
            raise TypeError(f"decode must be a function of a list of token ids, got {type(decode).__name__}")
        self.generate, self.decode = int(generate), decode
        if factors is not None:
            factors = np.asarray(factors, dtype=np.float64)
            if factors.ndim != 2 or factors.shape[0] != len(X):
                raise ValueError(
                    f"ground-truth factors must have shape ({len(X)}, K) to match the inputs, got {factors.shape}"
                )
        self.factors = factors
        self.basis: Basis = basis if basis is not None else Neurons()
        self._shown: tuple[int, torch.Tensor] | None = None
        x0 = self.x(index if 0 <= index < len(X) else 0)
        out, got = lens.trace(x0, self.site)  # one clean pass: the site's width and the number of outputs
        shape = got[self.site].shape
        self.width = int(shape[1] if len(shape) == 4 else shape[-1])
        self.feature_names: list[str] = self.basis.names(self.width)
        self.n_outputs = count_classes(pick_prediction(out, self.output))
        if isinstance(cohort_class, bool) or not isinstance(cohort_class, (int, np.integer)):
            raise ValueError(f"cohort_class must be an output index, got {cohort_class!r}")
        if not 0 <= cohort_class < self.n_outputs:
            raise ValueError(f"cohort_class {cohort_class} is out of range; the model has {self.n_outputs} outputs")
        self.cohort_class, self.cohort_top = int(cohort_class), int(cohort_top)
        self.selected = -1
        self.last: LabResult | None = None
        self.preemptions = 0
        #: Seconds the last complete :meth:`cohort` pass took (``None`` before the first).
        self.cohort_seconds: float | None = None
        self._row_seconds = 1e-3  # shown-input update time: the first guess of a cohort row's cost
        self._token = CancelToken()
        self._coords: tuple[torch.Tensor, np.ndarray] | None = None  # (clean site activation, its coordinates)
        self._acts: torch.Tensor | None = None  # edited site activation of the shown input
        self._x_shown: torch.Tensor | None = None  # the shown input of the last update
        self._clean_text: tuple[torch.Tensor, int, str] | None = None  # (input, its version, as-trained text)
        self._cohort_coords: np.ndarray | None = None
        self._auto_rows: int | None = None  # rows per automatic cohort chunk, measured on the first pass
        self._chunks: dict[tuple[int, int], torch.Tensor] = {}  # the cohort's chunk tensors, kept
        self._ablate: Edit = lens.edit(site, Ablate([0]), basis=self.basis, enabled=False, name="FeatureLab ablate")
        self._steer: Edit = lens.edit(
            site, Steer(feature=0, alpha=0.0), basis=self.basis, enabled=False, name="FeatureLab steer"
        )

    # ---------------------------------------------------------------- state
    @property
    def edits(self) -> list[Edit]:
        """The session's own edits on the lens (ablation, steering)."""
        return [self._ablate, self._steer]

    @property
    def token(self) -> CancelToken:
        """The cancel token of the current control state (a fresh one after :meth:`cancel`)."""
        if self._token.cancelled:
            self._token = CancelToken()
        return self._token

    def cancel(self) -> None:
        """Stop any cohort computed for the current state (it stops at its next chunk)."""
        self._token.cancel()

    def x(self, index: int) -> torch.Tensor:
        """Input ``index`` as a batch of one; the same tensor object while it is shown, so the lens's
        baseline cache hits."""
        if self._shown is None or self._shown[0] != index:
            self._shown = (index, self.inputs[index : index + 1])
        return self._shown[1]

    def invalidate(self) -> None:
        """Forget the cached clean values (coordinates, continuation): after changing the model's weights."""
        self._coords = None
        self._clean_text = None
        self._cohort_coords = None
        self._shown = None

    def set_basis(self, basis: Basis) -> None:
        """Use ``basis`` for the features (e.g. a ``Directions`` basis that grew by one vector).

        The site's width must stay the same; :attr:`feature_names` follows the basis.
        """
        self._token.cancel()
        names = basis.names(self.width)
        self.basis = basis
        self._ablate.basis = self._steer.basis = basis
        self._ablate._compiled.clear()
        self._steer._compiled.clear()
        self.feature_names = names
        self._coords = None
        self._cohort_coords = None

    def check_controls(self, index: Any, ablated: Any, steer: Any) -> tuple[int, list[int], np.ndarray]:
        """Validate a control state; returns ``(index, sorted ablated, steer float32 (k,))``.

        ``steer=None`` means no steering.

        Raises
        ------
        ValueError
            An index out of range, unknown features, a wrong number of steering values, NaN/Inf.
        """
        k = len(self.feature_names)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"index must be an integer, got {index!r}")
        index = int(index)
        if not 0 <= index < len(self.inputs):
            raise ValueError(f"index {index} is out of range; pick 0..{len(self.inputs) - 1}")
        try:
            ablated = sorted({int(i) for i in ablated})
        except (TypeError, ValueError):
            raise ValueError(f"ablated must be a list of feature indices, got {ablated!r}") from None
        bad = [i for i in ablated if not 0 <= i < k]
        if bad:
            raise ValueError(f"ablated features {bad} are out of range; this site has {k} features (0..{k - 1})")
        steer = np.zeros(k, np.float32) if steer is None else np.asarray(steer, dtype=np.float32).reshape(-1)
        if steer.shape != (k,):
            raise ValueError(f"steer must have one value per feature ({k}), got {steer.shape[0]}")
        if not np.isfinite(steer).all():
            raise ValueError("steer contains NaN or Inf; slider values must be finite")
        return index, ablated, steer

    def check_feature(self, feature: Any) -> int:
        """Validate a feature to select (``-1``: none).

        Raises
        ------
        ValueError
            Not an index in ``-1 .. k-1``.
        """
        k = len(self.feature_names)
        if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)) or not -1 <= int(feature) < k:
            raise ValueError(f"feature must be an index in 0..{k - 1} (or -1 for none), got {feature!r}")
        return int(feature)

    # ---------------------------------------------------------------- the shown input
    def update(
        self,
        index: int,
        ablated: Sequence[int] = (),
        steer: Any = None,
        *,
        x: torch.Tensor | None = None,
        selected: int | None = None,
    ) -> LabResult:
        """Set the controls and compute what the shown input shows; cancels the previous cohort.

        One engine call (``lens.run(x, capture=[site])``), plus the greedy generation loop when
        ``generate > 0`` (the as-trained continuation is cached per input).

        Parameters
        ----------
        index : int
            The shown input.
        ablated : sequence of int
            Features to switch off.
        steer : array (k,), optional
            Steering amount per feature (``None``: none).
        x : Tensor, optional
            The shown input itself, when it differs from ``inputs[index]`` (an edited record, a
            typed text); a batch of one. Keep passing the same tensor object while it is shown.
        selected : int, optional
            Feature whose views to compute; default: the current :attr:`selected`.

        Returns
        -------
        LabResult

        Raises
        ------
        ValueError
            Bad controls (nothing changes then).
        ModelError, EditError, InputError
            The run failed; the edits are back as they were.
        """
        index, ablated, steer = self.check_controls(index, ablated, steer)
        if selected is not None:
            selected = self.check_feature(selected)
        x = self.x(index) if x is None else x
        self._token.cancel()  # before any edit changes: a cohort chunk computed meanwhile is dropped
        old = (self._ablate.op, self._ablate.enabled, self._steer.op, self._steer.enabled)
        t0 = time.perf_counter()
        try:
            if ablated:
                self._ablate.op = Ablate(ablated)
            self._ablate.enabled = bool(ablated)
            vecs = self.basis.vectors(self.width)
            if vecs is None:
                direction = torch.from_numpy(steer)
            else:  # only the steered features' vectors (a 24k-latent SAE: a few rows, not the whole decoder)
                nz = torch.from_numpy(np.flatnonzero(steer))
                direction = torch.from_numpy(steer[nz.numpy()]).to(vecs.dtype) @ vecs[nz]
            self._steer.op = Steer(direction=direction, alpha=1.0)
            self._steer.enabled = bool(np.any(steer != 0))
            result = self.lens.run(x, capture=[self.site], output=self._pick)
            baseline = self._readout(result.baseline)
            edited = self._readout(result.edited)
            activations = self._clean_coordinates(result.clean[self.site])
            written = (self._continue_clean(x), self._continue(x, edited=True)) if self.generate else ("", "")
        except Exception:
            self._ablate.op, self._ablate.enabled, self._steer.op, self._steer.enabled = old
            raise
        self._row_seconds = max(1e-6, time.perf_counter() - t0)
        self._acts = result.acts[self.site]
        self._x_shown = x
        if selected is not None:
            self.selected = selected
        self.last = LabResult(
            index=index,
            ablated=tuple(ablated),
            steer=steer,
            baseline=baseline,
            edited=edited,
            activations=activations,
            generated_baseline=written[0],
            generated_edited=written[1],
            **self._views(),
        )
        return self.last

    def select(self, feature: int) -> LabResult:
        """Select ``feature`` (``-1``: none): its edited map or per-position values and ground-truth
        correlations, from the last :meth:`update` (no engine call; the cohort's clean coordinates
        are computed once when factors were given).

        Raises
        ------
        ValueError
            Not a feature index; or no :meth:`update` yet.
        """
        feature = self.check_feature(feature)
        if self.last is None:
            raise ValueError("call update(...) before select(...): there is no shown input yet")
        views = self._views(feature)
        self.selected = feature
        self.last = dataclasses.replace(self.last, **views)
        return self.last

    def rank(self, by: str = "attribution", *, target: int | None = None, exact: int = 16) -> FeatureRanking:
        """Order the features for the shown input of the last :meth:`update` (clean model, edits off).

        ``by="activation"``: by the absolute clean coordinate; ``by="attribution"``: by gradient ×
        activation through the basis to the displayed value of ``target`` (default: the predicted
        class), the ``exact`` largest then measured exactly by one batched ablation sweep and put first
        (:func:`~superwidgets.analysis.rank.rank_features`).

        Parameters
        ----------
        by : {"activation", "attribution"}
            The order.
        target : int, optional
            Class to attribute; default: the clean prediction's argmax.
        exact : int
            Candidates whose exact ablation effect is measured (0: none).

        Returns
        -------
        FeatureRanking

        Raises
        ------
        ValueError
            No :meth:`update` yet, an unknown ``by``, a target out of range.
        """
        if self._x_shown is None:
            raise ValueError("call update(...) before rank(...): there is no shown input yet")
        return rank_features(
            self.lens,
            self._x_shown,
            self.site,
            basis=self.basis,
            output=self.output,
            readout=self.readout,
            by=by,
            target=target,
            exact=exact,
        )

    def _views(self, feature: int | None = None) -> dict[str, Any]:
        """Selection-dependent views: spatial map (conv sites), per-position values, ground-truth correlations."""
        f = self.selected if feature is None else feature
        views: dict[str, Any] = {"selected": f, "spatial": None, "positions": None, "gt_corr": None}
        if f < 0:
            return views
        acts = self._acts
        if acts is not None and acts.ndim in (3, 4):
            m = self.features_last(acts)[0][..., f].numpy().astype(np.float32)  # (h, w) or (positions,)
            views["spatial" if acts.ndim == 4 else "positions"] = m
        if self.factors is not None:
            views["gt_corr"] = correlate(self.cohort_coordinates()[:, f], self.factors)
        return views

    def _make_pick(self) -> Callable[[Any], torch.Tensor]:
        output = self.output

        def pick(out: Any) -> torch.Tensor:
            t = pick_prediction(out, output).detach()
            return t.reshape(t.shape[0], -1)

        return pick

    def _readout(self, picked: torch.Tensor) -> np.ndarray:
        """Displayed values of a single input's picked prediction."""
        return readout_rows(picked, self.readout)[0].astype(np.float32)

    def _clean_coordinates(self, clean: torch.Tensor) -> np.ndarray:
        """The shown input's clean coordinates; cached while the lens hands back the same clean values."""
        cached = self._coords
        if (
            cached is not None
            and cached[0].data_ptr() == clean.data_ptr()  # the cache holds the old tensor: no address reuse
            and cached[0].shape == clean.shape
            and cached[0]._version == clean._version
        ):
            return cached[1]
        coords = self.project(clean)[0].astype(np.float32)
        self._coords = (clean, coords)
        return coords

    def _continue_clean(self, x: torch.Tensor) -> str:
        """The as-trained continuation of the shown input, computed once per input (edits do not change it)."""
        cached = self._clean_text
        if cached is None or cached[0] is not x or cached[1] != x._version:  # holds x: no identity reuse
            cached = self._clean_text = (x, x._version, self._continue(x, edited=False))
        return cached[2]

    def _continue(self, x: torch.Tensor, *, edited: bool) -> str:
        """Greedy continuation of ``x`` (1, T) by ``generate`` tokens, edits on or off, decoded."""
        seq, ids = x, []
        window = x.shape[1]
        with torch.no_grad():
            for _ in range(self.generate):
                out, _ = self.lens.trace(seq[:, -window:], [], edited=edited)
                nxt = int(prediction_of(out)[0].reshape(-1).argmax())
                ids.append(nxt)
                seq = torch.cat([seq, torch.tensor([[nxt]], dtype=seq.dtype, device=seq.device)], 1)
        return self.decode(ids) if self.decode is not None else " ".join(map(str, ids))

    # ---------------------------------------------------------------- coordinates
    def features_last(self, acts: torch.Tensor) -> torch.Tensor:
        """Feature coordinates at every position, features last: ``(n, k)``, ``(n, H, W, k)`` or ``(n, P, k)``.

        The engine's coordinates in the basis — the values its edits change: units for ``Neurons``,
        the SAE's codes for an ``SAE`` basis, span coordinates for ``Directions`` — so a
        switched-off feature reads 0 and a steered one moves.

        Parameters
        ----------
        acts : Tensor
            Site activations (element 0 of the site's output).
        """
        h = acts.float()
        if h.ndim == 4:  # conv maps (n, C, H, W)
            h = h.movedim(1, -1)
        with torch.no_grad():
            c = coordinates(self.basis, self.width, list(range(len(self.feature_names))), h)
        return c.detach().float().cpu()

    def project(self, acts: torch.Tensor) -> np.ndarray:
        """Feature coordinates ``(n, k)`` of site activations (conv maps, sequences: averaged over space, positions)."""
        c = self.features_last(acts)
        if c.ndim > 2:
            c = c.mean(dim=tuple(range(1, c.ndim - 1)))
        return c.cpu().numpy()

    def cohort_coordinates(self) -> np.ndarray:
        """Clean coordinates of every feature for every input (spatially averaged), computed once."""
        if self._cohort_coords is None:
            parts = [
                self.project(self.lens.activations(self.inputs[i : i + 1024], self.site)[self.site])
                for i in range(0, len(self.inputs), 1024)
            ]
            self._cohort_coords = np.concatenate(parts)
        return self._cohort_coords

    def default_steer_max(self) -> float:
        """A slider range from the data: 1.5 × the largest absolute coordinate over up to 1,024 inputs."""
        sample = self.inputs[: min(len(self.inputs), 1024)]
        acts = self.lens.activations(sample, self.site)[self.site].float()
        acts = acts.movedim(1, -1) if acts.ndim == 4 else acts
        coords = acts.reshape(-1, acts.shape[-1])
        vecs = self.basis.vectors(self.width)
        if vecs is not None:
            coords = coords @ (vecs / vecs.norm(dim=1, keepdim=True)).T
        top = float(coords.abs().max()) if coords.numel() else 1.0
        return float(np.ceil(max(top, 1e-3) * 1.5 * 10) / 10)

    # ---------------------------------------------------------------- the cohort
    def cohort(self, *, chunk_rows: int | None = None, token: CancelToken | None = None) -> Iterator[CohortSummary]:
        """The cohort summary under the current edits, growing chunk by chunk.

        Yields a running :class:`CohortSummary` after each chunk of rows (the last one has
        ``complete`` true and equals one pass over the whole cohort). Each chunk is one
        ``lens.run(chunk, preemptible=True)``: a call on the lens from another thread (the shown
        input's update) makes it give way at its next module and it is run again. Stops early,
        without yielding a stale summary, once ``token`` is cancelled — by default the current
        state's :attr:`token`, which the next :meth:`update` cancels. Yields nothing when
        ``cohort_top`` is 0.

        Parameters
        ----------
        chunk_rows : int, optional
            Rows per chunk. Default: the whole cohort in one run when its pass takes at most
        :data:`WHOLE_SECONDS`, else about :data:`CHUNK_SECONDS` of work per chunk. Measured on
        the first pass (chunks of 1, 2, 4, ... rows until one takes :data:`CHUNK_SECONDS`; the
        cost per row of the largest), then kept, so that every later pass runs the same chunk
        tensors and the lens's cached baselines of them (clean outputs, resume points) are reused.
        token : CancelToken, optional
            Stops the computation when cancelled (default: :attr:`token`).
        """
        if chunk_rows is not None and (
            isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1
        ):
            raise ValueError(f"chunk_rows must be a positive number of rows, got {chunk_rows!r}")
        token = self.token if token is None else token
        if self.cohort_top == 0:
            return
        n = len(self.inputs)
        cls, k = self.cohort_class, self.cohort_top
        delta = np.empty(n, dtype=np.float32)
        flips, start = 0, 0
        measure = chunk_rows is None and self._auto_rows is None
        if chunk_rows is not None:
            rows = int(chunk_rows)
        elif self._auto_rows is not None:
            rows = self._auto_rows
        else:  # first pass: growing chunks, measured
            rows = 1
        per_row = 0.0
        began = time.perf_counter()
        while start < n:
            if token.cancelled:
                return
            stop = min(n, start + rows)
            t0 = time.perf_counter()
            try:
                result = self.lens.run(self._chunk(start, stop), preemptible=True, output=self._pick)
            except Preempted:
                self.preemptions += 1
                time.sleep(0.001)  # let the foreground call take the lens
                continue
            if token.cancelled:  # the edits may have changed during the run
                return
            base = readout_rows(result.baseline, self.readout)
            edit = readout_rows(result.edited, self.readout)
            delta[start:stop] = (edit - base)[:, cls]
            flips += int((base.argmax(1) != edit.argmax(1)).sum())
            if measure:  # the largest chunk so far gives the cost per row (per-call overheads amortised)
                took = time.perf_counter() - t0
                per_row = max(took, 1e-9) / (stop - start)
                if took < CHUNK_SECONDS and stop < n:
                    rows *= 2
                else:  # the plan of every later pass
                    self._auto_rows = n if per_row * n <= WHOLE_SECONDS else max(1, int(CHUNK_SECONDS / per_row))
                    rows, measure = self._auto_rows, False
            start = stop
            if start == n:  # how long a whole pass took (a widget runs a quick one inline, see cohort_seconds)
                self.cohort_seconds = time.perf_counter() - began
            yield summarise(delta[:start], flips, k, n)

    def _chunk(self, start: int, stop: int) -> torch.Tensor:
        """Rows ``start:stop`` of the cohort, the same tensor object on every pass (the lens caches
        baselines per input object)."""
        key = (start, stop)
        t = self._chunks.get(key)
        if t is None:
            if len(self._chunks) > 4096:
                self._chunks.clear()
            t = self._chunks[key] = self.inputs[start:stop]
        return t

    def cohort_summary(self, *, chunk_rows: int | None = None) -> CohortSummary | None:
        """The complete cohort summary under the current edits (``None`` when ``cohort_top`` is 0
        or the state changed meanwhile)."""
        last = None
        for part in self.cohort(chunk_rows=chunk_rows):
            last = part
        return last if last is not None and last.complete else None
