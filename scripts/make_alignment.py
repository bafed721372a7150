"""Regenerate notebooks/05-alignment.ipynb (outputs stripped). Run: python scripts/make_alignment.py"""

from _nb import code, md, write

cells = [
    md(
        "# Cross-modal alignment: images and morphometry, no pairs needed\n\n"
        "Two modalities of the same cells — here a neuron CNN's image codes and a morphometry table measured "
        "on the cells — live in different spaces, and nothing says which image goes with which row. "
        "Entropic **Gromov–Wasserstein** transport (`sw.science.gw_align`, POT's solver) matches the two "
        "point clouds by their *internal* distances alone. Superposition corrupts those distances: cells that "
        "differ in one factor can land close together because unrelated factors share directions. "
        "Sparse-autoencoder codes undo some of that. In the synthetic neuron world the true pairing is known, "
        "so the alignment can be scored."
    ),
    code(
        "import numpy as np\nimport torch\n\nimport superwidgets as sw\n"
        "from superwidgets.data.neurons import MORPHOMETRY_COLUMNS\n"
        "from superwidgets.zoo.alignment import dominant_factor, neuron_alignment\n\n"
        "torch.set_num_threads(1)  # these tensors are small: one thread is faster on a shared machine\n"
        "model, world = sw.zoo.load(\"neuron-cnn-narrow\")\nprint(MORPHOMETRY_COLUMNS)"
    ),
    md(
        "## Raw codes vs SAE codes\n\n"
        "`neuron_alignment` encodes held-out cells with the CNN (6-dimensional bottleneck: 8 factors "
        "in superposition), trains a Gated SAE on the train cells' codes, and aligns each representation "
        "with another view of the same cells, shuffled: their true image factors (how faithful the codes' "
        "geometry is), their standardised morphometry (a measured second modality) or their expression "
        "profiles (normalised, log1p, 30 principal components: the study's pairing; in this world the counts are "
        "too noisy and it stays near chance for every code). Scores: label transfer "
        "of each cell's dominant true factor (barycentric), FOSCTTM (fraction of cells closer than the true "
        "partner; 0 = perfect, 0.5 = chance) and recall@10."
    ),
    code(
        "keys = [\"label_transfer_barycentric\", \"foscttm\", \"recall@10\"]\n"
        "print(f\"{'':24s}\" + \"\".join(f\"{k:>28s}\" for k in keys))\n"
        "for modality in (\"factors\", \"morphometry\", \"expression\"):\n"
        "    res = neuron_alignment(\"neuron-cnn-narrow\", modality=modality, n=400, repeats=1, sae_steps=2000)\n"
        "    for rep in (\"raw\", \"sae\"):\n"
        "        print(f\"{modality:12s} {rep:11s}\" + \"\".join(f\"{res[rep][k]:28.3f}\" for k in keys))\n"
        "sae = res[\"sae_module\"]"
    ),
    md(
        "One draw of cells is noisy: `tests/test_alignment_experiment.py` averages 3 draws of 500 cells, for "
        "the narrow and the wide (48-dimensional) bottleneck and two SAE widths; the numbers and what does and "
        "does not hold are in `docs/align.md`.\n\n"
        "## The AlignmentView: see the coupling, hover a cell, edit a feature\n\n"
        "Modality A is read live from the model: the bottleneck codes of the images, through the SAE. Hover a "
        "point in one panel to light up where its mass goes in the other; ablate or steer an SAE feature and "
        "the images are re-encoded and the alignment re-run."
    ),
    code(
        "rng = np.random.default_rng(1)\n"
        "cells = rng.choice(world.records.test, 300, replace=False)\n"
        "cols = [world.records.feature_names.index(c) for c in MORPHOMETRY_COLUMNS]\n"
        "labels = dominant_factor(world.factors[cells]) + 1  # 0 = no factor active\n"
        "classes = [\"none\", *world.factor_names]\n"
        "view = sw.AlignmentView(\n"
        "    X_b=world.records.X[cells][:, cols], lens=sw.Lens(model), site=\"bottleneck\", sae=sae,\n"
        "    inputs=world.images[cells], labels_a=labels, labels_b=labels, class_names=classes,\n"
        "    names=(\"image (SAE codes)\", \"morphometry\"), paired=True, epsilon=0.01, max_points=300,\n"
        ")\nview"
    ),
    md(
        "Ablate the SAE feature most used by the cells whose dominant factor is `puncta_density` and watch the "
        "scores move (Δ against the unedited alignment)."
    ),
    code(
        "with torch.no_grad():\n"
        "    z = sae.encode(model.encode(torch.as_tensor(world.images[cells])))\n"
        "puncta = labels == classes.index(\"puncta_density\")\n"
        "feature = int(z[torch.as_tensor(puncta)].mean(0).argmax())\n"
        "view.ablate(feature)\n"
        "for k in (\"label_transfer_barycentric\", \"foscttm\"):\n"
        "    print(f\"{k:28s} {view.baseline_scores[k]:.3f} -> {view.scores[k]:.3f}\")"
    ),
    code("view.reset()\nfig = view.to_figure()"),
]

write("05-alignment.ipynb", cells)
