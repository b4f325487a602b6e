"""`bplab`: the service from a terminal, one command per REST capability, on click. Every command
takes --url (or BPLAB_URL), --token (or BPLAB_TOKEN) and --json, before or after the command's name.

Exit codes (EXIT_CODES, one table from exception to code): 0 done; 1 a job or sweep ended other than
succeeded/finished; 2 bad input (usage, 400, 413, 422); 3 not found; 4 service unreachable or failing
(5xx); 5 conflict (409); 130 interrupted (Ctrl-C). A closed output (`bplab ls | head`) ends it quietly.

KEY=VALUE (one converter, `Assignment`, everywhere): a `--set` value is JSON when it parses (`0.5`,
`true`, `null`, `[1, 2]`), else the text (`full`); a tag's value is always the text as typed
(`stage=true` is the string "true").

Shell completion: `eval "$(_BPLAB_COMPLETE=bash_source bplab)"` (zsh_source, fish_source likewise).
"""

from __future__ import annotations

import json
import math
import re
import select
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from .client import Client
from .errors import ApiError, BadRequest, Conflict, ConnectionFailed, NotFound, ServerError, ValidationFailed

EXIT_OK, EXIT_ENDED_BADLY, EXIT_INPUT, EXIT_NOT_FOUND, EXIT_SERVICE, EXIT_CONFLICT = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130
# The first matching type wins: more specific ones first.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (click.UsageError, EXIT_INPUT), (ValidationFailed, EXIT_INPUT), (BadRequest, EXIT_INPUT), (NotFound, EXIT_NOT_FOUND),
    (Conflict, EXIT_CONFLICT), (ConnectionFailed, EXIT_SERVICE), (ServerError, EXIT_SERVICE), (ApiError, EXIT_SERVICE),
    (OSError, EXIT_INPUT),
)


# -- shared pieces ----------------------------------------------------------------------------------

@dataclass
class Session:
    """What every command shares (click's ctx.obj): the global options and the client, made on first use.
    Tests pass one with `client` already set (an in-process app)."""

    url: str | None = None
    token: str | None = None
    json: bool = False
    client: Client | None = None
    opened: list[Client] = field(default_factory=list)

    def api(self) -> Client:
        if self.client is None:
            self.client = Client(self.url, token=self.token)
            self.opened.append(self.client)
        return self.client

    def emit(self, data: Any, text: str | None = None) -> None:
        click.echo(json.dumps(data, indent=2) if self.json or text is None else text)


@dataclass(frozen=True)
class Pair:
    key: str
    text: str  # the value as typed (tags keep it)

    @property
    def value(self) -> Any:
        """JSON when it parses, else the text (`--set`'s rule)."""
        return parse_value(self.text)


def parse_value(text: str) -> Any:
    """`0.5` -> 0.5, `true` -> True, `null` -> None, `[1, 2]` -> [1, 2], `full` -> "full"."""
    try:
        return json.loads(text)
    except ValueError:
        return text


class Assignment(click.ParamType):
    """KEY=VALUE, the one converter of every such option and argument."""

    name = "KEY=VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Pair:
        if isinstance(value, Pair):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key:
            self.fail(f"{value!r}: use KEY=VALUE", param, ctx)
        return Pair(key, text)


ASSIGNMENT = Assignment()


def _global(name: str, attribute: str, **kwargs: Any) -> Callable:
    """--url, --token or --json on a command too (after its name), overriding what came before it."""
    def remember(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value not in (None, False):
            setattr(ctx.ensure_object(Session), attribute, value)
    return click.option(name, expose_value=False, callback=remember, is_eager=True, **kwargs)


def global_options(command: Callable) -> Callable:
    for option in (_global("--json", "json", is_flag=True, default=False, help="machine-readable output"),
                   _global("--token", "token", default=None, help="API token (default: $BPLAB_TOKEN)"),
                   _global("--url", "url", default=None, help="service URL (default: $BPLAB_URL or http://127.0.0.1:8000)")):
        command = option(command)
    return command


def load_document(path: str) -> Any:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise click.UsageError("reading YAML needs pyyaml: pip install 'bplab-client[yaml]'") from None
        return yaml.safe_load(text)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.UsageError(f"{path}: not valid JSON ({exc})") from None


def set_path(document: dict, path: str, value: Any) -> None:
    """Set `optimizer.lr` or `model.layers[0].units` in place."""
    steps: list[Any] = []
    for part in path.split("."):
        match = re.fullmatch(r"([A-Za-z_]\w*)((?:\[\d+\])*)", part)
        if not match:
            raise click.UsageError(f"--set {path}: {part!r} is not a field name")
        steps.append(match.group(1))
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    target: Any = document
    try:
        for step in steps[:-1]:
            target = target[step] if isinstance(step, int) else target.setdefault(step, {})
        target[steps[-1]] = value
    except (IndexError, TypeError, AttributeError):
        raise click.UsageError(f"--set {path}: the spec has no such field") from None


def job_line(job: dict) -> str:
    p = job["progress"]
    loss = f"{p['loss']:.5g}" if p["loss"] is not None else "-"
    return f"{job['id']:>6}  {job['status']:<10} {p['step']:>8}/{p['total_steps']:<8} loss {loss:<12} {job['experiment']:<16} {job['name'] or ''}"


def _summary_text(job: dict) -> str:
    s = job.get("summary") or {}
    parts = [f"job {job['id']} {job['status']}"]
    # The final model's own figures first (docs/job-spec.md lists every summary field), then the last
    # epoch's validation loss (a sweep's default objective) and the last mini-batch's loss.
    for key, label, digits in (("model_train_loss", "train loss", ".6g"), ("model_train_accuracy", "train accuracy", ".4f"),
                               ("model_val_loss", "val loss", ".6g"), ("model_val_accuracy", "val accuracy", ".4f"),
                               ("final_val_loss", "last epoch's val loss", ".6g"), ("final_loss", "last batch loss", ".6g")):
        if s.get(key) is not None:
            parts.append(f"{label} {s[key]:{digits}}")
    if job.get("error"):
        parts.append(job["error"].get("message", ""))
    return ", ".join(parts)


def _leaderboard_text(sweep: dict) -> str:
    metric = sweep["objective"]["metric"]
    lines = [f"{'rank':>4}  {metric + ' (mean ± std)':<28} {'final loss':<12} {'div':>3}  params"]
    for rank, row in enumerate(sweep["leaderboard"], 1):
        mean, std = row["objective_mean"], row["objective_std"]
        objective = f"{mean:.5g} ± {std:.2g}" if mean is not None else "-"
        loss = f"{row['final_loss_mean']:.5g}" if row["final_loss_mean"] is not None else "-"
        lines.append(f"{rank:>4}  {objective:<28} {loss:<12} {row['diverged']:>3}  {json.dumps(row['params'])}")
    return "\n".join(lines)


def _done(sweep: dict) -> str:
    progress = sweep["progress"]
    ended = sum(n for state, n in progress["by_state"].items() if state not in ("queued", "running"))
    return f"{ended}/{progress['planned_jobs']}"


def _diff_text(a: int, b: int, diff: dict) -> str:
    lines = [f"{name}: {json.dumps(change['a'])} -> {json.dumps(change['b'])}" for name, change in diff["spec_differences"].items()]
    first = diff["first_difference"]
    if first is None:
        lines.append(f"jobs {a} and {b} agree within {diff['tolerance']:g} on all {diff['steps_compared']} steps compared")
    else:
        lines.append(f"jobs {a} and {b} part at step {first['step']}: {first['key']} {first['a']:.6g} vs {first['b']:.6g} "
                     f"(relative difference {first['relative_difference']:.2g})")
    return "\n".join(lines)


# -- the group ---------------------------------------------------------------------------------------

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", default=None, help="service URL (default: $BPLAB_URL or http://127.0.0.1:8000)")
@click.option("--token", default=None, help="API token (default: $BPLAB_TOKEN)")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def cli(ctx: click.Context, url: str | None, token: str | None, as_json: bool) -> None:
    """Backprop Lab from the terminal."""
    session = ctx.ensure_object(Session)
    session.url, session.token, session.json = url or session.url, token or session.token, as_json or session.json


def command(name: str, short: str) -> Callable:
    """A command of the group, with the global options after its name too."""
    def register(fn: Callable) -> click.Command:
        return cli.command(name, help=short, short_help=short)(global_options(click.pass_obj(fn)))
    return register


def new_job_options(fn: Callable) -> Callable:
    for option in (click.option("--wait", is_flag=True, help="wait for the job to end (exit 1 unless it succeeded)"),
                   click.option("--tag", "tags", multiple=True, type=ASSIGNMENT, help="a tag KEY=VALUE (repeatable)"),
                   click.option("--experiment", default=None),
                   click.option("--name", default=None),
                   click.option("--set", "changes", multiple=True, type=ASSIGNMENT,
                                help="change a field, e.g. optimizer.lr=0.5 (repeatable)")):
        fn = option(fn)
    return fn


def _meta(name: str | None, experiment: str | None, tags: tuple[Pair, ...]) -> dict[str, Any]:
    meta: dict[str, Any] = {k: v for k, v in {"name": name, "experiment": experiment}.items() if v}
    if tags:
        meta["tags"] = {pair.key: pair.text for pair in tags}
    return meta


def _submitted(s: Session, job: dict, wait: bool) -> int:
    if not wait:
        s.emit(job, f"submitted job {job['id']} ({job['status']})")
        return EXIT_OK
    job = s.api().wait(job["id"], progress=None if not s.json else False)
    s.emit(job, _summary_text(job))
    return EXIT_ENDED_BADLY if job["status"] != "succeeded" else EXIT_OK


# -- jobs --------------------------------------------------------------------------------------------

@command("submit", "submit a job spec")
@click.argument("spec")
@click.option("--dataset", "dataset_file", metavar="FILE", help="train on this CSV/NPZ/Parquet file: uploaded if new, then named as data.dataset")
@new_job_options
def submit(s: Session, spec: str, dataset_file: str | None, changes: tuple[Pair, ...], name: str | None, experiment: str | None,
           tags: tuple[Pair, ...], wait: bool) -> int:
    document = load_document(spec)
    if dataset_file is not None:
        dataset = s.api().upload_dataset(dataset_file)  # the same table again is the dataset it already is
        data = document.get("data") if isinstance(document.get("data"), dict) else {}
        document["data"] = {k: v for k, v in data.items() if k not in ("X", "y", "builtin", "n_samples", "noise")} | {"dataset": dataset["id"]}
        if not s.json:
            click.echo(f"dataset {dataset['id']} ({dataset['name']}, {dataset['rows']:,} rows)", err=True)
    for pair in changes:
        set_path(document, pair.key, pair.value)
    return _submitted(s, s.api().submit(document, **_meta(name, experiment, tags)), wait)


@command("clone", "a new job from a job's spec with --set changes (its experiment and tags unless given)")
@click.argument("job_id", metavar="ID", type=int)
@new_job_options
def clone(s: Session, job_id: int, changes: tuple[Pair, ...], name: str | None, experiment: str | None, tags: tuple[Pair, ...],
          wait: bool) -> int:
    job = s.api().clone(job_id, {pair.key: pair.value for pair in changes}, **_meta(name, experiment, tags))
    return _submitted(s, job, wait)


@command("fork", "a new job from a job's exact state after --step steps, trained on with --set changes")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--step", type=int, help="the step it starts from (default: the job's last)")
@new_job_options
def fork(s: Session, job_id: int, step: int | None, changes: tuple[Pair, ...], name: str | None, experiment: str | None,
         tags: tuple[Pair, ...], wait: bool) -> int:
    job = s.api().fork(job_id, step, {pair.key: pair.value for pair in changes}, **_meta(name, experiment, tags))
    return _submitted(s, job, wait)


@command("continue", "train a job that succeeded further: --steps or --epochs more, from its last step")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--steps", type=int, help="optimizer steps more (a spec that counts steps)")
@click.option("--epochs", type=int, help="epochs more (a spec that counts epochs)")
@click.option("--name")
@click.option("--wait", is_flag=True, help="wait for the job to end (exit 1 unless it succeeded)")
def continue_command(s: Session, job_id: int, steps: int | None, epochs: int | None, name: str | None, wait: bool) -> int:
    return _submitted(s, s.api().continue_job(job_id, steps=steps, epochs=epochs, name=name), wait)


@command("watch", "live progress of a job until it ends")
@click.argument("job_id", metavar="ID", type=int)
def watch(s: Session, job_id: int) -> int:
    job = s.api().wait(job_id, progress=None if not s.json else False)
    s.emit(job, _summary_text(job))
    return EXIT_ENDED_BADLY if job["status"] != "succeeded" else EXIT_OK


@command("ls", "list jobs, newest first")
@click.option("--status")
@click.option("--experiment")
@click.option("--sweep", type=int)
@click.option("--tag")
@click.option("--q", metavar="TEXT", help="only jobs whose name contains TEXT (any case)")
@click.option("--archived", is_flag=True, help="the archived jobs instead")
@click.option("--limit", type=int, default=20, show_default=True)
def ls(s: Session, status: str | None, experiment: str | None, sweep: int | None, tag: str | None, q: str | None, archived: bool,
       limit: int) -> int:
    jobs = s.api().jobs(status=status, experiment=experiment, sweep_id=sweep, tag=tag, limit=limit, q=q, archived=archived)
    s.emit(jobs, "\n".join(job_line(j) for j in jobs) or "no jobs")
    return EXIT_OK


@command("show", "a job's state, progress and summary")
@click.argument("job_id", metavar="ID", type=int)
def show(s: Session, job_id: int) -> int:
    job = s.api().get(job_id)
    s.emit(job, json.dumps({k: v for k, v in job.items() if k != "spec"}, indent=2))
    return EXIT_OK


@command("metrics", "a job's recorded metrics")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--keys", help="comma-separated keys (default: all)")
@click.option("--max-points", type=int)
@click.option("--csv", "as_csv", is_flag=True)
def metrics(s: Session, job_id: int, keys: str | None, max_points: int | None, as_csv: bool) -> int:
    if as_csv:
        click.echo(s.api().metrics_csv(job_id, keys, max_points), nl=False)
        return EXIT_OK
    series = s.api().metrics(job_id, keys, max_points)
    lines = [f"{key}: {len(v['steps'])} points" + (f", last {v['values'][-1]:.6g} at step {v['steps'][-1]}" if v["steps"] else "")
             for key, v in series.items()]
    s.emit(series, "\n".join(lines))
    return EXIT_OK


@command("trace", "the backward-pass trace table of a step (one not recorded is replayed by a worker, waited for)")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--step", type=int, default=0, show_default=True)
def trace(s: Session, job_id: int, step: int) -> int:
    if s.json:
        s.emit(s.api().trace(job_id, step))
    else:
        click.echo(s.api().trace_table(job_id, step), nl=False)
    return EXIT_OK


@command("replay", "steps of an ended job as if recorded in full (a worker replays them from the nearest kept checkpoint)")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--step", "steps", type=int, multiple=True, required=True, help="a step to replay (repeat it for more)")
@click.option("--wait", is_flag=True, help="wait for the replays and print each step's loss and gradient norms")
def replay(s: Session, job_id: int, steps: tuple[int, ...], wait: bool) -> int:
    found, lines = [], []
    for i, step in enumerate(steps, 1):
        if wait and not s.json:
            click.echo(f"[{i}/{len(steps)}] replaying job {job_id} to step {step:,}…", err=True)
        done = s.api().replay(job_id, step, wait=wait)
        if done is None:
            lines.append(f"step {step:,}: asked; a worker replays it (`bplab replay {job_id} --step {step} --wait` waits for it)")
            found.append({"step": step, "status": "pending"})
            continue
        found.append(done)
        norms = ", ".join(f"{name} {math.sqrt(sum(v * v for v in _flat(values))):.4g}" for name, values in done["gradients"].items())
        source = (f"replayed from the checkpoint at step {done['replayed_from']:,}" if done["replayed_from"] else
                  "replayed from the start") if done["replayed"] else "recorded"
        lines.append(f"step {step:,} ({source}): loss {done['loss']:.6g}; ‖∂L/∂θ‖ {norms}")
    s.emit(found, "\n".join(lines))
    return EXIT_OK


def _flat(values: list) -> list[float]:
    return [v for row in values for v in row] if values and isinstance(values[0], list) else list(values)


@command("checkpoints", "the states a job keeps for replays and forks (--delete frees them; replays and forks are refused after)")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--delete", is_flag=True, help="delete them, giving their bytes back to the quota")
def checkpoints_command(s: Session, job_id: int, delete: bool) -> int:
    if delete:
        s.api().delete_checkpoints(job_id)
    kept = s.api().checkpoints(job_id)
    if kept["deleted_at"]:
        text = f"job {job_id}'s checkpoints were deleted at {kept['deleted_at']}: its replays and forks are refused"
    elif not kept["every"]:
        text = f"job {job_id} keeps no checkpoints (record.checkpoints: 0): a replay trains from step 0"
    else:
        steps = ", ".join(f"{step:,}" for step in kept["steps"][:20]) + (" …" if len(kept["steps"]) > 20 else "")
        text = (f"job {job_id} keeps its state every {kept['every']:,} steps and after its last: {len(kept['steps'])} kept "
                f"({kept['bytes']:,} bytes)" + (f" at steps {steps}" if steps else ""))
    s.emit(kept, text)
    return EXIT_OK


@command("landscape", "the loss around the weights at a step of an ended job, with the path the weights took")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--step", type=int, help="after this many steps (default: the job's last)")
@click.option("--directions", type=click.Choice(["top", "random"]), default="top", show_default=True,
              help="the Hessian's two sharpest directions, or two filter-normalised random ones")
@click.option("--points", type=int, default=41, show_default=True, help="grid points along each direction")
@click.option("--span", type=float, help="the grid's half-width (default: the path with a margin)")
@click.option("-o", "--output", help="save the contour plot (SVG) here")
def landscape(s: Session, job_id: int, step: int | None, directions: str, points: int, span: float | None, output: str | None) -> int:
    if not s.json:
        click.echo(f"asking a worker for job {job_id}'s landscape (it replays the job to the step)…", err=True)
    found = s.api().landscape(job_id, step=step, directions=directions, points=points, span=span, svg=output)
    flat = [v for row in found["loss"] for v in row if v is not None]
    lines = [f"job {job_id} after {found['step']:,} steps: loss {found['loss_at_step']:.6g} on {found['samples']:,} training rows",
             f"{points}×{points} grid of ±{found['span']:.3g} along {directions} directions"
             + (f" (λ = {found['eigenvalues'][0]:.4g}, {found['eigenvalues'][1]:.4g})" if found["eigenvalues"] else "")
             + (f": loss {min(flat):.4g} to {max(flat):.4g}" if flat else ": no finite loss"),
             f"path: {len(found['path'])} steps, from ({found['path'][0]['alpha']:.3g}, {found['path'][0]['beta']:.3g}) at step "
             f"{found['path'][0]['step']:,}; computed in {found['seconds']:.2f} s"]
    if output:
        lines.append(f"saved the contour plot to {output}")
    s.emit(found, "\n".join(lines))
    return EXIT_OK


@command("cancel", "cancel a job")
@click.argument("job_id", metavar="ID", type=int)
def cancel(s: Session, job_id: int) -> int:
    job = s.api().cancel(job_id)
    s.emit(job, f"job {job['id']}: {job['status']}" + (" (stopping)" if job["status"] == "running" else ""))
    return EXIT_OK


@command("open", "open a job's page in the browser (and print its address)")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--print-only", is_flag=True, help="print the address, open nothing")
def open_page(s: Session, job_id: int, print_only: bool) -> int:
    job = s.api().get(job_id)  # a job that is not there (or not yours) is exit 3, not a page saying so
    url = f"{s.api().url}/jobs/{job['id']}"
    if not s.json and not print_only:
        click.launch(url)
    s.emit({"id": job["id"], "url": url}, url)
    return EXIT_OK


@command("delete", "delete jobs with everything they recorded (and their MLflow runs)")
@click.argument("job_ids", metavar="ID...", type=int, nargs=-1, required=True)
def delete(s: Session, job_ids: tuple[int, ...]) -> int:
    for job_id in job_ids:
        s.api().delete(job_id)
        if not s.json:
            click.echo(f"deleted job {job_id}")
    if s.json:
        s.emit({"deleted": list(job_ids)})
    return EXIT_OK


@command("tag", "set tags on a job (KEY=VALUE), or remove them (--remove KEY)")
@click.argument("job_id", metavar="ID", type=int)
@click.argument("pairs", metavar="KEY=VALUE...", type=ASSIGNMENT, nargs=-1)
@click.option("--remove", multiple=True, metavar="KEY")
def tag(s: Session, job_id: int, pairs: tuple[Pair, ...], remove: tuple[str, ...]) -> int:
    tags: dict[str, str | None] = {pair.key: pair.text for pair in pairs}
    tags.update({key: None for key in remove})
    if not tags:
        raise click.UsageError("tag: give KEY=VALUE to set or --remove KEY")
    job = s.api().update(job_id, tags=tags)
    s.emit(job, f"job {job['id']} tags: " + (", ".join(f"{k}={v}" for k, v in job["tags"].items()) or "none"))
    return EXIT_OK


@command("rename", "rename a job ('' removes its name)")
@click.argument("job_id", metavar="ID", type=int)
@click.argument("name")
def rename(s: Session, job_id: int, name: str) -> int:
    job = s.api().update(job_id, name=name or None, clear_name=not name)
    s.emit(job, f"job {job['id']} is now named {job['name']!r}" if job["name"] else f"job {job['id']} has no name")
    return EXIT_OK


@command("diff", "where two runs of one architecture part, and how their specs differ")
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.option("--tolerance", type=float, default=1e-9, show_default=True)
def diff(s: Session, a: int, b: int, tolerance: float) -> int:
    answer = s.api().diff(a, b, tolerance)
    s.emit(answer, _diff_text(a, b, answer))
    return EXIT_OK


@command("predict", "the trained model's outputs for input rows")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--rows", metavar="JSON", help="e.g. '[[0.5, 0.1], [1, 0]]'")
@click.option("--file", "rows_file", help='a JSON file of rows (or {"X": rows}), - for stdin')
def predict(s: Session, job_id: int, rows: str | None, rows_file: str | None) -> int:
    if (rows is None) == (rows_file is None):
        raise click.UsageError("predict: give --rows or --file")
    data = parse_value(rows) if rows is not None else load_document(rows_file)
    if isinstance(data, dict) and "X" in data:
        data = data["X"]
    if not isinstance(data, list) or not data or not all(isinstance(r, list) for r in data):
        raise click.UsageError("predict: rows as a JSON list of lists, e.g. '[[0.5, 0.1]]'")
    answer = s.api().predict(job_id, data)
    lines = [f"{json.dumps(r)} -> {json.dumps(o)}" + (f"  class {json.dumps(c)}" if c is not None else "")
             for r, o, c in zip(data, answer["outputs"], answer.get("classes") or [None] * len(data), strict=True)]
    s.emit(answer, "\n".join(lines))
    return EXIT_OK


@command("model", "download the trained model as .npz (--json: as JSON)")
@click.argument("job_id", metavar="ID", type=int)
@click.option("-o", "--output", help="the .npz path (default: job-ID-model.npz)")
def model(s: Session, job_id: int, output: str | None) -> int:
    if s.json:
        s.emit(s.api().model(job_id))
        return EXIT_OK
    path = s.api().save_model(job_id, output or f"job-{job_id}-model.npz")
    click.echo(f"saved job {job_id}'s model to {path}")
    return EXIT_OK


@command("export", "download the trained model as ONNX, safetensors (PyTorch) or .npz")
@click.argument("job_id", metavar="ID", type=int)
@click.option("--format", "form", type=click.Choice(["onnx", "safetensors", "npz"]), default="onnx", show_default=True)
@click.option("-o", "--output", help="the file (default: job-ID.FORMAT; - for stdout)")
def export(s: Session, job_id: int, form: str, output: str | None) -> int:
    if output == "-":
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            click.get_binary_stream("stdout").write(s.api().export(job_id, form, Path(tmp) / f"model.{form}").read_bytes())
        return EXIT_OK
    path = s.api().export(job_id, form, output)
    s.emit({"job_id": job_id, "format": form, "path": str(path), "bytes": path.stat().st_size},
           f"saved job {job_id}'s model as {form} to {path} ({path.stat().st_size:,} bytes)")
    return EXIT_OK


@command("register", "register the job's model in MLflow's model registry as NAME (a new version)")
@click.argument("job_id", metavar="ID", type=int)
@click.argument("name")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="seconds to wait for the run to get its model")
def register(s: Session, job_id: int, name: str, timeout: float) -> int:
    version = s.api().register(job_id, name, timeout=timeout)
    s.emit(version, f"registered job {job_id} as {version['name']} version {version['version']}: {version['url']}")
    return EXIT_OK


# -- sweeps and experiments -------------------------------------------------------------------------------

@command("sweep", "create a sweep from a YAML or JSON file")
@click.argument("file")
@click.option("--wait", is_flag=True, help="wait for it to end (exit 1 unless it finished)")
def sweep(s: Session, file: str, wait: bool) -> int:
    created = s.api().sweep(load_document(file))
    if wait:
        created = s.api().wait_sweep(created["id"], progress=None if not s.json else False)
    text = f"sweep {created['id']} ({created['status']}): {created['progress']['planned_jobs']} jobs planned"
    if wait:
        text += "\n" + _leaderboard_text(created)
    s.emit(created, text)
    return EXIT_ENDED_BADLY if wait and created["status"] != "finished" else EXIT_OK


@command("leaderboard", "a sweep's points, best first")
@click.argument("sweep_id", metavar="SWEEP", type=int)
@click.option("--csv", "as_csv", is_flag=True)
def leaderboard(s: Session, sweep_id: int, as_csv: bool) -> int:
    if as_csv:
        click.echo(s.api().leaderboard_csv(sweep_id), nl=False)
        return EXIT_OK
    found = s.api().get_sweep(sweep_id)
    s.emit(found["leaderboard"], _leaderboard_text(found))
    return EXIT_OK


@cli.group("sweeps", invoke_without_command=True, help="sweeps: list (default), show, cancel, importance",
           short_help="sweeps: list (default), show, cancel, importance")
@global_options
@click.pass_context
def sweeps(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.exit(_list_sweeps(ctx.obj, 20))


@cli.group("datasets", invoke_without_command=True, help="datasets: list (default), upload, show, delete",
           short_help="datasets: list (default), upload, show, delete")
@global_options
@click.pass_context
def datasets(ctx: click.Context) -> None:
    if ctx.invoked_subcommand is None:
        ctx.exit(_list_datasets(ctx.obj))


def datasets_command(name: str, short: str) -> Callable:
    def register(fn: Callable) -> click.Command:
        return datasets.command(name, help=short, short_help=short)(global_options(click.pass_obj(fn)))
    return register


def _dataset_line(d: dict) -> str:
    return f"{d['id']}\t{d['name']}\t{d['rows']:,} rows\t{len(d['columns'])} columns\t{d['bytes']:,} bytes\t{d['digest'][:12]}"


def _list_datasets(s: Session) -> int:
    found = s.api().datasets()
    s.emit(found, "\n".join(_dataset_line(d) for d in found) or "no datasets yet: bplab datasets upload FILE")
    return EXIT_OK


@datasets_command("list", "datasets, newest first")
def datasets_list(s: Session) -> int:
    return _list_datasets(s)


@datasets_command("upload", "upload a CSV (header row), NPZ (X, y) or Parquet file; the same table again is the same dataset")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", help="default: the file's name")
@click.option("--delimiter", default=",", show_default=True, help="CSV field delimiter")
def datasets_upload(s: Session, path: str, name: str | None, delimiter: str) -> int:
    found = s.api().upload_dataset(path, name=name, delimiter=delimiter)
    columns = ", ".join(f"{c['name']} ({c['type']})" for c in found["columns"][:20])
    s.emit(found, f"dataset {found['id']}: {found['name']}, {found['rows']:,} rows; columns {columns}")
    return EXIT_OK


@datasets_command("show", "a dataset's columns, size and the jobs that used it")
@click.argument("dataset_id", metavar="ID", type=int)
def datasets_show(s: Session, dataset_id: int) -> int:
    found = s.api().dataset(dataset_id)
    used = s.api().dataset_jobs(dataset_id)
    lines = [_dataset_line(found), f"digest {found['digest']}"]
    lines += [f"  {c['name']}: {c['type']}" + (f", {c['missing']} empty" if c["missing"] else "")
              + (f", classes {c['classes'][:10]}" if c["type"] == "string" and c["classes"] else "") for c in found["columns"]]
    lines.append(f"used by jobs {[j['id'] for j in used['jobs']]}" + (f", sweeps {used['sweeps']}" if used["sweeps"] else ""))
    s.emit({**found, "jobs": [j["id"] for j in used["jobs"]], "sweeps": used["sweeps"]}, "\n".join(lines))
    return EXIT_OK


@datasets_command("delete", "delete a dataset no unfinished job uses")
@click.argument("dataset_id", metavar="ID", type=int)
def datasets_delete(s: Session, dataset_id: int) -> int:
    s.api().delete_dataset(dataset_id)
    s.emit({"deleted": dataset_id}, f"deleted dataset {dataset_id}")
    return EXIT_OK


def sweeps_command(name: str, short: str) -> Callable:
    def register(fn: Callable) -> click.Command:
        return sweeps.command(name, help=short, short_help=short)(global_options(click.pass_obj(fn)))
    return register


def _list_sweeps(s: Session, limit: int) -> int:
    found = s.api().sweeps(limit=limit)
    lines = [f"{sw['id']:>5}  {sw['status']:<10} {_done(sw):>9} jobs  {sw['strategy']:<6} {sw['experiment']:<16} {sw['name'] or ''}"
             for sw in found]
    s.emit(found, "\n".join(lines) or "no sweeps")
    return EXIT_OK


@sweeps_command("list", "sweeps, newest first")
@click.option("--limit", type=int, default=20, show_default=True)
def sweeps_list(s: Session, limit: int) -> int:
    return _list_sweeps(s, limit)


@sweeps_command("show", "a sweep's progress and leaderboard")
@click.argument("sweep_id", metavar="SWEEP", type=int)
def sweeps_show(s: Session, sweep_id: int) -> int:
    found = s.api().get_sweep(sweep_id)
    by_state = ", ".join(f"{n} {state}" for state, n in found["progress"]["by_state"].items()) or "no jobs yet"
    text = (f"sweep {found['id']} {found['name'] or ''} ({found['status']}): {_done(found)} jobs ended; {by_state}\n"
            + _leaderboard_text(found))
    s.emit({k: v for k, v in found.items() if k != "jobs"}, text)
    return EXIT_OK


@sweeps_command("cancel", "cancel a sweep")
@click.argument("sweep_id", metavar="SWEEP", type=int)
def sweeps_cancel(s: Session, sweep_id: int) -> int:
    found = s.api().cancel_sweep(sweep_id)
    s.emit(found, f"sweep {found['id']}: {found['status']}")
    return EXIT_OK


@sweeps_command("extend", "more trials for a random or tpe sweep, keeping what its study learned")
@click.argument("sweep_id", metavar="SWEEP", type=int)
@click.option("--trials", type=int, required=True, help="trials to add")
@click.option("--wait", is_flag=True, help="wait for it to end (exit 1 unless it finished)")
def sweeps_extend(s: Session, sweep_id: int, trials: int, wait: bool) -> int:
    found = s.api().extend_sweep(sweep_id, trials)
    if wait:
        found = s.api().wait_sweep(sweep_id, progress=None if not s.json else False)
    s.emit(found, f"sweep {found['id']} ({found['status']}): {found['progress']['planned_jobs']} jobs planned"
           + ("\n" + _leaderboard_text(found) if wait else ""))
    return EXIT_ENDED_BADLY if wait and found["status"] != "finished" else EXIT_OK


@sweeps_command("continue", "train the sweep's best point further: each of its seeds' jobs continued by --steps or --epochs")
@click.argument("sweep_id", metavar="SWEEP", type=int)
@click.option("--steps", type=int, help="optimizer steps more (a spec that counts steps)")
@click.option("--epochs", type=int, help="epochs more (a spec that counts epochs)")
@click.option("--wait", is_flag=True, help="wait for the jobs to end (exit 1 unless all succeeded)")
def sweeps_continue(s: Session, sweep_id: int, steps: int | None, epochs: int | None, wait: bool) -> int:
    try:
        started = s.api().continue_best(sweep_id, steps=steps, epochs=epochs)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if wait:
        started = [s.api().wait(job["id"], progress=None if not s.json else False) for job in started]
    lines = [f"job {job['id']} continues job {job['forked_from']['job']} from step {job['forked_from']['step']:,} ({job['status']})"
             for job in started]
    s.emit(started, "\n".join(lines))
    return EXIT_ENDED_BADLY if wait and any(job["status"] != "succeeded" for job in started) else EXIT_OK


@sweeps_command("importance", "how much each swept parameter mattered (fANOVA)")
@click.argument("sweep_id", metavar="SWEEP", type=int)
def sweeps_importance(s: Session, sweep_id: int) -> int:
    importance = s.api().importance(sweep_id)
    width = max((len(k) for k in importance), default=0)
    s.emit(importance, "\n".join(f"{k:<{width}}  {v:.3f}  {'#' * round(v * 40)}" for k, v in importance.items()))
    return EXIT_OK


@command("experiments", "your experiments with their job counts")
def experiments(s: Session) -> int:
    rows = s.api().experiments()
    lines = [f"{e['name']:<24} {e['jobs']:>6} jobs  {e['archived_jobs']:>5} archived  {e['active_jobs']:>4} active" for e in rows]
    s.emit(rows, "\n".join(lines) or "no experiments")
    return EXIT_OK


@command("archive", "archive an experiment's ended jobs (--restore brings them back)")
@click.argument("experiment")
@click.option("--restore", is_flag=True)
def archive(s: Session, experiment: str, restore: bool) -> int:
    answer = (s.api().restore if restore else s.api().archive)(experiment)
    verb = "restored" if restore else "archived"
    left = f"; {answer['not_ended']} not ended, left as they are" if answer["not_ended"] else ""
    s.emit(answer, f"{verb} {answer['changed']} jobs of {answer['experiment']}{left}")
    return EXIT_OK


# -- running it ---------------------------------------------------------------------------------------

def exit_code(exc: BaseException) -> int:
    return next(code for kind, code in EXIT_CODES if isinstance(exc, kind))


def _message(exc: BaseException) -> str:
    if isinstance(exc, (ValidationFailed, BadRequest)):
        return f"{exc.status} {exc.title}" + (f" ({exc.field})" if exc.field else "") + f": {exc.detail}"
    if isinstance(exc, (NotFound, Conflict)):
        return exc.detail
    if isinstance(exc, click.UsageError):
        return exc.format_message()
    return str(exc)


def run(args: list[str] | None = None, session: Session | None = None) -> int:
    """The CLI as a function: its exit code, messages on stderr (what `main` and the tests call)."""
    session = session or Session()
    try:
        return cli.main(args, prog_name="bplab", standalone_mode=False, obj=session) or EXIT_OK
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    except click.exceptions.Abort:  # Ctrl-C: as a shell reports an interrupted program
        return EXIT_INTERRUPTED
    except SystemExit as exc:  # click ends a program whose reader went away (`bplab ls | head`) quietly, with 1
        if exc.code == 1 and _reader_gone():
            return EXIT_OK  # nothing failed: nobody reads the rest
        raise
    except tuple(kind for kind, _ in EXIT_CODES) as exc:
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
        click.echo(f"bplab: {_message(exc)}", err=True)
        return exit_code(exc)
    finally:
        for client in session.opened:
            client.close()


def _reader_gone() -> bool:
    """Whether standard output is a pipe nobody reads any more (poll says POLLERR for it)."""
    try:
        poller = select.poll()
        poller.register(sys.__stdout__.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def main() -> None:
    sys.exit(run(sys.argv[1:]))


def commands_table() -> str:
    """The Markdown table of every command and what it does, from the commands themselves (docs/client.md)."""
    rows = ["| command | what it does |", "|---|---|"]
    for name, cmd in sorted(cli.commands.items()):
        rows.append(f"| `bplab {name}` | {cmd.short_help} |")
        for sub, subcmd in sorted(getattr(cmd, "commands", {}).items()):
            rows.append(f"| `bplab {name} {sub}` | {subcmd.short_help} |")
    return "\n".join(rows)


if __name__ == "__main__":
    main()
