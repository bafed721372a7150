"""Edit sets on disk (JSON + safetensors) and as runnable Python code."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .bases import SAE, Basis, Directions, Neurons, describe
from .edits import Edit
from .files import digest, unshare, write_pair

__all__ = ["FORMAT", "edits_to_code", "load_edits", "save_edits"]

FORMAT = "superwidgets.edits"
#: Version 2 writes the tensors' SHA-256 into both files (version 1 files still load, unchecked).
VERSION = 2


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_suffix(".json"), p.with_suffix(".safetensors")


def save_edits(edits: Sequence[Edit], path: str | Path) -> Path:
    """Save edits as ``PATH.json`` (structure) and ``PATH.safetensors`` (tensors, if any).

    Returns the JSON path. Nothing is pickled; :func:`load_edits` reads it back
    and reproduces outputs exactly. A tensor used by several edits (one
    ``Directions`` basis shared by two edits) is stored once.

    Saving is all or nothing: both files are written to temporary files in the
    same directory and renamed into place, so a failed save leaves the previous
    save intact and no temporary files. Both files carry the SHA-256 of the
    tensors, and :func:`load_edits` refuses a pair that was not saved together.

    Raises
    ------
    TypeError
        An edit that cannot be saved (a basis without ``to_dict``, a value that is not JSON).
    """

    json_path, tensor_path = _paths(path)
    store: dict[str, torch.Tensor] = {}
    items = []
    for i, e in enumerate(edits):
        if not isinstance(e, Edit):
            raise TypeError(f"edits[{i}] is a {type(e).__name__}, not an Edit; save lens.edits or a list of Edit")
        try:
            item = e.to_dict(store, f"edit{i}.")
        except NotImplementedError:
            kind = type(e.basis).__name__
            raise TypeError(
                f"edits[{i}] ({e.name!r}) cannot be saved: its basis {kind} has no to_dict(); "
                f"implement {kind}.to_dict() or use a Neurons, Directions or SAE basis"
            ) from None
        try:
            json.dumps(item, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"edits[{i}] ({e.name!r}) cannot be saved as JSON: {exc}") from None
        items.append(item)
    store = unshare(store)
    digest_ = digest(store) if store else None
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "edits": items,
        "tensors": tensor_path.name if store else None,
        "tensors_sha256": digest_,
    }
    text = json.dumps(doc, indent=1) + "\n"
    write_pair(json_path, text, tensor_path, store, {"format": FORMAT, "sha256": str(digest_)})
    return json_path


def _read_tensors(tfile: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and metadata of a safetensors file, or ``ValueError`` naming it."""
    from safetensors import safe_open

    try:
        with safe_open(str(tfile), "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # SafetensorError, OSError, ...
        raise ValueError(
            f"{tfile}: not a readable safetensors file ({exc}); it is truncated or corrupt: save the edit set again"
        ) from None
    return tensors, meta


def load_edits(path: str | Path, saes: dict[str, Any] | None = None) -> list[Edit]:
    """Read an edit set written by :func:`save_edits` (unbound edits; attach them with ``lens.add``).

    The whole file is checked before anything is returned: every edit, or an error.

    Raises
    ------
    FileNotFoundError
        No ``PATH.json``.
    ValueError
        Not an edit set; a field of the wrong type or a missing one (the message names the
        file and the field, e.g. ``edits[1].enabled``); a missing, corrupt or mismatched
        tensor file; or an SAE the edits need but ``saes`` lacks.
    """
    json_path, _ = _paths(path)
    if not json_path.exists():
        raise FileNotFoundError(f"no edit set at {json_path}")
    try:
        doc = json.loads(json_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{json_path} is not valid JSON: {exc}; save the edit set again") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{json_path} is not a superwidgets edit set (no 'format': {FORMAT!r})")
    version = doc.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{json_path}: version must be a positive integer, got {describe(version)}")
    if version > VERSION:
        raise ValueError(
            f"{json_path}: the edit set has format version {version}; this superwidgets reads up to "
            f"{VERSION}: upgrade superwidgets"
        )
    if "edits" not in doc:
        raise ValueError(f"{json_path}: 'edits' is missing; an edit set has a list of edits (possibly empty)")
    entries = doc["edits"]
    if not isinstance(entries, list):
        raise ValueError(f"{json_path}: edits must be a list of edits, got {describe(entries)}")
    tname = doc.get("tensors")
    tensors = None
    if tname is not None:
        if not isinstance(tname, str) or Path(tname).name != tname or not tname.endswith(".safetensors"):
            raise ValueError(
                f"{json_path}: tensors must be the name of a .safetensors file in the same folder, "
                f"or null, got {describe(tname)}"
            )
        want = doc.get("tensors_sha256")
        if version >= 2 and not (isinstance(want, str) and len(want) == 64):
            raise ValueError(
                f"{json_path}: tensors_sha256 must be the 64-digit SHA-256 written by save_edits, "
                f"got {describe(want)}; save the edit set again"
            )
        tfile = json_path.with_name(tname)
        if not tfile.exists():
            raise ValueError(f"the edit set's tensors {tfile} are missing; copy it next to {json_path.name}")
        tensors, meta = _read_tensors(tfile)
        if version >= 2:
            found = meta.get("sha256")
            if found != want:
                seen = f"is {found[:12]}..." if isinstance(found, str) else "is not recorded"
                raise ValueError(
                    f"{json_path}: its tensor file {tfile.name} is from another save (its tensors' SHA-256 {seen}, "
                    f"{json_path.name} expects {want[:12]}...): the two files were not saved together; "
                    "save the edit set again or copy the matching tensor file"
                )
            if digest(tensors) != want:
                raise ValueError(
                    f"{tfile}: its tensors were modified or corrupted after {json_path.name} was saved "
                    "(their SHA-256 does not match); save the edit set again"
                )
    out = [Edit.from_dict(d, tensors, saes, where=f"{json_path}: edits[{i}]") for i, d in enumerate(entries)]
    return out


def _literal(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"torch.tensor({value.tolist()!r})"
    if isinstance(value, tuple):
        return repr(list(value))
    return repr(value)


def _basis_code(basis: Basis) -> str:
    if isinstance(basis, Neurons):
        return f"sw.Neurons(prefix={basis.prefix!r})"
    if isinstance(basis, Directions):
        return f"sw.Directions({_literal(basis.vectors(basis.width))}, names={basis.names(basis.width)!r})"
    if isinstance(basis, SAE):
        return f"sw.SAE(saes[{basis.name!r}], name={basis.name!r}, keep_error={basis.keep_error!r})"
    raise TypeError(f"cannot export a basis of type {type(basis).__name__}")


def edits_to_code(edits: Sequence[Edit], *, model: str = "model", inputs: str | None = None) -> str:
    """A runnable Python snippet that rebuilds ``edits`` on a new Lens and reproduces the numbers.

    Parameters
    ----------
    edits : sequence of Edit
        The edits, in order.
    model : str
        The expression that names the model in the snippet's namespace.
    inputs : str, optional
        An expression for the inputs; if given the snippet ends with
        ``result = lens.run(<inputs>)``.
    """
    lines = ["import torch", "", "import superwidgets as sw", ""]
    if any(isinstance(e.basis, SAE) for e in edits):
        lines.insert(3, "# needs `saes`: a dict of the SAE modules by name")
    lines.append(f"lens = sw.Lens({model})")
    for e in edits:
        op = e.op
        args = ", ".join(f"{f.name}={_literal(getattr(op, f.name))}" for f in dataclasses.fields(op))  # type: ignore[arg-type]
        extra = (
            [f"basis={_basis_code(e.basis)}"] if not isinstance(e.basis, Neurons) or e.basis.prefix != "unit " else []
        )
        if e.element != 0:
            extra.append(f"element={e.element!r}")
        if e.feature_dim is not None:
            extra.append(f"feature_dim={e.feature_dim!r}")
        if not e.enabled:
            extra.append("enabled=False")
        extra.append(f"name={e.name!r}")
        lines.append(f"lens.edit({e.site!r}, sw.{type(op).__name__}({args}), {', '.join(extra)})")
    if inputs is not None:
        lines.append(f"result = lens.run({inputs})")
    return "\n".join(lines) + "\n"
