"""No client stalls the API, tried as the attacker did against the real server (AUTH=on, loopback):
hundreds of sockets sending headers or bodies a byte at a time, and one owner opening hundreds of
event streams, while another owner's requests and /healthz are answered. Bounded: a few hundred
sockets for a few seconds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.services import ROOT, Stack, wait_for
from tests.support.slow_clients import Trickle, open_streams, probe, trickling
from tests.support.specs import moons

TIMEOUT = 10.0  # a probe not answered by then counts as stalled (the server it replaced answered none for 40 s)


@pytest.fixture(scope="module")
def guarded_stack(redis_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("slow")
    stack = Stack(f"sqlite:///{folder / 'db.sqlite'}", redis_server.url, env_overrides={"AUTH": "on"}, workers=0).start()
    tokens = {}
    for owner in ("alice", "bob"):
        made = subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "services.api", "tokens", "create", owner],
                              cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=60, check=True)
        tokens[owner] = made.stdout.strip()
    yield stack, tokens
    stack.stop()


def _probes(stack, bob: str) -> list:
    client = httpx.Client(base_url=stack.url, timeout=TIMEOUT)
    return [lambda: client.get("/healthz"), lambda: client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {bob}"})]


def test_slow_headers_and_slow_bodies_cost_a_socket_not_a_thread(guarded_stack):
    stack, tokens = guarded_stack
    port = stack.port
    with trickling(lambda: Trickle("127.0.0.1", port, 200),
                   lambda: Trickle("127.0.0.1", port, 32, body=True, headers={"Authorization": f"Bearer {tokens['alice']}"})) as held:
        took = probe(_probes(stack, tokens["bob"]), 30, timeout=TIMEOUT)
        assert [t.alive() for t in held] == [200, 32]  # all still held open by the server, mid-request
    assert max(took) < TIMEOUT, took  # every probe answered while they were


def test_one_owners_event_streams_leave_the_others_served(guarded_stack):
    stack, tokens = guarded_stack
    alice = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {tokens['alice']}"}, timeout=TIMEOUT)
    job = alice.post("/api/v1/jobs", json=moons()).json()["id"]  # queued: no worker here, so its stream never ends
    socks, statuses = open_streams("127.0.0.1", stack.port, f"/api/v1/jobs/{job}/events", tokens["alice"], 200)
    try:
        assert statuses == {200: 8, 429: 192}, statuses  # EVENTS_MAX_PER_OWNER open, the rest told to come back
        took = probe(_probes(stack, tokens["bob"]), 30, timeout=TIMEOUT)
    finally:
        for sock in socks:
            sock.close()
    assert max(took) < TIMEOUT, took

    def reopened() -> bool:  # clients that left give their streams back (noticed at the next keep-alive)
        again, statuses = open_streams("127.0.0.1", stack.port, f"/api/v1/jobs/{job}/events", tokens["alice"], 8)
        for sock in again:
            sock.close()
        return statuses == {200: 8}

    wait_for(reopened, 45, interval=6, what="the streams of clients that left to be given back")
