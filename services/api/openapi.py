"""The OpenAPI 3.1 document of /api/v1, with the job spec's JSON Schema taken from the engine's models."""

from __future__ import annotations

import copy
import functools
from typing import Any

from engine.spec import JobSpec
from services.store.models import MAX_INT32, JobStatus, MirrorState, SweepStatus
from services.sweeps.request import SweepRequest
from services.time_limits import TimeLimitsRequest

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem_response(description: str) -> dict:
    return {"description": description, "content": {"application/problem+json": {"schema": _ref("Problem")}}}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}



JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT32}}
SWEEP_ID = {"name": "sweep_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT32}}
STEP = {"name": "step", "in": "query", "required": True, "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INT32}}
ERRORS = {"404": _problem_response("No such job"), "503": _problem_response("Database unavailable")}
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
                   "description": "the same key and body return the resource the first request created; another body is a 409"}
SUBMIT_ERRORS = {"409": _problem_response("Idempotency-Key reused with a different request"),
                 "429": {**_problem_response("Too many submissions (see Retry-After)"),
                         "headers": {"Retry-After": {"schema": {"type": "string"}}}}}

NUMBER_LIST = {"type": "array", "items": {"type": "number"}}


def _schemas() -> dict[str, Any]:
    spec_schema = JobSpec.model_json_schema(ref_template=REF)
    schemas = spec_schema.pop("$defs", {})
    schemas["JobSpec"] = spec_schema
    submission = copy.deepcopy(spec_schema)
    submission["title"] = "JobSubmission"
    submission["description"] = "A job spec plus optional metadata."
    submission["properties"].update({
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "experiment": {"type": "string", "minLength": 1, "maxLength": 200, "default": "default"},
        "tags": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 500}, "maxProperties": 50},
        "time_limits": _ref("TimeLimitsRequest"),
    })
    schemas["JobSubmission"] = submission
    schemas["TimeLimitsRequest"] = TimeLimitsRequest.model_json_schema(ref_template=REF)
    schemas["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details; `field` names the offending input.",
        "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "instance": {"type": "string"}, "field": {"type": "string"},
            "errors": {"type": "array", "items": {"type": "object", "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}}},
        },
        "required": ["type", "title", "status", "detail"],
    }
    schemas["Job"] = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"}, "name": {"type": ["string", "null"]}, "experiment": {"type": "string"},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}}, "sweep_id": {"type": ["integer", "null"]},
            "status": {"type": "string", "enum": [s.value for s in JobStatus]}, "attempt": {"type": "integer"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": {"type": ["string", "null"], "format": "date-time"},
            "finished_at": {"type": ["string", "null"], "format": "date-time"},
            "progress": {"type": "object", "properties": {
                "step": {"type": "integer"}, "total_steps": {"type": "integer"}, "fraction": {"type": "number"},
                "loss": {"type": ["number", "null"]}}},
            "n_params": {"type": "integer"},
            "time_limits": {"type": "object", "description": "seconds of training per attempt", "properties": {
                "soft_seconds": {"type": ["integer", "null"]}, "hard_seconds": {"type": ["integer", "null"]}}},
            "summary": {"type": ["object", "null"]}, "error": {"type": ["object", "null"]},
            "cancel_requested": {"type": "boolean"},
            "mlflow": {"type": "object", "description": "the job's MLflow run and how far its mirror got", "properties": {
                "experiment_id": {"type": ["string", "null"]}, "run_id": {"type": ["string", "null"]},
                "run_url": {"type": ["string", "null"]},
                "state": {"type": "string", "enum": [s.value for s in MirrorState]},
                "error": {"type": ["string", "null"]}, "points": {"type": "integer"}}},
            "links": {"type": "object", "additionalProperties": {"type": "string"}},
            "spec": {"type": "object"},
        },
        "required": ["id", "experiment", "status", "progress", "links"],
    }
    schemas["JobList"] = {"type": "object", "properties": {
        "jobs": {"type": "array", "items": _ref("Job")}, "next_cursor": {"type": ["string", "null"]},
        "links": {"type": "object"}}, "required": ["jobs", "next_cursor"]}
    schemas["MetricSeries"] = {"type": "object", "additionalProperties": {
        "type": "object", "properties": {"steps": {"type": "array", "items": {"type": "integer"}}, "values": NUMBER_LIST},
        "required": ["steps", "values"]}}
    sweep_schema = SweepRequest.model_json_schema(ref_template=REF)
    schemas.update(sweep_schema.pop("$defs", {}))
    schemas["SweepRequest"] = sweep_schema
    schemas["Sweep"] = {"type": "object", "properties": {
        "id": {"type": "integer"}, "name": {"type": ["string", "null"]}, "status": {"type": "string", "enum": [s.value for s in SweepStatus]},
        "strategy": {"type": "string"}, "progress": {"type": "object"}, "leaderboard": {"type": "array", "items": {"type": "object"}},
        "importance": {"type": ["object", "null"]}, "jobs": {"type": "array", "items": _ref("Job")}, "links": {"type": "object"}},
        "required": ["id", "status", "progress", "leaderboard"]}
    return schemas


PUBLIC = {"/healthz"}  # besides the document itself and /docs


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The whole document (built once per process)."""
    document = _document()
    document["components"]["securitySchemes"] = {"bearer": {
        "type": "http", "scheme": "bearer", "description": "a token from `flask --app services.api tokens create NAME` (not needed with AUTH=off)"}}
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path in PUBLIC:
                operation["security"] = []
            else:
                operation["security"] = [{"bearer": []}]
                operation["responses"]["401"] = _problem_response("Missing, unknown or revoked token")
    return document


def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Backprop Lab API", "version": "1.0.0",
                 "description": "Submit training jobs for the NumPy backprop engine and read what they recorded."},
        "paths": {
            "/api/v1/jobs": {
                "post": {
                    "summary": "Submit a job", "operationId": "submitJob", "parameters": [IDEMPOTENCY_KEY],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("JobSubmission")}}},
                    "responses": {"202": {**_json(_ref("Job"), "Queued"), "headers": {"Location": {"schema": {"type": "string"}}}},
                                  "400": _problem_response("Malformed request"), "413": _problem_response("Request too large"),
                                  "422": _problem_response("Invalid spec or over a limit"), "503": ERRORS["503"], **SUBMIT_ERRORS},
                },
                "get": {
                    "summary": "List jobs, newest first", "operationId": "listJobs",
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"type": "string", "enum": [s.value for s in JobStatus]}},
                        {"name": "experiment", "in": "query", "schema": {"type": "string"}},
                        {"name": "tag", "in": "query", "schema": {"type": "string"}, "description": "key or key:value"},
                        {"name": "sweep_id", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT32}},
                        {"name": "cursor", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT32}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT32},
                         "description": "page size; more than 500 gives 500"},
                    ],
                    "responses": {"200": _json(_ref("JobList")), "400": _problem_response("Bad query"), "503": ERRORS["503"]},
                },
            },
            "/api/v1/jobs/{job_id}": {"get": {
                "summary": "A job: spec, status, progress, summary, error, links", "operationId": "getJob", "parameters": [JOB_ID],
                "responses": {"200": _json(_ref("Job")), **ERRORS}}},
            "/api/v1/jobs/{job_id}/cancel": {"post": {
                "summary": "Cancel a job", "operationId": "cancelJob", "parameters": [JOB_ID],
                "responses": {"202": _json(_ref("Job")), "409": _problem_response("Already ended"), **ERRORS}}},
            "/api/v1/jobs/{job_id}/metrics": {"get": {
                "summary": "Recorded metrics, optionally downsampled (first/min/max/last per bucket)", "operationId": "getMetrics",
                "parameters": [JOB_ID,
                               {"name": "keys", "in": "query", "schema": {"type": "string"}, "description": "comma-separated keys"},
                               {"name": "start", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INT32}},
                               {"name": "end", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_INT32}},
                               {"name": "max_points", "in": "query", "schema": {"type": "integer", "minimum": 4, "maximum": MAX_INT32}}],
                "responses": {"200": {"description": "Series per key",
                                      "content": {"application/json": {"schema": _ref("MetricSeries")},
                                                  "text/csv": {"schema": {"type": "string"}}}},
                              "400": _problem_response("Bad query"), **ERRORS}}},
            "/api/v1/jobs/{job_id}/metrics/keys": {"get": {
                "summary": "Recorded metric keys", "operationId": "getMetricKeys", "parameters": [JOB_ID],
                "responses": {"200": _json({"type": "object", "properties": {"keys": {"type": "array", "items": {"type": "string"}}}}),
                              **ERRORS}}},
            "/api/v1/jobs/{job_id}/gradients": {"get": {
                "summary": "Full gradients of a recorded step", "operationId": "getGradients", "parameters": [JOB_ID, STEP],
                "responses": {"200": _json({"type": "object", "properties": {"step": {"type": "integer"}, "gradients": {"type": "object"}}}),
                              "400": _problem_response("Bad query"), **ERRORS}}},
            "/api/v1/jobs/{job_id}/trace": {"get": {
                "summary": "Backward-pass trace of a recorded step", "operationId": "getTrace", "parameters": [JOB_ID, STEP],
                "responses": {"200": _json({"type": "object"}), "400": _problem_response("Bad query"), **ERRORS}}},
            "/api/v1/jobs/{job_id}/model": {"get": {
                "summary": "Final weights and biases", "operationId": "getModel", "parameters": [JOB_ID],
                "responses": {"200": _json({"type": "object", "properties": {"weights": {"type": "array"}, "biases": {"type": "array"}}}),
                              "409": _problem_response("No model yet"), **ERRORS}}},
            "/api/v1/jobs/{job_id}/predict": {"post": {
                "summary": "Outputs of the trained network", "operationId": "predict", "parameters": [JOB_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"X": {"type": "array", "items": NUMBER_LIST}}, "required": ["X"]}}}},
                "responses": {"200": _json({"type": "object", "properties": {"outputs": {"type": "array"}, "classes": {"type": "array"}}}),
                              "400": _problem_response("Malformed request"), "409": _problem_response("No model yet"),
                              "422": _problem_response("Bad input rows"), **ERRORS}}},
            "/api/v1/jobs/{job_id}/events": {"get": {
                "summary": "Server-Sent Events: status, progress, end", "operationId": "jobEvents", "parameters": [JOB_ID],
                "responses": {"200": {"description": "One event per change: `status`, `progress`, then `end` (data: JSON)",
                                      "content": {"text/event-stream": {"schema": {
                                          "type": "object", "description": "one Server-Sent Event",
                                          "properties": {"event": {"type": "string", "enum": ["status", "progress", "end"]},
                                                         "data": {"type": "string", "contentMediaType": "application/json"}},
                                          "required": ["data"]}}}},
                              **ERRORS}}},
            "/api/v1/jobs/{job_a}/diff/{job_b}": {"get": {
                "summary": "Compare two runs of the same architecture step by step", "operationId": "diffJobs",
                "parameters": [{"name": "job_a", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT32}},
                               {"name": "job_b", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1, "maximum": MAX_INT32}},
                               {"name": "tolerance", "in": "query", "schema": {"type": "number", "minimum": 0}}],
                "responses": {"200": _json({"type": "object", "properties": {
                    "first_difference": {"type": ["object", "null"]}, "identical": {"type": "boolean"},
                    "steps_compared": {"type": "integer"}, "final_weights": {"type": "object"}}}),
                    "400": _problem_response("Bad query"), "422": _problem_response("Different architectures"), **ERRORS}}},
            "/api/v1/sweeps": {
                "post": {"summary": "Create a sweep", "operationId": "createSweep", "parameters": [IDEMPOTENCY_KEY],
                         "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SweepRequest")}}},
                         "responses": {"202": _json(_ref("Sweep"), "Started"), "400": _problem_response("Malformed request"),
                                       "422": _problem_response("Invalid sweep, invalid point or over a limit"), "503": ERRORS["503"],
                                       **SUBMIT_ERRORS}},
                "get": {"summary": "List sweeps, newest first", "operationId": "listSweeps",
                        "responses": {"200": _json({"type": "object", "properties": {"sweeps": {"type": "array"}}})}},
            },
            "/api/v1/sweeps/{sweep_id}": {"get": {
                "summary": "Progress by state and the leaderboard (CSV with Accept: text/csv)", "operationId": "getSweep",
                "parameters": [SWEEP_ID],
                "responses": {"200": {"description": "The sweep", "content": {"application/json": {"schema": _ref("Sweep")},
                                                                               "text/csv": {"schema": {"type": "string"}}}},
                              **ERRORS}}},
            "/api/v1/sweeps/{sweep_id}/cancel": {"post": {
                "summary": "Cancel a sweep and its unfinished jobs", "operationId": "cancelSweep", "parameters": [SWEEP_ID],
                "responses": {"202": _json(_ref("Sweep")), "409": _problem_response("Already ended"), **ERRORS}}},
            "/api/v1/sweeps/{sweep_id}/importance": {"get": {
                "summary": "Parameter importance for the objective (Optuna)", "operationId": "sweepImportance", "parameters": [SWEEP_ID],
                "responses": {"200": _json({"type": "object", "properties": {"importance": {"type": "object"}}}),
                              "409": _problem_response("Not enough results"), **ERRORS}}},
            "/healthz": {"get": {"summary": "Liveness and database reachability", "operationId": "health",
                                 "responses": {"200": _json({"type": "object"}), "503": ERRORS["503"]}}},
        },
        "components": {"schemas": _schemas()},
    }
