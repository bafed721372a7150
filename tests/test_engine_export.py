"""Edit sets on disk and as code reproduce outputs exactly."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import superwidgets as sw
from superwidgets.science import ReLUSAE


def busy_lens(model, sae):
    torch.manual_seed(9)
    ref = torch.randn(30, 6)
    lens = sw.Lens(model)
    lens.edit("hidden", sw.Steer(direction=torch.randn(5), alpha=0.3))
    lens.edit("hidden", sw.Ablate([1]))
    lens.edit("hidden", sw.MeanAblate([2], reference=ref))
    lens.edit("hidden", sw.Resample([0, 4], reference=ref, seed=3))
    lens.edit("hidden", sw.Clamp([3], value=-0.25), enabled=False)
    lens.edit("hidden", sw.Scale(["b"], factor=1.7), basis=sw.Directions(torch.randn(2, 5), names=["a", "b"]))
    lens.edit("hidden", sw.ProjectOut(torch.randn(5)))
    lens.edit("hidden", sw.Ablate([3, 11]), basis=sw.SAE(sae, name="s1"))
    lens.edit("out", sw.Clamp([0, 2], value=[0.5, -0.5]))
    return lens


def test_save_load_reproduces_exactly(mlp, tmp_path):
    sae = ReLUSAE(5, 16, seed=1)
    x = torch.randn(9, 6)
    lens = busy_lens(mlp, sae)
    want = lens.run(x).edited
    path = lens.save_edits(tmp_path / "set")
    assert path.name == "set.json" and (tmp_path / "set.safetensors").exists()
    doc = json.loads(path.read_text())
    assert doc["format"] == "superwidgets.edits" and len(doc["edits"]) == 9
    lens.close()
    other = copy.deepcopy(mlp)
    with sw.Lens(other) as lens2:
        lens2.load_edits(tmp_path / "set.json", saes={"s1": sae})
        assert torch.equal(lens2.run(x).edited, want)
        assert [e.enabled for e in lens2.edits].count(False) == 1


def test_load_errors(mlp, tmp_path):
    sae = ReLUSAE(5, 16, seed=1)
    busy_lens(mlp, sae).save_edits(tmp_path / "set")
    with sw.Lens(mlp) as lens:
        with pytest.raises(ValueError, match=r"uses the SAE 's1'; pass saes=\{'s1': sae_module\}"):
            lens.load_edits(tmp_path / "set")
        (tmp_path / "set.safetensors").unlink()
        with pytest.raises(ValueError, match=r"tensors .* are missing"):
            lens.load_edits(tmp_path / "set", saes={"s1": sae})
        (tmp_path / "bad.json").write_text('{"edits": []}')
        with pytest.raises(ValueError, match="not a superwidgets edit set"):
            lens.load_edits(tmp_path / "bad.json")
        with pytest.raises(FileNotFoundError):
            lens.load_edits(tmp_path / "nothing")


def test_exported_code_reproduces_numbers(mlp):
    sae = ReLUSAE(5, 16, seed=1)
    x = torch.randn(9, 6)
    lens = busy_lens(mlp, sae)
    want = lens.run(x).edited
    code = lens.to_code(model="model", inputs="x")
    assert "import superwidgets as sw" in code and "sw.Resample(" in code
    lens.close()
    ns = {"model": copy.deepcopy(mlp), "x": x, "saes": {"s1": sae}}
    exec(compile(code, "<exported>", "exec"), ns)
    assert torch.equal(ns["result"].edited, want)
    ns["lens"].close()
