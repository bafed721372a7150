"""Could an SAE tighten the outcome's neighbourhoods if the encoder saw every image factor perfectly?

Trains an "ideal vision" encoder straight from the cells' 12 true image factors to an m-dimensional
bottleneck read out through a ReLU (the zoo models' readout), then compares the outcome's kNN SD
ratio (k = 10, test cells) of the bottleneck, of its ReLU reconstruction of the factors and of two
seeds of a 32-latent Gated SAE's codes, with linear CKA to the true factors. Numbers: docs/sae.md.
Run: python scripts/experiments/knn_ceiling.py  (≈ 1 min on 2 CPU cores)
"""

from __future__ import annotations

import torch

import superwidgets as sw
from superwidgets.data.neurons import IMAGE_FACTORS
from superwidgets.science import geometry
from superwidgets.science.sae import fit_sae


def main() -> None:
    world = sw.zoo.load("neuron-cnn-narrow")[1]
    train, test = world.records.train, world.records.test
    f = torch.as_tensor(world.factors[:, [world.factor_names.index(n) for n in IMAGE_FACTORS]])
    y, truth = world.outcome[test], f[test].numpy()
    print(f"true image factors: kNN SD ratio {geometry.knn_sd_ratio(truth, y):.3f}")
    rows = torch.as_tensor(train)
    for m in (2, 3, 4, 6, 12):
        torch.manual_seed(0)
        enc = torch.nn.Sequential(torch.nn.Linear(12, 64), torch.nn.ReLU(), torch.nn.Linear(64, m))
        dec = torch.nn.Linear(m, 12)
        opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], 3e-3)
        for _ in range(4000):
            i = rows[torch.randint(0, len(rows), (256,))]
            loss = ((torch.relu(dec(enc(f[i]))) - f[i]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            z = enc(f)
            rec = torch.relu(dec(z))
        r2 = 1 - ((rec[test] - f[test]) ** 2).sum(0) / ((f[test] - f[test].mean(0)) ** 2).sum(0)
        knn_z, knn_rec = geometry.knn_sd_ratio(z[test].numpy(), y), geometry.knn_sd_ratio(rec[test].numpy(), y)
        line = (
            f"m = {m:2d}: factors decoded at R² > 0.5: {int((r2 > 0.5).sum()):2d}; kNN SD ratio: bottleneck "
            f"{knn_z:.3f}, reconstruction {knn_rec:.3f} (CKA {geometry.linear_cka(z[test].numpy(), truth):.3f})"
        )
        for seed in (0, 1):
            sae = fit_sae(z[train], arch="gated", width=32, steps=3000, seed=seed, progress=False)
            with torch.no_grad():
                c = sae.encode(z[test]).numpy()
            line += f"; SAE seed {seed} {geometry.knn_sd_ratio(c, y):.3f} (CKA {geometry.linear_cka(c, truth):.3f})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
