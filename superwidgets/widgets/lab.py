"""FeatureLab: toggle and steer the features of one site, see predictions change live.

The widget validates controls, makes one call into :class:`superwidgets.analysis.lab.LabSession`
and writes the result in one message; the cohort summary follows from a background thread,
chunk by chunk, each partial in one message (``cohort_done`` of ``cohort_total`` rows), and a
newer control state cancels it. ``docs/analysis.md`` draws the path of one slider value.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import traitlets

from ..analysis.lab import CancelToken, CohortSummary, LabResult, LabSession, check_steer_max
from ..data.inputs import as_inputs as _inputs
from ..engine import Directions, Edit, Lens
from ..engine.bases import Basis, as_vector
from ..engine.lens import LensClosedError
from . import base as _base
from ._shared import (
    MAX_CLASSES,
    _ground_truth,
    _raw_table,
    _thumbnails,
    check_tokens,
    prediction_of,
)
from .base import Array, WidgetBase, _message, bundle

__all__ = ["MAX_CLASSES", "FeatureLab", "prediction_of"]

_READOUTS = ("softmax", "sigmoid", "identity")

#: A cohort whose last whole pass took less than this runs inside the update, in its message (a thread's
#: start and its second message would cost more than the cohort itself); slower ones follow in the background.
INLINE_COHORT_SECONDS = 0.02


class FeatureLab(WidgetBase):
    """Toggle (ablate) and steer the features of one site; watch the predictions.

    For the chosen input the widget shows the model's class probabilities with
    every edit off (baseline) and with the edits on (edited), and lists the
    site's features, each with an on/off switch (off = zero-ablated) and a
    steering slider (adds ``alpha`` times the feature's vector). Other edits
    made on the same lens in Python apply too.

    Parameters
    ----------
    lens : Lens
        The lens on the model (its hooks are reused; the widget adds none).
    inputs : TabularData, Tensor or array
        Records to pick from. An object with ``X`` (and optionally ``y``,
        ``class_names``) such as :class:`superwidgets.data.TabularData`, or a
        tensor ``(n, ...)`` of model inputs.
    site : str
        Module path whose features are listed.
    basis : Basis, optional
        ``Neurons()`` (default) or ``Directions(vectors, names)``.
    index : int
        Input shown first.
    class_names : list of str, optional
        Names of the model's outputs (taken from ``inputs`` when it has them).
    readout : {"softmax", "sigmoid", "identity"}
        How outputs become the displayed values.
    output : callable, optional
        Picks the prediction ``(batch, classes)`` from what the model returns; default
        :func:`prediction_of` (the tensor, its ``logits``, or its first tensor; a language
        model's last position). E.g. ``output=lambda o: o.logits[:, -1, token_ids]`` to show
        a few tokens of a vocabulary (at most :data:`MAX_CLASSES` outputs are drawn).
    steer_max : float, optional
        Slider range ``[-steer_max, steer_max]``; default from the activations' spread.
    cohort_class : int
        Output whose change over the whole cohort is summarised (histogram,
        top-affected inputs). After each update of the shown input, a background
        thread runs the edited model on all inputs in chunks and publishes the
        growing summary (``cohort_done`` of ``cohort_total``); a newer control
        state cancels it. Only summaries travel. :meth:`wait` blocks until it is complete.
    cohort_top : int
        How many most-affected inputs to list (0 switches the cohort view off).
    cohort_chunk : int, optional
        Cohort rows per background run; default: about a quarter second of work each.
    ground_truth : object or (array, names), optional
        True factors per input (``.factors`` and ``.factor_names``, e.g. a
        :class:`superwidgets.data.NeuronWorld`, or a pair). Taken from
        ``inputs`` when it has them. The panel shows the selected feature's
        correlation with each factor: polysemanticity made visible.
    gallery : int
        Number of thumbnails in the image gallery (images only).
    captions : list of str, optional
        One text per input, shown next to its number (e.g. the decoded text of a token sequence:
        ``captions=tokenizer.batch_decode(ids)``).
    tokens : list of list of str, optional
        Each input's tokens (e.g. ``[tokenizer.convert_ids_to_tokens(row) for row in ids]``). The
        input panel then shows the shown input's tokens, and at a sequence site ``(n, positions, d)``
        the selected feature's edited activation highlights each token.
    generate : int
        For a language model on token ids ``(n, T)``: also continue the shown input greedily by this
        many tokens, as trained (edits off) and edited, so a steered feature shows in what the model
        writes (0 = off, at most 256; the window slides, keeping ``T`` tokens).
    decode : callable, optional
        ``decode(list_of_ids) -> str`` for the continuations (e.g. ``tokenizer.decode`` or
        ``CharText.decode``); default: the ids separated by spaces.
    encode : callable, optional
        ``encode(text) -> ids`` (e.g. ``tokenizer(text, return_tensors="pt").input_ids`` or
        ``CharText.encode``): lets you type your own text in place of the shown input
        (:meth:`set_text`, or the text box of the input panel). Longer texts keep their last
        ``T`` tokens (the inputs' length).

    Notes
    -----
    Image inputs (``(n, C, H, W)``, e.g. ``NeuronWorld.images``) are shown as
    a composite or per channel; at a convolutional site the selected
    feature's (edited) activation map is overlaid on the image.

    Examples
    --------
    >>> model, data = sw.zoo.load("breast-cancer-mlp")   # doctest: +SKIP
    >>> lab = sw.FeatureLab(sw.Lens(model), inputs=data, site="hidden")
    """

    _esm = bundle("lab.js")
    _css = bundle("lab.css")

    site = traitlets.Unicode("").tag(sync=True)
    """str: Module path whose features are listed (read-only). Default ``""``."""

    feature_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Display name of each feature (unit or direction). Default ``[]``."""

    class_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Name of each model output. Default ``[]``."""

    n_inputs = traitlets.Int(0).tag(sync=True)
    """int: Number of inputs that can be picked. Default 0."""

    index = traitlets.Int(0).tag(sync=True)
    """int: Index of the input shown. Setting it re-runs the model. Default 0."""

    input_label = traitlets.Unicode("").tag(sync=True)
    """str: Caption of the shown input (e.g. its true label). Default ``""``."""

    ablated = traitlets.List(traitlets.Int()).tag(sync=True)
    """list of int: Features switched off (zero-ablated). Setting it re-runs the model. Default ``[]``."""

    steer = Array()
    """ndarray float32 (k,): Steering amount per feature (0 = none). Setting it re-runs the model. Default zeros."""

    steer_max = traitlets.Float(1.0).tag(sync=True)
    """float: Slider range is ``[-steer_max, steer_max]``. Default from the data."""

    baseline = Array()
    """ndarray float32 (C,): Displayed outputs with every edit off. Default ``None`` until the first run."""

    edited = Array()
    """ndarray float32 (C,): Displayed outputs with the edits on. Default ``None`` until the first run."""

    activations = Array()
    """ndarray float32 (k,): Each feature's clean coordinate for the shown input. Default ``None``."""

    cohort_class = traitlets.Int(0).tag(sync=True)
    """int: Output whose change the cohort view summarises. Default 0."""

    cohort_hist = Array()
    """ndarray int32 (bins,): How many inputs of the cohort change the ``cohort_class`` output by each bin's amount."""

    cohort_edges = Array()
    """ndarray float32 (bins + 1,): Bin edges of ``cohort_hist`` (symmetric around 0)."""

    cohort_flips = traitlets.Int(0).tag(sync=True)
    """int: Inputs of the cohort whose predicted (argmax) output changes under the edits. Default 0."""

    cohort_top = Array()
    """ndarray int32 (k,): Indices of the inputs most affected (largest absolute change), most affected first."""

    cohort_top_delta = Array()
    """ndarray float32 (k,): Their change of the ``cohort_class`` output."""

    cohort_done = traitlets.Int(0).tag(sync=True)
    """int: Rows of the cohort the ``cohort_*`` summaries cover for the current controls; equals
    ``cohort_total`` once complete (:meth:`wait`). While it is 0 they still hold the previous controls'
    summary (the view dims it). Partial summaries arrive in their own messages, without bumping ``rev``.
    Default 0."""

    cohort_total = traitlets.Int(0).tag(sync=True)
    """int: Rows in the cohort (0 when the cohort view is off, ``cohort_top=0``). Default 0."""

    image = Array()
    """ndarray float32 (C, H, W): The shown input when inputs are images (values in [0, 1]); ``None`` otherwise."""

    channel_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Names of the image channels. Default ``[]``."""

    selected = traitlets.Int(-1).tag(sync=True)
    """int: Feature whose spatial map and ground-truth correlations are shown (-1: none). Default -1."""

    spatial = Array()
    """ndarray float32 (h, w): Edited activation map of ``selected`` at a convolutional site; ``None`` otherwise."""

    positions = Array()
    """ndarray float32 (P,): Edited activation of ``selected`` per position at a sequence site; ``None`` otherwise."""

    input_tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Tokens of the shown input (``tokens=``); empty when none were given. Default ``[]``."""

    generated_baseline = traitlets.Unicode("").tag(sync=True)
    """str: Greedy continuation of the shown input with every edit off (``generate=``). Default ``""``."""

    generated_edited = traitlets.Unicode("").tag(sync=True)
    """str: Greedy continuation of the shown input with the edits on (``generate=``). Default ``""``."""

    text_input = traitlets.Bool(False).tag(sync=True)
    """bool: Whether text can be typed in place of the shown input (``encode=``). Default False."""

    text_edited = traitlets.Unicode("").tag(sync=True)
    """str: The text typed in place of the shown input; empty when it is the data set's. Default ``""``."""

    gallery = Array()
    """ndarray float32 (G, 3, t, t): RGB thumbnails of the gallery inputs (images only)."""

    gallery_indices = Array()
    """ndarray int32 (G,): Input index of each gallery thumbnail."""

    factor_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Names of the ground-truth factors (synthetic worlds). Default ``[]``."""

    gt_corr = Array()
    """ndarray float32 (K,): Correlation of ``selected`` (its clean coordinate over the cohort) with each factor."""

    record_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Field names of the editable record (tabular inputs with raw values). Default ``[]``."""

    record_units = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Unit of each record field where known (``""`` otherwise). Default ``[]``."""

    record = Array()
    """ndarray float32 (f,): Raw values (original units) of the shown record, as edited. ``None`` for other inputs."""

    record_levels = traitlets.Dict(traitlets.List(traitlets.Unicode())).tag(sync=True)
    """dict of str to list of str: Level names of each categorical record field (its raw value is the level's
    index); such fields show as a choice. Default ``{}``."""

    record_edited = traitlets.Bool(False).tag(sync=True)
    """bool: Whether the shown record differs from the data set's. Default False."""

    readout = traitlets.Unicode("softmax").tag(sync=True)
    """str: ``"softmax"``, ``"sigmoid"`` or ``"identity"``: how outputs are displayed. Default ``"softmax"``."""

    order_by = traitlets.Unicode("index").tag(sync=True)
    """str: Order of the feature list: ``"index"``, ``"activation"`` (most active on the shown input first) or
    ``"attribution"`` (by attribution to the shown prediction; see :meth:`order_features`). Default ``"index"``."""

    feature_order = Array()
    """ndarray int32 (k,): The feature list's order when ``order_by == "attribution"`` (most important first):
    gradient × activation to the predicted class, the top 16 re-ordered by their exact ablation effect.
    Recomputed when the shown input changes; ``None`` for the other orders (the view sorts those itself)."""

    order_target = traitlets.Int(-1).tag(sync=True)
    """int: The class ``feature_order`` attributes (the clean prediction of the shown input); -1 when none."""

    def __init__(
        self,
        lens: Lens,
        inputs: Any,
        site: str,
        *,
        basis: Basis | None = None,
        index: int = 0,
        class_names: list[str] | None = None,
        readout: str = "softmax",
        output: Callable[[Any], Any] | None = None,
        steer_max: float | None = None,
        cohort_class: int = 0,
        cohort_top: int = 10,
        cohort_chunk: int | None = None,
        ground_truth: Any = None,
        gallery: int = 24,
        captions: list[str] | None = None,
        tokens: list[list[str]] | None = None,
        generate: int = 0,
        decode: Callable[[list[int]], str] | None = None,
        encode: Callable[[str], Any] | None = None,
    ) -> None:
        if not isinstance(lens, Lens):
            raise TypeError(f"FeatureLab needs a superwidgets Lens as its first argument, got {type(lens).__name__}")
        if cohort_top < 0:
            raise ValueError(f"cohort_top must be >= 0, got {cohort_top}")
        if cohort_chunk is not None and (
            isinstance(cohort_chunk, bool) or not isinstance(cohort_chunk, (int, np.integer)) or cohort_chunk < 1
        ):
            raise ValueError(f"cohort_chunk must be a positive number of rows (or None), got {cohort_chunk!r}")
        self._chunk = None if cohort_chunk is None else int(cohort_chunk)
        if steer_max is not None:
            steer_max = check_steer_max(steer_max)
        if readout not in _READOUTS:
            raise ValueError(f"readout must be one of {_READOUTS}, got {readout!r}")
        self._lens = lens
        self._X, labels, label_names = _inputs(inputs)
        if captions is not None:
            captions = [str(c) for c in captions]
            if len(captions) != len(self._X):
                raise ValueError(f"captions must have one text per input ({len(self._X)}), got {len(captions)}")
        self._captions = captions
        self._tokens = check_tokens(tokens, len(self._X))
        if encode is not None and not callable(encode):
            raise TypeError(f"encode must be a function of a text, got {type(encode).__name__}")
        self._encode = encode
        self._texts: dict[int, tuple[str, list[str]]] = {}  # typed text of an input: (text, its tokens)
        factors, factor_names = _ground_truth(ground_truth if ground_truth is not None else inputs, len(self._X))
        self._labels = labels
        self._raw = _raw_table(inputs, self._X)
        self._overrides: dict[int, torch.Tensor] = {}
        self._x_cache: tuple[int, torch.Tensor] | None = None
        # the computation: one session (it adds the widget's two edits to the lens, last)
        self._session = LabSession(
            lens,
            self._X,
            site,
            basis=basis,
            index=index,
            readout=readout,
            output=output,
            cohort_class=cohort_class,
            cohort_top=cohort_top,
            generate=generate,
            decode=decode,
            factors=factors,
        )
        self._lock = threading.RLock()  # one publisher at a time: the kernel's thread or the cohort's
        self._thread: threading.Thread | None = None
        self._cohort_token: CancelToken | None = None
        self._cohort_complete = False
        self._ordered_for, self._ordered_x = -1, None  # the input the attribution order was computed for
        try:
            n_out = self._session.n_outputs
            class_names = class_names or label_names or [f"output {i}" for i in range(n_out)]
            if len(class_names) != n_out:
                raise ValueError(f"got {len(class_names)} class names for a model with {n_out} outputs")
            super().__init__()
            self._stop_previous(lens, site)
            self._replace_previous(lens, site)
            self._quiet = True
            try:
                feature_names = self._session.feature_names
                self.site = site
                self.readout = readout
                self.feature_names = feature_names
                self.class_names = list(class_names)
                self.n_inputs = len(self._X)
                self.text_input = encode is not None
                self.steer = np.zeros(len(feature_names), dtype=np.float32)
                self.steer_max = float(steer_max) if steer_max is not None else self._session.default_steer_max()
                self.cohort_class = int(cohort_class)
                self.cohort_total = len(self._X) if cohort_top > 0 else 0
                self.factor_names = factor_names
                if self._raw is not None:
                    self.record_names = list(self._raw[0])
                    units = getattr(inputs, "units", None)
                    self.record_units = [str(u) for u in units] if units else [""] * len(self.record_names)
                    levels = getattr(inputs, "categories", None) or {}
                    self.record_levels = {
                        str(k): [str(x) for x in v] for k, v in levels.items() if k in self.record_names
                    }
                if self._X.ndim == 4:
                    self.channel_names = list(
                        getattr(inputs, "channel_names", [f"channel {i}" for i in range(self._X.shape[1])])
                    )
                    idx = np.arange(min(int(gallery), len(self._X)), dtype=np.int32)
                    self.gallery_indices = idx
                    self.gallery = _thumbnails(self._X[torch.from_numpy(idx).long()])
            finally:
                self._quiet = False
            self._handle("request", self._on_request)
            self._handle("select", self._on_select)
            self._handle("record", self._on_record)
            self._handle("text", self._on_text)
            self._handle("order", self._on_order)
            with self._publish():
                self._apply(index, [], np.zeros(len(feature_names), dtype=np.float32))
        except Exception:
            for e in self._session.edits:  # a refused widget leaves nothing on the lens
                lens.remove(e)
            raise

    # ---------------------------------------------------------------- public
    @property
    def lens(self) -> Lens:
        """The lens the widget edits."""
        return self._lens

    @property
    def session(self) -> LabSession:
        """The analysis session that computes what the widget shows (same numbers from a script)."""
        return self._session

    @property
    def edits(self) -> list[Edit]:
        """The widget's own edits (ablation, steering) on the lens."""
        return self._session.edits

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the cohort summary of the current controls is complete (scripts, tests, snapshots).

        Parameters
        ----------
        timeout : float, optional
            Seconds to wait at most; default: as long as it takes.

        Returns
        -------
        bool
            True when no cohort computation is left running (complete, or failed: see
            :attr:`error`); False when ``timeout`` ran out first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            t = self._thread
            if t is None:
                return True
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                return False
            if self._thread is t:
                return True

    def close(self) -> None:
        """Stop the cohort computation and close the widget (its edits stay on the lens)."""
        self._stop_cohort()
        super().close()

    def order_features(self, by: str = "attribution") -> None:
        """Order the feature list: ``"index"``, ``"activation"`` or ``"attribution"``.

        ``"attribution"`` asks the analysis layer (:meth:`LabSession.rank
        <superwidgets.analysis.LabSession.rank>`) for the features the shown prediction depends on
        most — one forward and one backward, then an exact ablation sweep of the top 16 — and keeps
        that order for each input shown next. The view's order menu does the same.

        Raises
        ------
        ValueError
            An unknown order (the widget's error area says so too).
        """
        try:
            with self._publish():
                self._order(by)
        except Exception as exc:
            self._show_error(exc)
            raise

    def _order(self, by: Any) -> None:
        if by not in ("index", "activation", "attribution"):
            raise ValueError(f"order must be 'index', 'activation' or 'attribution', got {by!r}")
        if by == "attribution":
            ranking = self._session.rank("attribution")
            self.feature_order = ranking.order.astype(np.int32)
            self.order_target = -1 if ranking.target is None else int(ranking.target)
        else:
            self.feature_order = None
            self.order_target = -1
        self.order_by = by

    def _on_order(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        self._order(content.get("by"))

    def add_direction(self, name: str, vector: Any) -> None:
        """Add a named direction to a ``Directions`` basis (the list grows by one).

        Raises
        ------
        ValueError
            Wrong length, NaN/Inf, or the widget uses the neuron basis. The
            error also shows in the widget's error area; nothing changes.
        """
        try:
            basis = self._session.basis
            if not isinstance(basis, Directions):
                raise ValueError("add_direction needs a FeatureLab built with basis=sw.Directions(...)")
            width = self._session.width
            v = as_vector(vector, "direction").flatten()
            if v.numel() != width:
                raise ValueError(
                    f"direction {name!r} has length {v.numel()} but site {self.site!r} has {width} features"
                )
            new = Directions(torch.cat([basis.vectors(width), v[None]]), [*self.feature_names, str(name)])
        except Exception as exc:
            self._show_error(exc)
            raise
        with self._publish():
            self._session.set_basis(new)
            self.feature_names = new.names(self._session.width)
            self._apply(self.index, list(self.ablated), np.append(self.steer, np.float32(0)))

    def reset(self) -> None:
        """Switch every feature back on and every slider to 0."""
        with self._publish():
            self._apply(self.index, [], np.zeros(len(self.feature_names), dtype=np.float32))

    @traitlets.validate("steer_max")
    def _valid_steer_max(self, proposal: Any) -> float:
        try:
            return check_steer_max(proposal["value"])
        except ValueError as exc:
            raise traitlets.TraitError(str(exc)) from None

    def refresh(self) -> None:
        """Re-run the model (e.g. after editing the lens or the model's weights from Python)."""
        self._session.invalidate()
        with self._publish():
            self._apply(self.index, list(self.ablated), self.steer)

    #: Features beyond this many get no precomputed switch in a static snapshot (file size).
    SNAPSHOT_SWITCHES = 64

    def _snapshot_replies(self) -> list[dict[str, Any]]:
        """Each feature's on/off switch and "reset edits" work in a static snapshot of this input.

        From the saved state (input, switched-off features, steering), flipping any one switch (up to
        :attr:`SNAPSHOT_SWITCHES` features), flipping it back, and "reset edits" are precomputed, each
        with its complete cohort summary (computed here, not in the background).
        """
        import base64

        from .snapshot import precompute_replies

        self.wait()  # the saved state carries the complete cohort of the current controls
        index, saved = int(self.index), sorted(int(i) for i in self.ablated)
        steer = np.asarray(self.steer, dtype=np.float32).reshape(-1).copy()
        zero = np.zeros_like(steer)

        def case(ablated: list[int], vec: np.ndarray) -> tuple[dict[str, Any], Any]:
            match = {
                "type": "request",
                "index": index,
                "ablated": ablated,
                "__buffers__": [base64.b64encode(vec.tobytes()).decode("ascii")],
            }
            return match, lambda: self._apply(index, ablated, vec, background=False)

        flips = [sorted(set(saved) ^ {i}) for i in range(min(len(steer), self.SNAPSHOT_SWITCHES))]
        cases = [case(saved, steer), *(case(a, steer) for a in flips), case([], zero)]
        with self._lock:
            return precompute_replies(self, cases, lambda: self._apply(index, saved, steer, background=False))

    def to_figure(self) -> Any:
        """A matplotlib figure of the current state (predictions and features).

        For image inputs a third panel shows the image (RGB composite of its channels) and, when a
        feature is selected at a convolutional site, its edited activation map as contours.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        k = len(self.feature_names)
        size = (10, max(3.0, 0.25 * k + 1))
        if self.image is None:
            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=size, width_ratios=[1, 1.3])
        else:
            fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(size[0] + 3.5, size[1]), width_ratios=[1, 1, 1.3])
            self._image_panel(ax0)
        y = np.arange(len(self.class_names))
        ax1.barh(y - 0.2, self.baseline, height=0.4, label="baseline", color="#9e9e9e")
        ax1.barh(y + 0.2, self.edited, height=0.4, label="edited", color="#1976d2")
        for i, (b, e) in enumerate(zip(self.baseline, self.edited, strict=True)):
            ax1.text(max(b, e), i, f"  Δ {e - b:+.3f}", va="center", fontsize=8)
        ax1.set_yticks(y, self.class_names)
        ax1.invert_yaxis()
        ax1.set_title(f"{self.input_label}")
        ax1.legend(loc="lower right", fontsize=8)
        yk = np.arange(k)
        off = set(self.ablated)
        colors = ["#e53935" if i in off else "#607d8b" for i in range(k)]
        ax2.barh(yk, self.activations, color=colors, height=0.7, label="activation")
        steer = self.steer
        ax2.scatter(steer, yk, marker="|", s=120, color="#ff9800", label="steer", zorder=3)
        ax2.set_yticks(yk, self.feature_names, fontsize=7)
        ax2.invert_yaxis()
        ax2.axvline(0, color="k", lw=0.5)
        ax2.set_title(f"site {self.site!r} (red = ablated)")
        ax2.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        return fig

    def _image_panel(self, ax: Any) -> None:
        """The shown image as an RGB composite, with the selected feature's map as contours."""
        img = np.asarray(self.image, dtype=np.float32)
        rgb = _thumbnails(torch.from_numpy(img)[None], size=img.shape[-1])[0].transpose(1, 2, 0)
        ax.imshow(rgb, interpolation="nearest")
        title = self.input_label
        if self.spatial is not None and self.selected >= 0:
            m = np.asarray(self.spatial, dtype=np.float32)
            h, w = img.shape[-2:]
            up = torch.nn.functional.interpolate(torch.from_numpy(m)[None, None], size=(h, w), mode="bilinear")[0, 0]
            if float(up.max() - up.min()) > 0:
                ax.contour(up.numpy(), levels=4, cmap="magma", linewidths=1.0)
            title += f"\n{self.feature_names[self.selected]}: map (contours)"
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])

    # ---------------------------------------------------------------- observers
    @traitlets.observe("index", "ablated", "steer")
    def _on_python_change(self, change: dict[str, Any]) -> None:
        def run() -> None:
            index = change["new"] if change["name"] == "index" else self.index
            ablated = change["new"] if change["name"] == "ablated" else list(self.ablated)
            steer = change["new"] if change["name"] == "steer" else self.steer
            self._apply(index, ablated, steer)

        self._guard(change, run)

    @traitlets.observe("order_by")
    def _on_python_order(self, change: dict[str, Any]) -> None:
        self._guard(change, lambda: self._order(change["new"]))

    def select(self, feature: int) -> None:
        """Show ``feature``'s spatial map and ground-truth correlations (``-1`` clears)."""
        try:
            with self._publish():
                self._select(feature)
        except Exception as exc:
            self._show_error(exc)
            raise

    def set_record(self, values: dict[str, Any], *, partial: bool = False) -> None:
        """Edit the shown record in its original units and re-run the model (baseline and edited).

        Parameters
        ----------
        values : dict
            ``{field: value}``. Every field is required unless ``partial=True``. A categorical
            field (see :attr:`record_levels`) takes its level name or the level's index.
        partial : bool
            Change only the given fields.

        Raises
        ------
        ValueError
            Unknown fields (with close matches), missing fields, non-numeric or
            non-finite values, unknown levels of a categorical field. The error also shows in
            the widget; nothing changes.
        """
        try:
            with self._publish():
                self._set_record(values, partial)
        except Exception as exc:
            self._show_error(exc)
            raise

    def set_text(self, text: str) -> None:
        """Type ``text`` in place of the shown input and re-run (needs ``encode=``).

        Raises
        ------
        ValueError
            No ``encode=``, an empty text, or what ``encode`` refused (e.g. unknown characters). The
            error also shows in the widget; nothing changes.
        """
        try:
            with self._publish():
                self._set_text(text)
        except Exception as exc:
            self._show_error(exc)
            raise

    def reset_text(self) -> None:
        """Bring back the data set's input in place of typed text."""
        self._texts.pop(self.index, None)
        self._overrides.pop(self.index, None)
        self._x_cache = None
        self.refresh()

    def _on_text(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        if content.get("reset"):
            self._texts.pop(self.index, None)
            self._overrides.pop(self.index, None)
            self._x_cache = None
            self._apply(self.index, list(self.ablated), self.steer)
            return
        self._set_text(content.get("text"))

    def _set_text(self, text: Any) -> None:
        if self._encode is None:
            raise ValueError("typing text needs encode=, e.g. FeatureLab(..., encode=tokenizer_or_corpus.encode)")
        if not isinstance(text, str) or not text:
            raise ValueError("type some text (a non-empty string)")
        try:
            ids = self._encode(text)
        except Exception as exc:
            raise ValueError(f"encode could not read the text: {exc}") from exc
        ids = torch.as_tensor(getattr(ids, "input_ids", ids)).reshape(1, -1).to(self._X.dtype)
        if ids.shape[1] == 0:
            raise ValueError("the text encodes to no tokens")
        ids = ids[:, -self._X.shape[1] :]
        dec = self._session.decode
        tokens = [dec([int(i)]) if dec is not None else str(int(i)) for i in ids[0]]
        old = (self._overrides.get(self.index), self._texts.get(self.index))
        self._overrides[self.index] = ids
        self._texts[self.index] = (text, tokens)
        self._x_cache = None
        try:
            self._apply(self.index, list(self.ablated), self.steer)
        except Exception:
            for store, value in zip((self._overrides, self._texts), old, strict=True):
                if value is None:
                    store.pop(self.index, None)
                else:
                    store[self.index] = value  # type: ignore[index]
            self._x_cache = None
            raise

    def reset_record(self) -> None:
        """Restore the shown record to the data set's values."""
        self._overrides.pop(self.index, None)
        self._x_cache = None
        self.refresh()

    def _on_record(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        if content.get("reset"):
            self._overrides.pop(self.index, None)
            self._x_cache = None
            self._apply(self.index, list(self.ablated), self.steer)
            return
        values = content.get("values")
        if not isinstance(values, dict):
            raise ValueError("a record edit needs values={field: number}")
        self._set_record(values, partial=True)

    def _set_record(self, values: Any, partial: bool) -> None:
        if self._raw is None:
            raise ValueError(
                "these inputs have no raw record (pass a data set with raw values, e.g. sw.data.breast_cancer())"
            )
        names, _, mean, std = self._raw
        if not isinstance(values, dict):
            raise ValueError(f"values must be a dict of field -> number, got {type(values).__name__}")
        unknown = [k for k in values if k not in names]
        if unknown:
            import difflib

            hints = {k: difflib.get_close_matches(str(k), names, n=2) for k in unknown}
            detail = "; ".join(
                f"{k!r}" + (f" (did you mean {' or '.join(map(repr, h))}?)" if h else "") for k, h in hints.items()
            )
            raise ValueError(f"unknown record fields: {detail}")
        missing = [n for n in names if n not in values]
        if missing and not partial:
            raise ValueError(
                f"the record is missing {len(missing)} fields ({missing[:3]}...); pass all fields or partial=True"
            )
        row = self._current_raw()
        for k, v in values.items():
            levels = self.record_levels.get(k)
            if levels is not None:
                if isinstance(v, str) and v in levels:
                    v = levels.index(v)
                if (
                    isinstance(v, bool)
                    or not isinstance(v, int | float | np.integer | np.floating)
                    or v not in range(len(levels))
                ):
                    raise ValueError(f"field {k!r} is categorical: pass one of {levels} (or its index), got {v!r}")
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"field {k!r} must be a number, got {v!r}") from None
            if not np.isfinite(f):
                raise ValueError(f"field {k!r} must be finite, got {f}")
            row[names.index(k)] = f
        x = torch.from_numpy(((row - mean) / std).astype(np.float32))[None, :]
        self._overrides[self.index] = x.to(self._X.dtype)
        self._x_cache = None
        self._apply(self.index, list(self.ablated), self.steer)

    def _current_raw(self) -> np.ndarray:
        _, raw, mean, std = self._raw  # type: ignore[misc]
        if self.index in self._overrides:
            row = self._overrides[self.index][0].double().numpy() * std + mean
            for name in self.record_levels:  # level indices survive the float32 round trip exactly
                i = self.record_names.index(name)
                row[i] = np.round(row[i])
            return row
        return raw[self.index].astype(np.float64).copy()

    def _on_select(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        self._select(content.get("feature", -1))

    def _select(self, feature: Any) -> None:
        self._write_views(self._session.select(feature))

    def _on_request(self, content: dict[str, Any], buffers: list[Any]) -> None:
        index = content.get("index", self.index)
        ablated = content.get("ablated", list(self.ablated))
        steer = np.frombuffer(buffers[0], dtype=np.float32).copy() if buffers else self.steer
        self._apply(index, ablated, steer)

    # ---------------------------------------------------------------- the session
    def _apply(self, index: Any, ablated: Any, steer: Any, *, background: bool = True) -> None:
        """Validate the controls, update the shown input (one session call), write its traits, then
        start the cohort (in a background thread, or here when ``background`` is False).

        Bad controls change nothing; a failed run leaves the edits as they were (the session
        restores them) and the cohort of those controls is computed again if it was not complete.
        """
        self._check_current()
        session = self._session
        index, ablated, steer = session.check_controls(index, ablated, steer)
        x = self._x(index)
        try:
            result = session.update(index, ablated, steer, x=x)
        except Exception:
            if not self._cohort_complete:
                self._start_cohort(background)
            raise
        self.index = result.index
        self.ablated = list(result.ablated)
        self.steer = result.steer
        self.baseline = result.baseline
        self.edited = result.edited
        self.activations = result.activations
        self.input_label = self._label(index)
        typed = self._texts.get(index)
        self.input_tokens = typed[1] if typed else (self._tokens[index] if self._tokens is not None else [])
        self.text_edited = typed[0] if typed else ""
        if self._X.ndim == 4:
            self.image = _as_image(self._X[index])
        if self._raw is not None:
            self.record = self._current_raw().astype(np.float32)
            self.record_edited = index in self._overrides
        self._write_views(result)
        if self.order_by == "attribution" and (result.index != self._ordered_for or x is not self._ordered_x):
            self._order("attribution")  # the order follows the shown input (not its edits)
        self._ordered_for, self._ordered_x = result.index, x
        if session.generate:
            self.generated_baseline, self.generated_edited = result.generated_baseline, result.generated_edited
        self._start_cohort(background)

    def _write_views(self, result: LabResult) -> None:
        """The selection-dependent traits of a result."""
        self.selected = result.selected
        self.spatial = result.spatial
        self.positions = result.positions
        self.gt_corr = result.gt_corr

    def _write_cohort(self, summary: CohortSummary) -> None:
        self.cohort_hist = summary.hist
        self.cohort_edges = summary.edges
        self.cohort_flips = summary.flips
        self.cohort_top = summary.top
        self.cohort_top_delta = summary.top_delta
        self.cohort_done = summary.done

    def _start_cohort(self, background: bool = True) -> None:
        """Compute the cohort of the current controls: chunk by chunk in a thread, or here at once.

        Called inside the update's publish: ``cohort_done`` goes to 0 in the same message (the view
        dims the previous summary); each partial follows in its own message. The session's token
        of the current state cancels the job when the controls change.
        """
        session = self._session
        self._cohort_complete = False
        if session.cohort_top == 0:
            return
        token = session.token
        self._cohort_token = token
        quick = session.cohort_seconds is not None and session.cohort_seconds < INLINE_COHORT_SECONDS
        if not background or quick:  # a cohort of a few ms: in the same message, no thread to start
            last = None
            for part in session.cohort(chunk_rows=len(self._X), token=token):
                last = part
            if last is not None:
                self._write_cohort(last)
                self._cohort_complete = last.complete
            return
        self.cohort_done = 0
        thread = threading.Thread(target=self._cohort_job, args=(token,), name="superwidgets-lab-cohort", daemon=True)
        self._thread = thread
        thread.start()

    def _cohort_job(self, token: CancelToken) -> None:
        """The background cohort: publishes each partial summary unless a newer state took over."""

        def stale() -> bool:
            return token.cancelled or self._replaced or self.comm is None

        try:
            for part in self._session.cohort(chunk_rows=self._chunk, token=token):
                with self._lock:  # the update that cancels the token holds it: no stale partial gets out
                    if stale():
                        return
                    with self.hold_sync():  # one message; no rev bump: the view's request state is untouched
                        self._write_cohort(part)
                    self._cohort_complete = part.complete
        except LensClosedError:  # the lens was closed or replaced: nothing left to show
            return
        except Exception as exc:  # shown in the error area; the shown input's results stay
            with self._lock:
                if not stale():
                    with self.hold_sync():
                        self.error = f"cohort summary failed: {_message(exc)}"

    def _stop_cohort(self) -> None:
        """Cancel the running cohort (it stops at its next chunk and publishes nothing more)."""
        lock = self.__dict__.get("_lock")
        if lock is None:  # a constructor that failed early: nothing started
            return
        with lock:
            if self._cohort_token is not None:
                self._cohort_token.cancel()

    def _stop_previous(self, lens: Lens, site: str) -> None:
        """Stop the cohort thread of the FeatureLab this one replaces (same lens and site)."""
        ref = _base._OWNERS.get((type(self).__name__, id(lens), str(site)))
        prev = ref() if ref is not None else None
        if isinstance(prev, FeatureLab) and prev is not self:
            prev._stop_cohort()

    def _show_error(self, exc: BaseException) -> None:
        """Show ``exc`` in the error area (a Python-side action that failed); nothing else changes."""
        with self._lock, self.hold_sync():
            self.error = str(exc)
            self.rev += 1

    # Every publisher holds the widget's lock: the kernel's thread (requests, trait sets, methods) and
    # the cohort thread never interleave their messages, and a cancelled partial is never sent.
    @contextlib.contextmanager
    def _publish(self, seq: int | None = None, origin: str = "") -> Iterator[None]:
        with self._lock, super()._publish(seq=seq, origin=origin):
            yield

    def _dispatch(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        with self._lock:
            super()._dispatch(_widget, content, buffers)

    def _guard(self, change: dict[str, Any], fn: Callable[[], None]) -> None:
        with self._lock:
            super()._guard(change, fn)

    def _x(self, index: int) -> torch.Tensor:
        # one tensor object per shown input, so the lens's baseline cache hits
        if self._x_cache is None or self._x_cache[0] != index:
            self._x_cache = (index, self._overrides.get(index, self._X[index : index + 1]))
        return self._x_cache[1]

    def _label(self, index: int) -> str:
        if index in self._texts:
            return f"input {index} · typed: {self._texts[index][0]}"
        parts = [f"input {index}"]
        if self._captions is not None:
            parts.append(self._captions[index])
        if self._labels is not None:
            parts.append(f"true: {self._labels[index]}")
        return " · ".join(parts)


def _as_image(x: torch.Tensor) -> np.ndarray:
    img = x.detach().float().cpu().numpy()
    lo, hi = float(img.min()), float(img.max())
    if lo < 0 or hi > 1:  # standardised images: rescale for display
        img = (img - lo) / (hi - lo + 1e-12)
    return img.astype(np.float32)
