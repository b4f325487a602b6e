"""A run's state at any step, found again by training it again: training is deterministic (a job's
results depend on its spec alone), so a replay is bit for bit the run. What landscapes, replayed
steps and forks start from.

A run is a `Problem`, or a fork's lineage (`Chain`): its ancestors' problems from the first, each
with the step its child was forked at, and its own last (with None). A fork starts from its parent's
state at the fork step (`forked`: the optimizer's state fresh when the fork's optimizer is of another
kind), so replaying a fork replays its parent to that step, then the fork on from there.

A replay starts from the latest state the run kept (`Kept`: its checkpoints, engine/checkpoint_cadence.py)
at or before the step it wants, in the part of the lineage that leads there, instead of step 0.

A replay records nothing but what a last step does and computes no curvature or diagnoses: none
of them changes a parameter, a buffer or a random stream (tests/engine/test_landscapes.py holds
replayed weights `==` the run's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from .problem import Problem
from .training import StepRecord, Trainer

QUIET_EVERY = 10 ** 9  # a replay records nothing but its last step
Chain = list[tuple[Problem, int | None]]
# The states a run kept: {(part of its chain, step): a loader of `Trainer.state_dict()` after that step}.
Kept = Mapping[tuple[int, int], Callable[[], dict[str, Any]]]


def replayable(problem: Problem, record: dict[str, Any] | None = None) -> Problem:
    """A fresh copy of the problem to train again: its own network and random stream (a trainer changes
    both in place), recording nothing (or `record`'s settings), with no curvature or diagnoses."""
    spec = problem.spec
    settings = {"every": QUIET_EVERY, "gradients": "none", "trace": False, "curvature": None, **(record or {})}
    quiet = spec.model_copy(update={"record": spec.record.model_copy(update=settings), "diagnose": False})
    generator = type(problem.train_rng.bit_generator)()
    generator.state = problem.train_rng.bit_generator.state
    return replace(problem, spec=quiet, network=problem.network.take([0]), train_rng=np.random.Generator(generator))


def forked(trainer: Trainer, parent: dict[str, Any], parent_optimizer: str) -> Trainer:
    """`trainer` (of a fork's own spec) set at its parent's state: all of it, but the optimizer's when the fork's
    optimizer is of another kind (its state fresh), and only the slots the fork's optimizer keeps (momentum turned
    off drops its buffer; turned on, the buffer starts at zero)."""
    fresh = trainer.optimizer.state_dict(0)
    if trainer.spec.optimizer.name != parent_optimizer:
        state = {**parent, "optimizer": fresh}
    else:
        kept = {name: parent["optimizer"]["state"].get(name, value) for name, value in fresh["state"].items()}
        state = {**parent, "optimizer": {"t": parent["optimizer"]["t"], "state": kept}}
    trainer.load_state_dict(state)
    return trainer


def advance(trainer: Trainer, step: int) -> Trainer:
    """Train a trainer of one on to `step` (steps done); ValueError if its run ends before."""
    while trainer.step < step and not trainer.ended():
        trainer.step_all()
    if trainer.step != step:
        raise ValueError(f"step: the run ends at step {trainer.step}: it never reached step {step}")
    return trainer


class Replay:
    """A run trained again, forward only: `at(step)` is its trainer with `step` steps done (through its
    lineage's parents where the step is theirs); `recording` builds the trainer of the run's own last part
    with those record settings instead of none."""

    def __init__(self, run: Problem | Chain, recording: dict[str, Any] | None = None, kept: Kept | None = None) -> None:
        self.chain: Chain = [(run, None)] if isinstance(run, Problem) else list(run)
        self.recording = recording
        self.kept = kept or {}
        self.part = 0
        self.trainer = self._trainer(0)
        self.started_at = 0  # the step the last jump started from (0: the run's start)

    def _part_of(self, step: int, own_step: bool) -> int:
        """The part of the chain whose trainer is at `step` (taking step `step` itself, with `own_step`)."""
        for part, (_, fork_step) in enumerate(self.chain):
            if fork_step is None or step < fork_step or (step == fork_step and not own_step):
                return part
        return len(self.chain) - 1

    def _jump(self, step: int, own_step: bool) -> None:
        """Start from the latest kept state on the way to `step`, if it is ahead of where the replay is."""
        target = self._part_of(step, own_step)
        usable = [(part, at) for part, at in self.kept if part <= target and at <= step and
                  (part == target or at <= self.chain[part][1]) and (part, at) > (self.part, self.trainer.step)]
        if usable:
            part, at = max(usable)
            self.part, self.trainer = part, self._trainer(part)
            self.trainer.load_state_dict(self.kept[(part, at)]())
            self.started_at = at

    def _trainer(self, part: int) -> Trainer:
        return Trainer(replayable(self.chain[part][0], self.recording if part == len(self.chain) - 1 else None))

    def at(self, step: int, own_step: bool = False) -> Trainer:
        """The trainer after `step` steps; `own_step`: in the part that takes step `step` itself (a fork takes its
        fork step's update; the weights before it are its parent's as well)."""
        self._jump(step, own_step)
        while self.part < len(self.chain) - 1:
            fork_step = self.chain[self.part][1]
            if step < fork_step or (step == fork_step and not own_step):
                break
            parent, name = advance(self.trainer, fork_step).state_dict(), self.chain[self.part][0].spec.optimizer.name
            self.part += 1
            self.trainer = forked(self._trainer(self.part), parent, name)
        return advance(self.trainer, step)


def weights_at(run: Problem | Chain, steps: Iterable[int], kept: Kept | None = None) -> dict[int, np.ndarray]:
    """Each step's weights (after that many optimizer steps; 0 is the initialisation), flat float64, from a
    copy of the run (as it was built, untrained) trained again from its start or the states it kept."""
    replay = Replay(run, kept=kept)
    return {step: replay.at(step).network.flat_params[0].astype(np.float64) for step in sorted(set(steps))}


def state_at(run: Problem | Chain, step: int, kept: Kept | None = None) -> dict[str, Any]:
    """The run's whole state after `step` steps (`Trainer.state_dict()`: parameters, optimizer buffers, random
    stream, position, the epoch's sums), as a fork starts from it. The diagnoser's state is not in it (a replay
    diagnoses nothing)."""
    return Replay(run, kept=kept).at(step, own_step=True).state_dict()


def record_at(run: Problem | Chain, step: int, kept: Kept | None = None) -> StepRecord:
    """Step `step`'s record (0-based: the step that moves the weights after `step` steps) as a run recording it
    in full would have written it: its metrics, full gradients and backward-pass trace, bit for bit."""
    return replayed_record(run, step, kept)[0]


def replayed_record(run: Problem | Chain, step: int, kept: Kept | None = None) -> tuple[StepRecord, int]:
    """`record_at`, with the step its replay started from (a kept state's, or 0)."""
    chain: Chain = [(run, None)] if isinstance(run, Problem) else list(run)
    part = next(i for i, (_, fork_step) in enumerate(chain) if fork_step is None or step < fork_step)  # the part taking the step
    chain = [*chain[:part], (chain[part][0], None)]
    replay = Replay(chain, {"every": max(step, 1), "gradients": "full", "trace": [step]}, kept)
    trainer = replay.at(step, own_step=True)
    if trainer.ended():
        raise ValueError(f"step: the run ends at step {trainer.step}: it took no step {step}")
    done = trainer.train_step()
    if done is None or done.gradients is None or done.trace is None:  # the step diverged: nothing finite to show
        raise ValueError(f"step: the run diverged at step {step}")
    return done, replay.started_at
