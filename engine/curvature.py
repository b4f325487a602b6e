"""Curvature of a network's loss, exactly: Hessian-vector products by Pearlmutter's R-operator
(forward-over-reverse through the engine's own layers, each activation's and loss's second-order
rule written beside its first), and from them the sharpness λmax (Lanczos), the Hessian's trace
(Hutchinson's estimator, or exact for small networks) and, for networks of a few hundred parameters,
the dense Hessian and all its eigenvalues.

Why it matters: gradient descent on a quadratic diverges when η·λmax > 2, and full-batch training
drives λmax up to 2/η and hovers there (the "edge of stability", Cohen et al., ICLR 2021).

Everything works on one member's parameters as one flat float64 vector in the network's layout
(W1, b1, W2, b2, ...: `Network.param_names`), on a batch `X`, `Y`, without dropout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .activations import Activation
from .losses import Loss
from .recording import DENSE_MAX_PARAMS, TOP_EIGENVALUES  # up to DENSE_MAX_PARAMS the Hessian is built whole


@dataclass
class Curvature:
    """The loss surface at some weights on some batch: gradients and Hessian-vector products."""

    shapes: list[tuple[int, ...]]  # the parameter tensors', in layout order
    activations: list[Activation]
    loss: Loss
    X: np.ndarray
    Y: np.ndarray

    def split(self, flat: np.ndarray) -> list[np.ndarray]:
        out, at = [], 0
        for shape in self.shapes:
            size = int(np.prod(shape))
            out.append(flat[at:at + size].reshape(shape))
            at += size
        return out

    def loss_value(self, theta: np.ndarray) -> float:
        A = self.X
        tensors = self.split(theta)
        for W, b, activation in zip(tensors[::2], tensors[1::2], self.activations, strict=True):
            Z = A @ W.T + b
            A = activation.forward(Z.copy())
        return float(self.loss.value(A[None], Z[None], self.Y[None])[0])

    def hvp(self, theta: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(∇L, H v) at `theta` for a direction `v`, both flat: one forward pass with its R-forward, one
        backward pass with its R-backward (about twice a training step's work)."""
        point = self.at(theta)
        return point.gradient, point.product(v)

    def at(self, theta: np.ndarray) -> Point:
        """The surface at `theta`: its forward and backward pass done once, for any number of products."""
        return Point(self, theta)


class Point:
    """The loss surface at fixed weights: the forward pass (z, a of each layer), the backward pass (δ of each
    layer, ∂L/∂a of each hidden one) and the gradient, kept; `product(v)` adds only the R-passes for `v`
    (Lanczos and the dense Hessian ask for many products at one point)."""

    def __init__(self, surface: Curvature, theta: np.ndarray) -> None:
        self.surface = surface
        tensors = surface.split(theta)
        self.Ws, bs = tensors[::2], tensors[1::2]
        self.As, self.Zs = [surface.X], []
        for W, b, activation in zip(self.Ws, bs, surface.activations, strict=True):
            Z = self.As[-1] @ W.T + b
            self.Zs.append(Z)
            self.As.append(activation.forward(Z.copy()))
        last, loss = surface.activations[-1], surface.loss
        A, Z = self.As[-1][None], self.Zs[-1][None]
        self.dOut = loss.grad(A, Z, surface.Y[None])[0]
        dZ = self.dOut if loss.fused else last.backward(self.Zs[-1], self.As[-1], self.dOut)  # a fused loss gives dL/dz itself
        self.dZs: list[np.ndarray] = [dZ]  # output layer first
        self.dAs: list[np.ndarray] = []  # ∂L/∂a of each hidden layer, from the last
        grads: list[np.ndarray] = []
        for i in range(len(self.Ws) - 1, -1, -1):
            grads[:0] = [dZ.T @ self.As[i], dZ.sum(axis=0)]
            if i == 0:
                break
            dA = dZ @ self.Ws[i]
            dZ = surface.activations[i - 1].backward(self.Zs[i - 1], self.As[i], dA)
            self.dAs.append(dA)
            self.dZs.append(dZ)
        self.gradient = np.concatenate([g.ravel() for g in grads])

    def product(self, v: np.ndarray) -> np.ndarray:
        """H v, flat."""
        surface, Ws, As, Zs = self.surface, self.Ws, self.As, self.Zs
        directions = surface.split(v)
        VWs, Vbs = directions[::2], directions[1::2]
        RAs, RZs = [np.zeros_like(surface.X)], []
        for i, (W, VW, Vb, activation) in enumerate(zip(Ws, VWs, Vbs, surface.activations, strict=True)):
            RZ = As[i] @ VW.T + RAs[-1] @ W.T + Vb  # R(z) = R(W) a + W R(a) + R(b)
            RZs.append(RZ)
            RAs.append(activation.r_forward(Zs[i], As[i + 1], RZ))
        last, loss = surface.activations[-1], surface.loss
        RdOut = loss.r_grad(As[-1][None], Zs[-1][None], surface.Y[None], RAs[-1][None])[0]
        RdZ = RdOut if loss.fused else last.r_backward(Zs[-1], As[-1], RZs[-1], self.dOut, RdOut)
        products: list[np.ndarray] = []
        for depth, i in enumerate(range(len(Ws) - 1, -1, -1)):
            dZ = self.dZs[depth]
            products[:0] = [RdZ.T @ As[i] + dZ.T @ RAs[i], RdZ.sum(axis=0)]
            if i == 0:
                break
            RdA = RdZ @ Ws[i] + dZ @ VWs[i]
            RdZ = surface.activations[i - 1].r_backward(Zs[i - 1], As[i], RZs[i - 1], self.dAs[depth], RdA)
        return np.concatenate([p.ravel() for p in products])


def dense_hessian(surface: Curvature, theta: np.ndarray) -> np.ndarray:
    """The whole P × P Hessian, a column per unit direction (P products), made exactly symmetric."""
    P = theta.size
    H = np.empty((P, P))
    point = surface.at(theta)
    for i in range(P):
        e = np.zeros(P)
        e[i] = 1.0
        H[:, i] = point.product(e)
    return (H + H.T) / 2


def top_eigenvalues(hvp: Callable[[np.ndarray], np.ndarray], P: int, rng: np.random.Generator, k: int = 1, tol: float = 1e-6,
                    max_iter: int = 100, vectors: list[np.ndarray] | None = None) -> tuple[np.ndarray, int, bool]:
    """The k largest eigenvalues of a symmetric operator by Lanczos with full reorthogonalisation, started
    from a seeded random vector: (eigenvalues high to low, products used, converged to `tol` relative).
    Given `vectors`, their eigenvectors (Ritz vectors) are appended to it, in the same order."""
    limit = min(max_iter, P)
    Q = np.empty((limit + 1, P))
    Q[0] = rng.standard_normal(P)
    Q[0] /= np.linalg.norm(Q[0])
    alphas, betas = [], []
    previous, ritz, converged, m = None, np.zeros(0), False, 0
    while m < limit:
        w = hvp(Q[m])
        alpha = float(w @ Q[m])
        alphas.append(alpha)
        basis = Q[:m + 1]
        w -= basis.T @ (basis @ w)  # against every earlier vector (full reorthogonalisation: no ghost eigenvalues)
        m += 1
        T = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        ritz = np.linalg.eigvalsh(T)[::-1][:k]
        if previous is not None and len(ritz) == len(previous) and np.all(np.abs(ritz - previous) <= tol * np.maximum(np.abs(ritz), 1e-12)):
            converged = True
            break
        previous = ritz
        beta = float(np.linalg.norm(w))
        if beta <= 1e-12 * max(1.0, abs(alpha)):  # an invariant subspace: the Ritz values are exact
            converged = True
            break
        betas.append(beta)
        Q[m] = w / beta
    if vectors is not None:  # the Ritz vectors of the values returned, unit length
        T = np.diag(alphas) + np.diag(betas[:m - 1], 1) + np.diag(betas[:m - 1], -1)
        values, basis_T = np.linalg.eigh(T)
        order = np.argsort(values)[::-1][:k]
        vectors.extend((Q[:m].T @ basis_T[:, order]).T)
    return ritz, m, converged


def hutchinson_trace(hvp: Callable[[np.ndarray], np.ndarray], P: int, rng: np.random.Generator, probes: int) -> float:
    """tr H ≈ mean of zᵀ H z over Rademacher probes z (unbiased; its spread falls as 1/√probes)."""
    total = 0.0
    for _ in range(probes):
        z = rng.choice((-1.0, 1.0), size=P)
        total += float(z @ hvp(z))
    return total / probes


def figures(surface: Curvature, theta: np.ndarray, lr: float, rng: np.random.Generator, tol: float = 1e-4, probes: int = 10,
            top_k: int = TOP_EIGENVALUES) -> dict[str, float]:
    """What a recorded step reports of the curvature: `sharpness` (λmax), `sharpness_x_lr` (λmax·η, the
    quantity that crosses 2) and `hessian_trace`, exact up to DENSE_MAX_PARAMS parameters (from the dense
    Hessian, with the top eigenvalues `hessian_eig/1..top_k`), else λmax by Lanczos to `tol` and the trace
    by Hutchinson's estimate over `probes` probes."""
    P = theta.size
    if P <= DENSE_MAX_PARAMS:
        H = dense_hessian(surface, theta)
        eigenvalues, trace = np.linalg.eigvalsh(H)[::-1], float(np.trace(H))
        out = {"sharpness": float(eigenvalues[0]), "sharpness_x_lr": float(eigenvalues[0]) * lr, "hessian_trace": trace}
        out.update({f"hessian_eig/{i + 1}": float(e) for i, e in enumerate(eigenvalues[:top_k])})
        return out

    product = surface.at(theta).product
    top = float(top_eigenvalues(product, P, rng, tol=tol)[0][0])
    return {"sharpness": top, "sharpness_x_lr": top * lr, "hessian_trace": hutchinson_trace(product, P, rng, probes)}


# -- the landscape: the loss on a plane through the weights (Li et al., NeurIPS 2018) ---------------------
LANDSCAPE_MAX_POINTS = 101  # a side of the grid at most


def filter_normalised(shapes: list[tuple[int, ...]], theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian direction with each filter (a weight matrix's row: one unit's incoming weights) scaled to
    the norm of the same filter of `theta`, and the biases left at zero, as Li et al. normalise theirs (so
    the plane's scale follows the weights', whatever a layer's size)."""
    out, at = [], 0
    for i, shape in enumerate(shapes):
        size = int(np.prod(shape))
        if i % 2:  # a bias
            out.append(np.zeros(size))
        else:
            W = theta[at:at + size].reshape(shape)
            D = rng.standard_normal(shape)
            D *= np.linalg.norm(W, axis=1, keepdims=True) / np.maximum(np.linalg.norm(D, axis=1, keepdims=True), 1e-12)
            out.append(D.ravel())
        at += size
    return np.concatenate(out)


def top_directions(surface: Curvature, theta: np.ndarray, rng: np.random.Generator, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """The Hessian's two top eigenvectors at `theta` (the two sharpest directions), unit length."""
    vectors: list[np.ndarray] = []
    top_eigenvalues(surface.at(theta).product, theta.size, rng, k=2, tol=tol, vectors=vectors)
    return vectors[0], vectors[1]


def landscape(surface: Curvature, theta: np.ndarray, d1: np.ndarray, d2: np.ndarray, span: float = 1.0,
              points: int = 41) -> tuple[np.ndarray, np.ndarray]:
    """The loss at theta + α d1 + β d2 over a points × points grid of α, β in [-span, span]: (the grid's
    coordinates, losses[β index, α index])."""
    if not 2 <= points <= LANDSCAPE_MAX_POINTS:
        raise ValueError(f"a landscape's side is 2 to {LANDSCAPE_MAX_POINTS} points")
    axis = np.linspace(-span, span, points)
    losses = np.empty((points, points))
    for j, beta in enumerate(axis):
        for i, alpha in enumerate(axis):
            losses[j, i] = surface.loss_value(theta + alpha * d1 + beta * d2)
    return axis, losses


def project(path: list[np.ndarray], theta: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    """Where weights `path` (say, the recorded steps') lie on the plane through `theta` spanned by d1, d2:
    their least-squares coordinates (α, β), one row each."""
    basis = np.column_stack([d1, d2])
    return np.linalg.lstsq(basis, np.array([p - theta for p in path]).T, rcond=None)[0].T
