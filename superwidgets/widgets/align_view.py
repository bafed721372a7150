"""AlignmentView: Gromov–Wasserstein alignment of two modalities, live under feature edits."""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets

from ..analysis.align import AlignmentResult, AlignmentSession
from ..engine import Edit, Lens
from ..science.align import Alignment
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
        # the computation: one session (validates, subsamples, encodes A, aligns; live: adds two edits)
        session = AlignmentSession(
            X_a,
            X_b,
            labels_a=labels_a,
            labels_b=labels_b,
            class_names=class_names,
            lens=lens,
            site=site,
            sae=sae,
            inputs=inputs,
            paired=paired,
            epsilon=epsilon,
            metric=metric,
            normalize=normalize,
            max_points=max_points,
            seed=seed,
        )
        self._session = session
        super().__init__()
        if session.live:
            assert lens is not None and site is not None
            self._replace_previous(lens, site)
        self._quiet = True
        try:
            self.live = session.live
            self.names = list(names) if names is not None else (["image", "B"] if session.live else ["A", "B"])
            self.class_names = session.class_names
            self.index_a = session.index_a.astype(np.int32)
            self.index_b = session.index_b.astype(np.int32)
            self.labels_a = session.codes_a.astype(np.int32)
            self.labels_b = session.codes_b.astype(np.int32)
            self.epsilon = session.epsilon
            self.feature_names = session.feature_names
            self.steer_max = session.steer_max
        finally:
            self._quiet = False
        self._handle("edit", self._on_edit)
        with self._publish():
            self.embed_b = session.embed_b
            self._show(session.last)
        self.observe(self._on_trait, names=["ablated", "steer_feature", "steer_alpha", "epsilon"])

    # ---------------------------------------------------------------- public
    @property
    def session(self) -> AlignmentSession:
        """The analysis session that computes what the view shows (same numbers from a script)."""
        return self._session

    @property
    def alignment(self) -> Alignment:
        """The current alignment (rows/columns in display order; ``index_a``/``index_b`` map to original rows)."""
        return self._session.last.alignment

    @property
    def baseline(self) -> Alignment:
        """The alignment with no edit (at the current ``epsilon``)."""
        return self._session.baseline

    @property
    def representation(self) -> np.ndarray:
        """Modality A's points (display order) as currently encoded (edited in live mode)."""
        return self._session.last.representation.copy()

    @property
    def edits(self) -> list[Edit]:
        """The view's own edits on the lens (ablation, steering); empty for point clouds."""
        return [] if self._replaced else self._session.edits  # a replaced view's edits left the lens

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
        """Validate, re-encode (live), re-align (one session call), then write every result (nothing
        changes on failure)."""
        self._check_current()
        self._session.check(ablated, steer_feature, steer_alpha, epsilon)  # bad values: nothing is sent
        self.busy = True
        self.send_state("busy")  # now, not with the results: the view shows that it works
        try:
            self._show(self._session.update(ablated, steer_feature, steer_alpha, epsilon))
        finally:
            self.busy = False

    def _show(self, r: AlignmentResult) -> None:
        self.ablated = list(r.ablated)
        self.steer_feature = r.steer_feature
        self.steer_alpha = r.steer_alpha
        self.epsilon = r.epsilon
        self.coupling = r.coupling
        self.embed_a = r.embed_a
        if r.confusion is not None:
            self.confusion = r.confusion
        self.scores = r.scores
        self.baseline_scores = r.baseline_scores


# --------------------------------------------------------------------------- helpers
def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)
