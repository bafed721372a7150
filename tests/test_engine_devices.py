"""Devices and dtypes: float16/bfloat16 models, SAEs in another dtype or on another device,
models dispatched with ``accelerate``, and the CUDA variants (skipped without a GPU).

The oracles: a lens with resume off (full forwards with the edits hooked in) for exactness in
the model's own dtype; the float32 twin of the model, with a tolerance of the low precision,
for what the edit does; the undispatched model, bit for bit, for ``accelerate``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

import superwidgets as sw
from superwidgets.engine import SAE, InputError
from superwidgets.engine.lens import _Forward
from superwidgets.science import ReLUSAE

transformers = pytest.importorskip("transformers")  # a test dependency: CI installs it

LOW = [torch.float16, torch.bfloat16]
#: Relative tolerance of one low-precision forward against its float32 twin (a few roundings).
TOL = {torch.float16: 2e-2, torch.bfloat16: 8e-2, torch.float32: 1e-5}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class LensStyleSAE(nn.Module):
    """An SAELens-style SAE: ``x @ W_enc`` with no dtype promotion (a bfloat16 ``x`` meets float32
    weights head on), and no ``encode_subset``."""

    def __init__(self, d: int, n: int, seed: int = 1) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W_enc = nn.Parameter(torch.randn(d, n, generator=g) / d**0.5)
        self.b_enc = nn.Parameter(torch.full((n,), 0.05))
        self.W_dec = nn.Parameter(torch.randn(n, d, generator=g) / d**0.5)
        self.b_dec = nn.Parameter(torch.zeros(d))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.W_enc + self.b_enc)

    def decode(self, c: torch.Tensor) -> torch.Tensor:
        return c @ self.W_dec + self.b_dec


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            [
                ("inp", nn.Linear(12, 32)),
                ("act", nn.ReLU()),
                ("mid", nn.Linear(32, 32)),
                ("act2", nn.ReLU()),
                ("out", nn.Linear(32, 5)),
            ]
        )
    ).eval()


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(3, 16, 3, padding=1)),
                ("bn", nn.BatchNorm2d(16)),
                ("act", nn.ReLU()),
                ("conv2", nn.Conv2d(16, 16, 3, padding=1)),
                ("act2", nn.ReLU()),
                ("pool", nn.AdaptiveAvgPool2d(1)),
                ("flat", nn.Flatten()),
                ("out", nn.Linear(16, 5)),
            ]
        )
    ).eval()


def _gpt2() -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(
        n_layer=2, n_embd=64, n_head=2, vocab_size=256, n_positions=32, bos_token_id=0, eos_token_id=0
    )
    return transformers.GPT2LMHeadModel(cfg).eval()


def _case(kind: str) -> tuple[nn.Module, torch.Tensor, str, int, callable]:
    """(float32 model, float32 inputs (or ids), site, site width, readout)."""
    g = torch.Generator().manual_seed(3)
    if kind == "mlp":
        return _mlp(), torch.randn(6, 12, generator=g), "mid", 32, lambda y: y
    if kind == "cnn":
        return _cnn(), torch.randn(4, 3, 8, 8, generator=g), "conv2", 16, lambda y: y
    return _gpt2(), torch.randint(0, 256, (3, 8), generator=g), "transformer.h.0", 64, lambda y: y.logits


def _cast(model: nn.Module, x: torch.Tensor, dtype: torch.dtype) -> tuple[nn.Module, torch.Tensor]:
    m = copy.deepcopy(model).to(dtype)
    return m, (x.to(dtype) if x.is_floating_point() else x)


def _ops(width: int, basis: str, x: torch.Tensor) -> list[sw.Op]:
    rng = np.random.default_rng(0)
    ops: list[sw.Op] = [sw.Ablate([0, 3]), sw.Scale([1, 2], factor=2.5), sw.Clamp([1], value=1.5)]
    if basis != "sae":  # an SAE's mean ablation is a Clamp to the mean codes (added by lens.edit)
        ops.append(sw.MeanAblate([0, 2], mean=rng.standard_normal(width).astype(np.float32)))
    ops.append(sw.Steer(direction=rng.standard_normal(width), alpha=2.0))  # float64 numpy
    ops.append(sw.Steer(feature=1, alpha=3.0))
    ops.append(sw.ProjectOut(rng.standard_normal((2, width)).astype(np.float32)))
    return ops


def _basis(kind: str, width: int, sae: nn.Module | None = None) -> sw.Basis:
    if kind == "neurons":
        return sw.Neurons()
    if kind == "directions":
        return sw.Directions(np.random.default_rng(1).standard_normal((4, width)))  # float64 numpy
    return SAE(sae if sae is not None else ReLUSAE(width, 4 * width, seed=3))


def _close(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> bool:
    a, b = a.double(), b.double()
    return bool((a - b).abs().max() <= TOL[dtype] * b.abs().max().clamp_min(1e-3))


def _gpu(dtype: torch.dtype) -> torch.dtype:
    """The tolerance key of a GPU result against another computation: float32 on CUDA may use TF32
    convolutions (cuDNN's default), so it gets float16's tolerance."""
    return torch.float16 if dtype == torch.float32 else dtype


def _no_lens_left(model: nn.Module) -> bool:
    return not any(isinstance(m.__dict__.get("forward"), _Forward) for m in model.modules())


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("kind", ["mlp", "cnn", "gpt2"])
@pytest.mark.parametrize("basis", ["neurons", "directions", "sae"])
def test_every_op_and_basis_in_low_precision(kind, basis, dtype):
    model32, x32, site, width, readout = _case(kind)
    model, x = _cast(model32, x32, dtype)
    sae = LensStyleSAE(width, 4 * width) if basis == "sae" else None  # float32 weights, the model is low
    for op in _ops(width, basis, x32):
        with sw.Lens(model) as lens:
            lens.edit(site, op, basis=_basis(basis, width, sae))
            r = lens.run(x, capture=site)
            again = lens.run(x)  # the cached baseline and the resumed edited pass
            got = readout(r.edited)
        assert got.dtype == dtype and torch.equal(readout(again.edited), got)
        with sw.Lens(model, resume=False) as full:
            full.edit(site, op, basis=_basis(basis, width, sae))
            want = readout(full.run(x).edited)
        assert torch.equal(got, want), f"{op!r}: the resumed run differs from a full forward"
        with sw.Lens(model32) as lens32:
            lens32.edit(site, op, basis=_basis(basis, width, sae))
            ref = readout(lens32.run(x32).edited)
        assert _close(got, ref, dtype), f"{op!r} in {dtype} is not the float32 edit"
        assert r.acts[site].dtype == dtype and not torch.equal(r.acts[site], r.clean[site]), f"{op!r} did nothing"
    assert _no_lens_left(model) and _no_lens_left(model32)


@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_sae_basis_follows_the_model_dtype(dtype):
    torch.manual_seed(0)
    sae = LensStyleSAE(32, 128)
    basis = SAE(sae)
    h = torch.relu(torch.randn(5, 32)).to(dtype)
    with pytest.raises(RuntimeError):  # the SAE itself refuses low-precision inputs
        sae.encode(h)
    codes = basis.encode(h)
    assert basis.compute_dtype(h) == torch.float32 and codes.dtype == torch.float32
    with torch.no_grad():
        want = sae.encode(h.float())
    assert torch.equal(codes, want) and torch.equal(basis.encode_subset(h, [3, 7]), want[:, [3, 7]])
    assert basis.module_for(h.device, torch.float32) is sae  # same device and dtype: no copy
    back = basis.decode(codes, like=h)
    assert back.dtype == dtype and back.shape == h.shape
    assert sae.W_enc.dtype == torch.float32  # the user's SAE is never cast


def test_a_low_precision_sae_is_widened_to_the_model_and_the_copy_never_goes_stale():
    sae = ReLUSAE(16, 64, seed=0).to(torch.float16)
    basis = SAE(sae)
    h = torch.relu(torch.randn(4, 16))
    copy32 = basis.module_for(h.device, torch.float32)
    assert copy32 is not sae and copy32.W_enc.dtype == torch.float32 and sae.W_enc.dtype == torch.float16
    assert basis.module_for(h.device, torch.float32) is copy32  # kept, not rebuilt per run
    before = basis.encode(h)
    assert before.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(before, copy.deepcopy(sae).float().encode(h))
        sae.W_enc.mul_(2.0)  # an in-place change of the original: the copy is rebuilt
    assert basis.module_for(h.device, torch.float32) is not copy32
    assert torch.equal(basis.module_for(h.device, torch.float32).W_enc, sae.W_enc.float())
    assert not torch.equal(basis.encode(h), before)


@pytest.mark.parametrize("dtype", [torch.bfloat16], ids=str)
def test_sae_without_error_term_in_low_precision(dtype):
    model32, x32, site, width, _readout = _case("mlp")
    model, x = _cast(model32, x32, dtype)
    sae = LensStyleSAE(width, 4 * width)
    with sw.Lens(model) as lens:
        lens.edit(site, sw.Ablate([0, 1, 2]), basis=SAE(sae, keep_error=False))
        got = lens.run(x).edited
    with sw.Lens(model32) as lens32:
        lens32.edit(site, sw.Ablate([0, 1, 2]), basis=SAE(sae, keep_error=False))
        ref = lens32.run(x32).edited
    assert got.dtype == dtype and _close(got, ref, dtype)


@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_numpy_directions_of_any_float_dtype_steer_alike(dtype):
    model32, x32, site, width, _ = _case("cnn")
    model, x = _cast(model32, x32, dtype)
    v = np.random.default_rng(4).standard_normal(width)
    outs = []
    for direction in (v, v.astype(np.float32), torch.from_numpy(v).to(dtype)):
        with sw.Lens(model) as lens:
            lens.edit(site, sw.Steer(direction=direction, alpha=1.5))
            outs.append(lens.run(x).edited)
    assert outs[0].dtype == dtype and torch.equal(outs[0], outs[1])
    assert _close(outs[2], outs[0], dtype)  # the bf16/fp16 vector itself was rounded


@pytest.mark.parametrize("dtype", LOW, ids=str)
@pytest.mark.parametrize("kind", ["cnn", "gpt2"])
def test_trace_capture_and_sweep_in_low_precision(kind, dtype):
    model32, x32, site, _width, readout = _case(kind)
    model, x = _cast(model32, x32, dtype)
    with sw.Lens(model) as lens:
        out, acts = lens.trace(x, site)
        assert acts[site].dtype == dtype and torch.equal(readout(out), readout(model(x)))
        e = lens.edit(site, sw.Ablate([2]))
        r = lens.run(x, capture=site)
        assert torch.equal(r.clean[site], acts[site])
        edited_acts = lens.trace(x, site, edited=True)[1][site]
        assert torch.equal(r.acts[site], edited_acts) and not torch.equal(r.acts[site], r.clean[site])
        lens.remove(e)
        feats = [0, 2, 5]
        swept = lens.sweep(site, x, features=feats, readout=readout)
        assert swept.dtype == dtype and swept.shape[:2] == (3, x.shape[0])
        for i, f in enumerate(feats):
            e = lens.edit(site, sw.Ablate([f]))
            one = lens.run(x)
            assert torch.equal(swept[i], readout(one.edited) - readout(one.baseline)), f"feature {f}"
            lens.remove(e)


@pytest.mark.parametrize("dtype", LOW, ids=str)
def test_save_and_load_edits_round_trip_in_low_precision(tmp_path, dtype):
    model32, x32, site, width, readout = _case("gpt2")
    model, x = _cast(model32, x32, dtype)
    sae = ReLUSAE(width, 4 * width, seed=3)
    rng = np.random.default_rng(5)
    with sw.Lens(model) as lens:
        lens.edit(site, sw.Steer(direction=rng.standard_normal(width), alpha=2.0))
        lens.edit(site, sw.Ablate([1]), basis=sw.Directions(rng.standard_normal((3, width))))
        lens.edit(site, sw.Scale([4, 9], factor=0.0), basis=SAE(sae, name="res0"))
        lens.edit("transformer.h.1", sw.MeanAblate([0, 5], reference=torch.randint(0, 256, (4, 8))))
        lens.edit("transformer.h.1", sw.Clamp([2], value=0.5), basis=SAE(sae, name="res0"), enabled=False)
        want = readout(lens.run(x).edited)
        path = lens.save_edits(tmp_path / "edits")
    with sw.Lens(model) as lens:
        loaded = lens.load_edits(path, saes={"res0": sae})
        assert [e.enabled for e in loaded] == [True, True, True, True, False]
        got = readout(lens.run(x).edited)
    assert got.dtype == dtype and torch.equal(got, want)


def test_low_precision_inputs_to_a_float32_model_say_how_to_fix():
    model32, x32, *_ = _case("mlp")
    with sw.Lens(model32) as lens, pytest.raises(InputError, match=r"x\.to\(torch\.float32\)"):
        lens.run(x32.to(torch.bfloat16))


# ---------------------------------------------------------------- accelerate
accelerate = pytest.importorskip("accelerate")


def _dispatched(kind: str, how: str, tmp_path) -> nn.Module:
    """The model of ``kind`` dispatched by accelerate: hooks on (a CPU-only) device map, or offloaded."""
    model = _case(kind)[0]
    names = [n for n, _ in model.named_children()]
    if kind == "gpt2":
        names = [f"transformer.{n}" for n, _ in model.transformer.named_children() if n != "h"]
        names += [f"transformer.h.{i}" for i in range(len(model.transformer.h))] + ["lm_head"]
    if how == "cpu_offload":
        return accelerate.cpu_offload(model, execution_device=torch.device("cpu"))
    if how == "dispatch":
        return accelerate.dispatch_model(model, device_map=dict.fromkeys(names, "cpu"), force_hooks=True)
    # half the modules offloaded to disk (meta between calls), the others on the CPU
    weighted = [n for n in names if any(True for _ in model.get_submodule(n).parameters())]
    device_map = {n: ("disk" if n in weighted[1::2] else "cpu") for n in names}  # the first on the CPU
    if kind == "gpt2":  # tied lm_head/wte weights must live together
        device_map["lm_head"] = device_map["transformer.wte"] = "cpu"
    return accelerate.dispatch_model(model, device_map=device_map, main_device="cpu", offload_dir=str(tmp_path))


def _accelerate_forwards(model: nn.Module) -> dict[str, object]:
    return {n: m.__dict__["forward"] for n, m in model.named_modules() if "forward" in m.__dict__}


@pytest.mark.parametrize("kind", ["mlp", "cnn", "gpt2"])
@pytest.mark.parametrize(
    "how",
    [
        "dispatch",
        "disk",
        "cpu_offload",
    ],
)
def test_accelerate_models_give_the_undispatched_numbers(kind, how, tmp_path):
    plain, x, site, width, readout = _case(kind)
    model = _dispatched(kind, how, tmp_path)
    before = _accelerate_forwards(model)
    assert before, "accelerate installed its hooks as instance forwards"
    sae = ReLUSAE(width, 4 * width, seed=3)
    v = np.random.default_rng(2).standard_normal(width)
    results = []
    for m in (plain, model):
        with sw.Lens(m) as lens:
            lens.edit(site, sw.Steer(direction=v, alpha=2.0))
            lens.edit(site, sw.Ablate([1, 4]), basis=SAE(sae))
            r = lens.run(x, capture=site)
            r2 = lens.run(x, capture=site)  # the cached baseline and the resumed edited pass
            assert torch.equal(readout(r2.edited), readout(r.edited))
            info = lens.resume_info
            traced = lens.trace(x, site)[1][site]
            lens.clear()
            swept = lens.sweep(site, x, features=[0, 3], readout=readout)
            results.append((readout(r.baseline), readout(r.edited), r.clean[site], r.acts[site], traced, swept, info))
    for a, b in zip(results[0][:-1], results[1][:-1], strict=True):
        assert torch.equal(a, b)
    assert ("fx" in results[1][-1]) == ("fx" in results[0][-1])  # resumed the same way as the plain model
    assert "full forwards" not in results[1][-1].split(";")[0]
    assert _no_lens_left(model) and _accelerate_forwards(model) == before  # accelerate's own hooks stay
    assert all(hasattr(m, "_hf_hook") for m in model.modules() if "forward" in m.__dict__)


def test_accelerate_weights_changed_in_place_refresh_the_cached_baseline(tmp_path):
    plain, x, site, _, _ = _case("mlp")
    model = _dispatched("mlp", "dispatch", tmp_path)
    with sw.Lens(model) as lens:
        lens.edit(site, sw.Ablate([0]))
        first = lens.run(x).baseline
        with torch.no_grad():
            model.out.weight.mul_(2.0)
        second = lens.run(x).baseline
        with lens.off(), torch.no_grad():
            assert torch.equal(second, model(x))
    assert not torch.equal(first, second)
    with torch.no_grad():
        plain.out.weight.mul_(2.0)
        assert torch.equal(second, plain(x))


# ---------------------------------------------------------------- CUDA (skipped without a GPU)
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, *LOW], ids=str)
def test_cuda_model_with_a_cpu_built_sae(dtype):
    model32, x32, site, width, readout = _case("gpt2")
    model, x = _cast(model32, x32, dtype)
    model, x = model.cuda(), x.cuda()
    sae = LensStyleSAE(width, 4 * width)  # built on the CPU, float32
    basis = SAE(sae)
    with sw.Lens(model) as lens:
        lens.edit(site, sw.Ablate([0, 1, 2, 3]), basis=basis)
        lens.edit(site, sw.Steer(feature=5, alpha=2.0), basis=basis)
        r = lens.run(x, capture=site)
        r2 = lens.run(x, capture=site)
        got = readout(r.edited)
        swept = lens.sweep(site, x, features=[0, 1], basis=basis, readout=readout)
    assert got.device.type == "cuda" and got.dtype == dtype and torch.equal(readout(r2.edited), got)
    assert r.acts[site].device.type == "cuda" and swept.shape[:2] == (2, x.shape[0])
    assert sae.W_enc.device.type == "cpu"  # the user's SAE stays where it was built
    on_gpu = basis.module_for(got.device, torch.float32)  # the kept copy the runs used
    assert on_gpu is not sae and on_gpu.W_enc.device.type == "cuda" and basis.module_for(got.device) is on_gpu
    with sw.Lens(model32) as lens32:  # the same edits on the CPU float32 model
        lens32.edit(site, sw.Ablate([0, 1, 2, 3]), basis=SAE(sae))
        lens32.edit(site, sw.Steer(feature=5, alpha=2.0), basis=SAE(sae))
        ref = readout(lens32.run(x32).edited)
    assert _close(got.cpu(), ref, _gpu(dtype))


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, *LOW], ids=str)
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_cuda_every_op_and_sweep(kind, dtype):
    model32, x32, site, width, readout = _case(kind)
    model, x = _cast(model32, x32, dtype)
    model, x = model.cuda(), x.cuda()
    for basis in ("neurons", "directions", "sae"):
        for op in _ops(width, basis, x32):
            with sw.Lens(model) as lens:
                lens.edit(site, op, basis=_basis(basis, width))
                got = readout(lens.run(x).edited)
            with sw.Lens(model, resume=False) as full:
                full.edit(site, op, basis=_basis(basis, width))
                want = readout(full.run(x).edited)
            # cuDNN may pick another algorithm for the tail program: equal up to the dtype's rounding
            assert got.device.type == "cuda" and got.dtype == dtype, f"{op!r} in {basis}"
            assert _close(got.cpu(), want.cpu(), _gpu(dtype)), f"{op!r}"
    with sw.Lens(model) as lens:
        swept = lens.sweep(site, x, features=[0, 1, 2])
        for i in range(3):
            e = lens.edit(site, sw.Ablate([i]))
            one = lens.run(x)
            assert _close(swept[i], (one.edited - one.baseline).cpu(), _gpu(dtype))
            lens.remove(e)


@cuda
def test_cuda_accelerate_device_map_across_cpu_and_gpu():
    plain, x, site, width, readout = _case("gpt2")
    model = _case("gpt2")[0]
    device_map = {
        "transformer.wte": 0,
        "transformer.wpe": 0,
        "transformer.drop": 0,
        "transformer.h.0": "cpu",
        "transformer.h.1": 0,
        "transformer.ln_f": 0,
        "lm_head": 0,
    }
    model = accelerate.dispatch_model(model, device_map=device_map, main_device=torch.device("cuda", 0))
    sae = ReLUSAE(width, 4 * width, seed=3)
    outs = []
    for m, xx in ((plain, x), (model, x.cuda())):
        with sw.Lens(m) as lens:
            lens.edit(site, sw.Ablate([1, 4]), basis=SAE(sae))
            r = lens.run(xx)
            outs.append((readout(r.baseline).cpu(), readout(r.edited).cpu()))
    for a, b in zip(*outs, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-3)
    assert _no_lens_left(model)
