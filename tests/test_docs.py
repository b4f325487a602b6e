"""The documentation matches the code: the generated reference tables are the ones in docs/, every
module is in the layout, every link from the README leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

from engine.spec import field_table
from services.settings import configuration_table

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_the_job_spec_table_is_the_one_the_models_print():
    assert field_table() in (DOCS / "job-spec.md").read_text(), "run `python -m engine fields` and paste it into docs/job-spec.md"


def test_the_metric_and_summary_tables_are_the_ones_the_engine_prints():
    from engine.__main__ import metrics_tables

    assert metrics_tables() in (DOCS / "job-spec.md").read_text(), "run `python -m engine metrics` and paste it into docs/job-spec.md"


def test_the_configuration_table_is_the_one_the_settings_print():
    assert configuration_table() in (DOCS / "operating.md").read_text(), \
        "run `python -m services.settings` and paste it into docs/operating.md"


def layout_paths() -> set[str]:
    """The paths docs/development.md's layout tree lists (two spaces of indent per level)."""
    block = (DOCS / "development.md").read_text().split("## Where things live", 1)[1].split("```", 2)[1]
    paths, parents = set(), []
    for line in block.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        parents = parents[:depth]
        path = "/".join([*parents, name.rstrip("/")])
        paths.add(path)
        if name.endswith("/"):
            parents.append(name.rstrip("/"))
    return paths


def test_every_module_is_in_the_layout_at_its_path():
    listed = layout_paths()
    modules = [p for folder in ("engine", "services", "worker", "client/bplab") for p in (ROOT / folder).rglob("*.py")
               if p.name != "__init__.py"]
    missing = [str(p.relative_to(ROOT)) for p in modules if str(p.relative_to(ROOT)) not in listed]
    assert missing == []


def test_the_readme_links_to_documents_that_exist_and_shows_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(((?:docs/)[^)#]+)", readme)
    assert links and all((ROOT / link).is_file() for link in links), links
    assert "make up" in readme and "make test" in readme
