"""Built-in datasets: the post's five samples, seeded synthetic sets, and real data shipped inside
scikit-learn (loaded from the package; nothing is downloaded).

Each loader returns `(X, y)` with `X (n, features)` float64 and `y (n,)` integer class labels.
"""

from __future__ import annotations

import functools

import numpy as np

# The walkthrough's five samples (x1, x2) and labels.
SEED_X = [[0.5, 0.1], [0.9, 0.8], [0.2, 0.3], [0.7, 0.6], [0.4, 0.2]]
SEED_Y = [0, 1, 0, 1, 0]

DEFAULT_SAMPLES = {"xor": 200, "moons": 200, "circles": 200, "spiral": 300, "blobs": 300}
DEFAULT_NOISE = {"xor": 0.1, "moons": 0.1, "circles": 0.05, "spiral": 0.2, "blobs": 1.0}
REAL_SIZES = {"seed": 5, "iris": 150, "breast_cancer": 569, "digits": 1797}
BUILTIN_INPUTS = {"seed": 2, "xor": 2, "moons": 2, "circles": 2, "spiral": 2, "blobs": 2, "iris": 4, "breast_cancer": 30, "digits": 64}


def dataset_size(name: str, n_samples: int | None) -> int:
    """Number of samples a builtin dataset will have, known without loading it."""
    if name in REAL_SIZES:
        return REAL_SIZES[name]
    return n_samples or DEFAULT_SAMPLES[name]


def warm() -> None:
    """Import scikit-learn now (about two seconds), not on the first job that asks for its datasets:
    long-lived processes (the API, the workers) call it once at start-up."""
    import sklearn.datasets  # noqa: F401


def load_builtin(name: str, n_samples: int | None, noise: float | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`(X, y)` of a builtin dataset; synthetic ones are drawn from `seed`. The caller's own copies: the
    last sets drawn are kept, since a sweep's points of one seed draw the same set (a hundred jobs,
    five seeds: five draws, not a hundred)."""
    X, y = _drawn(name, n_samples, noise, seed)
    return X.copy(), y.copy()


@functools.lru_cache(maxsize=16)  # 16 sets: a few MB at the most samples a job may have
def _drawn(name: str, n_samples: int | None, noise: float | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if name == "seed":
        return np.array(SEED_X, dtype=np.float64), np.array(SEED_Y)
    if name in REAL_SIZES:
        return _sklearn_real(name)
    n = n_samples or DEFAULT_SAMPLES[name]
    s = DEFAULT_NOISE[name] if noise is None else noise
    rng = np.random.default_rng(seed)
    if name == "xor":
        return _xor(n, s, rng)
    if name == "spiral":
        return _spiral(n, s, rng)
    from sklearn import datasets as skd

    random_state = int(rng.integers(2**31 - 1))
    if name == "moons":
        return skd.make_moons(n_samples=n, noise=s, random_state=random_state)
    if name == "circles":
        return skd.make_circles(n_samples=n, noise=s, factor=0.5, random_state=random_state)
    if name == "blobs":
        return skd.make_blobs(n_samples=n, centers=3, n_features=2, cluster_std=s, random_state=random_state)
    raise ValueError(f"data.builtin: unknown dataset {name!r}")


def _sklearn_real(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets as skd

    loader = {"iris": skd.load_iris, "breast_cancer": skd.load_breast_cancer, "digits": skd.load_digits}[name]
    X, y = loader(return_X_y=True)
    return X.astype(np.float64), y


def _xor(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Points around the four corners of the unit square; label = x1 XOR x2."""
    corners = rng.integers(0, 2, size=(n, 2))
    X = corners + rng.normal(0.0, noise, size=(n, 2))
    return X, corners[:, 0] ^ corners[:, 1]


def _spiral(n: int, noise: float, rng: np.random.Generator, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """`classes` interleaved spiral arms (the CS231n toy set)."""
    y = np.arange(n) % classes
    r = rng.uniform(0.0, 1.0, size=n)
    theta = y * (2 * np.pi / classes) + r * 4.0 + rng.normal(0.0, noise, size=n)
    X = np.column_stack([r * np.sin(theta), r * np.cos(theta)])
    return X, y
