"""nnsight's tracing reads the source of its ``with`` block, so the peer's call lives in a file of its own."""

from __future__ import annotations

from typing import Any

import torch


def steer(nm: Any, x: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """Add ``add`` to the output of module ``1`` with nnsight and return the model's output."""
    with nm.trace(x):
        nm[1].output = nm[1].output + add
        out = nm.output.save()
    return out
