"""SuperpositionExplorer: train toy models of superposition live and watch the geometry form."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import torch
import traitlets

from .base import Array, WidgetBase, bundle

__all__ = ["SuperpositionExplorer"]

#: Limits that keep a retrain interactive on a laptop CPU.
LIMITS = {"n_features": (2, 200), "n_hidden": (1, 64), "n_instances": (2, 16), "replicas": (1, 8)}
#: Samples of the held-out batch that picks the best replica.
HELD_OUT = 4096


class SuperpositionExplorer(WidgetBase):
    """Toy models of superposition (Elhage et al. 2022), retrained live as you move the knobs.

    ``n`` sparse features in ``[0, 1]`` are squeezed through ``m < n`` hidden
    dimensions and reconstructed by ``ReLU(WᵀW x + b)`` (or linearly). Each
    setting trains ``n_instances`` models at once: the chosen density ``1 − S``
    and a log-spaced sweep from dense to very sparse, so the views show the
    chosen model in detail and how dimensions per feature change with sparsity.

    Views: the ``WᵀW`` heatmap with the bias ``b``; feature norms ``‖W_i‖``
    coloured by superposition ``Σ_{j≠i}(Ŵ_i·W_j)²``; for ``m = 2`` the feature
    directions as arrows; each feature's dimensionality ``D_i`` against the
    fractions 1, 3/4, 2/3, 1/2, 2/5, 3/8; dimensions per feature
    ``D* = m / ‖W‖_F²`` against ``1/(1−S)`` across instances. Click a feature to
    ablate it in the hidden layer and see which reconstructions suffer.

    A single run can land in a local minimum (at ``1 − S ≈ 0.2`` about half the
    time), so the detailed model is trained ``replicas`` times from different
    random starts, in the same batch, and the replica with the lowest loss on
    a held-out batch is shown (``replica_losses`` lists them all).

    Training runs in a background thread and streams partial views; a newer
    setting cancels an older run. Every change goes through the error area:
    an out-of-range value shows a message and the last good model stays.

    Parameters
    ----------
    n_features, n_hidden : int
        ``n`` and ``m``.
    density : float
        ``1 − S``, the probability that a feature is non-zero, in (0, 1].
    importance_decay : float
        ``I_i = importance_decay ** i``.
    weight_decay : float
        Positive: adds ``weight_decay · ‖W‖²_F`` (fewer features represented).
        Negative: adds ``|weight_decay| · Σ_i (‖W_i‖ − 1)²``, pulling every
        feature's norm towards 1 (weight growth: more features represented).
    relu : bool
        ReLU output (superposition possible) or linear (it is not).
    n_instances : int
        Models in the view: the chosen density plus ``n_instances - 1`` in a sweep.
    replicas : int
        Random starts of the detailed model (best of them shown), 1–8.
    steps : int, optional
        Training steps (default: the science layer's default).
    seed : int
        Seed of every run.
    background : bool
        Train in a thread (default). ``False`` trains synchronously (scripts,
        static exports).
    """

    _esm = bundle("explorer.js")
    _css = bundle("explorer.css")

    n_features = traitlets.Int(5).tag(sync=True)
    """int: Number of features ``n``. Default 5."""

    n_hidden = traitlets.Int(2).tag(sync=True)
    """int: Hidden dimensions ``m``. Default 2."""

    density = traitlets.Float(0.1).tag(sync=True)
    """float: Feature density ``1 − S`` of the detailed model, in (0, 1]. Default 0.1."""

    importance_decay = traitlets.Float(0.9).tag(sync=True)
    """float: Importance ``I_i = importance_decay ** i``, in (0, 1]. Default 0.9."""

    weight_decay = traitlets.Float(0.0).tag(sync=True)
    """float: Weight decay on ``W`` in [-0.1, 0.1]; negative pulls feature norms to 1 (growth). Default 0."""

    relu = traitlets.Bool(True).tag(sync=True)
    """bool: ReLU reconstruction (True) or linear (False). Default True."""

    n_instances = traitlets.Int(8).tag(sync=True)
    """int: Models in the view (chosen density + a sweep of ``n_instances - 1``). Default 8."""

    replicas = traitlets.Int(3).tag(sync=True)
    """int: Random starts of the detailed model, trained together; the lowest held-out loss is shown. Default 3."""

    replica = traitlets.Int(0).tag(sync=True)
    """int: The replica shown (lowest held-out loss; while training, lowest current loss). Default 0."""

    replica_losses = Array()
    """ndarray float32 (replicas,): Held-out loss of each replica of the detailed model (after training)."""

    W = Array()
    """ndarray float32 (m, n): Weights of the detailed model."""

    b = Array()
    """ndarray float32 (n,): Output bias of the detailed model."""

    WtW = Array()
    """ndarray float32 (n, n): ``WᵀW`` of the detailed model."""

    norms = Array()
    """ndarray float32 (n,): Feature norms ``‖W_i‖``."""

    superpos = Array()
    """ndarray float32 (n,): Superposition ``Σ_{j≠i} (Ŵ_i·W_j)²`` per feature."""

    dims = Array()
    """ndarray float32 (n,): Feature dimensionality ``D_i``."""

    densities = Array()
    """ndarray float32 (I,): Density ``1 − S`` of each instance (instance 0 is the detailed one)."""

    dstar = Array()
    """ndarray float32 (I,): Dimensions per feature ``D* = m / ‖W‖_F²`` of each instance."""

    loss = traitlets.Float(0.0).tag(sync=True)
    """float: Current training loss of the detailed model. Default 0."""

    progress = traitlets.Float(0.0).tag(sync=True)
    """float: Training progress in [0, 1] (1 = finished). Default 0."""

    training = traitlets.Bool(False).tag(sync=True)
    """bool: Whether a training run is in progress. Default False."""

    ablated = traitlets.Int(-1).tag(sync=True)
    """int: Feature ablated in the hidden layer (-1: none). Default -1."""

    interference = Array()
    """ndarray float32 (n,): Increase of each feature's reconstruction loss when ``ablated`` is removed."""

    def __init__(
        self,
        *,
        n_features: int = 5,
        n_hidden: int = 2,
        density: float = 0.1,
        importance_decay: float = 0.9,
        weight_decay: float = 0.0,
        relu: bool = True,
        n_instances: int = 8,
        replicas: int = 3,
        steps: int | None = None,
        seed: int = 0,
        background: bool = True,
    ) -> None:
        super().__init__()
        self._steps = steps
        self._seed = int(seed)
        self._background = bool(background)
        self._gen = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._model: Any = None
        self._config: Any = None
        settings = {
            "n_features": n_features,
            "n_hidden": n_hidden,
            "density": density,
            "importance_decay": importance_decay,
            "weight_decay": weight_decay,
            "relu": relu,
            "n_instances": n_instances,
            "replicas": replicas,
        }
        clean = self._validate(settings)
        self._quiet = True
        try:
            for k, v in clean.items():
                setattr(self, k, v)
        finally:
            self._quiet = False
        self._handle("settings", self._on_settings)
        self._handle("ablate", self._on_ablate)
        self._start(clean)

    # ---------------------------------------------------------------- public
    @property
    def model(self) -> Any:
        """The last trained :class:`superwidgets.science.ToyModel`.

        Instances ``0 .. replicas - 1`` are the replicas of the detailed model (``replica`` is
        the one shown), the rest the density sweep.
        """
        return self._model

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current training run has finished (for scripts and tests)."""
        t = self._thread
        if t is not None:
            t.join(timeout)

    def retrain(self) -> None:
        """Train again with the current settings."""
        self._start(self._settings())

    def ablate(self, feature: int) -> None:
        """Ablate ``feature`` in the hidden layer (``-1`` clears) and show the interference."""
        with self._publish():
            self._set_ablated(int(feature))

    def _snapshot_replies(self) -> list[dict[str, Any]]:
        """Click-to-ablate works in a static snapshot: every feature's interference is precomputed."""
        from .snapshot import precompute_replies

        if self.training or self._model is None:
            return []
        keep = int(self.ablated)
        features = range(-1, int(self.n_features))
        cases = [({"type": "ablate", "feature": f}, lambda f=f: self._set_ablated(f)) for f in features]
        return precompute_replies(self, cases, lambda: self._set_ablated(keep))

    def to_figure(self) -> Any:
        """A matplotlib figure of the current views (static version of the widget).

        Returns
        -------
        matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        n, m = int(self.n_features), int(self.n_hidden)
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
        ax = axes[0]
        lim = max(1e-6, float(np.abs(self.WtW).max()))
        ax.imshow(self.WtW, cmap="RdBu", vmin=-lim, vmax=lim)
        ax.set_title(f"WᵀW (n={n}, m={m}, 1−S={self.density:g})")
        ax = axes[1]
        colors = plt.cm.viridis(np.clip(self.superpos / max(1e-6, float(self.superpos.max(initial=1.0))), 0, 1))
        ax.barh(np.arange(n), self.norms, color=colors)
        ax.invert_yaxis()
        ax.set_title("‖W_i‖ (colour: superposition)")
        ax = axes[2]
        if m == 2:
            for i in range(n):
                ax.arrow(0, 0, float(self.W[0, i]), float(self.W[1, i]), head_width=0.04, length_includes_head=True)
            ax.set_aspect("equal")
            ax.set_xlim(-1.3, 1.3)
            ax.set_ylim(-1.3, 1.3)
            ax.set_title("feature directions")
        else:
            ax.scatter(np.arange(n), self.dims)
            for f in (1, 3 / 4, 2 / 3, 1 / 2, 2 / 5, 3 / 8):
                ax.axhline(f, lw=0.5, color="grey")
            ax.set_title("D_i per feature")
        ax = axes[3]
        ax.scatter(1 / self.densities, self.dstar)
        ax.set_xscale("log")
        ax.set_xlabel("1/(1−S)")
        ax.set_title("D* = m / ‖W‖²_F")
        fig.tight_layout()
        return fig

    # ---------------------------------------------------------------- requests
    def _on_settings(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        settings = self._settings()
        settings.update({k: content[k] for k in settings if k in content})
        clean = self._validate(settings)
        for k, v in clean.items():
            setattr(self, k, v)
        self._start(clean, publish=False)

    def _on_ablate(self, content: dict[str, Any], _buffers: list[Any]) -> None:
        self._set_ablated(content.get("feature", -1))

    @traitlets.observe(
        "n_features", "n_hidden", "density", "importance_decay", "weight_decay", "relu", "n_instances", "replicas"
    )
    def _on_python_change(self, change: dict[str, Any]) -> None:
        def apply() -> None:
            settings = self._settings()
            settings[change["name"]] = change["new"]
            self._start(self._validate(settings), publish=False)

        self._guard(change, apply)

    # ---------------------------------------------------------------- training
    def _settings(self) -> dict[str, Any]:
        return {
            "n_features": self.n_features,
            "n_hidden": self.n_hidden,
            "density": self.density,
            "importance_decay": self.importance_decay,
            "weight_decay": self.weight_decay,
            "relu": self.relu,
            "n_instances": self.n_instances,
            "replicas": self.replicas,
        }

    @staticmethod
    def _validate(s: dict[str, Any]) -> dict[str, Any]:
        out = dict(s)
        for key, (lo, hi) in LIMITS.items():
            v = s[key]
            whole = isinstance(v, (int, np.integer)) or (isinstance(v, float) and v.is_integer())
            if isinstance(v, bool) or not whole:
                raise ValueError(f"{key} must be a whole number, got {v!r}")
            v = int(v)
            if not lo <= v <= hi:
                raise ValueError(f"{key} must be between {lo} and {hi}, got {v}")
            out[key] = v
        for key, lo, hi, lo_open in (
            ("density", 0.0, 1.0, True),
            ("importance_decay", 0.0, 1.0, True),
            ("weight_decay", -0.1, 0.1, False),
        ):
            try:
                v = float(s[key])
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be a number, got {s[key]!r}") from None
            if not np.isfinite(v) or v > hi or v < lo or (lo_open and v <= lo):
                rng = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
                raise ValueError(f"{key} must be in {rng}, got {s[key]!r}")
            out[key] = v
        out["relu"] = bool(s["relu"])
        return out

    def _config_for(self, s: dict[str, Any]) -> Any:
        from ..science.toy import ToyConfig

        sweep = np.logspace(0, -2.3, s["n_instances"] - 1)
        densities = [s["density"]] * s["replicas"] + sweep.tolist()
        kwargs: dict[str, Any] = {
            "n_features": s["n_features"],
            "n_hidden": s["n_hidden"],
            "n_instances": len(densities),
            "feature_probability": densities,
            "importance": s["importance_decay"],
            "relu": s["relu"],
            "weight_decay": s["weight_decay"],
            "seed": self._seed,
        }
        if self._steps is not None:
            kwargs["steps"] = self._steps
        return ToyConfig(**kwargs)

    def _start(self, s: dict[str, Any], publish: bool = True) -> None:
        config = self._config_for(s)
        with self._lock:
            self._gen += 1
            gen = self._gen
        if publish:
            with self._publish():
                self.training, self.progress = True, 0.0
                self.replica_losses = np.zeros(0, np.float32)
        else:
            self.training, self.progress = True, 0.0
            self.replica_losses = np.zeros(0, np.float32)

        def job() -> None:
            self._train(config, s["replicas"], gen)

        if self._background:
            t = threading.Thread(target=job, name="superwidgets-toy", daemon=True)
            self._thread = t
            t.start()
        else:
            job()

    def _train(self, config: Any, k: int, gen: int) -> None:
        from ..science.toy import sample_batch, train_toy

        def stale() -> bool:
            return self._gen != gen

        def progress(step: int, total: int, model: Any, loss: Any) -> None:
            if not stale():
                self._show(config, k, model, step / max(1, total), torch.as_tensor(loss).reshape(-1).float(), gen)

        try:
            model = train_toy(config, progress=progress, should_stop=stale)
        except Exception as exc:  # shown in the error area; the last good model stays
            if not stale():
                with self.hold_sync():
                    self.error = f"training failed: {type(exc).__name__}: {exc}"
                    self.training = False
                    self.rev += 1
            return
        if stale():
            return
        gen_eval = torch.Generator().manual_seed(self._seed + 2)
        with torch.no_grad():
            held_out = model.loss(sample_batch(config, HELD_OUT, gen_eval)).float()
        self._model, self._config = model, config
        self._show(config, k, model, 1.0, held_out, gen)

    def _show(self, config: Any, k: int, model: Any, progress: float, losses: torch.Tensor, gen: int) -> None:
        """Publish the best of the ``k`` replicas by ``losses`` (current batch, or held out when done)."""
        from ..science import toy

        r = int(torch.argmin(losses[:k]))
        keep = [r, *range(k, config.n_instances)]
        with torch.no_grad():
            W = model.W.detach().float()
            norms = toy.feature_norms(W)
            sup = toy.superposition(W)
            dims = toy.dimensionality(W)
            dstar = toy.dims_per_feature(W)
        w0 = W[r].cpu().numpy()
        with self._lock:
            if self._gen != gen:
                return
            with self._publish():
                self.replica = r
                self.W = w0
                self.b = model.b_final[r].detach().float().cpu().numpy()
                self.WtW = w0.T @ w0
                self.norms = norms[r].cpu().numpy()
                self.superpos = sup[r].cpu().numpy()
                self.dims = dims[r].cpu().numpy()
                self.densities = np.asarray(config.feature_probability, dtype=np.float32)[keep]
                self.dstar = dstar[keep].cpu().numpy()
                self.loss = float(losses[r])
                if progress >= 1.0:
                    self.replica_losses = losses[:k].cpu().numpy().astype(np.float32)
                self.progress = float(progress)
                self.training = progress < 1.0
                if progress >= 1.0:
                    self._model = model
                    if self.ablated >= int(self.n_features):
                        self.ablated = -1
                    self._interference()

    def _set_ablated(self, feature: Any) -> None:
        if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
            raise ValueError(f"feature must be an integer, got {feature!r}")
        feature = int(feature)
        if not -1 <= feature < self.n_features:
            raise ValueError(f"feature {feature} is out of range; pick 0..{self.n_features - 1} (or -1 for none)")
        if self._model is None:
            raise ValueError("no trained model yet; wait for training to finish")
        self.ablated = feature
        self._interference()

    def _interference(self) -> None:
        from ..science import toy

        if self.ablated < 0 or self._model is None:
            self.interference = np.zeros(int(self.n_features), dtype=np.float32)
            return
        gen = torch.Generator().manual_seed(self._seed + 1)
        x = toy.sample_batch(self._config, 2048, gen)
        with torch.no_grad():
            inc = toy.interference(self._model, x, int(self.ablated))
        self.interference = torch.as_tensor(inc)[int(self.replica)].float().cpu().numpy()
