"""Activation functions, each with its derivative written beside it.

`forward(Z)` returns A; `derivative(Z, A)` is f'(z) elementwise; `backward(Z, A, dA)` returns dL/dZ
given dL/dA (for elementwise activations, dA × f'(z)). Shapes are `(batch, units)`. The `out`
arguments let the network reuse its buffers on the hot path.
"""

from __future__ import annotations

from typing import Never

import numpy as np


class Activation:
    name = "linear"
    # ReLU family: units whose pre-activation is <= 0 on the whole batch count as dead.
    hinge_at_zero = False

    def forward(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return Z  # identity: no copy; callers keep the returned array, not `out`

    def derivative(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        return np.ones_like(Z)  # d/dz z = 1

    def backward(self, Z: np.ndarray, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        return dA  # × 1

    def second(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        return np.zeros_like(Z)  # d²/dz² z = 0

    # Pearlmutter's R-operator (engine/curvature.py): the directional derivatives of forward and backward
    # along R(z), the change of z in a direction of the parameters.
    def r_forward(self, Z: np.ndarray, A: np.ndarray, RZ: np.ndarray) -> np.ndarray:
        """R(a) = f'(z) R(z)."""
        return self.derivative(Z, A) * RZ

    def r_backward(self, Z: np.ndarray, A: np.ndarray, RZ: np.ndarray, dA: np.ndarray, RdA: np.ndarray) -> np.ndarray:
        """R(dL/dz) = f''(z) R(z) dL/da + f'(z) R(dL/da)."""
        return self.second(Z, A) * RZ * dA + self.derivative(Z, A) * RdA


class ReLU(Activation):
    name = "relu"
    hinge_at_zero = True

    def forward(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.maximum(Z, 0, out=out)

    def derivative(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        # relu'(z) = 1 if z > 0 else 0 (0 at z = 0, as in PyTorch)
        return (Z > 0).astype(Z.dtype)

    def backward(self, Z: np.ndarray, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        dA *= Z > 0  # × relu'(z), in place: the hot path of most networks
        return dA


class LeakyReLU(Activation):
    name = "leaky_relu"
    hinge_at_zero = True

    def __init__(self, alpha: float = 0.01) -> None:
        self.alpha = alpha

    def forward(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.where(Z > 0, Z, self.alpha * Z) if out is None else _write(out, np.where(Z > 0, Z, self.alpha * Z))

    def derivative(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        # leaky'(z) = 1 if z > 0 else alpha
        return np.where(Z > 0, 1.0, self.alpha).astype(Z.dtype)

    def backward(self, Z: np.ndarray, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        return dA * self.derivative(Z, A)

    def second(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        return np.zeros_like(Z)  # piecewise linear (at 0 the one-sided value, as torch takes it)


class ELU(Activation):
    name = "elu"
    hinge_at_zero = True

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def forward(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        A = np.where(Z > 0, Z, self.alpha * np.expm1(np.minimum(Z, 0)))
        return A if out is None else _write(out, A)

    def derivative(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        # elu'(z) = 1 if z > 0 else alpha * exp(z) = elu(z) + alpha
        return np.where(Z > 0, 1.0, A + self.alpha).astype(Z.dtype)

    def backward(self, Z: np.ndarray, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        return dA * self.derivative(Z, A)

    def second(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        # d/dz alpha (e^z - 1) = alpha e^z = a + alpha, again: alpha e^z for z <= 0; 0 above
        return np.where(Z > 0, 0.0, A + self.alpha).astype(Z.dtype)


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        # s(z) = 1 / (1 + exp(-z)); exp's argument is capped so z << 0 gives ~0 without overflow
        out = np.negative(Z, out=out)
        np.minimum(out, 700.0, out=out)
        np.exp(out, out=out)
        out += 1
        return np.reciprocal(out, out=out)

    def derivative(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        # s'(z) = s(z) (1 - s(z))
        return A * (1 - A)

    def backward(self, Z: np.ndarray, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        return dA * self.derivative(Z, A)

    def second(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        # d/dz s(1 - s) = s'(1 - 2s) = s (1 - s) (1 - 2s)
        return A * (1 - A) * (1 - 2 * A)


class Tanh(Activation):
    name = "tanh"

    def forward(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        return np.tanh(Z, out=out)

    def derivative(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        # tanh'(z) = 1 - tanh(z)^2
        return 1 - A * A

    def backward(self, Z: np.ndarray, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        return dA * self.derivative(Z, A)

    def second(self, Z: np.ndarray, A: np.ndarray) -> np.ndarray:
        # d/dz (1 - t²) = -2 t t' = -2 t (1 - t²)
        return -2 * A * (1 - A * A)


class Softmax(Activation):
    name = "softmax"

    def forward(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        shifted = Z - Z.max(axis=-1, keepdims=True)  # the last axis: units (a stack of networks adds one in front)
        out = np.exp(shifted, out=out)
        out /= out.sum(axis=-1, keepdims=True)
        return out

    def derivative(self, Z: np.ndarray, A: np.ndarray) -> Never:
        raise ValueError("softmax is not elementwise: its derivative is a Jacobian (see backward)")

    def backward(self, Z: np.ndarray, A: np.ndarray, dA: np.ndarray) -> np.ndarray:
        # Jacobian-vector product: dZ_k = a_k (dA_k - sum_j dA_j a_j)
        return A * (dA - (dA * A).sum(axis=-1, keepdims=True))

    def r_forward(self, Z: np.ndarray, A: np.ndarray, RZ: np.ndarray) -> np.ndarray:
        # R(a) = J R(z), J = diag(a) - a aᵀ per sample
        return A * (RZ - (A * RZ).sum(axis=-1, keepdims=True))

    def r_backward(self, Z: np.ndarray, A: np.ndarray, RZ: np.ndarray, dA: np.ndarray, RdA: np.ndarray) -> np.ndarray:
        # dz = a ⊙ (da - s), s = Σ da a; R(dz) = R(a) ⊙ (da - s) + a ⊙ (R(da) - Σ (R(da) a + da R(a)))
        RA = self.r_forward(Z, A, RZ)
        s = (dA * A).sum(axis=-1, keepdims=True)
        return RA * (dA - s) + A * (RdA - (RdA * A + dA * RA).sum(axis=-1, keepdims=True))


def _write(out: np.ndarray, value: np.ndarray) -> np.ndarray:
    np.copyto(out, value)
    return out


def make_activation(name: str, alpha: float | None = None) -> Activation:
    """The activation object for a spec's layer."""
    if name == "leaky_relu":
        return LeakyReLU(0.01 if alpha is None else alpha)
    if name == "elu":
        return ELU(1.0 if alpha is None else alpha)
    return {"linear": Activation, "relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh, "softmax": Softmax}[name]()
