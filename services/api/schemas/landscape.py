"""A job's loss landscape (engine/landscapes.py): what to ask for, and the grid, directions and path answered."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from engine.curvature import LANDSCAPE_MAX_POINTS

from .common import Out, Query, Step, Unset


class LandscapeQuery(Query):
    step: Step | Unset = Field(default=None, description="the weights after this many steps (default: the job's last)")
    directions: Literal["top", "random"] = Field(default="top", description="`top`: the Hessian's two sharpest directions at the "
                                                  "step (unit eigenvectors); `random`: two filter-normalised Gaussian directions "
                                                  "(Li et al., NeurIPS 2018)")
    points: int = Field(default=41, ge=5, le=LANDSCAPE_MAX_POINTS, description="grid points along each direction")
    span: float | Unset = Field(default=None, gt=0, le=1e6, description="the grid's half-width in the directions' units (default: "
                                "the path with a margin; at least 1 for random directions, a tenth of ‖θ‖ for top ones)")


class PathPoint(Out):
    step: int
    alpha: float = Field(description="coordinate along the first direction (least squares onto the plane)")
    beta: float
    loss: float | None = Field(description="the training loss at the step's own weights (null: not finite)")
    off_plane: float = Field(description="how far the step's weights lie from the plane (Euclidean)")


class Landscape(Out):
    """The training loss at θ_step + α·d₁ + β·d₂ over the grid (`loss[j][i]` at β = beta[j], α = alpha[i]; null where
    it is not finite), on `samples` rows of the training set in float64 without dropout, with the recorded steps' weights
    projected onto the plane."""

    job_id: int
    step: int
    directions: Literal["top", "random"]
    points: int
    span: float
    samples: int = Field(description="training rows the loss is taken over (every n-th row past 10,000)")
    n_params: int
    alpha: list[float]
    beta: list[float]
    loss: list[list[float | None]]
    loss_at_step: float | None
    eigenvalues: list[float] | None = Field(description="`top`: the Hessian's eigenvalues along d₁ and d₂")
    weight_norm: float = Field(description="‖θ_step‖, for the directions' scale")
    path: list[PathPoint] = Field(description="the recorded steps (at most 200, evenly chosen) and the step itself, in order")
    seconds: float = Field(description="what computing it took the worker (replay included)")
    computed_at: str
