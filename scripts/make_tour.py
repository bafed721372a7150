"""Regenerate notebooks/00-tour.ipynb (outputs stripped). Run: python scripts/make_tour.py"""

from _nb import code, md, write

cells = [
    md(
        "# superwidgets tour\n\n"
        "A small network diagnoses breast-cancer biopsies (569 real patients from scikit-learn: "
        "30 measurements of cell nuclei → malignant or benign). Its 16 hidden units share the work "
        "between them. Here you reach into the live model, switch units off, push them up or down, "
        "and watch the diagnosis move."
    ),
    code('import torch\n\nimport superwidgets as sw\n\nmodel, data = sw.zoo.load("breast-cancer-mlp")\ndata'),
    md(
        "A `Lens` holds one persistent hook per site it edits. `lens.sites()` lists every module path with its output shape."
    ),
    code("lens = sw.Lens(model)\nlens.run(data.X[:1])  # one run teaches the lens every site's shape\nlens.sites()"),
    md(
        "## Edits are data\n\nSteer (add α·v), ablate units, toggle edits on and off: the hooks stay, only state changes. "
        "`lens.run(x)` returns the baseline (every edit off, cached per input), the edited output and their delta."
    ),
    code(
        "x = data.X[38:39]  # a patient the model calls malignant with 91% confidence\n"
        "v = torch.zeros(16)\nv[13] = 1.0\n"
        'steer = lens.edit("hidden", sw.Steer(direction=v, alpha=-1.3))  # push unit 13 down\n'
        'ablate = lens.edit("hidden", sw.Ablate([3, 7]))                 # switch units 3 and 7 off\n'
        "r = lens.run(x)\n"
        'print("baseline", r.baseline.softmax(-1))\nprint("edited  ", r.edited.softmax(-1))\nprint("delta   ", r.delta)'
    ),
    code("steer.enabled = False  # state, not hooks\nprint(lens.run(x).edited.softmax(-1))\nlens.clear()"),
    md(
        "## FeatureLab\n\nPick a patient, switch units off (checkbox) or drag their steering sliders: the bars show "
        "the baseline (grey) and edited (blue) probabilities with the change Δ. Arrow keys work on focused sliders."
    ),
    code('lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)\nlab'),
    md("The widget's state is plain Python: read it, set it, or draw it for a paper."),
    code("lab.ablated = [13]\nprint(lab.baseline, lab.edited)\nlab.to_figure();"),
    md(
        "Or share it as it is: `to_html` writes the widget as one self-contained HTML file (its own view and "
        "state, nothing to install, no kernel or network needed to open it)."
    ),
    code('page = lab.to_html("patient-38-unit-13-off.html", title="Patient 38 with unit 13 off")\nprint(f"{len(page) // 1000} kB")'),
    md(
        "## Where next\n\n"
        "- `01-superposition.ipynb`: the toy models of superposition, retrained live in the `SuperpositionExplorer`.\n"
        "- `02-patients.ipynb`: which nuclear measurements the hidden units carry; ablate them, watch diagnoses flip.\n"
        "- `03-neurons.ipynb`: a polysemantic bottleneck unit on neuron images, its true factors, steering it.\n"
        "- `04-sae.ipynb`: a sparse autoencoder pulls the superposed factors apart; the `FeatureDashboard`.\n"
        "- `05-alignment.ipynb`: unpaired Gromov–Wasserstein alignment of image codes with another view of the "
        "cells, raw vs SAE codes, in the `AlignmentView`.\n"
        "- `06-text.ipynb`: a character-level language model's neurons and SAE features, highlighted over text; "
        "steer one and watch the next character change."
    ),
]
write("00-tour.ipynb", cells)
