"""LabSession: FeatureLab's numbers from a script; the cohort progressive, cancellable, preemptible."""

from __future__ import annotations

import copy
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import superwidgets as sw
from superwidgets.analysis.lab import CancelToken, LabSession, summarise


@pytest.fixture(scope="module")
def zoo():
    return sw.zoo.load("breast-cancer-mlp")


@pytest.fixture
def session(zoo):
    model, data = zoo
    lens = sw.Lens(copy.deepcopy(model))
    yield LabSession(lens, data, "hidden")
    lens.close()


def by_hand(model, X, ablated=()):
    """Softmax outputs of the patient MLP with units switched off, computed without hooks."""
    with torch.no_grad():
        h = torch.relu(F.linear(X, model.inp.weight, model.inp.bias))
        h[:, list(ablated)] = 0
        return torch.softmax(F.linear(h, model.out.weight, model.out.bias), -1).numpy()


def test_analysis_imports_no_jupyter():
    code = (
        "import sys, superwidgets.analysis.lab; bad = [m for m in ('ipywidgets', 'anywidget', 'traitlets') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_shown_input(session, zoo):
    model, data = zoo
    steer = np.zeros(16, np.float32)
    steer[3] = 2.0
    r = session.update(38, ablated=[13, 13], steer=steer)
    assert r.index == 38 and r.ablated == (13,)
    np.testing.assert_allclose(r.baseline, by_hand(model, data.X[38:39])[0], atol=1e-6)
    with torch.no_grad():
        h = torch.relu(F.linear(data.X[38:39], model.inp.weight, model.inp.bias))
        clean = h[0].numpy().copy()
        h[:, 13] = 0
        want = torch.softmax(F.linear(h + torch.from_numpy(steer), model.out.weight, model.out.bias), -1)[0]
    np.testing.assert_allclose(r.edited, want.numpy(), atol=1e-6)
    np.testing.assert_allclose(r.activations, clean, atol=1e-6)  # clean coordinates: the edits do not move them
    assert r.selected == -1 and r.spatial is None and r.generated_edited == ""
    with pytest.raises(ValueError, match=r"index 600 is out of range; pick 0\.\.568"):
        session.update(600)
    with pytest.raises(ValueError, match=r"steer must have one value per feature \(16\), got 2"):
        session.update(0, steer=[1.0, 2.0])
    assert session.last is r  # a refused update changes nothing


def test_clean_coordinates_are_cached_per_input(session):
    a = session.update(5, ablated=[1])
    b = session.update(5, steer=np.full(16, 0.5, np.float32))
    assert a.activations is b.activations  # same input: the clean coordinates are not recomputed
    c = session.update(6)
    assert c.activations is not a.activations


def test_the_widget_shows_the_session_numbers(zoo):
    model, data = zoo
    steer = np.zeros(16, np.float32)
    steer[5] = -1.5
    with sw.Lens(copy.deepcopy(model)) as lens:
        lab = sw.FeatureLab(lens, inputs=data, site="hidden", index=38)
        lab.ablated = [13]
        lab.steer = steer
        assert lab.wait(timeout=60)
        shown = (lab.baseline.copy(), lab.edited.copy(), lab.activations.copy())
        cohort = (lab.cohort_hist.copy(), lab.cohort_edges.copy(), lab.cohort_flips, lab.cohort_top.copy())
        top_delta = lab.cohort_top_delta.copy()
    with sw.Lens(copy.deepcopy(model)) as lens:  # a script, no widget
        s = LabSession(lens, data, "hidden")
        r = s.update(38, ablated=[13], steer=steer)
        summary = s.cohort_summary()
    for got, want in zip(shown, (r.baseline, r.edited, r.activations), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(cohort[0], summary.hist)
    np.testing.assert_array_equal(cohort[1], summary.edges)
    assert cohort[2] == summary.flips > 0
    np.testing.assert_array_equal(cohort[3], summary.top)
    np.testing.assert_allclose(top_delta, summary.top_delta, atol=1e-6)


def test_progressive_cohort_reaches_the_one_pass_summary(session, zoo):
    model, data = zoo
    session.update(38, ablated=[13])
    parts = list(session.cohort(chunk_rows=50))
    assert [p.done for p in parts] == [*range(50, 569, 50), 569] and all(p.total == 569 for p in parts)
    assert [p.complete for p in parts] == [False] * 11 + [True]
    base, edit = by_hand(model, data.X), by_hand(model, data.X, ablated=[13])
    delta = (edit - base)[:, 0]
    for p in parts:  # each partial summarises exactly the first `done` rows
        assert p.hist.sum() == p.done
        flips = int((base[: p.done].argmax(1) != edit[: p.done].argmax(1)).sum())
        assert p.flips == flips
        np.testing.assert_array_equal(p.top, np.argsort(-np.abs(delta[: p.done]), kind="stable")[:10])
    one = list(session.cohort(chunk_rows=569))
    assert len(one) == 1
    final = parts[-1]
    np.testing.assert_array_equal(final.hist, one[0].hist)
    np.testing.assert_array_equal(final.edges, one[0].edges)
    np.testing.assert_array_equal(final.top, one[0].top)
    assert final.flips == one[0].flips
    np.testing.assert_allclose(final.top_delta, one[0].top_delta, atol=1e-7)
    auto = session.cohort_summary()  # chunk sizes measured as it goes: the same summary
    np.testing.assert_array_equal(auto.hist, final.hist)
    np.testing.assert_array_equal(auto.top, final.top)


def test_summarise_matches_the_histogram_rule():
    delta = np.array([0.0, -0.5, 0.25, 0.5], np.float32)
    s = summarise(delta, flips=1, top_k=2, total=10)
    lim = 0.5 * 1.0001
    assert s.edges[0] == pytest.approx(-lim) and s.edges[-1] == pytest.approx(lim) and s.hist.sum() == 4
    assert s.top.tolist() == [1, 3] and s.top_delta.tolist() == [-0.5, 0.5]
    assert (s.done, s.total, s.complete) == (4, 10, False)
    flat = summarise(np.zeros(3, np.float32), flips=0, top_k=5, total=3)
    assert flat.edges[-1] == pytest.approx(1e-6) and flat.hist.max() == 3 and flat.complete


def test_a_newer_state_stops_the_cohort(session):
    session.update(0, ablated=[13])
    it = session.cohort(chunk_rows=100)
    first = next(it)
    assert first.done == 100
    session.update(0, ablated=[2])  # the controls change: the running cohort yields nothing more
    assert list(it) == []
    token = CancelToken()
    token.cancel()
    assert list(session.cohort(chunk_rows=100, token=token)) == []
    session.cancel()  # the state's own token; a new cohort afterwards gets a fresh one
    assert session.cohort_summary(chunk_rows=600).complete


def test_cohort_off_and_bad_chunks(zoo):
    model, data = zoo
    with sw.Lens(copy.deepcopy(model)) as lens:
        s = LabSession(lens, data, "hidden", cohort_top=0)
        s.update(0)
        assert list(s.cohort()) == [] and s.cohort_summary() is None
        with pytest.raises(ValueError, match="chunk_rows must be a positive number of rows, got 0"):
            list(s.cohort(chunk_rows=0))


class Gate(nn.Module):
    """Identity; on its first call from the background thread it waits until a foreground call
    is queued on the lens, so the run is preempted at the next module (deterministically)."""

    def __init__(self) -> None:
        super().__init__()
        self.lens: sw.Lens | None = None
        self.background: threading.Thread | None = None
        self.reached = threading.Event()
        self.armed = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.armed and threading.current_thread() is self.background:
            self.armed = False
            self.reached.set()
            deadline = time.monotonic() + 30
            while not self.lens._waiting and time.monotonic() < deadline:  # the foreground call is queued
                time.sleep(0.001)
        return x


def test_preempted_chunks_are_run_again():
    torch.manual_seed(0)
    gate = Gate()
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), gate, nn.Linear(8, 3)).eval()
    X = torch.randn(40, 6)
    with sw.Lens(model) as lens:
        gate.lens = lens
        s = LabSession(lens, X, "1", cohort_top=5)
        s.update(0, ablated=[2, 5])
        parts: list = []
        bg = threading.Thread(target=lambda: parts.extend(s.cohort(chunk_rows=40)))
        gate.background = bg
        bg.start()
        assert gate.reached.wait(30)
        fg = lens.run(X[:3])  # a foreground call: the background run gives way to it
        bg.join(60)
        assert not bg.is_alive()
        assert s.preemptions >= 1
        assert [p.done for p in parts] == [40]  # retried: the summary is complete and whole
        again = s.cohort_summary(chunk_rows=7)
        np.testing.assert_array_equal(parts[0].hist, again.hist)
        np.testing.assert_array_equal(parts[0].top, again.top)
        assert parts[0].flips == again.flips
        with lens.off(), torch.no_grad():
            np.testing.assert_allclose(fg.baseline, model(X[:3]), atol=1e-6)


def test_stale_partials_are_never_published(zoo):
    """Control changes while the cohort runs in small chunks: every partial the widget published
    summarises the controls it showed at that moment, and the last one is complete."""
    model, data = zoo
    noise = torch.randn(8 * len(data.X), data.X.shape[1], generator=torch.Generator().manual_seed(0))
    X = data.X.repeat(8, 1) + 0.05 * noise  # 4,552 rows in chunks of 16: a change lands while chunks are in flight
    n = len(X)
    outputs = {u: by_hand(model, X, ablated=[u] if u >= 0 else []) for u in range(-1, 16)}
    base = outputs[-1]
    with sw.Lens(copy.deepcopy(model)) as lens:
        lab = sw.FeatureLab(lens, inputs=X, site="hidden", index=38, cohort_chunk=16)
        seen: list = []

        def record(_change):
            seen.append(
                (
                    list(lab.ablated),
                    lab.cohort_done,
                    lab.cohort_hist.copy(),
                    lab.cohort_top.copy(),
                    lab.cohort_top_delta.copy(),
                    lab.cohort_flips,
                )
            )

        lab.observe(record, names="cohort_done")
        for u in [13, 2, 7, 13, 0, 5]:
            lab.ablated = [u]
            deadline = time.monotonic() + 30
            while lab.cohort_done < 64 and time.monotonic() < deadline:  # let the cohort get going
                time.sleep(0.001)
        assert lab.wait(timeout=120)
        lab.unobserve(record, names="cohort_done")
        published = [s for s in seen if s[1] > 0]
        assert len({tuple(s[0]) for s in published}) >= 5, "partials of (nearly) every state were published"
        for ablated, done, hist, top, top_delta, flips in published:
            edit = outputs[ablated[0]]
            delta = (edit - base)[:done, 0]
            assert hist.sum() == done
            assert flips == int((base[:done].argmax(1) != edit[:done].argmax(1)).sum())
            assert top.max() < done  # only rows of this partial
            np.testing.assert_allclose(top_delta, delta[top], atol=1e-5)  # the changes under these controls
            np.testing.assert_allclose(np.abs(top_delta), np.sort(np.abs(delta))[::-1][:10], atol=1e-5)
        assert published[-1][0] == [5] and published[-1][1] == n
        assert (lab.cohort_done, lab.cohort_total) == (n, n) and lab.error == ""
