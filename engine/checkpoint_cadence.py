"""How often a job keeps a checkpoint for its replays and forks, and what those checkpoints cost.

A replay (engine/replay.py) trains a run again from the nearest kept state at or before the step it
wants, so the steps between two kept states bound what any replay costs. A job keeps its state after
every `every` steps (multiples of `every`, counted from the run's first step) and after its last step
(what `continue` starts from). `record.checkpoints` sets `every`; 0 keeps none (a replay then trains
from step 0). Left out, the cadence is chosen from the network's size:

- the largest round number of steps (1, 2 or 5 × 10ⁿ) that an estimate of this machine's step time
  (`step_seconds`, measured on the bench's networks) trains in REPLAY_SECONDS or less;
- no more than MAX_KEPT states per job (a long job keeps them further apart);
- their bytes within a quarter of the recording budget and what the rest of the recording leaves
  of it (a big network keeps fewer; one whose budget is spent keeps none), so a spec that fits its
  budget without kept checkpoints still fits it.

Kept checkpoints count in the recording budget and the owner's quota (`kept_bytes`).
"""

from __future__ import annotations

import math

import numpy as np

from .optimizers import state_names
from .spec import JobSpec

REPLAY_SECONDS = 0.5  # the replay of any step, estimated: training from its kept state at most this long
MAX_KEPT = 50  # kept states per job at the chosen cadence (and its last)
# A step's time on this machine (docs/NOTES: one core of the bench machine): a fixed cost per layer
# (Python and NumPy calls) and one per multiply-add of the forward and backward passes.
STEP_SECONDS_BASE = 15e-6
STEP_SECONDS_PER_LAYER = 15e-6
SECONDS_PER_MAC = 0.08e-9
FLOAT32_MAC_SHARE = 0.5  # a float32 multiply-add, against a float64 one: 784-256-256-10 steps 1.0 ms in float32, 1.75 ms in float64
STATE_OVERHEAD_BYTES = 4096  # an .npz's headers and the JSON of the step, random stream and epoch sums


def step_seconds(spec: JobSpec, n_params: int, batch: int) -> float:
    """An estimate of one training step's time here (2-16-16-1 at batch 32: 61 µs; measured 64 µs)."""
    per_mac = SECONDS_PER_MAC * (FLOAT32_MAC_SHARE if spec.dtype == "float32" else 1.0)
    return STEP_SECONDS_BASE + STEP_SECONDS_PER_LAYER * len(spec.model.layers) + per_mac * n_params * batch


def state_bytes(spec: JobSpec, n_params: int, n_train: int) -> int:
    """What one kept checkpoint takes: the parameters, the optimizer's buffers, the epoch's sample order."""
    slots = 1 + len(state_names(spec.optimizer))
    return n_params * np.dtype(spec.dtype).itemsize * slots + n_train * 8 + STATE_OVERHEAD_BYTES


def kept_count(every: int, total_steps: int) -> int:
    """How many states a run of `total_steps` keeps at `every`: its multiples below the last step, and the last."""
    return 0 if every == 0 else (total_steps - 1) // every + 1


def round_down(n: float) -> int:
    """The largest of 1, 2, 5, 10, 20, 50, ... not above n (at least 1)."""
    if n < 1:
        return 1
    power = 10 ** math.floor(math.log10(n))
    return next(m * power for m in (5, 2, 1) if m * power <= n)


def round_up(n: float) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... not below n."""
    candidate = round_down(n)
    while candidate < n:
        power = 10 ** math.floor(math.log10(candidate))
        candidate = next(m * power for m in (2, 5, 10) if m * power > candidate)
    return candidate


def cadence(spec: JobSpec, n_params: int, batch: int, total_steps: int, n_train: int, spare_bytes: int) -> int:
    """Steps between kept checkpoints (0: none kept): `record.checkpoints`, or the one chosen as the module says,
    with `spare_bytes` of the budget left by the rest of the recording."""
    if spec.record.checkpoints is not None:
        return spec.record.checkpoints
    size = state_bytes(spec, n_params, n_train)
    allowed = min(spare_bytes, spec.record.max_bytes // 4)
    if size > allowed:
        return 0
    every = max(round_down(REPLAY_SECONDS / step_seconds(spec, n_params, batch)), round_up(total_steps / MAX_KEPT))
    while every < total_steps and kept_count(every, total_steps) * size > allowed:
        every = round_up(every + 1)
    return every


def kept_bytes(spec: JobSpec, every: int, n_params: int, total_steps: int, n_train: int) -> int:
    """What the kept checkpoints of a run take at `every`, at most."""
    return kept_count(every, total_steps) * state_bytes(spec, n_params, n_train)
