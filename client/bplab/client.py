"""`Client`: the REST API as Python calls, returning plain data (dicts and lists)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
from urllib.parse import quote

import httpx

from .errors import Conflict, ConnectionFailed, error_for
from .progress import progress_for

DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = {"succeeded", "diverged", "failed", "cancelled"}


class Metrics(dict):
    """`{key: {"steps": [...], "values": [...]}}`, with `as_dataframe()` when pandas is installed."""

    def as_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        frames = [pd.Series(v["values"], index=v["steps"], name=k) for k, v in self.items()]
        frame = pd.concat(frames, axis=1) if frames else pd.DataFrame()
        frame.index.name = "step"
        return frame


class Client:
    """A connection to a Backprop Lab service. Transient connection errors are retried with backoff."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0, retries: int = 4,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = (url or os.environ.get("BPLAB_URL") or DEFAULT_URL).rstrip("/")
        headers = {"Accept": "application/json"}
        token = token or os.environ.get("BPLAB_TOKEN")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.retries = retries
        # No pooled keep-alive connections: a connection the server closed must not fail a later call.
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport,
                                  limits=httpx.Limits(max_keepalive_connections=0))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if attempt == self.retries:
                    raise ConnectionFailed(f"cannot reach {self.url}: {exc}") from exc
            else:
                if response.status_code == 503 and attempt < self.retries:
                    pass  # the service says it is briefly unavailable: retry
                elif response.status_code >= 400:
                    raise error_for(response.status_code, _problem(response))
                else:
                    return response
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise error_for(response.status_code, _problem(response))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        if "json" in kwargs:
            kwargs["json"] = plain(kwargs["json"])
        return self._request(method, path, **kwargs).json()

    def _pages(self, path: str, field: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        """Up to `limit` items of a list resource, page after page (its `next_cursor`)."""
        out, cursor = [], None
        while len(out) < limit:
            page = self._json("GET", path, params={**params, "limit": min(500, limit - len(out)), **({"cursor": cursor} if cursor else {})})
            out += page[field]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return out

    # -- jobs -------------------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any], idempotency_key: str | None = None, **meta: Any) -> dict[str, Any]:
        """Submit a job spec (plus `name`, `experiment`, `tags`, `time_limits`); returns the queued job.

        Sent with an `Idempotency-Key` (a new UUID unless given), so a retry after a lost answer
        returns the same job instead of queueing it twice."""
        return self._json("POST", "/api/v1/jobs", json={**spec, **meta}, headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})

    def get(self, job_id: int, include_spec: bool = False) -> dict[str, Any]:
        """The job's state and links; with `include_spec`, also the spec it was submitted with."""
        return self._json("GET", f"/api/v1/jobs/{job_id}", params={"include": "spec"} if include_spec else None)

    def spec(self, job_id: int) -> dict[str, Any]:
        """The spec the job was submitted with (inline data included)."""
        return self._json("GET", f"/api/v1/jobs/{job_id}/spec")

    def jobs(self, status: str | None = None, experiment: str | None = None, tag: str | None = None,
             sweep_id: int | None = None, limit: int = 50, q: str | None = None, archived: bool = False,
             include_params: bool = False, diagnosis: str | None = None) -> list[dict[str, Any]]:
        """Jobs, newest first, filtered as `GET /jobs` filters (`q`: text in the name, any case; `archived`: the
        archived ones instead; `diagnosis`: those with a diagnosis of that kind); `include_params` adds each job's
        spec as flat params."""
        params = {k: v for k, v in {"status": status, "experiment": experiment, "tag": tag, "sweep_id": sweep_id, "q": q,
                                    "archived": "true" if archived else None, "diagnosis": diagnosis,
                                    "include": "params" if include_params else None}.items() if v is not None}
        return self._pages("/api/v1/jobs", "jobs", params, limit)

    def wait(self, job_id: int, progress: bool | None = None, poll: float = 0.5, timeout: float | None = None) -> dict[str, Any]:
        """Block until the job ends, with progress (`progress=None`: a bar on a terminal, tqdm's widget in a notebook,
        nothing in a log)."""
        bar = progress_for(progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if bar:
                bar.update(job["progress"]["step"], job["progress"]["total_steps"], job["progress"]["loss"], job["status"])
            if job["status"] in TERMINAL:
                if bar:
                    bar.close()
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job['status']}")
            time.sleep(poll)

    def jobs_frame(self, sweep_id: int | None = None, experiment: str | None = None, status: str | None = None,
                   tag: str | None = None, q: str | None = None, limit: int = 10_000, diagnosis: str | None = None) -> pd.DataFrame:
        """Jobs as a pandas DataFrame, one row per job indexed by id, columns named as `mlflow.search_runs`
        names them: `params.lr`, `summary.model_val_loss`, `tags.team`, with status and times, and a boolean
        `diagnosis.<kind>` column per kind of diagnosis any of them has (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("jobs_frame needs pandas: pip install 'bplab-client[pandas]'") from None
        rows = []
        jobs = self.jobs(status=status, experiment=experiment, tag=tag, sweep_id=sweep_id, limit=limit, q=q, include_params=True,
                         diagnosis=diagnosis)
        kinds = list(dict.fromkeys(kind for job in jobs for kind in job.get("diagnoses", [])))
        for job in jobs:
            row = {"id": job["id"], "name": job["name"], "experiment": job["experiment"], "status": job["status"],
                   "sweep_id": job["sweep_id"], "step": job["progress"]["step"], "total_steps": job["progress"]["total_steps"],
                   "created_at": job["created_at"], "started_at": job["started_at"], "finished_at": job["finished_at"]}
            row.update({f"params.{k}": v for k, v in (job.get("params") or {}).items()})
            row.update({f"summary.{k}": v for k, v in (job["summary"] or {}).items() if not isinstance(v, (dict, list))})
            row.update({f"tags.{k}": v for k, v in job["tags"].items()})
            row.update({f"diagnosis.{kind}": kind in job.get("diagnoses", []) for kind in kinds})
            rows.append(row)
        frame = pd.DataFrame(rows, columns=None if rows else ["id", "name", "experiment", "status"])
        for column in ("created_at", "started_at", "finished_at"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
        if "finished_at" in frame:
            frame["duration_s"] = (frame["finished_at"] - frame["started_at"]).dt.total_seconds()
        return frame.set_index("id")

    def diagnoses(self, job_id: int) -> list[dict[str, Any]]:
        """What went wrong in a job, found while it trained: kind, step, layer, severity, evidence, sentence."""
        return self._json("GET", f"/api/v1/jobs/{job_id}/diagnoses")["diagnoses"]

    def landscape(self, job_id: int, step: int | None = None, directions: str = "top", points: int = 41, span: float | None = None,
                  svg: str | Path | None = None, timeout: float = 600.0, poll: float = 1.0) -> dict[str, Any]:
        """The loss on a grid around the weights after `step` steps (default: the last) of an ended job, along the
        Hessian's two sharpest directions (`top`) or two filter-normalised random ones (`random`), with the recorded
        steps' path projected onto that plane. A worker computes it (the service answers 202 until then): this waits
        up to `timeout` seconds. With `svg`, the contour plot is saved there too."""
        params = {"directions": directions, "points": points, **({"step": step} if step is not None else {}),
                  **({"span": span} if span is not None else {})}
        path = f"/api/v1/jobs/{job_id}/landscape"
        response = self._computed(path, params, timeout, poll)
        if svg is not None:
            Path(svg).write_text(self._request("GET", path, params=params, headers={"Accept": "image/svg+xml"}).text)
        return response.json()

    def cancel(self, job_id: int) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/jobs/{job_id}/cancel")

    def update(self, job_id: int, *, name: str | None = None, clear_name: bool = False,
               tags: dict[str, str | None] | None = None) -> dict[str, Any]:
        """Rename (`clear_name` removes the name) or retag a job (a None tag value removes the tag)."""
        body: dict[str, Any] = {"tags": tags or {}}
        if name is not None or clear_name:
            body["name"] = name
        return self._json("PATCH", f"/api/v1/jobs/{job_id}", json=body)

    def delete(self, job_id: int) -> None:
        """Delete a job and everything it recorded (a running one stops); its MLflow run is deleted too."""
        self._request("DELETE", f"/api/v1/jobs/{job_id}")

    def clone(self, job_id: int, changes: dict[str, Any] | None = None, idempotency_key: str | None = None,
              **meta: Any) -> dict[str, Any]:
        """A new job from this one's spec with `changes` by dotted path ({"optimizer.lr": 0.5}); `name`,
        `experiment`, `tags`, `time_limits` default to the original's (the name to none)."""
        return self._json("POST", f"/api/v1/jobs/{job_id}/clone", json={"set": changes or {}, **meta},
                          headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})

    # -- experiments ------------------------------------------------------------------------------
    def fork(self, job_id: int, step: int | None = None, changes: dict[str, Any] | None = None, idempotency_key: str | None = None,
             **meta: Any) -> dict[str, Any]:
        """A new job that starts from this one's exact state after `step` steps (default: its last) and trains on with
        `changes` by dotted path ({"optimizer.lr": 0.05}: the optimizer, steps or epochs, record, model.dropout, diagnose);
        `name`, `experiment`, `tags`, `time_limits` default to the parent's (the name to none). Its steps before `step`
        are the parent's."""
        body = {"set": changes or {}, **({"step": step} if step is not None else {}), **meta}
        return self._json("POST", f"/api/v1/jobs/{job_id}/fork", json=body, headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})

    def continue_job(self, job_id: int, steps: int | None = None, epochs: int | None = None, name: str | None = None,
                     idempotency_key: str | None = None) -> dict[str, Any]:
        """Train a job that succeeded further: a fork at its last step with `steps` (or `epochs`, whichever its spec
        counts) more; with a constant learning rate bitwise one job trained for the total."""
        body = {k: v for k, v in {"steps": steps, "epochs": epochs, "name": name}.items() if v is not None}
        return self._json("POST", f"/api/v1/jobs/{job_id}/continue", json=body,
                          headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})

    def experiments(self) -> list[dict[str, Any]]:
        return self._json("GET", "/api/v1/experiments")["experiments"]

    def archive(self, experiment: str) -> dict[str, Any]:
        """Archive the experiment's ended jobs (hidden from lists; their MLflow runs deleted until restored)."""
        return self._json("POST", f"/api/v1/experiments/{quote(experiment, safe='')}/archive")

    def restore(self, experiment: str) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/experiments/{quote(experiment, safe='')}/restore")

    def metrics(self, job_id: int, keys: list[str] | str | None = None, max_points: int | None = None,
                start: int | None = None, end: int | None = None) -> Metrics:
        params: dict[str, Any] = {}
        if keys:
            params["keys"] = keys if isinstance(keys, str) else ",".join(keys)
        for name, value in (("max_points", max_points), ("start", start), ("end", end)):
            if value is not None:
                params[name] = value
        return Metrics(self._json("GET", f"/api/v1/jobs/{job_id}/metrics", params=params))

    def metrics_csv(self, job_id: int, keys: list[str] | str | None = None, max_points: int | None = None) -> str:
        params: dict[str, Any] = {"keys": keys if isinstance(keys, str) else ",".join(keys)} if keys else {}
        if max_points is not None:
            params["max_points"] = max_points
        return self._request("GET", f"/api/v1/jobs/{job_id}/metrics", params=params, headers={"Accept": "text/csv"}).text

    def metric_keys(self, job_id: int) -> list[str]:
        return self._json("GET", f"/api/v1/jobs/{job_id}/metrics/keys")["keys"]

    def _computed(self, path: str, params: dict[str, Any], timeout: float, poll: float = 1.0, **kwargs: Any) -> httpx.Response:
        """A resource a worker computes on request (a replayed step, a landscape): asked again while it answers 202."""
        deadline = time.monotonic() + timeout
        while (response := self._request("GET", path, params=params, **kwargs)).status_code == 202:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} is still being computed after {timeout:g} s")
            time.sleep(max(poll, float(response.headers.get("Retry-After", poll))))
        return response

    def gradients(self, job_id: int, step: int, timeout: float = 600.0) -> dict[str, Any]:
        """The full gradients of any step of the job: recorded, or (a job that ended) replayed by a worker, waited for."""
        return self._computed(f"/api/v1/jobs/{job_id}/gradients", {"step": step}, timeout).json()["gradients"]

    def trace(self, job_id: int, step: int, timeout: float = 600.0) -> dict[str, Any]:
        """The backward-pass trace of any step (`replayed: true` when a worker computed it on request), waited for."""
        return self._computed(f"/api/v1/jobs/{job_id}/trace", {"step": step}, timeout).json()

    def trace_table(self, job_id: int, step: int, timeout: float = 600.0) -> str:
        """The backward-pass trace of a step as the post's table (plain text), replayed if it was not recorded."""
        return self._computed(f"/api/v1/jobs/{job_id}/trace", {"step": step}, timeout, headers={"Accept": "text/plain"}).text

    def replay(self, job_id: int, step: int, wait: bool = True, timeout: float = 600.0) -> dict[str, Any] | None:
        """Step `step` of the job as if it had been recorded in full: {step, replayed, replayed_from, loss, trace,
        gradients}. A step it did not record is replayed by a worker from the latest checkpoint the job kept at or
        before it (`replayed_from`; one replay gives the trace and the gradients), waited for; with `wait=False`,
        None while that is under way (it has been asked for)."""
        path, params = f"/api/v1/jobs/{job_id}/trace", {"step": step}
        if not wait and self._request("GET", path, params=params).status_code == 202:
            return None
        trace = self._computed(path, params, timeout).json()
        gradients = self._computed(f"/api/v1/jobs/{job_id}/gradients", params, timeout).json()
        return {"step": step, "replayed": trace["replayed"], "replayed_from": trace.get("replayed_from"), "loss": trace["loss"],
                "trace": trace, "gradients": gradients["gradients"]}

    def checkpoints(self, job_id: int) -> dict[str, Any]:
        """The states the job keeps for replays and forks: `every`, the `steps` kept, their `bytes`, `deleted_at`."""
        return self._json("GET", f"/api/v1/jobs/{job_id}/checkpoints")

    def delete_checkpoints(self, job_id: int) -> None:
        """Delete the job's kept checkpoints (their bytes go back to the quota); its replays and forks are refused after."""
        self._request("DELETE", f"/api/v1/jobs/{job_id}/checkpoints")

    def model(self, job_id: int) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/jobs/{job_id}/model")

    def export(self, job_id: int, format: str = "onnx", path: str | Path | None = None) -> Path:
        """Download the trained model as a file another tool reads (no pickle in any of them):
        `onnx` (ONNX Runtime, Netron, any ONNX tool), `safetensors` (a PyTorch state_dict: the
        Sequential it loads into is in the file's `sequential` header) or `npz` (NumPy arrays).
        Written to `path` (default `job-ID.FORMAT`) as it arrives; the path."""
        if format not in ("onnx", "safetensors", "npz"):
            raise ValueError(f"format must be onnx, safetensors or npz, not {format!r}")
        target = Path(path if path is not None else f"job-{job_id}.{format}")
        partial = target.with_name(target.name + ".part")
        with self._http.stream("GET", f"/api/v1/jobs/{job_id}/model", params={"format": format}) as response:
            if response.status_code >= 400:
                response.read()
                raise error_for(response.status_code, _problem(response))
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
        partial.replace(target)  # a download cut short leaves no file that looks whole
        return target

    def save_model(self, job_id: int, path: str | Path) -> Path:
        """The trained model as a NumPy `.npz` (`weights_0`, `biases_0`, ..., `input_mean`/`input_std` when
        standardised, `layers_json`), loadable with `np.load(path, allow_pickle=False)`: `export(job_id, "npz", path)`."""
        return self.export(job_id, "npz", path)

    def register(self, job_id: int, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """A new version of the MLflow registered model `name` from the job's run (with AUTH=on, yours:
        MLflow names it `<name>@<owner>`). Waits, up to `timeout` seconds, for the MLflow worker to give
        the run its model when the job has only just succeeded. The version: name, version, url."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._json("POST", f"/api/v1/jobs/{job_id}/register", json={"name": name})
            except Conflict as exc:
                wait = exc.problem.get("retry_after")
                if not str(exc.type or "").endswith("#model-not-mirrored") or wait is None or time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)

    # -- datasets ---------------------------------------------------------------------------------------

    def upload_dataset(self, data: str | Path | Any, name: str | None = None, delimiter: str = ",") -> dict[str, Any]:
        """Upload a table once: a CSV (header row), NPZ (`X`, `y`) or Parquet file by path, or a pandas
        DataFrame (sent as CSV). The same table uploaded again is the dataset it already is. Name it in a
        job with `"data": {"dataset": ID, "target": "COLUMN"}`."""
        fields = {"delimiter": delimiter, **({"name": name} if name else {})}
        if hasattr(data, "to_csv"):  # a DataFrame, sent as the CSV it writes
            content = data.to_csv(index=False).encode()
            return self._json("POST", "/api/v1/datasets", files={"file": (f"{name or 'dataframe'}.csv", content, "text/csv")}, data=fields,
                              timeout=httpx.Timeout(30.0, write=None, read=300.0))
        path = Path(data)
        with path.open("rb") as file:
            return self._json("POST", "/api/v1/datasets", files={"file": (path.name, file, "application/octet-stream")}, data=fields,
                              timeout=httpx.Timeout(30.0, write=None, read=300.0))

    def datasets(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Your datasets, newest first."""
        return self._pages("/api/v1/datasets", "datasets", {}, limit)

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/datasets/{dataset_id}")

    def dataset_jobs(self, dataset_id: int) -> dict[str, Any]:
        """Lineage: the jobs (and their sweeps) that used the dataset."""
        return self._json("GET", f"/api/v1/datasets/{dataset_id}/jobs")

    def delete_dataset(self, dataset_id: int) -> None:
        """Delete a dataset no unfinished job uses (Conflict otherwise)."""
        self._request("DELETE", f"/api/v1/datasets/{dataset_id}")

    def predict(self, job_id: int, X: list[list[float]]) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/jobs/{job_id}/predict", json={"X": X})

    def diff(self, job_a: int, job_b: int, tolerance: float = 1e-9) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/jobs/{job_a}/diff/{job_b}", params={"tolerance": tolerance})

    def events(self, job_id: int, reconnect_seconds: float = 5.0) -> Iterator[tuple[str, dict[str, Any]]]:
        """The job's Server-Sent Events as (event, data) pairs, until the job ends. A stream the server
        ends early (idle, or open too long) is reopened with `Last-Event-ID`, so nothing is repeated;
        a stream refused for now (429, 503) is retried after its Retry-After."""
        last_id = None
        while True:
            headers = {"Accept": "text/event-stream", **({"Last-Event-ID": last_id} if last_id else {})}
            with self._http.stream("GET", f"/api/v1/jobs/{job_id}/events", headers=headers,
                                   timeout=httpx.Timeout(30.0, read=None)) as response:
                if response.status_code in (429, 503) and "Retry-After" in response.headers:
                    response.read()
                    time.sleep(float(response.headers["Retry-After"]))
                    continue
                if response.status_code >= 400:
                    response.read()
                    raise error_for(response.status_code, _problem(response))
                event = "message"
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("id: "):
                        last_id = line[4:]
                    elif line.startswith("retry: "):
                        reconnect_seconds = int(line[7:]) / 1000
                    elif line.startswith("data: "):
                        yield event, json.loads(line[6:])
                        if event == "end":
                            return
            time.sleep(min(reconnect_seconds, 1.0))

    # -- sweeps -----------------------------------------------------------------------------------
    def sweep(self, request: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Create a sweep (`base`, `space`, `strategy`, `seeds`, `objective`, ...); returns it with its first jobs.
        Retried safely, like `submit`."""
        return self._json("POST", "/api/v1/sweeps", json=request, headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())})

    def sweeps(self, limit: int = 50) -> list[dict[str, Any]]:
        """Sweeps, newest first, with their progress."""
        return self._pages("/api/v1/sweeps", "sweeps", {}, limit)

    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/sweeps/{sweep_id}")

    def leaderboard(self, sweep_id: int) -> list[dict[str, Any]]:
        return self.get_sweep(sweep_id)["leaderboard"]

    def leaderboard_csv(self, sweep_id: int) -> str:
        return self._request("GET", f"/api/v1/sweeps/{sweep_id}", headers={"Accept": "text/csv"}).text

    def importance(self, sweep_id: int) -> dict[str, float]:
        return self._json("GET", f"/api/v1/sweeps/{sweep_id}/importance")["importance"]

    def cancel_sweep(self, sweep_id: int) -> dict[str, Any]:
        return self._json("POST", f"/api/v1/sweeps/{sweep_id}/cancel")

    def extend_sweep(self, sweep_id: int, trials: int) -> dict[str, Any]:
        """`trials` more points for a random or tpe sweep (running or finished), asked of its study with all it learned."""
        return self._json("POST", f"/api/v1/sweeps/{sweep_id}/extend", json={"trials": trials})

    def continue_best(self, sweep_id: int, steps: int | None = None, epochs: int | None = None) -> list[dict[str, Any]]:
        """Train the sweep's best point further: each of its seeds' jobs that succeeded continued like a job
        (`continue_job`), the point first on the leaderboard with an objective. The new jobs."""
        sweep = self.get_sweep(sweep_id)
        best = next((row for row in sweep["leaderboard"] if row["objective_mean"] is not None), None)
        if best is None:
            raise ValueError(f"sweep {sweep_id} has no point with an objective yet")
        finished = {job["id"] for job in sweep["jobs"] if job["status"] == "succeeded"}
        return [self.continue_job(job_id, steps=steps, epochs=epochs) for job_id in best["jobs"] if job_id in finished]

    def wait_sweep(self, sweep_id: int, progress: bool | None = None, poll: float = 1.0) -> dict[str, Any]:
        bar = progress_for(progress)
        while True:
            sweep = self.get_sweep(sweep_id)
            done = sum(n for s, n in sweep["progress"]["by_state"].items() if s in TERMINAL)
            if bar:
                bar.update(done, sweep["progress"]["planned_jobs"], None, sweep["status"], unit="jobs")
            if sweep["status"] != "running":
                if bar:
                    bar.close()
                return sweep
            time.sleep(poll)


def plain(value: Any) -> Any:
    """JSON-ready: NumPy arrays and scalars, pandas DataFrames and Series become lists and numbers
    (duck-typed, so the client needs neither), wherever they sit in a spec or in rows."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "to_numpy") and not hasattr(value, "tolist"):  # a DataFrame
        value = value.to_numpy()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    return value


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
        problem = body if isinstance(body, dict) else {"detail": str(body)}
    except ValueError:
        problem = {"title": response.reason_phrase, "detail": response.text[:500]}
    retry_after = response.headers.get("Retry-After")
    if retry_after and retry_after.isdigit():
        problem.setdefault("retry_after", int(retry_after))
    return problem
