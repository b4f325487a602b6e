"""The training loop: `Trainer(spec)` is an iterator of step records, with no I/O.

Each iteration is one optimizer step: forward, loss, backward, divergence check, optional
clipping, update. Recorded steps carry their metrics (and full gradients or a trace when asked);
the last step of an epoch carries the epoch's metrics. `state_dict()` / `load_state_dict()`
capture everything needed to resume bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import recording
from .optimizers import clip_by_global_norm, learning_rate, make_optimizer
from .problem import Problem, build_problem, is_recorded, traced_steps
from .spec import JobSpec


@dataclass(slots=True)
class StepRecord:
    """What one optimizer step reports. `metrics` is empty when the step was not recorded."""

    step: int
    epoch: int
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    gradients: dict[str, np.ndarray] | None = None
    trace: dict[str, Any] | None = None


@dataclass
class Divergence:
    """Where and why training stopped: the step and the quantity that left the finite numbers."""

    step: int
    quantity: str
    value: float

    def as_dict(self) -> dict[str, Any]:
        if math.isfinite(self.value):  # an update whose squared norm overflows float
            message = f"{self.quantity} overflows ({self.value:.3g}) at step {self.step}"
        else:
            message = f"{self.quantity} is {self.value!r} at step {self.step}"
        return {"step": self.step, "quantity": self.quantity, "value": repr(self.value), "message": message}


class Trainer:
    """Trains the network a spec describes, one step per iteration."""

    def __init__(self, spec: JobSpec | dict | Problem) -> None:
        self.problem = spec if isinstance(spec, Problem) else build_problem(spec)
        p = self.problem
        self.spec = p.spec
        self.network = p.network
        self.optimizer = make_optimizer(self.spec.optimizer, self.network.flat_params)
        self.rng = p.train_rng
        self.step = 0  # next step to run
        self.epoch = 0
        self.batch_index = 0  # next batch within the epoch
        self.order: np.ndarray | None = None  # this epoch's sample order (None: data order)
        self.divergence: Divergence | None = None
        traced = traced_steps(self.spec)
        self._trace_all, self._trace_steps = traced is True, traced if isinstance(traced, set) else set()
        # The spec's settings the hot loop reads at every step, looked up once.
        self._every, self._gradients = self.spec.record.every, self.spec.record.gradients
        self._clip, self._lr, self._schedule = self.spec.optimizer.clip_norm, self.spec.optimizer.lr, self.spec.optimizer.schedule
        self._epoch_X, self._epoch_Y = p.X_train, p.Y_train
        # Running sums over the epoch's batches: train_loss and train_accuracy cost no extra pass.
        self._epoch_sums = [0.0, 0, 0, 0]  # loss x samples, samples, right, counted
        self._classify = self.spec.loss != "mse"

    @property
    def status(self) -> str:
        if self.divergence is not None:
            return "diverged"
        return "succeeded" if self.step >= self.problem.total_steps else "running"

    @property
    def total_steps(self) -> int:
        return self.problem.total_steps

    def __iter__(self) -> Iterator[StepRecord]:
        total = self.problem.total_steps
        while self.step < total and self.divergence is None:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # see train_step
                record = self._train_step()
            if record is not None:
                yield record

    def _start_epoch_if_needed(self) -> None:
        if self.batch_index == 0 and self.order is None and self.spec.shuffle:
            self.order = self.rng.permutation(self.problem.X_train.shape[0])
            self._epoch_X = self.problem.X_train[self.order]
            self._epoch_Y = self.problem.Y_train[self.order]

    def train_step(self) -> StepRecord | None:
        """Run one optimizer step; None when it diverged (see `divergence`)."""
        # Overflow is handled by the divergence checks, not reported as NumPy warnings.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._train_step()

    def _train_step(self) -> StepRecord | None:
        p, net, step = self.problem, self.network, self.step
        if self.batch_index == 0:
            self._start_epoch_if_needed()
        start = self.batch_index * p.batch_size
        X, Y = self._epoch_X[start:start + p.batch_size], self._epoch_Y[start:start + p.batch_size]
        recorded = is_recorded(step, self._every, p.total_steps)
        traced = (self._trace_all and recorded) or step in self._trace_steps

        net.forward(X, self.rng if net.dropout > 0 else None)
        loss = p.loss.value(net.A[-1], net.Z[-1], Y)
        if not math.isfinite(loss):
            self.divergence = Divergence(step, "loss", loss)
            return None
        sums = self._epoch_sums
        sums[0] += loss * X.shape[0]
        sums[1] += X.shape[0]
        if self._classify:
            right, counted = recording.correct(self.spec.loss, net.A[-1], Y)
            sums[2] += right
            sums[3] += counted
        net.backward(X, Y, p.loss, keep_deltas=traced)
        flat_p, flat_g = net.flat_params, net.flat_grads
        clip = self._clip
        if clip is not None:
            grad_sq = float(np.dot(flat_g, flat_g))
            if not math.isfinite(grad_sq):
                return self._diverge(step, "gradient")
            clip_by_global_norm(flat_g, clip, math.sqrt(grad_sq))

        lr = learning_rate(self._lr, self._schedule, step, p.total_steps)
        want_grads = recorded and self._gradients != "none"
        if want_grads:
            weight_sq, moments = recording.segment_sumsq(net, flat_p), recording.grad_moments(net)
        before = [a.copy() for a in net.params()] if traced else None
        update = self.optimizer.compute(flat_p, flat_g, lr)
        # One pass over the update checks the whole step: a non-finite gradient makes the update non-finite.
        # (Plain SGD's update is lr × g: its size is the gradient's, already measured.)
        if want_grads:
            update_sq = moments[0] * (lr * lr) if self.optimizer.scales_gradient else recording.segment_sumsq(net, update)
        if not math.isfinite(float(update_sq.sum()) if want_grads else float(np.dot(update, update))):
            return self._diverge(step, "update")
        self.optimizer.apply(flat_p)

        record = StepRecord(step=step, epoch=self.epoch, loss=loss)
        if recorded:
            m = record.metrics
            m["loss"] = loss
            if want_grads:
                m.update(recording.gradient_metrics(net, weight_sq, update_sq, moments))
            m.update(recording.dead_fractions(net))
            if self._gradients == "full":
                record.gradients = {name: g.copy() for name, g in zip(net.param_names, net.grads(), strict=True)}
        if traced:
            record.trace = self._trace(X, Y, loss, lr, before)

        self.step += 1
        self.batch_index += 1
        if self.batch_index == p.steps_per_epoch or self.step == p.total_steps:
            record.metrics.update(self.epoch_metrics())
            if self.batch_index == p.steps_per_epoch:
                self.epoch += 1
                self.batch_index = 0
                self.order = None
                self._epoch_sums = [0.0, 0, 0, 0]
        return record

    def _diverge(self, step: int, kind: str) -> None:
        """Stop before applying a step whose gradients or update are not finite, naming the first culprit."""
        names = self.network.param_names
        for name, g in zip(names, self.network.grads(), strict=True):
            bad_entries = g[~np.isfinite(g)]
            if bad_entries.size:
                self.divergence = Divergence(step, f"gradient of {name}", float(bad_entries[0]))
                return None
        arrays = self.network.grads() if kind == "gradient" else self.network.split(self.optimizer.last_update)
        sizes = recording.norms(arrays)
        bad = next((i for i, size in enumerate(sizes) if not math.isfinite(size)), int(np.argmax(sizes)))
        self.divergence = Divergence(step, f"{kind} of {names[bad]}", sizes[bad])
        return None

    def epoch_metrics(self) -> dict[str, float]:
        """train_loss / train_accuracy: sample-weighted means over the epoch's batches, as trained
        (so with dropout on); val_loss / val_accuracy: the validation part with the epoch's final weights."""
        p = self.problem
        loss_sum, samples, right, counted = self._epoch_sums
        out = {"train_loss": loss_sum / samples}
        if self._classify:
            out["train_accuracy"] = right / counted
        if p.X_val is not None:
            logits, outputs = self.network.evaluate(p.X_val)
            value = p.loss.value(outputs, logits, p.Y_val)
            if math.isfinite(value):
                out["val_loss"] = value
            if self._classify:
                out["val_accuracy"] = recording.accuracy(self.spec.loss, outputs, p.Y_val)
        return out

    def final_model_figures(self) -> dict[str, float]:
        """The final model on the whole training set and on the validation part (one forward pass each,
        without dropout): `model_train_loss`, `model_train_accuracy`, `model_val_loss`, `model_val_accuracy`.
        Unlike `final_loss` (the last mini-batch, before its update) they say how good the model is."""
        p = self.problem
        out: dict[str, float] = {}
        for part, X, Y in (("train", p.X_train, p.Y_train), ("val", p.X_val, p.Y_val)):
            if X is None:
                continue
            logits, outputs = self.network.evaluate(X)
            value = p.loss.value(outputs, logits, Y)
            if math.isfinite(value):
                out[f"model_{part}_loss"] = value
            if self._classify:
                out[f"model_{part}_accuracy"] = recording.accuracy(self.spec.loss, outputs, Y)
        return out

    def _trace(self, X: np.ndarray, Y: np.ndarray, loss: float, lr: float, before: list[np.ndarray]) -> dict[str, Any]:
        net = self.network
        layers = []
        for i, (name, layer) in enumerate(zip(net.names, net.layers, strict=True)):
            layers.append({
                "name": name,
                "activation": layer.activation.name, "alpha": getattr(layer.activation, "alpha", None),
                "W": before[2 * i].tolist(), "b": before[2 * i + 1].tolist(),
                "Z": net.Z[i].tolist(), "A": net.A[i].tolist(), "delta": net.deltas[i].tolist(),
                "dW": net.dW[i].tolist(), "db": net.db[i].tolist(),
                "W_new": layer.W.tolist(), "b_new": layer.b.tolist(),
            })
        return {"step": self.step, "epoch": self.epoch, "lr": lr, "loss": loss, "fused": self.problem.loss.fused,
                "loss_name": self.spec.loss, "optimizer": self.spec.optimizer.name,
                "X": X.tolist(), "y": Y.tolist(), "layers": layers}

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: parameters, optimizer state, RNG state, position."""
        return {
            "step": self.step, "epoch": self.epoch, "batch_index": self.batch_index,
            "order": None if self.order is None else self.order.copy(),
            "rng": self.rng.bit_generator.state,
            "params": self.network.flat_params.copy(),
            "optimizer": self.optimizer.state_dict(),
            "epoch_sums": list(self._epoch_sums),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.epoch, self.batch_index = int(state["step"]), int(state["epoch"]), int(state["batch_index"])
        self.rng.bit_generator.state = state["rng"]
        np.copyto(self.network.flat_params, state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self._epoch_sums = [float(state["epoch_sums"][0])] + [int(v) for v in state["epoch_sums"][1:]]
        order = state["order"]
        self.order = None if order is None else np.asarray(order, dtype=np.int64)
        if self.order is not None:
            self._epoch_X, self._epoch_Y = self.problem.X_train[self.order], self.problem.Y_train[self.order]
        else:
            self._epoch_X, self._epoch_Y = self.problem.X_train, self.problem.Y_train

    def model(self) -> dict[str, Any]:
        """Weights and biases in the spec's layout (and the input standardisation, when used)."""
        model: dict[str, Any] = {"weights": [layer.W.tolist() for layer in self.network.layers],
                                 "biases": [layer.b.tolist() for layer in self.network.layers]}
        if self.problem.input_mean is not None:
            model["input_mean"] = self.problem.input_mean.tolist()
            model["input_std"] = self.problem.input_std.tolist()
        return model


def run(spec: JobSpec | dict) -> dict[str, Any]:
    """Train to the end and return the JSON-able result `python -m engine run` prints."""
    trainer = Trainer(spec)
    metrics: dict[str, list[list[float]]] = {}
    gradients: list[dict[str, Any]] = []
    traces: list[dict[str, Any]] = []
    for record in trainer:
        for key, value in record.metrics.items():
            metrics.setdefault(key, []).append([record.step, value])
        if record.gradients is not None:
            gradients.append({"step": record.step, "gradients": {k: v.tolist() for k, v in record.gradients.items()}})
        if record.trace is not None:
            traces.append(record.trace)
    result: dict[str, Any] = {
        "status": trainer.status,
        "steps_completed": trainer.step,
        "total_steps": trainer.total_steps,
        "n_params": trainer.problem.n_params,
        "model": trainer.model(),
        "metrics": metrics,
        "summary": summarize({key: [v for _, v in points] for key, points in metrics.items()}),
    }
    if trainer.divergence is not None:
        result["error"] = trainer.divergence.as_dict()
    if gradients:
        result["gradients"] = gradients
    if traces:
        result["trace"] = traces
    if trainer.divergence is None:
        result["summary"].update(trainer.final_model_figures())
    return result


SUMMARY_KEYS = ("loss", "train_loss", "train_accuracy", "val_loss", "val_accuracy")

# A job's `summary` when it ends, one row per field (`python -m engine metrics` prints it with the metric keys).
SUMMARY_REFERENCE: tuple[tuple[str, str, str], ...] = (
    ("model_train_loss", "unless it diverged", "the final model on the whole training set (one forward pass, no dropout)"),
    ("model_train_accuracy", "as above, `bce` and `cross_entropy`", "the same for accuracy"),
    ("model_val_loss", "unless it diverged, with `data.validation_split`", "the final model on the validation part"),
    ("model_val_accuracy", "as above, `bce` and `cross_entropy`", "the same for accuracy"),
    ("final_loss", "always", "the last recorded mini-batch loss (one batch, before its update: not the model's loss)"),
    ("best_loss", "always", "the lowest recorded mini-batch loss"),
    ("final_train_loss", "after an epoch ended", "the last epoch's `train_loss`"),
    ("final_train_accuracy", "as above, `bce` and `cross_entropy`", "the last epoch's `train_accuracy`"),
    ("final_val_loss", "as above, with `data.validation_split`", "the last epoch's `val_loss` (a sweep's default objective)"),
    ("final_val_accuracy", "as above, `bce` and `cross_entropy`", "the last epoch's `val_accuracy`"),
    ("steps_completed", "the service", "optimizer steps done"),
    ("total_steps", "the service", "optimizer steps planned"),
    ("duration_seconds", "the service", "the training loop with its recording (not the time queued)"),
)


def summarize(values: dict[str, Sequence[float]]) -> dict[str, Any]:
    """Final and best loss, and the last epoch's validation figures, from each key's values in step order."""
    summary: dict[str, Any] = {}
    if len(values.get("loss", ())):
        summary["final_loss"] = float(values["loss"][-1])
        summary["best_loss"] = float(min(values["loss"]))
    for key in SUMMARY_KEYS[1:]:
        if len(values.get(key, ())):
            summary[f"final_{key}"] = float(values[key][-1])
    return summary
