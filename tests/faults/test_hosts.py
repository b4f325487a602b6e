"""The stack laid out as hosts (tests/support/hosts.py: a network namespace and an empty directory each, no path
shared), run through a bounded subset of bench/hosts.py's scenarios: a training host lost with every process
while it trains a stack, and training hosts whose clocks are 120 s slow and 120 s fast (libfaketime) with the
fast one lost: leases and the reaper go by the database's clock, so the slow host's live jobs are not reaped
and the lost one's are reclaimed within a heartbeat timeout and a reaper pass. Each ends with bench/hosts.py's checks: every accepted job ended once,
none recorded twice, each bitwise its clean run, every MLflow run complete, nothing left queued.

Skipped where namespaces cannot be made (not root); CI runs as root, where a skip is a failure."""

from __future__ import annotations

import os

import pytest

from bench.hosts import QUICK, RECOVERY, SCENARIOS, Outcome
from tests.support.hosts import Hosts, available
from tests.support.services import LIBFAKETIME

WHY = available()
if WHY and os.environ.get("CI"):
    raise RuntimeError(f"CI must lay the stack out as hosts: {WHY}")
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"no hosts here: {WHY}")


@pytest.fixture(scope="module")
def hosts():
    with Hosts(env=RECOVERY) as made:
        made.start()
        yield made


def _holds(outcome: Outcome, hosts: Hosts) -> None:
    assert outcome.ended == outcome.accepted and outcome.lost == 0 and outcome.twice == 0, (outcome, hosts.logs())
    assert outcome.bit_equal == outcome.accepted and outcome.mlflow_complete == outcome.accepted, (outcome, hosts.logs())
    assert "left queued" not in outcome.note, outcome


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scenario", ["host_loss", "skewed_clocks"])
def test_the_stack_on_hosts_survives(hosts, scenario):
    if scenario == "skewed_clocks" and not LIBFAKETIME.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must set hosts' clocks apart: libfaketime is not installed")
        pytest.skip("libfaketime is not installed (apt-get install libfaketime; .ci/run installs it)")
    with hosts.client() as client:
        outcome = SCENARIOS[scenario](hosts, client, QUICK)
    print(outcome)
    _holds(outcome, hosts)
    timeout = float(RECOVERY["HEARTBEAT_TIMEOUT"]) + float(RECOVERY["REAPER_SECONDS"])
    if outcome.recovered_s is not None:  # a lost host's jobs elsewhere within a heartbeat timeout and a reaper pass (and a claim)
        assert outcome.recovered_s <= timeout + 3, outcome
    if scenario == "skewed_clocks":
        assert outcome.note.startswith("live jobs reaped: 0;"), outcome
