"""Replays from kept checkpoints (engine/replay.py, engine/checkpoint_cadence.py): starting from the latest
kept state on the way is bitwise the replay from step 0, through a fork's lineage too, and the cadence
chosen bounds a replay while its bytes stay within the recording budget."""

from __future__ import annotations

import numpy as np
import pytest

from engine import checkpoint_cadence as cadence
from engine.problem import build_problem, recording_bytes
from engine.replay import Replay, forked, record_at, state_at
from engine.spec import SpecError
from engine.training import Trainer
from tests.support.specs import IRIS, moons


def _kept_while_training(spec: dict, every: int) -> tuple[dict, dict[int, np.ndarray]]:
    """The states a worker keeps at `every` (and after the last step) and the weights after every step."""
    trainer = Trainer(spec)
    kept, weights = {}, {0: trainer.network.flat_params[0].copy()}
    while not trainer.ended():
        trainer.step_all()
        weights[trainer.step] = trainer.network.flat_params[0].copy()
        if trainer.step % every == 0 or trainer.ended():
            kept[trainer.step] = trainer.state_dict()
    return kept, weights


def _loaders(states: dict[int, dict], part: int = 0, seen: list | None = None) -> dict:
    def loader(step: int):
        def load() -> dict:
            if seen is not None:
                seen.append((part, step))
            return states[step]
        return load
    return {(part, step): loader(step) for step in states}


@pytest.mark.parametrize("step", [0, 37, 40, 41, 150, 299])
def test_a_replay_from_a_kept_state_is_the_replay_from_the_start(step):
    problem = build_problem(IRIS)  # dropout, shuffled batches, adam: every part of the state is random or stateful
    states, weights = _kept_while_training(IRIS, every=40)
    loaded: list = []
    from_kept = record_at(problem, step, _loaders(states, seen=loaded))
    from_start = record_at(problem, step)
    assert from_kept.loss == from_start.loss and from_kept.metrics == from_start.metrics
    assert all(np.array_equal(from_kept.gradients[k], from_start.gradients[k]) for k in from_start.gradients)
    assert from_kept.trace == from_start.trace
    assert loaded == ([(0, step // 40 * 40)] if step >= 40 else [])  # the latest kept at or before the step, once
    replay = Replay(problem, kept=_loaders(states))
    assert np.array_equal(replay.at(step).network.flat_params[0], weights[step])
    assert replay.started_at == step // 40 * 40


def test_a_forks_replay_uses_its_parents_states_up_to_the_fork_step_and_its_own_after():
    parent_spec = moons(optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9})
    fork_spec = {**parent_spec, "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9}, "epochs": 8}
    parent_states, _ = _kept_while_training(parent_spec, every=10)  # 10, 20, 30, 40: past the fork step at 23 too
    trainer = Trainer(parent_spec)
    while trainer.step < 23:
        trainer.step_all()
    fork = forked(Trainer(fork_spec), trainer.state_dict(), "sgd")
    fork_states, weights = {}, {}
    while not fork.ended():
        fork.step_all()
        weights[fork.step] = fork.network.flat_params[0].copy()
        if fork.step % 10 == 0:
            fork_states[fork.step] = fork.state_dict()
    chain = [(build_problem(parent_spec), 23), (build_problem(fork_spec), None)]
    loaded: list = []
    kept = {**_loaders(parent_states, 0, loaded), **_loaders(fork_states, 1, loaded)}
    assert np.array_equal(Replay(chain, kept=kept).at(27).network.flat_params[0], weights[27])
    assert loaded == [(0, 20)]  # the parent's 30 and 40 are another road
    loaded.clear()
    assert np.array_equal(Replay(chain, kept=kept).at(55).network.flat_params[0], weights[55])
    assert loaded == [(1, 50)]
    assert state_at(chain, 55, kept)["step"] == 55


def test_the_default_cadence_bounds_a_replay_and_keeps_a_long_jobs_states_apart():
    spec = moons(model={"layers": [{"units": 16, "activation": "relu"}, {"units": 16, "activation": "relu"},
                                   {"units": 1, "activation": "sigmoid"}]}, batch_size=32, data={"builtin": "moons", "n_samples": 1000},
                 epochs=None, steps=100_000, record={"every": 100})
    problem = build_problem(spec)
    estimate = cadence.step_seconds(problem.spec, problem.n_params, 32)
    assert problem.kept_every == 5000 and problem.kept_every * estimate <= cadence.REPLAY_SECONDS
    assert cadence.kept_count(problem.kept_every, 100_000) == 20  # 5000, ..., 95000 and the last
    short = build_problem({**spec, "steps": 300})
    assert short.kept_every == 5000 and cadence.kept_count(short.kept_every, 300) == 1  # only the last: what `continue` needs
    longer = build_problem({**spec, "steps": 1_000_000})
    assert cadence.kept_count(longer.kept_every, 1_000_000) <= cadence.MAX_KEPT


def test_kept_checkpoints_count_in_the_budget_and_never_make_a_fitting_spec_unfit():
    base = moons(record={"every": 1, "gradients": "full"})
    without = recording_bytes(build_problem({**base, "record": {**base["record"], "checkpoints": 0}}).spec, 2, 10, 40, 8)
    chosen = build_problem(base)
    with_kept = recording_bytes(chosen.spec, 2, 10, 40, 8)
    per_state = cadence.state_bytes(chosen.spec, chosen.n_params, 80)
    assert with_kept == without + cadence.kept_count(chosen.kept_every, 40) * per_state
    tight = build_problem({**base, "record": {**base["record"], "max_bytes": without + per_state // 2}})
    assert tight.kept_every == 0  # no room left: none kept, the spec still fits
    every_step = {**base, "record": {**base["record"], "checkpoints": 1, "max_bytes": without + per_state}}
    with pytest.raises(SpecError) as refused:
        build_problem(every_step)
    assert refused.value.errors[0][0] == "record.checkpoints"


@pytest.mark.parametrize(("n", "down", "up"), [(1, 1, 1), (7, 5, 10), (10, 10, 10), (8210.5, 5000, 10_000), (0.3, 1, 1)])
def test_round_numbers(n, down, up):
    assert cadence.round_down(n) == down and cadence.round_up(n) == up
