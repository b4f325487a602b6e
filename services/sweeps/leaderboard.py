"""A sweep's points ranked by their objective: mean ± std over seeds, best first."""

from __future__ import annotations

import math
import statistics
from typing import Any

from ..store.models import TERMINAL, Job, JobStatus, Sweep


def objective_value(job: Job, metric: str) -> float | None:
    """The job's final value of the objective metric (from its summary), if it has one."""
    summary = job.summary or {}
    for key in (f"final_{metric}", metric):
        value = summary.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def leaderboard(sweep: Sweep, sweep_jobs: list[Job]) -> list[dict[str, Any]]:
    """One row per point: mean ± std over seeds of the objective, mean final loss, diverged count;
    best first (points without a value last)."""
    rows = []
    by_trial: dict[int, list[Job]] = {}
    for job in sweep_jobs:
        by_trial.setdefault(job.sweep_trial, []).append(job)
    for number, trial_jobs in sorted(by_trial.items()):
        values = [v for v in (objective_value(j, sweep.objective_metric) for j in trial_jobs) if v is not None]
        losses = [j.summary["final_loss"] for j in trial_jobs if (j.summary or {}).get("final_loss") is not None]
        unfinished = any(j.status not in TERMINAL for j in trial_jobs)
        stopped = any((j.error or {}).get("reason") == "early_stopped" for j in trial_jobs)
        rows.append({
            "trial": number, "params": trial_jobs[0].sweep_params, "jobs": sorted(j.id for j in trial_jobs),
            "seeds_done": sum(1 for j in trial_jobs if j.status in TERMINAL),
            "objective_mean": statistics.fmean(values) if values else None,
            "objective_std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
            "final_loss_mean": statistics.fmean(losses) if losses else None,
            "diverged": sum(1 for j in trial_jobs if j.status == JobStatus.diverged),
            "status": "running" if unfinished else ("early_stopped" if stopped else "done"),
        })
    sign = 1 if sweep.objective_goal == "minimize" else -1
    rows.sort(key=lambda r: (r["objective_mean"] is None, sign * (r["objective_mean"] or 0.0), r["trial"]))
    return rows
