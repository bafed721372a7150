"""An activation store on disk: sharded safetensors files written by a resumable, rank-split harvest.

Layout of a store directory::

    index.json                      written last: the store is complete when it exists
    rank-000-of-002.json            each rank's own progress (its shards, where to resume)
    shard-r000-00000.safetensors    "acts" (rows, d), "input_ids" (rows,), "row_sum" (d,) float64
    ...

Every shard holds ``rows_per_shard`` rows (a rank's last shard may hold fewer). The inputs are cut
into fixed chunks of ``chunk_size``; rank ``r`` of ``W`` harvests a contiguous run of chunks, so the
store's rows, read in shard order, are the rows of a one-process harvest in the same order, whatever
``W``. A killed harvest resumes at the chunk holding its first unwritten row and recomputes that
chunk with the same batch as before, so the rows are bit-identical to an uninterrupted run's.
:class:`ActivationStore` reads the shards memory-mapped and gathers random rows across them.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..engine.files import digest, write_pair
from ._util import Progress, dist_state, read_json, write_json

__all__ = ["FORMAT", "ActivationStore", "harvest"]

#: Format tag of ``index.json``.
FORMAT = "superwidgets.activations"
FORMAT_VERSION = 1

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_NP = {"F32": np.float32, "F16": np.float16, "BF16": np.int16, "I64": np.int64, "F64": np.float64}
_RESUME_HINT = "run the same harvest command again to resume it, or pass overwrite=True (--overwrite) to start over"


def _rank_file(out: Path, rank: int, world: int) -> Path:
    return out / f"rank-{rank:03d}-of-{world:03d}.json"


def _shard_name(rank: int, k: int) -> str:
    return f"shard-r{rank:03d}-{k:05d}.safetensors"


def _chunk_range(n_chunks: int, rank: int, world: int) -> tuple[int, int]:
    """The contiguous chunks ``[a, b)`` rank ``rank`` of ``world`` harvests."""
    return n_chunks * rank // world, n_chunks * (rank + 1) // world


def harvest(
    model: Any,
    site: str,
    inputs: Any,
    out: str | Path,
    *,
    rows_per_shard: int = 65536,
    chunk_size: int = 256,
    feature_dim: int | None = None,
    dtype: str = "float32",
    model_name: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    progress_file: str | Path | None = None,
) -> ActivationStore | None:
    """Stream the clean activations at ``site`` over ``inputs`` into a sharded store at ``out``.

    Parameters
    ----------
    model : nn.Module or Lens
        The model (read with a temporary forward hook, always removed) or a
        :class:`~superwidgets.Lens` (read under ``lens.off()``), as
        :func:`superwidgets.science.sae.harvest`.
    site : str
        Module path whose output is stored.
    inputs : Tensor, ndarray or data set
        The inputs ``(n, ...)``; every rank passes all of them (each harvests its slice).
    out : str or Path
        The store's directory (created).
    rows_per_shard : int
        Rows per shard file (a rank's last shard may hold fewer).
    chunk_size : int
        Inputs per forward pass. The chunks are fixed by input index, so a resumed or rank-split
        harvest runs the very same batches.
    feature_dim : int, optional
        The feature axis (default: 1 for 4-D conv activations, else the last); other axes are
        flattened into rows, as :func:`superwidgets.science.sae.harvest`.
    dtype : {"float32", "float16", "bfloat16"}
        Storage dtype of the activations (reading always gives float32).
    model_name : str, optional
        Recorded in the index (default: the model's class name).
    rank, world_size : int, optional
        This process's part: rank ``rank`` of ``world_size`` harvests a contiguous slice of the
        chunks and writes only its own shards. Default: the initialised ``torch.distributed`` group,
        else one process. Ranks need no process group: on a cluster each job of an array can pass its
        own ``rank`` and ``world_size``; the last to finish writes ``index.json``.
    overwrite : bool
        Delete a store already at ``out`` (of any settings) instead of resuming it.
    progress : bool
        Show a tqdm bar on rank 0.
    progress_file : str or Path, optional
        Rank 0 writes its progress there as JSON (see :class:`superwidgets.scale._util.Progress`).

    Returns
    -------
    ActivationStore or None
        The store once every rank has finished (always, under ``torch.distributed``: the ranks wait
        for each other), else ``None``.

    Raises
    ------
    ValueError
        Bad sizes, an unknown dtype, a site that does not run, or a store at ``out`` harvested with
        other settings (model, site, inputs, shard size, chunk size, dtype or number of ranks); the
        message names the differing field.
    """
    from ..science.sae import _check_size, _model_inputs
    from ..science.sae import harvest as harvest_rows

    rows_per_shard = _check_size("rows_per_shard", rows_per_shard)
    chunk_size = _check_size("chunk_size", chunk_size)
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {list(_DTYPES)}, got {dtype!r}")
    if not isinstance(site, str):
        raise ValueError(f"site must be a module path (str), got {site!r}")
    from ..engine.lens import Lens

    net = model.model if isinstance(model, Lens) else model
    if not isinstance(net, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module or a superwidgets.Lens, got {type(model).__name__}")
    d_rank, d_world = dist_state()
    rank = d_rank if rank is None else _check_size("rank", rank, low=0)
    world = d_world if world_size is None else _check_size("world_size", world_size)
    if rank >= world:
        raise ValueError(f"rank must be < world_size, got rank {rank} of {world}")
    X = _model_inputs(net, inputs).cpu()
    n = int(X.shape[0])
    out = Path(out)
    if overwrite and rank == 0 and out.exists():
        _remove_store(out)
    if overwrite and d_world > 1:
        import torch.distributed as dist

        dist.barrier()
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "model": model_name or type(net).__name__,
        "site": site,
        "dtype": dtype,
        "rows_per_shard": rows_per_shard,
        "chunk_size": chunk_size,
        "feature_dim": feature_dim,
        "world_size": world,
        "inputs": {"n": n, "shape": list(X.shape[1:]), "sha256": digest({"inputs": X})},
    }
    _check_existing(out, config)
    state_path = _rank_file(out, rank, world)
    n_chunks = -(-n // chunk_size)
    first, last = _chunk_range(n_chunks, rank, world)
    if state_path.exists():
        state = read_json(state_path, "harvest progress file", _RESUME_HINT)
        if state.get("config") != config:
            raise ValueError(_mismatch(state_path, state.get("config"), config))
    else:
        state = {"format": FORMAT, "config": config, "rank": rank, "chunks": [first, last], "shards": []}
        state.update(next_chunk=first, skip=0, done=first == last)
        write_json(state_path, state)
    bar = Progress(
        None if progress_file is None else Path(progress_file),
        "harvest",
        last - first,
        bar=progress,
        active=rank == 0,
        world_size=world,
        done=state["next_chunk"] - first,
    )
    pieces: list[list[Any]] = []  # [chunk, offset, acts, ids]: rows computed but not yet in a shard
    shape: list[int] | None = state.get("site_shape")

    def flush(count: int, next_after: int) -> None:
        take_a, take_i, got = [], [], 0
        while got < count:
            c, off, a, i = pieces[0]
            m = min(count - got, a.shape[0])
            take_a.append(a[:m])
            take_i.append(i[:m])
            got += m
            if m == a.shape[0]:
                pieces.pop(0)
            else:
                pieces[0] = [c, off + m, a[m:], i[m:]]
        acts = torch.cat(take_a)
        ids = torch.cat(take_i)
        k = len(state["shards"])
        name = _shard_name(rank, k)
        wide = acts.double()
        tensors = {"acts": acts.contiguous(), "input_ids": ids.contiguous(), "row_sum": wide.sum(0)}
        sha = digest(tensors)
        state["shards"].append(
            {
                "file": name,
                "rows": int(acts.shape[0]),
                "sha256": sha,
                "first_input": int(ids[0]),
                "last_input": int(ids[-1]),
                "sumsq": float(wide.pow(2).sum()),
            }
        )
        if pieces:
            state["next_chunk"], state["skip"] = pieces[0][0], pieces[0][1]
        else:
            state["next_chunk"], state["skip"] = next_after, 0
        state["done"] = state["next_chunk"] >= last
        write_pair(state_path, json.dumps(state, indent=1), out / name, tensors, {"sha256": sha})

    try:
        skip = int(state["skip"])
        pending = 0
        for c in range(int(state["next_chunk"]), last):
            xs = X[c * chunk_size : (c + 1) * chunk_size]
            acts = harvest_rows(model, site, xs, chunk_size=xs.shape[0], feature_dim=feature_dim).cpu()
            per = acts.shape[0] // xs.shape[0]
            if shape is None:
                shape = [per, int(acts.shape[1])]
                state["site_shape"] = shape
            elif [per, int(acts.shape[1])] != shape:
                raise ValueError(
                    f"inputs {c * chunk_size}..{c * chunk_size + xs.shape[0] - 1} give {per} rows of width "
                    f"{acts.shape[1]} per input, earlier ones {shape[0]} of width {shape[1]}; inputs must share a shape"
                )
            acts = acts.to(_DTYPES[dtype])
            ids = torch.arange(c * chunk_size, c * chunk_size + xs.shape[0]).repeat_interleave(per)
            if skip:
                acts, ids, off, skip = acts[skip:], ids[skip:], skip, 0
            else:
                off = 0
            pieces.append([c, off, acts, ids])
            pending += acts.shape[0]
            while pending >= rows_per_shard:
                flush(rows_per_shard, c + 1)
                pending -= rows_per_shard
            bar.update(1)
        if pending:
            flush(pending, last)
        if not state["done"]:
            state["done"] = True
            state["next_chunk"], state["skip"] = last, 0
            write_json(state_path, state)
    except BaseException:
        bar.close("failed")
        raise
    bar.close("done")
    if d_world > 1 and rank == d_rank and world == d_world:
        import torch.distributed as dist

        dist.barrier()
        if rank == 0:
            _write_index(out, config)
        dist.barrier()
        return ActivationStore(out)
    if all(_rank_done(out, r, world) for r in range(world)):
        _write_index(out, config)
        return ActivationStore(out)
    return None


def _remove_store(out: Path) -> None:
    """Delete the files of a store (only files this module writes; the folder stays)."""
    for p in out.iterdir():
        if p.is_file() and (
            p.name == "index.json"
            or (p.name.startswith("rank-") and p.suffix == ".json")
            or (p.name.startswith("shard-r") and p.suffix == ".safetensors")
        ):
            p.unlink()


def _mismatch(path: Path, old: Any, new: dict[str, Any]) -> str:
    if not isinstance(old, dict):
        return f"{path} is not a harvest progress file of this format; {_RESUME_HINT}"
    diff = [k for k in new if old.get(k) != new[k]]
    what = ", ".join(f"{k}: {old.get(k)!r} there, {new[k]!r} now" for k in diff)
    return (
        f"{path.parent} holds a harvest with other settings ({what}); "
        "pass overwrite=True (--overwrite) or another folder"
    )


def _check_existing(out: Path, config: dict[str, Any]) -> None:
    """Refuse a folder holding a store or progress files of other settings."""
    index = out / "index.json"
    if index.exists():
        old = read_json(index, "store index", _RESUME_HINT)
        cfg = {k: old.get(k) for k in config}
        if cfg != config:
            raise ValueError(_mismatch(index, cfg, config))
    for p in out.glob("rank-*-of-*.json"):
        if p.name.endswith(f"-of-{config['world_size']:03d}.json"):
            continue
        raise ValueError(
            f"{out} holds a harvest split over another number of ranks ({p.name}); resume it with that "
            f"number of ranks, or pass overwrite=True (--overwrite)"
        )


def _rank_done(out: Path, rank: int, world: int) -> bool:
    p = _rank_file(out, rank, world)
    if not p.exists():
        return False
    return bool(read_json(p, "harvest progress file", _RESUME_HINT).get("done"))


def _write_index(out: Path, config: dict[str, Any]) -> None:
    """Merge the ranks' progress files into ``index.json``."""
    shards: list[dict[str, Any]] = []
    shape = None
    for r in range(config["world_size"]):
        st = read_json(_rank_file(out, r, config["world_size"]), "harvest progress file", _RESUME_HINT)
        shape = shape or st.get("site_shape")
        for s in st["shards"]:
            shards.append({**s, "rank": r})
    h = hashlib.sha256()
    for s in shards:
        h.update(s["sha256"].encode())
    rows = sum(s["rows"] for s in shards)
    index = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        **config,
        "rows_per_input": None if shape is None else shape[0],
        "d": None if shape is None else shape[1],
        "rows": rows,
        "shards": shards,
        "sha256": h.hexdigest(),
    }
    write_json(out / "index.json", index)


def _memmap(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Memory-map tensors of a safetensors file (its header is 8 bytes of length, then JSON)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: truncated safetensors file; {_RESUME_HINT}")
        (size,) = struct.unpack("<Q", head)
        header = json.loads(f.read(size))
    out = {}
    for name in names:
        info = header.get(name)
        if info is None or info["dtype"] not in _NP:
            raise ValueError(f"{path}: no readable tensor {name!r}; the shard is not from superwidgets.scale.harvest")
        a, _b = info["data_offsets"]
        shape = tuple(info["shape"])
        out[name] = np.memmap(path, dtype=_NP[info["dtype"]], mode="r", offset=8 + size + a, shape=shape)
    return out


class ActivationStore:
    """A finished activation store, read memory-mapped.

    Parameters
    ----------
    path : str or Path
        The store's directory (its ``index.json`` is written when the harvest completes).

    Attributes
    ----------
    index : dict
        The parsed ``index.json``: ``model``, ``site``, ``dtype``, ``d``, ``rows``, ``site_shape``,
        ``inputs`` (count, shape, SHA-256), ``shards`` and ``sha256`` (of the shards' hashes, in order).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        ip = self.path / "index.json"
        if not ip.exists():
            raise FileNotFoundError(
                f"no store at {self.path}: index.json is missing (a harvest writes it when every rank has "
                f"finished); {_RESUME_HINT}"
            )
        self.index = read_json(ip, "store index", "harvest the store again")
        if self.index.get("format") != FORMAT:
            raise ValueError(f"{ip} is not an activation store index (format {self.index.get('format')!r})")
        sizes = [int(s["rows"]) for s in self.index["shards"]]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._maps: dict[int, dict[str, np.ndarray]] = {}
        self._dtype = _DTYPES[self.index["dtype"]]

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def __repr__(self) -> str:
        return f"ActivationStore({str(self.path)!r}, rows={len(self)}, d={self.d}, shards={self.n_shards})"

    @property
    def d(self) -> int:
        """Width of each row."""
        return int(self.index["d"] or 0)

    @property
    def n_shards(self) -> int:
        """Number of shard files."""
        return len(self.index["shards"])

    @property
    def sha256(self) -> str:
        """The store's content hash (SHA-256 of its shards' own hashes, in order)."""
        return str(self.index["sha256"])

    def _shard(self, i: int) -> dict[str, np.ndarray]:
        if i not in self._maps:
            self._maps[i] = _memmap(self.path / self.index["shards"][i]["file"], ("acts", "input_ids"))
        return self._maps[i]

    def _to_torch(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(a) if a.flags.writeable else np.array(a))
        return t.view(torch.bfloat16) if self._dtype == torch.bfloat16 else t

    def rows(self, idx: Any) -> torch.Tensor:
        """Rows ``idx`` (global row numbers, any order, repeats allowed) as float32 ``(len(idx), d)``."""
        idx_np = np.asarray(torch.as_tensor(idx).cpu(), dtype=np.int64).reshape(-1)
        if idx_np.size and (idx_np.min() < 0 or idx_np.max() >= len(self)):
            raise IndexError(f"row numbers must be in [0, {len(self)}), got {idx_np.min()}..{idx_np.max()}")
        out = torch.empty(idx_np.size, self.d, dtype=torch.float32)
        which = np.searchsorted(self._offsets, idx_np, side="right") - 1
        for s in np.unique(which):
            sel = np.nonzero(which == s)[0]
            local = idx_np[sel] - self._offsets[s]
            order = np.argsort(local, kind="stable")  # read pages in file order
            got = self._shard(int(s))["acts"][local[order]]
            out[torch.from_numpy(sel[order])] = self._to_torch(got).float()
        return out

    def input_ids(self, idx: Any) -> torch.Tensor:
        """The input each row ``idx`` came from, ``(len(idx),)`` int64."""
        idx_np = np.asarray(torch.as_tensor(idx).cpu(), dtype=np.int64).reshape(-1)
        which = np.searchsorted(self._offsets, idx_np, side="right") - 1
        out = np.empty(idx_np.size, dtype=np.int64)
        for s in np.unique(which):
            sel = np.nonzero(which == s)[0]
            out[sel] = self._shard(int(s))["input_ids"][idx_np[sel] - self._offsets[s]]
        return torch.from_numpy(out)

    def read_all(self) -> torch.Tensor:
        """Every row, in order, as one float32 tensor ``(rows, d)`` (for stores that fit in memory)."""
        parts = [self._to_torch(self._shard(i)["acts"]).float() for i in range(self.n_shards)]
        return torch.cat(parts) if parts else torch.empty(0, self.d)

    def stats(self) -> tuple[torch.Tensor, float]:
        """``(mean (d,), mean squared distance to the mean)`` of all rows, from per-shard float64 sums."""
        total = torch.zeros(self.d, dtype=torch.float64)
        sumsq = 0.0
        for s in self.index["shards"]:
            m = _memmap(self.path / s["file"], ("row_sum",))["row_sum"]
            total += torch.from_numpy(np.array(m))
            sumsq += float(s["sumsq"])
            del m
        n = max(1, len(self))
        mean = total / n
        var = max(0.0, sumsq / n - float(mean.pow(2).sum()))
        return mean.float(), var

    def verify(self) -> None:
        """Re-hash every shard and compare with the index; raise ``ValueError`` naming the first that differs."""
        from safetensors.torch import load_file

        for s in self.index["shards"]:
            p = self.path / s["file"]
            if digest(load_file(str(p))) != s["sha256"]:
                raise ValueError(f"{p} changed since the harvest (SHA-256 differs); harvest the store again")
