"""Regenerate notebooks/06-text.ipynb (outputs stripped). Run: python scripts/make_text.py"""

from _nb import code, md, write

cells = [
    md(
        "# Features of a language model, live\n\n"
        "`char-lm` is a tiny GPT-style transformer (2 blocks, 64 dimensions) trained on the text of Python's "
        "own help pages to predict the next character. It ships with superwidgets, corpus and weights, so "
        "everything here runs offline. We look at its neurons, pull features out of its residual stream with "
        "a sparse autoencoder, see them highlighted over text, and steer one to change what the model writes "
        "next — what Neuronpedia does for hosted LLMs, here in a notebook cell, for a model you can retrain."
    ),
    code(
        "import numpy as np\n"
        "import torch\n\n"
        "import superwidgets as sw\n\n"
        "torch.set_num_threads(2)\n"
        'model, text = sw.zoo.load("char-lm")\n'
        'card = sw.zoo.registry.card("char-lm")\n'
        'print(f"held-out {card[\'test_bits_per_char\']} bits/char (character frequencies alone: '
        "{card['unigram_bits_per_char']}), next character right {card['test_next_char_accuracy']:.0%} of the time\")\n"
        "text"
    ),
    code(
        "lens = sw.Lens(model)\n\n"
        "def next_chars(prompt, k=5):\n"
        '    """The k most likely next characters after `prompt`, with probabilities (edits on)."""\n'
        "    p = lens.run(text.encode(prompt)).edited[0, -1].softmax(-1)\n"
        "    return [(text.vocab[i], round(float(p[i]), 3)) for i in p.topk(k).indices]\n\n"
        'print(next_chars("The return statemen"))\n'
        'print(next_chars("   for_stmt ::"))'
    ),
    md(
        "## Neurons in FeatureLab\n\n"
        "`blocks.1.mlp.1` are the 256 GELU neurons of the second block's MLP. FeatureLab shows, for one held-out "
        "window of 64 characters, the next-character probabilities (a few characters, read from the full "
        "softmax), every neuron with a switch and a steering slider, and — click a neuron's name — its "
        "activation at each character of the window."
    ),
    code(
        'show = list(" etaoinsr\\n.,()=:")\n'
        "ids = [text.vocab.index(ch) for ch in show]\n"
        "lab = sw.FeatureLab(\n"
        '    lens, inputs=text, site="blocks.1.mlp.1", tokens=text.tokens, captions=text.captions,\n'
        "    output=lambda o: o[:, -1].softmax(-1)[:, ids], readout=\"identity\",\n"
        "    class_names=[repr(c) for c in show], cohort_top=0,\n"
        ")\n"
        "acts = lens.activations(text.X, \"blocks.1.mlp.1\")[\"blocks.1.mlp.1\"]  # (512, 64, 256)\n"
        "busiest = int(acts.reshape(-1, 256).std(0).argmax())\n"
        "lab.select(busiest)\n"
        "lab"
    ),
    md(
        "## Features from a sparse autoencoder\n\n"
        "A TopK SAE (256 latents, 8 active per character) on the residual stream after the first block, "
        "trained on 1,500 windows of the training text (≈ 5 s). Each latent's top contexts below end in the "
        "character where it fires, in brackets."
    ),
    code(
        "from superwidgets.science import metrics\n\n"
        "train_windows = text.windows(1500, split=\"train\", seed=1)\n"
        'sae = sw.train_sae(lens, "blocks.0", train_windows, arch="topk", width=256, k=8, steps=2000, seed=0)\n'
        'resid = lens.activations(text.X, "blocks.0")["blocks.0"]  # held-out windows: (512, 64, 64)\n'
        "ev = metrics.evaluate_sae(sae, resid.reshape(-1, 64))\n"
        'print(f"L0 {ev[\'l0\']:.1f}, fraction of variance unexplained {ev[\'fvu\']:.3f},",\n'
        '      f"dead {ev[\'dead_fraction\']:.0%}")\n'
        "with torch.no_grad():\n"
        "    codes = sae.encode(resid)  # (512, 64, 256)\n\n"
        "def contexts(f, n=5):\n"
        '    """The n strongest held-out contexts of latent f: 12 characters and [the one it fires on]."""\n'
        "    c = codes[..., f].clone()\n"
        "    c[:, :12] = 0  # keep 12 characters of context visible\n"
        "    top = torch.topk(c.reshape(-1), n).indices.tolist()\n"
        "    out = []\n"
        "    for i, p in (divmod(t, 64) for t in top):\n"
        "        s = text.captions[i]\n"
        '        out.append(repr(s[max(0, p - 12):p] + "[" + s[p] + "]"))\n'
        '    return " ".join(out)\n\n'
        "freq = (codes > 0).float().mean((0, 1))\n"
        "for f in torch.argsort(freq, descending=True)[20:30].tolist():\n"
        '    print(f"latent {f:3d} ({freq[f]:.1%}):", contexts(f))'
    ),
    md(
        "Browse them all in the dashboard: the top-activating windows are shown as text, each character shaded "
        "by the latent's code there; the effect column is the mean change of each character's probability "
        "when the latent is ablated."
    ),
    code(
        'dash = sw.FeatureDashboard(lens, "blocks.0", sae, text, tokens=text.tokens, effect_sample=64,\n'
        "                          output=lambda o: o[:, -1, ids], class_names=[repr(c) for c in show])\n"
        "dash"
    ),
    md(
        "## Steer a feature\n\n"
        "Which latent anticipates an `=`? Compare its mean code where the next character is `=` with elsewhere. "
        "Then add its decoder direction (times a strong activation) to the residual stream of a prompt that has "
        "nothing to do with grammar rules, and read the next-character probabilities."
    ),
    code(
        "nxt = torch.cat([text.X[:, 1:], torch.full((len(text.X), 1), -1)], 1)\n"
        'before_eq = nxt == text.vocab.index("=")\n'
        "eq = int((codes[before_eq].mean(0) - codes[~before_eq].mean(0)).argmax())\n"
        'print(f"latent {eq}:", contexts(eq))\n'
        'prompt = "The value of x"\n'
        'print("as trained:", next_chars(prompt))\n'
        "alpha = 3 * float(codes[..., eq].max())\n"
        'steer = lens.edit("blocks.0", sw.Steer(feature=eq, alpha=alpha), basis=sw.SAE(sae))\n'
        'print(f"steered (+{alpha:.1f} along latent {eq}):", next_chars(prompt))\n'
        "lens.remove(steer)"
    ),
    md(
        "The same in FeatureLab, with the SAE's latents as the features: select the latent to see where it fires "
        "in the shown window, drag its slider and watch the next-character bars; switch it off and its "
        "highlight disappears."
    ),
    code(
        'sae_lab = sw.FeatureLab(lens, inputs=text, site="blocks.0", basis=sw.SAE(sae), tokens=text.tokens,\n'
        "                        captions=text.captions, output=lambda o: o[:, -1].softmax(-1)[:, ids],\n"
        '                        readout="identity", class_names=[repr(c) for c in show], cohort_top=0,\n'
        "                        generate=24, decode=text.decode,  # also: what it writes next, 24 characters\n"
        "                        encode=text.encode)               # and a box to type your own text\n"
        "sae_lab.index = int(before_eq.any(1).float().argmax())  # a window with an '=' in it\n"
        "sae_lab.select(eq)\n"
        "sae_lab"
    ),
    md(
        "`generate=24` adds what the model writes next, greedily, as trained and with the edits on; `encode=` adds a "
        "text box to type your own input (`sae_lab.set_text(...)` from Python). Move the lab to a window of plain "
        "prose and push the `=` latent: the steered model starts writing `=` signs."
    ),
    code(
        "def is_prose(c):\n"
        "    return c.count(\" \") > 8 and \"=\" not in c and c.endswith(\" \")\n\n"
        "prose = next(i for i, c in enumerate(text.captions) if is_prose(c))\n"
        "sae_lab.index = prose\n"
        "push = np.zeros(len(sae_lab.feature_names), np.float32)\n"
        "push[eq] = 2 * float(codes[..., eq].max())\n"
        "sae_lab.steer = push\n"
        'print("window ends:", repr(text.captions[prose][-32:]))\n'
        'print("as trained: ", repr(sae_lab.generated_baseline))\n'
        'print("steered:    ", repr(sae_lab.generated_edited))'
    ),
]
write("06-text.ipynb", cells)
