"""The training loop: determinism, resumption, divergence, batching, recording, epochs."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from engine.problem import build_problem
from engine.training import Trainer, run


def moons_spec(**overrides) -> dict:
    spec = {
        "model": {"layers": [{"units": 8, "activation": "relu"}, {"units": 6, "activation": "tanh"},
                             {"units": 1, "activation": "sigmoid"}], "dropout": 0.2},
        "loss": "bce",
        "data": {"builtin": "moons", "n_samples": 60, "noise": 0.2, "validation_split": 0.25, "standardize": True},
        "optimizer": {"name": "adam", "lr": 0.01},
        "batch_size": 7, "epochs": 4, "shuffle": True, "seed": 3,
    }
    spec.update(overrides)
    return spec


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_same_spec_and_seed_give_bit_identical_results(dtype):
    a, b = run(moons_spec(dtype=dtype)), run(moons_spec(dtype=dtype))
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    c = run(moons_spec(dtype=dtype, seed=4))
    assert c["model"] != a["model"]


def test_resume_from_state_dict_is_bit_identical():
    spec = moons_spec(record={"every": 1, "gradients": "full"})
    straight = [(r.step, r.loss, dict(r.metrics)) for r in Trainer(spec)]
    first = Trainer(spec)
    records = []
    for record in first:
        records.append((record.step, record.loss, dict(record.metrics)))
        if record.step == 10:  # mid-epoch (7 batches of 7 per epoch over 45 training samples)
            break
    state = copy.deepcopy(first.state_dict())
    second = Trainer(spec)
    second.load_state_dict(state)
    records += [(r.step, r.loss, dict(r.metrics)) for r in second]
    assert records == straight
    assert second.model() == run(spec)["model"]


def test_divergence_stops_with_step_and_quantity_and_finite_results():
    spec = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]},
            "loss": "mse", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 1e6}, "steps": 50, "seed": 1}
    result = run(spec)
    assert result["status"] == "diverged"
    error = result["error"]
    assert 0 < error["step"] < 50 and result["steps_completed"] == error["step"]
    assert error["quantity"] == "loss" or error["quantity"].startswith(("gradient of ", "update of "))
    assert f"at step {error['step']}" in error["message"]
    values = [v for series in result["metrics"].values() for _, v in series]
    assert values and all(math.isfinite(v) for v in values)
    assert all(math.isfinite(w) for layer in result["model"]["weights"] for row in layer for w in row)


def test_unshuffled_batches_are_consecutive_slices_with_a_smaller_last_one():
    X = [[float(i), 0.0] for i in range(5)]
    spec = {"model": {"layers": [{"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"X": X, "y": [0, 1, 0, 1, 0]}, "batch_size": 2, "steps": 4, "shuffle": False,
            "record": {"trace": True}}
    batches = [r.trace["X"] for r in Trainer(spec)]
    assert batches == [X[0:2], X[2:4], X[4:5], X[0:2]]


def test_shuffle_visits_every_sample_once_per_epoch():
    X = [[float(i)] for i in range(10)]
    spec = {"model": {"layers": [{"units": 1, "activation": "linear"}]}, "loss": "mse",
            "data": {"X": X, "y": [0.0] * 10}, "batch_size": 3, "epochs": 2, "shuffle": True, "record": {"trace": True}}
    records = list(Trainer(spec))
    epoch0 = sorted(x[0] for r in records if r.epoch == 0 for x in r.trace["X"])
    assert epoch0 == [float(i) for i in range(10)]
    assert [x for r in records[:4] for x in r.trace["X"]] != X


def test_recorded_steps_follow_every_and_keep_the_last():
    result = run(moons_spec(record={"every": 5}, epochs=2, data={"builtin": "moons", "n_samples": 49}))
    assert [s for s, _ in result["metrics"]["loss"]] == [0, 5, 10, 13]
    assert [s for s, _ in result["metrics"]["train_loss"]] == [6, 13]


def test_step_metrics_names_and_values():
    spec = {"model": {"layers": [{"units": 3, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]},
            "loss": "bce", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 0.5}, "steps": 1, "seed": 2,
            "record": {"gradients": "full"}}
    trainer = Trainer(spec)
    W_before = [p.copy() for p in trainer.network.params()]
    record = next(iter(trainer))
    m = record.metrics
    for name in ("dense_1.weight", "dense_1.bias", "dense_2.weight", "dense_2.bias"):
        g = record.gradients[name]
        assert m[f"grad_norm/{name}"] == pytest.approx(np.linalg.norm(g), rel=1e-12)
        assert m[f"grad_mean/{name}"] == pytest.approx(g.mean(), rel=1e-9, abs=1e-15)
        assert m[f"grad_std/{name}"] == pytest.approx(g.std(), rel=1e-6, abs=1e-12)
        assert m[f"grad_max/{name}"] == pytest.approx(np.abs(g).max(), rel=1e-12)
    W1 = W_before[0]
    assert m["weight_norm/dense_1.weight"] == pytest.approx(np.linalg.norm(W1))
    # plain SGD: the update is lr * g
    assert m["update_ratio/dense_1.weight"] == pytest.approx(0.5 * np.linalg.norm(record.gradients["dense_1.weight"]) / np.linalg.norm(W1))
    assert m["vanishing_ratio"] == pytest.approx(m["grad_norm/dense_1.weight"] / m["grad_norm/dense_2.weight"])
    assert "dead_fraction/dense_1" in m and "dead_fraction/dense_2" not in m
    assert m["loss"] == record.loss


def test_gradients_none_records_loss_without_gradient_statistics():
    result = run(moons_spec(record={"gradients": "none"}))
    assert not any(k.startswith(("grad_", "update_ratio", "weight_norm")) for k in result["metrics"])
    assert "loss" in result["metrics"] and "gradients" not in result


def test_dead_fraction_counts_units_dead_on_the_whole_batch():
    spec = {"model": {"layers": [{"units": 2, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
                      "weights": [[[0.5, -0.2], [0.3, 0.8]], [[0.6, -0.4]]], "biases": [[0.1, -10.0], [0.0]]},
            "loss": "bce", "data": {"builtin": "seed"}, "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 3}
    result = run(spec)
    assert [v for _, v in result["metrics"]["dead_fraction/dense_1"]] == [0.5, 0.5, 0.5]
    # a dead unit's incoming weights never move
    assert result["model"]["weights"][0][1] == [0.3, 0.8]


def test_vanishing_ratio_shows_deep_sigmoid_stacks_starve_early_layers():
    def deep(activation, init):
        layers = [{"units": 8, "activation": activation}] * 20 + [{"units": 1, "activation": "sigmoid"}]
        return {"model": {"layers": layers, "init": init}, "loss": "bce", "data": {"builtin": "moons", "n_samples": 64},
                "optimizer": {"name": "sgd", "lr": 0.1}, "steps": 1, "seed": 0}
    sigmoid = run(deep("sigmoid", "glorot_normal"))["metrics"]["vanishing_ratio"][0][1]
    relu = run(deep("relu", "he_normal"))["metrics"]["vanishing_ratio"][0][1]
    assert sigmoid < 1e-6 < 1e-2 < relu


def test_epoch_metrics_with_validation_part():
    result = run(moons_spec())
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):
        assert len(result["metrics"][key]) == 4, key
    assert result["summary"]["final_val_accuracy"] == result["metrics"]["val_accuracy"][-1][1]
    mse = run(moons_spec(loss="mse", model={"layers": [{"units": 4, "activation": "tanh"}, {"units": 1, "activation": "linear"}]}))
    assert "val_loss" in mse["metrics"] and "val_accuracy" not in mse["metrics"]


def test_standardize_uses_training_statistics_only():
    problem = build_problem(moons_spec())
    assert np.allclose(problem.X_train.mean(axis=0), 0, atol=1e-12)
    assert np.allclose(problem.X_train.std(axis=0), 1)
    assert not np.allclose(problem.X_val.mean(axis=0), 0, atol=1e-3)


def test_float32_is_kept_end_to_end():
    trainer = Trainer(moons_spec(dtype="float32", record={"gradients": "full"}))
    records = list(trainer)
    assert all(p.dtype == np.float32 for p in trainer.network.params())
    assert all(s.dtype == np.float32 for arrays in trainer.optimizer.state.values() for s in arrays)
    assert records[0].gradients["dense_1.weight"].dtype == np.float32
    assert trainer.problem.X_train.dtype == np.float32


def test_dropout_changes_training_but_not_prediction():
    with_dropout, without = Trainer(moons_spec()), Trainer(moons_spec(model={**moons_spec()["model"], "dropout": 0.0}))
    assert [r.loss for r in with_dropout] != [r.loss for r in without]
    X = with_dropout.problem.X_val
    assert np.array_equal(with_dropout.network.predict(X), with_dropout.network.predict(X))


@pytest.mark.parametrize("name", ["seed", "xor", "moons", "circles", "spiral", "blobs", "iris", "breast_cancer", "digits"])
def test_builtin_datasets_train(name):
    out = {"seed": 1, "xor": 1, "moons": 1, "circles": 1}.get(name)
    layers = [{"units": 8, "activation": "relu"}]
    if out == 1:
        layers.append({"units": 1, "activation": "sigmoid"})
        loss = "bce"
    else:
        classes = {"spiral": 3, "blobs": 3, "iris": 3, "breast_cancer": 2, "digits": 10}[name]
        layers.append({"units": classes, "activation": "softmax"})
        loss = "cross_entropy"
    result = run({"model": {"layers": layers}, "loss": loss, "data": {"builtin": name, "standardize": True},
                  "optimizer": {"name": "adam", "lr": 0.01}, "epochs": 2, "batch_size": 5})
    assert result["status"] == "succeeded"
    assert result["metrics"]["loss"][-1][1] < result["metrics"]["loss"][0][1] * 1.5


def test_schedules_change_the_learning_rate():
    from engine.optimizers import learning_rate
    from engine.spec import Schedule

    step = Schedule(name="step", step_size=10, gamma=0.5)
    assert [learning_rate(1.0, step, t, 100) for t in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cosine = Schedule(name="cosine")
    assert learning_rate(1.0, cosine, 0, 100) == 1.0
    assert learning_rate(1.0, cosine, 50, 100) == pytest.approx(0.5)
    assert learning_rate(1.0, cosine, 100, 100) == pytest.approx(0.0)


@pytest.mark.parametrize("overrides", [
    {},
    {"record": {"gradients": "none"}},
    {"loss": "mse", "data": {"builtin": "moons", "n_samples": 40}},
    {"model": {"layers": [{"units": 4, "activation": "leaky_relu"}, {"units": 3, "activation": "softmax"}]},
     "loss": "cross_entropy", "data": {"builtin": "iris", "validation_split": 0.2}},
    {"model": {"layers": [{"units": 1, "activation": "sigmoid"}]}, "record": {"gradients": "full"}},
    {"record": {"curvature": {"every": 3}}},
    {"model": {"layers": [{"units": 1, "activation": "linear"}]}, "loss": "mse", "data": {"X": [[1.0], [2.0]], "y": [1.0, 3.0]}, "batch_size": 1,
     "record": {"curvature": {"every": 1}}},
], ids=["default", "no-gradients", "mse-no-validation", "softmax", "one-layer", "curvature", "two-parameters"])
def test_metric_keys_name_exactly_what_a_job_records(overrides):
    """The API refuses metric keys outside `metric_keys(spec)`: it must be what training writes."""
    from engine.problem import plan
    from engine.recording import metric_keys
    from engine.spec import parse_spec

    spec = moons_spec(**overrides)
    recorded = set(run(spec)["metrics"])
    assert recorded == set(metric_keys(parse_spec(spec), plan(parse_spec(spec)).n_params))


RICH = [moons_spec(),
        moons_spec(loss="mse", data={"builtin": "moons", "n_samples": 40}, record={"gradients": "none"}),
        moons_spec(model={"layers": [{"units": 4, "activation": "leaky_relu"}, {"units": 3, "activation": "softmax"}]},
                   loss="cross_entropy", data={"builtin": "iris", "validation_split": 0.2}),
        moons_spec(model={"layers": [{"units": 1, "activation": "sigmoid"}]}),
        moons_spec(record={"curvature": {"every": 5}})]


def test_the_metric_reference_names_every_key_training_records_and_nothing_else():
    from engine.recording import METRIC_REFERENCE, metric_family

    families = {row[0] for row in METRIC_REFERENCE}
    recorded = {metric_family(key) for spec in RICH for key in run(spec)["metrics"]}
    assert recorded == families


def test_the_summary_reference_names_every_summary_field():
    """The engine's summary fields, plus the three the service adds (steps_completed, total_steps, duration_seconds)."""
    from engine.training import SUMMARY_REFERENCE

    fields = {row[0] for row in SUMMARY_REFERENCE}
    seen = {key for spec in RICH for key in run(spec)["summary"]} | {"steps_completed", "total_steps", "duration_seconds"}
    assert seen == fields


def test_the_final_models_figures_are_one_forward_pass_over_each_part():
    trainer = Trainer(moons_spec(model={"layers": [{"units": 8, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}],
                                        "dropout": 0.3}))
    for _ in trainer:
        pass
    figures = trainer.final_model_figures()
    p = trainer.problem
    outputs = trainer.network.predict(p.X_train)
    bce = -np.mean(p.Y_train * np.log(outputs) + (1 - p.Y_train) * np.log(1 - outputs))
    assert figures["model_train_loss"] == pytest.approx(bce, rel=1e-9)
    assert figures["model_train_accuracy"] == pytest.approx(np.mean((outputs > 0.5) == (p.Y_train > 0.5)))
    assert set(figures) == {"model_train_loss", "model_train_accuracy", "model_val_loss", "model_val_accuracy"}
