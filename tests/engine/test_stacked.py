"""A stack of K networks trains each member exactly as its job would train alone: every recorded point,
full gradient, trace, divergence and final weight, over random architectures, activations, losses,
optimizers, schedules, seeds, batch orders and dtypes (float64 within 1e-12 relative, float32 1e-5;
an array's entries relative to its largest, a gradient's mean and spread to its largest entry)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.stacked import NotStackable, StackedTrainer, stack_signature
from engine.training import Trainer

HIDDEN = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh"]
OUTPUTS = {"mse": ["linear", "sigmoid", "tanh", "softmax"], "bce": ["sigmoid", "softmax"], "cross_entropy": ["softmax", "sigmoid"]}
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


@st.composite
def optimizers(draw):
    """One optimizer family for the stack, with per-member numbers drawn by `member_optimizer`."""
    name = draw(st.sampled_from(["sgd", "rmsprop", "adam", "adamw"]))
    flags = {}
    if name == "sgd":
        flags["nesterov"] = draw(st.booleans())
    if name == "rmsprop":
        flags["centered"] = draw(st.booleans())
    if name in ("adam", "adamw"):
        flags["amsgrad"] = draw(st.booleans())
    schedule = draw(st.sampled_from(["constant", "step", "cosine"]))
    clip = draw(st.sampled_from([None, 0.5]))
    return name, flags, schedule, clip


def member_optimizer(rng: np.random.Generator, family) -> dict:
    name, flags, schedule, clip = family
    spec = {"name": name, "lr": float(10 ** rng.uniform(-3, -0.5)), **flags}
    if rng.random() < 0.5:
        spec["weight_decay"] = float(rng.choice([0.0, 1e-3, 0.05]))
    if name == "sgd":
        momentum = float(rng.choice([0.0, 0.5, 0.9])) if not flags["nesterov"] else 0.9
        if momentum or rng.random() < 0.5:
            spec["momentum"] = momentum
        if not flags["nesterov"] and momentum and rng.random() < 0.5:
            spec["dampening"] = 0.3
    if name == "rmsprop":
        spec["alpha"] = float(rng.choice([0.9, 0.99]))
        if rng.random() < 0.5:
            spec["momentum"] = float(rng.choice([0.0, 0.5]))
    if name in ("adam", "adamw"):
        spec["betas"] = [float(rng.choice([0.8, 0.9])), float(rng.choice([0.99, 0.999]))]
    if schedule == "step":
        spec["schedule"] = {"name": "step", "step_size": int(rng.integers(1, 4)), "gamma": float(rng.choice([0.5, 0.9]))}
    elif schedule == "cosine":
        spec["schedule"] = {"name": "cosine", "eta_min": float(rng.choice([0.0, 1e-4]))}
    if clip is not None:
        spec["clip_norm"] = clip
    return spec


@st.composite
def stacks(draw):
    """Specs of one stack: a shared architecture, loss, batch size and optimizer family; members that
    differ in seed, learning rate and the other numbers, and perhaps in epochs and data."""
    loss = draw(st.sampled_from(["mse", "bce", "cross_entropy"]))
    depth = draw(st.integers(1, 3))
    hidden = [draw(st.sampled_from(HIDDEN)) for _ in range(depth)]
    out_act = draw(st.sampled_from(OUTPUTS[loss]))
    min_out = 2 if (loss == "cross_entropy" or out_act == "softmax") else 1
    units = [draw(st.integers(1, 6)) for _ in range(depth)] + [draw(st.integers(min_out, 3))]
    n = draw(st.integers(4, 12))
    batch = draw(st.sampled_from([1, 3, "full"]))
    k = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from(["float64", "float32"]))
    family = draw(optimizers())
    shuffle = draw(st.booleans())
    dropout = draw(st.sampled_from([0.0, 0.0, 0.3])) if depth > 0 else 0.0
    shared_data = draw(st.booleans())
    record = {"every": draw(st.sampled_from([1, 2, 3])), "gradients": draw(st.sampled_from(["none", "summary", "full"])),
              "trace": draw(st.sampled_from([False, [0], True]))}
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 4))
    layers = []
    for act, u in zip(hidden + [out_act], units, strict=True):
        layer = {"units": u, "activation": act}
        if act in ("leaky_relu", "elu"):
            layer["alpha"] = float(rng.choice([0.05, 0.7]))
        layers.append(layer)

    def data() -> dict:
        X = rng.normal(size=(n, n_in)).round(3).tolist()
        out = units[-1]
        if loss == "cross_entropy":
            y = rng.integers(0, out, size=n).tolist()
        elif loss == "bce":
            y = rng.integers(0, 2, size=(n, out)).tolist() if out > 1 else rng.integers(0, 2, size=n).tolist()
        else:
            y = rng.normal(size=(n, out)).round(3).tolist()
        return {"X": X, "y": y, "validation_split": 0.25}

    shared = data()
    specs = []
    for _ in range(k):
        specs.append({
            "model": {"layers": layers, "init": str(rng.choice(["he_normal", "glorot_uniform"])), "dropout": dropout},
            "loss": loss, "data": shared if shared_data else data(), "optimizer": member_optimizer(rng, family),
            "batch_size": batch, "epochs": int(rng.integers(1, 4)), "shuffle": shuffle, "seed": int(rng.integers(0, 1000)),
            "dtype": dtype, "record": record,
        })
    return specs


def solo_run(spec: dict) -> tuple[Trainer, list]:
    trainer = Trainer(copy.deepcopy(spec))
    records = [r for r in trainer if r.metrics or r.gradients is not None or r.trace is not None]
    return trainer, records


def stacked_run(specs: list[dict]) -> tuple[list[Trainer], dict[int, list]]:
    shells = [Trainer(copy.deepcopy(spec)) for spec in specs]
    groups: dict[tuple, list[Trainer]] = {}
    for shell in shells:
        groups.setdefault(stack_signature(shell), []).append(shell)
    records: dict[int, list] = {id(s): [] for s in shells}
    for members in groups.values():
        stack = StackedTrainer(members)
        while stack.members:
            done = stack.train_step()
            for trainer, record in done.records.items():
                records[id(trainer)].append(record)
    return shells, records


def close(a, b, tol: float, where: str, scale: float | None = None) -> None:
    """Within `tol` relative to each value, or to `scale` (an array's largest entry, a tensor's largest
    gradient): entries that cancel to nearly nothing carry the rounding of the terms they cancel."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, where
    both_nan = np.isnan(a) & np.isnan(b)
    if scale is None:
        scale = np.maximum(np.abs(a), np.abs(b))
    ok = both_nan | (np.abs(a - b) <= tol * np.maximum(scale, 1e-300))
    assert ok.all(), f"{where}: {a[~ok][:3]} vs {b[~ok][:3]}"


def array_scale(a) -> float:
    finite = np.abs(np.asarray(a, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else 0.0


def metric_scale(key: str, metrics: dict) -> float | None:
    """A gradient's mean and spread are sums that cancel: judged against the tensor's largest |gradient|."""
    family, _, tensor = key.partition("/")
    if family in ("grad_mean", "grad_std"):
        return abs(metrics[f"grad_max/{tensor}"])
    return None


def assert_same_run(spec: dict, shell: Trainer, records: list) -> None:
    tol = TOLERANCE[spec.get("dtype", "float64")]
    solo, expected = solo_run(spec)
    assert shell.status == solo.status and shell.step == solo.step
    if solo.divergence is not None:
        assert (shell.divergence.step, shell.divergence.quantity) == (solo.divergence.step, solo.divergence.quantity)
    assert [r.step for r in records] == [r.step for r in expected]
    for got, want in zip(records, expected, strict=True):
        where = f"step {want.step}"
        assert got.epoch == want.epoch and set(got.metrics) == set(want.metrics), where
        for key, value in want.metrics.items():
            close(got.metrics[key], value, tol, f"{where} {key}", metric_scale(key, want.metrics))
        close(got.loss, want.loss, tol, f"{where} loss")
        assert (got.gradients is None) == (want.gradients is None), where
        for name, g in (want.gradients or {}).items():
            close(got.gradients[name], g, tol, f"{where} ∂{name}", array_scale(g))
        assert (got.trace is None) == (want.trace is None), where
        if want.trace is not None:
            for layer_got, layer_want in zip(got.trace["layers"], want.trace["layers"], strict=True):
                for field in ("W", "b", "Z", "A", "delta", "dW", "db", "W_new", "b_new"):
                    close(layer_got[field], layer_want[field], tol, f"{where} trace {field}", array_scale(layer_want[field]))
            close(got.trace["lr"], want.trace["lr"], tol, where)
            assert got.trace["X"] == want.trace["X"] and got.trace["step"] == want.trace["step"], where
    for got, want in zip(shell.model()["weights"] + shell.model()["biases"], solo.model()["weights"] + solo.model()["biases"], strict=True):
        close(got, want, tol, "final weights", array_scale(want))
    if solo.divergence is None:
        for key, value in solo.final_model_figures().items():
            close(shell.final_model_figures()[key], value, tol, key)
    state, expected_state = shell.state_dict(), solo.state_dict()
    assert state["step"] == expected_state["step"] and state["rng"] == expected_state["rng"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks())
def test_each_member_equals_its_job_trained_alone(specs):
    shells, records = stacked_run(specs)
    for spec, shell in zip(specs, shells, strict=True):
        assert_same_run(spec, shell, records[id(shell)])


def test_one_member_diverging_ends_only_it():
    base = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]}, "loss": "mse",
            "data": {"builtin": "seed"}, "steps": 60, "seed": 1, "record": {"every": 5}}
    specs = [{**base, "optimizer": {"name": "sgd", "lr": lr}} for lr in (0.01, 1e6, 0.05)]
    shells, records = stacked_run(specs)
    assert [s.status for s in shells] == ["succeeded", "diverged", "succeeded"]
    for spec, shell in zip(specs, shells, strict=True):
        assert_same_run(spec, shell, records[id(shell)])


def test_a_member_taken_out_leaves_the_rest_as_they_were():
    base = {"model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "moons", "n_samples": 60, "validation_split": 0.2}, "batch_size": 8, "epochs": 4,
            "optimizer": {"name": "adam", "lr": 0.01}, "record": {"every": 3}}
    specs = [{**base, "seed": seed} for seed in range(3)]
    shells = [Trainer(copy.deepcopy(s)) for s in specs]
    stack = StackedTrainer(shells)
    records = {id(s): [] for s in shells}
    while stack.members:
        done = stack.train_step()
        for trainer, record in done.records.items():
            records[id(trainer)].append(record)
        if stack.step == 7 and shells[1] in stack.members:
            stack.remove([shells[1]])  # cancelled, pruned or out of time: its shell is where it stopped
    assert shells[1].step == 7 and len(stack.members) == 0
    alone = Trainer(copy.deepcopy(specs[1]))
    for _ in range(7):
        alone.train_step()
    np.testing.assert_allclose(shells[1].network.flat_params, alone.network.flat_params, rtol=1e-12)
    for k in (0, 2):
        assert_same_run(specs[k], shells[k], records[id(shells[k])])


def test_members_resume_from_their_own_checkpoints():
    base = {"model": {"layers": [{"units": 6, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "moons", "n_samples": 40}, "batch_size": 8, "epochs": 3, "optimizer": {"name": "sgd", "lr": 0.1,
            "momentum": 0.9}}
    specs = [{**base, "seed": seed} for seed in range(2)]
    shells = [Trainer(copy.deepcopy(s)) for s in specs]
    stack = StackedTrainer(shells)
    for _ in range(7):  # mid-epoch, mid-shuffle
        stack.train_step()
    checkpoints = [stack.sync(s).state_dict() for s in shells]
    resumed = [Trainer(copy.deepcopy(s)) for s in specs]
    for trainer, state in zip(resumed, checkpoints, strict=True):
        trainer.load_state_dict(state)
    again = StackedTrainer(resumed)
    while again.members:
        again.train_step()
    for spec, trainer in zip(specs, resumed, strict=True):
        solo = Trainer(copy.deepcopy(spec))
        list(solo)
        np.testing.assert_allclose(trainer.network.flat_params, solo.network.flat_params, rtol=1e-12)


def test_what_cannot_share_a_stack_is_refused():
    base = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "xor"}, "steps": 10, "optimizer": {"name": "sgd", "lr": 0.1}}
    wider = copy.deepcopy(base)
    wider["model"]["layers"][0]["units"] = 8
    with pytest.raises(NotStackable):
        StackedTrainer([Trainer(base), Trainer(wider)])
    with pytest.raises(NotStackable):
        StackedTrainer([Trainer(base), Trainer({**base, "batch_size": 1})])
    ahead = Trainer(base)
    ahead.train_step()
    with pytest.raises(NotStackable):
        StackedTrainer([Trainer(base), ahead])
    assert stack_signature(Trainer(base)) == stack_signature(Trainer({**base, "seed": 5, "optimizer": {"name": "sgd", "lr": 1.0}}))
    assert StackedTrainer([Trainer(base)]).train_step().step == 0  # a stack of one steps like its member


def test_wide_layers_take_the_per_member_matmul_and_agree(monkeypatch):
    """The BLAS call per member that wide layers use gives what the stacked call gives (and the solo run)."""
    import engine.stacked

    monkeypatch.setattr(engine.stacked, "PER_MEMBER_MATMUL_FLOPS", 1)
    base = {"model": {"layers": [{"units": 5, "activation": "relu"}, {"units": 3, "activation": "softmax"}]},
            "loss": "cross_entropy", "data": {"builtin": "iris", "validation_split": 0.2}, "batch_size": 16, "epochs": 2,
            "shuffle": False, "record": {"every": 2, "gradients": "full"}, "optimizer": {"name": "adam", "lr": 0.01}}
    for shuffle in (False, True):
        specs = [{**base, "shuffle": shuffle, "seed": seed} for seed in range(3)]
        shells, records = stacked_run(specs)
        for spec, shell in zip(specs, shells, strict=True):
            assert_same_run(spec, shell, records[id(shell)])
