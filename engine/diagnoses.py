"""Diagnoses: what went wrong in a run, said in a sentence, found while it trains from what each
recorded step already measured (dead units, the vanishing ratio, gradient norms, the loss, the
epochs' figures) — no extra pass over the data.

One `Diagnoser` per member watches its recorded steps and epoch ends. A diagnosis begins once its
condition has held long enough (k recorded steps in a row, or a window of them, more for small
batches, whose statistics are noisy) and is dated to where that stretch began; it ends when the
condition stops holding (a plateau can end; a dead unit rarely comes back). Each beginning and end is
an event the caller drains (`drain()`); the diagnoser's state is JSON, so a resumed run finds exactly
what an uninterrupted one finds, and a stacked member what it finds alone.

The thresholds are the spec's `diagnose` settings (engine/spec.py, `DiagnoseSettings`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .spec import DiagnoseSettings

SEVERITY = {"dead_units": "warning", "layer_dead": "error", "vanishing_gradients": "warning", "exploding_gradients": "warning",
            "saturated_units": "warning", "loss_rising": "warning", "diverged": "error", "plateau": "info", "overfitting": "warning",
            "edge_of_stability": "warning"}
KINDS = tuple(SEVERITY)
SATURATING = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}  # activation -> its bounds


@dataclass
class Diagnosis:
    """One finding: its kind, where it began (and ended), the layer or tensor, the evidence (values and
    the thresholds they crossed), its severity and one plain sentence."""

    kind: str
    step: int
    sentence: str
    evidence: dict[str, Any]
    layer: str | None = None
    severity: str = ""
    ended_step: int | None = None

    def __post_init__(self) -> None:
        self.severity = self.severity or SEVERITY[self.kind]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _units(indices: list[int], limit: int = 8) -> str:
    shown = ", ".join(str(i + 1) for i in indices[:limit])
    return shown + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


@dataclass
class _State:
    """Everything a diagnoser remembers between steps (JSON: it is saved with the checkpoint)."""

    active: dict[str, int] = field(default_factory=dict)  # "kind/layer" -> its index in `found`, while it holds
    found: list[dict[str, Any]] = field(default_factory=list)  # every diagnosis, ended ones with their end
    streaks: dict[str, list[int]] = field(default_factory=dict)  # "kind/layer" -> [since, count]
    unit_runs: dict[str, Any] = field(default_factory=dict)  # layer -> recorded steps in a row each unit was dead/saturated
    window: list[float] = field(default_factory=list)  # the current loss window's recorded losses
    window_since: int = -1
    medians: list[float] = field(default_factory=list)  # each full window's median loss
    window_starts: list[int] = field(default_factory=list)  # and the step it began at
    unit_steps: dict[str, list[int]] = field(default_factory=dict)  # and the last `need` recorded steps it was tracked at
    start_loss: float | None = None
    first_grad: float | None = None
    val: list[float] = field(default_factory=list)  # epoch val_loss, train_loss
    train: list[float] = field(default_factory=list)


class Diagnoser:
    """Watches one member's recorded steps and epochs (see the module's docstring)."""

    def __init__(self, settings: DiagnoseSettings, layers: list[tuple[str, str, int]], batch_size: int, full_batch: bool,
                 n_train: int) -> None:
        """`layers`: (name, activation, units) of each layer, input to output; `n_train`: the training samples."""
        self.settings = settings
        self.full_batch = full_batch
        # a unit found dead or saturated on fewer samples than `samples` (a tiny dataset) is said, as info only
        self.few_samples = n_train < settings.samples
        self.n_train = n_train
        s = settings
        # small batches give noisy per-step statistics: a condition must then hold over enough samples
        self.need = max(s.steps, math.ceil(s.samples / batch_size)) if not full_batch else s.steps
        self.loss_window = s.loss_window if full_batch else max(s.loss_window, math.ceil(s.loss_samples / batch_size))
        self.dead_keys = [(f"dead_fraction/{name}", name, units) for name, _, units in layers]
        self.saturating = [(i, name, units) for i, (name, activation, units) in enumerate(layers[:-1]) if activation in SATURATING]
        # what recording.saturated_masks needs: the layers, ε and their bounds
        self.saturation = ([i for i, _, _ in self.saturating], settings.saturation_eps,
                           [SATURATING[layers[i][1]] for i, _, _ in self.saturating])
        self.weight_norms: list[str] | None = None
        self.state = _State()
        self._events: list[dict[str, Any]] = []

    # -- what the trainer tells it ---------------------------------------------------------------
    def recorded(self, step: int, metrics: dict[str, float], dead: dict[str, Any] | None = None,
                 saturated: dict[str, Any] | None = None) -> None:
        """A recorded step's metrics; `dead` and `saturated`: per layer, a boolean mask of its units
        (z ≤ 0 on the whole batch; a within ε of a bound on the whole batch), given where asked for.
        Cheap when nothing is wrong: each rule first compares a number it was given, and does more
        only while its condition holds (or a diagnosis of it is open)."""
        s, tracked = self.settings, self.state.unit_runs
        for key, name, units in self.dead_keys:
            fraction = metrics.get(key)
            if fraction is not None and (fraction >= s.dead_fraction or "dead/" + name in tracked):
                self._units_condition("dead", name, units, step, fraction >= s.dead_fraction, (dead or {}).get(name))
        for _, name, units in self.saturating:
            mask = (saturated or {}).get(name)
            if mask is not None:
                enough = mask.mean() >= s.saturated_fraction
                if enough or "saturated/" + name in tracked:
                    self._units_condition("saturated", name, units, step, enough, mask)
        ratio = metrics.get("vanishing_ratio")
        if ratio is not None and (ratio < s.vanishing_ratio or "vanishing_gradients/" in self.state.streaks):
            self._streak("vanishing_gradients", None, step, ratio < s.vanishing_ratio,
                         lambda since: Diagnosis("vanishing_gradients", since, (
                             f"The first layer's gradient is {ratio:.2g} of the last layer's (below {s.vanishing_ratio:g}) since step {since}: "
                             "the gradient shrinks as it passes back through the layers, and the layers near the input barely learn."),
                             {"vanishing_ratio": ratio, "threshold": s.vanishing_ratio}))
        self._gradient_growth(step, metrics)
        sharp = metrics.get("sharpness_x_lr")  # with record.curvature
        if sharp is not None and (sharp > 2 or "edge_of_stability/" in self.state.streaks):
            lam = metrics["sharpness"]
            self._streak("edge_of_stability", None, step, sharp > 2,
                         lambda since: Diagnosis("edge_of_stability", since, (
                             f"Since step {since} the learning rate times the loss surface's sharpest curvature is {sharp:.3g}, above 2 "
                             f"(λmax = {lam:.4g}, so 2/λmax = {2 / lam:.3g}): each step overshoots along that direction. Training "
                             "may still go on at this edge of stability, but a learning rate below 2/λmax would descend steadily."),
                             {"sharpness_x_lr": sharp, "sharpness": lam, "threshold": 2.0}))
        if "loss" in metrics:
            self._loss(step, metrics["loss"])

    def epoch(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """An epoch's end: its train_loss and (with a validation part) val_loss."""
        state, s = self.state, self.settings
        if "val_loss" not in metrics or "train_loss" not in metrics:
            return
        state.val.append(metrics["val_loss"])
        state.train.append(metrics["train_loss"])
        best = min(range(len(state.val)), key=state.val.__getitem__)
        since = len(state.val) - 1 - best  # epochs since the best validation loss
        rising = since >= s.overfit_epochs and all(v >= state.val[best] * (1 + s.overfit_margin) for v in state.val[best + 1:][-s.overfit_epochs:]) \
            and state.train[-1] < state.train[best]
        key = "overfitting/"
        if rising and key not in state.active:
            self._begin(key, Diagnosis("overfitting", step, (
                f"The validation loss has risen for {since} epochs since its best ({state.val[best]:.4g} at epoch {best + 1}, now "
                f"{state.val[-1]:.4g}) while the training loss kept falling: the network is learning the training set's noise."),
                {"best_val_loss": state.val[best], "best_epoch": best + 1, "val_loss": state.val[-1], "train_loss": state.train[-1],
                 "epochs": s.overfit_epochs, "margin": s.overfit_margin}))
        elif not rising and key in state.active and since == 0:
            self._end(key, step)

    def diverged(self, step: int, quantity: str, value: Any) -> None:
        self._begin("diverged/", Diagnosis("diverged", step, (
            f"Training diverged at step {step}: the {quantity} left the finite numbers. The learning rate is probably too large "
            "(or the inputs are not standardised)."), {"quantity": quantity, "value": value}))

    # -- the events and the state ----------------------------------------------------------------
    def drain(self) -> list[dict[str, Any]]:
        """The events since the last drain: `{"event": "began" | "ended", **diagnosis}`."""
        events, self._events = self._events, []
        return events

    @property
    def found(self) -> list[dict[str, Any]]:
        return self.state.found

    def state_dict(self) -> dict[str, Any]:
        """The diagnoser's state as JSON (the checkpoint's meta holds it)."""
        state = asdict(self.state)
        state["unit_runs"] = {key: runs.tolist() for key, runs in self.state.unit_runs.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = _State(**{**state, "unit_runs": {key: np.array(runs, dtype=np.int64) for key, runs in state["unit_runs"].items()}})

    # -- the rules -------------------------------------------------------------------------------
    def _units_condition(self, what: str, name: str, units: int, step: int, enough: bool, mask: Any) -> None:
        """Dead or saturated units: a unit counts once it has been so on `need` recorded steps in a row."""
        state, s = self.state, self.settings
        kind = "dead_units" if what == "dead" else "saturated_units"
        runs = state.unit_runs.get(f"{what}/{name}")
        if not enough or mask is None:  # too few this step, so too few in a row: the tracking stops
            if runs is not None:
                del state.unit_runs[f"{what}/{name}"]
                del state.unit_steps[f"{what}/{name}"]
            for key in (f"{kind}/{name}", f"layer_dead/{name}"):
                if key in state.active:
                    self._end(key, step)
            return
        runs = np.where(mask, (runs if runs is not None else 0) + 1, 0)  # per unit: recorded steps in a row it has been so
        state.unit_runs[f"{what}/{name}"] = runs
        steps = state.unit_steps.setdefault(f"{what}/{name}", [])  # the recorded steps since the tracking began, the last `need`
        steps.append(step)
        if len(steps) > self.need:
            del steps[0]
        confirmed_mask = runs >= self.need
        count = int(np.count_nonzero(confirmed_mask))
        threshold = s.dead_fraction if what == "dead" else s.saturated_fraction
        holds = count >= threshold * units
        confirmed = np.flatnonzero(confirmed_mask).tolist() if holds or count == units else []
        since = steps[0]  # dated to the first of the `need` recorded steps the units have been so
        key = f"{kind}/{name}"
        if holds and key not in state.active:
            if what == "dead":
                sentence = (f"{len(confirmed)} of {units} units of {name} ({_units(confirmed)}) have been dead since step {since}: "
                            "their pre-activation z is ≤ 0 for every sample, so their gradient is exactly zero and they do not learn "
                            "again (a learning rate that overshoots, or a bad initialisation).")
            else:
                sentence = (f"{len(confirmed)} of {units} units of {name} ({_units(confirmed)}) have been saturated since step {since}: "
                            "their output sits at the activation's bound for every sample, where its derivative is nearly zero, "
                            "so the gradient through them vanishes.")
            if self.few_samples:
                sentence += f" (Seen on only {self.n_train} training samples: too few to be sure.)"
            self._begin(key, Diagnosis(kind, since, sentence, {"units": confirmed, "of": units, "fraction": len(confirmed) / units,
                                                                "threshold": threshold, "recorded_steps": self.need}, layer=name,
                                       severity="info" if self.few_samples else ""))
        elif not holds and key in state.active:
            self._end(key, step)
        if what == "dead":
            everyone, dead_key = len(confirmed) == units, f"layer_dead/{name}"
            if everyone and dead_key not in state.active:
                self._begin(dead_key, Diagnosis("layer_dead", since, (
                    f"Every unit of {name} has been dead since step {since}: nothing passes through it, so no layer before it can learn "
                    "and the network's output no longer depends on its input."
                    + (f" (Seen on only {self.n_train} training samples: too few to be sure.)" if self.few_samples else "")),
                    {"units": units, "recorded_steps": self.need}, layer=name, severity="info" if self.few_samples else ""))
            elif not everyone and dead_key in state.active:
                self._end(dead_key, step)

    def _streak(self, kind: str, layer: str | None, step: int, holds: bool, make: Any) -> None:
        """A condition that must hold on `need` recorded steps in a row; dated to the first of them."""
        state = self.state
        key = f"{kind}/{layer or ''}"
        since, count = state.streaks.get(key, [-1, 0])
        if holds:
            since, count = (step, 1) if count == 0 else (since, count + 1)
            state.streaks[key] = [since, count]
            if count >= self.need and key not in state.active:
                diagnosis = make(since)
                diagnosis.layer = layer
                self._begin(key, diagnosis)
        else:
            state.streaks.pop(key, None)
            if key in state.active:
                self._end(key, step)

    def _gradient_growth(self, step: int, metrics: dict[str, float]) -> None:
        if self.weight_norms is None:
            self.weight_norms = [k for k in metrics if k.startswith("grad_norm/") and k.endswith(".weight")]
        if not self.weight_norms or self.weight_norms[0] not in metrics:
            return
        largest = max(map(metrics.__getitem__, self.weight_norms))
        state, s = self.state, self.settings
        if state.first_grad is None:
            state.first_grad = largest
            return
        growth = largest / state.first_grad if state.first_grad > 0 else 0.0
        if growth < s.exploding_growth and "exploding_gradients/" not in state.streaks:
            return
        self._streak("exploding_gradients", None, step, growth >= s.exploding_growth,
                     lambda since: Diagnosis("exploding_gradients", since, (
                         f"The gradient has grown to {growth:.3g} times its size at the first recorded step (past {s.exploding_growth:g}×) "
                         f"since step {since}: the updates are getting larger each step, and training is about to diverge."),
                         {"growth": growth, "threshold": s.exploding_growth, "grad_norm": largest}))

    def _loss(self, step: int, loss: float) -> None:
        """Windows of recorded losses: `loss_rising` when a window's median is above where training started
        (full batches: the first loss; else the first window's median) or `loss_rise` above the best window's;
        `plateau` when the best window's median has not improved by `plateau_tolerance` over `plateau_windows`."""
        state, s = self.state, self.settings
        if state.start_loss is None and self.full_batch:
            state.start_loss = loss
        if not state.window:
            state.window_since = step
        state.window.append(loss)
        if len(state.window) < self.loss_window:
            return
        median, since = statistics.median(state.window), state.window_since
        state.window = []
        if state.start_loss is None:
            state.start_loss = median
        best = min(state.medians, default=math.inf)
        state.medians.append(median)
        above_start = median > state.start_loss * (1 + 1e-9) if self.full_batch or len(state.medians) > 1 else False
        # risen from its best by `loss_rise` of the progress made since the start (relative to that
        # progress, not to the loss: a loss near zero wobbles by large fractions of itself)
        rose = best < state.start_loss and median - best >= s.loss_rise * (state.start_loss - best)
        key = "loss_rising/"
        if (above_start or rose) and key not in state.active:
            reference, what = (state.start_loss, "where it started") if above_start else (best, "its best")
            self._begin(key, Diagnosis("loss_rising", since, (
                f"The loss has risen since step {since}: over {self.loss_window} recorded steps its median is {median:.4g}, above "
                f"{what} ({reference:.4g}){'' if above_start else f', giving back {100 * s.loss_rise:g}% or more of the progress made'}. "
                "The learning rate is probably too large: each step overshoots the minimum."),
                {"median_loss": median, "reference": reference, "window": self.loss_window, "rise": s.loss_rise}))
        elif not (above_start or rose) and key in state.active:
            self._end(key, step)
        state.window_starts.append(since)
        medians, key = state.medians, "plateau/"
        if len(medians) > s.plateau_windows:
            before, recent = min(medians[:-s.plateau_windows]), min(medians[-s.plateau_windows:])
            flat = recent > before * (1 - s.plateau_tolerance) and "loss_rising/" not in state.active  # rising is said already
            if flat and key not in state.active:
                began = state.window_starts[-s.plateau_windows]
                self._begin(key, Diagnosis("plateau", began, (
                    f"The loss has not improved since step {began}: its best median over the last {s.plateau_windows} windows of "
                    f"{self.loss_window} recorded steps ({recent:.4g}) is not {100 * s.plateau_tolerance:g}% below the best before "
                    f"({before:.4g}). Training has converged, or is stuck (a smaller learning rate, or a schedule, may go further)."),
                    {"best_before": before, "best_recent": recent, "windows": s.plateau_windows, "tolerance": s.plateau_tolerance}))
            elif not flat and key in state.active:
                self._end(key, step)

    def _begin(self, key: str, diagnosis: Diagnosis) -> None:
        entry = diagnosis.as_dict()
        self.state.active[key] = len(self.state.found)
        self.state.found.append(entry)
        self._events.append({"event": "began", **entry})

    def _end(self, key: str, step: int) -> None:
        entry = self.state.found[self.state.active.pop(key)]
        entry["ended_step"] = step
        self._events.append({"event": "ended", **entry})
