"""The same network, loss and optimizer written in PyTorch (float64), as the reference."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from hypothesis import strategies as st

from engine.problem import build_problem

torch.set_default_dtype(torch.float64)

HIDDEN = ["linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh"]
# Output activations whose range suits each loss (bce and cross-entropy read probabilities).
OUTPUTS = {"mse": HIDDEN + ["softmax"], "bce": ["sigmoid", "softmax"], "cross_entropy": ["softmax", "sigmoid"]}


@st.composite
def networks(draw):
    """A random spec: 1-4 hidden layers, any activation, any loss, batch 1 / odd / full."""
    loss = draw(st.sampled_from(["mse", "bce", "cross_entropy"]))
    depth = draw(st.integers(1, 4))
    hidden = [draw(st.sampled_from(HIDDEN)) for _ in range(depth)]
    out_act = draw(st.sampled_from(OUTPUTS[loss]))
    min_out = 2 if (loss == "cross_entropy" or out_act == "softmax") else 1
    units = [draw(st.integers(1, 6)) for _ in range(depth)] + [draw(st.integers(min_out, 4))]
    n = draw(st.integers(1, 9))
    batch = draw(st.sampled_from([1, "odd", "full"]))
    batch_size = "full" if batch == "full" else (1 if batch == 1 else min(n, 3) if n >= 3 else 1)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_in = int(rng.integers(1, 5))
    layers = []
    for act, u in zip(hidden + [out_act], units, strict=True):
        layer = {"units": u, "activation": act}
        if act in ("leaky_relu", "elu"):
            layer["alpha"] = float(rng.uniform(0.01, 1.5))
        layers.append(layer)
    fan = [n_in] + units
    weights = [rng.normal(0, 1.0 / np.sqrt(fan[i]), size=(fan[i + 1], fan[i])).tolist() for i in range(len(units))]
    biases = [rng.normal(0, 0.1, size=fan[i + 1]).tolist() for i in range(len(units))]
    X = rng.normal(size=(n, n_in)).tolist()
    k = units[-1]
    if loss == "cross_entropy":
        y = rng.integers(0, k, size=n).tolist() if rng.random() < 0.5 else np.eye(k)[rng.integers(0, k, size=n)].tolist()
    elif loss == "bce":
        y = rng.uniform(0, 1, size=(n, k)).round(2).tolist() if k > 1 else rng.integers(0, 2, size=n).tolist()
    else:
        y = rng.normal(size=(n, k)).tolist() if k > 1 else rng.normal(size=n).tolist()
    return {
        "model": {"layers": layers, "weights": weights, "biases": biases},
        "loss": loss, "data": {"X": X, "y": y}, "optimizer": {"name": "sgd", "lr": 0.1},
        "batch_size": batch_size, "steps": 1, "shuffle": False, "record": {"gradients": "full"},
    }


def saturated(spec: dict, floor: float = 1e-6) -> bool:
    """Whether a tanh or sigmoid unit's derivative is below `floor` on the first batch."""
    problem = build_problem(spec)
    network = problem.network
    network.forward(problem.X_train[:problem.batch_size])
    for activation, A in zip(network.activations, network.A, strict=True):
        if activation.name in ("tanh", "sigmoid") and np.abs(activation.derivative(A, A)).min() < floor:
            return True
    return False


def activation(name: str, z: torch.Tensor, alpha: float | None) -> torch.Tensor:
    if name == "relu":
        return F.relu(z)
    if name == "leaky_relu":
        return F.leaky_relu(z, 0.01 if alpha is None else alpha)
    if name == "elu":
        return F.elu(z, 1.0 if alpha is None else alpha)
    if name == "sigmoid":
        return torch.sigmoid(z)
    if name == "tanh":
        return torch.tanh(z)
    if name == "softmax":
        return torch.softmax(z, dim=1)
    return z


def forward(layers: list[dict], params: list[torch.Tensor], X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z, A) of the output layer."""
    A = X
    for i, layer in enumerate(layers):
        Z = A @ params[2 * i].T + params[2 * i + 1]
        A = activation(layer["activation"], Z, layer.get("alpha"))
    return Z, A


def loss(name: str, output_activation: str, Z: torch.Tensor, A: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """PyTorch's own losses: with logits where the pair is fused, on probabilities otherwise."""
    if name == "mse":
        return F.mse_loss(A, Y)
    if name == "bce":
        if output_activation == "sigmoid":
            return F.binary_cross_entropy_with_logits(Z, Y)
        return F.binary_cross_entropy(A, Y)
    if output_activation == "softmax":
        return F.cross_entropy(Z, Y)  # Y one-hot (class probabilities)
    return -(Y * torch.log(A)).sum(dim=1).mean()


def targets(spec: dict, units: int) -> np.ndarray:
    y = spec["data"]["y"]
    if spec["loss"] == "cross_entropy" and not isinstance(y[0], list):
        return np.eye(units)[np.array(y, dtype=int)]
    Y = np.array(y, dtype=np.float64)
    return Y.reshape(len(y), -1)


def gradients(spec: dict) -> tuple[float, list[np.ndarray]]:
    """Loss and parameter gradients of the spec's first full batch, by autograd."""
    layers = spec["model"]["layers"]
    params = _params(spec)
    X = torch.tensor(spec["data"]["X"])
    Y = torch.tensor(targets(spec, layers[-1]["units"]))
    bs = len(spec["data"]["X"]) if spec.get("batch_size", "full") == "full" else spec["batch_size"]
    Z, A = forward(layers, params, X[:bs])
    value = loss(spec["loss"], layers[-1]["activation"], Z, A, Y[:bs])
    value.backward()
    return float(value.detach()), [p.grad.numpy().copy() for p in params]


def _params(spec: dict) -> list[torch.Tensor]:
    out = []
    for W, b in zip(spec["model"]["weights"], spec["model"]["biases"], strict=True):
        out += [torch.tensor(W, requires_grad=True), torch.tensor(b, requires_grad=True)]
    return out


def make_optimizer(opt: dict, params: list[torch.Tensor]) -> torch.optim.Optimizer:
    kwargs = {k: v for k, v in opt.items() if k not in ("name", "clip_norm", "schedule")}
    if "betas" in kwargs:
        kwargs["betas"] = tuple(kwargs["betas"])
    cls = {"sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[opt["name"]]
    return cls(params, **kwargs)


def train(spec: dict) -> tuple[list[float], list[np.ndarray]]:
    """Per-step losses and final parameters of `steps` optimizer steps over consecutive batches."""
    layers = spec["model"]["layers"]
    params = _params(spec)
    X = torch.tensor(spec["data"]["X"])
    Y = torch.tensor(targets(spec, layers[-1]["units"]))
    n = X.shape[0]
    bs = n if spec["batch_size"] == "full" else spec["batch_size"]
    per_epoch = math.ceil(n / bs)
    opt = make_optimizer(spec["optimizer"], params)
    schedule = spec["optimizer"].get("schedule", {"name": "constant"})
    sched = None
    if schedule["name"] == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=schedule["step_size"], gamma=schedule.get("gamma", 0.1))
    elif schedule["name"] == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=schedule.get("t_max") or spec["steps"], eta_min=schedule.get("eta_min", 0.0))
    losses = []
    for step in range(spec["steps"]):
        start = (step % per_epoch) * bs
        opt.zero_grad()
        Z, A = forward(layers, params, X[start:start + bs])
        value = loss(spec["loss"], layers[-1]["activation"], Z, A, Y[start:start + bs])
        value.backward()
        if spec["optimizer"].get("clip_norm"):
            torch.nn.utils.clip_grad_norm_(params, spec["optimizer"]["clip_norm"])
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(float(value.detach()))
    return losses, [p.detach().numpy().copy() for p in params]


def relative_error(mine: np.ndarray, theirs: np.ndarray) -> float:
    """Largest entry-wise relative error, with a floor of 1e-4 of the tensor's largest entry: an entry
    far below the tensor's scale is a sum of terms of that scale that cancelled, so it carries their
    rounding (a few ulps of the scale), which no summation order avoids. Seen by Hypothesis: an entry of
    5.6e-10 in a tensor of scale 1.1 differed from PyTorch's by 4e-16 (1.9e-9 of a 1e-6 floor)."""
    mine, theirs = np.asarray(mine, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    scale = max(float(np.abs(theirs).max(initial=0.0)), 1e-300)
    return float((np.abs(mine - theirs) / np.maximum(np.abs(theirs), 1e-4 * scale)).max(initial=0.0))
