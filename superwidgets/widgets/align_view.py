"""AlignmentView: Gromov–Wasserstein alignment of two modalities, live under feature edits."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import traitlets

from ..data.inputs import as_inputs
from ..engine import SAE, Ablate, Edit, Lens, Neurons, Steer
from ..science.align import Alignment, gw_align, label_confusion
from ..science.geometry import _as_matrix
from .base import Array, WidgetBase, bundle

__all__ = ["AlignmentView"]

#: The live AlignmentView of each (lens, site): a new one replaces the old one's edits.
_SCORE_KEYS = ("label_transfer_argmax", "label_transfer_barycentric", "foscttm", "recall@1", "recall@5", "recall@10")


class AlignmentView(WidgetBase):
    """See how two modalities align by Gromov–Wasserstein transport, and how feature edits change it.

    The view shows the coupling as a heatmap (rows: points of modality A,
    columns: modality B, both ordered by label), each space as a 2-D PCA
    embedding with linked highlighting (hover a point in one panel: the points
    it sends its mass to light up in the other), and the label-transfer
    confusion matrix with the scores.

    Built in one of two ways:

    * **two point clouds**: ``AlignmentView(X_a, X_b, labels_a=..., labels_b=...)``;
    * **live from a model**: ``AlignmentView(X_b=expression, lens=lens, site="bottleneck",
      sae=sae, inputs=images, ...)``. Modality A is then the SAE codes (or,
      without ``sae``, the raw activations) at ``site`` of ``inputs``. Ablating or
      steering a feature (controls in the view, or :meth:`ablate` /
      :meth:`steer`) re-encodes the inputs through the edited model, re-runs
      GW, and updates coupling and scores next to the unedited baseline.

    Parameters
    ----------
    X_a : array-like (n_a, d_a), optional
        Modality A (omit in live mode).
    X_b : array-like (n_b, d_b)
        Modality B.
    labels_a, labels_b : array-like, optional
        Labels per point (ints or strings), for colours, ordering and label transfer.
    class_names : list of str, optional
        Display names of integer labels ``0, 1, ...``.
    names : (str, str)
        Display names of the two modalities. Default ``("A", "B")``, or ``("image", "B")`` live.
    lens : Lens, optional
        Live mode: the lens on the model (the view adds two disabled edits at ``site``).
    site : str, optional
        Live mode: module path whose activations (or SAE codes) are modality A.
    sae : module, optional
        Live mode: any module with ``encode``, ``decode`` and ``W_dec`` (features are its latents).
        Without it, features are the site's units and A is the raw activations.
    inputs : Tensor, array or NeuronWorld, optional
        Live mode: model inputs for modality A (a ``NeuronWorld`` gives its ``images``).
    paired : bool
        Row ``i`` of A and row ``i`` of B are the same sample (for evaluation only:
        adds FOSCTTM and recall@k, and subsamples both sides alike). Never used to align.
    epsilon, metric, normalize : float, str, str or None
        GW settings, see :func:`superwidgets.science.gw_align`.
    max_points : int
        Each side is subsampled to at most this many points (GW is O(n³) per iteration). Default 400.
    seed : int
        Seed of the subsampling.

    Notes
    -----
    The view's edits are switched on only while it encodes the inputs, so
    other runs on the same lens (and other widgets) never see them. The PCA
    of each space is fitted once on the unedited data, so edited points move
    in a fixed frame.

    Examples
    --------
    >>> view = sw.AlignmentView(codes, expression, labels_a=disease, labels_b=disease)  # doctest: +SKIP
    >>> live = sw.AlignmentView(X_b=expr, lens=sw.Lens(model), site="bottleneck", sae=sae,
    ...                         inputs=world.images, labels_a=world.disease, labels_b=world.disease,
    ...                         paired=True)  # doctest: +SKIP
    >>> live.ablate(3)  # doctest: +SKIP
    """

    _esm = bundle("align.js")
    _css = bundle("align.css")

    names = traitlets.List(traitlets.Unicode(), default_value=["A", "B"]).tag(sync=True)
    """list of str: Display names of modality A and B. Default ``["A", "B"]``."""

    live = traitlets.Bool(False).tag(sync=True)
    """bool: Whether A comes from a model and can be edited (read-only). Default False."""

    coupling = Array()
    """ndarray float32 (n_a, n_b): Coupling × n_a (each row sums to 1), rows/columns in display order."""

    embed_a = Array()
    """ndarray float32 (n_a, 2): PCA embedding of A's points, display order (edited in live mode)."""

    embed_b = Array()
    """ndarray float32 (n_b, 2): PCA embedding of B's points, display order."""

    labels_a = Array()
    """ndarray int32 (n_a,): Class of each A point (index into ``class_names``; -1 none), display order."""

    labels_b = Array()
    """ndarray int32 (n_b,): Class of each B point, display order."""

    index_a = Array()
    """ndarray int32 (n_a,): Original row of each displayed A point."""

    index_b = Array()
    """ndarray int32 (n_b,): Original row of each displayed B point."""

    class_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Names of the classes of both modalities (confusion matrix order). Default ``[]``."""

    confusion = Array()
    """ndarray int32 (C, C): True A label (rows) × label transferred from B (columns, argmax); ``None`` unlabelled."""

    scores = traitlets.Dict().tag(sync=True)
    """dict: Current scores (label transfer, FOSCTTM, recall@k when available) and solver facts
    (``gw_cost``, ``n_iter``, ``converged``, ``seconds``). Default ``{}``."""

    baseline_scores = traitlets.Dict().tag(sync=True)
    """dict: The same scores with no edit (live mode; equals ``scores`` for point clouds). Default ``{}``."""

    epsilon = traitlets.Float(5e-3).tag(sync=True)
    """float: Entropic regularisation (normalised distance units). Setting it re-runs GW. Default 5e-3."""

    feature_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """list of str: Names of the editable features (SAE latents or units; live mode). Default ``[]``."""

    ablated = traitlets.List(traitlets.Int()).tag(sync=True)
    """list of int: Features zero-ablated on A. Setting it re-encodes and re-aligns. Default ``[]``."""

    steer_feature = traitlets.Int(-1).tag(sync=True)
    """int: Feature being steered (-1: none). Setting it re-encodes and re-aligns. Default -1."""

    steer_alpha = traitlets.Float(0.0).tag(sync=True)
    """float: Steering amount added along ``steer_feature``'s decoder vector. Default 0."""

    steer_max = traitlets.Float(1.0).tag(sync=True)
    """float: Slider range ``[-steer_max, steer_max]``. Default from the codes' spread."""

    busy = traitlets.Bool(False).tag(sync=True)
    """bool: True while the view re-encodes and re-aligns (GW can take a second). Default False."""

    def __init__(
        self,
        X_a: Any = None,
        X_b: Any = None,
        *,
        labels_a: Any = None,
        labels_b: Any = None,
        class_names: list[str] | None = None,
        names: tuple[str, str] | None = None,
        lens: Lens | None = None,
        site: str | None = None,
        sae: Any = None,
        inputs: Any = None,
        paired: bool = False,
        epsilon: float = 5e-3,
        metric: str = "euclidean",
        normalize: str | None = "mean",
        max_points: int = 400,
        seed: int = 0,
    ) -> None:
        live = lens is not None
        if X_b is None:
            raise ValueError("AlignmentView needs X_b, the features of modality B")
        if live:
            if not isinstance(lens, Lens):
                raise TypeError(f"lens must be a superwidgets Lens, got {type(lens).__name__}")
            if X_a is not None:
                raise ValueError("pass either X_a (two point clouds) or lens/site/inputs (live), not both")
            if site is None or inputs is None:
                raise ValueError("live mode needs site= (where to read modality A) and inputs= (the model inputs)")
        else:
            if X_a is None:
                raise ValueError("AlignmentView needs X_a and X_b (two point clouds), or lens=, site=, inputs= (live)")
            if site is not None or sae is not None or inputs is not None:
                raise ValueError("site=, sae= and inputs= need lens= (live mode)")
        if int(max_points) < 2:
            raise ValueError(f"max_points must be at least 2; got {max_points}")
        self._settings = {"metric": metric, "normalize": normalize}
        self._lens, self._site, self._sae = lens, site, sae
        B = _as_matrix(X_b, "X_b")
        if live:
            self._X = _inputs(inputs)
            n_a = int(self._X.shape[0])
        else:
            A_full = _as_matrix(X_a, "X_a")
            n_a = A_full.shape[0]
        la = _labels(labels_a, n_a, "labels_a", "A")
        lb = _labels(labels_b, B.shape[0], "labels_b", "B")
        if paired and n_a != B.shape[0]:
            raise ValueError(f"paired=True needs as many A as B points; got {n_a} and {B.shape[0]}")
        rng = np.random.default_rng(seed)
        ia = _subsample(n_a, int(max_points), rng)
        ib = ia.copy() if paired else _subsample(B.shape[0], int(max_points), rng)
        self._match = np.arange(ia.size) if paired else None
        classes, ca, cb = _classes(la, lb, ia, ib, class_names)
        # display order: by label, stable (ties keep the original order)
        oa, ob = np.argsort(ca, kind="stable"), np.argsort(cb, kind="stable")
        self._ia, self._ib = ia[oa], ib[ob]
        if paired:  # keep pairs: B in the same order as A
            self._ib, ob = self._ia.copy(), oa
        self._ca, self._cb = ca[oa], cb[ob]
        self._has_labels = la is not None and lb is not None
        self._B = B[self._ib]
        self._basis = SAE(sae) if sae is not None else Neurons()
        super().__init__()
        self._quiet = True
        try:
            self.live = live
            self.names = list(names) if names is not None else (["image", "B"] if live else ["A", "B"])
            self.class_names = classes
            self.index_a = self._ia.astype(np.int32)
            self.index_b = self._ib.astype(np.int32)
            self.labels_a = self._ca.astype(np.int32)
            self.labels_b = self._cb.astype(np.int32)
            self.epsilon = float(epsilon)
        finally:
            self._quiet = False
        self._edits: list[Edit] = []
        if live:
            assert lens is not None and site is not None
            self._replace_previous(lens, site)
            self._A0 = self._represent(edited=False)
            width = self._width
            self._ablate_edit = lens.edit(
                site, Ablate([0]), basis=self._basis, enabled=False, name="AlignmentView ablate"
            )
            self._steer_edit = lens.edit(
                site, Steer(feature=0, alpha=0.0), basis=self._basis, enabled=False, name="AlignmentView steer"
            )
            self._edits = [self._ablate_edit, self._steer_edit]
            names_f = self._basis.names(width)
            top = float(np.abs(self._A0).max()) if self._A0.size else 1.0
            self._quiet = True
            try:
                self.feature_names = names_f
                self.steer_max = float(np.ceil(max(top, 1e-3) * 2 * 10) / 10)
            finally:
                self._quiet = False
        else:
            self._A0 = A_full[self._ia]
        self._pca_a = _Pca(self._A0)
        self._pca_b = _Pca(self._B)
        self._baseline = self._align(self._A0)
        self._current = self._baseline
        self._A = self._A0
        self._handle("edit", self._on_edit)
        with self._publish():
            self.embed_b = self._pca_b(self._B)
            self.baseline_scores = _scores(self._baseline)
            self._show(self._baseline, self._A0)
        self.observe(self._on_trait, names=["ablated", "steer_feature", "steer_alpha", "epsilon"])

    # ---------------------------------------------------------------- public
    @property
    def alignment(self) -> Alignment:
        """The current alignment (rows/columns in display order; ``index_a``/``index_b`` map to original rows)."""
        return self._current

    @property
    def baseline(self) -> Alignment:
        """The alignment with no edit (at the current ``epsilon``)."""
        return self._baseline

    @property
    def representation(self) -> np.ndarray:
        """Modality A's points (display order) as currently encoded (edited in live mode)."""
        return self._A.copy()

    @property
    def edits(self) -> list[Edit]:
        """The view's own edits on the lens (ablation, steering); empty for point clouds."""
        return [] if self._replaced else list(self._edits)  # a replaced view's edits left the lens

    def ablate(self, feature: int | list[int], on: bool = True) -> None:
        """Zero-ablate one or more features of A (``on=False`` restores them), re-encode and re-align.

        Parameters
        ----------
        feature : int or list of int
        on : bool
        """
        feats = [feature] if isinstance(feature, (int, np.integer)) else list(feature)
        current = set(self.ablated)
        new = sorted(current | {int(f) for f in feats}) if on else sorted(current - {int(f) for f in feats})
        self._run_python(lambda: self._apply(new, self.steer_feature, self.steer_alpha, self.epsilon))

    def steer(self, feature: int, alpha: float) -> None:
        """Add ``alpha`` times ``feature``'s decoder vector to A's site, re-encode and re-align.

        Parameters
        ----------
        feature : int
            Feature to steer (-1 for none).
        alpha : float
        """
        self._run_python(lambda: self._apply(list(self.ablated), feature, alpha, self.epsilon))

    def reset(self) -> None:
        """Remove every edit (ablation, steering) and show the baseline again."""
        self._run_python(lambda: self._apply([], -1, 0.0, self.epsilon))

    def realign(self) -> None:
        """Re-encode (live mode) and re-run GW with the current settings."""
        self._run_python(lambda: self._apply(list(self.ablated), self.steer_feature, self.steer_alpha, self.epsilon))

    def to_figure(self) -> Any:
        """A matplotlib figure: coupling heatmap, both embeddings, confusion matrix and scores.

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 4, figsize=(17, 4.2), width_ratios=[1, 1, 1, 1.1])
        ax0, ax1, ax2, ax3 = axes
        T = np.asarray(self.coupling, dtype=np.float64)
        ax0.imshow(np.sqrt(T / max(T.max(), 1e-12)), cmap="viridis", aspect="auto", interpolation="nearest")
        ax0.set_title("coupling (√, rows/cols by label)")
        ax0.set_xlabel(self.names[1])
        ax0.set_ylabel(self.names[0])
        cmap = plt.get_cmap("tab10")
        for ax, emb, lab, name in ((ax1, self.embed_a, self.labels_a, 0), (ax2, self.embed_b, self.labels_b, 1)):
            colors = [cmap(int(c) % 10) if c >= 0 else (0.5, 0.5, 0.5, 1) for c in lab]
            ax.scatter(emb[:, 0], emb[:, 1], s=8, c=colors)
            ax.set_title(f"{self.names[name]} (PCA)")
            ax.set_xticks([])
            ax.set_yticks([])
        for k, cname in enumerate(self.class_names):
            ax2.scatter([], [], color=cmap(k % 10), label=cname, s=12)
        if self.class_names:
            ax2.legend(fontsize=7, loc="best")
        if self.confusion is not None:
            cm = np.asarray(self.confusion)
            ax3.imshow(cm, cmap="Blues")
            for (i, j), v in np.ndenumerate(cm):
                ax3.text(j, i, str(v), ha="center", va="center", fontsize=8)
            ax3.set_xticks(range(len(self.class_names)), self.class_names, rotation=45, fontsize=7)
            ax3.set_yticks(range(len(self.class_names)), self.class_names, fontsize=7)
            ax3.set_xlabel(f"label from {self.names[1]}")
            ax3.set_ylabel(f"true label of {self.names[0]}")
        else:
            ax3.axis("off")
        lines = [
            f"{k}: {_fmt(v)}" + (f" (baseline {_fmt(self.baseline_scores[k])})" if self._edited() else "")
            for k, v in self.scores.items()
            if k in _SCORE_KEYS
        ]
        edits = self._edit_text()
        ax3.set_title("\n".join([*lines, *([edits] if edits else [])]), fontsize=7, loc="left")
        fig.tight_layout()
        return fig

    # ---------------------------------------------------------------- machinery
    def _edited(self) -> bool:
        return bool(self.ablated) or (self.steer_feature >= 0 and self.steer_alpha != 0)

    def _edit_text(self) -> str:
        parts = []
        if self.ablated:
            parts.append("ablated " + ", ".join(self.feature_names[i] for i in self.ablated))
        if self.steer_feature >= 0 and self.steer_alpha != 0:
            parts.append(f"steered {self.feature_names[self.steer_feature]} by {self.steer_alpha:+.2f}")
        return "; ".join(parts)

    def _run_python(self, fn: Any) -> None:
        """Run an update started from Python: errors land in the error area too, then propagate."""
        try:
            with self._publish():
                fn()
        except Exception as exc:
            with self.hold_sync():
                self.error = str(exc) if isinstance(exc, (ValueError, TypeError)) else f"{type(exc).__name__}: {exc}"
                self.rev += 1
            raise

    def _on_trait(self, change: dict[str, Any]) -> None:
        values = {
            "ablated": list(self.ablated),
            "steer_feature": self.steer_feature,
            "steer_alpha": self.steer_alpha,
            "epsilon": self.epsilon,
        }
        self._guard(change, lambda: self._apply(**values))

    def _on_edit(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        self._apply(
            content.get("ablated", list(self.ablated)),
            content.get("steer_feature", self.steer_feature),
            content.get("steer_alpha", self.steer_alpha),
            content.get("epsilon", self.epsilon),
        )

    def _apply(self, ablated: Any, steer_feature: Any, steer_alpha: Any, epsilon: Any) -> None:
        """Validate, re-encode (live), re-align, then write every result (nothing changes on failure)."""
        self._check_current()
        try:
            eps = float(epsilon)
        except (TypeError, ValueError):
            raise ValueError(f"epsilon must be a positive number; got {epsilon!r}") from None
        if not (np.isfinite(eps) and eps > 0):
            raise ValueError(f"epsilon must be a positive number (try 5e-3); got {epsilon!r}")
        k = len(self.feature_names)
        try:
            ablated = sorted({int(i) for i in ablated})
        except (TypeError, ValueError):
            raise ValueError(f"ablated must be a list of feature indices; got {ablated!r}") from None
        if (ablated or steer_feature not in (-1, None)) and not self.live:
            raise ValueError("ablate/steer need a live view (built with lens=, site=, inputs=)")
        bad = [i for i in ablated if not 0 <= i < k]
        if bad:
            raise ValueError(f"ablated features {bad} are out of range; there are {k} features (0..{k - 1})")
        if isinstance(steer_feature, bool) or not isinstance(steer_feature, (int, np.integer)):
            raise ValueError(f"steer_feature must be a feature index or -1; got {steer_feature!r}")
        steer_feature = int(steer_feature)
        if not -1 <= steer_feature < max(k, 0):
            raise ValueError(f"steer_feature {steer_feature} is out of range; pick -1 or 0..{k - 1}")
        try:
            alpha = float(steer_alpha)
        except (TypeError, ValueError):
            raise ValueError(f"steer_alpha must be a number; got {steer_alpha!r}") from None
        if not np.isfinite(alpha):
            raise ValueError("steer_alpha must be finite")
        self.busy = True
        self.send_state("busy")  # now, not with the results: the view shows that it works
        try:
            edited = bool(ablated) or (steer_feature >= 0 and alpha != 0)
            base = self._baseline if eps == self._baseline.epsilon else self._align(self._A0, eps)
            if not edited:
                al, A = base, self._A0
            else:
                A = self._represent(edited=True, ablated=ablated, steer=(steer_feature, alpha))
                al = self._align(A, eps)
            self._current, self._A = al, A
            if base is not self._baseline:
                self._baseline = base
                self.baseline_scores = _scores(base)
            self.ablated = ablated
            self.steer_feature = steer_feature
            self.steer_alpha = alpha
            self.epsilon = eps
            self._show(al, A)
        finally:
            self.busy = False

    def _align(self, A: np.ndarray, epsilon: float | None = None) -> Alignment:
        return gw_align(
            A,
            self._B,
            labels_a=self._ca if self._has_labels else None,
            labels_b=self._cb if self._has_labels else None,
            true_match=self._match,
            epsilon=float(self.epsilon if epsilon is None else epsilon),
            metric=self._settings["metric"],
            normalize=self._settings["normalize"],
            max_points=None,
        )

    def _show(self, al: Alignment, A: np.ndarray) -> None:
        T = al.coupling * al.coupling.shape[0]
        self.coupling = T.astype(np.float32)
        self.embed_a = self._pca_a(A)
        if self._has_labels:
            _, counts = label_confusion(al.coupling, self._ca, self._cb)
            n = len(self.class_names)
            full = np.zeros((n, n), dtype=np.int32)
            present = np.unique(np.concatenate([self._ca, self._cb]))
            full[np.ix_(present, present)] = counts
            self.confusion = full
        self.scores = _scores(al)

    def _represent(
        self, edited: bool, ablated: list[int] | None = None, steer: tuple[int, float] = (-1, 0.0)
    ) -> np.ndarray:
        """Modality A: (SAE codes of) the site's activations for the view's inputs, display order."""
        lens, site = self._lens, self._site
        assert lens is not None and site is not None
        x = self._X[torch.from_numpy(self._ia).long()]
        old_ops = [e.op for e in self._edits]
        try:
            if edited:
                if ablated:
                    self._ablate_edit.op = Ablate(ablated)
                self._ablate_edit.enabled = bool(ablated)
                f, alpha = steer
                if f >= 0 and alpha != 0:
                    self._steer_edit.op = Steer(feature=f, alpha=alpha)
                self._steer_edit.enabled = f >= 0 and alpha != 0
            parts = []
            with torch.no_grad():
                for i in range(0, x.shape[0], 512):
                    acts = lens.activations(x[i : i + 512], site, edited=edited)[site].float()
                    if acts.ndim == 4:  # conv maps: average over space
                        acts = acts.mean(dim=(2, 3))
                    acts = acts.reshape(acts.shape[0], -1)
                    self._width = int(acts.shape[1])
                    if self._sae is not None:
                        acts = self._sae.encode(acts)
                    parts.append(acts.detach().double().cpu().numpy())
        finally:
            for e, op in zip(self._edits, old_ops, strict=True):
                e.op, e.enabled = op, False
        A = np.concatenate(parts)
        if not np.isfinite(A).all():
            raise ValueError("the edited representation contains NaN or Inf; use a smaller steering amount")
        return A


# --------------------------------------------------------------------------- helpers
class _Pca:
    """2-D PCA fitted once; later (edited) data is projected into the same frame."""

    def __init__(self, X: np.ndarray) -> None:
        self.mean = X.mean(0)
        Xc = X - self.mean
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        comps = vt[:2]
        if comps.shape[0] < 2:
            comps = np.vstack([comps, np.zeros((2 - comps.shape[0], X.shape[1]))])
        # deterministic signs: the largest loading of each component is positive
        signs = np.sign(comps[np.arange(2), np.abs(comps).argmax(1)])
        self.comps = comps * np.where(signs == 0, 1, signs)[:, None]

    def __call__(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) @ self.comps.T).astype(np.float32)


def _inputs(inputs: Any) -> torch.Tensor:
    X = as_inputs(inputs)[0]
    if X.ndim < 2 or X.shape[0] < 2:
        raise ValueError(f"inputs must have shape (n, ...) with n >= 2; got {tuple(X.shape)}")
    return X


def _labels(labels: Any, n: int, name: str, side: str) -> np.ndarray | None:
    if labels is None:
        return None
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels).reshape(-1) if np.ndim(labels) == 1 else np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must hold one label per {side} point ({n}); got shape {arr.shape}")
    return arr


def _subsample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(rng.choice(n, size=k, replace=False))


def _classes(
    la: np.ndarray | None, lb: np.ndarray | None, ia: np.ndarray, ib: np.ndarray, names: list[str] | None
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Class names of the union of labels and the code (index) of each subsampled point (-1 without labels)."""
    parts = [x for x in (None if la is None else la[ia], None if lb is None else lb[ib]) if x is not None]
    if not parts:
        return [], np.full(ia.size, -1), np.full(ib.size, -1)
    if (
        len(parts) == 2
        and parts[0].dtype.kind != parts[1].dtype.kind
        and "U" in (parts[0].dtype.kind, parts[1].dtype.kind)
    ):
        raise ValueError("labels_a and labels_b must be of the same kind (both numbers or both strings)")
    classes = np.unique(np.concatenate(parts))
    code = lambda lab, idx: np.full(idx.size, -1) if lab is None else np.searchsorted(classes, lab[idx])  # noqa: E731
    ca, cb = code(la, ia), code(lb, ib)
    if names is not None:
        if classes.dtype.kind not in "iu" or classes.min() < 0 or classes.max() >= len(names):
            raise ValueError(f"class_names has {len(names)} names but the labels are {classes.tolist()[:10]}")
        text = [str(names[int(c)]) for c in classes]
    else:
        text = [str(c) for c in classes]
    return text, ca, cb


def _scores(al: Alignment) -> dict[str, Any]:
    out: dict[str, Any] = {k: float(v) for k, v in al.scores.items()}
    out.update(
        gw_cost=float(al.gw_cost), n_iter=int(al.n_iter), converged=bool(al.converged), seconds=round(al.seconds, 3)
    )
    return out


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
