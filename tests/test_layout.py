"""Tests stand alone: what they share is in tests/support/; no test module imports another test
module or a conftest (which pytest loads itself)."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_no_test_module_imports_another_or_a_conftest():
    offenders = []
    for path in TESTS.rglob("*.py"):
        for line in path.read_text().splitlines():
            if re.match(r"\s*(from|import)\s+tests\.(\w+\.)*(test_\w+|conftest)\b", line):
                offenders.append(f"{path.relative_to(TESTS)}: {line.strip()}")
    assert offenders == []


def test_the_services_root_holds_settings_migrate_and_packages_only():
    loose = sorted(p.name for p in (TESTS.parent / "services").glob("*.py"))
    assert loose == ["__init__.py", "migrate.py", "settings.py"]
