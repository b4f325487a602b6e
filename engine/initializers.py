"""Seeded weight initialisation; weights are `(out, in)`, biases start at zero."""

from __future__ import annotations

import numpy as np


def init_weights(name: str, fan_out: int, fan_in: int, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """A `(fan_out, fan_in)` weight matrix drawn by the named scheme (PyTorch's kaiming/xavier)."""
    shape = (fan_out, fan_in)
    if name == "zeros":
        return np.zeros(shape, dtype=dtype)
    if name == "he_normal":
        W = rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)
    elif name == "he_uniform":
        bound = np.sqrt(6.0 / fan_in)
        W = rng.uniform(-bound, bound, size=shape)
    elif name == "glorot_normal":
        W = rng.normal(0.0, np.sqrt(2.0 / (fan_in + fan_out)), size=shape)
    elif name == "glorot_uniform":
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-bound, bound, size=shape)
    else:
        raise ValueError(f"model.init: unknown initialiser {name!r}")
    return W.astype(dtype, copy=False)
