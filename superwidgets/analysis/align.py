"""The alignment session: what AlignmentView shows, as a plain Python object (no Jupyter needed).

An :class:`AlignmentSession` aligns two modalities by Gromov–Wasserstein transport — two point
clouds, or (live) the codes a model computes at a site for its inputs against a second
modality — and, live, re-encodes modality A under feature edits (switch SAE features off, steer
along one) and re-aligns::

    session = AlignmentSession(X_b=expr, lens=lens, site="bottleneck", sae=sae, inputs=images,
                               labels_a=disease, labels_b=disease)
    before = session.baseline.scores
    after = session.update(ablated=[3]).scores     # the coupling with feature 3 switched off

:class:`~superwidgets.AlignmentView` makes one :meth:`AlignmentSession.update` call per control
change and writes the :class:`AlignmentResult` to its traits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from ..data.inputs import as_inputs
from ..engine import SAE, Ablate, Edit, Lens, Neurons, Steer
from ..science.align import Alignment, gw_align, label_confusion
from ..science.geometry import _as_matrix

__all__ = ["AlignmentResult", "AlignmentSession", "alignment_scores"]


@dataclasses.dataclass(frozen=True)
class AlignmentResult:
    """What AlignmentView shows for one control state.

    Attributes
    ----------
    alignment : Alignment
        The current alignment (rows and columns in display order).
    baseline : Alignment
        The alignment with no edit at the same ``epsilon``.
    representation : numpy.ndarray
        Modality A's points (display order) as encoded under the edits.
    coupling : numpy.ndarray
        float32 ``(n_a, n_b)``: the coupling scaled by ``n_a`` (each row sums to about 1).
    embed_a : numpy.ndarray
        float32 ``(n_a, 2)``: A in the 2-D PCA frame of the unedited A.
    confusion : numpy.ndarray or None
        int32 ``(classes, classes)``: label-transfer counts (true A label × transferred label); ``None`` without labels.
    scores, baseline_scores : dict
        :func:`alignment_scores` of the alignment and of the baseline.
    ablated : tuple of int
        Features switched off.
    steer_feature : int
        Feature steered (-1: none).
    steer_alpha : float
        Steering amount.
    epsilon : float
        Entropic regularisation of the GW solver.
    """

    alignment: Alignment
    baseline: Alignment
    representation: np.ndarray
    coupling: np.ndarray
    embed_a: np.ndarray
    confusion: np.ndarray | None
    scores: dict[str, Any]
    baseline_scores: dict[str, Any]
    ablated: tuple[int, ...] = ()
    steer_feature: int = -1
    steer_alpha: float = 0.0
    epsilon: float = 5e-3


class AlignmentSession:
    """GW alignment of modality A with modality B, re-encoded and re-aligned under feature edits.

    The UI-free half of :class:`superwidgets.AlignmentView` (same arguments). Either two point
    clouds (``X_a``, ``X_b``) or live mode (``lens``, ``site``, ``inputs``, optional ``sae``):
    modality A is then the site's activations (averaged over space at a convolutional site), or
    the SAE's codes of them, for the inputs; the session adds two edits at the site (ablation and
    steering in the SAE's or the units' basis), switched on only while it encodes.

    Parameters
    ----------
    X_a, X_b : array (n_a, d_a), array (n_b, d_b)
        The two point clouds (``X_a`` only without ``lens``).
    labels_a, labels_b : array, optional
        One label per point, for label-transfer scores and the confusion matrix.
    class_names : list of str, optional
        Names of integer labels.
    lens : Lens, optional
        Live mode: the lens on the model that computes modality A.
    site : str, optional
        Live mode: where A is read.
    sae : module, optional
        Live mode: A is its codes (``sae.encode``) and features are its latents.
    inputs : tensor or data set, optional
        Live mode: the model inputs of A's points.
    paired : bool
        A and B are the same points in the same order (scores then know the true pairing).
    epsilon, metric, normalize
        GW settings (:func:`superwidgets.science.gw_align`).
    max_points : int
        Points per side (a seeded subsample of larger sets).
    seed : int
        Seed of the subsample.

    Raises
    ------
    ValueError, TypeError
        Missing or inconsistent arguments (the message says which and what to pass).
    """

    def __init__(
        self,
        X_a: Any = None,
        X_b: Any = None,
        *,
        labels_a: Any = None,
        labels_b: Any = None,
        class_names: list[str] | None = None,
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
        self.epsilon = check_epsilon(epsilon)
        self.live = live
        self._settings = {"metric": metric, "normalize": normalize}
        self.lens, self.site, self.sae = lens, site, sae
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
        self.index_a, self.index_b = ia[oa], ib[ob]
        if paired:  # keep pairs: B in the same order as A
            self.index_b, ob = self.index_a.copy(), oa
        self.codes_a, self.codes_b = ca[oa], cb[ob]
        self.class_names = classes
        self.has_labels = la is not None and lb is not None
        self.B = B[self.index_b]
        self.basis = SAE(sae) if sae is not None else Neurons()
        self.feature_names: list[str] = []
        self.steer_max = 1.0
        self._edits: list[Edit] = []
        if live:
            assert lens is not None and site is not None
            self.A0 = self._represent()
            self._ablate = lens.edit(site, Ablate([0]), basis=self.basis, enabled=False, name="AlignmentView ablate")
            self._steer = lens.edit(
                site, Steer(feature=0, alpha=0.0), basis=self.basis, enabled=False, name="AlignmentView steer"
            )
            self._edits = [self._ablate, self._steer]
            self.feature_names = self.basis.names(self._width)
            top = float(np.abs(self.A0).max()) if self.A0.size else 1.0
            self.steer_max = float(np.ceil(max(top, 1e-3) * 2 * 10) / 10)
        else:
            self.A0 = A_full[self.index_a]
        self._pca_a = _Pca(self.A0)
        self._pca_b = _Pca(self.B)
        self.embed_b = self._pca_b(self.B)
        self.baseline = self.align(self.A0)
        self.last = self._result(self.baseline, self.A0, (), -1, 0.0)

    @property
    def edits(self) -> list[Edit]:
        """The session's own edits on the lens (ablation, steering); empty for point clouds."""
        return list(self._edits)

    def check(
        self, ablated: Any, steer_feature: Any, steer_alpha: Any, epsilon: Any
    ) -> tuple[list[int], int, float, float]:
        """Validate a control state; returns ``(sorted ablated, steer_feature, steer_alpha, epsilon)``.

        Raises
        ------
        ValueError
            Features out of range, edits on a point-cloud session, non-finite amounts, ``epsilon <= 0``.
        """
        eps = check_epsilon(epsilon)
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
        return ablated, steer_feature, alpha, eps

    def update(
        self, ablated: Any = (), steer_feature: Any = -1, steer_alpha: Any = 0.0, epsilon: Any = None
    ) -> AlignmentResult:
        """Re-encode modality A under the edits (live) and re-align; nothing changes on failure.

        Parameters
        ----------
        ablated : sequence of int
            Features to switch off.
        steer_feature : int
            Feature to steer along (-1: none).
        steer_alpha : float
            Amount of its decoder vector added at the site.
        epsilon : float, optional
            GW entropic regularisation; default: the current one.

        Returns
        -------
        AlignmentResult
        """
        ablated, f, alpha, eps = self.check(
            ablated, steer_feature, steer_alpha, self.epsilon if epsilon is None else epsilon
        )
        base = self.baseline if eps == self.baseline.epsilon else self.align(self.A0, eps)
        if not ablated and not (f >= 0 and alpha != 0):
            al, A = base, self.A0
        else:
            A = self._represent(ablated, (f, alpha))
            al = self.align(A, eps)
        self.baseline, self.epsilon = base, eps
        self.last = self._result(al, A, tuple(ablated), f, alpha)
        return self.last

    def align(self, A: np.ndarray, epsilon: float | None = None) -> Alignment:
        """GW alignment of ``A`` (display order) with modality B under the session's settings."""
        return gw_align(
            A,
            self.B,
            labels_a=self.codes_a if self.has_labels else None,
            labels_b=self.codes_b if self.has_labels else None,
            true_match=self._match,
            epsilon=float(self.epsilon if epsilon is None else epsilon),
            metric=self._settings["metric"],
            normalize=self._settings["normalize"],
            max_points=None,
        )

    def _result(self, al: Alignment, A: np.ndarray, ablated: tuple[int, ...], f: int, alpha: float) -> AlignmentResult:
        confusion = None
        if self.has_labels:
            _, counts = label_confusion(al.coupling, self.codes_a, self.codes_b)
            n = len(self.class_names)
            confusion = np.zeros((n, n), dtype=np.int32)
            present = np.unique(np.concatenate([self.codes_a, self.codes_b]))
            confusion[np.ix_(present, present)] = counts
        return AlignmentResult(
            alignment=al,
            baseline=self.baseline,
            representation=A,
            coupling=(al.coupling * al.coupling.shape[0]).astype(np.float32),
            embed_a=self._pca_a(A),
            confusion=confusion,
            scores=alignment_scores(al),
            baseline_scores=alignment_scores(self.baseline),
            ablated=ablated,
            steer_feature=f,
            steer_alpha=alpha,
            epsilon=float(al.epsilon),
        )

    def _represent(self, ablated: list[int] | None = None, steer: tuple[int, float] = (-1, 0.0)) -> np.ndarray:
        """Modality A: (SAE codes of) the site's activations for the inputs, display order; edited
        when ``ablated`` or ``steer`` is given (the edits are on only during this pass)."""
        lens, site = self.lens, self.site
        assert lens is not None and site is not None
        x = self._X[torch.from_numpy(self.index_a).long()]
        edited = bool(ablated) or (steer[0] >= 0 and steer[1] != 0)
        old_ops = [e.op for e in self._edits]
        try:
            if edited:
                if ablated:
                    self._ablate.op = Ablate(ablated)
                self._ablate.enabled = bool(ablated)
                f, alpha = steer
                if f >= 0 and alpha != 0:
                    self._steer.op = Steer(feature=f, alpha=alpha)
                self._steer.enabled = f >= 0 and alpha != 0
            parts = []
            with torch.no_grad():
                for i in range(0, x.shape[0], 512):
                    acts = lens.activations(x[i : i + 512], site, edited=edited)[site].float()
                    if acts.ndim == 4:  # conv maps: average over space
                        acts = acts.mean(dim=(2, 3))
                    acts = acts.reshape(acts.shape[0], -1)
                    self._width = int(acts.shape[1])
                    if self.sae is not None:
                        acts = self.sae.encode(acts)
                    parts.append(acts.detach().double().cpu().numpy())
        finally:
            for e, op in zip(self._edits, old_ops, strict=True):
                e.op, e.enabled = op, False
        A = np.concatenate(parts)
        if not np.isfinite(A).all():
            raise ValueError("the edited representation contains NaN or Inf; use a smaller steering amount")
        return A


def check_epsilon(epsilon: Any) -> float:
    """``epsilon`` as a positive finite float.

    Raises
    ------
    ValueError
        Not a positive number (the message suggests one).
    """
    try:
        eps = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"epsilon must be a positive number; got {epsilon!r}") from None
    if not (np.isfinite(eps) and eps > 0):
        raise ValueError(f"epsilon must be a positive number (try 5e-3); got {epsilon!r}")
    return eps


def alignment_scores(al: Alignment) -> dict[str, Any]:
    """The scores an alignment view shows: label transfer, FOSCTTM, recall@k, GW cost, solver state.

    Parameters
    ----------
    al : Alignment
    """
    out: dict[str, Any] = {k: float(v) for k, v in al.scores.items()}
    out.update(
        gw_cost=float(al.gw_cost), n_iter=int(al.n_iter), converged=bool(al.converged), seconds=round(al.seconds, 3)
    )
    return out


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
