"""Optimizers with PyTorch's update rules and defaults, plus learning-rate schedules: the only
writer of parameters.

An optimizer updates the trainer's K members at once: parameters and gradients are `(K, P)` (a
member's row is its flat vector; every rule here is elementwise, so one vector serves all
tensors), and each member's own numbers (learning rate, momentum, betas, …) are `(K, 1)` columns.
What may differ between members is a number; what changes the code path (the rule, nesterov,
amsgrad, centered) is shared (engine/stacking.py). `compute(p, g, lr)` advances the state and
writes the update into `last_update`; `apply(p)` subtracts it. Keeping the update lets the trainer
check it for divergence before applying it and report the update ratio at no extra cost.

A factor PyTorch computes in Python floats (1 − β, the bias corrections) is computed in float64 and
cast to the parameters' dtype, as NumPy casts a Python float meeting a float32 array. A member
whose number switches a term off (momentum 0, weight decay 0 beside members that use them) takes
the branch it would take alone, entry for entry (`np.where`), so no member's result depends on its
neighbours. State is exportable per member (`state_dict(k)`) for checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .spec import Optimizer as OptimizerSpec
from .spec import Schedule


def state_names(spec: OptimizerSpec) -> list[str]:
    """The state slots a member with this spec keeps (what its checkpoint holds)."""
    if spec.name == "sgd":
        return ["momentum_buffer"] if spec.momentum else []
    if spec.name == "rmsprop":
        return ["square_avg"] + (["momentum_buffer"] if spec.momentum else []) + (["grad_avg"] if spec.centered else [])
    return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if spec.amsgrad else [])


class Optimizer:
    """One update rule over K members' flat parameters."""

    def __init__(self, specs: Sequence[OptimizerSpec], params: np.ndarray, t: int = 0,
                 state: dict[str, np.ndarray] | None = None) -> None:
        self.specs = list(specs)
        self.t = t  # optimizer steps taken (the same for every member)
        self.dtype = params.dtype
        self.last_update = np.zeros_like(params)
        names = dict.fromkeys(name for spec in self.specs for name in state_names(spec))
        self.state: dict[str, np.ndarray] = {name: np.zeros_like(params) for name in names}
        if state is not None:
            for name, value in state.items():
                np.copyto(self.state[name], value)
        self.weight_decay = self._column("weight_decay")
        self.decays = self.weight_decay != 0
        self.all_decay = bool(self.decays.all())
        self.any_decay = bool(self.decays.any())
        # Whether a member's update is just lr × the gradient (its size is the gradient's, times lr).
        self.scales_gradient = np.array([spec.name == "sgd" and not spec.momentum and not spec.weight_decay for spec in self.specs])
        self.any_scales, self.all_scale = bool(self.scales_gradient.any()), bool(self.scales_gradient.all())
        self._lr_seen: np.ndarray | None = None
        self._lr_column = np.zeros((len(self.specs), 1))
        self._setup()

    def _setup(self) -> None:
        pass

    def _column(self, attr: str) -> np.ndarray:
        return np.array([[getattr(spec, attr) or 0.0] for spec in self.specs], dtype=np.float64)

    def _c(self, value: np.ndarray) -> np.ndarray:
        """A float64 column in the parameters' dtype (the same for float64)."""
        return value if self.dtype == np.float64 else value.astype(self.dtype)

    # -- members ------------------------------------------------------------------------------
    @staticmethod
    def stack(optimizers: Sequence[Optimizer], params: np.ndarray) -> Optimizer:
        """One optimizer of all the members of `optimizers` (their state copied), for `params` stacked alike."""
        specs = [spec for o in optimizers for spec in o.specs]
        names = dict.fromkeys(name for o in optimizers for name in o.state)
        state = {name: np.concatenate([o.state[name] if name in o.state else np.zeros_like(o.last_update) for o in optimizers])
                 for name in names}
        return make_optimizer(specs, params, optimizers[0].t, state)

    def take(self, members: Sequence[int], params: np.ndarray) -> Optimizer:
        """An optimizer of some of the members (their state copied)."""
        index = list(members)
        specs = [self.specs[k] for k in index]
        keep = dict.fromkeys(name for spec in specs for name in state_names(spec))
        return make_optimizer(specs, params, self.t, {name: self.state[name][index] for name in keep})

    def state_dict(self, k: int = 0) -> dict[str, Any]:
        """Member k's state, as its checkpoint keeps it (the slots its own spec uses)."""
        return {"t": self.t, "state": {name: self.state[name][k].copy() for name in state_names(self.specs[k])}}

    def load_state_dict(self, state: dict[str, Any], k: int = 0) -> None:
        """Member k's state from its checkpoint (every member is at the same step: `t` is shared)."""
        self.t = int(state["t"])
        for key, value in state["state"].items():
            np.copyto(self.state[key][k], value)

    # -- one step -----------------------------------------------------------------------------
    def compute(self, param: np.ndarray, grad: np.ndarray, lr: np.ndarray) -> np.ndarray:
        """Advance the state and compute this step's update into `last_update`; `lr` is `(K,)`."""
        self.t += 1
        if lr is not self._lr_seen:  # a constant learning rate is the same array every step: its column once
            self._lr_seen, self._lr_column = lr, np.asarray(lr, dtype=np.float64)[:, None]
        self._update(param, grad, self._lr_column, self.last_update)
        return self.last_update

    def apply(self, param: np.ndarray) -> None:
        """p -= update, for the update of the last `compute`."""
        param -= self.last_update

    def _update(self, p: np.ndarray, g: np.ndarray, lr: np.ndarray, out: np.ndarray) -> None:
        """The rule; `lr` is a float64 `(K, 1)` column."""
        raise NotImplementedError

    def _with_weight_decay(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        # L2 penalty folded into the gradient (torch: grad = grad + weight_decay * p)
        if not self.any_decay:
            return g
        decayed = g + self._c(self.weight_decay) * p
        return decayed if self.all_decay else np.where(self.decays, decayed, g)


class SGD(Optimizer):
    def _setup(self) -> None:
        self.momentum, self.dampening = self._column("momentum"), self._column("dampening")
        self.moves = self.momentum != 0
        self.any_momentum = bool(self.moves.any())
        self.nesterov = bool(self.specs[0].nesterov)

    def _update(self, p: np.ndarray, g: np.ndarray, lr: np.ndarray, out: np.ndarray) -> None:
        g = self._with_weight_decay(p, g)
        if self.any_momentum:
            buf = self.state["momentum_buffer"]
            if self.t == 1:
                np.copyto(buf, g)  # torch starts the buffer at the first gradient
            else:
                buf *= self._c(self.momentum)  # b = momentum b + (1 - dampening) g
                buf += self._c(1 - self.dampening) * g
            g = g + self._c(self.momentum) * buf if self.nesterov else np.where(self.moves, buf, g)
        np.multiply(g, self._c(lr), out=out)


class RMSprop(Optimizer):
    def _setup(self) -> None:
        self.alpha, self.eps, self.momentum = self._column("alpha"), self._column("eps"), self._column("momentum")
        self.moves = self.momentum != 0
        self.any_momentum = bool(self.moves.any())
        self.centered = bool(self.specs[0].centered)

    def _update(self, p: np.ndarray, g: np.ndarray, lr: np.ndarray, out: np.ndarray) -> None:
        g = self._with_weight_decay(p, g)
        sq = self.state["square_avg"]
        sq *= self._c(self.alpha)
        sq += self._c(1 - self.alpha) * g * g  # v = alpha v + (1 - alpha) g^2
        if self.centered:
            ga = self.state["grad_avg"]  # the running mean of g: v - mean² is g's variance
            ga *= self._c(self.alpha)
            ga += self._c(1 - self.alpha) * g
            avg = np.sqrt(sq - ga * ga)
        else:
            avg = np.sqrt(sq)
        avg += self._c(self.eps)
        if self.any_momentum:
            buf = self.state["momentum_buffer"]
            step = g / avg
            buf *= self._c(self.momentum)
            buf += step
            np.multiply(np.where(self.moves, buf, step), self._c(lr), out=out)
        else:
            np.divide(g, avg, out=out)
            out *= self._c(lr)


class Adam(Optimizer):
    decoupled = False

    def _setup(self) -> None:
        self.beta1 = np.array([[spec.betas[0]] for spec in self.specs], dtype=np.float64)
        self.beta2 = np.array([[spec.betas[1]] for spec in self.specs], dtype=np.float64)
        self.eps, self.amsgrad = self._column("eps"), bool(self.specs[0].amsgrad)

    def _update(self, p: np.ndarray, g: np.ndarray, lr: np.ndarray, out: np.ndarray) -> None:
        if not self.decoupled:
            g = self._with_weight_decay(p, g)
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        m *= self._c(self.beta1)
        m += self._c(1 - self.beta1) * g  # m = b1 m + (1 - b1) g
        v *= self._c(self.beta2)
        v += self._c(1 - self.beta2) * g * g  # v = b2 v + (1 - b2) g^2
        if self.amsgrad:
            vmax = self.state["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        # update = lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps); the corrections in Python floats,
        # as torch computes them (NumPy's vectorised power may round the last bit otherwise)
        bias1 = np.array([[1 - b ** self.t] for b in self.beta1[:, 0].tolist()])
        bias2_sqrt = np.array([[math.sqrt(1 - b ** self.t)] for b in self.beta2[:, 0].tolist()])
        denom = np.sqrt(v)
        denom /= self._c(bias2_sqrt)
        denom += self._c(self.eps)
        np.divide(m, denom, out=out)
        out *= self._c(lr / bias1)
        if self.decoupled and self.any_decay:
            # AdamW: p *= 1 - lr wd, folded into the update (members without weight decay untouched)
            np.add(out, self._c(lr * self.weight_decay) * p, out=out, where=self.decays)


class AdamW(Adam):
    decoupled = True


RULES: dict[str, type[Optimizer]] = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def make_optimizer(specs: OptimizerSpec | Sequence[OptimizerSpec], params: np.ndarray, t: int = 0,
                   state: dict[str, np.ndarray] | None = None) -> Optimizer:
    """The optimizer the specs name (one per member; one rule for all), with state shaped like `params`."""
    specs = [specs] if isinstance(specs, OptimizerSpec) else list(specs)
    if params.ndim == 1:
        raise ValueError("params must carry the member axis: (K, P)")
    return RULES[specs[0].name](specs, params, t, state)


def learning_rate(base_lr: float, schedule: Schedule, t: int, total_steps: int) -> float:
    """Learning rate for optimizer step `t` (0-based), as torch's StepLR / CosineAnnealingLR give it."""
    if schedule.name == "step":
        return base_lr * schedule.gamma ** (t // schedule.step_size)
    if schedule.name == "cosine":
        t_max = schedule.t_max or total_steps
        return schedule.eta_min + (base_lr - schedule.eta_min) * (1 + math.cos(math.pi * t / t_max)) / 2
    return base_lr
