"""`bplab`: the service from a terminal, one command per REST capability. Every command takes
--url (or BPLAB_URL), --token (or BPLAB_TOKEN) and --json, before or after the command's name.

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

def assignments(pairs: list[str] | None, option: str) -> dict[str, Any]:
    """`["optimizer.lr=0.5", "name=x"]` -> {"optimizer.lr": 0.5, "name": "x"} (values as JSON when they parse)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        path, sep, value = pair.partition("=")
        if not sep or not path:
            raise UsageError(f"{option} {pair}: use KEY=VALUE")
        out[path] = parse_value(value)
    return out


def _meta(args) -> dict[str, Any]:
    meta: dict[str, Any] = {k: v for k, v in {"name": args.name, "experiment": args.experiment}.items() if v}
    if args.tag:
        meta["tags"] = {k: str(v) if not isinstance(v, str) else v for k, v in assignments(args.tag, "--tag").items()}
    return meta


def _submitted(client: Client, args, job: dict) -> int:
    if not args.wait:
        emit(args, job, f"submitted job {job['id']} ({job['status']})")
        return EXIT_OK
    job = client.wait(job["id"], progress=None if not args.json else False)
    emit(args, job, _summary_text(job))
    return EXIT_ENDED_BADLY if ended_badly(job) else EXIT_OK


def cmd_submit(client: Client, args) -> int:
    spec = load_document(args.spec)
    for path, value in assignments(args.set, "--set").items():
        set_path(spec, path, value)
    return _submitted(client, args, client.submit(spec, **_meta(args)))


def cmd_clone(client: Client, args) -> int:
    return _submitted(client, args, client.clone(args.id, assignments(args.set, "--set"), **_meta(args)))


def cmd_delete(client: Client, args) -> int:
    for job_id in args.ids:
        client.delete(job_id)
        if not args.json:
            print(f"deleted job {job_id}")
    if args.json:
        emit(args, {"deleted": args.ids})
    return EXIT_OK


def cmd_tag(client: Client, args) -> int:
    tags: dict[str, str | None] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in assignments(args.tags, "tag").items()}
    tags.update({key: None for key in args.remove or []})
    if not tags:
        raise UsageError("tag: give KEY=VALUE to set or --remove KEY")
    job = client.update(args.id, tags=tags)
    emit(args, job, f"job {job['id']} tags: " + (", ".join(f"{k}={v}" for k, v in job["tags"].items()) or "none"))
    return EXIT_OK


def cmd_rename(client: Client, args) -> int:
    job = client.update(args.id, name=args.name or None, clear_name=not args.name)
    emit(args, job, f"job {job['id']} is now named {job['name']!r}" if job["name"] else f"job {job['id']} has no name")
    return EXIT_OK


def cmd_diff(client: Client, args) -> int:
    diff = client.diff(args.a, args.b, args.tolerance)
    emit(args, diff, _diff_text(args.a, args.b, diff))
    return EXIT_OK


def _diff_text(a: int, b: int, diff: dict) -> str:
    lines = [f"{name}: {json.dumps(change['a'])} -> {json.dumps(change['b'])}" for name, change in diff["spec_differences"].items()]
    first = diff["first_difference"]
    if first is None:
        lines.append(f"jobs {a} and {b} agree within {diff['tolerance']:g} on all {diff['steps_compared']} steps compared")
    else:
        lines.append(f"jobs {a} and {b} part at step {first['step']}: {first['key']} {first['a']:.6g} vs {first['b']:.6g} "
                     f"(relative difference {first['relative_difference']:.2g})")
    return "\n".join(lines)


def cmd_predict(client: Client, args) -> int:
    rows = parse_value(args.rows) if args.rows else load_document(args.file)
    if isinstance(rows, dict) and "X" in rows:
        rows = rows["X"]
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise UsageError("predict: rows as a JSON list of lists, e.g. '[[0.5, 0.1]]'")
    answer = client.predict(args.id, rows)
    lines = [f"{json.dumps(r)} -> {json.dumps(o)}" + (f"  class {json.dumps(c)}" if c is not None else "")
             for r, o, c in zip(rows, answer["outputs"], answer.get("classes") or [None] * len(rows))]
    emit(args, answer, "\n".join(lines))
    return EXIT_OK


def cmd_model(client: Client, args) -> int:
    if args.json:
        emit(args, client.model(args.id))
        return EXIT_OK
    path = client.save_model(args.id, args.output or f"job-{args.id}-model.npz")
    print(f"saved job {args.id}'s model to {path}")
    return EXIT_OK


def cmd_sweep(client: Client, args) -> int:
    sweep = client.sweep(load_document(args.file))
    if args.wait:
        sweep = client.wait_sweep(sweep["id"], progress=None if not args.json else False)
    text = f"sweep {sweep['id']} ({sweep['status']}): {sweep['progress']['planned_jobs']} jobs planned"
    if args.wait:
        text += "\n" + _leaderboard_text(sweep)
    emit(args, sweep, text)
    return EXIT_ENDED_BADLY if args.wait and sweep["status"] != "finished" else EXIT_OK


def cmd_watch(client: Client, args) -> int:
    job = client.wait(args.id, progress=None if not args.json else False)
    emit(args, job, _summary_text(job))
    return EXIT_ENDED_BADLY if ended_badly(job) else EXIT_OK


def cmd_ls(client: Client, args) -> int:
    jobs = client.jobs(status=args.status, experiment=args.experiment, sweep_id=args.sweep, tag=args.tag, limit=args.limit, q=args.q,
                       archived=args.archived)
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


def cmd_sweeps(client: Client, args) -> int:
    sweeps = client.sweeps(limit=args.limit)
    lines = [f"{sw['id']:>5}  {sw['status']:<10} {_done(sw):>9} jobs  {sw['strategy']:<6} {sw['experiment']:<16} {sw['name'] or ''}"
             for sw in sweeps]
    emit(args, sweeps, "\n".join(lines) or "no sweeps")
    return EXIT_OK


def _done(sweep: dict) -> str:
    progress = sweep["progress"]
    ended = sum(n for state, n in progress["by_state"].items() if state not in ("queued", "running"))
    return f"{ended}/{progress['planned_jobs']}"


def cmd_sweep_show(client: Client, args) -> int:
    sweep = client.get_sweep(args.sweep)
    by_state = ", ".join(f"{n} {state}" for state, n in sweep["progress"]["by_state"].items()) or "no jobs yet"
    text = (f"sweep {sweep['id']} {sweep['name'] or ''} ({sweep['status']}): {_done(sweep)} jobs ended; {by_state}\n"
            + _leaderboard_text(sweep))
    emit(args, {k: v for k, v in sweep.items() if k != "jobs"}, text)
    return EXIT_OK


def cmd_sweep_cancel(client: Client, args) -> int:
    sweep = client.cancel_sweep(args.sweep)
    emit(args, sweep, f"sweep {sweep['id']}: {sweep['status']}")
    return EXIT_OK


def cmd_importance(client: Client, args) -> int:
    importance = client.importance(args.sweep)
    width = max((len(k) for k in importance), default=0)
    emit(args, importance, "\n".join(f"{k:<{width}}  {v:.3f}  {'#' * round(v * 40)}" for k, v in importance.items()))
    return EXIT_OK


def cmd_experiments(client: Client, args) -> int:
    rows = client.experiments()
    lines = [f"{e['name']:<24} {e['jobs']:>6} jobs  {e['archived_jobs']:>5} archived  {e['active_jobs']:>4} active" for e in rows]
    emit(args, rows, "\n".join(lines) or "no experiments")
    return EXIT_OK


def cmd_archive(client: Client, args) -> int:
    answer = (client.restore if args.restore else client.archive)(args.experiment)
    verb = "restored" if args.restore else "archived"
    left = f"; {answer['not_ended']} not ended, left as they are" if answer["not_ended"] else ""
    emit(args, answer, f"{verb} {answer['changed']} jobs of {answer['experiment']}{left}")
    return EXIT_OK


def cmd_open(client: Client, args) -> int:
    job = client.get(args.id)  # a job that is not there (or not yours) is exit 3, not a page saying so
    url = f"{client.url}/jobs/{job['id']}"
    if not args.json and not args.print_only:
        import webbrowser

        webbrowser.open(url)
    emit(args, {"id": job["id"], "url": url}, url)
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
    def new_job(p: argparse.ArgumentParser) -> None:
        p.add_argument("--set", action="append", metavar="PATH=VALUE", help="change a field, e.g. optimizer.lr=0.5 (repeatable)")
        p.add_argument("--name")
        p.add_argument("--experiment")
        p.add_argument("--tag", action="append", metavar="KEY=VALUE")
        p.add_argument("--wait", action="store_true", help="wait for the job to end (exit 1 unless it succeeded)")
    p = command("submit", help="submit a job spec")
    p.add_argument("spec", help="JSON or YAML file, or - for stdin")
    new_job(p)
    p.set_defaults(run=cmd_submit)
    p = command("clone", help="a new job from a job's spec with --set changes (its experiment and tags unless given)")
    p.add_argument("id", type=int)
    new_job(p)
    p.set_defaults(run=cmd_clone)
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
    p.add_argument("--archived", action="store_true", help="the archived jobs instead")
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
    p = command("open", help="open a job's page in the browser (and print its address)")
    p.add_argument("id", type=int)
    p.add_argument("--print-only", action="store_true", help="print the address, open nothing")
    p.set_defaults(run=cmd_open)
    p = command("delete", help="delete jobs with everything they recorded (and their MLflow runs)")
    p.add_argument("ids", type=int, nargs="+", metavar="id")
    p.set_defaults(run=cmd_delete)
    p = command("tag", help="set tags on a job (KEY=VALUE), or remove them (--remove KEY)")
    p.add_argument("id", type=int)
    p.add_argument("tags", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--remove", action="append", metavar="KEY")
    p.set_defaults(run=cmd_tag)
    p = command("rename", help="rename a job ('' removes its name)")
    p.add_argument("id", type=int)
    p.add_argument("name")
    p.set_defaults(run=cmd_rename)
    p = command("diff", help="where two runs of one architecture part, and how their specs differ")
    p.add_argument("a", type=int)
    p.add_argument("b", type=int)
    p.add_argument("--tolerance", type=float, default=1e-9)
    p.set_defaults(run=cmd_diff)
    p = command("predict", help="the trained model's outputs for input rows")
    p.add_argument("id", type=int)
    rows = p.add_mutually_exclusive_group(required=True)
    rows.add_argument("--rows", metavar="JSON", help="e.g. '[[0.5, 0.1], [1, 0]]'")
    rows.add_argument("--file", help="a JSON file of rows (or {\"X\": rows}), - for stdin")
    p.set_defaults(run=cmd_predict)
    p = command("model", help="download the trained model as .npz (--json: as JSON)")
    p.add_argument("id", type=int)
    p.add_argument("-o", "--output", help="the .npz path (default: job-ID-model.npz)")
    p.set_defaults(run=cmd_model)
    p = command("sweeps", help="sweeps: list (default), show, cancel, importance")
    actions = p.add_subparsers(dest="action")
    p.set_defaults(run=cmd_sweeps, limit=20)
    a = actions.add_parser("list", parents=[anywhere], help="sweeps, newest first")
    a.add_argument("--limit", type=int, default=20)
    a.set_defaults(run=cmd_sweeps)
    for name, run, text in (("show", cmd_sweep_show, "a sweep's progress and leaderboard"), ("cancel", cmd_sweep_cancel, "cancel a sweep"),
                            ("importance", cmd_importance, "how much each swept parameter mattered (fANOVA)")):
        a = actions.add_parser(name, parents=[anywhere], help=text)
        a.add_argument("sweep", type=int)
        a.set_defaults(run=run)
    p = command("experiments", help="your experiments with their job counts")
    p.set_defaults(run=cmd_experiments)
    p = command("archive", help="archive an experiment's ended jobs (--restore brings them back)")
    p.add_argument("experiment")
    p.add_argument("--restore", action="store_true")
    p.set_defaults(run=cmd_archive)
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
