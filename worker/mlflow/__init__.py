"""The MLflow mirror: the only code that imports `mlflow`.

- `mirror`: the MLflow worker's pass: runs first, series after, then sweeps' parent runs and deletions;
- `run_state`: the run itself, first: created with params and tags, finished with summary and status as the job ends;
- `series`: the points after the cursor, a turn per job, then the artifacts and model;
- `thinning`: which points a run gets (every one up to a limit per key, min/max buckets past it);
- `batches`: `log_batch` within MLflow's limits;
- `run_content`: what a run holds (params, tags, artifacts);
- `sweep_runs`: a sweep's parent run, created once and finished once the sweep has ended;
- `experiments`: an owner's experiment, created by the service and found again by its kept id.
"""

import os

# Fail fast instead of MLflow's default minutes of retries: a later pass tries again.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
# No run links printed (each costs a get_run call) and no usage telemetry from a closed network.
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
