"""K ≥ 1 multilayer perceptrons of one architecture, on a leading member axis: forward caches what
backward needs, backward fills gradients and never touches parameters (the optimizer is their only
writer). A job trained alone is K = 1.

Layer l computes `Z_l = A_{l-1} @ W_l.T + b_l`, `A_l = f_l(Z_l)`, with `W_l` of shape `(K, out, in)`.
Arrays are member-first, then batch: `Z_l, A_l, delta_l (K, n, units_l)`; the input `X` is `(n, in)`
when every member sees the same batch, else `(K, n, in)`. Per-batch-size buffers are reused across
steps so the hot loop allocates as little as possible.

All parameters live in one array (`flat_params`, `(K, P)`: a member's row is its flat vector) and all
gradients in another (`flat_grads`); each layer's `W`, `b`, `dW`, `db` are views into them. The
optimizer, the divergence check and checkpoints then work on one array instead of one per tensor.

What a member computes never depends on K or on its place: each product is one BLAS call per
member (NumPy's stacked matmul calls it member by member), each reduction runs over the member's
own entries, and each elementwise rule is the same for every entry.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .activations import Activation
from .losses import Loss

# A layer with at least this many weights is wide: its products are one 2-D BLAS call per member
# (multithreaded, at its peak). A narrow layer's are NumPy's stacked matmul (its one dispatch beats K
# calls), which hands each member's block to BLAS as a 2-D call of its own. Both read Wᵀ and δᵀ as
# transposed views, which BLAS takes as they are (a contiguous copy would cost a pass and change
# nothing: with NumPy 2.4 a view is as fast). Which form a layer takes depends on its shape alone, so a
# member's products are the same BLAS calls whatever K is (tests/engine/test_stacked.py holds it).
WIDE_LAYER_WEIGHTS = 16_384


@dataclass
class _Buffers:
    Z: list[np.ndarray]  # (K, n, units): what recording and traces read
    A: list[np.ndarray]
    Zv: list[np.ndarray]  # the same memory as the loop works on it (one member: its (n, units) block)
    Av: list[np.ndarray]
    dA: list[np.ndarray]  # dL/dA of each layer's input (as Zv, the previous layer's shape): backward's products land here
    dropped: list[np.ndarray | None] = field(default_factory=list)
    masks: list[np.ndarray | None] = field(default_factory=list)


class Network:
    """Dense layers of K members plus the gradients of their parameters (`dW`, `db`, same shapes)."""

    def __init__(self, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], activations: Sequence[Activation],
                 dropout: float = 0.0) -> None:
        """`weights[l]` is `(K, out, in)` (or `(out, in)` for one member), `biases[l]` `(K, out)` (or `(out,)`)."""
        weights = [w if w.ndim == 3 else w[None] for w in weights]
        biases = [b if b.ndim == 2 else b[None] for b in biases]
        self.activations = list(activations)
        self.dropout = dropout
        self.members = weights[0].shape[0]
        dtype = weights[0].dtype
        self.shapes = [s for w, b in zip(weights, biases, strict=True) for s in (w.shape[1:], b.shape[1:])]
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.flat_params = np.empty((self.members, sum(sizes)), dtype=dtype)
        self.flat_grads = np.zeros_like(self.flat_params)
        self.slices: list[slice] = []
        start = 0
        for size in sizes:
            self.slices.append(slice(start, start + size))
            start += size
        self.starts = np.array([s.start for s in self.slices], dtype=np.intp)  # for segmented reductions
        self.sizes = np.array(sizes, dtype=np.float64)
        self.W, self.b = self.split(self.flat_params)[0::2], self.split(self.flat_params)[1::2]
        self.dW, self.db = self.split(self.flat_grads)[0::2], self.split(self.flat_grads)[1::2]
        for W, b, w, bias in zip(self.W, self.b, weights, biases, strict=True):
            W[...], b[...] = w, bias
        # What the forward and backward loops work on: the member-first arrays, or for one member its own
        # 2-D blocks of the same memory (the same BLAS calls and ufuncs on the same numbers, without
        # broadcasting over a member axis of one: a job trained alone pays nothing for stacking).
        self.single = self.members == 1
        one = (lambda arrays: [a[0] for a in arrays]) if self.single else (lambda arrays: list(arrays))
        self.WT = [W.transpose(0, 2, 1) for W in self.W]  # views: Wᵀ without a copy
        self._Wv, self._dWv, self._dbv, self._WTv = one(self.W), one(self.dW), one(self.db), one(self.WT)
        self._wide = [W.shape[1] * W.shape[2] >= WIDE_LAYER_WEIGHTS for W in self.W]
        self._db_rows = [db[None, :] for db in self._dbv] if self.single else [db[:, None, :] for db in self._dbv]
        self._bv = [b[0] for b in self.b] if self.single else [b[:, None, :] for b in self.b]  # each member's bias over its batch
        # Names as metric keys use them: layers dense_1, dense_2, …; tensors dense_1.weight, dense_1.bias, …
        self.names = tuple(f"dense_{i + 1}" for i in range(len(self.W)))
        self.param_names = tuple(f"{name}.{kind}" for name in self.names for kind in ("weight", "bias"))
        self.hinged = tuple(i for i, a in enumerate(self.activations) if a.hinge_at_zero)  # ReLU-family layers
        self.deltas: list[np.ndarray] | None = None  # filled by backward(keep_deltas=True)
        self._buffers: dict[int, _Buffers] = {}
        self._last: _Buffers | None = None

    @classmethod
    def stack(cls, networks: Sequence[Network]) -> Network:
        """One network of all the members of `networks`, in order (their parameters copied)."""
        first = networks[0]
        weights = [np.concatenate([n.W[i] for n in networks]) for i in range(len(first.W))]
        biases = [np.concatenate([n.b[i] for n in networks]) for i in range(len(first.b))]
        return cls(weights, biases, first.activations, first.dropout)

    def take(self, members: Sequence[int]) -> Network:
        """A network of some of the members (their parameters copied), in the order given."""
        index = list(members)
        return Network([W[index] for W in self.W], [b[index] for b in self.b], self.activations, self.dropout)

    # -- parameters ---------------------------------------------------------------------------

    def params(self) -> list[np.ndarray]:
        """Parameter tensors in a fixed order: W1, b1, W2, b2, ... (each with the member axis)."""
        return [p for pair in zip(self.W, self.b, strict=True) for p in pair]

    def grads(self) -> list[np.ndarray]:
        """Gradients in the order of `params()`."""
        return [g for pair in zip(self.dW, self.db, strict=True) for g in pair]

    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        """An array laid out like `flat_params` (`(K, P)`, or one member's `(P,)`) as one view per tensor."""
        lead = flat.shape[:-1]
        return [flat[..., s].reshape(lead + shape) for s, shape in zip(self.slices, self.shapes, strict=True)]

    # -- forward and backward -----------------------------------------------------------------
    def _buffers_for(self, n: int) -> _Buffers:
        buf = self._buffers.get(n)
        if buf is None:
            dtype = self.flat_params.dtype
            shapes = [(self.members, n, W.shape[1]) for W in self.W]
            Z, A = [np.empty(s, dtype) for s in shapes], [np.empty(s, dtype) for s in shapes]
            view = (lambda arrays: [a[0] for a in arrays]) if self.single else (lambda arrays: arrays)
            buf = _Buffers(Z=Z, A=A, Zv=view(Z), Av=view(A), dA=[np.empty(z.shape, dtype) for z in view(Z)],
                           dropped=[None] * len(shapes), masks=[None] * len(shapes))
            self._buffers[n] = buf
        return buf

    def forward(self, X: np.ndarray, rngs: Sequence[np.random.Generator] | None = None) -> np.ndarray:
        """Outputs `(K, n, out)` for `X`; with `rngs` (one per member), hidden activations get inverted
        dropout, each member's mask drawn from its own generator."""
        buf = self._buffers_for(X.shape[-2])
        self._last = buf
        train_dropout = rngs is not None and self.dropout > 0
        A_prev = X[0] if self.single and X.ndim == 3 else X
        last = len(self.W) - 1
        for i, (WT, b, activation) in enumerate(zip(self._WTv, self._bv, self.activations, strict=True)):
            Z = matmul(A_prev, WT, buf.Zv[i], self._wide[i])
            Z += b
            A = activation.forward(Z, out=buf.Av[i])
            if A is not buf.Av[i]:  # the identity returns its input: the buffer gets a copy
                np.copyto(buf.Av[i], A)
                A = buf.Av[i]
            if train_dropout and i < last:
                keep = 1.0 - self.dropout
                masks = [rng.random(A.shape[-2:]) < keep for rng in rngs]
                mask = (masks[0] if self.single else np.stack(masks)).astype(A.dtype)
                mask /= keep
                buf.masks[i] = mask
                buf.dropped[i] = A_prev = A * mask
            else:
                buf.masks[i] = buf.dropped[i] = None
                A_prev = A
        return buf.A[last]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs `(K, n, out)` without dropout, in fresh arrays (safe to keep)."""
        return self.evaluate(X)[1]

    def evaluate(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(Z, A)` of the output layer without dropout, in fresh arrays."""
        A = X
        for WT, wide, b, activation in zip(self.WT, self._wide, self.b, self.activations, strict=True):
            Z = matmul(A, WT, None, wide)
            Z += b[:, None, :]
            A = activation.forward(Z, out=np.empty_like(Z))
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
        last = len(self.W) - 1
        delta = loss.grad(buf.A[last], buf.Z[last], Y)  # dL/dZ_L if fused, else dL/dA_L; (K, n, out)
        if not loss.fused:
            delta = self.activations[last].backward(buf.Z[last], buf.A[last], delta)
        if self.single:
            delta, X = delta[0], X[0] if X.ndim == 3 else X
        deltas = [None] * len(self.W) if keep_deltas else None
        for i in range(last, -1, -1):
            if keep_deltas:
                deltas[i] = delta[None].copy() if self.single else delta.copy()
            if i > 0:
                A_prev = buf.dropped[i - 1] if buf.dropped[i - 1] is not None else buf.Av[i - 1]
            else:
                A_prev = X
            # Z_i = A_prev @ W.T + b  =>  dL/dW = delta.T @ A_prev, dL/db = sum over the batch of delta (1ᵀ delta:
            # BLAS, and an order of magnitude faster than a reduction over the batch axis for a stack)
            matmul(delta.swapaxes(-1, -2), A_prev, self._dWv[i], self._wide[i])
            np.matmul(_ones(delta.shape[-2], delta.dtype), delta, out=self._db_rows[i])
            if i > 0:
                # dL/dA_prev = delta @ W (a one-unit layer's is an outer product: one multiply per entry,
                # as BLAS computes it, far faster), then through dropout's mask and the activation's derivative
                W, dA = self._Wv[i], buf.dA[i - 1]
                if delta.shape[-1] == 1:
                    np.multiply(delta, W, out=dA)
                else:
                    matmul(delta, W, dA, self._wide[i])
                if buf.masks[i - 1] is not None:
                    dA *= buf.masks[i - 1]
                delta = self.activations[i - 1].backward(buf.Zv[i - 1], buf.Av[i - 1], dA)
        self.deltas = deltas


@functools.lru_cache(maxsize=32)
def _ones(n: int, dtype: np.dtype) -> np.ndarray:
    """A row of n ones: 1ᵀ X sums X's rows."""
    return np.ones((1, n), dtype=dtype)


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None, per_member: bool) -> np.ndarray:
    """`a @ b` for each member (either may be one 2-D array shared by all members; both 2-D: one
    member's): NumPy's stacked call, or with `per_member` one 2-D call per member."""
    if not per_member or (a.ndim == 2 and b.ndim == 2):
        return np.matmul(a, b, out=out)
    members = a.shape[0] if a.ndim == 3 else b.shape[0]
    if out is None:
        out = np.empty((members, a.shape[-2], b.shape[-1]), dtype=np.result_type(a, b))
    for k in range(members):
        np.matmul(a if a.ndim == 2 else a[k], b if b.ndim == 2 else b[k], out=out[k])
    return out
