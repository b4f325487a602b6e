"""Sweeps: a base job spec, a search space over any spec field (by dotted path), and Optuna's
samplers and pruners deciding the points through its ask-and-tell interface. No HTTP here.

- `request`: the sweep as submitted (space, strategy, seeds, objective) and the job spec of a point;
- `study`: the Optuna study (in our database): distributions, sampler, pruner, reports, importance;
- `advance`: creating a sweep, telling Optuna what ended and starting new points, cancelling;
- `leaderboard`: one row per point, mean ± std over its seeds.

A point of the space is an Optuna trial; each trial runs as `seeds` jobs (seeds base+0, base+1, …)
and is told the mean objective over them. At most `max_parallel` jobs are queued or running.
"""
