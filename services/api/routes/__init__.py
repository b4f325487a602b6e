"""One blueprint per resource; `BLUEPRINTS` is what the app registers."""

from __future__ import annotations

from . import (
              charts,
              checkpoints,
              datasets,
              diagnoses,
              diff,
              docs,
              events,
              experiments,
              forks,
              health,
              jobs,
              landscape,
              metrics,
              pages,
              recorded_steps,
              sweeps,
              trained_model,
              webhooks,
)

BLUEPRINTS = [jobs.bp, forks.bp, datasets.bp, diagnoses.bp,
              metrics.bp, recorded_steps.bp, checkpoints.bp, trained_model.bp, events.bp, diff.bp, sweeps.bp, experiments.bp, charts.bp, landscape.bp,
              webhooks.bp, pages.bp, docs.bp, health.bp]
