"""Regenerate notebooks/04-sae.ipynb (outputs stripped). Run: python scripts/make_sae.py"""

from _nb import code, md, write

cells = [
    md(
        "# Sparse autoencoders on the neuron world\n\n"
        "`neuron-cnn-narrow` squeezes each neuron image through a 6-unit bottleneck while it is trained to "
        "predict 20 ground-truth factors: the units have to share them (superposition). A sparse autoencoder "
        "(SAE) re-describes the same 6-D activations as a sparse sum of *more* directions, one per feature, "
        "we hope. Because the world is synthetic, we can check that hope against the true factors.\n\n"
        "Everything below is computed on this machine when the notebook runs (≈ 1 minute on a laptop CPU)."
    ),
    code(
        "import tempfile\n\n"
        "import matplotlib.pyplot as plt\n"
        "import numpy as np\n"
        "import torch\n\n"
        "import superwidgets as sw\n"
        "from superwidgets.science import geometry, metrics\n\n"
        "torch.set_num_threads(1)  # a 6-wide SAE is tiny: one thread beats several on a shared CPU\n"
        'model, world = sw.zoo.load("neuron-cnn-narrow")\n'
        "lens = sw.Lens(model)\n"
        "x = model.world_inputs(world)                      # (8000, 4, 32, 32) images\n"
        "train, test = world.records.train, world.records.test\n"
        'acts = lens.activations(x, "bottleneck")["bottleneck"]  # (8000, 6)\n'
        "names = list(world.factor_names)\n"
        "acts.shape, len(train), len(test)"
    ),
    md(
        "## The bottleneck units are polysemantic\n\n"
        "Each row is one of the 6 units, each column a true factor; the colour is their correlation over the "
        "held-out cells. A monosemantic unit would light up one column. Here most units light up several, "
        "and many factors are spread over several units."
    ),
    code(
        "def factor_corr(codes, factors):\n"
        '    """Pearson r of every code column with every factor column (0 for a constant column)."""\n'
        "    c = np.asarray(codes, np.float64)\n"
        "    c = c - c.mean(0)\n"
        "    f = factors - factors.mean(0)\n"
        "    den = np.outer(np.linalg.norm(c, axis=0), np.linalg.norm(f, axis=0))\n"
        "    return np.divide(c.T @ f, den, out=np.zeros(den.shape), where=den > 0)\n\n\n"
        "F = world.factors[test].astype(np.float64)\n"
        "raw = acts[test].numpy()\n"
        "corr_raw = factor_corr(raw, F)\n"
        'print("factors with |r| > 0.2, per unit:", (np.abs(corr_raw) > 0.2).sum(1).tolist())\n\n'
        "fig, ax = plt.subplots(figsize=(9, 2.6))\n"
        'im = ax.imshow(corr_raw, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")\n'
        'fig.colorbar(im, ax=ax, label="r")\n'
        "ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)\n"
        'ax.set_ylabel("bottleneck unit")\n'
        "plt.show()"
    ),
    md(
        "## Train a Gated SAE\n\n"
        "A Gated SAE (Rajamanoharan et al. 2024) decides *whether* a latent is on with one path and *how much* "
        "with another, which avoids the shrinkage of a plain L1 penalty. We train 24 latents (4× the width) "
        "on the activations of the **train** cells only, seeded; 1,500 steps take a few seconds on a CPU."
    ),
    code(
        "torch.manual_seed(0)\n"
        'sae = sw.train_sae(lens, "bottleneck", x[train], arch="gated", width=24, steps=1500, seed=0, '
        "progress=False)\n"
        "sae"
    ),
    md(
        "Metrics on the held-out cells: **L0** (latents on per cell), **FVU** (fraction of variance the "
        "reconstruction misses), **dead** latents, **loss recovered** on the disease task (1 = splicing the "
        "reconstruction into the model costs nothing, 0 = as bad as zeroing the bottleneck), and **MCC** with "
        "the true factors. The SAE has 24 latents and the raw code 6 units, so both MCCs average over their "
        "6 best-matched factors."
    ),
    code(
        "ev = metrics.evaluate_sae(\n"
        '    sae, acts[test], factors=F, model=lens, site="bottleneck",\n'
        "    inputs=x[test], targets=torch.as_tensor(world.disease[test]),\n"
        ")\n"
        "print(f\"L0 {ev['l0']:.2f} of {sae.n_latents} latents | FVU {ev['fvu']:.3f} | dead {ev['dead_fraction']:.2f}"
        " | loss recovered {ev['loss_recovered']:.3f}\")\n"
        "print(f\"MCC (6 best-matched factors): raw units {ev['mcc_raw']:.3f}  ->  SAE latents {ev['mcc_top_d']:.3f}\")"
    ),
    md(
        "## Units vs SAE features, side by side\n\n"
        "Left: the 6 units. Right: the SAE's latents, ordered by the factor each correlates with most "
        "(a diagonal staircase means one latent per factor). Eight factors (TH, disease, age, "
        "mitochondria, oxidative stress, lysosomes and two genotypes) are never drawn in the images, so no "
        "latent can find them directly. The printed lines measure selectivity: a monosemantic code "
        "correlates strongly with its best factor and weakly with its runner-up."
    ),
    code(
        "with torch.no_grad():\n"
        "    codes = sae.encode(acts[test]).numpy()\n"
        "corr_sae = factor_corr(codes, F)\n"
        "best = np.abs(corr_sae).argmax(1)\n"
        "order = np.lexsort((-np.abs(corr_sae).max(1), best))\n\n"
        'fig, axes = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1, 1]})\n'
        'for ax, c, title in ((axes[0], corr_raw, "6 bottleneck units"), (axes[1], corr_sae[order], '
        'f"{sae.n_latents} SAE latents")):\n'
        '    im = ax.imshow(np.abs(c), cmap="viridis", vmin=0, vmax=1, aspect="auto")\n'
        "    ax.set_xticks(range(len(names)), names, rotation=80, fontsize=7)\n"
        "    ax.set_title(title)\n"
        'axes[1].set_yticks(range(len(order)), [f"latent {i}" for i in order], fontsize=6)\n'
        'fig.colorbar(im, ax=axes, label="|r| with the true factor", shrink=0.8)\n'
        "plt.show()\n"
        'for name, c in (("unit", corr_raw), ("SAE latent", corr_sae)):\n'
        "    top2 = np.sort(np.abs(c), 1)[:, -2:]\n"
        '    print(f"per {name:10s}: best |r| {top2[:, 1].mean():.2f},",\n'
        '          f"runner-up |r| {top2[:, 0].mean():.2f} (means)")'
    ),
    md(
        "## Geometric fidelity on a held-out property\n\n"
        "Does the geometry of a code respect something it was not built from? Here: the cells' death-risk "
        "outcome (`world.outcome`), on the test cells.\n\n"
        "- **kNN SD ratio**: spread of the outcome among each cell's 10 nearest neighbours ÷ its overall "
        "spread (lower: neighbours share their outcome).\n"
        "- **effective rank**: how many dimensions the code really uses.\n"
        "- **ridge R²**: how much of the outcome a cross-validated linear read-out recovers.\n\n"
        "A faithful SAE keeps the information (similar ridge R²) while spreading it over many more "
        "dimensions. Whether neighbourhoods get *tighter* is an empirical question: compare the two rows."
    ),
    code(
        "y = world.outcome[test]\n"
        'fid = {"raw units": geometry.geometric_fidelity(raw, y),\n'
        '       "SAE latents": geometry.geometric_fidelity(codes, y)}\n'
        "print(f\"{'':12s} {'kNN SD ratio':>13s} {'eff. rank':>10s} {'ridge R²':>9s}\")\n"
        "for name, f in fid.items():\n"
        "    print(f\"{name:12s} {f['knn_sd_ratio']:13.3f} {f['effective_rank']:10.2f} {f['ridge_r2']:9.3f}\")\n"
        'winner = min(fid, key=lambda k: fid[k]["knn_sd_ratio"])\n'
        'print(f"tighter outcome neighbourhoods: {winner}")'
    ),
    md(
        "## Save and reload\n\n"
        "`save_sae` writes the weights as safetensors and the configuration as JSON (no pickle); "
        "`load_sae` rebuilds the same module, bit for bit."
    ),
    code(
        "with tempfile.TemporaryDirectory() as tmp:\n"
        '    path = sw.science.save_sae(sae, f"{tmp}/bottleneck-sae")\n'
        "    print(sorted(p.name for p in path.parent.iterdir()))\n"
        "    back = sw.science.load_sae(path.parent)\n"
        "with torch.no_grad():\n"
        "    same = torch.equal(back.encode(acts[test]), sae.encode(acts[test]))\n"
        'print(type(back).__name__, back.config["n_latents"], "latents; identical codes:", same)'
    ),
    md(
        "## Browse the latents: FeatureDashboard\n\n"
        "The list on the left can be sorted by frequency, maximum activation or effect on the diagnosis. "
        "Selecting a latent shows its activation histogram, the cells where it is strongest, its effect on "
        "the cohort's predictions and its correlation with every true factor. We open it on the latent that "
        "best matches `puncta_density` (α-synuclein aggregates, a disease correlate)."
    ),
    code(
        'target = names.index("puncta_density")\n'
        "feat = int(np.abs(corr_sae[:, target]).argmax())\n"
        'print(f"latent {feat}: r = {corr_sae[feat, target]:+.2f} with puncta_density;",\n'
        '      "its next-best factor:", names[np.argsort(-np.abs(corr_sae[feat]))[1]],\n'
        '      f"{corr_sae[feat, np.argsort(-np.abs(corr_sae[feat]))[1]]:+.2f}")\n'
        'dash = sw.FeatureDashboard(lens, "bottleneck", sae, world, feature=feat, effect_sample=512)\n'
        "dash"
    ),
    md(
        "**Share it.** `dash.to_html(path)` writes the dashboard as one self-contained HTML file: the same view, "
        "no kernel or network needed to open it, and still browsable — every latent's details and every sort "
        "order are precomputed into the file (`features=` picks which latents)."
    ),
    code(
        'html = dash.to_html("sae-latents.html", title="Gated SAE on the neuron CNN bottleneck")\n'
        'print(f"sae-latents.html: {len(html.encode()) / 1e6:.1f} MB, {len(sae.W_dec)} latents browsable offline")'
    ),
    md(
        "## Steer the puncta latent in FeatureLab\n\n"
        "With `basis=sw.SAE(sae)` the lab lists the SAE's latents instead of the units. Steering latent *i* "
        "adds α times its decoder direction to the bottleneck (the reconstruction error is kept, so nothing "
        "else moves). We pick a control cell without puncta and push its puncta latent up."
    ),
    code(
        'lab = sw.FeatureLab(lens, inputs=world, site="bottleneck", basis=sw.SAE(sae), gallery=24)\n'
        "dash.link(lab)                      # 'Open in FeatureLab' in the dashboard now selects here\n"
        "quiet = [i for i in test if world.disease[i] == 0 and world.factors[i, target] == 0]\n"
        "lab.index = int(quiet[0])\n"
        "lab.select(feat)\n"
        "lab"
    ),
    code(
        "sign = 1.0 if corr_sae[feat, target] >= 0 else -1.0\n"
        "on = codes[:, feat][codes[:, feat] > 0]\n"
        "alpha = sign * float(np.quantile(on, 0.9))   # a high but typical activation of this latent\n"
        "steer = np.zeros(len(lab.feature_names), np.float32)\n"
        "steer[feat] = alpha\n"
        "lab.steer = steer\n"
        'print(f"steer latent {feat} by {alpha:+.2f}")\n'
        'print("this cell  P(control, PD):", lab.baseline.round(3), "->", lab.edited.round(3))\n'
        'print(f"cohort: {lab.cohort_flips} of {lab.n_inputs} diagnoses flip")\n'
        "r = lens.run(x[test])\n"
        "d_pd = (r.edited.softmax(-1) - r.baseline.softmax(-1))[:, 1]\n"
        'print(f"test cells: mean change of P(PD) {d_pd.mean():+.3f}",\n'
        '      f"(min {d_pd.min():+.3f}, max {d_pd.max():+.3f})")'
    ),
    md(
        "α-synuclein puncta are a disease correlate in this world, so a model that has learned them should "
        "move towards PD when the puncta latent is pushed up: the numbers above show whether and by how much, "
        "for one cell and for the whole test set. The SAE lets us touch that one feature instead of a unit "
        "that mixes it with others. `lab.reset()` switches every edit off again."
    ),
]
write("04-sae.ipynb", cells)
