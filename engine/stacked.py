"""K networks of one architecture trained at once, each still its own run.

The points of a sweep that share a shape (units, activations, batch size, optimizer, ...) differ only
in numbers: learning rate, momentum, weight decay, schedule, seed, data order. Their weights are
stacked on a leading model axis, `(K, P)` for the flat parameters, and every step is one batched
computation: `np.matmul` over the K members, elementwise updates with per-member hyperparameters as
`(K, 1)` columns, per-member reductions for the loss and the recorded statistics. What a member
records equals what its job records trained alone (`Trainer`), to rounding.

Each member keeps its own solo `Trainer` (its "shell": problem, random generator, optimizer object).
The stack reads the shells when it is built and writes a member's state back into its shell when
asked (`sync`), so a checkpoint, the final model and the final figures come from the solo code. A
member that ends (diverged, finished, or stopped by its caller) leaves the stack; the rest train on.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from . import recording
from .optimizers import learning_rate
from .problem import Plan
from .spec import JobSpec
from .training import Divergence, StepRecord, Trainer

# Optimizer fields that change the code path (so the state's shape), not just a number: equal in a stack.
_PATH_FIELDS = ("name", "nesterov", "amsgrad", "centered")


class NotStackable(ValueError):
    """The trainers cannot share a stack (different shapes, or at different positions)."""


def stack_signature(trainer: Trainer) -> tuple:
    """What members of one stack must share: everything that sets an array's shape or a code path."""
    spec, p = trainer.spec, trainer.problem
    layers = tuple((layer.units, layer.activation, layer.alpha) for layer in spec.model.layers)
    optimizer = tuple(getattr(spec.optimizer, f) for f in _PATH_FIELDS) + (spec.optimizer.schedule.name,)
    return (layers, p.X_train.shape, None if p.X_val is None else p.X_val.shape, p.Y_train.shape[1], spec.loss, spec.dtype,
            p.batch_size, p.steps_per_epoch, optimizer, spec.model.dropout, spec.shuffle, type(p.loss).__name__)


def stack_key(spec: JobSpec, sizes: Plan) -> str:
    """`stack_signature` from the spec and its sizes alone (no data loaded), as a short string a
    store can index: jobs with equal keys can share a stack."""
    layers = [(layer.units, layer.activation, layer.alpha) for layer in spec.model.layers]
    optimizer = [getattr(spec.optimizer, f) for f in _PATH_FIELDS] + [spec.optimizer.schedule.name]
    shape = [layers, sizes.n_inputs, sizes.n_samples, spec.data.validation_split, spec.data.builtin is None, spec.loss, spec.dtype,
             sizes.batch_size, sizes.steps_per_epoch, optimizer, spec.model.dropout, spec.shuffle]
    return hashlib.sha256(json.dumps(shape, default=str).encode()).hexdigest()[:32]


def state_bytes(spec: JobSpec, sizes: Plan) -> int:
    """About what one member holds while it trains, from the spec alone (nothing allocated): its
    weights with their gradient, two step temporaries and up to three optimizer slots; a batch's
    z, a, δ and dropout mask for every unit; its copy of the data. What bounds a stack's members
    (STACK_MAX_BYTES) and a sweep's in all, before anything is built."""
    itemsize = 4 if spec.dtype == "float32" else 8
    widths = [sizes.n_inputs] + [layer.units for layer in spec.model.layers]
    weights = sizes.n_params * 7
    activations = sizes.batch_size * sum(widths) * 4
    data = sizes.n_samples * (sizes.n_inputs + widths[-1])
    return itemsize * (weights + activations + data)


def _position(trainer: Trainer) -> tuple:
    return trainer.step, trainer.epoch, trainer.batch_index, trainer.optimizer.t


@dataclass
class StackStep:
    """One step of every member: the step index, the members that took it with their losses (one
    array, in the members' order), the records worth keeping (recorded steps, epoch ends, traces;
    a member's other steps report only their loss), and the members that ended with it."""

    step: int
    members: list[Trainer]
    losses: np.ndarray
    records: dict[Trainer, StepRecord] = field(default_factory=dict)
    ended: list[Trainer] = field(default_factory=list)


class StackedTrainer:
    """Trains the members (solo `Trainer`s at the same position, with one `stack_signature`) together."""

    def __init__(self, trainers: Sequence[Trainer]) -> None:
        if not trainers:
            raise NotStackable("a stack needs at least one member")
        signatures = {stack_signature(t) for t in trainers}
        if len(signatures) > 1:
            raise NotStackable("the members differ in shape or code path")
        if len({_position(t) for t in trainers}) > 1:
            raise NotStackable("the members are at different steps")
        if any(t.divergence is not None or t.step >= t.total_steps for t in trainers):
            raise NotStackable("a member has already ended")
        self.members: list[Trainer] = list(trainers)
        first = trainers[0]
        self.spec, self.problem = first.spec, first.problem  # what the members share
        self.loss_name = first.spec.loss
        self._classify = self.loss_name != "mse"
        self._build()

    # -- the stacked state ------------------------------------------------------------------------
    def _build(self) -> None:
        """Stack the members' state as their shells hold it."""
        ts, K = self.members, len(self.members)
        first = ts[0]
        net = first.network
        self.step, self.epoch, self.batch_index = first.step, first.epoch, first.batch_index
        self.params = np.stack([t.network.flat_params for t in ts])
        self.grads = np.zeros_like(self.params)
        self.W, self.b, self.dW, self.db = [], [], [], []
        for i, layer in enumerate(net.layers):
            w, b = net.slices[2 * i], net.slices[2 * i + 1]
            shape = (K, *layer.W.shape)
            self.W.append(self.params[:, w].reshape(shape))
            self.b.append(self.params[:, b])
            self.dW.append(self.grads[:, w].reshape(shape))
            self.db.append(self.grads[:, b])
        # The solo trainer's very forms: Wᵀ as a transposed view (a contiguous copy is faster but takes another
        # BLAS kernel), the batch sum as a reduction. Last bits that differ grow over the steps past 1e-12.
        self.WT = [W.transpose(0, 2, 1) for W in self.W]
        self._buffers: dict[int, _Buffers] = {}
        self.activations = [layer.activation for layer in net.layers]
        self.param_names, self.names = net.param_names, net.names
        self.hinged = net.hinged
        # Per-member settings, as columns.
        opt = [t.spec.optimizer for t in ts]
        self.base_lr = np.array([o.lr for o in opt], dtype=np.float64)
        self.clip = np.array([math.inf if o.clip_norm is None else o.clip_norm for o in opt])
        self.total = np.array([t.total_steps for t in ts])
        self.every = np.array([t.spec.record.every for t in ts])
        self.gradients = [t.spec.record.gradients for t in ts]
        self.wants_gradients = np.array([g != "none" for g in self.gradients])
        self.traced = [(t._trace_all, t._trace_steps) for t in ts]
        self.any_traced = any(all_ or steps for all_, steps in self.traced)
        self.any_clip = bool(np.isfinite(self.clip).any())
        self.optimizer = _StackedOptimizer([t.optimizer for t in ts], self.params)
        self.rngs = [t.rng for t in ts]
        # Data: shared by all members when equal (one array, broadcast), else stacked.
        p0 = first.problem
        shared = all(_same_data(p0, t.problem) for t in ts[1:])
        stack = (lambda name: getattr(p0, name)) if shared else (lambda name: np.stack([getattr(t.problem, name) for t in ts]))
        self.X_train, self.Y_train = stack("X_train"), stack("Y_train")
        self.X_val = None if p0.X_val is None else stack("X_val")
        self.Y_val = None if p0.Y_val is None else stack("Y_val")
        self.shared_data = shared
        self._X_rows, self._Y_rows = (self.X_train, self.Y_train) if shared else (
            self.X_train.reshape(-1, self.X_train.shape[-1]), self.Y_train.reshape(-1, self.Y_train.shape[-1]))
        self._row_offsets = np.arange(K)[:, None] * p0.X_train.shape[0]
        orders = [t.order for t in ts]
        self.orders = None if orders[0] is None else np.stack(orders)
        self.loss_sum = np.array([t._epoch_sums[0] for t in ts], dtype=np.float64)
        self.samples = first._epoch_sums[1]
        self.right = np.array([t._epoch_sums[2] for t in ts], dtype=np.int64)
        self.counted = first._epoch_sums[3]
        self.Z: list[np.ndarray] = []
        self.A: list[np.ndarray] = []

    def sync(self, trainer: Trainer) -> Trainer:
        """Write the member's state into its shell (parameters, optimizer state, position, epoch
        sums, data order), so its `state_dict()`, `model()` and figures are current; returns it."""
        k = self.members.index(trainer)
        np.copyto(trainer.network.flat_params, self.params[k])
        self.optimizer.write_back(k, trainer.optimizer)
        trainer.step, trainer.epoch, trainer.batch_index = self.step, self.epoch, self.batch_index
        trainer.order = None if self.orders is None else self.orders[k].copy()
        p = trainer.problem
        trainer._epoch_X, trainer._epoch_Y = (p.X_train, p.Y_train) if trainer.order is None else (p.X_train[trainer.order],
                                                                                                 p.Y_train[trainer.order])
        trainer._epoch_sums = [float(self.loss_sum[k]), self.samples, int(self.right[k]), self.counted]
        return trainer

    def remove(self, leaving: Sequence[Trainer], synced: Sequence[Trainer] = ()) -> None:
        """Take members out of the stack (their shells synced first, but for those in `synced`); the rest train on."""
        if not leaving:
            return
        for t in self.members:
            if t not in synced:
                self.sync(t)
        self.members = [t for t in self.members if t not in leaving]
        if self.members:
            self._build()

    # -- one step ---------------------------------------------------------------------------------
    def train_step(self) -> StackStep:
        """One optimizer step of every member."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._train_step()

    def _train_step(self) -> StackStep:
        p, step = self.problem, self.step
        B = p.batch_size
        if self.batch_index == 0 and self.orders is None and self.spec.shuffle:
            self.orders = np.stack([rng.permutation(p.X_train.shape[0]) for rng in self.rngs])
        start = self.batch_index * B
        X, Y = self._batch(start, start + B)
        recorded = (step % self.every == 0) | (step == self.total - 1)
        traced = (np.array([(all_ and recorded[k]) or step in steps for k, (all_, steps) in enumerate(self.traced)])
                  if self.any_traced else np.zeros(len(self.members), dtype=bool))
        keep_deltas = bool(traced.any())

        out_A, out_Z = self._forward(X)
        losses = _losses(self.loss_name, p.loss.fused, out_A, out_Z, Y)
        members = self.members
        result = StackStep(step, list(members), losses)
        diverged: dict[int, tuple[str, float | None]] = {}
        finite = np.isfinite(losses)
        if not finite.all():
            for k in np.flatnonzero(~finite).tolist():
                diverged[k] = ("loss", float(losses[k]))
        n = X.shape[-2]
        self.loss_sum += losses * n
        self.samples += n
        if self._classify:
            right, counted = _correct(self.loss_name, out_A, Y)
            self.right += right
            self.counted += counted
        deltas = self._backward(X, Y, keep_deltas=keep_deltas)
        grads = self.grads
        if self.any_clip:
            # np.dot per member, as the solo trainer measures it: float32 sums in another order would drift apart
            grad_sq = np.array([float(np.dot(g, g)) for g in grads])
            for k in np.flatnonzero(~np.isfinite(grad_sq) & np.isfinite(self.clip)).tolist():
                diverged.setdefault(k, ("gradient", None))
            coef = self.clip / (np.sqrt(grad_sq) + 1e-6)
            scale = np.isfinite(self.clip) & (coef < 1.0)
            if scale.any():
                grads[scale] *= coef[scale, None].astype(grads.dtype)

        lr = self._learning_rates(step)
        want = recorded & self.wants_gradients
        # The recorded statistics per member, by the solo trainer's own functions (recording.py): a statistic
        # that cancels (a mean near zero, a small variance) would show a different summation order.
        reporting = np.flatnonzero(want).tolist()
        net = self.members[0].network if reporting else None
        sums = {k: (recording.segment_sumsq(net, self.params[k]), recording.grad_moments(net, grads[k])) for k in reporting}
        before = self.params.copy() if keep_deltas else None
        update = self.optimizer.compute(self.params, grads, lr)
        update_total = np.einsum("kp,kp->k", update, update)
        scales = self.optimizer.scales_gradient
        for k in reporting:  # as Trainer._train_step: plain SGD's update is lr × g, its size the gradient's
            weight_sq, moments = sums[k]
            update_sq = moments[0] * (float(lr[k]) * float(lr[k])) if scales[k] else recording.segment_sumsq(net, update[k])
            sums[k] = (weight_sq, update_sq, moments)
            update_total[k] = float(update_sq.sum())
        bad = ~np.isfinite(update_total)
        if bad.any():
            for k in np.flatnonzero(bad).tolist():
                diverged.setdefault(k, ("update", None))
        if diverged:  # what each diverged member's job would report alone, before the update is applied
            self._record_divergences(step, diverged, update)
        self.optimizer.apply(self.params)

        self.step += 1
        self.batch_index += 1
        epoch_end = self.batch_index == p.steps_per_epoch
        last = self.step == self.total
        reporting = recorded | traced | last
        if epoch_end or reporting.any() or diverged:
            self._report(result, step, X, Y, losses, lr, diverged, recorded, traced, want, last, epoch_end, sums, before, deltas)
        if epoch_end:
            self.epoch += 1
            self.batch_index = 0
            self.orders = None
            self.loss_sum[:] = 0.0
            self.samples, self.right[:], self.counted = 0, 0, 0
        # A diverged member's shell already holds the weights before its failed update, as a solo run keeps them.
        self.remove(result.ended, synced=[members[k] for k in diverged])
        return result

    def _report(self, result: StackStep, step: int, X, Y, losses, lr, diverged, recorded, traced, want, last, epoch_end: bool,
                sums, before, deltas) -> None:
        """The records of the members that report this step (recorded, traced, an epoch's or their last step), and who ended."""
        members = self.members
        figures = self._epoch_metrics() if epoch_end or last.any() else None
        for k in range(len(members)) if epoch_end or diverged else np.flatnonzero(recorded | traced | last).tolist():
            trainer = members[k]
            if k in diverged:
                result.ended.append(trainer)
                continue
            loss = float(losses[k])
            record = StepRecord(step=step, epoch=self.epoch, loss=loss)
            if recorded[k]:
                m = record.metrics
                m["loss"] = loss
                if want[k]:
                    m.update(recording.gradient_metrics(members[k].network, *sums[k]))
                m.update(self._dead_fractions(k))
                if self.gradients[k] == "full":
                    record.gradients = {name: g.copy() for name, g in zip(self.param_names, trainer.network.split(self.grads[k]), strict=True)}
            if traced[k]:
                record.trace = self._trace(k, step, X, Y, loss, float(lr[k]), before[k], deltas)
            if epoch_end or last[k]:
                record.metrics.update(figures[k])
            if record.metrics or record.gradients is not None or record.trace is not None:
                result.records[trainer] = record
            if last[k]:
                result.ended.append(trainer)

    def _batch(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of each member: `(B, in)` shared when the members share data and order, else `(K, B, in)`."""
        if self.orders is None:
            return self.X_train[..., start:end, :], self.Y_train[..., start:end, :]
        idx = self.orders[:, start:end]
        if not self.shared_data:  # member k's rows sit at k × n in the flattened stack
            idx = idx + self._row_offsets
        return np.take(self._X_rows, idx, axis=0), np.take(self._Y_rows, idx, axis=0)

    def _forward(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dropout = self.spec.model.dropout
        last = len(self.W) - 1
        buffers = self._buffers_for(X.shape[-2])
        self.Z, self.A, self.masks, self.dropped = buffers.Z, [None] * len(self.W), [None] * len(self.W), [None] * len(self.W)
        A_prev = X
        for i, (WT, b, activation) in enumerate(zip(self.WT, self.b, self.activations, strict=True)):
            Z = _matmul(A_prev, WT, buffers.Z[i])
            Z += b[:, None, :]
            self.A[i] = A = activation.forward(Z, out=buffers.A[i])
            if dropout > 0 and i < last:
                keep = 1.0 - dropout
                masks = np.stack([(rng.random(A.shape[1:]) < keep).astype(A.dtype) for rng in self.rngs])
                masks /= keep
                self.masks[i] = masks
                self.dropped[i] = A_prev = A * masks
            else:
                A_prev = A
        return self.A[last], self.Z[last]

    def _buffers_for(self, n: int) -> _Buffers:
        """Pre-activations and activations of a batch of `n` per member, reused from step to step."""
        buffers = self._buffers.get(n)
        if buffers is None:
            K, dtype = len(self.members), self.params.dtype
            shapes = [(K, n, W.shape[1]) for W in self.W]
            buffers = self._buffers[n] = _Buffers([np.empty(s, dtype) for s in shapes], [np.empty(s, dtype) for s in shapes])
        return buffers

    def _backward(self, X: np.ndarray, Y: np.ndarray, keep_deltas: bool) -> list[np.ndarray] | None:
        last = len(self.W) - 1
        loss = self.problem.loss
        delta = _loss_grad(self.loss_name, loss.fused, self.A[last], self.Z[last], Y)
        if not loss.fused:
            delta = self.activations[last].backward(self.Z[last], self.A[last], delta)
        deltas = [None] * len(self.W) if keep_deltas else None
        for i in range(last, -1, -1):
            if keep_deltas:
                deltas[i] = delta.copy()
            if i > 0:
                A_prev = self.dropped[i - 1] if self.dropped[i - 1] is not None else self.A[i - 1]
            else:
                A_prev = X
            # dL/dW = delta.T @ A_prev, dL/db = the batch's sum of delta
            _matmul(delta.transpose(0, 2, 1), A_prev, self.dW[i])
            np.add.reduce(delta, axis=1, out=self.db[i])
            if i > 0:
                # a one-unit layer's product is an outer product: one multiply per entry, as BLAS does it, far faster
                dA = delta * self.W[i] if delta.shape[2] == 1 else _matmul(delta, self.W[i], None)
                if self.masks[i - 1] is not None:
                    dA *= self.masks[i - 1]
                delta = self.activations[i - 1].backward(self.Z[i - 1], self.A[i - 1], dA)
        return deltas

    def _learning_rates(self, step: int) -> np.ndarray:
        """Each member's learning rate at `step`, as `optimizers.learning_rate` gives it alone."""
        schedule = self.spec.optimizer.schedule.name
        if schedule == "constant":
            return self.base_lr
        return np.array([learning_rate(t.spec.optimizer.lr, t.spec.optimizer.schedule, step, t.total_steps) for t in self.members])

    # -- what a recorded step reports, per member -------------------------------------------------
    def _dead_fractions(self, k: int) -> dict[str, float]:
        return {key: np.count_nonzero(np.maximum.reduce(self.Z[i][k], axis=0) <= 0) / self.Z[i].shape[2]
                for i, key in recording._dead_keys(self.names, self.hinged)}

    def _epoch_metrics(self) -> list[dict[str, float]]:
        """Each member's epoch figures, as `Trainer.epoch_metrics` gives them."""
        out = [{"train_loss": value} for value in (self.loss_sum / self.samples).tolist()]
        if self._classify:
            for figures, right in zip(out, self.right.tolist(), strict=True):
                figures["train_accuracy"] = right / self.counted
        if self.X_val is not None:
            A, Z = self._evaluate(self.X_val)
            values = _losses(self.loss_name, self.problem.loss.fused, A, Z, np.broadcast_to(self.Y_val, A.shape))
            accuracy = None
            if self._classify:
                right, counted = _correct(self.loss_name, A, np.broadcast_to(self.Y_val, A.shape))
                accuracy = (right / counted).tolist()
            for k, figures in enumerate(out):
                if math.isfinite(values[k]):
                    figures["val_loss"] = float(values[k])
                if accuracy is not None:
                    figures["val_accuracy"] = accuracy[k]
        return out

    def _evaluate(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Outputs `(A, Z)` of the output layer without dropout."""
        A = X
        for WT, b, activation in zip(self.WT, self.b, self.activations, strict=True):
            Z = _matmul(A, WT, None) + b[:, None, :]
            A = activation.forward(Z, out=np.empty_like(Z))
        return A, Z

    def _trace(self, k: int, step: int, X: np.ndarray, Y: np.ndarray, loss: float, lr: float, before: np.ndarray,
               deltas: list[np.ndarray]) -> dict:
        """Member k's backward-pass trace of this step, as `Trainer._trace` writes it (after the update)."""
        old = self.members[k].network.split(before)
        layers = []
        for i, (name, activation) in enumerate(zip(self.names, self.activations, strict=True)):
            layers.append({
                "name": name, "activation": activation.name, "alpha": getattr(activation, "alpha", None),
                "W": old[2 * i].tolist(), "b": old[2 * i + 1].tolist(),
                "Z": self.Z[i][k].tolist(), "A": self.A[i][k].tolist(), "delta": deltas[i][k].tolist(),
                "dW": self.dW[i][k].tolist(), "db": self.db[i][k].tolist(),
                "W_new": self.W[i][k].tolist(), "b_new": self.b[i][k].tolist(),
            })
        return {"step": step, "epoch": self.epoch, "lr": lr, "loss": loss, "fused": self.problem.loss.fused,
                "loss_name": self.loss_name, "optimizer": self.spec.optimizer.name,
                "X": (X if X.ndim == 2 else X[k]).tolist(), "y": (Y if Y.ndim == 2 else Y[k]).tolist(), "layers": layers}

    def _record_divergences(self, step: int, diverged: dict[int, tuple[str, float | None]], update: np.ndarray) -> None:
        """Name each diverged member's culprit as its solo trainer would, from its gradients and update."""
        for k, (kind, value) in diverged.items():
            trainer = self.members[k]
            self.sync(trainer)
            trainer.step = step
            if kind == "loss":
                trainer.divergence = Divergence(step, "loss", value)
                continue
            np.copyto(trainer.network.flat_grads, self.grads[k])
            trainer.optimizer.last_update = update[k].copy()
            trainer._diverge(step, kind)


# Above this many multiply-adds per member, one 2-D BLAS call per member (multithreaded, at its peak)
# beats NumPy's stacked matmul; below it, the stacked call's one dispatch beats K of them.
PER_MEMBER_MATMUL_FLOPS = 200_000


def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """`a @ b` over the members (either may be one 2-D array shared by all)."""
    if a.shape[-2] * a.shape[-1] * b.shape[-1] < PER_MEMBER_MATMUL_FLOPS:
        return np.matmul(a, b, out=out)
    members = a.shape[0] if a.ndim == 3 else b.shape[0]
    if out is None:
        out = np.empty((members, a.shape[-2], b.shape[-1]), dtype=np.result_type(a, b))
    for k in range(members):
        np.matmul(a if a.ndim == 2 else a[k], b if b.ndim == 2 else b[k], out=out[k])
    return out


@dataclass
class _Buffers:
    Z: list[np.ndarray]
    A: list[np.ndarray]


def _same_data(a, b) -> bool:
    return all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ("X_train", "Y_train", "X_val", "Y_val"))


def _losses(name: str, fused: bool, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Each member's loss, as `losses.py` computes it for one network: (K,)."""
    per_member = A.shape[-2] * A.shape[-1]
    if name == "mse":
        diff = A - Y
        return np.einsum("kbo,kbo->k", diff, diff) / per_member
    if name == "bce":
        if fused:
            return (np.logaddexp(0, Z) - Z * Y).sum(axis=(1, 2)) / per_member
        return -(Y * np.log(A) + (1 - Y) * np.log1p(-A)).sum(axis=(1, 2)) / per_member
    if fused:
        shifted = Z - Z.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return -(Y * log_probs).sum(axis=(1, 2)) / Z.shape[-2]
    return -(Y * np.log(A)).sum(axis=(1, 2)) / A.shape[-2]


def _loss_grad(name: str, fused: bool, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """dL/dA (dL/dZ when fused) of each member's loss, as `losses.py` computes it for one network."""
    per_member = A.shape[-2] * A.shape[-1]
    if name == "mse":
        diff = A - Y
        diff *= 2.0 / per_member
        return diff
    if name == "bce":
        return (A - Y) / per_member if fused else (A - Y) / (A * (1 - A) * per_member)
    return (A - Y) / A.shape[-2] if fused else -Y / (A * A.shape[-2])


def _correct(name: str, A: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, int]:
    """Each member's (right, counted), as `recording.correct` counts them."""
    if name == "cross_entropy":
        return np.count_nonzero(A.argmax(axis=-1) == Y.argmax(axis=-1), axis=-1), A.shape[-2]
    return np.count_nonzero((A > 0.5) == (Y > 0.5), axis=(1, 2)), A.shape[-2] * A.shape[-1]


class _StackedOptimizer:
    """The members' optimizers as one, with per-member hyperparameters as (K, 1) columns; the update
    rules of `optimizers.py`, written once more for the stacked arrays. A factor a solo optimizer
    computes in Python floats is computed here in float64 too and then cast to the parameters' dtype,
    as NumPy casts a Python float meeting a float32 array, so float32 members round alike."""

    def __init__(self, optimizers: Sequence, params: np.ndarray) -> None:
        first = optimizers[0]
        self.name, self.t, self.dtype = first.spec.name, first.t, params.dtype
        names = dict.fromkeys(name for o in optimizers for name in o.state)  # a momentum buffer only some members have
        self.state = {name: np.stack([o.state[name] if name in o.state else np.zeros_like(params[0]) for o in optimizers])
                      for name in names}
        self.last_update = np.zeros_like(params)
        self.scales_gradient = np.array([bool(o.scales_gradient) for o in optimizers])

        def column(attr: str, default: float = 0.0) -> np.ndarray:
            return np.array([[getattr(o.spec, attr) or default] for o in optimizers], dtype=np.float64)

        s = first.spec
        self.weight_decay = column("weight_decay")
        self.has_weight_decay = bool(self.weight_decay.any())
        if self.name in ("sgd", "rmsprop"):
            self.momentum = column("momentum")
            self.has_momentum = bool(self.momentum.any())
            if self.has_momentum and "momentum_buffer" not in self.state:  # members without momentum beside some with it
                self.state["momentum_buffer"] = np.zeros_like(params)
            self.uses_momentum = self.momentum != 0
        if self.name == "sgd":
            self.dampening, self.nesterov = column("dampening"), bool(s.nesterov)
        elif self.name == "rmsprop":
            self.alpha, self.eps, self.centered = column("alpha"), column("eps"), bool(s.centered)
        elif self.name in ("adam", "adamw"):
            self.beta1 = np.array([[o.spec.betas[0]] for o in optimizers], dtype=np.float64)
            self.beta2 = np.array([[o.spec.betas[1]] for o in optimizers], dtype=np.float64)
            self.eps, self.amsgrad = column("eps"), bool(s.amsgrad)

    def _c(self, value: np.ndarray) -> np.ndarray:
        return value.astype(self.dtype, copy=False)

    def compute(self, p: np.ndarray, g: np.ndarray, lr: np.ndarray) -> np.ndarray:
        self.t += 1
        getattr(self, f"_{self.name}")(p, g, lr[:, None], self.last_update)
        return self.last_update

    def apply(self, p: np.ndarray) -> None:
        p -= self.last_update

    def _decayed(self, p, g):
        return g + self._c(self.weight_decay) * p if self.has_weight_decay else g

    def _sgd(self, p, g, lr, out) -> None:
        g = self._decayed(p, g)
        if self.has_momentum:
            buf = self.state["momentum_buffer"]
            if self.t == 1:
                np.copyto(buf, g)
            else:
                buf *= self._c(self.momentum)
                buf += self._c(1 - self.dampening) * g
            g = g + self._c(self.momentum) * buf if self.nesterov else np.where(self.uses_momentum, buf, g)
        np.multiply(g, self._c(lr), out=out)

    def _rmsprop(self, p, g, lr, out) -> None:
        g = self._decayed(p, g)
        sq = self.state["square_avg"]
        sq *= self._c(self.alpha)
        sq += self._c(1 - self.alpha) * g * g
        if self.centered:
            ga = self.state["grad_avg"]
            ga *= self._c(self.alpha)
            ga += self._c(1 - self.alpha) * g
            avg = np.sqrt(sq - ga * ga)
        else:
            avg = np.sqrt(sq)
        avg += self._c(self.eps)
        if self.has_momentum:
            buf = self.state["momentum_buffer"]
            buf *= self._c(self.momentum)
            buf += g / avg
            np.multiply(np.where(self.uses_momentum, buf, g / avg), self._c(lr), out=out)
        else:
            np.divide(g, avg, out=out)
            out *= self._c(lr)

    def _adam(self, p, g, lr, out, decoupled: bool = False) -> None:
        if not decoupled:
            g = self._decayed(p, g)
        m, v = self.state["exp_avg"], self.state["exp_avg_sq"]
        m *= self._c(self.beta1)
        m += self._c(1 - self.beta1) * g
        v *= self._c(self.beta2)
        v += self._c(1 - self.beta2) * g * g
        if self.amsgrad:
            vmax = self.state["max_exp_avg_sq"]
            np.maximum(vmax, v, out=vmax)
            v = vmax
        # In Python floats, as the solo optimizer: NumPy's vectorised power may round the last bit otherwise
        bias1 = np.array([[1 - b ** self.t] for b in self.beta1[:, 0].tolist()])
        bias2_sqrt = np.array([[math.sqrt(1 - b ** self.t)] for b in self.beta2[:, 0].tolist()])
        denom = np.sqrt(v)
        denom /= self._c(bias2_sqrt)
        denom += self._c(self.eps)
        np.divide(m, denom, out=out)
        out *= self._c(lr / bias1)
        if decoupled and self.has_weight_decay:
            out += self._c(lr * self.weight_decay) * p

    def _adamw(self, p, g, lr, out) -> None:
        self._adam(p, g, lr, out, decoupled=True)

    def write_back(self, k: int, optimizer) -> None:
        """Member k's optimizer state into its own optimizer object."""
        optimizer.t = self.t
        for name, value in optimizer.state.items():
            np.copyto(value, self.state[name][k])
        np.copyto(optimizer.last_update, self.last_update[k])
