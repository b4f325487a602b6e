"""Every kind of problem the API answers with: its status, title and what a client should do.

A problem's `type` is the URL of its entry on this service's own page (`/docs/problems#<kind>`),
which is drawn from this table; `ApiError(kind, ...)` takes its status and title from here, so a
kind cannot be raised without being documented.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProblemKind:
    status: int
    title: str
    explanation: str


PROBLEMS: dict[str, ProblemKind] = {
    "bad-request": ProblemKind(400, "Bad request", "The body is not usable JSON: not JSON at all, not an object where one is "
                               "expected, or nested more deeply than any request of this API needs (64 levels)."),
    "bad-query": ProblemKind(400, "Bad query parameter", "A query parameter is unknown, malformed or out of range; `field` names it. "
                             "The operation's parameters are listed in the OpenAPI document."),
    "bad-idempotency-key": ProblemKind(400, "Bad Idempotency-Key", "The `Idempotency-Key` header must be 1-255 visible ASCII characters; "
                                       "a UUID is a good key."),
    "unauthorized": ProblemKind(401, "Unauthorized", "Send `Authorization: Bearer <token>`; an operator creates tokens with "
                                "`flask --app services.api tokens create NAME`. A revoked token is refused too."),
    "not-found": ProblemKind(404, "Not found", "No such resource for this owner: another owner's job or sweep is as absent as a "
                             "missing one."),
    "unknown-metric": ProblemKind(404, "Unknown metric key", "A requested metric key was never recorded by this job; `known_keys` "
                                  "lists those that were (also at `/jobs/{id}/metrics/keys`)."),
    "not-recorded": ProblemKind(404, "Not recorded", "The job did not record full gradients or a trace at that step; "
                                "`recorded_steps` lists the steps it did. Ask for them with `record.gradients: \"full\"` or "
                                "`record.trace`."),
    "method-not-allowed": ProblemKind(405, "Method not allowed", "The resource does not take this method; the `Allow` header lists those it takes."),
    "not-acceptable": ProblemKind(406, "Not acceptable", "The resource cannot be given in any of the media types the `Accept` header names."),
    "already-ended": ProblemKind(409, "Already ended", "The job or sweep already reached a final state; `status_now` says which."),
    "idempotency-key-reused": ProblemKind(409, "Idempotency-Key reused", "The key was used before with a different request; send a new "
                                          "key with a new request."),
    "sweep-running": ProblemKind(409, "Sweep still running", "The job belongs to a sweep that is still running (`sweep_id`); "
                                 "cancel the sweep or let it finish first."),
    "no-model": ProblemKind(409, "No model yet", "The trained model is stored when the job ends; wait for it (`status_now`)."),
    "not-ended": ProblemKind(409, "Not ended yet", "What was asked for is computed from a job that has ended (its steps are then "
                             "fixed); wait for it (`status_now`)."),
    "has-forks": ProblemKind(409, "Has forks", "Forks start from this job: their steps before the fork step are read from it. "
                             "Delete the forks (`forks` lists them) first."),
    "checkpoints-deleted": ProblemKind(409, "Checkpoints deleted", "The job's kept checkpoints (or an ancestor's: `job_id` says "
                                       "whose) were deleted, so a replay or fork would train from step 0 without bound. Clone the "
                                       "job to train it again from the start."),
    "unusable-model": ProblemKind(409, "Model unusable", "The job's final weights are not finite (it diverged), so its outputs would "
                                  "mean nothing. Train again with a smaller learning rate or gradient clipping."),
    "model-not-mirrored": ProblemKind(409, "Model not in MLflow yet", "The job's run gets its MLflow model from the MLflow worker "
                                      "shortly after the job succeeds; retry after the seconds in `Retry-After` (`mlflow.state` on the "
                                      "job says how far the mirror got)."),
    "mlflow-off": ProblemKind(409, "No MLflow", "This server mirrors nothing to MLflow (`MLFLOW_TRACKING_URI` is empty), so there is "
                              "no registry to register into; download the model with `GET /jobs/{id}/model?format=onnx` instead."),
    "name-taken": ProblemKind(409, "Name taken", "An MLflow registered model of that name exists that this service did not make for "
                              "you; pick another name (or an MLflow admin renames the other)."),
    "dataset-in-use": ProblemKind(409, "Dataset in use", "Jobs that have not ended train on this dataset (`jobs` counts them); "
                                  "cancel them or let them end, then delete it."),
    "not-enough-results": ProblemKind(409, "Not enough results", "Importance needs at least two finished points that differ in a swept parameter."),
    "request-too-large": ProblemKind(413, "Request too large", "The body is over `MAX_REQUEST_BYTES` (an upload: over "
                                   "`MAX_DATASET_BYTES`); upload large data as a dataset (POST /api/v1/datasets) and name it in the spec."),
    "unsupported-media-type": ProblemKind(415, "Unsupported media type", "Send the body as JSON with `Content-Type: application/json`."),
    "invalid-spec": ProblemKind(422, "Invalid job spec", "The job spec or its metadata breaks a rule; `errors` has one entry per "
                                "offending field (`field` is a dotted path such as `model.layers[0].units`). The rules are in "
                                "docs/job-spec.md and the OpenAPI document's `JobSubmission` schema."),
    "invalid-sweep": ProblemKind(422, "Invalid sweep", "The sweep, its base spec, or one of the points it would train breaks a rule; "
                                 "`errors` names each field and `point` the offending point."),
    "invalid-dataset": ProblemKind(422, "Invalid dataset", "The uploaded file cannot become a dataset: `detail` says why (an empty "
                                   "file, a header without rows, a row with another number of fields than the header, a column "
                                   "named twice, text that is not UTF-8, an NPZ without X and y or with object arrays), and `row` "
                                   "or `column` where it applies. docs/datasets.md lists what is read."),
    "invalid-input": ProblemKind(422, "Invalid input", "The request body breaks its schema; `errors` names each field."),
    "over-limit": ProblemKind(422, "Over a limit", "The request is valid but asks for more than this server allows; `limit` gives "
                              "the setting's name, its value and what was requested."),
    "answer-too-large": ProblemKind(422, "Answer too large", "The answer would hold more metric points than one answer may "
                                    "(`MAX_RESPONSE_POINTS`): ask for fewer `keys`, a step range (`start`, `end`: page through the "
                                    "steps), or downsample with `max_points`. `limit` says how many were asked for."),
    "different-architectures": ProblemKind(422, "Different architectures", "Only runs of one architecture can be compared step by step."),
    "too-many-requests": ProblemKind(429, "Too many requests", "Submissions are rate-limited per owner (`SUBMIT_RATE_LIMIT`); retry "
                                     "after the seconds in `Retry-After`."),
    "too-many-streams": ProblemKind(429, "Too many event streams", "This owner already holds `EVENTS_MAX_PER_OWNER` event streams "
                                    "open (`limit`); close one, retry after `Retry-After` seconds, or poll the job instead."),
    "uri-too-long": ProblemKind(414, "URI too long", "The request line is over the server's limit (4,094 bytes): ask for fewer "
                                "metric `keys` per request, or several times."),
    "request-header-fields-too-large": ProblemKind(431, "Request header fields too large", "A header, or all of them together, is "
                                                   "over the server's limit (8,190 bytes a header line, 64 KiB in all)."),
    "internal-error": ProblemKind(500, "Internal server error", "Something failed that should not have; it has been logged with the "
                                  "request. Report it with the time and `instance`."),
    "streams-unavailable": ProblemKind(503, "No event stream free", "The server holds as many event streams as it serves at once "
                                       "(`EVENTS_MAX_STREAMS`, `limit`); retry after `Retry-After` seconds, or poll the job instead."),
    "mlflow-unavailable": ProblemKind(503, "MLflow unavailable", "The MLflow server did not answer; retry after `Retry-After` "
                                      "seconds. Nothing was registered."),
    "database-unavailable": ProblemKind(503, "Service unavailable", "The database cannot be reached; retry after `Retry-After` seconds. "
                                        "Nothing you sent was stored."),
}

# Werkzeug's HTTP errors by status, for the generic handler.
BY_STATUS = {kind.status: name for name, kind in PROBLEMS.items()
             if name in ("bad-request", "not-found", "method-not-allowed", "not-acceptable", "request-too-large",
                         "unsupported-media-type", "too-many-requests", "uri-too-long", "request-header-fields-too-large",
                         "internal-error")}
