"""Regenerate notebooks/01-superposition.ipynb (outputs stripped). Run: python scripts/make_lesson.py"""

from _nb import code, md, write

cells = [
    md(
        "# Superposition, live\n\n"
        "A lesson on the toy model of Elhage et al. (2022), *Toy Models of Superposition*. Each input has `n` "
        "features in [0, 1]; each feature is zero with probability `S` (the *sparsity*). A network squeezes them "
        "through `m < n` hidden dimensions, `h = W x`, and tries to reconstruct them, `x' = ReLU(WᵀW x + b)`. "
        "The loss weighs feature `i` by its importance `I_i`.\n\n"
        "**The question:** with only `m` dimensions, how many features does the network keep, and how?"
    ),
    code(
        "import superwidgets as sw\n\n"
        "ex = sw.SuperpositionExplorer(n_features=5, n_hidden=2, density=1.0, importance_decay=0.9)\n"
        "ex.wait()  # training runs in the background; wait() is for scripted lessons\n"
        "ex"
    ),
    md(
        "**Step 1 — dense features (`1 − S = 1`).** Look at the norms: only the two most important features get "
        "a direction (‖W_i‖ ≈ 1); the rest are dropped. Dense features interfere every time, so the model keeps "
        "an orthogonal basis, like PCA."
    ),
    code("print('norms', ex.norms.round(2))\nprint('represented', int((ex.norms > 0.5).sum()))"),
    md(
        "**Step 2 — sparser (`1 − S ≈ 0.2`).** Drag the density slider, or run the cell. Four features appear, "
        "in two *antipodal pairs*: feature `i` and `j` share one axis with opposite signs. Each gets half a "
        "dimension, `D_i ≈ 1/2`. The ReLU and a negative bias filter out the small interference.\n\n"
        "Training is not guaranteed to find this: a single run can settle in a local minimum (the wrong four "
        "features, or a distorted pentagon). The explorer trains the model from several random starts "
        "(the *best of* knob, default 3) and shows the one with the lowest loss on held-out data; "
        "`ex.replica_losses` lists them all."
    ),
    code(
        "ex.density = 0.2\nex.wait()\nprint('norms', ex.norms.round(2))\nprint('D_i  ', ex.dims.round(2))\n"
        "print('held-out loss of each start', ex.replica_losses.round(4), '-> showing start', ex.replica + 1)"
    ),
    md(
        "**Step 3 — very sparse (`1 − S ≈ 0.03`).** All five features are stored as a *pentagon*: five directions in "
        "a plane, each with `D_i ≈ 2/5`. The network now holds more features than it has dimensions: this is "
        "superposition. Click a feature bar in the widget to project its direction out of the hidden layer and "
        "watch which other features' reconstructions suffer: its neighbours on the pentagon."
    ),
    code(
        "ex.density = 0.03\nex.wait()\nprint('D_i', ex.dims.round(2))\n"
        "ex.ablate(0)\nprint('loss increase when feature 0 is ablated:', ex.interference.round(4))"
    ),
    md(
        "## Importance and the linear model\n\n"
        "With 20 features, 5 dimensions and importance `0.7^i`, the dense model keeps exactly the top 5. "
        "As features get sparser the count rises. Without the ReLU (`relu=False`) the model never "
        "superposes: it always keeps the top `m`."
    ),
    code(
        "from superwidgets.science import ToyConfig, n_represented, train_toy\n\n"
        "densities = [1.0, 0.5, 0.3, 0.1, 0.03]\n"
        "for relu in (True, False):\n"
        "    cfg = ToyConfig(n_features=20, n_hidden=5, n_instances=len(densities), feature_probability=densities,\n"
        "                    importance=0.7, relu=relu)\n"
        "    counts = n_represented(train_toy(cfg).W).tolist()\n"
        "    print('ReLU  ' if relu else 'linear', dict(zip(densities, counts)))"
    ),
    md(
        "## Dimensions per feature\n\n"
        "The last panel plots `D* = m / ‖W‖²_F` — how many dimensions each represented feature gets — against "
        "`1/(1 − S)` for every instance the widget trains. With uniform importance it sticks to 1/2 over a range "
        "of sparsities (antipodal pairs everywhere) before dropping further: the geometry is quantised."
    ),
    code(
        "big = sw.SuperpositionExplorer(n_features=40, n_hidden=8, importance_decay=1.0, density=0.4)\n"
        "big.wait()\n"
        "print('D*:', dict(zip((1 / big.densities).round(1).tolist(), big.dstar.round(2).tolist())))\n"
        "big"
    ),
    md("For a handout or a paper, every view has a static version:"),
    code("ex.to_figure();"),
]
write("01-superposition.ipynb", cells)
