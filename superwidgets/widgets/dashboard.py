"""FeatureDashboard: browse an SAE's latents at one site, with their activations, examples and effects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import traitlets
from torch import nn

from ..analysis.latents import MODES as _MODES
from ..analysis.latents import LatentStats
from ..analysis.rank import FeatureRanking, rank_features
from ..data.inputs import as_inputs as _inputs
from ..engine import SAE, Lens
from ._shared import (
    _corr,
    _ground_truth,
    _raw_table,
    _thumbnails,
    check_output,
    check_tokens,
    count_classes,
    pick_prediction,
)
from .base import Array, WidgetBase, bundle
from .lab import FeatureLab

__all__ = ["FeatureDashboard"]

_READOUTS = ("softmax", "sigmoid", "identity")
_SORTS = ("frequency", "max_activation", "effect", "attribution", "index")
#: Largest (parameters × inputs × positions) for which the constructor computes the first latent's cohort
#: effect itself (about 20 GFLOP); past it the effect follows when the view asks (``effect_pending``).
_CHEAP_EFFECT = 20_000_000_000
#: Chunks a build streams before a constructor shows a progress bar (tqdm; a view gets the progress traits).
_BAR_AFTER = 3


class FeatureDashboard(WidgetBase):
    """Browse the latents of a sparse autoencoder at one site of a model.

    The numbers come from a :class:`superwidgets.analysis.LatentStats` (``dash.stats``), which
    a script can use on its own: it streams through the inputs in chunks when the dashboard
    is built (a progress bar past a few chunks) and keeps only the SAE's positive codes,
    sparse, never a dense (positions × latents) array; per-latent effects are computed on
    first use and cached. Only summaries and the top examples travel to the browser (as
    binary arrays), and the view renders only the visible rows of the list, so SAEs with
    tens of thousands of latents browse smoothly.

    * **Feature list**, sortable by frequency (fraction of inputs where the
      latent is > 0; the default), maximum activation, index, or the effect of
      ablating the latent on each class (mean change of the class's readout over
      a sample of the cohort, the SAE's reconstruction error kept). The effect
      column is computed when first sorted by, in batched sweeps, for the
      ``effect_candidates`` most frequent latents only (default 256; the rest
      show no value and sort last). Searchable by index or name. Dead latents
      (never active) are flagged.
    * **Selected feature**: a histogram of its activations (over the inputs
      where it is active), its top-activating inputs (images: thumbnails with
      the latent's spatial activation map overlaid at a convolutional site;
      records: each input's most deviant fields, raw values with z-scores),
      its effect on the predictions over the whole cohort when it is ablated
      or steered (a histogram of the change of one class and the number of
      flipped predictions) and, in a synthetic world, its correlation with
      every true factor.
    * **Click-through**: *Open in FeatureLab* (or :meth:`open_in_lab`) selects
      the latent in a linked :class:`FeatureLab` with the SAE basis, or builds
      one.

    Parameters
    ----------
    model : Lens or nn.Module
        The model, or a lens on it. For a module, the lens already open on it
        is reused (so a FeatureLab on it keeps its hooks), else a new one is made.
    site : str
        Module path the SAE reads. At a convolutional site ``(n, C, H, W)``
        the SAE is applied at every position: codes ``(n, H, W, n_latents)``;
        an input's activation of a latent is its maximum over positions.
    sae : nn.Module or SAE
        Any module with ``encode(x)``, ``decode(c)`` and ``W_dec`` of shape
        ``(n_latents, d)``, or an ``sw.SAE(...)`` basis wrapping one.
    inputs : NeuronWorld, TabularData, Tensor or array
        The cohort: a data object as :func:`superwidgets.zoo.load` returns it
        (images with ground-truth factors, or records with raw values), or a
        tensor ``(n, ...)`` of model inputs.
    class_names : list of str, optional
        Names of the model's outputs (taken from ``inputs`` when it has them).
    ground_truth : object or (array, names), optional
        True factors per input (``.factors`` and ``.factor_names``, or a pair);
        taken from ``inputs`` when it has them.
    readout : {"softmax", "sigmoid", "identity"}
        How outputs become the values whose change is measured.
    output : callable, optional
        Picks the prediction from what the model returns, as in :class:`FeatureLab` (default: the
        tensor, its ``logits``, or its first tensor; a language model's last position).
    feature : int or str, optional
        Latent selected first (default: the first of the sorted list).
    sort_by : {"frequency", "max_activation", "effect", "attribution", "index"}
        Initial order of the feature list.
    sort_class : int
        Class whose effect ``sort_by="effect"`` sorts by (largest absolute change first).
    effect_class : int
        Class whose change the selected feature's effect histogram shows.
    effect_sample : int
        Inputs (a fixed random subset when the cohort is larger) over which the
        list's effect column is computed; 0 switches it off.
    effect_candidates : int
        How many latents (the most frequent) the effect column is computed for when the
        list is first sorted by effect; 0 switches it off.
    top_k : int
        Number of top-activating inputs shown.
    fields : int
        Most deviant fields shown per top input (records).
    bins : int
        Bins of the activation histogram.
    steer_max : float, optional
        Steering range ``[-steer_max, steer_max]``; default from the codes.
    lab : FeatureLab, optional
        A FeatureLab on the same lens and site with basis ``sw.SAE(sae)`` to
        click through to (see :meth:`link`).
    tokens : list of list of str, optional
        Each input's tokens. The top-activating inputs are then shown as text with the latent's code
        highlighting each token (at a sequence site ``(n, positions, d)``), and a FeatureLab opened
        from here gets them too.
    chunk : int
        Most inputs per forward pass while building the statistics (fewer when one
        input's output is large, e.g. a language model's full-vocabulary logits).
    progress : bool
        Show a progress bar (tqdm) while the constructor builds the statistics, when the
        build takes more than a few chunks. A displayed dashboard rebuilding (:meth:`set_sae`)
        or computing its effect column publishes ``progress_done``/``progress_total`` instead.
    effect_on_build : bool, optional
        Compute the first latent's cohort effect in the constructor. Default: only when it is
        cheap (parameters × inputs × positions ≤ 2·10¹⁰); otherwise ``effect_pending`` is set and
        the effect follows when a view is shown (or on :meth:`set_effect`/:meth:`select`), so a
        large dashboard builds in about the time of its statistics.

    Examples
    --------
    >>> model, world = sw.zoo.load("neuron-cnn-narrow")           # doctest: +SKIP
    >>> sae = sw.science.ReLUSAE(d=64, n_latents=256)             # doctest: +SKIP
    >>> dash = sw.FeatureDashboard(model, "conv.block3", sae, world)  # doctest: +SKIP
    """

    _esm = bundle("dashboard.js")
    _css = bundle("dashboard.css")

    site = traitlets.Unicode("").tag(sync=True)
    """str: Module path the SAE reads (read-only). Default ``""``."""

    n_inputs = traitlets.Int(0).tag(sync=True)
    """int: Number of inputs in the cohort. Default 0."""

    input_kind = traitlets.Unicode("tensor").tag(sync=True)
    """str: ``"image"`` (``(n, C, H, W)`` inputs), ``"record"`` (``(n, f)``) or ``"tensor"``. Default ``"tensor"``."""

    spatial_site = traitlets.Bool(False).tag(sync=True)
    """bool: Whether the site is convolutional (codes per position, maps shown). Default False."""

    feature_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Display name of each latent. Default ``[]``."""

    class_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Name of each model output. Default ``[]``."""

    frequency = Array()
    """ndarray float32 (L,): Fraction of inputs on which each latent is > 0 (0 = dead). Default ``None``."""

    max_activation = Array()
    """ndarray float32 (L,): Each latent's largest activation over the cohort. Default ``None``."""

    effect = Array()
    """ndarray float32 (L, C): Mean change of each class's readout when the latent is ablated (error term
    kept), over ``effect_inputs`` inputs, for the ``effect_candidates`` most frequent latents (NaN for the
    others; dead latents: 0); ``None`` until the list is first sorted by effect, or when switched off."""

    effect_inputs = traitlets.Int(0).tag(sync=True)
    """int: Number of inputs the ``effect`` column averages over (0 = column off). Default 0."""

    effect_candidates = traitlets.Int(0).tag(sync=True)
    """int: Number of latents (the most frequent) the ``effect`` column is computed for (0 = column off).
    Default 0."""

    progress_done = traitlets.Int(0).tag(sync=True)
    """int: Work done of the computation in progress (inputs while building, latents for the effect column);
    equal to ``progress_total`` when idle. Default 0."""

    progress_total = traitlets.Int(0).tag(sync=True)
    """int: Work in all of the computation in progress (0: none yet). Default 0."""

    progress_what = traitlets.Unicode("").tag(sync=True)
    """str: What the computation in progress does (e.g. ``"statistics"``, ``"effects"``). Default ``""``."""

    n_dead = traitlets.Int(0).tag(sync=True)
    """int: Number of dead latents (never active on the cohort). Default 0."""

    sort_input = traitlets.Int(0).tag(sync=True)
    """int: Input whose prediction ``sort_by="attribution"`` attributes (the linked FeatureLab's shown input when
    one is linked, taken at the time of the sort). Default 0."""

    sort_by = traitlets.Unicode("frequency").tag(sync=True)
    """str: Order of the list: ``"frequency"``, ``"max_activation"``, ``"effect"`` or ``"index"``. Setting it
    re-sorts. Default ``"frequency"``."""

    sort_class = traitlets.Int(0).tag(sync=True)
    """int: Class whose ``effect`` (absolute value) ``sort_by="effect"`` sorts by. Default 0."""

    order = Array()
    """ndarray int32 (L,): Latent indices in list order (largest first, ties by index). Default ``None``."""

    selected = traitlets.Int(0).tag(sync=True)
    """int: The latent whose details are shown. Setting it recomputes them. Default: first in ``order``."""

    n_active = traitlets.Int(0).tag(sync=True)
    """int: Inputs on which the selected latent is > 0. Default 0."""

    act_hist = Array()
    """ndarray int32 (bins,): Histogram of the selected latent's activations over the inputs where it is > 0."""

    act_edges = Array()
    """ndarray float32 (bins + 1,): Bin edges of ``act_hist``."""

    top_indices = Array()
    """ndarray int32 (k,): Inputs on which the selected latent is largest (only inputs where it is > 0)."""

    top_values = Array()
    """ndarray float32 (k,): The selected latent's activation on each of them."""

    top_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Caption of each top input (its true label where known). Default ``[]``."""

    top_images = Array()
    """ndarray float32 (k, 3, t, t): RGB thumbnails of the top inputs (image inputs); ``None`` otherwise."""

    top_maps = Array()
    """ndarray float32 (k, h, w): The selected latent's code at each position of each top input (convolutional
    sites); ``None`` otherwise."""

    top_tokens = traitlets.List(traitlets.List(traitlets.Unicode())).tag(sync=True)
    """list of list of str: Tokens of each top-activating input (``tokens=``); empty when none were given."""

    top_positions = Array()
    """ndarray float32 (k, P): The selected latent's code at each position of each top input (sequence sites);
    ``None`` otherwise."""

    field_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Field names of record inputs. Default ``[]``."""

    field_units = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Unit of each field where known (``""`` otherwise). Default ``[]``."""

    top_fields = Array()
    """ndarray int32 (k, m): For each top input, its ``m`` most deviant fields (largest |z| first); records only."""

    top_field_values = Array()
    """ndarray float32 (k, m): Their raw values (original units)."""

    top_field_z = Array()
    """ndarray float32 (k, m): Their z-scores against the cohort."""

    effect_mode = traitlets.Unicode("ablate").tag(sync=True)
    """str: ``"ablate"`` (latent set to 0) or ``"steer"`` (``steer`` times its decoder row added).
    Default ``"ablate"``."""

    steer = traitlets.Float(1.0).tag(sync=True)
    """float: Steering strength (added code of the latent) when ``effect_mode == "steer"``. Default 1.0."""

    steer_max = traitlets.Float(1.0).tag(sync=True)
    """float: The steering control's range is ``[-steer_max, steer_max]``. Default from the codes."""

    effect_class = traitlets.Int(0).tag(sync=True)
    """int: Class whose change ``effect_hist`` shows. Default 0."""

    effect_hist = Array()
    """ndarray int32 (31,): Inputs of the cohort by change of the ``effect_class`` readout under the edit;
    ``None`` while ``effect_pending``."""

    effect_edges = Array()
    """ndarray float32 (32,): Bin edges of ``effect_hist`` (symmetric around 0)."""

    effect_pending = traitlets.Bool(False).tag(sync=True)
    """bool: Whether the selected latent's effect is still to be computed (the view asks for it when shown;
    see ``effect_on_build``). Default False."""

    effect_flips = traitlets.Int(0).tag(sync=True)
    """int: Inputs of the cohort whose predicted (argmax) class changes under the edit. Default 0."""

    effect_mean = Array()
    """ndarray float32 (C,): Mean change of each class's readout over the cohort under the edit."""

    factor_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Names of the ground-truth factors (synthetic worlds). Default ``[]``."""

    gt_corr = Array()
    """ndarray float32 (K,): Correlation of the selected latent's activation with each true factor; ``None``
    without ground truth."""

    lab_linked = traitlets.Bool(False).tag(sync=True)
    """bool: Whether a FeatureLab is linked for click-through. Default False."""

    notice = traitlets.Unicode("").tag(sync=True)
    """str: Status line (e.g. what *Open in FeatureLab* did). Default ``""``."""

    def __init__(
        self,
        model: Lens | nn.Module,
        site: str,
        sae: Any,
        inputs: Any,
        *,
        class_names: list[str] | None = None,
        ground_truth: Any = None,
        readout: str = "softmax",
        output: Any = None,
        feature: int | str | None = None,
        sort_by: str = "frequency",
        sort_class: int = 0,
        effect_class: int = 0,
        effect_sample: int = 1024,
        effect_candidates: int = 256,
        top_k: int = 12,
        fields: int = 5,
        bins: int = 30,
        steer_max: float | None = None,
        lab: FeatureLab | None = None,
        tokens: list[list[str]] | None = None,
        chunk: int = 1024,
        progress: bool = True,
        effect_on_build: bool | None = None,
    ) -> None:
        if isinstance(model, Lens):
            lens = model
        elif isinstance(model, nn.Module):
            lens = Lens.current(model) or Lens(model)
        else:
            raise TypeError(f"FeatureDashboard needs a torch model or a superwidgets Lens, got {type(model).__name__}")
        if readout not in _READOUTS:
            raise ValueError(f"readout must be one of {_READOUTS}, got {readout!r}")
        for name, value, low in (("top_k", top_k, 1), ("fields", fields, 1), ("bins", bins, 1), ("chunk", chunk, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name, value in (("effect_sample", effect_sample), ("effect_candidates", effect_candidates)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        lens.bind(site)
        self._lens = lens
        self._site = site
        self._ranked: tuple[Any, FeatureRanking] | None = None
        self._source = inputs
        self._readout_kind = readout
        self._output = check_output(output)
        self._k, self._m, self._bins, self._chunk = int(top_k), int(fields), int(bins), int(chunk)
        self._effect_sample = int(effect_sample)
        self._effect_candidates = int(effect_candidates)
        self._bar_wanted = bool(progress)
        self._X, labels, label_names = _inputs(inputs)
        self._labels = labels
        self._tokens = check_tokens(tokens, len(self._X))
        self._factors, factor_names = _ground_truth(ground_truth if ground_truth is not None else inputs, len(self._X))
        self._ground_truth_arg = ground_truth
        self._records = self._record_table(inputs) if self._X.ndim == 2 else None
        self._lab: FeatureLab | None = None
        # one input first: an output too large to draw is refused before the cohort runs
        count_classes(pick_prediction(lens.run(self._X[:1]).baseline, self._output))
        stats = self._build(sae, publish=False)  # raises the engine's error on a width mismatch
        n_out = stats.baseline.shape[1]
        class_names = list(class_names or label_names or [f"output {i}" for i in range(n_out)])
        if len(class_names) != n_out:
            raise ValueError(f"got {len(class_names)} class names for a model with {n_out} outputs")
        for name, value in (("sort_class", sort_class), ("effect_class", effect_class)):
            if not 0 <= int(value) < n_out:
                raise ValueError(f"{name} {value} is out of range; the model has {n_out} outputs (0..{n_out - 1})")
        if sort_by not in _SORTS:
            raise ValueError(f"sort_by must be one of {_SORTS}, got {sort_by!r}")
        super().__init__()
        self._quiet = True
        try:
            self.site = site
            self.n_inputs = len(self._X)
            self.input_kind = "image" if self._X.ndim == 4 else "record" if self._X.ndim == 2 else "tensor"
            self.class_names = class_names
            self.factor_names = factor_names
            if self._records is not None:
                self.field_names = self._records[0]
                self.field_units = self._records[1]
        finally:
            self._quiet = False
        self._handle("request", self._on_request)
        self._handle("sort", self._on_sort)
        self._handle("open_lab", self._on_open_lab)
        with self._publish():
            self._install(stats, steer_max)
            self._sort(sort_by, sort_class)
            first = int(self.order[0]) if feature is None else feature
            cheap = _model_size(self._lens.model) * stats.n_inputs * max(1, stats._positions_total) <= _CHEAP_EFFECT
            effect_now = cheap if effect_on_build is None else bool(effect_on_build)
            self._apply(first, "ablate", float(self.steer), effect_class, effect=effect_now)
        if lab is not None:
            self.link(lab)

    # ---------------------------------------------------------------- public
    @property
    def lens(self) -> Lens:
        """The lens the dashboard runs the model through (it adds no edits of its own)."""
        return self._lens

    @property
    def sae(self) -> Any:
        """The SAE module."""
        return self._basis.sae

    @property
    def basis(self) -> SAE:
        """The ``sw.SAE`` basis of the SAE (error term kept), as a linked FeatureLab uses it."""
        return self._basis

    @property
    def stats(self) -> LatentStats:
        """The latent statistics the dashboard shows (frequency, max, histograms, top inputs, effects)."""
        return self._stats

    @property
    def lab(self) -> FeatureLab | None:
        """The linked FeatureLab, or ``None``."""
        return self._lab

    def select(self, feature: int | str) -> None:
        """Show the details of latent ``feature`` (an index or a name).

        Raises
        ------
        ValueError
            Out of range or unknown name (the engine's message). It also shows
            in the error area; the dashboard keeps its state.
        """
        self._run(lambda: self._apply(feature, self.effect_mode, self.steer, self.effect_class))

    def sort(self, by: str, class_index: int | None = None) -> None:
        """Order the feature list by ``"frequency"``, ``"max_activation"``, ``"effect"`` or ``"index"``.

        Parameters
        ----------
        by : str
            The sort key (largest first; ``"effect"`` by absolute change of ``class_index``).
        class_index : int, optional
            Class for ``by="effect"`` (default: the current ``sort_class``).
        """
        self._run(lambda: self._sort(by, self.sort_class if class_index is None else class_index))

    def set_effect(
        self, mode: str | None = None, *, steer: float | None = None, class_index: int | None = None
    ) -> None:
        """Change how the selected latent's effect is measured and shown.

        Parameters
        ----------
        mode : {"ablate", "steer"}, optional
            Set the latent to 0, or add ``steer`` times its decoder row.
        steer : float, optional
            Steering strength.
        class_index : int, optional
            Class whose change the histogram shows.
        """
        self._run(
            lambda: self._apply(
                self.selected,
                self.effect_mode if mode is None else mode,
                self.steer if steer is None else steer,
                self.effect_class if class_index is None else class_index,
            )
        )

    def effects(self, feature: int | str, mode: str = "ablate", steer: float = 1.0) -> np.ndarray:
        """Change of every input's readout when ``feature`` is ablated or steered (cached).

        Returns
        -------
        ndarray float32, shape (n_inputs, n_classes)
            ``readout(edited) - readout(clean)``, error term kept.
        """
        f = self._stats.index(feature)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        return self._stats.effect(f, mode, _finite(steer, "steer")).copy()

    def codes(self, indices: Any) -> np.ndarray:
        """The SAE's codes of the given inputs: ``(k, n_latents)``, or ``(k, H, W, n_latents)`` at a conv site."""
        return self._stats.dense_codes(indices)

    def search(self, query: str | int) -> np.ndarray:
        """Latents whose index is ``query`` or whose name contains it (case-insensitive), as the view's search box.

        Returns
        -------
        ndarray int32
            Matching latent indices, an exact index first.
        """
        return self._stats.search(query)

    def set_sae(self, sae: Any) -> None:
        """Replace the SAE (recomputes every summary; unlinks the FeatureLab, which uses the old basis).

        Raises
        ------
        ValueError
            The SAE's width does not match the site (the engine's message). It
            also shows in the error area; the dashboard keeps its state.
        """

        def run() -> None:
            stats = self._build(sae, publish=True)
            self._lab = None
            self.lab_linked = False
            self._install(stats, None)
            self._sort(self.sort_by, self.sort_class)
            self._apply(int(self.order[0]), self.effect_mode, self.steer, self.effect_class)

        self._run(run)

    def link(self, lab: FeatureLab) -> None:
        """Link a FeatureLab for click-through (same lens and site, basis ``sw.SAE(sae)``).

        Raises
        ------
        ValueError
            The lab looks at another lens, site or basis.
        """

        def run() -> None:
            if not isinstance(lab, FeatureLab):
                raise TypeError(f"link needs a FeatureLab, got {type(lab).__name__}")
            basis = _lab_basis(lab)
            if lab.lens is not self._lens or lab.site != self.site:
                raise ValueError(
                    f"the FeatureLab must use this dashboard's lens and site {self.site!r}; build it with "
                    f"sw.FeatureLab(dash.lens, inputs, site={self.site!r}, basis=dash.basis)"
                )
            if not isinstance(basis, SAE) or basis.sae is not self._basis.sae:
                raise ValueError(
                    "the FeatureLab must use this dashboard's SAE as its basis; build it with "
                    f"sw.FeatureLab(dash.lens, inputs, site={self.site!r}, basis=dash.basis)"
                )
            self._lab = lab
            self.lab_linked = True
            self.notice = ""

        self._run(run)

    def open_in_lab(self, feature: int | str | None = None) -> FeatureLab:
        """Select ``feature`` (default: the selected one) in the linked FeatureLab, or build and link one.

        A new FeatureLab uses this lens and site with basis ``sw.SAE(sae)``
        and opens on the input where the latent is largest. Building it
        replaces the edits of an earlier FeatureLab on the same lens and site.

        Returns
        -------
        FeatureLab
        """
        out: list[FeatureLab] = []
        self._run(lambda: out.append(self._open(feature)))
        return out[0]

    def to_html(
        self, path: str | Path | None = None, *, title: str | None = None, features: int | list[int] | None = None
    ) -> str:
        """A static, browsable snapshot of the dashboard as one self-contained HTML file.

        Like :meth:`WidgetBase.to_html`, and the feature list stays clickable offline: the details of
        the chosen latents (histogram, top inputs, cohort effect in the current mode, steering
        strength and class, factor correlations) and every sort order are precomputed into the file
        (the effect orders when the effect column was computed already or the SAE has at most 4096
        latents).
        Other latents, modes or classes need a running kernel (the error area says so there); with
        the dashboard's lens closed only the sort orders are precomputed.

        Parameters
        ----------
        path : str or Path, optional
            Where to write the file (UTF-8).
        title : str, optional
            The page title; default: the widget's class name.
        features : int or list of int, optional
            The latents to make browsable: a list of indices, or the first ``features`` in the current
            order. Default: every latent when there are at most 64, else the first 64 (file size
            grows with them: about 10 kB a latent for records, 150 kB for images with spatial maps).

        Returns
        -------
        str
            The HTML text (also written to ``path`` when given).
        """
        return self._write_html(path, title, self._snapshot_replies(features))

    def _snapshot_choice(self, features: int | list[int] | None) -> list[int]:
        order = [int(i) for i in np.asarray(self.order)]
        if features is None:
            chosen = order[:64]
        elif isinstance(features, (int, np.integer)) and not isinstance(features, bool):
            if features < 1:
                raise ValueError(f"features must be at least 1 (how many latents to include), got {features}")
            chosen = order[: int(features)]
        else:
            chosen = [self._stats.index(f) for f in features]
        return list(dict.fromkeys([int(self.selected), *chosen]))

    def _snapshot_replies(self, features: int | list[int] | None = None) -> list[dict[str, Any]]:
        """Selecting the chosen latents (see :meth:`to_html`) and re-sorting, precomputed for a static snapshot."""
        from .snapshot import precompute_replies

        features = self._snapshot_choice(features)
        sel, mode, steer, cls = int(self.selected), self.effect_mode, float(self.steer), int(self.effect_class)
        by0, cls0 = self.sort_by, int(self.sort_class)
        select = [
            (
                {"type": "request", "feature": f, "mode": mode, "steer": steer, "effect_class": cls},
                lambda f=f: self._apply(f, mode, steer, cls),
            )
            for f in features
        ]
        # the effect sorts only when their column exists or is quick to compute (at most 4096 latents); the
        # attribution sorts (the model's gradient on sort_input) only then too
        quick = not self._lens.closed and len(self.feature_names) <= 4096
        effect = self.effect_candidates > 0 and (self._effect_col is not None or quick)
        sort = [
            ({"type": "sort", "by": by, "class": c}, lambda by=by, c=c: self._sort(by, c))
            for by in _SORTS
            if (by != "effect" or effect) and (by != "attribution" or quick)
            for c in range(len(self.class_names))
        ]
        sorts = precompute_replies(self, sort, lambda: self._sort(by0, cls0))
        if self._lens.closed:  # the cohort effects need the model: only the sorts work offline then
            return sorts
        return [*precompute_replies(self, select, lambda: self._apply(sel, mode, steer, cls)), *sorts]

    def to_figure(self, top: int = 20) -> Any:
        """A matplotlib figure: the feature list's top ``top``, the histograms, top examples, factor correlations.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        if self.effect_pending:  # the figure shows the effect too: compute it now
            self.set_effect()
        f = self.selected
        fname = self.feature_names[f]
        fig = plt.figure(figsize=(14, 8))
        gs = fig.add_gridspec(2, 3, width_ratios=[1, 1.2, 1.2])
        ax_list = fig.add_subplot(gs[:, 0])
        order = np.asarray(self.order)[:top]
        key, label = self._sort_key(self.sort_by, self.sort_class)
        vals = key[order]
        colors = ["#1976d2" if i == f else ("#bdbdbd" if self.frequency[i] == 0 else "#607d8b") for i in order]
        y = np.arange(len(order))
        ax_list.barh(y, vals, color=colors)
        ax_list.set_yticks(y, [self.feature_names[i] for i in order], fontsize=7)
        ax_list.invert_yaxis()
        ax_list.set_title(f"latents by {label}", fontsize=9)

        ax_h = fig.add_subplot(gs[0, 1])
        edges = np.asarray(self.act_edges)
        ax_h.bar(edges[:-1], self.act_hist, width=np.diff(edges), align="edge", color="#607d8b")
        ax_h.set_title(f"{fname}: activations > 0 ({self.n_active} of {self.n_inputs} inputs)", fontsize=9)

        ax_e = fig.add_subplot(gs[0, 2])
        edges = np.asarray(self.effect_edges)
        mids = (edges[:-1] + edges[1:]) / 2
        ax_e.bar(
            edges[:-1], self.effect_hist, width=np.diff(edges), align="edge",
            color=[_bin_colour(m, abs(edges[1] - edges[0])) for m in mids],
        )  # fmt: skip
        what = "ablated" if self.effect_mode == "ablate" else f"steered by {self.steer:+.2f}"
        ax_e.set_title(f"Δ {self.class_names[self.effect_class]}, {what}: {self.effect_flips} flips", fontsize=9)
        ax_e.set_yscale("symlog")

        ax_t = fig.add_subplot(gs[1, 1])
        self._figure_examples(ax_t)
        ax_g = fig.add_subplot(gs[1, 2])
        if self.gt_corr is not None and len(self.factor_names):
            r = np.asarray(self.gt_corr)
            ordr = np.argsort(-np.abs(r), kind="stable")[:12]
            ax_g.barh(np.arange(len(ordr)), r[ordr], color=["#c62828" if v < 0 else "#1976d2" for v in r[ordr]])
            ax_g.set_yticks(np.arange(len(ordr)), [self.factor_names[i] for i in ordr], fontsize=7)
            ax_g.invert_yaxis()
            ax_g.set_xlim(-1, 1)
            ax_g.axvline(0, color="k", lw=0.5)
            ax_g.set_title(f"{fname} vs true factors (r)", fontsize=9)
        else:
            m = np.asarray(self.effect_mean)
            ax_g.barh(np.arange(len(m)), m, color="#1976d2")
            ax_g.set_yticks(np.arange(len(m)), self.class_names, fontsize=8)
            ax_g.invert_yaxis()
            ax_g.axvline(0, color="k", lw=0.5)
            ax_g.set_title("mean Δ per class", fontsize=9)
        fig.suptitle(f"FeatureDashboard · site {self.site!r} · {len(self.feature_names)} latents ({self.n_dead} dead)")
        fig.tight_layout()
        return fig

    def _figure_examples(self, ax: Any) -> None:
        ax.set_axis_off()
        idx = np.asarray(self.top_indices)
        vals = np.asarray(self.top_values)
        ax.set_title(f"top inputs of {self.feature_names[self.selected]}", fontsize=9)
        if len(idx) == 0:
            ax.text(0.5, 0.5, "never active", ha="center", va="center")
            return
        if self.top_images is not None:
            imgs = np.asarray(self.top_images)[:8]
            k, _, t, _ = imgs.shape
            cols = min(4, k)
            rows = (k + cols - 1) // cols
            canvas = np.zeros((rows * (t + 2), cols * (t + 2), 3), np.float32)
            for j in range(k):
                r0, c0 = (j // cols) * (t + 2), (j % cols) * (t + 2)
                canvas[r0 : r0 + t, c0 : c0 + t] = imgs[j].transpose(1, 2, 0)
            ax.imshow(canvas, interpolation="nearest")
            if self.top_maps is not None:
                maps = np.asarray(self.top_maps)[:8]
                peak = max(float(np.abs(maps).max()), 1e-9)
                over = np.full((rows * (t + 2), cols * (t + 2)), np.nan, np.float32)
                for j in range(k):
                    r0, c0 = (j // cols) * (t + 2), (j % cols) * (t + 2)
                    m = maps[j]
                    rep = np.kron(m, np.ones((t // m.shape[0] + 1, t // m.shape[1] + 1), np.float32))[:t, :t]
                    over[r0 : r0 + t, c0 : c0 + t] = rep / peak
                ax.imshow(over, cmap="magma", alpha=0.45, vmin=0, vmax=1, interpolation="nearest")
            for j in range(k):
                ax.text((j % cols) * (t + 2), (j // cols) * (t + 2) + t + 1, f"#{idx[j]} {vals[j]:.2f}", fontsize=6)
            return
        lines = []
        for j in range(min(8, len(idx))):
            label = self.top_labels[j] if j < len(self.top_labels) else ""
            lines.append(f"#{idx[j]}  act {vals[j]:.2f}  {label}"[:48])
            if self.top_fields is not None:
                for fi, v, z in list(
                    zip(self.top_fields[j], self.top_field_values[j], self.top_field_z[j], strict=True)
                )[:2]:
                    lines.append(f"   {self.field_names[int(fi)][:22]} = {v:.4g} (z {z:+.1f})")
        ax.text(
            0, 1, "\n".join(lines), va="top", fontsize=6.5, family="monospace", transform=ax.transAxes, clip_on=True
        )

    # ---------------------------------------------------------------- observers
    @traitlets.observe("selected", "effect_mode", "steer", "effect_class")
    def _on_python_change(self, change: dict[str, Any]) -> None:
        def run() -> None:
            state = {
                "selected": self.selected,
                "effect_mode": self.effect_mode,
                "steer": self.steer,
                "effect_class": self.effect_class,
            }
            state[change["name"]] = change["new"]
            self._apply(state["selected"], state["effect_mode"], state["steer"], state["effect_class"])

        self._guard(change, run)

    @traitlets.observe("sort_by", "sort_class", "sort_input")
    def _on_python_sort(self, change: dict[str, Any]) -> None:
        def run() -> None:
            by = change["new"] if change["name"] == "sort_by" else self.sort_by
            cls = change["new"] if change["name"] == "sort_class" else self.sort_class
            self._sort(by, cls)

        self._guard(change, run)

    # ---------------------------------------------------------------- view requests
    def _on_request(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        self._apply(
            content.get("feature", self.selected),
            content.get("mode", self.effect_mode),
            content.get("steer", self.steer),
            content.get("effect_class", self.effect_class),
        )

    def _on_sort(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        self._sort(content.get("by", self.sort_by), content.get("class", self.sort_class))

    def _on_open_lab(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        self._open(content.get("feature", self.selected))

    def _run(self, fn: Any) -> None:
        """Run ``fn`` as one update; on error show it in the error area (state kept) and re-raise."""
        try:
            with self._publish():
                fn()
        except Exception as exc:
            from .base import _message

            with self.hold_sync():
                self.error = _message(exc)
                self.rev += 1
            raise

    # ---------------------------------------------------------------- computation
    def _build(self, sae: Any, *, publish: bool) -> LatentStats:
        """Stream the cohort into a :class:`LatentStats`; writes nothing but the progress traits.

        ``publish``: a displayed dashboard (rebuilding) sends ``progress_done``/``progress_total``
        as it goes; the constructor shows a tqdm bar instead (no view exists yet), once the build
        has taken more than a few chunks.
        """
        bar: list[Any] = []
        calls = [0]

        def progress(done: int, total: int) -> None:
            calls[0] += 1
            if publish:
                self._progress("statistics", done, total)
            elif self._bar_wanted and done < total and (bar or calls[0] >= _BAR_AFTER):
                if not bar:
                    from tqdm.auto import tqdm

                    bar.append(tqdm(total=total, desc="FeatureDashboard", unit="input"))
                bar[0].update(done - bar[0].n)

        try:
            return LatentStats(
                self._lens,
                self._site,
                sae,
                self._X,
                readout=self._readout_t,
                top_k=self._k,
                bins=self._bins,
                chunk=self._chunk,
                progress=progress,
            )
        finally:
            if bar:
                bar[0].update(bar[0].total - bar[0].n)
                bar[0].close()

    def _progress(self, what: str, done: int, total: int) -> None:
        """Send the progress traits now, also inside an update held as one message."""
        self.progress_what, self.progress_done, self.progress_total = what, int(done), int(total)
        if getattr(self, "comm", None) is not None and self._holding_sync:
            self.send_state(["progress_what", "progress_done", "progress_total"])

    def _effect_sample_rows(self) -> np.ndarray:
        """The fixed inputs the effect column averages over (all, or a seeded random subset)."""
        n = len(self._X)
        if n > self._effect_sample:
            return np.sort(np.random.default_rng(0).choice(n, self._effect_sample, replace=False))
        return np.arange(n)

    def _effect_column(self) -> np.ndarray:
        """The list's effect column ``(L, C)``: computed on first use for the most frequent latents, then kept."""
        if self._effect_col is not None:
            self.effect = self._effect_col
            return self._effect_col
        if self._effect_sample == 0 or self._effect_candidates == 0:
            raise ValueError(
                "the effect column is switched off (effect_sample=0 or effect_candidates=0); "
                "rebuild with effect_sample > 0 and effect_candidates > 0"
            )
        st = self._stats
        live = np.flatnonzero(st.frequency > 0)
        by_freq = live[np.argsort(-st.frequency[live], kind="stable")][: self._effect_candidates]
        candidates = np.sort(by_freq)
        col = np.full((st.n_latents, st.baseline.shape[1]), np.nan, np.float32)
        col[st.frequency == 0] = 0.0
        total = len(candidates)
        self._progress("effects", 0, total)
        col[candidates] = st.effects(
            candidates,
            sample=self._effect_sample_rows(),
            progress=lambda done, _t: self._progress("effects", done, total),
        )
        self._progress("effects", total, total)
        self._effect_col = col
        self.effect = col
        return col

    def _install(self, stats: LatentStats, steer_max: float | None) -> None:
        """Adopt freshly computed statistics and write the list traits."""
        self._stats = stats
        self._effect_col: np.ndarray | None = None
        self._basis = stats.basis
        self._width = stats.width
        self.feature_names = stats.names
        self.spatial_site = stats._conv
        self.frequency = stats.frequency
        self.max_activation = stats.max
        self.effect = None
        on = self._effect_sample > 0 and self._effect_candidates > 0
        self.effect_inputs = min(self._effect_sample, len(self._X)) if on else 0
        self.effect_candidates = min(self._effect_candidates, stats.n_latents) if on else 0
        self.n_dead = int((stats.frequency == 0).sum())
        self.progress_what, self.progress_done, self.progress_total = "statistics", stats.n_inputs, stats.n_inputs
        if steer_max is not None:
            self.steer_max = _finite(steer_max, "steer_max")
        else:
            live = stats.max[stats.max > 0]
            top = float(np.median(live)) * 2 if live.size else 1.0
            self.steer_max = float(np.ceil(max(top, 1e-3) * 10) / 10)

    def _sort_key(self, by: str, cls: int) -> tuple[np.ndarray, str]:
        if by == "frequency":
            return np.asarray(self.frequency), "frequency"
        if by == "max_activation":
            return np.asarray(self.max_activation), "max activation"
        if by == "index":
            return -np.arange(len(self.feature_names), dtype=np.float32), "index"
        if by == "attribution":
            ranking = self._attribution(cls)
            key = np.empty(len(ranking.order), dtype=np.float32)
            key[ranking.order] = -np.arange(len(ranking.order), dtype=np.float32)  # the ranking's order
            return key, f"attribution to {self.class_names[cls]} on input {self.sort_input}"
        eff = np.abs(self._effect_column()[:, cls])
        return np.where(np.isnan(eff), -np.inf, eff), f"|Δ {self.class_names[cls]}| when ablated"

    def _sort(self, by: Any, cls: Any) -> None:
        if by not in _SORTS:
            raise ValueError(f"sort_by must be one of {_SORTS}, got {by!r}")
        cls = _class_index(cls, len(self.class_names), "sort_class")
        if by == "attribution":
            self.order = self._attribution(cls).order.astype(np.int32)
        else:
            key, _ = self._sort_key(by, cls)
            self.order = np.argsort(-key, kind="stable").astype(np.int32)
        self.sort_by = by
        self.sort_class = cls

    def _attribution(self, cls: int) -> FeatureRanking:
        """The latents ordered by attribution to class ``cls`` of input :attr:`sort_input` (the linked
        FeatureLab's shown input when one is linked): gradient × activation through the SAE's codes, the
        16 largest re-ordered by their exact ablation effect (:func:`~superwidgets.analysis.rank_features`)."""
        lab = self._lab
        if lab is not None and not lab._replaced:
            self.sort_input = int(lab.index)
        i = int(self.sort_input)
        if not 0 <= i < len(self._X):
            raise ValueError(f"sort_input {i} is out of range; pick 0..{len(self._X) - 1}")
        key = (i, cls, self._stats)
        if self._ranked is None or self._ranked[0] != key:
            ranking = rank_features(
                self._lens,
                self._X[i : i + 1],
                self._site,
                basis=self._basis,
                output=self._output,
                readout=self._readout_kind,
                by="attribution",
                target=cls,
            )
            self._ranked = (key, ranking)
        return self._ranked[1]

    def _apply(self, feature: Any, mode: Any, steer: Any, effect_class: Any, *, effect: bool = True) -> None:
        """Validate, compute the selected latent's views, then write them (nothing changes on error).

        ``effect=False`` leaves the cohort effect to a later request (``effect_pending``).
        """
        st = self._stats
        f = st.index(feature)
        if mode not in _MODES:
            raise ValueError(f"effect mode must be one of {_MODES}, got {mode!r}")
        alpha = _finite(steer, "steer")
        cls = _class_index(effect_class, len(self.class_names), "effect_class")
        hist, edges = st.histogram(f)
        top, values = st.top(f)
        ehist = eedges = emean = None
        flips = 0
        if effect:
            delta = st.effect(f, mode, alpha)
            d = delta[:, cls]
            lim = float(np.abs(d).max()) if d.size else 0.0
            lim = 1e-6 if lim == 0 else lim * 1.0001
            ehist, eedges = np.histogram(d, bins=31, range=(-lim, lim))
            ehist, eedges = ehist.astype(np.int32), eedges.astype(np.float32)
            base = st.baseline
            flips = int((base.argmax(1) != (base + delta).argmax(1)).sum())
            emean = delta.astype(np.float64).mean(0).astype(np.float32)
        images = maps = None
        if self._X.ndim == 4 and top.size:
            images = _thumbnails(self._X[torch.from_numpy(top.astype(np.int64))], size=min(48, int(self._X.shape[-1])))
            if st._conv:
                maps = st.positions_of(f, top)
        rec = self._record_views(top) if self._records is not None else None
        positions = None
        if self._tokens is not None and len(st.positions) == 1 and not st._conv and top.size:
            positions = st.positions_of(f, top)  # (k, positions): a sequence site
        gt = _corr(st.column(f).astype(np.float64), self._factors) if self._factors is not None else None

        self.selected = f
        self.effect_mode = mode
        self.steer = alpha
        self.effect_class = cls
        self.n_active = int(st.n_active[f])
        self.act_hist = hist.astype(np.int32)
        self.act_edges = edges.astype(np.float32)
        self.top_indices = top.astype(np.int32)
        self.top_values = values.astype(np.float32)
        self.top_labels = [self._labels[i] if self._labels is not None else "" for i in top]
        self.top_images = images
        self.top_maps = maps
        self.top_tokens = [self._tokens[i] for i in top] if self._tokens is not None else []
        self.top_positions = positions
        if rec is not None:
            self.top_fields, self.top_field_values, self.top_field_z = rec
        self.effect_hist = ehist
        self.effect_edges = eedges
        self.effect_flips = flips
        self.effect_mean = emean
        self.effect_pending = not effect
        self.gt_corr = gt
        self.notice = ""

    def _record_table(self, inputs: Any) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
        """(field names, units, raw values (n, f), z-scores (n, f)) of record inputs."""
        raw_table = _raw_table(inputs, self._X)
        if raw_table is not None:
            names, raw = raw_table[0], raw_table[1]
        else:
            raw = self._X.detach().double().cpu().numpy()
            given = getattr(inputs, "feature_names", None)
            names = [str(s) for s in given] if given is not None and len(given) == raw.shape[1] else None
            names = names or [f"x{i}" for i in range(raw.shape[1])]
        units = getattr(inputs, "units", None)
        units = [str(u) for u in units] if units is not None and len(units) == len(names) else [""] * len(names)
        sd = raw.std(0)
        z = np.where(sd > 0, (raw - raw.mean(0)) / np.where(sd > 0, sd, 1), 0.0)
        return names, units, raw.astype(np.float32), z.astype(np.float32)

    def _record_views(self, top: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _, _, raw, z = self._records  # type: ignore[misc]
        m = min(self._m, raw.shape[1])
        zt = z[top]
        fields = np.argsort(-np.abs(zt), axis=1, kind="stable")[:, :m].astype(np.int32)
        rows = np.arange(len(top))[:, None]
        return fields, raw[top][rows, fields].astype(np.float32), zt[rows, fields].astype(np.float32)

    def _readout_t(self, out: Any) -> torch.Tensor:
        t = pick_prediction(out, self._output).detach().float()
        t = t.reshape(t.shape[0], -1)
        if self._readout_kind == "softmax":
            return torch.softmax(t, 1)
        if self._readout_kind == "sigmoid":
            return torch.sigmoid(t)
        return t

    def _open(self, feature: Any) -> FeatureLab:
        f = self._stats.index(self.selected if feature is None else feature)
        lab = self._lab
        if lab is not None and (getattr(lab, "_replaced", False) or self._lens.closed):
            lab = self._lab = None
        if lab is None:
            top, _ = self._stats.top(f)
            start = int(top[0]) if top.size else 0
            lab = FeatureLab(
                self._lens,
                self._source,
                self.site,
                basis=self._basis,
                index=start,
                class_names=list(self.class_names),
                readout=self._readout_kind,
                output=self._output,
                ground_truth=self._ground_truth_arg,
                tokens=self._tokens,
            )
            self._lab = lab
            notice = f"opened {self.feature_names[f]} in a new FeatureLab: display it with dash.lab"
        else:
            notice = f"selected {self.feature_names[f]} in the linked FeatureLab"
        lab.select(f)
        if f != self.selected:
            self._apply(f, self.effect_mode, self.steer, self.effect_class)
        self.lab_linked = True
        self.notice = notice
        return lab


def _bin_colour(mid: float, width: float) -> str:
    return "#9e9e9e" if abs(mid) < width / 4 else "#c62828" if mid < 0 else "#2e7d32"


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{what} must be finite, got {v}")
    return v


def _class_index(value: Any, n: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < n:
        raise ValueError(f"{what} must be a class index in 0..{n - 1}, got {value!r}")
    return int(value)


def _model_size(model: nn.Module) -> int:
    """Number of parameters of a model."""
    return sum(p.numel() for p in model.parameters())


def _lab_basis(lab: FeatureLab) -> Any:
    """The feature basis a FeatureLab uses (its session's, or an older lab's own)."""
    for owner in (lab, getattr(lab, "_session", None)):
        for name in ("basis", "_basis"):
            basis = getattr(owner, name, None) if owner is not None else None
            if basis is not None and not callable(basis):
                return basis
    return None
