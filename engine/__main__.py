"""`python -m engine run SPEC.json` — train one job spec and print its result as JSON;
`python -m engine fields` — the reference table of the job spec's fields; `python -m engine metrics`
— those of the metric keys and of a job's summary.

Exit codes: 0 trained (status succeeded or diverged, see the result), 2 bad input (the error,
naming the field, on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from importlib import resources
from pathlib import Path

from .recording import METRIC_REFERENCE, reference_table
from .spec import SpecError, field_table
from .trace import format_trace_table
from .training import SUMMARY_REFERENCE, run

EXAMPLES = ("seed-trace",)


def _load(args: argparse.Namespace) -> dict:
    if args.example:
        return json.loads(resources.files("engine.examples").joinpath(f"{args.example}.json").read_text())
    if args.spec is None:
        raise SpecError([("", "give a spec file (or - for stdin) or --example NAME")])
    text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError([("", f"not valid JSON: {exc}")]) from None


def metrics_tables() -> str:
    """What docs/job-spec.md shows of the metric keys and the summary (a test keeps the two equal)."""
    return (reference_table(METRIC_REFERENCE, "metric key") + "\n\n" + reference_table(SUMMARY_REFERENCE, "summary field"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine", description="Train a job spec with the NumPy backprop engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="train a spec and print the result as JSON")
    run_p.add_argument("spec", nargs="?", help="path to a job spec (JSON), or - for stdin")
    run_p.add_argument("--example", choices=EXAMPLES, help="run a shipped example instead of a file")
    run_p.add_argument("--table", action="store_true", help="print recorded traces as tables instead of JSON")
    run_p.add_argument("--indent", type=int, default=None, help="indent the JSON output")
    sub.add_parser("fields", help="print the reference table of every job spec field (Markdown)")
    sub.add_parser("metrics", help="print the reference tables of the metric keys and the summary fields (Markdown)")
    args = parser.parse_args(argv)
    if args.command == "fields":
        print(field_table())
        return 0
    if args.command == "metrics":
        print(metrics_tables())
        return 0
    try:
        result = run(_load(args))
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.table:
        traces = result.get("trace", [])
        print("\n\n".join(format_trace_table(t) for t in traces) if traces else "no trace recorded (set record.trace)")
        print(f"\nstatus: {result['status']}, final loss: {result['summary'].get('final_loss')}")
    else:
        json.dump(result, sys.stdout, indent=args.indent, allow_nan=False)
        sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
