"""Feature bases: what a "feature" at a site means.

* :class:`Neurons` -- the standard basis; feature ``i`` is unit ``i``.
* :class:`Directions` -- a set of named vectors (user directions, PCA
  components, probe weights); feature ``i`` is row ``i``.
* :class:`SAE` -- the latents of a sparse autoencoder; feature ``i`` is latent
  ``i``. It follows the model: codes are computed on the activations' device, in
  the wider of their dtype and the SAE's (see ``docs/devices.md``).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

__all__ = ["SAE", "Basis", "Directions", "Neurons", "as_vector", "basis_from_dict", "describe", "pack", "unpack"]


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


def _same_device(a: torch.device, b: torch.device) -> bool:
    """Whether two devices are the same one (``cuda`` and ``cuda:0`` are when 0 is the current device)."""
    if a.type != b.type:
        return False
    if a.type == "cuda":
        current = torch.cuda.current_device()
        return (current if a.index is None else a.index) == (current if b.index is None else b.index)
    return a.index == b.index or a.index is None or b.index is None


def _same_view(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` are the very same view of the same memory."""
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and a.stride() == b.stride()
        and a.storage_offset() == b.storage_offset()
        and a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()
    )


def pack(value: Any, store: dict[str, torch.Tensor] | None, key: str) -> Any:
    """A JSON-ready form of ``value``: tensors as lists, or into ``store`` as ``{"$tensor": key}``.

    A tensor already in ``store`` (the same object, e.g. one ``Directions``
    basis shared by two edits) is stored once and referenced by its first key.
    """
    if isinstance(value, torch.Tensor):
        if store is None:
            return value.tolist()
        t = value.detach().to("cpu").contiguous()
        if t.numel():
            for k, seen in store.items():
                if _same_view(seen, t):
                    return {"$tensor": k}
        store[key] = t
        return {"$tensor": key}
    if isinstance(value, tuple):
        return list(value)
    return value


def describe(value: Any) -> str:
    """How a (JSON) value reads in an error message: ``the string 'false'``, ``the number 1.5``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def unpack(value: Any, tensors: dict[str, torch.Tensor] | None, where: str = "tensor") -> Any:
    """Inverse of :func:`pack`: resolve ``{"$tensor": key}`` in ``tensors`` (``where`` names the field in errors)."""
    if isinstance(value, dict) and "$tensor" in value:
        key = value["$tensor"]
        if not isinstance(key, str) or len(value) != 1:
            raise ValueError(
                f'{where} must be a tensor reference {{"$tensor": "<name>"}} or a list of numbers, '
                f"got {describe(value)} with $tensor {describe(key)}"
            )
        if tensors is None:
            raise ValueError(
                f"{where}: tensor {key!r} is missing: the edit set names no tensor file; "
                "load the edit set with its .safetensors file"
            )
        if key not in tensors:
            raise ValueError(
                f"{where}: tensor {key!r} is missing from the tensor file; "
                "load the edit set with the .safetensors file saved with it"
            )
        return tensors[key]
    return value


def _tensor_field(value: Any, tensors: dict[str, torch.Tensor] | None, where: str) -> Any:
    """A tensor-valued field from a file: a ``$tensor`` reference or a (nested) list of numbers."""
    value = unpack(value, tensors, where)
    if isinstance(value, (torch.Tensor, list)):
        return value
    raise ValueError(
        f'{where} must be a list of numbers or a tensor reference {{"$tensor": "<name>"}}, got {describe(value)}'
    )


def _names_field(value: Any, where: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ValueError(f"{where} must be a list of strings (one name per feature) or null, got {describe(value)}")
    return value


class Basis:
    """Common interface of feature bases."""

    kind: str = "basis"

    def size(self) -> int | None:
        """Number of features, or ``None`` when it equals the site's width."""
        raise NotImplementedError

    def names(self, width: int) -> list[str]:
        """Display names of the features at a site of ``width`` units."""
        raise NotImplementedError

    def count(self, width: int) -> int:
        """Number of features at a site of ``width`` units."""
        return len(self.names(width))

    def index(self, feature: int | str, width: int) -> int:
        """Resolve a feature given by position or name to its position."""
        if isinstance(feature, str):
            names = self.names(width)
            if feature in names:
                return names.index(feature)
            raise ValueError(
                f"unknown feature {feature!r}; features are named {names[:8]}{'...' if len(names) > 8 else ''}"
            )
        if isinstance(feature, bool) or not isinstance(feature, (int, np.integer)):
            raise ValueError(f"a feature must be an int index or a name, got {feature!r}")
        count = self.count(width)
        if not 0 <= int(feature) < count:
            raise ValueError(f"feature {feature} is out of range; this basis has {count} features (0..{count - 1})")
        return int(feature)

    def vectors(self, width: int) -> torch.Tensor | None:
        """Feature vectors as rows ``[k, width]``, or ``None`` for neurons."""
        raise NotImplementedError

    def to_dict(self, store: dict[str, torch.Tensor] | None = None, prefix: str = "") -> dict[str, Any]:
        """JSON-ready description (tensors into ``store`` when given, see :func:`pack`)."""
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

    def count(self, width: int) -> int:
        return width

    def vectors(self, width: int) -> torch.Tensor | None:
        return None

    def to_dict(self, store: dict[str, torch.Tensor] | None = None, prefix: str = "") -> dict[str, Any]:
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

    def to_dict(self, store: dict[str, torch.Tensor] | None = None, prefix: str = "") -> dict[str, Any]:
        return {"kind": "directions", "vectors": pack(self._v, store, f"{prefix}vectors"), "names": list(self._names)}

    def __repr__(self) -> str:
        return f"Directions(k={self._v.shape[0]}, d={self._v.shape[1]})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Directions) and other._names == self._names and torch.equal(other._v, self._v)


class SAE(Basis):
    """The latents of a sparse autoencoder as features.

    Any module with ``encode(x) -> codes`` and ``decode(codes) -> x`` and a
    decoder matrix ``W_dec`` of shape ``(n_latents, d)`` (SAELens layout; a
    ``(d, n_latents)`` matrix is transposed) works. Feature ``i`` is latent
    ``i``; its vector (for ``Steer(feature=i)``) is decoder row ``W_dec[i]``.

    Edits keep the SAE's reconstruction error by default: changing latents
    from ``c`` to ``c'`` adds ``W_dec[changed]ᵀ (c' - c)`` to the activation
    (*delta-decode*), so an SAE with no edit enabled changes nothing and one
    feature edit costs two thin matrix products instead of a full encode and
    two decodes. If the SAE has ``encode_subset(x, idx)`` (superwidgets' own
    ReLU, Gated and JumpReLU SAEs do), only the edited latents are encoded;
    otherwise a full ``encode`` runs. TopK SAEs must use the full encode (a
    latent's value depends on all the others); edits then change the chosen
    latents without re-selecting the top k.

    Any model dtype and device work: codes are computed on the activations' device in
    the wider of their dtype and the SAE's (a float32 SAE at a bfloat16 site encodes in
    float32), by the SAE itself or by a copy kept per ``(device, dtype)`` (a CPU-built SAE
    at a CUDA site); the SAE you pass is never moved or cast (see :meth:`module_for`).

    Parameters
    ----------
    sae : nn.Module
        The autoencoder.
    name : str
        Name under which saved edit sets refer to it (pass ``saes={name: sae}``
        when loading).
    keep_error : bool
        Keep the reconstruction error (default). ``False`` replaces the
        activation by the decoded, edited codes (full encode and decode).
    names : list of str, optional
        Latent names; default ``"latent 0"``, ...
    """

    kind = "sae"

    def __init__(self, sae: Any, name: str = "sae", keep_error: bool = True, names: list[str] | None = None) -> None:
        for attr in ("encode", "decode", "W_dec"):
            if not hasattr(sae, attr):
                raise TypeError(
                    f"an SAE basis needs a module with encode(), decode() and W_dec; {type(sae).__name__} has no {attr}"
                )
        self.sae = sae
        self.name = str(name)
        self.keep_error = bool(keep_error)
        self._names = names
        # copies of the SAE on other (device, dtype) pairs, with the fingerprint of the weights they copy
        self._copies: dict[tuple[torch.device, torch.dtype], tuple[Any, tuple[Any, ...]]] = {}

    def decoder(self, width: int) -> torch.Tensor:
        """Decoder rows ``(n_latents, width)``."""
        w = self.sae.W_dec
        w = w.detach() if isinstance(w, torch.Tensor) else torch.as_tensor(w)
        d_in = self.input_width()
        if w.ndim != 2 or width not in w.shape or (d_in is not None and d_in != width):
            trained = f" (the SAE was trained on activations of width {d_in})" if d_in is not None else ""
            raise ValueError(
                f"SAE decoder has shape {tuple(w.shape)} but the site has {width} features{trained}; "
                f"train or pick an SAE for a site of width {width}"
            )
        return w if w.shape[1] == width else w.T

    def input_width(self) -> int | None:
        """Width of the activations the SAE encodes (its ``d``), or ``None`` if it does not say.

        Read from ``sae.d`` (superwidgets' SAEs), ``sae.cfg.d_in`` (SAELens) or the encoder
        ``W_enc (d, n_latents)`` beside a decoder ``(n_latents, d)``. Without it, an SAE whose
        number of latents happens to equal the site's width would pass for one trained there.
        """
        d = getattr(self.sae, "d", None)
        if d is None:
            d = getattr(getattr(self.sae, "cfg", None), "d_in", None)
        if isinstance(d, int) and not isinstance(d, bool):
            return int(d)
        enc, dec = getattr(self.sae, "W_enc", None), self.sae.W_dec
        if isinstance(enc, torch.Tensor) and isinstance(dec, torch.Tensor) and enc.ndim == dec.ndim == 2:
            if enc.shape[0] == dec.shape[1] and enc.shape[1] == dec.shape[0]:
                return int(enc.shape[0])
        return None

    def size(self) -> int | None:
        w = self.sae.W_dec
        return int(min(w.shape) if w.shape[0] == w.shape[1] else max(w.shape))

    def names(self, width: int) -> list[str]:
        k = int(self.decoder(width).shape[0])
        if self._names is not None:
            if len(self._names) != k:
                raise ValueError(f"got {len(self._names)} latent names for an SAE with {k} latents")
            return list(self._names)
        return [f"latent {i}" for i in range(k)]

    def vectors(self, width: int) -> torch.Tensor:
        return self.decoder(width)

    # ------------------------------------------------------------------ devices and dtypes
    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the SAE's weights (of ``W_dec``; float32 if it is not a float tensor)."""
        w = self.sae.W_dec
        return w.dtype if isinstance(w, torch.Tensor) and w.is_floating_point() else torch.float32

    @property
    def device(self) -> torch.device:
        """The device of the SAE's weights (of ``W_dec``; the CPU if it is not a tensor)."""
        w = self.sae.W_dec
        return w.device if isinstance(w, torch.Tensor) else torch.device("cpu")

    def compute_dtype(self, h: torch.Tensor) -> torch.dtype:
        """The dtype codes of ``h`` are computed in: the wider of ``h``'s and the SAE's.

        A bfloat16 model with a float32 SAE encodes in float32 (casting the SAE down would
        round its encoder to 8 significant bits and change which latents fire); a float32
        model with a float16 SAE also encodes in float32.
        """
        if not h.is_floating_point():
            return self.dtype
        return torch.promote_types(h.dtype, self.dtype)

    def module_for(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Any:
        """The SAE module on ``device`` in ``dtype`` (default: the SAE's own dtype).

        The SAE itself when it already lives there; otherwise a copy, made on first use and
        kept per ``(device, dtype)`` (so a CPU-built SAE follows a CUDA model without moving its
        weights at every run). A copy is rebuilt when the original's weights change (an
        in-place update, ``load_state_dict`` or a new tensor), so it never goes stale. Returns
        ``None`` for an SAE that is not an ``nn.Module`` (it cannot be copied; :meth:`encode`
        then moves the activations to the SAE instead).
        """
        device = torch.device(device)
        dtype = self.dtype if dtype is None else dtype
        if _same_device(self.device, device) and dtype == self.dtype:
            return self.sae
        if not isinstance(self.sae, torch.nn.Module):
            return None
        tensors = [*self.sae.parameters(), *self.sae.buffers()]
        key = (device, dtype)
        stamp = tuple((t._version, t.data_ptr(), t.shape) for t in tensors)
        hit = self._copies.get(key)
        if hit is not None and hit[1] == stamp:
            return hit[0]
        memo: dict[int, Any] = {}
        with torch.no_grad():
            for t in tensors:
                moved = t.detach().to(device=device, dtype=dtype if t.is_floating_point() else t.dtype)
                memo[id(t)] = (
                    torch.nn.Parameter(moved, requires_grad=False) if isinstance(t, torch.nn.Parameter) else moved
                )
        module = copy.deepcopy(self.sae, memo)  # the weights come from memo: never duplicated on the SAE's device
        module.eval()
        self._copies[key] = (module, stamp)
        return module

    def _prepared(self, h: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """The module to encode ``h`` with and ``h`` in its dtype (and on its device)."""
        dtype = self.compute_dtype(h)
        module = self.module_for(h.device, dtype)
        if module is None:  # not an nn.Module: bring the activations to the SAE instead
            module = self.sae
            return module, h.to(device=self.device, dtype=self.dtype)
        return module, h.to(dtype)

    def encode(self, h: torch.Tensor) -> torch.Tensor:
        """Codes of every latent for activations ``h`` (features last), on ``h``'s device.

        Any model dtype or device works: the codes are computed in :meth:`compute_dtype`
        by the SAE on ``h``'s device (see :meth:`module_for`).
        """
        module, x = self._prepared(h)
        return module.encode(x).to(h.device)

    def encode_subset(self, h: torch.Tensor, idx: list[int]) -> torch.Tensor:
        """Codes of latents ``idx`` for activations ``h`` (``(..., len(idx))``), on ``h``'s device.

        Computed in :meth:`compute_dtype` by the SAE on ``h``'s device, through the SAE's own
        ``encode_subset`` when it has one (a thin matrix product), else a full ``encode``.
        """
        module, x = self._prepared(h)
        fn = getattr(module, "encode_subset", None)
        codes = fn(x, idx) if fn is not None else module.encode(x)[..., idx]
        return codes.to(h.device)

    def decode(self, codes: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        """The SAE's reconstruction of ``codes``, in ``like``'s dtype and on its device when given.

        Parameters
        ----------
        codes : Tensor, shape (..., n_latents)
            Latent codes (e.g. from :meth:`encode`).
        like : Tensor, optional
            The activations the codes came from; the result matches their dtype and device
            (default: the codes' device, computed in the SAE's dtype).
        """
        ref = like if like is not None else codes
        module, x = self._prepared(codes if like is None else codes.to(like.device))
        out = module.decode(x).to(ref.device)
        return out.to(like.dtype) if like is not None else out

    def to_dict(self, store: dict[str, torch.Tensor] | None = None, prefix: str = "") -> dict[str, Any]:
        return {"kind": "sae", "name": self.name, "keep_error": self.keep_error, "names": self._names}

    def __repr__(self) -> str:
        return f"SAE({self.name!r}, keep_error={self.keep_error})"


_BASIS_FIELDS = {
    "neurons": ("kind", "prefix"),
    "directions": ("kind", "vectors", "names"),
    "sae": ("kind", "name", "keep_error", "names"),
}


def basis_from_dict(
    d: dict[str, Any],
    tensors: dict[str, torch.Tensor] | None = None,
    saes: dict[str, Any] | None = None,
    *,
    where: str = "basis",
) -> Basis:
    """Rebuild a basis from :meth:`Basis.to_dict` output.

    ``tensors`` resolves ``{"$tensor": key}`` references; ``saes`` maps SAE
    names to modules for an SAE basis. Every field is checked first: a wrong
    one raises ``ValueError`` naming it (``where`` prefixes the field names,
    e.g. ``"edits.json: edits[1].basis"``).
    """
    if not isinstance(d, dict):
        raise ValueError(f'{where} must be an object such as {{"kind": "neurons"}}, got {describe(d)}')
    kind = d.get("kind")
    if not isinstance(kind, str) or kind not in _BASIS_FIELDS:
        raise ValueError(f"{where}.kind must be 'neurons', 'directions' or 'sae', got {describe(kind)}")
    unknown = sorted(set(d) - set(_BASIS_FIELDS[kind]))
    if unknown:
        raise ValueError(
            f"{where} has unknown field(s) {unknown}; a {kind} basis has the fields {list(_BASIS_FIELDS[kind])}"
        )
    if kind == "neurons":
        prefix = d.get("prefix", "unit ")
        if not isinstance(prefix, str):
            raise ValueError(f"{where}.prefix must be a string, got {describe(prefix)}")
        return Neurons(prefix=prefix)
    names = _names_field(d.get("names"), f"{where}.names")
    if kind == "directions":
        if "vectors" not in d:
            raise ValueError(f"{where}.vectors is missing; a directions basis needs its vectors (one row per feature)")
        vectors = _tensor_field(d["vectors"], tensors, f"{where}.vectors")
        try:
            return Directions(vectors, names=names)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    name = d.get("name", "sae")
    if not isinstance(name, str):
        raise ValueError(f"{where}.name must be a string (the SAE's name), got {describe(name)}")
    keep_error = d.get("keep_error", True)
    if not isinstance(keep_error, bool):
        raise ValueError(f"{where}.keep_error must be true or false, got {describe(keep_error)}")
    if not saes or name not in saes:
        raise ValueError(f"{where}: this edit uses the SAE {name!r}; pass saes={{{name!r}: sae_module}} to load it")
    return SAE(saes[name], name=name, keep_error=keep_error, names=names)
