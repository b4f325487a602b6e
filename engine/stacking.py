"""What may share a trainer: jobs whose arrays have one shape and whose code paths are one.

The points of a sweep that share a shape (units, activations, batch size, optimizer rule, ...)
differ only in numbers: learning rate, momentum, weight decay, schedule, seed, data order. They
train as the members of one `Trainer` (engine/training.py), each still its own run. `stack_key` is
the one signature: the store indexes it to claim a sweep's jobs together, and the trainer checks it
before stacking members.
"""

from __future__ import annotations

import hashlib
import json

from .problem import Plan
from .spec import JobSpec

# Optimizer fields that change the code path (so the state's shape), not just a number: equal in a stack.
PATH_FIELDS = ("name", "nesterov", "amsgrad", "centered")


class NotStackable(ValueError):
    """The trainers cannot share a stack (different shapes, or at different positions)."""


def stack_key(spec: JobSpec, sizes: Plan) -> str:
    """Everything that sets an array's shape or a code path, from the spec and its sizes alone (no
    data loaded), as a short string a store can index: jobs with equal keys can share a trainer."""
    layers = [(layer.units, layer.activation, layer.alpha) for layer in spec.model.layers]
    optimizer = [getattr(spec.optimizer, f) for f in PATH_FIELDS] + [spec.optimizer.schedule.name]
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
