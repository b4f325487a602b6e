"""Thousands of generated requests against our own OpenAPI document: no 5xx, every answer as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.databases import running_stack

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def small_stack(redis_server, tmp_path_factory):
    """Its own stack with small limits, so generated jobs stay tiny and leave the shared worker alone."""
    yield from running_stack("sqlite", redis_server.url, tmp_path_factory, env_overrides={
        "MAX_PARAMS": "5000", "MAX_STEPS": "500", "MAX_SAMPLES": "500", "MAX_SWEEP_JOBS": "20", "MAX_REQUEST_BYTES": "200000",
        "SUBMIT_RATE_LIMIT": "1000000/minute"})


@pytest.mark.timeout(600)
def test_generated_requests_get_no_server_error_and_documented_answers(small_stack):
    done = subprocess.run(
        [str(BIN / "schemathesis"), "run", f"{small_stack.url}/api/v1/openapi.json", "--url", small_stack.url,
         "--max-examples", "100", "--seed", "1", "--no-color", "--request-timeout", "60",
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"],
        capture_output=True, text=True, timeout=540)
    summary = done.stdout[-3000:]
    assert done.returncode == 0, summary + small_stack.logs()[-3000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counts and int(counts.group(1)) >= 2000 and counts.group(1) == counts.group(2), summary
