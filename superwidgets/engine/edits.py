"""Edits are data: a site, a basis, an operation on some features, a switch.

Operations (all act on the site's activation ``h`` along its feature axis):

========================  =====================================================
:class:`Ablate`           set the chosen features' coordinates to zero
:class:`MeanAblate`       set them to their mean over a reference batch
:class:`Scale`            multiply them by ``factor``
:class:`Clamp`            set them to ``value`` (one number or one per feature)
:class:`Resample`         set them to those of random reference inputs (seeded)
:class:`Steer`            add ``alpha * direction`` (or ``alpha`` times a feature's vector)
:class:`ProjectOut`       remove the component along one or more directions
========================  =====================================================

For the neuron basis a feature's coordinate is the unit's value. For a
:class:`~superwidgets.engine.bases.Directions` basis the chosen features'
coordinates are their least-squares coordinates in the span of the chosen
directions, and an edit adds ``(new - old)`` along them, so ``Ablate`` on a
direction basis projects the span out exactly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from .bases import SAE, Basis, Neurons, as_vector, basis_from_dict, pack, unpack

if TYPE_CHECKING:
    from .lens import Lens

__all__ = [
    "Ablate",
    "Clamp",
    "Edit",
    "MeanAblate",
    "Op",
    "ProjectOut",
    "Resample",
    "Scale",
    "Steer",
    "op_from_dict",
]

Fn = Callable[[torch.Tensor], torch.Tensor]


def _features(features: Any) -> tuple[int | str, ...]:
    if isinstance(features, (int, str)) and not isinstance(features, bool):
        return (features,)
    try:
        items = tuple(features)
    except TypeError:
        raise ValueError(f"features must be an index, a name, or a list of them; got {features!r}") from None
    for f in items:
        if isinstance(f, bool) or (not isinstance(f, (int, str)) and not hasattr(f, "__index__")):
            raise ValueError(f"features must be int indices or names; got {f!r}")
    return tuple(f if isinstance(f, str) else int(f) for f in items)


def _finite(x: float, what: str) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number, got {x!r}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{what} must be finite, got {v}")
    return v


class Op:
    """Base class of edit operations (immutable dataclasses)."""

    kind: ClassVar[str] = "op"

    def check(self, width: int, basis: Basis) -> None:
        """Raise ``ValueError`` if this op cannot act on a site of ``width`` features."""
        self.compile(width, basis, torch.float32, torch.device("cpu"))

    def compile(self, width: int, basis: Basis, dtype: torch.dtype, device: torch.device) -> Fn:
        """Return ``fn(h) -> h'`` acting on tensors whose last axis has ``width`` features."""
        raise NotImplementedError

    def to_dict(self, store: dict[str, torch.Tensor] | None = None, prefix: str = "") -> dict[str, Any]:
        """JSON-ready description of the op.

        Tensors become nested lists (exact for float32), or, when ``store`` is
        given, entries of ``store`` (saved as safetensors) referenced as
        ``{"$tensor": key}``.
        """
        out: dict[str, Any] = {"op": self.kind}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            out[f.name] = pack(getattr(self, f.name), store, f"{prefix}{f.name}")
        return out

    def replace(self, **changes: Any) -> Op:
        """Return a copy with some fields changed (ops are immutable)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _span(basis: Basis, width: int, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``U`` [k, d] and ``A = Uᵀ (U Uᵀ)⁻¹`` [d, k] so that ``h @ A`` are span coordinates."""
    vecs = basis.vectors(width)
    assert vecs is not None
    u = vecs[idx].to(torch.float64)
    gram = u @ u.T
    a = u.T @ torch.linalg.pinv(gram)
    return u, a


def _coordinate_op(
    basis: Basis,
    width: int,
    idx: list[int],
    dtype: torch.dtype,
    device: torch.device,
    new_coords: Callable[[torch.Tensor], torch.Tensor],
    neuron_fn: Callable[[torch.Tensor, torch.Tensor], Fn] | None = None,
) -> Fn:
    """Build an op that sets the coordinates ``c`` of features ``idx`` to ``new_coords(c)``.

    Neurons use ``neuron_fn(mask, idx)`` (a fused elementwise form) when given;
    directions add ``(c' - c)`` along the rows; an SAE basis delta-decodes
    (error term kept) or re-decodes the edited codes.
    """
    if isinstance(basis, Neurons):
        mask = torch.zeros(width, dtype=torch.bool)
        mask[idx] = True
        index = torch.tensor(idx, device=device)
        if neuron_fn is not None:
            return neuron_fn(mask.to(device), index)

        def gather_fn(h: torch.Tensor) -> torch.Tensor:
            out = h.clone()
            out[..., index] = new_coords(h[..., index]).to(h.dtype)
            return out

        return gather_fn
    if isinstance(basis, SAE):
        w = basis.decoder(width)[idx].to(dtype=dtype, device=device)
        if basis.keep_error:

            def delta_decode(h: torch.Tensor) -> torch.Tensor:
                c = basis.encode_subset(h, idx)
                return h + (new_coords(c) - c).to(h.dtype) @ w

            return delta_decode
        index = torch.tensor(idx, device=device)

        def redecode(h: torch.Tensor) -> torch.Tensor:
            codes = basis.sae.encode(h).clone()
            codes[..., index] = new_coords(codes[..., index])
            return basis.sae.decode(codes)

        return redecode
    u, a = _span(basis, width, idx)
    u_t, a_t = u.to(dtype=dtype, device=device), a.to(dtype=dtype, device=device)

    def fn(h: torch.Tensor) -> torch.Tensor:
        c = h @ a_t
        return h + (new_coords(c) - c) @ u_t

    return fn


def coordinates(basis: Basis, width: int, idx: list[int], h: torch.Tensor) -> torch.Tensor:
    """Coordinates of features ``idx`` for activations ``h`` (features last) in ``basis``."""
    if isinstance(basis, Neurons):
        return h[..., idx]
    if isinstance(basis, SAE):
        return basis.encode_subset(h, idx)
    _, a = _span(basis, width, idx)
    return h @ a.to(h.dtype)


def _resolve(basis: Basis, width: int, features: tuple[int | str, ...]) -> list[int]:
    if not features:
        raise ValueError("no features given; pass at least one feature index or name")
    out: list[int] = []
    for f in features:
        i = basis.index(f, width)
        if i not in out:
            out.append(i)
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class Ablate(Op):
    """Zero-ablate features: set their coordinates to 0.

    Parameters
    ----------
    features : int, str or sequence of them
        Feature indices or names in the edit's basis.
    """

    features: tuple[int | str, ...]
    kind: ClassVar[str] = "ablate"

    def __init__(self, features: Any) -> None:
        object.__setattr__(self, "features", _features(features))

    def compile(self, width: int, basis: Basis, dtype: torch.dtype, device: torch.device) -> Fn:
        idx = _resolve(basis, width, self.features)

        def neuron(mask: torch.Tensor, _: torch.Tensor) -> Fn:
            keep = (~mask).to(dtype)
            return lambda h: h * keep

        return _coordinate_op(basis, width, idx, dtype, device, torch.zeros_like, neuron)


@dataclasses.dataclass(frozen=True, eq=False)
class MeanAblate(Op):
    """Mean-ablate features: set their coordinates to those of ``mean``.

    Parameters
    ----------
    features : int, str or sequence of them
        Feature indices or names.
    mean : array-like of shape (d,)
        The site's mean activation over a reference batch. Build it with
        ``lens.edit(site, MeanAblate(features, reference=X))`` (the lens computes
        and stores it, so the edit reproduces) or ``lens.mean(site, X)``.
    """

    features: tuple[int | str, ...]
    mean: torch.Tensor | None = None
    kind: ClassVar[str] = "mean_ablate"

    def __init__(self, features: Any, mean: Any = None, reference: Any = None) -> None:
        object.__setattr__(self, "features", _features(features))
        object.__setattr__(self, "mean", None if mean is None else as_vector(mean, "mean").flatten())
        object.__setattr__(self, "_reference", reference)

    def compile(self, width: int, basis: Basis, dtype: torch.dtype, device: torch.device) -> Fn:
        if self.mean is None:
            raise ValueError("MeanAblate has no mean; add it with lens.edit(site, MeanAblate(features, reference=X))")
        if self.mean.numel() != width:
            raise ValueError(f"mean has length {self.mean.numel()} but the site has {width} features")
        idx = _resolve(basis, width, self.features)
        mean = self.mean.to(dtype=dtype, device=device)

        def neuron(mask: torch.Tensor, _: torch.Tensor) -> Fn:
            keep = (~mask).to(dtype)
            fill = mean * mask.to(dtype)
            return lambda h: h * keep + fill

        if isinstance(basis, Neurons):
            return _coordinate_op(basis, width, idx, dtype, device, torch.zeros_like, neuron)
        if isinstance(basis, SAE):
            raise ValueError(
                "MeanAblate with an SAE basis needs the mean codes; add it with "
                "lens.edit(site, MeanAblate(features, reference=X), basis=...) and the lens stores them"
            )
        _, a = _span(basis, width, idx)
        target = mean @ a.to(dtype=dtype, device=device)
        return _coordinate_op(basis, width, idx, dtype, device, lambda c: target.expand_as(c), neuron)


@dataclasses.dataclass(frozen=True, eq=False)
class Scale(Op):
    """Multiply features' coordinates by ``factor``."""

    features: tuple[int | str, ...]
    factor: float
    kind: ClassVar[str] = "scale"

    def __init__(self, features: Any, factor: float) -> None:
        object.__setattr__(self, "features", _features(features))
        object.__setattr__(self, "factor", _finite(factor, "factor"))

    def compile(self, width: int, basis: Basis, dtype: torch.dtype, device: torch.device) -> Fn:
        idx = _resolve(basis, width, self.features)
        f = self.factor

        def neuron(mask: torch.Tensor, _: torch.Tensor) -> Fn:
            mult = torch.where(mask, f, 1.0).to(dtype)
            return lambda h: h * mult

        return _coordinate_op(basis, width, idx, dtype, device, lambda c: c * f, neuron)


@dataclasses.dataclass(frozen=True, eq=False)
class Clamp(Op):
    """Set features' coordinates to ``value`` (one number, or one per feature)."""

    features: tuple[int | str, ...]
    value: float | tuple[float, ...]
    kind: ClassVar[str] = "clamp"

    def __init__(self, features: Any, value: Any) -> None:
        feats = _features(features)
        object.__setattr__(self, "features", feats)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            object.__setattr__(self, "value", _finite(value, "value"))
        else:
            vals = as_vector(value, "value").flatten()
            if vals.numel() != len(feats):
                raise ValueError(f"got {vals.numel()} clamp values for {len(feats)} features; pass one per feature")
            object.__setattr__(self, "value", tuple(float(v) for v in vals))

    def compile(self, width: int, basis: Basis, dtype: torch.dtype, device: torch.device) -> Fn:
        idx = _resolve(basis, width, self.features)
        if len(idx) != len(self.features) and isinstance(self.value, tuple):
            raise ValueError("a feature is listed twice; give each feature once with its clamp value")
        values = torch.tensor(self.value if isinstance(self.value, tuple) else [self.value] * len(idx))

        def neuron(mask: torch.Tensor, index: torch.Tensor) -> Fn:
            keep = (~mask).to(dtype)
            fill = torch.zeros(width, dtype=dtype, device=device)
            fill[index] = values.to(dtype=dtype, device=device)
            return lambda h: h * keep + fill

        target = values.to(dtype=dtype, device=device)
        return _coordinate_op(basis, width, idx, dtype, device, lambda c: target.expand_as(c), neuron)


@dataclasses.dataclass(frozen=True, eq=False)
class Resample(Op):
    """Resample-ablate features: replace their coordinates by those of random reference inputs.

    Add it with ``lens.edit(site, Resample(features, reference=X, seed=0))``:
    the lens stores the reference coordinates (``pool``, one row per reference
    position) and the seed in the edit, so it reproduces exactly. Each
    activation row ``r`` (all axes but the feature axis flattened) gets
    ``pool[j_r]`` with ``j`` drawn from a generator seeded with ``seed`` on
    every run.
    """

    features: tuple[int | str, ...]
    pool: torch.Tensor | None = None
    seed: int = 0
    kind: ClassVar[str] = "resample"

    def __init__(self, features: Any, pool: Any = None, seed: int = 0, reference: Any = None) -> None:
        object.__setattr__(self, "features", _features(features))
        object.__setattr__(self, "pool", None if pool is None else as_vector(pool, "pool"))
        object.__setattr__(self, "seed", int(seed))
        object.__setattr__(self, "_reference", reference)
        if self.pool is not None and (self.pool.ndim != 2 or self.pool.shape[1] != len(self.features)):
            raise ValueError(f"pool must have shape (n_reference, {len(self.features)}), got {tuple(self.pool.shape)}")

    def compile(self, width: int, basis: Basis, dtype: torch.dtype, device: torch.device) -> Fn:
        if self.pool is None:
            raise ValueError(
                "Resample has no reference pool; add it with lens.edit(site, Resample(features, reference=X))"
            )
        idx = _resolve(basis, width, self.features)
        pool = self.pool.to(dtype=dtype, device=device)
        seed = self.seed

        def draw(c: torch.Tensor) -> torch.Tensor:
            rows = c.reshape(-1, c.shape[-1]).shape[0]
            gen = torch.Generator().manual_seed(seed)
            j = torch.randint(pool.shape[0], (rows,), generator=gen).to(device)
            return pool[j].reshape(c.shape)

        return _coordinate_op(basis, width, idx, dtype, device, draw)


@dataclasses.dataclass(frozen=True, eq=False)
class Steer(Op):
    """Add ``alpha * direction`` to the activation.

    Give either an explicit ``direction`` (a vector of the site's width, used as
    is, not normalised) or a ``feature`` of the edit's basis (unit ``i`` for
    neurons; row ``i`` for directions).
    """

    alpha: float = 1.0
    direction: torch.Tensor | None = None
    feature: int | str | None = None
    kind: ClassVar[str] = "steer"

    def __init__(self, direction: Any = None, alpha: float = 1.0, feature: int | str | None = None) -> None:
        if (direction is None) == (feature is None):
            raise ValueError("Steer needs exactly one of direction=vector or feature=index")
        object.__setattr__(self, "alpha", _finite(alpha, "alpha"))
        object.__setattr__(self, "direction", None if direction is None else as_vector(direction, "direction"))
        object.__setattr__(self, "feature", feature)
        if self.direction is not None and self.direction.ndim != 1:
            raise ValueError(f"a steering direction must be a 1-D vector, got shape {tuple(self.direction.shape)}")

    def vector(self, width: int, basis: Basis) -> torch.Tensor:
        """The direction ``d`` (before ``alpha``) at a site of ``width`` features."""
        if self.direction is not None:
            if self.direction.numel() != width:
                raise ValueError(
                    f"direction has length {self.direction.numel()} but the site has {width} features; "
                    f"pass a vector of length {width}"
                )
            return self.direction
        i = basis.index(self.feature, width)  # type: ignore[arg-type]
        vecs = basis.vectors(width)
        if vecs is None:
            v = torch.zeros(width)
            v[i] = 1.0
            return v
        return vecs[i]

    def compile(self, width: int, basis: Basis, dtype: torch.dtype, device: torch.device) -> Fn:
        add = (self.alpha * self.vector(width, basis)).to(dtype=dtype, device=device)
        return lambda h: h + add


@dataclasses.dataclass(frozen=True, eq=False)
class ProjectOut(Op):
    """Remove the component of the activation in the span of ``direction``.

    ``direction`` is a vector ``(d,)`` or a matrix ``(k, d)``; the edit is the
    exact orthogonal projection onto the complement of the rows' span.
    """

    direction: torch.Tensor
    kind: ClassVar[str] = "project_out"

    def __init__(self, direction: Any) -> None:
        d = as_vector(direction, "direction")
        if d.ndim == 1:
            d = d[None, :]
        if d.ndim != 2 or (d.norm(dim=1) == 0).any():
            raise ValueError("ProjectOut needs non-zero direction vectors of shape (d,) or (k, d)")
        object.__setattr__(self, "direction", d)

    def compile(self, width: int, basis: Basis, dtype: torch.dtype, device: torch.device) -> Fn:
        if self.direction.shape[1] != width:
            raise ValueError(
                f"direction has length {self.direction.shape[1]} but the site has {width} features; "
                f"pass a vector of length {width}"
            )
        q, _ = torch.linalg.qr(self.direction.to(torch.float64).T)  # [d, k] orthonormal columns
        q_t = q.to(dtype=dtype, device=device)
        return lambda h: h - (h @ q_t) @ q_t.T


_OPS: dict[str, type[Op]] = {c.kind: c for c in (Ablate, MeanAblate, Scale, Clamp, Resample, Steer, ProjectOut)}


def op_from_dict(d: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None) -> Op:
    """Rebuild an op from :meth:`Op.to_dict` output (``tensors``: the safetensors store)."""
    d = {k: unpack(v, tensors) for k, v in d.items()}
    kind = d.pop("op", None)
    if kind not in _OPS:
        raise ValueError(f"unknown op {kind!r}; known ops are {sorted(_OPS)}")
    return _OPS[kind](**d)


class Edit:
    """One edit at one site: an operation in a basis, switched on or off.

    Edits are created by :meth:`Lens.edit`; changing ``enabled`` or ``op``
    changes the lens's state, never its hooks.

    Attributes
    ----------
    site : str
        Module path the edit acts on.
    basis : Basis
        What the op's feature indices refer to.
    element : int or str
        Which element of a structured output (tuple, dict, dataclass) to edit.
    feature_dim : int or None
        Axis holding the features; ``None`` means the last axis, or axis 1 for
        4-D (convolutional) activations.
    name : str
        A label for display and export.
    """

    def __init__(
        self,
        site: str,
        op: Op,
        *,
        basis: Basis | None = None,
        element: int | str = 0,
        feature_dim: int | None = None,
        enabled: bool = True,
        name: str | None = None,
    ) -> None:
        if not isinstance(op, Op):
            raise TypeError(f"op must be an edit operation such as sw.Ablate([3]) or sw.Steer(v, alpha=2), got {op!r}")
        self.site = site
        self.basis: Basis = basis if basis is not None else Neurons()
        self.element = element
        self.feature_dim = feature_dim
        self.name = name or f"{op.kind}@{site}"
        self._op = op
        self._enabled = bool(enabled)
        self._lens: Lens | None = None
        self._compiled: dict[tuple[int, torch.dtype, torch.device], Fn] = {}

    @property
    def enabled(self) -> bool:
        """Whether the edit acts on the next run."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled = bool(value)
        if self._lens is not None:
            self._lens._refresh(self.site)

    @property
    def op(self) -> Op:
        """The operation; assign a new op (e.g. ``e.op = e.op.replace(alpha=3)``) to change it."""
        return self._op

    @op.setter
    def op(self, value: Op) -> None:
        if not isinstance(value, Op):
            raise TypeError(f"op must be an edit operation, got {value!r}")
        if self._lens is not None:
            self._lens._check_op(self.site, value, self.basis, self.feature_dim, self.element)
        self._op = value
        self._compiled.clear()

    def update(self, **changes: Any) -> Edit:
        """Change fields of the op, e.g. ``e.update(alpha=3.0)``; returns ``self``."""
        self.op = self._op.replace(**changes)
        return self

    def apply(self, h: torch.Tensor) -> torch.Tensor:
        """Apply the op to the site activation ``h`` (features on ``feature_dim``)."""
        fd = self.feature_dim if self.feature_dim is not None else (1 if h.ndim == 4 else -1)
        moved = fd not in (-1, h.ndim - 1)
        x = h.movedim(fd, -1) if moved else h
        key = (x.shape[-1], x.dtype, x.device)
        fn = self._compiled.get(key)
        if fn is None:
            fn = self._op.compile(x.shape[-1], self.basis, x.dtype, x.device)
            self._compiled[key] = fn
        y = fn(x)
        return y.movedim(-1, fd) if moved else y

    def to_dict(self, store: dict[str, torch.Tensor] | None = None, prefix: str = "") -> dict[str, Any]:
        """JSON-ready description; :meth:`from_dict` rebuilds an equal edit.

        With ``store``, tensors go there (for safetensors) instead of into lists.
        """
        return {
            "site": self.site,
            "op": self._op.to_dict(store, f"{prefix}op."),
            "basis": self.basis.to_dict(store, f"{prefix}basis."),
            "element": self.element,
            "feature_dim": self.feature_dim,
            "enabled": self._enabled,
            "name": self.name,
        }

    @classmethod
    def from_dict(
        cls,
        d: dict[str, Any],
        tensors: dict[str, torch.Tensor] | None = None,
        saes: dict[str, Any] | None = None,
    ) -> Edit:
        """Rebuild an (unbound) edit from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict
            The description.
        tensors : dict, optional
            Tensors referenced as ``{"$tensor": key}`` (the edit set's safetensors file).
        saes : dict, optional
            SAE modules by name, for edits in an SAE basis.
        """
        return cls(
            d["site"],
            op_from_dict(d["op"], tensors),
            basis=basis_from_dict(d.get("basis", {"kind": "neurons"}), tensors, saes),
            element=d.get("element", 0),
            feature_dim=d.get("feature_dim"),
            enabled=d.get("enabled", True),
            name=d.get("name"),
        )

    def __repr__(self) -> str:
        state = "on" if self._enabled else "off"
        return f"Edit({self.site!r}, {self._op!r}, {state})"
