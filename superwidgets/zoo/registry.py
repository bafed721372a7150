"""Model registry: architecture, data and shipped weights of each reference model."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["WEIGHTS", "CharTransformer", "Entry", "NeuronCNN", "NeuronRecordMLP", "available", "build", "card", "load"]

WEIGHTS = Path(__file__).parent / "weights"


@dataclasses.dataclass(frozen=True)
class Entry:
    """A reference model: how to build it, its data, how to train it.

    Attributes
    ----------
    name : str
        Registry name, also the stem of the weight and card files.
    architecture : callable
        ``() -> nn.Module``, the untrained model with a seeded initialisation.
    data : callable
        ``() -> data``, the data set the model is trained on and returned by :func:`load`.
    description : str
        One line for the model card.
    train_steps, lr, weight_decay : int, float, float
        Full-batch AdamW recipe, used when ``fit`` is ``None``.
    fit : callable or None
        ``fit(model, data, *, generator, **recipe)`` trains ``model`` in place (mini-batches drawn
        with ``generator``); ``None`` means the full-batch recipe above.
    recipe : mapping
        Keyword arguments for ``fit`` (epochs, batch size, …); written to the model card.
    evaluate : callable or None
        ``evaluate(model, data) -> dict`` of metrics for the model card; ``None`` means
        train and test accuracy on ``data.X``, ``data.y``.
    """

    name: str
    architecture: Callable[[], nn.Module]
    data: Callable[[], Any]
    description: str
    train_steps: int = 300
    lr: float = 3e-3
    weight_decay: float = 0.2
    fit: Callable[..., None] | None = None
    recipe: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    evaluate: Callable[[nn.Module, Any], dict[str, Any]] | None = None


def _breast_cancer_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            [
                ("inp", nn.Linear(30, 16)),
                ("hidden", nn.ReLU()),
                ("out", nn.Linear(16, 2)),
            ]
        )
    )


def _breast_cancer_data() -> Any:
    from ..data.patients import breast_cancer

    return breast_cancer()


# --------------------------------------------------------------------------------------------
# The neuron world models: image → bottleneck and record → bottleneck
# --------------------------------------------------------------------------------------------

#: The neuron world every neuron model is trained on: ``neurons(n=NEURON_CELLS, seed=0, image_size=NEURON_IMAGE_SIZE)``.
NEURON_CELLS = 8000
NEURON_IMAGE_SIZE = 32
_N_FACTORS = 20  # len(superwidgets.data.neurons.FACTOR_NAMES)


class _NeuronModel(nn.Module):
    """Shared heads of the neuron models: disease logits from ``forward``, outcome and factors on request.

    Subclasses set ``self.bottleneck`` (the code of width ``width``) and implement :meth:`features`.
    """

    width: int
    bottleneck: nn.Linear

    def _heads(self, width: int) -> None:
        self.width = width
        self.disease_head = nn.Linear(width, 2)
        self.outcome_head = nn.Linear(width, 1)
        self.factor_head = nn.Linear(width, _N_FACTORS)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The bottleneck code, shape ``(B, width)`` (the ``"bottleneck"`` site)."""
        return self.bottleneck(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Disease logits ``(B, 2)``: columns ``["control", "PD"]``."""
        return self.disease_head(self.encode(x))

    def predict_outcome(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted death-risk score ``(B,)`` (the world's ``outcome``), from the bottleneck."""
        return self.outcome_head(self.encode(x))[:, 0]

    def predict_factors(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted ground-truth factors ``(B, 20)`` (order of ``FACTOR_NAMES``): ``relu(factor_head(code))``."""
        return torch.relu(self.factor_head(self.encode(x)))

    def world_inputs(self, world: Any) -> torch.Tensor:  # pragma: no cover - abstract
        """The tensor this model reads from a :class:`~superwidgets.data.NeuronWorld`."""
        raise NotImplementedError


# The input checks are leaf calls for torch.fx (``torch.fx.wrap``): they run on real tensors, and a
# Lens can still trace the model to resume runs from a site instead of re-running it whole.
@torch.fx.wrap
def _check_images(x: torch.Tensor, s: int) -> torch.Tensor:
    if x.ndim != 4 or tuple(x.shape[1:]) != (4, s, s):
        raise ValueError(
            f"NeuronCNN expects images of shape (B, 4, {s}, {s}) (channels neurites, nuclei, puncta, ais; "
            f"e.g. neurons(image_size={s}).images); got {tuple(x.shape)}"
        )
    return x


@torch.fx.wrap
def _check_records(x: torch.Tensor, n_features: int) -> torch.Tensor:
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ValueError(
            f"NeuronRecordMLP expects standardised records of shape (B, {n_features}) "
            f"(world.records.X); got {tuple(x.shape)}"
        )
    return x


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict([("conv", nn.Conv2d(c_in, c_out, 3, padding=1)), ("relu", nn.ReLU()), ("pool", nn.AvgPool2d(2))])
    )


class NeuronCNN(_NeuronModel):
    """Neuron image ``(B, 4, S, S)`` in [0, 1] → bottleneck of width ``width`` → disease logits.

    Sites (``named_modules()`` paths; shapes at ``S = 32``):

    ================  ======================  ===============================================
    ``conv.block1``   ``(B, 16, 16, 16)``     conv 3×3 → ReLU → 2×2 average pool
    ``conv.block2``   ``(B, 32, 8, 8)``       same
    ``conv.block3``   ``(B, 64, 4, 4)``       same (``conv.blockN.relu``: before the pool)
    ``fc``            ``(B, 128)``            flatten → linear → ReLU
    ``bottleneck``    ``(B, width)``          linear, no activation: the superposition knob
    ``disease_head``  ``(B, 2)``              the model's output (control / PD logits)
    ``outcome_head``  ``(B, 1)``              death-risk (see :meth:`predict_outcome`)
    ``factor_head``   ``(B, 20)``             the 20 factors before their ReLU (:meth:`predict_factors`)
    ================  ======================  ===============================================
    """

    def __init__(
        self, width: int, *, image_size: int = NEURON_IMAGE_SIZE, channels: tuple[int, int, int] = (16, 32, 64)
    ) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8 (three 2×2 pools); got {image_size}")
        self.image_size = image_size
        c1, c2, c3 = channels
        self.conv = nn.Sequential(
            OrderedDict(
                [("block1", _conv_block(4, c1)), ("block2", _conv_block(c1, c2)), ("block3", _conv_block(c2, c3))]
            )
        )
        self.flatten = nn.Flatten()
        self.fc = nn.Sequential(
            OrderedDict([("linear", nn.Linear(c3 * (image_size // 8) ** 2, 128)), ("relu", nn.ReLU())])
        )
        self.bottleneck = nn.Linear(128, width)
        self._heads(width)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``fc`` activations ``(B, 128)`` that feed the bottleneck."""
        x = _check_images(x, self.image_size)
        return self.fc(self.flatten(self.conv(x)))

    def world_inputs(self, world: Any) -> torch.Tensor:
        """``world.images`` as a float32 tensor."""
        return torch.as_tensor(world.images, dtype=torch.float32)


class NeuronRecordMLP(_NeuronModel):
    """Standardised neuron record ``(B, 32)`` → bottleneck of width ``width`` → disease logits.

    Sites: ``encoder`` ``(B, 64)`` (linear → ReLU; ``encoder.linear`` before the ReLU),
    ``bottleneck`` ``(B, width)`` (linear, no activation), ``disease_head`` ``(B, 2)`` (the output),
    ``outcome_head`` ``(B, 1)``, ``factor_head`` ``(B, 20)``.
    """

    def __init__(self, width: int, *, n_features: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.n_features = n_features
        self.encoder = nn.Sequential(OrderedDict([("linear", nn.Linear(n_features, hidden)), ("relu", nn.ReLU())]))
        self.bottleneck = nn.Linear(hidden, width)
        self._heads(width)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``encoder`` activations ``(B, 64)`` that feed the bottleneck."""
        x = _check_records(x, self.n_features)
        return self.encoder(x)

    def world_inputs(self, world: Any) -> torch.Tensor:
        """``world.records.X`` (standardised records)."""
        return world.records.X


def _seeded(factory: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    @functools.wraps(factory)
    def build() -> nn.Module:
        torch.manual_seed(0)
        return factory()

    return build


@functools.lru_cache(maxsize=1)
def _neuron_world() -> Any:
    """The neuron world of the neuron models, generated once per process (≈ 3 s)."""
    from ..data.neurons import neurons

    return neurons(n=NEURON_CELLS, seed=0, image_size=NEURON_IMAGE_SIZE)


def _fit_neuron(model: nn.Module, world: Any, *, generator: torch.Generator, **recipe: Any) -> None:
    from .train import fit_neuron_model

    fit_neuron_model(model, world, generator=generator, **recipe)


def _evaluate_neuron(model: nn.Module, world: Any) -> dict[str, Any]:
    from .train import neuron_metrics

    return neuron_metrics(model, world)


_CNN_RECIPE = {"epochs": 80, "batch_size": 128, "lr": 3e-3, "weight_decay": 0.05, "augment": True}
_MLP_RECIPE = {"epochs": 100, "batch_size": 128, "lr": 3e-3, "weight_decay": 0.01, "augment": False}
_NEURON_TASKS = (
    "trained on disease (cross-entropy) + death-risk outcome (MSE) + all 20 ground-truth factors "
    "read out through a ReLU (MSE per factor, variance-normalised), every head reading the bottleneck"
)


def _neuron_entry(name: str, kind: str, width: int) -> Entry:
    if kind == "cnn":
        arch = _seeded(functools.partial(NeuronCNN, width))
        what = f"neuron image (4×{NEURON_IMAGE_SIZE}×{NEURON_IMAGE_SIZE}) → 3 conv blocks → fc 128"
        recipe = _CNN_RECIPE
    else:
        arch = _seeded(functools.partial(NeuronRecordMLP, width))
        what = "neuron record (32 standardised columns) → encoder 64"
        recipe = _MLP_RECIPE
    size = "narrow: fewer dimensions than the 20 factors" if width < _N_FACTORS else "wide"
    return Entry(
        name=name,
        architecture=arch,
        data=_neuron_world,
        description=f"{what} → linear bottleneck of width {width} ({size}) → disease logits; {_NEURON_TASKS}.",
        fit=_fit_neuron,
        recipe=dict(recipe),
        evaluate=_evaluate_neuron,
    )


# --------------------------------------------------------------------------------------------
# A character-level language model on Python's help pages
# --------------------------------------------------------------------------------------------

#: Context (characters) of ``char-lm``.
CHAR_CONTEXT = 64


class CharBlock(nn.Module):
    """Pre-LayerNorm transformer block: causal self-attention, then an MLP, each added to the stream.

    Sites: ``attn`` (attention output), ``mlp.1`` (the GELU neurons, ``4·d`` of them), ``mlp``
    (MLP output); the block itself outputs the residual stream.
    """

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.attn = nn.Linear(d, d)  # output projection: its output is the attention's contribution
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + attn(ln1(x))``, then ``+ mlp(ln2(·))``; ``x`` is ``(n, T, d)``."""
        n, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.reshape(n, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn(a.transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.ln2(x))


@torch.fx.wrap
def _check_ids(ids: torch.Tensor, vocab: int, context: int) -> torch.Tensor:
    if ids.ndim != 2 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(
            f"char-lm reads integer character ids of shape (n, T); got {tuple(ids.shape)} {ids.dtype} "
            "(encode text with data.encode(s))"
        )
    if ids.shape[1] > context:
        raise ValueError(f"char-lm reads at most {context} characters; got {ids.shape[1]} (keep the last {context})")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ValueError(f"character ids must be in 0..{vocab - 1}")
    return ids


class CharTransformer(nn.Module):
    """A tiny GPT-style character model: embeddings → ``layers`` blocks → LayerNorm → next-character logits.

    ``forward(ids)`` maps ``(n, T)`` ids (``T ≤ context``) to ``(n, T, vocab)`` logits; widgets read the
    last position (the next character). Sites: ``embed``, ``blocks.i`` (residual stream after block
    ``i``), ``blocks.i.attn``, ``blocks.i.mlp.1`` (GELU neurons), ``blocks.i.mlp``, ``ln_f``, ``head``.
    """

    def __init__(self, vocab: int, d: int = 64, heads: int = 4, layers: int = 2, context: int = CHAR_CONTEXT) -> None:
        super().__init__()
        self.vocab, self.context = vocab, context
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(context, d) * 0.02)
        self.blocks = nn.ModuleList([CharBlock(d, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-character logits ``(n, T, vocab)`` at every position of ``ids`` ``(n, T)``."""
        ids = _check_ids(ids, self.vocab, self.context)
        x = self.embed(ids) + self.pos[: ids.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


@functools.lru_cache(maxsize=1)
def _char_text() -> Any:
    from ..data.text import python_help

    return python_help(context=CHAR_CONTEXT)


def _char_lm() -> nn.Module:
    torch.manual_seed(0)
    return CharTransformer(len(_char_text().vocab))


def _fit_char(model: nn.Module, data: Any, *, generator: torch.Generator, **recipe: Any) -> None:
    from .train import fit_char_model

    fit_char_model(model, data, generator=generator, **recipe)


def _evaluate_char(model: nn.Module, data: Any) -> dict[str, Any]:
    from .train import char_metrics

    return char_metrics(model, data)


# --------------------------------------------------------------------------------------------
# A self-supervised encoder of the cell-state world (never shown a label)
# --------------------------------------------------------------------------------------------

#: The world of ``neuron-ssl``: ``cell_states(n=SSL_CELLS, seed=0, image_size=SSL_IMAGE_SIZE)``.
SSL_CELLS = 6000
SSL_IMAGE_SIZE = 48
_SSL_WIDTHS = (16, 32, 64, 128)
_SSL_RECIPE = {
    "method": "simclr",
    "epochs": 12,
    "batch_size": 32,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "temperature": 0.5,
    "projection_dim": 64,
}


@functools.lru_cache(maxsize=1)
def _cell_world() -> Any:
    """The cell-state world of ``neuron-ssl``, generated once per process (≈ 8 s)."""
    from ..data.cellstate import cell_states

    return cell_states(n=SSL_CELLS, seed=0, image_size=SSL_IMAGE_SIZE)


def _ssl_encoder() -> nn.Module:
    from ..science.ssl import ConvEncoder

    torch.manual_seed(0)
    return ConvEncoder(in_channels=4, widths=_SSL_WIDTHS)


def _fit_ssl(model: nn.Module, world: Any, *, generator: torch.Generator, **recipe: Any) -> None:
    from ..science.ssl import train_ssl

    train_ssl(world.images[world.train], encoder=model, seed=int(generator.initial_seed()), **recipe)


def _evaluate_ssl(model: nn.Module, world: Any) -> dict[str, Any]:
    from ..science.ssl import ssl_card_metrics

    return ssl_card_metrics(model, _ssl_encoder(), world)


_REGISTRY: dict[str, Entry] = {
    "breast-cancer-mlp": Entry(
        name="breast-cancer-mlp",
        architecture=_breast_cancer_mlp,
        data=_breast_cancer_data,
        description="30 nuclear-morphology features → 16 ReLU units ('hidden') → malignant/benign logits.",
    ),
    "neuron-cnn-narrow": _neuron_entry("neuron-cnn-narrow", "cnn", 6),
    "neuron-cnn-wide": _neuron_entry("neuron-cnn-wide", "cnn", 48),
    "neuron-record-mlp-narrow": _neuron_entry("neuron-record-mlp-narrow", "mlp", 6),
    "neuron-record-mlp-wide": _neuron_entry("neuron-record-mlp-wide", "mlp", 48),
    "neuron-ssl": Entry(
        name="neuron-ssl",
        architecture=_ssl_encoder,
        data=_cell_world,
        description=(
            f"self-supervised (SimCLR, NT-Xent; never shown a label) CNN encoder of cell-state neuron "
            f"images (4×{SSL_IMAGE_SIZE}×{SSL_IMAGE_SIZE}): 4 conv stages {_SSL_WIDTHS} with GroupNorm → global "
            f"average pool → {_SSL_WIDTHS[-1]} features; trained on the world's train wells"
        ),
        fit=_fit_ssl,
        recipe=dict(_SSL_RECIPE),
        evaluate=_evaluate_ssl,
    ),
    "char-lm": Entry(
        name="char-lm",
        architecture=_char_lm,
        data=_char_text,
        description=(
            f"character-level transformer on Python's help pages: 96 characters → embed 64 → 2 pre-LN blocks "
            f"(4-head causal attention, MLP 64→256 GELU→64) → next-character logits; context {CHAR_CONTEXT}"
        ),
        fit=_fit_char,
        recipe={"steps": 3000, "batch_size": 64, "lr": 3e-3, "weight_decay": 0.01},
        evaluate=_evaluate_char,
    ),
}


def available() -> list[str]:
    """Names of the reference models."""
    return sorted(_REGISTRY)


def _entry(name: str) -> Entry:
    """The registry entry of ``name``: registered names only (never a path: ``"../x"`` is refused)."""
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, one of {available()}; got {name!r}")
    if name in _REGISTRY:
        return _REGISTRY[name]
    hits = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.4)
    hint = f"did you mean {' or '.join(repr(h) for h in hits)}? " if hits else ""
    raise ValueError(f"unknown model {name!r}; {hint}registered models: {available()}")


def build(name: str) -> nn.Module:
    """The untrained architecture of model ``name`` (seeded initialisation)."""
    return _entry(name).architecture()


def load(name: str) -> tuple[nn.Module, Any]:
    """Load reference model ``name`` with its shipped weights, and its data.

    Parameters
    ----------
    name : str
        One of :func:`available`.

    Returns
    -------
    model : nn.Module
        In eval mode, weights from ``superwidgets/zoo/weights/<name>.safetensors``.
    data : object
        The model's data set: a :class:`superwidgets.data.TabularData` for ``breast-cancer-mlp``; the
        :class:`superwidgets.data.NeuronWorld` ``neurons(n=8000, seed=0, image_size=32)`` for the
        ``neuron-*`` models (generated once per process and shared between them: treat it as read-only);
        the :class:`superwidgets.data.text.CharText` of Python's help pages for ``char-lm``; the
        :class:`superwidgets.data.cellstate.CellStateWorld` ``cell_states(n=6000, seed=0, image_size=48)``
        for ``neuron-ssl`` (whose model maps images to pooled features, not logits).

    Raises
    ------
    FileNotFoundError
        If the weights are missing; rebuild them with
        ``python -m superwidgets.zoo.train NAME``.
    """
    from safetensors.torch import load_file

    entry = _entry(name)
    path = WEIGHTS / f"{name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"no shipped weights at {path}; train them with: python -m superwidgets.zoo.train {name}"
        )
    model = entry.architecture()
    model.load_state_dict(load_file(str(path)))
    model.eval()
    return model, entry.data()


def card(name: str) -> dict[str, Any]:
    """The model card written by the training script (metrics, steps, seed); ``{}`` if none is shipped.

    Raises
    ------
    ValueError
        ``name`` is not one of :func:`available` (with close matches).
    """
    _entry(name)  # a registered name, so the path stays inside WEIGHTS
    path = WEIGHTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}
