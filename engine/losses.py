"""Losses: the mean over the batch (and over outputs for mse and bce), as in PyTorch.

`value(A, Z, Y)` is the loss; `grad(A, Z, Y)` is dL/dA, or dL/dZ for the fused losses
(sigmoid + bce, softmax + cross-entropy), which read the logits Z and never take log of a
saturated probability. Y always has the output's shape (class labels arrive one-hot).
"""

from __future__ import annotations

import numpy as np


class Loss:
    name = ""
    fused = False  # True: grad() is dL/dZ of the output layer, the activation's backward is skipped

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> float:
        raise NotImplementedError

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class MSE(Loss):
    name = "mse"

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> float:
        diff = A - Y
        return float(np.vdot(diff, diff)) / diff.size

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # d/dA mean((A - Y)^2) = 2 (A - Y) / N
        diff = A - Y
        diff *= 2.0 / diff.size
        return diff


class BCE(Loss):
    """Binary cross-entropy of outputs read as probabilities (any output activation)."""

    name = "bce"

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -_mean(Y * np.log(A) + (1 - Y) * np.log1p(-A))

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # dL/dA = (A - Y) / (A (1 - A)) / N
        with np.errstate(divide="ignore", invalid="ignore"):
            return (A - Y) / (A * (1 - A) * A.size)


class SigmoidBCE(Loss):
    """BCE fused with the sigmoid: computed from the logits."""

    name = "bce"
    fused = True

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> float:
        # -[y log s(z) + (1-y) log(1-s(z))] = log(1 + exp(z)) - z y, with log(1 + e^z) = logaddexp(0, z)
        return _mean(np.logaddexp(0, Z) - Z * Y)

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # dL/dZ = (s(z) - y) / N: the sigmoid's derivative cancels the BCE's denominators
        return (A - Y) / A.size


class CrossEntropy(Loss):
    """Cross-entropy of outputs read as class probabilities (any output activation)."""

    name = "cross_entropy"

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(-(Y * np.log(A)).sum() / A.shape[0])

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # dL/dA = -Y / A / n
        with np.errstate(divide="ignore", invalid="ignore"):
            return -Y / (A * A.shape[0])


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy fused with the softmax: computed from the logits with log-sum-exp."""

    name = "cross_entropy"
    fused = True

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> float:
        shifted = Z - Z.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return float(-(Y * log_probs).sum() / Z.shape[0])

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # dL/dZ = (softmax(z) - y) / n
        return (A - Y) / Z.shape[0]


def _mean(a: np.ndarray) -> float:
    """Mean of all entries (np.add.reduce directly: .mean() costs microseconds of Python on tiny arrays)."""
    return float(np.add.reduce(a, axis=None)) / a.size


def make_loss(name: str, output_activation: str) -> Loss:
    """The loss for a spec, fused with the output activation where the pair allows it."""
    if name == "bce":
        return SigmoidBCE() if output_activation == "sigmoid" else BCE()
    if name == "cross_entropy":
        return SoftmaxCrossEntropy() if output_activation == "softmax" else CrossEntropy()
    return MSE()
