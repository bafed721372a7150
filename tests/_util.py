"""Helpers shared by the Python tests."""

from __future__ import annotations

import torch
from torch import nn


def hook_count(model: nn.Module) -> int:
    """Every forward/pre/backward hook on every module of ``model``."""
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_forward_hooks_with_kwargs", {}))
        n += "forward" in m.__dict__  # the Lens's instance-level forward wrapper
    return n


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"parameter or buffer {k} changed"


def check_retraining(name: str, tmp_path, monkeypatch) -> dict:
    """Retrain zoo model ``name`` twice into ``tmp_path``; assert determinism and agreement with the shipped weights.

    Two runs on this machine must give the same bits (the training script is deterministic). The
    shipped weights were trained on another CPU, whose SIMD kernels may round differently in the last
    bit, so they are compared by what they do: the same model-card metrics (within 0.01) and the same
    predictions on ≥ 98 % of the inputs. Returns the card of the retrained model.
    """
    from safetensors.torch import load_file

    from superwidgets.zoo import registry, train

    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        monkeypatch.setattr(train, "WEIGHTS", out)
        card = train.train(name)
        runs.append((card, load_file(str(out / f"{name}.safetensors"))))
    (card, new), (card2, new2) = runs
    assert card == card2
    assert new.keys() == new2.keys()
    for k in new:
        assert torch.equal(new[k], new2[k]), f"two trainings on this machine differ in {k}"
    shipped_card = registry.card(name)
    assert card.keys() == shipped_card.keys()
    for k, v in card.items():
        if isinstance(v, float) and ("accuracy" in k or "auc" in k or k.endswith("_r2")):
            assert abs(v - shipped_card[k]) <= 0.01, f"{name}: {k} {v} vs shipped {shipped_card[k]}"
    model, data = registry.load(name)
    fresh = registry._entry(name).architecture()
    fresh.load_state_dict(new)
    fresh.eval()
    x = model.world_inputs(data) if hasattr(model, "world_inputs") else data.X
    with torch.no_grad():
        agree = (model(x).argmax(-1) == fresh(x).argmax(-1)).float().mean().item()  # classes last (also per position)
    assert agree >= 0.98, f"{name}: retrained model agrees with the shipped one on {agree:.1%} of inputs"
    return card


def kill_job(leader: int, ranks: list[int]) -> None:
    """SIGKILL a launcher's process group and every rank's (torchrun puts each rank in a session of its own,
    so killing the launcher's group alone leaves them running as orphans)."""
    import os
    import signal

    for pid in [leader, *ranks]:
        for kill in (os.killpg, os.kill):  # the group where it leads one, and the process itself
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def run_group(cmd: list[str], *, timeout: float, **kwargs):
    """``subprocess.run(cmd, capture_output=True, text=True)`` in its own process group; on a timeout the
    whole group is killed and every process it started (``torchrun``'s ranks, each in a session of its
    own), then ``TimeoutExpired`` is raised."""
    import subprocess

    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        from superwidgets.scale._util import descendants

        kill_job(proc.pid, descendants(proc.pid))
        proc.communicate()
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
