"""Packaging: a wheel built from a clean copy of the repository carries the JS bundle."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from _util import check_retraining

import superwidgets as sw

ROOT = Path(__file__).resolve().parent.parent


def test_zoo_weights_ship_and_load():
    model, data = sw.zoo.load("breast-cancer-mlp")
    assert len(data) == 569 and data.X.shape == (569, 30)
    acc = (model(data.X[data.test]).argmax(1) == data.y[data.test]).float().mean().item()
    assert acc > 0.95
    with pytest.raises(ValueError, match="did you mean 'breast-cancer-mlp'"):
        sw.zoo.load("breast-cancer")


def test_training_script_is_deterministic(tmp_path, monkeypatch):
    card = check_retraining("breast-cancer-mlp", tmp_path, monkeypatch)
    assert card["test_accuracy"] > 0.95


@pytest.mark.slow
def test_wheel_from_clean_clone_contains_bundle(tmp_path):
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    src = tmp_path / "src"
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    assert not (src / "superwidgets" / "static").exists()  # the bundle is not in git
    out = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(src)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("superwidgets-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for view in ("lab", "explorer", "dashboard", "align"):  # every view's bundle and stylesheet
        assert f"superwidgets/static/{view}.js" in names and f"superwidgets/static/{view}.css" in names
    assert "superwidgets/static/snapshot.js" in names  # the loader of to_html snapshots
    assert "superwidgets/zoo/weights/breast-cancer-mlp.safetensors" in names
    assert "superwidgets/zoo/weights/char-lm.safetensors" in names
    assert "superwidgets/data/corpus/python-help.txt" in names and "superwidgets/data/corpus/NOTICE" in names
