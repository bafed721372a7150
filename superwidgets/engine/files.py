"""Two files saved as one: a JSON document and its safetensors tensors, written atomically as a pair.

Used by :func:`superwidgets.engine.export.save_edits` (edit sets) and
:func:`superwidgets.science.sae.save_sae` (SAEs). Both files carry the tensors' SHA-256 (the JSON in
a field of the caller's choosing, the safetensors file in its ``sha256`` metadata), so a loader can
refuse a pair that was not saved together.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path

import torch

__all__ = ["digest", "unshare", "write_pair"]


def digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the tensors' names, dtypes, shapes and bytes (identical for a save and its reload)."""
    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        h.update(json.dumps([key, str(t.dtype), list(t.shape)]).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def unshare(store: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Copy tensors whose memory overlaps an earlier one's (safetensors refuses shared memory)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, t in store.items():
        ptr = t.untyped_storage().data_ptr() if t.numel() else 0
        if ptr and ptr in seen:
            t = t.clone()
        seen.add(ptr)
        out[key] = t
    return out


def _temp(target: Path) -> Path:
    """An unused file name beside ``target`` (same directory, so a rename onto ``target`` is atomic)."""
    while True:
        name = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        if not name.exists():
            return name


def write_pair(
    json_path: Path, text: str, tensor_path: Path, tensors: dict[str, torch.Tensor] | None, metadata: dict[str, str]
) -> None:
    """Write ``text`` to ``json_path`` and ``tensors`` to ``tensor_path``, all or nothing.

    Both go to temporary files in their own directory first and are renamed into place; if
    anything fails, the previous pair stays as it was and no temporary file is left. With no
    tensors, an older ``tensor_path`` is removed after the JSON is in place.
    """
    from safetensors.torch import save_file

    json_path.parent.mkdir(parents=True, exist_ok=True)
    temps: list[Path] = []
    backup: Path | None = None
    try:
        json_tmp = _temp(json_path)
        with open(json_tmp, "x", encoding="utf-8") as f:  # a new file, with the usual permissions
            temps.append(json_tmp)
            f.write(text)
        if tensors:
            tensor_tmp = _temp(tensor_path)
            temps.append(tensor_tmp)
            save_file(tensors, str(tensor_tmp), metadata=metadata)
            if tensor_path.exists():  # kept until the JSON is in place, to restore on failure
                backup = _temp(tensor_path)
                try:
                    os.link(tensor_path, backup)
                except OSError:
                    shutil.copy2(tensor_path, backup)
            os.replace(tensor_tmp, tensor_path)
            temps.remove(tensor_tmp)
            try:
                os.replace(json_tmp, json_path)
            except BaseException:  # put the previous tensor file back (or remove the new one)
                if backup is not None:
                    os.replace(backup, tensor_path)
                    backup = None
                else:
                    tensor_path.unlink(missing_ok=True)
                raise
        else:
            os.replace(json_tmp, json_path)
        temps.remove(json_tmp)
    finally:
        for t in [*temps, *([backup] if backup is not None else [])]:
            t.unlink(missing_ok=True)
    if not tensors:
        tensor_path.unlink(missing_ok=True)  # a tensor file of an older save
