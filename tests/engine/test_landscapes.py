"""The loss landscape (engine/landscapes.py): the replay it stands on is bitwise the run, the plane's
`top` directions are the Hessian's, and on a quadratic loss the grid is the closed form."""

from __future__ import annotations

import numpy as np
import pytest

from engine import curvature
from engine.landscapes import MAX_PATH_POINTS, landscape_of, path_steps
from engine.problem import build_problem
from engine.replay import weights_at
from engine.training import Trainer
from tests.support.specs import IRIS, moons


def _linear(n: int = 40) -> dict:
    rng = np.random.default_rng(2)
    X = rng.normal(size=(n, 3)) * np.array([2.0, 1.0, 0.3])
    y = X @ np.array([0.5, -1.0, 2.0]) + 0.1 * rng.normal(size=n)
    return {"model": {"layers": [{"units": 1, "activation": "linear"}]}, "loss": "mse", "data": {"X": X.tolist(), "y": y.tolist()},
            "optimizer": {"name": "sgd", "lr": 0.05}, "batch_size": "full", "steps": 60, "record": {"every": 5}, "diagnose": False}


SPECS = {
    "iris: dropout, shuffled batches, adam, traced": IRIS,
    "moons float32, nesterov, clipped": moons(dtype="float32", optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                                                                          "clip_norm": 0.5}, record={"every": 3, "gradients": "full"}),
    "moons with curvature recorded": moons(record={"every": 4, "curvature": {"every": 2}}),
}


@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_the_replay_is_the_run_bit_for_bit(spec):
    trainer = Trainer(spec)
    seen = {0: trainer.network.flat_params[0].astype(np.float64)}
    while not trainer.ended():
        trainer.step_all()
        seen[trainer.step] = trainer.network.flat_params[0].astype(np.float64)
    problem = build_problem(spec)
    chosen = [0, 1, 7, len(seen) // 2, len(seen) - 1]
    replayed = weights_at(problem, chosen)
    for step in chosen:
        assert np.array_equal(replayed[step], seen[step]), step
    assert np.array_equal(weights_at(problem, [len(seen) - 1])[len(seen) - 1], seen[len(seen) - 1])  # the problem is left as built
    with pytest.raises(ValueError, match="never reached"):
        weights_at(problem, [len(seen)])


def test_on_a_quadratic_loss_the_grid_is_the_closed_form():
    """mse on a linear network: L is quadratic with Hessian 2/n·XᵀX, so along unit eigenvectors the grid's second
    differences are the eigenvalues and its mixed ones zero, everywhere."""
    spec = _linear()
    X, n = np.array(spec["data"]["X"]), 40
    augmented = np.hstack([X, np.ones((n, 1))])
    eigenvalues = np.linalg.eigvalsh(2 / n * augmented.T @ augmented)[::-1]
    out = landscape_of(build_problem(spec), 30, "top", points=21, span=0.5)
    assert out["eigenvalues"] == pytest.approx(eigenvalues[:2], rel=1e-10)
    L, h = np.array(out["loss"]), out["alpha"][1] - out["alpha"][0]
    along_alpha = (L[:, 2:] - 2 * L[:, 1:-1] + L[:, :-2]) / h ** 2
    along_beta = (L[2:] - 2 * L[1:-1] + L[:-2]) / h ** 2
    mixed = (L[1:, 1:] - L[1:, :-1] - L[:-1, 1:] + L[:-1, :-1]) / h ** 2
    assert along_alpha == pytest.approx(np.full_like(along_alpha, eigenvalues[0]), rel=1e-6)
    assert along_beta == pytest.approx(np.full_like(along_beta, eigenvalues[1]), rel=1e-6)
    assert np.abs(mixed).max() < 1e-6 * eigenvalues[0]
    assert L[10, 10] == out["loss_at_step"]


def test_the_top_directions_are_the_dense_hessians_and_the_path_comes_from_the_lower_left():
    spec = moons(epochs=2)
    problem = build_problem(spec)
    out = landscape_of(problem, 8, "top", points=5)
    theta = weights_at(problem, [8])[8]
    net = problem.network
    surface = curvature.Curvature(list(net.shapes), list(net.activations), problem.loss, problem.X_train, problem.Y_train)
    top = np.linalg.eigvalsh(curvature.dense_hessian(surface, theta))[::-1][:2]
    assert out["eigenvalues"] == pytest.approx(top, rel=1e-8)
    assert out["path"][0]["step"] == 0 and out["path"][0]["alpha"] <= 0 and out["path"][0]["beta"] <= 0
    at = next(p for p in out["path"] if p["step"] == 8)
    assert at["alpha"] == at["beta"] == at["off_plane"] == 0.0 and at["loss"] == out["loss_at_step"]
    assert out["span"] >= 1.15 * max(max(abs(p["alpha"]), abs(p["beta"])) for p in out["path"]) - 1e-12


def test_the_path_is_bounded_and_goes_through_the_step():
    steps = path_steps(every=1, last=100_000, step=12_345, limit=MAX_PATH_POINTS)
    assert len(steps) == MAX_PATH_POINTS + 1 and steps[0] == 0 and steps[-1] == 100_000 and 12_345 in steps
    assert path_steps(every=20, last=200, step=200, limit=MAX_PATH_POINTS) == [*range(0, 200, 20), 200]


def test_bad_requests_name_their_field():
    problem = build_problem(moons())
    with pytest.raises(ValueError, match=r"^points: "):
        landscape_of(problem, 0, points=1)
    with pytest.raises(ValueError, match=r"^step: the run's steps are 0 to 40"):
        landscape_of(problem, 41)


def test_a_forks_replay_goes_through_its_parent_to_the_fork_step_then_on_with_its_own_settings():
    from engine.replay import forked

    parent_spec = moons(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9})
    fork_spec = {**parent_spec, "optimizer": {"name": "adam", "lr": 0.01}, "epochs": 6}
    trainer = Trainer(parent_spec)
    seen = {0: trainer.network.flat_params[0].astype(np.float64)}
    while trainer.step < 13:
        trainer.step_all()
        seen[trainer.step] = trainer.network.flat_params[0].astype(np.float64)
    fork = forked(Trainer(fork_spec), trainer.state_dict(), "sgd")
    while not fork.ended():
        fork.step_all()
        seen[fork.step] = fork.network.flat_params[0].astype(np.float64)
    chain = [(build_problem(parent_spec), 13), (build_problem(fork_spec), None)]
    replayed = weights_at(chain, [5, 13, 14, 30, 47])
    for step, weights in replayed.items():
        assert np.array_equal(weights, seen[step]), step
    alone = weights_at(build_problem(fork_spec), [30])[30]  # the fork's spec trained from step 0 is another run
    assert not np.array_equal(alone, seen[30])
