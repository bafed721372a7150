"""Feature bases: what a "feature" at a site means.

* :class:`Neurons` -- the standard basis; feature ``i`` is unit ``i``.
* :class:`Directions` -- a set of named vectors (user directions, PCA
  components, probe weights); feature ``i`` is row ``i``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["Basis", "Directions", "Neurons", "as_vector", "basis_from_dict"]


def as_vector(value: Any, what: str) -> torch.Tensor:
    """Convert ``value`` to a finite float32 CPU tensor, or raise ``ValueError``."""
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu")
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{what} must be numeric (a tensor, array or list of numbers): {exc}") from None
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8)):
        raise ValueError(f"{what} must be numeric, got dtype {t.dtype}")
    t = t.to(torch.float32)
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} contains NaN or Inf; pass finite numbers")
    return t


class Basis:
    """Common interface of feature bases."""

    kind: str = "basis"

    def size(self) -> int | None:
        """Number of features, or ``None`` when it equals the site's width."""
        raise NotImplementedError

    def names(self, width: int) -> list[str]:
        """Display names of the features at a site of ``width`` units."""
        raise NotImplementedError

    def index(self, feature: int | str, width: int) -> int:
        """Resolve a feature given by position or name to its position."""
        names = self.names(width)
        if isinstance(feature, str):
            if feature in names:
                return names.index(feature)
            raise ValueError(
                f"unknown feature {feature!r}; features are named {names[:8]}{'...' if len(names) > 8 else ''}"
            )
        if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
            raise ValueError(f"a feature must be an int index or a name, got {feature!r}")
        if not 0 <= int(feature) < len(names):
            raise ValueError(
                f"feature {feature} is out of range; this basis has {len(names)} features (0..{len(names) - 1})"
            )
        return int(feature)

    def vectors(self, width: int) -> torch.Tensor | None:
        """Feature vectors as rows ``[k, width]``, or ``None`` for neurons."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description."""
        raise NotImplementedError


class Neurons(Basis):
    """The standard basis: feature ``i`` is the site's unit ``i``.

    Parameters
    ----------
    prefix : str
        Display names are ``f"{prefix}{i}"``.
    """

    kind = "neurons"

    def __init__(self, prefix: str = "unit ") -> None:
        self.prefix = prefix

    def size(self) -> int | None:
        return None

    def names(self, width: int) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(width)]

    def vectors(self, width: int) -> torch.Tensor | None:
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "neurons", "prefix": self.prefix}

    def __repr__(self) -> str:
        return "Neurons()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Neurons) and other.prefix == self.prefix


class Directions(Basis):
    """A set of named directions in a site's activation space.

    Parameters
    ----------
    vectors : array-like, shape (k, d) or (d,)
        One direction per row; rows must be finite and non-zero. They need not
        be orthogonal: coordinate edits use least-squares coordinates in their
        span (exactly the dot products with the unit rows when the rows are
        orthonormal).
    names : list of str, optional
        One name per row; defaults to ``"dir 0"``, ``"dir 1"``, ...
    """

    kind = "directions"

    def __init__(self, vectors: Any, names: list[str] | None = None) -> None:
        v = as_vector(vectors, "directions")
        if v.ndim == 1:
            v = v[None, :]
        if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
            raise ValueError(f"directions must have shape (k, d) with k, d >= 1, got {tuple(v.shape)}")
        norms = v.norm(dim=1)
        if (norms == 0).any():
            bad = torch.nonzero(norms == 0).flatten().tolist()
            raise ValueError(f"direction rows {bad} are all zeros; every direction needs a non-zero length")
        if names is None:
            names = [f"dir {i}" for i in range(v.shape[0])]
        names = [str(n) for n in names]
        if len(names) != v.shape[0]:
            raise ValueError(f"got {len(names)} names for {v.shape[0]} directions; pass one name per row")
        self._v = v
        self._names = names

    @property
    def width(self) -> int:
        """Dimension ``d`` of the activation space the directions live in."""
        return int(self._v.shape[1])

    def size(self) -> int | None:
        return int(self._v.shape[0])

    def names(self, width: int) -> list[str]:
        self.check_width(width)
        return list(self._names)

    def check_width(self, width: int) -> None:
        """Raise ``ValueError`` unless the directions have length ``width``."""
        if width != self.width:
            raise ValueError(
                f"directions have length {self.width} but the site has {width} features; pass vectors of length {width}"
            )

    def vectors(self, width: int) -> torch.Tensor:
        self.check_width(width)
        return self._v

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "directions", "vectors": self._v.tolist(), "names": list(self._names)}

    def __repr__(self) -> str:
        return f"Directions(k={self._v.shape[0]}, d={self._v.shape[1]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Directions) and other._names == self._names and torch.equal(other._v, self._v)


def basis_from_dict(d: dict[str, Any]) -> Basis:
    """Rebuild a basis from :meth:`Basis.to_dict` output."""
    kind = d.get("kind")
    if kind == "neurons":
        return Neurons(prefix=d.get("prefix", "unit "))
    if kind == "directions":
        return Directions(d["vectors"], names=d.get("names"))
    raise ValueError(f"unknown basis kind {kind!r}; expected 'neurons' or 'directions'")
