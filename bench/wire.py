"""Bytes on the wire for a float32 array trait, against the raw float32 bytes.

The array goes through ``superwidgets.widgets.base.array_to_json`` (the ``Array``
trait's serializer), then through ipywidgets' own message splitting
(``ipywidgets.widgets.widget._remove_buffers``) into the comm message
``{"method": "update", "state": ..., "buffer_paths": ...}`` that
``Widget.send_state`` sends, packed as Jupyter packs it (``jupyter_client``'s
``json_packer``). Total = JSON bytes + binary buffer bytes. The Jupyter message
envelope (header, parent header, metadata; several hundred bytes) is the same for
any update and is not counted.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from ipywidgets.widgets.widget import _remove_buffers

from superwidgets.widgets.base import array_from_json, array_to_json

from ._common import row, table

try:
    from jupyter_client.session import json_packer
except ImportError:  # pragma: no cover - jupyter_client comes with ipykernel

    def json_packer(obj: Any) -> bytes:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False).encode("utf8")


SIZES = (16, 1_000, 100_000)
TARGET = 1.05
#: Below this many values the fixed JSON envelope (~100 B) dominates; no target there.
MIN_SIZE_FOR_TARGET = 1_000
TRAIT = "edited"  # a real Array trait name of FeatureLab


def message_bytes(state: dict[str, Any]) -> tuple[int, int, int]:
    """(json bytes, buffer bytes, number of buffers) of one ``update`` comm message."""
    stripped, paths, buffers = _remove_buffers(state)
    msg = {"method": "update", "state": stripped, "buffer_paths": paths}
    js = len(json_packer(msg))
    buf = sum(memoryview(b).nbytes for b in buffers)
    return js, buf, len(buffers)


def run(reps: int | None = None) -> tuple[list[dict[str, Any]], str]:
    del reps  # byte counts are exact
    rng = np.random.default_rng(0)
    rows, info_rows = [], []
    for n in SIZES:
        arr = rng.standard_normal(n).astype(np.float32)
        raw = arr.nbytes
        encoded = array_to_json(arr)
        back = array_from_json({**encoded, "view": memoryview(bytes(encoded["view"]))})
        assert back is not None and np.array_equal(back, arr), "array_to_json does not round-trip"

        js, buf, nbuf = message_bytes({TRAIT: encoded})
        ours = js + buf
        list_js, list_buf, _ = message_bytes({TRAIT: arr.tolist()})
        as_list = list_js + list_buf

        rows.append(
            row(
                f"binary_f32_{n}",
                ours,
                raw,
                TARGET if n >= MIN_SIZE_FOR_TARGET else None,
                unit="bytes",
                values=n,
                json_bytes=js,
                buffer_bytes=buf,
                buffers=nbuf,
                json_list_bytes=as_list,
            )
        )
        info_rows.append((f"json_list_f32_{n}", as_list, raw, n))
    for name, as_list, raw, n in info_rows:  # printed after the figures with a target
        rows.append(row(name, as_list, raw, None, unit="bytes", values=n, info=True))
    return rows, _body(rows)


def _body(rows: list[dict[str, Any]]) -> str:
    def notes(r: dict[str, Any]) -> str:
        if r["name"].startswith("binary"):
            extra = "" if r["target"] is not None else "; fixed envelope dominates, no target"
            return (
                f"JSON {r['json_bytes']} B + {r['buffers']} buffer of {r['buffer_bytes']:,} B; "
                f"{r['json_list_bytes'] / r['ours']:.1f}× smaller than a JSON list{extra}"
            )
        return "information: the same values as a JSON list"

    return (
        table(rows, notes)
        + f"""

A float32 array of standard-normal values (seeded) set on an `Array` trait, serialised by
`array_to_json` and split by ipywidgets' `_remove_buffers` into the `update` comm message;
bytes = packed JSON (`jupyter_client` `json_packer`) + binary buffers; baseline = raw
float32 bytes (4 per value). The target (≤ {TARGET}) applies from {MIN_SIZE_FOR_TARGET:,}
values up; below that the ~100-byte JSON part (`method`, `dtype`, `shape`, `buffer_paths`)
dominates whatever the encoding. `json_list_*` rows show the same values sent as a JSON
list of floats (each float32 printed as a ~19-character float64 repr), for information.
The Jupyter envelope (header, parent header, metadata) is identical for every update and
is not counted.
"""
    )
