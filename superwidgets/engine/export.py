"""Edit sets on disk (JSON + safetensors) and as runnable Python code."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .bases import SAE, Basis, Directions, Neurons
from .edits import Edit

__all__ = ["FORMAT", "edits_to_code", "load_edits", "save_edits"]

FORMAT = "superwidgets.edits"
VERSION = 1


def _paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    return p.with_suffix(".json"), p.with_suffix(".safetensors")


def save_edits(edits: Sequence[Edit], path: str | Path) -> Path:
    """Save edits as ``PATH.json`` (structure) and ``PATH.safetensors`` (tensors, if any).

    Returns the JSON path. Nothing is pickled; :func:`load_edits` reads it back
    and reproduces outputs exactly.
    """
    from safetensors.torch import save_file

    json_path, tensor_path = _paths(path)
    store: dict[str, torch.Tensor] = {}
    items = [e.to_dict(store, f"edit{i}.") for i, e in enumerate(edits)]
    doc = {"format": FORMAT, "version": VERSION, "edits": items, "tensors": tensor_path.name if store else None}
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(doc, indent=1) + "\n")
    if store:
        save_file(store, str(tensor_path), metadata={"format": FORMAT})
    elif tensor_path.exists():
        tensor_path.unlink()
    return json_path


def load_edits(path: str | Path, saes: dict[str, Any] | None = None) -> list[Edit]:
    """Read an edit set written by :func:`save_edits` (unbound edits; attach them with ``lens.add``).

    Raises
    ------
    ValueError
        Not an edit set, a missing tensor file, or an SAE the edits need but ``saes`` lacks.
    """
    from safetensors.torch import load_file

    json_path, _ = _paths(path)
    if not json_path.exists():
        raise FileNotFoundError(f"no edit set at {json_path}")
    try:
        doc = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{json_path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{json_path} is not a superwidgets edit set (no 'format': {FORMAT!r})")
    tensors = None
    if doc.get("tensors"):
        tfile = json_path.with_name(doc["tensors"])
        if not tfile.exists():
            raise ValueError(f"the edit set's tensors {tfile} are missing; copy it next to {json_path.name}")
        tensors = load_file(str(tfile))
    return [Edit.from_dict(d, tensors, saes) for d in doc["edits"]]


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
