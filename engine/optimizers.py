"""Optimizers with PyTorch's update rules and defaults, plus learning-rate schedules.

The optimizer works on the network's flat parameter and gradient vectors (every rule here is
elementwise, so one vector serves all tensors). `compute(p, g, lr)` advances the state and writes
the update into `last_update`; `apply(p)` subtracts it. Keeping the update lets the trainer check it
for divergence before applying it and report the update ratio at no extra cost. State is exportable
(`state_dict`) for checkpoints.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .spec import Optimizer as OptimizerSpec
from .spec import Schedule


class Optimizer:
    # Whether the update is just lr × the gradient (so its size is the gradient's, times lr).
    scales_gradient = False

    def __init__(self, spec: OptimizerSpec, param: np.ndarray) -> None:
        self.spec = spec
        self.t = 0  # optimizer steps taken
        self.last_update = np.zeros_like(param)
        self.state: dict[str, np.ndarray] = {name: np.zeros_like(param) for name in self._state_names()}

    def _state_names(self) -> list[str]:
        return []

    def compute(self, param: np.ndarray, grad: np.ndarray, lr: float) -> np.ndarray:
        """Advance the optimizer's state and compute this step's update into `last_update`."""
        self.t += 1
        self._update(param, grad, lr, self.last_update)
        return self.last_update

    def apply(self, param: np.ndarray) -> None:
        """p -= update, for the update of the last `compute`."""
        param -= self.last_update

    def _update(self, p: np.ndarray, g: np.ndarray, lr: float, out: np.ndarray) -> None:
        raise NotImplementedError

    def _with_weight_decay(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        # L2 penalty folded into the gradient (torch: grad = grad + weight_decay * p)
        wd = self.spec.weight_decay
        return g + wd * p if wd else g

    def state_dict(self) -> dict[str, Any]:
        return {"t": self.t, "state": {k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.t = int(state["t"])
        for key, value in state["state"].items():
            np.copyto(self.state[key], value)


class SGD(Optimizer):
    def __init__(self, spec: OptimizerSpec, param: np.ndarray) -> None:
        super().__init__(spec, param)
        self.scales_gradient = not spec.momentum and not spec.weight_decay

    def _state_names(self) -> list[str]:
        return ["momentum_buffer"] if self.spec.momentum else []

    def _update(self, p: np.ndarray, g: np.ndarray, lr: float, out: np.ndarray) -> None:
        s = self.spec
        g = self._with_weight_decay(p, g)
        if s.momentum:
            buf = self.state["momentum_buffer"]
            if self.t == 1:
                np.copyto(buf, g)  # torch starts the buffer at the first gradient
            else:
                buf *= s.momentum
                buf += (1 - s.dampening) * g if s.dampening else g
            g = g + s.momentum * buf if s.nesterov else buf
        np.multiply(g, lr, out=out)


class RMSprop(Optimizer):
    def _state_names(self) -> list[str]:
        return ["square_avg"] + (["momentum_buffer"] if self.spec.momentum else []) + (["grad_avg"] if self.spec.centered else [])

    def _update(self, p: np.ndarray, g: np.ndarray, lr: float, out: np.ndarray) -> None:
        s = self.spec
        g = self._with_weight_decay(p, g)
        sq = self.state["square_avg"]
        sq *= s.alpha
        sq += (1 - s.alpha) * g * g  # v = alpha v + (1 - alpha) g^2
        if s.centered:
            ga = self.state["grad_avg"]
            ga *= s.alpha
            ga += (1 - s.alpha) * g
            avg = np.sqrt(sq - ga * ga)
        else:
            avg = np.sqrt(sq)
        avg += s.eps
        if s.momentum:
            buf = self.state["momentum_buffer"]
            buf *= s.momentum
            buf += g / avg
            np.multiply(buf, lr, out=out)
        else:
            np.divide(g, avg, out=out)
            out *= lr


class Adam(Optimizer):
    decoupled = False

    def _state_names(self) -> list[str]:
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if self.spec.amsgrad else [])

    def _update(self, p: np.ndarray, g: np.ndarray, lr: float, out: np.ndarray) -> None:
        s = self.spec
        beta1, beta2 = s.betas
        if not self.decoupled:
            g = self._with_weight_decay(p, g)
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        m *= beta1
        m += (1 - beta1) * g  # m = b1 m + (1 - b1) g
        v *= beta2
        v += (1 - beta2) * g * g  # v = b2 v + (1 - b2) g^2
        if s.amsgrad:
            vmax = self.state["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        bias1 = 1 - beta1**self.t
        bias2_sqrt = math.sqrt(1 - beta2**self.t)
        # update = lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        denom = np.sqrt(v)
        denom /= bias2_sqrt
        denom += s.eps
        np.divide(m, denom, out=out)
        out *= lr / bias1
        if self.decoupled and s.weight_decay:
            out += (lr * s.weight_decay) * p  # AdamW: p *= 1 - lr wd, folded into the update


class AdamW(Adam):
    decoupled = True


def make_optimizer(spec: OptimizerSpec, param: np.ndarray) -> Optimizer:
    """The optimizer named by the spec, with state shaped like the flat parameter vector."""
    return {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}[spec.name](spec, param)


def learning_rate(base_lr: float, schedule: Schedule, t: int, total_steps: int) -> float:
    """Learning rate for optimizer step `t` (0-based), as torch's StepLR / CosineAnnealingLR give it."""
    if schedule.name == "step":
        return base_lr * schedule.gamma ** (t // schedule.step_size)
    if schedule.name == "cosine":
        t_max = schedule.t_max or total_steps
        return schedule.eta_min + (base_lr - schedule.eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2
    return base_lr


def clip_by_global_norm(grad: np.ndarray, max_norm: float, total_norm: float) -> None:
    """Scale the flat gradient in place so its L2 norm is at most `max_norm` (torch's clip_grad_norm_)."""
    coef = max_norm / (total_norm + 1e-6)
    if coef < 1.0:
        grad *= coef
