"""A multilayer perceptron of dense layers: forward caches what backward needs, backward fills
gradients and never touches parameters (the optimizer is their only writer).

Layer l computes `Z_l = A_{l-1} @ W_l.T + b_l`, `A_l = f_l(Z_l)`, with `W_l` of shape `(out, in)`.
Arrays are batch-first: `X (n, in)`, `Z_l, A_l, delta_l (n, units_l)`. Per-batch-size buffers are
reused across steps so the hot loop allocates as little as possible.

All parameters live in one flat vector (`flat_params`) and all gradients in another (`flat_grads`);
each layer's `W`, `b`, `dW`, `db` are views into them. The optimizer, the divergence check and
checkpoints then work on one array instead of one per tensor, which is most of the per-step Python
cost of small networks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .activations import Activation
from .losses import Loss


@dataclass
class Dense:
    W: np.ndarray  # (out, in)
    b: np.ndarray  # (out,)
    activation: Activation


@dataclass
class _Buffers:
    Z: list[np.ndarray]
    A: list[np.ndarray]
    dA: list[np.ndarray]
    dropped: list[np.ndarray | None] = field(default_factory=list)
    masks: list[np.ndarray | None] = field(default_factory=list)


class Network:
    """Dense layers plus the gradients of their parameters (`dW`, `db`, same shapes)."""

    def __init__(self, layers: list[Dense], dropout: float = 0.0) -> None:
        self.layers = layers
        self.dropout = dropout
        dtype = layers[0].W.dtype
        sizes = [a.size for layer in layers for a in (layer.W, layer.b)]
        self.flat_params = np.empty(sum(sizes), dtype=dtype)
        self.flat_grads = np.zeros(sum(sizes), dtype=dtype)
        self.slices: list[slice] = []
        start = 0
        for size in sizes:
            self.slices.append(slice(start, start + size))
            start += size
        self.starts = np.array([s.start for s in self.slices], dtype=np.intp)  # for segmented reductions
        self.sizes = np.array(sizes, dtype=np.float64)
        self.dW, self.db = [], []
        for i, layer in enumerate(layers):
            w_slice, b_slice = self.slices[2 * i], self.slices[2 * i + 1]
            W = self.flat_params[w_slice].reshape(layer.W.shape)
            W[...] = layer.W
            b = self.flat_params[b_slice]
            b[...] = layer.b
            layer.W, layer.b = W, b
            self.dW.append(self.flat_grads[w_slice].reshape(W.shape))
            self.db.append(self.flat_grads[b_slice])
        # Names as metric keys use them: layers dense_1, dense_2, …; tensors dense_1.weight, dense_1.bias, …
        self.names = tuple(f"dense_{i + 1}" for i in range(len(layers)))
        self.param_names = tuple(f"{name}.{kind}" for name in self.names for kind in ("weight", "bias"))
        self.hinged = tuple(i for i, layer in enumerate(layers) if layer.activation.hinge_at_zero)  # ReLU-family layers
        self.deltas: list[np.ndarray] | None = None  # filled by backward(keep_deltas=True)
        self._buffers: dict[int, _Buffers] = {}
        self._last: _Buffers | None = None

    # -- parameters ---------------------------------------------------------------------------

    def params(self) -> list[np.ndarray]:
        """Parameter tensors in a fixed order: W1, b1, W2, b2, ..."""
        return [p for layer in self.layers for p in (layer.W, layer.b)]

    def grads(self) -> list[np.ndarray]:
        """Gradients in the order of `params()`."""
        return [g for pair in zip(self.dW, self.db, strict=True) for g in pair]

    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        """A flat vector laid out like `flat_params`, as one view per parameter tensor."""
        return [flat[s].reshape(p.shape) for s, p in zip(self.slices, self.params(), strict=True)]


    # -- forward and backward -----------------------------------------------------------------
    def _buffers_for(self, n: int) -> _Buffers:
        buf = self._buffers.get(n)
        if buf is None:
            dtype = self.layers[0].W.dtype
            shapes = [(n, layer.W.shape[0]) for layer in self.layers]
            buf = _Buffers(
                Z=[np.empty(s, dtype) for s in shapes],
                A=[np.empty(s, dtype) for s in shapes],
                dA=[np.empty(s, dtype) for s in shapes],
                dropped=[None] * len(shapes),
                masks=[None] * len(shapes),
            )
            self._buffers[n] = buf
        return buf

    def forward(self, X: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Output of the network for `X (n, in)`; with `rng`, hidden activations get inverted dropout."""
        buf = self._buffers_for(X.shape[0])
        self._last = buf
        train_dropout = rng is not None and self.dropout > 0
        A_prev = X
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            Z = np.matmul(A_prev, layer.W.T, out=buf.Z[i])
            Z += layer.b
            A = buf.A[i] = layer.activation.forward(Z, out=buf.A[i])
            if train_dropout and i < last:
                keep = 1.0 - self.dropout
                mask = (rng.random(A.shape) < keep).astype(A.dtype)
                mask /= keep
                buf.masks[i] = mask
                buf.dropped[i] = A_prev = A * mask
            else:
                buf.masks[i] = buf.dropped[i] = None
                A_prev = A
        return buf.A[last]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs without dropout, in fresh arrays (safe to keep)."""
        return self.evaluate(X)[1]

    def evaluate(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(Z, A)` of the output layer without dropout, in fresh arrays."""
        A = X
        for layer in self.layers:
            Z = A @ layer.W.T + layer.b
            A = layer.activation.forward(Z, out=np.empty_like(Z))
        return Z, A

    @property
    def Z(self) -> list[np.ndarray]:
        """Pre-activations of the last forward pass."""
        return self._last.Z

    @property
    def A(self) -> list[np.ndarray]:
        """Activations of the last forward pass (before dropout)."""
        return self._last.A

    def backward(self, X: np.ndarray, Y: np.ndarray, loss: Loss, keep_deltas: bool = False) -> None:
        """Fill `dW`, `db` with dL/dW, dL/db for the last forward pass on `X` (targets `Y`)."""
        buf = self._last
        last = len(self.layers) - 1
        delta = loss.grad(buf.A[last], buf.Z[last], Y)  # dL/dZ_L if fused, else dL/dA_L
        if not loss.fused:
            delta = self.layers[last].activation.backward(buf.Z[last], buf.A[last], delta)
        deltas = [None] * len(self.layers) if keep_deltas else None
        for i in range(last, -1, -1):
            if keep_deltas:
                deltas[i] = delta.copy()
            if i > 0:
                A_prev = buf.dropped[i - 1] if buf.dropped[i - 1] is not None else buf.A[i - 1]
            else:
                A_prev = X
            # Z_i = A_prev @ W.T + b  =>  dL/dW = delta.T @ A_prev, dL/db = sum over the batch of delta
            np.matmul(delta.T, A_prev, out=self.dW[i])
            np.add.reduce(delta, axis=0, out=self.db[i])
            if i > 0:
                # dL/dA_prev = delta @ W, then through dropout's mask and the activation's derivative
                dA = np.matmul(delta, self.layers[i].W, out=buf.dA[i - 1])
                if buf.masks[i - 1] is not None:
                    dA *= buf.masks[i - 1]
                delta = self.layers[i - 1].activation.backward(buf.Z[i - 1], buf.A[i - 1], dA)
        self.deltas = deltas
