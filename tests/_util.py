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
