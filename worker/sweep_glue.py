"""What a worker does for sweeps: report a job's objective to Optuna's pruner as it trains, and
advance the sweep (tell results, queue new points) when one of its jobs ends."""

from __future__ import annotations

import logging

from services import dispatch, sweeps
from services.db import session_factory
from services.models import Job, Sweep
from services.settings import Settings

logger = logging.getLogger(__name__)


class EarlyStopping:
    """Reports the objective metric of the first seed of a point; the pruner may stop the job."""

    def __init__(self, sweep: Sweep, trial: int, settings: Settings):
        request = sweep.request
        self.sweep, self.trial, self.settings = sweep, trial, settings
        self.metric = request["objective"]["metric"]
        self.rule = request["early_stop"]["rule"]

    @classmethod
    def for_job(cls, session, job: Job, settings: Settings) -> "EarlyStopping | None":
        if job.sweep_id is None or job.sweep_seed != 0:
            return None
        sweep = session.get(Sweep, job.sweep_id)
        if sweep is None or not sweep.request.get("early_stop"):
            return None
        return cls(sweep, job.sweep_trial, settings)

    def should_stop(self, step: int, value: float) -> bool:
        try:
            return sweeps.report(self.settings.database_url, self.sweep, self.trial, step, value)
        except Exception:  # noqa: BLE001 - pruning is advice; training goes on without it
            logger.exception("sweep %s: could not report trial %s", self.sweep.id, self.trial)
            return False


def advance_sweep_and_mirror(sweep_id: int, settings: Settings) -> None:
    """Tell Optuna what ended, queue new points; when the sweep is over, log it to its parent run."""
    with session_factory(settings.database_url)() as session:
        sweep = sweeps.advance_sweep(session, sweep_id, settings.database_url,
                                     lambda job_id: dispatch.send(session, [job_id], settings))
        finished = sweep.status == "finished"
    if finished and settings.mlflow_tracking_uri:
        from .mlflow_mirror import finish_sweep_run

        finish_sweep_run(sweep_id, settings)
