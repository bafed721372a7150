"""Past one machine: an activation store on disk, SAE training and sweeps under ``torch.distributed``.

* :func:`harvest` streams a site's activations into sharded safetensors files (resumable, split over
  ranks); :class:`ActivationStore` reads them memory-mapped.
* :func:`train` trains the SAEs of :mod:`superwidgets.science.sae` on a store, on one process or
  under ``torchrun`` (DDP), with atomic checkpoints and exact resume.
* :func:`sweep` runs :meth:`superwidgets.Lens.sweep` over a cohort split across ranks.
* ``python -m superwidgets.scale {harvest,train,sweep} --help``: the same from a terminal,
  ``torchrun`` or a cluster launcher; :func:`launch` and :func:`read_progress` start it from a
  notebook and follow it. See ``docs/scale.md``.

Nothing here is imported by ``import superwidgets``; ``torch.distributed`` is touched only when a
function runs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .store import ActivationStore, harvest
from .sweep import sweep
from .train import train

__all__ = ["ActivationStore", "free_port", "harvest", "launch", "read_progress", "stop", "sweep", "train"]


def free_port() -> int:
    """A TCP port nobody listens on now (for ``--master_port`` of a local ``torchrun``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(
    args: Sequence[str],
    *,
    nproc: int = 1,
    log: str | Path | None = None,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``python -m superwidgets.scale ARGS`` in the background, on ``nproc`` ranks of this machine.

    Parameters
    ----------
    args : sequence of str
        The subcommand and its options, e.g. ``["train", "--store", "acts", "--out", "run1"]``.
    nproc : int
        Ranks: 1 runs the plain module; more run it under ``python -m torch.distributed.run
        --nproc_per_node=nproc`` on a free port.
    log : str or Path, optional
        File for the processes' stdout and stderr (default: discarded; progress comes from the JSON
        file, see :func:`read_progress`).
    cwd : str or Path, optional
        Working folder (where a ``module:function`` model is imported from).
    env : dict, optional
        Extra environment variables.

    Returns
    -------
    subprocess.Popen
        The launcher process: ``.poll()`` is ``None`` while it runs; :func:`stop` stops it and
        every rank (``proc.kill()`` alone would leave ``torchrun``'s ranks running).
    """
    import os

    if isinstance(args, str) or not all(isinstance(a, str) for a in args):
        raise TypeError(f"args must be a list of strings such as ['train', '--store', 'acts'], got {args!r}")
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an integer >= 1, got {nproc!r}")
    cmd = [sys.executable]
    if nproc > 1:
        cmd += ["-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={free_port()}"]
    cmd += ["-m", "superwidgets.scale", *args]
    out = open(log, "ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env={**os.environ, **(env or {})})
    finally:
        if log is not None:
            out.close()


def stop(proc: subprocess.Popen, *, timeout: float = 10.0) -> int:
    """Stop a run started by :func:`launch`: SIGTERM (``torchrun`` passes it on to its ranks), then
    SIGKILL for the launcher and every rank still alive after ``timeout`` seconds.

    Rerunning the same command resumes from the last checkpoint.

    Parameters
    ----------
    proc : subprocess.Popen
        What :func:`launch` returned.
    timeout : float
        Seconds to wait for a clean exit before killing.

    Returns
    -------
    int
        The launcher's exit code.
    """
    import os
    import signal
    import time

    from ._util import alive, descendants

    ranks = descendants(proc.pid)  # before the launcher dies and they are re-parented
    if proc.poll() is None:
        proc.terminate()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc.poll() is None or any(alive(p) for p in ranks)):
        time.sleep(0.05)
    for pid in [*ranks, proc.pid]:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return proc.wait()


def read_progress(path: str | Path) -> dict[str, Any] | None:
    """The progress JSON a rank-0 process writes (``None`` until it exists).

    Keys: ``job``, ``state`` (``"running"``, ``"done"``, ``"stopped"``, ``"failed"``), ``done``,
    ``total``, ``fraction``, ``elapsed_s``, ``rate_per_s``, ``eta_s``, ``pid``, ``world_size``,
    ``resumed_from`` (what was already done when the run started: > 0 after a resume) and ``metrics``
    (train: ``loss``, ``mse``, ``l0``, ``dead_fraction``).
    """
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:  # written atomically, so only a foreign file gets here
        raise ValueError(f"{p} is not a progress file written by superwidgets.scale") from None
