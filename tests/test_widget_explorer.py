"""SuperpositionExplorer without a browser: knobs retrain, views are consistent, errors keep state."""

from __future__ import annotations

import numpy as np
import pytest

import superwidgets as sw


@pytest.fixture(scope="module")
def pentagon():
    return sw.SuperpositionExplorer(n_features=5, n_hidden=2, density=0.03, background=False)


def test_views_are_consistent(pentagon):
    e = pentagon
    assert e.error == "" and not e.training and e.progress == 1.0
    assert e.W.shape == (2, 5) and e.WtW.shape == (5, 5) and e.b.shape == (5,)
    np.testing.assert_allclose(e.WtW, e.W.T @ e.W, atol=1e-5)
    np.testing.assert_allclose(e.norms, np.linalg.norm(e.W, axis=0), atol=1e-5)
    assert e.densities[0] == pytest.approx(0.03) and e.densities.shape == e.dstar.shape == (8,)
    # very sparse: all five features represented as a pentagon, D_i ≈ 2/5
    assert (e.norms > 0.5).sum() == 5
    assert np.median(e.dims) == pytest.approx(0.4, abs=0.06)


def test_ablation_shows_interference(pentagon):
    e = pentagon
    e.ablate(2)
    assert e.ablated == 2
    assert e.interference.shape == (5,)
    # projecting W_2's direction out of h loses feature 2 and hurts the features sharing that direction
    assert e.interference[2] > 0 and e.interference[2] >= 0.9 * e.interference.max()
    cos2 = (e.W[:, 2] @ e.W / (np.linalg.norm(e.W[:, 2]) * np.linalg.norm(e.W, axis=0))) ** 2
    others = [j for j in range(5) if j != 2]
    top_cos = set(np.argsort(cos2[others])[-2:].tolist())
    assert top_cos == set(np.argsort(e.interference[others])[-2:].tolist())  # the near-antipodal pair
    e.ablate(-1)
    assert not e.interference.any()


def test_request_messages_retrain_and_errors_keep_state(pentagon):
    e = sw.SuperpositionExplorer(n_features=5, n_hidden=2, density=1.0, background=False)
    dense_norms = e.norms.copy()
    assert (dense_norms > 0.5).sum() == 2  # dense: only the two most important features
    rev = e.rev
    e._dispatch(e, {"type": "settings", "seq": 1, "origin": "", "n_hidden": 500}, [])
    assert "n_hidden must be between 1 and 64" in e.error
    assert e.n_hidden == 2 and e.rev > rev
    np.testing.assert_array_equal(e.norms, dense_norms)
    e._dispatch(e, {"type": "ablate", "seq": 2, "origin": "", "feature": 9}, [])
    assert "feature 9 is out of range" in e.error
    e._dispatch(e, {"type": "settings", "seq": 3, "origin": "", "relu": False}, [])
    assert e.error == "" and e.relu is False
    assert (e.norms > 0.5).sum() == 2  # linear: the top m features, no superposition


def test_python_knobs_validate(pentagon):
    e = sw.SuperpositionExplorer(n_features=4, n_hidden=2, background=False, steps=300)
    with pytest.raises(ValueError, match=r"density must be in \(0.0, 1.0\]"):
        e.density = 0.0
    assert e.density == pytest.approx(0.1) and "density" in e.error
    with pytest.raises(ValueError, match="weight_decay"):
        e.weight_decay = 3.0
    e.n_features = 6
    assert e.W.shape == (2, 6) and e.error == ""
    with pytest.raises(TypeError, match="unexpected keyword"):
        sw.SuperpositionExplorer(colour="red")


def test_background_training_cancels_older_runs():
    e = sw.SuperpositionExplorer(n_features=20, n_hidden=5, importance_decay=0.7, density=1.0)
    e.density = 0.5  # supersedes the first run before it finishes
    e.density = 0.1
    e.wait(60)
    assert not e.training and e.progress == 1.0
    assert e.densities[0] == pytest.approx(0.1)
    assert e.W.shape == (5, 20)


def test_to_figure(pentagon):
    import matplotlib

    matplotlib.use("Agg")
    fig = pentagon.to_figure()
    assert len(fig.axes) == 4
    assert len(fig.axes[2].patches) == 5  # one arrow per feature for m = 2


def test_best_of_replicas_shows_the_lowest_held_out_loss():
    # At 1 − S = 0.2 a single run often settles in a local minimum; the explorer trains several
    # replicas of the detailed model together and shows the one with the lowest held-out loss.
    e = sw.SuperpositionExplorer(n_features=5, n_hidden=2, density=0.2, replicas=6, background=False)
    assert e.replica_losses.shape == (6,)
    assert e.replica == int(np.argmin(e.replica_losses))
    assert e.loss == pytest.approx(float(e.replica_losses.min()))
    assert e.densities.shape == e.dstar.shape == (8,)  # one point for the chosen density, 7 for the sweep
    np.testing.assert_allclose(e.W, e.model.W[e.replica].detach().numpy(), atol=1e-6)
    spread = e.replica_losses.max() / e.replica_losses.min()
    print(f"held-out losses of 6 replicas: {np.round(e.replica_losses, 5).tolist()} (worst/best {spread:.2f})")
    # the best replica is the known optimum at this sparsity: two antipodal pairs (D_i = 1/2) ...
    assert (e.norms > 0.5).sum() == 4
    assert np.sort(e.dims)[1:] == pytest.approx([0.5] * 4, abs=0.05)
    # ... and ablation reads the shown replica
    e.ablate(int(np.argmax(e.norms)))
    assert e.interference.max() > 0
    single = sw.SuperpositionExplorer(n_features=5, n_hidden=2, density=0.2, replicas=1, background=False)
    assert single.replica == 0 and single.replica_losses.shape == (1,)
    with pytest.raises(ValueError, match="replicas must be between 1 and 8"):
        single.replicas = 9
