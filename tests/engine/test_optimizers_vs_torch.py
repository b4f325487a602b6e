"""50-step trajectories of every optimizer equal torch.optim's (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.training import run

from . import torch_reference as ref

OPTIMIZERS = {
    "sgd": {"name": "sgd", "lr": 0.1},
    "sgd_momentum": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "sgd_momentum_dampening": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.3},
    "sgd_nesterov_wd": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    "rmsprop": {"name": "rmsprop", "lr": 0.005},
    "rmsprop_momentum_centered": {"name": "rmsprop", "lr": 0.002, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
    "adam": {"name": "adam", "lr": 0.01},
    "adam_wd_amsgrad": {"name": "adam", "lr": 0.01, "weight_decay": 0.02, "amsgrad": True, "betas": [0.8, 0.99]},
    "adamw": {"name": "adamw", "lr": 0.01},
    "adamw_wd": {"name": "adamw", "lr": 0.01, "weight_decay": 0.1, "eps": 1e-6},
    "sgd_clipped": {"name": "sgd", "lr": 0.5, "clip_norm": 0.05},
    "adam_clipped": {"name": "adam", "lr": 0.01, "clip_norm": 0.1},
    "sgd_step_schedule": {"name": "sgd", "lr": 0.2, "schedule": {"name": "step", "step_size": 10, "gamma": 0.5}},
    "adam_cosine_schedule": {"name": "adam", "lr": 0.02, "schedule": {"name": "cosine", "eta_min": 0.001}},
}


def make_spec(optimizer: dict, batch_size, seed: int = 7) -> dict:
    rng = np.random.default_rng(seed)
    n, sizes = 13, [3, 5, 4, 3]
    weights = [rng.normal(0, 0.7, size=(sizes[i + 1], sizes[i])).tolist() for i in range(3)]
    biases = [rng.normal(0, 0.1, size=sizes[i + 1]).tolist() for i in range(3)]
    return {
        "model": {"layers": [{"units": 5, "activation": "tanh"}, {"units": 4, "activation": "elu"},
                             {"units": 3, "activation": "softmax"}], "weights": weights, "biases": biases},
        "loss": "cross_entropy",
        "data": {"X": rng.normal(size=(n, 3)).tolist(), "y": rng.integers(0, 3, size=n).tolist()},
        "optimizer": optimizer, "batch_size": batch_size, "steps": 50, "shuffle": False,
    }


@pytest.mark.parametrize("batch_size", [1, 4, "full"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_optimizer_trajectory_equals_torch_optim(name, batch_size):
    spec = make_spec(OPTIMIZERS[name], batch_size)
    result = run(spec)
    torch_losses, torch_params = ref.train(spec)
    losses = [v for _, v in result["metrics"]["loss"]]
    assert len(losses) == 50
    assert ref.relative_error(losses, torch_losses) <= 1e-9
    mine = [p for pair in zip(result["model"]["weights"], result["model"]["biases"], strict=True) for p in pair]
    for m, t in zip(mine, torch_params, strict=True):
        err = ref.relative_error(m, t)
        assert err <= 1e-9, f"{name}: mine {np.array(m)} vs torch {t} ({err:.3g})"
