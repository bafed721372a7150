"""Train the self-supervised encoders of the study experiment (``docs/study.md``, "The experiment").

Run: ``.venv/bin/python scripts/study_encoders.py --out study-cache [--arch narrow wide] [--seeds 0 1 2]``

Each encoder is the zoo's ``neuron-ssl`` recipe (SimCLR, 12 epochs, batch 32, on the train wells of
``cell_states(n=6000, seed=0, image_size=48)``) from initialisation seed ``s`` and training seed ``s``:
``narrow`` has the zoo's widths (16, 32, 64, 128) → 128 pooled features, ``wide`` ends in 512 pooled
features (16, 32, 64, 512), the width of the ResNet-18 features the study read. Narrow seed 0 is the
shipped ``neuron-ssl`` itself (loaded, not retrained). Writes ``<out>/ssl-<arch>-<seed>.safetensors``;
an encoder already there is kept (delete it to retrain). One CPU thread per process: run one process
per encoder to use more cores. Each narrow encoder takes about 6 minutes on this machine, a wide one
about 11.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

WIDTHS = {"narrow": (16, 32, 64, 128), "wide": (16, 32, 64, 512)}


def encoder_path(out: Path, arch: str, seed: int) -> Path:
    """Where ``scripts/study_encoders.py`` writes encoder ``arch``/``seed``."""
    return Path(out) / f"ssl-{arch}-{seed}.safetensors"


def train_one(out: Path, arch: str, seed: int) -> Path:
    """Train (or find) one encoder and return its path."""
    from superwidgets.science.ssl import ConvEncoder, train_ssl
    from superwidgets.zoo import registry

    path = encoder_path(out, arch, seed)
    if path.exists():
        return path
    if arch == "narrow" and seed == 0:
        model, _ = registry.load("neuron-ssl")
    else:
        world = registry._cell_world()
        torch.manual_seed(seed)
        model = ConvEncoder(in_channels=4, widths=WIDTHS[arch])
        torch.use_deterministic_algorithms(True)
        train_ssl(world.images[world.train], encoder=model, seed=seed, **registry._SSL_RECIPE)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    tmp.replace(path)
    return path


def main() -> None:
    """Train the encoders named on the command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("study-cache"))
    p.add_argument("--arch", nargs="+", default=["narrow", "wide"], choices=sorted(WIDTHS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = p.parse_args()
    torch.set_num_threads(1)
    for arch in args.arch:
        for seed in args.seeds:
            t0 = time.perf_counter()
            path = train_one(args.out, arch, seed)
            print(f"{arch} seed {seed}: {path} ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
