"""Losses: the mean over the batch (and over outputs for mse and bce), as in PyTorch, one per member.

Arrays carry the trainer's leading member axis: `A`, `Z` are `(K, n, outputs)`; `Y` has the same
shape, or `(n, outputs)` when every member trains on the same batch. `value(A, Z, Y)` is each
member's loss, `(K,)` in float64; `grad(A, Z, Y)` is dL/dA, or dL/dZ for the fused losses
(sigmoid + bce, softmax + cross-entropy), which read the logits Z and never take log of a
saturated probability. Y always has the output's shape (class labels arrive one-hot).

Every sum runs over one member's own entries (the last two axes), so what a member gets never
depends on how many members share the arrays or where it sits among them.
"""

from __future__ import annotations

import numpy as np


class Loss:
    name = ""
    fused = False  # True: grad() is dL/dZ of the output layer, the activation's backward is skipped

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def r_grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray, RA: np.ndarray) -> np.ndarray:
        """R(grad): the directional derivative of `grad` along R(a) (engine/curvature.py); for the fused
        losses R(a) is the output activation's R-forward of R(z)."""
        raise NotImplementedError


class MSE(Loss):
    name = "mse"

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        diff = A - Y
        return _member_sum(np.square(diff, out=diff)) / _entries(A)

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # d/dA mean((A - Y)^2) = 2 (A - Y) / N, N a member's outputs × samples
        diff = A - Y
        diff *= 2.0 / _entries(A)
        return diff

    def r_grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray, RA: np.ndarray) -> np.ndarray:
        return RA * (2.0 / _entries(A))


class BCE(Loss):
    """Binary cross-entropy of outputs read as probabilities (any output activation)."""

    name = "bce"

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -_member_sum(Y * np.log(A) + (1 - Y) * np.log1p(-A)) / _entries(A)

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # dL/dA = (A - Y) / (A (1 - A)) / N
        with np.errstate(divide="ignore", invalid="ignore"):
            return (A - Y) / (A * (1 - A) * _entries(A))

    def r_grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray, RA: np.ndarray) -> np.ndarray:
        # d/da (a - y) / (a (1 - a)) = [a (1 - a) - (a - y)(1 - 2a)] / (a (1 - a))²
        with np.errstate(divide="ignore", invalid="ignore"):
            p = A * (1 - A)
            return RA * (p - (A - Y) * (1 - 2 * A)) / (p * p * _entries(A))


class SigmoidBCE(Loss):
    """BCE fused with the sigmoid: computed from the logits."""

    name = "bce"
    fused = True

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # -[y log s(z) + (1-y) log(1-s(z))] = log(1 + exp(z)) - z y, with log(1 + e^z) = max(z, 0) + log(1 + e^-|z|)
        # (logaddexp(0, z), written out: NumPy's logaddexp is scalar code, several times slower than these ufuncs)
        softplus = np.log1p(np.exp(-np.abs(Z)))
        softplus += np.maximum(Z, 0)
        return _member_sum(softplus - Z * Y) / _entries(Z)

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # dL/dZ = (s(z) - y) / N: the sigmoid's derivative cancels the BCE's denominators
        return (A - Y) / _entries(A)

    def r_grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray, RA: np.ndarray) -> np.ndarray:
        return RA / _entries(A)  # R((s - y) / N) = R(s) / N


class CrossEntropy(Loss):
    """Cross-entropy of outputs read as class probabilities (any output activation)."""

    name = "cross_entropy"

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -_member_sum(Y * np.log(A)) / A.shape[-2]

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # dL/dA = -Y / A / n
        with np.errstate(divide="ignore", invalid="ignore"):
            return -Y / (A * A.shape[-2])

    def r_grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray, RA: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return Y * RA / (A * A * A.shape[-2])  # d/da (-y / a) = y / a²


class SoftmaxCrossEntropy(Loss):
    """Cross-entropy fused with the softmax: computed from the logits with log-sum-exp."""

    name = "cross_entropy"
    fused = True

    def value(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # -sum y log softmax(z), with log softmax(z) = (z - max z) - log sum exp(z - max z)
        shifted = Z - Z.max(axis=-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        return -_member_sum(Y * log_probs) / Z.shape[-2]

    def grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # dL/dZ = (softmax(z) - y) / n
        return (A - Y) / Z.shape[-2]

    def r_grad(self, A: np.ndarray, Z: np.ndarray, Y: np.ndarray, RA: np.ndarray) -> np.ndarray:
        return RA / Z.shape[-2]  # R((softmax - y) / n) = R(softmax) / n


def _entries(A: np.ndarray) -> int:
    """One member's outputs × samples: what mse and bce average over."""
    return A.shape[-2] * A.shape[-1]


def _member_sum(a: np.ndarray) -> np.ndarray:
    """Each member's sum of its entries, `(K,)` in float64 (the sum itself in the arrays' dtype, pairwise
    over the member's contiguous block, whatever K is)."""
    sums = np.add.reduce(a.reshape(a.shape[0], -1), axis=1)
    return sums if sums.dtype == np.float64 else sums.astype(np.float64)


def make_loss(name: str, output_activation: str) -> Loss:
    """The loss for a spec, fused with the output activation where the pair allows it."""
    if name == "bce":
        return SigmoidBCE() if output_activation == "sigmoid" else BCE()
    if name == "cross_entropy":
        return SoftmaxCrossEntropy() if output_activation == "softmax" else CrossEntropy()
    return MSE()
