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
import math
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from .bases import SAE, Basis, Neurons, _tensor_field, as_vector, basis_from_dict, describe, pack

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


def _rows(reference: Any) -> int | None:
    """Number of rows (inputs) of a reference batch, when it has a first axis."""
    shape = getattr(reference, "shape", None)
    if shape is not None:
        return int(shape[0]) if len(shape) else None
    if isinstance(reference, (list, tuple)):
        return len(reference)
    return None


def _check_reference(reference: Any, op: str) -> None:
    if reference is not None and _rows(reference) == 0:
        raise ValueError(
            f"{op} got an empty reference batch (0 rows); pass a batch of at least one input, "
            f"e.g. {op}(features, reference=X[:100])"
        )


def _integer(value: Any, what: str) -> int:
    """``value`` as an int (numpy integers too); bools, floats and strings raise ``ValueError``."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None


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
            codes = basis.encode(h).clone()
            codes[..., index.to(codes.device)] = new_coords(codes[..., index.to(codes.device)]).to(codes.dtype)
            return basis.decode(codes, like=h)

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
        _check_reference(reference, "MeanAblate")
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
        object.__setattr__(self, "seed", _integer(seed, "seed"))
        _check_reference(reference, "Resample")
        object.__setattr__(self, "_reference", reference)
        if self.pool is not None and (self.pool.ndim != 2 or self.pool.shape[1] != len(self.features)):
            raise ValueError(f"pool must have shape (n_reference, {len(self.features)}), got {tuple(self.pool.shape)}")
        if self.pool is not None and self.pool.shape[0] == 0:
            raise ValueError(
                "Resample's pool is empty (0 rows): there is nothing to draw from; pass a pool with at least "
                "one row, or build it with lens.edit(site, Resample(features, reference=X)) from a non-empty X"
            )

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
        if feature is not None and not isinstance(feature, str):
            feature = _integer(feature, "feature (an index or a name)")
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


def _is_feature(f: Any) -> bool:
    return isinstance(f, str) or (isinstance(f, int) and not isinstance(f, bool))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _op_field(name: str, value: Any, optional: bool, tensors: dict[str, torch.Tensor] | None, where: str) -> Any:
    """Check one field of an op read from a file (its JSON type); ``ValueError`` names it."""
    w = f"{where}.{name}"
    if value is None and optional:
        return None
    if name == "features":
        if _is_feature(value) or (isinstance(value, (list, tuple)) and value and all(map(_is_feature, value))):
            return value
        raise ValueError(
            f"{w} must be a non-empty list of feature indices (integers) or names (strings), got {describe(value)}"
        )
    if name in ("mean", "pool", "direction"):
        return _tensor_field(value, tensors, w)
    if name in ("factor", "alpha"):
        if _is_number(value):
            return value
        raise ValueError(f"{w} must be a finite number, got {describe(value)}")
    if name == "value":
        if _is_number(value) or (isinstance(value, (list, tuple)) and value and all(map(_is_number, value))):
            return value
        raise ValueError(f"{w} must be a finite number or a list of them (one per feature), got {describe(value)}")
    if name == "seed":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"{w} must be an integer, got {describe(value)}")
    if name == "feature":
        if _is_feature(value):
            return value
        raise ValueError(f"{w} must be a feature index (integer), a name (string) or null, got {describe(value)}")
    return value  # pragma: no cover - every op field is listed above


def op_from_dict(d: dict[str, Any], tensors: dict[str, torch.Tensor] | None = None, *, where: str = "op") -> Op:
    """Rebuild an op from :meth:`Op.to_dict` output (``tensors``: the safetensors store).

    Every field is checked first: a missing, unknown or wrong-typed one raises
    ``ValueError`` naming it (``where`` prefixes the names, e.g. ``"edits.json: edits[1].op"``).
    """
    if not isinstance(d, dict):
        raise ValueError(f'{where} must be an object such as {{"op": "ablate", "features": [0]}}, got {describe(d)}')
    kind = d.get("op")
    if not isinstance(kind, str) or kind not in _OPS:
        got = "nothing" if "op" not in d else describe(kind)
        raise ValueError(f"{where}.op must name the operation, one of {sorted(_OPS)}; got {got}")
    cls = _OPS[kind]
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - set(fields) - {"op"})
    if unknown:
        raise ValueError(f"{where} has unknown field(s) {unknown}; a {kind!r} op has the fields {list(fields)}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        optional = f.default is not dataclasses.MISSING
        if name not in d:
            if optional:
                continue
            raise ValueError(f"{where}.{name} is missing; a {kind!r} op needs {name}")
        kwargs[name] = _op_field(name, d[name], optional and f.default is None, tensors, where)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: {exc}") from None


_EDIT_FIELDS = ("site", "op", "basis", "element", "feature_dim", "enabled", "name")


def _enabled(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"enabled must be True or False, got {value!r}")


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
        if not isinstance(site, str) or not site:
            raise TypeError(f"site must be a module path such as 'layers.3' (a non-empty string), got {site!r}")
        if not isinstance(element, str):
            try:
                element = _integer(element, "element")
            except ValueError:
                raise TypeError(f"element must be an int index or a str key, got {element!r}") from None
        if feature_dim is not None:
            try:
                feature_dim = _integer(feature_dim, "feature_dim")
            except ValueError:
                raise TypeError(f"feature_dim must be an int axis or None, got {feature_dim!r}") from None
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, got {name!r}")
        self.site = site
        self.basis: Basis = basis if basis is not None else Neurons()
        self.element = element
        self.feature_dim = feature_dim
        self.name = name or f"{op.kind}@{site}"
        self._op = op
        self._enabled = _enabled(enabled)
        self._lens: Lens | None = None
        self._compiled: dict[tuple[int, torch.dtype, torch.device], Fn] = {}

    @property
    def enabled(self) -> bool:
        """Whether the edit acts on the next run."""
        return self._enabled

    @enabled.setter
    def enabled(self, value: bool) -> None:
        on = _enabled(value)

        def change() -> None:
            self._enabled = on

        self._change(change)

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

        def change() -> None:
            self._op = value
            self._compiled.clear()

        self._change(change)

    def _change(self, fn: Callable[[], None]) -> None:
        """Apply a change of this edit; on a lens, through :meth:`Lens._on_edit_changed` (which
        waits for, or preempts, a run in another thread, and refreshes the site's state)."""
        if self._lens is not None:
            self._lens._on_edit_changed(self, fn)
        else:
            fn()

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
        *,
        where: str = "edit",
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
        where : str
            How errors name ``d`` (e.g. ``"edits.json: edits[1]"``).

        Raises
        ------
        ValueError
            A missing, unknown or wrong-typed field, naming it: ``edit.enabled must
            be true or false, got the string 'false'``.
        """
        if not isinstance(d, dict):
            raise ValueError(f"{where} must be an object with a site and an op, got {describe(d)}")
        unknown = sorted(set(d) - set(_EDIT_FIELDS))
        if unknown:
            raise ValueError(f"{where} has unknown field(s) {unknown}; an edit has the fields {list(_EDIT_FIELDS)}")
        if "site" not in d:
            raise ValueError(f'{where}.site is missing; every edit needs the module path it acts on, e.g. "hidden"')
        site = d["site"]
        if not isinstance(site, str) or not site:
            raise ValueError(f"{where}.site must be a module path (a non-empty string), got {describe(site)}")
        if "op" not in d:
            raise ValueError(
                f'{where}.op is missing; every edit needs an operation, e.g. {{"op": "ablate", "features": [0]}}'
            )
        element = d.get("element", 0)
        if not isinstance(element, (int, str)) or isinstance(element, bool):
            raise ValueError(
                f"{where}.element must be an integer or a string (which output element to edit), "
                f"got {describe(element)}"
            )
        feature_dim = d.get("feature_dim")
        if feature_dim is not None and (not isinstance(feature_dim, int) or isinstance(feature_dim, bool)):
            raise ValueError(f"{where}.feature_dim must be an integer or null, got {describe(feature_dim)}")
        enabled = d.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"{where}.enabled must be true or false, got {describe(enabled)}")
        name = d.get("name")
        if name is not None and not isinstance(name, str):
            raise ValueError(f"{where}.name must be a string or null, got {describe(name)}")
        op = op_from_dict(d["op"], tensors, where=f"{where}.op")
        basis = basis_from_dict(d.get("basis", {"kind": "neurons"}), tensors, saes, where=f"{where}.basis")
        return cls(site, op, basis=basis, element=element, feature_dim=feature_dim, enabled=enabled, name=name)

    def __repr__(self) -> str:
        state = "on" if self._enabled else "off"
        return f"Edit({self.site!r}, {self._op!r}, {state})"
