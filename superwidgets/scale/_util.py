"""Small shared pieces of :mod:`superwidgets.scale`: torch.distributed context, atomic JSON, progress files."""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from pathlib import Path
from typing import Any

import torch

#: Environment variables that ``torchrun`` (and most cluster launchers through it) set in every rank.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def descendants(pid: int) -> list[int]:
    """Every live descendant process of ``pid`` (read from ``/proc``; empty where there is none).

    ``torchrun`` starts each rank in a session of its own, so killing the launcher's process group
    does not reach them; this finds them by parentage instead.
    """
    parent: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for d in entries:
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
                parent[int(d)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_json(path: Path, what: str, hint: str) -> dict[str, Any]:
    """Read a JSON object, or raise ``ValueError`` naming the file, what it should be and ``hint``."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable {what} ({exc}); {hint}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a {what} (a JSON object was expected); {hint}")
    return obj


def dist_state() -> tuple[int, int]:
    """``(rank, world_size)`` of an initialised default process group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed(device: str | torch.device | None) -> tuple[int, int, torch.device, bool]:
    """Join the process group ``torchrun`` describes in the environment (if any) and pick this rank's device.

    Returns ``(rank, world_size, device, started)``: ``started`` is True when this call initialised the
    group. The group stays up for later calls in the same process (re-creating one on ``torchrun``'s
    port can hang) and is destroyed at exit. Backend: ``nccl`` for CUDA devices, ``gloo`` otherwise. With no
    ``torchrun`` environment and no group, it is a single process: ``(0, 1, device, False)``.
    """
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), dev, False
    if all(k in os.environ for k in TORCHRUN_ENV) and int(os.environ["WORLD_SIZE"]) > 1:
        if not dist.is_available():
            raise RuntimeError("this torch build has no torch.distributed; install a build with it to run on ranks")
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        import atexit

        atexit.register(_destroy)
        return dist.get_rank(), dist.get_world_size(), dev, True
    return 0, 1, dev, False


def _destroy() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


class Progress:
    """Progress of a long job on rank 0: a tqdm bar (optional) and a JSON file a notebook can poll.

    The file (written atomically, at most every ``every_s`` seconds and at the end) holds ``job``,
    ``state`` (``"running"``, ``"done"`` or ``"failed"``), ``done``, ``total``, ``fraction``,
    ``elapsed_s``, ``rate_per_s``, ``eta_s``, ``pid``, ``world_size``, ``resumed_from`` (the units
    already done when this run started: > 0 when it resumed) and the latest ``metrics``.

    Parameters
    ----------
    path : Path or None
        Where to write the JSON (``None``: no file).
    job : str
        What runs (``"harvest"``, ``"train"``, ``"sweep"``).
    total : int
        Units of work (steps, chunks).
    bar : bool
        Show a ``tqdm.auto`` bar.
    active : bool
        False on ranks other than 0: nothing is shown or written.
    world_size : int
        Ranks in the job (recorded in the file).
    done : int
        Units already done (resumed jobs).
    every_s : float
        Least seconds between two writes of the file.
    """

    def __init__(
        self,
        path: Path | None,
        job: str,
        total: int,
        *,
        bar: bool = False,
        active: bool = True,
        world_size: int = 1,
        done: int = 0,
        every_s: float = 0.5,
    ) -> None:
        self.path, self.job, self.total, self.active = path, job, int(total), active
        self.world_size, self.done, self.start_done, self.every_s = world_size, int(done), int(done), every_s
        self.t0 = time.monotonic()
        self.last = -math.inf
        self.metrics: dict[str, float] = {}
        self.bar = None
        if active and bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc=job, unit="step" if job == "train" else "chunk")
        self.write("running", force=True)

    def update(self, n: int = 1, **metrics: float) -> None:
        """``n`` more units done; ``metrics`` (numbers) replace the shown ones."""
        self.done += n
        if metrics:
            self.metrics.update({k: float(v) for k, v in metrics.items()})
        if self.bar is not None:
            if metrics:
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in self.metrics.items()}, refresh=False)
            self.bar.update(n)
        self.write("running")

    def write(self, state: str, *, force: bool = False) -> None:
        """Write the JSON file now if ``force`` or ``every_s`` passed since the last write."""
        if not self.active or self.path is None:
            return
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        elapsed = now - self.t0
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        left = self.total - self.done
        write_json(
            self.path,
            {
                "job": self.job,
                "state": state,
                "done": self.done,
                "total": self.total,
                "fraction": self.done / self.total if self.total else 1.0,
                "elapsed_s": round(elapsed, 3),
                "rate_per_s": round(rate, 4),
                "eta_s": round(left / rate, 1) if rate > 0 else None,
                "pid": os.getpid(),
                "world_size": self.world_size,
                "resumed_from": self.start_done,
                "metrics": self.metrics,
            },
        )

    def close(self, state: str = "done") -> None:
        """Final write (``state`` ``"done"`` or ``"failed"``) and close the bar."""
        self.write(state, force=True)
        if self.bar is not None:
            self.bar.close()
            self.bar = None
