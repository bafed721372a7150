"""FeatureLab: toggle and steer the features of one site, see predictions change live."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import traitlets

from ..data.inputs import as_inputs as _inputs
from ..engine import Ablate, Directions, Edit, Lens, Neurons, Steer
from ..engine.bases import Basis, as_vector
from ..engine.edits import coordinates
from ._shared import (
    MAX_CLASSES,
    _corr,
    _ground_truth,
    _raw_table,
    _thumbnails,
    check_output,
    check_tokens,
    count_classes,
    pick_prediction,
    prediction_of,
)
from .base import Array, WidgetBase, bundle

__all__ = ["MAX_CLASSES", "FeatureLab", "prediction_of"]

#: The live FeatureLab of each (lens, site): a new one replaces the old one's edits.
_READOUTS = ("softmax", "sigmoid", "identity")


def _check_steer_max(value: Any) -> float:
    """``steer_max`` as a positive finite float, or a ValueError saying what to pass."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"steer_max must be a positive number (the slider's range), got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"steer_max must be a positive, finite number (the slider's range), got {v}")
    return v


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
        top-affected inputs). Every update runs the edited model on all
        inputs (resumed from the edited site); only summaries travel.
    cohort_top : int
        How many most-affected inputs to list (0 switches the cohort view off).
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
        self._cohort_k = int(cohort_top)
        if steer_max is not None:
            steer_max = _check_steer_max(steer_max)
        if readout not in _READOUTS:
            raise ValueError(f"readout must be one of {_READOUTS}, got {readout!r}")
        self._output = check_output(output)
        self._lens = lens
        self._X, labels, label_names = _inputs(inputs)
        if captions is not None:
            captions = [str(c) for c in captions]
            if len(captions) != len(self._X):
                raise ValueError(f"captions must have one text per input ({len(self._X)}), got {len(captions)}")
        self._captions = captions
        self._tokens = check_tokens(tokens, len(self._X))
        if isinstance(generate, bool) or not isinstance(generate, (int, np.integer)) or not 0 <= generate <= 256:
            raise ValueError(f"generate must be a number of tokens in 0..256, got {generate!r}")
        if generate and (self._X.ndim != 2 or self._X.is_floating_point()):
            raise ValueError(
                f"generate= continues token sequences: inputs must be integer ids (n, T), got {tuple(self._X.shape)} "
                f"{self._X.dtype}"
            )
        if decode is not None and not callable(decode):
            raise TypeError(f"decode must be a function of a list of token ids, got {type(decode).__name__}")
        if encode is not None and not callable(encode):
            raise TypeError(f"encode must be a function of a text, got {type(encode).__name__}")
        self._generate, self._decode, self._encode = int(generate), decode, encode
        self._clean_text: tuple[torch.Tensor, int, str] | None = None  # (input, its version, as-trained text)
        self._texts: dict[int, tuple[str, list[str]]] = {}  # typed text of an input: (text, its tokens)
        self._factors, factor_names = _ground_truth(ground_truth if ground_truth is not None else inputs, len(self._X))
        self._cohort_coords: np.ndarray | None = None
        self._labels = labels
        self._raw = _raw_table(inputs, self._X)
        self._overrides: dict[int, torch.Tensor] = {}
        self._basis = basis if basis is not None else Neurons()
        self._x_cache: tuple[int, torch.Tensor] | None = None
        x0 = self._x(0 if not 0 <= index < len(self._X) else index)
        shape = lens.activations(x0, site)[site].shape
        width = int(shape[1] if len(shape) == 4 else shape[-1])
        feature_names = self._basis.names(width)
        self._width = width
        n_out = count_classes(self._prediction(lens.run(x0).baseline))
        class_names = class_names or label_names or [f"output {i}" for i in range(n_out)]
        if len(class_names) != n_out:
            raise ValueError(f"got {len(class_names)} class names for a model with {n_out} outputs")
        super().__init__()
        self._replace_previous(lens, site)
        self._ablate: Edit = lens.edit(site, Ablate([0]), basis=self._basis, enabled=False, name="FeatureLab ablate")
        self._steer: Edit = lens.edit(
            site, Steer(feature=0, alpha=0.0), basis=self._basis, enabled=False, name="FeatureLab steer"
        )
        self._quiet = True
        try:
            self.site = site
            self.readout = readout
            self.feature_names = feature_names
            self.class_names = list(class_names)
            self.n_inputs = len(self._X)
            self.text_input = encode is not None
            self.steer = np.zeros(len(feature_names), dtype=np.float32)
            self.steer_max = float(steer_max) if steer_max is not None else self._default_steer_max(site)
            if not 0 <= cohort_class < n_out:
                raise ValueError(f"cohort_class {cohort_class} is out of range; the model has {n_out} outputs")
            self.cohort_class = int(cohort_class)
            self.factor_names = factor_names
            if self._raw is not None:
                self.record_names = list(self._raw[0])
                units = getattr(inputs, "units", None)
                self.record_units = [str(u) for u in units] if units else [""] * len(self.record_names)
                levels = getattr(inputs, "categories", None) or {}
                self.record_levels = {str(k): [str(x) for x in v] for k, v in levels.items() if k in self.record_names}
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
        with self._publish():
            self._apply(index, [], np.zeros(len(feature_names), dtype=np.float32))

    # ---------------------------------------------------------------- public
    @property
    def lens(self) -> Lens:
        """The lens the widget edits."""
        return self._lens

    @property
    def edits(self) -> list[Edit]:
        """The widget's own edits (ablation, steering) on the lens."""
        return [self._ablate, self._steer]

    def add_direction(self, name: str, vector: Any) -> None:
        """Add a named direction to a ``Directions`` basis (the list grows by one).

        Raises
        ------
        ValueError
            Wrong length, NaN/Inf, or the widget uses the neuron basis. The
            error also shows in the widget's error area; nothing changes.
        """
        try:
            if not isinstance(self._basis, Directions):
                raise ValueError("add_direction needs a FeatureLab built with basis=sw.Directions(...)")
            v = as_vector(vector, "direction").flatten()
            if v.numel() != self._width:
                raise ValueError(
                    f"direction {name!r} has length {v.numel()} but site {self.site!r} has {self._width} features"
                )
            new = Directions(torch.cat([self._basis.vectors(self._width), v[None]]), [*self.feature_names, str(name)])
        except Exception as exc:
            with self.hold_sync():
                self.error = str(exc)
                self.rev += 1
            raise
        self._basis = new
        self._ablate.basis = self._steer.basis = new
        self._ablate._compiled.clear()
        self._steer._compiled.clear()
        with self._publish():
            self.feature_names = new.names(self._width)
            self._apply(self.index, list(self.ablated), np.append(self.steer, np.float32(0)))

    def reset(self) -> None:
        """Switch every feature back on and every slider to 0."""
        with self._publish():
            self._apply(self.index, [], np.zeros(len(self.feature_names), dtype=np.float32))

    @traitlets.validate("steer_max")
    def _valid_steer_max(self, proposal: Any) -> float:
        try:
            return _check_steer_max(proposal["value"])
        except ValueError as exc:
            raise traitlets.TraitError(str(exc)) from None

    def refresh(self) -> None:
        """Re-run the model (e.g. after editing the lens from Python)."""
        with self._publish():
            self._apply(self.index, list(self.ablated), self.steer)

    #: Features beyond this many get no precomputed switch in a static snapshot (file size).
    SNAPSHOT_SWITCHES = 64

    def _snapshot_replies(self) -> list[dict[str, Any]]:
        """Each feature's on/off switch and "reset edits" work in a static snapshot of this input.

        From the saved state (input, switched-off features, steering), flipping any one switch (up to
        :attr:`SNAPSHOT_SWITCHES` features), flipping it back, and "reset edits" are precomputed.
        """
        import base64

        from .snapshot import precompute_replies

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
            return match, lambda: self._apply(index, ablated, vec)

        flips = [sorted(set(saved) ^ {i}) for i in range(min(len(steer), self.SNAPSHOT_SWITCHES))]
        cases = [case(saved, steer), *(case(a, steer) for a in flips), case([], zero)]
        return precompute_replies(self, cases, lambda: self._apply(index, saved, steer))

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

    def select(self, feature: int) -> None:
        """Show ``feature``'s spatial map and ground-truth correlations (``-1`` clears)."""
        with self._publish():
            self._select(feature)

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
            with self.hold_sync():
                self.error = str(exc)
                self.rev += 1
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
            with self.hold_sync():
                self.error = str(exc)
                self.rev += 1
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
        dec = self._decode
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
                if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating) or v not in range(
                    len(levels)
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
        k = len(self.feature_names)
        if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)) or not -1 <= int(feature) < k:
            raise ValueError(f"feature must be an index in 0..{k - 1} (or -1 for none), got {feature!r}")
        self.selected = int(feature)
        self._views(self._x(self.index))

    def _views(self, x: torch.Tensor) -> None:
        """Selection-dependent views: spatial map (conv sites) and ground-truth correlations."""
        f = self.selected
        if f < 0:
            self.spatial = None
            self.positions = None
            self.gt_corr = None
            return
        acts = self._lens.activations(x, self.site, edited=True)[self.site]
        self.spatial = self.positions = None
        if acts.ndim in (3, 4):
            m = self._features_last(acts)[0][..., f].numpy().astype(np.float32)  # (h, w) or (positions,)
            if acts.ndim == 4:
                self.spatial = m
            else:
                self.positions = m
        if self._factors is not None:
            coords = self._all_coordinates()[:, f]
            self.gt_corr = _corr(coords, self._factors)

    def _all_coordinates(self) -> np.ndarray:
        """Clean coordinates of every feature for every input (spatially averaged), cached."""
        if self._cohort_coords is None:
            parts = [
                self._project(self._lens.activations(self._X[i : i + 1024], self.site)[self.site])
                for i in range(0, len(self._X), 1024)
            ]
            self._cohort_coords = np.concatenate(parts)
        return self._cohort_coords

    def _on_request(self, content: dict[str, Any], buffers: list[Any]) -> None:
        index = content.get("index", self.index)
        ablated = content.get("ablated", list(self.ablated))
        steer = np.frombuffer(buffers[0], dtype=np.float32).copy() if buffers else self.steer
        self._apply(index, ablated, steer)

    # ---------------------------------------------------------------- engine
    def _apply(self, index: Any, ablated: Any, steer: Any) -> None:
        """Validate the controls, run the model, write results; restores edits on failure."""
        self._check_current()
        k = len(self.feature_names)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(f"index must be an integer, got {index!r}")
        index = int(index)
        if not 0 <= index < len(self._X):
            raise ValueError(f"index {index} is out of range; pick 0..{len(self._X) - 1}")
        try:
            ablated = sorted({int(i) for i in ablated})
        except (TypeError, ValueError):
            raise ValueError(f"ablated must be a list of feature indices, got {ablated!r}") from None
        bad = [i for i in ablated if not 0 <= i < k]
        if bad:
            raise ValueError(f"ablated features {bad} are out of range; this site has {k} features (0..{k - 1})")
        steer = np.asarray(steer, dtype=np.float32).reshape(-1)
        if steer.shape != (k,):
            raise ValueError(f"steer must have one value per feature ({k}), got {steer.shape[0]}")
        if not np.isfinite(steer).all():
            raise ValueError("steer contains NaN or Inf; slider values must be finite")
        x = self._x(index)
        old = (self._ablate.op, self._ablate.enabled, self._steer.op, self._steer.enabled)
        try:
            if ablated:
                self._ablate.op = Ablate(ablated)
            self._ablate.enabled = bool(ablated)
            vecs = self._basis.vectors(self._width)
            direction = torch.from_numpy(steer) if vecs is None else torch.from_numpy(steer) @ vecs
            self._steer.op = Steer(direction=direction, alpha=1.0)
            self._steer.enabled = bool(np.any(steer != 0))
            result = self._lens.run(x)
            acts = self._lens.activations(x, self.site)[self.site]
            cohort = self._lens.run(self._X) if self._cohort_k > 0 else None
            written = (self._continue_clean(x), self._continue(x, edited=True)) if self._generate else None
        except Exception:
            self._ablate.op, self._ablate.enabled, self._steer.op, self._steer.enabled = old
            raise
        self.index = index
        self.ablated = ablated
        self.steer = steer
        self.baseline = self._readout(result.baseline)
        self.edited = self._readout(result.edited)
        self.activations = self._coordinates(acts)
        self.input_label = self._label(index)
        typed = self._texts.get(index)
        self.input_tokens = typed[1] if typed else (self._tokens[index] if self._tokens is not None else [])
        self.text_edited = typed[0] if typed else ""
        if self._X.ndim == 4:
            self.image = _as_image(self._X[index])
        if self._raw is not None:
            self.record = self._current_raw().astype(np.float32)
            self.record_edited = index in self._overrides
        self._views(x)
        if written is not None:
            self.generated_baseline, self.generated_edited = written
        if cohort is not None:
            self._summarise(cohort)

    def _continue_clean(self, x: torch.Tensor) -> str:
        """The as-trained continuation of the shown input, computed once per input (edits do not change it)."""
        cached = self._clean_text
        if cached is None or cached[0] is not x or cached[1] != x._version:  # holds x: no identity reuse
            cached = self._clean_text = (x, x._version, self._continue(x, edited=False))
        return cached[2]

    def _continue(self, x: torch.Tensor, *, edited: bool) -> str:
        """Greedy continuation of ``x`` (1, T) by ``generate`` tokens, edits on or off, decoded."""
        import contextlib

        seq, ids = x, []
        window = x.shape[1]
        with self._lens.off() if not edited else contextlib.nullcontext(), torch.no_grad():
            for _ in range(self._generate):
                nxt = int(prediction_of(self._lens.model(seq[:, -window:]))[0].reshape(-1).argmax())
                ids.append(nxt)
                seq = torch.cat([seq, torch.tensor([[nxt]], dtype=seq.dtype, device=seq.device)], 1)
        return self._decode(ids) if self._decode is not None else " ".join(map(str, ids))

    def _summarise(self, result: Any) -> None:
        """Cohort summaries: histogram of the change, flips, most affected inputs (only these travel)."""
        base = self._readout_rows(result.baseline)
        edit = self._readout_rows(result.edited)
        delta = (edit - base)[:, self.cohort_class]
        lim = float(np.abs(delta).max())
        lim = 1e-6 if lim == 0 else lim * 1.0001
        hist, edges = np.histogram(delta, bins=31, range=(-lim, lim))
        k = min(self._cohort_k, delta.shape[0])
        top = np.argsort(-np.abs(delta), kind="stable")[:k]
        self.cohort_hist = hist.astype(np.int32)
        self.cohort_edges = edges.astype(np.float32)
        self.cohort_flips = int((base.argmax(1) != edit.argmax(1)).sum())
        self.cohort_top = top.astype(np.int32)
        self.cohort_top_delta = delta[top].astype(np.float32)

    def _prediction(self, out: Any) -> torch.Tensor:
        """The prediction tensor of a model output (``output=`` or :func:`prediction_of`), checked."""
        return pick_prediction(out, self._output)

    def _readout_rows(self, out: Any) -> np.ndarray:
        t = self._prediction(out).detach().float()
        t = t.reshape(t.shape[0], -1)
        if self.readout == "softmax":
            t = torch.softmax(t, 1)
        elif self.readout == "sigmoid":
            t = torch.sigmoid(t)
        return t.cpu().numpy()

    def _x(self, index: int) -> torch.Tensor:
        # one tensor object per shown input, so the lens's baseline cache hits
        if self._x_cache is None or self._x_cache[0] != index:
            self._x_cache = (index, self._overrides.get(index, self._X[index : index + 1]))
        return self._x_cache[1]

    def _readout(self, out: Any) -> np.ndarray:
        """Displayed values of a single-input output."""
        return self._readout_rows(out)[0].astype(np.float32)

    def _coordinates(self, acts: torch.Tensor) -> np.ndarray:
        """Clean coordinate of each feature for the shown input (spatially averaged)."""
        return self._project(acts)[0].astype(np.float32)

    def _features_last(self, acts: torch.Tensor) -> torch.Tensor:
        """Feature coordinates at every position, features last: ``(n, k)``, ``(n, H, W, k)`` or ``(n, P, k)``.

        The engine's coordinates in the basis — the values its edits change: units for ``Neurons``,
        the SAE's codes for an ``SAE`` basis, span coordinates for ``Directions`` — so a
        switched-off feature reads 0 and a steered one moves.
        """
        h = acts.float()
        if h.ndim == 4:  # conv maps (n, C, H, W)
            h = h.movedim(1, -1)
        with torch.no_grad():
            c = coordinates(self._basis, self._width, list(range(len(self.feature_names))), h)
        return c.detach().float().cpu()

    def _project(self, acts: torch.Tensor) -> np.ndarray:
        """Feature coordinates ``(n, k)`` of site activations (conv maps, sequences: averaged over space, positions)."""
        c = self._features_last(acts)
        if c.ndim > 2:
            c = c.mean(dim=tuple(range(1, c.ndim - 1)))
        return c.cpu().numpy()

    def _label(self, index: int) -> str:
        if index in self._texts:
            return f"input {index} · typed: {self._texts[index][0]}"
        parts = [f"input {index}"]
        if self._captions is not None:
            parts.append(self._captions[index])
        if self._labels is not None:
            parts.append(f"true: {self._labels[index]}")
        return " · ".join(parts)

    def _default_steer_max(self, site: str) -> float:
        sample = self._X[: min(len(self._X), 1024)]
        acts = self._lens.activations(sample, site)[site].float()
        acts = acts.movedim(1, -1) if acts.ndim == 4 else acts
        coords = acts.reshape(-1, acts.shape[-1])
        vecs = self._basis.vectors(self._width)
        if vecs is not None:
            coords = coords @ (vecs / vecs.norm(dim=1, keepdim=True)).T
        top = float(coords.abs().max()) if coords.numel() else 1.0
        return float(np.ceil(max(top, 1e-3) * 1.5 * 10) / 10)


def _as_image(x: torch.Tensor) -> np.ndarray:
    img = x.detach().float().cpu().numpy()
    lo, hi = float(img.min()), float(img.max())
    if lo < 0 or hi > 1:  # standardised images: rescale for display
        img = (img - lo) / (hi - lo + 1e-12)
    return img.astype(np.float32)
