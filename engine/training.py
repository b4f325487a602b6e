"""The training loop: a `Trainer` trains K ≥ 1 networks of one signature as one computation, with
no I/O; a job trained alone is a trainer of one member.

Each step is one optimizer step of every member: forward, loss, backward, divergence check,
optional clipping, update, all on arrays with a leading member axis. Each member is still its own
run: its spec, data, random stream, learning rate and the rest are its own, and what it records
is bitwise what it records in a trainer of any other size, at any place (tests/engine/test_stacked.py
holds this). Recorded steps carry their metrics (and full gradients or a trace when asked); the last
step of an epoch carries the epoch's metrics. A member that ends (diverged, finished, or stopped by
its caller) leaves with `remove`, as a trainer of its own; the rest train on. `state_dict(k)` /
`load_state_dict()` capture everything needed to resume a member bit for bit, alone or stacked.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import curvature, recording
from .diagnoses import Diagnoser
from .network import Network
from .optimizers import Optimizer, learning_rate, make_optimizer
from .problem import Problem, build_problem, traced_steps
from .spec import DiagnoseSettings, JobSpec
from .stacking import NotStackable, stack_key


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


@dataclass(frozen=True)
class _Batch:
    """What a step's records are built from besides the network's own arrays."""

    X: np.ndarray
    Y: np.ndarray
    lr: np.ndarray
    before: np.ndarray | None  # the parameters before the update (traced steps only)
    curvature: dict[int, dict[str, float]] | None = None  # member -> its curvature figures at this step (record.curvature)


@dataclass(frozen=True)
class _Stopped:
    """A diverged member's position, sample order and epoch sums when it stopped (its trainer's move on)."""

    position: tuple[int, int, int]
    order: np.ndarray | None
    loss_sum: np.ndarray
    right: np.ndarray
    samples: int
    counted: int


class Member:
    """One run's own part of a trainer: its problem (spec, data, random stream), how it records, how it ended."""

    def __init__(self, problem: Problem) -> None:
        self.problem, self.spec, self.rng = problem, problem.spec, problem.train_rng
        self.total_steps = problem.total_steps
        self.key = stack_key(problem.spec, problem.sizes)
        record, opt = problem.spec.record, problem.spec.optimizer
        self.every, self.gradients = record.every, record.gradients
        traced = traced_steps(problem.spec)
        self.trace_all, self.trace_steps = traced is True, traced if isinstance(traced, set) else set()
        self.lr, self.schedule, self.clip = opt.lr, opt.schedule, opt.clip_norm
        self.divergence: Divergence | None = None
        self.stopped: _Stopped | None = None  # where it diverged, as it stood
        self.diagnoser = _diagnoser(problem)
        self.curvature = record.curvature  # CurvatureSettings or None


CURVATURE_STREAM = 0xC0DE  # the curvature probes' own generator: never the training streams


def _diagnoser(problem: Problem) -> Diagnoser | None:
    """The member's diagnoser, unless its spec turns diagnoses off."""
    settings = problem.spec.diagnose
    if settings is False:
        return None
    layers = [(name, layer.activation, layer.units) for name, layer in zip(problem.network.names, problem.spec.model.layers, strict=True)]
    return Diagnoser(settings if isinstance(settings, DiagnoseSettings) else DiagnoseSettings(), layers, problem.batch_size,
                     full_batch=problem.steps_per_epoch == 1, n_train=problem.X_train.shape[0])


@dataclass(slots=True)
class StackStep:
    """One step of every member: the step index, the members that took it with their losses (one
    array, in the members' order), the records worth keeping (recorded steps, epoch ends, traces; a
    member's other steps report only their loss), and the members that ended with it (diverged, or
    their last step)."""

    step: int
    epoch: int
    members: list[Member]
    losses: np.ndarray
    records: dict[Member, StepRecord] = field(default_factory=dict)
    ended: list[Member] = field(default_factory=list)


class Trainer:
    """Trains K ≥ 1 members of one `stack_key`, at one position, one step per iteration.

    `Trainer(spec)` is a trainer of one member; `Trainer.stack(trainers)` makes one of several."""

    def __init__(self, spec: JobSpec | dict | Problem) -> None:
        problem = spec if isinstance(spec, Problem) else build_problem(spec)
        network = problem.network
        optimizer = make_optimizer(problem.spec.optimizer, network.flat_params)
        self._assemble([Member(problem)], network, optimizer, (0, 0, 0), None, np.zeros(1), np.zeros(1, dtype=np.int64), 0, 0)

    def _assemble(self, members: list[Member], network: Network, optimizer: Optimizer, position: tuple[int, int, int],
                  orders: np.ndarray | None, loss_sum: np.ndarray, right: np.ndarray, samples: int, counted: int) -> None:
        self.members = members
        self.network, self.optimizer = network, optimizer
        self.step, self.epoch, self.batch_index = position
        self.orders = orders  # (K, n): each member's sample order this epoch (None: data order)
        # Running sums over the epoch's batches: train_loss and train_accuracy cost no extra pass.
        self.loss_sum, self.right, self.samples, self.counted = loss_sum, right, samples, counted
        first = members[0].problem
        self.problem, self.spec = first, first.spec  # what the members share: shapes, batch size, loss
        self.loss, self.loss_name = first.loss, first.spec.loss
        self._classify = self.loss_name != "mse"
        self._shuffle, self._dropout = first.spec.shuffle, first.spec.model.dropout > 0
        self._n_train, self._batch_size, self._per_epoch = first.X_train.shape[0], first.batch_size, first.steps_per_epoch
        # Data: one array shared by all members when theirs are equal (broadcast), else stacked.
        self.shared_data = all(_same_data(first, m.problem) for m in members[1:])

        def data(name: str) -> np.ndarray | None:
            if getattr(first, name) is None:
                return None
            return getattr(first, name) if self.shared_data else np.stack([getattr(m.problem, name) for m in members])

        self.X_train, self.Y_train, self.X_val, self.Y_val = data("X_train"), data("Y_train"), data("X_val"), data("Y_val")
        self._X_rows, self._Y_rows = (self.X_train, self.Y_train) if self.shared_data else (
            self.X_train.reshape(-1, self.X_train.shape[-1]), self.Y_train.reshape(-1, self.Y_train.shape[-1]))
        self._row_offsets = np.arange(len(members))[:, None] * self._n_train
        # Per-member settings the hot loop reads at every step, as arrays.
        self._rngs = [m.rng for m in members]
        self._every, self._last_step = [m.every for m in members], [m.total_steps - 1 for m in members]
        self._next_recorded = 0  # the next step some member records (a recorded step sets the one after)
        self._wants_gradients = [m.gradients != "none" for m in members]
        self._full = [m.gradients == "full" for m in members]
        self._any_traced = any(m.trace_all or m.trace_steps for m in members)
        self._clip = np.array([math.inf if m.clip is None else m.clip for m in members])
        self._clipped = np.isfinite(self._clip)
        self._any_clip = bool(self._clipped.any())
        self._base_lr = np.array([m.lr for m in members], dtype=np.float64)
        self._flat_update = optimizer.last_update.reshape(-1)  # a view: the whole step's update as one vector
        self._constant_lr = all(m.schedule.name == "constant" for m in members)
        self._diagnosing = any(m.diagnoser is not None for m in members)
        self._curving = [k for k, m in enumerate(members) if m.curvature is not None]

    # -- members ----------------------------------------------------------------------------------
    @classmethod
    def stack(cls, trainers: Sequence[Trainer]) -> Trainer:
        """One trainer of every member of `trainers` (their state copied), which must share one
        `stack_key` and one position and not have ended."""
        members = [m for t in trainers for m in t.members]
        if not members:
            raise NotStackable("a stack needs at least one member")
        if len({m.key for m in members}) > 1:
            raise NotStackable("the members differ in shape or code path")
        if len({(t.step, t.epoch, t.batch_index, t.optimizer.t) for t in trainers}) > 1:
            raise NotStackable("the members are at different steps")
        if any(t.ended(k) for t in trainers for k in range(len(t.members))):
            raise NotStackable("a member has already ended")
        network = Network.stack([t.network for t in trainers])
        optimizer = Optimizer.stack([t.optimizer for t in trainers], network.flat_params)
        first = trainers[0]
        orders = None if first.orders is None else np.concatenate([t.orders for t in trainers])
        stacked = object.__new__(cls)
        stacked._assemble(members, network, optimizer, (first.step, first.epoch, first.batch_index), orders,
                          np.concatenate([t.loss_sum for t in trainers]), np.concatenate([t.right for t in trainers]), first.samples,
                          first.counted)
        return stacked

    def take(self, members: Sequence[Member]) -> Trainer:
        """A trainer of some of the members, with their state copied (this one is left as it was)."""
        index = [self.members.index(m) for m in members]
        network = self.network.take(index)
        optimizer = self.optimizer.take(index, network.flat_params)
        taken = object.__new__(type(self))
        if len(members) == 1 and members[0].stopped is not None:  # a diverged member stays where it stopped
            at = members[0].stopped
            taken._assemble(list(members), network, optimizer, at.position, at.order, at.loss_sum, at.right, at.samples, at.counted)
        else:
            taken._assemble(list(members), network, optimizer, (self.step, self.epoch, self.batch_index),
                            None if self.orders is None else self.orders[index], self.loss_sum[index], self.right[index], self.samples,
                            self.counted)
        return taken

    def remove(self, leaving: Sequence[Member]) -> list[Trainer]:
        """Take members out: each as a trainer of its own (its state as it ended); the rest train on here."""
        leaving = [m for m in self.members if m in leaving]
        if not leaving:
            return []
        alone = [self.take([m]) for m in leaving]
        staying = [m for m in self.members if m not in leaving]
        if staying:
            rest = self.take(staying)
            self.__dict__.update(rest.__dict__)
        else:
            self.members = []
        return alone

    def ended(self, k: int = 0) -> bool:
        """Member k diverged or took its last step."""
        m = self.members[k]
        return m.divergence is not None or self.step >= m.total_steps

    # -- one member's view (a trainer of one, or member k) ------------------------------------------
    @property
    def divergence(self) -> Divergence | None:
        return self.members[0].divergence

    @property
    def status(self) -> str:
        if self.divergence is not None:
            return "diverged"
        return "succeeded" if self.step >= self.total_steps else "running"

    @property
    def total_steps(self) -> int:
        return self.members[0].total_steps

    @property
    def rng(self) -> np.random.Generator:
        return self.members[0].rng

    @property
    def order(self) -> np.ndarray | None:
        """Member 0's sample order this epoch (None: data order)."""
        return None if self.orders is None else self.orders[0]

    def __iter__(self) -> Iterator[StepRecord]:
        """Member 0's records, one per step, until it ends (a trainer of one)."""
        while not self.ended():
            record = self.train_step()
            if record is not None:
                yield record

    def train_step(self) -> StepRecord | None:
        """One step of a trainer of one: its record (bare but for the loss when not recorded), None
        when it diverged (see `divergence`)."""
        done = self.step_all()
        member = self.members[0]
        if member.divergence is not None:
            return None
        return done.records.get(member) or StepRecord(step=done.step, epoch=done.epoch, loss=float(done.losses[0]))

    def step_all(self) -> StackStep:
        """One optimizer step of every member."""
        # Overflow is handled by the divergence checks, not reported as NumPy warnings.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._step()

    # -- one step ---------------------------------------------------------------------------------
    def _step(self) -> StackStep:
        net, step, members = self.network, self.step, self.members
        if self.batch_index == 0 and self.orders is None and self._shuffle:
            self.orders = np.stack([rng.permutation(self._n_train) for rng in self._rngs])
        start = self.batch_index * self._batch_size
        if self.orders is None:
            X, Y = self.X_train[..., start:start + self._batch_size, :], self.Y_train[..., start:start + self._batch_size, :]
        else:
            X, Y = self._shuffled_batch(start, start + self._batch_size)
        # Which members record this step: one comparison, and arrays only when some do.
        if step >= self._next_recorded:  # per member, as Python lists: cheaper than arrays at these sizes
            last = [step == t for t in self._last_step]
            recorded = [step % every == 0 or at_last for every, at_last in zip(self._every, last, strict=True)]
            self._next_recorded = min([step - step % every + every for every in self._every] + [t for t in self._last_step if t > step])
        else:
            last = recorded = None
        traced = self._traced(step, recorded) if self._any_traced else None
        keep_deltas = traced is not None

        net.forward(X, self._rngs if self._dropout else None)
        out_A, out_Z = net.A[-1], net.Z[-1]
        losses = self.loss.value(out_A, out_Z, Y)
        diverged: dict[int, tuple[str, float | None]] = {}
        if not all(map(math.isfinite, losses.tolist())):
            diverged = {k: ("loss", loss) for k, loss in enumerate(losses.tolist()) if not math.isfinite(loss)}
        n = X.shape[-2]
        self.loss_sum += losses * n
        self.samples += n
        if self._classify:
            right, counted = recording.correct(self.loss_name, out_A, Y)
            self.right += right
            self.counted += counted
        net.backward(X, Y, self.loss, keep_deltas=keep_deltas)
        params, grads = net.flat_params, net.flat_grads
        if self._any_clip:
            self._clip_gradients(grads, diverged)

        lr = self._base_lr if self._constant_lr else self._learning_rates(step)
        reporting = [] if recorded is None else [k for k, (r, w) in enumerate(zip(recorded, self._wants_gradients, strict=True)) if r and w]
        if reporting:
            rows = slice(None) if len(reporting) == len(members) else reporting
            weight_sq, moments = recording.segment_sumsq(net, params[rows]), recording.grad_moments(net, grads[rows])
        before = params.copy() if keep_deltas else None
        update = self.optimizer.compute(params, grads, lr)
        # One pass over the update checks the whole step: a non-finite gradient makes the update non-finite.
        if reporting:
            update_sq = self._update_sumsq(update, lr, reporting, rows, moments[0])
        if len(reporting) == len(members) or not math.isfinite(float(np.dot(self._flat_update, self._flat_update))):
            self._check_update(update, reporting, update_sq if reporting else None, diverged)
        if diverged:  # what each diverged member reports, before its update: its weights stay as they were
            self._record_divergences(step, diverged, update)
        # the curvature at the weights the step's loss and gradients were taken at (before the update)
        curved = {k: self._curvature(k, step, X, Y, float(lr[k])) for k in self._curving
                  if recorded is not None and recorded[k] and step % members[k].curvature.every == 0 and k not in diverged}
        self.optimizer.apply(params)

        result = StackStep(step, self.epoch, members, losses)
        epoch_end = self.batch_index + 1 == self._per_epoch
        if recorded is not None or traced is not None or diverged:
            if recorded is None:
                recorded = last = [False] * len(members)
            stats = (weight_sq, update_sq, moments) if reporting else None
            self._report(result, _Batch(X, Y, lr, before, curved), recorded, traced, last, diverged, epoch_end, reporting, stats)
        elif epoch_end:  # only the epoch's figures to report
            epoch = self.epoch
            for member, loss, figures in zip(members, losses.tolist(), self._epoch_figures(), strict=True):
                result.records[member] = StepRecord(step=step, epoch=epoch, loss=loss, metrics=figures)

        if len(diverged) == len(members):  # nobody trains on: the trainer stays where its members stopped
            return result
        self.step += 1
        self.batch_index += 1
        if epoch_end:
            self.epoch += 1
            self.batch_index = 0
            self.orders = None
            self.loss_sum.fill(0.0)
            self.right.fill(0)
            self.samples = self.counted = 0
        return result

    def _update_sumsq(self, update: np.ndarray, lr: np.ndarray, reporting: list[int], rows: slice | list[int],
                      grad_sq: np.ndarray) -> np.ndarray:
        """Per reporting member and tensor, the update's sum of squares: plain SGD's update is lr × g, its
        size the gradient's, already measured; the other rules' are measured."""
        optimizer = self.optimizer
        if isinstance(rows, slice):  # every member reports
            if not optimizer.any_scales:
                return recording.segment_sumsq(self.network, update)
            scales = optimizer.scales_gradient
        else:
            scales, lr = optimizer.scales_gradient[rows], lr[rows]
        scaled = grad_sq * np.square(lr)[:, None]
        if optimizer.all_scale or scales.all():
            return scaled
        return np.where(scales[:, None], scaled, recording.segment_sumsq(self.network, update[rows]))

    def _clip_gradients(self, grads: np.ndarray, diverged: dict[int, Any]) -> None:
        """torch's clip_grad_norm_, per member that clips: scale g so its L2 norm is at most max_norm."""
        grad_sq = _row_sumsq(grads)
        for k in (~np.isfinite(grad_sq) & self._clipped).nonzero()[0].tolist():
            diverged.setdefault(k, ("gradient", None))
        coef = self._clip / (np.sqrt(grad_sq) + 1e-6)
        scale = self._clipped & (coef < 1.0)
        if scale.any():
            grads[scale] *= coef[scale, None].astype(grads.dtype)

    def _check_update(self, update: np.ndarray, reporting: list[int], update_sq: np.ndarray | None, diverged: dict[int, Any]) -> None:
        """Members whose update left the finite numbers (a non-finite gradient makes the update non-finite):
        from the reporting members' sums of squares when every member reports, else (the whole step's
        update was not finite) from each member's."""
        if len(reporting) == len(self.members):
            update_total = np.add.reduce(update_sq, axis=1)
        else:
            update_total = np.einsum("kp,kp->k", update, update)
            if reporting:
                update_total[reporting] = np.add.reduce(update_sq, axis=1)
        if not math.isfinite(float(np.add.reduce(update_total))):
            for k in np.isfinite(update_total).__invert__().nonzero()[0].tolist():
                diverged.setdefault(k, ("update", None))

    def _report(self, result: StackStep, batch: _Batch, recorded: list[bool], traced: list[bool] | None, last: list[bool],
                diverged: dict[int, Any], epoch_end: bool, reporting: list[int], stats: tuple | None) -> None:
        """The records of the members that report this step (recorded, traced, an epoch's or their last
        step), and who ended; the update is applied (a trace shows the weights after it)."""
        net, members, step, losses = self.network, self.members, result.step, result.losses
        figures = self._epoch_figures() if epoch_end or any(last) else None
        gradient_figures = dict(zip(reporting, recording.gradient_metrics(net, *stats), strict=True)) if stats else {}
        at = [k for k, r in enumerate(recorded) if r]
        masks = [{} for _ in at] if self._diagnosing else None  # which units are dead, for the diagnoses
        dead = dict(zip(at, recording.dead_fractions(net, at, masks), strict=True)) if at else {}
        dead_units = dict(zip(at, masks, strict=True)) if masks else {}
        reports = recorded if traced is None else [r or t for r, t in zip(recorded, traced, strict=True)]
        for k in range(len(members)) if epoch_end or diverged else [k for k, (r, e) in enumerate(zip(reports, last, strict=True)) if r or e]:
            member = members[k]
            if k in diverged:
                result.ended.append(member)
                continue
            loss = float(losses[k])
            record = StepRecord(step=step, epoch=self.epoch, loss=loss)
            diagnoser = member.diagnoser
            if recorded[k]:
                metrics = record.metrics
                metrics["loss"] = loss
                metrics.update(gradient_figures.get(k, ()))
                metrics.update(dead[k])
                if self._full[k]:
                    record.gradients = {name: g.copy() for name, g in zip(net.param_names, net.split(net.flat_grads[k]), strict=True)}
                if batch.curvature and k in batch.curvature:
                    metrics.update(batch.curvature[k])
                if diagnoser is not None:
                    saturated = recording.saturated_masks(net, k, *diagnoser.saturation) if diagnoser.saturating else None
                    diagnoser.recorded(step, metrics, dead_units.get(k), saturated)
            if traced is not None and traced[k]:
                record.trace = self._trace(k, step, batch.X, batch.Y, loss, float(batch.lr[k]), batch.before[k])
            if epoch_end or last[k]:
                record.metrics.update(figures[k])
                if epoch_end and diagnoser is not None:
                    diagnoser.epoch(step, self.epoch, figures[k])
            if record.metrics or record.gradients is not None or record.trace is not None:
                result.records[member] = record
            if last[k]:
                result.ended.append(member)

    def _shuffled_batch(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Each member's batch in its own order this epoch, `(K, B, in)` (in data order, the batch is a
        slice: `(B, in)` shared when the members share data, else `(K, B, in)`)."""
        idx = self.orders[:, start:end]
        if not self.shared_data:  # member k's rows sit at k × n in the flattened stack
            idx = idx + self._row_offsets
        return np.take(self._X_rows, idx, axis=0), np.take(self._Y_rows, idx, axis=0)

    def _curvature(self, k: int, step: int, X: np.ndarray, Y: np.ndarray, lr: float) -> dict[str, float]:
        """Member k's curvature figures at this step's weights (before its update), in float64, without
        dropout, on its batch or its whole training set; the probes' generator is seeded by the member's
        seed and the step, so the figures depend on the spec alone (the training streams are not touched)."""
        member, net = self.members[k], self.network
        settings = member.curvature
        if settings.on == "train":
            X, Y = member.problem.X_train, member.problem.Y_train
        else:
            X, Y = (X if X.ndim == 2 else X[k]), (Y if Y.ndim == 2 else Y[k])
        surface = curvature.Curvature(list(net.shapes), list(net.activations), self.loss, X.astype(np.float64), Y.astype(np.float64))
        theta = net.flat_params[k].astype(np.float64)
        rng = np.random.default_rng([member.spec.seed, step, CURVATURE_STREAM])
        return curvature.figures(surface, theta, lr, rng, tol=settings.tolerance, probes=settings.probes)

    def _traced(self, step: int, recorded: list[bool] | None) -> list[bool] | None:
        """Which members trace this step (None: none)."""
        if not self._any_traced:
            return None
        traced = [bool((m.trace_all and recorded is not None and recorded[k]) or step in m.trace_steps) for k, m in enumerate(self.members)]
        return traced if any(traced) else None

    def _learning_rates(self, step: int) -> np.ndarray:
        """Each member's learning rate at `step`, `(K,)`."""
        if self._constant_lr:
            return self._base_lr
        return np.array([learning_rate(m.lr, m.schedule, step, m.total_steps) for m in self.members])

    def _record_divergences(self, step: int, diverged: dict[int, tuple[str, float | None]], update: np.ndarray) -> None:
        """Stop each diverged member before its update is applied, naming the first culprit: a gradient
        entry that is not finite, else the tensor whose gradient or update left the finite numbers."""
        names = self.network.param_names
        for k, (kind, value) in diverged.items():
            member = self.members[k]
            member.stopped = _Stopped((step, self.epoch, self.batch_index), None if self.orders is None else self.orders[[k]],
                                      self.loss_sum[[k]], self.right[[k]], self.samples, self.counted)
            if kind == "loss":
                member.divergence = Divergence(step, "loss", value)
            else:
                member.divergence = _culprit(step, kind, names, self.network.split(self.network.flat_grads[k]),
                                             self.network.split(update[k]))
            if member.diagnoser is not None:
                member.diagnoser.diverged(step, member.divergence.quantity, member.divergence.as_dict().get("value"))
            update[k] = 0  # p - 0 is p: the member keeps its weights from before the failed step

    def _epoch_figures(self) -> list[dict[str, float]]:
        """Each member's train_loss / train_accuracy: sample-weighted means over the epoch's batches, as
        trained (so with dropout on); val_loss / val_accuracy: the validation part with the epoch's final
        weights (this step's update applied)."""
        samples, counted = self.samples, self.counted
        if self._classify:
            out = [{"train_loss": loss / samples, "train_accuracy": right / counted}
                   for loss, right in zip(self.loss_sum.tolist(), self.right.tolist(), strict=True)]
        else:
            out = [{"train_loss": loss / samples} for loss in self.loss_sum.tolist()]
        if self.X_val is not None:
            logits, outputs = self.network.evaluate(self.X_val)
            values = self.loss.value(outputs, logits, self.Y_val).tolist()
            accuracy = recording.accuracy(self.loss_name, outputs, self.Y_val)
            for k, figures in enumerate(out):
                if math.isfinite(values[k]):
                    figures["val_loss"] = values[k]
                if accuracy is not None:
                    figures["val_accuracy"] = accuracy[k]
        return out

    def _trace(self, k: int, step: int, X: np.ndarray, Y: np.ndarray, loss: float, lr: float, before: np.ndarray) -> dict[str, Any]:
        """Member k's backward-pass trace of this step (weights before and after the update: it is built
        once the update is applied)."""
        net = self.network
        old, deltas = net.split(before), net.deltas
        layers = []
        for i, (name, activation) in enumerate(zip(net.names, net.activations, strict=True)):
            layers.append({
                "name": name, "activation": activation.name, "alpha": getattr(activation, "alpha", None),
                "W": old[2 * i].tolist(), "b": old[2 * i + 1].tolist(),
                "Z": net.Z[i][k].tolist(), "A": net.A[i][k].tolist(), "delta": deltas[i][k].tolist(),
                "dW": net.dW[i][k].tolist(), "db": net.db[i][k].tolist(),
                "W_new": net.W[i][k].tolist(), "b_new": net.b[i][k].tolist(),
            })
        return {"step": step, "epoch": self.epoch, "lr": lr, "loss": loss, "fused": self.loss.fused,
                "loss_name": self.loss_name, "optimizer": self.spec.optimizer.name,
                "X": (X if X.ndim == 2 else X[k]).tolist(), "y": (Y if Y.ndim == 2 else Y[k]).tolist(), "layers": layers}

    # -- a member's figures, model and checkpoint ---------------------------------------------------
    def final_model_figures(self, k: int = 0) -> dict[str, float]:
        """Member k's final model on its whole training set and on its validation part (one forward pass
        each, without dropout): `model_train_loss`, `model_train_accuracy`, `model_val_loss`,
        `model_val_accuracy`. Unlike `final_loss` (the last mini-batch, before its update) they say how
        good the model is."""
        p = self.members[k].problem
        network = self.network if len(self.members) == 1 else self.network.take([k])
        out: dict[str, float] = {}
        for part, X, Y in (("train", p.X_train, p.Y_train), ("val", p.X_val, p.Y_val)):
            if X is None:
                continue
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a model that overflows reports no loss
                logits, outputs = network.evaluate(X)
                value = float(self.loss.value(outputs, logits, Y)[0])
            if math.isfinite(value):
                out[f"model_{part}_loss"] = value
            if self._classify:
                out[f"model_{part}_accuracy"] = recording.accuracy(self.loss_name, outputs, Y)[0]
        return out

    def state_dict(self, k: int = 0) -> dict[str, Any]:
        """Everything needed to resume member k: parameters, optimizer state, RNG state, position."""
        return {
            "step": self.step, "epoch": self.epoch, "batch_index": self.batch_index,
            "order": None if self.orders is None else self.orders[k].copy(),
            "rng": self.members[k].rng.bit_generator.state,
            "params": self.network.flat_params[k].copy(),
            "optimizer": self.optimizer.state_dict(k),
            "epoch_sums": [float(self.loss_sum[k]), self.samples, int(self.right[k]), self.counted],
            "diagnoses": None if self.members[k].diagnoser is None else self.members[k].diagnoser.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume a trainer of one from its member's `state_dict()`."""
        if len(self.members) != 1:
            raise ValueError("a checkpoint restores a trainer of one member; stack the restored trainers after")
        self.step, self.epoch, self.batch_index = int(state["step"]), int(state["epoch"]), int(state["batch_index"])
        self.members[0].rng.bit_generator.state = state["rng"]
        np.copyto(self.network.flat_params[0], state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        sums = state["epoch_sums"]
        self.loss_sum[0], self.samples, self.right[0], self.counted = float(sums[0]), int(sums[1]), int(sums[2]), int(sums[3])
        order = state["order"]
        self.orders = None if order is None else np.asarray(order, dtype=np.int64)[None]
        if self.members[0].diagnoser is not None and state.get("diagnoses") is not None:
            self.members[0].diagnoser.load_state_dict(state["diagnoses"])

    def model(self, k: int = 0) -> dict[str, Any]:
        """Member k's weights and biases in the spec's layout (and the input standardisation, when used)."""
        net, problem = self.network, self.members[k].problem
        model: dict[str, Any] = {"weights": [W[k].tolist() for W in net.W], "biases": [b[k].tolist() for b in net.b]}
        if problem.input_mean is not None:
            model["input_mean"] = problem.input_mean.tolist()
            model["input_std"] = problem.input_std.tolist()
        return model


def _row_sumsq(a: np.ndarray) -> np.ndarray:
    """Each row's sum of squares in float64, `(K,)`."""
    return np.add.reduce(np.square(a, dtype=np.float64), axis=1)


def _culprit(step: int, kind: str, names: tuple[str, ...], grads: list[np.ndarray], update: list[np.ndarray]) -> Divergence:
    """The first tensor whose gradient holds a non-finite entry, else the one whose gradient (`kind`
    "gradient") or update ("update") is not finite or largest."""
    for name, g in zip(names, grads, strict=True):
        bad_entries = g[~np.isfinite(g)]
        if bad_entries.size:
            return Divergence(step, f"gradient of {name}", float(bad_entries[0]))
    sizes = recording.norms(grads if kind == "gradient" else update)
    bad = next((i for i, size in enumerate(sizes) if not math.isfinite(size)), int(np.argmax(sizes)))
    return Divergence(step, f"{kind} of {names[bad]}", sizes[bad])


def _same_data(a: Problem, b: Problem) -> bool:
    return all(getattr(a, n) is getattr(b, n) or (getattr(a, n) is not None and getattr(b, n) is not None
                                                  and np.array_equal(getattr(a, n), getattr(b, n)))
               for n in ("X_train", "Y_train", "X_val", "Y_val"))


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
    if trainer.members[0].diagnoser is not None:
        result["diagnoses"] = trainer.members[0].diagnoser.found
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
    ("final_train_loss", "after an epoch ended", "the last epoch's `train_loss`"),
    ("final_train_accuracy", "as above, `bce` and `cross_entropy`", "the last epoch's `train_accuracy`"),
    ("final_val_loss", "as above, with `data.validation_split`", "the last epoch's `val_loss` (a sweep's default objective)"),
    ("final_val_accuracy", "as above, `bce` and `cross_entropy`", "the last epoch's `val_accuracy`"),
    ("best_train_loss", "after an epoch ended", "the lowest epoch `train_loss` (epoch-level: not one mini-batch's)"),
    ("best_val_loss", "as above, with `data.validation_split`", "the lowest epoch `val_loss`"),
    ("steps_completed", "the service", "optimizer steps done"),
    ("total_steps", "the service", "optimizer steps planned"),
    ("duration_seconds", "the service", "the training loop with its recording (not the time queued)"),
)


def summarize(values: dict[str, Sequence[float]]) -> dict[str, Any]:
    """The last mini-batch loss, the last epoch's figures and the best epoch losses, from each key's
    values in step order. No "best" of single mini-batches: one lucky batch says nothing of the model."""
    summary: dict[str, Any] = {}
    if len(values.get("loss", ())):
        summary["final_loss"] = float(values["loss"][-1])
    for key in SUMMARY_KEYS[1:]:
        if len(values.get(key, ())):
            summary[f"final_{key}"] = float(values[key][-1])
    for key in ("train_loss", "val_loss"):
        finite = [v for v in values.get(key, ()) if math.isfinite(v)]
        if finite:
            summary[f"best_{key}"] = float(min(finite))
    return summary
