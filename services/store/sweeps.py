"""Sweeps in the store, and every transition of their two states (the only writer of either):

    status        running ──(every trial created, every job ended: `finish`)──> finished
                     │  <──(POST /sweeps/{id}/extend: `extend`, more trials)──────┘
                     └────(POST /sweeps/{id}/cancel: `cancel`)───────────────> cancelled
    mirror_state  disabled (no MLflow)
                  pending ──(its parent run finished in MLflow: `unlock_mirror(..., synced)`)──> synced
                     (a failed attempt stays pending with `mirror_error`, for the back-fill)

Writes of the parent run's id and of the MLflow state happen under the sweep's mirror lock (one
MLflow worker at a time); `record_mirror` is the one write without it, for an attempt that could not
take the lock. Store functions never commit (services/store/__init__.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from . import locks, webhooks
from .columns import db_now
from .models import LOCAL_OWNER, MirrorState, Sweep, SweepStatus

ENDED = (SweepStatus.finished, SweepStatus.cancelled)
_PLAIN = {"synchronize_session": False}


def add(session: Session, *, owner: str = LOCAL_OWNER, mirrored: bool = True, **columns: Any) -> Sweep:
    """A new running sweep (`mirrored`: it will have an MLflow parent run)."""
    sweep = Sweep(owner=owner, status=SweepStatus.running, created_at=db_now(session), trials_created=0,
                  mirror_state=MirrorState.pending if mirrored else MirrorState.disabled, **columns)
    session.add(sweep)
    session.flush()
    return sweep


def trial_created(session: Session, sweep_id: int) -> None:
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(trials_created=Sweep.trials_created + 1), execution_options=_PLAIN)


def finish(session: Session, sweep_id: int, importance: dict[str, float] | None) -> bool:
    """running -> finished with its importance; False if it was not running."""
    done = session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status == SweepStatus.running)
                           .values(status=SweepStatus.finished, finished_at=db_now(session), importance=importance),
                           execution_options=_PLAIN).rowcount == 1
    if done:
        webhooks.sweep_ended(session, sweep_id)
    return done


def extend(session: Session, sweep_id: int, trials: int) -> bool:
    """running or finished -> running with `trials` more to create (its study keeps what it learned); the parent
    run is finished again in MLflow when it ends again. False if it was cancelled."""
    sweep = session.get(Sweep, sweep_id)
    done = session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status.in_((SweepStatus.running, SweepStatus.finished)))
                           .values(status=SweepStatus.running, finished_at=None, n_trials=Sweep.n_trials + trials,
                                   request={**sweep.request, "trials": sweep.n_trials + trials},
                                   mirror_state=MirrorState.pending if sweep.mirror_state != MirrorState.disabled else MirrorState.disabled),
                           execution_options=_PLAIN).rowcount == 1
    session.expire(sweep)
    return done


def cancel(session: Session, sweep_id: int) -> bool:
    """running -> cancelled; False if it was not running (its jobs are the caller's: jobs.cancel)."""
    done = session.execute(update(Sweep).where(Sweep.id == sweep_id, Sweep.status == SweepStatus.running)
                           .values(status=SweepStatus.cancelled, finished_at=db_now(session)), execution_options=_PLAIN).rowcount == 1
    if done:
        webhooks.sweep_ended(session, sweep_id)
    return done


def lock_mirror(session: Session, sweep_id: int) -> str | None:
    """The sweep's mirror lock (its token), or None while another MLflow worker holds it."""
    return locks.acquire(session, Sweep.mirror_lock, Sweep.mirror_lock_until, sweep_id)


def unlock_mirror(session: Session, sweep_id: int, token: str, *, parent_run_id: str | None = None,
                  state: MirrorState | None = None, error: str | None = None) -> None:
    """Release the mirror lock, first recording what the holder did: the parent run's id, or the MLflow state reached."""
    values: dict[str, Any] = {}
    if parent_run_id is not None:
        values["mlflow_parent_run_id"] = parent_run_id
    if state is not None:
        values.update(mirror_state=state, mirror_error=error)
    if values:
        locks.extend(session, Sweep.mirror_lock, Sweep.mirror_lock_until, sweep_id, token, **values)
    locks.release(session, Sweep.mirror_lock, Sweep.mirror_lock_until, sweep_id, token)


def record_mirror(session: Session, sweep_id: int, state: MirrorState, error: str | None) -> None:
    """The MLflow state of an attempt that never got as far as the lock (MLflow down, another holder)."""
    session.execute(update(Sweep).where(Sweep.id == sweep_id).values(mirror_state=state, mirror_error=error), execution_options=_PLAIN)


def pending_mirrors(session: Session, limit: int) -> list[int]:
    """Ended sweeps whose parent run is not finished in MLflow yet, and whose lock is free."""
    return list(session.scalars(select(Sweep.id).where(
        Sweep.status.in_(ENDED), Sweep.mirror_state == MirrorState.pending,
        or_(Sweep.mirror_lock.is_(None), Sweep.mirror_lock_until < db_now(session))).order_by(Sweep.id).limit(limit)))
