"""The MLflow mirror: the only code that imports `mlflow`.

- `mirror`: one pass bringing a job's run up to date with the store (points after the cursor,
  artifacts and final status once it ended), the periodic back-fill, the live mirror of a running job;
- `run_content`: what a run holds (params, tags, point strides, artifacts);
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
