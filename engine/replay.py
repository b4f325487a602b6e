"""A run's state at any step, found again by training it again: training is deterministic (a job's
results depend on its spec alone), so a replay is bit for bit the run. What the landscape, a fork
and a continued job start from.

A replay records nothing but what a last step does and computes no curvature or diagnoses: none
of them changes a parameter, a buffer or a random stream (tests/engine/test_landscapes.py holds
replayed weights `==` the run's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import numpy as np

from .problem import Problem
from .training import StepRecord, Trainer

QUIET_EVERY = 10 ** 9  # a replay records nothing but its last step


def replayable(problem: Problem) -> Problem:
    """A fresh copy of the problem to train again: its own network and random stream (a trainer changes
    both in place), recording nothing, with no curvature or diagnoses."""
    spec = problem.spec
    quiet = spec.model_copy(update={"record": spec.record.model_copy(update={"every": QUIET_EVERY, "gradients": "none", "trace": False,
                                                                               "curvature": None}),
                                    "diagnose": False})
    generator = type(problem.train_rng.bit_generator)()
    generator.state = problem.train_rng.bit_generator.state
    return replace(problem, spec=quiet, network=problem.network.take([0]), train_rng=np.random.Generator(generator))


def advance(trainer: Trainer, step: int) -> Trainer:
    """Train a trainer of one on to `step` (steps done); ValueError if its run ends before."""
    while trainer.step < step and not trainer.ended():
        trainer.step_all()
    if trainer.step != step:
        raise ValueError(f"the run ends at step {trainer.step}: it never reached step {step}")
    return trainer


def weights_at(problem: Problem, steps: Iterable[int]) -> dict[int, np.ndarray]:
    """Each step's weights (after that many optimizer steps; 0 is the initialisation), flat float64, from a
    copy of the problem (as it was built, untrained) trained again from the start."""
    trainer = Trainer(replayable(problem))
    return {step: advance(trainer, step).network.flat_params[0].astype(np.float64) for step in sorted(set(steps))}


def state_at(problem: Problem, step: int) -> dict[str, Any]:
    """The run's whole state after `step` steps (`Trainer.state_dict()`: parameters, optimizer buffers, random
    stream, position, the epoch's sums), from a copy of the problem trained again from the start. The
    diagnoser's state is not in it (a replay diagnoses nothing)."""
    return advance(Trainer(replayable(problem)), step).state_dict()


def record_at(problem: Problem, step: int) -> StepRecord:
    """Step `step`'s record (0-based: the step that moves the weights after `step` steps) as a run recording it
    in full would have written it: its metrics, full gradients and backward-pass trace, bit for bit."""
    base = replayable(problem)
    record = base.spec.record.model_copy(update={"every": max(step, 1), "gradients": "full", "trace": [step]})
    trainer = advance(Trainer(replace(base, spec=base.spec.model_copy(update={"record": record}))), step)
    if trainer.ended():
        raise ValueError(f"step: the run ends at step {trainer.step}: it took no step {step}")
    done = trainer.train_step()
    if done is None or done.gradients is None or done.trace is None:  # the step diverged: nothing finite to show
        raise ValueError(f"step: the run diverged at step {step}")
    return done
