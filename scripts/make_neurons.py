"""Regenerate notebooks/03-neurons.ipynb (outputs stripped). Run: python scripts/make_neurons.py"""

from _nb import code, md, write

cells = [
    md(
        "# Neurons: a polysemantic bottleneck unit, seen and steered\n\n"
        "A synthetic world of patient-derived neuron images (`sw.data.neurons`) whose 20 true factors are known. "
        "`neuron-cnn-narrow` squeezes each 4-channel image through a 6-unit bottleneck to predict disease, "
        "outcome and the factors: more factors than units, so the units must share them."
    ),
    code(
        "import numpy as np\n\nimport superwidgets as sw\n\n"
        "model, world = sw.zoo.load(\"neuron-cnn-narrow\")\nlens = sw.Lens(model)\nworld"
    ),
    md(
        "Correlate every bottleneck unit with every true factor over the cohort: "
        "a unit with several strong bars is polysemantic."
    ),
    code(
        "x = model.world_inputs(world)\n"
        "codes = lens.activations(x, \"bottleneck\")[\"bottleneck\"].numpy()\n"
        "corr = np.nan_to_num(np.corrcoef(codes.T, world.factors.T)[: codes.shape[1], codes.shape[1] :])\n"
        "strong = (np.abs(corr) > 0.2).sum(1)\n"
        "unit = int(strong.argmax())\n"
        "print(\"factors with |r| > 0.2 per unit:\", strong.tolist())\n"
        "top = np.argsort(-np.abs(corr[unit]))[:4]\n"
        "print(f\"unit {unit}:\", \", \".join(f\"{world.factor_names[j]} {corr[unit, j]:+.2f}\" for j in top))"
    ),
    md(
        "## FeatureLab on the images\n\n"
        "Pick a cell in the gallery, click a unit's name to see its correlations with the true factors, steer it "
        "and watch this cell's prediction and the cohort's predictions shift."
    ),
    code(
        "lab = sw.FeatureLab(lens, inputs=world, site=\"bottleneck\", gallery=24)\n"
        "lab.select(unit)\nlab"
    ),
    code(
        "steer = np.zeros(len(lab.feature_names), np.float32)\nsteer[unit] = 3.0\nlab.steer = steer\n"
        "print(\"this cell:\", lab.baseline.round(3), \"->\", lab.edited.round(3))\n"
        "print(f\"{lab.cohort_flips} of {lab.n_inputs} diagnoses flip\")"
    ),
    md("At a convolutional site the selected channel's activation map is drawn over the image:"),
    code("conv = sw.FeatureLab(lens, inputs=world, site=\"conv.block1\", gallery=12)\nconv.select(0)\nconv"),
]
write("03-neurons.ipynb", cells)
