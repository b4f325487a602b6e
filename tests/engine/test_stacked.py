"""A job's results depend on its spec alone: a member of a trainer of K networks records bitwise what
the same spec records as a trainer of one (`==`, no tolerance) — every loss, recorded point, full
gradient, trace, divergence, final weight, final figure and checkpoint — over random architectures,
activations, losses, optimizers (nesterov, amsgrad, centered), schedules, clipping, dropout, shuffles,
shared and separate data, dtypes, K from 1 to 64, each member's place in the stack, members leaving
mid-way, and resuming from checkpoints."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import network as network_module
from engine.stacking import NotStackable
from engine.training import Trainer

HIDDEN = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh"]
OUTPUTS = {"mse": ["linear", "sigmoid", "tanh", "softmax"], "bce": ["sigmoid", "softmax"], "cross_entropy": ["softmax", "sigmoid"]}


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
    k = draw(st.one_of(st.integers(1, 6), st.just(64)))
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
    leave = (draw(st.integers(0, k - 1)), draw(st.integers(1, 12))) if draw(st.booleans()) else None
    return specs, leave


def solo_run(spec: dict) -> tuple[Trainer, list]:
    trainer = Trainer(copy.deepcopy(spec))
    records = [r for r in trainer if r.metrics or r.gradients is not None or r.trace is not None]
    return trainer, records


def stacked_run(specs: list[dict], leave: tuple[int, int] | None = None) -> tuple[list[Trainer], list[list]]:
    """Train the specs stacked by their key; member `leave[0]` is taken out after `leave[1]` steps (a
    cancel, a prune, a time limit). Each member's trainer as it ended, and its records."""
    solos = [Trainer(copy.deepcopy(spec)) for spec in specs]
    members = [t.members[0] for t in solos]
    groups: dict[str, list[Trainer]] = {}
    for solo in solos:
        groups.setdefault(solo.members[0].key, []).append(solo)
    records: dict = {m: [] for m in members}
    ended: dict = {}
    for group in groups.values():
        stack = Trainer.stack(group)
        while stack.members:
            done = stack.step_all()
            for member, record in done.records.items():
                records[member].append(record)
            leaving = list(done.ended)
            if leave is not None and stack.step == leave[1] and members[leave[0]] in stack.members:
                leaving.append(members[leave[0]])
            for alone in stack.remove(leaving):
                ended[alone.members[0]] = alone
    return [ended[m] for m in members], [records[m] for m in members]


def found(trainer: Trainer) -> list[dict] | None:
    """The diagnoses a trainer of one found (repr: NaN equals NaN)."""
    diagnoser = trainer.members[0].diagnoser
    return None if diagnoser is None else repr(diagnoser.found)


def same(a, b, where: str) -> None:
    """Bitwise equal: the same numbers (NaN where NaN), shapes and types."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, where
    assert np.array_equal(a, b, equal_nan=True), f"{where}: {a.ravel()[:3]} vs {b.ravel()[:3]}"


def assert_same_run(spec: dict, trainer: Trainer, records: list, steps: int | None = None) -> None:
    """The member's run equals the spec's run as a trainer of one (`steps`: it left after that many)."""
    solo = Trainer(copy.deepcopy(spec))
    expected = []
    while not solo.ended() and (steps is None or solo.step < steps):
        record = solo.train_step()
        if record is not None and (record.metrics or record.gradients is not None or record.trace is not None):
            expected.append(record)
    assert trainer.status == solo.status and trainer.step == solo.step
    if solo.divergence is not None:
        assert trainer.divergence.as_dict() == solo.divergence.as_dict()  # the value as repr: NaN equals NaN
    assert [r.step for r in records] == [r.step for r in expected]
    for got, want in zip(records, expected, strict=True):
        where = f"step {want.step}"
        assert (got.epoch, got.loss) == (want.epoch, want.loss), where
        assert got.metrics == want.metrics, where  # dicts of floats: == on every value, and the same keys
        assert (got.gradients is None) == (want.gradients is None), where
        for name, g in (want.gradients or {}).items():
            same(got.gradients[name], g, f"{where} ∂{name}")
        assert got.trace == want.trace, where
    assert trainer.model() == solo.model()
    assert found(trainer) == found(solo)  # the same diagnoses, at the same steps, with the same evidence
    same(trainer.network.flat_params, solo.network.flat_params, "final weights")
    if solo.divergence is None:
        assert trainer.final_model_figures() == solo.final_model_figures()
    state, expected_state = trainer.state_dict(), solo.state_dict()
    for key in ("step", "epoch", "batch_index", "rng", "epoch_sums"):
        assert repr(state[key]) == repr(expected_state[key]), key  # repr: NaN equals NaN
    same(state["params"], expected_state["params"], "checkpoint params")
    assert state["optimizer"]["t"] == expected_state["optimizer"]["t"]
    assert state["optimizer"]["state"].keys() == expected_state["optimizer"]["state"].keys()
    for name, value in expected_state["optimizer"]["state"].items():
        same(state["optimizer"]["state"][name], value, f"optimizer {name}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stacks())
def test_each_member_is_bitwise_its_spec_trained_alone(case):
    specs, leave = case
    trainers, records = stacked_run(specs, leave)
    for k, (spec, trainer) in enumerate(zip(specs, trainers, strict=True)):
        left_at = leave[1] if leave is not None and leave[0] == k and trainer.status == "running" else None
        assert_same_run(spec, trainer, records[k], steps=left_at)


def test_one_member_diverging_ends_only_it():
    base = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "linear"}]}, "loss": "mse",
            "data": {"builtin": "seed"}, "steps": 60, "seed": 1, "record": {"every": 5}}
    specs = [{**base, "optimizer": {"name": "sgd", "lr": lr}} for lr in (0.01, 1e6, 0.05)]
    trainers, records = stacked_run(specs)
    assert [t.status for t in trainers] == ["succeeded", "diverged", "succeeded"]
    for spec, trainer, recorded in zip(specs, trainers, records, strict=True):
        assert_same_run(spec, trainer, recorded)


def test_a_member_taken_out_leaves_the_rest_as_they_were():
    base = {"model": {"layers": [{"units": 8, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "moons", "n_samples": 60, "validation_split": 0.2}, "batch_size": 8, "epochs": 4,
            "optimizer": {"name": "adam", "lr": 0.01}, "record": {"every": 3}}
    specs = [{**base, "seed": seed} for seed in range(3)]
    trainers, records = stacked_run(specs, leave=(1, 7))
    assert trainers[1].step == 7 and trainers[1].status == "running"
    for k, spec in enumerate(specs):
        assert_same_run(spec, trainers[k], records[k], steps=7 if k == 1 else None)


def test_members_resume_from_their_own_checkpoints_bitwise():
    base = {"model": {"layers": [{"units": 6, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "moons", "n_samples": 40}, "batch_size": 8, "epochs": 3,
            "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "model_dropout": None}
    base.pop("model_dropout")
    specs = [{**base, "seed": seed, "optimizer": {**base["optimizer"], "momentum": m}} for seed, m in ((0, 0.9), (1, 0.0), (2, 0.5))]
    stack = Trainer.stack([Trainer(copy.deepcopy(s)) for s in specs])
    for _ in range(7):  # mid-epoch, mid-shuffle
        stack.step_all()
    checkpoints = [stack.state_dict(k) for k in range(len(specs))]
    resumed = [Trainer(copy.deepcopy(s)) for s in specs]
    for trainer, state in zip(resumed, checkpoints, strict=True):
        trainer.load_state_dict(state)
    again = Trainer.stack(resumed[::-1])  # in another order, too
    finished = {}
    while again.members:
        done = again.step_all()
        for alone in again.remove(done.ended):
            finished[alone.members[0].spec.seed] = alone
    for spec in specs:
        solo = Trainer(copy.deepcopy(spec))
        list(solo)
        assert finished[spec["seed"]].model() == solo.model()
        assert finished[spec["seed"]].state_dict()["rng"] == solo.state_dict()["rng"]
        assert found(finished[spec["seed"]]) == found(solo)


def test_what_cannot_share_a_stack_is_refused():
    base = {"model": {"layers": [{"units": 4, "activation": "relu"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "xor"}, "steps": 10, "optimizer": {"name": "sgd", "lr": 0.1}}
    wider = copy.deepcopy(base)
    wider["model"]["layers"][0]["units"] = 8
    with pytest.raises(NotStackable):
        Trainer.stack([Trainer(base), Trainer(wider)])
    with pytest.raises(NotStackable):
        Trainer.stack([Trainer(base), Trainer({**base, "batch_size": 1})])
    ahead = Trainer(base)
    ahead.train_step()
    with pytest.raises(NotStackable):
        Trainer.stack([Trainer(base), ahead])
    same_shape = Trainer({**base, "seed": 5, "optimizer": {"name": "sgd", "lr": 1.0}})
    assert Trainer(base).members[0].key == same_shape.members[0].key
    assert Trainer.stack([Trainer(base)]).step_all().step == 0  # a stack of one steps like its member


def test_wide_layers_take_the_per_member_matmul_and_agree(monkeypatch):
    """Every layer made wide (one BLAS call per member over transposed views): each member still
    trains bitwise as alone, wide in a trainer of one too (test_each_member_is_bitwise_… for narrow)."""
    base = {"model": {"layers": [{"units": 5, "activation": "relu"}, {"units": 3, "activation": "softmax"}]},
            "loss": "cross_entropy", "data": {"builtin": "iris", "validation_split": 0.2}, "batch_size": 16, "epochs": 2,
            "shuffle": False, "record": {"every": 2, "gradients": "full"}, "optimizer": {"name": "adam", "lr": 0.01}}
    monkeypatch.setattr(network_module, "WIDE_LAYER_WEIGHTS", 1)
    for shuffle in (False, True):
        specs = [{**base, "shuffle": shuffle, "seed": seed, "optimizer": {"name": "adam", "lr": 0.01 * (1 + seed)}} for seed in range(3)]
        trainers, records = stacked_run(specs)
        for spec, trainer, recorded in zip(specs, trainers, records, strict=True):
            assert_same_run(spec, trainer, recorded)


def test_a_member_recording_curvature_gets_what_it_gets_alone():
    base = {"model": {"layers": [{"units": 6, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}]}, "loss": "bce",
            "data": {"builtin": "moons", "n_samples": 48}, "batch_size": 8, "epochs": 2, "optimizer": {"name": "sgd", "lr": 0.3},
            "record": {"every": 2}}
    specs = [{**base, "seed": 0, "record": {"every": 2, "curvature": {"every": 4}}}, {**base, "seed": 1},
             {**base, "seed": 2, "record": {"every": 1, "curvature": {"every": 3, "on": "train"}}}]
    trainers, records = stacked_run(specs)
    assert any("sharpness" in r.metrics for r in records[0]) and not any("sharpness" in r.metrics for r in records[1])
    for spec, trainer, recorded in zip(specs, trainers, records, strict=True):
        assert_same_run(spec, trainer, recorded)
