"""The attacks an owner (or a page, or an anonymous caller) on the same machine tried, each pinned:
security headers on every kind of answer and no inline script; anonymous /readyz says only ready;
ids past the store's range are absent; the tag limit holds whatever the number of requests; another
owner's job is never loaded; event streams are bounded per owner and in all, end when idle and
resume with Last-Event-ID; a sweep too big in all is refused. The app in-process, on both databases."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import event

from services.api.routes.events import STREAMS
from services.store.db import session_factory
from tests.support.databases import BACKENDS, drop_database
from tests.support.inprocess import http, make_app, token
from tests.support.specs import SEED, moons


@pytest.fixture(scope="module", params=BACKENDS)
def guarded(request, redis_server, tmp_path_factory):
    flask_app, url = make_app(request.param, redis_server.url, tmp_path_factory, auth="on", events_max_per_owner=3,
                              events_max_streams=5, events_idle_seconds=1.0, api_threads=8,
                              max_sweep_state_bytes=2**30)
    flask_app.config["EVENTS_POLL_SECONDS"] = 0.05
    yield flask_app, {"alice": token(flask_app, "alice"), "bob": token(flask_app, "bob"), "carol": token(flask_app, "carol")}, url
    drop_database(url)


def test_every_answer_carries_the_security_headers_and_no_page_runs_inline_script(guarded):
    app, tokens, _ = guarded
    with http(app, tokens["alice"]) as alice:
        job = alice.post("/api/v1/jobs", json=SEED).json()
        answers = [alice.get(path) for path in ("/", f"/jobs/{job['id']}", "/docs", "/docs/problems", "/api/v1/openapi.json",
                                                f"/api/v1/jobs/{job['id']}", "/api/v1/jobs/999999", "/static/pages.js")]
        answers.append(alice.get(f"/api/v1/jobs/{job['id']}/charts/loss", headers={"Accept": "image/svg+xml"}))
    for answer in answers:
        policy = answer.headers["Content-Security-Policy"]
        scripts = policy.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in policy and scripts.strip() == "'self'", policy
        assert answer.headers["X-Content-Type-Options"] == "nosniff" and answer.headers["Referrer-Policy"] == "same-origin", answer.url
    for page in answers[:4]:
        scripts = re.findall(r"<script[^>]*>(.*?)</script>", page.text, re.S)
        assert all(body.strip() == "" for body in scripts), page.url  # every script is a file of ours
        assert not re.search(r"\son[a-z]+=", page.text), page.url  # no inline handlers either


def test_anonymous_readiness_says_only_ready(guarded):
    app, tokens, _ = guarded
    with http(app) as anonymous, http(app, tokens["bob"]) as bob:
        said = anonymous.get("/readyz").json()
        assert set(k for k, v in said.items() if v is not None) == {"ready"}, said
        assert bob.get("/readyz").json()["migrations"]["detail"].startswith("at ")


@pytest.mark.parametrize("path", ["/api/v1/jobs/2147483648", "/api/v1/sweeps/99999999999", "/api/v1/compare/chart?jobs=9999999999,1",
                                  "/api/v1/jobs/1/diff/9999999999"])
def test_ids_past_the_stores_range_are_absent(guarded, path):
    app, tokens, _ = guarded
    with http(app, tokens["alice"]) as alice:
        answer = alice.get(path)
    assert answer.status_code == 404 and answer.headers["Content-Type"] == "application/problem+json", answer.text


def test_the_tag_limit_holds_for_what_a_job_holds_however_many_requests(guarded):
    app, tokens, _ = guarded
    with http(app, tokens["alice"]) as alice:
        job = alice.post("/api/v1/jobs", json={**SEED, "tags": {f"t{i}": "x" for i in range(40)}}).json()
        refused = alice.patch(f"/api/v1/jobs/{job['id']}", json={"tags": {f"u{i}": "y" for i in range(11)}})
        assert refused.status_code == 422 and refused.json()["field"] == "tags" and "51 tags" in refused.json()["detail"]
        swapped = alice.patch(f"/api/v1/jobs/{job['id']}", json={"tags": {"t0": None, **{f"u{i}": "y" for i in range(11)}}})
        assert swapped.status_code == 200 and len(swapped.json()["tags"]) == 50
        for i in range(5):  # many small requests do not add up past it either
            assert alice.patch(f"/api/v1/jobs/{job['id']}", json={"tags": {f"v{i}": "z"}}).status_code == 422
        assert len(alice.get(f"/api/v1/jobs/{job['id']}").json()["tags"]) == 50
        full = alice.post(f"/api/v1/jobs/{job['id']}/clone", json={})  # its 50 tags and cloned_from would be 51
        assert full.status_code == 422 and full.json()["errors"][0]["field"] == "tags", full.text
        assert alice.post(f"/api/v1/jobs/{job['id']}/clone", json={"tags": {"team": "a"}}).status_code == 202


def test_another_owners_job_is_never_loaded(guarded):
    app, tokens, url = guarded
    with http(app, tokens["alice"]) as alice, http(app, tokens["bob"]) as bob:
        foreign = alice.post("/api/v1/jobs", json={**SEED, "tags": {f"t{i}": "x" * 400 for i in range(50)}}).json()["id"]
        statements = []
        engine = session_factory(url).kw["bind"]
        listener = lambda conn, cursor, statement, *rest: statements.append(statement)
        event.listen(engine, "before_cursor_execute", listener)
        try:
            answer = bob.get(f"/api/v1/jobs/{foreign}")
        finally:
            event.remove(engine, "before_cursor_execute", listener)
    assert answer.status_code == 404
    job_reads = [s for s in statements if "FROM jobs" in s]
    assert job_reads and all("jobs.owner" in s for s in job_reads), job_reads  # the owner is in the query
    assert not any("job_tags" in s for s in statements), statements  # nothing of the job, its tags included, was read


def test_event_streams_are_bounded_per_owner_and_in_all(guarded):
    app, tokens, _ = guarded
    client = app.test_client()
    with http(app, tokens["alice"]) as alice:
        job = alice.post("/api/v1/jobs", json=moons(epochs=1)).json()["id"]  # queued: nobody trains it here
    path = f"/api/v1/jobs/{job}/events"

    def open_stream(who: str, where: str = path):
        # each on a thread of its own, opened and closed there, as the server would: an unread stream
        # keeps its request's context on its thread
        thread = ThreadPoolExecutor(1)
        answer = thread.submit(client.get, where, headers={"Authorization": f"Bearer {tokens[who]}"}, buffered=False).result()
        answer.close_here = lambda: (thread.submit(answer.close).result(), thread.shutdown())
        return answer

    before = STREAMS.count()
    alices = [open_stream("alice") for _ in range(3)]
    assert [s.status_code for s in alices] == [200] * 3
    refused = open_stream("alice")
    assert refused.status_code == 429 and refused.json["type"].endswith("#too-many-streams") and refused.headers["Retry-After"]
    others = [open_stream("bob"), open_stream("bob")]  # another owner's job: 404, and it holds no stream
    assert [s.status_code for s in others] == [404, 404]
    with http(app, tokens["bob"]) as bob:
        bobs_job = bob.post("/api/v1/jobs", json=SEED).json()["id"]
    bob_streams = [open_stream("bob", f"/api/v1/jobs/{bobs_job}/events") for _ in range(2)]
    assert [s.status_code for s in bob_streams] == [200, 200]
    full = open_stream("bob", f"/api/v1/jobs/{bobs_job}/events")
    assert full.status_code == 503 and full.json["type"].endswith("#streams-unavailable"), full.json  # 5 in all
    for stream in alices + bob_streams + [refused, full, *others]:
        stream.close_here()
    assert STREAMS.count() == before  # every slot given back
    again = open_stream("alice")
    assert again.status_code == 200 and STREAMS.count() == before + 1
    again.close_here()


def test_an_idle_stream_ends_and_resumes_with_last_event_id(guarded):
    app, tokens, _ = guarded
    client = app.test_client()
    with http(app, tokens["carol"]) as carol:
        job = carol.post("/api/v1/jobs", json=SEED).json()["id"]
    auth = {"Authorization": f"Bearer {tokens['carol']}"}
    first = client.get(f"/api/v1/jobs/{job}/events", headers=auth).get_data(as_text=True)  # ends by itself: idle after 1 s
    assert "retry: " in first and "event: status" in first and "event: end" not in first
    last_id = re.findall(r"^id: (.+)$", first, re.M)[-1]
    assert last_id == "queued/0"
    again = client.get(f"/api/v1/jobs/{job}/events", headers={**auth, "Last-Event-ID": last_id}).get_data(as_text=True)
    assert "event: status" not in again and "event: progress" not in again  # nothing it had already seen
    with http(app, tokens["carol"]) as carol:
        carol.post(f"/api/v1/jobs/{job}/cancel")
    ended = client.get(f"/api/v1/jobs/{job}/events", headers={**auth, "Last-Event-ID": last_id}).get_data(as_text=True)
    assert "event: status" in ended and "event: end" in ended and '"cancelled"' in ended


def test_a_sweep_whose_jobs_would_hold_too_much_in_all_is_refused(guarded):
    app, tokens, _ = guarded
    wide = moons(epochs=1, model={"layers": [{"units": 400, "activation": "relu"}, {"units": 400, "activation": "relu"},
                                             {"units": 1, "activation": "sigmoid"}]})
    with http(app, tokens["alice"]) as alice:
        refused = alice.post("/api/v1/sweeps", json={"base": wide, "space": {"optimizer.lr": [0.1 * i for i in range(1, 101)]},
                                                     "seeds": 5})
    assert refused.status_code == 422 and refused.json()["limit"]["name"] == "MAX_SWEEP_STATE_BYTES", refused.text
