"""`bplab`: the service from a terminal. Every command takes --url (or BPLAB_URL) and --json.

Exit codes: 0 done; 1 a job or sweep ended other than succeeded/finished; 2 bad input (usage, 400,
413, 422); 3 not found; 4 service unreachable or failing (5xx); 5 conflict (409).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from .client import Client
from .errors import ApiError, BadRequest, Conflict, ConnectionFailed, NotFound, ServerError, ValidationFailed

EXIT_OK, EXIT_ENDED_BADLY, EXIT_INPUT, EXIT_NOT_FOUND, EXIT_SERVICE, EXIT_CONFLICT = 0, 1, 2, 3, 4, 5


class UsageError(Exception):
    pass


def parse_value(text: str) -> Any:
    """`0.5` -> 0.5, `full` -> "full", `[1, 2]` -> [1, 2]: JSON when it parses, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def set_path(document: dict, path: str, value: Any) -> None:
    """Set `optimizer.lr` or `model.layers[0].units` in place."""
    steps: list[Any] = []
    for part in path.split("."):
        match = re.fullmatch(r"([A-Za-z_]\w*)((?:\[\d+\])*)", part)
        if not match:
            raise UsageError(f"--set {path}: {part!r} is not a field name")
        steps.append(match.group(1))
        steps += [int(i) for i in re.findall(r"\[(\d+)\]", match.group(2))]
    target: Any = document
    try:
        for step in steps[:-1]:
            target = target[step] if isinstance(step, int) else target.setdefault(step, {})
        target[steps[-1]] = value
    except (IndexError, TypeError, AttributeError):
        raise UsageError(f"--set {path}: the spec has no such field") from None


def load_document(path: str) -> dict:
    text = sys.stdin.read() if path == "-" else Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise UsageError("reading YAML needs pyyaml: pip install 'bplab-client[yaml]'") from None
        return yaml.safe_load(text)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: not valid JSON ({exc})") from None


def emit(args: argparse.Namespace, data: Any, text: str | None = None) -> None:
    if args.json or text is None:
        print(json.dumps(data, indent=2))
    else:
        print(text)


def job_line(job: dict) -> str:
    p = job["progress"]
    loss = f"{p['loss']:.5g}" if p["loss"] is not None else "-"
    return f"{job['id']:>6}  {job['status']:<10} {p['step']:>8}/{p['total_steps']:<8} loss {loss:<12} {job['experiment']:<16} {job['name'] or ''}"


def ended_badly(job: dict) -> bool:
    return job["status"] != "succeeded"


# -- commands -----------------------------------------------------------------------------------

def cmd_submit(client: Client, args) -> int:
    spec = load_document(args.spec)
    for assignment in args.set or []:
        path, sep, value = assignment.partition("=")
        if not sep:
            raise UsageError(f"--set {assignment}: use path=value")
        set_path(spec, path, parse_value(value))
    meta = {k: v for k, v in {"name": args.name, "experiment": args.experiment}.items() if v}
    if args.tag:
        meta["tags"] = dict(t.partition("=")[::2] for t in args.tag)
    job = client.submit(spec, **meta)
    if not args.wait:
        emit(args, job, f"submitted job {job['id']} ({job['status']})")
        return EXIT_OK
    job = client.wait(job["id"], progress=not args.json)
    emit(args, job, _summary_text(job))
    return EXIT_ENDED_BADLY if ended_badly(job) else EXIT_OK


def cmd_sweep(client: Client, args) -> int:
    sweep = client.sweep(load_document(args.file))
    if args.wait:
        sweep = client.wait_sweep(sweep["id"], progress=not args.json)
    text = f"sweep {sweep['id']} ({sweep['status']}): {sweep['progress']['planned_jobs']} jobs planned"
    if args.wait:
        text += "\n" + _leaderboard_text(sweep)
    emit(args, sweep, text)
    return EXIT_ENDED_BADLY if args.wait and sweep["status"] != "finished" else EXIT_OK


def cmd_watch(client: Client, args) -> int:
    job = client.wait(args.id, progress=not args.json)
    emit(args, job, _summary_text(job))
    return EXIT_ENDED_BADLY if ended_badly(job) else EXIT_OK


def cmd_ls(client: Client, args) -> int:
    jobs = client.jobs(status=args.status, experiment=args.experiment, sweep_id=args.sweep, tag=args.tag, limit=args.limit, q=args.q)
    emit(args, jobs, "\n".join(job_line(j) for j in jobs) or "no jobs")
    return EXIT_OK


def cmd_show(client: Client, args) -> int:
    job = client.get(args.id)
    emit(args, job, json.dumps({k: v for k, v in job.items() if k != "spec"}, indent=2))
    return EXIT_OK


def cmd_metrics(client: Client, args) -> int:
    if args.csv:
        sys.stdout.write(client.metrics_csv(args.id, args.keys, args.max_points))
        return EXIT_OK
    series = client.metrics(args.id, args.keys, args.max_points)
    lines = []
    for key, s in series.items():
        lines.append(f"{key}: {len(s['steps'])} points" + (f", last {s['values'][-1]:.6g} at step {s['steps'][-1]}" if s["steps"] else ""))
    emit(args, series, "\n".join(lines))
    return EXIT_OK


def cmd_trace(client: Client, args) -> int:
    if args.json:
        emit(args, client.trace(args.id, args.step))
    else:
        sys.stdout.write(client.trace_table(args.id, args.step))
    return EXIT_OK


def cmd_leaderboard(client: Client, args) -> int:
    if args.csv:
        sys.stdout.write(client.leaderboard_csv(args.sweep))
        return EXIT_OK
    sweep = client.get_sweep(args.sweep)
    emit(args, sweep["leaderboard"], _leaderboard_text(sweep))
    return EXIT_OK


def cmd_cancel(client: Client, args) -> int:
    job = client.cancel(args.id)
    emit(args, job, f"job {job['id']}: {job['status']}" + (" (stopping)" if job["status"] == "running" else ""))
    return EXIT_OK


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


def _global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--url", default=default, help="service URL (default: $BPLAB_URL or http://127.0.0.1:8000)")
    parser.add_argument("--token", default=default, help="API token (default: $BPLAB_TOKEN)")
    parser.add_argument("--json", action="store_true", default=default, help="machine-readable output")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bplab", description="Backprop Lab from the terminal.")
    _global_options(parser, None)
    parser.set_defaults(json=False)
    # The same options after the command (`bplab ls --json`): they override what came before it, and
    # leave it alone when absent (SUPPRESS: no default written over the one already parsed).
    anywhere = argparse.ArgumentParser(add_help=False)
    _global_options(anywhere, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[anywhere], **kwargs)
    p = command("submit", help="submit a job spec")
    p.add_argument("spec", help="JSON file, or - for stdin")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", help="override a field, e.g. optimizer.lr=0.5")
    p.add_argument("--name")
    p.add_argument("--experiment")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE")
    p.add_argument("--wait", action="store_true", help="wait for the job to end (exit 1 unless it succeeded)")
    p.set_defaults(run=cmd_submit)
    p = command("sweep", help="create a sweep from a YAML or JSON file")
    p.add_argument("file")
    p.add_argument("--wait", action="store_true")
    p.set_defaults(run=cmd_sweep)
    p = command("watch", help="live progress of a job until it ends")
    p.add_argument("id", type=int)
    p.set_defaults(run=cmd_watch)
    p = command("ls", help="list jobs, newest first")
    p.add_argument("--status")
    p.add_argument("--experiment")
    p.add_argument("--sweep", type=int)
    p.add_argument("--tag")
    p.add_argument("--q", metavar="TEXT", help="only jobs whose name contains TEXT (any case)")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(run=cmd_ls)
    p = command("show", help="a job's state, progress and summary")
    p.add_argument("id", type=int)
    p.set_defaults(run=cmd_show)
    p = command("metrics", help="a job's recorded metrics")
    p.add_argument("id", type=int)
    p.add_argument("--keys", help="comma-separated keys (default: all)")
    p.add_argument("--max-points", type=int)
    p.add_argument("--csv", action="store_true")
    p.set_defaults(run=cmd_metrics)
    p = command("trace", help="the backward-pass trace table of a recorded step")
    p.add_argument("id", type=int)
    p.add_argument("--step", type=int, default=0)
    p.set_defaults(run=cmd_trace)
    p = command("leaderboard", help="a sweep's points, best first")
    p.add_argument("sweep", type=int)
    p.add_argument("--csv", action="store_true")
    p.set_defaults(run=cmd_leaderboard)
    p = command("cancel", help="cancel a job")
    p.add_argument("id", type=int)
    p.set_defaults(run=cmd_cancel)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with Client(args.url, token=args.token) as client:
            return args.run(client, args)
    except UsageError as exc:
        print(f"bplab: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except (ValidationFailed, BadRequest) as exc:
        where = f" ({exc.field})" if exc.field else ""
        print(f"bplab: {exc.status} {exc.title}{where}: {exc.detail}", file=sys.stderr)
        return EXIT_INPUT
    except NotFound as exc:
        print(f"bplab: {exc.detail}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except Conflict as exc:
        print(f"bplab: {exc.detail}", file=sys.stderr)
        return EXIT_CONFLICT
    except (ConnectionFailed, ServerError) as exc:
        print(f"bplab: {exc}", file=sys.stderr)
        return EXIT_SERVICE
    except ApiError as exc:
        print(f"bplab: {exc}", file=sys.stderr)
        return EXIT_SERVICE
    except OSError as exc:
        print(f"bplab: {exc}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
