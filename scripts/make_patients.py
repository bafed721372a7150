"""Regenerate notebooks/02-patients.ipynb (outputs stripped). Run: python scripts/make_patients.py"""

from _nb import code, md, write

cells = [
    md(
        "# Patients: what do the hidden units of a diagnostic model carry?\n\n"
        "569 real breast-cancer biopsies (scikit-learn's Wisconsin data: 30 measurements of cell nuclei). "
        "A small network diagnoses them through 16 hidden units. Here we ask which nuclear features each unit "
        "carries, switch units off, and count how many diagnoses flip across the whole cohort."
    ),
    code(
        "import numpy as np\nimport torch\n\nimport superwidgets as sw\n\n"
        "model, data = sw.zoo.load(\"breast-cancer-mlp\")\nlens = sw.Lens(model)\ndata"
    ),
    md(
        "## Which measurements does each unit carry?\n\n"
        "Correlate each unit's activation over the cohort with each raw measurement. A unit that tracks many "
        "unrelated measurements is *polysemantic*."
    ),
    code(
        "acts = lens.activations(data.X, \"hidden\")[\"hidden\"].numpy()\n"
        "raw = data.raw\n"
        "corr = np.nan_to_num(np.corrcoef(acts.T, raw.T)[:16, 16:])\n"
        "alive = np.flatnonzero(acts.std(0) > 0)\n"
        "for u in alive:\n"
        "    top = np.argsort(-np.abs(corr[u]))[:3]\n"
        "    print(f\"unit {u:2d}: \" + \", \".join(f\"{data.feature_names[j]} {corr[u, j]:+.2f}\" for j in top))"
    ),
    md(
        "## Ablate and watch diagnoses flip\n\n"
        "The widget's ground-truth panel takes any per-patient table: here the raw measurements. Click a unit's "
        "name to see its correlations; switch units off and the cohort panel counts the flipped diagnoses "
        "and lists the patients most affected (click one to load it). Edit a patient's measurements in the "
        "record form to ask what-if questions."
    ),
    code(
        "lab = sw.FeatureLab(lens, inputs=data, site=\"hidden\", index=38,\n"
        "                    ground_truth=(data.raw, data.feature_names))\nlab.select(13)\nlab"
    ),
    code(
        "effect = lens.sweep(\"hidden\", data.X, readout=lambda y: y.softmax(-1))[:, :, 0]  # Δ P(malignant)\n"
        "print(\"mean |Δ P(malignant)| per unit:\", effect.abs().mean(1).numpy().round(3))"
    ),
    md("Switch off the unit with the largest average effect and read the cohort summary:"),
    code(
        "u = int(effect.abs().mean(1).argmax())\nlab.ablated = [u]\n"
        "print(f\"unit {u} off: {lab.cohort_flips} of {len(data)} diagnoses flip\")\n"
        "print(\"most affected patients:\", lab.cohort_top[:5].tolist())"
    ),
    code("lab.to_figure();"),
]
write("02-patients.ipynb", cells)
