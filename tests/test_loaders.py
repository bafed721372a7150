"""Loaders refuse bad files with clear errors; savers are atomic and handle shared tensors.

Every test writes real files into ``tmp_path`` (no mocks): edit sets (JSON +
safetensors), superwidgets SAEs, SAELens folders, model cards.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import superwidgets as sw
from superwidgets.engine.bases import Basis
from superwidgets.engine.export import load_edits, save_edits
from superwidgets.science.sae import load_sae, load_saelens, make_sae, save_sae
from superwidgets.zoo import registry

SAELENS = Path(__file__).parent / "data" / "saelens"


# ====================================================================== A. saving edit sets
def _lab_edits(lens: sw.Lens, basis: sw.Directions) -> None:
    """What FeatureLab does with a Directions basis: two edits sharing one basis object (one tensor)."""
    lens.edit("hidden", sw.Ablate([1]), basis=basis, name="ablate")
    lens.edit("hidden", sw.Steer(feature=0, alpha=0.7), basis=basis, name="steer")


def test_save_edits_with_a_shared_basis_tensor_reproduces_outputs(mlp, tmp_path):
    torch.manual_seed(3)
    x = torch.randn(7, 6)
    vectors = torch.randn(2, 5)
    basis = sw.Directions(vectors, names=["a", "b"])
    direction = torch.randn(5)
    with sw.Lens(mlp) as lens:
        _lab_edits(lens, basis)
        # the same tensor used by two ops; a row of the basis's own tensor (overlapping memory)
        lens.edit("hidden", sw.Steer(direction=direction, alpha=0.2))
        lens.edit("hidden", sw.ProjectOut(direction))
        lens.edit("hidden", sw.Steer(direction=vectors[1], alpha=-0.4))
        want = lens.run(x).edited
        path = save_edits(lens.edits, tmp_path / "lab")
    assert path == tmp_path / "lab.json" and (tmp_path / "lab.safetensors").exists()
    loaded = load_edits(path)
    assert len(loaded) == 5
    with sw.Lens(copy.deepcopy(mlp)) as lens2:
        for e in loaded:
            lens2.add(e)
        assert torch.equal(lens2.run(x).edited, want)


def test_save_edits_over_an_older_save_never_leaves_a_stale_pair(mlp, tmp_path):
    """Saving shared tensors over an older save once wrote the new JSON beside the OLD tensors."""
    torch.manual_seed(4)
    x = torch.randn(5, 6)
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Steer(direction=torch.randn(5), alpha=1.0))
        old_out = lens.run(x).edited
        save_edits(lens.edits, tmp_path / "set")
        lens.clear()
        _lab_edits(lens, sw.Directions(torch.randn(2, 5)))
        new_out = lens.run(x).edited
        try:
            save_edits(lens.edits, tmp_path / "set")
        except Exception:  # a failed save must leave the previous one loadable and intact
            want = old_out
        else:
            want = new_out
    with sw.Lens(copy.deepcopy(mlp)) as lens2:
        for e in load_edits(tmp_path / "set"):
            lens2.add(e)
        assert torch.equal(lens2.run(x).edited, want)
    assert torch.equal(want, new_out)  # and the save itself works


class _UserBasis(Basis):
    """A user-defined basis without ``to_dict``: edits in it cannot be saved."""

    kind = "mine"

    def size(self):
        return None

    def names(self, width):
        return [f"m{i}" for i in range(width)]

    def vectors(self, width):
        return torch.eye(width)


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_failed_save_leaves_previous_save_intact_and_no_temp_files(mlp, tmp_path):
    folder = tmp_path / "sets"
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Steer(direction=torch.randn(5), alpha=1.0))
        save_edits(lens.edits, folder / "set")
        before = _files(folder)
        bad = [*lens.edits, sw.Edit("hidden", sw.Ablate([0]), basis=_UserBasis(), name="mine")]
        with pytest.raises(TypeError, match=r"edits\[1\].*'mine'.*_UserBasis"):
            save_edits(bad, folder / "set")
        assert _files(folder) == before
        # an edit that is not JSON (a set where a feature name goes)
        weird = sw.Edit("hidden", sw.Steer(direction=torch.randn(5)), name="x")
        weird.name = {"not", "json"}  # type: ignore[assignment]
        with pytest.raises(TypeError, match=r"edits\[1\].*JSON"):
            save_edits([*lens.edits, weird], folder / "set")
        assert _files(folder) == before
        # the target's JSON path is taken by a folder: the save fails late (at the rename)
        (folder / "blocked.json").mkdir()
        with pytest.raises(OSError):
            save_edits(lens.edits, folder / "blocked")
        assert sorted(p.name for p in folder.iterdir()) == ["blocked.json", "set.json", "set.safetensors"]
    assert len(load_edits(folder / "set")) == 1


def test_a_stale_or_foreign_tensor_file_is_refused(mlp, tmp_path):
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Steer(direction=torch.randn(5), alpha=1.0))
        save_edits(lens.edits, tmp_path / "a")
        lens.clear()
        lens.edit("hidden", sw.Steer(direction=torch.randn(5), alpha=1.0))
        save_edits(lens.edits, tmp_path / "b")
    # same tensor names, other values: b's tensors beside a's JSON
    shutil.copy(tmp_path / "b.safetensors", tmp_path / "a.safetensors")
    with pytest.raises(ValueError, match=r"a\.json.*a\.safetensors.*(another|not .*saved together)"):
        load_edits(tmp_path / "a")
    # tensors modified after the save (metadata kept, one value changed)
    save_edits(load_edits(tmp_path / "b"), tmp_path / "c")
    t = load_file(str(tmp_path / "c.safetensors"))
    from safetensors import safe_open

    with safe_open(str(tmp_path / "c.safetensors"), "pt") as f:
        meta = f.metadata()
    k = next(iter(t))
    t[k] = t[k] + 1.0
    save_file(t, str(tmp_path / "c.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match=r"c\.safetensors"):
        load_edits(tmp_path / "c")


# ====================================================================== B. malformed edit files
def _base_set(mlp, folder: Path) -> Path:
    """A saved edit set: edits[0] Steer(direction), edits[1] Ablate in a Directions basis, edits[2] Scale."""
    torch.manual_seed(5)
    with sw.Lens(mlp) as lens:
        lens.edit("hidden", sw.Steer(direction=torch.randn(5), alpha=0.5))
        lens.edit("hidden", sw.Ablate([1]), basis=sw.Directions(torch.randn(2, 5), names=["a", "b"]))
        lens.edit("hidden", sw.Scale([2], factor=1.5))
        return save_edits(lens.edits, folder / "set")


def _set(path: tuple, value):
    def change(doc):
        *parents, last = path
        d = doc
        for p in parents:
            d = d[p]
        d[last] = value

    return change


def _del(path: tuple):
    def change(doc):
        *parents, last = path
        d = doc
        for p in parents:
            d = d[p]
        del d[last]

    return change


E1 = ("edits", 1)
BAD_EDIT_DOCS = {
    "no edits": (_del(("edits",)), r"'?edits'?"),
    "edits not a list": (_set(("edits",), {"0": {}}), r"edits must be a list"),
    "edits null": (_set(("edits",), None), r"edits must be a list"),
    "entry a list": (_set(E1, ["hidden", "ablate"]), r"edits\[1\] must be an object"),
    "no site": (_del((*E1, "site")), r"edits\[1\]\.site"),
    "no op": (_del((*E1, "op")), r"edits\[1\]\.op"),
    "enabled string": (_set((*E1, "enabled"), "false"), r"edits\[1\]\.enabled must be true or false.*string 'false'"),
    "enabled int": (_set((*E1, "enabled"), 0), r"edits\[1\]\.enabled must be true or false"),
    "site int": (_set((*E1, "site"), 3), r"edits\[1\]\.site must be a .*string"),
    "site empty": (_set((*E1, "site"), ""), r"edits\[1\]\.site"),
    "name list": (_set((*E1, "name"), ["a"]), r"edits\[1\]\.name must be a string"),
    "element float": (_set((*E1, "element"), 1.5), r"edits\[1\]\.element must be an integer or a string"),
    "element bool": (_set((*E1, "element"), True), r"edits\[1\]\.element must be an integer or a string"),
    "feature_dim string": (_set((*E1, "feature_dim"), "1"), r"edits\[1\]\.feature_dim must be an integer or null"),
    "feature_dim float": (_set((*E1, "feature_dim"), 1.0), r"edits\[1\]\.feature_dim must be an integer or null"),
    "unknown edit field": (_set((*E1, "enable"), False), r"edits\[1\].*'enable'"),
    "op a string": (_set((*E1, "op"), "ablate"), r"edits\[1\]\.op must be an object"),
    "op unknown": (_set((*E1, "op", "op"), "zap"), r"edits\[1\]\.op\.op.*'zap'"),
    "op kind missing": (_del((*E1, "op", "op")), r"edits\[1\]\.op\.op"),
    "op unknown field": (_set((*E1, "op", "strength"), 2), r"edits\[1\]\.op.*'strength'"),
    "op features object": (_set((*E1, "op", "features"), {"a": 1}), r"edits\[1\]\.op\.features"),
    "op features bools": (_set((*E1, "op", "features"), [True]), r"edits\[1\]\.op\.features"),
    "op factor string": (_set(("edits", 2, "op", "factor"), "big"), r"edits\[2\]\.op\.factor"),
    "op factor missing": (_del(("edits", 2, "op", "factor")), r"edits\[2\]\.op\.factor"),
    "tensor ref missing": (_set(("edits", 0, "op", "direction"), {"$tensor": "nope"}), r"edits\[0\]\.op\.direction"),
    "tensor ref not str": (_set(("edits", 0, "op", "direction"), {"$tensor": 5}), r"edits\[0\]\.op\.direction"),
    "direction a string": (_set(("edits", 0, "op", "direction"), "up"), r"edits\[0\]\.op\.direction"),
    "alpha nan": (_set(("edits", 0, "op", "alpha"), float("nan")), r"edits\[0\]\.op\.alpha"),
    "basis a list": (_set((*E1, "basis"), []), r"edits\[1\]\.basis must be an object"),
    "basis kind": (_set((*E1, "basis", "kind"), "pca"), r"edits\[1\]\.basis\.kind.*'pca'"),
    "basis names string": (_set((*E1, "basis", "names"), "ab"), r"edits\[1\]\.basis\.names"),
    "basis vectors missing": (_del((*E1, "basis", "vectors")), r"edits\[1\]\.basis\.vectors"),
    "version string": (_set(("version",), "1"), r"version"),
    "version future": (_set(("version",), 99), r"version"),
    "tensors traversal": (_set(("tensors",), "../other.safetensors"), r"tensors"),
    "tensors not str": (_set(("tensors",), 5), r"tensors"),
}


@pytest.mark.parametrize("case", list(BAD_EDIT_DOCS))
def test_malformed_edit_file_names_the_file_and_field(mlp, tmp_path, case):
    change, pattern = BAD_EDIT_DOCS[case]
    path = _base_set(mlp, tmp_path)
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"set\.json") as info:
        load_edits(path)
    assert re.search(pattern, str(info.value)), str(info.value)


@pytest.mark.parametrize(
    "text", ['{"format": "superwidgets.edits", "edits": [', "[]", '"edits"', "\xff\xfe", '{"edits": []}']
)
def test_edit_file_that_is_not_an_edit_set(tmp_path, text):
    path = tmp_path / "set.json"
    path.write_text(text, encoding="latin-1")
    with pytest.raises(ValueError, match=r"set\.json"):
        load_edits(path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "header only"])
def test_corrupt_edit_tensor_file_names_the_file(mlp, tmp_path, damage):
    path = _base_set(mlp, tmp_path)
    tfile = tmp_path / "set.safetensors"
    data = tfile.read_bytes()
    tfile.write_bytes(
        {
            "truncated": data[: len(data) - 7],
            "garbage": b"not a safetensors file at all",
            "empty": b"",
            "header only": data[:8],
        }[damage]
    )
    with pytest.raises(ValueError, match=r"set\.safetensors"):
        load_edits(path)


# ====================================================================== C. empty Resample pools
def test_empty_resample_pool_or_reference_is_refused_at_construction(mlp):
    with pytest.raises(ValueError, match=r"pool.*empty|no rows|0 rows"):
        sw.Resample([0], pool=torch.empty(0, 1))
    with pytest.raises(ValueError, match=r"pool.*empty|no rows|0 rows"):
        sw.Resample([0, 1, 2, 3], pool=torch.empty(0, 4))
    with pytest.raises(ValueError, match=r"reference.*empty|no rows|0 rows"):
        sw.Resample([0], reference=torch.empty(0, 6))
    with pytest.raises(ValueError, match=r"reference.*empty|no rows|0 rows"):
        sw.MeanAblate([0], reference=torch.empty(0, 6))
    with sw.Lens(mlp) as lens:
        with pytest.raises(ValueError, match=r"reference.*empty|no rows|0 rows"):
            lens.edit("hidden", sw.Resample([0], reference=torch.empty(0, 6)))
        assert lens.edits == []


# ====================================================================== D. SAE files
def _small_sae(arch: str):
    hp = {"k": 3} if arch == "topk" else {}
    return make_sae(arch, 8, 16, seed=0, **hp).eval()


def _edit_cfg(path: Path, **changes) -> None:
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


BAD_SAE_CFG = [
    ("relu", "d", 8.9),
    ("relu", "d", 8.0),
    ("relu", "d", "8"),
    ("relu", "d", True),
    ("relu", "n_latents", 16.0),
    ("relu", "n_latents", 0),
    ("relu", "n_latents", None),
    ("relu", "apply_b_dec_to_input", "no"),
    ("relu", "apply_b_dec_to_input", 1),
    ("relu", "apply_b_dec_to_input", None),
    ("relu", "l1", "0.3"),
    ("relu", "l1", True),
    ("relu", "l1", -1.0),
    ("relu", "version", "1"),
    ("relu", "version", 1.0),
    ("relu", "arch", 5),
    ("topk", "k", 3.0),
    ("topk", "k", "3"),
    ("topk", "k", True),
    ("topk", "aux_k", 2.5),
    ("topk", "aux_coef", None),
    ("jumprelu", "bandwidth", 0),
    ("jumprelu", "init_threshold", "0.1"),
]


@pytest.mark.parametrize(("arch", "field", "value"), BAD_SAE_CFG)
def test_load_sae_refuses_wrong_typed_config_fields(tmp_path, arch, field, value):
    save_sae(_small_sae(arch), tmp_path / "s")
    _edit_cfg(tmp_path / "s" / "sae.json", **{field: value})
    with pytest.raises(ValueError, match=rf"sae\.json.*\b{field}\b"):
        load_sae(tmp_path / "s")


def test_load_sae_config_that_is_not_json_or_not_an_object(tmp_path):
    save_sae(_small_sae("relu"), tmp_path / "s")
    cfg = tmp_path / "s" / "sae.json"
    for text in ("{", "[1, 2]", '"relu"'):
        cfg.write_text(text)
        with pytest.raises(ValueError, match=r"sae\.json"):
            load_sae(tmp_path / "s")


@pytest.mark.parametrize(("tensor", "bad"), [("W_dec", math.nan), ("b_enc", math.inf), ("b_dec", -math.inf)])
def test_load_sae_refuses_non_finite_weights(tmp_path, tensor, bad):
    save_sae(_small_sae("relu"), tmp_path / "s")
    w = tmp_path / "s" / "sae.safetensors"
    state = load_file(str(w))
    state[tensor].view(-1)[0] = bad
    save_file(state, str(w))
    with pytest.raises(ValueError, match=rf"{tensor}.*(NaN|Inf|finite)"):
        load_sae(tmp_path / "s")


@pytest.mark.parametrize("size", [100_000, 1 << 20])
def test_load_sae_checks_shapes_before_allocating(tmp_path, size):
    """A 2 kB save whose config claims d = n_latents = 100000 once allocated ~40 GB before any check."""
    save_sae(_small_sae("relu"), tmp_path / "s")
    assert (tmp_path / "s" / "sae.safetensors").stat().st_size < 4096
    _edit_cfg(tmp_path / "s" / "sae.json", d=size, n_latents=size)
    with pytest.raises(ValueError, match=r"sae\.safetensors.*W_(enc|dec)") as info:
        load_sae(tmp_path / "s")
    assert f"({size}, {size})" in str(info.value) and ("(8, 16)" in str(info.value) or "(16, 8)" in str(info.value))


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (lambda s: s.update(W_dec=s["W_dec"].to(torch.int64)), r"W_dec.*(dtype|I64|int64)"),
        (lambda s: s.update(W_dec=s["W_dec"].T.contiguous()), r"W_dec.*(\(8, 16\).*\(16, 8\)|\(16, 8\).*\(8, 16\))"),
        (lambda s: s.pop("b_enc"), r"b_enc"),
        (lambda s: s.update(extra=torch.zeros(3)), r"extra"),
    ],
    ids=["int dtype", "transposed", "missing", "extra"],
)
def test_load_sae_names_the_mismatched_tensor(tmp_path, change, pattern):
    save_sae(_small_sae("relu"), tmp_path / "s")
    w = tmp_path / "s" / "sae.safetensors"
    state = load_file(str(w))
    change(state)
    save_file(state, str(w))
    with pytest.raises(ValueError, match=rf"sae\.safetensors.*{pattern}"):
        load_sae(tmp_path / "s")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_load_sae_corrupt_weights_name_the_file(tmp_path, damage):
    save_sae(_small_sae("gated"), tmp_path / "s")
    w = tmp_path / "s" / "sae.safetensors"
    data = w.read_bytes()
    w.write_bytes({"truncated": data[:-9], "garbage": b"\x00" * 3 + b"junk", "empty": b""}[damage])
    with pytest.raises(ValueError, match=r"sae\.safetensors"):
        load_sae(tmp_path / "s")


def _saelens_copy(tmp_path: Path, name: str, **changes) -> Path:
    out = tmp_path / name
    shutil.copytree(SAELENS / name, out)
    cfg = json.loads((out / "cfg.json").read_text())
    cfg.update(changes)
    (out / "cfg.json").write_text(json.dumps(cfg))
    return out


@pytest.mark.parametrize("factor", [0, 0.0, -2.0, math.nan, math.inf, True, "2"])
def test_load_saelens_refuses_bad_scaling_factors(tmp_path, factor):
    path = _saelens_copy(tmp_path, "standard", normalize_activations="expected_average_only_in")
    with pytest.raises(ValueError, match=r"scaling_factor"):
        load_saelens(path, scaling_factor=factor)


@pytest.mark.parametrize("bad", [0.0, math.nan, math.inf, -1.0])
def test_load_saelens_refuses_bad_scaling_factor_from_the_file(tmp_path, bad):
    path = _saelens_copy(tmp_path, "standard")
    w = path / "sae_weights.safetensors"
    state = load_file(str(w))
    state["finetuning_scaling_factor"] = torch.ones(16)
    state["finetuning_scaling_factor"][3] = bad
    save_file(state, str(w))
    with pytest.raises(ValueError, match=r"finetuning_scaling_factor"):
        load_saelens(path)


BAD_SAELENS_CFG = [
    ("standard", {"d_in": True}, "d_in"),
    ("standard", {"d_sae": 16.0}, "d_sae"),
    ("standard", {"d_in": 0}, "d_in"),
    ("standard", {"apply_b_dec_to_input": "no"}, "apply_b_dec_to_input"),
    ("standard", {"apply_b_dec_to_input": 0}, "apply_b_dec_to_input"),
    ("topk", {"k": 3.0}, r"\bk\b"),
    ("topk", {"k": True}, r"\bk\b"),
    ("topk", {"k": "3"}, r"\bk\b"),
    ("topk", {"k": 0}, r"\bk\b"),
    ("topk", {"rescale_acts_by_decoder_norm": "no"}, "rescale_acts_by_decoder_norm"),
    ("standard", {"architecture": 7}, "architecture"),
    ("standard", {"d_in": 100_000, "d_sae": 100_000}, r"W_(enc|dec).*\(100000, 100000\)"),
    ("gated", {"d_sae": 1 << 20}, r"1048576"),
]


@pytest.mark.parametrize(
    ("name", "changes", "pattern"), BAD_SAELENS_CFG, ids=[f"{n}-{c}" for n, c, _ in BAD_SAELENS_CFG]
)
def test_load_saelens_refuses_wrong_typed_config_fields(tmp_path, name, changes, pattern):
    path = _saelens_copy(tmp_path, name, **changes)
    with pytest.raises(ValueError, match=rf"(cfg\.json|sae_weights\.safetensors).*{pattern}"):
        load_saelens(path)


@pytest.mark.parametrize(("tensor", "bad"), [("W_enc", math.nan), ("threshold", math.inf)])
def test_load_saelens_refuses_non_finite_weights(tmp_path, tensor, bad):
    path = _saelens_copy(tmp_path, "jumprelu")
    w = path / "sae_weights.safetensors"
    state = load_file(str(w))
    state[tensor].view(-1)[0] = bad
    save_file(state, str(w))
    with pytest.raises(ValueError, match=rf"{tensor}.*(NaN|Inf|finite)"):
        load_saelens(path)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_load_saelens_corrupt_weights_or_config_name_the_file(tmp_path, damage):
    path = _saelens_copy(tmp_path, "topk")
    w = path / "sae_weights.safetensors"
    w.write_bytes(w.read_bytes()[:-5] if damage == "truncated" else b"\x07" * 40)
    with pytest.raises(ValueError, match=r"sae_weights\.safetensors"):
        load_saelens(path)
    (path / "cfg.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"cfg\.json"):
        load_saelens(path)


def test_sae_loaders_still_read_every_shipped_sae(tmp_path):
    for name in ("standard", "standard_no_bdec", "topk", "gated", "jumprelu"):
        a = load_sae(SAELENS / name)
        save_sae(a, tmp_path / name)
        b = load_sae(tmp_path / name)
        x = torch.randn(4, 8)
        with torch.no_grad():
            assert torch.equal(a(x), b(x))


# ====================================================================== E. model registry
def test_card_accepts_registered_names_only(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"password": "hunter2"}))
    relative = os.path.relpath(tmp_path / "secret", registry.WEIGHTS)
    for name in (str(tmp_path / "secret"), relative, "../registry", "breast-cancer-mlp/../char-lm"):
        with pytest.raises(ValueError, match=r"unknown model .*breast-cancer-mlp"):
            registry.card(name)
    with pytest.raises(ValueError, match=r"did you mean 'char-lm'"):
        registry.card("char_lm")
    for bad in (None, 3, ["char-lm"]):
        for fn in (registry.card, registry.build, registry.load):
            with pytest.raises(TypeError, match=r"model name must be a string"):
                fn(bad)  # type: ignore[arg-type]
    assert registry.card("breast-cancer-mlp")  # the shipped card still reads
    with pytest.raises(ValueError, match="unknown model"):
        registry.load(relative)


def test_save_sae_is_an_atomic_pair_and_a_foreign_weights_file_is_refused(tmp_path):
    a, b = _small_sae("relu"), make_sae("relu", 8, 16, seed=1).eval()
    save_sae(a, tmp_path / "a")
    save_sae(b, tmp_path / "b")
    x = torch.randn(4, 8)
    assert torch.equal(load_sae(tmp_path / "a").encode(x), a.encode(x))
    # b's weights beside a's config: same shapes, so only the pair's SHA-256 tells them apart
    shutil.copy(tmp_path / "b" / "sae.safetensors", tmp_path / "a" / "sae.safetensors")
    with pytest.raises(ValueError, match=r"not the file saved with sae\.json.*save the SAE again"):
        load_sae(tmp_path / "a")
    # a failed save (its config path is taken by a folder) leaves the previous pair and no temp files
    save_sae(a, tmp_path / "c")
    before = {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()}
    (tmp_path / "d.json").mkdir()
    with pytest.raises(OSError):
        save_sae(b, tmp_path / "d.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".d", "d"))) == ["d.json"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()} == before
    # a save from before the pair check (no weights_sha256 in its config) still loads
    cfg = json.loads((tmp_path / "c" / "sae.json").read_text())
    del cfg["weights_sha256"]
    (tmp_path / "c" / "sae.json").write_text(json.dumps(cfg))
    assert torch.equal(load_sae(tmp_path / "c").encode(x), a.encode(x))
