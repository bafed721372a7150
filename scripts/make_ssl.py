"""Train the shipped self-supervised encoder ``neuron-ssl``; write its weights and model card.

Run: ``.venv/bin/python scripts/make_ssl.py`` (one CPU thread; 4–8 minutes).
``--moco`` instead trains MoCo v2 at the study's settings (momentum 0.995, temperature 0.07,
symmetric loss, queue 2048, batch 128, 10 epochs) from the same initialisation on the same world
and prints the same card numbers, without writing anything: the comparison behind the choice of
SimCLR for the shipped encoder (``docs/study.md``, "The world and the encoder").

Writes ``superwidgets/zoo/weights/neuron-ssl.safetensors`` and ``neuron-ssl.json`` through
``superwidgets.zoo.train.train("neuron-ssl")`` — the same deterministic path as every zoo model,
so ``python -m superwidgets.zoo.train neuron-ssl`` gives the same files. The card holds the
held-out genotype probe accuracy, death-rate ridge R² and effective rank of the trained encoder
and of the same architecture at its initialisation (``random_init_*``). Prints the card and the
time each phase took.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

MOCO_RECIPE = {
    "method": "moco",
    "epochs": 10,
    "batch_size": 128,
    "lr": 3e-3,
    "temperature": 0.07,
    "momentum": 0.995,
    "queue_size": 2048,
}


def _moco(world) -> dict:
    from superwidgets.science.ssl import ssl_card_metrics, train_ssl
    from superwidgets.zoo import registry

    torch.use_deterministic_algorithms(True)
    encoder = train_ssl(world.images[world.train], encoder=registry.build("neuron-ssl"), seed=0, **MOCO_RECIPE)
    return {"recipe": MOCO_RECIPE, **ssl_card_metrics(encoder, registry.build("neuron-ssl"), world)}


def main() -> None:
    """Generate the world, train and evaluate the encoder, and print the card with timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moco", action="store_true", help="train MoCo v2 at the study's settings; write nothing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from superwidgets.zoo import registry, train

    t0 = time.perf_counter()
    world = registry._cell_world()  # generated once per process; timed on its own
    t1 = time.perf_counter()
    card = _moco(world) if args.moco else train.train("neuron-ssl")
    t2 = time.perf_counter()
    print(json.dumps(card, indent=2))
    print(f"world: {t1 - t0:.1f} s; training + evaluation: {t2 - t1:.1f} s (torch threads: 1)")


if __name__ == "__main__":
    main()
