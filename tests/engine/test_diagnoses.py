"""Diagnoses on the cases we know, each with real training: the examples' dead ReLUs, vanishing
gradients through deep sigmoids, a learning rate that is too large, a first layer dead from step 0;
no false alarm at `warning` or above on well-tuned jobs; the settings as the spec gives them; and a
resumed run finds exactly what an uninterrupted one finds."""

from __future__ import annotations

import copy

import pytest

from engine.training import Trainer, run
from services.store import checkpoints
from tests.support.specs import SEED, dead_relu, moons

POST = {"layers": [{"units": 2, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
        "weights": [[[0.5, -0.2], [0.3, 0.8]], [[0.6, -0.4]]], "biases": [[0.1, -0.1], [0.0]]}


def kinds(result: dict, at_least: str = "info") -> list[tuple[str, int]]:
    order = ["info", "warning", "error"]
    return [(d["kind"], d["step"]) for d in result.get("diagnoses", []) if order.index(d["severity"]) >= order.index(at_least)]


def test_an_overshooting_rate_kills_relus_and_the_gentle_one_does_not():
    steep = run(dead_relu(1.0))
    dead = [d for d in steep["diagnoses"] if d["kind"] == "dead_units"]
    assert len(dead) == 1 and dead[0]["severity"] == "warning" and dead[0]["layer"] == "dense_1"
    fractions = dict(steep["metrics"]["dead_fraction/dense_1"])
    first = min(step for step, fraction in fractions.items() if fraction >= 0.5)
    assert dead[0]["step"] == first  # dated to the first recorded step whose dead fraction reached the threshold
    assert dead[0]["evidence"]["fraction"] >= 0.5 and len(dead[0]["evidence"]["units"]) == round(16 * dead[0]["evidence"]["fraction"])
    assert dead[0]["sentence"].startswith(f"{len(dead[0]['evidence']['units'])} of 16 units of dense_1 (")
    assert kinds(run(dead_relu(0.5)), "warning") == []


def deep(activation: str, init: str) -> dict:  # examples/vanishing_gradients.py
    layers = [{"units": 16, "activation": activation}] * 50 + [{"units": 1, "activation": "sigmoid"}]
    return {"model": {"layers": layers, "init": init}, "loss": "bce", "data": {"builtin": "moons", "n_samples": 128},
            "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 5, "seed": 0, "record": {"every": 1}}


def test_deep_sigmoids_vanish_and_their_relu_twin_does_not():
    assert ("vanishing_gradients", 0) in kinds(run(deep("sigmoid", "glorot_normal")))
    assert "vanishing_gradients" not in [k for k, _ in kinds(run(deep("relu", "he_normal")))]


def learning_rate(lr: float) -> dict:  # examples/learning_rate.py
    return {"model": POST, "loss": "bce", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": lr}, "batch_size": "full",
            "steps": 101, "shuffle": False, "record": {"every": 1, "gradients": "none"}}


def test_a_learning_rate_of_10_gives_a_rising_loss_and_01_nothing():
    found = kinds(run(learning_rate(10)), "warning")
    assert ("loss_rising", 0) in found or any(k == "diverged" for k, _ in found), found
    assert kinds(run(learning_rate(0.1))) == []


def test_a_first_layer_dead_from_step_0_is_a_dead_layer_at_step_0():
    spec = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
                      "weights": [[[-1.0, -1.0]] * 4, [[0.6, -0.4, 0.2, 0.1]]], "biases": [[-9.0] * 4, [0.0]]},
            "loss": "bce", "data": {"builtin": "moons", "n_samples": 100, "standardize": True}, "optimizer": {"name": "sgd", "lr": 0.1},
            "steps": 20}
    result = run(spec)
    dead = next(d for d in result["diagnoses"] if d["kind"] == "layer_dead")
    assert (dead["step"], dead["severity"], dead["layer"], dead["ended_step"]) == (0, "error", "dense_1", None)
    assert "no layer before it can learn" in dead["sentence"]


def test_a_diverged_run_is_a_diagnosis_too():
    spec = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]}, "loss": "mse",
            "data": {"builtin": "seed"}, "steps": 60, "seed": 1, "record": {"every": 5}, "optimizer": {"name": "sgd", "lr": 1e6}}
    result = run(spec)
    assert result["status"] == "diverged"
    assert ("diverged", result["error"]["step"]) in kinds(result, "error")


WELL_TUNED = {
    "the post's example": {**SEED, "steps": 100, "record": {"every": 1}},
    "the seed data": {"model": POST, "loss": "bce", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 100},
    "moons": moons(),
    **{f"moons, batches of {b}": {"model": {"layers": [{"units": 8, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]},
                                  "loss": "bce", "data": {"builtin": "moons", "n_samples": 200, "noise": 0.2, "validation_split": 0.25},
                                  "optimizer": {"name": "sgd", "lr": 0.1}, "epochs": 20, "seed": 3, "batch_size": b}
       for b in (1, 8, "full")},  # examples/batch_modes.py
    **{name: {"model": {"layers": [{"units": 16, "activation": "relu"}, {"units": out, "activation": "softmax" if out > 1 else "sigmoid"}]},
              "loss": "cross_entropy" if out > 1 else "bce", "data": {"builtin": name, "validation_split": 0.2, "standardize": True},
              "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": epochs, "seed": 1}
       for name, out, epochs in (("circles", 1, 30), ("digits", 10, 30), ("breast_cancer", 1, 8), ("iris", 3, 30))},
}


@pytest.mark.parametrize("name", list(WELL_TUNED))
def test_no_false_alarm_on_a_well_tuned_job(name):
    assert kinds(run(copy.deepcopy(WELL_TUNED[name])), "warning") == []


def test_diagnoses_can_be_turned_off_and_their_thresholds_set():
    assert "diagnoses" not in run({**dead_relu(1.0), "diagnose": False})
    assert kinds(run({**dead_relu(1.0), "diagnose": {"dead_fraction": 0.95}}), "warning") == []  # never 95% dead
    later = run({**dead_relu(1.0), "diagnose": {"steps": 6}})["diagnoses"][0]
    assert later["evidence"]["recorded_steps"] == 6 and later["step"] >= 40  # batches of 10: 50 samples take 5; 6 asked


PLATEAU = {"model": {"layers": [{"units": 16, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
           "data": {"builtin": "moons", "n_samples": 300, "validation_split": 0.2, "standardize": True},
           "optimizer": {"name": "adam", "lr": 0.01}, "batch_size": 32, "epochs": 30, "seed": 1}  # a plateau that begins and ends


@pytest.mark.parametrize(("spec", "at"), [(dead_relu(1.0), 70), (PLATEAU, 150)], ids=["dead units", "a plateau ended after"])
def test_a_resumed_run_finds_exactly_what_an_uninterrupted_one_finds(spec, at):
    whole = Trainer(copy.deepcopy(spec))
    list(whole)
    part = Trainer(copy.deepcopy(spec))
    for _ in range(at):
        part.train_step()
    state = checkpoints.decode(checkpoints.encode(part.state_dict()))  # through the store's own format
    resumed = Trainer(copy.deepcopy(spec))
    resumed.load_state_dict(state)
    list(resumed)
    assert resumed.members[0].diagnoser.found == whole.members[0].diagnoser.found != []
    if spec is PLATEAU:  # begun before the checkpoint, ended after it: the end is on the same entry
        plateau = next(d for d in whole.members[0].diagnoser.found if d["kind"] == "plateau")
        assert plateau["step"] < at < plateau["ended_step"]


def test_a_rate_above_two_over_the_sharpness_is_the_edge_of_stability():
    """A linear network with mse: the Hessian is 2/n·XᵀX, so η = 1.02 · 2/λmax puts η·λmax at 2.04 from step 0."""
    import numpy as np

    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 2)) * np.array([3.0, 0.5])
    y = X @ np.array([1.0, -2.0])
    augmented = np.hstack([X, np.ones((30, 1))])
    top = float(np.linalg.eigvalsh(2 / 30 * augmented.T @ augmented)[-1])
    spec = {"model": {"layers": [{"units": 1, "activation": "linear"}]}, "loss": "mse", "data": {"X": X.tolist(), "y": y.tolist()},
            "optimizer": {"name": "sgd", "lr": 1.02 * 2 / top}, "steps": 300, "record": {"every": 1, "curvature": {"every": 1}}}
    edge = next(d for d in run(spec)["diagnoses"] if d["kind"] == "edge_of_stability")
    assert edge["step"] == 0 and edge["evidence"]["sharpness_x_lr"] == pytest.approx(2.04, rel=1e-10)
    below = {**spec, "optimizer": {"name": "sgd", "lr": 0.98 * 2 / top}}
    assert "edge_of_stability" not in [d["kind"] for d in run(below)["diagnoses"]]
