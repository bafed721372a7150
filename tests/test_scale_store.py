"""The on-disk activation store (superwidgets.scale.store): exact rows, SIGKILL + resume, rank split, memmap reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from superwidgets.scale import ActivationStore, harvest
from superwidgets.scale.cli import main
from superwidgets.science.sae import harvest as plain_harvest

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
#: Shards of 20 rows, inputs of 3 rows, chunks of 8 inputs (24 rows): shard edges fall inside chunks.
SETTINGS = {"rows_per_shard": 20, "chunk_size": 8}
SPEC = "test_scale_store:slow_model_and_inputs"


class _Slow(nn.Module):
    """A small sequence model (n, 3, 5) -> (n, 3, 12) that sleeps in every forward, so a harvest can be killed."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.proj = nn.Linear(5, 12)
        self.act = nn.Tanh()
        self.head = nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.delay:
            time.sleep(self.delay)
        return self.head(self.act(self.proj(x)))


def slow_model_and_inputs(delay: float = 0.05) -> tuple[nn.Module, torch.Tensor]:
    """The model and 400 inputs (seeded): what ``--model test_scale_store:slow_model_and_inputs`` loads."""
    torch.manual_seed(0)
    model = _Slow(delay)
    return model.eval(), torch.randn(400, 3, 5, generator=torch.Generator().manual_seed(1))


def _cli(out: Path) -> list[str]:
    head = [sys.executable, "-m", "superwidgets.scale", "harvest", "--model", SPEC, "--site", "act"]
    return [*head, "--out", str(out), "--rows-per-shard", "20", "--chunk-size", "8", "--threads", "1", "--quiet"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]), "OMP_NUM_THREADS": "1"}


def test_a_harvest_killed_with_sigkill_resumes_to_exactly_the_uninterrupted_rows(tmp_path):
    model, X = slow_model_and_inputs(delay=0)
    full = harvest(model, "act", X, tmp_path / "full", model_name=SPEC, **SETTINGS)
    assert full is not None and len(full) == 1200 and full.n_shards == 60
    assert torch.equal(full.read_all(), plain_harvest(model, "act", X, chunk_size=8))

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(out), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    rank_file = out / "rank-000-of-001.json"
    deadline = time.monotonic() + 60
    shards = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            shards = len(json.loads(rank_file.read_text())["shards"])
        except (OSError, ValueError):
            shards = 0
        if shards >= 7:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[0].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # earned: the kill left a partial store: no index, fewer rows than the full harvest
    state = json.loads(rank_file.read_text())
    assert not (out / "index.json").exists() and not state["done"]
    written = sum(s["rows"] for s in state["shards"])
    assert 0 < written < 1200
    with pytest.raises(FileNotFoundError, match=r"index\.json is missing"):
        ActivationStore(out)

    got = subprocess.run(_cli(out), env=_env(), capture_output=True, text=True, timeout=60)
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
    resumed = ActivationStore(out)
    print(f"killed after {written} of 1200 rows ({len(state['shards'])} shards); resumed to {len(resumed)}")
    assert len(resumed) == 1200
    assert torch.equal(resumed.read_all(), full.read_all())
    assert torch.equal(resumed.input_ids(torch.arange(1200)), torch.arange(400).repeat_interleave(3))
    assert resumed.sha256 == full.sha256
    resumed.verify()
    assert not list(out.glob(".*.tmp"))  # no temporary file survives the kill and the resume


def test_ranks_write_their_own_shards_and_read_back_as_one_harvest(tmp_path):
    model, X = slow_model_and_inputs(delay=0)
    one = harvest(model, "act", X, tmp_path / "one", **SETTINGS)
    assert harvest(model, "act", X, tmp_path / "two", rank=1, world_size=2, **SETTINGS) is None  # rank 0 pending
    two = harvest(model, "act", X, tmp_path / "two", rank=0, world_size=2, **SETTINGS)
    assert {s["rank"] for s in two.index["shards"]} == {0, 1}
    assert torch.equal(two.read_all(), one.read_all())
    # random gathers across shards, any order, through the memory maps
    idx = torch.randperm(1200, generator=torch.Generator().manual_seed(0))[:300]
    assert torch.equal(two.rows(idx), one.read_all()[idx])
    assert torch.equal(two.input_ids(idx), idx // 3)
    mean, var = two.stats()
    ref = one.read_all().double()
    assert torch.allclose(mean.double(), ref.mean(0), atol=1e-6)
    assert var == pytest.approx(float((ref - ref.mean(0)).pow(2).sum(1).mean()), rel=1e-9)
    idx_json = json.loads((tmp_path / "two" / "index.json").read_text())
    assert idx_json["site"] == "act" and idx_json["d"] == 12 and idx_json["rows_per_input"] == 3
    assert idx_json["inputs"]["n"] == 400 and len(idx_json["inputs"]["sha256"]) == 64


def test_other_settings_are_refused_and_changed_shards_are_caught(tmp_path):
    model, X = slow_model_and_inputs(delay=0)
    store = harvest(model, "act", X, tmp_path / "s", **SETTINGS)
    with pytest.raises(ValueError, match=r"other settings \(site: 'act' there, 'proj' now\).*overwrite=True"):
        harvest(model, "proj", X, tmp_path / "s", **SETTINGS)
    with pytest.raises(ValueError, match=r"world_size: 1 there, 3 now"):
        harvest(model, "act", X, tmp_path / "s", rank=0, world_size=3, **SETTINGS)
    other = harvest(model, "proj", X, tmp_path / "s", overwrite=True, **SETTINGS)
    assert other.sha256 != store.sha256 and other.index["site"] == "proj"
    # a shard changed on disk after the harvest: verify() names it
    from safetensors.torch import load_file, save_file

    shard = tmp_path / "s" / other.index["shards"][3]["file"]
    t = load_file(str(shard))
    t["acts"][0, 0] += 1
    save_file(t, str(shard))
    with pytest.raises(ValueError, match=r"shard-r000-00003.safetensors changed since the harvest"):
        ActivationStore(tmp_path / "s").verify()


def test_half_precision_store_reads_back_as_float32(tmp_path):
    model, X = slow_model_and_inputs(delay=0)
    ref = plain_harvest(model, "act", X, chunk_size=8)
    for dtype, torch_dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        st = harvest(model, "act", X, tmp_path / dtype, dtype=dtype, **SETTINGS)
        got = st.rows(torch.arange(50))
        assert got.dtype == torch.float32 and torch.equal(got, ref[:50].to(torch_dtype).float())
    with pytest.raises(ValueError, match="dtype must be one of"):
        harvest(model, "act", X, tmp_path / "x", dtype="int8")


def test_the_command_line_help_explains_the_model_spec(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["harvest", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "MODULE:FUNCTION" in text and "zoo model name" in text and "torch.distributed.run" in text
    with pytest.raises(SystemExit) as exc:
        main(["harvest", "--model", "nosuchmodel", "--site", "x", "--out", "o"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "model 'nosuchmodel' is not a zoo model" in err and "breast-cancer-mlp" in err
