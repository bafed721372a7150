"""Deterministic training of the reference models.

Usage: ``python -m superwidgets.zoo.train NAME [NAME ...]`` (or ``all``).
Writes ``weights/NAME.safetensors`` and a ``weights/NAME.json`` model card.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch import nn

from .registry import WEIGHTS, _entry, available

__all__ = ["main", "train"]


def train(name: str, *, seed: int = 0) -> dict[str, float]:
    """Train model ``name`` deterministically on CPU and save its weights.

    Returns
    -------
    dict
        The model card: train and test accuracy, steps, seed.
    """
    from safetensors.torch import save_file

    entry = _entry(name)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    model = entry.architecture()
    data = entry.data()
    x_tr, y_tr = data.X[data.train], data.y[data.train]
    x_te, y_te = data.X[data.test], data.y[data.test]
    opt = torch.optim.AdamW(model.parameters(), lr=entry.lr, weight_decay=entry.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(entry.train_steps):
        opt.zero_grad()
        loss = loss_fn(model(x_tr), y_tr)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc_tr = (model(x_tr).argmax(1) == y_tr).float().mean().item()
        acc_te = (model(x_te).argmax(1) == y_te).float().mean().item()
    WEIGHTS.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(WEIGHTS / f"{name}.safetensors"))
    card = {
        "name": name,
        "seed": seed,
        "steps": entry.train_steps,
        "train_accuracy": round(acc_tr, 4),
        "test_accuracy": round(acc_te, 4),
        "description": entry.description,
    }
    (WEIGHTS / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="+", help=f"models to train: {available()} or 'all'")
    args = parser.parse_args(argv)
    names = available() if args.names == ["all"] else args.names
    for n in names:
        print(json.dumps(train(n)))


if __name__ == "__main__":
    main()
