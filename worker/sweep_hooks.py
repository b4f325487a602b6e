"""What a worker does for sweeps: report a job's objective to Optuna's pruner as it trains, and
advance the sweep (tell results, queue new points) when one of its jobs ends."""

from __future__ import annotations

import logging

import optuna
from sqlalchemy.orm import Session, sessionmaker

from services.settings import Settings
from services.store.db import session_factory
from services.store.jobs import Claimed
from services.store.models import Sweep
from services.sweeps import advance, study

logger = logging.getLogger(__name__)


class EarlyStopping:
    """Reports the objective metric of the first seed of a point; the pruner may stop the job.
    The study is loaded once per job, not at every report."""

    def __init__(self, sweep: Sweep, trial_number: int, settings: Settings) -> None:
        self.sweep_id, self.database_url = sweep.id, settings.database_url
        self.metric = sweep.request["objective"]["metric"]
        self.rule = sweep.request["early_stop"]["rule"]
        self.study: optuna.Study = study.load_study(sweep, settings.database_url)
        self.trial = study.trial_id(self.study, settings.database_url, trial_number)

    @classmethod
    def for_job(cls, sessions: sessionmaker[Session], job: Claimed, settings: Settings) -> EarlyStopping | None:
        """For the first seed of a point of a sweep with an early-stopping rule; None otherwise."""
        if job.sweep_id is None or job.sweep_seed != 0:
            return None
        with sessions() as session:
            sweep = session.get(Sweep, job.sweep_id)
        if sweep is None or not sweep.request.get("early_stop"):
            return None
        try:
            return cls(sweep, job.sweep_trial, settings)
        except Exception:  # pruning is advice: the job trains without it
            logger.exception("sweep %s: no early stopping for trial %s", sweep.id, job.sweep_trial)
            return None

    def should_stop(self, step: int, value: float) -> bool:
        try:
            return study.report(self.study, self.database_url, self.trial, step, value)
        except Exception:
            logger.exception("sweep %s: could not report trial %s", self.sweep_id, self.trial)
            return False


def after_job_ended(sweep_id: int, settings: Settings) -> None:
    """Tell Optuna what ended and queue new points (the MLflow worker finishes the parent run once it is over)."""
    advance.advance(session_factory(settings.database_url), sweep_id, settings)
